//! The gradient of one micro-batch, computed in data-parallel shards.
//!
//! burn's CPU backend runs its matmuls on all cores but every elementwise op on the calling
//! thread, so a single forward/backward keeps about 1.4 of 2 cores busy. Splitting the
//! micro-batch into `data.shards` parts that run on parallel threads fills the cores:
//! 1.6x faster per LoRA step on 2 cores (4.38 -> 2.73 s, docs/BENCHMARKS.md). The loss is a sum over target
//! tokens, so the shards' losses and gradients add up to the whole batch's, up to float
//! rounding; they are added in shard order, so a run repeats bit for bit.
//!
//! Each shard trains a copy of the model whose trainable parameters are fresh autodiff
//! leaves: burn keeps graphs that share a tracked node under one lock, which would
//! serialise the two backward passes.

use crate::data::TrainExample;
use crate::error::FinetuneError;
use crate::params::{self, Grads};
use crate::{lora, loss};
use burn::tensor::backend::AutodiffBackend;
use llm::Llama;
use llm::model::{splitmix64, tensor_to_f32};
use rayon::prelude::*;

/// Loss (summed over shards) and gradients of `rows`, split into at most `shards`
/// contiguous parts. `dropout_key` seeds the dropout masks of this micro-batch.
pub fn micro_batch_gradients<B: AutodiffBackend>(
    model: &Llama<B>,
    rows: &[&TrainExample],
    shards: usize,
    pad: u32,
    targets_in_step: usize,
    dropout_key: u64,
) -> Result<(f64, Grads<B::InnerBackend>), FinetuneError> {
    let parts = split(rows, shards);
    let run = |(index, (mut copy, part)): (usize, (Llama<B>, &[&TrainExample]))| {
        lora::set_dropout_keys(&mut copy, splitmix64(dropout_key ^ index as u64));
        let loss = loss::batch_loss(&copy, part, pad, targets_in_step)?;
        let value = tensor_to_f32(loss.clone().inner())[0] as f64;
        let mut grads = Grads::new();
        params::accumulate_grads(&copy, &loss.backward(), &mut grads);
        Ok::<_, FinetuneError>((value, grads))
    };
    let results: Vec<_> = if parts.len() == 1 {
        vec![run((0, (model.clone(), parts[0])))]
    } else {
        let copies: Vec<Llama<B>> = parts
            .iter()
            .map(|_| params::fresh_leaves(model.clone()))
            .collect();
        copies
            .into_par_iter()
            .zip(parts.into_par_iter())
            .enumerate()
            .map(run)
            .collect()
    };
    let mut total = 0.0;
    let mut grads = Grads::new();
    for result in results {
        let (value, shard_grads) = result?;
        total += value;
        params::add_grads(&mut grads, shard_grads);
    }
    Ok((total, grads))
}

/// `rows` in at most `shards` contiguous, non-empty, near-equal parts.
fn split<'a, 'b>(rows: &'b [&'a TrainExample], shards: usize) -> Vec<&'b [&'a TrainExample]> {
    let n = shards.clamp(1, rows.len().max(1));
    let (base, extra) = (rows.len() / n, rows.len() % n);
    let mut parts = Vec::with_capacity(n);
    let mut start = 0;
    for i in 0..n {
        let len = base + usize::from(i < extra);
        parts.push(&rows[start..start + len]);
        start += len;
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(n: u32) -> TrainExample {
        TrainExample {
            ids: vec![n],
            target: vec![true],
            truncated: false,
        }
    }

    #[test]
    fn splits_into_contiguous_near_equal_parts() {
        let owned: Vec<TrainExample> = (0..5).map(example).collect();
        let rows: Vec<&TrainExample> = owned.iter().collect();
        let lens = |k| split(&rows, k).iter().map(|p| p.len()).collect::<Vec<_>>();
        assert_eq!(lens(1), [5]);
        assert_eq!(lens(2), [3, 2]);
        assert_eq!(lens(3), [2, 2, 1]);
        assert_eq!(lens(8), [1, 1, 1, 1, 1]);
        let flat: Vec<u32> = split(&rows, 2).concat().iter().map(|r| r.ids[0]).collect();
        assert_eq!(flat, [0, 1, 2, 3, 4]);
    }
}
