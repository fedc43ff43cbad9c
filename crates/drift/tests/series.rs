//! Drift series on planted activations: no change gives exactly zero drift, a planted shift
//! along one basis direction shows up there (and only there) as `c / N`.

#![allow(clippy::unwrap_used)] // test helpers unwrap: a failure is the test failing

use drift::{ActivationSummary, Basis, DriftError, FeatureMap, drift_series};

const D: usize = 6;

/// Eight prompts' step-0 activations with small dyadic values, so f32 sums are exact.
fn base_rows() -> Vec<Vec<f32>> {
    (0..8)
        .map(|i| {
            (0..D)
                .map(|j| ((i * 7 + j * 3) % 11) as f32 * 0.25 - 1.0)
                .collect()
        })
        .collect()
}

/// Rows shifted by `c` along coordinate `axis`.
fn shifted(rows: &[Vec<f32>], axis: usize, c: f32) -> Vec<Vec<f32>> {
    rows.iter()
        .map(|r| {
            let mut r = r.clone();
            r[axis] += c;
            r
        })
        .collect()
}

/// The standard basis e_0 .. e_{D-1}, named `f0 ..`.
fn standard_basis() -> Basis {
    let names = (0..D).map(|j| format!("f{j}")).collect();
    let vectors = (0..D)
        .map(|j| (0..D).map(|m| if m == j { 1.0 } else { 0.0 }).collect())
        .collect();
    Basis::new("standard", names, vectors).unwrap()
}

fn summary(rows: &[Vec<f32>]) -> ActivationSummary {
    ActivationSummary::from_rows(rows).unwrap()
}

#[test]
fn unchanged_activations_give_exactly_zero_drift() {
    let s = summary(&base_rows());
    // Out of order on purpose: the series comes back sorted.
    let points = vec![(20, s.clone()), (0, s.clone()), (10, s)];
    let map = Basis::random("random_0", 4, D, 3).unwrap();
    let series = drift_series(&points, &map).unwrap();
    assert_eq!(series.feature_set, "random_0");
    assert_eq!(series.feature_names, map.feature_names());
    let steps: Vec<u64> = series.points.iter().map(|p| p.step).collect();
    assert_eq!(steps, vec![0, 10, 20]);
    for p in &series.points {
        assert!(p.drift.iter().all(|&x| x == 0.0), "{:?}", p.drift);
        assert_eq!(p.activation_norm_drift, 0.0);
        assert_eq!(p.projection, series.points[0].projection);
    }
}

#[test]
fn planted_shift_appears_as_c_over_n_along_its_direction_only() {
    let rows = base_rows();
    let (axis, c) = (2, 0.75f32);
    let s0 = summary(&rows);
    let n = s0.mean_norm;
    let points = vec![(0, s0), (50, summary(&shifted(&rows, axis, c)))];
    let series = drift_series(&points, &standard_basis()).unwrap();
    assert_eq!(series.normaliser, n);
    let last = series.last().unwrap();
    for (j, x) in last.drift.iter().enumerate() {
        let expected = if j == axis { f64::from(c) / n } else { 0.0 };
        assert!(
            (x - expected).abs() < 1e-12,
            "feature {j}: {x} vs {expected}"
        );
    }
    // ||h̄(t) - h̄(0)|| = c as well.
    assert!((last.activation_norm_drift - f64::from(c) / n).abs() < 1e-12);
}

#[test]
fn missing_or_duplicate_step_zero_is_an_error() {
    let s = summary(&base_rows());
    let map = standard_basis();
    let err = drift_series(&[(5, s.clone()), (9, s.clone())], &map).unwrap_err();
    assert!(matches!(err, DriftError::NoStepZero));
    assert!(err.to_string().contains("no step-0 checkpoint"), "{err}");
    let err = drift_series(&[], &map).unwrap_err();
    assert!(matches!(err, DriftError::NoStepZero));
    let err = drift_series(&[(0, s.clone()), (0, s)], &map).unwrap_err();
    assert!(
        err.to_string().contains("duplicate checkpoint at step 0"),
        "{err}"
    );
}

#[test]
fn zero_normaliser_and_wrong_width_are_errors() {
    let zeros = summary(&[vec![0.0; D], vec![0.0; D]]);
    let err = drift_series(&[(0, zeros)], &standard_basis()).unwrap_err();
    assert!(
        matches!(err, DriftError::BadNormaliser(n) if n == 0.0),
        "{err}"
    );
    let narrow = summary(&[vec![1.0; D - 1]]);
    let err = drift_series(&[(0, narrow)], &standard_basis()).unwrap_err();
    assert!(
        matches!(err, DriftError::DimensionMismatch { expected: D, .. }),
        "{err}"
    );
}
