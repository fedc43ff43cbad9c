//! Finding an experiment's tables by kind (wherever they lie under the results
//! directory) and reading the rows the figures use.

use crate::{FigureError, Result};
use std::path::{Path, PathBuf};
use tables::arrow::array::{Float64Array, StringArray, UInt32Array, UInt64Array};

/// Every Parquet file under `dir` whose declared table kind is `kind`, sorted.
pub fn find(dir: &Path, kind: &str) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    walk(dir, &mut files)?;
    let mut out = Vec::new();
    for f in files {
        if tables::table_kind(&f)?.as_deref() == Some(kind) {
            out.push(f);
        }
    }
    out.sort();
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|source| FigureError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "parquet") {
            out.push(path);
        }
    }
    Ok(())
}

/// One checkpoint's position along the frozen cluster PC1 (`pc1` table).
#[derive(Debug, Clone, PartialEq)]
pub struct Pc1Row {
    pub model: String,
    pub perturbation: String,
    pub seed: u64,
    pub step: u64,
    pub abs_pc1: f64,
    pub signed_pc1: f64,
    pub drift_norm: f64,
    pub cosine_to_pc1: f64,
}

pub fn pc1_rows(path: &Path) -> Result<Vec<Pc1Row>> {
    let table = tables::read_parquet(path, None)?;
    let mut out = Vec::new();
    for b in &table.batches {
        let s = |n| tables::column::<StringArray>(b, n, path);
        let u = |n| tables::column::<UInt64Array>(b, n, path);
        let f = |n| tables::column::<Float64Array>(b, n, path);
        let (model, pert, seed, step) = (s("model")?, s("perturbation")?, u("seed")?, u("step")?);
        let (abs, signed, norm, cos) = (
            f("abs_pc1")?,
            f("signed_pc1")?,
            f("drift_norm")?,
            f("cosine_to_pc1")?,
        );
        for i in 0..b.num_rows() {
            out.push(Pc1Row {
                model: model.value(i).to_string(),
                perturbation: pert.value(i).to_string(),
                seed: seed.value(i),
                step: step.value(i),
                abs_pc1: abs.value(i),
                signed_pc1: signed.value(i),
                drift_norm: norm.value(i),
                cosine_to_pc1: cos.value(i),
            });
        }
    }
    Ok(out)
}

/// One checkpoint's overall EM number (`em_summary` table, group `all`).
#[derive(Debug, Clone, PartialEq)]
pub struct EmRow {
    pub model: String,
    pub perturbation: String,
    pub seed: u64,
    pub step: u64,
    /// `em_rate` (free-form judge) or `proxy_em` (paired choice).
    pub statistic: String,
    pub rate: f64,
}

/// The overall EM rows of every `em_summary` table under `dir`: the free-form `em_rate`
/// where a run has it, else the paired-choice `proxy_em`.
pub fn em_rows(dir: &Path) -> Result<(Vec<EmRow>, Vec<PathBuf>)> {
    let files = find(dir, "em_summary")?;
    let mut out = Vec::new();
    for path in &files {
        let table = tables::read_parquet(path, None)?;
        for b in &table.batches {
            let s = |n| tables::column::<StringArray>(b, n, path);
            let u = |n| tables::column::<UInt64Array>(b, n, path);
            let (model, pert, statistic, group) = (
                s("model")?,
                s("perturbation")?,
                s("statistic")?,
                s("group")?,
            );
            let (seed, step) = (u("seed")?, u("step")?);
            let rate = tables::column::<Float64Array>(b, "rate", path)?;
            for i in 0..b.num_rows() {
                let stat = statistic.value(i);
                if group.value(i) != "all" || !matches!(stat, "em_rate" | "proxy_em") {
                    continue;
                }
                out.push(EmRow {
                    model: model.value(i).to_string(),
                    perturbation: pert.value(i).to_string(),
                    seed: seed.value(i),
                    step: step.value(i),
                    statistic: stat.to_string(),
                    rate: rate.value(i),
                });
            }
        }
    }
    // Prefer the free-form EM rate over the proxy, run by run.
    let freeform: std::collections::BTreeSet<(String, String, u64)> = out
        .iter()
        .filter(|r| r.statistic == "em_rate")
        .map(|r| (r.model.clone(), r.perturbation.clone(), r.seed))
        .collect();
    out.retain(|r| {
        r.statistic == "em_rate"
            || !freeform.contains(&(r.model.clone(), r.perturbation.clone(), r.seed))
    });
    Ok((out, files))
}

/// The `pca` table: loadings per component and feature, and explained variance ratios.
#[derive(Debug, Clone, PartialEq)]
pub struct PcaRow {
    pub component: u32,
    pub feature: String,
    pub loading: f64,
    pub explained_variance_ratio: f64,
}

pub fn pca_rows(path: &Path) -> Result<Vec<PcaRow>> {
    let table = tables::read_parquet(path, None)?;
    let mut out = Vec::new();
    for b in &table.batches {
        let component = tables::column::<UInt32Array>(b, "component", path)?;
        let feature = tables::column::<StringArray>(b, "feature", path)?;
        let loading = tables::column::<Float64Array>(b, "loading", path)?;
        let evr = tables::column::<Float64Array>(b, "explained_variance_ratio", path)?;
        for i in 0..b.num_rows() {
            out.push(PcaRow {
                component: component.value(i),
                feature: feature.value(i).to_string(),
                loading: loading.value(i),
                explained_variance_ratio: evr.value(i),
            });
        }
    }
    Ok(out)
}
