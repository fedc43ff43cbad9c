//! Which checkpoints train and which test (METHOD section 6). Monitors are per model: a
//! fold never mixes models. Leave-one-perturbation-out (LOPO) inside calibration holds out
//! one calibration perturbation; the headline split trains on all calibration
//! perturbations and tests on the held-out types. Every fold checks that no checkpoint of
//! a held-out perturbation is in its training set.

use crate::{EvalError, Result};
use serde::{Deserialize, Serialize};

/// The paper's calibration perturbations, in its order.
pub const CALIBRATION: [&str; 4] = ["insecure_code", "gsm8k", "jailbroken", "bad_medical"];
/// The paper's held-out perturbation types.
pub const HELD_OUT: [&str; 3] = ["number_sequence", "risky_financial", "subtle_misinfo"];

/// One evaluated checkpoint: which run, which step, and its EM target (the free-form EM
/// rate, or the proxy's increase over step 0; see `em::labels`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub model: String,
    pub perturbation: String,
    pub seed: u64,
    pub step: u64,
    pub target: f64,
}

impl Checkpoint {
    /// The run this checkpoint belongs to: the unit of the cluster bootstrap.
    pub fn run(&self) -> (&str, &str, u64) {
        (&self.model, &self.perturbation, self.seed)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fold {
    pub model: String,
    /// Perturbations whose checkpoints are tested (never trained on).
    pub held_out: Vec<String>,
    pub train: Vec<usize>,
    pub test: Vec<usize>,
}

impl Fold {
    /// The fold's promises: one model, disjoint sets, nothing held out in training.
    pub fn check(&self, checkpoints: &[Checkpoint]) -> Result<()> {
        for &i in self.train.iter().chain(&self.test) {
            if checkpoints[i].model != self.model {
                return Err(EvalError::Leak(format!(
                    "fold for {} contains a checkpoint of {}",
                    self.model, checkpoints[i].model
                )));
            }
        }
        if let Some(&i) = self
            .train
            .iter()
            .find(|&&i| self.held_out.contains(&checkpoints[i].perturbation))
        {
            return Err(EvalError::Leak(format!(
                "held-out perturbation {} is in the training set of the {} fold",
                checkpoints[i].perturbation, self.model
            )));
        }
        if self.test.iter().any(|i| self.train.contains(i)) {
            return Err(EvalError::Leak(
                "a checkpoint is both trained and tested".into(),
            ));
        }
        Ok(())
    }
}

fn models(checkpoints: &[Checkpoint]) -> Vec<String> {
    let mut m: Vec<String> = checkpoints.iter().map(|c| c.model.clone()).collect();
    m.sort();
    m.dedup();
    m
}

fn indices(checkpoints: &[Checkpoint], model: &str, perts: &[&str]) -> Vec<usize> {
    (0..checkpoints.len())
        .filter(|&i| {
            checkpoints[i].model == model && perts.contains(&checkpoints[i].perturbation.as_str())
        })
        .collect()
}

/// Per model and calibration perturbation: train on the other calibration perturbations,
/// test on that one. Folds with nothing to test or train on are left out.
pub fn lopo_folds(checkpoints: &[Checkpoint], calibration: &[&str]) -> Result<Vec<Fold>> {
    let mut folds = Vec::new();
    for model in models(checkpoints) {
        for &held in calibration {
            let rest: Vec<&str> = calibration.iter().copied().filter(|&p| p != held).collect();
            let fold = Fold {
                held_out: vec![held.to_string()],
                train: indices(checkpoints, &model, &rest),
                test: indices(checkpoints, &model, &[held]),
                model: model.clone(),
            };
            if !fold.train.is_empty() && !fold.test.is_empty() {
                fold.check(checkpoints)?;
                folds.push(fold);
            }
        }
    }
    Ok(folds)
}

/// Per model: train on every calibration perturbation, test on the held-out types.
pub fn held_out_folds(
    checkpoints: &[Checkpoint],
    calibration: &[&str],
    held_out: &[&str],
) -> Result<Vec<Fold>> {
    if let Some(p) = held_out.iter().find(|p| calibration.contains(p)) {
        return Err(EvalError::Input(format!(
            "{p} is both a calibration and a held-out perturbation"
        )));
    }
    let mut folds = Vec::new();
    for model in models(checkpoints) {
        let fold = Fold {
            held_out: held_out.iter().map(|s| s.to_string()).collect(),
            train: indices(checkpoints, &model, calibration),
            test: indices(checkpoints, &model, held_out),
            model,
        };
        if !fold.train.is_empty() && !fold.test.is_empty() {
            fold.check(checkpoints)?;
            folds.push(fold);
        }
    }
    Ok(folds)
}
