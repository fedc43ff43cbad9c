#![allow(clippy::unwrap_used)]
//! fig5's pair choice and fig10's correlations on hand-made data, and fig10's message when
//! the EM tables hold no per-trait behaviour.

mod common;

use common::{f64s, strings, u64s, write};
use figures::fig5::Fig5;
use figures::fig10::{Fig10, diagonal_ratio};
use figures::load::{EmRow, Pc1Row};
use figures::trait_data::PerTrait;
use figures::{FigureError, Provenance, Target};
use std::collections::BTreeMap;

const TRAITS: [&str; 3] = ["honesty", "harmlessness", "power_seeking"];

fn pc1(pert: &str, step: u64, abs: f64) -> Pc1Row {
    Pc1Row {
        model: "m".into(),
        perturbation: pert.into(),
        seed: 1,
        step,
        abs_pc1: abs,
        signed_pc1: abs,
        drift_norm: abs,
        cosine_to_pc1: 1.0,
    }
}

fn em(pert: &str, step: u64, rate: f64) -> EmRow {
    EmRow {
        model: "m".into(),
        perturbation: pert.into(),
        seed: 1,
        step,
        statistic: "proxy_em".into(),
        rate,
    }
}

fn per_trait(entries: &[(&str, u64, [f64; 3])]) -> PerTrait {
    let mut out = PerTrait::new();
    for (pert, step, v) in entries {
        let m: BTreeMap<String, f64> = TRAITS
            .iter()
            .zip(v)
            .map(|(t, x)| (t.to_string(), *x))
            .collect();
        out.insert(("m".into(), pert.to_string(), 1, *step), m);
    }
    out
}

#[test]
fn fig5_pairs_matched_pc1_with_the_largest_em_gap() {
    // a and b agree on |PC1| (4% apart) and differ in EM by 30 points; c differs from both
    // in EM by more, but its |PC1| is far off. Final checkpoints (step 20) are used.
    let pc = vec![
        pc1("a", 10, 0.1),
        pc1("a", 20, 0.50),
        pc1("b", 20, 0.52),
        pc1("c", 20, 0.90),
    ];
    let ems = vec![
        em("a", 10, 0.9),
        em("a", 20, 0.10),
        em("b", 20, 0.40),
        em("c", 20, 0.95),
    ];
    let drift = per_trait(&[
        ("a", 10, [0.0; 3]),
        ("a", 20, [0.1, -0.2, 0.3]),
        ("b", 20, [0.3, 0.1, -0.1]),
        ("c", 20, [0.5, 0.5, 0.5]),
    ]);
    let fig = Fig5::new(&pc, &ems, &drift).unwrap();
    let [hi, lo] = &fig.panels[0].pair;
    assert_eq!(
        (hi.perturbation.as_str(), lo.perturbation.as_str()),
        ("b", "a")
    );
    assert_eq!(lo.step, 20);
    assert!(fig.panels[0].gap < 0.05);
    // Nothing within 10%: the closest pair, still drawn.
    let far = vec![pc1("a", 20, 0.2), pc1("b", 20, 0.5), pc1("c", 20, 0.9)];
    let fig = Fig5::new(&far, &ems, &drift).unwrap();
    let names: Vec<&str> = fig.panels[0]
        .pair
        .iter()
        .map(|p| p.perturbation.as_str())
        .collect();
    assert!(names.contains(&"b") && names.contains(&"c"), "{names:?}");
    assert!(fig.panels[0].gap > 0.1);
}

#[test]
fn fig10_finds_each_trait_in_its_own_behaviour() {
    // Behaviour of trait j follows drift of trait j (and nothing else) over 8 checkpoints.
    let noise = [0.3, -0.1, 0.7, 0.2, -0.5, 0.9, 0.0, 0.4];
    let mut drift = Vec::new();
    let mut behaviour = Vec::new();
    let mut pc = Vec::new();
    for (i, n) in noise.iter().enumerate() {
        let step = 10 * (i as u64 + 1);
        let x = i as f64;
        let d = [x, (x * 3.0) % 5.0, n * 4.0];
        drift.push(("a", step, d));
        behaviour.push(("a", step, [0.1 * d[0], 0.05 * d[1], 0.2 * d[2]]));
        pc.push(pc1("a", step, 0.01 * x));
    }
    let fig = Fig10::new(&per_trait(&drift), &per_trait(&behaviour), &pc).unwrap();
    assert_eq!(fig.checkpoints, 8);
    for i in 0..3 {
        assert!(
            (fig.raw[i][i].unwrap() - 1.0).abs() < 1e-12,
            "{:?}",
            fig.raw
        );
    }
    assert!(diagonal_ratio(&fig.raw).unwrap() > 2.0, "{:?}", fig.raw);
    // Too few checkpoints: no figure.
    let few = Fig10::new(
        &per_trait(&drift[..3]),
        &per_trait(&behaviour[..3]),
        &pc[..3],
    );
    assert!(few.is_none());
}

#[test]
fn fig10_without_trait_items_says_how_to_get_them() {
    let tmp = tempfile::tempdir().unwrap();
    let res = tmp.path();
    let one = |v: &str| strings(&[v]);
    write(
        &res.join("drift.parquet"),
        "drift",
        vec![
            ("model", one("m")),
            ("perturbation", one("a")),
            ("seed", u64s([1])),
            ("step", u64s([1])),
            ("feature_set", one("alignment")),
            ("feature", one("honesty")),
            ("drift", f64s([0.1])),
        ],
        &[],
    );
    write(
        &res.join("em.parquet"),
        "em_summary",
        vec![
            ("model", one("m")),
            ("perturbation", one("a")),
            ("seed", u64s([1])),
            ("step", u64s([1])),
            ("statistic", one("proxy_em")),
            ("group", one("all")),
            ("rate", f64s([0.4])),
        ],
        &[],
    );
    write(
        &res.join("pc1.parquet"),
        "pc1",
        vec![
            ("model", one("m")),
            ("perturbation", one("a")),
            ("seed", u64s([1])),
            ("step", u64s([1])),
            ("signed_pc1", f64s([0.1])),
            ("abs_pc1", f64s([0.1])),
            ("drift_norm", f64s([0.1])),
            ("cosine_to_pc1", f64s([1.0])),
        ],
        &[],
    );
    let e = figures::render(
        Target::Fig(10),
        res,
        &res.join("out"),
        &Provenance::default(),
    )
    .unwrap_err();
    assert!(matches!(e, FigureError::NoData { .. }), "{e}");
    assert!(e.to_string().contains("em.trait_items = true"), "{e}");
}
