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
    let h = (500 + 190 * fig.models.len() as u32).max(950);
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
        ty: &style::Type,
        value: fn(&MetricRow) -> (Option<f64>, u64, &'static str),
    ) -> Result<()> {
        let (nr, nc) = (self.models.len(), self.held_out.len());
        let mut chart = ChartBuilder::on(area)
            .caption(caption, (FONT, ty.caption))
            .margin(ty.px(20))
            // Room for the names turned downwards when they are wider than a cell.
            .x_label_area_size(ty.px(200))
            .y_label_area_size(if nr > 0 { 200 } else { 20 })
            .build_cartesian_2d(0.0..nc.max(1) as f64, 0.0..nr.max(1) as f64)
            .map_err(plot)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(0)
            .y_labels(0)
            .x_desc("held-out calibration perturbation")
            .axis_desc_style((FONT, ty.axis))
            .draw()
            .map_err(plot)?;
        axis_names::columns(&mut chart, self.held_out.iter().cloned(), 0.0, ty.tick)?;
        axis_names::rows(&mut chart, self.models.iter().cloned(), nr, ty.tick)?;
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
                    Some(v) => (format!("{:.1}%", 100.0 * v), format!("n = {denom}")),
                    None => ("–".to_string(), format!("no {what}")),
                };
                let ink = text_on(fill);
                let big = (FONT, ty.cell)
                    .into_font()
                    .color(&ink)
                    .pos(Pos::new(HPos::Center, VPos::Bottom));
                let small = (FONT, ty.cell)
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
    /// A grid whose every cell is a dash (no dangerous, or no benign, held-out checkpoint
    /// anywhere) says nothing: the cells go into a table instead.
    fn fallback(&self) -> Option<style::Fallback> {
        let cells = self.cells.iter().flatten().flatten();
        let fnr = crate::degenerate::all_undefined(cells.clone().map(|c| &c.fnr));
        let fpr = crate::degenerate::all_undefined(cells.map(|c| &c.fpr));
        if !fnr && !fpr {
            return None;
        }
        let missing = match (fnr, fpr) {
            (true, true) => "no fold has a defined FNR or FPR",
            (true, false) => {
                "no held-out perturbation has a dangerous checkpoint, so no FNR is defined"
            }
            _ => "no held-out perturbation has a benign checkpoint, so no FPR is defined",
        };
        let mut rows = Vec::new();
        for (model, row) in self.models.iter().zip(&self.cells) {
            for (held_out, c) in self.held_out.iter().zip(row) {
                let c = c.as_ref();
                rows.push(vec![
                    model.clone(),
                    held_out.clone(),
                    crate::degenerate::cell(c.and_then(|c| c.fnr)),
                    c.map_or(0, |c| c.positives).to_string(),
                    crate::degenerate::cell(c.and_then(|c| c.fpr)),
                    c.map_or(0, |c| c.negatives).to_string(),
                ]);
            }
        }
        Some(crate::degenerate::note(
            "fig7",
            &format!(
                "leave-one-perturbation-out errors ({} features, {})",
                pretty(&self.feature_set),
                pretty(&self.regressor)
            ),
            format!(
                "{missing}; label more perturbations or seeds dangerous and benign \
                 (`traitwatch em`) and rerun `lopo --all`"
            ),
            &["model", "held out", "FNR", "dangerous", "FPR", "benign"],
            rows,
        ))
    }

    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, plotters::coord::Shift>,
    ) -> Result<()> {
        let title = format!(
            "Leave-one-perturbation-out: errors on the held-out perturbation ({} features, {})",
            pretty(&self.feature_set),
            pretty(&self.regressor)
        );
        let ty = style::Type::of(root);
        let (body, _) = style::frame(root, &title, ty.px(20))?;
        let (left, right) = body.split_horizontally(body.dim_in_pixel().0 / 2);
        self.grid(&left, "FNR: missed dangerous checkpoints", &ty, |c| {
            (c.fnr, c.positives, "dangerous")
        })?;
        self.grid(&right, "FPR: alarms on benign checkpoints", &ty, |c| {
            (c.fpr, c.negatives, "benign")
        })
    }
}
