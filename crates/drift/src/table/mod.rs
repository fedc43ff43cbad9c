//! The drift stage's tidy Parquet tables (long format, one value per row), written
//! atomically through the `tables` crate. Every file carries `traitwatch.table` and
//! `traitwatch.schema_version` metadata plus the caller's `extra` key-value pairs.
//!
//! | table | kind | one row per | columns |
//! |---|---|---|---|
//! | `drift` | [`DRIFT_TABLE`] | run × feature set × checkpoint × feature | `model` Utf8, `perturbation` Utf8, `seed` UInt64, `step` UInt64, `feature_set` Utf8, `feature` Utf8, `projection` Float64 (`p(t)`), `drift` Float64 (`x(t)`), `activation_norm_drift` Float64 (`‖h̄(t) − h̄(0)‖ / N`, repeated over the checkpoint's features), `normaliser` Float64 (`N`, repeated over the run) |
//! | `pca` | [`PCA_TABLE`] | component × feature | `component` UInt32 (1-based), `feature` Utf8, `loading` Float64, `explained_variance_ratio` Float64 (the component's, repeated) |
//! | `pc1` | [`PC1_TABLE`] | run × checkpoint | `model`, `perturbation`, `seed`, `step`, `signed_pc1` (`x·u`), `abs_pc1` (`|x·u|`), `drift_norm` (`‖x‖`), `cosine_to_pc1` |
//! | `pc1_stability` | [`PC1_STABILITY_TABLE`] | perturbation left out | `perturbation_left_out` Utf8, `cosine_to_full` Float64, `pc1_share` Float64; metadata [`NULL_MEAN_SHARE_KEY`], [`NULL_P95_SHARE_KEY`], [`NULL_DRAWS_KEY`], [`WHITENED_SHARE_KEY`] |
//!
//! Rows are written in input order: run by run, step ascending, features in basis order,
//! which is what lets [`read_drift`] rebuild each [`crate::DriftSeries`] exactly.

mod drift;
mod pc1;
mod stats;

pub use drift::{DRIFT_TABLE, read_drift, write_drift};
pub use pc1::{
    NULL_DRAWS_KEY, NULL_MEAN_SHARE_KEY, NULL_P95_SHARE_KEY, PC1_STABILITY_TABLE, PC1_TABLE,
    PCA_TABLE, PcaTable, WHITENED_SHARE_KEY, read_pca, write_pc1, write_pc1_stability, write_pca,
};
pub use stats::{
    CHECKPOINT_STATS_TABLE, LORA_NORM, LORA_NORM_LAYER, StatRow, TRAIN_LOSS, write_checkpoint_stats,
};

use crate::Result;
use std::path::Path;
use tables::arrow::array::{Array, RecordBatch};

pub use tables::RunKey;

/// The column `name` of `batch` as array type `T`, with no nulls.
fn column<'a, T: Array + 'static>(
    batch: &'a RecordBatch,
    name: &str,
    path: &Path,
) -> Result<&'a T> {
    Ok(tables::column::<T>(batch, name, path)?)
}
