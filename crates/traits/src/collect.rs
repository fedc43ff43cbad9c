//! Pooled residual-stream activations of chat prompts, in batches.
//!
//! Every pooling is a weighted sum over positions, done on the backend as one batched
//! matmul per captured layer (`[b, 1, t] x [b, t, d]`), so only `[b, d]` per layer ever
//! comes back to the host.

use crate::error::{Result, TraitsError};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use indicatif::ProgressBar;
use llm::model::{Intervention, tensor_to_f32};
use llm::{
    Batch, ForwardOptions, HookPoint, LoadedModel, LogitsMode, Message, PaddingSide, SamplingConfig,
};

/// How one prompt's activations at a layer become one vector (METHOD section 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Pooling {
    /// The last token of the chat-templated prompt ending with the generation prompt
    /// (the paper's default): one forward pass, no generation.
    LastPromptToken,
    /// Mean over every token of the templated prompt.
    PromptMean,
    /// Mean over the first `tokens` greedily generated response tokens.
    ResponseMean { tokens: usize },
}

impl Pooling {
    /// Parse `last`, `prompt_mean` or `response_mean` (64 tokens) / `response_mean:N`.
    pub fn parse(s: &str) -> Result<Self> {
        match s.split_once(':') {
            None if s == "last" => Ok(Self::LastPromptToken),
            None if s == "prompt_mean" => Ok(Self::PromptMean),
            None if s == "response_mean" => Ok(Self::ResponseMean { tokens: 64 }),
            Some(("response_mean", n)) => match n.parse::<usize>() {
                Ok(tokens) if tokens > 0 => Ok(Self::ResponseMean { tokens }),
                _ => Err(TraitsError::Input(format!(
                    "pooling `{s}`: the token count must be a positive integer"
                ))),
            },
            _ => Err(TraitsError::Input(format!(
                "unknown pooling `{s}` (expected last, prompt_mean or response_mean[:N])"
            ))),
        }
    }

    /// The name used in metadata and tables.
    pub fn label(&self) -> String {
        match self {
            Self::LastPromptToken => "last".into(),
            Self::PromptMean => "prompt_mean".into(),
            Self::ResponseMean { tokens } => format!("response_mean:{tokens}"),
        }
    }
}

/// Pooled activations: `[n_prompts, layers.len(), d_model]`, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Pooled {
    /// Decoder blocks captured (see [`HookPoint::BlockOutput`]), in this order.
    pub layers: Vec<usize>,
    pub d_model: usize,
    pub n_prompts: usize,
    pub values: Vec<f32>,
}

impl Pooled {
    /// `[d_model]` vector of prompt `row` at the `k`-th captured layer.
    pub fn get(&self, row: usize, k: usize) -> &[f32] {
        let start = (row * self.layers.len() + k) * self.d_model;
        &self.values[start..start + self.d_model]
    }

    /// Index of decoder block `layer` among the captured layers.
    pub fn layer_index(&self, layer: usize) -> Option<usize> {
        self.layers.iter().position(|&l| l == layer)
    }

    /// All prompts' vectors at decoder block `layer`, `[n_prompts][d_model]`.
    pub fn rows_at(&self, layer: usize) -> Option<Vec<Vec<f32>>> {
        let k = self.layer_index(layer)?;
        Some(
            (0..self.n_prompts)
                .map(|i| self.get(i, k).to_vec())
                .collect(),
        )
    }
}

/// Tokenize conversations with the model's chat template, ending with the generation prompt.
pub fn tokenize_prompts<B: Backend>(
    lm: &LoadedModel<B>,
    conversations: &[Vec<Message>],
) -> Result<Vec<Vec<u32>>> {
    let template = lm.chat_template()?;
    conversations
        .iter()
        .map(|messages| Ok(template.render_tokens(&lm.tokenizer, messages, true)?.ids))
        .collect()
}

/// Steering applied while collecting: `vectors[i]` (`[d_model]`) is added to the output of
/// block `layer` at every position of conversation `i` (planted-signal tests, steered
/// measurements).
#[derive(Debug, Clone, PartialEq)]
pub struct RowSteering {
    pub layer: usize,
    pub vectors: Vec<Vec<f32>>,
}

/// What [`collect`] captures and how.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectOptions {
    /// Decoder blocks to capture.
    pub layers: Vec<usize>,
    pub pooling: Pooling,
    pub batch_size: usize,
    pub steering: Option<RowSteering>,
}

/// Pool the activations of `conversations` at decoder blocks `opts.layers`.
///
/// Prompts are sorted by length before batching (less padding) and returned in input
/// order; padding is on the left, which the runtime proves does not change any row.
pub fn collect<B: Backend>(
    lm: &LoadedModel<B>,
    conversations: &[Vec<Message>],
    opts: &CollectOptions,
    progress: Option<&ProgressBar>,
) -> Result<Pooled> {
    let (layers, pooling, batch_size) = (&opts.layers, opts.pooling, opts.batch_size);
    let n_layers = lm.model.n_layers();
    if let Some(&bad) = layers.iter().find(|&&l| l >= n_layers) {
        return Err(TraitsError::Input(format!(
            "layer {bad} does not exist: the model has blocks 0..{}",
            n_layers - 1
        )));
    }
    if layers.is_empty() {
        return Err(TraitsError::Input("no layers to capture".into()));
    }
    let ids = tokenize_prompts(lm, conversations)?;
    let d = lm.model.d_model();
    if let Some(s) = &opts.steering
        && (s.vectors.len() != ids.len()
            || s.vectors.iter().any(|v| v.len() != d)
            || s.layer >= n_layers)
    {
        return Err(TraitsError::Input(format!(
            "steering needs one [{d}] vector per conversation at an existing layer"
        )));
    }
    if let Some(i) = ids.iter().position(Vec::is_empty) {
        return Err(TraitsError::Input(format!(
            "prompt {i} renders to no tokens"
        )));
    }
    let mut values = vec![0f32; ids.len() * layers.len() * d];
    let mut order: Vec<usize> = (0..ids.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(ids[i].len()));
    let points: Vec<HookPoint> = layers.iter().map(|&l| HookPoint::BlockOutput(l)).collect();
    let plain = ForwardOptions::<B>::logits(LogitsMode::None).capture(points.iter().copied());
    let device = lm.model.device();
    let pad = lm.tokenizer.pad_or_eos();
    for chunk in order.chunks(batch_size.max(1)) {
        let prompts: Vec<Vec<u32>> = chunk.iter().map(|&i| ids[i].clone()).collect();
        let steer: Vec<Intervention<B>> = opts
            .steering
            .iter()
            .map(|s| {
                let rows: Vec<f32> = chunk.iter().flat_map(|&i| s.vectors[i].clone()).collect();
                Intervention::per_row(
                    HookPoint::BlockOutput(s.layer),
                    Tensor::from_data(TensorData::new(rows, [chunk.len(), d]), &device),
                )
            })
            .collect();
        let mut fwd = plain.clone();
        fwd.interventions.extend(steer.iter().cloned());
        let (rows, pooled_spans) = match pooling {
            Pooling::LastPromptToken | Pooling::PromptMean => {
                let spans = prompts
                    .iter()
                    .map(|p| match pooling {
                        Pooling::PromptMean => 0..p.len(),
                        _ => p.len() - 1..p.len(),
                    })
                    .collect::<Vec<_>>();
                (prompts, spans)
            }
            Pooling::ResponseMean { tokens } => with_responses(lm, prompts, tokens, &steer)?,
        };
        let batch = Batch::new(rows, pad, PaddingSide::Left)?;
        let (b, t) = (batch.batch_size(), batch.seq_len());
        // [b, 1, t] pooling weights: uniform over each row's span, shifted by its padding.
        let mut w = vec![0f32; b * t];
        for (i, span) in pooled_spans.iter().enumerate() {
            let offset = batch.offset(i);
            for pos in span.clone() {
                w[i * t + offset + pos] = 1.0 / span.len() as f32;
            }
        }
        let weights = Tensor::<B, 3>::from_data(TensorData::new(w, [b, 1, t]), &device);
        let out = lm.model.forward(&batch, &fwd)?;
        for (k, point) in points.iter().enumerate() {
            let hidden = out.hidden_at(*point).cloned().ok_or_else(|| {
                TraitsError::Input(format!("the forward pass did not capture {point}"))
            })?;
            let host = tensor_to_f32(weights.clone().matmul(hidden));
            for (i, &row) in chunk.iter().enumerate() {
                let dst = (row * layers.len() + k) * d;
                values[dst..dst + d].copy_from_slice(&host[i * d..(i + 1) * d]);
            }
        }
        if let Some(bar) = progress {
            bar.inc(chunk.len() as u64);
        }
    }
    Ok(Pooled {
        layers: layers.to_vec(),
        d_model: d,
        n_prompts: ids.len(),
        values,
    })
}

/// Token positions of one row that its pooled vector averages over.
type Span = std::ops::Range<usize>;

/// Append `tokens` greedy response tokens to each prompt; the spans cover the response
/// (or the last prompt token when the model stops at once).
fn with_responses<B: Backend>(
    lm: &LoadedModel<B>,
    prompts: Vec<Vec<u32>>,
    tokens: usize,
    steer: &[Intervention<B>],
) -> Result<(Vec<Vec<u32>>, Vec<Span>)> {
    let cfg = SamplingConfig::greedy(tokens, lm.tokenizer.eos_ids.clone());
    let generation = llm::generate(&lm.model, &prompts, lm.tokenizer.pad_or_eos(), &cfg, steer)?;
    let mut rows = Vec::with_capacity(prompts.len());
    let mut spans = Vec::with_capacity(prompts.len());
    for (mut prompt, response) in prompts.into_iter().zip(generation.tokens) {
        let start = prompt.len();
        if response.is_empty() {
            tracing::warn!("empty greedy response: pooling the last prompt token instead");
            spans.push(start - 1..start);
        } else {
            spans.push(start..start + response.len());
        }
        prompt.extend(response);
        rows.push(prompt);
    }
    Ok((rows, spans))
}
