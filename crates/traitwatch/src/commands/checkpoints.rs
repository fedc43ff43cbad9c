//! Which checkpoints a behavioural command (`em`, `em-freeform`) evaluates, and the labels
//! its tables carry: every checkpoint of a finetuning run, or one model on its own.

use anyhow::{Context, Result, bail};
use std::path::PathBuf;
use tables::RunKey;

#[derive(Debug, clap::Args)]
pub struct CheckpointArgs {
    /// A finetuning run directory (`traitwatch finetune --out`, or an HF Trainer / TRL
    /// output directory of PEFT `checkpoint-N/`s): every checkpoint is evaluated.
    #[arg(long, conflicts_with = "model")]
    run: Option<PathBuf>,
    /// Evaluate only these checkpoints of --run (comma-separated; step 0, the reference, is
    /// always evaluated). Default: all.
    #[arg(long, value_delimiter = ',')]
    steps: Vec<u64>,
    /// A model to evaluate on its own (preset, .gguf or HF directory), reported as step 0.
    #[arg(long)]
    model: Option<String>,
    /// Labels for the tables (defaults: the model reference or run directory name, seed).
    #[arg(long)]
    perturbation: Option<String>,
    /// Model label for the tables (default: the model reference).
    #[arg(long)]
    model_label: Option<String>,
}

/// The model to load, the checkpoints to apply to it (None: the model as loaded), and the
/// table labels.
#[derive(Debug)]
pub struct Checkpoints {
    pub model_ref: String,
    pub list: Vec<(u64, Option<PathBuf>)>,
    pub key: RunKey,
}

impl CheckpointArgs {
    pub fn resolve(&self) -> Result<Checkpoints> {
        match (&self.run, &self.model) {
            (Some(run), _) => {
                let info = super::RunInfo::read(run)?;
                let model_ref = info.run.base_model.clone().context(
                    "the run names no base model (run.json `base_model`, or \
                         adapter_config.json `base_model_name_or_path`)",
                )?;
                let list: Vec<(u64, Option<PathBuf>)> = info
                    .run
                    .checkpoints
                    .iter()
                    .map(|(s, d)| (*s as u64, d.clone()))
                    .filter(|(s, _)| self.steps.is_empty() || *s == 0 || self.steps.contains(s))
                    .collect();
                if list.is_empty() {
                    bail!("{} has no checkpoints", run.display());
                }
                let key = info.key(
                    self.model_label.as_deref(),
                    self.perturbation.as_deref(),
                    &model_ref,
                );
                Ok(Checkpoints {
                    model_ref,
                    list,
                    key,
                })
            }
            (None, Some(model)) => Ok(Checkpoints {
                model_ref: model.clone(),
                list: vec![(0, None)],
                key: RunKey {
                    model: self.model_label.clone().unwrap_or_else(|| model.clone()),
                    perturbation: self.perturbation.clone().unwrap_or_else(|| "base".into()),
                    seed: 0,
                },
            }),
            (None, None) => bail!("give --run (a finetuning run) or --model"),
        }
    }
}
