//! Shared layout pieces: the title and legend strips, the colour bar, panel grids. Sizes
//! come from [`super::Type`] so text keeps its printed size on every canvas.

use super::{FONT, HEIGHT, Type, WIDTH, plot, tick};
use crate::Result;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Draw a vertical colour bar for a map `f` over `lo..hi` into `area`, labelled `label`.
pub fn colour_bar<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    lo: f64,
    hi: f64,
    label: &str,
    ty: &Type,
    f: impl Fn(f64) -> RGBColor,
) -> Result<()> {
    let (w, _) = area.dim_in_pixel();
    let labels = ty.px(110);
    let mut chart = ChartBuilder::on(area)
        .margin_top(ty.px(40))
        .margin_bottom(ty.px(90))
        .margin_left(w.saturating_sub(labels + ty.px(10) + ty.px(45)))
        .margin_right(ty.px(10))
        .y_label_area_size(0)
        .right_y_label_area_size(labels)
        .build_cartesian_2d(0.0..1.0, lo..hi)
        .map_err(plot)?
        .set_secondary_coord(0.0..1.0, lo..hi);
    let steps = 100;
    chart
        .draw_series((0..steps).map(|i| {
            let a = lo + (hi - lo) * i as f64 / steps as f64;
            let b = lo + (hi - lo) * (i + 1) as f64 / steps as f64;
            let t = (i as f64 + 0.5) / steps as f64;
            Rectangle::new([(0.0, a), (1.0, b)], f(t).filled())
        }))
        .map_err(plot)?;
    chart
        .configure_secondary_axes()
        .y_desc(label)
        .label_style((FONT, ty.tick))
        .axis_desc_style((FONT, ty.axis))
        .y_labels(6)
        .set_all_tick_mark_size(ty.px(8))
        .y_label_formatter(&|v| tick(*v, (hi - lo).abs()))
        .draw()
        .map_err(plot)?;
    chart
        .draw_series(std::iter::once(Rectangle::new(
            [(0.0, lo), (1.0, hi)],
            BLACK.stroke_width(1),
        )))
        .map_err(plot)?;
    Ok(())
}

/// What a legend entry shows next to its text.
#[derive(Debug, Clone, Copy)]
pub enum Mark {
    Line(RGBColor, u32),
    Dashed(RGBColor, u32),
    /// A line over a light band (mean ± sd).
    Band(RGBColor),
    Dot(RGBColor),
    Square(RGBColor),
    Hollow(RGBColor),
    /// A hollow square: an extra run (`<perturbation>+<tag>`) where circles are the split's.
    HollowSquare(RGBColor),
}

type Area<DB> = DrawingArea<DB, plotters::coord::Shift>;

fn centred(size: u32, bold: bool) -> TextStyle<'static> {
    let font = (FONT, size).into_font();
    let font = if bold {
        font.style(FontStyle::Bold)
    } else {
        font
    };
    TextStyle::from(font).pos(Pos::new(HPos::Center, VPos::Center))
}

/// Entry widths and the greedy line breaks of a legend `width` px wide.
fn legend_lines<DB: DrawingBackend>(
    area: &Area<DB>,
    width: u32,
    entries: &[(Mark, String)],
    ty: &Type,
) -> (Vec<i32>, Vec<Vec<usize>>) {
    let style = TextStyle::from((FONT, ty.legend).into_font());
    let (sample, gap) = (ty.dx(44), ty.dx(36));
    let widths: Vec<i32> = entries
        .iter()
        .map(|(_, t)| {
            let tw = area.estimate_text_size(t, &style).map_or(0, |s| s.0 as i32);
            sample + ty.dx(10) + tw
        })
        .collect();
    let mut lines: Vec<Vec<usize>> = vec![vec![]];
    let mut used = 0;
    for (i, &ew) in widths.iter().enumerate() {
        let need = if used == 0 { ew } else { used + gap + ew };
        if need > width as i32 - ty.dx(40) && used > 0 {
            lines.push(vec![i]);
            used = ew;
        } else {
            if let Some(l) = lines.last_mut() {
                l.push(i);
            }
            used = need;
        }
    }
    (widths, lines)
}

fn line_height(ty: &Type) -> i32 {
    (f64::from(ty.legend) * 1.15) as i32 + ty.dx(8)
}

/// The height a legend of `entries` needs across `root` (as [`legend_strip`] wraps it).
pub fn legend_height<DB: DrawingBackend>(
    root: &Area<DB>,
    entries: &[(Mark, String)],
    ty: &Type,
) -> u32 {
    if entries.is_empty() {
        return 0;
    }
    let (_, lines) = legend_lines(root, root.dim_in_pixel().0, entries, ty);
    (line_height(ty) * lines.len() as i32 + ty.dx(20)).max(0) as u32
}

/// A legend centred in `area` (a strip outside the plots, so it never covers data);
/// entries wrap onto further lines when they do not fit.
pub fn legend_strip<DB: DrawingBackend>(
    area: &Area<DB>,
    entries: &[(Mark, String)],
    ty: &Type,
) -> Result<()> {
    let (w, h) = area.dim_in_pixel();
    let (widths, lines) = legend_lines(area, w, entries, ty);
    let (sample, gap) = (ty.dx(44), ty.dx(36));
    let line_h = line_height(ty);
    let top = (h as i32 - line_h * lines.len() as i32) / 2;
    let text =
        TextStyle::from((FONT, ty.legend).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
    for (li, line) in lines.iter().enumerate() {
        let total: i32 =
            line.iter().map(|&i| widths[i]).sum::<i32>() + gap * (line.len() as i32 - 1);
        let mut x = (w as i32 - total) / 2;
        let y = top + li as i32 * line_h + line_h / 2;
        for &i in line {
            let (mark, label) = &entries[i];
            draw_mark(area, *mark, (x, x + sample), y, ty)?;
            area.draw(&Text::new(
                label.clone(),
                (x + sample + ty.dx(10), y),
                text.clone(),
            ))
            .map_err(plot)?;
            x += widths[i] + gap;
        }
    }
    Ok(())
}

fn draw_mark<DB: DrawingBackend>(
    area: &Area<DB>,
    mark: Mark,
    (x0, x1): (i32, i32),
    y: i32,
    ty: &Type,
) -> Result<()> {
    let d = |v: i32| ty.dx(v);
    let cx = (x0 + x1) / 2;
    match mark {
        Mark::Line(c, wd) => area
            .draw(&PathElement::new(
                vec![(x0, y), (x1, y)],
                c.stroke_width(ty.px(wd)),
            ))
            .map_err(plot)?,
        Mark::Dashed(c, wd) => {
            for k in 0..3 {
                let a = x0 + k * d(16);
                area.draw(&PathElement::new(
                    vec![(a, y), ((a + d(10)).min(x1), y)],
                    c.stroke_width(ty.px(wd)),
                ))
                .map_err(plot)?;
            }
        }
        Mark::Band(c) => {
            area.draw(&Rectangle::new(
                [(x0, y - d(9)), (x1, y + d(9))],
                c.mix(0.18).filled(),
            ))
            .map_err(plot)?;
            area.draw(&PathElement::new(
                vec![(x0, y), (x1, y)],
                c.stroke_width(ty.px(4)),
            ))
            .map_err(plot)?;
        }
        Mark::Dot(c) => area
            .draw(&Circle::new((cx, y), ty.px(8), c.filled()))
            .map_err(plot)?,
        Mark::Square(c) => area
            .draw(&Rectangle::new(
                [(x0 + d(8), y - d(10)), (x1 - d(8), y + d(10))],
                c.filled(),
            ))
            .map_err(plot)?,
        Mark::Hollow(c) => area
            .draw(&Circle::new((cx, y), ty.px(11), c.stroke_width(ty.px(4))))
            .map_err(plot)?,
        Mark::HollowSquare(c) => {
            let r = d(10);
            area.draw(&Rectangle::new(
                [(cx - r, y - r), (cx + r, y + r)],
                c.stroke_width(ty.px(4)),
            ))
            .map_err(plot)?
        }
    }
    Ok(())
}

/// Rows and columns for `n` panels (at most 3 columns).
pub fn grid(n: usize) -> (usize, usize) {
    match n {
        0 | 1 => (1, 1),
        2 => (1, 2),
        3 => (1, 3),
        4 => (2, 2),
        n => (n.div_ceil(3), 3),
    }
}

/// The canvas for `n` panels of a figure with a title and a legend strip: 1600 x 1000 for
/// one panel, taller (and wider for three columns) for more.
pub fn canvas(n: usize) -> (u32, u32) {
    let (rows, cols) = grid(n);
    let width = match cols {
        1 => WIDTH,
        2 => 2000,
        _ => 2400,
    };
    let height = if rows == 1 {
        HEIGHT
    } else {
        200 + 760 * rows as u32
    };
    (width, height)
}

/// `text` broken at spaces into lines no wider than `width` px.
fn wrap<DB: DrawingBackend>(
    area: &Area<DB>,
    text: &str,
    style: &TextStyle,
    width: u32,
) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for word in text.split(' ') {
        let fits = |s: &str| {
            area.estimate_text_size(s, style)
                .is_ok_and(|(w, _)| w <= width)
        };
        match lines.last_mut() {
            Some(line) if fits(&format!("{line} {word}")) => {
                line.push(' ');
                line.push_str(word);
            }
            _ => lines.push(word.to_string()),
        }
    }
    lines
}

/// Split `root` into a title strip (the title wrapped to the width), the panel area and
/// a legend strip of `legend_h` px (at this canvas's scale, see [`legend_height`]).
pub fn frame<DB: DrawingBackend>(
    root: &Area<DB>,
    title: &str,
    legend_h: u32,
) -> Result<(Area<DB>, Area<DB>)> {
    let ty = Type::of(root);
    let (w, h) = root.dim_in_pixel();
    let style = centred(ty.title, true);
    let lines = wrap(root, title, &style, w.saturating_sub(ty.px(40)));
    let line_h = (f64::from(ty.title) * 1.1) as u32;
    let head_h = line_h * lines.len() as u32 + ty.px(24);
    let (head, rest) = root.split_vertically(head_h);
    for (i, line) in lines.iter().enumerate() {
        let y = ty.px(14) + line_h * i as u32 + line_h / 2;
        head.draw(&Text::new(
            line.clone(),
            (w as i32 / 2, y as i32),
            style.clone(),
        ))
        .map_err(plot)?;
    }
    let body_h = h.saturating_sub(head_h + legend_h);
    Ok(rest.split_vertically(body_h))
}

/// [`frame`] with a legend of `entries` drawn in a strip as tall as it needs.
pub fn frame_with_legend<DB: DrawingBackend>(
    root: &Area<DB>,
    title: &str,
    entries: &[(Mark, String)],
) -> Result<Area<DB>> {
    let ty = Type::of(root);
    let (body, legend) = frame(root, title, legend_height(root, entries, &ty))?;
    legend_strip(&legend, entries, &ty)?;
    Ok(body)
}
