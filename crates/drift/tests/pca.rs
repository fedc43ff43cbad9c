//! PCA and cluster PC1 against hand-computed cases and planted structure.

#![allow(clippy::unwrap_used)] // test helpers unwrap: a failure is the test failing

use drift::{ClusterPc1, DriftError, Pca, isotropic_null, lopo_stability, whitened_pc1_share};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

fn names(n: &[&str]) -> Vec<String> {
    n.iter().map(|s| s.to_string()).collect()
}

fn random_rows(n: usize, k: usize, seed: u64) -> Vec<Vec<f64>> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| (0..k).map(|_| rng.random_range(-1.0..1.0)).collect())
        .collect()
}

/// Rows `t * axis + noise`, `t` spread over [-2, 2], noise uniform in ±`noise`.
fn along_axis(axis: &[f64], n: usize, noise: f64, seed: u64) -> Vec<Vec<f64>> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|i| {
            let t = -2.0 + 4.0 * i as f64 / (n - 1) as f64;
            axis.iter()
                .map(|a| t * a + noise * rng.random_range(-1.0..1.0))
                .collect()
        })
        .collect()
}

fn assert_close(a: f64, b: f64, tol: f64) {
    assert!((a - b).abs() < tol, "{a} vs {b}");
}

/// The four points (2,0), (-2,0), (0,1), (0,-1) have mean (0,0); with n - 1 = 3 the sample
/// variances are x: (4+4+0+0)/3 = 8/3, y: (0+0+1+1)/3 = 2/3, covariance 0. So PC1 = (1,0),
/// PC2 = (0,1), ratios (8/3)/(10/3) = 0.8 and 0.2, singular values sqrt(8) and sqrt(2).
#[test]
fn hand_computed_pca() {
    let x = vec![
        vec![2.0, 0.0],
        vec![-2.0, 0.0],
        vec![0.0, 1.0],
        vec![0.0, -1.0],
    ];
    let pca = Pca::fit(&x, 2).unwrap();
    assert_eq!(pca.mean, vec![0.0, 0.0]);
    assert_close(pca.components[0][0], 1.0, 1e-12);
    assert_close(pca.components[0][1], 0.0, 1e-12);
    assert_close(pca.components[1][1], 1.0, 1e-12);
    assert_close(pca.explained_variance_ratio[0], 0.8, 1e-12);
    assert_close(pca.explained_variance_ratio[1], 0.2, 1e-12);
    assert_close(pca.explained_variance[0], 8.0 / 3.0, 1e-12);
    assert_close(pca.explained_variance[1], 2.0 / 3.0, 1e-12);
    assert_close(pca.singular_values[0], 8f64.sqrt(), 1e-12);
    let scores = pca.transform(&[3.0, -1.0]).unwrap();
    assert_close(scores[0], 3.0, 1e-12);
    assert_close(scores[1], -1.0, 1e-12);
    // Asking for more components than min(n, k) keeps min(n, k).
    assert_eq!(Pca::fit(&x, 10).unwrap().components.len(), 2);
}

#[test]
fn ratios_sum_to_one_and_components_are_orthonormal() {
    for (n, k) in [(48, 7), (5, 7), (30, 3)] {
        let pca = Pca::fit(&random_rows(n, k, 1), usize::MAX).unwrap();
        let c = n.min(k);
        assert_eq!(pca.components.len(), c);
        assert_close(pca.explained_variance_ratio.iter().sum(), 1.0, 1e-12);
        assert!(pca.singular_values.windows(2).all(|w| w[0] >= w[1]));
        // Only the first rank = min(n - 1, k) components are determined by the data.
        let rank = (n - 1).min(k);
        for a in 0..rank {
            for b in 0..rank {
                let d: f64 = pca.components[a]
                    .iter()
                    .zip(&pca.components[b])
                    .map(|(x, y)| x * y)
                    .sum();
                assert_close(d, if a == b { 1.0 } else { 0.0 }, 1e-10);
            }
        }
    }
}

#[test]
fn pc1_loads_harmlessness_positively_whatever_the_data_sign() {
    let features = names(&["honesty", "harmlessness", "sycophancy"]);
    // Largest entry +0.8 on honesty, so the generic convention alone would leave
    // harmlessness at -0.6; ClusterPc1 must flip it.
    let axis = [0.8, -0.6, 0.0];
    let x = along_axis(&axis, 20, 0.01, 5);
    let neg: Vec<Vec<f64>> = x.iter().map(|r| r.iter().map(|v| -v).collect()).collect();
    for data in [&x, &neg] {
        let pc1 = ClusterPc1::fit(data, &features, "harmlessness").unwrap();
        let u = pc1.loadings();
        assert!(u[1] > 0.0, "{u:?}");
        assert_close(u[0], -0.8, 0.01);
        assert_close(u[1], 0.6, 0.01);
        assert!(pc1.pc1_share() > 0.99);
        assert_close(pc1.explained_variance_ratio().iter().sum(), 1.0, 1e-12);
    }
    let err = ClusterPc1::fit(&x, &features, "power_seeking").unwrap_err();
    assert!(matches!(err, DriftError::UnknownFeature(ref n) if n == "power_seeking"));
    assert!(err.to_string().contains("power_seeking"), "{err}");
}

#[test]
fn signed_magnitude_and_decompose() {
    // The hand-computed data again: PC1 = (1, 0), sign feature "a" already positive.
    let x = vec![
        vec![2.0, 0.0],
        vec![-2.0, 0.0],
        vec![0.0, 1.0],
        vec![0.0, -1.0],
    ];
    let pc1 = ClusterPc1::fit(&x, &names(&["a", "b"]), "a").unwrap();
    // No centring: x·u with u = (1, 0).
    assert_close(pc1.signed(&[3.0, 4.0]).unwrap(), 3.0, 1e-12);
    assert_close(pc1.signed(&[-3.0, 4.0]).unwrap(), -3.0, 1e-12);
    assert_close(pc1.magnitude(&[-3.0, 4.0]).unwrap(), 3.0, 1e-12);
    let (norm, cos) = pc1.decompose(&[3.0, 4.0]).unwrap();
    assert_close(norm, 5.0, 1e-12);
    assert_close(cos, 0.6, 1e-12);
    assert_eq!(pc1.decompose(&[0.0, 0.0]).unwrap(), (0.0, 0.0));
    assert!(pc1.signed(&[1.0]).is_err());
    // Frozen as JSON and reloaded, it gives the same answers.
    let json = serde_json::to_string(&pc1).unwrap();
    let back: ClusterPc1 = serde_json::from_str(&json).unwrap();
    assert_eq!(back.feature_names(), pc1.feature_names());
    assert_eq!(back.sign_feature(), "a");
    assert_close(back.signed(&[3.0, 4.0]).unwrap(), 3.0, 1e-12);
}

#[test]
fn lopo_is_stable_on_a_strong_common_axis() {
    let features = names(&["a", "harmlessness", "c", "d"]);
    let axis = [0.5, 0.5, -0.5, 0.5];
    let rows = along_axis(&axis, 12, 0.05, 9);
    let groups: Vec<(String, Vec<f64>)> = rows
        .into_iter()
        .enumerate()
        .map(|(i, r)| (format!("p{}", i % 4), r))
        .collect();
    let out = lopo_stability(&groups, &features, "harmlessness").unwrap();
    let left: Vec<&str> = out.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(left, vec!["p0", "p1", "p2", "p3"]);
    for (p, cosine, share) in &out {
        assert!(*cosine > 0.99, "{p}: cosine {cosine}");
        assert!(*share > 0.9, "{p}: share {share}");
    }
}

#[test]
fn isotropic_null_is_low_deterministic_and_lines_are_not() {
    let norms: Vec<f64> = (0..48).map(|i| 0.5 + f64::from(i) / 48.0).collect();
    let a = isotropic_null(&norms, 7, 300, 42).unwrap();
    assert_eq!(a, isotropic_null(&norms, 7, 300, 42).unwrap());
    assert_ne!(a, isotropic_null(&norms, 7, 300, 43).unwrap());
    assert_eq!(a.draws, 300);
    // Uniform directions in R^7: PC1 takes a bit more than 1/7, far from 1.
    assert!(
        a.mean_share > 1.0 / 7.0 && a.mean_share < a.p95_share,
        "{a:?}"
    );
    assert!(a.p95_share < 0.5, "{a:?}");
    // Data on a line: PC1 carries everything, whitened or not.
    let line = along_axis(&[0.3, -0.9, 0.1], 10, 0.0, 0);
    let pca = Pca::fit(&line, 1).unwrap();
    assert_close(pca.explained_variance_ratio[0], 1.0, 1e-12);
    assert_close(whitened_pc1_share(&line).unwrap(), 1.0, 1e-12);
}

#[test]
fn whitening_removes_scale_dominance() {
    // Feature 0 has 100x the spread of the others and is independent of them.
    let mut x = random_rows(200, 3, 7);
    x.iter_mut().for_each(|r| r[0] *= 100.0);
    let raw = Pca::fit(&x, 1).unwrap().explained_variance_ratio[0];
    let white = whitened_pc1_share(&x).unwrap();
    assert!(raw > 0.99, "{raw}");
    assert!(white < 0.5, "{white}");
    // A constant feature is left unscaled rather than divided by zero.
    x.iter_mut().for_each(|r| r[2] = 1.0);
    assert!(whitened_pc1_share(&x).unwrap().is_finite());
}
