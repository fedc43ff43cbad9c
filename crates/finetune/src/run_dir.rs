//! A finetuning run directory as the measuring stages (drift, em) read it. Two layouts:
//!
//! ```text
//! traitwatch (`traitwatch finetune --out`)      HF Trainer / TRL with PEFT, as it lies on disk
//!   run.json                                      checkpoint-10/adapter_config.json
//!   train_log.parquet                             checkpoint-10/adapter_model.safetensors
//!   checkpoints/step-000000/  (the base)          checkpoint-10/trainer_state.json (log_history)
//!   checkpoints/step-000010/...                   checkpoint-20/...
//! ```
//!
//! An HF Trainer saves no step-0 checkpoint, so step 0 is the base model itself (a
//! checkpoint without a directory). The base model comes from the adapters'
//! `base_model_name_or_path`; the training loss from the last checkpoint's `log_history`.

use crate::checkpoint::{self as ckpt, FULL_WEIGHTS, RUN_FILE, TRAIN_LOG};
use crate::error::FinetuneError;
use crate::log::LogRow;
use crate::lora::ADAPTER_CONFIG;
use std::path::{Path, PathBuf};

/// Who wrote a run directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunLayout {
    Traitwatch,
    HfTrainer,
}

/// One checkpoint: its step and its directory (`None`: the base model as loaded).
pub type Checkpoint = (usize, Option<PathBuf>);

/// A run directory, opened.
#[derive(Debug, Clone)]
pub struct RunDir {
    pub dir: PathBuf,
    pub layout: RunLayout,
    /// The model the checkpoints apply to (a preset name, a .gguf or an HF directory), when
    /// the run records one.
    pub base_model: Option<String>,
    /// The training seed (0 where the layout does not record it).
    pub seed: u64,
    /// Sorted by step; always starts at step 0.
    pub checkpoints: Vec<Checkpoint>,
}

/// HF Trainer's checkpoint directory prefix.
const HF_CHECKPOINT_PREFIX: &str = "checkpoint-";
/// HF Trainer's state file inside each checkpoint (its `log_history` holds the losses).
const HF_TRAINER_STATE: &str = "trainer_state.json";

impl RunDir {
    /// Open `dir`: a traitwatch run if it has `run.json`, else an HF Trainer output
    /// directory if it has `checkpoint-N/` subdirectories with an adapter or weights.
    pub fn open(dir: &Path) -> Result<Self, FinetuneError> {
        if dir.join(RUN_FILE).is_file() {
            return Self::open_traitwatch(dir);
        }
        let checkpoints = hf_checkpoints(dir);
        if checkpoints.is_empty() {
            return Err(FinetuneError::Adapter {
                path: dir.to_path_buf(),
                reason: format!(
                    "not a finetuning run: no {RUN_FILE} (a `traitwatch finetune` run) and no \
                     {HF_CHECKPOINT_PREFIX}N/ directory holding {ADAPTER_CONFIG} or \
                     {FULL_WEIGHTS} (an HF Trainer / TRL output directory)"
                ),
            });
        }
        let base_model = hf_base_model(&checkpoints)?;
        let mut list: Vec<Checkpoint> = Vec::with_capacity(checkpoints.len() + 1);
        if checkpoints[0].0 != 0 {
            list.push((0, None));
        }
        list.extend(checkpoints.into_iter().map(|(s, d)| (s, Some(d))));
        tracing::info!(
            run = %dir.display(),
            checkpoints = list.len(),
            base_model = base_model.as_deref().unwrap_or("?"),
            "HF Trainer output directory: step 0 is the base model"
        );
        Ok(Self {
            dir: dir.to_path_buf(),
            layout: RunLayout::HfTrainer,
            base_model,
            seed: 0,
            checkpoints: list,
        })
    }

    fn open_traitwatch(dir: &Path) -> Result<Self, FinetuneError> {
        let run = ckpt::read_json(&dir.join(RUN_FILE))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            layout: RunLayout::Traitwatch,
            base_model: run["base_model"].as_str().map(String::from),
            seed: run["config"]["seed"].as_u64().unwrap_or(0),
            checkpoints: ckpt::list_checkpoints(dir)
                .into_iter()
                .map(|(s, d)| (s, Some(d)))
                .collect(),
        })
    }

    /// The directory's name: the default perturbation label.
    pub fn name(&self) -> String {
        self.dir
            .canonicalize()
            .unwrap_or_else(|_| self.dir.clone())
            .file_name()
            .map_or_else(|| "run".into(), |n| n.to_string_lossy().into_owned())
    }

    /// The training loss per optimizer step, as far as the run logged it (empty when it
    /// logged nothing readable).
    pub fn train_log(&self) -> Vec<LogRow> {
        match self.layout {
            RunLayout::Traitwatch => {
                crate::log::read_log(&self.dir.join(TRAIN_LOG)).unwrap_or_default()
            }
            RunLayout::HfTrainer => self
                .checkpoints
                .iter()
                .rev()
                .find_map(|(_, d)| d.as_deref().and_then(hf_log_history))
                .unwrap_or_default(),
        }
    }
}

/// `checkpoint-N/` subdirectories with an adapter or full weights, sorted by N.
fn hf_checkpoints(dir: &Path) -> Vec<(usize, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<(usize, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let step = name.strip_prefix(HF_CHECKPOINT_PREFIX)?.parse().ok()?;
            let path = e.path();
            let usable = path.join(ADAPTER_CONFIG).is_file() || path.join(FULL_WEIGHTS).is_file();
            usable.then_some((step, path))
        })
        .collect();
    found.sort();
    found
}

/// The base model named by the checkpoints' adapters; an error when two disagree.
fn hf_base_model(checkpoints: &[(usize, PathBuf)]) -> Result<Option<String>, FinetuneError> {
    let mut named: Option<(String, PathBuf)> = None;
    for (_, dir) in checkpoints {
        let path = dir.join(ADAPTER_CONFIG);
        if !path.is_file() {
            continue;
        }
        let config = ckpt::read_json(&path)?;
        let Some(name) = config["base_model_name_or_path"].as_str() else {
            continue;
        };
        match &named {
            Some((first, first_path)) if first != name => {
                return Err(FinetuneError::Adapter {
                    path,
                    reason: format!(
                        "base_model_name_or_path `{name}` differs from `{first}` in {}",
                        first_path.display()
                    ),
                });
            }
            Some(_) => {}
            None => named = Some((name.to_string(), path)),
        }
    }
    Ok(named.map(|(name, _)| llm::loader::reference_for_base_name(&name)))
}

/// The training losses in an HF `trainer_state.json`'s `log_history` (entries with `loss`).
fn hf_log_history(dir: &Path) -> Option<Vec<LogRow>> {
    let state = ckpt::read_json(&dir.join(HF_TRAINER_STATE)).ok()?;
    let rows: Vec<LogRow> = state["log_history"]
        .as_array()?
        .iter()
        .filter_map(|entry| {
            Some(LogRow {
                step: entry["step"].as_u64()? as usize,
                epoch: entry["epoch"].as_f64().unwrap_or(0.0).floor() as usize,
                loss: entry["loss"].as_f64()?,
                lr: entry["learning_rate"].as_f64().unwrap_or(f64::NAN),
                grad_norm: entry["grad_norm"].as_f64().unwrap_or(f64::NAN),
                tokens: 0,
                target_tokens: 0,
                seconds: 0.0,
                wall_seconds: 0.0,
            })
        })
        .collect();
    (!rows.is_empty()).then_some(rows)
}
