//! `traitwatch drift`: the drift of every checkpoint of a finetuning run along trait
//! directions (METHOD section 3).
//!
//! For each checkpoint: last-token activations of the measurement prompts at l*, reduced
//! to their mean and mean norm (cached per checkpoint, so a killed run resumes); then drift
//! in every basis: each directions file given (alignment, semantic, ...) and seeded random
//! 7-D control bases. Writes into `--out`:
//! ```text
//! summaries/step-NNNNNN.json  mean activation [d] and mean norm per checkpoint (cache)
//! prompt_mean.safetensors     `prompt_mean` [checkpoints, d] and `steps` [checkpoints]
//! drift.parquet               drift crate's `drift` table, every basis
//! timing.json                 seconds per checkpoint vs training seconds between them
//!                             (and per step)
//! ```

use crate::backend::BackendJob;
use anyhow::{Context, Result, bail};
use burn::tensor::backend::Backend;
use drift::{ActivationSummary, Basis, FeatureMap, RunKey, drift_series};
use llm::Message;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;
use traits::collect::{CollectOptions, Pooling, collect};
use traits::{Directions, load_measurement_prompts};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A finetuning run directory: `traitwatch finetune --out`, or an HF Trainer / TRL
    /// output directory of PEFT checkpoints (`checkpoint-N/`; step 0 is then the base).
    #[arg(long)]
    run: PathBuf,
    /// Base model (default: the run's `base_model`).
    #[arg(long)]
    model: Option<String>,
    /// Directions: a `traitwatch traits` output directory or a directions file
    /// (repeatable; the first one's l* is used unless --layer is given).
    #[arg(long = "directions", required = true)]
    directions: Vec<PathBuf>,
    /// The layer l* (default: selection.json beside the first directions file).
    #[arg(long)]
    layer: Option<usize>,
    /// Measurement prompts (TOML): their last-token activations are averaged per checkpoint.
    #[arg(long, default_value = "data/traits/measurement_prompts.toml")]
    prompts: PathBuf,
    /// A trained SAE (`traitwatch sae`): adds the `sae` feature set, its latents' drift.
    #[arg(long)]
    sae: Option<PathBuf>,
    /// Seeded random control bases of 7 directions.
    #[arg(long, default_value_t = 10)]
    random_bases: usize,
    /// Seed of the random bases.
    #[arg(long, default_value_t = 0)]
    basis_seed: u64,
    /// Labels for the tables (defaults: the run directory's name, the run's seed).
    #[arg(long)]
    perturbation: Option<String>,
    /// Model label for the tables (default: the model reference).
    #[arg(long)]
    model_label: Option<String>,
    /// Prompts per forward pass.
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// Output directory (drift.parquet, checkpoint_stats.parquet, per-checkpoint cache).
    #[arg(long)]
    out: PathBuf,
}

/// A directions file, from a file path or a `traitwatch traits` output directory.
fn directions_file(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.join(super::traits::DIRECTIONS_FILE)
    } else {
        path.to_path_buf()
    }
}

pub fn layer_from_selection(path: &Path) -> Result<usize> {
    let dir = if path.is_dir() {
        path
    } else {
        path.parent().unwrap_or(Path::new("."))
    };
    let file = dir.join(super::traits::SELECTION_FILE);
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&file)
            .with_context(|| format!("no --layer given and cannot read {}", file.display()))?,
    )
    .with_context(|| format!("{}: invalid JSON", file.display()))?;
    json.get("best_layer")
        .and_then(serde_json::Value::as_u64)
        .map(|l| l as usize)
        .with_context(|| format!("{}: no `best_layer`", file.display()))
}

#[derive(serde::Serialize, serde::Deserialize)]
struct CachedSummary {
    step: u64,
    layer: usize,
    n_prompts: usize,
    mean_norm: f64,
    mean: Vec<f64>,
    seconds: f64,
}

impl BackendJob for Args {
    type Output = ();

    fn run<B: Backend>(self, device: B::Device) -> Result<()> {
        let info = super::RunInfo::read(&self.run)?;
        let model_ref = self
            .model
            .clone()
            .or_else(|| info.run.base_model.clone())
            .context("the run names no base model; pass --model")?;
        let checkpoints = info.run.checkpoints.clone();
        if !checkpoints.iter().any(|(s, _)| *s == 0) {
            bail!(
                "{}: no step-0 checkpoint, so drift has no origin",
                self.run.display()
            );
        }
        let bases_dirs: Vec<Directions> = self
            .directions
            .iter()
            .map(|p| Directions::load(&directions_file(p)))
            .collect::<Result<_, _>>()?;
        let layer = match self.layer {
            Some(l) => l,
            None => layer_from_selection(&self.directions[0])?,
        };
        let prompts = load_measurement_prompts(&self.prompts)?;
        let conversations: Vec<Vec<Message>> = prompts
            .iter()
            .map(|p| vec![Message::user(p.text.clone())])
            .collect();
        let mut lm = super::load_model::<B>(&model_ref, &device)?;
        let base = lm.model.clone();
        if let Some(d) = bases_dirs
            .iter()
            .find(|d| d.d_model != base.d_model() || layer >= d.n_layers)
        {
            bail!(
                "directions of bank `{}` do not fit this model and layer {layer}",
                d.meta.bank
            );
        }

        // 1. One summary per checkpoint, cached.
        let cache = self.out.join("summaries");
        std::fs::create_dir_all(&cache).with_context(|| format!("creating {}", cache.display()))?;
        let bar = progress::bar(
            checkpoints.len() as u64,
            "{spinner} drift {bar:30} {pos}/{len} checkpoints [{elapsed} < {eta}] {msg}",
        );
        let opts = CollectOptions {
            layers: vec![layer],
            pooling: Pooling::LastPromptToken,
            batch_size: self.batch_size,
            steering: None,
        };
        let mut summaries: Vec<CachedSummary> = Vec::new();
        for (step, dir) in &checkpoints {
            bar.set_message(format!("step {step}"));
            let path = cache.join(format!("step-{step:06}.json"));
            let cached = std::fs::read_to_string(&path)
                .ok()
                .and_then(|t| serde_json::from_str::<CachedSummary>(&t).ok())
                .filter(|c| c.layer == layer && c.n_prompts == prompts.len());
            let summary = match cached {
                Some(c) => c,
                None => {
                    let started = Instant::now();
                    lm.model = match dir {
                        Some(dir) => finetune::checkpoint::apply_checkpoint(base.clone(), dir)?,
                        None => base.clone(),
                    };
                    let pooled = collect(&lm, &conversations, &opts, None)?;
                    let rows = pooled.rows_at(layer).context("layer not captured")?;
                    let s = ActivationSummary::from_rows(&rows)
                        .with_context(|| format!("checkpoint at step {step}"))?;
                    let c = CachedSummary {
                        step: *step as u64,
                        layer,
                        n_prompts: s.n_prompts,
                        mean_norm: s.mean_norm,
                        mean: s.mean,
                        seconds: started.elapsed().as_secs_f64(),
                    };
                    super::write_atomically(&path, serde_json::to_string(&c)?.as_bytes())?;
                    c
                }
            };
            summaries.push(summary);
            bar.inc(1);
        }
        bar.finish_and_clear();

        // 2. Drift in every basis.
        let points: Vec<(u64, ActivationSummary)> = summaries
            .iter()
            .map(|c| {
                (
                    c.step,
                    ActivationSummary {
                        mean: c.mean.clone(),
                        mean_norm: c.mean_norm,
                        n_prompts: c.n_prompts,
                    },
                )
            })
            .collect();
        let mut maps: Vec<Box<dyn FeatureMap>> = Vec::new();
        for d in &bases_dirs {
            let rows = d.layer(layer);
            maps.push(Box::new(Basis::from_rows_f32(
                d.meta.bank.clone(),
                d.traits.clone(),
                &rows,
            )?));
        }
        let k = bases_dirs[0].traits.len();
        for r in 0..self.random_bases {
            let seed = self.basis_seed.wrapping_add(r as u64);
            maps.push(Box::new(Basis::random(
                format!("random_{r}"),
                k,
                base.d_model(),
                seed,
            )?));
        }
        if let Some(path) = &self.sae {
            let sae = drift::SparseAutoencoder::load(path)?;
            let trained_at = sae.meta.get("layer").and_then(|l| l.parse::<usize>().ok());
            if trained_at != Some(layer) {
                bail!(
                    "{} was trained at layer {:?}, but drift is measured at layer {layer}",
                    path.display(),
                    trained_at
                );
            }
            maps.push(Box::new(sae));
        }
        let key = info.key(
            self.model_label.as_deref(),
            self.perturbation.as_deref(),
            &model_ref,
        );
        let mut series = Vec::new();
        for map in &maps {
            series.push((key.clone(), drift_series(&points, map.as_ref())?));
        }
        let meta = BTreeMap::from([
            ("layer".to_string(), layer.to_string()),
            ("run".to_string(), self.run.display().to_string()),
        ]);
        drift::table::write_drift(&self.out.join("drift.parquet"), &series, &meta)?;
        write_prompt_means(&self.out.join("prompt_mean.safetensors"), &summaries)?;
        let log = info.run.train_log();
        write_baseline_stats(
            &self.out.join("checkpoint_stats.parquet"),
            &key,
            &checkpoints,
            &log,
        )?;

        // 3. Overhead: measurement seconds per checkpoint vs training seconds between them.
        let measured: Vec<f64> = summaries.iter().map(|c| c.seconds).collect();
        let per_checkpoint = measured.iter().sum::<f64>() / measured.len().max(1) as f64;
        let train_seconds = log.iter().map(|r| r.seconds).sum::<f64>();
        let intervals = checkpoints.len().saturating_sub(1).max(1) as f64;
        // Per step too, so the overhead at any checkpoint schedule can be worked out. An
        // HF Trainer run logs no step times: its training columns are null.
        let timed = (train_seconds > 0.0).then_some(train_seconds);
        let timing = serde_json::json!({
            "measure_seconds_per_checkpoint": per_checkpoint,
            "train_seconds_per_step": timed.map(|t| t / log.len().max(1) as f64),
            "train_seconds_between_checkpoints": timed.map(|t| t / intervals),
            "overhead_fraction": timed.map(|t| per_checkpoint / (t / intervals)),
        });
        super::write_atomically(
            &self.out.join("timing.json"),
            serde_json::to_string_pretty(&timing)?.as_bytes(),
        )?;
        let last = &series[0].1;
        if let Some(p) = last.points.last() {
            let drift: Vec<String> = last
                .feature_names
                .iter()
                .zip(&p.drift)
                .map(|(n, x)| format!("{n} {:+.3}%", 100.0 * x))
                .collect();
            println!("step {}: {}", p.step, drift.join(", "));
        }
        println!(
            "{} checkpoints at layer {layer}; measuring one took {per_checkpoint:.1} s; wrote {}",
            summaries.len(),
            self.out.join("drift.parquet").display()
        );
        Ok(())
    }
}

/// The non-activation baselines per checkpoint: the training loss *at* the checkpoint (the
/// loss logged at step t + 1, computed on exactly the checkpoint's weights; the last
/// checkpoint, with no later step, takes its own step's loss) and the LoRA update norms.
fn write_baseline_stats(
    path: &Path,
    key: &RunKey,
    checkpoints: &[(usize, Option<PathBuf>)],
    log: &[finetune::log::LogRow],
) -> Result<()> {
    use drift::table::{LORA_NORM, LORA_NORM_LAYER, TRAIN_LOSS};
    let mut rows: Vec<drift::table::StatRow> = Vec::new();
    for (step, dir) in checkpoints {
        let step = *step;
        let loss = log
            .iter()
            .find(|r| r.step == step + 1)
            .or_else(|| log.iter().find(|r| r.step == step));
        if let Some(r) = loss {
            rows.push((step as u64, TRAIN_LOSS, 0, r.loss));
        }
        let norms = match dir {
            Some(dir) => finetune::lora::adapter_norms(dir)?,
            None => None,
        };
        let (layers, total) = norms.unwrap_or_default();
        rows.push((step as u64, LORA_NORM, 0, total));
        rows.extend(
            layers
                .iter()
                .enumerate()
                .map(|(l, v)| (step as u64, LORA_NORM_LAYER, l as u64, *v)),
        );
    }
    Ok(drift::table::write_checkpoint_stats(path, key, &rows)?)
}

fn write_prompt_means(path: &Path, summaries: &[CachedSummary]) -> Result<()> {
    let d = summaries.first().map_or(0, |c| c.mean.len());
    let means: Vec<u8> = summaries
        .iter()
        .flat_map(|c| c.mean.iter().flat_map(|&x| (x as f32).to_le_bytes()))
        .collect();
    let steps: Vec<u8> = summaries
        .iter()
        .flat_map(|c| (c.step as f32).to_le_bytes())
        .collect();
    let n = summaries.len();
    let views = vec![
        (
            "prompt_mean".to_string(),
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![n, d], &means)?,
        ),
        (
            "steps".to_string(),
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![n], &steps)?,
        ),
    ];
    let meta = HashMap::from([(
        "layer_convention".to_string(),
        traits::directions::LAYER_CONVENTION.to_string(),
    )]);
    super::write_atomically(path, &safetensors::serialize(views, Some(meta))?)
}
