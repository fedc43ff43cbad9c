//! Drift features and the cluster PC1 (METHOD.md sections 3-4). Pure analysis: no burn.
//!
//! Pipeline, per run:
//! 1. [`ActivationSummary::from_rows`] condenses the `[n_prompts][d]` last-token activations of
//!    one checkpoint into the prompt-mean activation `h̄(t)` and the mean per-prompt norm.
//! 2. A [`FeatureMap`] (a trait [`Basis`], a random control basis, ...) maps `h̄(t)` to `k`
//!    features; because projections are linear, `mean_i <h_i, d> = <h̄, d>`.
//! 3. [`drift_series`] turns the checkpoints of one run into `x(t) = (p(t) - p(0)) / N`.
//!
//! Across runs: [`ClusterPc1::fit`] runs a centred PCA on the final drift vectors and freezes
//! PC1 (harmlessness loading positive); [`lopo_stability`], [`isotropic_null`] and
//! [`whitened_pc1_share`] are its stability checks. [`table`] writes and reads the tidy
//! Parquet tables (`drift`, `pca`, `pc1`, `pc1_stability`).
//!
//! All analysis math is f64; activations arrive as f32.

#![warn(missing_docs)]

mod basis;
mod cluster;
mod pca;
mod rng;
pub mod sae;
mod series;
mod summary;
pub mod table;

pub use basis::{Basis, FeatureMap};
pub use cluster::{ClusterPc1, NullSummary, isotropic_null, lopo_stability, whitened_pc1_share};
pub use pca::Pca;
pub use sae::SparseAutoencoder;
pub use series::{DriftPoint, DriftSeries, drift_series};
pub use summary::ActivationSummary;
pub use table::RunKey;

use std::path::PathBuf;

/// Everything that can go wrong in this crate. Messages name the offending input.
#[derive(Debug, thiserror::Error)]
pub enum DriftError {
    /// An input that needs at least one element had none.
    #[error("{what} is empty")]
    Empty {
        /// The input, e.g. `activation rows`.
        what: &'static str,
    },
    /// A row whose length differs from the first row's.
    #[error("ragged {what}: row {row} has length {found}, expected {expected}")]
    Ragged {
        /// The input, e.g. `activation rows`.
        what: &'static str,
        /// Index of the offending row.
        row: usize,
        /// Length of the first row.
        expected: usize,
        /// Length of the offending row.
        found: usize,
    },
    /// A NaN or infinite value.
    #[error("non-finite value {value} in {what} at row {row}, column {col}")]
    NonFinite {
        /// The input, e.g. `activation rows`.
        what: &'static str,
        /// Row index (0 for a single vector).
        row: usize,
        /// Column index.
        col: usize,
        /// The value found.
        value: f64,
    },
    /// A vector whose length does not match what it is combined with.
    #[error("dimension mismatch in {what}: expected {expected}, found {found}")]
    DimensionMismatch {
        /// What was being combined, e.g. `feature map input`.
        what: &'static str,
        /// The required length.
        expected: usize,
        /// The length given.
        found: usize,
    },
    /// A basis vector of zero length, which cannot be normalised.
    #[error("basis vector {index} (`{name}`) has zero norm")]
    ZeroVector {
        /// Row index in the basis.
        index: usize,
        /// Its feature name.
        name: String,
    },
    /// Two features with one name.
    #[error("duplicate feature name `{0}`")]
    DuplicateName(String),
    /// The checkpoints of a run include no step 0.
    #[error("no step-0 checkpoint: drift is measured from step 0")]
    NoStepZero,
    /// Two checkpoints of one run share a step.
    #[error("duplicate checkpoint at step {0}")]
    DuplicateStep(u64),
    /// The step-0 normaliser `N = mean_i ||h_i(0)||` is not a positive finite number.
    #[error("step-0 normaliser N = {0} (mean activation norm) must be finite and > 0")]
    BadNormaliser(f64),
    /// The sign feature (e.g. `harmlessness`) is not among the feature names.
    #[error("sign feature `{0}` is not among the feature names")]
    UnknownFeature(String),
    /// Too few rows for the statistic (PCA needs two).
    #[error("{what} needs at least {needed} rows, got {found}")]
    TooFewRows {
        /// The statistic, e.g. `PCA`.
        what: &'static str,
        /// Rows required.
        needed: usize,
        /// Rows given.
        found: usize,
    },
    /// All rows identical: PCA has no direction and the explained ratios are undefined.
    #[error("{0} has zero total variance (all rows identical)")]
    ZeroVariance(&'static str),
    /// An argument outside its documented range.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// nalgebra's SVD did not converge.
    #[error("SVD did not converge")]
    SvdFailed,
    /// Writing or reading a Parquet file failed.
    #[error(transparent)]
    Table(#[from] tables::TableError),
    /// Building an Arrow record batch failed.
    #[error("building a record batch: {0}")]
    Arrow(#[from] tables::arrow::error::ArrowError),
    /// A Parquet file read back does not have the expected columns or structure.
    #[error("{path}: malformed table: {reason}")]
    MalformedTable {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// Result with [`DriftError`].
pub type Result<T> = std::result::Result<T, DriftError>;

/// Checks that `rows` is non-empty, rectangular and finite; returns the common row length.
pub(crate) fn check_matrix<T: Copy + Into<f64>>(
    what: &'static str,
    rows: &[Vec<T>],
) -> Result<usize> {
    let first = rows.first().ok_or(DriftError::Empty { what })?;
    let width = first.len();
    for (row, values) in rows.iter().enumerate() {
        if values.len() != width {
            return Err(DriftError::Ragged {
                what,
                row,
                expected: width,
                found: values.len(),
            });
        }
        check_finite(what, row, values)?;
    }
    Ok(width)
}

/// Checks that every value of one row is finite.
pub(crate) fn check_finite<T: Copy + Into<f64>>(
    what: &'static str,
    row: usize,
    values: &[T],
) -> Result<()> {
    match values
        .iter()
        .map(|&v| v.into())
        .enumerate()
        .find(|(_, v)| !v.is_finite())
    {
        Some((col, value)) => Err(DriftError::NonFinite {
            what,
            row,
            col,
            value,
        }),
        None => Ok(()),
    }
}

/// Dot product of two equal-length slices (callers check lengths).
pub(crate) fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Euclidean norm.
pub(crate) fn norm(a: &[f64]) -> f64 {
    dot(a, a).sqrt()
}
