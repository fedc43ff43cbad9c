//! Fig. 1: |PC1| (x100) over training steps, bad_medical against number_sequence, one
//! panel per model, with bad_medical's EM rate overlaid (dashed, right axis). With several
//! seeds, each seed is a thin line and their mean a bold one inside a ±1 sd band.
//!
//! Reads `pc1` tables (required) and `em_summary`/`em_label` tables (optional: the overlay
//! is drawn where bad_medical checkpoints have an EM label, in %; see `em_data` for which).

use crate::em_data::{self, EmRow};
use crate::load::{Context, Pc1Row};
use crate::style::{FONT, Figure, Mark, colour, darker, mean_std, plot};
use crate::{Result, load, style};
use plotters::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The contrast of the paper's Fig. 1: a dangerous and a benign-looking perturbation.
pub const SHOWN: [&str; 2] = ["bad_medical", "number_sequence"];
/// Whose EM is overlaid.
pub const EM_OF: &str = "bad_medical";

/// Per-seed series of one (model, perturbation): seed -> [(step, value)], step-sorted.
pub type Series = BTreeMap<u64, Vec<(f64, f64)>>;

#[derive(Debug)]
struct Panel {
    model: String,
    pc1: Vec<(String, Series)>,
    em: Series,
    /// What the EM axis may show (x100): 0..100 for rates, unbounded for a control fraction.
    em_bounds: (f64, f64),
}

#[derive(Debug)]
pub struct Fig1 {
    panels: Vec<Panel>,
    em_label: String,
}

/// Read the tables, draw, and return (files written, tables read).
pub fn render(ctx: &Context, out: &Path) -> Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let pc1_files = ctx.require("pc1")?;
    let (em, em_files) = em_data::em_rows(ctx)?;
    if em.is_empty() {
        tracing::warn!("fig1: no EM label in the results; drawing |PC1| without the EM overlay");
    }
    let pc1 = load::pc1_rows(&pc1_files)?;
    let fig = Fig1::new(&pc1, &em).ok_or_else(|| {
        ctx.no_data(format!(
            "the `pc1` tables under {} score no {} run (found: {})",
            ctx.results.display(),
            SHOWN.join(" or "),
            found(pc1.iter().map(|r| r.perturbation.as_str()))
        ))
    })?;
    let files = style::render_target(ctx, out, style::canvas(fig.panels.len()), &fig)?;
    Ok((files, [pc1_files, em_files].concat()))
}

/// Distinct names, comma-separated (for error messages).
pub fn found<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let set: std::collections::BTreeSet<&str> = names.collect();
    if set.is_empty() {
        return "none".into();
    }
    set.into_iter().collect::<Vec<_>>().join(", ")
}

/// `(x, y)` points per seed of the rows matching `keep`.
pub fn series<'a, R: 'a>(
    rows: impl Iterator<Item = &'a R>,
    f: impl Fn(&R) -> (u64, f64, f64),
) -> Series {
    let mut s = Series::new();
    for r in rows {
        let (seed, x, y) = f(r);
        s.entry(seed).or_default().push((x, y));
    }
    for v in s.values_mut() {
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        v.dedup_by(|a, b| a.0 == b.0);
    }
    s
}

/// Mean, sd and count across the seeds that have each step.
pub fn across_seeds(series: &Series) -> Vec<(f64, f64, f64, usize)> {
    let mut by_step: BTreeMap<i64, (f64, Vec<f64>)> = BTreeMap::new();
    for points in series.values() {
        for &(x, y) in points {
            by_step
                .entry((x * 1000.0).round() as i64)
                .or_insert((x, vec![]))
                .1
                .push(y);
        }
    }
    by_step
        .into_values()
        .map(|(x, v)| {
            let (m, s) = mean_std(&v);
            (x, m, s, v.len())
        })
        .collect()
}

impl Fig1 {
    /// None when no model has a run of the shown perturbations.
    pub fn new(pc1: &[Pc1Row], em: &[EmRow]) -> Option<Self> {
        let mut models: Vec<&str> = pc1.iter().map(|r| r.model.as_str()).collect();
        models.sort_unstable();
        models.dedup();
        let mut panels = Vec::new();
        for model in models {
            let mut shown = Vec::new();
            for pert in SHOWN {
                let rows = pc1
                    .iter()
                    .filter(|r| r.model == model && r.perturbation == pert);
                let s = series(rows, |r: &Pc1Row| {
                    (r.seed, r.step as f64, 100.0 * r.abs_pc1)
                });
                if !s.is_empty() {
                    shown.push((pert.to_string(), s));
                }
            }
            if shown.is_empty() {
                continue;
            }
            let rows: Vec<EmRow> = em
                .iter()
                .filter(|r| r.model == model && r.perturbation == EM_OF)
                .cloned()
                .collect();
            let em_series = series(rows.iter(), |r: &EmRow| {
                (r.seed, r.step as f64, 100.0 * r.value)
            });
            panels.push(Panel {
                model: model.to_string(),
                pc1: shown,
                em: em_series,
                em_bounds: em_data::axis_bounds(&rows),
            });
        }
        if panels.is_empty() {
            return None;
        }
        let em_of: Vec<EmRow> = em
            .iter()
            .filter(|r| r.perturbation == EM_OF)
            .cloned()
            .collect();
        let em_label = format!("{EM_OF} {}", em_data::axis_label(&em_of));
        Some(Self { panels, em_label })
    }

    fn legend(&self) -> Vec<(Mark, String)> {
        let mut entries = Vec::new();
        for pert in SHOWN {
            let seeds = self
                .panels
                .iter()
                .flat_map(|p| {
                    p.pc1
                        .iter()
                        .filter(|(n, _)| n == pert)
                        .map(|(_, s)| s.len())
                })
                .max()
                .unwrap_or(0);
            if seeds > 0 {
                let c = colour(pert);
                let (mark, text) = if seeds > 1 {
                    (
                        Mark::Band(c),
                        format!("{pert} |PC1|: mean ± 1 sd of {seeds} seeds (thin: each seed)"),
                    )
                } else {
                    (Mark::Line(c, 4), format!("{pert} |PC1| (1 seed)"))
                };
                entries.push((mark, text));
            }
        }
        if self.panels.iter().any(|p| !p.em.is_empty()) {
            let labelled = self.panels.iter().map(|p| p.em.len()).max().unwrap_or(0);
            let runs = self
                .panels
                .iter()
                .flat_map(|p| {
                    p.pc1
                        .iter()
                        .filter(|(n, _)| n == EM_OF)
                        .map(|(_, s)| s.len())
                })
                .max()
                .unwrap_or(0);
            let which = if labelled < runs {
                format!(", {labelled} of {runs} seeds labelled")
            } else if labelled > 1 {
                format!(", mean of {labelled} seeds")
            } else {
                String::new()
            };
            entries.push((
                Mark::Dashed(darker(colour(EM_OF)), 4),
                format!("{} (right axis{which})", self.em_label),
            ));
        }
        entries
    }
}

impl Figure for Fig1 {
    /// Every run a single checkpoint (or none finite): dots, not trajectories.
    fn fallback(&self) -> Option<style::Fallback> {
        let series = self
            .panels
            .iter()
            .flat_map(|p| p.pc1.iter().map(|(_, s)| s));
        if !crate::degenerate::no_trajectory(series) {
            return None;
        }
        let mut rows = Vec::new();
        for p in &self.panels {
            for (pert, s) in &p.pc1 {
                rows.extend(crate::degenerate::series_rows(&[&p.model, pert], s));
            }
        }
        Some(crate::degenerate::note(
            "fig1",
            "|PC1| over finetuning steps",
            "no run has two checkpoints with a finite |PC1|, so there is no trajectory; \
             save more checkpoints per run (`checkpoint_every`) and rerun `traitwatch pca`",
            &["model", "perturbation", "seed", "step", "|PC1| x100"],
            rows,
        ))
    }

    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, plotters::coord::Shift>,
    ) -> Result<()> {
        let title = "Drift along the cluster PC1 during finetuning: bad_medical vs number_sequence";
        let ty = style::Type::of(root);
        let body = style::frame_with_legend(root, title, &self.legend())?;
        let panels = body.split_evenly(style::grid(self.panels.len()));
        for (panel, area) in self.panels.iter().zip(&panels) {
            draw_panel(panel, &self.em_label, area, &ty)?;
        }
        Ok(())
    }
}

fn draw_panel<DB: DrawingBackend>(
    panel: &Panel,
    em_label: &str,
    area: &DrawingArea<DB, plotters::coord::Shift>,
    ty: &style::Type,
) -> Result<()> {
    let all = panel.pc1.iter().flat_map(|(_, s)| s.values().flatten());
    let max_step = all.clone().map(|p| p.0).fold(1.0f64, f64::max);
    let y_max = all.map(|p| p.1).fold(0.0f64, f64::max);
    let has_em = !panel.em.is_empty();
    let em_stats = across_seeds(&panel.em);
    let em_lo = em_stats
        .iter()
        .map(|p| p.1 - p.2)
        .fold(f64::INFINITY, f64::min);
    let em_hi = em_stats
        .iter()
        .map(|p| p.1 + p.2)
        .fold(f64::NEG_INFINITY, f64::max);
    let x_range = 0.0..max_step * 1.03;
    let y_range = 0.0..(y_max * 1.12).max(1e-6);
    let (em_min, em_max) = panel.em_bounds;
    // At least 20 points of EM on the axis, so that a change of one or two judged items
    // (noise for a few hundred items) does not fill the panel. A signed label keeps its
    // zero (step 0) in view.
    let em_range = if has_em {
        let (em_lo, em_hi) = if em_min.is_finite() {
            (em_lo, em_hi)
        } else {
            (em_lo.min(0.0), em_hi.max(0.0))
        };
        let mid = (em_lo + em_hi) / 2.0;
        let half = ((em_hi - em_lo) / 2.0 * 1.15).max(10.0);
        let (lo, hi) = ((mid - half).max(em_min), (mid + half).min(em_max));
        // A little headroom, so a rate at 0 or 100% does not lie on the frame.
        let pad = 0.04 * (hi - lo).max(1.0);
        (lo - pad).max(if lo > em_min { em_min } else { em_min - pad })..hi + pad
    } else {
        0.0..100.0
    };
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.model, (FONT, ty.caption))
        .margin(ty.px(20))
        .margin_right(ty.px(if has_em { 10 } else { 40 }))
        .x_label_area_size(ty.px(80))
        .y_label_area_size(ty.px(110))
        .right_y_label_area_size(if has_em { ty.px(110) } else { 0 })
        .build_cartesian_2d(x_range.clone(), y_range)
        .map_err(plot)?
        .set_secondary_coord(x_range, em_range);
    chart
        .configure_mesh()
        .x_desc("training step")
        .y_desc("|PC1| × 100 (% of activation norm)")
        .label_style((FONT, ty.tick))
        .axis_desc_style((FONT, ty.axis))
        .light_line_style(WHITE)
        .bold_line_style(RGBColor(228, 228, 228))
        .x_labels(8)
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| style::tick(*v, y_max))
        .draw()
        .map_err(plot)?;
    if has_em {
        chart
            .configure_secondary_axes()
            // The legend names the perturbation; the axis has room for the label only.
            .y_desc(em_label.trim_start_matches(EM_OF).trim())
            .label_style((FONT, ty.tick))
            .axis_desc_style((FONT, ty.axis))
            .y_label_formatter(&|v| {
                if (em_min - 1e-9..=em_max + 1e-9).contains(v) {
                    format!("{v:.0}")
                } else {
                    String::new()
                }
            })
            .draw()
            .map_err(plot)?;
    }
    for (pert, series) in &panel.pc1 {
        let c = colour(pert);
        let stats = across_seeds(series);
        if series.len() > 1 {
            crate::band::draw(&mut chart, &stats, c, 0.16, (0.0, f64::INFINITY))?;
            for points in series.values() {
                chart
                    .draw_series(LineSeries::new(
                        points.iter().copied(),
                        c.mix(0.5).stroke_width(1),
                    ))
                    .map_err(plot)?;
            }
        }
        let mean: Vec<(f64, f64)> = stats.iter().map(|&(x, m, _, _)| (x, m)).collect();
        chart
            .draw_series(LineSeries::new(mean.clone(), c.stroke_width(ty.px(4))))
            .map_err(plot)?;
        chart
            .draw_series(mean.iter().map(|&p| Circle::new(p, ty.px(5), c.filled())))
            .map_err(plot)?;
    }
    if has_em {
        let dark = darker(colour(EM_OF));
        let mean: Vec<(f64, f64)> = em_stats.iter().map(|&(x, m, _, _)| (x, m)).collect();
        if em_stats.iter().any(|s| s.3 > 1) {
            let upper = em_stats.iter().map(|&(x, m, s, _)| (x, m + s));
            let lower = em_stats.iter().rev().map(|&(x, m, s, _)| (x, m - s));
            chart
                .draw_secondary_series(std::iter::once(Polygon::new(
                    upper.chain(lower).collect::<Vec<_>>(),
                    dark.mix(0.08).filled(),
                )))
                .map_err(plot)?;
        }
        if !em_min.is_finite() {
            // A signed label: its zero is "no change since step 0".
            chart
                .draw_secondary_series(LineSeries::new(
                    [(0.0, 0.0), (max_step * 1.03, 0.0)],
                    dark.mix(0.35).stroke_width(1),
                ))
                .map_err(plot)?;
        }
        chart
            .draw_secondary_series(DashedLineSeries::new(
                mean.clone(),
                ty.px(14),
                ty.px(9),
                dark.stroke_width(ty.px(3)),
            ))
            .map_err(plot)?;
        chart
            .draw_secondary_series(
                mean.iter()
                    .map(|&p| TriangleMarker::new(p, ty.px(8), dark.filled())),
            )
            .map_err(plot)?;
    }
    Ok(())
}
