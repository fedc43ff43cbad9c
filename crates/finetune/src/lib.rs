//! `finetune`: LoRA and full supervised finetuning with PEFT-compatible checkpoints.
//!
//! ```text
//! chat JSONL --data::sample/tokenize--> examples --Plan--> steps of micro-batches
//!   --train--> <out>/checkpoints/step-NNNNNN/ (PEFT adapter or weights + optimizer state)
//!              <out>/train_log.parquet, <out>/run.json
//! ```
//!
//! Runs are deterministic from the config's seed, and a killed run resumes from its last
//! complete checkpoint with the same results as an uninterrupted one. See
//! [`config::FinetuneConfig`] for settings and profiles.

pub mod checkpoint;
pub mod config;
pub mod data;
pub mod error;
pub mod export;
pub mod log;
pub mod lora;
pub mod loss;
pub mod optim;
pub mod params;
pub mod run_dir;
pub mod shards;
pub mod train;

pub use config::{FinetuneConfig, LossOn, Mode};
pub use error::{FinetuneError, Result};
pub use run_dir::{RunDir, RunLayout};
pub use train::{TrainOptions, TrainOutcome, train};
