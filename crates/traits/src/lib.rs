//! `traits`: the trait directions traitwatch measures drift along (METHOD sections 1-2).
//!
//! ```text
//! bank.toml + questions.toml --bank--> TraitBank, questions
//!   --extract (one forward pass per system prompt x question, all layers)--> Directions [traits, L, d]
//!   --layer::select_layer (steering divergence over candidate layers)--> l*
//!   --validate--> held-out AUROC per trait and layer, probe accuracy, cosines at l*
//! measurement prompts --collect (last-token activations at l*)--> rows for the drift crate
//! ```
//!
//! Layer convention: index `l` is the output of decoder block `l` (0-based), which is HF
//! `hidden_states[l + 1]`, before the final norm ([`llm::HookPoint::BlockOutput`]).

pub mod bank;
pub mod collect;
pub mod directions;
pub mod error;
pub mod extract;
pub mod layer;
pub mod report;
pub mod validate;

pub use bank::{MeasurementPrompt, TraitBank, TraitSpec, load_measurement_prompts, load_questions};
pub use collect::{CollectOptions, Pooled, Pooling, RowSteering, collect};
pub use directions::{Directions, DirectionsMeta};
pub use error::{Result, TraitsError};
pub use extract::{Extraction, Sample, extract};
pub use layer::{LayerChoice, SteeringConfig, select_layer};
