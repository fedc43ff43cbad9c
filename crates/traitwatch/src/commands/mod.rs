//! One module per subcommand. Backend-dependent commands implement
//! [`crate::backend::BackendJob`].

pub mod activations;
pub mod backend_check;
pub mod checkpoints;
pub mod datasets;
pub mod drift;
pub mod em;
pub mod em_freeform;
pub mod em_label;
pub mod experiment;
pub mod figures;
pub mod finetune;
pub mod generate;
pub mod inspect;
pub mod pca;
pub mod results;
pub mod sae;
pub mod traits;

use anyhow::{Context, Result};
use burn::tensor::backend::Backend;
use llm::{LoadedModel, Message};

/// A finetuning run as the stages that measure its checkpoints (drift, em) load and label
/// it: a `traitwatch finetune` run, or an HF Trainer / TRL output directory of PEFT
/// checkpoints (`checkpoint-N/`), read as it lies on disk.
pub struct RunInfo {
    pub run: ::finetune::RunDir,
    /// The run directory's name: the default perturbation label.
    pub name: String,
}

impl RunInfo {
    pub fn read(run: &std::path::Path) -> Result<Self> {
        let run = ::finetune::RunDir::open(run)?;
        let name = run.name();
        Ok(Self { run, name })
    }
}

impl RunInfo {
    /// The run's table labels: `--model-label` (default: the model reference) and
    /// `--perturbation` (default: the run directory's name), with the training seed.
    pub fn key(
        &self,
        model_label: Option<&str>,
        perturbation: Option<&str>,
        model_ref: &str,
    ) -> tables::RunKey {
        tables::RunKey {
            model: model_label.unwrap_or(model_ref).to_string(),
            perturbation: perturbation.unwrap_or(&self.name).to_string(),
            seed: self.run.seed,
        }
    }
}

/// Load a model reference (preset, .gguf, HF directory), its base weights in the type
/// `--precision` names.
pub fn load_model<B: Backend>(reference: &str, device: &B::Device) -> Result<LoadedModel<B>> {
    let mut loaded =
        llm::load(reference, device).with_context(|| format!("loading model `{reference}`"))?;
    if let Some(dtype) = crate::backend::precision().base_dtype() {
        loaded.model = loaded.model.with_base_dtype(dtype);
        tracing::info!(?dtype, "base weights held in half precision");
    }
    Ok(loaded)
}

/// Token ids of a prompt: chat-formatted (optional system turn, generation prompt) or raw.
pub fn prompt_ids<B: Backend>(
    model: &LoadedModel<B>,
    system: Option<&str>,
    prompt: &str,
    raw: bool,
) -> Result<Vec<u32>> {
    if raw {
        return Ok(model.tokenizer.encode_raw(prompt)?);
    }
    let mut messages = Vec::new();
    if let Some(s) = system {
        messages.push(Message::system(s));
    }
    messages.push(Message::user(prompt));
    let chat = model
        .chat_template()
        .context("use --raw for models without a chat template")?;
    Ok(chat.render_tokens(&model.tokenizer, &messages, true)?.ids)
}

/// Write `bytes` to a sibling temporary file, then rename it into place, so a killed
/// command never leaves half a file.
pub fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    let tmp = tables::temp_path(path);
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
