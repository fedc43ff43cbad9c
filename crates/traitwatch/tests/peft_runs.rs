//! Checkpoints trained elsewhere: an HF Trainer / TRL output directory of PEFT adapters,
//! laid out as those trainers leave it, runs through `traitwatch drift --run DIR` unchanged
//! and measures exactly what the same adapters give in a traitwatch run; `traitwatch merge`
//! finds the base model from the adapter and writes a sharded export.
#![allow(clippy::unwrap_used)]

mod common;

use common::{stderr, traitwatch};
use llm::testing::TinyModel;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const RANK: usize = 2;
const STEPS: [usize; 2] = [10, 20];

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// A PEFT adapter as `save_pretrained` writes it: non-zero A and B on q_proj and v_proj of
/// every layer, varied by `step`.
fn write_peft_adapter(dir: &Path, tiny: &TinyModel, base: &Path, step: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let mut tensors: BTreeMap<String, (Vec<usize>, Vec<u8>)> = BTreeMap::new();
    for l in 0..tiny.config.num_hidden_layers {
        for name in ["q_proj", "v_proj"] {
            let shape = &tiny.weights[&format!("model.layers.{l}.self_attn.{name}.weight")].shape;
            let (out, inp) = (shape[0], shape[1]);
            let value = |i: usize, k: usize| ((i * 7 + k * 3 + step + l) % 13) as f32 / 13.0 - 0.5;
            let a: Vec<f32> = (0..RANK * inp).map(|i| 0.3 * value(i, 1)).collect();
            let b: Vec<f32> = (0..out * RANK)
                .map(|i| 0.02 * step as f32 * value(i, 2))
                .collect();
            let prefix = format!("base_model.model.model.layers.{l}.self_attn.{name}");
            tensors.insert(
                format!("{prefix}.lora_A.weight"),
                (vec![RANK, inp], f32_bytes(&a)),
            );
            tensors.insert(
                format!("{prefix}.lora_B.weight"),
                (vec![out, RANK], f32_bytes(&b)),
            );
        }
    }
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .map(|(n, (shape, bytes))| {
            let view =
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes)
                    .unwrap();
            (n.clone(), view)
        })
        .collect();
    let meta = std::collections::HashMap::from([("format".to_string(), "pt".to_string())]);
    std::fs::write(
        dir.join("adapter_model.safetensors"),
        safetensors::serialize(views, Some(meta)).unwrap(),
    )
    .unwrap();
    let config = serde_json::json!({
        "peft_type": "LORA", "task_type": "CAUSAL_LM", "auto_mapping": null,
        "base_model_name_or_path": base.to_str().unwrap(), "revision": null,
        "r": RANK, "lora_alpha": 4, "lora_dropout": 0.05, "use_rslora": false,
        "target_modules": ["v_proj", "q_proj"], "bias": "none", "modules_to_save": null,
        "fan_in_fan_out": false, "init_lora_weights": true, "inference_mode": true,
        "layers_to_transform": null, "layers_pattern": null, "rank_pattern": {},
        "alpha_pattern": {}, "use_dora": false, "megatron_config": null,
    });
    std::fs::write(dir.join("adapter_config.json"), config.to_string()).unwrap();
}

/// An HF Trainer output directory: `checkpoint-N/` with the adapter, HF's own
/// `trainer_state.json` (log_history) and the binary files we never read; the final
/// adapter again at the top level, as `trainer.save_model()` leaves it.
fn hf_trainer_dir(root: &Path, tiny: &TinyModel, base: &Path) -> PathBuf {
    let out = root.join("trl-out");
    let mut history = Vec::new();
    for step in 1..=STEPS[1] {
        history.push(serde_json::json!({
            "epoch": step as f64 / 20.0, "grad_norm": 1.5, "learning_rate": 1e-4,
            "loss": 3.0 - step as f64 * 0.1, "step": step,
        }));
    }
    for step in STEPS {
        let ckpt = out.join(format!("checkpoint-{step}"));
        write_peft_adapter(&ckpt, tiny, base, step);
        let state = serde_json::json!({
            "global_step": step, "epoch": step as f64 / 20.0, "max_steps": STEPS[1],
            "log_history": history[..step], "best_model_checkpoint": null,
        });
        std::fs::write(ckpt.join("trainer_state.json"), state.to_string()).unwrap();
        for binary in [
            "optimizer.pt",
            "scheduler.pt",
            "rng_state.pth",
            "training_args.bin",
        ] {
            std::fs::write(ckpt.join(binary), b"not ours to read").unwrap();
        }
        std::fs::write(ckpt.join("README.md"), "---\nlibrary_name: peft\n---\n").unwrap();
    }
    write_peft_adapter(&out, tiny, base, STEPS[1]);
    out
}

/// The same adapters as a traitwatch run (step 0 = the base: an empty checkpoint).
fn traitwatch_run(root: &Path, trl: &Path) -> PathBuf {
    let run = root.join("ours");
    std::fs::create_dir_all(run.join("checkpoints/step-000000")).unwrap();
    for step in STEPS {
        let to = run.join(format!("checkpoints/step-{step:06}"));
        std::fs::create_dir_all(&to).unwrap();
        for file in ["adapter_config.json", "adapter_model.safetensors"] {
            let from = trl.join(format!("checkpoint-{step}")).join(file);
            std::fs::copy(from, to.join(file)).unwrap();
        }
    }
    std::fs::write(
        run.join("run.json"),
        r#"{"base_model": "unused", "config": {"seed": 0}}"#,
    )
    .unwrap();
    run
}

fn directions(root: &Path, d: usize) -> PathBuf {
    let vectors: Vec<f32> = (0..2 * 2 * d)
        .map(|i| ((i * 31 % 17) as f32 - 8.0) / 8.0)
        .collect();
    let file = root.join("directions.safetensors");
    common::handmade_directions(d, vectors).save(&file).unwrap();
    file
}

fn drift(run: &Path, model: Option<&Path>, directions: &Path, out: &Path) -> drift::DriftSeries {
    let prompts = format!(
        "{}/../../data/traits/measurement_prompts.toml",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut args = vec![
        "drift",
        "--run",
        run.to_str().unwrap(),
        "--directions",
        directions.to_str().unwrap(),
        "--layer",
        "1",
        "--random-bases",
        "1",
        "--perturbation",
        "p",
        "--prompts",
        prompts.as_str(),
        "--out",
        out.to_str().unwrap(),
    ];
    if let Some(m) = model {
        args.extend(["--model", m.to_str().unwrap()]);
    }
    let o = traitwatch(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut series = drift::table::read_drift(&out.join("drift.parquet")).unwrap();
    series.remove(0).1
}

#[test]
fn an_hf_trainer_directory_measures_like_a_traitwatch_run() {
    let root = tempfile::tempdir().unwrap();
    let base = root.path().join("base");
    let tiny = TinyModel::llama(2);
    tiny.save_hf_dir(&base, 1).unwrap();
    let trl = hf_trainer_dir(root.path(), &tiny, &base);
    let ours = traitwatch_run(root.path(), &trl);
    let dirs = directions(root.path(), tiny.config.hidden_size);

    // No --model: the base comes from the adapters' base_model_name_or_path.
    let from_trl = drift(&trl, None, &dirs, &root.path().join("drift-trl"));
    let from_ours = drift(&ours, Some(&base), &dirs, &root.path().join("drift-ours"));
    let steps: Vec<u64> = from_trl.points.iter().map(|p| p.step).collect();
    assert_eq!(steps, vec![0, 10, 20], "step 0 is the base model");
    assert_eq!(from_trl.points.len(), from_ours.points.len());
    for (a, b) in from_trl.points.iter().zip(&from_ours.points) {
        assert_eq!(a.drift, b.drift, "step {}", a.step);
    }
    assert!(
        from_trl.points[2].drift.iter().any(|x| x.abs() > 1e-4),
        "the adapters move the activations: {:?}",
        from_trl.points[2].drift
    );
    // The training loss comes from HF's log_history: at checkpoint t, the loss of step t + 1
    // (the last checkpoint takes its own step's).
    let stats = tables::read_parquet(
        &root.path().join("drift-trl/checkpoint_stats.parquet"),
        None,
    )
    .unwrap();
    let stat = |kind: &str, step: u64| -> Option<f64> {
        use tables::arrow::array::{Array, Float64Array, StringArray, UInt64Array};
        let batch = &stats.batches[0];
        let col = |n: &str| batch.column(batch.schema().index_of(n).unwrap()).clone();
        let (kinds, steps, values) = (col("statistic"), col("step"), col("value"));
        let kinds = kinds.as_any().downcast_ref::<StringArray>().unwrap();
        let steps = steps.as_any().downcast_ref::<UInt64Array>().unwrap();
        let values = values.as_any().downcast_ref::<Float64Array>().unwrap();
        (0..batch.num_rows())
            .find(|&i| kinds.value(i) == kind && steps.value(i) == step)
            .map(|i| values.value(i))
    };
    assert!((stat("train_loss", 10).unwrap() - (3.0 - 1.1)).abs() < 1e-9);
    assert!((stat("train_loss", 20).unwrap() - (3.0 - 2.0)).abs() < 1e-9);
    assert_eq!(stat("lora_norm", 0), Some(0.0), "the base has no adapter");
    assert!(stat("lora_norm", 20).unwrap() > 0.0);
}

#[test]
fn merge_reads_the_base_from_the_adapter_and_writes_shards() {
    let root = tempfile::tempdir().unwrap();
    let base = root.path().join("base");
    let tiny = TinyModel::llama(2);
    tiny.save_hf_dir_as(&base, 1, safetensors::Dtype::BF16)
        .unwrap();
    let adapter = root.path().join("adapter");
    write_peft_adapter(&adapter, &tiny, &base, 20);
    let merged = root.path().join("merged");
    let o = traitwatch(&[
        "merge",
        "--adapter",
        adapter.to_str().unwrap(),
        "--out",
        merged.to_str().unwrap(),
        "--max-shard-mb",
        "0.02",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let index: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(merged.join("model.safetensors.index.json")).unwrap(),
    )
    .unwrap();
    let shards: std::collections::BTreeSet<&str> = index["weight_map"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(shards.len() > 1, "{shards:?}");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(merged.join("config.json")).unwrap())
            .unwrap();
    assert_eq!(config["torch_dtype"], "bfloat16", "the base model's dtype");
    for shard in &shards {
        let bytes = std::fs::read(merged.join(shard)).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        assert!(
            st.tensors()
                .iter()
                .all(|(_, v)| v.dtype() == safetensors::Dtype::BF16)
        );
    }
    // The export reloads as the adapted model, up to bf16 rounding.
    type B = burn::backend::Flex;
    let device = Default::default();
    let reloaded = llm::load::<B>(merged.to_str().unwrap(), &device).unwrap();
    let base_model = llm::load::<B>(base.to_str().unwrap(), &device).unwrap();
    let adapted = finetune::lora::load_peft(base_model.model, &adapter).unwrap();
    let batch = llm::Batch::new(vec![vec![5, 9, 44, 100, 7]], 0, llm::PaddingSide::Left).unwrap();
    let opts = llm::ForwardOptions::logits(llm::LogitsMode::All);
    let logits = |m: &llm::Llama<B>| {
        llm::model::tensor_to_f32(m.forward(&batch, &opts).unwrap().logits.unwrap())
    };
    let (a, b) = (logits(&adapted), logits(&reloaded.model));
    let scale = a.iter().fold(0f32, |m, x| m.max(x.abs()));
    let worst = a
        .iter()
        .zip(&b)
        .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    assert!(
        worst < 0.02 * scale.max(1.0),
        "merged export differs by {worst} (logit scale {scale})"
    );
}

#[test]
fn merge_refuses_an_adapter_that_trains_biases() {
    let root = tempfile::tempdir().unwrap();
    let base = root.path().join("base");
    let tiny = TinyModel::llama(2);
    tiny.save_hf_dir(&base, 1).unwrap();
    let adapter = root.path().join("adapter");
    write_peft_adapter(&adapter, &tiny, &base, 10);
    let path = adapter.join("adapter_config.json");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    for (key, value, expect) in [
        ("bias", serde_json::json!("lora_only"), "`bias`"),
        (
            "modules_to_save",
            serde_json::json!(["lm_head"]),
            "`modules_to_save`",
        ),
    ] {
        let mut edited = config.clone();
        edited[key] = value;
        std::fs::write(&path, edited.to_string()).unwrap();
        let merged = root.path().join("merged");
        let o = traitwatch(&[
            "merge",
            "--adapter",
            adapter.to_str().unwrap(),
            "--out",
            merged.to_str().unwrap(),
        ]);
        assert!(!o.status.success());
        let err = stderr(&o);
        assert!(
            err.contains(expect) && err.contains("merge_and_unload"),
            "{err}"
        );
        assert!(err.contains("adapter_config.json"), "{err}");
    }
}
