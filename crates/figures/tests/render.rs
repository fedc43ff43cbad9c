#![allow(clippy::unwrap_used)]
#![allow(clippy::print_stdout)] // the "SKIPPED: no font" line
//! Figures and tables from small synthetic results written with the stages' own writers
//! where they are reachable without burn (drift, eval) and with the documented columns
//! otherwise: files, provenance, purity, and errors that name the missing table.

mod common;

use common::{f64s, font, strings, u64s, write};
use figures::{FigureError, Provenance, Target};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use tables::arrow::array::UInt32Array;

const PERTS: [&str; 5] = [
    "insecure_code",
    "gsm8k",
    "jailbroken",
    "bad_medical",
    "number_sequence",
];
const TRAITS: [&str; 7] = [
    "honesty",
    "sycophancy",
    "harmlessness",
    "power_seeking",
    "helpfulness",
    "confidence",
    "corrigibility",
];

fn severity(pert: &str) -> f64 {
    match pert {
        "bad_medical" => 0.004,
        "insecure_code" => 0.003,
        "jailbroken" => 0.002,
        _ => 0.0005,
    }
}

/// (model, perturbation, seed, step, |PC1|) for two models x five perturbations x two seeds.
fn checkpoints() -> Vec<(&'static str, &'static str, u64, u64, f64)> {
    let mut rows = Vec::new();
    for model in ["llama-8b", "qwen-7b"] {
        for pert in PERTS {
            for seed in [1u64, 2] {
                for step in [0u64, 10, 20, 30, 40] {
                    let scale = if model == "qwen-7b" { 0.6 } else { 1.0 };
                    let v = scale * severity(pert) * step as f64 * (1.0 + 0.1 * seed as f64);
                    rows.push((model, pert, seed, step, v));
                }
            }
        }
    }
    rows
}

fn em_summary(dir: &Path) {
    let rows: Vec<_> = checkpoints()
        .into_iter()
        .filter(|r| r.1 != "number_sequence")
        .collect();
    let rate: Vec<f64> = rows.iter().map(|r| (0.02 + 4.0 * r.4).min(1.0)).collect();
    write(
        &dir.join("judge/em_summary.parquet"),
        "em_summary",
        vec![
            (
                "model",
                strings(&rows.iter().map(|r| r.0).collect::<Vec<_>>()),
            ),
            (
                "perturbation",
                strings(&rows.iter().map(|r| r.1).collect::<Vec<_>>()),
            ),
            ("seed", u64s(rows.iter().map(|r| r.2))),
            ("step", u64s(rows.iter().map(|r| r.3))),
            ("statistic", strings(&vec!["em_rate"; rows.len()])),
            ("group", strings(&vec!["all"; rows.len()])),
            ("n", u64s(rows.iter().map(|_| 100))),
            ("count", u64s(rate.iter().map(|r| (100.0 * r) as u64))),
            ("rate", f64s(rate.clone())),
            ("low", f64s(rate.iter().map(|r| r * 0.8))),
            ("high", f64s(rate.iter().map(|r| r * 1.2))),
            ("mean_margin", f64s(rate.iter().map(|_| 0.0))),
            ("delta_from_step0", f64s(rate.iter().map(|r| r - 0.02))),
        ],
        &[],
    );
}

fn pca_tables(dir: &Path) {
    let rows = checkpoints();
    let col = |f: fn(&(&str, &str, u64, u64, f64)) -> f64| f64s(rows.iter().map(f));
    write(
        &dir.join("pca/pc1.parquet"),
        "pc1",
        vec![
            (
                "model",
                strings(&rows.iter().map(|r| r.0).collect::<Vec<_>>()),
            ),
            (
                "perturbation",
                strings(&rows.iter().map(|r| r.1).collect::<Vec<_>>()),
            ),
            ("seed", u64s(rows.iter().map(|r| r.2))),
            ("step", u64s(rows.iter().map(|r| r.3))),
            ("signed_pc1", col(|r| -r.4)),
            ("abs_pc1", col(|r| r.4)),
            ("drift_norm", col(|r| r.4 * 1.3 + 0.001 * r.3 as f64 / 40.0)),
            ("cosine_to_pc1", col(|r| (0.3 + 5.0 * r.4).min(0.95))),
        ],
        &[],
    );
    let loadings = [0.3, -0.22, 0.6, -0.31, 0.52, -0.31, 0.21];
    let second = [0.1, 0.5, -0.2, 0.3, 0.1, 0.6, -0.4];
    let pca = drift::Pca {
        mean: vec![0.0; 7],
        components: vec![
            loadings.to_vec(),
            second.to_vec(),
            second.iter().rev().copied().collect(),
        ],
        explained_variance: vec![0.7, 0.2, 0.05],
        explained_variance_ratio: vec![0.786, 0.12, 0.05],
        singular_values: vec![1.0, 0.5, 0.2],
        n_samples: 16,
    };
    let names: Vec<String> = TRAITS.iter().map(|s| s.to_string()).collect();
    let meta = BTreeMap::from([("feature_set".to_string(), "alignment".to_string())]);
    drift::table::write_pca(&dir.join("pca/pca.parquet"), &names, &pca, &meta).unwrap();
    let lopo: Vec<(String, f64, f64)> = PERTS[..4]
        .iter()
        .map(|p| (p.to_string(), 0.995, 0.78))
        .collect();
    let null = drift::NullSummary {
        mean_share: 0.3,
        p95_share: 0.42,
        draws: 1000,
    };
    drift::table::write_pc1_stability(
        &dir.join("pca/pc1_stability.parquet"),
        &lopo,
        &null,
        0.7,
        &meta,
    )
    .unwrap();
}

fn cosines(dir: &Path, model: &str) {
    let mut a = Vec::new();
    let mut b = Vec::new();
    let mut v = Vec::new();
    for (i, x) in TRAITS.iter().enumerate() {
        for (j, y) in TRAITS.iter().enumerate() {
            a.push(*x);
            b.push(*y);
            v.push(if i == j {
                1.0
            } else {
                ((i * 7 + j * 3) % 11) as f64 / 11.0 - 0.5
            });
        }
    }
    write(
        &dir.join(format!("traits/{model}/cosines.parquet")),
        "trait_cosines",
        vec![
            ("layer", Arc::new(UInt32Array::from(vec![14u32; a.len()]))),
            ("trait_a", strings(&a)),
            ("trait_b", strings(&b)),
            ("cosine", f64s(v)),
        ],
        &[("model", model), ("bank", "alignment")],
    );
}

fn cell(scope: &str, held_out: &str, fs: &str, reg: &str, k: usize) -> eval::Cell {
    let labels = [false, true, false, true, false, true, false, false];
    let scores: Vec<f64> = labels
        .iter()
        .enumerate()
        .map(|(i, &l)| {
            if l {
                0.3 - 0.02 * ((i + k) % 4) as f64
            } else {
                0.01 * ((i * k) % 9) as f64
            }
        })
        .collect();
    eval::Cell {
        scope: scope.into(),
        held_out: held_out.into(),
        feature_set: fs.into(),
        regressor: reg.into(),
        n: labels.len(),
        metrics: eval::metrics(&scores, &labels, 0.05),
        fnr_ci: Some((0.0, 0.4)),
        fpr_ci: Some((0.0, 0.3)),
        auroc_ci: Some((0.8, 1.0)),
        bootstrap_dropped: 0,
    }
}

fn monitor(dir: &Path) {
    let sets = ["alignment", "random_0", "random_1", "pc1_abs"];
    let regs = ["ridge", "gradient_boosting", "random_forest"];
    for split in ["lopo", "held_out_types"] {
        let mut rows = Vec::new();
        for (k, fs) in sets.iter().enumerate() {
            for reg in regs {
                rows.push((0.05, cell("pooled", split, fs, reg, k)));
                if split == "lopo" {
                    for model in ["llama-8b", "qwen-7b"] {
                        for held in &PERTS[..4] {
                            rows.push((0.05, cell(model, held, fs, reg, k + held.len())));
                        }
                    }
                }
            }
        }
        let meta = BTreeMap::from([("monitor.split".to_string(), split.to_string())]);
        let out = dir.join("monitor");
        eval::report::write_metrics(
            &out.join(format!("monitor_metrics-{split}.parquet")),
            &rows,
            &meta,
        )
        .unwrap();
        let sweep: Vec<(f64, eval::Cell)> = [0.03, 0.05, 0.1]
            .iter()
            .flat_map(|&t| {
                rows.iter()
                    .filter(|r| r.1.scope == "pooled")
                    .map(move |r| (t, r.1.clone()))
            })
            .collect();
        eval::report::write_metrics(
            &out.join(format!("monitor_sweep-{split}.parquet")),
            &sweep,
            &meta,
        )
        .unwrap();
    }
    let rows: Vec<_> = checkpoints();
    let prob: Vec<f64> = rows.iter().map(|r| (r.4 * 30.0).min(1.0)).collect();
    write(
        &dir.join("monitor/step_alarm.parquet"),
        "step_alarm",
        vec![
            (
                "model",
                strings(&rows.iter().map(|r| r.0).collect::<Vec<_>>()),
            ),
            (
                "perturbation",
                strings(&rows.iter().map(|r| r.1).collect::<Vec<_>>()),
            ),
            ("seed", u64s(rows.iter().map(|r| r.2))),
            ("step", u64s(rows.iter().map(|r| r.3))),
            ("fold", strings(&vec!["held_out"; rows.len()])),
            (
                "target",
                f64s(rows.iter().map(|r| {
                    if severity(r.1) >= 0.002 {
                        10.0 * r.4
                    } else {
                        0.0
                    }
                })),
            ),
            ("probability", f64s(prob)),
        ],
        &[("monitor.tau", "0.05")],
    );
}

/// Full-finetuning runs of bad_medical (`[[extra_runs]]` tag `full`, fig11): faster drift
/// than its LoRA runs, scored in a `pc1` table of their own.
fn full_finetuning(dir: &Path) {
    let rows: Vec<_> = checkpoints()
        .into_iter()
        .filter(|r| r.1 == "bad_medical")
        .collect();
    let n = rows.len();
    write(
        &dir.join("pca/pc1_full.parquet"),
        "pc1",
        vec![
            (
                "model",
                strings(&rows.iter().map(|r| r.0).collect::<Vec<_>>()),
            ),
            ("perturbation", strings(&vec!["bad_medical+full"; n])),
            ("seed", u64s(rows.iter().map(|r| r.2))),
            ("step", u64s(rows.iter().map(|r| r.3))),
            ("signed_pc1", f64s(rows.iter().map(|r| -1.5 * r.4))),
            ("abs_pc1", f64s(rows.iter().map(|r| 1.5 * r.4))),
            ("drift_norm", f64s(rows.iter().map(|r| 2.0 * r.4))),
            ("cosine_to_pc1", f64s(rows.iter().map(|_| 0.8))),
        ],
        &[],
    );
}

/// Per-trait drift (alignment) and per-trait behaviour rows for fig5 and fig10: drift of
/// trait t grows with |PC1| and its own noise; behaviour follows drift of the same trait.
fn per_trait(dir: &Path) {
    let rows = checkpoints();
    let n = rows.len() * TRAITS.len();
    let at = |f: &dyn Fn(usize, usize) -> f64| -> Vec<f64> {
        (0..n)
            .map(|i| f(i / TRAITS.len(), i % TRAITS.len()))
            .collect()
    };
    let drift = |r: usize, t: usize| {
        let (_, _, seed, step, v) = rows[r];
        v * (1.0 + t as f64 / 3.0)
            + 0.001 * ((seed as usize * 7 + step as usize + t * 3) % 5) as f64
    };
    let key = |f: fn(&(&str, &str, u64, u64, f64)) -> String| -> Vec<String> {
        (0..n).map(|i| f(&rows[i / TRAITS.len()])).collect()
    };
    let traits: Vec<&str> = (0..n).map(|i| TRAITS[i % TRAITS.len()]).collect();
    let base = vec![
        ("model", strings(&key(|r| r.0.to_string()))),
        ("perturbation", strings(&key(|r| r.1.to_string()))),
        ("seed", u64s((0..n).map(|i| rows[i / TRAITS.len()].2))),
        ("step", u64s((0..n).map(|i| rows[i / TRAITS.len()].3))),
    ];
    let mut cols = base.clone();
    cols.extend([
        ("feature_set", strings(&vec!["alignment"; n])),
        ("feature", strings(&traits)),
        ("drift", f64s(at(&drift))),
    ]);
    write(&dir.join("drift/drift.parquet"), "drift", cols, &[]);
    let mut cols = base;
    let rate = at(&|r, t| (0.5 + 20.0 * drift(r, t)).min(1.0));
    cols.extend([
        ("statistic", strings(&vec!["trait_positive"; n])),
        ("group", strings(&traits)),
        ("rate", f64s(rate)),
    ]);
    write(&dir.join("judge/traits.parquet"), "em_summary", cols, &[]);
}

fn results(dir: &Path) {
    em_summary(dir);
    per_trait(dir);
    pca_tables(dir);
    full_finetuning(dir);
    cosines(dir, "llama-8b");
    cosines(dir, "qwen-7b");
    monitor(dir);
}

fn provenance() -> Provenance {
    Provenance {
        manifest: Some("experiments/x.toml".into()),
        manifest_sha256: Some("abc".into()),
        git_revision: Some("deadbeef".into()),
    }
}

#[test]
fn every_figure_is_drawn_with_provenance_and_is_pure() {
    if !font() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let res = tmp.path().join("results");
    results(&res);
    // FIGURES_TEST_OUT=<dir> keeps the synthetic results and figures for a look.
    let out = match std::env::var_os("FIGURES_TEST_OUT") {
        Some(dir) => {
            results(&Path::new(&dir).join("results"));
            Path::new(&dir).join("figs")
        }
        None => tmp.path().join("figs"),
    };
    let res = out.parent().unwrap().join("results");
    for n in figures::IMPLEMENTED {
        let files = figures::render(n, &res, &out, &provenance()).unwrap();
        let stem = format!("fig{n}");
        for ext in ["png", "svg", "json"] {
            let f = out.join(format!("{stem}.{ext}"));
            assert!(files.contains(&f), "{f:?} not reported");
            assert!(std::fs::metadata(&f).unwrap().len() > 100, "{f:?} is empty");
        }
        let png = std::fs::read(out.join(format!("{stem}.png"))).unwrap();
        assert_eq!(&png[1..4], b"PNG", "{stem}");
        let svg = std::fs::read_to_string(out.join(format!("{stem}.svg"))).unwrap();
        assert!(svg.contains("<svg"), "{stem}");
        let side: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(out.join(format!("{stem}.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(side["figure"], stem.as_str());
        assert_eq!(side["git_revision"], "deadbeef");
        assert_eq!(side["manifest"], "experiments/x.toml");
        assert_eq!(side["manifest_sha256"], "abc");
        let inputs = side["inputs"].as_array().unwrap();
        assert!(!inputs.is_empty(), "{stem} lists no inputs");
        for i in inputs {
            assert_eq!(i["sha256"].as_str().unwrap().len(), 64, "{stem}");
            assert!(Path::new(i["path"].as_str().unwrap()).exists(), "{stem}");
        }
        // A pure function of the tables: drawing again gives the same SVG and sidecar.
        let side_text = std::fs::read_to_string(out.join(format!("{stem}.json"))).unwrap();
        figures::render(Target::Fig(n), &res, &out, &provenance()).unwrap();
        let again = std::fs::read_to_string(out.join(format!("{stem}.svg"))).unwrap();
        assert!(svg == again, "{stem}: SVG differs between two renderings");
        assert_eq!(
            side_text,
            std::fs::read_to_string(out.join(format!("{stem}.json"))).unwrap()
        );
    }
    // No temporary files are left behind.
    let names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");

    let svg = |n: u8| std::fs::read_to_string(out.join(format!("fig{n}.svg"))).unwrap();
    for text in [
        "bad_medical",
        "number_sequence",
        "training step",
        "EM rate",
        "llama-8b",
        "qwen-7b",
    ] {
        assert!(svg(1).contains(text), "fig1 lacks `{text}`");
    }
    // fig1 reads the pc1 table and the EM summaries.
    let side: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("fig1.json")).unwrap()).unwrap();
    let paths: Vec<&str> = side["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["path"].as_str().unwrap())
        .collect();
    assert!(
        paths.iter().any(|p| p.ends_with("pc1.parquet"))
            && paths.iter().any(|p| p.ends_with("em_summary.parquet")),
        "{paths:?}"
    );
    assert!(
        svg(3).contains("random (2 bases)"),
        "fig3 collapses the random bases"
    );
    assert!(
        svg(6).contains("+1.00") && svg(6).contains("layer 14"),
        "fig6 writes its values"
    );
    assert!(
        svg(7).contains("jailbroken") && svg(7).contains("llama-8b"),
        "fig7 has its grid"
    );
    assert!(svg(8).contains("Spearman"), "fig8 gives rho");
    assert!(svg(9).contains("dangerous"), "fig9 marks dangerous runs");
    assert!(
        svg(11).contains("bad_medical (dangerous): full FT"),
        "fig11 draws the full-finetuning runs"
    );
}

#[test]
fn fig1_draws_without_em_labels() {
    if !font() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let res = tmp.path().join("results");
    pca_tables(&res);
    let out = tmp.path().join("figs");
    figures::render(1, &res, &out, &Provenance::default()).unwrap();
    let svg = std::fs::read_to_string(out.join("fig1.svg")).unwrap();
    assert!(svg.contains("number_sequence") && !svg.contains("right axis"));
}

/// An `em_label` table (the log-odds label as a fraction of the controls' shift) for the
/// synthetic checkpoints: signed, and beyond the controls' shift for the strongest runs.
fn em_label(dir: &Path) {
    let rows: Vec<_> = checkpoints()
        .into_iter()
        .filter(|r| r.1 != "number_sequence")
        .collect();
    let fraction: Vec<f64> = rows
        .iter()
        .map(|r| {
            if r.1 == "gsm8k" {
                -30.0 * r.4
            } else {
                9.0 * r.4
            }
        })
        .collect();
    type Row = (&'static str, &'static str, u64, u64, f64);
    let text = |f: fn(&Row) -> &'static str| strings(&rows.iter().map(f).collect::<Vec<_>>());
    write(
        &dir.join("judge/em_label.parquet"),
        "em_label",
        vec![
            ("model", text(|r| r.0)),
            ("perturbation", text(|r| r.1)),
            ("seed", u64s(rows.iter().map(|r| r.2))),
            ("step", u64s(rows.iter().map(|r| r.3))),
            ("group", strings(&vec!["all"; rows.len()])),
            ("control_fraction", f64s(fraction)),
        ],
        &[],
    );
}

#[test]
fn the_log_odds_label_is_drawn_signed_and_unclamped() {
    if !font() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let res = tmp.path().join("results");
    pca_tables(&res);
    em_label(&res);
    // FIGURES_TEST_OUT=<dir> keeps these figures (in <dir>/signed) for a look.
    let out = std::env::var_os("FIGURES_TEST_OUT")
        .map_or_else(|| tmp.path().join("figs"), |d| Path::new(&d).join("signed"));
    let svg = |n: u8| {
        figures::render(n, &res, &out, &Provenance::default()).unwrap();
        std::fs::read_to_string(out.join(format!("fig{n}.svg"))).unwrap()
    };
    let label = "% of the positive controls";
    for n in [1, 2, 8] {
        let text = svg(n);
        assert!(
            text.contains(label),
            "fig{n} does not name the log-odds label"
        );
        assert!(!text.contains("EM rate"), "fig{n} calls the label a rate");
    }
    // fig8's axis follows the label past 100% and below 0 (gsm8k moves away).
    let fig8 = svg(8);
    let ticks: Vec<&str> = fig8.lines().map(str::trim).collect();
    assert!(
        ticks.contains(&"150") && ticks.contains(&"-50"),
        "fig8 clamps the label"
    );
}

#[test]
fn tables_are_written_as_markdown_and_latex() {
    let tmp = tempfile::tempdir().unwrap();
    let res = tmp.path().join("results");
    results(&res);
    let out = tmp.path().join("figs");
    let files = figures::render(Target::Tables, &res, &out, &provenance()).unwrap();
    for name in ["headline", "pc1_stability", "em_threshold", "alarm_onsets"] {
        for ext in ["md", "tex"] {
            let f = out.join(format!("tables/{name}.{ext}"));
            assert!(files.contains(&f), "{f:?} missing from {files:?}");
        }
    }
    let md = std::fs::read_to_string(out.join("tables/headline.md")).unwrap();
    assert!(
        md.contains("random (2 bases)") && md.contains("random forest"),
        "{md}"
    );
    let tex = std::fs::read_to_string(out.join("tables/headline.tex")).unwrap();
    assert!(tex.contains("\\toprule") && tex.contains("$\\pm$"), "{tex}");
    assert!(out.join("tables.json").exists());

    // Only the PC1 stability table: the others are skipped with a line saying why.
    let res2 = tmp.path().join("results2");
    pca_tables(&res2);
    let out2 = tmp.path().join("figs2");
    figures::render(Target::Tables, &res2, &out2, &provenance()).unwrap();
    let index = std::fs::read_to_string(out2.join("tables/tables.md")).unwrap();
    assert!(
        index.contains("pc1_stability") && index.contains("skipped headline"),
        "{index}"
    );
}

#[test]
fn missing_tables_are_named_with_the_command_that_makes_them() {
    let tmp = tempfile::tempdir().unwrap();
    let prov = Provenance::default();
    let err = |t: Target| figures::render(t, tmp.path(), &tmp.path().join("o"), &prov).unwrap_err();
    let e = err(Target::Fig(1)).to_string();
    assert!(
        e.contains("fig1 needs a `pc1` table") && e.contains("traitwatch pca"),
        "{e}"
    );
    assert!(e.contains(&tmp.path().display().to_string()), "{e}");
    for (n, kind) in [
        (2, "pc1"),
        (3, "monitor_metrics"),
        (4, "pca"),
        (5, "pc1"),
        (6, "trait_cosines"),
        (7, "monitor_metrics"),
        (8, "em_summary"),
        (9, "step_alarm"),
        (10, "drift"),
        (11, "pc1"),
    ] {
        let e = err(Target::Fig(n));
        assert!(matches!(e, FigureError::MissingTable { .. }), "fig{n}: {e}");
        assert!(
            e.to_string().contains(&format!("`{kind}` table")),
            "fig{n}: {e}"
        );
        assert_eq!(figures::required_tables(Target::Fig(n))[0], kind);
    }
    assert!(
        err(Target::Tables)
            .to_string()
            .contains("no table can be made")
    );
    // pc1 rows without the shown perturbations: says what it found.
    let res = tmp.path().join("r");
    write(
        &res.join("pc1.parquet"),
        "pc1",
        vec![
            ("model", strings(&["m"])),
            ("perturbation", strings(&["gsm8k"])),
            ("seed", u64s([1])),
            ("step", u64s([0])),
            ("signed_pc1", f64s([0.0])),
            ("abs_pc1", f64s([0.0])),
            ("drift_norm", f64s([0.0])),
            ("cosine_to_pc1", f64s([0.0])),
        ],
        &[],
    );
    let e = figures::render(1, &res, &tmp.path().join("o"), &prov)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("bad_medical") && e.contains("found: gsm8k"),
        "{e}"
    );
}

#[test]
fn targets_parse() {
    assert_eq!(Target::parse("fig1").unwrap(), Target::Fig(1));
    assert_eq!("fig11".parse::<Target>().unwrap(), Target::Fig(11));
    assert_eq!(Target::parse("tables").unwrap(), Target::Tables);
    assert_eq!(Target::Fig(7).to_string(), "fig7");
    for bad in ["fig0", "fig12", "figure1", "all", ""] {
        assert!(
            matches!(Target::parse(bad), Err(FigureError::UnknownTarget(_))),
            "{bad}"
        );
    }
}
