//! `baselines`: monitor baselines that need the model itself. Today the sparse autoencoder
//! (METHOD section 5): token activations of the base model at l* over the extraction and
//! measurement prompts ([`collect::token_activations`]), a ReLU SAE trained on them with an
//! L1 penalty ([`sae::train_sae`]); the result is a [`drift::SparseAutoencoder`], a feature
//! map the drift stage applies like any trait basis. (PCA-7, PLS-7 and the norms need no
//! model and live in `eval` and `drift`.)

pub mod collect;
pub mod sae;

pub use collect::token_activations;
pub use sae::{SaeConfig, SaeLogRow, SaeReport, train_sae};

#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    #[error(transparent)]
    Model(#[from] llm::LlmError),
    #[error(transparent)]
    Drift(#[from] drift::DriftError),
    #[error("invalid input: {0}")]
    Input(String),
}

pub type Result<T, E = BaselineError> = std::result::Result<T, E>;
