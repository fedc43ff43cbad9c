//! Fig. 8: which perturbations cause emergent misalignment, and whether models agree. The
//! EM rate at each run's final checkpoint, per perturbation (sorted by the mean over models
//! and seeds, least severe first), one line per model with a ±1 sd band over seeds. The
//! legend gives each model's Spearman rho between its per-perturbation EM and the mean of
//! the other models (the consensus severity order); with one model there is no rho.
//!
//! Reads `em_summary`/`em_label` tables (group `all`; see `em_data` for which label).

use crate::em_data::{self, EmRow};
use crate::load::Context;
use crate::stats::spearman;
use crate::style::{FONT, Figure, Mark, mean_std, model_colour, plot};
use crate::{Result, style};
use plotters::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One model: its name, per perturbation (mean %, sd %, seeds) or None, and its rho.
type ModelLine = (String, Vec<Option<(f64, f64, usize)>>, Option<f64>);

#[derive(Debug)]
pub struct Fig8 {
    /// Perturbations, least severe first.
    perturbations: Vec<String>,
    models: Vec<ModelLine>,
    em_label: String,
    /// What the axis may show: 0..100 for rates, unbounded for a signed label.
    bounds: (f64, f64),
}

pub fn render(ctx: &Context, out: &Path) -> Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let (em, files) = em_data::em_rows(ctx)?;
    if files.is_empty() {
        ctx.require("em_summary")?;
    }
    let fig = Fig8::new(&em).ok_or_else(|| {
        ctx.no_data(
            "the `em_summary`/`em_label` tables hold no overall (`all`) EM label after step 0",
        )
    })?;
    let w = (600 + 150 * fig.perturbations.len() as u32).max(style::WIDTH);
    let written = style::render_target(ctx, out, (w, style::HEIGHT), &fig)?;
    Ok((written, files))
}

impl Fig8 {
    pub fn new(em: &[EmRow]) -> Option<Self> {
        // Each run's final labelled checkpoint (step 0 is the base model, not a run's result).
        let mut last: BTreeMap<(&str, &str, u64), &EmRow> = BTreeMap::new();
        for r in em.iter().filter(|r| r.step > 0) {
            let e = last.entry(r.run()).or_insert(r);
            if r.step > e.step {
                *e = r;
            }
        }
        let mut by: BTreeMap<(&str, &str), Vec<f64>> = BTreeMap::new();
        for ((model, pert, _), r) in &last {
            by.entry((model, pert)).or_default().push(100.0 * r.value);
        }
        if by.is_empty() {
            return None;
        }
        let mut models: Vec<&str> = by.keys().map(|k| k.0).collect();
        models.dedup();
        let mut perts: Vec<&str> = by.keys().map(|k| k.1).collect();
        perts.sort_unstable();
        perts.dedup();
        let stats = |m: &str, p: &str| {
            by.get(&(m, p)).map(|v| {
                let (mean, sd) = mean_std(v);
                (mean, sd, v.len())
            })
        };
        // Severity: mean over models of the per-model mean.
        let severity = |p: &str| {
            let means: Vec<f64> = models
                .iter()
                .filter_map(|m| stats(m, p))
                .map(|s| s.0)
                .collect();
            mean_std(&means).0
        };
        perts.sort_by(|a, b| severity(a).total_cmp(&severity(b)).then(a.cmp(b)));
        let rows = models
            .iter()
            .map(|m| {
                let values: Vec<Option<(f64, f64, usize)>> =
                    perts.iter().map(|p| stats(m, p)).collect();
                // Against the other models' mean, on perturbations both have.
                let mut mine = Vec::new();
                let mut others = Vec::new();
                for (p, v) in perts.iter().zip(&values) {
                    let rest: Vec<f64> = models
                        .iter()
                        .filter(|o| *o != m)
                        .filter_map(|o| stats(o, p))
                        .map(|s| s.0)
                        .collect();
                    if let (Some(v), false) = (v, rest.is_empty()) {
                        mine.push(v.0);
                        others.push(mean_std(&rest).0);
                    }
                }
                (m.to_string(), values, spearman(&mine, &others))
            })
            .collect();
        Some(Self {
            perturbations: perts.iter().map(|p| p.to_string()).collect(),
            models: rows,
            em_label: em_data::axis_label(em),
            bounds: em_data::axis_bounds(em),
        })
    }
}

impl Figure for Fig8 {
    /// Fewer than two perturbations with a final EM value: nothing to sort or compare.
    fn fallback(&self) -> Option<style::Fallback> {
        let shown = (0..self.perturbations.len())
            .filter(|&i| {
                self.models.iter().any(|m| {
                    m.1.get(i)
                        .is_some_and(|v| v.is_some_and(|v| v.0.is_finite()))
                })
            })
            .count();
        if shown >= 2 {
            return None;
        }
        let mut rows = Vec::new();
        for (model, values, _) in &self.models {
            for (p, v) in self.perturbations.iter().zip(values) {
                rows.push(vec![
                    model.clone(),
                    p.clone(),
                    crate::degenerate::cell(v.map(|v| v.0)),
                    v.map_or(0, |v| v.2).to_string(),
                ]);
            }
        }
        Some(crate::degenerate::note(
            "fig8",
            "final EM per perturbation by severity",
            format!(
                "{shown} perturbation(s) with a final {}: a ranking needs at least two",
                self.em_label
            ),
            &["model", "perturbation", "final EM", "seeds"],
            rows,
        ))
    }

    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, plotters::coord::Shift>,
    ) -> Result<()> {
        let title = "Final EM per perturbation, sorted by mean severity";
        let ty = style::Type::of(root);
        let body = style::frame_with_legend(root, title, &self.legend())?;
        let n = self.perturbations.len();
        let values = self.models.iter().flat_map(|m| m.1.iter().flatten());
        let hi = values
            .clone()
            .map(|v| v.0 + v.1)
            .fold(f64::NEG_INFINITY, f64::max);
        let lo = values.map(|v| v.0 - v.1).fold(f64::INFINITY, f64::min);
        let span = (hi - lo).max(10.0);
        let mid = (hi + lo) / 2.0;
        let pad = 0.04 * span;
        let (min, max) = self.bounds;
        let y_range = (mid - 0.6 * span).max(min - pad)..(mid + 0.6 * span).min(max + pad);
        let perts = &self.perturbations;
        let mut chart = ChartBuilder::on(&body)
            .margin(ty.px(20))
            .margin_right(ty.px(40))
            .x_label_area_size(ty.px(90))
            .y_label_area_size(ty.px(110))
            .build_cartesian_2d(-0.5..(n as f64 - 0.5), y_range)
            .map_err(plot)?;
        chart
            .configure_mesh()
            .x_desc("perturbation (least to most severe)")
            .y_desc(format!("final {}", self.em_label))
            .label_style((FONT, ty.tick))
            .axis_desc_style((FONT, ty.axis))
            .light_line_style(WHITE)
            .bold_line_style(RGBColor(228, 228, 228))
            .x_labels(n)
            .x_label_formatter(&|v| {
                let i = v.round();
                if (v - i).abs() < 1e-6 && i >= 0.0 {
                    perts.get(i as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .y_label_formatter(&|v| {
                if (min - 1e-9..=max + 1e-9).contains(v) {
                    format!("{v:.0}")
                } else {
                    String::new()
                }
            })
            .draw()
            .map_err(plot)?;
        if !min.is_finite() {
            // A signed label: its zero is "no change since step 0".
            chart
                .draw_series(LineSeries::new(
                    [(-0.5, 0.0), (n as f64 - 0.5, 0.0)],
                    BLACK.mix(0.5).stroke_width(1),
                ))
                .map_err(plot)?;
        }
        for (model, values, _) in &self.models {
            let c = model_colour(model);
            let pts: Vec<(f64, f64, f64)> = values
                .iter()
                .enumerate()
                .filter_map(|(i, v)| v.map(|v| (i as f64, v.0, v.1)))
                .collect();
            if values.iter().flatten().any(|v| v.2 > 1) {
                let upper = pts.iter().map(|&(x, m, s)| (x, m + s));
                let lower = pts.iter().rev().map(|&(x, m, s)| (x, m - s));
                chart
                    .draw_series(std::iter::once(Polygon::new(
                        upper.chain(lower).collect::<Vec<_>>(),
                        c.mix(0.15).filled(),
                    )))
                    .map_err(plot)?;
            }
            chart
                .draw_series(LineSeries::new(
                    pts.iter().map(|&(x, m, _)| (x, m)),
                    c.stroke_width(ty.px(4)),
                ))
                .map_err(plot)?;
            chart
                .draw_series(
                    pts.iter()
                        .map(|&(x, m, _)| Circle::new((x, m), ty.px(7), c.filled())),
                )
                .map_err(plot)?;
        }
        Ok(())
    }
}

impl Fig8 {
    fn legend(&self) -> Vec<(Mark, String)> {
        let entries: Vec<(Mark, String)> = self
            .models
            .iter()
            .map(|(m, values, rho)| {
                let seeds = values.iter().flatten().map(|v| v.2).max().unwrap_or(1);
                let rho = match rho {
                    Some(r) => format!("Spearman ρ vs other models = {r:.2}"),
                    None if self.models.len() == 1 => "one model: no ρ".into(),
                    None => "ρ undefined".into(),
                };
                let band = if seeds > 1 {
                    ", band ± 1 sd over seeds"
                } else {
                    ""
                };
                let mark = if seeds > 1 {
                    Mark::Band(model_colour(m))
                } else {
                    Mark::Line(model_colour(m), 4)
                };
                (mark, format!("{m} ({rho}{band})"))
            })
            .collect();
        entries
    }
}
