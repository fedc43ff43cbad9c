//! The training loop: micro-batches, masked cross-entropy, gradient accumulation,
//! clipping, AdamW, checkpoints and resume.

use crate::checkpoint::{self as ckpt, FULL_WEIGHTS, STATE_JSON, STATE_TENSORS};
use crate::config::{FinetuneConfig, Mode};
use crate::data::{self, DataStats, Plan, TrainExample};
use crate::error::FinetuneError;
use crate::log::{LogRow, read_log, write_log};
use crate::optim::{AdamW, Moments, clip_factor, lr_at};
use crate::params::{self, Grads};
use crate::{lora, shards};
use burn::tensor::backend::AutodiffBackend;
use datasets::Conversation;
use indicatif::ProgressBar;
use llm::model::{KeyedDropout, splitmix64, tensor_to_f32};
use llm::{ChatTemplate, Llama, Tokenizer};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// How a run is driven (not part of its results).
#[derive(Debug, Clone, Default)]
pub struct TrainOptions {
    /// Show a progress bar.
    pub progress: bool,
    /// Recorded in `adapter_config.json` as `base_model_name_or_path`.
    pub base_model: String,
    /// Stop after this step as if killed (tests of resume).
    pub stop_after: Option<usize>,
}

/// What a run produced.
#[derive(Debug, Clone)]
pub struct TrainOutcome {
    pub out_dir: PathBuf,
    pub total_steps: usize,
    /// Checkpoints on disk, `(step, dir)`.
    pub checkpoints: Vec<(usize, PathBuf)>,
    pub log: Vec<LogRow>,
    pub data: DataStats,
    /// The checkpoint this invocation resumed from, if any.
    pub resumed_from: Option<usize>,
}

/// Train `model` on `conversations` into `out`, resuming from the last complete checkpoint
/// if `out` already holds this run.
pub fn train<B: AutodiffBackend>(
    model: Llama<B>,
    tokenizer: &Tokenizer,
    chat: &ChatTemplate,
    conversations: &[Conversation],
    cfg: &FinetuneConfig,
    out: &Path,
    opts: &TrainOptions,
) -> Result<TrainOutcome, FinetuneError> {
    cfg.validate()?;
    let sampled = data::sample(conversations, cfg.data.n_examples, cfg.seed)?;
    let (examples, stats) = data::tokenize(&sampled, tokenizer, chat, cfg)?;
    let plan = Plan::new(examples.len(), cfg);
    let total = plan.total_steps();
    let saves = data::checkpoint_steps(cfg, total);
    let fingerprint = fingerprint(cfg, &examples, &model);
    prepare_out_dir(
        out,
        cfg,
        &stats,
        total,
        &saves,
        &fingerprint,
        &opts.base_model,
    )?;

    let pad = tokenizer.pad_or_eos();
    let resumed_from = resume_point(out);
    let (mut model, mut optimizer, mut log, start) = match resumed_from {
        Some(step) => {
            let (m, o) = restore(model, cfg, &ckpt::checkpoint_dir(out, step))?;
            let log: Vec<LogRow> = read_log(&out.join(ckpt::TRAIN_LOG))?
                .into_iter()
                .filter(|r| r.step <= step)
                .collect();
            tracing::info!(step, of = total, "resuming");
            (m, o, log, step)
        }
        None => {
            let m = match cfg.mode {
                Mode::Lora => lora::attach(model, cfg)?,
                Mode::Full => model,
            };
            let o = AdamW::default();
            save_checkpoint(out, 0, &m, &o, cfg, &opts.base_model, &[])?;
            (m, o, Vec::new(), 0)
        }
    };

    let bar = progress_bar(opts.progress, total, start);
    let mut step_log = StepLog::new(start, total);
    let started = Instant::now();
    let wall_before = log.last().map_or(0.0, |r| r.wall_seconds);
    for step in start + 1..=total {
        let t0 = Instant::now();
        let micro = &plan.steps[step - 1];
        let targets_in_step: usize = micro
            .iter()
            .flatten()
            .map(|&i| examples[i].target.iter().filter(|&&t| t).count())
            .sum();
        let mut grads: Grads<B::InnerBackend> = BTreeMap::new();
        let (mut loss_sum, mut tokens) = (0.0, 0);
        for (index, batch_ids) in micro.iter().enumerate() {
            let rows: Vec<&TrainExample> = batch_ids.iter().map(|&i| &examples[i]).collect();
            tokens += rows.iter().map(|r| r.ids.len()).sum::<usize>();
            let dropout_key = splitmix64(step_seed(cfg.seed, step) ^ index as u64);
            let (loss, batch_grads) = shards::micro_batch_gradients(
                &model,
                &rows,
                cfg.data.shards,
                pad,
                targets_in_step,
                dropout_key,
            )?;
            loss_sum += loss;
            params::add_grads(&mut grads, batch_grads);
        }
        if !loss_sum.is_finite() {
            let last = ckpt::list_checkpoints(out).last().map_or(0, |c| c.0);
            return Err(FinetuneError::NonFiniteLoss {
                step,
                loss: loss_sum,
                last_checkpoint: last,
                dir: out.to_path_buf(),
            });
        }
        let norm = params::global_norm(&grads);
        let lr = lr_at(step, total, &cfg.optim);
        let scale = clip_factor(norm, cfg.optim.max_grad_norm);
        model = params::apply_update(model, &grads, &mut optimizer, lr, scale, &cfg.optim);
        let seconds = t0.elapsed().as_secs_f64();
        log.push(LogRow {
            step,
            epoch: plan.epoch_of_step[step - 1],
            loss: loss_sum,
            lr,
            grad_norm: norm,
            tokens,
            target_tokens: targets_in_step,
            seconds,
            wall_seconds: wall_before + started.elapsed().as_secs_f64(),
        });
        bar.set_message(format!(
            "loss {loss_sum:.4}  {:.0} tok/s",
            tokens as f64 / seconds
        ));
        bar.inc(1);
        step_log.step(
            step,
            loss_sum,
            tokens as f64 / seconds,
            saves.contains(&step),
        );
        if saves.contains(&step) {
            save_checkpoint(out, step, &model, &optimizer, cfg, &opts.base_model, &log)?;
        }
        if opts.stop_after == Some(step) {
            break;
        }
    }
    bar.finish_and_clear();
    Ok(TrainOutcome {
        out_dir: out.to_path_buf(),
        total_steps: total,
        checkpoints: ckpt::list_checkpoints(out),
        log,
        data: stats,
        resumed_from,
    })
}

/// The dropout masks of step `step` derive from this, whether or not the run was resumed.
fn step_seed(seed: u64, step: usize) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(step as u64)
}

/// Progress as log lines when stderr is not a terminal (Slurm, CI, nohup), where the bar
/// hides itself: at every checkpoint, at the last step, and at least every
/// [`StepLog::EVERY`] in between, with the loss, speed and an ETA from this run's own pace.
struct StepLog {
    enabled: bool,
    first: usize,
    total: usize,
    started: Instant,
    last_line: Instant,
}

impl StepLog {
    const EVERY: std::time::Duration = std::time::Duration::from_secs(30);

    fn new(done: usize, total: usize) -> Self {
        use std::io::IsTerminal;
        Self {
            enabled: !std::io::stderr().is_terminal(),
            first: done,
            total,
            started: Instant::now(),
            last_line: Instant::now(),
        }
    }

    fn step(&mut self, step: usize, loss: f64, tokens_per_s: f64, checkpoint: bool) {
        let due = checkpoint || step == self.total || self.last_line.elapsed() >= Self::EVERY;
        if !self.enabled || !due {
            return;
        }
        let per_step = self.started.elapsed().as_secs_f64() / (step - self.first).max(1) as f64;
        tracing::info!(
            step,
            total = self.total,
            loss = format!("{loss:.4}"),
            tok_per_s = format!("{tokens_per_s:.0}"),
            eta_s = format!("{:.0}", per_step * (self.total - step) as f64),
            "finetune"
        );
        self.last_line = Instant::now();
    }
}

fn progress_bar(show: bool, total: usize, done: usize) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    progress::bar(
        total as u64,
        "{spinner} finetune {bar:30} {pos}/{len} steps  {msg}  [{elapsed} < {eta}]",
    )
    .with_position(done as u64)
}

/// A stable fingerprint of everything that determines the run's results.
fn fingerprint<B: burn::tensor::backend::Backend>(
    cfg: &FinetuneConfig,
    examples: &[TrainExample],
    model: &Llama<B>,
) -> String {
    let mut h = Fnv::default();
    h.write(cfg.to_toml().as_bytes());
    for e in examples {
        for id in &e.ids {
            h.write(&id.to_le_bytes());
        }
        h.write(&(e.target.iter().filter(|&&t| t).count() as u64).to_le_bytes());
    }
    h.write(
        serde_json::to_string(&model.config)
            .unwrap_or_default()
            .as_bytes(),
    );
    format!("{:016x}", h.0)
}

/// FNV-1a, 64 bit: a hash whose value never changes across Rust versions.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= b as u64;
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01B3);
        }
    }
}

fn prepare_out_dir(
    out: &Path,
    cfg: &FinetuneConfig,
    stats: &DataStats,
    total: usize,
    saves: &[usize],
    fingerprint: &str,
    base_model: &str,
) -> Result<(), FinetuneError> {
    let run_file = out.join(ckpt::RUN_FILE);
    if run_file.exists() {
        let existing = ckpt::read_json(&run_file)?;
        let previous = existing
            .get("fingerprint")
            .and_then(|f| f.as_str())
            .unwrap_or("");
        if previous != fingerprint {
            return Err(FinetuneError::ResumeMismatch {
                dir: out.to_path_buf(),
                reason: format!("fingerprint {previous} on disk, {fingerprint} now"),
            });
        }
        return Ok(());
    }
    std::fs::create_dir_all(out).map_err(|source| FinetuneError::Io {
        path: out.to_path_buf(),
        source,
    })?;
    let run = serde_json::json!({
        "fingerprint": fingerprint,
        "base_model": base_model,
        "config": cfg,
        "total_steps": total,
        "checkpoint_steps": saves,
        "data": {"examples": stats.examples, "truncated": stats.truncated, "tokens": stats.tokens, "target_tokens": stats.target_tokens},
        "traitwatch_version": env!("CARGO_PKG_VERSION"),
    });
    ckpt::write_json(&run_file, &run)
}

/// The step of the last complete checkpoint that can be resumed from.
fn resume_point(out: &Path) -> Option<usize> {
    ckpt::list_checkpoints(out)
        .into_iter()
        .rev()
        .find(|(_, dir)| dir.join(STATE_JSON).exists())
        .map(|(step, _)| step)
}

fn save_checkpoint<B: AutodiffBackend>(
    out: &Path,
    step: usize,
    model: &Llama<B>,
    optimizer: &AdamW<B::InnerBackend>,
    cfg: &FinetuneConfig,
    base_model: &str,
    log: &[LogRow],
) -> Result<(), FinetuneError> {
    let dir = ckpt::checkpoint_dir(out, step);
    ckpt::write_dir_atomically(&dir, |tmp| {
        match cfg.mode {
            Mode::Lora => lora::save_peft(tmp, model, cfg, base_model)?,
            Mode::Full => {
                let weights: BTreeMap<String, llm::weights::HostTensor> =
                    params::read_params(model, None)
                        .into_iter()
                        .map(|(path, t)| (params::hf_name(&path), t))
                        .collect();
                ckpt::write_safetensors(&tmp.join(FULL_WEIGHTS), &weights, None)?;
            }
        }
        let mut state = BTreeMap::new();
        for (name, Moments { m, v }) in &optimizer.moments {
            let n = m.dims()[0];
            state.insert(
                format!("{name}.m"),
                llm::weights::HostTensor::f32(vec![n], tensor_to_f32(m.clone())),
            );
            state.insert(
                format!("{name}.v"),
                llm::weights::HostTensor::f32(vec![n], tensor_to_f32(v.clone())),
            );
        }
        let meta = HashMap::from([("optimizer_step".to_string(), optimizer.step.to_string())]);
        ckpt::write_safetensors(&tmp.join(STATE_TENSORS), &state, Some(meta))?;
        ckpt::write_json(
            &tmp.join(STATE_JSON),
            &serde_json::json!({"step": step, "optimizer_step": optimizer.step}),
        )
    })?;
    write_log(&out.join(ckpt::TRAIN_LOG), log)?;
    tracing::debug!(step, dir = %dir.display(), "checkpoint saved");
    Ok(())
}

/// The model and optimizer as they were at the checkpoint in `dir`.
fn restore<B: AutodiffBackend>(
    model: Llama<B>,
    cfg: &FinetuneConfig,
    dir: &Path,
) -> Result<(Llama<B>, AdamW<B::InnerBackend>), FinetuneError> {
    let model = match cfg.mode {
        Mode::Lora => {
            let mut m = lora::load_peft(model, dir)?;
            lora::for_each_adapter_mut(&mut m, |_, lora| {
                lora.dropout = KeyedDropout::new(cfg.lora.dropout);
            });
            m
        }
        Mode::Full => {
            let weights = ckpt::read_safetensors(&dir.join(FULL_WEIGHTS))?;
            let by_path = weights
                .into_iter()
                .map(|(hf, t)| (params::module_path(&hf), t))
                .collect();
            params::write_params(model, &by_path).0
        }
    };
    let state_path = dir.join(STATE_TENSORS);
    let state = ckpt::read_safetensors(&state_path)?;
    let json = ckpt::read_json(&dir.join(STATE_JSON))?;
    let device = model.device();
    let mut optimizer = AdamW::<B::InnerBackend> {
        step: json
            .get("optimizer_step")
            .and_then(|v| v.as_u64())
            .unwrap_or(0),
        moments: BTreeMap::new(),
    };
    for (key, t) in &state {
        let Some(name) = key.strip_suffix(".m") else {
            continue;
        };
        let v = state
            .get(&format!("{name}.v"))
            .ok_or_else(|| FinetuneError::Adapter {
                path: state_path.clone(),
                reason: format!("`{name}.m` has no matching `{name}.v`"),
            })?;
        optimizer.moments.insert(
            name.to_string(),
            Moments {
                m: ckpt::flat_tensor(t, &device),
                v: ckpt::flat_tensor(v, &device),
            },
        );
    }
    Ok((model, optimizer))
}
