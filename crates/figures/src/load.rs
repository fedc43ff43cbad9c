//! Finding an experiment's tables by kind (wherever they lie under the results
//! directory) and reading the rows the figures use. Nothing read from a file is unwrapped:
//! a missing column or a wrong type is an error naming the file and the column.

use crate::{FigureError, Result, Target};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use tables::arrow::array::{
    Array, Float64Array, RecordBatch, StringArray, UInt32Array, UInt64Array,
};

/// The command that writes each table kind, for error messages.
pub fn command_for(kind: &str) -> &'static str {
    match kind {
        "pc1" | "pca" | "pc1_stability" => "traitwatch pca",
        "em_summary" | "em_label" => "traitwatch em",
        "drift" => "traitwatch drift",
        "trait_cosines" => "traitwatch traits",
        "monitor_metrics" => "lopo --all",
        "step_alarm" => "lopo --step-alarm",
        _ => "traitwatch run",
    }
}

/// One target's view of a results directory: its Parquet files by table kind, read once.
#[derive(Debug)]
pub struct Context {
    pub target: Target,
    pub results: PathBuf,
    by_kind: OnceLock<std::result::Result<BTreeMap<String, Vec<PathBuf>>, String>>,
}

impl Context {
    pub fn new(target: Target, results: &Path) -> Self {
        Self {
            target,
            results: results.to_path_buf(),
            by_kind: OnceLock::new(),
        }
    }

    /// Every Parquet file under the results whose declared table kind is `kind`, sorted.
    pub fn find(&self, kind: &str) -> Result<Vec<PathBuf>> {
        let index = self.by_kind.get_or_init(|| index(&self.results));
        match index {
            Ok(map) => Ok(map.get(kind).cloned().unwrap_or_default()),
            Err(e) => Err(FigureError::NoData {
                target: self.target.name(),
                reason: e.clone(),
            }),
        }
    }

    /// Like [`Context::find`], but none found is an error naming the kind and its command.
    pub fn require(&self, kind: &'static str) -> Result<Vec<PathBuf>> {
        self.require_from(kind, command_for(kind))
    }

    /// [`Context::require`] naming `command` as the one that writes the table.
    pub fn require_from(&self, kind: &'static str, command: &'static str) -> Result<Vec<PathBuf>> {
        let files = self.find(kind)?;
        if files.is_empty() {
            return Err(FigureError::MissingTable {
                target: self.target.name(),
                kind,
                command,
                dir: self.results.clone(),
            });
        }
        Ok(files)
    }

    /// The tables are there but lack what the target draws.
    pub fn no_data(&self, reason: impl Into<String>) -> FigureError {
        FigureError::NoData {
            target: self.target.name(),
            reason: reason.into(),
        }
    }
}

fn index(dir: &Path) -> std::result::Result<BTreeMap<String, Vec<PathBuf>>, String> {
    if !dir.is_dir() {
        return Err(format!("no results directory at {}", dir.display()));
    }
    let files = tables::parquet_files(dir).map_err(|e| e.to_string())?;
    let mut map: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for f in files {
        match tables::table_kind(&f) {
            Ok(Some(kind)) => map.entry(kind).or_default().push(f),
            Ok(None) => tracing::debug!("{}: no table kind, skipped", f.display()),
            Err(e) => tracing::warn!("{e}; skipped"),
        }
    }
    Ok(map)
}

type Col<'a, T> = &'a T;

pub(crate) fn strings<'a>(b: &'a RecordBatch, n: &str, p: &Path) -> Result<Col<'a, StringArray>> {
    Ok(tables::column::<StringArray>(b, n, p)?)
}
pub(crate) fn u64s<'a>(b: &'a RecordBatch, n: &str, p: &Path) -> Result<Col<'a, UInt64Array>> {
    Ok(tables::column::<UInt64Array>(b, n, p)?)
}
pub(crate) fn f64s<'a>(b: &'a RecordBatch, n: &str, p: &Path) -> Result<Col<'a, Float64Array>> {
    Ok(tables::column::<Float64Array>(b, n, p)?)
}

/// A nullable f64 column; nulls and NaN read as None (an undefined rate).
fn opt_f64s(b: &RecordBatch, name: &str, path: &Path) -> Result<Vec<Option<f64>>> {
    let malformed = |reason: String| {
        FigureError::Table(tables::TableError::Malformed {
            path: path.to_path_buf(),
            reason,
        })
    };
    let array = b
        .column_by_name(name)
        .ok_or_else(|| malformed(format!("missing column `{name}`")))?;
    let typed = array
        .as_any()
        .downcast_ref::<Float64Array>()
        .ok_or_else(|| malformed(format!("column `{name}` has type {}", array.data_type())))?;
    Ok((0..typed.len())
        .map(|i| {
            (!typed.is_null(i))
                .then(|| typed.value(i))
                .filter(|v| v.is_finite())
        })
        .collect())
}

/// A perturbation name as a run directory may have recorded it (`bad_medical-s1`) without
/// its seed suffix.
pub fn perturbation_name(name: &str, seed: u64) -> String {
    name.strip_suffix(&format!("-s{seed}"))
        .unwrap_or(name)
        .to_string()
}

/// The columns that name a checkpoint (model, perturbation, seed, step), which every
/// per-checkpoint table has.
pub(crate) struct CheckpointColumns<'a> {
    model: &'a StringArray,
    perturbation: &'a StringArray,
    seed: &'a UInt64Array,
    step: &'a UInt64Array,
}

/// A checkpoint as read from a table: (model, perturbation without a seed suffix, seed, step).
pub type CheckpointKey = (String, String, u64, u64);

impl<'a> CheckpointColumns<'a> {
    pub(crate) fn of(b: &'a RecordBatch, path: &Path) -> Result<Self> {
        Ok(Self {
            model: strings(b, "model", path)?,
            perturbation: strings(b, "perturbation", path)?,
            seed: u64s(b, "seed", path)?,
            step: u64s(b, "step", path)?,
        })
    }

    /// Row `i`'s checkpoint.
    pub(crate) fn key(&self, i: usize) -> CheckpointKey {
        let seed = self.seed.value(i);
        (
            self.model.value(i).to_string(),
            perturbation_name(self.perturbation.value(i), seed),
            seed,
            self.step.value(i),
        )
    }
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

/// Every row of the `pc1` tables `files`.
pub fn pc1_rows(files: &[PathBuf]) -> Result<Vec<Pc1Row>> {
    let mut out = Vec::new();
    for path in files {
        let table = tables::read_parquet(path, None)?;
        for b in &table.batches {
            let key = CheckpointColumns::of(b, path)?;
            let (abs, signed) = (f64s(b, "abs_pc1", path)?, f64s(b, "signed_pc1", path)?);
            let (norm, cos) = (
                f64s(b, "drift_norm", path)?,
                f64s(b, "cosine_to_pc1", path)?,
            );
            for i in 0..b.num_rows() {
                let (model, perturbation, seed, step) = key.key(i);
                out.push(Pc1Row {
                    model,
                    perturbation,
                    seed,
                    step,
                    abs_pc1: abs.value(i),
                    signed_pc1: signed.value(i),
                    drift_norm: norm.value(i),
                    cosine_to_pc1: cos.value(i),
                });
            }
        }
    }
    Ok(out)
}

/// One `pca` table: loadings per component and feature, explained variance, metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct PcaTable {
    pub path: PathBuf,
    /// (component, feature, loading, explained variance ratio), table order.
    pub rows: Vec<(u32, String, f64, f64)>,
    pub metadata: BTreeMap<String, String>,
}

pub fn pca_table(path: &Path) -> Result<PcaTable> {
    let table = tables::read_parquet(path, None)?;
    let mut rows = Vec::new();
    for b in &table.batches {
        let component = tables::column::<UInt32Array>(b, "component", path)?;
        let feature = strings(b, "feature", path)?;
        let loading = f64s(b, "loading", path)?;
        let evr = f64s(b, "explained_variance_ratio", path)?;
        for i in 0..b.num_rows() {
            rows.push((
                component.value(i),
                feature.value(i).to_string(),
                loading.value(i),
                evr.value(i),
            ));
        }
    }
    Ok(PcaTable {
        path: path.to_path_buf(),
        rows,
        metadata: table.metadata,
    })
}

/// One cell of a `monitor_metrics` table (see `eval::report`); undefined rates are None.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricRow {
    /// The split the file was written for (`lopo`, `held_out_types`, a perturbation).
    pub split: String,
    /// Whether the file is a threshold sweep (`monitor_sweep-*`).
    pub sweep: bool,
    pub tau: Option<f64>,
    pub scope: String,
    pub held_out: String,
    pub feature_set: String,
    pub regressor: String,
    pub n: u64,
    pub positives: u64,
    pub negatives: u64,
    pub fnr: Option<f64>,
    pub fnr_ci: Option<(f64, f64)>,
    pub fpr: Option<f64>,
    pub fpr_ci: Option<(f64, f64)>,
    pub balanced_accuracy: Option<f64>,
    pub auroc: Option<f64>,
    pub auroc_ci: Option<(f64, f64)>,
}

pub fn metric_rows(files: &[PathBuf]) -> Result<Vec<MetricRow>> {
    let mut out = Vec::new();
    for path in files {
        let table = tables::read_parquet(path, None)?;
        let stem = path
            .file_stem()
            .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
        let sweep = stem.starts_with("monitor_sweep");
        let split = table
            .metadata
            .get("monitor.split")
            .cloned()
            .or_else(|| stem.split_once('-').map(|(_, s)| s.to_string()))
            .unwrap_or_default();
        let meta_tau = table
            .metadata
            .get("monitor.tau")
            .and_then(|t| t.parse::<f64>().ok());
        for b in &table.batches {
            let s = |n| strings(b, n, path);
            let (scope, held, fs, reg) = (
                s("scope")?,
                s("held_out")?,
                s("feature_set")?,
                s("regressor")?,
            );
            let (n, pos, neg) = (
                u64s(b, "n", path)?,
                u64s(b, "positives", path)?,
                u64s(b, "negatives", path)?,
            );
            let o = |n| opt_f64s(b, n, path);
            let tau = if b.column_by_name("tau").is_some() {
                o("tau")?
            } else {
                vec![meta_tau; b.num_rows()]
            };
            let (fnr, fnr_l, fnr_h) = (o("fnr")?, o("fnr_low")?, o("fnr_high")?);
            let (fpr, fpr_l, fpr_h) = (o("fpr")?, o("fpr_low")?, o("fpr_high")?);
            let (bal, auc, auc_l, auc_h) = (
                o("balanced_accuracy")?,
                o("auroc")?,
                o("auroc_low")?,
                o("auroc_high")?,
            );
            let ci = |l: &[Option<f64>], h: &[Option<f64>], i: usize| l[i].zip(h[i]);
            for i in 0..b.num_rows() {
                out.push(MetricRow {
                    split: split.clone(),
                    sweep,
                    tau: tau[i],
                    scope: scope.value(i).to_string(),
                    held_out: held.value(i).to_string(),
                    feature_set: fs.value(i).to_string(),
                    regressor: reg.value(i).to_string(),
                    n: n.value(i),
                    positives: pos.value(i),
                    negatives: neg.value(i),
                    fnr: fnr[i],
                    fnr_ci: ci(&fnr_l, &fnr_h, i),
                    fpr: fpr[i],
                    fpr_ci: ci(&fpr_l, &fpr_h, i),
                    balanced_accuracy: bal[i],
                    auroc: auc[i],
                    auroc_ci: ci(&auc_l, &auc_h, i),
                });
            }
        }
    }
    Ok(out)
}

/// Whether a feature set is one of the seeded random bases (`random_<k>`).
pub fn is_random_basis(name: &str) -> bool {
    name.strip_prefix("random_")
        .is_some_and(|k| k.parse::<usize>().is_ok())
}

/// One model's pairwise cosines of trait directions (`trait_cosines` table).
#[derive(Debug, Clone, PartialEq)]
pub struct Cosines {
    pub model: String,
    pub layer: u32,
    /// (trait_a, trait_b) -> cosine.
    pub values: BTreeMap<(String, String), f64>,
}

pub fn cosines(path: &Path) -> Result<Cosines> {
    let table = tables::read_parquet(path, None)?;
    let model = table.metadata.get("model").cloned().unwrap_or_else(|| {
        path.parent()
            .and_then(Path::file_name)
            .map_or_else(|| "model".into(), |n| n.to_string_lossy().into_owned())
    });
    let mut by_layer: BTreeMap<u32, BTreeMap<(String, String), f64>> = BTreeMap::new();
    for b in &table.batches {
        let layer = tables::column::<UInt32Array>(b, "layer", path)?;
        let (a, bb) = (strings(b, "trait_a", path)?, strings(b, "trait_b", path)?);
        let cos = f64s(b, "cosine", path)?;
        for i in 0..b.num_rows() {
            by_layer.entry(layer.value(i)).or_default().insert(
                (a.value(i).to_string(), bb.value(i).to_string()),
                cos.value(i),
            );
        }
    }
    // The table holds l* only; if it holds several layers, the metadata's layer or the last.
    let wanted = table
        .metadata
        .get("layer")
        .or_else(|| table.metadata.get("best_layer"))
        .and_then(|l| l.parse::<u32>().ok());
    let layer = wanted
        .filter(|l| by_layer.contains_key(l))
        .or_else(|| by_layer.keys().next_back().copied());
    let Some(layer) = layer else {
        return Ok(Cosines {
            model,
            layer: 0,
            values: BTreeMap::new(),
        });
    };
    let values = by_layer.remove(&layer).unwrap_or_default();
    Ok(Cosines {
        model,
        layer,
        values,
    })
}

/// One checkpoint of the step-aware alarm (`step_alarm` table, `lopo --step-alarm`).
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmRow {
    pub model: String,
    pub perturbation: String,
    pub seed: u64,
    pub step: u64,
    pub fold: String,
    pub target: f64,
    pub probability: f64,
}

/// The rows and the threshold tau of the `step_alarm` tables `files`.
pub fn alarm_rows(files: &[PathBuf]) -> Result<(Vec<AlarmRow>, Option<f64>)> {
    let mut out = Vec::new();
    let mut tau = None;
    for path in files {
        let table = tables::read_parquet(path, None)?;
        tau = tau.or_else(|| {
            table
                .metadata
                .get("monitor.tau")
                .and_then(|t| t.parse::<f64>().ok())
        });
        for b in &table.batches {
            let (model, pert, fold) = (
                strings(b, "model", path)?,
                strings(b, "perturbation", path)?,
                strings(b, "fold", path)?,
            );
            let (seed, step) = (u64s(b, "seed", path)?, u64s(b, "step", path)?);
            let (target, prob) = (f64s(b, "target", path)?, f64s(b, "probability", path)?);
            for i in 0..b.num_rows() {
                out.push(AlarmRow {
                    model: model.value(i).to_string(),
                    perturbation: perturbation_name(pert.value(i), seed.value(i)),
                    seed: seed.value(i),
                    step: step.value(i),
                    fold: fold.value(i).to_string(),
                    target: target.value(i),
                    probability: prob.value(i),
                });
            }
        }
    }
    Ok((out, tau))
}

/// The leave-one-perturbation-out PC1 stability (`pc1_stability` table) and its metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct Stability {
    /// (perturbation left out, cosine to the full PC1, PC1 share of variance).
    pub rows: Vec<(String, f64, f64)>,
    pub metadata: BTreeMap<String, String>,
}

pub fn stability(path: &Path) -> Result<Stability> {
    let table = tables::read_parquet(path, None)?;
    let mut rows = Vec::new();
    for b in &table.batches {
        let left = strings(b, "perturbation_left_out", path)?;
        let (cos, share) = (
            f64s(b, "cosine_to_full", path)?,
            f64s(b, "pc1_share", path)?,
        );
        for i in 0..b.num_rows() {
            rows.push((left.value(i).to_string(), cos.value(i), share.value(i)));
        }
    }
    Ok(Stability {
        rows,
        metadata: table.metadata,
    })
}
