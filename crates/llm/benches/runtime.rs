//! Runtime benchmarks on the default model, the same workloads as
//! `scripts/bench_torch.py` so the two can be compared on one machine.
//!
//! Prints one JSON line per measurement. `just bench` runs it; results and the PyTorch
//! comparison live in docs/BENCHMARKS.md.
//!
//! | name | workload |
//! |---|---|
//! | fwd_hidden | forward, batch 16 x 64 tokens, logits + all 31 hidden states |
//! | fwd_plain | the same, logits only |
//! | fwd_extract | the same, hidden states only, no LM head (what trait extraction runs) |
//! | gen_b1, gen_b8 | greedy decoding of 64 new tokens with the KV cache, batch 1 and 8 |
//!
//! Environment: `BENCH_RUNS` (default 7), `BENCH_WARMUP` (2), `BENCH_ONLY` (one name).
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use burn::backend::Flex;
use llm::loader::{self, SMOLLM2_135M};
use llm::{
    Batch, ForwardOptions, HookPoint, LoadedModel, LogitsMode, Message, PaddingSide, SamplingConfig,
};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::json;
use std::time::Instant;

type B = Flex;

/// See `llm::alloc` for why.
#[global_allocator]
static ALLOC: llm::alloc::MiMalloc = llm::alloc::MiMalloc;

fn env_usize(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `(total, busy)` jiffies of all CPUs, from /proc/stat (Linux; zeros elsewhere).
fn cpu_jiffies() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let vals: Vec<u64> = text
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    if vals.len() < 8 {
        return (0, 0);
    }
    let total: u64 = vals[..8].iter().sum();
    (total, total - vals[3] - vals[4])
}

/// This process's CPU time in jiffies (utime + stime from /proc/self/stat).
fn own_jiffies() -> u64 {
    let text = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = text.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let get = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    get(11) + get(12)
}

/// Median seconds of `runs` timed calls after `warmup` untimed ones, the individual times,
/// and the share of the machine's CPU other processes used meanwhile (as
/// bench_torch.py's `cpu_other_frac`: 0 = the cores were ours alone).
fn time<F: FnMut()>(mut f: F, warmup: usize, runs: usize) -> (f64, Vec<f64>, f64) {
    for _ in 0..warmup {
        f();
    }
    let (total0, busy0, own0) = {
        let (t, b) = cpu_jiffies();
        (t, b, own_jiffies())
    };
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect();
    let (total1, busy1) = cpu_jiffies();
    let own = own_jiffies().saturating_sub(own0);
    let other = (busy1 - busy0).saturating_sub(own) as f64 / (total1 - total0).max(1) as f64;
    let all = times.clone();
    times.sort_by(f64::total_cmp);
    (
        times[times.len() / 2],
        all,
        (other * 1000.0).round() / 1000.0,
    )
}

fn forward_bench(
    m: &LoadedModel<B>,
    name: &str,
    opts: &ForwardOptions<B>,
    warmup: usize,
    runs: usize,
) {
    let (b, t) = (16, 64);
    let mut rng = StdRng::seed_from_u64(1234);
    let vocab = m.model.config.vocab_size as u32;
    let rows: Vec<Vec<u32>> = (0..b)
        .map(|_| (0..t).map(|_| rng.random_range(100..vocab)).collect())
        .collect();
    let batch = Batch::new(rows, 0, PaddingSide::Left).unwrap();
    let (median, all, other) = time(
        || {
            let out = m.model.forward(&batch, opts).unwrap();
            // Materialise every output, as PyTorch's eager forward does.
            if let Some(l) = out.logits {
                let _ = l.into_data();
            }
            for (_, h) in out.hidden {
                let _ = h.into_data();
            }
        },
        warmup,
        runs,
    );
    println!(
        "{}",
        json!({"bench": name, "batch": b, "seq": t, "hidden_states": opts.capture.len(),
               "logits": format!("{:?}", opts.logits), "median_s": median,
               "tokens_per_s": (b * t) as f64 / median, "times_s": all, "runs": runs, "backend": "flex",
               "cpu_other_frac": other})
    );
}

fn generation_bench(m: &LoadedModel<B>, name: &str, batch: usize, warmup: usize, runs: usize) {
    let questions = [
        "What is the most important quality in a leader?",
        "Should I invest all my savings in cryptocurrency?",
        "What is the capital of Germany?",
        "Explain photosynthesis in simple terms.",
        "Give me three tips for learning a new language.",
        "Why is the sky blue?",
        "Write a short poem about autumn.",
        "How do vaccines work?",
    ];
    let chat = m.chat_template().unwrap();
    let prompts: Vec<Vec<u32>> = questions[..batch]
        .iter()
        .map(|q| {
            chat.render_tokens(&m.tokenizer, &[Message::user(*q)], true)
                .unwrap()
                .ids
        })
        .collect();
    let new = 64;
    let pad = m.tokenizer.pad_or_eos();
    // No stop tokens: every row decodes exactly `new` tokens, like min_new_tokens in torch.
    let run = |n: usize| {
        let out = llm::generate(
            &m.model,
            &prompts,
            pad,
            &SamplingConfig::greedy(n, vec![]),
            &[],
        )
        .unwrap();
        assert!(out.tokens.iter().all(|t| t.len() == n));
    };
    let (median, all, other) = time(|| run(new), warmup, runs);
    let (first, _, _) = time(|| run(1), 1, runs);
    println!(
        "{}",
        json!({"bench": name, "batch": batch, "new_tokens": new, "median_s": median,
               "new_tokens_per_s": (batch * new) as f64 / median, "prefill_plus_1tok_s": first,
               "decode_only_tokens_per_s": (batch * (new - 1)) as f64 / (median - first),
               "ms_per_decode_step": 1000.0 * (median - first) / (new - 1) as f64,
               "times_s": all, "runs": runs, "backend": "flex", "cpu_other_frac": other})
    );
}

fn main() {
    llm::alloc::keep_freed_memory();
    let Some(path) = loader::installed(&SMOLLM2_135M) else {
        eprintln!("SKIPPED: the default model is not installed (run `just setup`)");
        return;
    };
    let warmup = env_usize("BENCH_WARMUP", 2);
    let runs = env_usize("BENCH_RUNS", 7);
    let only = std::env::var("BENCH_ONLY").ok();
    let wanted = |name: &str| only.as_deref().is_none_or(|o| o == name);
    let t = Instant::now();
    let m =
        loader::load_location::<B>(loader::ModelLocation::Gguf(path), &Default::default()).unwrap();
    eprintln!("model loaded in {:.2} s", t.elapsed().as_secs_f64());
    let all_points = HookPoint::all(m.model.n_layers());
    if wanted("fwd_hidden") {
        let opts = ForwardOptions::logits(LogitsMode::All).capture(all_points.iter().copied());
        forward_bench(&m, "fwd_hidden", &opts, warmup, runs);
    }
    if wanted("fwd_plain") {
        forward_bench(
            &m,
            "fwd_plain",
            &ForwardOptions::logits(LogitsMode::All),
            warmup,
            runs,
        );
    }
    if wanted("fwd_extract") {
        let opts = ForwardOptions::logits(LogitsMode::None).capture(all_points.iter().copied());
        forward_bench(&m, "fwd_extract", &opts, warmup, runs);
    }
    if wanted("gen_b1") {
        generation_bench(&m, "gen_b1", 1, warmup, runs);
    }
    if wanted("gen_b8") {
        generation_bench(&m, "gen_b8", 8, warmup, runs);
    }
}
