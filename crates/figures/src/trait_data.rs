//! Per-trait numbers of every checkpoint, for fig5 and fig10: its drift along each trait
//! direction (`drift` tables) and its behaviour on each trait's items (the
//! `trait_positive` rows of `em_summary` tables, written when `traitwatch em` runs with
//! the trait bank: `em.trait_items = true` in a manifest).

use crate::Result;
use crate::load::{CheckpointColumns, f64s, strings};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tables::arrow::array::RecordBatch;

/// (model, perturbation, seed, step).
pub type Checkpoint = crate::load::CheckpointKey;
/// Per checkpoint: trait name -> value.
pub type PerTrait = BTreeMap<Checkpoint, BTreeMap<String, f64>>;

/// Each row's (trait, value), or None for a row that is not one.
type RowValues = Vec<Option<(String, f64)>>;

/// Gather (checkpoint, trait) -> value over the tables `files`; `values` picks the rows.
fn gather(
    files: &[PathBuf],
    values: &dyn Fn(&RecordBatch, &Path) -> Result<RowValues>,
) -> Result<PerTrait> {
    let mut out = PerTrait::new();
    for path in files {
        let table = tables::read_parquet(path, None)?;
        for b in &table.batches {
            let key = CheckpointColumns::of(b, path)?;
            for (i, v) in values(b, path)?.into_iter().enumerate() {
                let Some((name, value)) = v.filter(|(_, v)| v.is_finite()) else {
                    continue;
                };
                out.entry(key.key(i)).or_default().insert(name, value);
            }
        }
    }
    Ok(out)
}

/// The drift of every checkpoint along each trait of `feature_set` (the drift tables'
/// `drift` column: the projection change over the pre-finetuning activation norm).
pub fn trait_drift(files: &[PathBuf], feature_set: &str) -> Result<PerTrait> {
    gather(files, &|b, path| {
        let (set, feature) = (
            strings(b, "feature_set", path)?,
            strings(b, "feature", path)?,
        );
        let drift = f64s(b, "drift", path)?;
        Ok((0..b.num_rows())
            .map(|i| {
                (set.value(i) == feature_set)
                    .then(|| (feature.value(i).to_string(), drift.value(i)))
            })
            .collect())
    })
}

/// The share of each trait's items whose positive-pole answer wins, per checkpoint.
pub fn trait_behaviour(files: &[PathBuf]) -> Result<PerTrait> {
    gather(files, &|b, path| {
        let (stat, group) = (strings(b, "statistic", path)?, strings(b, "group", path)?);
        let rate = f64s(b, "rate", path)?;
        Ok((0..b.num_rows())
            .map(|i| {
                (stat.value(i) == "trait_positive")
                    .then(|| (group.value(i).to_string(), rate.value(i)))
            })
            .collect())
    })
}
