//! One look for every figure: colours per perturbation (the same in all figures), the
//! font, and the helpers figures share; text sizes (`type_size`), shared layout (`layout`)
//! and writing a figure to PNG, SVG and PDF (`output`) are its submodules.

mod layout;
mod output;
pub mod type_size;

pub use layout::{
    Mark, canvas, colour_bar, frame, frame_with_legend, grid, legend_height, legend_strip,
};
pub use output::{Fallback, Figure, render_both, render_target, write_atomically};
pub use type_size::Type;

use crate::{FigureError, Result};
use plotters::prelude::*;
use std::path::PathBuf;
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

/// A plotters error as ours.
pub fn plot<E: std::fmt::Display>(e: E) -> FigureError {
    FigureError::Draw(e.to_string())
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

/// Format a rate (0..1) in %, a dash where undefined.
pub fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_string(), |v| format!("{:.1}", 100.0 * v))
}
