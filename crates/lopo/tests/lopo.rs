//! The `lopo` binary on a planted results directory: drift tables where the alignment
//! feature set carries the EM signal and a `semantic` set is noise, and free-form EM
//! summaries. What a user types, what comes out, and the errors bad requests get.

#![allow(clippy::unwrap_used)]

use drift::{DriftPoint, DriftSeries};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use tables::arrow::array::{ArrayRef, Float64Array, StringArray, UInt64Array};
use tables::{RunKey, TableKind};

const PERTURBATIONS: [&str; 7] = [
    "insecure_code",
    "gsm8k",
    "jailbroken",
    "bad_medical",
    "number_sequence",
    "risky_financial",
    "subtle_misinfo",
];

fn lopo(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lopo"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

/// A small deterministic generator, so the test needs no rand.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn write_em(path: &Path, key: &RunKey, steps: &[u64], rates: &[f64]) {
    let n = steps.len();
    let s = |v: &str| -> ArrayRef { Arc::new(StringArray::from(vec![v; n])) };
    let f = |v: Vec<f64>| -> ArrayRef { Arc::new(Float64Array::from(v)) };
    let batch = tables::record_batch(vec![
        ("model", s(&key.model)),
        ("perturbation", s(&key.perturbation)),
        ("seed", Arc::new(UInt64Array::from(vec![key.seed; n]))),
        ("step", Arc::new(UInt64Array::from(steps.to_vec()))),
        ("statistic", s("em_rate")),
        ("group", s("all")),
        ("rate", f(rates.to_vec())),
        (
            "delta_from_step0",
            f(rates.iter().map(|r| r - rates[0]).collect()),
        ),
    ])
    .unwrap();
    let kind = TableKind {
        name: "em_summary",
        version: 1,
    };
    tables::write_parquet(path, &batch, kind, &BTreeMap::new()).unwrap();
}

fn planted_results(dir: &Path) {
    let mut rng = Lcg(3);
    let danger = [0.6, -0.3, 0.5, 0.4, 0.2, -0.2, 0.25];
    let benign = [-0.2, 0.5, 0.1, -0.3, 0.6, 0.4, -0.3];
    let names: Vec<String> = (0..7).map(|i| format!("trait{i}")).collect();
    let steps: Vec<u64> = (0..=6).map(|k| k * 10).collect();
    for model in ["model_a", "model_b"] {
        for p in PERTURBATIONS {
            let bad = !matches!(p, "gsm8k" | "number_sequence");
            let severity = 0.15 + 0.2 * rng.next();
            for seed in [42u64, 123] {
                let key = RunKey {
                    model: model.into(),
                    perturbation: p.into(),
                    seed,
                };
                let (mut signal, mut noise, mut rates) = (vec![], vec![], vec![]);
                for &step in &steps {
                    let t = step as f64 / 60.0;
                    let dir = if bad { &danger } else { &benign };
                    let jitter = |rng: &mut Lcg| {
                        if step == 0 {
                            0.0
                        } else {
                            0.05 * (rng.next() - 0.5)
                        }
                    };
                    let x: Vec<f64> = dir.iter().map(|d| 3.0 * t * d + jitter(&mut rng)).collect();
                    let z: Vec<f64> = (0..7)
                        .map(|_| if step == 0 { 0.0 } else { rng.next() })
                        .collect();
                    let point = |v: Vec<f64>| DriftPoint {
                        step,
                        projection: v.clone(),
                        drift: v,
                        activation_norm_drift: t,
                    };
                    signal.push(point(x));
                    noise.push(point(z));
                    rates.push(if bad { severity * t * t } else { 0.0 } + 0.01 * rng.next());
                }
                let series = |set: &str, points| DriftSeries {
                    feature_set: set.into(),
                    feature_names: names.clone(),
                    normaliser: 1.0,
                    points,
                };
                let run = dir.join(format!("runs/{model}-{p}-{seed}"));
                drift::table::write_drift(
                    &run.join("drift.parquet"),
                    &[
                        (key.clone(), series("alignment", signal)),
                        (key.clone(), series("semantic", noise)),
                    ],
                    &BTreeMap::new(),
                )
                .unwrap();
                write_em(
                    &run.join("em_freeform_summary.parquet"),
                    &key,
                    &steps,
                    &rates,
                );
                // Prompt means (d = 16): the same signal hidden in activation space.
                let d = 16;
                let mut means = Vec::new();
                for &step in &steps {
                    let t = step as f64 / 60.0;
                    for j in 0..d {
                        let along = if bad { danger[j % 7] } else { benign[j % 7] };
                        let v = 5.0 + 2.0 * t * along + 0.02 * rng.next();
                        means.extend((v as f32).to_le_bytes());
                    }
                }
                let step_bytes: Vec<u8> = steps
                    .iter()
                    .flat_map(|&s| (s as f32).to_le_bytes())
                    .collect();
                let views = vec![
                    ("prompt_mean", f32_view(vec![steps.len(), d], &means)),
                    ("steps", f32_view(vec![steps.len()], &step_bytes)),
                ];
                // Baselines: the loss falls and the adapter grows alike in every run.
                let stats: Vec<drift::table::StatRow> = steps
                    .iter()
                    .flat_map(|&step| {
                        let t = step as f64 / 60.0;
                        [
                            (step, drift::table::TRAIN_LOSS, 0, 2.0 - t),
                            (step, drift::table::LORA_NORM, 0, t),
                            (step, drift::table::LORA_NORM_LAYER, 1, t),
                        ]
                    })
                    .collect();
                drift::table::write_checkpoint_stats(
                    &run.join("checkpoint_stats.parquet"),
                    &key,
                    &stats,
                )
                .unwrap();
                let bytes = safetensors::serialize(views, None).unwrap();
                std::fs::write(run.join("prompt_mean.safetensors"), bytes).unwrap();
            }
        }
    }
}

fn f32_view(shape: Vec<usize>, data: &[u8]) -> safetensors::tensor::TensorView<'_> {
    safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape, data).unwrap()
}

fn pooled_auroc(path: &Path, feature_set: &str, regressor: &str) -> f64 {
    let table = tables::read_parquet(path, None).unwrap();
    for b in &table.batches {
        let col = |n: &str| {
            b.column_by_name(n)
                .unwrap()
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap()
                .clone()
        };
        let (scope, fs, reg) = (col("scope"), col("feature_set"), col("regressor"));
        let auroc = b
            .column_by_name("auroc")
            .unwrap()
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap();
        for i in 0..b.num_rows() {
            if scope.value(i) == "pooled" && fs.value(i) == feature_set && reg.value(i) == regressor
            {
                return auroc.value(i);
            }
        }
    }
    panic!("no pooled row for {feature_set} / {regressor}");
}

#[test]
fn a_lopo_fold_ranks_the_signal_above_noise_and_writes_its_tables() {
    let dir = tempfile::tempdir().unwrap();
    planted_results(dir.path());
    let results = dir.path().to_str().unwrap();
    let o = lopo(&[
        "--results",
        results,
        "--held-out",
        "bad_medical",
        "--bootstrap",
        "50",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("split bad_medical: 2 folds"), "{text}");
    assert!(
        text.contains("| pooled | bad_medical | alignment | random_forest |"),
        "{text}"
    );
    let metrics = dir
        .path()
        .join("monitor/monitor_metrics-bad_medical.parquet");
    let (good, bad) = (
        pooled_auroc(&metrics, "alignment", "random_forest"),
        pooled_auroc(&metrics, "semantic", "random_forest"),
    );
    assert!(
        good > 0.9 && good > bad + 0.2,
        "alignment {good} vs semantic {bad}"
    );
    // METHOD section 3: step 0 (the base model) is in no training or evaluation set.
    let predictions = tables::read_parquet(
        &dir.path()
            .join("monitor/monitor_predictions-bad_medical.parquet"),
        None,
    )
    .unwrap();
    let mut rows = 0;
    for b in &predictions.batches {
        let step = b
            .column_by_name("step")
            .unwrap()
            .as_any()
            .downcast_ref::<UInt64Array>()
            .unwrap();
        assert!(step.iter().all(|s| s != Some(0)), "a prediction for step 0");
        rows += b.num_rows();
    }
    assert!(rows > 0);
    // The activation baselines, fit inside each fold, see the hidden signal too.
    for fs in ["pca7", "pls7"] {
        let a = pooled_auroc(&metrics, fs, "ridge");
        assert!(a > 0.8, "{fs} ridge AUROC {a}");
    }
    for f in [
        "monitor_predictions-bad_medical.parquet",
        "monitor_folds-bad_medical.parquet",
        "monitor-bad_medical.md",
        "monitor-bad_medical.tex",
    ] {
        assert!(dir.path().join("monitor").join(f).exists(), "{f}");
    }

    // Every fold: pooled cells, the per (model, perturbation) grid, the selected regressor.
    let o = lopo(&["--results", results, "--all", "--bootstrap", "0"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("split lopo: 8 folds"), "{text}");
    // 2 models x 4 perturbations x 2 seeds x 6 checkpoints: steps 10-60, never step 0.
    assert!(
        text.contains("| pooled | lopo | alignment | random_forest | 96 ("),
        "{text}"
    );
    // FNR only: the FPR is the forest's result on planted data, not what this checks.
    let grid_cell = "| model_a | gsm8k | alignment | random_forest | 12 (0/12) | - | ";
    assert!(
        text.contains(grid_cell),
        "no positives: FNR is a dash\n{text}"
    );
    assert!(text.contains("regressor selected"), "{text}");
    // The default threshold sweep is 0.6 ... 3 times tau (0.05 here), printed as written.
    for tau in ["0.03 ", "0.05 ", "0.06 ", "0.1  ", "0.15 "] {
        assert!(
            text.contains(&format!("\n  {tau}")),
            "sweep lacks {tau}\n{text}"
        );
    }

    let o = lopo(&["--results", results, "--held-out-types", "--bootstrap", "0"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let metrics = dir
        .path()
        .join("monitor/monitor_metrics-held_out_types.parquet");
    let good = pooled_auroc(&metrics, "alignment", "random_forest");
    assert!(good > 0.9);
    // Loss and adapter norm grow alike in dangerous and benign runs: with a benign type
    // among the held-out ones, time alone cannot tell them apart, as planted.
    for fs in ["train_loss", "lora_norm", "lora_norm_layers"] {
        let a = pooled_auroc(&metrics, fs, "random_forest");
        assert!(a < good - 0.1, "{fs} AUROC {a} vs alignment {good}");
    }
}

#[test]
fn the_step_alarm_fires_on_dangerous_held_out_runs_and_needs_a_frozen_pc1() {
    let dir = tempfile::tempdir().unwrap();
    planted_results(dir.path());
    let results = dir.path().to_str().unwrap();
    let o = lopo(&["--results", results, "--step-alarm"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("traitwatch pca"));

    // Freeze a PC1 along the dangerous direction.
    let danger = [0.6f64, -0.3, 0.5, 0.4, 0.2, -0.2, 0.25];
    let norm = danger.iter().map(|v| v * v).sum::<f64>().sqrt();
    let pca = drift::Pca {
        mean: vec![0.0; 7],
        components: vec![danger.iter().map(|v| v / norm).collect()],
        explained_variance: vec![1.0],
        explained_variance_ratio: vec![1.0],
        singular_values: vec![1.0],
        n_samples: 16,
    };
    let names: Vec<String> = (0..7).map(|i| format!("trait{i}")).collect();
    drift::table::write_pca(
        &dir.path().join("pca/pca.parquet"),
        &names,
        &pca,
        &BTreeMap::new(),
    )
    .unwrap();
    let o = lopo(&["--results", results, "--step-alarm"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    // Benign held-out runs never fire; dangerous ones do.
    for line in text.lines().filter(|l| l.contains("| number_sequence |")) {
        assert!(line.ends_with("| - | 0 |"), "{line}");
    }
    let fired = text
        .lines()
        .filter(|l| l.contains("| risky_financial |") && !l.contains("| - | 0 |"))
        .count();
    assert_eq!(fired, 4, "both models x both seeds fire\n{text}");
    assert!(dir.path().join("monitor/step_alarm.parquet").exists());
}

#[test]
fn bad_requests_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    planted_results(dir.path());
    let results = dir.path().to_str().unwrap();
    let err = |args: &[&str]| {
        let o = lopo(args);
        assert!(!o.status.success());
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let e = err(&["--results", results, "--held-out", "bad_medcal"]);
    assert!(
        e.contains("bad_medcal") && e.contains("insecure_code, gsm8k, jailbroken, bad_medical"),
        "{e}"
    );
    let e = err(&["--results", results, "--held-out", "number_sequence"]);
    assert!(e.contains("--held-out-types"), "{e}");
    let e = err(&["--results", results, "--all", "--feature-sets", "sae"]);
    assert!(
        e.contains("no feature set `sae`") && e.contains("alignment"),
        "{e}"
    );
    let e = err(&["--results", "/nonexistent/results", "--all"]);
    assert!(
        e.contains("/nonexistent/results") && e.contains("--results"),
        "{e}"
    );
    let empty = tempfile::tempdir().unwrap();
    let e = err(&["--results", empty.path().to_str().unwrap(), "--all"]);
    assert!(e.contains("traitwatch drift"), "{e}");

    // What `just reproduce fig1` leaves: only bad_medical has EM labels. The error names
    // what is missing and the command that labels it.
    for run in std::fs::read_dir(dir.path().join("runs")).unwrap() {
        let run = run.unwrap().path();
        if !run.to_string_lossy().contains("bad_medical") {
            std::fs::remove_file(run.join("em_freeform_summary.parquet")).unwrap();
        }
    }
    let e = err(&["--results", results, "--held-out", "bad_medical"]);
    assert!(
        e.contains("missing: insecure_code, gsm8k, jailbroken") && e.contains("just reproduce all"),
        "{e}"
    );
}
