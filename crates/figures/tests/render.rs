#![allow(clippy::unwrap_used, clippy::print_stdout)]
//! Figures from small synthetic results: files, provenance, purity, and clear errors.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use tables::TableKind;
use tables::arrow::array::{ArrayRef, Float64Array, StringArray, UInt32Array, UInt64Array};

fn strings(v: &[&str]) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(v.iter().copied()))
}

fn write(path: &Path, name: &'static str, columns: Vec<(&str, ArrayRef)>) {
    let batch = tables::record_batch(columns).unwrap();
    let kind = TableKind { name, version: 1 };
    tables::write_parquet(path, &batch, kind, &BTreeMap::new()).unwrap();
}

/// Two perturbations x two seeds x four steps of |PC1| (bad_medical rising), bad_medical's
/// proxy EM, and a PCA of three traits.
fn results(dir: &Path) {
    let mut rows = Vec::new();
    for pert in ["bad_medical", "number_sequence"] {
        for seed in [1u64, 2] {
            for step in [0u64, 2, 4, 8] {
                let slope = if pert == "bad_medical" { 0.004 } else { 0.001 };
                rows.push((
                    pert,
                    seed,
                    step,
                    slope * step as f64 * (1.0 + 0.1 * seed as f64),
                ));
            }
        }
    }
    let col = |f: fn(&(&str, u64, u64, f64)) -> f64| -> ArrayRef {
        Arc::new(Float64Array::from_iter_values(rows.iter().map(f)))
    };
    let perts: Vec<&str> = rows.iter().map(|r| r.0).collect();
    write(
        &dir.join("pca/m/pc1.parquet"),
        "pc1",
        vec![
            ("model", strings(&vec!["m"; rows.len()])),
            ("perturbation", strings(&perts)),
            (
                "seed",
                Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.1))),
            ),
            (
                "step",
                Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.2))),
            ),
            ("signed_pc1", col(|r| r.3)),
            ("abs_pc1", col(|r| r.3)),
            ("drift_norm", col(|r| r.3 * 1.2)),
            ("cosine_to_pc1", col(|_| 0.8)),
        ],
    );
    let em: Vec<_> = rows.iter().filter(|r| r.0 == "bad_medical").collect();
    write(
        &dir.join("em/m-bad_medical/em_summary.parquet"),
        "em_summary",
        vec![
            ("model", strings(&vec!["m"; em.len()])),
            ("perturbation", strings(&vec!["bad_medical"; em.len()])),
            (
                "seed",
                Arc::new(UInt64Array::from_iter_values(em.iter().map(|r| r.1))),
            ),
            (
                "step",
                Arc::new(UInt64Array::from_iter_values(em.iter().map(|r| r.2))),
            ),
            ("statistic", strings(&vec!["proxy_em"; em.len()])),
            ("group", strings(&vec!["all"; em.len()])),
            (
                "rate",
                Arc::new(Float64Array::from_iter_values(
                    em.iter().map(|r| 0.45 + r.3),
                )),
            ),
        ],
    );
    write(
        &dir.join("pca/m/pca.parquet"),
        "pca",
        vec![
            (
                "component",
                Arc::new(UInt32Array::from(vec![1, 1, 1, 2, 2, 2])),
            ),
            (
                "feature",
                strings(&[["harmlessness", "honesty", "power_seeking"]; 2].concat()),
            ),
            (
                "loading",
                Arc::new(Float64Array::from(vec![0.6, -0.3, 0.74, 0.1, 0.9, -0.4])),
            ),
            (
                "explained_variance_ratio",
                Arc::new(Float64Array::from(vec![0.8, 0.8, 0.8, 0.15, 0.15, 0.15])),
            ),
        ],
    );
}

fn font() -> bool {
    match figures::style::ensure_font() {
        Ok(()) => true,
        Err(e) => {
            println!("SKIPPED: figure drawing needs a font ({e})");
            false
        }
    }
}

#[test]
fn figures_are_drawn_with_provenance_and_are_pure() {
    if !font() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    results(&tmp.path().join("results"));
    let prov = figures::Provenance {
        manifest: Some("experiments/x.toml".into()),
        manifest_sha256: Some("abc".into()),
        git_revision: Some("deadbeef".into()),
    };
    for n in figures::IMPLEMENTED {
        let out = tmp.path().join("figs");
        let files = figures::render(n, &tmp.path().join("results"), &out, &prov).unwrap();
        let stem = format!("fig{n}");
        for ext in ["png", "svg", "json"] {
            let f = out.join(format!("{stem}.{ext}"));
            assert!(files.contains(&f), "{f:?} not reported");
            assert!(std::fs::metadata(&f).unwrap().len() > 100, "{f:?} is empty");
        }
        let png = std::fs::read(out.join(format!("{stem}.png"))).unwrap();
        assert_eq!(&png[1..4], b"PNG");
        let svg = std::fs::read_to_string(out.join(format!("{stem}.svg"))).unwrap();
        assert!(svg.starts_with("<svg") || svg.contains("<svg"));
        let side: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(out.join(format!("{stem}.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(side["git_revision"], "deadbeef");
        let inputs = side["inputs"].as_array().unwrap();
        assert!(!inputs.is_empty());
        assert!(
            inputs
                .iter()
                .all(|i| i["sha256"].as_str().unwrap().len() == 64)
        );
        // A pure function of the tables: drawing again gives the same SVG.
        figures::render(n, &tmp.path().join("results"), &out, &prov).unwrap();
        let again = std::fs::read_to_string(out.join(format!("{stem}.svg"))).unwrap();
        assert_eq!(svg, again);
    }
    // fig1 names what it shows.
    let svg = std::fs::read_to_string(tmp.path().join("figs/fig1.svg")).unwrap();
    for text in [
        "bad_medical",
        "number_sequence",
        "training step",
        "proxy EM",
    ] {
        assert!(svg.contains(text), "fig1 lacks `{text}`");
    }
}

#[test]
fn missing_tables_are_named_with_the_command_that_makes_them() {
    let tmp = tempfile::tempdir().unwrap();
    let prov = figures::Provenance::default();
    let e = figures::render(1, tmp.path(), tmp.path(), &prov)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("`pc1` table") && e.contains("traitwatch pca"),
        "{e}"
    );
    let e = figures::render(4, tmp.path(), tmp.path(), &prov)
        .unwrap_err()
        .to_string();
    assert!(e.contains("`pca` table"), "{e}");
    let e = figures::render(12, tmp.path(), tmp.path(), &prov)
        .unwrap_err()
        .to_string();
    assert!(e.contains("no fig12"), "{e}");
}
