//! The step-aware alarm (METHOD section 7): per model, a logistic regression on the
//! standardised `[100·|PC1|(t), step, 100·|PC1|(t)/step]`, labels EM > tau. It fires when the
//! probability exceeds one half; a run's first alarm is its first checkpoint that fires.

use crate::Result;
use crate::linear::{Logistic, Standardizer};

/// The three inputs; at step 0 the ratio is 0 (no drift yet, nothing to divide).
pub fn step_features(abs_pc1: f64, step: u64) -> Vec<f64> {
    let scaled = 100.0 * abs_pc1;
    let ratio = if step == 0 { 0.0 } else { scaled / step as f64 };
    vec![scaled, step as f64, ratio]
}

#[derive(Debug, Clone, PartialEq)]
pub struct StepAlarm {
    standardizer: Standardizer,
    model: Logistic,
}

impl StepAlarm {
    /// Fit on checkpoints `(|PC1|, step)` with labels (EM > tau). `c` is the inverse L2
    /// strength (1 by default in the paper's setting).
    pub fn fit(points: &[(f64, u64)], labels: &[bool], c: f64) -> Result<Self> {
        let x: Vec<Vec<f64>> = points.iter().map(|&(p, s)| step_features(p, s)).collect();
        let standardizer = Standardizer::fit(&x)?;
        let z: Vec<Vec<f64>> = x.iter().map(|r| standardizer.transform(r)).collect();
        Ok(Self {
            model: Logistic::fit(&z, labels, c)?,
            standardizer,
        })
    }

    pub fn probability(&self, abs_pc1: f64, step: u64) -> f64 {
        self.model
            .probability(&self.standardizer.transform(&step_features(abs_pc1, step)))
    }

    pub fn fires(&self, abs_pc1: f64, step: u64) -> bool {
        self.probability(abs_pc1, step) > 0.5
    }

    /// The first step at which a run's checkpoints (step ascending) fire, if any.
    pub fn first_alarm(&self, run: &[(f64, u64)]) -> Option<u64> {
        run.iter()
            .find(|&&(p, s)| self.fires(p, s))
            .map(|&(_, s)| s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dangerous_runs_fire_early_and_benign_runs_do_not() {
        // Dangerous runs: |PC1| grows fast (0.004 per step); benign: slowly (0.0005 per step).
        // Label: EM > tau once a dangerous run passes step 30.
        let mut points = Vec::new();
        let mut labels = Vec::new();
        for step in (0..=200).step_by(10) {
            points.push((0.004 * step as f64, step));
            labels.push(step > 30);
            points.push((0.0005 * step as f64, step));
            labels.push(false);
        }
        let alarm = StepAlarm::fit(&points, &labels, 1.0).unwrap();
        let dangerous: Vec<(f64, u64)> = (0..=200)
            .step_by(10)
            .map(|s| (0.004 * s as f64, s))
            .collect();
        let benign: Vec<(f64, u64)> = (0..=200)
            .step_by(10)
            .map(|s| (0.0005 * s as f64, s))
            .collect();
        let first = alarm.first_alarm(&dangerous).unwrap();
        assert!((20..=60).contains(&first), "first alarm at step {first}");
        assert_eq!(alarm.first_alarm(&benign), None);
        assert_eq!(step_features(0.5, 0), vec![50.0, 0.0, 0.0]);
        assert_eq!(step_features(0.5, 10), vec![50.0, 10.0, 5.0]);
    }
}

/// One checkpoint's alarm probability.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AlarmRow {
    /// Index of the checkpoint.
    pub checkpoint: usize,
    pub probability: f64,
    /// Which training pool scored it: `held_out` or `anchor_fold_<seed>`.
    pub fold: String,
}

/// METHOD section 7 over a data set: per model, the training pool is its calibration
/// checkpoints plus the benign `anchor` runs. Held-out checkpoints are scored by the alarm
/// fit on the whole pool; each anchor seed's checkpoints by the alarm fit without that seed
/// (folds by anchor seed). `abs_pc1[i]` is checkpoint `i`'s |PC1|.
pub fn step_alarm(
    checkpoints: &[crate::Checkpoint],
    abs_pc1: &[f64],
    calibration: &[&str],
    held_out: &[&str],
    anchor: Option<&str>,
    tau: f64,
) -> Result<Vec<AlarmRow>> {
    let mut models: Vec<&str> = checkpoints.iter().map(|c| c.model.as_str()).collect();
    models.sort_unstable();
    models.dedup();
    let mut out = Vec::new();
    for model in models {
        let of = |pred: &dyn Fn(&crate::Checkpoint) -> bool| -> Vec<usize> {
            (0..checkpoints.len())
                .filter(|&i| checkpoints[i].model == model && pred(&checkpoints[i]))
                .collect()
        };
        let calib = of(&|c| calibration.contains(&c.perturbation.as_str()));
        let anchors = of(&|c| Some(c.perturbation.as_str()) == anchor);
        let targets = of(&|c| held_out.contains(&c.perturbation.as_str()));
        let fit = |train: &[usize]| -> Result<StepAlarm> {
            let points: Vec<(f64, u64)> = train
                .iter()
                .map(|&i| (abs_pc1[i], checkpoints[i].step))
                .collect();
            let labels: Vec<bool> = train.iter().map(|&i| checkpoints[i].target > tau).collect();
            StepAlarm::fit(&points, &labels, 1.0)
        };
        if calib.is_empty() {
            continue;
        }
        let pool: Vec<usize> = calib.iter().chain(&anchors).copied().collect();
        let alarm = fit(&pool)?;
        for &i in &targets {
            out.push(AlarmRow {
                checkpoint: i,
                probability: alarm.probability(abs_pc1[i], checkpoints[i].step),
                fold: "held_out".into(),
            });
        }
        let mut seeds: Vec<u64> = anchors.iter().map(|&i| checkpoints[i].seed).collect();
        seeds.sort_unstable();
        seeds.dedup();
        for seed in seeds {
            let train: Vec<usize> = pool
                .iter()
                .copied()
                .filter(|&i| !(anchors.contains(&i) && checkpoints[i].seed == seed))
                .collect();
            let alarm = fit(&train)?;
            for &i in anchors.iter().filter(|&&i| checkpoints[i].seed == seed) {
                out.push(AlarmRow {
                    checkpoint: i,
                    probability: alarm.probability(abs_pc1[i], checkpoints[i].step),
                    fold: format!("anchor_fold_{seed}"),
                });
            }
        }
    }
    Ok(out)
}
