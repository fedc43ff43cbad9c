//! GGUF metadata (`<arch>.block_count`, ...) as a [`ModelConfig`], with what llama.cpp
//! leaves out of Gemma files filled in as llama.cpp and transformers assume it.

use super::{Architecture, ModelConfig, RopeScaling, TokenIds, default_act, default_max_positions};
use crate::error::LlmError;
use crate::gguf::GgufFile;

impl ModelConfig {
    /// Translate GGUF metadata (`<arch>.block_count`, ...) into a config.
    pub fn from_gguf(gguf: &GgufFile) -> Result<Self, LlmError> {
        let arch = gguf.architecture()?.to_string();
        let key = |k: &str| format!("{arch}.{k}");
        let usize_key =
            |k: &str| -> Result<usize, LlmError> { Ok(gguf.get_u64(&key(k))? as usize) };
        let hidden = usize_key("embedding_length")?;
        let heads = usize_key("attention.head_count")?;
        let vocab = match gguf.get_u64(&key("vocab_size")) {
            Ok(v) => v as usize,
            Err(_) => gguf.get_str_array("tokenizer.ggml.tokens")?.len(),
        };
        let head_dim = gguf
            .get_u64(&key("attention.key_length"))
            .ok()
            .map(|v| v as usize);
        let model_type = match arch.as_str() {
            // llama.cpp files Mistral under "llama"; the blocks are the same.
            "llama" | "mistral" => arch.clone(),
            "qwen2" => "qwen2".into(),
            "gemma2" => "gemma2".into(),
            "gemma3" => "gemma3_text".into(),
            other => {
                return Err(LlmError::UnsupportedArchitecture {
                    name: other.to_string(),
                    source_file: gguf.path().to_path_buf(),
                });
            }
        };
        let gemma = model_type.starts_with("gemma");
        let f64_key = |k: &str| gguf.get_f64(&key(k)).ok();
        let rope_scaling = match gguf.get_str(&key("rope.scaling.type")) {
            Ok("linear") => Some(RopeScaling {
                rope_type: "linear".into(),
                factor: f64_key("rope.scaling.factor"),
                low_freq_factor: None,
                high_freq_factor: None,
                original_max_position_embeddings: None,
            }),
            // llama.cpp bakes Llama 3 scaling into the `rope_freqs.weight` tensor instead.
            _ => None,
        };
        let mut cfg = Self {
            model_type,
            vocab_size: vocab,
            hidden_size: hidden,
            intermediate_size: usize_key("feed_forward_length")?,
            num_hidden_layers: usize_key("block_count")?,
            num_attention_heads: heads,
            num_key_value_heads: Some(
                gguf.get_u64(&key("attention.head_count_kv"))
                    .map_or(heads, |v| v as usize),
            ),
            head_dim,
            rms_norm_eps: gguf.get_f64(&key("attention.layer_norm_rms_epsilon"))?,
            rope_theta: gguf.get_f64(&key("rope.freq_base")).unwrap_or(10_000.0),
            rope_scaling,
            max_position_embeddings: gguf
                .get_u64(&key("context_length"))
                .map_or(default_max_positions(), |v| v as usize),
            tie_word_embeddings: gguf.tensor_info("output.weight").is_none(),
            attention_bias: gguf.tensor_info("blk.0.attn_q.bias").is_some(),
            sliding_window: gguf
                .get_u64(&key("attention.sliding_window"))
                .ok()
                .map(|v| v as usize),
            use_sliding_window: None,
            hidden_act: default_act(),
            hidden_activation: None,
            query_pre_attn_scalar: None,
            attn_logit_softcapping: f64_key("attn_logit_softcapping"),
            final_logit_softcapping: f64_key("final_logit_softcapping"),
            layer_types: None,
            sliding_window_pattern: gguf
                .get_u64(&key("attention.sliding_window_pattern"))
                .ok()
                .map(|v| v as usize),
            rope_local_base_freq: None,
            rope_parameters: None,
            bos_token_id: gguf
                .get_u64("tokenizer.ggml.bos_token_id")
                .ok()
                .map(|v| v as u32),
            eos_token_id: gguf
                .get_u64("tokenizer.ggml.eos_token_id")
                .ok()
                .map(|v| TokenIds::One(v as u32)),
            pad_token_id: gguf
                .get_u64("tokenizer.ggml.padding_token_id")
                .ok()
                .map(|v| v as u32),
        };
        if gemma {
            // What llama.cpp assumes for these files and HF configs state: GELU-tanh, queries
            // scaled by the head dimension, Gemma 3's local layers on base 10 000.
            cfg.hidden_activation = Some("gelu_pytorch_tanh".into());
            cfg.query_pre_attn_scalar = Some(cfg.head_dim() as f64);
            if cfg.architecture() == Some(Architecture::Gemma3) {
                cfg.rope_local_base_freq = Some(10_000.0);
            }
        }
        cfg.validate(gguf.path())?;
        Ok(cfg)
    }
}
