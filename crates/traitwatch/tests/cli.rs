//! The `traitwatch` binary end to end on a tiny random model: what a user types, what
//! comes out, and the errors bad input gets.
#![allow(clippy::unwrap_used)]

use llm::testing::TinyModel;
use std::path::{Path, PathBuf};

mod common;

use common::{handmade_directions, mini_trait_inputs, stderr, stdout, tiny_gguf, traitwatch};

#[test]
fn inspect_describes_gguf_and_hf_models() {
    let dir = tempfile::tempdir().unwrap();
    let gguf = tiny_gguf(dir.path());
    let out = traitwatch(&["inspect", gguf.to_str().unwrap(), "--tensors"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("llama (2 layers, d_model 32, 4 heads / 2 KV heads"),
        "{text}"
    );
    assert!(text.contains("blk.1.ffn_down.weight"), "{text}");
    assert!(text.contains("system role: yes"), "{text}");

    let hf = dir.path().join("hf");
    TinyModel::llama(1).save_hf_dir(&hf, 2).unwrap();
    let out = traitwatch(&["inspect", hf.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("HF directory"));
}

#[test]
fn generate_is_reproducible_from_a_seed() {
    let dir = tempfile::tempdir().unwrap();
    let gguf = tiny_gguf(dir.path());
    let run = |seed: &str| {
        let out = traitwatch(&[
            "generate",
            "--model",
            gguf.to_str().unwrap(),
            "--prompt",
            "hello there",
            "--max-new-tokens",
            "12",
            "--temperature",
            "1.0",
            "--seed",
            seed,
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
    };
    assert_eq!(run("5"), run("5"));
    assert_ne!(run("5"), run("6"));
}

#[test]
fn activations_write_parquet_and_safetensors() {
    let dir = tempfile::tempdir().unwrap();
    let gguf = tiny_gguf(dir.path());
    let prompts = dir.path().join("prompts.jsonl");
    std::fs::write(
        &prompts,
        "{\"prompt\": \"the weather\"}\n{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}\n",
    )
    .unwrap();
    let out_pq = dir.path().join("acts.parquet");
    let out = traitwatch(&[
        "activations",
        "--model",
        gguf.to_str().unwrap(),
        "--prompt",
        "a first prompt",
        "--prompts-file",
        prompts.to_str().unwrap(),
        "--layers",
        "embeddings,1,final_norm",
        "--out",
        out_pq.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let kind = tables::TableKind {
        name: "activations",
        version: 1,
    };
    let table = tables::read_parquet(&out_pq, Some(kind)).unwrap();
    assert_eq!(
        table.num_rows(),
        3 * 3,
        "3 prompts x 3 hook points, last-token pooling"
    );
    assert_eq!(table.metadata["pooling"], "last");

    let out_st = dir.path().join("acts.safetensors");
    let out = traitwatch(&[
        "activations",
        "--model",
        gguf.to_str().unwrap(),
        "--prompt",
        "one",
        "--prompt",
        "two",
        "--layers",
        "0",
        "--pooling",
        "prompt_mean",
        "--out",
        out_st.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let bytes = std::fs::read(&out_st).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(st.tensor("block.0").unwrap().shape(), &[2, 32]);
}

#[test]
fn bad_input_gets_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let gguf = tiny_gguf(dir.path());
    let g = gguf.to_str().unwrap();
    let cases: [(&[&str], &str); 5] = [
        (
            &[
                "activations",
                "--model",
                g,
                "--prompt",
                "x",
                "--out",
                "x.csv",
            ],
            ".parquet or .safetensors",
        ),
        (
            &[
                "activations",
                "--model",
                g,
                "--prompt",
                "x",
                "--layers",
                "7",
                "--out",
                "x.parquet",
            ],
            "block.7 does not exist",
        ),
        (
            &["generate", "--model", "no-such-model", "--prompt", "x"],
            "smollm2-135m",
        ),
        (&["reproduce", "fig99"], "possible values: fig1, fig2"),
        (
            &[
                "--backend",
                "cuda",
                "generate",
                "--model",
                g,
                "--prompt",
                "x",
            ],
            "not compiled",
        ),
    ];
    for (args, expected) in cases {
        let out = traitwatch(args);
        assert!(!out.status.success(), "{args:?} should fail");
        let err = stderr(&out);
        assert!(
            err.contains(expected) || cfg!(feature = "cuda") && expected == "not compiled",
            "{args:?}: {err}"
        );
    }
    let garbage = dir.path().join("garbage.gguf");
    std::fs::write(&garbage, b"not a model at all").unwrap();
    let out = traitwatch(&["inspect", garbage.to_str().unwrap()]);
    assert!(stderr(&out).contains("not a GGUF file"), "{}", stderr(&out));
}

/// A tiny model whose blocks all pass the residual stream through unchanged, so the
/// last-token activation at any layer is the embedding of the generation prompt's last token.
fn identity_blocks_model(dir: &Path) -> TinyModel {
    let mut tiny = TinyModel::llama(5);
    for l in 0..tiny.config.num_hidden_layers {
        for name in ["self_attn.o_proj", "mlp.down_proj"] {
            let key = format!("model.layers.{l}.{name}.weight");
            let shape = tiny.weights[&key].shape.clone();
            let zeros = vec![0.0; shape.iter().product()];
            tiny.weights
                .insert(key, llm::weights::HostTensor::f32(shape, zeros));
        }
    }
    tiny.save_hf_dir(dir, 1).unwrap();
    tiny
}

#[test]
fn traits_extracts_directions_and_picks_a_layer() {
    let dir = tempfile::tempdir().unwrap();
    let (hf, bank, questions) = mini_trait_inputs(dir.path());
    let out = dir.path().join("traits");
    let args = [
        "traits",
        "--model",
        hf.to_str().unwrap(),
        "--bank",
        bank.to_str().unwrap(),
        "--questions",
        questions.to_str().unwrap(),
        "--candidates",
        "0-1",
        "--steer-tokens",
        "4",
        "--out",
        out.to_str().unwrap(),
    ];
    let o = traitwatch(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("l* = "), "{}", stdout(&o));
    let d = traits::Directions::load(&out.join("directions.safetensors")).unwrap();
    assert_eq!((d.traits.len(), d.n_layers, d.d_model), (1, 2, 32));
    for name in ["separation", "layer_scores", "cosines"] {
        assert!(out.join(format!("{name}.parquet")).exists(), "{name}");
    }
    let selection: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("selection.json")).unwrap())
            .unwrap();
    assert!(selection["best_layer"].as_u64().unwrap() <= 1);
    // A bank with a broken trait is refused with the file, trait and field named.
    std::fs::write(
        &bank,
        "name = \"mini\"\nversion = 1\n[[traits]]\nname = \"calm\"\n",
    )
    .unwrap();
    let o = traitwatch(&args);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("bank.toml") && stderr(&o).contains("calm"),
        "{}",
        stderr(&o)
    );
}

/// A known change of the weights gives the analytically expected drift: with identity
/// blocks, adding `c u` to the embedding of the prompts' common last token moves every
/// measured activation by exactly `c u`, so drift along unit `d` is `c <u, d> / N`, with `N`
/// the norm of that embedding.
#[test]
fn drift_of_a_known_weight_change_is_as_computed() {
    let dir = tempfile::tempdir().unwrap();
    let hf = dir.path().join("hf");
    let tiny = identity_blocks_model(&hf);
    let d = tiny.config.hidden_size;
    let lm = llm::load::<burn::backend::Flex>(hf.to_str().unwrap(), &Default::default()).unwrap();
    let ids = lm
        .chat_template()
        .unwrap()
        .render_tokens(&lm.tokenizer, &[llm::Message::user("Hello?")], true)
        .unwrap()
        .ids;
    let last = *ids.last().unwrap() as usize;

    // Directions at layer 1: e_0 and (e_0 + e_1) / sqrt 2.
    let mut unit = vec![0f32; 2 * 2 * d];
    let s = std::f32::consts::FRAC_1_SQRT_2;
    for layer in 0..2 {
        unit[layer * d] = 1.0;
        unit[(2 + layer) * d] = s;
        unit[(2 + layer) * d + 1] = s;
    }
    let dir_file = dir.path().join("directions.safetensors");
    handmade_directions(d, unit).save(&dir_file).unwrap();

    // A run: step 0 is the base (full finetuning), step 10 changes one embedding row.
    let run = dir.path().join("run");
    std::fs::create_dir_all(run.join("checkpoints/step-000000")).unwrap();
    std::fs::create_dir_all(run.join("checkpoints/step-000010")).unwrap();
    std::fs::write(
        run.join("run.json"),
        r#"{"base_model": "x", "config": {"seed": 7}}"#,
    )
    .unwrap();
    let mut embed = tiny.weights["model.embed_tokens.weight"].to_f32();
    let row = &embed[last * d..(last + 1) * d];
    let n = row.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let (c, u) = (0.5f64, [0.6f64, 0.8]); // u = 0.6 e_0 + 0.8 e_1, unit
    embed[last * d] += (c * u[0]) as f32;
    embed[last * d + 1] += (c * u[1]) as f32;
    let view = safetensors::tensor::TensorView::new(
        safetensors::Dtype::F32,
        vec![tiny.config.vocab_size, d],
        bytemuck_f32(&embed),
    )
    .unwrap();
    let bytes = safetensors::serialize(vec![("model.embed_tokens.weight", view)], None).unwrap();
    std::fs::write(run.join("checkpoints/step-000010/model.safetensors"), bytes).unwrap();

    let out = dir.path().join("drift");
    let prompts = format!(
        "{}/../../data/traits/measurement_prompts.toml",
        env!("CARGO_MANIFEST_DIR")
    );
    let measure_drift = || {
        traitwatch(&[
            "drift",
            "--run",
            run.to_str().unwrap(),
            "--model",
            hf.to_str().unwrap(),
            "--directions",
            dir_file.to_str().unwrap(),
            "--layer",
            "1",
            "--random-bases",
            "2",
            "--perturbation",
            "handmade",
            "--prompts",
            prompts.as_str(),
            "--out",
            out.to_str().unwrap(),
        ])
    };
    let o = measure_drift();
    assert!(o.status.success(), "{}", stderr(&o));
    let series = drift::table::read_drift(&out.join("drift.parquet")).unwrap();
    assert_eq!(series.len(), 3, "the handmade basis and two random ones");
    let (key, handmade) = &series[0];
    assert_eq!((key.perturbation.as_str(), key.seed), ("handmade", 7));
    assert_eq!(
        handmade.points[0].drift,
        vec![0.0, 0.0],
        "step 0 is the origin"
    );
    let expected = [c * u[0] / n, c * (u[0] + u[1]) * f64::from(s) / n];
    for (got, want) in handmade.points[1].drift.iter().zip(expected) {
        assert!((got - want).abs() < 1e-5, "drift {got} expected {want}");
    }
    // Baseline stats beside it: no train log and no adapter (full finetuning), so one
    // zero LoRA norm per checkpoint and no loss.
    let stats = tables::read_parquet(&out.join("checkpoint_stats.parquet"), None).unwrap();
    assert_eq!(stats.num_rows(), 2);
    // Measured again, everything comes from the per-checkpoint cache and agrees.
    let o = measure_drift();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        drift::table::read_drift(&out.join("drift.parquet")).unwrap(),
        series
    );
}

fn bytemuck_f32(values: &[f32]) -> &[u8] {
    bytemuck::cast_slice(values)
}

/// A drift table of one run: zero drift at step 0, `final_drift` at step 10.
fn write_drift_run(dir: &Path, perturbation: &str, seed: u64, final_drift: &[f64]) -> PathBuf {
    let names = ["honesty", "sycophancy", "harmlessness"].map(String::from);
    let point = |step, drift: &[f64]| drift::DriftPoint {
        step,
        projection: drift.to_vec(),
        drift: drift.to_vec(),
        activation_norm_drift: 0.0,
    };
    let series = drift::DriftSeries {
        feature_set: "alignment".into(),
        feature_names: names.to_vec(),
        normaliser: 1.0,
        points: vec![point(0, &[0.0; 3]), point(10, final_drift)],
    };
    let key = drift::RunKey {
        model: "tiny".into(),
        perturbation: perturbation.into(),
        seed,
    };
    let out = dir.join(format!("{perturbation}-{seed}"));
    std::fs::create_dir_all(&out).unwrap();
    drift::table::write_drift(
        &out.join("drift.parquet"),
        &[(key, series)],
        &Default::default(),
    )
    .unwrap();
    out
}

#[test]
fn pca_freezes_the_cluster_pc1_of_calibration_runs() {
    let dir = tempfile::tempdir().unwrap();
    // Calibration drift along u = (0.6, 0, -0.8) with run-specific sizes, plus a little
    // spread on the second feature; the harmlessness sign rule must flip u.
    let mut calibration = Vec::new();
    for (i, p) in ["a", "b", "c", "d"].iter().enumerate() {
        for seed in 0..2u64 {
            let size = 0.01 * (1 + i + 4 * seed as usize) as f64;
            let wobble = 1e-4
                * if (i + seed as usize).is_multiple_of(2) {
                    1.0
                } else {
                    -1.0
                };
            let run = write_drift_run(dir.path(), p, seed, &[0.6 * size, wobble, -0.8 * size]);
            calibration.push(run.display().to_string());
        }
    }
    let held_out = write_drift_run(dir.path(), "held_out", 0, &[-0.03, 0.0, 0.04]);
    let out = dir.path().join("pca");
    let mut args: Vec<&str> = vec!["pca", "--null-draws", "200", "--out"];
    let out_s = out.display().to_string();
    args.push(&out_s);
    for c in &calibration {
        args.extend(["--calibration", c.as_str()]);
    }
    let held_s = held_out.display().to_string();
    args.extend(["--score", held_s.as_str()]);
    let o = traitwatch(&args);
    assert!(o.status.success(), "{}", stderr(&o));

    let frozen: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("pc1.json")).unwrap()).unwrap();
    let u: Vec<f64> = frozen["pc1"]["pca"]["components"][0]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    assert!(
        (u[0] + 0.6).abs() < 1e-3 && (u[2] - 0.8).abs() < 1e-3,
        "PC1 {u:?}"
    );
    assert!(stdout(&o).contains("explains 100.0%"), "{}", stdout(&o));

    // Every checkpoint of every run is scored; the held-out run's signed PC1 is x·u = 0.05.
    let pc1 = tables::read_parquet(&out.join("pc1.parquet"), None).unwrap();
    assert_eq!(pc1.num_rows(), 2 * 9);
    let batch = &pc1.batches[0];
    let col = |name: &str| {
        batch
            .column_by_name(name)
            .unwrap()
            .as_any()
            .downcast_ref::<tables::arrow::array::Float64Array>()
            .unwrap()
            .values()
            .to_vec()
    };
    let signed = col("signed_pc1");
    assert!((signed[2 * 8 + 1] - 0.05).abs() < 1e-4, "{signed:?}");
    assert!(
        signed.iter().step_by(2).all(|s| *s == 0.0),
        "step 0 has no drift"
    );
    let stability = tables::read_parquet(&out.join("pc1_stability.parquet"), None).unwrap();
    assert_eq!(
        stability.num_rows(),
        4,
        "one row per calibration perturbation"
    );
    assert!(stability.metadata.contains_key("drift.null_p95_share"));

    // Frozen: the same call reuses pc1.json; other calibration runs need --refit.
    let before = std::fs::read(out.join("pc1.json")).unwrap();
    assert!(traitwatch(&args).status.success());
    assert_eq!(std::fs::read(out.join("pc1.json")).unwrap(), before);
    let d1 = args.iter().position(|a| a.ends_with("d-1")).unwrap();
    let mut fewer = args.clone();
    fewer.drain(d1 - 1..=d1);
    let o = traitwatch(&fewer);
    assert!(
        !o.status.success() && stderr(&o).contains("--refit"),
        "{}",
        stderr(&o)
    );
    let mut refit = fewer.clone();
    refit.push("--refit");
    assert!(traitwatch(&refit).status.success());
    assert_ne!(std::fs::read(out.join("pc1.json")).unwrap(), before);
}
