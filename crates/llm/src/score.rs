//! Scoring fixed continuations: the log-probability of each continuation token given its
//! prompt, in one forward pass per batch with no KV cache and no sampling.
//!
//! This is what likelihood-based judges need (the paired-choice EM judge scores an aligned
//! and a misaligned answer to the same question). The LM head runs only at the positions
//! that predict continuation tokens, so scoring costs little more than a forward pass to
//! the final norm.

use crate::error::{LlmError, Result};
use crate::model::tensor_to_f32;
use crate::model::{Batch, ForwardOptions, HookPoint, KvCache, Llama, LogitsMode, PaddingSide};
use burn::tensor::activation::log_softmax;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};

/// One item to score: the prompt tokens and the continuation whose tokens are scored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Continuation {
    pub prompt: Vec<u32>,
    pub continuation: Vec<u32>,
}

/// Natural-log probability of every continuation token given the prompt and the
/// continuation tokens before it, for all `items` in one batch (left-padded with `pad_id`,
/// which changes no row). Returns one `Vec` per item, as long as its continuation.
///
/// Errors: an empty prompt or continuation, a sequence longer than the model's context.
pub fn continuation_logprobs<B: Backend>(
    model: &Llama<B>,
    items: &[Continuation],
    pad_id: u32,
) -> Result<Vec<Vec<f32>>> {
    if items.is_empty() {
        return Ok(Vec::new());
    }
    if let Some(i) = items
        .iter()
        .position(|c| c.prompt.is_empty() || c.continuation.is_empty())
    {
        return Err(LlmError::Input(format!(
            "item {i} has an empty prompt or continuation; both need at least one token"
        )));
    }
    let rows: Vec<Vec<u32>> = items
        .iter()
        .map(|c| [c.prompt.as_slice(), c.continuation.as_slice()].concat())
        .collect();
    let batch = Batch::new(rows, pad_id, PaddingSide::Left)?;
    let (b, t, d) = (batch.batch_size(), batch.seq_len(), model.d_model());
    // Position p's logits predict token p + 1: the continuation's j-th token is predicted
    // at offset + prompt_len - 1 + j of its (left-padded) row.
    let mut positions = Vec::new();
    let mut targets = Vec::new();
    for (i, c) in items.iter().enumerate() {
        let start = i * t + batch.offset(i) + c.prompt.len() - 1;
        positions.extend((0..c.continuation.len()).map(|j| (start + j) as i64));
        targets.extend(c.continuation.iter().map(|&id| id as i64));
    }
    let n = positions.len();
    let device = model.device();
    let opts = ForwardOptions::<B>::logits(LogitsMode::None).capture([HookPoint::FinalNorm]);
    let out = model.forward(&batch, &opts)?;
    let hidden = out
        .hidden_at(HookPoint::FinalNorm)
        .cloned()
        .ok_or_else(|| LlmError::Input("the forward pass did not capture the final norm".into()))?;
    let positions = Tensor::<B, 1, Int>::from_data(TensorData::new(positions, [n]), &device);
    let targets = Tensor::<B, 2, Int>::from_data(TensorData::new(targets, [n, 1]), &device);
    let rows = hidden.reshape([b * t, d]).select(0, positions);
    let logits = model
        .head(rows.reshape([1, n, d]))
        .reshape([n, model.config.vocab_size]);
    let logprobs = tensor_to_f32(log_softmax(logits, 1).gather(1, targets));
    let mut out = Vec::with_capacity(items.len());
    let mut at = 0;
    for c in items {
        out.push(logprobs[at..at + c.continuation.len()].to_vec());
        at += c.continuation.len();
    }
    Ok(out)
}

/// Mean log-probability per continuation token (the length-normalised score).
pub fn mean_logprob(logprobs: &[f32]) -> f64 {
    if logprobs.is_empty() {
        return f64::NAN;
    }
    logprobs.iter().map(|&x| f64::from(x)).sum::<f64>() / logprobs.len() as f64
}

/// [`continuation_logprobs`] for prompts that share several continuations (the two answers
/// of a paired-choice item): the prefix common to all prompts (a system turn) runs once,
/// each prompt's remainder once, its KV cache is copied to one row per continuation, and
/// the continuations run as a last chunk on top. `continuations[i]`
/// are the continuations of `prompts[i]`; the result has the same nesting. Equal to scoring
/// every (prompt, continuation) on its own, at the cost of one prompt pass per prompt.
///
/// Errors: as [`continuation_logprobs`], or a prompt without continuations.
pub fn shared_prompt_logprobs<B: Backend>(
    model: &Llama<B>,
    prompts: &[Vec<u32>],
    continuations: &[Vec<Vec<u32>>],
    pad_id: u32,
) -> Result<Vec<Vec<Vec<f32>>>> {
    if prompts.len() != continuations.len() {
        return Err(LlmError::Input(format!(
            "{} prompts but {} continuation lists",
            prompts.len(),
            continuations.len()
        )));
    }
    if prompts.is_empty() {
        return Ok(Vec::new());
    }
    if let Some(i) = (0..prompts.len()).find(|&i| {
        prompts[i].is_empty()
            || continuations[i].is_empty()
            || continuations[i].iter().any(Vec::is_empty)
    }) {
        return Err(LlmError::Input(format!(
            "prompt {i} is empty, has no continuations, or has an empty one"
        )));
    }
    let device = model.device();
    let d = model.d_model();
    let opts = ForwardOptions::<B>::logits(LogitsMode::None).capture([HookPoint::FinalNorm]);
    let final_norm = |out: crate::model::ForwardOutput<B>| {
        out.hidden_at(HookPoint::FinalNorm).cloned().ok_or_else(|| {
            LlmError::Input("the forward pass did not capture the final norm".into())
        })
    };

    // 1. The prefix all prompts share (a chat format's system turn), once, then copied to
    // every prompt's row; always leaving each prompt at least one token of its own.
    let min_len = prompts.iter().map(Vec::len).min().unwrap_or(1);
    let shared = (0..min_len - 1)
        .take_while(|&j| prompts.iter().all(|p| p[j] == prompts[0][j]))
        .count();
    let b = prompts.len();
    let mut cache = KvCache::new(model.n_layers(), 1);
    if shared > 0 {
        model.forward_cached(
            &[prompts[0][..shared].to_vec()],
            &[vec![true; shared]],
            &[(0..shared).collect()],
            &mut cache,
            &opts,
        )?;
    }
    copy_rows(&mut cache, &vec![0; b], &device);

    // 2. The rest of each prompt, left-padded (padding is invalid, so nothing attends to
    // it), at positions continuing after the shared prefix.
    let rests: Vec<Vec<u32>> = prompts.iter().map(|p| p[shared..].to_vec()).collect();
    let batch = Batch::new(rests, pad_id, PaddingSide::Left)?;
    let tp = batch.seq_len();
    let padded: Vec<Vec<u32>> = batch
        .rows
        .iter()
        .map(|r| {
            let mut row = vec![pad_id; tp - r.len()];
            row.extend_from_slice(r);
            row
        })
        .collect();
    let positions: Vec<Vec<usize>> = batch
        .positions()
        .into_iter()
        .map(|row| row.into_iter().map(|j| j + shared).collect())
        .collect();
    let prompt_out =
        model.forward_cached(&padded, &batch.valid(), &positions, &mut cache, &opts)?;
    let prompt_hidden = final_norm(prompt_out)?;

    // 3. One cache row per continuation.
    let owner: Vec<usize> = continuations
        .iter()
        .enumerate()
        .flat_map(|(i, c)| std::iter::repeat_n(i, c.len()))
        .collect();
    let rows = owner.len();
    copy_rows(&mut cache, &owner, &device);

    // 4. The continuations, right-padded (padding is invalid, so nothing attends to it).
    let conts: Vec<&Vec<u32>> = continuations.iter().flatten().collect();
    let tc = conts.iter().map(|c| c.len()).max().unwrap_or(1);
    let mut chunk = Vec::with_capacity(rows);
    let mut valid = Vec::with_capacity(rows);
    let mut positions = Vec::with_capacity(rows);
    for (r, c) in conts.iter().enumerate() {
        let mut row = (*c).clone();
        row.resize(tc, pad_id);
        chunk.push(row);
        valid.push((0..tc).map(|j| j < c.len()).collect::<Vec<_>>());
        let start = prompts[owner[r]].len();
        positions.push((start..start + tc).collect::<Vec<_>>());
    }
    let cont_out = model.forward_cached(&chunk, &valid, &positions, &mut cache, &opts)?;
    let cont_hidden = final_norm(cont_out)?;

    // 5. Token j of a continuation is predicted by the prompt's last position (j = 0) or
    // by the continuation's position j - 1: gather those rows, then the head.
    let all = Tensor::cat(
        vec![
            prompt_hidden.reshape([b * tp, d]),
            cont_hidden.reshape([rows * tc, d]),
        ],
        0,
    );
    let (mut at, mut targets) = (Vec::new(), Vec::new());
    for (r, c) in conts.iter().enumerate() {
        at.push((owner[r] * tp + tp - 1) as i64);
        at.extend((1..c.len()).map(|j| (b * tp + r * tc + j - 1) as i64));
        targets.extend(c.iter().map(|&id| id as i64));
    }
    let n = at.len();
    let at = Tensor::<B, 1, Int>::from_data(TensorData::new(at, [n]), &device);
    let targets = Tensor::<B, 2, Int>::from_data(TensorData::new(targets, [n, 1]), &device);
    let logits = model
        .head(all.select(0, at).reshape([1, n, d]))
        .reshape([n, model.config.vocab_size]);
    let flat = tensor_to_f32(log_softmax(logits, 1).gather(1, targets));
    let mut out: Vec<Vec<Vec<f32>>> = continuations.iter().map(|_| Vec::new()).collect();
    let mut k = 0;
    for (r, c) in conts.iter().enumerate() {
        out[owner[r]].push(flat[k..k + c.len()].to_vec());
        k += c.len();
    }
    Ok(out)
}

/// Make row `i` of `cache` a copy of its row `from[i]` (any number of rows).
fn copy_rows<B: Backend>(cache: &mut KvCache<B>, from: &[usize], device: &B::Device) {
    let idx = Tensor::<B, 1, Int>::from_data(
        TensorData::new(
            from.iter().map(|&i| i as i64).collect::<Vec<_>>(),
            [from.len()],
        ),
        device,
    );
    for layer in cache.layers.iter_mut().flatten() {
        layer.k = layer.k.clone().select(0, idx.clone());
        layer.v = layer.v.clone().select(0, idx.clone());
    }
    cache.valid = from.iter().map(|&i| cache.valid[i].clone()).collect();
    cache.positions = from.iter().map(|&i| cache.positions[i].clone()).collect();
}
