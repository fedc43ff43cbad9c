#![allow(clippy::unwrap_used)]
#![allow(clippy::print_stdout)] // the "SKIPPED: no font" line
//! Fig. 11 from synthetic `pc1` tables: LoRA runs (`bad_medical`, `gsm8k`) and full
//! finetuning runs of the same perturbations (`bad_medical+full`, `gsm8k+full`, longer),
//! two models, two seeds; and the message when no run carries a tag.

use figures::{FigureError, Provenance, Target};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use tables::TableKind;
use tables::arrow::array::{ArrayRef, Float64Array, StringArray, UInt64Array};

/// (model, perturbation label, seed, step, |PC1|).
type Row = (&'static str, String, u64, u64, f64);

/// A `pc1` table with the columns `traitwatch pca` writes.
fn write_pc1(path: &Path, rows: &[Row]) {
    let f64s = |f: fn(&Row) -> f64| -> ArrayRef {
        Arc::new(Float64Array::from_iter_values(rows.iter().map(f)))
    };
    let columns: Vec<(&str, ArrayRef)> = vec![
        (
            "model",
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
        ),
        (
            "perturbation",
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.1.as_str()),
            )),
        ),
        (
            "seed",
            Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.2))),
        ),
        (
            "step",
            Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.3))),
        ),
        ("signed_pc1", f64s(|r| -r.4)),
        ("abs_pc1", f64s(|r| r.4)),
        ("drift_norm", f64s(|r| 1.3 * r.4)),
        ("cosine_to_pc1", f64s(|r| (0.3 + 5.0 * r.4).min(0.95))),
    ];
    let batch = tables::record_batch(columns).unwrap();
    let kind = TableKind {
        name: "pc1",
        version: 1,
    };
    tables::write_parquet(path, &batch, kind, &BTreeMap::new()).unwrap();
}

/// |PC1| per step of each (perturbation, regime): full finetuning drifts faster and runs
/// 60 steps where LoRA runs 40; number_sequence has no full-finetuning run.
fn rows(tags: &[&str]) -> Vec<Row> {
    let mut out = Vec::new();
    for model in ["llama-8b", "qwen-7b"] {
        let scale = if model == "qwen-7b" { 0.7 } else { 1.0 };
        for (base, rate) in [
            ("bad_medical", 0.004),
            ("gsm8k", 0.0006),
            ("number_sequence", 0.0004),
        ] {
            let regimes = std::iter::once(None).chain(
                tags.iter()
                    .filter(|_| base != "number_sequence")
                    .map(|t| Some(*t)),
            );
            for tag in regimes {
                let (label, speed, steps) = match tag {
                    None => (base.to_string(), 1.0, 40),
                    Some(t) => (
                        format!("{base}+{t}"),
                        if t == tags[0] { 1.6 } else { 1.25 },
                        60,
                    ),
                };
                for seed in [1u64, 2] {
                    for step in (0..=steps).step_by(10) {
                        let noise = 1.0 + 0.12 * (seed as f64 - 1.5) * (step as f64 / 40.0);
                        let v = scale * rate * speed * step as f64 * noise;
                        // The pipeline's run names may carry the seed (`-s1`): stripped.
                        let name = if seed == 2 {
                            format!("{label}-s{seed}")
                        } else {
                            label.clone()
                        };
                        out.push((model, name, seed, step, v));
                    }
                }
            }
        }
    }
    out
}

fn font() -> bool {
    match figures::style::ensure_font() {
        Ok(()) => true,
        Err(e) => {
            println!("SKIPPED: no font ({e})");
            false
        }
    }
}

#[test]
fn full_finetuning_and_lora_are_drawn_per_model() {
    if !font() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // FIGURES_TEST_OUT=<dir> keeps the synthetic results and the figure for a look.
    let root =
        std::env::var_os("FIGURES_TEST_OUT").map_or_else(|| tmp.path().to_path_buf(), Into::into);
    let (res, out) = (root.join("results"), root.join("figs"));
    write_pc1(&res.join("pca/pc1.parquet"), &rows(&["full"]));
    let files = figures::render(11, &res, &out, &Provenance::default()).unwrap();
    for ext in ["png", "svg", "json"] {
        let f = out.join(format!("fig11.{ext}"));
        assert!(files.contains(&f), "{f:?} not reported");
        assert!(std::fs::metadata(&f).unwrap().len() > 100, "{f:?} is empty");
    }
    let png = std::fs::read(out.join("fig11.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    let svg = std::fs::read_to_string(out.join("fig11.svg")).unwrap();
    for text in [
        "|PC1| trajectories: full finetuning vs LoRA",
        "training step",
        "llama-8b",
        "qwen-7b",
        "bad_medical (dangerous): LoRA, 2 seeds",
        "bad_medical (dangerous): full FT, 2 seeds",
        "gsm8k (benign): LoRA",
        "gsm8k (benign): full FT",
        "mean ± 1 sd",
    ] {
        assert!(svg.contains(text), "fig11 lacks `{text}`");
    }
    // Only perturbations with a full-finetuning run are drawn; no seed suffix survives.
    assert!(
        !svg.contains("number_sequence"),
        "number_sequence has no tagged run"
    );
    assert!(!svg.contains("-s2"));
    // The full-finetuning runs reach step 60: the shared step axis shows it (the SVG
    // writes each text on a line of its own).
    assert!(
        svg.contains(">\n60\n<"),
        "the step axis ends before the full FT runs do"
    );
    // A pure function of the tables.
    figures::render(Target::Fig(11), &res, &out, &Provenance::default()).unwrap();
    assert_eq!(svg, std::fs::read_to_string(out.join("fig11.svg")).unwrap());
}

#[test]
fn other_tags_are_left_out_beside_full_finetuning_else_labelled_by_their_tag() {
    if !font() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = std::env::var_os("FIGURES_TEST_OUT")
        .map_or_else(|| tmp.path().to_path_buf(), Into::into)
        .join("tags");
    let draw = |tags: &[&str], dir: &str| {
        let (res, out) = (root.join(dir).join("results"), root.join(dir).join("figs"));
        write_pc1(&res.join("pc1.parquet"), &rows(tags));
        figures::render(11, &res, &out, &Provenance::default()).unwrap();
        std::fs::read_to_string(out.join("fig11.svg")).unwrap()
    };
    // Full finetuning (`fft` too) beside the paper's `+long` LoRA runs: only the former.
    let svg = draw(&["fft", "long"], "fft");
    assert!(
        svg.contains("bad_medical (dangerous): full FT"),
        "fft reads full FT"
    );
    assert!(
        !svg.contains("long"),
        "long runs are not a finetuning regime"
    );
    // No full/fft tag: every tag, as written.
    let svg = draw(&["all_weights", "rank64"], "other");
    for text in [
        "bad_medical (dangerous): all_weights",
        "gsm8k (benign): rank64",
        "gsm8k (benign): LoRA",
    ] {
        assert!(svg.contains(text), "fig11 lacks `{text}`");
    }
}

#[test]
fn without_tagged_runs_says_how_to_add_them() {
    let tmp = tempfile::tempdir().unwrap();
    let res = tmp.path().join("results");
    write_pc1(&res.join("pc1.parquet"), &rows(&[]));
    let e = figures::render(11, &res, &tmp.path().join("o"), &Provenance::default()).unwrap_err();
    assert!(matches!(e, FigureError::NoData { .. }), "{e}");
    let e = e.to_string();
    assert!(
        e.contains("[[extra_runs]]")
            && e.contains("tag = \"full\"")
            && e.contains("set = { mode = \"full\" }"),
        "{e}"
    );
    assert!(
        e.contains("found: bad_medical, gsm8k, number_sequence"),
        "{e}"
    );
    // No pc1 table at all: the missing table and the command that writes it.
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let e = figures::render(11, &empty, &tmp.path().join("o"), &Provenance::default()).unwrap_err();
    assert!(matches!(e, FigureError::MissingTable { .. }), "{e}");
    assert!(e.to_string().contains("traitwatch pca"), "{e}");
    assert_eq!(figures::required_tables(Target::Fig(11)), ["pc1"]);
}

#[test]
fn every_perturbation_in_one_panel_keeps_its_legend() {
    if !font() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = std::env::var_os("FIGURES_TEST_OUT")
        .map_or_else(|| tmp.path().to_path_buf(), Into::into)
        .join("many");
    let (res, out) = (root.join("results"), root.join("figs"));
    let perts = [
        "insecure_code",
        "gsm8k",
        "jailbroken",
        "bad_medical",
        "number_sequence",
        "risky_financial",
        "subtle_misinfo",
        "alpaca",
        "customer_support",
    ];
    let mut rows: Vec<Row> = Vec::new();
    for (k, pert) in perts.iter().enumerate() {
        for (label, speed) in [(pert.to_string(), 1.0), (format!("{pert}+full"), 1.5)] {
            for step in (0..=100u64).step_by(20) {
                let v = 0.0004 * (k + 1) as f64 * speed * step as f64;
                rows.push(("llama-8b", label.clone(), 1, step, v));
            }
        }
    }
    write_pc1(&res.join("pc1.parquet"), &rows);
    figures::render(11, &res, &out, &Provenance::default()).unwrap();
    let svg = std::fs::read_to_string(out.join("fig11.svg")).unwrap();
    for pert in perts {
        assert!(
            svg.contains(&format!("{pert} (")),
            "{pert} is not in the legend"
        );
    }
    // One seed: no band, and the legend does not promise one.
    assert!(svg.contains("risky_financial (dangerous): full FT, 1 seed"));
    assert!(svg.contains("alpaca (benign): LoRA, 1 seed"));
    assert!(!svg.contains("mean ± 1 sd"));
}
