//! `traitwatch backend-check`: tiny Llama and Gemma 3 models on a backend against the CPU
//! backend in f32 (logits, activations at every depth, two LoRA steps).
//!
//! The CPU tests always run. The wgpu test is built with `--features wgpu`
//! (`just test-wgpu`); on a machine without a Vulkan adapter it says SKIPPED. CUDA is
//! checked the same way on a GPU machine: `traitwatch --backend cuda backend-check`.
#![allow(clippy::unwrap_used)]

mod common;

use common::{stderr, stdout, traitwatch};
use serde_json::Value;

fn report(path: &std::path::Path) -> Vec<Value> {
    let json: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    json["comparisons"].as_array().unwrap().clone()
}

#[test]
fn cpu_is_deterministic_and_bf16_base_weights_stay_within_tolerance() {
    let dir = tempfile::tempdir().unwrap();
    let f32_json = dir.path().join("f32.json");
    let o = traitwatch(&["backend-check", "--out", f32_json.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("tiny-gemma3"), "{}", stdout(&o));
    let f32_rows = report(&f32_json);
    // Two models, five quantities each.
    assert_eq!(f32_rows.len(), 10);
    for row in &f32_rows {
        // The same kernels on the same inputs: bit-identical (the adapter's 1 - cosine
        // is rounding in the cosine itself).
        assert!(row["error"].as_f64().unwrap() < 1e-12, "{row}");
        assert_eq!(row["pass"], true);
    }

    let bf16_json = dir.path().join("bf16.json");
    let o = traitwatch(&[
        "--precision",
        "bf16",
        "backend-check",
        "--out",
        bf16_json.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows = report(&bf16_json);
    for row in &rows {
        assert_eq!(row["pass"], true, "{row}");
    }
    // 16-bit weights really were used: the forward pass moved.
    let logits = rows.iter().find(|r| r["quantity"] == "logits").unwrap();
    assert!(logits["error"].as_f64().unwrap() > 1e-4, "{logits}");
}

#[test]
fn a_backend_not_compiled_in_is_named() {
    if cfg!(feature = "cuda") {
        return;
    }
    let o = traitwatch(&["--backend", "cuda", "backend-check"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--features cuda"), "{}", stderr(&o));
}

#[cfg(feature = "wgpu")]
#[test]
fn wgpu_matches_cpu_in_f32_and_with_f16_base_weights() {
    let dir = tempfile::tempdir().unwrap();
    for precision in ["f32", "f16"] {
        let json = dir.path().join(format!("wgpu-{precision}.json"));
        // Minimal autotuning: on a software adapter tuning costs more than it saves.
        let o = common::traitwatch_env(
            &[
                "--backend",
                "wgpu",
                "--precision",
                precision,
                "backend-check",
                "--out",
                json.to_str().unwrap(),
            ],
            &[("CUBECL_AUTOTUNE_LEVEL", "minimal")],
        );
        if stderr(&o).contains("could not start") {
            eprintln!("SKIPPED wgpu backend check: {}", stderr(&o).trim());
            return;
        }
        assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
        println!("{}", stdout(&o));
        for row in report(&json) {
            assert_eq!(row["pass"], true, "{precision}: {row}");
        }
    }
}
