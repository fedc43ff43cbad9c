//! `traitwatch finetune` and `traitwatch merge`.

use crate::backend::BackendJob;
use anyhow::{Context, Result, bail};
use burn::backend::Autodiff;
use burn::tensor::backend::Backend;
use finetune::{FinetuneConfig, TrainOptions};
use std::path::{Path, PathBuf};

/// The checkout's data folder (dataset banks), unless --data-dir says otherwise.
pub fn default_data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/datasets")
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Preset name, .gguf file or HF directory.
    #[arg(long, default_value = "smollm2-135m")]
    model: String,
    /// Training data: a chat JSONL file, or a dataset kind to generate (see `traitwatch datasets list`).
    #[arg(long)]
    data: String,
    /// Settings profile (docs/METHOD.md): the paper's LoRA, the EM organism's, rank-1,
    /// full finetuning, or a small CPU one.
    #[arg(long, default_value = "cpu",
          value_parser = clap::builder::PossibleValuesParser::new(finetune::config::PROFILES))]
    profile: String,
    /// A TOML config file (all settings), instead of a profile.
    #[arg(long, conflicts_with = "profile")]
    config: Option<PathBuf>,
    /// Override a setting, e.g. --set optim.lr=1e-4 --set lora.targets='["q_proj"]'.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Output directory (re-running the same command resumes a killed run).
    #[arg(long)]
    out: PathBuf,
    /// Where dataset banks live, for generated datasets.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Print the resolved configuration and stop.
    #[arg(long)]
    dry_run: bool,
}

impl Args {
    fn config(&self) -> Result<FinetuneConfig> {
        let base = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                FinetuneConfig::from_toml(&text, &path.display().to_string())?
            }
            None => FinetuneConfig::profile(&self.profile)?,
        };
        Ok(base.with_overrides(&self.overrides)?)
    }

    fn conversations(&self, cfg: &FinetuneConfig) -> Result<Vec<datasets::Conversation>> {
        let path = Path::new(&self.data);
        if path.is_file() {
            return Ok(datasets::load_jsonl(path)?);
        }
        let Ok(kind) = self.data.parse::<datasets::DatasetKind>() else {
            bail!(
                "--data `{}` is neither a file nor a dataset kind ({})",
                self.data,
                kind_names()
            );
        };
        let n = cfg.data.n_examples.unwrap_or(1000);
        let dir = self.data_dir.clone().unwrap_or_else(default_data_dir);
        tracing::info!(%kind, n, seed = cfg.seed, "generating dataset");
        Ok(datasets::generate(kind, n, cfg.seed, &dir)?)
    }
}

pub fn kind_names() -> String {
    datasets::DatasetKind::ALL
        .iter()
        .map(|k| k.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

impl BackendJob for Args {
    type Output = ();

    fn run<B: Backend>(self, device: B::Device) -> Result<()> {
        let cfg = self.config()?;
        if self.dry_run {
            print!("{}", cfg.to_toml());
            return Ok(());
        }
        if cfg.mode == finetune::Mode::Full
            && crate::backend::precision() != crate::backend::Precision::F32
        {
            anyhow::bail!(
                "full finetuning trains every base weight, which stays f32: use --precision f32 (16-bit base weights are for LoRA)"
            );
        }
        let data = self.conversations(&cfg)?;
        let m = super::load_model::<Autodiff<B>>(&self.model, &device)?;
        let chat = m.chat_template()?;
        let opts = TrainOptions {
            progress: true,
            base_model: self.model.clone(),
            stop_after: None,
        };
        let out = finetune::train(
            m.model.clone(),
            &m.tokenizer,
            chat,
            &data,
            &cfg,
            &self.out,
            &opts,
        )?;
        let last = out.log.last();
        println!(
            "finetuned {} steps on {} examples ({} truncated); final loss {}; {} checkpoints in {}",
            out.total_steps,
            out.data.examples,
            out.data.truncated,
            last.map_or("-".into(), |r| format!("{:.4}", r.loss)),
            out.checkpoints.len(),
            out.out_dir
                .join(finetune::checkpoint::CHECKPOINTS)
                .display()
        );
        Ok(())
    }
}

#[derive(Debug, clap::Args)]
pub struct MergeArgs {
    /// The base model the adapter was trained on (default: the adapter's
    /// `base_model_name_or_path`).
    #[arg(long)]
    model: Option<String>,
    /// A PEFT adapter directory (adapter_config.json + adapter_model.safetensors).
    #[arg(long)]
    adapter: PathBuf,
    /// Output HF directory.
    #[arg(long)]
    out: PathBuf,
    /// The weights' dtype (default: the base model's; f32 for a GGUF base).
    #[arg(long, value_enum)]
    dtype: Option<ExportDtype>,
    /// Largest weight shard in MB (transformers' default, 5 GB); bigger models are written
    /// as shards with model.safetensors.index.json.
    #[arg(long, default_value_t = 5000.0)]
    max_shard_mb: f64,
}

/// `--dtype` of `traitwatch merge`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ExportDtype {
    F32,
    F16,
    Bf16,
}

impl From<ExportDtype> for finetune::export::WeightDtype {
    fn from(d: ExportDtype) -> Self {
        match d {
            ExportDtype::F32 => Self::F32,
            ExportDtype::F16 => Self::F16,
            ExportDtype::Bf16 => Self::BF16,
        }
    }
}

impl BackendJob for MergeArgs {
    type Output = ();

    fn run<B: Backend>(self, device: B::Device) -> Result<()> {
        let model_ref = match &self.model {
            Some(m) => m.clone(),
            None => finetune::lora::adapter_base_model(&self.adapter)?,
        };
        if self.max_shard_mb.is_nan() || self.max_shard_mb <= 0.0 {
            anyhow::bail!("--max-shard-mb must be positive, got {}", self.max_shard_mb);
        }
        let m = super::load_model::<B>(&model_ref, &device)?;
        let opts = finetune::export::ExportOptions {
            dtype: self
                .dtype
                .map_or_else(|| finetune::export::base_dtype(&m.location), Into::into),
            max_shard_bytes: (self.max_shard_mb * 1e6) as u64,
        };
        let adapted = finetune::lora::load_peft(m.model, &self.adapter)?;
        let n = finetune::lora::adapters(&adapted).len();
        let merged = finetune::lora::merge(adapted);
        finetune::export::save_hf_dir(&merged, &m.tokenizer, m.chat.as_ref(), &self.out, &opts)?;
        println!(
            "merged {n} adapters into {} (base {model_ref}, {})",
            self.out.display(),
            opts.dtype.hf_name()
        );
        Ok(())
    }
}
