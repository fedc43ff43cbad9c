//! Writing one figure: the same drawing to PNG, SVG and PDF, or, when the figure has
//! nothing to show, a Markdown note with its numbers in place of a degenerate plot.

use super::{ensure_font, plot, type_size};
use crate::pdf::PdfBackend;
use crate::{FigureError, Result};
use plotters::prelude::*;
use std::path::{Path, PathBuf};

/// The plot files a figure may have; all are replaced (or removed) together, so a stale
/// plot never sits beside a newer note, nor a note beside a newer plot.
const PLOT_EXTENSIONS: [&str; 3] = ["png", "svg", "pdf"];

/// What a figure writes instead of a plot that would show nothing (one class, every
/// value undefined, a single point): why, and its numbers as a table.
#[derive(Debug, Clone, PartialEq)]
pub struct Fallback {
    pub title: String,
    /// Why no plot is drawn, and what would give one.
    pub reason: String,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Fallback {
    /// The note as Markdown: a heading, the reason, the table (if any rows).
    pub fn markdown(&self) -> String {
        let mut md = format!("# {}\n\nNo plot: {}\n", self.title, self.reason);
        if !self.header.is_empty() && !self.rows.is_empty() {
            let cell = |s: &str| s.replace('|', "\\|");
            let line = |cells: &[String]| {
                let cells: Vec<String> = cells.iter().map(|c| cell(c)).collect();
                format!("| {} |\n", cells.join(" | "))
            };
            md.push('\n');
            md.push_str(&line(&self.header));
            md.push_str(&line(&vec!["---".to_string(); self.header.len()]));
            for r in &self.rows {
                md.push_str(&line(r));
            }
        }
        md
    }
}

/// A figure that can draw itself on any plotters backend.
pub trait Figure {
    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, plotters::coord::Shift>,
    ) -> Result<()>;

    /// `Some` when the data would make a degenerate plot: then a note is written instead.
    fn fallback(&self) -> Option<Fallback> {
        None
    }
}

/// Draw `figure` into `<out>/<stem>.png`, `.svg` and `.pdf` (the same drawing), each
/// written atomically, or write `<out>/<stem>.md` when [`Figure::fallback`] says there is
/// nothing to plot (with a warning in the log). Returns the paths written.
pub fn render_both(
    out: &Path,
    stem: &str,
    size: (u32, u32),
    figure: &impl Figure,
) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out).map_err(|source| FigureError::Io {
        path: out.to_path_buf(),
        source,
    })?;
    let note = out.join(format!("{stem}.md"));
    if let Some(fallback) = figure.fallback() {
        tracing::warn!(
            "{stem}: not plotted ({}); its numbers are in {}",
            fallback.reason,
            note.display()
        );
        for ext in PLOT_EXTENSIONS {
            remove_stale(&out.join(format!("{stem}.{ext}")))?;
        }
        write_atomically(&note, fallback.markdown().as_bytes())?;
        return Ok(vec![note]);
    }
    ensure_font()?;
    remove_stale(&note)?;
    let png = out.join(format!("{stem}.png"));
    let svg = out.join(format!("{stem}.svg"));
    let pdf = out.join(format!("{stem}.pdf"));
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, size).into_drawing_area();
        draw_on(&root, figure)?;
    }
    write_atomically(&svg, text.as_bytes())?;
    let mut bytes = Vec::new();
    {
        let width_pt = type_size::print_width_in(size.0) * 72.0;
        let root = PdfBackend::new(&mut bytes, size, width_pt).into_drawing_area();
        draw_on(&root, figure)?;
    }
    write_atomically(&pdf, &bytes)?;
    let tmp_png = tmp_path(&png);
    {
        let root = BitMapBackend::new(&tmp_png, size).into_drawing_area();
        draw_on(&root, figure)?;
    }
    std::fs::rename(&tmp_png, &png).map_err(|source| FigureError::Io {
        path: png.clone(),
        source,
    })?;
    Ok(vec![png, svg, pdf])
}

fn draw_on<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    figure: &impl Figure,
) -> Result<()> {
    root.fill(&WHITE).map_err(plot)?;
    figure.draw(root)?;
    root.present().map_err(plot)
}

fn remove_stale(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(FigureError::Io {
            path: path.to_path_buf(),
            source: e,
        }),
        _ => Ok(()),
    }
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

/// Draw `figure` at `size` to `<out>/<target>.png`, `.svg` and `.pdf` (or its note).
pub fn render_target(
    ctx: &crate::load::Context,
    out: &Path,
    size: (u32, u32),
    figure: &impl Figure,
) -> Result<Vec<PathBuf>> {
    render_both(out, &ctx.target.name(), size, figure)
}
