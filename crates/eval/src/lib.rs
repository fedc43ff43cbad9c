//! `eval`: the monitor and its evaluation (METHOD sections 6 and 7), on features and EM
//! targets already computed (drift tables, EM summaries); no burn, no model.
//!
//! ```text
//! [Checkpoint {model, perturbation, seed, step, target}] + features per checkpoint
//!   --folds::{lopo_folds, held_out_folds}--> [Fold] (per model; leaks are errors)
//!   --monitor::predict_folds(Regressor)--> out-of-fold predictions, clipped to the label's range
//!   --monitor::pooled_metrics(tau)--> FNR, FPR, accuracy, balanced accuracy, AUROC
//!   --bootstrap::cluster_bootstrap--> 95% intervals over whole runs
//! dataset::load_results(dir) gathers checkpoints and feature sets from drift / em_summary /
//! pca tables; evaluate::evaluate runs feature sets x regressors; report writes Parquet,
//! Markdown and LaTeX; alarm::StepAlarm is the step-aware alarm (section 7).
//! ```
//! Regressors are ours (CART trees, forest, gradient boosting, ridge, logistic), tested
//! against hand-computed results: the maintained Rust ML crates (linfa, smartcore) would
//! bring ndarray and a second rand for four small models.

pub mod alarm;
pub mod bootstrap;
pub mod dataset;
pub mod ensemble;
pub mod evaluate;
pub mod folds;
pub mod linear;
pub mod metrics;
pub mod monitor;
pub mod reduction;
pub mod report;
pub mod tree;

pub use dataset::{FeatureSet, LabelSource, MonitorData, load_results};
pub use evaluate::{Cell, EvalSettings, evaluate};
pub use folds::{CALIBRATION, Checkpoint, Fold, HELD_OUT, held_out_folds, lopo_folds};
pub use metrics::{Confusion, Metrics, auroc, metrics};
pub use monitor::{Prediction, Regressor, pooled_metrics, predict_folds};

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("invalid input: {0}")]
    Input(String),
    /// A fold would train on what it tests: a bug, never silently tolerated.
    #[error("fold leak: {0}")]
    Leak(String),
    #[error(transparent)]
    Table(#[from] tables::TableError),
    #[error(transparent)]
    Drift(#[from] drift::DriftError),
}

pub type Result<T, E = EvalError> = std::result::Result<T, E>;
