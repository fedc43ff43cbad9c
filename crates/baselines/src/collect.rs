//! Residual-stream activations at one layer at every token position of chat prompts (the
//! SAE's training data), in batches; padding positions are dropped.

use crate::{BaselineError, Result};
use burn::tensor::backend::Backend;
use indicatif::ProgressBar;
use llm::model::tensor_to_f32;
use llm::{Batch, ForwardOptions, HookPoint, LoadedModel, LogitsMode, Message, PaddingSide};

/// Activations `[tokens, d]` (row-major) of every prompt token at `HookPoint::BlockOutput(layer)`;
/// prompts are chat-formatted with the generation prompt. `progress` advances per prompt.
pub fn token_activations<B: Backend>(
    lm: &LoadedModel<B>,
    conversations: &[Vec<Message>],
    layer: usize,
    batch_size: usize,
    progress: Option<&ProgressBar>,
) -> Result<(Vec<f32>, usize)> {
    if layer >= lm.model.n_layers() {
        return Err(BaselineError::Input(format!(
            "layer {layer} does not exist (the model has {})",
            lm.model.n_layers()
        )));
    }
    let chat = lm.chat_template()?;
    let ids: Vec<Vec<u32>> = conversations
        .iter()
        .map(|c| Ok(chat.render_tokens(&lm.tokenizer, c, true)?.ids))
        .collect::<Result<_>>()?;
    let point = HookPoint::BlockOutput(layer);
    let opts = ForwardOptions::<B>::logits(LogitsMode::None).capture([point]);
    let d = lm.model.config.hidden_size;
    let mut out = Vec::new();
    for chunk in ids.chunks(batch_size.max(1)) {
        let batch = Batch::new(chunk.to_vec(), lm.tokenizer.pad_or_eos(), PaddingSide::Left)?;
        let t = batch.seq_len();
        let hidden = lm
            .model
            .forward(&batch, &opts)?
            .hidden_at(point)
            .cloned()
            .ok_or_else(|| {
                BaselineError::Input(format!("the forward pass did not capture {point}"))
            })?;
        let host = tensor_to_f32(hidden);
        for (i, row) in batch.valid().iter().enumerate() {
            for (pos, &ok) in row.iter().enumerate() {
                if ok {
                    let at = (i * t + pos) * d;
                    out.extend_from_slice(&host[at..at + d]);
                }
            }
        }
        if let Some(pb) = progress {
            pb.inc(chunk.len() as u64);
        }
    }
    Ok((out, d))
}
