//! One evaluation: every feature set x regressor over a list of folds, per model and pooled
//! over models, with cluster-bootstrap intervals over whole runs.

use crate::Result;
use crate::bootstrap::{cluster_bootstrap, cluster_ids};
use crate::dataset::MonitorData;
use crate::folds::Fold;
use crate::metrics::{Metrics, metrics};
use crate::monitor::{Prediction, Regressor, predict_folds};
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
            let preds = predict_folds(cps, &fs.rows, folds, regressor)?;
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
    let m = metrics(&scores, &labels, s.tau);
    let runs: Vec<_> = preds.iter().map(|p| cps[p.checkpoint].run()).collect();
    let clusters = cluster_ids(&runs);
    let ci = |f: fn(&Metrics) -> Option<f64>| -> Interval {
        if s.resamples == 0 {
            return None;
        }
        cluster_bootstrap(&clusters, s.resamples, s.seed, |idx| {
            let sc: Vec<f64> = idx.iter().map(|&i| scores[i]).collect();
            let lb: Vec<bool> = idx.iter().map(|&i| labels[i]).collect();
            f(&metrics(&sc, &lb, s.tau))
        })
    };
    Cell {
        scope: names[0].to_string(),
        held_out: names[1].to_string(),
        feature_set: names[2].to_string(),
        regressor: names[3].to_string(),
        n: preds.len(),
        fnr_ci: ci(|m| m.fnr),
        fpr_ci: ci(|m| m.fpr),
        auroc_ci: ci(|m| m.auroc),
        metrics: m,
    }
}
