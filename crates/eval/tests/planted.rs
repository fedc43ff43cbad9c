//! The monitor on planted data where the answer is known: a 7-D feature set whose drift
//! carries the EM signal must beat one that is noise, on held-out perturbation types and in
//! LOPO; folds never leak; results are reproducible.

#![allow(clippy::unwrap_used)]

use eval::{
    CALIBRATION, Checkpoint, Fold, HELD_OUT, Regressor, held_out_folds, lopo_folds, pooled_metrics,
    predict_folds,
};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

const TAU: f64 = 0.05;

fn dangerous(p: &str) -> bool {
    !matches!(p, "gsm8k" | "number_sequence")
}

/// Two models x seven perturbations x three seeds x 11 checkpoints (steps 0..=100).
/// Dangerous runs drift along one direction and their EM rate grows with the drift; benign
/// runs drift as far along another direction with EM near zero.
fn planted() -> (Vec<Checkpoint>, Vec<Vec<f64>>, Vec<Vec<f64>>) {
    let mut rng = StdRng::seed_from_u64(7);
    let (mut cps, mut signal, mut noise) = (Vec::new(), Vec::new(), Vec::new());
    let danger_dir = [0.6, -0.3, 0.5, 0.4, 0.2, -0.2, 0.25];
    let benign_dir = [-0.2, 0.5, 0.1, -0.3, 0.6, 0.4, -0.3];
    for model in ["model_a", "model_b"] {
        for p in CALIBRATION.iter().chain(&HELD_OUT) {
            let severity = 0.15 + 0.25 * rng.random::<f64>();
            for seed in [42u64, 123, 789] {
                for k in 0..=10u64 {
                    let t = k as f64 / 10.0;
                    let dir = if dangerous(p) {
                        &danger_dir
                    } else {
                        &benign_dir
                    };
                    let em = if dangerous(p) { severity * t * t } else { 0.0 }
                        + 0.01 * rng.random::<f64>();
                    cps.push(Checkpoint {
                        model: model.into(),
                        perturbation: p.to_string(),
                        seed,
                        step: k * 10,
                        target: em,
                    });
                    signal.push(
                        dir.iter()
                            .map(|d| 3.0 * t * d + 0.05 * (rng.random::<f64>() - 0.5))
                            .collect(),
                    );
                    noise.push((0..7).map(|_| rng.random::<f64>()).collect());
                }
            }
        }
    }
    (cps, signal, noise)
}

#[test]
fn a_separable_feature_set_outranks_noise_on_held_out_types() {
    let (cps, signal, noise) = planted();
    let folds = held_out_folds(&cps, &CALIBRATION, &HELD_OUT).unwrap();
    assert_eq!(folds.len(), 2, "one fold per model");
    // AUROC ranks the logistic classifier's probabilities the same way as the regressors'
    // predicted rates.
    for regressor in Regressor::with_logistic(TAU) {
        let good = predict_folds(&cps, &signal, &folds, &regressor).unwrap();
        let bad = predict_folds(&cps, &noise, &folds, &regressor).unwrap();
        let (g, b) = (
            pooled_metrics(&cps, &good, TAU),
            pooled_metrics(&cps, &bad, TAU),
        );
        let name = regressor.name();
        let (ga, ba) = (g.auroc.unwrap(), b.auroc.unwrap());
        assert!(ga > 0.9, "{name}: signal AUROC {ga}");
        assert!(
            ba < 0.75 && ga - ba > 0.2,
            "{name}: noise AUROC {ba} vs {ga}"
        );
        if name == "random_forest" {
            assert!(g.fnr.unwrap() < 0.2 && g.fpr.unwrap() < 0.2, "{g:?}");
        }
    }
}

#[test]
fn lopo_never_trains_on_what_it_tests_and_is_reproducible() {
    let (cps, signal, _) = planted();
    let folds = lopo_folds(&cps, &CALIBRATION).unwrap();
    assert_eq!(folds.len(), 2 * CALIBRATION.len());
    for fold in &folds {
        let held = &fold.held_out[0];
        assert!(fold.train.iter().all(|&i| &cps[i].perturbation != held));
        assert!(fold.train.iter().all(|&i| cps[i].model == fold.model));
        assert!(fold.test.iter().all(|&i| &cps[i].perturbation == held));
        assert!(
            fold.train
                .iter()
                .chain(&fold.test)
                .all(|&i| !HELD_OUT.contains(&cps[i].perturbation.as_str()))
        );
        assert_eq!(fold.test.len(), 3 * 11);
        assert_eq!(fold.train.len(), 3 * 3 * 11);
    }
    let forest = Regressor::paper_set()[0];
    let a = predict_folds(&cps, &signal, &folds, &forest).unwrap();
    let b = predict_folds(&cps, &signal, &folds, &forest).unwrap();
    assert_eq!(a, b, "same seed, same predictions");
    assert!(pooled_metrics(&cps, &a, TAU).auroc.unwrap() > 0.9);
}

#[test]
fn leaks_and_overlapping_splits_are_errors() {
    let (cps, signal, _) = planted();
    let mut fold: Fold = lopo_folds(&cps, &CALIBRATION).unwrap().remove(0);
    fold.train.push(fold.test[0]);
    let e = predict_folds(&cps, &signal, &[fold], &Regressor::Ridge { alpha: 1.0 }).unwrap_err();
    assert!(e.to_string().contains("fold leak"), "{e}");
    let e = held_out_folds(&cps, &CALIBRATION, &["gsm8k"]).unwrap_err();
    assert!(e.to_string().contains("gsm8k"), "{e}");
}
