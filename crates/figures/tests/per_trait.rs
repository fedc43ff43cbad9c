#![allow(clippy::unwrap_used)]
//! fig5's pair choice and fig10's correlations on hand-made data, and fig10's message when
//! the EM tables hold no per-trait behaviour.

mod common;

use common::{f64s, strings, u64s, write};
use figures::em_data::{EmKind, EmRow};
use figures::fig5::Fig5;
use figures::fig10::{Fig10, diagonal_ratio};
use figures::load::Pc1Row;
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
        kind: EmKind::Proxy,
        value: rate,
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

#[test]
fn fig5_never_pairs_a_free_form_rate_with_a_proxy_rate() {
    // b's EM comes from the free-form judge: a and b agree on |PC1| and differ most in EM,
    // but the two numbers are not comparable, so a is paired with c instead.
    let pc = vec![pc1("a", 20, 0.50), pc1("b", 20, 0.51), pc1("c", 20, 0.53)];
    let mut ems = vec![em("a", 20, 0.10), em("b", 20, 0.90), em("c", 20, 0.20)];
    ems[1].kind = EmKind::FreeForm;
    let drift = per_trait(&[
        ("a", 20, [0.1, 0.2, 0.3]),
        ("b", 20, [0.3, 0.1, 0.1]),
        ("c", 20, [0.2, 0.2, 0.2]),
    ]);
    let fig = Fig5::new(&pc, &ems, &drift).unwrap();
    let mut names: Vec<&str> = fig.panels[0]
        .pair
        .iter()
        .map(|p| p.perturbation.as_str())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["a", "c"]);
}

#[test]
fn fig10_counts_the_base_model_once_per_model() {
    // Four runs, each with step 0 (the same base model) and one finetuned checkpoint: five
    // distinct checkpoints, not eight.
    let runs = ["a", "b", "c", "d"];
    let mut drift = Vec::new();
    let mut pc = Vec::new();
    for (i, r) in runs.iter().enumerate() {
        let x = i as f64 + 1.0;
        drift.push((*r, 0, [0.0; 3]));
        drift.push((*r, 10, [x, 0.5 * x, -x]));
        pc.push(pc1(r, 0, 0.0));
        pc.push(pc1(r, 10, 0.1 * x * x));
    }
    let behaviour: Vec<_> = drift
        .iter()
        .map(|(r, s, d)| (*r, *s, [0.5 + 0.1 * d[0], 0.47, 0.5 - 0.1 * d[2]]))
        .collect();
    let fig = Fig10::new(&per_trait(&drift), &per_trait(&behaviour), &pc).unwrap();
    assert_eq!(fig.checkpoints, 5);
    // harmlessness behaviour never varies (0.47, whose mean of five is off in the last
    // bit): no rho, raw or with PC1 regressed out (the residuals of a constant are zeros,
    // not rounding noise to rank).
    let h = fig.traits.iter().position(|t| t == "harmlessness").unwrap();
    for m in [&fig.raw, &fig.partial] {
        assert!(m.iter().all(|row| row[h].is_none()), "{m:?}");
    }
    // One run fewer: four distinct checkpoints, no figure.
    let (d3, b3) = (&drift[..6], &behaviour[..6]);
    assert!(Fig10::new(&per_trait(d3), &per_trait(b3), &pc[..6]).is_none());
}

#[test]
fn fig10_with_too_few_checkpoints_says_how_many_and_what_to_run() {
    let tmp = tempfile::tempdir().unwrap();
    let res = tmp.path();
    // One run, steps 0 and 16, every trait on both sides.
    let steps = [0u64, 16];
    let n = steps.len() * TRAITS.len();
    let col = |f: &dyn Fn(usize) -> String| strings(&(0..n).map(f).collect::<Vec<_>>());
    let step = |i: usize| steps[i / TRAITS.len()];
    let key = || {
        vec![
            ("model", col(&|_| "m".into())),
            ("perturbation", col(&|_| "a".into())),
            ("seed", u64s([1].repeat(n))),
            ("step", u64s((0..n).map(step))),
        ]
    };
    let trait_of = |i: usize| TRAITS[i % TRAITS.len()].to_string();
    let mut drift = key();
    drift.extend([
        ("feature_set", col(&|_| "alignment".into())),
        ("feature", col(&trait_of)),
        ("drift", f64s((0..n).map(|i| 0.01 * step(i) as f64))),
    ]);
    write(&res.join("drift.parquet"), "drift", drift, &[]);
    let mut em = key();
    em.extend([
        ("statistic", col(&|_| "trait_positive".into())),
        ("group", col(&trait_of)),
        ("rate", f64s((0..n).map(|i| 0.5 + 0.01 * i as f64))),
    ]);
    write(&res.join("em.parquet"), "em_summary", em, &[]);
    let one = |v: f64| f64s([0.0, v]);
    write(
        &res.join("pc1.parquet"),
        "pc1",
        vec![
            ("model", strings(&["m", "m"])),
            ("perturbation", strings(&["a", "a"])),
            ("seed", u64s([1, 1])),
            ("step", u64s(steps)),
            ("signed_pc1", one(0.1)),
            ("abs_pc1", one(0.1)),
            ("drift_norm", one(0.1)),
            ("cosine_to_pc1", one(1.0)),
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
    let msg = e.to_string();
    assert!(msg.starts_with("fig10: 2 checkpoint(s)"), "{msg}");
    assert!(
        msg.contains("at least 5") && msg.contains("em.trait_items = true"),
        "{msg}"
    );
    assert!(!res.join("out/fig10.png").exists());
}
