//! The closed-form training loss against the same loss composed from autodiff ops: equal
//! values and equal gradients for every kind of weight, tied and untied heads, padding.
#![allow(clippy::unwrap_used)]

use burn::backend::{Autodiff, Flex};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor, TensorData};
use finetune::data::TrainExample;
use llm::model::tensor_to_f32;
use llm::testing::TinyModel;
use llm::{Batch, ForwardOptions, Llama, LogitsMode, PaddingSide};

mod common;

type B = Autodiff<Flex>;

/// The textbook formulation: log-softmax over the logits, picked at the targets.
fn reference_loss(model: &Llama<B>, rows: &[&TrainExample], pad: u32, n: usize) -> Tensor<B, 1> {
    let batch = Batch::new(
        rows.iter().map(|r| r.ids.clone()).collect(),
        pad,
        PaddingSide::Right,
    )
    .unwrap();
    let (b, t) = (batch.batch_size(), batch.seq_len());
    let mut next = vec![0i64; b * t];
    let mut weight = vec![0f32; b * t];
    for (i, r) in rows.iter().enumerate() {
        for j in 0..r.ids.len() - 1 {
            if r.target[j + 1] {
                next[i * t + j] = r.ids[j + 1] as i64;
                weight[i * t + j] = 1.0 / n as f32;
            }
        }
    }
    let device = Default::default();
    let next = Tensor::<B, 3, Int>::from_data(TensorData::new(next, [b, t, 1]), &device);
    let weight = Tensor::<B, 3>::from_data(TensorData::new(weight, [b, t, 1]), &device);
    let logits = model
        .forward(&batch, &ForwardOptions::logits(LogitsMode::All))
        .unwrap()
        .logits
        .unwrap();
    (log_softmax(logits, 2).gather(2, next) * weight)
        .sum()
        .neg()
}

fn rows() -> Vec<TrainExample> {
    let mk = |ids: Vec<u32>, from: usize| TrainExample {
        target: (0..ids.len()).map(|j| j >= from).collect(),
        ids,
        truncated: false,
    };
    // Unequal lengths, so the batch is padded; the second row's prompt is not a target.
    vec![
        mk(vec![5, 9, 14, 3, 22, 7, 40, 11], 1),
        mk(vec![8, 30, 2, 17, 6], 3),
    ]
}

fn check(tiny: &TinyModel) {
    let model = Llama::<B>::load(&tiny.config, tiny, None, &Default::default()).unwrap();
    let rows = rows();
    let refs: Vec<&TrainExample> = rows.iter().collect();
    let n = rows
        .iter()
        .map(|r| r.target[1..].iter().filter(|&&t| t).count())
        .sum();

    let ours = finetune::loss::batch_loss(&model, &refs, 0, n).unwrap();
    let theirs = reference_loss(&model, &refs, 0, n);
    let (lo, lt) = (
        tensor_to_f32(ours.clone().inner())[0],
        tensor_to_f32(theirs.clone().inner())[0],
    );
    assert!((lo - lt).abs() < 1e-5 * lt.abs().max(1.0), "{lo} vs {lt}");

    let (go, gt) = (ours.backward(), theirs.backward());
    let grads = |g: &<B as burn::tensor::backend::AutodiffBackend>::Gradients| {
        let mut out = vec![
            ("embed_tokens", model.embed_tokens.val().grad(g)),
            (
                "layers.0.q_proj",
                model.layers[0].self_attn.q_proj.weight.val().grad(g),
            ),
            (
                "layers.1.down_proj",
                model.layers[1].mlp.down_proj.weight.val().grad(g),
            ),
            (
                "norm",
                model.norm.weight.val().grad(g).map(|t| t.unsqueeze::<2>()),
            ),
        ];
        if let Some(head) = &model.lm_head {
            out.push(("lm_head", head.weight.val().grad(g)));
        }
        out.into_iter()
            .map(|(name, t)| (name, tensor_to_f32(t.unwrap())))
            .collect::<Vec<_>>()
    };
    for ((name, a), (_, b)) in grads(&go).into_iter().zip(grads(&gt)) {
        let (worst, scale) = common::max_diff_and_scale(&a, &b);
        assert!(scale > 0.0, "{name}: reference gradient is zero");
        assert!(
            worst < 1e-4 * scale,
            "{name}: max |diff| {worst} vs scale {scale}"
        );
    }
}

#[test]
fn closed_form_loss_matches_autodiff_with_a_separate_head() {
    check(&TinyModel::llama(11));
}

#[test]
fn closed_form_loss_matches_autodiff_with_tied_embeddings() {
    check(&TinyModel::llama_tied(12));
}

#[test]
fn closed_form_loss_matches_autodiff_through_gemma_soft_capping() {
    // Gemma 2 caps the logits at 3: the closed form must carry tanh's slope.
    let tiny = TinyModel::gemma2(13);
    assert!(tiny.config.final_logit_softcapping.is_some());
    check(&tiny);
    check(&TinyModel::gemma3(14));
}
