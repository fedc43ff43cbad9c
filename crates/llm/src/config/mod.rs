//! Model configuration, mirroring HF `config.json` key names so that loading one is a
//! single serde call; GGUF metadata is translated into the same struct ([`gguf`]).

mod gguf;

use crate::error::LlmError;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The decoder families this runtime implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Architecture {
    /// Llama 2/3, SmolLM2 (HF `model_type` "llama").
    Llama,
    /// Mistral (same blocks as Llama, optional sliding window).
    Mistral,
    /// Qwen2 / Qwen2.5: Llama blocks with biases on q, k and v.
    Qwen2,
    /// Gemma 2: `(1 + w)` norms before and after attention and MLP, GELU-tanh MLP, scaled
    /// embeddings, attention and final-logit soft-capping, sliding window on alternate layers.
    Gemma2,
    /// Gemma 3 (text): Gemma 2's blocks with query/key norms instead of soft-capping, and
    /// local (sliding, own RoPE base) layers with a global one every `sliding_window_pattern`.
    Gemma3,
}

impl Architecture {
    pub fn from_model_type(model_type: &str) -> Option<Self> {
        match model_type {
            "llama" => Some(Self::Llama),
            "mistral" => Some(Self::Mistral),
            "qwen2" => Some(Self::Qwen2),
            "gemma2" => Some(Self::Gemma2),
            "gemma3_text" => Some(Self::Gemma3),
            _ => None,
        }
    }

    /// The Gemma families: `(1 + w)` norms, `sqrt(d)`-scaled embeddings, GELU-tanh MLP.
    pub fn is_gemma(self) -> bool {
        matches!(self, Self::Gemma2 | Self::Gemma3)
    }
}

/// The MLP's gate activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `x · sigmoid(x)` (Llama family).
    Silu,
    /// GELU with the tanh approximation (Gemma's `gelu_pytorch_tanh`).
    GeluTanh,
}

impl Activation {
    fn from_hf(name: &str) -> Option<Self> {
        match name {
            "silu" | "swish" => Some(Self::Silu),
            "gelu_pytorch_tanh" | "gelu_tanh" | "gelu_new" => Some(Self::GeluTanh),
            _ => None,
        }
    }
}

/// `eos_token_id` is an integer or a list in HF configs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TokenIds {
    One(u32),
    Many(Vec<u32>),
}

impl TokenIds {
    pub fn to_vec(&self) -> Vec<u32> {
        match self {
            TokenIds::One(id) => vec![*id],
            TokenIds::Many(ids) => ids.clone(),
        }
    }
}

/// RoPE frequency scaling (`rope_scaling` in HF configs). Only the Llama 3 scheme changes
/// frequencies at short context, so it is the one implemented; others are rejected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RopeScaling {
    #[serde(alias = "type")]
    pub rope_type: String,
    #[serde(default)]
    pub factor: Option<f64>,
    #[serde(default)]
    pub low_freq_factor: Option<f64>,
    #[serde(default)]
    pub high_freq_factor: Option<f64>,
    #[serde(default)]
    pub original_max_position_embeddings: Option<usize>,
}

fn default_rope_theta() -> f64 {
    10_000.0
}
pub(crate) fn default_max_positions() -> usize {
    4096
}
pub(crate) fn default_act() -> String {
    "silu".into()
}

/// Decoder configuration (HF `config.json` keys).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub model_type: String,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    #[serde(default)]
    pub head_dim: Option<usize>,
    pub rms_norm_eps: f64,
    #[serde(default = "default_rope_theta")]
    pub rope_theta: f64,
    #[serde(default)]
    pub rope_scaling: Option<RopeScaling>,
    #[serde(default = "default_max_positions")]
    pub max_position_embeddings: usize,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Llama's switch for biases on all attention projections.
    #[serde(default)]
    pub attention_bias: bool,
    #[serde(default)]
    pub sliding_window: Option<usize>,
    /// Qwen2's switch for `sliding_window` (absent elsewhere: the window applies if set).
    #[serde(default)]
    pub use_sliding_window: Option<bool>,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// Gemma's name for the MLP activation (it wins over `hidden_act` there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden_activation: Option<String>,
    /// Gemma: queries are scaled by `query_pre_attn_scalar^-1/2` (default `head_dim`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_pre_attn_scalar: Option<f64>,
    /// Gemma 2: attention scores become `c · tanh(s / c)` before the mask.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attn_logit_softcapping: Option<f64>,
    /// Gemma 2: logits become `c · tanh(z / c)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_logit_softcapping: Option<f64>,
    /// Per layer, `"sliding_attention"` or `"full_attention"` (Gemma, newer HF configs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer_types: Option<Vec<String>>,
    /// Gemma 3 (older configs): every `n`-th layer is global, the rest slide.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sliding_window_pattern: Option<usize>,
    /// Gemma 3: the RoPE base of the sliding (local) layers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_local_base_freq: Option<f64>,
    /// transformers 5's form of `rope_theta`/`rope_scaling`: one set of keys, or one per
    /// layer type (`full_attention`, `sliding_attention`). Folded into the older keys on
    /// load, so the rest of the code reads only those.
    #[serde(default, skip_serializing)]
    pub rope_parameters: Option<serde_json::Value>,
    #[serde(default)]
    pub bos_token_id: Option<u32>,
    #[serde(default)]
    pub eos_token_id: Option<TokenIds>,
    #[serde(default)]
    pub pad_token_id: Option<u32>,
}

impl ModelConfig {
    /// Read and validate an HF `config.json`.
    pub fn from_json_file(path: &Path) -> Result<Self, LlmError> {
        let text = std::fs::read_to_string(path).map_err(|source| LlmError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut cfg: Self = serde_json::from_str(&text).map_err(|e| LlmError::Config {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        cfg.fold_rope_parameters(path)?;
        cfg.validate(path)?;
        Ok(cfg)
    }

    /// Move transformers 5's `rope_parameters` into `rope_theta`, `rope_scaling` and
    /// `rope_local_base_freq`.
    fn fold_rope_parameters(&mut self, source: &Path) -> Result<(), LlmError> {
        let Some(params) = self.rope_parameters.take() else {
            return Ok(());
        };
        let bad = |reason: String| LlmError::Config {
            path: source.to_path_buf(),
            reason: format!("`rope_parameters`: {reason}"),
        };
        let read = |v: &serde_json::Value| -> Result<(Option<f64>, Option<RopeScaling>), LlmError> {
            let theta = v.get("rope_theta").and_then(serde_json::Value::as_f64);
            let scaling: RopeScaling =
                serde_json::from_value(v.clone()).map_err(|e| bad(e.to_string()))?;
            let scaling = (scaling.rope_type != "default").then_some(scaling);
            Ok((theta, scaling))
        };
        let (global, local) = match (
            params.get("full_attention"),
            params.get("sliding_attention"),
        ) {
            (None, None) => (Some(&params), None),
            (full, sliding) => (full, sliding),
        };
        if let Some(g) = global {
            let (theta, scaling) = read(g)?;
            if let Some(t) = theta {
                self.rope_theta = t;
            }
            self.rope_scaling = scaling;
        }
        if let Some(l) = local {
            let (theta, scaling) = read(l)?;
            if scaling.is_some() {
                return Err(bad(
                    "RoPE scaling on sliding-attention layers is not supported".into(),
                ));
            }
            self.rope_local_base_freq = theta.or(self.rope_local_base_freq);
        }
        Ok(())
    }

    pub fn architecture(&self) -> Option<Architecture> {
        Architecture::from_model_type(&self.model_type)
    }

    fn is_gemma(&self) -> bool {
        self.architecture().is_some_and(Architecture::is_gemma)
    }

    /// The MLP activation: Gemma reads `hidden_activation` (default GELU-tanh), the others
    /// `hidden_act`. `None` for a name this runtime does not implement.
    pub fn activation(&self) -> Option<Activation> {
        let name = match (&self.hidden_activation, self.is_gemma()) {
            (Some(name), _) => name.as_str(),
            (None, true) => "gelu_pytorch_tanh",
            (None, false) => self.hidden_act.as_str(),
        };
        Activation::from_hf(name)
    }

    /// Gemma's RMSNorm multiplies by `1 + w` (HF stores `w`); the others by `w`.
    pub fn norm_offset(&self) -> f64 {
        if self.is_gemma() { 1.0 } else { 0.0 }
    }

    /// Gemma multiplies token embeddings by `sqrt(d_model)`.
    pub fn embedding_scale(&self) -> Option<f64> {
        self.is_gemma().then(|| (self.hidden_size as f64).sqrt())
    }

    /// The factor on queries before `q·k`: `query_pre_attn_scalar^-1/2` (Gemma) or
    /// `head_dim^-1/2`.
    pub fn attention_scale(&self) -> f64 {
        let scalar = self.query_pre_attn_scalar.unwrap_or(self.head_dim() as f64);
        1.0 / scalar.sqrt()
    }

    /// Whether layer `l` attends through a sliding window (with [`Self::sliding_window`]).
    /// Gemma: `layer_types`, else every layer but each `pattern`-th (Gemma 2: 2, Gemma 3: 6);
    /// Mistral and Qwen2: every layer when a window is set and enabled.
    pub fn layer_is_sliding(&self, l: usize) -> bool {
        if let Some(types) = &self.layer_types {
            return types.get(l).is_some_and(|t| t == "sliding_attention");
        }
        match self.architecture() {
            Some(Architecture::Gemma2 | Architecture::Gemma3) => {
                let default = if self.architecture() == Some(Architecture::Gemma2) {
                    2
                } else {
                    6
                };
                let pattern = self.sliding_window_pattern.unwrap_or(default).max(1);
                self.sliding_window.is_some() && !(l + 1).is_multiple_of(pattern)
            }
            _ => self.effective_sliding_window().is_some(),
        }
    }

    /// The attention window of layer `l`, `None` for full attention.
    pub fn window_for_layer(&self, l: usize) -> Option<usize> {
        self.sliding_window.filter(|_| self.layer_is_sliding(l))
    }

    /// The RoPE base of Gemma 3's local (sliding) layers: `rope_local_base_freq`, 10 000
    /// when a Gemma 3 config leaves it out (transformers' default). `None`: every layer
    /// uses `rope_theta`.
    pub fn local_rope_base(&self) -> Option<f64> {
        match self.architecture() {
            Some(Architecture::Gemma3) => Some(self.rope_local_base_freq.unwrap_or(10_000.0)),
            _ => self.rope_local_base_freq,
        }
    }

    pub fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    pub fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    /// Whether q, k and v carry biases (Qwen2 always; Llama when `attention_bias`).
    pub fn qkv_bias(&self) -> bool {
        self.attention_bias || self.architecture() == Some(Architecture::Qwen2)
    }

    /// Whether the output projection carries a bias (Llama's `attention_bias` only).
    pub fn o_bias(&self) -> bool {
        self.attention_bias
    }

    /// The attention window, if this model limits how far back a token attends.
    pub fn effective_sliding_window(&self) -> Option<usize> {
        match self.use_sliding_window {
            Some(false) => None,
            _ => self.sliding_window,
        }
    }

    /// Parameter count implied by the shapes (embeddings and output head included).
    pub fn n_params(&self) -> usize {
        let (d, f, hd) = (self.hidden_size, self.intermediate_size, self.head_dim());
        let q = self.num_attention_heads * hd;
        let kv = self.kv_heads() * hd;
        let attn = d * q + 2 * d * kv + q * d;
        let norms = match self.architecture() {
            Some(Architecture::Gemma2) => 4 * d,
            Some(Architecture::Gemma3) => 4 * d + 2 * hd,
            _ => 2 * d,
        };
        let per_layer = attn + 3 * d * f + norms;
        let head = if self.tie_word_embeddings {
            0
        } else {
            d * self.vocab_size
        };
        self.vocab_size * d + self.num_hidden_layers * per_layer + d + head
    }

    /// Checks every invariant the model code relies on; errors name the source file.
    pub fn validate(&self, source: &Path) -> Result<(), LlmError> {
        let bad = |reason: String| LlmError::Config {
            path: source.to_path_buf(),
            reason,
        };
        if self.architecture().is_none() {
            return Err(LlmError::UnsupportedArchitecture {
                name: self.model_type.clone(),
                source_file: source.to_path_buf(),
            });
        }
        for (name, v) in [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("num_key_value_heads", self.kv_heads()),
            ("max_position_embeddings", self.max_position_embeddings),
        ] {
            if v == 0 {
                return Err(bad(format!("`{name}` must be positive")));
            }
        }
        if self.head_dim.is_none() && !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(bad(format!(
                "`hidden_size` {} is not divisible by `num_attention_heads` {} (and no `head_dim` is given)",
                self.hidden_size, self.num_attention_heads
            )));
        }
        if !self.head_dim().is_multiple_of(2) {
            return Err(bad(format!(
                "head dimension {} must be even for RoPE",
                self.head_dim()
            )));
        }
        if !self.num_attention_heads.is_multiple_of(self.kv_heads()) {
            return Err(bad(format!(
                "`num_attention_heads` {} is not a multiple of `num_key_value_heads` {}",
                self.num_attention_heads,
                self.kv_heads()
            )));
        }
        if !(self.rms_norm_eps > 0.0 && self.rope_theta > 0.0) {
            return Err(bad(
                "`rms_norm_eps` and `rope_theta` must be positive".into()
            ));
        }
        if self.activation().is_none() {
            let name = self.hidden_activation.as_ref().unwrap_or(&self.hidden_act);
            return Err(bad(format!(
                "activation \"{name}\" is not supported (only \"silu\" and \"gelu_pytorch_tanh\")"
            )));
        }
        if let Some(s) = &self.rope_scaling {
            let llama3 = s.rope_type == "llama3"
                && s.factor.is_some()
                && s.low_freq_factor.is_some()
                && s.high_freq_factor.is_some()
                && s.original_max_position_embeddings.is_some();
            let linear = s.rope_type == "linear" && s.factor.is_some_and(|f| f > 0.0);
            if !llama3 && !linear && s.rope_type != "default" {
                return Err(bad(format!(
                    "`rope_scaling` of type \"{}\" is not supported (only \"llama3\" with factor, low_freq_factor, high_freq_factor and original_max_position_embeddings, or \"linear\" with a positive factor)",
                    s.rope_type
                )));
            }
        }
        for (name, cap) in [
            ("attn_logit_softcapping", self.attn_logit_softcapping),
            ("final_logit_softcapping", self.final_logit_softcapping),
            ("query_pre_attn_scalar", self.query_pre_attn_scalar),
            ("rope_local_base_freq", self.rope_local_base_freq),
        ] {
            if cap.is_some_and(|c| c.is_nan() || c <= 0.0) {
                return Err(bad(format!("`{name}` must be positive")));
            }
        }
        if let Some(types) = &self.layer_types {
            if types.len() != self.num_hidden_layers {
                return Err(bad(format!(
                    "`layer_types` has {} entries for {} layers",
                    types.len(),
                    self.num_hidden_layers
                )));
            }
            if let Some(t) = types
                .iter()
                .find(|t| !matches!(t.as_str(), "sliding_attention" | "full_attention"))
            {
                return Err(bad(format!(
                    "`layer_types` entry \"{t}\" is not supported (sliding_attention or full_attention)"
                )));
            }
        }
        if (0..self.num_hidden_layers).any(|l| self.layer_is_sliding(l))
            && self.sliding_window.is_none_or(|w| w == 0)
        {
            return Err(bad(
                "sliding-attention layers need a positive `sliding_window`".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(extra: &str) -> String {
        format!(
            r#"{{"model_type":"llama","vocab_size":64,"hidden_size":32,"intermediate_size":48,
            "num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,
            "rms_norm_eps":1e-5{extra}}}"#
        )
    }

    fn parse(text: &str) -> Result<ModelConfig, LlmError> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.json");
        std::fs::write(&p, text).unwrap();
        ModelConfig::from_json_file(&p)
    }

    #[test]
    fn reads_hf_keys_with_defaults() {
        let cfg = parse(&json(r#","eos_token_id":[2,3],"unknown_key":true"#)).unwrap();
        assert_eq!(cfg.head_dim(), 8);
        assert_eq!(cfg.kv_heads(), 2);
        assert_eq!(cfg.rope_theta, 10_000.0);
        assert_eq!(cfg.eos_token_id.as_ref().unwrap().to_vec(), vec![2, 3]);
        assert!(!cfg.qkv_bias());
    }

    #[test]
    fn missing_key_is_named() {
        let text = json("").replace(r#""hidden_size":32,"#, "");
        let err = parse(&text).unwrap_err().to_string();
        assert!(
            err.contains("hidden_size") && err.contains("config.json"),
            "{err}"
        );
    }

    #[test]
    fn impossible_shapes_are_rejected() {
        let text = json("").replace(r#""num_key_value_heads":2"#, r#""num_key_value_heads":3"#);
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("num_key_value_heads"), "{err}");
        let err = parse(&json("").replace("llama", "gpt_neox"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("gpt_neox"), "{err}");
    }

    #[test]
    fn qwen2_has_qkv_bias() {
        let cfg = parse(&json("").replace("llama", "qwen2")).unwrap();
        assert!(cfg.qkv_bias() && !cfg.o_bias());
    }

    #[test]
    fn transformers_5_rope_parameters_fold_into_the_old_keys() {
        let flat = parse(&json(
            r#","rope_parameters":{"rope_type":"default","rope_theta":500000.0}"#,
        ))
        .unwrap();
        assert_eq!(flat.rope_theta, 500_000.0);
        assert!(flat.rope_scaling.is_none());
        let nested = parse(&json(
            r#","head_dim":8,"sliding_window":4,
            "layer_types":["sliding_attention","full_attention"],
            "rope_parameters":{"full_attention":{"rope_type":"linear","factor":8.0,"rope_theta":1e6},
                               "sliding_attention":{"rope_type":"default","rope_theta":1e4}}"#,
        )
        .replace("llama", "gemma3_text"))
        .unwrap();
        assert_eq!(nested.rope_theta, 1e6);
        assert_eq!(nested.local_rope_base(), Some(1e4));
        assert_eq!(nested.rope_scaling.as_ref().unwrap().factor, Some(8.0));
        assert!(nested.layer_is_sliding(0) && !nested.layer_is_sliding(1));
        assert_eq!(nested.window_for_layer(0), Some(4));
        assert_eq!(nested.window_for_layer(1), None);
    }

    #[test]
    fn gemma_defaults_and_mistakes() {
        let g = parse(&json(r#","sliding_window":4"#).replace("llama", "gemma2")).unwrap();
        assert_eq!(g.activation(), Some(Activation::GeluTanh));
        assert_eq!(g.norm_offset(), 1.0);
        assert_eq!(g.embedding_scale(), Some(32f64.sqrt()));
        // Gemma 2 slides on even layers.
        assert!(g.layer_is_sliding(0) && !g.layer_is_sliding(1));
        let err = parse(&json(r#","layer_types":["full_attention"]"#))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("layer_types") && err.contains("2 layers"),
            "{err}"
        );
        let err = parse(&json(
            r#","layer_types":["sliding_attention","full_attention"]"#,
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("sliding_window"), "{err}");
        let err = parse(&json(r#","hidden_act":"relu""#))
            .unwrap_err()
            .to_string();
        assert!(err.contains("relu"), "{err}");
    }
}
