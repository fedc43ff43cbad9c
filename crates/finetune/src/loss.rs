//! The training loss: token-weighted cross-entropy of next-token prediction.
//!
//! The LM head and the softmax over the vocabulary run outside the autodiff graph, and
//! their gradient is put back in closed form. For weights `w` and targets `y`,
//! `d loss / d logits = w · (softmax(logits) - onehot(y))`, so `d loss / d h` is that
//! matrix times the head weight. Composed from autodiff ops, the same loss made a dozen
//! full passes over the `[tokens, vocab]` logits (log-softmax forward and backward) and
//! kept them alive until the backward pass; here they are one fused softmax, a few
//! reductions and the two matmuls, and are freed before the backward pass starts.

use crate::data::TrainExample;
use crate::error::FinetuneError;
use burn::tensor::activation::softmax;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{IndexingUpdateOp, Int, Tensor, TensorData};
use llm::model::matmul_weight;
use llm::{Batch, ForwardOptions, HookPoint, Llama, LogitsMode, PaddingSide};

/// Sum over target tokens of `-log p(token)`, divided by `targets_in_step` (the number of
/// target tokens in the whole optimizer step, so that accumulated micro-batches average
/// over the step). Rows are right-padded with `pad`; a position predicts the next token
/// where that token is a target.
pub fn batch_loss<B: AutodiffBackend>(
    model: &Llama<B>,
    rows: &[&TrainExample],
    pad: u32,
    targets_in_step: usize,
) -> Result<Tensor<B, 1>, FinetuneError> {
    let batch = Batch::new(
        rows.iter().map(|r| r.ids.clone()).collect(),
        pad,
        PaddingSide::Right,
    )?;
    let (b, t) = (batch.batch_size(), batch.seq_len());
    let n = b * t;
    let mut next = vec![0i64; n];
    let mut weight = vec![0f32; n];
    let w = 1.0 / targets_in_step.max(1) as f32;
    for (i, r) in rows.iter().enumerate() {
        for j in 0..r.ids.len().saturating_sub(1) {
            if r.target[j + 1] {
                next[i * t + j] = r.ids[j + 1] as i64;
                weight[i * t + j] = w;
            }
        }
    }

    let opts = ForwardOptions::logits(LogitsMode::None).capture([HookPoint::FinalNorm]);
    let mut out = model.forward(&batch, &opts)?;
    let (_, h) = out
        .hidden
        .pop()
        .ok_or_else(|| FinetuneError::Data("forward captured no final hidden state".into()))?;
    let d = h.dims()[2];
    let h = h.reshape([n, d]);
    let (head_w, head_b) = model.head_params();

    let device = model.device();
    let inner_device = h.clone().inner().device();
    let next =
        Tensor::<B::InnerBackend, 2, Int>::from_data(TensorData::new(next, [n, 1]), &inner_device);
    let weight =
        Tensor::<B::InnerBackend, 2>::from_data(TensorData::new(weight, [n, 1]), &inner_device);

    // Forward on plain tensors: logits, the loss value, and softmax - onehot.
    let h_in = h.clone().inner();
    let w_in = head_w.clone().inner();
    let mut logits = matmul_weight(h_in.clone(), w_in.clone());
    if let Some(bias) = &head_b {
        logits = logits + bias.clone().inner().unsqueeze_dim(0);
    }
    // Gemma 2 soft-caps the logits: z = c·tanh(l / c), so dz/dl = 1 - (z / c)².
    let cap = model.config.final_logit_softcapping;
    let mut cap_slope = None;
    if let Some(c) = cap {
        logits = logits.div_scalar(c).tanh();
        cap_slope = Some(logits.clone().square().neg().add_scalar(1.0));
        logits = logits.mul_scalar(c);
    }
    let picked = logits.clone().gather(1, next.clone());
    let max = logits.clone().max_dim(1);
    let probs = softmax(logits, 1);
    // log p(y) = z_y - logsumexp(z), and logsumexp(z) = max(z) - log(max p): exact, and
    // max p >= 1 / vocab never underflows (unlike log p(y) read off the softmax).
    let log_max_prob = probs.clone().max_dim(1).log();
    let log_p = picked - max + log_max_prob;
    let loss_value = (log_p * weight.clone()).sum().neg();
    let minus_one = Tensor::<B::InnerBackend, 2>::full([n, 1], -1.0, &inner_device);
    // d loss / d logits, before the per-row weight (applied to the narrow products below).
    let mut dlogits = probs.scatter(1, next, minus_one, IndexingUpdateOp::Add);
    if let Some(slope) = cap_slope {
        dlogits = dlogits * slope;
    }

    // A surrogate whose gradient is the true one: sum(h · dh) [+ sum(W · dW) + sum(b · db)].
    // d loss / d h = dlogits · W (`matmul_weight` multiplies by Wᵀ, so hand it W's transpose).
    let dh = matmul_weight(dlogits.clone(), w_in.transpose()) * weight.clone();
    let mut surrogate = (h * Tensor::from_inner(dh)).sum();
    if head_w.is_require_grad() {
        let dw = dlogits.clone().transpose().matmul(h_in * weight.clone());
        surrogate = surrogate + (head_w * Tensor::from_inner(dw)).sum();
    }
    if let Some(bias) = head_b.filter(|b| b.is_require_grad()) {
        let db = (dlogits * weight).sum_dim(0).reshape([bias.dims()[0]]);
        surrogate = surrogate + (bias * Tensor::from_inner(db)).sum();
    }
    // Value of the loss, gradient of the surrogate.
    let loss = Tensor::<B, 1>::from_inner(loss_value).to_device(&device);
    Ok(surrogate.clone() - surrogate.detach() + loss)
}
