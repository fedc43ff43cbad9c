//! Data-parallel shards of a batch (`data.shards`): the same loss and gradients as one
//! pass, up to float rounding, and the same bits every time, dropout included.
#![allow(clippy::unwrap_used)]

use finetune::data::TrainExample;
use finetune::{lora, shards};
use llm::Llama;
use llm::model::tensor_to_f32;

mod common;

use common::{B, examples, max_diff_and_scale, set_nonzero_b, tiny, tiny_cfg, toy_data};

/// The tiny model with adapters whose B is non-zero, so that every gradient is.
fn adapted(dropout: f64) -> Llama<B> {
    let (model, _, _) = tiny();
    let mut cfg = tiny_cfg();
    cfg.lora.dropout = dropout;
    let mut model = lora::attach(model, &cfg).unwrap();
    set_nonzero_b(&mut model, &["q_proj", "v_proj", "down_proj"], 29);
    model
}

fn rows_of(n: usize) -> Vec<TrainExample> {
    let (_, tok, chat) = tiny();
    // Conversations of different lengths, so shards pad differently from the whole batch.
    examples(&tok, &chat, &tiny_cfg(), &toy_data(n))
}

fn flat(
    grads: &finetune::params::Grads<<B as burn::tensor::backend::AutodiffBackend>::InnerBackend>,
) -> Vec<f32> {
    grads
        .values()
        .flat_map(|g| tensor_to_f32(g.clone()))
        .collect()
}

#[test]
fn shards_give_the_whole_batch_gradient() {
    let model = adapted(0.0);
    let ex = rows_of(5);
    let rows: Vec<&TrainExample> = ex.iter().collect();
    let targets: usize = ex
        .iter()
        .map(|e| e.target.iter().filter(|&&t| t).count())
        .sum();
    let (loss1, g1) = shards::micro_batch_gradients(&model, &rows, 1, 0, targets, 0).unwrap();
    for n in [2, 3] {
        let (loss_n, g_n) = shards::micro_batch_gradients(&model, &rows, n, 0, targets, 0).unwrap();
        assert!(
            (loss1 - loss_n).abs() < 1e-5 * loss1.abs(),
            "{loss1} vs {loss_n}"
        );
        assert_eq!(
            g1.keys().collect::<Vec<_>>(),
            g_n.keys().collect::<Vec<_>>()
        );
        let (worst, scale) = max_diff_and_scale(&flat(&g_n), &flat(&g1));
        assert!(scale > 0.0);
        assert!(
            worst < 1e-4 * scale,
            "{n} shards: max |diff| {worst} of {scale}"
        );
    }
}

#[test]
fn sharded_dropout_repeats_bit_for_bit_and_depends_on_the_key() {
    let model = adapted(0.2);
    let ex = rows_of(4);
    let rows: Vec<&TrainExample> = ex.iter().collect();
    let run = |key| {
        let (loss, g) = shards::micro_batch_gradients(&model, &rows, 2, 0, 40, key).unwrap();
        (loss, flat(&g))
    };
    let first = run(11);
    for _ in 0..3 {
        assert_eq!(run(11), first, "the same key must give the same bits");
    }
    assert_ne!(run(12).1, first.1, "another key draws other masks");
    let (no_dropout, _) =
        shards::micro_batch_gradients(&adapted(0.0), &rows, 2, 0, 40, 11).unwrap();
    assert_ne!(no_dropout, first.0, "dropout is active in training");
}
