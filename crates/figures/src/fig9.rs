//! Fig. 9: the step-aware alarm over training. The alarm's probability that a checkpoint is
//! dangerous (logistic regression on 100|PC1|, step and their ratio; METHOD section 7) for
//! every scored run, one line per perturbation (mean ± 1 sd over seeds), one panel per
//! model; the alarm fires above 50% (dashed). The legend says which perturbations have
//! dangerous checkpoints (EM target > tau).
//!
//! Reads `step_alarm` tables (`lopo --step-alarm`).

use crate::fig1::{Series, across_seeds, series};
use crate::load::{AlarmRow, Context};
use crate::style::{FONT, Figure, Mark, colour, plot};
use crate::{Result, load, style};
use plotters::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub struct Fig9 {
    /// (model, per perturbation: its series of probability in %).
    panels: Vec<(String, Vec<(String, Series)>)>,
    /// (perturbation, dangerous somewhere, seeds).
    perturbations: Vec<(String, bool, usize)>,
    tau: Option<f64>,
}

pub fn render(ctx: &Context, out: &Path) -> Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let files = ctx.require("step_alarm")?;
    let (rows, tau) = load::alarm_rows(&files)?;
    let fig =
        Fig9::new(&rows, tau).ok_or_else(|| ctx.no_data("the `step_alarm` tables have no rows"))?;
    let written = style::render_target(ctx, out, style::canvas(fig.panels.len()), &fig)?;
    Ok((written, files))
}

impl Fig9 {
    pub fn new(rows: &[AlarmRow], tau: Option<f64>) -> Option<Self> {
        let mut by: BTreeMap<(&str, &str), Vec<&AlarmRow>> = BTreeMap::new();
        for r in rows {
            by.entry((&r.model, &r.perturbation)).or_default().push(r);
        }
        let mut panels: BTreeMap<String, Vec<(String, Series)>> = BTreeMap::new();
        let mut perts: BTreeMap<String, (bool, usize)> = BTreeMap::new();
        for ((model, pert), list) in by {
            let s = series(list.iter().copied(), |r: &AlarmRow| {
                (r.seed, r.step as f64, 100.0 * r.probability)
            });
            let dangerous = list.iter().any(|r| tau.is_some_and(|t| r.target > t));
            let e = perts.entry(pert.to_string()).or_insert((false, 0));
            e.0 |= dangerous;
            e.1 = e.1.max(s.len());
            panels
                .entry(model.to_string())
                .or_default()
                .push((pert.to_string(), s));
        }
        if panels.is_empty() {
            return None;
        }
        let mut names: Vec<String> = perts.keys().cloned().collect();
        style::perturbation_order(&mut names);
        let perturbations = names
            .into_iter()
            .map(|n| {
                let (d, s) = perts.get(&n).copied().unwrap_or((false, 1));
                (n, d, s)
            })
            .collect();
        Some(Self {
            panels: panels.into_iter().collect(),
            perturbations,
            tau,
        })
    }
}

impl Figure for Fig9 {
    /// Every run a single checkpoint (or none finite): dots, not curves over training.
    fn fallback(&self) -> Option<style::Fallback> {
        let series = self
            .panels
            .iter()
            .flat_map(|(_, l)| l.iter().map(|(_, s)| s));
        if !crate::degenerate::no_trajectory(series) {
            return None;
        }
        let mut rows = Vec::new();
        for (model, lines) in &self.panels {
            for (pert, s) in lines {
                rows.extend(crate::degenerate::series_rows(&[model, pert], s));
            }
        }
        Some(crate::degenerate::note(
            "fig9",
            "step-aware alarm probability over training",
            "no run has two checkpoints with a finite alarm probability, so there is no curve",
            &["model", "perturbation", "seed", "step", "P(dangerous) %"],
            rows,
        ))
    }

    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, plotters::coord::Shift>,
    ) -> Result<()> {
        let title = "Step-aware alarm: probability that a checkpoint is dangerous, over training";
        let ty = style::Type::of(root);
        let body = style::frame_with_legend(root, title, &self.legend())?;
        let areas = body.split_evenly(style::grid(self.panels.len()));
        for ((model, lines), area) in self.panels.iter().zip(&areas) {
            draw_panel(model, lines, area, &ty)?;
        }
        Ok(())
    }
}

impl Fig9 {
    fn legend(&self) -> Vec<(Mark, String)> {
        let tau = self
            .tau
            .map_or_else(|| "tau".to_string(), |t| format!("{t}"));
        let mut entries: Vec<(Mark, String)> = self
            .perturbations
            .iter()
            .map(|(p, dangerous, seeds)| {
                let kind = if *dangerous {
                    format!("dangerous: EM > {tau}")
                } else {
                    "benign".into()
                };
                let seeds = if *seeds > 1 {
                    format!(", {seeds} seeds")
                } else {
                    String::new()
                };
                (Mark::Band(colour(p)), format!("{p} ({kind}{seeds})"))
            })
            .collect();
        entries.push((Mark::Dashed(BLACK, 2), "alarm threshold 50%".into()));
        entries
    }
}

fn draw_panel<DB: DrawingBackend>(
    model: &str,
    lines: &[(String, Series)],
    area: &DrawingArea<DB, plotters::coord::Shift>,
    ty: &style::Type,
) -> Result<()> {
    let max_step = lines
        .iter()
        .flat_map(|(_, s)| s.values().flatten())
        .map(|p| p.0)
        .fold(1.0f64, f64::max);
    let mut chart = ChartBuilder::on(area)
        .caption(model, (FONT, ty.caption))
        .margin(ty.px(20))
        .margin_right(ty.px(40))
        .x_label_area_size(ty.px(80))
        .y_label_area_size(ty.px(110))
        .build_cartesian_2d(0.0..max_step * 1.03, 0.0..102.0)
        .map_err(plot)?;
    chart
        .configure_mesh()
        .x_desc("training step")
        .y_desc("alarm probability (%)")
        .label_style((FONT, ty.tick))
        .axis_desc_style((FONT, ty.axis))
        .light_line_style(WHITE)
        .bold_line_style(RGBColor(228, 228, 228))
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .draw()
        .map_err(plot)?;
    chart
        .draw_series(DashedLineSeries::new(
            vec![(0.0, 50.0), (max_step * 1.03, 50.0)],
            ty.px(10),
            ty.px(8),
            BLACK.stroke_width(ty.px(2)),
        ))
        .map_err(plot)?;
    for (pert, s) in lines {
        let c = colour(pert);
        let stats = across_seeds(s);
        if s.len() > 1 {
            crate::band::draw(&mut chart, &stats, c, 0.16, (0.0, 100.0))?;
        }
        let mean: Vec<(f64, f64)> = stats.iter().map(|&(x, m, _, _)| (x, m)).collect();
        chart
            .draw_series(LineSeries::new(mean.clone(), c.stroke_width(ty.px(4))))
            .map_err(plot)?;
        chart
            .draw_series(mean.iter().map(|&p| Circle::new(p, ty.px(5), c.filled())))
            .map_err(plot)?;
    }
    Ok(())
}
