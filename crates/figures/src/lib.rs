//! The paper's figures as pure functions of an experiment's results: every figure reads
//! the Parquet tables under a results directory (found by their table kind, wherever they
//! lie), draws the same picture to PNG and SVG, and writes a provenance sidecar naming the
//! manifest, the git revision and the sha256 of every table it read.
//!
//! Implemented: fig1 (|PC1| over steps, EM overlaid) and fig4 (PC1 loadings and scree).
//! The others return [`FigureError::NotYet`], saying so.

pub mod fig1;
pub mod fig4;
pub mod load;
pub mod provenance;
pub mod style;

pub use provenance::Provenance;

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum FigureError {
    /// An input table the figure needs is not in the results.
    #[error("{0}")]
    Missing(String),
    #[error(transparent)]
    Table(#[from] tables::TableError),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("drawing failed: {0}")]
    Draw(String),
    #[error("{0}")]
    Font(String),
    #[error("{0} is not implemented yet")]
    NotYet(String),
}

pub type Result<T, E = FigureError> = std::result::Result<T, E>;

/// Figures implemented so far.
pub const IMPLEMENTED: [u8; 2] = [1, 4];

/// Draw figure `n` from the tables under `results` into `out` (`fig<n>.png`, `.svg`,
/// `.json`). Returns the files written.
pub fn render(n: u8, results: &Path, out: &Path, provenance: &Provenance) -> Result<Vec<PathBuf>> {
    let missing = |what: &str| {
        FigureError::Missing(format!("fig{n} needs {what} under {}", results.display()))
    };
    let stem = format!("fig{n}");
    let (mut files, inputs) = match n {
        1 => {
            let pc1_files = load::find(results, "pc1")?;
            if pc1_files.is_empty() {
                return Err(missing("a `pc1` table (from `traitwatch pca`)"));
            }
            let mut pc1 = Vec::new();
            for f in &pc1_files {
                pc1.extend(load::pc1_rows(f)?);
            }
            let (em, em_files) = load::em_rows(results)?;
            let fig = fig1::Fig1::new(&pc1, &em)?;
            let files = style::render_both(out, &stem, (style::WIDTH, style::HEIGHT), &fig)?;
            (files, [pc1_files, em_files].concat())
        }
        4 => {
            let pca_files = load::find(results, "pca")?;
            if pca_files.is_empty() {
                return Err(missing("a `pca` table (from `traitwatch pca`)"));
            }
            let mut panels = Vec::new();
            for f in &pca_files {
                panels.push((model_of(f), load::pca_rows(f)?));
            }
            let fig = fig4::Fig4::new(panels)?;
            let size = (style::WIDTH, style::HEIGHT * fig.rows() as u32 / 2 + 200);
            let files = style::render_both(out, &stem, size, &fig)?;
            (files, pca_files)
        }
        2..=11 => return Err(FigureError::NotYet(format!("fig{n}"))),
        _ => {
            return Err(FigureError::Missing(format!(
                "there is no fig{n} (fig1 ... fig11)"
            )));
        }
    };
    files.push(provenance.write(out, &stem, &inputs)?);
    Ok(files)
}

/// The model a per-model table belongs to: the name of the directory it was collected
/// into (`results/<exp>/pca/<model>/pca.parquet`), else the file's parent.
fn model_of(path: &Path) -> String {
    path.parent()
        .and_then(Path::file_name)
        .map_or_else(|| "model".into(), |n| n.to_string_lossy().into_owned())
}
