//! Declarative experiments: a TOML manifest says what to run; this crate turns it into a
//! plan of stages, keeps their outputs in a content-addressed store, runs what is missing,
//! and exports the plan to Slurm.
//!
//! - [`manifest`]: the schema, includes/overrides, validation with file:line errors.
//! - [`home`]: the project root and the one resolver of a manifest's relative paths.
//! - [`plan`]: stages (traits, finetune, drift, em, pca, ...) per model and cell, each a
//!   `traitwatch` command with its inputs, its hash and its artifact directory; what each
//!   figure needs.
//! - [`store`]: `runs/<stage>/<slug>-<hash>/` with `meta.json`; work happens in a
//!   `.partial` directory under a lock and is renamed into place when done, so a killed run
//!   resumes and two machines sharing the store never see half an artifact.
//! - [`runner`]: runs the stages in order with progress bars; the stage commands
//!   themselves are executed by the caller (the `traitwatch` binary), which keeps this
//!   crate free of burn.
//! - [`slurm`]: an sbatch job array (one task per cell) plus dependent jobs.

mod em_stage;
pub mod eta;
pub mod extra;
pub mod home;
mod identity;
pub mod locate;
pub mod manifest;
pub mod plan;
pub mod runner;
pub mod slurm;
pub mod store;

pub use locate::Location;
pub use manifest::{Loaded, Manifest, load, load_in};
pub use plan::{Arg, Plan, Stage, StageKind, Target};
pub use store::Store;

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The manifest file cannot be read or is not TOML.
    #[error("{}: {message}", path.display())]
    Manifest { path: PathBuf, message: String },
    /// A key has a bad value; `at` is where it was set.
    #[error("{}`{key}`: {message}", at.as_ref().map(|l| format!("{l}: ")).unwrap_or_default())]
    Invalid {
        key: String,
        at: Option<Location>,
        message: String,
    },
    /// Another process holds the artifact's lock.
    #[error(
        "{} is being computed by {holder} (lock {}); wait for it, or delete the lock if that process is gone",
        dir.display(), lock.display()
    )]
    Busy {
        dir: PathBuf,
        lock: PathBuf,
        holder: String,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A stage's command failed; what earlier stages computed is kept.
    #[error("stage {stage} failed: {message}")]
    Stage { stage: String, message: String },
    #[error("{0}")]
    Other(String),
}

pub type Result<T, E = PipelineError> = std::result::Result<T, E>;

pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> PipelineError + '_ {
    move |source| PipelineError::Io {
        path: path.to_path_buf(),
        source,
    }
}
