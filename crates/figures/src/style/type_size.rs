//! Text sizes in printed points, the one place they are set. A figure's pixel canvas is
//! printed at a known width: one column (3.4 in) for a canvas up to [`ONE_COLUMN_MAX_PX`]
//! wide, the full text width (7 in) for a wider one. A size in points becomes pixels
//! through that scale, so a tick label stays legible where the figure is placed as meant.
//! The figures' canvases (1600 px and up, several panels, long category names) are full
//! width: at one column their text would have to take 2.6 times the share of the canvas.
//!
//! plotters' font "size" is a line height: the em (what a point size measures) is smaller
//! by [`crate::pdf::SIZE_PER_EM`], as its SVG backend writes it.

use crate::pdf::SIZE_PER_EM;
use plotters::prelude::{DrawingArea, DrawingBackend};

/// Width of one column of a two-column paper, in inches.
pub const ONE_COLUMN_IN: f64 = 3.4;
/// Width of the text block (both columns), in inches.
pub const FULL_WIDTH_IN: f64 = 7.0;

/// The widest canvas meant for one column.
pub const ONE_COLUMN_MAX_PX: u32 = 1000;

/// Tick labels and category names.
pub const TICK_PT: f64 = 7.0;
/// Axis titles and legend entries.
pub const AXIS_PT: f64 = 8.0;
/// A panel's caption.
pub const CAPTION_PT: f64 = 8.5;
/// The figure's title.
pub const TITLE_PT: f64 = 9.0;
/// Numbers written inside heatmap cells and bars (second line of a cell too).
pub const CELL_PT: f64 = 7.0;

/// The old design's tick size in px, which the figures' layout constants (margins,
/// label areas, marker radii) were drawn around; [`Type::px`] scales them with the text.
const LAYOUT_TICK_PX: f64 = 22.0;

/// The print width, in inches, of a canvas `width_px` wide.
pub fn print_width_in(width_px: u32) -> f64 {
    if width_px <= ONE_COLUMN_MAX_PX {
        ONE_COLUMN_IN
    } else {
        FULL_WIDTH_IN
    }
}

/// Pixels per printed point for a canvas `width_px` wide.
pub fn px_per_pt(width_px: u32) -> f64 {
    f64::from(width_px.max(1)) / (print_width_in(width_px) * 72.0)
}

/// The printed size, in points, of a plotters font size on a canvas `width_px` wide.
pub fn printed_pt(size: u32, width_px: u32) -> f64 {
    f64::from(size) / SIZE_PER_EM / px_per_pt(width_px)
}

/// Font sizes (plotters units) for one canvas, and the scale of its layout.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Type {
    pub tick: u32,
    pub axis: u32,
    pub legend: u32,
    pub caption: u32,
    pub title: u32,
    pub cell: u32,
    /// Layout px per old-design px.
    scale: f64,
}

impl Type {
    /// Sizes for a canvas `width_px` wide.
    pub fn for_width(width_px: u32) -> Self {
        let per_pt = px_per_pt(width_px) * SIZE_PER_EM;
        // Round up: a size is a minimum, never a little under it.
        let size = |pt: f64| (pt * per_pt).ceil() as u32;
        Self {
            tick: size(TICK_PT),
            axis: size(AXIS_PT),
            legend: size(AXIS_PT),
            caption: size(CAPTION_PT),
            title: size(TITLE_PT),
            cell: size(CELL_PT),
            scale: TICK_PT * per_pt / LAYOUT_TICK_PX,
        }
    }

    /// Sizes for the canvas `root` (the whole drawing, not a panel of it).
    pub fn of<DB: DrawingBackend>(root: &DrawingArea<DB, plotters::coord::Shift>) -> Self {
        Self::for_width(root.dim_in_pixel().0)
    }

    /// A layout length of the old design (drawn around 22 px ticks) at this canvas's scale.
    pub fn px(&self, old: u32) -> u32 {
        (f64::from(old) * self.scale).round() as u32
    }

    /// [`Self::px`] for signed offsets.
    pub fn dx(&self, old: i32) -> i32 {
        (f64::from(old) * self.scale).round() as i32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_legible_at_its_print_width() {
        // One column (up to 1000 px) and full width (the figures' 1600 px and wider).
        for width in [600, 800, 1000, 1001, 1600, 2000, 2160, 2400, 3200] {
            let t = Type::for_width(width);
            let pt = |size| printed_pt(size, width);
            assert!(
                pt(t.tick) >= 7.0,
                "{width} px: ticks at {:.2} pt",
                pt(t.tick)
            );
            assert!(
                pt(t.cell) >= 7.0,
                "{width} px: cells at {:.2} pt",
                pt(t.cell)
            );
            assert!(
                pt(t.axis) >= 8.0,
                "{width} px: axes at {:.2} pt",
                pt(t.axis)
            );
            assert!(
                pt(t.legend) >= 8.0,
                "{width} px: legend at {:.2} pt",
                pt(t.legend)
            );
            assert!(pt(t.caption) >= 8.0 && pt(t.title) >= 8.0);
        }
        // One column at 1000 px is 4.1 px per point: a 7 pt tick is a size of ~36.
        assert!((px_per_pt(1000) - 1000.0 / (3.4 * 72.0)).abs() < 1e-9);
        assert!(Type::for_width(1000).tick >= 35);
        // The old 22 px ticks on a 1600 px figure printed at full width were 6 pt.
        assert!(printed_pt(22, 1600) < 6.0);
    }
}
