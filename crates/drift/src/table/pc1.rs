//! The `pca`, `pc1` and `pc1_stability` tables (columns in the [module docs](super)).

use super::{RunKey, column};
use crate::{ClusterPc1, DriftError, DriftSeries, NullSummary, Pca, Result};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use tables::TableKind;
use tables::arrow::array::{
    ArrayRef, Float64Array, RecordBatch, StringArray, UInt32Array, UInt64Array,
};

/// Kind of the `pca` table.
pub const PCA_TABLE: TableKind = TableKind {
    name: "pca",
    version: 1,
};
/// Kind of the `pc1` table.
pub const PC1_TABLE: TableKind = TableKind {
    name: "pc1",
    version: 1,
};
/// Kind of the `pc1_stability` table.
pub const PC1_STABILITY_TABLE: TableKind = TableKind {
    name: "pc1_stability",
    version: 1,
};
/// `pc1_stability` metadata: mean PC1 share under the isotropic null.
pub const NULL_MEAN_SHARE_KEY: &str = "drift.null_mean_share";
/// `pc1_stability` metadata: 95th percentile of the PC1 share under the isotropic null.
pub const NULL_P95_SHARE_KEY: &str = "drift.null_p95_share";
/// `pc1_stability` metadata: number of isotropic-null draws.
pub const NULL_DRAWS_KEY: &str = "drift.null_draws";
/// `pc1_stability` metadata: PC1 share after whitening the features.
pub const WHITENED_SHARE_KEY: &str = "drift.whitened_pc1_share";

/// Build a batch from named columns (all non-nullable).
fn batch(columns: Vec<(&str, ArrayRef)>) -> Result<RecordBatch> {
    Ok(tables::record_batch(columns)?)
}

/// Write the loadings of every component of `pca` (`[c][k]`), one row per component and
/// feature, with `feature_names` (`[k]`). For the cluster PC1 pass
/// `pc1.feature_names()` and `pc1.pca()`, whose component 1 is sign-fixed.
pub fn write_pca(
    path: &Path,
    feature_names: &[String],
    pca: &Pca,
    extra: &BTreeMap<String, String>,
) -> Result<()> {
    if pca
        .components
        .iter()
        .any(|c| c.len() != feature_names.len())
        || pca.explained_variance_ratio.len() != pca.components.len()
    {
        return Err(DriftError::DimensionMismatch {
            what: "PCA components vs feature names",
            expected: feature_names.len(),
            found: pca.components.first().map_or(0, Vec::len),
        });
    }
    let (mut component, mut feature, mut loading, mut ratio) = (vec![], vec![], vec![], vec![]);
    for (c, (row, r)) in pca
        .components
        .iter()
        .zip(&pca.explained_variance_ratio)
        .enumerate()
    {
        for (name, l) in feature_names.iter().zip(row) {
            component.push(u32::try_from(c + 1).unwrap_or(u32::MAX));
            feature.push(name.as_str());
            loading.push(*l);
            ratio.push(*r);
        }
    }
    let b = batch(vec![
        ("component", Arc::new(UInt32Array::from(component))),
        ("feature", Arc::new(StringArray::from(feature))),
        ("loading", Arc::new(Float64Array::from(loading))),
        (
            "explained_variance_ratio",
            Arc::new(Float64Array::from(ratio)),
        ),
    ])?;
    Ok(tables::write_parquet(path, &b, PCA_TABLE, extra)?)
}

/// A `pca` table read back.
#[derive(Debug, Clone, PartialEq)]
pub struct PcaTable {
    /// `[k]` feature names, in loading order.
    pub feature_names: Vec<String>,
    /// `[c][k]` loadings, component 1 first.
    pub components: Vec<Vec<f64>>,
    /// `[c]` explained-variance ratio of each component.
    pub explained_variance_ratio: Vec<f64>,
}

/// Read a `pca` table written by [`write_pca`].
///
/// Errors: not a `pca` table of this version; components not numbered 1, 2, ... in order
/// or not listing the same features.
pub fn read_pca(path: &Path) -> Result<PcaTable> {
    let table = tables::read_parquet(path, Some(PCA_TABLE))?;
    let malformed = |reason: String| DriftError::MalformedTable {
        path: path.to_path_buf(),
        reason,
    };
    let mut out = PcaTable {
        feature_names: Vec::new(),
        components: Vec::new(),
        explained_variance_ratio: Vec::new(),
    };
    for b in &table.batches {
        let component = column::<UInt32Array>(b, "component", path)?;
        let feature = column::<StringArray>(b, "feature", path)?;
        let loading = column::<Float64Array>(b, "loading", path)?;
        let ratio = column::<Float64Array>(b, "explained_variance_ratio", path)?;
        for i in 0..b.num_rows() {
            let c = component.value(i) as usize;
            if c == out.components.len() + 1 {
                out.components.push(Vec::new());
                out.explained_variance_ratio.push(ratio.value(i));
            } else if c == 0 || c != out.components.len() {
                return Err(malformed(format!("component {c} out of order")));
            }
            let row = out.components.len() - 1;
            let j = out.components[row].len();
            let name = feature.value(i);
            if row == 0 {
                out.feature_names.push(name.to_string());
            } else if out.feature_names.get(j).map(String::as_str) != Some(name) {
                return Err(malformed(format!(
                    "component {c}: unexpected feature `{name}`"
                )));
            }
            out.components[row].push(loading.value(i));
        }
    }
    if out
        .components
        .iter()
        .any(|c| c.len() != out.feature_names.len())
    {
        return Err(malformed("a component lacks features".into()));
    }
    Ok(out)
}

/// Write signed and absolute PC1 per checkpoint of each run in `runs`.
///
/// Columns: `signed_pc1 = x(t)·u`, `abs_pc1 = |x(t)·u|`, `drift_norm = ||x(t)||`,
/// `cosine_to_pc1` (0 where `x(t) = 0`). Errors: a series whose feature names differ from
/// `pc1.feature_names()`, or a write failure.
pub fn write_pc1(
    path: &Path,
    pc1: &ClusterPc1,
    runs: &[(RunKey, DriftSeries)],
    extra: &BTreeMap<String, String>,
) -> Result<()> {
    let (mut model, mut perturbation, mut seed, mut step) = (vec![], vec![], vec![], vec![]);
    let (mut signed, mut abs, mut norm, mut cosine) = (vec![], vec![], vec![], vec![]);
    for (key, series) in runs {
        if series.feature_names != pc1.feature_names() {
            return Err(DriftError::InvalidArgument(format!(
                "{key:?} feature set `{}`: features {:?} differ from PC1's {:?}",
                series.feature_set,
                series.feature_names,
                pc1.feature_names()
            )));
        }
        for p in &series.points {
            let s = pc1.signed(&p.drift)?;
            let (n, cos) = pc1.decompose(&p.drift)?;
            model.push(key.model.as_str());
            perturbation.push(key.perturbation.as_str());
            seed.push(key.seed);
            step.push(p.step);
            signed.push(s);
            abs.push(s.abs());
            norm.push(n);
            cosine.push(cos);
        }
    }
    let b = batch(vec![
        ("model", Arc::new(StringArray::from(model))),
        ("perturbation", Arc::new(StringArray::from(perturbation))),
        ("seed", Arc::new(UInt64Array::from(seed))),
        ("step", Arc::new(UInt64Array::from(step))),
        ("signed_pc1", Arc::new(Float64Array::from(signed))),
        ("abs_pc1", Arc::new(Float64Array::from(abs))),
        ("drift_norm", Arc::new(Float64Array::from(norm))),
        ("cosine_to_pc1", Arc::new(Float64Array::from(cosine))),
    ])?;
    Ok(tables::write_parquet(path, &b, PC1_TABLE, extra)?)
}

/// Write the leave-one-perturbation-out rows of [`crate::lopo_stability`], with the
/// isotropic null and the whitened PC1 share as metadata (added to `extra`; floats in
/// Rust's shortest round-trip form).
pub fn write_pc1_stability(
    path: &Path,
    lopo: &[(String, f64, f64)],
    null: &NullSummary,
    whitened_share: f64,
    extra: &BTreeMap<String, String>,
) -> Result<()> {
    let b = batch(vec![
        (
            "perturbation_left_out",
            Arc::new(StringArray::from_iter_values(
                lopo.iter().map(|r| r.0.as_str()),
            )),
        ),
        (
            "cosine_to_full",
            Arc::new(Float64Array::from_iter_values(lopo.iter().map(|r| r.1))),
        ),
        (
            "pc1_share",
            Arc::new(Float64Array::from_iter_values(lopo.iter().map(|r| r.2))),
        ),
    ])?;
    let mut meta = extra.clone();
    meta.insert(NULL_MEAN_SHARE_KEY.into(), null.mean_share.to_string());
    meta.insert(NULL_P95_SHARE_KEY.into(), null.p95_share.to_string());
    meta.insert(NULL_DRAWS_KEY.into(), null.draws.to_string());
    meta.insert(WHITENED_SHARE_KEY.into(), whitened_share.to_string());
    Ok(tables::write_parquet(path, &b, PC1_STABILITY_TABLE, &meta)?)
}
