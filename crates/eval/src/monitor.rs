//! The monitor: a per-model regressor on a feature set, trained on a fold's training
//! checkpoints, predicting the EM target of its test checkpoints (clipped to the label's
//! range: [0, 1] for an EM rate, as the paper does; a signed label is not clipped); an
//! alarm when the prediction exceeds tau. The logistic comparator instead classifies
//! `target > tau` directly and alarms when its probability exceeds 0.5. Out-of-fold
//! predictions of all folds are pooled.

use crate::ensemble::{BoostingParams, ForestParams, GradientBoosting, RandomForest};
use crate::folds::{Checkpoint, Fold};
use crate::linear::{Logistic, Ridge, Standardizer};
use crate::metrics::{Metrics, metrics};
use crate::reduction::{Projection, Reduction};
use crate::{EvalError, Result};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Regressor {
    Forest(ForestParams),
    Boosting(BoostingParams),
    Ridge {
        alpha: f64,
    },
    /// L2 logistic regression (inverse strength `c`) on standardised features, classifying
    /// `target > tau`; predicts the probability.
    Logistic {
        c: f64,
        tau: f64,
    },
}

/// The logistic comparator's name in tables.
pub const LOGISTIC: &str = "logistic";

/// The prediction above which a regressor (by name) raises the alarm: tau for the EM-rate
/// regressors, 0.5 for the logistic classifier's probability.
pub fn alarm_threshold(regressor: &str, tau: f64) -> f64 {
    if regressor == LOGISTIC { 0.5 } else { tau }
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

    /// The paper's three regressors and the logistic classifier of `target > tau`.
    pub fn with_logistic(tau: f64) -> [Regressor; 4] {
        let [a, b, c] = Self::paper_set();
        [a, b, c, Regressor::Logistic { c: 1.0, tau }]
    }

    pub fn name(&self) -> &'static str {
        match self {
            Regressor::Forest(_) => "random_forest",
            Regressor::Boosting(_) => "gradient_boosting",
            Regressor::Ridge { .. } => "ridge",
            Regressor::Logistic { .. } => LOGISTIC,
        }
    }

    /// Fit on `(x_train, y_train)` and predict `x_test`, unclipped (the logistic
    /// comparator's probabilities lie in [0, 1] anyway).
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
            Regressor::Logistic { c, tau } => {
                let labels: Vec<bool> = y_train.iter().map(|&y| y > *tau).collect();
                // One class only: predict it (there is nothing to separate).
                if labels.iter().all(|&l| l == labels[0]) {
                    let p = f64::from(u8::from(labels[0]));
                    return Ok(vec![p; x_test.len()]);
                }
                let scale = Standardizer::fit(x_train)?;
                let z: Vec<Vec<f64>> = x_train.iter().map(|r| scale.transform(r)).collect();
                let m = Logistic::fit(&z, &labels, *c)?;
                x_test
                    .iter()
                    .map(|r| m.probability(&scale.transform(r)))
                    .collect()
            }
        };
        Ok(raw)
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

/// The range an EM rate's predictions are clipped to (the paper's [0, 1]).
pub const RATE_RANGE: (f64, f64) = (0.0, 1.0);

/// Train and predict every fold, predictions clipped to an EM rate's [0, 1].
/// `features[i]` is checkpoint `i`'s feature vector.
pub fn predict_folds(
    checkpoints: &[Checkpoint],
    features: &[Vec<f64>],
    folds: &[Fold],
    regressor: &Regressor,
) -> Result<Vec<Prediction>> {
    predict_folds_reduced(checkpoints, features, None, folds, regressor, RATE_RANGE)
}

/// As [`predict_folds`], first reducing the raw rows with `reduction` fit on each fold's
/// training rows (and targets) only, and clipping predictions to `range` (the label's:
/// see `LabelSource::prediction_range`).
pub fn predict_folds_reduced(
    checkpoints: &[Checkpoint],
    features: &[Vec<f64>],
    reduction: Option<Reduction>,
    folds: &[Fold],
    regressor: &Regressor,
    range: (f64, f64),
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
            predicted: p.clamp(range.0, range.1),
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn logistic_classifies_target_above_tau_and_alarms_at_one_half() {
        // EM rate rises with the first feature; the second is noise.
        let x: Vec<Vec<f64>> = (0..20)
            .map(|i| vec![f64::from(i) * 1e-3, f64::from(i % 3)])
            .collect();
        let y: Vec<f64> = (0..20).map(|i| if i >= 10 { 0.2 } else { 0.01 }).collect();
        let reg = Regressor::Logistic { c: 1.0, tau: 0.05 };
        let p = reg
            .fit_predict(&x, &y, &[vec![0.0, 1.0], vec![0.019, 1.0]])
            .unwrap();
        assert!(p[0] < 0.2 && p[1] > 0.8, "{p:?}");
        assert_eq!(alarm_threshold(reg.name(), 0.05), 0.5);
        assert_eq!(alarm_threshold("random_forest", 0.05), 0.05);
        // One class in training: that class, whatever the features.
        let p = reg.fit_predict(&x, &[0.0; 20], &[vec![1.0, 1.0]]).unwrap();
        assert_eq!(p, vec![0.0]);
    }

    #[test]
    fn a_signed_label_keeps_its_negative_predictions() {
        // Two "runs" whose target falls with the feature, one held out: ridge predicts
        // negative values for it. Clipped to a rate's [0, 1] they would all tie at 0.
        let cp = |pert: &str, step: u64, target: f64| Checkpoint {
            model: "m".into(),
            perturbation: pert.into(),
            seed: 1,
            step,
            target,
        };
        let cps: Vec<Checkpoint> = (1..=6)
            .map(|s| cp("a", s, -0.2 * s as f64))
            .chain((1..=3).map(|s| cp("b", s, -0.3 * s as f64)))
            .collect();
        let x: Vec<Vec<f64>> = cps.iter().map(|c| vec![c.target]).collect();
        let fold = Fold {
            model: "m".into(),
            held_out: vec!["b".into()],
            train: (0..6).collect(),
            test: (6..9).collect(),
        };
        let ridge = Regressor::Ridge { alpha: 1e-6 };
        let run = |range| {
            predict_folds_reduced(&cps, &x, None, std::slice::from_ref(&fold), &ridge, range)
                .unwrap()
                .iter()
                .map(|p| p.predicted)
                .collect::<Vec<f64>>()
        };
        let signed = run((f64::NEG_INFINITY, f64::INFINITY));
        assert!(signed.windows(2).all(|w| w[1] < w[0]), "{signed:?}");
        assert!((signed[2] + 0.9).abs() < 1e-3, "{signed:?}");
        assert_eq!(run(RATE_RANGE), vec![0.0; 3]);
    }
}
