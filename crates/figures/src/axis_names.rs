//! Names of unit-wide columns and unit-high rows drawn by hand, for grids and grouped bars
//! on plain f64 axes (plotters' segmented axes collapse when there is a single band).

use crate::Result;
use crate::style::{FONT, plot};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

type Chart<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// Name column `j` (centred at x = j + 0.5) just under y = `bottom`. Names wider than
/// their column are written downwards (turned 90 degrees), as heatmaps label columns,
/// rather than run into each other: the caller leaves room under the axis for that.
pub fn columns<DB: DrawingBackend>(
    chart: &mut Chart<'_, DB>,
    names: impl IntoIterator<Item = String>,
    bottom: f64,
    size: u32,
) -> Result<()> {
    let names: Vec<String> = names.into_iter().collect();
    let flat = (FONT, size).into_font().color(&BLACK);
    let column_px = chart.backend_coord(&(1.0, bottom)).0 - chart.backend_coord(&(0.0, bottom)).0;
    let area = chart.plotting_area();
    let widest = names
        .iter()
        .filter_map(|n| area.estimate_text_size(n, &flat).ok())
        .map(|s| s.0 as i32)
        .max()
        .unwrap_or(0);
    let gap = size as i32 / 4;
    let (style, offset) = if widest > column_px {
        let turned = flat
            .transform(FontTransform::Rotate90)
            .pos(Pos::new(HPos::Left, VPos::Center));
        (turned, (0, gap))
    } else {
        (flat.pos(Pos::new(HPos::Center, VPos::Top)), (0, gap))
    };
    chart
        .draw_series(names.into_iter().enumerate().map(|(j, name)| {
            EmptyElement::at((j as f64 + 0.5, bottom)) + Text::new(name, offset, style.clone())
        }))
        .map_err(plot)?;
    Ok(())
}

/// Name rows left of x = 0, the first name on the top row of `n`.
pub fn rows<DB: DrawingBackend>(
    chart: &mut Chart<'_, DB>,
    names: impl IntoIterator<Item = String>,
    n: usize,
    size: u32,
) -> Result<()> {
    let style = (FONT, size)
        .into_font()
        .color(&BLACK)
        .pos(Pos::new(HPos::Right, VPos::Center));
    chart
        .draw_series(names.into_iter().enumerate().map(|(i, name)| {
            let y = n.saturating_sub(1 + i) as f64 + 0.5;
            EmptyElement::at((0.0, y)) + Text::new(name, (-(size as i32) / 3, 0), style.clone())
        }))
        .map_err(plot)?;
    Ok(())
}
