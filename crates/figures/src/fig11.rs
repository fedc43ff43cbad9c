//! Fig. 11: |PC1| (x100) over training steps of the same perturbation finetuned two ways,
//! LoRA (solid) against full finetuning (dashed), for dangerous and benign perturbations,
//! one panel per model. Each line is the mean over seeds inside a ±1 sd band where there
//! are several seeds; a perturbation keeps its colour ([`style::colour`]) in both regimes.
//!
//! Reads `pc1` tables. Runs of an `[[extra_runs]]` group carry the label
//! `<perturbation>+<tag>` (`bad_medical+full`); the untagged runs of the same perturbation
//! are the split's LoRA runs. Every perturbation with a tagged run in a model is drawn in
//! that model's panel, its LoRA runs too where there are some. The tags `full` and `fft`
//! read "full FT". Where runs carry one of them, other tags are left out (the paper
//! manifest's `+long` runs are LoRA runs for Fig. 9, not another regime, and would stretch
//! the step axis); where none does, every tag is drawn as written (one dash pattern per
//! tag), for a manifest that names its full-finetuning group otherwise. Full finetuning
//! may run a different number of steps: the panels share one axis of training steps, so
//! the shorter run simply ends earlier.

use crate::fig1::{Series, across_seeds, found, series};
use crate::load::{Context, Pc1Row};
use crate::style::{FONT, Figure, Mark, colour, plot};
use crate::{Result, load, style};
use plotters::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Tags that name full finetuning (legend "full FT").
pub const FULL_TAGS: [&str; 2] = ["full", "fft"];

/// Dash and gap lengths (px) and line width of the k-th tag's line; LoRA is solid. The
/// first tag (full finetuning where there is one) is drawn as bold as LoRA; further tags
/// thinner, which is also how the legend tells them apart.
const DASHES: [(u32, u32, u32); 3] = [(16, 10, 4), (6, 6, 2), (26, 8, 2)];

/// A run label split into its perturbation and its `[[extra_runs]]` tag:
/// `bad_medical+full` -> (`bad_medical`, Some(`full`)), `bad_medical` -> (`bad_medical`, None).
pub fn split_label(label: &str) -> (&str, Option<&str>) {
    match label.split_once('+') {
        Some((base, tag)) if !base.is_empty() && !tag.is_empty() => (base, Some(tag)),
        _ => (label, None),
    }
}

/// Whether a perturbation is one of the paper's dangerous sets (insecure_code, jailbroken,
/// bad_medical, risky_financial, subtle_misinfo) or a benign one (gsm8k, number_sequence,
/// alpaca, customer_support), as `datasets::DatasetKind::is_dangerous` defines them. None
/// for a name that is no dataset kind (a custom `.jsonl` perturbation): it is drawn, but
/// not called either.
pub fn is_dangerous(perturbation: &str) -> Option<bool> {
    perturbation
        .parse::<datasets::DatasetKind>()
        .ok()
        .map(datasets::DatasetKind::is_dangerous)
}

/// What a regime is called in the legend: LoRA for untagged runs, else by its tag.
pub fn regime(tag: Option<&str>) -> String {
    match tag {
        None => "LoRA".into(),
        Some(t) if FULL_TAGS.contains(&t) => "full FT".into(),
        Some(t) => t.into(),
    }
}

/// One model's rows by (perturbation, tag).
type Runs<'a> = BTreeMap<(&'a str, Option<&'a str>), Vec<&'a Pc1Row>>;

/// (step, mean, sd, seeds) of one line at one step ([`across_seeds`]).
type Stat = (f64, f64, f64, usize);

/// One line: a perturbation in one regime, per-seed |PC1| x100 over steps.
#[derive(Debug)]
struct Line {
    base: String,
    tag: Option<String>,
    series: Series,
}

#[derive(Debug)]
struct Panel {
    model: String,
    lines: Vec<Line>,
}

#[derive(Debug)]
pub struct Fig11 {
    panels: Vec<Panel>,
    /// Perturbations drawn anywhere, dangerous first, then benign, then unknown kinds.
    bases: Vec<String>,
    /// Tags drawn anywhere, full finetuning first; a tag's index picks its dash pattern.
    tags: Vec<String>,
}

/// Read the tables, draw, and return (files written, tables read).
pub fn render(ctx: &Context, out: &Path) -> Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let files = ctx.require("pc1")?;
    let rows = load::pc1_rows(&files)?;
    let fig = Fig11::new(&rows).ok_or_else(|| {
        ctx.no_data(format!(
            "the `pc1` tables under {} hold no tagged run (`<perturbation>+<tag>`, found: {}); \
             to compare full finetuning with LoRA, add an `[[extra_runs]]` group with \
             `tag = \"full\"` and `set = {{ mode = \"full\" }}` to the manifest",
            ctx.results.display(),
            found(rows.iter().map(|r| r.perturbation.as_str()))
        ))
    })?;
    let (w, h) = style::canvas(fig.panels.len());
    let size = (
        w,
        h + fig
            .legend_height(w)
            .saturating_sub(style::Type::for_width(w).px(LEGEND_H)),
    );
    let written = style::render_target(ctx, out, size, &fig)?;
    Ok((written, files))
}

/// The legend strip's height in the canvas of [`style::canvas`].
const LEGEND_H: u32 = 110;

/// Sort key: dangerous, benign, unknown kinds; within each, the paper's order.
fn base_order(names: &mut Vec<String>) {
    style::perturbation_order(names);
    names.sort_by_key(|n| match is_dangerous(n) {
        Some(true) => 0,
        Some(false) => 1,
        None => 2,
    });
}

impl Fig11 {
    /// None when no run carries a tag.
    pub fn new(rows: &[Pc1Row]) -> Option<Self> {
        let all_tags: BTreeSet<&str> = rows
            .iter()
            .filter_map(|r| split_label(&r.perturbation).1)
            .collect();
        let full_only = all_tags.iter().any(|t| FULL_TAGS.contains(t));
        let left_out: Vec<&str> = all_tags
            .iter()
            .copied()
            .filter(|t| full_only && !FULL_TAGS.contains(t))
            .collect();
        if !left_out.is_empty() {
            tracing::info!(
                "fig11: runs tagged {} are not full finetuning; left out",
                left_out.join(", ")
            );
        }
        // model -> (base, tag) -> rows.
        let mut by: BTreeMap<&str, Runs> = BTreeMap::new();
        for r in rows.iter().filter(|r| r.abs_pc1.is_finite()) {
            let (base, tag) = split_label(&r.perturbation);
            if tag.is_some_and(|t| left_out.contains(&t)) {
                continue;
            }
            by.entry(&r.model)
                .or_default()
                .entry((base, tag))
                .or_default()
                .push(r);
        }
        let mut panels = Vec::new();
        let mut bases = Vec::new();
        let mut tags = BTreeSet::new();
        for (model, runs) in by {
            let tagged: BTreeSet<&str> = runs
                .keys()
                .filter(|(_, t)| t.is_some())
                .map(|(b, _)| *b)
                .collect();
            if tagged.is_empty() {
                continue;
            }
            let mut names: Vec<String> = tagged.iter().map(|b| b.to_string()).collect();
            base_order(&mut names);
            let mut lines = Vec::new();
            for base in &names {
                // The LoRA run first, then the tags in name order.
                for ((b, tag), list) in runs.iter().filter(|((b, _), _)| b == base) {
                    let s = series(list.iter().copied(), |r: &Pc1Row| {
                        (r.seed, r.step as f64, 100.0 * r.abs_pc1)
                    });
                    if let Some(t) = tag {
                        tags.insert(t.to_string());
                    }
                    lines.push(Line {
                        base: b.to_string(),
                        tag: tag.map(str::to_string),
                        series: s,
                    });
                }
            }
            bases.extend(names);
            panels.push(Panel {
                model: model.to_string(),
                lines,
            });
        }
        if panels.is_empty() {
            return None;
        }
        base_order(&mut bases);
        let mut tags: Vec<String> = tags.into_iter().collect();
        tags.sort_by_key(|t| !FULL_TAGS.contains(&t.as_str()));
        Some(Self {
            panels,
            bases,
            tags,
        })
    }

    /// The line style of a regime: None solid, else the tag's (dash, gap, width).
    fn dashes(&self, tag: Option<&str>) -> Option<(u32, u32, u32)> {
        let tag = tag?;
        let k = self.tags.iter().position(|t| t == tag).unwrap_or(0);
        Some(DASHES[k % DASHES.len()])
    }

    fn legend(&self) -> Vec<(Mark, String)> {
        let mut entries = Vec::new();
        let mut bands = false;
        for base in &self.bases {
            let class = match is_dangerous(base) {
                Some(true) => " (dangerous)",
                Some(false) => " (benign)",
                None => "",
            };
            let regimes = std::iter::once(None).chain(self.tags.iter().map(|t| Some(t.as_str())));
            for tag in regimes {
                let seeds = self
                    .panels
                    .iter()
                    .flat_map(|p| &p.lines)
                    .filter(|l| &l.base == base && l.tag.as_deref() == tag)
                    .map(|l| l.series.len())
                    .max()
                    .unwrap_or(0);
                if seeds == 0 {
                    continue;
                }
                bands |= seeds > 1;
                let c = colour(base);
                let mark = match self.dashes(tag) {
                    None => Mark::Line(c, 4),
                    Some((_, _, w)) => Mark::Dashed(c, w),
                };
                let n = if seeds > 1 {
                    format!(", {seeds} seeds")
                } else {
                    ", 1 seed".into()
                };
                entries.push((mark, format!("{base}{class}: {}{n}", regime(tag))));
            }
        }
        if bands {
            entries.push((
                Mark::Band(RGBColor(120, 120, 120)),
                "band: mean ± 1 sd over seeds".into(),
            ));
        }
        entries
    }

    /// Height of the legend strip for a canvas `width` px wide: as many lines as
    /// [`style::legend_strip`] wraps the entries into (estimated from the text lengths).
    fn legend_height(&self, width: u32) -> u32 {
        // About 0.55 em per character of the sans-serif font; sample 44 px + 10 + gap 36
        // at the canvas's scale.
        let ty = style::Type::for_width(width);
        let char_w = 0.55 * f64::from(ty.legend);
        let widths = self
            .legend()
            .into_iter()
            .map(|(_, t)| f64::from(ty.px(54)) + char_w * t.chars().count() as f64);
        let room = f64::from(width) - f64::from(ty.px(40));
        let (mut lines, mut used) = (1u32, 0.0);
        for w in widths {
            let need = if used == 0.0 {
                w
            } else {
                used + f64::from(ty.px(36)) + w
            };
            if need > room && used > 0.0 {
                lines += 1;
                used = w;
            } else {
                used = need;
            }
        }
        (lines * (ty.legend + ty.px(14)) + ty.px(40)).max(ty.px(LEGEND_H))
    }
}

impl Figure for Fig11 {
    /// Every run a single checkpoint (or none finite): dots, not trajectories.
    fn fallback(&self) -> Option<style::Fallback> {
        let series = self
            .panels
            .iter()
            .flat_map(|p| p.lines.iter().map(|l| &l.series));
        if !crate::degenerate::no_trajectory(series) {
            return None;
        }
        let mut rows = Vec::new();
        for p in &self.panels {
            for l in &p.lines {
                let regime = regime(l.tag.as_deref());
                rows.extend(crate::degenerate::series_rows(
                    &[&p.model, &l.base, &regime],
                    &l.series,
                ));
            }
        }
        Some(crate::degenerate::note(
            "fig11",
            "|PC1| trajectories, full finetuning vs LoRA",
            "no run has two checkpoints with a finite |PC1|, so there is no trajectory",
            &[
                "model",
                "perturbation",
                "regime",
                "seed",
                "step",
                "|PC1| x100",
            ],
            rows,
        ))
    }

    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, plotters::coord::Shift>,
    ) -> Result<()> {
        let title = "|PC1| trajectories: full finetuning vs LoRA";
        let ty = style::Type::of(root);
        let body = style::frame_with_legend(root, title, &self.legend())?;
        let areas = body.split_evenly(style::grid(self.panels.len()));
        for (panel, area) in self.panels.iter().zip(&areas) {
            self.draw_panel(panel, area, &ty)?;
        }
        Ok(())
    }
}

impl Fig11 {
    fn draw_panel<DB: DrawingBackend>(
        &self,
        panel: &Panel,
        area: &DrawingArea<DB, plotters::coord::Shift>,
        ty: &style::Type,
    ) -> Result<()> {
        let stats: Vec<(&Line, Vec<Stat>)> = panel
            .lines
            .iter()
            .map(|l| (l, across_seeds(&l.series)))
            .collect();
        let points = stats.iter().flat_map(|(_, s)| s.iter());
        let max_step = points.clone().map(|p| p.0).fold(1.0f64, f64::max);
        let y_max = points.map(|p| p.1 + p.2).fold(0.0f64, f64::max);
        let mut chart = ChartBuilder::on(area)
            .caption(&panel.model, (FONT, ty.caption))
            .margin(ty.px(20))
            .margin_right(ty.px(40))
            .x_label_area_size(ty.px(80))
            .y_label_area_size(ty.px(110))
            .build_cartesian_2d(0.0..max_step * 1.03, 0.0..(y_max * 1.12).max(1e-6))
            .map_err(plot)?;
        chart
            .configure_mesh()
            .x_desc("training step")
            .y_desc("|PC1| × 100 (% of activation norm)")
            .label_style((FONT, ty.tick))
            .axis_desc_style((FONT, ty.axis))
            .light_line_style(WHITE)
            .bold_line_style(RGBColor(228, 228, 228))
            .x_labels(10)
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| style::tick(*v, y_max))
            .draw()
            .map_err(plot)?;
        // Bands first, so that no band covers a line.
        for (line, s) in &stats {
            if line.series.len() < 2 {
                continue;
            }
            let alpha = if line.tag.is_some() { 0.09 } else { 0.15 };
            let c = colour(&line.base);
            crate::band::draw(&mut chart, s, c, alpha, (0.0, f64::INFINITY))?;
        }
        for (line, s) in &stats {
            let c = colour(&line.base);
            let mean: Vec<(f64, f64)> = s.iter().map(|&(x, m, _, _)| (x, m)).collect();
            match self.dashes(line.tag.as_deref()) {
                None => {
                    chart
                        .draw_series(LineSeries::new(mean.clone(), c.stroke_width(ty.px(4))))
                        .map_err(plot)?;
                    chart
                        .draw_series(mean.iter().map(|&p| Circle::new(p, ty.px(5), c.filled())))
                        .map_err(plot)?;
                }
                Some((dash, gap, w)) => {
                    chart
                        .draw_series(DashedLineSeries::new(
                            mean.clone(),
                            ty.px(dash),
                            ty.px(gap),
                            c.stroke_width(ty.px(w)),
                        ))
                        .map_err(plot)?;
                    chart
                        .draw_series(
                            mean.iter()
                                .map(|&p| TriangleMarker::new(p, ty.px(7), c.filled())),
                        )
                        .map_err(plot)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_split_into_perturbation_and_tag() {
        assert_eq!(
            split_label("bad_medical+full"),
            ("bad_medical", Some("full"))
        );
        assert_eq!(split_label("gsm8k"), ("gsm8k", None));
        assert_eq!(split_label("gsm8k+"), ("gsm8k+", None));
        assert_eq!(regime(None), "LoRA");
        assert_eq!(regime(Some("fft")), "full FT");
        assert_eq!(regime(Some("rank64")), "rank64");
    }

    #[test]
    fn dangerous_and_benign_follow_the_dataset_kinds() {
        for p in [
            "insecure_code",
            "jailbroken",
            "bad_medical",
            "risky_financial",
        ] {
            assert_eq!(is_dangerous(p), Some(true), "{p}");
        }
        assert_eq!(is_dangerous("subtle_misinfo"), Some(true));
        for p in ["gsm8k", "number_sequence", "alpaca", "customer_support"] {
            assert_eq!(is_dangerous(p), Some(false), "{p}");
        }
        assert_eq!(is_dangerous("my_data"), None);
        let mut names = vec!["gsm8k".to_string(), "zzz".into(), "bad_medical".into()];
        base_order(&mut names);
        assert_eq!(names, ["bad_medical", "gsm8k", "zzz"]);
    }
}
