//! `traitwatch sae`: train the SAE baseline for one model (METHOD section 5) on the base
//! model's activations at l*, at every token position of the extraction prompts (each trait
//! pole's system prompts x the extraction questions) and the measurement prompts. Writes
//! into `--out`:
//! ```text
//! sae.safetensors    weights + metadata (model, layer, config, FVU, dead share, L0)
//! sae_log.parquet    training log (step, loss, mse, l0)
//! ```
//! A second run with the same model, layer and settings reuses the saved SAE, so every run
//! of the model shares one. `traitwatch drift --sae <out>/sae.safetensors` then adds the
//! `sae` feature set to a run's drift.

use crate::backend::BackendJob;
use anyhow::{Context, Result, bail};
use baselines::SaeConfig;
use burn::backend::Autodiff;
use burn::tensor::backend::Backend;
use indicatif::ProgressBar;
use llm::Message;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use tables::arrow::array::{ArrayRef, Float64Array, UInt64Array};
use traits::{TraitBank, load_measurement_prompts, load_questions};

pub const SAE_FILE: &str = "sae.safetensors";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Preset name, .gguf file or HF directory.
    #[arg(long, default_value = "smollm2-135m")]
    model: String,
    /// The layer l* (default: the one `traitwatch traits` selected in --directions).
    #[arg(long)]
    layer: Option<usize>,
    /// A `traitwatch traits` output directory, for its selected layer.
    #[arg(long)]
    directions: Option<PathBuf>,
    /// Trait bank whose extraction prompts give training activations.
    #[arg(long, default_value = "data/traits/alignment.toml")]
    bank: PathBuf,
    /// Extraction questions asked under every system prompt.
    #[arg(long, default_value = "data/traits/extraction_questions.toml")]
    questions: PathBuf,
    /// Measurement prompts, added to the training activations.
    #[arg(long, default_value = "data/traits/measurement_prompts.toml")]
    prompts: PathBuf,
    /// Number of SAE latents.
    #[arg(long, default_value_t = 256)]
    latents: usize,
    /// L1 coefficient (inputs are scaled to mean squared norm d). On SmolLM2 at l* = 14:
    /// 5 gives mean L0 3 and FVU 0.34; 1 trades sparsity for reconstruction.
    #[arg(long, default_value_t = 1.0)]
    l1: f64,
    /// Adam learning rate.
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Training steps.
    #[arg(long, default_value_t = 2000)]
    steps: usize,
    /// Tokens per training step.
    #[arg(long, default_value_t = 512)]
    token_batch: usize,
    /// Prompts per forward pass while collecting activations.
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// Seed of initialisation and batch order.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Train a top-k SAE (k active latents per token, no L1) instead of ReLU + L1.
    #[arg(long)]
    top_k: Option<usize>,
    /// Output directory (the SAE safetensors and its fit statistics).
    #[arg(long)]
    out: PathBuf,
}

fn bar(len: u64, what: &str) -> ProgressBar {
    progress::bar(
        len,
        &format!("{{spinner}} {what} {{bar:30}} {{pos}}/{{len}} [{{elapsed}} < {{eta}}]"),
    )
}

impl BackendJob for Args {
    type Output = ();

    fn run<B: Backend>(self, device: B::Device) -> Result<()> {
        let layer = match (self.layer, &self.directions) {
            (Some(l), _) => l,
            (None, Some(dir)) => super::drift::layer_from_selection(dir)?,
            (None, None) => bail!("give --layer or --directions (a `traitwatch traits` output)"),
        };
        let cfg = SaeConfig {
            latents: self.latents,
            l1: self.l1,
            lr: self.lr,
            steps: self.steps,
            batch_size: self.token_batch,
            seed: self.seed,
            top_k: self.top_k,
        };
        let identity = serde_json::json!({"model": self.model, "layer": layer, "config": cfg,
            "bank": self.bank, "questions": self.questions, "prompts": self.prompts});
        let path = self.out.join(SAE_FILE);
        if let Ok(existing) = drift::SparseAutoencoder::load(&path)
            && existing.meta.get("identity") == Some(&identity.to_string())
        {
            println!(
                "reusing {} (same model, layer and settings)",
                path.display()
            );
            return Ok(());
        }
        std::fs::create_dir_all(&self.out)
            .with_context(|| format!("creating {}", self.out.display()))?;

        let bank = TraitBank::load(&self.bank)?;
        let questions = load_questions(&self.questions)?;
        let (_, mut conversations) = traits::extract::extraction_samples(&bank, &questions);
        conversations.extend(
            load_measurement_prompts(&self.prompts)?
                .into_iter()
                .map(|p| vec![Message::user(p.text)]),
        );
        let lm = super::load_model::<B>(&self.model, &device)?;
        let pb = bar(conversations.len() as u64, "activations");
        let (data, d) =
            baselines::token_activations(&lm, &conversations, layer, self.batch_size, Some(&pb))?;
        pb.finish_and_clear();
        drop(lm);
        tracing::info!(
            tokens = data.len() / d.max(1),
            d,
            layer,
            "activations collected"
        );

        let pb = bar(cfg.steps as u64, "train SAE ");
        let started = std::time::Instant::now();
        let (mut sae, log, report) =
            baselines::train_sae::<Autodiff<B>>(&data, d, &cfg, &device, Some(&pb))?;
        pb.finish_and_clear();
        sae.meta.extend([
            ("identity".to_string(), identity.to_string()),
            ("model".to_string(), self.model.clone()),
            ("layer".to_string(), layer.to_string()),
            ("report".to_string(), serde_json::to_string(&report)?),
        ]);
        sae.save(&path)?;
        let column = |f: fn(&baselines::SaeLogRow) -> f64| -> ArrayRef {
            Arc::new(Float64Array::from_iter_values(log.iter().map(f)))
        };
        let batch = tables::record_batch(vec![
            (
                "step",
                Arc::new(UInt64Array::from_iter_values(
                    log.iter().map(|r| r.step as u64),
                )),
            ),
            ("loss", column(|r| r.loss)),
            ("mse", column(|r| r.mse)),
            ("l0", column(|r| r.l0)),
        ])?;
        let kind = tables::TableKind {
            name: "sae_log",
            version: 1,
        };
        tables::write_parquet(
            &self.out.join("sae_log.parquet"),
            &batch,
            kind,
            &BTreeMap::new(),
        )?;
        println!(
            "SAE at layer {layer}: {} latents on {} tokens ({} outlier tokens set aside) in {:.0} s; FVU {:.4}, dead latents {:.1}%, mean L0 {:.1}; wrote {}",
            sae.m,
            report.tokens,
            report.excluded_tokens,
            started.elapsed().as_secs_f64(),
            report.fvu,
            100.0 * report.dead_fraction,
            report.mean_l0,
            path.display()
        );
        Ok(())
    }
}
