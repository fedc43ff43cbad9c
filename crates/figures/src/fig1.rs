//! Fig. 1: |PC1| (x100) over training steps, bad_medical against number_sequence, one
//! panel per model, with bad_medical's EM rate overlaid (dashed, right axis). Seeds are
//! thin lines; their mean is bold with a ±1 std band.

use crate::load::{EmRow, Pc1Row};
use crate::style::{FONT, Figure, colour, mean_std, padded, plot};
use crate::{FigureError, Result};
use plotters::prelude::*;
use std::collections::BTreeMap;

/// The contrast of the paper's Fig. 1: a dangerous and a benign-looking perturbation.
pub const SHOWN: [&str; 2] = ["bad_medical", "number_sequence"];
/// Whose EM is overlaid.
pub const EM_OF: &str = "bad_medical";

/// Per-seed series of one (model, perturbation): seed -> [(step, value)].
type Series = BTreeMap<u64, Vec<(f64, f64)>>;

#[derive(Debug)]
struct Panel {
    model: String,
    pc1: Vec<(String, Series)>,
    em: Series,
}

#[derive(Debug)]
pub struct Fig1 {
    panels: Vec<Panel>,
    em_label: String,
}

impl Fig1 {
    pub fn new(pc1: &[Pc1Row], em: &[EmRow]) -> Result<Self> {
        let mut models: Vec<&str> = pc1.iter().map(|r| r.model.as_str()).collect();
        models.sort_unstable();
        models.dedup();
        let mut panels = Vec::new();
        for model in models {
            let mut shown = Vec::new();
            for pert in SHOWN {
                let mut series = Series::new();
                for r in pc1
                    .iter()
                    .filter(|r| r.model == model && r.perturbation == pert)
                {
                    series
                        .entry(r.seed)
                        .or_default()
                        .push((r.step as f64, 100.0 * r.abs_pc1));
                }
                if !series.is_empty() {
                    shown.push((pert.to_string(), sorted(series)));
                }
            }
            if shown.is_empty() {
                continue;
            }
            let mut em_series = Series::new();
            for r in em
                .iter()
                .filter(|r| r.model == model && r.perturbation == EM_OF)
            {
                em_series
                    .entry(r.seed)
                    .or_default()
                    .push((r.step as f64, 100.0 * r.rate));
            }
            panels.push(Panel {
                model: model.to_string(),
                pc1: shown,
                em: sorted(em_series),
            });
        }
        if panels.is_empty() {
            return Err(FigureError::Missing(format!(
                "fig1 needs |PC1| of {} runs in a `pc1` table (from `traitwatch pca --score`)",
                SHOWN.join(" or ")
            )));
        }
        let proxy = em.iter().any(|r| r.statistic == "proxy_em");
        let em_label = if proxy {
            format!("{EM_OF} proxy EM, % (paired choice)")
        } else {
            format!("{EM_OF} EM rate, % (free-form judge)")
        };
        Ok(Self { panels, em_label })
    }
}

fn sorted(mut s: Series) -> Series {
    for v in s.values_mut() {
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    s
}

/// Mean and std across seeds at each step every seed has.
fn across_seeds(series: &Series) -> Vec<(f64, f64, f64)> {
    let mut by_step: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
    for points in series.values() {
        for &(x, y) in points {
            by_step.entry(x as u64).or_default().push(y);
        }
    }
    let n = series.len();
    by_step
        .into_iter()
        .filter(|(_, v)| v.len() == n)
        .map(|(x, v)| {
            let (m, s) = mean_std(&v);
            (x as f64, m, s)
        })
        .collect()
}

impl Figure for Fig1 {
    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, plotters::coord::Shift>,
    ) -> Result<()> {
        let title = "|PC1| drift during finetuning: bad_medical vs number_sequence";
        let area = root.margin(16, 0, 0, 0);
        let area = area.titled(title, (FONT, 36)).map_err(plot)?;
        let panels = area.split_evenly((1, self.panels.len()));
        for (panel, area) in self.panels.iter().zip(&panels) {
            draw_panel(panel, &self.em_label, area)?;
        }
        Ok(())
    }
}

fn draw_panel<DB: DrawingBackend>(
    panel: &Panel,
    em_label: &str,
    area: &DrawingArea<DB, plotters::coord::Shift>,
) -> Result<()> {
    let all = panel.pc1.iter().flat_map(|(_, s)| s.values().flatten());
    let max_step = all.clone().map(|p| p.0).fold(1.0f64, f64::max);
    let y_max = all.map(|p| p.1).fold(0.0f64, f64::max);
    let em_points = panel.em.values().flatten();
    let em_lo = em_points.clone().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let em_hi = em_points.map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
    let has_em = !panel.em.is_empty();
    let x_range = 0.0..max_step * 1.02;
    let y_range = 0.0..(y_max * 1.15).max(1e-6);
    // At least 20 points of EM on the axis, so that a change of one or two judged items
    // (noise for a few hundred items) does not fill the panel.
    let em_range = if has_em {
        let mid = (em_lo + em_hi) / 2.0;
        let half = ((em_hi - em_lo) / 2.0).max(10.0);
        padded((mid - half).max(0.0), (mid + half).min(100.0), 0.05)
    } else {
        0.0..100.0
    };
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.model, (FONT, 30))
        .margin(24)
        .x_label_area_size(70)
        .y_label_area_size(100)
        .right_y_label_area_size(if has_em { 100 } else { 20 })
        .build_cartesian_2d(x_range.clone(), y_range)
        .map_err(plot)?
        .set_secondary_coord(x_range, em_range);
    chart
        .configure_mesh()
        .x_desc("training step")
        .y_desc("|PC1| × 100 (drift along cluster PC1)")
        .label_style((FONT, 22))
        .axis_desc_style((FONT, 24))
        .light_line_style(WHITE)
        .bold_line_style(RGBColor(225, 225, 225))
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v:.2}"))
        .draw()
        .map_err(plot)?;
    if has_em {
        chart
            .configure_secondary_axes()
            .y_desc(em_label)
            .label_style((FONT, 22))
            .axis_desc_style((FONT, 24))
            .y_label_formatter(&|v| format!("{v:.1}"))
            .draw()
            .map_err(plot)?;
    }
    for (pert, series) in &panel.pc1 {
        let c = colour(pert);
        let stats = across_seeds(series);
        if series.len() > 1 {
            let upper = stats.iter().map(|&(x, m, s)| (x, m + s));
            let lower = stats.iter().rev().map(|&(x, m, s)| (x, (m - s).max(0.0)));
            chart
                .draw_series(std::iter::once(Polygon::new(
                    upper.chain(lower).collect::<Vec<_>>(),
                    c.mix(0.15).filled(),
                )))
                .map_err(plot)?;
            for points in series.values() {
                chart
                    .draw_series(LineSeries::new(
                        points.iter().copied(),
                        c.mix(0.45).stroke_width(1),
                    ))
                    .map_err(plot)?;
            }
        }
        let mean: Vec<(f64, f64)> = stats.iter().map(|&(x, m, _)| (x, m)).collect();
        let label = if series.len() > 1 {
            format!("{pert} |PC1| (mean ± sd of {} seeds)", series.len())
        } else {
            format!("{pert} |PC1|")
        };
        chart
            .draw_series(LineSeries::new(mean.clone(), c.stroke_width(4)))
            .map_err(plot)?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x - 4, y), (x + 14, y)], c.stroke_width(4))
            });
        chart
            .draw_series(mean.iter().map(|&p| Circle::new(p, 5, c.filled())))
            .map_err(plot)?;
    }
    if has_em {
        let c = colour(EM_OF);
        let dark = RGBColor(c.0 / 2, c.1 / 2, c.2 / 2);
        let stats = across_seeds(&panel.em);
        let mean: Vec<(f64, f64)> = stats.iter().map(|&(x, m, _)| (x, m)).collect();
        chart
            .draw_secondary_series(DashedLineSeries::new(
                mean.clone(),
                12,
                8,
                dark.stroke_width(3),
            ))
            .map_err(plot)?;
        chart
            .draw_secondary_series(
                mean.iter()
                    .map(|&p| TriangleMarker::new(p, 7, dark.filled())),
            )
            .map_err(plot)?;
        // The legend entry for the dashed EM line (secondary series have no legend of their own).
        let label = format!("{em_label}, right axis");
        chart
            .draw_series(std::iter::empty::<Circle<(f64, f64), i32>>())
            .map_err(plot)?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x - 4, y), (x + 4, y)], dark.stroke_width(3))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(RGBColor(180, 180, 180))
        .label_font((FONT, 22))
        .margin(12)
        .draw()
        .map_err(plot)?;
    Ok(())
}
