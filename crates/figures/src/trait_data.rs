//! Per-trait numbers of every checkpoint, for fig5 and fig10: its drift along each trait
//! direction (`drift` tables) and its behaviour on each trait's items (the
//! `trait_positive` rows of `em_summary` tables, written when `traitwatch em` runs with
//! the trait bank: `em.trait_items = true` in a manifest).

use crate::Result;
use crate::load::{f64s, perturbation_name, strings, u64s};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// (model, perturbation, seed, step).
pub type Checkpoint = (String, String, u64, u64);
/// Per checkpoint: trait name -> value.
pub type PerTrait = BTreeMap<Checkpoint, BTreeMap<String, f64>>;

/// The drift of every checkpoint along each trait of `feature_set` (the drift tables'
/// `drift` column: the projection change over the pre-finetuning activation norm).
pub fn trait_drift(files: &[PathBuf], feature_set: &str) -> Result<PerTrait> {
    let mut out = PerTrait::new();
    for path in files {
        let table = tables::read_parquet(path, None)?;
        for b in &table.batches {
            let (model, pert) = (
                strings(b, "model", path)?,
                strings(b, "perturbation", path)?,
            );
            let (set, feature) = (
                strings(b, "feature_set", path)?,
                strings(b, "feature", path)?,
            );
            let (seed, step) = (u64s(b, "seed", path)?, u64s(b, "step", path)?);
            let drift = f64s(b, "drift", path)?;
            for i in 0..b.num_rows() {
                if set.value(i) != feature_set || !drift.value(i).is_finite() {
                    continue;
                }
                let key = (
                    model.value(i).to_string(),
                    perturbation_name(pert.value(i), seed.value(i)),
                    seed.value(i),
                    step.value(i),
                );
                out.entry(key)
                    .or_default()
                    .insert(feature.value(i).to_string(), drift.value(i));
            }
        }
    }
    Ok(out)
}

/// The share of each trait's items whose positive-pole answer wins, per checkpoint.
pub fn trait_behaviour(files: &[PathBuf]) -> Result<PerTrait> {
    let mut out = PerTrait::new();
    for path in files {
        let table = tables::read_parquet(path, None)?;
        for b in &table.batches {
            let (model, pert) = (
                strings(b, "model", path)?,
                strings(b, "perturbation", path)?,
            );
            let (stat, group) = (strings(b, "statistic", path)?, strings(b, "group", path)?);
            let (seed, step) = (u64s(b, "seed", path)?, u64s(b, "step", path)?);
            let rate = f64s(b, "rate", path)?;
            for i in 0..b.num_rows() {
                if stat.value(i) != "trait_positive" || !rate.value(i).is_finite() {
                    continue;
                }
                let key = (
                    model.value(i).to_string(),
                    perturbation_name(pert.value(i), seed.value(i)),
                    seed.value(i),
                    step.value(i),
                );
                out.entry(key)
                    .or_default()
                    .insert(group.value(i).to_string(), rate.value(i));
            }
        }
    }
    Ok(out)
}
