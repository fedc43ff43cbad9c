//! The monitor: a per-model regressor on a feature set, trained on a fold's training
//! checkpoints, predicting the EM target of its test checkpoints (clipped to [0, 1]); an
//! alarm when the prediction exceeds tau. Out-of-fold predictions of all folds are pooled.

use crate::ensemble::{BoostingParams, ForestParams, GradientBoosting, RandomForest};
use crate::folds::{Checkpoint, Fold};
use crate::linear::Ridge;
use crate::metrics::{Metrics, metrics};
use crate::reduction::{Projection, Reduction};
use crate::{EvalError, Result};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Regressor {
    Forest(ForestParams),
    Boosting(BoostingParams),
    Ridge { alpha: f64 },
}

impl Regressor {
    /// The paper's three regressors with its settings.
    pub fn paper_set() -> [Regressor; 3] {
        [
            Regressor::Forest(ForestParams::default()),
            Regressor::Boosting(BoostingParams::default()),
            Regressor::Ridge { alpha: 1.0 },
        ]
    }

    pub fn name(&self) -> &'static str {
        match self {
            Regressor::Forest(_) => "random_forest",
            Regressor::Boosting(_) => "gradient_boosting",
            Regressor::Ridge { .. } => "ridge",
        }
    }

    /// Fit on `(x_train, y_train)` and predict `x_test`, clipped to [0, 1].
    pub fn fit_predict(
        &self,
        x_train: &[Vec<f64>],
        y_train: &[f64],
        x_test: &[Vec<f64>],
    ) -> Result<Vec<f64>> {
        if x_train.is_empty() || x_train.len() != y_train.len() {
            return Err(EvalError::Input(format!(
                "{} training rows for {} targets",
                x_train.len(),
                y_train.len()
            )));
        }
        let raw: Vec<f64> = match self {
            Regressor::Forest(p) => {
                let m = RandomForest::fit(x_train, y_train, p);
                x_test.iter().map(|r| m.predict(r)).collect()
            }
            Regressor::Boosting(p) => {
                let m = GradientBoosting::fit(x_train, y_train, p);
                x_test.iter().map(|r| m.predict(r)).collect()
            }
            Regressor::Ridge { alpha } => {
                let m = Ridge::fit(x_train, y_train, *alpha)?;
                x_test.iter().map(|r| m.predict(r)).collect()
            }
        };
        Ok(raw.into_iter().map(|v| v.clamp(0.0, 1.0)).collect())
    }
}

/// One out-of-fold prediction.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Prediction {
    /// Index of the checkpoint.
    pub checkpoint: usize,
    pub fold: usize,
    pub predicted: f64,
}

/// Train and predict every fold. `features[i]` is checkpoint `i`'s feature vector.
pub fn predict_folds(
    checkpoints: &[Checkpoint],
    features: &[Vec<f64>],
    folds: &[Fold],
    regressor: &Regressor,
) -> Result<Vec<Prediction>> {
    predict_folds_reduced(checkpoints, features, None, folds, regressor)
}

/// As [`predict_folds`], first reducing the raw rows with `reduction` fit on each fold's
/// training rows (and targets) only.
pub fn predict_folds_reduced(
    checkpoints: &[Checkpoint],
    features: &[Vec<f64>],
    reduction: Option<Reduction>,
    folds: &[Fold],
    regressor: &Regressor,
) -> Result<Vec<Prediction>> {
    if features.len() != checkpoints.len() {
        return Err(EvalError::Input(format!(
            "{} feature rows for {} checkpoints",
            features.len(),
            checkpoints.len()
        )));
    }
    let mut out = Vec::new();
    for (f, fold) in folds.iter().enumerate() {
        fold.check(checkpoints)?;
        let mut x: Vec<Vec<f64>> = fold.train.iter().map(|&i| features[i].clone()).collect();
        let y: Vec<f64> = fold.train.iter().map(|&i| checkpoints[i].target).collect();
        let mut xt: Vec<Vec<f64>> = fold.test.iter().map(|&i| features[i].clone()).collect();
        if let Some(r) = reduction {
            let projection = Projection::fit(r, &x, &y)?;
            x = x.iter().map(|row| projection.apply(row)).collect();
            xt = xt.iter().map(|row| projection.apply(row)).collect();
        }
        let pred = regressor.fit_predict(&x, &y, &xt)?;
        out.extend(fold.test.iter().zip(pred).map(|(&i, p)| Prediction {
            checkpoint: i,
            fold: f,
            predicted: p,
        }));
    }
    Ok(out)
}

/// Pooled metrics of predictions: label = target > tau, alarm = prediction > tau.
pub fn pooled_metrics(checkpoints: &[Checkpoint], predictions: &[Prediction], tau: f64) -> Metrics {
    let scores: Vec<f64> = predictions.iter().map(|p| p.predicted).collect();
    let labels: Vec<bool> = predictions
        .iter()
        .map(|p| checkpoints[p.checkpoint].target > tau)
        .collect();
    metrics(&scores, &labels, tau)
}
