//! Fig. 6: pairwise cosines of the seven trait directions at the selected layer l*, one
//! heatmap per model, each value written in its cell. Traits are grouped as in METHOD
//! section 1 (positive pole aligned, then positive pole misaligned) with a divider line.
//!
//! Reads `trait_cosines` tables (`traitwatch traits`, `cosines.parquet`; the model is in
//! the table's metadata).

use crate::load::{Context, Cosines};
use crate::style::{FONT, Figure, TRAIT_ORDER, diverging, plot, text_on, trait_sorted};
use crate::{Result, load, style};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::{Path, PathBuf};

/// One model: (model, layer, trait names in grouped order, cosines `[a][b]`).
type Panel = (String, u32, Vec<String>, Vec<Vec<Option<f64>>>);

#[derive(Debug)]
pub struct Fig6 {
    panels: Vec<Panel>,
}

pub fn render(ctx: &Context, out: &Path) -> Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let files = ctx.require("trait_cosines")?;
    let mut tables = Vec::new();
    for f in &files {
        tables.push(load::cosines(f)?);
    }
    let fig =
        Fig6::new(&tables).ok_or_else(|| ctx.no_data("the `trait_cosines` tables are empty"))?;
    // One heatmap per row: side by side, seven columns of trait names cannot be
    // labelled at a legible size.
    let size = (2000, (120 + 1000 * fig.panels.len()) as u32);
    let written = style::render_target(ctx, out, size, &fig)?;
    Ok((written, files))
}

impl Fig6 {
    pub fn new(tables: &[Cosines]) -> Option<Self> {
        let mut panels = Vec::new();
        let mut sorted: Vec<&Cosines> = tables.iter().filter(|t| !t.values.is_empty()).collect();
        sorted.sort_by(|a, b| a.model.cmp(&b.model));
        for t in sorted {
            let mut names: Vec<String> = t.values.keys().map(|k| k.0.clone()).collect();
            names.extend(t.values.keys().map(|k| k.1.clone()));
            names.sort();
            names.dedup();
            let names = trait_sorted(&names);
            let get = |a: &str, b: &str| {
                t.values
                    .get(&(a.to_string(), b.to_string()))
                    .or_else(|| t.values.get(&(b.to_string(), a.to_string())))
                    .copied()
            };
            let m = names
                .iter()
                .map(|a| names.iter().map(|b| get(a, b)).collect())
                .collect();
            panels.push((t.model.clone(), t.layer, names, m));
        }
        (!panels.is_empty()).then_some(Self { panels })
    }
}

impl Figure for Fig6 {
    /// No finite cosine: a grid of dashes.
    fn fallback(&self) -> Option<style::Fallback> {
        let cells = self.panels.iter().flat_map(|p| p.3.iter().flatten());
        if !crate::degenerate::all_undefined(cells) {
            return None;
        }
        let mut rows = Vec::new();
        for (model, layer, names, m) in &self.panels {
            for (i, row) in m.iter().enumerate() {
                for (j, v) in row.iter().enumerate() {
                    let name = |k: usize| names.get(k).cloned().unwrap_or_default();
                    rows.push(vec![
                        model.clone(),
                        layer.to_string(),
                        name(i),
                        name(j),
                        crate::degenerate::cell(*v),
                    ]);
                }
            }
        }
        Some(crate::degenerate::note(
            "fig6",
            "cosines of the trait directions",
            "no cosine between trait directions is finite; rerun `traitwatch traits`",
            &["model", "layer", "trait", "trait", "cosine"],
            rows,
        ))
    }

    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, plotters::coord::Shift>,
    ) -> Result<()> {
        let title = "Cosine similarity of the trait directions at the selected layer l*";
        let ty = style::Type::of(root);
        let (body, _) = style::frame(root, title, ty.px(10))?;
        let (w, _) = body.dim_in_pixel();
        let (plots, bar) = body.split_horizontally(w.saturating_sub(ty.px(200)));
        let n = self.panels.len();
        let areas = plots.split_evenly((n, 1));
        for (panel, area) in self.panels.iter().zip(&areas) {
            draw_panel(panel, area, &ty)?;
        }
        style::colour_bar(&bar, -1.0, 1.0, "cosine", &ty, |t| diverging(2.0 * t - 1.0))
    }
}

fn draw_panel<DB: DrawingBackend>(
    (model, layer, names, m): &Panel,
    area: &DrawingArea<DB, plotters::coord::Shift>,
    ty: &style::Type,
) -> Result<()> {
    let k = names.len();
    let label = |i: usize| names.get(i).map_or(String::new(), |n| n.replace('_', " "));
    let mut chart = ChartBuilder::on(area)
        .caption(format!("{model} (layer {layer})"), (FONT, ty.caption))
        .margin(ty.px(20))
        .x_label_area_size(ty.px(60))
        .y_label_area_size(ty.px(170))
        .build_cartesian_2d(
            (0..k.saturating_sub(1)).into_segmented(),
            (0..k.saturating_sub(1)).into_segmented(),
        )
        .map_err(plot)?;
    // Row 0 at the top.
    let ex = SegmentValue::Exact;
    let cell = |i: usize, j: usize| [(ex(j), ex(k - 1 - i)), (ex(j + 1), ex(k - i))];
    let centre = |s: &SegmentValue<usize>| match s {
        SegmentValue::CenterOf(v) | SegmentValue::Exact(v) => Some(*v),
        SegmentValue::Last => None,
    };
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(k)
        .y_labels(k)
        .label_style((FONT, ty.tick))
        .x_label_formatter(&|s| centre(s).map_or(String::new(), label))
        .y_label_formatter(&|s| {
            centre(s)
                .and_then(|y| (k - 1).checked_sub(y))
                .map_or(String::new(), label)
        })
        .draw()
        .map_err(plot)?;
    for (i, row) in m.iter().enumerate() {
        for (j, v) in row.iter().enumerate() {
            let fill = v.map_or(RGBColor(230, 230, 230), diverging);
            chart
                .draw_series(std::iter::once(Rectangle::new(cell(i, j), fill.filled())))
                .map_err(plot)?;
            let text = v.map_or_else(|| "–".to_string(), |v| format!("{v:+.2}"));
            let style = (FONT, ty.cell)
                .into_font()
                .color(&text_on(fill))
                .pos(Pos::new(HPos::Center, VPos::Center));
            let at = (SegmentValue::CenterOf(j), SegmentValue::CenterOf(k - 1 - i));
            chart
                .draw_series(std::iter::once(Text::new(text, at, style)))
                .map_err(plot)?;
        }
    }
    // The divider between the aligned-positive traits and the misaligned-positive ones.
    let split = names
        .iter()
        .position(|n| TRAIT_ORDER[4..].contains(&n.as_str()))
        .filter(|&s| s > 0 && s < k);
    if let Some(s) = split {
        let y = k - s;
        chart
            .draw_series([
                PathElement::new(
                    vec![(ex(s), ex(0)), (ex(s), ex(k))],
                    BLACK.stroke_width(ty.px(4)),
                ),
                PathElement::new(
                    vec![(ex(0), ex(y)), (ex(k), ex(y))],
                    BLACK.stroke_width(ty.px(4)),
                ),
            ])
            .map_err(plot)?;
    }
    Ok(())
}
