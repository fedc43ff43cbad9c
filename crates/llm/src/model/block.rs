//! One decoder block: pre-norm attention with grouped KV heads and RoPE, then a pre-norm
//! gated MLP, each added to the residual stream. Gemma also normalises each sub-block's
//! output before adding it (`post_*` norms), normalises queries and keys (Gemma 3) and
//! soft-caps attention scores (Gemma 2).

use super::inputs::{AttentionTables, apply_rope};
use super::linear::Linear;
use crate::config::Activation;
use burn::module::{Module, Param};
use burn::tensor::Tensor;
use burn::tensor::activation::softmax;
use burn::tensor::backend::Backend;

/// `x · rsqrt(mean(x²) + eps) · (offset + w)` over the last dimension; `offset` is 1 for
/// Gemma (whose checkpoints store `w` around 0) and 0 otherwise.
#[derive(Module, Debug)]
pub struct RmsNorm<B: Backend> {
    /// `[dim]`, as the checkpoint stores it (HF convention).
    pub weight: Param<Tensor<B, 1>>,
    pub eps: f64,
    pub offset: f64,
}

impl<B: Backend> RmsNorm<B> {
    pub fn new(weight: Tensor<B, 1>, eps: f64, offset: f64) -> Self {
        Self {
            weight: Param::from_tensor(weight),
            eps,
            offset,
        }
    }

    /// `[..., dim] -> [..., dim]`
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let inv_rms = x
            .clone()
            .square()
            .mean_dim(D - 1)
            .add_scalar(self.eps)
            .sqrt()
            .recip();
        let mut scale = self.weight.val();
        if self.offset != 0.0 {
            scale = scale.add_scalar(self.offset);
        }
        x * inv_rms * scale.unsqueeze::<D>()
    }
}

/// `silu(x) = x · sigmoid(x)`, written as `x / (1 + exp(-x))`: one exponential per
/// element. burn's `activation::silu` goes through a log-sum-exp sigmoid (three passes
/// of transcendentals) and took 20 ms against 12.5 ms for this on a [1024, 1536] CPU
/// tensor. Saturates correctly: `exp(-x)` overflows to inf for very negative x, giving 0.
fn silu<B: Backend>(x: Tensor<B, 3>) -> Tensor<B, 3> {
    x.clone() / x.neg().exp().add_scalar(1.0)
}

/// GELU, tanh approximation: `x/2 · (1 + tanh(sqrt(2/π) · (x + 0.044715 x³)))`, as
/// PyTorch's `gelu(approximate="tanh")` (Gemma's `gelu_pytorch_tanh`).
fn gelu_tanh<B: Backend>(x: Tensor<B, 3>) -> Tensor<B, 3> {
    let inner = (x.clone() + x.clone().powi_scalar(3).mul_scalar(0.044_715))
        .mul_scalar((2.0 / std::f64::consts::PI).sqrt());
    x.mul_scalar(0.5) * inner.tanh().add_scalar(1.0)
}

/// `down(act(gate(x)) · up(x))`
#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    pub gate_proj: Linear<B>,
    pub up_proj: Linear<B>,
    pub down_proj: Linear<B>,
    #[module(skip)]
    pub activation: Activation,
}

impl<B: Backend> Mlp<B> {
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let gate = self.gate_proj.forward(x.clone());
        let gate = match self.activation {
            Activation::Silu => silu(gate),
            Activation::GeluTanh => gelu_tanh(gate),
        };
        self.down_proj.forward(gate * self.up_proj.forward(x))
    }
}

/// Keys and values seen so far by one layer, each `[batch, len, kv_heads, head_dim]`.
#[derive(Debug, Clone)]
pub struct LayerCache<B: Backend> {
    pub k: Tensor<B, 4>,
    pub v: Tensor<B, 4>,
}

#[derive(Module, Debug)]
pub struct Attention<B: Backend> {
    pub q_proj: Linear<B>,
    pub k_proj: Linear<B>,
    pub v_proj: Linear<B>,
    pub o_proj: Linear<B>,
    /// Gemma 3: RMSNorm of each query and key head, `[head_dim]`, before RoPE.
    pub q_norm: Option<RmsNorm<B>>,
    pub k_norm: Option<RmsNorm<B>>,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    /// Factor on the queries: `head_dim^-1/2`, or Gemma's `query_pre_attn_scalar^-1/2`.
    pub scale: f64,
    /// Gemma 2: scores become `c · tanh(s / c)` before the mask.
    pub softcap: Option<f64>,
}

impl<B: Backend> Attention<B> {
    /// `x: [batch, seq, d]` -> `[batch, seq, d]`. Appends this step's keys and values to
    /// `cache` when given.
    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        tables: &AttentionTables<B>,
        cache: Option<&mut Option<LayerCache<B>>>,
    ) -> Tensor<B, 3> {
        let [b, t, _] = x.dims();
        let (h, kvh, hd) = (self.n_heads, self.n_kv_heads, self.head_dim);
        let groups = h / kvh;

        let mut q = self.q_proj.forward(x.clone()).reshape([b, t, h, hd]);
        let mut k = self.k_proj.forward(x.clone()).reshape([b, t, kvh, hd]);
        if let (Some(qn), Some(kn)) = (&self.q_norm, &self.k_norm) {
            q = qn.forward(q);
            k = kn.forward(k);
        }
        let q = apply_rope(q, &tables.q_cos, &tables.q_sin).mul_scalar(self.scale);
        let mut k = apply_rope(k, &tables.k_cos, &tables.k_sin);
        let mut v = self.v_proj.forward(x).reshape([b, t, kvh, hd]);
        if let Some(slot) = cache {
            if let Some(prev) = slot.take() {
                k = Tensor::cat(vec![prev.k, k], 1);
                v = Tensor::cat(vec![prev.v, v], 1);
            }
            *slot = Some(LayerCache {
                k: k.clone(),
                v: v.clone(),
            });
        }
        let s = k.dims()[1];

        // Grouped-query attention on views: query head j·groups + g reads KV head j (HF's
        // repeat_kv order). Queries become [batch, kv_heads, groups, seq, head_dim], keys
        // [batch, kv_heads, 1, head_dim, keys]; the matmul broadcasts K/V over the groups,
        // so nothing is copied or repeated.
        let q = q.reshape([b, t, kvh, groups, hd]).permute([0, 2, 3, 1, 4]);
        let k = k.reshape([b, s, kvh, 1, hd]).permute([0, 2, 3, 4, 1]);
        let v = v.reshape([b, s, kvh, 1, hd]).permute([0, 2, 3, 1, 4]);
        let mut scores = q.matmul(k);
        if let Some(cap) = self.softcap {
            scores = scores.div_scalar(cap).tanh().mul_scalar(cap);
        }
        let probs = softmax(scores + tables.mask.clone(), 4);
        let out = probs
            .matmul(v)
            .permute([0, 3, 1, 2, 4])
            .reshape([b, t, h * hd]);
        self.o_proj.forward(out)
    }
}

/// HF's names, whose meaning differs by family: in Llama `post_attention_layernorm` is the
/// norm in front of the MLP; in Gemma it normalises the attention output, and the MLP has
/// its own `pre_feedforward_layernorm` and `post_feedforward_layernorm`.
#[derive(Module, Debug)]
pub struct DecoderLayer<B: Backend> {
    pub input_layernorm: RmsNorm<B>,
    pub self_attn: Attention<B>,
    pub post_attention_layernorm: RmsNorm<B>,
    /// Gemma only (both or neither).
    pub pre_feedforward_layernorm: Option<RmsNorm<B>>,
    pub post_feedforward_layernorm: Option<RmsNorm<B>>,
    pub mlp: Mlp<B>,
}

/// HF names of a decoder layer's linear projections: the modules LoRA can target.
pub const PROJECTIONS: [&str; 7] = [
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
];

/// HF module path of projection `name` in layer `layer`, e.g. `model.layers.3.self_attn.q_proj`.
pub fn projection_path(layer: usize, name: &str) -> String {
    let group = if ["gate_proj", "up_proj", "down_proj"].contains(&name) {
        "mlp"
    } else {
        "self_attn"
    };
    format!("model.layers.{layer}.{group}.{name}")
}

impl<B: Backend> DecoderLayer<B> {
    /// The projection called `name` (one of [`PROJECTIONS`]).
    pub fn projection(&self, name: &str) -> Option<&Linear<B>> {
        Some(match name {
            "q_proj" => &self.self_attn.q_proj,
            "k_proj" => &self.self_attn.k_proj,
            "v_proj" => &self.self_attn.v_proj,
            "o_proj" => &self.self_attn.o_proj,
            "gate_proj" => &self.mlp.gate_proj,
            "up_proj" => &self.mlp.up_proj,
            "down_proj" => &self.mlp.down_proj,
            _ => return None,
        })
    }

    /// Mutable access to the projection called `name`.
    pub fn projection_mut(&mut self, name: &str) -> Option<&mut Linear<B>> {
        Some(match name {
            "q_proj" => &mut self.self_attn.q_proj,
            "k_proj" => &mut self.self_attn.k_proj,
            "v_proj" => &mut self.self_attn.v_proj,
            "o_proj" => &mut self.self_attn.o_proj,
            "gate_proj" => &mut self.mlp.gate_proj,
            "up_proj" => &mut self.mlp.up_proj,
            "down_proj" => &mut self.mlp.down_proj,
            _ => return None,
        })
    }

    /// `[batch, seq, d] -> [batch, seq, d]` (the residual stream after this block).
    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        tables: &AttentionTables<B>,
        cache: Option<&mut Option<LayerCache<B>>>,
    ) -> Tensor<B, 3> {
        let attn = self
            .self_attn
            .forward(self.input_layernorm.forward(x.clone()), tables, cache);
        if let (Some(pre_ff), Some(post_ff)) = (
            &self.pre_feedforward_layernorm,
            &self.post_feedforward_layernorm,
        ) {
            let x = x + self.post_attention_layernorm.forward(attn);
            let mlp = self.mlp.forward(pre_ff.forward(x.clone()));
            return x + post_ff.forward(mlp);
        }
        let x = x + attn;
        let mlp = self
            .mlp
            .forward(self.post_attention_layernorm.forward(x.clone()));
        x + mlp
    }
}
