//! Parquet round trips: `drift` exactly, `pca` loadings, and the `pc1` tables' shapes.

#![allow(clippy::unwrap_used)] // test helpers unwrap: a failure is the test failing

use drift::table::{
    DRIFT_TABLE, NULL_P95_SHARE_KEY, PC1_STABILITY_TABLE, PC1_TABLE, WHITENED_SHARE_KEY,
    read_drift, read_pca, write_drift, write_pc1, write_pc1_stability, write_pca,
};
use drift::{
    ActivationSummary, Basis, ClusterPc1, DriftError, DriftSeries, FeatureMap, NullSummary, RunKey,
    drift_series,
};
use std::collections::BTreeMap;

/// A run whose activations drift a little more every checkpoint, seeded by `seed`.
fn series(map: &dyn FeatureMap, seed: u64) -> DriftSeries {
    let d = map.dim();
    let points: Vec<(u64, ActivationSummary)> = (0..4u64)
        .map(|c| {
            let rows: Vec<Vec<f32>> = (0..5u64)
                .map(|i| {
                    (0..d as u64)
                        .map(|j| {
                            ((i * 13 + j * 7 + seed) % 17) as f32 * 0.1 + (c * j) as f32 * 0.03
                        })
                        .collect()
                })
                .collect();
            (c * 25, ActivationSummary::from_rows(&rows).unwrap())
        })
        .collect();
    drift_series(&points, map).unwrap()
}

fn key(perturbation: &str, seed: u64) -> RunKey {
    RunKey {
        model: "tiny".into(),
        perturbation: perturbation.into(),
        seed,
    }
}

fn traits_basis() -> Basis {
    Basis::random("traits", 3, 8, 1).unwrap()
}

#[test]
fn drift_table_round_trips_exactly() {
    let traits = traits_basis();
    let control = Basis::random("random_0", 5, 8, 2).unwrap();
    let runs = vec![
        (key("insecure", 0), series(&traits, 0)),
        (key("insecure", 0), series(&control, 0)),
        (key("secure", 1), series(&traits, 1)),
    ];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("drift.parquet");
    let extra = BTreeMap::from([("layer".to_string(), "16".to_string())]);
    write_drift(&path, &runs, &extra).unwrap();
    assert_eq!(read_drift(&path).unwrap(), runs);
    let table = tables::read_parquet(&path, Some(DRIFT_TABLE)).unwrap();
    assert_eq!(table.num_rows(), 4 * 3 + 4 * 5 + 4 * 3);
    assert_eq!(table.metadata["layer"], "16");
    // The same run and feature set twice is refused rather than merged on reading.
    let dup = vec![runs[0].clone(), runs[0].clone()];
    let err = write_drift(&path, &dup, &extra).unwrap_err();
    assert!(err.to_string().contains("twice"), "{err}");
}

#[test]
fn reading_the_wrong_table_kind_is_an_error() {
    let traits = traits_basis();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("drift.parquet");
    write_drift(
        &path,
        &[(key("a", 0), series(&traits, 0))],
        &BTreeMap::new(),
    )
    .unwrap();
    let err = read_pca(&path).unwrap_err();
    assert!(matches!(err, DriftError::Table(_)), "{err}");
}

fn fitted_pc1() -> (Vec<(RunKey, DriftSeries)>, ClusterPc1) {
    let traits = traits_basis();
    let runs: Vec<(RunKey, DriftSeries)> = (0..6)
        .map(|s| (key(&format!("p{}", s % 3), s), series(&traits, s)))
        .collect();
    let finals: Vec<Vec<f64>> = runs
        .iter()
        .map(|(_, s)| s.last().unwrap().drift.clone())
        .collect();
    let pc1 = ClusterPc1::fit(&finals, traits.feature_names(), "random_1").unwrap();
    (runs, pc1)
}

#[test]
fn pca_table_round_trips() {
    let (_, pc1) = fitted_pc1();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pca.parquet");
    write_pca(&path, pc1.feature_names(), pc1.pca(), &BTreeMap::new()).unwrap();
    let back = read_pca(&path).unwrap();
    assert_eq!(back.feature_names, pc1.feature_names());
    assert_eq!(back.components, pc1.pca().components);
    assert_eq!(back.components[0], pc1.loadings());
    assert_eq!(
        back.explained_variance_ratio,
        pc1.explained_variance_ratio()
    );
}

#[test]
fn pc1_and_stability_tables() {
    let (runs, pc1) = fitted_pc1();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pc1.parquet");
    write_pc1(&path, &pc1, &runs, &BTreeMap::new()).unwrap();
    let table = tables::read_parquet(&path, Some(PC1_TABLE)).unwrap();
    assert_eq!(table.num_rows(), 6 * 4);
    let names: Vec<String> = table.batches[0]
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let expected = [
        "model",
        "perturbation",
        "seed",
        "step",
        "signed_pc1",
        "abs_pc1",
        "drift_norm",
        "cosine_to_pc1",
    ];
    assert_eq!(names, expected);
    // A series over other features cannot be scored on this PC1.
    let other = Basis::random("random_0", 4, 8, 9).unwrap();
    let wrong = vec![(key("x", 0), series(&other, 0))];
    assert!(write_pc1(&path, &pc1, &wrong, &BTreeMap::new()).is_err());

    let path = dir.path().join("pc1_stability.parquet");
    let lopo = vec![
        ("p0".to_string(), 0.995, 0.8),
        ("p1".to_string(), 0.991, 0.7),
    ];
    let null = NullSummary {
        mean_share: 0.25,
        p95_share: 0.31,
        draws: 1000,
    };
    write_pc1_stability(&path, &lopo, &null, 0.6, &BTreeMap::new()).unwrap();
    let table = tables::read_parquet(&path, Some(PC1_STABILITY_TABLE)).unwrap();
    assert_eq!(table.num_rows(), 2);
    assert_eq!(table.metadata[NULL_P95_SHARE_KEY], "0.31");
    assert_eq!(table.metadata[WHITENED_SHARE_KEY], "0.6");
}
