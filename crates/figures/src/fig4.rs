//! Fig. 4: what the cluster PC1 is made of: PC1's signed loading on each trait (bars,
//! positive right; traits grouped as in METHOD section 1) and the scree of the first three
//! components (% of the variance of the calibration runs' final drift). The cluster PC1 is
//! pooled across models, so one row per `pca` table (one per feature set, usually one).
//!
//! Reads `pca` tables (`traitwatch pca`).

use crate::load::{Context, PcaTable};
use crate::style::{FONT, Figure, TRAIT_ORDER, plot, trait_sorted};
use crate::{Result, load, style};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::{Path, PathBuf};

const POSITIVE: RGBColor = RGBColor(214, 39, 40);
const NEGATIVE: RGBColor = RGBColor(31, 119, 180);

/// One PCA: its name, PC1's loading per trait (grouped order), % explained by PC1..PC3.
type Panel = (String, Vec<(String, f64)>, Vec<f64>);

#[derive(Debug)]
pub struct Fig4 {
    panels: Vec<Panel>,
}

/// Read the tables, draw, and return (files written, tables read).
pub fn render(ctx: &Context, out: &Path) -> Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let files = ctx.require("pca")?;
    let mut tables = Vec::new();
    for f in &files {
        tables.push(load::pca_table(f)?);
    }
    let fig =
        Fig4::new(&tables).ok_or_else(|| ctx.no_data("the `pca` tables hold no PC1 loadings"))?;
    let rows = fig.panels.len() as u32;
    let size = (
        style::WIDTH,
        120 + 620 * rows.max(1) + if rows == 1 { 260 } else { 0 },
    );
    let written = style::render_target(ctx, out, size, &fig)?;
    Ok((written, files))
}

/// The name of one PCA: the feature set and how many calibration runs it pooled.
fn name_of(t: &PcaTable) -> String {
    let set = t.metadata.get("feature_set").map_or("", String::as_str);
    let runs = t.metadata.get("calibration_runs");
    match (set.is_empty(), runs) {
        (false, Some(r)) => format!("{set} traits, {r} calibration runs"),
        (false, None) => format!("{set} traits"),
        (true, Some(r)) => format!("{r} calibration runs"),
        (true, None) => t.path.display().to_string(),
    }
}

impl Fig4 {
    /// None when no table holds component 1.
    pub fn new(tables: &[PcaTable]) -> Option<Self> {
        let mut panels = Vec::new();
        for t in tables {
            let pc1: Vec<(String, f64)> = t
                .rows
                .iter()
                .filter(|r| r.0 == 1)
                .map(|r| (r.1.clone(), r.2))
                .collect();
            let names: Vec<String> = pc1.iter().map(|l| l.0.clone()).collect();
            let loadings: Vec<(String, f64)> = trait_sorted(&names)
                .into_iter()
                .filter_map(|n| pc1.iter().find(|l| l.0 == n).cloned())
                .collect();
            let mut scree: Vec<(u32, f64)> = t.rows.iter().map(|r| (r.0, 100.0 * r.3)).collect();
            scree.sort_by_key(|s| s.0);
            scree.dedup_by_key(|s| s.0);
            let scree: Vec<f64> = scree.into_iter().take(3).map(|s| s.1).collect();
            if !loadings.is_empty() {
                panels.push((name_of(t), loadings, scree));
            }
        }
        (!panels.is_empty()).then_some(Self { panels })
    }
}

impl Figure for Fig4 {
    /// No finite loading: an empty bar chart.
    fn fallback(&self) -> Option<style::Fallback> {
        let values = self
            .panels
            .iter()
            .flat_map(|(_, l, _)| l.iter().map(|x| x.1));
        if values.clone().any(f64::is_finite) {
            return None;
        }
        let rows = self
            .panels
            .iter()
            .flat_map(|(m, l, _)| {
                l.iter().map(move |(t, v)| {
                    vec![m.clone(), t.clone(), crate::degenerate::cell(Some(*v))]
                })
            })
            .collect();
        Some(crate::degenerate::note(
            "fig4",
            "PC1 loadings per trait",
            "no PC1 loading is finite (the drift vectors are all zero or undefined); rerun `traitwatch pca`",
            &["model", "trait", "loading"],
            rows,
        ))
    }

    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, plotters::coord::Shift>,
    ) -> Result<()> {
        let title = "What the cluster PC1 is made of: trait loadings and explained variance";
        let ty = style::Type::of(root);
        let (area, _) = style::frame(root, title, ty.px(20))?;
        let rows = area.split_evenly((self.panels.len(), 1));
        for ((model, loadings, scree), row) in self.panels.iter().zip(&rows) {
            let (left, right) = row.split_horizontally((62).percent_width());
            draw_loadings(model, loadings, &left, &ty)?;
            draw_scree(model, scree, &right, &ty)?;
        }
        Ok(())
    }
}

fn draw_loadings<DB: DrawingBackend>(
    model: &str,
    loadings: &[(String, f64)],
    area: &DrawingArea<DB, plotters::coord::Shift>,
    ty: &style::Type,
) -> Result<()> {
    let n = loadings.len();
    let lim = loadings.iter().map(|l| l.1.abs()).fold(0.1f64, f64::max) * 1.25;
    let names: Vec<String> = loadings.iter().map(|l| l.0.clone()).collect();
    let mut chart = ChartBuilder::on(area)
        .caption(format!("PC1 loadings ({model})"), (FONT, ty.caption))
        .margin(ty.px(20))
        .x_label_area_size(ty.px(60))
        .y_label_area_size(ty.px(190))
        .build_cartesian_2d(-lim..lim, (0..n.saturating_sub(1)).into_segmented())
        .map_err(plot)?;
    chart
        .configure_mesh()
        .x_desc("loading on PC1 (sign fixed so harmlessness is positive)")
        .label_style((FONT, ty.tick))
        .axis_desc_style((FONT, ty.axis))
        .y_label_formatter(&|v| match v {
            // Table order from the top.
            SegmentValue::CenterOf(i) => (n - 1)
                .checked_sub(*i)
                .and_then(|j| names.get(j).cloned())
                .unwrap_or_default(),
            _ => String::new(),
        })
        .disable_y_mesh()
        .light_line_style(WHITE)
        .bold_line_style(RGBColor(225, 225, 225))
        .x_label_formatter(&|v| format!("{:.1}", if v.abs() < 1e-9 { 0.0 } else { *v }))
        .draw()
        .map_err(plot)?;
    chart
        .draw_series(loadings.iter().enumerate().map(|(k, (_, v))| {
            let i = n - 1 - k;
            let c = if *v >= 0.0 { POSITIVE } else { NEGATIVE };
            let mut bar = Rectangle::new(
                [
                    (0.0, SegmentValue::Exact(i)),
                    (*v, SegmentValue::Exact(i + 1)),
                ],
                c.mix(0.85).filled(),
            );
            bar.set_margin(8, 8, 0, 0);
            bar
        }))
        .map_err(plot)?;
    chart
        .draw_series(std::iter::once(PathElement::new(
            vec![(0.0, SegmentValue::Exact(0)), (0.0, SegmentValue::Exact(n))],
            BLACK.stroke_width(ty.px(2)),
        )))
        .map_err(plot)?;
    // Values at the bar ends.
    chart
        .draw_series(loadings.iter().enumerate().map(|(k, (_, v))| {
            let (h, dx) = if *v >= 0.0 {
                (HPos::Left, 8)
            } else {
                (HPos::Right, -8)
            };
            EmptyElement::at((*v, SegmentValue::CenterOf(n - 1 - k)))
                + Text::new(
                    format!("{v:+.2}"),
                    (dx, 0),
                    TextStyle::from((FONT, ty.cell).into_font()).pos(Pos::new(h, VPos::Center)),
                )
        }))
        .map_err(plot)?;
    // The divider between traits whose positive pole is aligned and the others.
    let split = loadings
        .iter()
        .position(|(t, _)| TRAIT_ORDER[4..].contains(&t.as_str()))
        .filter(|&s| s > 0);
    if let Some(s) = split {
        let y = SegmentValue::Exact(n - s);
        chart
            .draw_series(DashedLineSeries::new(
                vec![(-lim, y.clone()), (lim, y)],
                ty.px(8),
                ty.px(6),
                RGBColor(120, 120, 120).stroke_width(ty.px(2)),
            ))
            .map_err(plot)?;
    }
    Ok(())
}

fn draw_scree<DB: DrawingBackend>(
    _model: &str,
    scree: &[f64],
    area: &DrawingArea<DB, plotters::coord::Shift>,
    ty: &style::Type,
) -> Result<()> {
    let k = scree.len();
    let mut chart = ChartBuilder::on(area)
        .caption("Scree", (FONT, ty.caption))
        .margin(ty.px(20))
        .x_label_area_size(ty.px(60))
        .y_label_area_size(ty.px(80))
        .build_cartesian_2d((1..k as u32).into_segmented(), 0.0..105.0)
        .map_err(plot)?;
    chart
        .configure_mesh()
        .x_desc("component")
        .y_desc("variance explained (%)")
        .label_style((FONT, ty.tick))
        .axis_desc_style((FONT, ty.axis))
        .x_label_formatter(&|v| match v {
            SegmentValue::CenterOf(c) => format!("PC{c}"),
            _ => String::new(),
        })
        .disable_x_mesh()
        .light_line_style(WHITE)
        .bold_line_style(RGBColor(225, 225, 225))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .draw()
        .map_err(plot)?;
    chart
        .draw_series(scree.iter().enumerate().map(|(i, &v)| {
            let c = i as u32 + 1;
            let mut bar = Rectangle::new(
                [
                    (SegmentValue::Exact(c), 0.0),
                    (SegmentValue::Exact(c + 1), v),
                ],
                RGBColor(90, 90, 90).mix(0.8).filled(),
            );
            bar.set_margin(0, 0, 20, 20);
            bar
        }))
        .map_err(plot)?;
    chart
        .draw_series(scree.iter().enumerate().map(|(i, &v)| {
            Text::new(
                format!("{v:.1}%"),
                (SegmentValue::CenterOf(i as u32 + 1), v + 4.0),
                (FONT, ty.cell).into_font(),
            )
        }))
        .map_err(plot)?;
    Ok(())
}
