//! `traitwatch sae` end to end on a tiny model: trains once, reports its quality, and a
//! second run with the same settings reuses the saved SAE.
#![allow(clippy::unwrap_used)]

mod common;

use common::{mini_trait_inputs, stderr, stdout, traitwatch};

#[test]
fn sae_trains_reports_and_is_reused() {
    let dir = tempfile::tempdir().unwrap();
    let (hf, bank, questions) = mini_trait_inputs(dir.path());
    let prompts = format!(
        "{}/../../data/traits/measurement_prompts.toml",
        env!("CARGO_MANIFEST_DIR")
    );
    let out = dir.path().join("sae");
    let args = [
        "sae",
        "--model",
        hf.to_str().unwrap(),
        "--layer",
        "1",
        "--bank",
        bank.to_str().unwrap(),
        "--questions",
        questions.to_str().unwrap(),
        "--prompts",
        prompts.as_str(),
        "--latents",
        "16",
        "--steps",
        "60",
        "--token-batch",
        "64",
        "--out",
        out.to_str().unwrap(),
    ];
    let o = traitwatch(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("FVU") && stdout(&o).contains("dead latents"),
        "{}",
        stdout(&o)
    );
    let sae = drift::SparseAutoencoder::load(&out.join("sae.safetensors")).unwrap();
    assert_eq!((sae.d, sae.m), (32, 16));
    assert_eq!(sae.meta.get("layer").map(String::as_str), Some("1"));
    assert!(out.join("sae_log.parquet").exists());
    let o = traitwatch(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("reusing"), "{}", stdout(&o));
    // A layer the model does not have is named.
    let mut bad = args.to_vec();
    bad[4] = "7";
    let o = traitwatch(&bad);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("layer 7"), "{}", stderr(&o));
}
