//! Tiny random models for tests, written through the real file formats.
//!
//! A [`TinyModel`] is a seeded set of Llama-family weights small enough to run in
//! milliseconds, with a byte-level BPE tokenizer (256 byte tokens, a few merges, ChatML
//! special tokens) and a ChatML template, so everything from chat rendering to generation
//! runs without downloaded weights. It can be saved as a GGUF file (with llama.cpp's Q/K
//! row permutation, as `convert_hf_to_gguf` writes it) or as an HF directory (config.json,
//! safetensors, optionally sharded, tokenizer.json).

use crate::config::{ModelConfig, TokenIds};
use crate::gguf::write::GgufWriter;
use crate::gguf::{GgmlType, GgufNaming, MetadataValue};
use crate::weights::{HostTensor, WeightSource};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The installed default model (SmolLM2-135M-Instruct) for a test that needs it, or `None`
/// after printing that `test` is skipped. Under `CI=true` a missing model panics instead:
/// CI installs it, so there these tests must run.
pub fn default_model_or_skip(test: &str) -> Option<PathBuf> {
    preset_or_skip(&crate::loader::SMOLLM2_135M, test)
}

/// The installed file of `preset` for a test that needs it, as [`default_model_or_skip`].
pub fn preset_or_skip(preset: &crate::loader::Preset, test: &str) -> Option<PathBuf> {
    match crate::loader::installed(preset) {
        Some(path) => Some(path),
        None if std::env::var("CI").is_ok_and(|v| v == "true") => panic!(
            "{test}: {} is not installed, and CI must run this test (run `{}`)",
            preset.name, preset.install
        ),
        None => {
            eprintln!(
                "SKIPPED {test}: {} not installed (run `{}`)",
                preset.name, preset.install
            );
            None
        }
    }
}

/// ChatML, as SmolLM2 and Qwen use it (without a default system prompt).
pub const CHATML_TEMPLATE: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/// Special tokens of the tiny tokenizer, at ids 0, 1, 2.
pub const SPECIAL_TOKENS: [&str; 3] = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];

/// Merges of the tiny tokenizer (GPT-2 byte-level notation, `Ġ` = space).
const MERGES: [&str; 6] = ["Ġ t", "h e", "Ġt he", "i n", "e r", "Ġ a"];

/// GPT-2's byte-to-character table of byte-level BPE.
pub fn byte_to_char(b: u8) -> char {
    let printable = |b: u8| {
        (b'!'..=b'~').contains(&b) || (0xA1..=0xAC).contains(&b) || (0xAE..=0xFF).contains(&b)
    };
    if printable(b) {
        return char::from(b);
    }
    let shift = (0..b).filter(|&x| !printable(x)).count() as u32;
    char::from_u32(256 + shift).unwrap_or('?')
}

/// Token strings of the tiny vocabulary: specials, then 256 bytes, then merge results.
pub fn tiny_vocab() -> Vec<String> {
    let mut v: Vec<String> = SPECIAL_TOKENS.iter().map(|s| s.to_string()).collect();
    v.extend((0..=255u8).map(|b| byte_to_char(b).to_string()));
    v.extend(MERGES.iter().map(|m| m.replace(' ', "")));
    v
}

/// A tiny model: its config and HF-named f32 weights (row-major, HF layout).
#[derive(Debug, Clone)]
pub struct TinyModel {
    pub config: ModelConfig,
    pub weights: BTreeMap<String, HostTensor>,
}

impl TinyModel {
    /// A Llama-architecture model: 2 layers, d 32, 4 heads over 2 KV heads, MLP 48, the
    /// tiny tokenizer's vocabulary, and a separate LM head (a tied head on random weights
    /// makes the model repeat its input with near certainty; [`TinyModel::llama_tied`]
    /// has one for loader tests).
    pub fn llama(seed: u64) -> Self {
        let config = ModelConfig {
            model_type: "llama".into(),
            vocab_size: tiny_vocab().len(),
            hidden_size: 32,
            intermediate_size: 48,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            num_key_value_heads: Some(2),
            head_dim: None,
            rms_norm_eps: 1e-5,
            rope_theta: 10_000.0,
            rope_scaling: None,
            max_position_embeddings: 256,
            tie_word_embeddings: false,
            attention_bias: false,
            sliding_window: None,
            use_sliding_window: None,
            hidden_act: "silu".into(),
            hidden_activation: None,
            query_pre_attn_scalar: None,
            attn_logit_softcapping: None,
            final_logit_softcapping: None,
            layer_types: None,
            sliding_window_pattern: None,
            rope_local_base_freq: None,
            rope_parameters: None,
            bos_token_id: Some(1),
            eos_token_id: Some(TokenIds::One(2)),
            pad_token_id: Some(0),
        };
        Self::random(config, seed)
    }

    /// [`TinyModel::llama`] with the LM head tied to the embeddings, as SmolLM2 has it.
    pub fn llama_tied(seed: u64) -> Self {
        let mut config = Self::llama(seed).config;
        config.tie_word_embeddings = true;
        Self::random(config, seed)
    }

    /// A Gemma 3 model on [`TinyModel::llama`]'s shapes (head dim 16, so queries are
    /// wider than the residual stream): query/key norms, a sliding window of 4 on every
    /// layer but each 2nd, RoPE bases 10^6 (global) and 10^4 (local), tied head. The
    /// settings GGUF does not store are llama.cpp's assumptions, so it round-trips.
    pub fn gemma3(seed: u64) -> Self {
        let mut config = Self::llama(seed).config;
        config.model_type = "gemma3_text".into();
        config.head_dim = Some(16);
        config.tie_word_embeddings = true;
        config.sliding_window = Some(4);
        config.sliding_window_pattern = Some(2);
        config.rope_theta = 1e6;
        config.rope_local_base_freq = Some(10_000.0);
        config.query_pre_attn_scalar = Some(16.0);
        config.hidden_activation = Some("gelu_pytorch_tanh".into());
        Self::random(config, seed)
    }

    /// A Gemma 2 model on [`TinyModel::llama`]'s shapes: attention and final soft-capping,
    /// a sliding window of 4 on even layers, tied head.
    pub fn gemma2(seed: u64) -> Self {
        let mut config = Self::llama(seed).config;
        config.model_type = "gemma2".into();
        config.tie_word_embeddings = true;
        config.sliding_window = Some(4);
        config.attn_logit_softcapping = Some(5.0);
        config.final_logit_softcapping = Some(3.0);
        config.query_pre_attn_scalar = Some(8.0);
        config.hidden_activation = Some("gelu_pytorch_tanh".into());
        Self::random(config, seed)
    }

    /// Random weights for any config (biases and norms where the architecture has them;
    /// Gemma's norm weights sit around 0, since it scales by `1 + w`).
    pub fn random(config: ModelConfig, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut weights = BTreeMap::new();
        let mut add = |name: String, shape: Vec<usize>, scale: f32, offset: f32| {
            let n: usize = shape.iter().product();
            let values = (0..n)
                .map(|_| offset + scale * (rng.random::<f32>() * 2.0 - 1.0))
                .collect();
            weights.insert(name, HostTensor::f32(shape, values));
        };
        let (d, f, hd) = (
            config.hidden_size,
            config.intermediate_size,
            config.head_dim(),
        );
        let (h, kv) = (config.num_attention_heads, config.kv_heads());
        let gemma = config.norm_offset() != 0.0;
        let norm_centre = 1.0 - config.norm_offset() as f32;
        add(
            "model.embed_tokens.weight".into(),
            vec![config.vocab_size, d],
            1.0,
            0.0,
        );
        for i in 0..config.num_hidden_layers {
            let p = format!("model.layers.{i}");
            let s = 1.0 / (d as f32).sqrt();
            for (name, out, inp) in [
                ("self_attn.q_proj", h * hd, d),
                ("self_attn.k_proj", kv * hd, d),
                ("self_attn.v_proj", kv * hd, d),
                ("self_attn.o_proj", d, h * hd),
                ("mlp.gate_proj", f, d),
                ("mlp.up_proj", f, d),
                ("mlp.down_proj", d, f),
            ] {
                add(format!("{p}.{name}.weight"), vec![out, inp], s, 0.0);
            }
            if config.qkv_bias() {
                for (name, out) in [("q_proj", h * hd), ("k_proj", kv * hd), ("v_proj", kv * hd)] {
                    add(format!("{p}.self_attn.{name}.bias"), vec![out], 0.1, 0.0);
                }
            }
            let mut norms = vec![("input_layernorm", d), ("post_attention_layernorm", d)];
            if gemma {
                norms.extend([
                    ("pre_feedforward_layernorm", d),
                    ("post_feedforward_layernorm", d),
                ]);
            }
            if config.model_type == "gemma3_text" {
                norms.extend([("self_attn.q_norm", hd), ("self_attn.k_norm", hd)]);
            }
            for (name, dim) in norms {
                add(format!("{p}.{name}.weight"), vec![dim], 0.2, norm_centre);
            }
        }
        add("model.norm.weight".into(), vec![d], 0.2, norm_centre);
        if !config.tie_word_embeddings {
            add(
                "lm_head.weight".into(),
                vec![config.vocab_size, d],
                1.0 / (d as f32).sqrt(),
                0.0,
            );
        }
        Self { config, weights }
    }

    /// GGUF metadata and tensors as llama.cpp writes them; `ty` encodes the 2-D weights.
    pub fn to_gguf(&self, ty: GgmlType) -> GgufWriter {
        let c = &self.config;
        let arch = match c.model_type.as_str() {
            "qwen2" => "qwen2",
            "gemma2" => "gemma2",
            "gemma3_text" => "gemma3",
            _ => "llama",
        };
        let mut w = GgufWriter::new();
        let u32v = |v: usize| MetadataValue::U32(v as u32);
        // What llama.cpp writes for Gemma beyond the Llama keys (the head dim is explicit).
        if arch.starts_with("gemma") {
            let f32v = |v: f64| MetadataValue::F32(v as f32);
            w.metadata(&format!("{arch}.attention.key_length"), u32v(c.head_dim()));
            if let Some(window) = c.sliding_window {
                w.metadata(&format!("{arch}.attention.sliding_window"), u32v(window));
            }
            if let Some(p) = c.sliding_window_pattern {
                w.metadata(&format!("{arch}.attention.sliding_window_pattern"), u32v(p));
            }
            if let Some(cap) = c.attn_logit_softcapping {
                w.metadata(&format!("{arch}.attn_logit_softcapping"), f32v(cap));
            }
            if let Some(cap) = c.final_logit_softcapping {
                w.metadata(&format!("{arch}.final_logit_softcapping"), f32v(cap));
            }
        }
        w.metadata("general.architecture", MetadataValue::String(arch.into()))
            .metadata("general.name", MetadataValue::String("tiny".into()))
            .metadata(&format!("{arch}.block_count"), u32v(c.num_hidden_layers))
            .metadata(
                &format!("{arch}.context_length"),
                u32v(c.max_position_embeddings),
            )
            .metadata(&format!("{arch}.embedding_length"), u32v(c.hidden_size))
            .metadata(
                &format!("{arch}.feed_forward_length"),
                u32v(c.intermediate_size),
            )
            .metadata(
                &format!("{arch}.attention.head_count"),
                u32v(c.num_attention_heads),
            )
            .metadata(
                &format!("{arch}.attention.head_count_kv"),
                u32v(c.kv_heads()),
            )
            .metadata(
                &format!("{arch}.rope.freq_base"),
                MetadataValue::F32(c.rope_theta as f32),
            )
            .metadata(
                &format!("{arch}.attention.layer_norm_rms_epsilon"),
                MetadataValue::F32(c.rms_norm_eps as f32),
            )
            .metadata("tokenizer.ggml.model", MetadataValue::String("gpt2".into()))
            .metadata("tokenizer.ggml.pre", MetadataValue::String("gpt2".into()));
        let vocab = tiny_vocab();
        w.metadata(
            "tokenizer.ggml.tokens",
            MetadataValue::Array(
                vocab
                    .iter()
                    .map(|t| MetadataValue::String(t.clone()))
                    .collect(),
            ),
        )
        .metadata(
            "tokenizer.ggml.token_type",
            MetadataValue::Array(
                (0..vocab.len())
                    .map(|i| MetadataValue::I32(if i < SPECIAL_TOKENS.len() { 3 } else { 1 }))
                    .collect(),
            ),
        )
        .metadata(
            "tokenizer.ggml.merges",
            MetadataValue::Array(
                MERGES
                    .iter()
                    .map(|m| MetadataValue::String(m.to_string()))
                    .collect(),
            ),
        )
        .metadata("tokenizer.ggml.bos_token_id", MetadataValue::U32(1))
        .metadata("tokenizer.ggml.eos_token_id", MetadataValue::U32(2))
        .metadata("tokenizer.ggml.padding_token_id", MetadataValue::U32(0))
        .metadata("tokenizer.ggml.add_bos_token", MetadataValue::Bool(false))
        .metadata(
            "tokenizer.chat_template",
            MetadataValue::String(CHATML_TEMPLATE.into()),
        );
        let (h, kv) = (c.num_attention_heads, c.kv_heads());
        let naming = GgufNaming::for_architecture(arch);
        for (name, t) in &self.weights {
            let Some(gguf_name) = naming.to_gguf(name) else {
                continue;
            };
            let mut values = t.to_f32();
            if arch.starts_with("gemma") && gguf_name.ends_with("norm.weight") {
                values.iter_mut().for_each(|v| *v += 1.0);
            }
            let cols = if t.shape.len() == 2 { t.shape[1] } else { 1 };
            if arch == "llama" {
                if name.contains("q_proj") {
                    values = permute_qk(&values, h, cols);
                } else if name.contains("k_proj") {
                    values = permute_qk(&values, kv, cols);
                }
            }
            let tensor_ty = if t.shape.len() == 2 {
                ty
            } else {
                GgmlType::F32
            };
            // Shapes of a tiny model are multiples of 32, so every supported type fits.
            let _ = w.add_f32(&gguf_name, &t.shape, &values, tensor_ty);
        }
        w
    }

    /// Save as an HF directory in f32; `shards > 1` splits the weights over several files
    /// with an index, as large checkpoints are.
    pub fn save_hf_dir(&self, dir: &Path, shards: usize) -> std::io::Result<()> {
        self.save_hf_dir_as(dir, shards, safetensors::Dtype::F32)
    }

    /// Save as an HF directory with weights in `dtype` (F32, F16 or BF16).
    pub fn save_hf_dir_as(
        &self,
        dir: &Path,
        shards: usize,
        dtype: safetensors::Dtype,
    ) -> std::io::Result<()> {
        let encode = |values: Vec<f32>| -> std::io::Result<Vec<u8>> {
            crate::weights::encode_f32_as(&values, dtype)
                .ok_or_else(|| std::io::Error::other(format!("cannot write {dtype:?}")))
        };
        std::fs::create_dir_all(dir)?;
        let cfg = serde_json::to_string_pretty(&self.config).map_err(std::io::Error::other)?;
        std::fs::write(dir.join("config.json"), cfg)?;
        let names: Vec<&String> = self.weights.keys().collect();
        let per_shard = names.len().div_ceil(shards.max(1));
        let mut weight_map = serde_json::Map::new();
        for (k, chunk) in names.chunks(per_shard).enumerate() {
            let file = if shards > 1 {
                format!("model-{:05}-of-{:05}.safetensors", k + 1, shards)
            } else {
                "model.safetensors".to_string()
            };
            let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = chunk
                .iter()
                .map(|n| {
                    let t = &self.weights[*n];
                    Ok(((*n).clone(), encode(t.to_f32())?, t.shape.clone()))
                })
                .collect::<std::io::Result<_>>()?;
            let views = bytes
                .iter()
                .map(|(n, b, s)| {
                    safetensors::tensor::TensorView::new(dtype, s.clone(), b)
                        .map(|v| (n.clone(), v))
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(std::io::Error::other)?;
            safetensors::serialize_to_file(views, None, &dir.join(&file))
                .map_err(std::io::Error::other)?;
            for n in chunk {
                weight_map.insert((*n).clone(), serde_json::Value::String(file.clone()));
            }
        }
        if shards > 1 {
            let index = serde_json::json!({"metadata": {}, "weight_map": weight_map});
            std::fs::write(dir.join("model.safetensors.index.json"), index.to_string())?;
        }
        let gguf =
            crate::gguf::GgufFile::from_bytes("tiny.gguf", self.to_gguf(GgmlType::F32).to_bytes())
                .map_err(std::io::Error::other)?;
        let tok = crate::tokenizer::Tokenizer::from_gguf(&gguf).map_err(std::io::Error::other)?;
        std::fs::write(
            dir.join("tokenizer.json"),
            tok.to_json().map_err(std::io::Error::other)?,
        )?;
        let tok_cfg = serde_json::json!({
            "bos_token": "<|im_start|>", "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>",
            "add_bos_token": false, "chat_template": CHATML_TEMPLATE,
        });
        std::fs::write(dir.join("tokenizer_config.json"), tok_cfg.to_string())
    }
}

impl WeightSource for TinyModel {
    fn describe(&self) -> String {
        "tiny model".into()
    }

    fn get(&self, hf_name: &str) -> Result<Option<HostTensor>, crate::LlmError> {
        Ok(self.weights.get(hf_name).cloned())
    }

    fn names(&self) -> Vec<String> {
        self.weights.keys().cloned().collect()
    }
}

/// llama.cpp's permutation of Q/K rows (HF rotate-half order -> interleaved pairs).
pub fn permute_qk(values: &[f32], n_heads: usize, cols: usize) -> Vec<f32> {
    let rows = values.len() / cols;
    let head_dim = rows / n_heads;
    let half = head_dim / 2;
    let mut out = vec![0f32; values.len()];
    for h in 0..n_heads {
        for part in 0..2 {
            for pair in 0..half {
                let src = h * head_dim + part * half + pair;
                let dst = h * head_dim + pair * 2 + part;
                out[dst * cols..(dst + 1) * cols]
                    .copy_from_slice(&values[src * cols..(src + 1) * cols]);
            }
        }
    }
    out
}
