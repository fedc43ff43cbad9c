//! Building a [`Llama`] from a [`WeightSource`], checking every tensor's presence and shape.

use super::Llama;
use super::block::{Attention, DecoderLayer, Mlp, RmsNorm};
use super::inputs::Rope;
use super::linear::Linear;
use crate::config::{Architecture, ModelConfig};
use crate::error::LlmError;
use crate::weights::{HostData, HostTensor, WeightSource};
use burn::module::Param;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

/// Upload a host tensor; the backend converts it to its float type.
pub fn host_to_tensor<B: Backend, const D: usize>(
    t: HostTensor,
    device: &B::Device,
) -> Tensor<B, D> {
    let data = match t.data {
        HostData::F32(v) => TensorData::new(v, t.shape),
        HostData::F16(v) => TensorData::new(v, t.shape),
        HostData::BF16(v) => TensorData::new(v, t.shape),
    };
    Tensor::from_data(data, device)
}

/// Download a tensor as f32 values (row-major).
pub fn tensor_to_f32<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    let data = t.into_data().convert::<f32>();
    // `convert` produced f32 data, so this cannot mismatch.
    data.into_vec::<f32>().unwrap_or_default()
}

struct Loader<'a, B: Backend> {
    source: &'a dyn WeightSource,
    device: &'a B::Device,
}

impl<B: Backend> Loader<'_, B> {
    fn host(&self, name: &str, shape: &[usize]) -> Result<HostTensor, LlmError> {
        let t = self
            .source
            .get(name)?
            .ok_or_else(|| LlmError::MissingTensor {
                source_name: self.source.describe(),
                name: name.to_string(),
            })?;
        if t.shape != shape {
            return Err(LlmError::ShapeMismatch {
                source_name: self.source.describe(),
                name: name.to_string(),
                expected: shape.to_vec(),
                found: t.shape,
            });
        }
        Ok(t)
    }

    fn tensor<const D: usize>(
        &self,
        name: &str,
        shape: [usize; D],
    ) -> Result<Tensor<B, D>, LlmError> {
        Ok(host_to_tensor(self.host(name, &shape)?, self.device))
    }

    fn linear(
        &self,
        prefix: &str,
        out: usize,
        inp: usize,
        bias: bool,
    ) -> Result<Linear<B>, LlmError> {
        let weight = self.tensor(&format!("{prefix}.weight"), [out, inp])?;
        let bias = if bias {
            Some(self.tensor(&format!("{prefix}.bias"), [out])?)
        } else {
            None
        };
        Ok(Linear::new(weight, bias))
    }

    fn norm(&self, name: &str, d: usize, cfg: &ModelConfig) -> Result<RmsNorm<B>, LlmError> {
        Ok(RmsNorm::new(
            self.tensor(name, [d])?,
            cfg.rms_norm_eps,
            cfg.norm_offset(),
        ))
    }
}

impl<B: Backend> Llama<B> {
    /// Build the model from `source`, whose tensors use HF names. `rope_factors` are GGUF's
    /// optional per-dimension RoPE divisors.
    pub fn load(
        cfg: &ModelConfig,
        source: &dyn WeightSource,
        rope_factors: Option<&[f32]>,
        device: &B::Device,
    ) -> Result<Self, LlmError> {
        let ld = Loader::<B> { source, device };
        let (d, f, hd) = (cfg.hidden_size, cfg.intermediate_size, cfg.head_dim());
        let (h, kvh) = (cfg.num_attention_heads, cfg.kv_heads());
        let arch = cfg
            .architecture()
            .ok_or_else(|| LlmError::UnsupportedArchitecture {
                name: cfg.model_type.clone(),
                source_file: source.describe().into(),
            })?;
        let activation = cfg.activation().ok_or_else(|| {
            LlmError::Input(format!("{}: unsupported MLP activation", source.describe()))
        })?;
        let embed = ld.tensor("model.embed_tokens.weight", [cfg.vocab_size, d])?;
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let p = format!("model.layers.{i}");
            let proj = |name: &str, out: usize, inp: usize, bias: bool| {
                ld.linear(&format!("{p}.{name}"), out, inp, bias)
            };
            let norm = |name: &str, dim: usize| ld.norm(&format!("{p}.{name}.weight"), dim, cfg);
            let (q_norm, k_norm) = if arch == Architecture::Gemma3 {
                (
                    Some(norm("self_attn.q_norm", hd)?),
                    Some(norm("self_attn.k_norm", hd)?),
                )
            } else {
                (None, None)
            };
            let attn = Attention {
                q_proj: proj("self_attn.q_proj", h * hd, d, cfg.qkv_bias())?,
                k_proj: proj("self_attn.k_proj", kvh * hd, d, cfg.qkv_bias())?,
                v_proj: proj("self_attn.v_proj", kvh * hd, d, cfg.qkv_bias())?,
                o_proj: proj("self_attn.o_proj", d, h * hd, cfg.o_bias())?,
                q_norm,
                k_norm,
                n_heads: h,
                n_kv_heads: kvh,
                head_dim: hd,
                scale: cfg.attention_scale(),
                softcap: cfg.attn_logit_softcapping,
            };
            let mlp = Mlp {
                gate_proj: proj("mlp.gate_proj", f, d, false)?,
                up_proj: proj("mlp.up_proj", f, d, false)?,
                down_proj: proj("mlp.down_proj", d, f, false)?,
                activation,
            };
            let (pre_ff, post_ff) = if arch.is_gemma() {
                (
                    Some(norm("pre_feedforward_layernorm", d)?),
                    Some(norm("post_feedforward_layernorm", d)?),
                )
            } else {
                (None, None)
            };
            layers.push(DecoderLayer {
                input_layernorm: norm("input_layernorm", d)?,
                self_attn: attn,
                post_attention_layernorm: norm("post_attention_layernorm", d)?,
                pre_feedforward_layernorm: pre_ff,
                post_feedforward_layernorm: post_ff,
                mlp,
            });
        }
        let norm = ld.norm("model.norm.weight", d, cfg)?;
        // A checkpoint that says "tied" but still ships lm_head (some do) uses the copy it ships.
        let has_head = source.contains("lm_head.weight");
        let lm_head = if has_head || !cfg.tie_word_embeddings {
            Some(ld.linear("lm_head", cfg.vocab_size, d, false)?)
        } else {
            None
        };
        tracing::debug!(
            layers = cfg.num_hidden_layers,
            d_model = d,
            tied = lm_head.is_none(),
            "model loaded"
        );
        Ok(Self {
            embed_tokens: Param::from_tensor(embed),
            layers,
            norm,
            lm_head,
            config: cfg.clone(),
            rope: Rope::new(cfg, rope_factors),
            rope_local: Rope::local(cfg),
        })
    }
}
