//! The monitor's data, gathered from an experiment's results directory: every `drift`
//! table (feature sets per checkpoint), every `em_summary` table (EM targets), and a `pca`
//! table if there is one (the frozen cluster PC1). Files are found by their table kind,
//! wherever they lie under the directory, so any layout works. Checkpoints are joined on
//! (model, perturbation, seed, step).

use crate::folds::Checkpoint;
use crate::reduction::Reduction;
use crate::{EvalError, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use tables::RunKey;
use tables::arrow::array::{Float64Array, StringArray, UInt64Array};

/// The `em_summary` table kind (written by the em crate; read here by its columns).
const EM_SUMMARY: &str = "em_summary";
/// The `em_label` table kind: the log-odds shift, as a fraction of the control scale.
const EM_LABEL: &str = "em_label";
/// Statistics that carry a label, in order of preference (see `em::labels`).
pub const EM_RATE: &str = "em_rate";
pub const PROXY_EM: &str = "proxy_em";

/// Which EM number is the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelSource {
    /// The free-form EM rate (the paper's label).
    EmRate,
    /// The paired-choice proxy's increase over step 0.
    ProxyIncrease,
    /// The paired-choice label: the mean paired change of the misaligned answer's log-odds
    /// since step 0, as a fraction of the base model's positive-control shift.
    LogOddsShift,
}

impl LabelSource {
    /// What a regressor's prediction of this target is clipped to: an EM rate's [0, 1] (the
    /// paper's clip), a change in rate's [-1, 1]; the log-odds label is signed and
    /// unbounded (a run can move further than the controls, or away from misalignment), so
    /// clipping it would tie every prediction below zero and blunt the AUROC.
    pub fn prediction_range(self) -> (f64, f64) {
        match self {
            LabelSource::EmRate => (0.0, 1.0),
            LabelSource::ProxyIncrease => (-1.0, 1.0),
            LabelSource::LogOddsShift => (f64::NEG_INFINITY, f64::INFINITY),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            LabelSource::EmRate => "EM rate (free-form judge)",
            LabelSource::ProxyIncrease => "proxy EM increase over step 0 (paired choice)",
            LabelSource::LogOddsShift => {
                "log-odds shift toward misaligned answers, fraction of the control (paired choice)"
            }
        }
    }
}

/// One feature set: a name, its column names and one row per checkpoint; rows of a set
/// with a `reduction` are raw and reduced inside each fold (PCA-7, PLS-7).
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureSet {
    pub name: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<f64>>,
    pub reduction: Option<Reduction>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MonitorData {
    pub checkpoints: Vec<Checkpoint>,
    pub feature_sets: Vec<FeatureSet>,
    pub label: LabelSource,
}

type Key = (RunKey, u64);

/// The (run, step) of every row of a per-checkpoint table's batch.
fn checkpoint_keys(b: &tables::arrow::array::RecordBatch, path: &Path) -> Result<Vec<Key>> {
    let model = tables::column::<StringArray>(b, "model", path)?;
    let perturbation = tables::column::<StringArray>(b, "perturbation", path)?;
    let seed = tables::column::<UInt64Array>(b, "seed", path)?;
    let step = tables::column::<UInt64Array>(b, "step", path)?;
    Ok((0..b.num_rows())
        .map(|i| {
            let run = RunKey {
                model: model.value(i).into(),
                perturbation: perturbation.value(i).into(),
                seed: seed.value(i),
            };
            (run, step.value(i))
        })
        .collect())
}

/// Every EM target a checkpoint has.
#[derive(Debug, Clone, Copy, Default)]
struct Targets {
    em_rate: Option<f64>,
    proxy_increase: Option<f64>,
    log_odds_shift: Option<f64>,
}

impl Targets {
    fn get(&self, label: LabelSource) -> Option<f64> {
        match label {
            LabelSource::EmRate => self.em_rate,
            LabelSource::ProxyIncrease => self.proxy_increase,
            LabelSource::LogOddsShift => self.log_odds_shift,
        }
    }
}

/// The control fraction of the overall group per checkpoint from one `em_label` table.
fn read_label(path: &Path, out: &mut BTreeMap<Key, Targets>) -> Result<()> {
    let table = tables::read_parquet(path, None)?;
    for b in &table.batches {
        let keys = checkpoint_keys(b, path)?;
        let group = tables::column::<StringArray>(b, "group", path)?;
        let fraction = tables::column::<Float64Array>(b, "control_fraction", path)?;
        for (i, key) in keys.into_iter().enumerate() {
            if group.value(i) == "all" {
                let v = fraction.value(i);
                out.entry(key).or_default().log_odds_shift = v.is_finite().then_some(v);
            }
        }
    }
    Ok(())
}

/// EM targets per checkpoint from one `em_summary` table: (EM rate, proxy increase).
fn read_em(path: &Path, out: &mut BTreeMap<Key, Targets>) -> Result<()> {
    let table = tables::read_parquet(path, None)?;
    for b in &table.batches {
        let keys = checkpoint_keys(b, path)?;
        let statistic = tables::column::<StringArray>(b, "statistic", path)?;
        let group = tables::column::<StringArray>(b, "group", path)?;
        let rate = tables::column::<Float64Array>(b, "rate", path)?;
        let delta = tables::column::<Float64Array>(b, "delta_from_step0", path)?;
        for (i, key) in keys.into_iter().enumerate() {
            if group.value(i) != "all" {
                continue;
            }
            let entry = out.entry(key).or_default();
            let finite = |v: f64| v.is_finite().then_some(v);
            match statistic.value(i) {
                EM_RATE => entry.em_rate = finite(rate.value(i)),
                PROXY_EM => entry.proxy_increase = finite(delta.value(i)),
                _ => {}
            }
        }
    }
    Ok(())
}

/// One checkpoint's non-activation baselines.
#[derive(Debug, Clone, Default)]
struct Stats {
    train_loss: Option<f64>,
    lora_norm: Option<f64>,
    lora_layers: BTreeMap<u64, f64>,
}

fn read_stats(path: &Path, out: &mut BTreeMap<Key, Stats>) -> Result<()> {
    let table = tables::read_parquet(path, None)?;
    for b in &table.batches {
        let keys = checkpoint_keys(b, path)?;
        let statistic = tables::column::<StringArray>(b, "statistic", path)?;
        let index = tables::column::<UInt64Array>(b, "index", path)?;
        let value = tables::column::<Float64Array>(b, "value", path)?;
        for (i, key) in keys.into_iter().enumerate() {
            let entry = out.entry(key).or_default();
            let v = value.value(i);
            match statistic.value(i) {
                drift::table::TRAIN_LOSS => entry.train_loss = Some(v),
                drift::table::LORA_NORM => entry.lora_norm = Some(v),
                drift::table::LORA_NORM_LAYER => {
                    entry.lora_layers.insert(index.value(i), v);
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// Training loss, LoRA norm and per-layer LoRA norms, each where every labelled checkpoint
/// has it (a layer without an adapter, or step 0, has norm 0).
fn stat_feature_sets(keys: &[&Key], stats: &BTreeMap<Key, Stats>) -> Vec<FeatureSet> {
    let mut out = Vec::new();
    let scalar = |f: fn(&Stats) -> Option<f64>| -> Option<Vec<Vec<f64>>> {
        keys.iter()
            .map(|k| stats.get(*k).and_then(f).map(|v| vec![v]))
            .collect()
    };
    for (name, rows) in [
        ("train_loss", scalar(|s| s.train_loss)),
        ("lora_norm", scalar(|s| s.lora_norm)),
    ] {
        if let Some(rows) = rows {
            out.push(FeatureSet {
                name: name.into(),
                columns: vec![name.into()],
                rows,
                reduction: None,
            });
        }
    }
    let layers = keys
        .iter()
        .filter_map(|k| stats.get(*k))
        .filter_map(|s| s.lora_layers.keys().max())
        .max()
        .map(|m| m + 1);
    if let Some(n) = layers
        && keys.iter().all(|k| stats.contains_key(*k))
    {
        out.push(FeatureSet {
            name: "lora_norm_layers".into(),
            columns: (0..n).map(|l| format!("layer{l}")).collect(),
            rows: keys
                .iter()
                .map(|k| {
                    (0..n)
                        .map(|l| stats[*k].lora_layers.get(&l).copied().unwrap_or(0.0))
                        .collect()
                })
                .collect(),
            reduction: None,
        });
    }
    out
}

/// The prompt-mean activations `traitwatch drift` writes beside a run's drift table.
pub const PROMPT_MEANS: &str = "prompt_mean.safetensors";

/// `(h̄(t) - h̄(0)) / N` per checkpoint of `run`, from its prompt means.
fn read_activation_drift(
    path: &Path,
    run: &RunKey,
    normaliser: f64,
    out: &mut BTreeMap<Key, Vec<f64>>,
) -> Result<()> {
    let bad = |reason: String| EvalError::Input(format!("{}: {reason}", path.display()));
    let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| bad(e.to_string()))?;
    let f32s = |name: &str| -> Result<(Vec<usize>, Vec<f64>)> {
        let (shape, values) = tables::tensor::read_f32(&st, name).map_err(bad)?;
        Ok((shape, values.into_iter().map(f64::from).collect()))
    };
    let (shape, means) = f32s("prompt_mean")?;
    let (_, steps) = f32s("steps")?;
    let [n, d] = shape[..] else {
        return Err(bad(format!(
            "prompt_mean has shape {shape:?}, expected [checkpoints, d]"
        )));
    };
    let zero = steps
        .iter()
        .position(|&s| s == 0.0)
        .ok_or_else(|| bad("no step-0 prompt mean".into()))?;
    if steps.len() != n || normaliser.is_nan() || normaliser <= 0.0 {
        return Err(bad("steps do not match the prompt means, or N <= 0".into()));
    }
    let base = &means[zero * d..(zero + 1) * d];
    for (i, &step) in steps.iter().enumerate() {
        let row = &means[i * d..(i + 1) * d];
        let drift = row
            .iter()
            .zip(base)
            .map(|(a, b)| (a - b) / normaliser)
            .collect();
        out.insert((run.clone(), step as u64), drift);
    }
    Ok(())
}

/// Gather everything under `dir`. `label` None: the free-form EM rate where every joined
/// checkpoint has one, else the log-odds shift where every one has it, else the proxy
/// increase. Step 0 (the base model: zero drift by definition) is never a row: METHOD
/// section 3 keeps it out of every training and evaluation set.
pub fn load_results(dir: &Path, label: Option<LabelSource>) -> Result<MonitorData> {
    let files = tables::parquet_files(dir)
        .map_err(|e| EvalError::Input(format!("cannot list the results: {e}")))?;
    let mut em: BTreeMap<Key, Targets> = BTreeMap::new();
    // (key) -> feature set -> drift vector; and the activation-norm drift per key.
    let mut drift: BTreeMap<Key, BTreeMap<String, Vec<f64>>> = BTreeMap::new();
    let mut norm: BTreeMap<Key, f64> = BTreeMap::new();
    let mut columns: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut pca = None;
    let mut activation: BTreeMap<Key, Vec<f64>> = BTreeMap::new();
    let mut stats: BTreeMap<Key, Stats> = BTreeMap::new();
    for path in &files {
        let kind = tables::table_kind(path)?.unwrap_or_default();
        match kind.as_str() {
            EM_SUMMARY => read_em(path, &mut em)?,
            EM_LABEL => read_label(path, &mut em)?,
            "drift" => {
                let runs = drift::table::read_drift(path)?;
                let means = path.with_file_name(PROMPT_MEANS);
                // Prompt means belong to the one run a drift directory holds.
                if let (Some((run, series)), true) = (runs.first(), means.exists())
                    && runs.iter().all(|(r, _)| r == run)
                {
                    read_activation_drift(&means, run, series.normaliser, &mut activation)?;
                }
                for (run, series) in runs {
                    columns.insert(series.feature_set.clone(), series.feature_names.clone());
                    for p in &series.points {
                        let key = (run.clone(), p.step);
                        norm.insert(key.clone(), p.activation_norm_drift);
                        drift
                            .entry(key)
                            .or_default()
                            .insert(series.feature_set.clone(), p.drift.clone());
                    }
                }
            }
            "pca" => pca = Some(drift::table::read_pca(path)?),
            "checkpoint_stats" => read_stats(path, &mut stats)?,
            _ => {}
        }
    }
    if drift.is_empty() {
        return Err(EvalError::Input(format!(
            "no drift tables under {} (run `traitwatch drift` on the finetuning runs)",
            dir.display()
        )));
    }
    if em.is_empty() {
        return Err(EvalError::Input(format!(
            "no EM summaries under {} (run `traitwatch em` or `traitwatch em-freeform`)",
            dir.display()
        )));
    }
    let joined: Vec<&Key> = drift
        .keys()
        .filter(|k| k.1 != 0 && em.contains_key(*k))
        .collect();
    if joined.is_empty() {
        return Err(EvalError::Input(
            "no checkpoint has both drift and an EM label: are the model, perturbation and \
             seed labels the same in both?"
                .into(),
        ));
    }
    let everywhere = |l: LabelSource| joined.iter().all(|k| em[*k].get(l).is_some());
    let label = label.unwrap_or(if everywhere(LabelSource::EmRate) {
        LabelSource::EmRate
    } else if everywhere(LabelSource::LogOddsShift) {
        LabelSource::LogOddsShift
    } else {
        LabelSource::ProxyIncrease
    });
    let target = |k: &Key| em[k].get(label);
    let keys: Vec<&Key> = joined.into_iter().filter(|k| target(k).is_some()).collect();
    let checkpoints: Vec<Checkpoint> = keys
        .iter()
        .map(|(run, step)| Checkpoint {
            model: run.model.clone(),
            perturbation: run.perturbation.clone(),
            seed: run.seed,
            step: *step,
            target: target(&(run.clone(), *step)).unwrap_or(f64::NAN),
        })
        .collect();

    // Feature sets present at every checkpoint; others are reported and left out.
    let mut feature_sets = Vec::new();
    let names: BTreeSet<&String> = drift.values().flat_map(|m| m.keys()).collect();
    for name in names {
        let rows: Option<Vec<Vec<f64>>> =
            keys.iter().map(|k| drift[*k].get(name).cloned()).collect();
        match rows {
            Some(rows) => feature_sets.push(FeatureSet {
                name: name.clone(),
                columns: columns[name].clone(),
                rows,
                reduction: None,
            }),
            None => {
                tracing::warn!(feature_set = %name, "not measured at every labelled checkpoint; left out")
            }
        }
    }
    feature_sets.push(FeatureSet {
        name: "activation_norm".into(),
        columns: vec!["activation_norm_drift".into()],
        rows: keys.iter().map(|k| vec![norm[*k]]).collect(),
        reduction: None,
    });
    feature_sets.extend(stat_feature_sets(&keys, &stats));
    // PCA-7 and PLS-7 on the raw activation drift, where every run has its prompt means.
    let raw: Option<Vec<Vec<f64>>> = keys.iter().map(|k| activation.get(*k).cloned()).collect();
    match raw {
        Some(rows) if !rows.is_empty() => {
            let columns: Vec<String> = (0..rows[0].len()).map(|i| format!("h{i}")).collect();
            for (name, reduction) in [("pca7", Reduction::Pca(7)), ("pls7", Reduction::Pls(7))] {
                feature_sets.push(FeatureSet {
                    name: name.into(),
                    columns: columns.clone(),
                    rows: rows.clone(),
                    reduction: Some(reduction),
                });
            }
        }
        _ if !activation.is_empty() => {
            tracing::warn!("prompt means missing for some runs: PCA-7 and PLS-7 left out");
        }
        _ => {}
    }
    if let Some(pca) = pca {
        // The PCA was fit on one bank's feature set (`alignment`, or a bank of another name):
        // the one whose columns are the PCA's features.
        let fits = |f: &&FeatureSet| f.reduction.is_none() && f.columns == pca.feature_names;
        let Some(alignment) = feature_sets
            .iter()
            .filter(fits)
            .find(|f| f.name == "alignment")
            .or_else(|| feature_sets.iter().find(fits))
        else {
            return Err(EvalError::Input(format!(
                "the pca table's features {:?} are no feature set's columns in the drift tables",
                pca.feature_names
            )));
        };
        let u = &pca.components[0];
        let signed: Vec<f64> = alignment
            .rows
            .iter()
            .map(|x| x.iter().zip(u).map(|(a, b)| a * b).sum())
            .collect();
        feature_sets.push(FeatureSet {
            name: "pc1_abs".into(),
            columns: vec!["abs_pc1".into()],
            rows: signed.iter().map(|v| vec![v.abs()]).collect(),
            reduction: None,
        });
        feature_sets.push(FeatureSet {
            name: "pc1_signed".into(),
            columns: vec!["pc1".into()],
            rows: signed.iter().map(|v| vec![*v]).collect(),
            reduction: None,
        });
    }
    tracing::info!(
        checkpoints = checkpoints.len(),
        feature_sets = feature_sets.len(),
        label = label.name(),
        "monitor data loaded"
    );
    Ok(MonitorData {
        checkpoints,
        feature_sets,
        label,
    })
}
