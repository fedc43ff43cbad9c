//! One evaluation: every feature set x regressor over a list of folds, per model and pooled
//! over models, with cluster-bootstrap intervals over whole runs.

use crate::Result;
use crate::bootstrap::{BootstrapInterval, cluster_bootstrap, cluster_ids};
use crate::dataset::MonitorData;
use crate::folds::Fold;
use crate::metrics::{Metrics, metrics};
use crate::monitor::{LOGISTIC, Prediction, Regressor, alarm_threshold, predict_folds_reduced};
use serde::Serialize;

/// A 95% interval.
pub type Interval = Option<(f64, f64)>;

/// Metrics of one (scope, feature set, regressor) cell; scope is a model name or `pooled`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cell {
    pub scope: String,
    pub held_out: String,
    pub feature_set: String,
    pub regressor: String,
    pub n: usize,
    pub metrics: Metrics,
    pub fnr_ci: Interval,
    pub fpr_ci: Interval,
    pub auroc_ci: Interval,
    /// Bootstrap resamples left out of an interval because the metric had no value on them
    /// (no positive drawn: FNR and AUROC; no negative: FPR and AUROC), the most over the
    /// three intervals, out of [`EvalSettings::resamples`]; 0 without intervals.
    pub bootstrap_dropped: usize,
}

/// One out-of-fold prediction with what it was made by.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PredictionRow {
    pub feature_set: String,
    pub regressor: String,
    pub prediction: Prediction,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EvalSettings {
    pub tau: f64,
    /// Cluster-bootstrap resamples (0: no intervals).
    pub resamples: usize,
    pub seed: u64,
}

pub const POOLED: &str = "pooled";

/// Evaluate every feature set of `data` with every regressor over `folds`; `held_out` names
/// the split in the output (a perturbation, `lopo` or `held_out_types`).
pub fn evaluate(
    data: &MonitorData,
    folds: &[Fold],
    regressors: &[Regressor],
    settings: EvalSettings,
    held_out: &str,
) -> Result<(Vec<Cell>, Vec<PredictionRow>)> {
    let cps = &data.checkpoints;
    let mut models: Vec<&str> = folds.iter().map(|f| f.model.as_str()).collect();
    models.dedup();
    let mut cells = Vec::new();
    let mut rows = Vec::new();
    for fs in &data.feature_sets {
        for regressor in regressors {
            let range = data.label.prediction_range();
            let preds =
                predict_folds_reduced(cps, &fs.rows, fs.reduction, folds, regressor, range)?;
            let mut scopes: Vec<(String, Vec<Prediction>)> = models
                .iter()
                .map(|m| {
                    let p = preds
                        .iter()
                        .copied()
                        .filter(|p| cps[p.checkpoint].model == *m);
                    (m.to_string(), p.collect())
                })
                .collect();
            if models.len() > 1 {
                scopes.push((POOLED.to_string(), preds.clone()));
            }
            for (scope, p) in scopes {
                cells.push(cell(
                    data,
                    &p,
                    settings,
                    [&scope, held_out, &fs.name, regressor.name()],
                ));
            }
            // Several folds per model (LOPO): each (model, held-out perturbation) cell too,
            // the grid of Fig. 7.
            if folds.len() > models.len() {
                for (f, fold) in folds.iter().enumerate() {
                    let p: Vec<Prediction> =
                        preds.iter().copied().filter(|p| p.fold == f).collect();
                    let held = fold.held_out.join("+");
                    let names = [fold.model.as_str(), &held, &fs.name, regressor.name()];
                    cells.push(cell(data, &p, settings, names));
                }
            }
            rows.extend(preds.into_iter().map(|prediction| PredictionRow {
                feature_set: fs.name.clone(),
                regressor: regressor.name().to_string(),
                prediction,
            }));
        }
    }
    Ok((cells, rows))
}

fn cell(data: &MonitorData, preds: &[Prediction], s: EvalSettings, names: [&str; 4]) -> Cell {
    let cps = &data.checkpoints;
    let scores: Vec<f64> = preds.iter().map(|p| p.predicted).collect();
    let labels: Vec<bool> = preds
        .iter()
        .map(|p| cps[p.checkpoint].target > s.tau)
        .collect();
    let alarm_at = alarm_threshold(names[3], s.tau);
    let m = metrics(&scores, &labels, alarm_at);
    let runs: Vec<_> = preds.iter().map(|p| cps[p.checkpoint].run()).collect();
    let clusters = cluster_ids(&runs);
    let ci = |f: fn(&Metrics) -> Option<f64>| -> BootstrapInterval {
        if s.resamples == 0 {
            return BootstrapInterval {
                interval: None,
                dropped: 0,
            };
        }
        cluster_bootstrap(&clusters, s.resamples, s.seed, |idx| {
            let sc: Vec<f64> = idx.iter().map(|&i| scores[i]).collect();
            let lb: Vec<bool> = idx.iter().map(|&i| labels[i]).collect();
            f(&metrics(&sc, &lb, alarm_at))
        })
    };
    let (fnr, fpr, auroc) = (ci(|m| m.fnr), ci(|m| m.fpr), ci(|m| m.auroc));
    Cell {
        scope: names[0].to_string(),
        held_out: names[1].to_string(),
        feature_set: names[2].to_string(),
        regressor: names[3].to_string(),
        n: preds.len(),
        fnr_ci: fnr.interval,
        fpr_ci: fpr.interval,
        auroc_ci: auroc.interval,
        bootstrap_dropped: fnr.dropped.max(fpr.dropped).max(auroc.dropped),
        metrics: m,
    }
}

/// Pooled metrics of the same out-of-fold predictions at other thresholds (the regressors
/// fit the continuous target, so only labels and alarms move): one cell per (tau, feature
/// set, regressor), scope `pooled`, no intervals.
pub fn threshold_sweep(
    data: &MonitorData,
    rows: &[PredictionRow],
    taus: &[f64],
) -> Vec<(f64, Cell)> {
    let mut groups: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r.feature_set.as_str(), r.regressor.as_str()))
        .collect();
    groups.dedup();
    // The logistic classifier was fit to one tau's labels; it has no sweep.
    groups.retain(|&(_, reg)| reg != LOGISTIC);
    let mut out = Vec::new();
    for &tau in taus {
        let settings = EvalSettings {
            tau,
            resamples: 0,
            seed: 0,
        };
        for &(fs, reg) in &groups {
            let preds: Vec<Prediction> = rows
                .iter()
                .filter(|r| r.feature_set == fs && r.regressor == reg)
                .map(|r| r.prediction)
                .collect();
            out.push((
                tau,
                cell(data, &preds, settings, [POOLED, "sweep", fs, reg]),
            ));
        }
    }
    out
}

/// Per feature set, the regressor with the best pooled balanced accuracy (AUROC breaks
/// ties), as METHOD section 6 selects it from the LOPO out-of-fold predictions.
pub fn select_regressors(cells: &[Cell], held_out: &str) -> Vec<(String, String)> {
    let mut best: Vec<(String, String, f64, f64)> = Vec::new();
    let pooled_scope = |c: &Cell| c.scope == POOLED || !cells.iter().any(|x| x.scope == POOLED);
    for c in cells
        .iter()
        .filter(|c| c.held_out == held_out && pooled_scope(c))
    {
        let score = (
            c.metrics.balanced_accuracy.unwrap_or(f64::NEG_INFINITY),
            c.metrics.auroc.unwrap_or(f64::NEG_INFINITY),
        );
        match best.iter_mut().find(|b| b.0 == c.feature_set) {
            Some(b) if (score.0, score.1) > (b.2, b.3) => {
                b.1 = c.regressor.clone();
                b.2 = score.0;
                b.3 = score.1;
            }
            Some(_) => {}
            None => best.push((c.feature_set.clone(), c.regressor.clone(), score.0, score.1)),
        }
    }
    best.into_iter().map(|b| (b.0, b.1)).collect()
}
