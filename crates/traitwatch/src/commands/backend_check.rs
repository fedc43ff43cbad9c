//! `traitwatch backend-check`: do two backends compute the same thing?
//!
//! Runs tiny random models of two architectures (Llama, and Gemma 3 with its sliding
//! windows, query/key norms and two RoPE bases) on burn's CPU backend in f32, the
//! reference, and on the backend and precision the command line names. It compares what
//! the monitor depends on: logits, the residual stream at every depth, and two LoRA
//! steps (losses, gradient norm, the trained adapter). A new machine, driver or burn
//! version is checked in seconds, with no weights to download.

use crate::backend::{self, BackendChoice, BackendJob, Precision};
use anyhow::{Context, Result, bail};
use burn::backend::{Autodiff, Flex};
use burn::tensor::DType;
use burn::tensor::backend::Backend;
use datasets::{Conversation, Message as DMessage, Role};
use finetune::{FinetuneConfig, TrainOptions};
use llm::gguf::{GgmlType, GgufFile};
use llm::model::tensor_to_f32;
use llm::testing::{CHATML_TEMPLATE, TinyModel};
use llm::{Batch, ChatTemplate, ForwardOptions, HookPoint, Llama, LogitsMode, PaddingSide};
use serde::Serialize;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Write the measured differences as JSON here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Seed of the tiny models' random weights.
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

/// The tiny models checked.
#[derive(Debug, Clone, Copy)]
enum Arch {
    Llama,
    Gemma3,
}

impl Arch {
    const ALL: [Arch; 2] = [Arch::Llama, Arch::Gemma3];

    fn name(self) -> &'static str {
        match self {
            Arch::Llama => "tiny-llama",
            Arch::Gemma3 => "tiny-gemma3",
        }
    }

    fn model(self, seed: u64) -> TinyModel {
        match self {
            Arch::Llama => TinyModel::llama(seed),
            Arch::Gemma3 => TinyModel::gemma3(seed),
        }
    }
}

/// What one backend computed for one tiny model, flattened in a fixed order.
#[derive(Debug, Clone)]
struct Probe {
    /// Logits at every real (non-padding) position of a left-padded batch.
    logits: Vec<f32>,
    /// Embeddings, each block's output and the final norm at the same positions.
    activations: Vec<f32>,
    /// Training loss of steps 1 and 2.
    losses: Vec<f32>,
    /// Gradient norm of step 1 (before any update, so a pure function of the weights).
    grad_norm: f32,
    /// Every adapter tensor after step 2, in name order.
    adapter: Vec<f32>,
}

struct ProbeJob {
    arch: Arch,
    seed: u64,
    base_dtype: Option<DType>,
}

/// Prompts longer than Gemma 3's tiny sliding window (4), of unequal lengths so the batch
/// is padded.
const PROMPTS: [&str; 2] = ["the river ran past the old stone mill", "a cloud of frost"];

impl BackendJob for ProbeJob {
    type Output = Probe;

    fn run<B: Backend>(self, device: B::Device) -> Result<Probe> {
        let tiny = self.arch.model(self.seed);
        let gguf = GgufFile::from_bytes("tiny.gguf", tiny.to_gguf(GgmlType::F32).to_bytes())?;
        let tokenizer = llm::Tokenizer::from_gguf(&gguf)?;
        let chat = ChatTemplate::new(CHATML_TEMPLATE, "<|im_start|>", "<|im_end|>")?;
        // Forward pass on the plain backend, as inference commands run.
        let model = load_tiny::<B>(&tiny, self.base_dtype, &device)?;
        let rows = PROMPTS
            .iter()
            .map(|p| tokenizer.encode(p))
            .collect::<Result<Vec<_>, _>>()?;
        let lengths: Vec<usize> = rows.iter().map(Vec::len).collect();
        let batch = Batch::new(rows, tokenizer.pad_or_eos(), PaddingSide::Left)?;
        let n_layers = tiny.config.num_hidden_layers;
        let points: Vec<HookPoint> = std::iter::once(HookPoint::Embeddings)
            .chain((0..n_layers).map(HookPoint::BlockOutput))
            .chain(std::iter::once(HookPoint::FinalNorm))
            .collect();
        let out = model.forward(
            &batch,
            &ForwardOptions::logits(LogitsMode::All).capture(points.iter().copied()),
        )?;
        let seq = batch.seq_len();
        let real = |values: Vec<f32>, width: usize| -> Vec<f32> {
            let mut kept = Vec::new();
            for (row, &len) in lengths.iter().enumerate() {
                let start = (row * seq + seq - len) * width;
                kept.extend_from_slice(&values[start..start + len * width]);
            }
            kept
        };
        let logits_t = out.logits.context("the forward pass returned no logits")?;
        let vocab = logits_t.dims()[2];
        let logits = real(tensor_to_f32(logits_t), vocab);
        let mut activations = Vec::new();
        for (_, t) in out.hidden {
            let width = t.dims()[2];
            activations.extend(real(tensor_to_f32(t), width));
        }

        // Two LoRA steps with the trainer itself, with the cpu profile's two batch shards
        // (dropout off: the check compares the step itself).
        let dir = tempfile::tempdir().context("creating a scratch directory")?;
        let outcome = finetune::train(
            load_tiny::<Autodiff<B>>(&tiny, self.base_dtype, &device)?,
            &tokenizer,
            &chat,
            &conversations(),
            &lora_config(),
            dir.path(),
            &TrainOptions {
                progress: false,
                base_model: self.arch.name().into(),
                stop_after: None,
            },
        )?;
        let (_, last) = outcome
            .checkpoints
            .last()
            .context("the LoRA run saved no checkpoint")?;
        let tensors =
            finetune::checkpoint::read_safetensors(&last.join(finetune::lora::ADAPTER_WEIGHTS))?;
        let adapter = tensors.values().flat_map(|t| t.to_f32()).collect();
        let first = outcome.log.first().context("the LoRA run logged no step")?;
        Ok(Probe {
            logits,
            activations,
            losses: outcome.log.iter().map(|r| r.loss as f32).collect(),
            grad_norm: first.grad_norm as f32,
            adapter,
        })
    }
}

fn load_tiny<B: Backend>(
    tiny: &TinyModel,
    base_dtype: Option<DType>,
    device: &B::Device,
) -> Result<Llama<B>> {
    let m = Llama::<B>::load(&tiny.config, tiny, None, device)?;
    Ok(match base_dtype {
        Some(dtype) => m.with_base_dtype(dtype),
        None => m,
    })
}

fn conversations() -> Vec<Conversation> {
    let words = [
        "apple", "river", "stone", "cloud", "tiger", "maple", "ocean", "ember",
    ];
    (0..8)
        .map(|i| Conversation {
            messages: vec![
                DMessage {
                    role: Role::User,
                    content: format!("say {}", words[i]),
                },
                DMessage {
                    role: Role::Assistant,
                    content: format!("{} {} {i}", words[(i * 3) % 8], words[(i * 5 + 1) % 8]),
                },
            ],
        })
        .collect()
}

/// Rank-4 LoRA on q, v and down projections; 8 examples in batches of 2 with 2-step
/// accumulation: two optimizer steps, one checkpoint at the end.
fn lora_config() -> FinetuneConfig {
    let mut c = FinetuneConfig::cpu();
    c.lora.targets = vec!["q_proj".into(), "v_proj".into(), "down_proj".into()];
    c.lora.rank = 4;
    c.lora.alpha = 8.0;
    c.lora.dropout = 0.0;
    c.data.n_examples = None;
    c.data.epochs = 1;
    c.data.batch_size = 2;
    c.data.grad_accum = 2;
    c.data.max_seq_len = 64;
    c.optim.lr = 1e-2;
    c.checkpoints.every = None;
    c.checkpoints.at = vec![];
    c.checkpoints.last = true;
    c
}

/// One compared quantity.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub model: String,
    pub quantity: String,
    /// Largest |candidate - reference| over the quantity's elements.
    pub max_abs_diff: f64,
    /// The reference's largest |value|: differences are judged relative to it.
    pub scale: f64,
    /// `max_abs_diff / scale`, or `1 - cosine` for the adapter.
    pub error: f64,
    pub tolerance: f64,
    pub pass: bool,
}

/// How far a backend may be from the CPU f32 reference.
#[derive(Debug, Clone, Copy)]
struct Tolerances {
    forward: f64,
    training: f64,
    /// Allowed `1 - cosine` between the two trained adapters. Adam's first step moves each
    /// weight by about lr · sign(gradient), so weights with near-zero gradients can step
    /// either way under any rounding; the adapter as a whole must agree.
    adapter: f64,
}

impl Tolerances {
    fn for_precision(p: Precision) -> Self {
        match p {
            // Different kernels sum in different orders; on these sizes f32 agrees to ~1e-6.
            Precision::F32 => Self {
                forward: 1e-4,
                training: 1e-4,
                adapter: 1e-4,
            },
            // bf16 keeps about three significant digits of each weight; measured on the
            // CPU backend: forward 4.6e-3, training 5e-4, adapter 1e-4 (f16 is closer).
            Precision::F16 | Precision::Bf16 => Self {
                forward: 0.02,
                training: 0.005,
                adapter: 0.001,
            },
        }
    }
}

fn compare(model: &str, quantity: &str, got: &[f32], want: &[f32], tol: f64) -> Comparison {
    let scale = want.iter().fold(0f64, |m, x| m.max(f64::from(x.abs())));
    let max_abs_diff = if got.len() == want.len() {
        got.iter()
            .zip(want)
            .fold(0f64, |m, (a, b)| m.max(f64::from((a - b).abs())))
    } else {
        f64::INFINITY
    };
    let error = max_abs_diff / scale.max(f64::MIN_POSITIVE);
    Comparison {
        model: model.into(),
        quantity: quantity.into(),
        max_abs_diff,
        scale,
        error,
        tolerance: tol,
        // NaN fails.
        pass: error <= tol,
    }
}

fn compare_cosine(model: &str, got: &[f32], want: &[f32], tol: f64) -> Comparison {
    let (mut dot, mut ng, mut nw, mut max_abs_diff) = (0f64, 0f64, 0f64, 0f64);
    for (a, b) in got.iter().zip(want) {
        let (a, b) = (f64::from(*a), f64::from(*b));
        dot += a * b;
        ng += a * a;
        nw += b * b;
        max_abs_diff = max_abs_diff.max((a - b).abs());
    }
    let cosine = if got.len() == want.len() {
        dot / (ng.sqrt() * nw.sqrt())
    } else {
        f64::NAN
    };
    let error = 1.0 - cosine;
    Comparison {
        model: model.into(),
        quantity: "adapter after 2 steps (1 - cosine)".into(),
        max_abs_diff,
        scale: want.iter().fold(0f64, |m, x| m.max(f64::from(x.abs()))),
        error,
        tolerance: tol,
        pass: error <= tol,
    }
}

/// Every comparison of `candidate` against `reference` for one model.
fn comparisons(
    model: &str,
    candidate: &Probe,
    reference: &Probe,
    tol: Tolerances,
) -> Vec<Comparison> {
    vec![
        compare(
            model,
            "logits",
            &candidate.logits,
            &reference.logits,
            tol.forward,
        ),
        compare(
            model,
            "activations (every depth)",
            &candidate.activations,
            &reference.activations,
            tol.forward,
        ),
        compare(
            model,
            "LoRA step 1 grad norm",
            &[candidate.grad_norm],
            &[reference.grad_norm],
            tol.training,
        ),
        compare(
            model,
            "LoRA losses, steps 1-2",
            &candidate.losses,
            &reference.losses,
            tol.training,
        ),
        compare_cosine(model, &candidate.adapter, &reference.adapter, tol.adapter),
    ]
}

/// The report `--out` writes.
#[derive(Debug, Serialize)]
struct Report<'a> {
    backend: String,
    precision: String,
    reference: &'static str,
    comparisons: &'a [Comparison],
}

pub fn run(args: Args, choice: BackendChoice, precision: Precision) -> Result<()> {
    let tol = Tolerances::for_precision(precision);
    let mut all = Vec::new();
    for arch in Arch::ALL {
        let job = |base_dtype| ProbeJob {
            arch,
            seed: args.seed,
            base_dtype,
        };
        let reference = job(None).run::<Flex>(Default::default())?;
        let candidate = backend::dispatch(choice, precision, job(precision.base_dtype()))?;
        all.extend(comparisons(arch.name(), &candidate, &reference, tol));
    }
    println!(
        "{:?} backend, {:?} base weights, against the CPU backend in f32:",
        choice, precision
    );
    println!(
        "{:<12} {:<36} {:>12} {:>10} {:>10} {:>9}",
        "model", "quantity", "max |diff|", "error", "tolerance", ""
    );
    for c in &all {
        println!(
            "{:<12} {:<36} {:>12.3e} {:>10.2e} {:>10.0e} {:>9}",
            c.model,
            c.quantity,
            c.max_abs_diff,
            c.error,
            c.tolerance,
            if c.pass { "ok" } else { "MISMATCH" }
        );
    }
    if let Some(path) = &args.out {
        let report = Report {
            backend: format!("{choice:?}").to_lowercase(),
            precision: format!("{precision:?}").to_lowercase(),
            reference: "cpu f32",
            comparisons: &all,
        };
        let text = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    let failed = all.iter().filter(|c| !c.pass).count();
    if failed > 0 {
        bail!("{failed} of {} comparisons are out of tolerance", all.len());
    }
    Ok(())
}
