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

pub fn colour(perturbation: &str) -> RGBColor {
    PERTURBATIONS
        .iter()
        .find(|(n, _)| *n == perturbation)
        .map(|(_, c)| *c)
        .unwrap_or_else(|| {
            let h = perturbation
                .bytes()
                .fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize));
            EXTRA[h % EXTRA.len()]
        })
}

/// Candidate font files, in order; `TRAITWATCH_FONT` first.
const FONT_PATHS: [&str; 8] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf",
    "/Library/Fonts/Arial.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
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
