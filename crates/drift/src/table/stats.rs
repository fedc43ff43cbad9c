//! The `checkpoint_stats` table: per checkpoint, what the monitor's non-activation baselines
//! need (METHOD section 5), in long form: `train_loss` (index 0), `lora_norm` (index 0,
//! whole adapter) and `lora_norm_layer` (index = layer). Written by `traitwatch drift`
//! beside the run's drift table.

use crate::Result;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use tables::arrow::array::{ArrayRef, Float64Array, StringArray, UInt64Array};
use tables::{RunKey, TableKind};

/// Kind of the `checkpoint_stats` table.
pub const CHECKPOINT_STATS_TABLE: TableKind = TableKind {
    name: "checkpoint_stats",
    version: 1,
};
/// Training loss at the checkpoint (see `traitwatch drift` for which logged step).
pub const TRAIN_LOSS: &str = "train_loss";
/// `||scale · B·A||_F` over the whole adapter.
pub const LORA_NORM: &str = "lora_norm";
/// The same norm per layer (`index` = layer).
pub const LORA_NORM_LAYER: &str = "lora_norm_layer";

/// One value: (step, statistic, index, value).
pub type StatRow = (u64, &'static str, u64, f64);

/// Write one run's checkpoint statistics to `path` atomically.
pub fn write_checkpoint_stats(path: &Path, run: &RunKey, rows: &[StatRow]) -> Result<()> {
    let n = rows.len();
    let s = |v: &str| -> ArrayRef { Arc::new(StringArray::from(vec![v; n])) };
    let batch = tables::record_batch(vec![
        ("model", s(&run.model)),
        ("perturbation", s(&run.perturbation)),
        ("seed", Arc::new(UInt64Array::from(vec![run.seed; n]))),
        (
            "step",
            Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.0))),
        ),
        (
            "statistic",
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1))),
        ),
        (
            "index",
            Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.2))),
        ),
        (
            "value",
            Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.3))),
        ),
    ])
    .map_err(|e| crate::DriftError::InvalidArgument(format!("checkpoint stats: {e}")))?;
    Ok(tables::write_parquet(
        path,
        &batch,
        CHECKPOINT_STATS_TABLE,
        &BTreeMap::new(),
    )?)
}
