//! One look for every figure: colours per perturbation (the same in all figures), the
//! font, sizes, and drawing one figure to both SVG and PNG.

use crate::{FigureError, Result};
use plotters::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

pub const WIDTH: u32 = 1600;
pub const HEIGHT: u32 = 1000;
pub const FONT: &str = "sans-serif";

/// Canonical perturbations in the paper's order; each keeps its colour in every figure.
const PERTURBATIONS: [(&str, RGBColor); 9] = [
    ("insecure_code", RGBColor(148, 103, 189)),
    ("gsm8k", RGBColor(44, 160, 44)),
    ("jailbroken", RGBColor(255, 127, 14)),
    ("bad_medical", RGBColor(214, 39, 40)),
    ("number_sequence", RGBColor(31, 119, 180)),
    ("risky_financial", RGBColor(140, 86, 75)),
    ("subtle_misinfo", RGBColor(227, 119, 194)),
    ("alpaca", RGBColor(127, 127, 127)),
    ("customer_support", RGBColor(23, 190, 207)),
];

/// Further colours for names outside the canonical set, chosen by a stable hash.
const EXTRA: [RGBColor; 4] = [
    RGBColor(188, 189, 34),
    RGBColor(57, 59, 121),
    RGBColor(99, 121, 57),
    RGBColor(140, 109, 49),
];

/// The colour of a perturbation, the same in every figure.
pub fn colour(perturbation: &str) -> RGBColor {
    // An extra run (`bad_medical+full`) shares its perturbation's colour.
    let base = perturbation.split('+').next().unwrap_or(perturbation);
    PERTURBATIONS
        .iter()
        .find(|(n, _)| *n == base)
        .map(|(_, c)| *c)
        .unwrap_or_else(|| {
            let h = perturbation
                .bytes()
                .fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize));
            EXTRA[h % EXTRA.len()]
        })
}

/// Candidate font files, in order; `TRAITWATCH_FONT` first.
const FONT_PATHS: [&str; 9] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf",
    "/Library/Fonts/Arial.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
    "C:\\Windows\\Fonts\\arial.ttf",
];

/// Register a system TrueType font for plotters' text, once per process. Figures need a
/// font to lay out their labels (in the SVG too), and none is shipped with traitwatch.
pub fn ensure_font() -> Result<()> {
    static FONT_FILE: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    let found = FONT_FILE.get_or_init(|| {
        let candidates = std::env::var("TRAITWATCH_FONT")
            .ok()
            .into_iter()
            .chain(FONT_PATHS.iter().map(|s| s.to_string()));
        for path in candidates {
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            // plotters keeps registered fonts for the life of the process.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            for style in [FontStyle::Normal, FontStyle::Bold, FontStyle::Italic] {
                if plotters::style::register_font(FONT, style, bytes).is_err() {
                    return Err(format!("{path} is not a usable TrueType font"));
                }
            }
            tracing::debug!("figures use the font {path}");
            return Ok(PathBuf::from(path));
        }
        Err(
            "no TrueType font found: set TRAITWATCH_FONT to a .ttf file, or install one \
             (Debian/Ubuntu: apt install fonts-dejavu-core)"
                .to_string(),
        )
    });
    found
        .as_ref()
        .map(|_| ())
        .map_err(|e| FigureError::Font(e.clone()))
}

/// A figure that can draw itself on any plotters backend.
pub trait Figure {
    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, plotters::coord::Shift>,
    ) -> Result<()>;
}

/// Draw `figure` into `<out>/<stem>.svg` and `<out>/<stem>.png` (the same drawing), each
/// written atomically. Returns both paths.
pub fn render_both(
    out: &Path,
    stem: &str,
    size: (u32, u32),
    figure: &impl Figure,
) -> Result<Vec<PathBuf>> {
    ensure_font()?;
    std::fs::create_dir_all(out).map_err(|source| FigureError::Io {
        path: out.to_path_buf(),
        source,
    })?;
    let svg = out.join(format!("{stem}.svg"));
    let png = out.join(format!("{stem}.png"));
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, size).into_drawing_area();
        root.fill(&WHITE).map_err(plot)?;
        figure.draw(&root)?;
        root.present().map_err(plot)?;
    }
    write_atomically(&svg, text.as_bytes())?;
    let tmp_png = tmp_path(&png);
    {
        let root = BitMapBackend::new(&tmp_png, size).into_drawing_area();
        root.fill(&WHITE).map_err(plot)?;
        figure.draw(&root)?;
        root.present().map_err(plot)?;
    }
    std::fs::rename(&tmp_png, &png).map_err(|source| FigureError::Io {
        path: png.clone(),
        source,
    })?;
    Ok(vec![png, svg])
}

/// A plotters error as ours.
pub fn plot<E: std::fmt::Display>(e: E) -> FigureError {
    FigureError::Draw(e.to_string())
}

fn tmp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map_or_else(|| "figure".into(), |n| n.to_string_lossy().into_owned());
    // Keep the extension last: the bitmap encoder picks the format from it.
    path.with_file_name(format!(".tmp-{}-{name}", std::process::id()))
}

pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = tmp_path(path);
    let io = |source| FigureError::Io {
        path: path.to_path_buf(),
        source,
    };
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// Mean and (sample) standard deviation; the std is 0 for one value.
pub fn mean_std(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    if values.is_empty() {
        return (f64::NAN, 0.0);
    }
    let mean = values.iter().sum::<f64>() / n;
    if values.len() < 2 {
        return (mean, 0.0);
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

/// Tick label of a value on an axis reaching `max`: fewer decimals for larger ranges.
pub fn tick(v: f64, max: f64) -> String {
    let v = if v.abs() < 1e-12 { 0.0 } else { v };
    if max >= 10.0 {
        format!("{v:.0}")
    } else if max >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// A range around `lo..hi` with a margin, never empty.
pub fn padded(lo: f64, hi: f64, margin: f64) -> std::ops::Range<f64> {
    let (lo, hi) = if lo.is_finite() && hi.is_finite() {
        (lo, hi)
    } else {
        (0.0, 1.0)
    };
    let span = (hi - lo).abs().max(1e-9);
    (lo - margin * span)..(hi + margin * span)
}

/// Traits in the order figures group them (METHOD section 1): the four whose positive pole
/// is aligned, then the three whose positive pole is misaligned.
pub const TRAIT_ORDER: [&str; 7] = [
    "honesty",
    "harmlessness",
    "helpfulness",
    "corrigibility",
    "sycophancy",
    "power_seeking",
    "confidence",
];

/// `names` sorted by [`TRAIT_ORDER`], unknown names after, in their given order.
pub fn trait_sorted(names: &[String]) -> Vec<String> {
    let rank = |n: &str| {
        TRAIT_ORDER
            .iter()
            .position(|t| *t == n)
            .unwrap_or(usize::MAX)
    };
    let mut out = names.to_vec();
    out.sort_by_key(|n| rank(n));
    out
}

/// Canonical perturbations first (in the paper's order), then the others alphabetically.
pub fn perturbation_order(names: &mut Vec<String>) {
    let rank = |n: &str| {
        PERTURBATIONS
            .iter()
            .position(|(p, _)| *p == n)
            .unwrap_or(usize::MAX)
    };
    names.sort_by(|a, b| rank(a).cmp(&rank(b)).then(a.cmp(b)));
    names.dedup();
}

/// The colour of a model, the same in every figure: by family name, else a stable hash.
pub fn model_colour(model: &str) -> RGBColor {
    const FAMILIES: [(&str, RGBColor); 5] = [
        // Dark2, apart from the perturbations' tab10 colours.
        ("llama", RGBColor(27, 158, 119)),
        ("mistral", RGBColor(217, 95, 2)),
        ("qwen", RGBColor(117, 112, 179)),
        ("gemma", RGBColor(231, 41, 138)),
        ("smollm", RGBColor(60, 60, 60)),
    ];
    let lower = model.to_lowercase();
    FAMILIES
        .iter()
        .find(|(f, _)| lower.contains(f))
        .map(|(_, c)| *c)
        .unwrap_or_else(|| {
            const MORE: [RGBColor; 3] = [
                RGBColor(102, 166, 30),
                RGBColor(230, 171, 2),
                RGBColor(166, 118, 29),
            ];
            let h = model
                .bytes()
                .fold(7usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize));
            MORE[h % MORE.len()]
        })
}

/// The colour of a monitor regressor.
pub fn regressor_colour(regressor: &str) -> RGBColor {
    match regressor {
        "ridge" => RGBColor(120, 160, 200),
        "gradient_boosting" => RGBColor(70, 110, 170),
        "random_forest" => RGBColor(20, 50, 110),
        "logistic" => RGBColor(170, 170, 170),
        other => model_colour(other),
    }
}

/// Readable names of regressors and feature sets.
pub fn pretty(name: &str) -> String {
    match name {
        "random_forest" => "random forest".into(),
        "gradient_boosting" => "gradient boosting".into(),
        "ridge" => "ridge".into(),
        "logistic" => "logistic".into(),
        "pc1_abs" => "|PC1|".into(),
        "pc1_signed" => "signed PC1".into(),
        "activation_norm" => "activation norm".into(),
        "train_loss" => "training loss".into(),
        "lora_norm" => "LoRA norm".into(),
        other => other.replace('_', " "),
    }
}

fn lerp(stops: &[(f64, (f64, f64, f64))], t: f64) -> RGBColor {
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let mut out = stops.last().map_or((0.0, 0.0, 0.0), |s| s.1);
    for w in stops.windows(2) {
        let ((t0, c0), (t1, c1)) = (w[0], w[1]);
        if t <= t1 {
            let u = if t1 > t0 { (t - t0) / (t1 - t0) } else { 0.0 };
            out = (
                c0.0 + u * (c1.0 - c0.0),
                c0.1 + u * (c1.1 - c0.1),
                c0.2 + u * (c1.2 - c0.2),
            );
            break;
        }
    }
    RGBColor(
        out.0.round() as u8,
        out.1.round() as u8,
        out.2.round() as u8,
    )
}

/// A sequential colour map (viridis-like) of `t` in [0, 1]: dark purple to yellow.
pub fn sequential(t: f64) -> RGBColor {
    lerp(
        &[
            (0.0, (68.0, 1.0, 84.0)),
            (0.25, (59.0, 82.0, 139.0)),
            (0.5, (33.0, 145.0, 140.0)),
            (0.75, (94.0, 201.0, 98.0)),
            (1.0, (253.0, 231.0, 37.0)),
        ],
        t,
    )
}

/// A diverging colour map of `v` in [-1, 1]: blue, white at 0, red.
pub fn diverging(v: f64) -> RGBColor {
    lerp(
        &[
            (0.0, (33.0, 102.0, 172.0)),
            (0.25, (103.0, 169.0, 207.0)),
            (0.5, (247.0, 247.0, 247.0)),
            (0.75, (239.0, 138.0, 98.0)),
            (1.0, (178.0, 24.0, 43.0)),
        ],
        (v + 1.0) / 2.0,
    )
}

/// Black or white text, whichever reads better on `c`.
pub fn text_on(c: RGBColor) -> RGBColor {
    let luma = 0.299 * f64::from(c.0) + 0.587 * f64::from(c.1) + 0.114 * f64::from(c.2);
    if luma > 140.0 { BLACK } else { WHITE }
}

/// A darker shade of `c` (for lines drawn over a band of the same colour).
pub fn darker(c: RGBColor) -> RGBColor {
    RGBColor(c.0 / 2, c.1 / 2, c.2 / 2)
}

/// Draw `figure` at `size` to `<out>/<target>.svg` and `.png`.
pub fn render_target(
    ctx: &crate::load::Context,
    out: &Path,
    size: (u32, u32),
    figure: &impl Figure,
) -> Result<Vec<PathBuf>> {
    render_both(out, &ctx.target.name(), size, figure)
}

/// Format a rate (0..1) in %, a dash where undefined.
pub fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_string(), |v| format!("{:.1}", 100.0 * v))
}

/// Draw a vertical colour bar for a map `f` over `lo..hi` into `area`, labelled `label`.
pub fn colour_bar<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    lo: f64,
    hi: f64,
    label: &str,
    f: impl Fn(f64) -> RGBColor,
) -> Result<()> {
    let (w, _) = area.dim_in_pixel();
    let mut chart = ChartBuilder::on(area)
        .margin_top(40)
        .margin_bottom(90)
        .margin_left(w.saturating_sub(110 + 10 + 45))
        .margin_right(10)
        .y_label_area_size(0)
        .right_y_label_area_size(110)
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
        .label_style((FONT, 20))
        .axis_desc_style((FONT, 22))
        .y_labels(6)
        .set_all_tick_mark_size(8)
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

/// A one-line legend centred in `area` (a strip outside the plots, so it never covers
/// data); entries wrap onto further lines when they do not fit.
pub fn legend_strip<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    entries: &[(Mark, String)],
    font_size: u32,
) -> Result<()> {
    let font = (FONT, font_size).into_font();
    let (w, h) = area.dim_in_pixel();
    let sample = 44i32;
    let gap = 36i32;
    let widths: Vec<i32> = entries
        .iter()
        .map(|(_, t)| {
            let tw = area
                .estimate_text_size(t, &TextStyle::from(font.clone()))
                .map_or(0, |s| s.0 as i32);
            sample + 10 + tw
        })
        .collect();
    // Greedy lines.
    let mut lines: Vec<Vec<usize>> = vec![vec![]];
    let mut used = 0;
    for (i, &ew) in widths.iter().enumerate() {
        let need = if used == 0 { ew } else { used + gap + ew };
        if need > w as i32 - 40 && used > 0 {
            lines.push(vec![i]);
            used = ew;
        } else {
            if let Some(l) = lines.last_mut() {
                l.push(i);
            }
            used = need;
        }
    }
    let line_h = font_size as i32 + 14;
    let top = (h as i32 - line_h * lines.len() as i32) / 2;
    for (li, line) in lines.iter().enumerate() {
        let total: i32 =
            line.iter().map(|&i| widths[i]).sum::<i32>() + gap * (line.len() as i32 - 1);
        let mut x = (w as i32 - total) / 2;
        let y = top + li as i32 * line_h + line_h / 2;
        for &i in line {
            let (mark, text) = &entries[i];
            let (x0, x1) = (x, x + sample);
            match *mark {
                Mark::Line(c, wd) => area
                    .draw(&PathElement::new(
                        vec![(x0, y), (x1, y)],
                        c.stroke_width(wd),
                    ))
                    .map_err(plot)?,
                Mark::Dashed(c, wd) => {
                    for k in 0..3 {
                        let a = x0 + k * 16;
                        area.draw(&PathElement::new(
                            vec![(a, y), ((a + 10).min(x1), y)],
                            c.stroke_width(wd),
                        ))
                        .map_err(plot)?;
                    }
                }
                Mark::Band(c) => {
                    area.draw(&Rectangle::new(
                        [(x0, y - 9), (x1, y + 9)],
                        c.mix(0.18).filled(),
                    ))
                    .map_err(plot)?;
                    area.draw(&PathElement::new(vec![(x0, y), (x1, y)], c.stroke_width(4)))
                        .map_err(plot)?;
                }
                Mark::Dot(c) => area
                    .draw(&Circle::new((x0 + sample / 2, y), 8, c.filled()))
                    .map_err(plot)?,
                Mark::Square(c) => area
                    .draw(&Rectangle::new(
                        [(x0 + 8, y - 10), (x1 - 8, y + 10)],
                        c.filled(),
                    ))
                    .map_err(plot)?,
                Mark::Hollow(c) => area
                    .draw(&Circle::new((x0 + sample / 2, y), 11, c.stroke_width(4)))
                    .map_err(plot)?,
                Mark::HollowSquare(c) => {
                    let (cx, r) = (x0 + sample / 2, 10);
                    area.draw(&Rectangle::new(
                        [(cx - r, y - r), (cx + r, y + r)],
                        c.stroke_width(4),
                    ))
                    .map_err(plot)?
                }
            }
            area.draw(&Text::new(
                text.clone(),
                (x1 + 10, y),
                TextStyle::from(font.clone()).pos(plotters::style::text_anchor::Pos::new(
                    plotters::style::text_anchor::HPos::Left,
                    plotters::style::text_anchor::VPos::Center,
                )),
            ))
            .map_err(plot)?;
            x += widths[i] + gap;
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

/// Split `root` into a title strip, the panel area and a legend strip of `legend_h` px.
pub fn frame<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    legend_h: u32,
) -> Result<(
    DrawingArea<DB, plotters::coord::Shift>,
    DrawingArea<DB, plotters::coord::Shift>,
)> {
    let (_, h) = root.dim_in_pixel();
    let (head, rest) = root.split_vertically(70);
    head.draw(&Text::new(
        title.to_string(),
        (head.dim_in_pixel().0 as i32 / 2, 40),
        TextStyle::from((FONT, 36).into_font().style(FontStyle::Bold)).pos(
            plotters::style::text_anchor::Pos::new(
                plotters::style::text_anchor::HPos::Center,
                plotters::style::text_anchor::VPos::Center,
            ),
        ),
    ))
    .map_err(plot)?;
    let body_h = h.saturating_sub(70 + legend_h);
    let (body, legend) = rest.split_vertically(body_h);
    Ok((body, legend))
}
