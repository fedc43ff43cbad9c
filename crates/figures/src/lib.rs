//! The paper's figures and tables (METHOD section 10) as pure functions of an experiment's
//! results directory.
//!
//! Every target reads the Parquet tables under a results directory, found by their table
//! kind (the `traitwatch.table` footer key) wherever they lie, as `eval::load_results`
//! does, so any layout of `results/` works. A figure is drawn to PNG, SVG and vector PDF
//! (the same drawing, 1600 x 1000 px or larger, printed 7 in wide with text of at least
//! 7 pt; see `style::type_size`) with a provenance sidecar `<stem>.json` naming the
//! manifest, the git revision and the sha256 of every table read. A figure whose data
//! would make a degenerate plot (every value undefined, a single step, one class) is
//! written as `<stem>.md` instead: why, and its numbers as a table (`degenerate`). The `tables` target writes Markdown and LaTeX files under `<out>/tables/`.
//! The EM label a figure draws is chosen per run as the monitor chooses it (`em_data`): the
//! free-form EM rate, else the log-odds label, else the paired-choice proxy.
//!
//! Every file is written to a temporary name and renamed into place. Nothing here reads
//! activations or runs a model: figures are cheap to redraw.
//!
//! | target | shows | needs (table kind, from which command) |
//! |--------|-------|----------------------------------------|
//! | fig1 | \|PC1\| x100 over steps, bad_medical vs number_sequence, EM overlaid | `pc1` (`traitwatch pca`); `em_label` or `em_summary` (`traitwatch em`) optional |
//! | fig2 | final drift magnitude vs cosine to PC1, colour = EM | `pc1`; `em_label` or `em_summary` optional |
//! | fig3 | FNR/FPR bars, regressor x feature set | `monitor_metrics` (`lopo --held-out-types`, else `--all`) |
//! | fig4 | PC1 loadings per trait and scree | `pca` (`traitwatch pca`) |
//! | fig5 | two runs with matched \|PC1\| but different EM: per-trait drift bars | `pc1`, `drift` (`traitwatch drift`), `em_label` or `em_summary` |
//! | fig6 | 7x7 cosines of trait directions at l*, per model | `trait_cosines` (`traitwatch traits`) |
//! | fig7 | LOPO grid of FNR/FPR per (model, held-out perturbation) | `monitor_metrics` (`lopo --all`) |
//! | fig8 | final EM per perturbation by severity, per model, Spearman rho | `em_label` or `em_summary` |
//! | fig9 | step-aware alarm probability over steps | `step_alarm` (`lopo --step-alarm`) |
//! | fig10 | Spearman rho, trait drift vs trait behaviour, raw and with signed PC1 regressed out | `drift`, `pc1`, `em_summary` with `trait_positive` rows (`em.trait_items = true`) |
//! | fig11 | \|PC1\| x100 over steps, full finetuning (`<perturbation>+full` runs) vs LoRA, dangerous vs benign | `pc1` with runs of a tagged `[[extra_runs]]` group |
//! | tables | headline detection, PC1 stability, EM-threshold sweep, alarm onsets | `monitor_metrics`, `pc1_stability`, `step_alarm` |
//!
//! Text needs a TrueType font, found at run time (`TRAITWATCH_FONT`, else common system
//! paths; see [`style::ensure_font`]); none is shipped.

pub mod axis_names;
pub mod band;
pub mod degenerate;
pub mod em_data;
pub mod fig1;
pub mod fig10;
pub mod fig11;
pub mod fig2;
pub mod fig3;
pub mod fig4;
pub mod fig5;
pub mod fig6;
pub mod fig7;
pub mod fig8;
pub mod fig9;
pub mod load;
pub mod pdf;
pub mod provenance;
pub mod stats;
pub mod style;
pub mod tables_md;
pub mod trait_data;

pub use provenance::Provenance;

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum FigureError {
    /// An input table the target needs is not under the results directory.
    #[error(
        "{target} needs a `{kind}` table (from `{command}`) under {}; none found",
        dir.display()
    )]
    MissingTable {
        target: String,
        kind: &'static str,
        command: &'static str,
        dir: PathBuf,
    },
    /// The tables are there but lack the rows the target draws.
    #[error("{target}: {reason}")]
    NoData { target: String, reason: String },
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
    /// A figure whose inputs the pipeline does not produce yet.
    #[error("{0}")]
    NotYet(String),
    #[error("unknown target `{0}`: expected fig1 ... fig11 or tables")]
    UnknownTarget(String),
}

pub type Result<T, E = FigureError> = std::result::Result<T, E>;

/// What to draw: one figure (1 ... 11) or the tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Target {
    Fig(u8),
    Tables,
}

impl Target {
    /// `fig1` ... `fig11` or `tables`.
    pub fn parse(s: &str) -> Result<Self> {
        if s == "tables" {
            return Ok(Self::Tables);
        }
        s.strip_prefix("fig")
            .and_then(|n| n.parse::<u8>().ok())
            .filter(|n| (1..=11).contains(n))
            .map(Self::Fig)
            .ok_or_else(|| FigureError::UnknownTarget(s.to_string()))
    }

    /// The file stem: `fig1`, ..., `tables`.
    pub fn name(self) -> String {
        match self {
            Self::Fig(n) => format!("fig{n}"),
            Self::Tables => "tables".into(),
        }
    }
}

impl std::str::FromStr for Target {
    type Err = FigureError;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

/// A bare number is a figure (`render(1, ...)` draws fig1).
impl From<u8> for Target {
    fn from(n: u8) -> Self {
        Self::Fig(n)
    }
}

/// Figures drawn by [`render`]: all eleven of METHOD section 10.
pub const IMPLEMENTED: [u8; 11] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];

/// The table kinds a target reads (the first is required, the rest as documented per
/// figure), so a pipeline can tell which stages a target needs.
pub fn required_tables(target: Target) -> &'static [&'static str] {
    match target {
        Target::Fig(1 | 2) => &["pc1", "em_summary"],
        Target::Fig(3 | 7) => &["monitor_metrics"],
        Target::Fig(4) => &["pca"],
        Target::Fig(5) => &["pc1", "drift", "em_summary"],
        Target::Fig(6) => &["trait_cosines"],
        Target::Fig(8) => &["em_summary"],
        Target::Fig(9) => &["step_alarm"],
        Target::Fig(10) => &["drift", "em_summary", "pc1"],
        Target::Fig(11) => &["pc1"],
        Target::Fig(_) => &[],
        Target::Tables => &["monitor_metrics", "pc1_stability", "step_alarm"],
    }
}

/// Draw `target` from the tables under `results` into `out`: `fig<n>.png`, `.svg` and the
/// sidecar `.json`, or for the tables `tables/*.md`, `tables/*.tex` and `tables.json`.
/// Returns the files written.
pub fn render(
    target: impl Into<Target>,
    results: &Path,
    out: &Path,
    provenance: &Provenance,
) -> Result<Vec<PathBuf>> {
    let target = target.into();
    let stem = target.name();
    tracing::info!("drawing {stem} from {}", results.display());
    let ctx = load::Context::new(target, results);
    let (mut files, inputs) = match target {
        Target::Fig(1) => fig1::render(&ctx, out)?,
        Target::Fig(2) => fig2::render(&ctx, out)?,
        Target::Fig(3) => fig3::render(&ctx, out)?,
        Target::Fig(4) => fig4::render(&ctx, out)?,
        Target::Fig(6) => fig6::render(&ctx, out)?,
        Target::Fig(7) => fig7::render(&ctx, out)?,
        Target::Fig(8) => fig8::render(&ctx, out)?,
        Target::Fig(9) => fig9::render(&ctx, out)?,
        Target::Fig(11) => fig11::render(&ctx, out)?,
        Target::Fig(5) => fig5::render(&ctx, out)?,
        Target::Fig(10) => fig10::render(&ctx, out)?,
        Target::Fig(n) => return Err(FigureError::UnknownTarget(format!("fig{n}"))),
        Target::Tables => tables_md::render(&ctx, out)?,
    };
    files.push(provenance.write(out, &stem, &inputs)?);
    Ok(files)
}
