//! The decoder (Llama 2/3, SmolLM2, Mistral, Qwen2, Gemma 2, Gemma 3) with residual-stream
//! capture and additive interventions at named hook points. One struct serves every
//! family; what differs (norm placement, activation, soft-capping, local layers) is data
//! read from the config, see [`crate::config::Architecture`].
//!
//! Module field names follow HF (`model.layers.{i}.self_attn.q_proj`), so HF tensor names,
//! PEFT adapter names and this module tree cannot drift apart.

mod block;
mod dropout;
mod hooks;
mod inputs;
mod linear;
mod load;

pub use block::{Attention, DecoderLayer, LayerCache, Mlp, PROJECTIONS, RmsNorm, projection_path};
pub use dropout::{KeyedDropout, splitmix64};
pub use hooks::{ForwardOptions, ForwardOutput, HookPoint, Intervention, LogitsMode};
pub use inputs::{
    AttentionTables, Batch, PaddingSide, PassTables, Rope, apply_rope, attention_mask,
};
pub use linear::{Linear, LoraAdapter, matmul_weight};
pub use load::{host_to_tensor, tensor_to_f32};

use crate::config::ModelConfig;
use crate::error::LlmError;
use burn::module::{Module, Param};
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Element, Int, Tensor, TensorData};

#[derive(Module, Debug)]
pub struct Llama<B: Backend> {
    /// `[vocab, d_model]`
    pub embed_tokens: Param<Tensor<B, 2>>,
    pub layers: Vec<DecoderLayer<B>>,
    pub norm: RmsNorm<B>,
    /// `None` when the head is tied to `embed_tokens`.
    pub lm_head: Option<Linear<B>>,
    #[module(skip)]
    pub config: ModelConfig,
    #[module(skip)]
    pub rope: Rope,
    /// Gemma 3's local (sliding) layers' RoPE, with its own base.
    #[module(skip)]
    pub rope_local: Option<Rope>,
}

/// The backend's own float type, in which activations are computed.
pub fn compute_dtype<B: Backend>() -> DType {
    <B::FloatElem as Element>::dtype()
}

/// Per-layer key/value caches plus what the mask needs to know about cached positions.
#[derive(Debug, Clone)]
pub struct KvCache<B: Backend> {
    pub layers: Vec<Option<LayerCache<B>>>,
    /// Per row: whether each cached position is a real token.
    pub valid: Vec<Vec<bool>>,
    /// Per row: the RoPE position of each cached slot.
    pub positions: Vec<Vec<usize>>,
}

impl<B: Backend> KvCache<B> {
    pub fn new(n_layers: usize, batch: usize) -> Self {
        Self {
            layers: vec![None; n_layers],
            valid: vec![Vec::new(); batch],
            positions: vec![Vec::new(); batch],
        }
    }

    pub fn len(&self) -> usize {
        self.valid.first().map_or(0, Vec::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<B: Backend> Llama<B> {
    pub fn n_layers(&self) -> usize {
        self.layers.len()
    }

    pub fn d_model(&self) -> usize {
        self.config.hidden_size
    }

    pub fn device(&self) -> B::Device {
        self.embed_tokens.device()
    }

    /// Run a padded batch. See [`ForwardOptions`] for capture, steering and logits.
    pub fn forward(
        &self,
        batch: &Batch,
        opts: &ForwardOptions<B>,
    ) -> Result<ForwardOutput<B>, LlmError> {
        self.check_batch(batch, opts)?;
        let device = self.device();
        let tokens = batch.token_tensor::<B>(&device);
        let positions = batch.positions();
        let tables = PassTables::new(
            &self.config,
            &self.rope,
            self.rope_local.as_ref(),
            &positions,
            &batch.valid(),
            &positions,
            &device,
        );
        let last: Vec<usize> = (0..batch.batch_size())
            .map(|i| batch.last_index(i))
            .collect();
        Ok(self.run(tokens, &tables, opts, None, &last))
    }

    /// One incremental step with a KV cache (generation): `rows[i]` holds the new tokens of
    /// row `i` (all rows the same length), `new_valid[i]` whether each is real.
    pub fn forward_cached(
        &self,
        rows: &[Vec<u32>],
        new_valid: &[Vec<bool>],
        new_positions: &[Vec<usize>],
        cache: &mut KvCache<B>,
        opts: &ForwardOptions<B>,
    ) -> Result<ForwardOutput<B>, LlmError> {
        let (b, t) = (rows.len(), rows.first().map_or(0, Vec::len));
        if b == 0 || t == 0 || rows.iter().any(|r| r.len() != t) {
            return Err(LlmError::Input(
                "cached step needs equal, non-empty rows".into(),
            ));
        }
        let batch = Batch::new(rows.to_vec(), 0, PaddingSide::Left)?;
        self.check_batch(&batch, opts)?;
        if cache.len() + t > self.config.max_position_embeddings {
            return Err(LlmError::PromptTooLong {
                len: cache.len() + t,
                max: self.config.max_position_embeddings,
            });
        }
        for i in 0..b {
            cache.valid[i].extend_from_slice(&new_valid[i]);
            cache.positions[i].extend_from_slice(&new_positions[i]);
        }
        let device = self.device();
        let tokens = batch.token_tensor::<B>(&device);
        let tables = PassTables::new(
            &self.config,
            &self.rope,
            self.rope_local.as_ref(),
            new_positions,
            &cache.valid,
            &cache.positions,
            &device,
        );
        let last = vec![t - 1; b];
        Ok(self.run(tokens, &tables, opts, Some(cache), &last))
    }

    fn check_batch(&self, batch: &Batch, opts: &ForwardOptions<B>) -> Result<(), LlmError> {
        let max = self.config.max_position_embeddings;
        if let Some(len) = batch.lengths().into_iter().find(|&l| l > max) {
            return Err(LlmError::PromptTooLong { len, max });
        }
        let vocab = self.config.vocab_size as u32;
        if let Some(&id) = batch.rows.iter().flatten().find(|&&id| id >= vocab) {
            return Err(LlmError::Input(format!(
                "token id {id} is outside the vocabulary of {vocab}"
            )));
        }
        for p in opts
            .capture
            .iter()
            .chain(opts.interventions.iter().map(|i| &i.point))
        {
            if !p.is_valid_for(self.n_layers()) {
                return Err(LlmError::Input(format!(
                    "hook point {p} does not exist in a model with {} layers",
                    self.n_layers()
                )));
            }
        }
        let b = batch.batch_size();
        if let Some(i) = opts.interventions.iter().find(|i| {
            let [rows, d] = i.vectors.dims();
            d != self.d_model() || (rows != 1 && rows != b)
        }) {
            let [rows, d] = i.vectors.dims();
            return Err(LlmError::Input(format!(
                "intervention at {} is [{rows}, {d}]: expected [1 or {b} rows, {} dims]",
                i.point,
                self.d_model()
            )));
        }
        Ok(())
    }

    fn run(
        &self,
        tokens: Tensor<B, 2, Int>,
        tables: &PassTables<B>,
        opts: &ForwardOptions<B>,
        mut cache: Option<&mut KvCache<B>>,
        last: &[usize],
    ) -> ForwardOutput<B> {
        let [b, t] = tokens.dims();
        let device = self.device();
        let ids = tokens.reshape([b * t]);
        let mut h: Tensor<B, 3> = self
            .embed_tokens
            .val()
            .select(0, ids)
            .cast(compute_dtype::<B>())
            .reshape([b, t, self.d_model()]);
        if let Some(scale) = self.config.embedding_scale() {
            h = h.mul_scalar(scale);
        }
        let mut hidden = Vec::new();
        let visit = |point: HookPoint, h: Tensor<B, 3>, hidden: &mut Vec<_>| {
            let mut h = h;
            for iv in opts.interventions.iter().filter(|iv| iv.point == point) {
                // [rows, d] -> [rows, 1, d]: broadcast over positions (and rows when rows == 1).
                h = h + iv.vectors.clone().unsqueeze_dim::<3>(1);
            }
            if opts.capture.contains(&point) {
                hidden.push((point, h.clone()));
            }
            h
        };
        h = visit(HookPoint::Embeddings, h, &mut hidden);
        let depth = opts.blocks_needed(self.n_layers());
        for (l, layer) in self.layers.iter().take(depth).enumerate() {
            let slot = cache.as_deref_mut().map(|c| &mut c.layers[l]);
            h = layer.forward(h, tables.layer(l), slot);
            h = visit(HookPoint::BlockOutput(l), h, &mut hidden);
        }
        if depth < self.n_layers() {
            return ForwardOutput {
                logits: None,
                hidden,
            };
        }
        let h = visit(HookPoint::FinalNorm, self.norm.forward(h), &mut hidden);
        let logits = match opts.logits {
            LogitsMode::None => None,
            LogitsMode::All => Some(self.head(h)),
            LogitsMode::Last => {
                let idx: Vec<i64> = last
                    .iter()
                    .enumerate()
                    .map(|(i, &j)| (i * t + j) as i64)
                    .collect();
                let idx = Tensor::<B, 1, Int>::from_data(TensorData::new(idx, [b]), &device);
                let rows = h.reshape([b * t, self.d_model()]).select(0, idx);
                Some(self.head(rows.reshape([b, 1, self.d_model()])))
            }
        };
        ForwardOutput { logits, hidden }
    }

    /// Hold the frozen base weights (embeddings, the seven projections, the LM head) in
    /// `dtype`, e.g. bf16 to halve a 7-9B model's memory. Norms, biases, LoRA adapters and
    /// every activation stay in the backend's float type (f32), and so do optimizer state
    /// and gradients, which only adapters have. [`matmul_weight`] bridges the two.
    pub fn with_base_dtype(mut self, dtype: DType) -> Self {
        let cast = |p: &Param<Tensor<B, 2>>| {
            Param::from_tensor(p.val().cast(dtype).detach()).set_require_grad(p.is_require_grad())
        };
        self.embed_tokens = cast(&self.embed_tokens);
        for layer in &mut self.layers {
            for name in PROJECTIONS {
                if let Some(lin) = layer.projection_mut(name) {
                    lin.weight = cast(&lin.weight);
                }
            }
        }
        if let Some(head) = &mut self.lm_head {
            head.weight = cast(&head.weight);
        }
        self
    }

    /// The type base weights are held in (see [`Llama::with_base_dtype`]).
    pub fn base_dtype(&self) -> DType {
        self.embed_tokens.val().dtype()
    }

    /// The LM head as `(weight [vocab, d_model], bias)`: `lm_head`'s, or the input
    /// embeddings when the two are tied. Training uses it to form the loss gradient itself.
    pub fn head_params(&self) -> (Tensor<B, 2>, Option<Tensor<B, 1>>) {
        match &self.lm_head {
            Some(head) => (head.weight.val(), head.bias.as_ref().map(|b| b.val())),
            None => (self.embed_tokens.val(), None),
        }
    }

    /// `[batch, seq, d] -> [batch, seq, vocab]`, soft-capped where the model says so.
    pub(crate) fn head(&self, h: Tensor<B, 3>) -> Tensor<B, 3> {
        let logits = match &self.lm_head {
            Some(head) => head.forward(h),
            None => {
                let [b, t, d] = h.dims();
                let logits = matmul_weight(h.reshape([b * t, d]), self.embed_tokens.val());
                logits.reshape([b, t, self.config.vocab_size])
            }
        };
        match self.config.final_logit_softcapping {
            Some(cap) => logits.div_scalar(cap).tanh().mul_scalar(cap),
            None => logits,
        }
    }
}
