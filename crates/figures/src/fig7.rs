//! Fig. 7: the leave-one-perturbation-out grid. Rows are models, columns the calibration
//! perturbation held out of training; the left grid gives the FNR, the right the FPR of the
//! held-out perturbation's checkpoints (alignment features, random forest by default). A
//! dash marks a cell with no dangerous (FNR) or no benign (FPR) checkpoint: it says nothing.
//!
//! Reads the per-fold cells of `monitor_metrics` tables of the LOPO split (`lopo --all`).

use crate::load::{Context, MetricRow};
use crate::style::{FONT, Figure, plot, pretty, text_on};
use crate::{Result, axis_names, load, style};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub struct Fig7 {
    feature_set: String,
    regressor: String,
    models: Vec<String>,
    held_out: Vec<String>,
    /// [model][held out] -> the cell.
    cells: Vec<Vec<Option<MetricRow>>>,
}

pub fn render(ctx: &Context, out: &Path) -> Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let files = ctx.require("monitor_metrics")?;
    let rows = load::metric_rows(&files)?;
    let fig = Fig7::new(&rows).ok_or_else(|| {
        ctx.no_data(
            "the `monitor_metrics` tables hold no per-fold LOPO cells (run `lopo --all` on \
             results with at least two calibration perturbations per model)",
        )
    })?;
    let h = (360 + 190 * fig.models.len() as u32).max(800);
    let w = (400 + 2 * 220 * fig.held_out.len() as u32).max(style::WIDTH);
    let written = style::render_target(ctx, out, (w, h), &fig)?;
    Ok((written, files))
}

/// White (0%) to red (100%).
fn error_colour(v: f64) -> RGBColor {
    let t = v.clamp(0.0, 1.0);
    let mix = |a: f64, b: f64| (a + t * (b - a)).round() as u8;
    RGBColor(mix(255.0, 190.0), mix(255.0, 30.0), mix(255.0, 45.0))
}

impl Fig7 {
    pub fn new(rows: &[MetricRow]) -> Option<Self> {
        let folds: Vec<&MetricRow> = rows
            .iter()
            .filter(|r| {
                !r.sweep && r.split == "lopo" && r.held_out != "lopo" && r.scope != "pooled"
            })
            .collect();
        let pick = |options: &[&str], have: Vec<&str>| -> Option<String> {
            options
                .iter()
                .find(|o| have.contains(o))
                .map(|o| o.to_string())
                .or_else(|| have.first().map(|s| s.to_string()))
        };
        let feature_set = pick(
            &["alignment"],
            folds.iter().map(|r| r.feature_set.as_str()).collect(),
        )?;
        let regressor = pick(
            &["random_forest", "gradient_boosting", "ridge"],
            folds.iter().map(|r| r.regressor.as_str()).collect(),
        )?;
        let chosen: Vec<&MetricRow> = folds
            .into_iter()
            .filter(|r| r.feature_set == feature_set && r.regressor == regressor)
            .collect();
        let mut models: Vec<String> = chosen.iter().map(|r| r.scope.clone()).collect();
        models.sort();
        models.dedup();
        let mut held_out: Vec<String> = chosen.iter().map(|r| r.held_out.clone()).collect();
        style::perturbation_order(&mut held_out);
        let cells = models
            .iter()
            .map(|m| {
                held_out
                    .iter()
                    .map(|h| {
                        chosen
                            .iter()
                            .find(|r| &r.scope == m && &r.held_out == h)
                            .map(|r| (*r).clone())
                    })
                    .collect()
            })
            .collect();
        Some(Self {
            feature_set,
            regressor,
            models,
            held_out,
            cells,
        })
    }

    fn grid<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, plotters::coord::Shift>,
        caption: &str,
        value: fn(&MetricRow) -> (Option<f64>, u64, &'static str),
    ) -> Result<()> {
        let (nr, nc) = (self.models.len(), self.held_out.len());
        let mut chart = ChartBuilder::on(area)
            .caption(caption, (FONT, 28))
            .margin(20)
            .x_label_area_size(70)
            .y_label_area_size(if nr > 0 { 200 } else { 20 })
            .build_cartesian_2d(0.0..nc.max(1) as f64, 0.0..nr.max(1) as f64)
            .map_err(plot)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(0)
            .y_labels(0)
            .x_desc("held-out calibration perturbation")
            .axis_desc_style((FONT, 22))
            .draw()
            .map_err(plot)?;
        axis_names::columns(&mut chart, self.held_out.iter().cloned(), 0.0, 22)?;
        axis_names::rows(&mut chart, self.models.iter().cloned(), nr, 22)?;
        for (i, row) in self.cells.iter().enumerate() {
            let y = nr - 1 - i;
            for (j, cell) in row.iter().enumerate() {
                let (v, denom, what) = cell.as_ref().map_or((None, 0, "cell"), value);
                let fill = v.map_or(RGBColor(235, 235, 235), error_colour);
                let (x0, y0) = (j as f64, y as f64);
                let corners = [(x0, y0), (x0 + 1.0, y0 + 1.0)];
                let mut rect = Rectangle::new(corners, fill.filled());
                rect.set_margin(3, 3, 3, 3);
                let mut border = Rectangle::new(corners, RGBColor(190, 190, 190).stroke_width(1));
                border.set_margin(3, 3, 3, 3);
                chart.draw_series([rect, border]).map_err(plot)?;
                let centre = (x0 + 0.5, y0 + 0.5);
                let (main, sub) = match v {
                    Some(v) => (format!("{:.1}%", 100.0 * v), format!("of {denom} {what}")),
                    None => ("–".to_string(), format!("no {what}")),
                };
                let ink = text_on(fill);
                let big = (FONT, 30)
                    .into_font()
                    .color(&ink)
                    .pos(Pos::new(HPos::Center, VPos::Bottom));
                let small = (FONT, 19)
                    .into_font()
                    .color(&ink)
                    .pos(Pos::new(HPos::Center, VPos::Top));
                chart
                    .draw_series([
                        EmptyElement::at(centre) + Text::new(main, (0, 2), big),
                        EmptyElement::at(centre) + Text::new(sub, (0, 8), small),
                    ])
                    .map_err(plot)?;
            }
        }
        Ok(())
    }
}

impl Figure for Fig7 {
    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, plotters::coord::Shift>,
    ) -> Result<()> {
        let title = format!(
            "Leave-one-perturbation-out: errors on the held-out perturbation ({} features, {})",
            pretty(&self.feature_set),
            pretty(&self.regressor)
        );
        let (body, _) = style::frame(root, &title, 20)?;
        let (left, right) = body.split_horizontally(body.dim_in_pixel().0 / 2);
        self.grid(&left, "FNR: missed dangerous checkpoints", |c| {
            (c.fnr, c.positives, "dangerous")
        })?;
        self.grid(&right, "FPR: alarms on benign checkpoints", |c| {
            (c.fpr, c.negatives, "benign")
        })
    }
}
