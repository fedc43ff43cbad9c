//! Fig. 3: how often the monitor misses dangerous checkpoints (FNR, top) and raises false
//! alarms (FPR, bottom), per feature set (groups) and regressor (bars). The random bases
//! collapse to one group (mean ± sd over the bases); other bars carry their 95%
//! cluster-bootstrap interval where the table has one. A dash marks an undefined rate (no
//! dangerous or no benign checkpoint).
//!
//! Reads `monitor_metrics` tables: the held-out-types split (`lopo --held-out-types`), else
//! the pooled LOPO split (`lopo --all`); the pooled scope when there are several models.

use crate::load::{Context, MetricRow, is_random_basis};
use crate::style::{FONT, Figure, Mark, mean_std, plot, pretty, regressor_colour};
use crate::{Result, load, style};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::{Path, PathBuf};

const REGRESSORS: [&str; 4] = ["ridge", "gradient_boosting", "random_forest", "logistic"];

/// One bar: value (0..1), whisker (low, high), None = undefined.
type Bar = Option<(f64, Option<(f64, f64)>)>;
/// A rate and its interval, read from a cell.
type Rate = fn(&MetricRow) -> (Option<f64>, Option<(f64, f64)>);

#[derive(Debug)]
pub struct Fig3 {
    subtitle: String,
    regressors: Vec<String>,
    /// (feature set label, per regressor: (FNR bar, FPR bar)).
    groups: Vec<(String, Vec<(Bar, Bar)>)>,
}

pub fn render(ctx: &Context, out: &Path) -> Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let files = ctx.require_from("monitor_metrics", "lopo --held-out-types")?;
    let rows = load::metric_rows(&files)?;
    let fig = Fig3::new(&rows).ok_or_else(|| {
        ctx.no_data(
            "the `monitor_metrics` tables hold no pooled cells of the held-out-types or LOPO \
             split (run `lopo --held-out-types` or `lopo --all`)",
        )
    })?;
    let width = (300 + 190 * fig.groups.len() as u32).max(style::WIDTH);
    let written = style::render_target(ctx, out, (width, style::HEIGHT + 200), &fig)?;
    Ok((written, files))
}

/// The pooled cells of the headline split, else of the LOPO split: (split, scope, rows).
pub fn headline_cells(rows: &[MetricRow]) -> Option<(String, String, Vec<&MetricRow>)> {
    for split in ["held_out_types", "lopo"] {
        let cells: Vec<&MetricRow> = rows
            .iter()
            .filter(|r| !r.sweep && r.split == split && r.held_out == split)
            .collect();
        if cells.is_empty() {
            continue;
        }
        let scope = if cells.iter().any(|r| r.scope == "pooled") {
            "pooled".to_string()
        } else {
            let mut scopes: Vec<&str> = cells.iter().map(|r| r.scope.as_str()).collect();
            scopes.sort_unstable();
            scopes.first().map_or_else(String::new, |s| s.to_string())
        };
        let cells = cells.into_iter().filter(|r| r.scope == scope).collect();
        return Some((split.to_string(), scope, cells));
    }
    None
}

/// Feature sets in display order: alignment, semantic, random (collapsed), the rest.
pub fn feature_groups(cells: &[&MetricRow]) -> Vec<(String, Vec<String>)> {
    let mut names: Vec<String> = Vec::new();
    for c in cells {
        if !names.contains(&c.feature_set) {
            names.push(c.feature_set.clone());
        }
    }
    let randoms: Vec<String> = names
        .iter()
        .filter(|n| is_random_basis(n))
        .cloned()
        .collect();
    let mut groups = Vec::new();
    for first in ["alignment", "semantic"] {
        if names.iter().any(|n| n == first) {
            groups.push((first.to_string(), vec![first.to_string()]));
        }
    }
    if !randoms.is_empty() {
        groups.push((format!("random ({} bases)", randoms.len()), randoms));
    }
    for n in &names {
        if !is_random_basis(n) && n != "alignment" && n != "semantic" {
            groups.push((pretty(n), vec![n.clone()]));
        }
    }
    groups
}

/// One bar of a group: the cell's value and interval, or mean ± sd over several cells.
fn bar(cells: &[&MetricRow], f: Rate) -> Bar {
    if cells.len() == 1 {
        let (v, ci) = f(cells[0]);
        return v.map(|v| (v, ci));
    }
    let values: Vec<f64> = cells.iter().filter_map(|c| f(c).0).collect();
    if values.is_empty() {
        return None;
    }
    let (m, s) = mean_std(&values);
    Some((m, Some(((m - s).max(0.0), (m + s).min(1.0)))))
}

impl Fig3 {
    pub fn new(rows: &[MetricRow]) -> Option<Self> {
        let (split, scope, cells) = headline_cells(rows)?;
        let mut regressors: Vec<String> = REGRESSORS
            .iter()
            .filter(|r| cells.iter().any(|c| c.regressor == **r))
            .map(|r| r.to_string())
            .collect();
        for c in &cells {
            if !regressors.contains(&c.regressor) {
                regressors.push(c.regressor.clone());
            }
        }
        let mut groups = Vec::new();
        for (label, members) in feature_groups(&cells) {
            let bars = regressors
                .iter()
                .map(|reg| {
                    let m: Vec<&MetricRow> = cells
                        .iter()
                        .copied()
                        .filter(|c| &c.regressor == reg && members.contains(&c.feature_set))
                        .collect();
                    (
                        bar(&m, |c| (c.fnr, c.fnr_ci)),
                        bar(&m, |c| (c.fpr, c.fpr_ci)),
                    )
                })
                .collect();
            groups.push((label, bars));
        }
        let any = cells.first()?;
        let split_name = if split == "held_out_types" {
            "held-out perturbation types"
        } else {
            "leave-one-perturbation-out, pooled folds"
        };
        let tau = any
            .tau
            .map_or(String::new(), |t| format!(", EM threshold τ = {t}"));
        let subtitle = format!(
            "{split_name}; {scope}; {} checkpoints ({} dangerous / {} benign){tau}",
            any.n, any.positives, any.negatives
        );
        Some(Self {
            subtitle,
            regressors,
            groups,
        })
    }
}

impl Figure for Fig3 {
    /// Every bar undefined (no dangerous and no benign checkpoints): only dashes.
    fn fallback(&self) -> Option<style::Fallback> {
        let bars = self.groups.iter().flat_map(|(_, b)| b.iter());
        if bars
            .clone()
            .any(|(f, p)| f.is_some_and(|b| b.0.is_finite()) || p.is_some_and(|b| b.0.is_finite()))
        {
            return None;
        }
        let value = |b: &Option<(f64, Option<(f64, f64)>)>| crate::degenerate::cell(b.map(|b| b.0));
        let mut rows = Vec::new();
        for (fs, bars) in &self.groups {
            for (r, (f, p)) in self.regressors.iter().zip(bars) {
                rows.push(vec![fs.clone(), pretty(r), value(f), value(p)]);
            }
        }
        Some(crate::degenerate::note(
            "fig3",
            "monitor error rates by feature set and regressor",
            "no FNR or FPR is defined: the evaluated checkpoints are neither dangerous nor benign \
             under the EM threshold; label EM (`traitwatch em`) and rerun `lopo`",
            &["feature set", "regressor", "FNR %", "FPR %"],
            rows,
        ))
    }

    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, plotters::coord::Shift>,
    ) -> Result<()> {
        let title = "Monitor error rates by feature set and regressor";
        let ty = style::Type::of(root);
        let body = style::frame_with_legend(root, title, &self.legend())?;
        let (sub, body) = body.split_vertically(ty.px(40));
        let (w, _) = sub.dim_in_pixel();
        sub.draw(&Text::new(
            self.subtitle.clone(),
            (w as i32 / 2, ty.dx(14)),
            TextStyle::from((FONT, ty.cell).into_font()).pos(Pos::new(HPos::Center, VPos::Center)),
        ))
        .map_err(plot)?;
        let (top, bottom) = body.split_vertically(body.dim_in_pixel().1 / 2);
        self.panel(
            &top,
            "False negatives: dangerous checkpoints missed",
            "FNR (%)",
            |b| b.0,
            &ty,
        )?;
        self.panel(
            &bottom,
            "False positives: alarms on benign checkpoints",
            "FPR (%)",
            |b| b.1,
            &ty,
        )
    }
}

impl Fig3 {
    fn legend(&self) -> Vec<(Mark, String)> {
        let mut entries: Vec<(Mark, String)> = self
            .regressors
            .iter()
            .map(|r| (Mark::Square(regressor_colour(r)), pretty(r)))
            .collect();
        entries.push((
            Mark::Line(BLACK, 2),
            "whisker: 95% CI (random: ± 1 sd over bases)".into(),
        ));
        entries.push((
            Mark::Line(WHITE, 1),
            "– : undefined (no such checkpoints)".into(),
        ));
        entries
    }
}

impl Fig3 {
    fn panel<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, plotters::coord::Shift>,
        caption: &str,
        y_desc: &str,
        pick: fn(&(Bar, Bar)) -> Bar,
        ty: &style::Type,
    ) -> Result<()> {
        let g = self.groups.len();
        let labels: Vec<String> = self.groups.iter().map(|x| x.0.clone()).collect();
        let mut chart = ChartBuilder::on(area)
            .caption(caption, (FONT, ty.caption))
            .margin(ty.px(16))
            .margin_right(ty.px(30))
            .x_label_area_size(ty.px(50))
            .y_label_area_size(ty.px(90))
            .build_cartesian_2d((0..g.saturating_sub(1)).into_segmented(), 0.0..112.0)
            .map_err(plot)?;
        chart
            .configure_mesh()
            .y_desc(y_desc)
            .label_style((FONT, ty.tick))
            .axis_desc_style((FONT, ty.axis))
            .disable_x_mesh()
            .light_line_style(WHITE)
            .bold_line_style(RGBColor(228, 228, 228))
            .x_labels(g)
            .x_label_formatter(&|s| match s {
                SegmentValue::CenterOf(i) => labels.get(*i).cloned().unwrap_or_default(),
                _ => String::new(),
            })
            .y_label_formatter(&|v| format!("{v:.0}"))
            .draw()
            .map_err(plot)?;
        let (pw, ph) = chart.plotting_area().dim_in_pixel();
        let seg = pw as f64 / g.max(1) as f64;
        let r = self.regressors.len().max(1) as f64;
        let pad = seg * 0.12;
        let bw = (seg - 2.0 * pad) / r;
        let px_per = ph as f64 / 112.0;
        // Values above the bars while they have room (about 46 px each).
        let labels_fit = bw >= 46.0;
        for (gi, (_, bars)) in self.groups.iter().enumerate() {
            for (ri, (reg, b)) in self.regressors.iter().zip(bars).enumerate() {
                let left = pad + ri as f64 * bw;
                let right = seg - left - bw;
                let centre = (left + bw / 2.0) as i32;
                let base = (SegmentValue::Exact(gi), 0.0);
                match pick(b) {
                    Some((v, ci)) => {
                        let v = 100.0 * v;
                        let mut rect = Rectangle::new(
                            [base, (SegmentValue::Exact(gi + 1), v.max(0.3))],
                            regressor_colour(reg).filled(),
                        );
                        rect.set_margin(0, 0, left.round() as u32, right.max(0.0).round() as u32);
                        chart.draw_series(std::iter::once(rect)).map_err(plot)?;
                        if labels_fit {
                            let top = ci.map_or(v, |c| v.max(100.0 * c.1));
                            let text = EmptyElement::at((SegmentValue::Exact(gi), top))
                                + Text::new(
                                    format!("{v:.1}"),
                                    (centre, -6),
                                    TextStyle::from((FONT, ty.cell).into_font())
                                        .pos(Pos::new(HPos::Center, VPos::Bottom)),
                                );
                            chart.draw_series(std::iter::once(text)).map_err(plot)?;
                        }
                        if let Some((lo, hi)) = ci {
                            let (lo, hi) = (100.0 * lo, 100.0 * hi);
                            let len = ((hi - lo) * px_per).round() as i32;
                            let at = (SegmentValue::Exact(gi), hi);
                            let whisker = EmptyElement::at(at)
                                + PathElement::new(
                                    vec![(centre, 0), (centre, len)],
                                    BLACK.stroke_width(ty.px(2)),
                                )
                                + PathElement::new(
                                    vec![(centre - 6, 0), (centre + 6, 0)],
                                    BLACK.stroke_width(ty.px(2)),
                                )
                                + PathElement::new(
                                    vec![(centre - 6, len), (centre + 6, len)],
                                    BLACK.stroke_width(ty.px(2)),
                                );
                            chart.draw_series(std::iter::once(whisker)).map_err(plot)?;
                        }
                    }
                    None => {
                        let mark = EmptyElement::at(base)
                            + Text::new(
                                "–",
                                (centre, -14),
                                TextStyle::from((FONT, ty.cell).into_font())
                                    .pos(Pos::new(HPos::Center, VPos::Center)),
                            );
                        chart.draw_series(std::iter::once(mark)).map_err(plot)?;
                    }
                }
            }
        }
        Ok(())
    }
}
