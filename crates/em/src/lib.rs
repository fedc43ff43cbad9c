//! `em`: labels for the monitor, from behaviour only (METHOD.md section 8).
//!
//! The offline default is a **paired-choice judge**: for every item of a bank a checkpoint
//! scores an aligned and a misaligned answer to the same question by its own
//! length-normalised log-likelihood, in its chat format; the item counts as misaligned when
//! the misaligned answer wins. The share of such items is the *proxy EM rate* (labelled so
//! everywhere: it is a behavioural proxy, not the paper's judged free-form EM rate). The
//! same machinery scores the per-trait banks (positive vs negative pole) for Fig. 10.
//!
//! ```text
//! data/em/items.jsonl --bank::load_em_items--> [EmItem] --.pairs()--> [Pair]
//! data/em/traits/*.jsonl --bank::load_trait_items--> [TraitItem] -/
//! judge::score_pairs(model, pairs, system) -> [PairScore]   (burn, batched, no KV cache)
//! summary::{proxy_em, shift_toward_b, trait_behaviour} -> rates, Wilson intervals (no burn)
//! shift::shift(scores, step 0) -> the label: mean paired change of the misaligned
//!     answer's log-odds, bootstrap interval, paired t-test (no burn)
//! controls::measure(system-prompt scores) -> the label's scale and its validation
//! table::{write_items, write_summary, write_label, write_controls} -> Parquet
//! ```
//! The paper's free-form protocol (answers sampled from the checkpoint, judged by a model
//! behind an OpenAI-compatible HTTP API) lives in [`freeform`].
//!
//! Nothing here looks at activations.

pub mod bank;
pub mod controls;
pub mod freeform;
pub mod judge;
pub mod labels;
pub mod overlap;
pub mod shift;
pub mod student_t;
pub mod summary;
pub mod table;
#[cfg(test)]
mod test_support;

pub use bank::{EmItem, Pair, TraitItem, load_em_items, load_trait_items};
pub use controls::{ControlBank, ControlKind, ControlResult};
pub use judge::{PairScore, score_pairs};
pub use shift::Shift;
pub use summary::{GroupRate, proxy_em, shift_toward_b, trait_behaviour, wilson_interval};

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum EmError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {reason}")]
    Bank {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error(transparent)]
    Model(#[from] llm::LlmError),
    #[error(transparent)]
    Table(#[from] tables::TableError),
    /// The free-form judge endpoint: missing, misconfigured, refusing or unreachable.
    #[error("{0}")]
    Judge(String),
    #[error("invalid input: {0}")]
    Input(String),
}

pub type Result<T, E = EmError> = std::result::Result<T, E>;
