//! LoRA training-step benchmarks on the default model, the same workloads as
//! `scripts/bench_torch.py` (`lora_r16_all`, `lora_r1_down`): batch 4 x 128 random
//! tokens, loss on all tokens, AdamW lr 1e-4, one optimizer step per run.
//!
//! Prints one JSON line per measurement, including peak RSS during the timed runs
//! (VmHWM after resetting it post-load, as the PyTorch script does).
//! Environment: `BENCH_RUNS` (default 7), `BENCH_WARMUP` (2), `BENCH_ONLY` (one name),
//! `BENCH_SHARDS` (2, the cpu profile's `data.shards`).
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use burn::backend::{Autodiff, Flex};
use finetune::config::{FinetuneConfig, LayerSelection};
use finetune::data::TrainExample;
use finetune::optim::AdamW;
use finetune::{lora, params, shards};
use llm::loader::{self, SMOLLM2_135M};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use std::time::Instant;

type B = Autodiff<Flex>;

/// See `llm::alloc` for why.
#[global_allocator]
static ALLOC: llm::alloc::MiMalloc = llm::alloc::MiMalloc;

fn status_mb(key: &str) -> f64 {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn main() {
    llm::alloc::keep_freed_memory();
    let Some(path) = loader::installed(&SMOLLM2_135M) else {
        eprintln!("SKIPPED: the default model is not installed (run `just setup`)");
        return;
    };
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7);
    let warmup: usize = std::env::var("BENCH_WARMUP")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let only = std::env::var("BENCH_ONLY").ok();
    // Data-parallel shards per batch (`data.shards`); 1 is one forward/backward per step.
    let n_shards: usize = std::env::var("BENCH_SHARDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    for (name, rank, alpha, targets) in [
        (
            "lora_r16_all",
            16,
            32.0,
            llm::model::PROJECTIONS.map(String::from).to_vec(),
        ),
        ("lora_r1_down", 1, 2.0, vec!["down_proj".to_string()]),
    ] {
        if only.as_deref().is_some_and(|o| o != name) {
            continue;
        }
        let m = loader::load_location::<B>(
            loader::ModelLocation::Gguf(path.clone()),
            &Default::default(),
        )
        .unwrap();
        let mut cfg = FinetuneConfig::paper();
        cfg.lora.rank = rank;
        cfg.lora.alpha = alpha;
        cfg.lora.dropout = 0.0;
        cfg.lora.targets = targets;
        cfg.lora.layers = LayerSelection::Named("all".into());
        cfg.optim.lr = 1e-4;
        cfg.optim.weight_decay = 0.01;
        let mut model = lora::attach(m.model, &cfg).unwrap();
        let trainable: usize = lora::adapters(&model)
            .iter()
            .map(|(_, a)| {
                a.a.val().dims().iter().product::<usize>()
                    + a.b.val().dims().iter().product::<usize>()
            })
            .sum();
        let mut rng = StdRng::seed_from_u64(1234);
        let vocab = model.config.vocab_size as u32;
        let rows: Vec<TrainExample> = (0..4)
            .map(|_| {
                let ids: Vec<u32> = (0..128).map(|_| rng.random_range(100..vocab)).collect();
                let mut target = vec![true; 128];
                target[0] = false;
                TrainExample {
                    ids,
                    target,
                    truncated: false,
                }
            })
            .collect();
        let refs: Vec<&TrainExample> = rows.iter().collect();
        let n_targets = 4 * 127;
        let mut optimizer = AdamW::default();
        // Peak memory counts from here: the loaded model is included, load-time garbage not.
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        let mut losses: Vec<f64> = Vec::new();
        let mut step = |model: finetune_model::Model| {
            let (loss, grads) =
                shards::micro_batch_gradients(&model, &refs, n_shards, 2, n_targets, 0).unwrap();
            losses.push(loss);
            params::apply_update(model, &grads, &mut optimizer, 1e-4, 1.0, &cfg.optim)
        };
        for _ in 0..warmup {
            model = step(model);
        }
        let mut times = Vec::new();
        for _ in 0..runs {
            let t = Instant::now();
            model = step(model);
            times.push(t.elapsed().as_secs_f64());
        }
        let mut sorted = times.clone();
        sorted.sort_by(f64::total_cmp);
        let median = sorted[sorted.len() / 2];
        println!(
            "{}",
            serde_json::json!({"bench": name, "batch": 4, "seq": 128, "lora_r": rank, "lora_alpha": alpha,
                "trainable_params": trainable, "median_s": median, "tokens_per_s": 512.0 / median,
                "loss_first": losses[0], "loss_last": losses[losses.len() - 1], "times_s": times,
                "runs": runs, "warmup": warmup, "peak_rss_mb": status_mb("VmHWM:"), "backend": "flex", "shards": n_shards})
        );
    }
}

mod finetune_model {
    pub type Model = llm::Llama<super::B>;
}
