//! `llm`: the model runtime traitwatch stands on.
//!
//! Loads real checkpoints (GGUF files, HF directories of safetensors), speaks their chat
//! format, and runs Llama-family decoders on any burn backend while exposing the residual
//! stream at every layer.
//!
//! ```text
//! reference ("smollm2-135m" | model.gguf | hf_dir/)
//!   --loader::load--> LoadedModel { model: Llama<B>, tokenizer, chat }
//!   chat.render_tokens(messages) -> ids (+ assistant spans)
//!   model.forward(batch, ForwardOptions { capture, logits, interventions }) -> logits, hidden
//!   generate::generate(model, prompts, SamplingConfig) -> tokens
//!   score::continuation_logprobs(model, [(prompt, continuation)]) -> log p per token
//! ```
//!
//! Layer convention: see [`model::HookPoint`].

pub mod alloc;
pub mod chat;
pub mod config;
pub mod error;
pub mod generate;
pub mod gguf;
pub mod loader;
pub mod model;
pub mod score;
pub mod testing;
pub mod tokenizer;
pub mod weights;

pub use chat::{ChatTemplate, Message, RenderedChat};
pub use config::ModelConfig;
pub use error::{LlmError, Result};
pub use generate::{Generation, SamplingConfig, generate};
pub use loader::{LoadedModel, ModelLocation, load, resolve};
pub use model::{Batch, ForwardOptions, ForwardOutput, HookPoint, Llama, LogitsMode, PaddingSide};
pub use tokenizer::Tokenizer;
