//! Half-precision base weights (`--precision bf16|f16`): the frozen base is held in 16 bits,
//! while LoRA adapters, their gradients and AdamW's moments stay f32. burn's CPU backend
//! computes in bf16 as GPUs do, so the mechanism is tested here; GPU runs use the same code.
#![allow(clippy::unwrap_used)]

mod common;

use burn::tensor::DType;
use common::{quiet, tiny, tiny_cfg, toy_data};
use finetune::train;
use llm::{Batch, ForwardOptions, LogitsMode, PaddingSide};

#[test]
fn bf16_base_weights_keep_adapters_and_training_in_f32() {
    let (model, tok, chat) = tiny();
    let half = model.clone().with_base_dtype(DType::BF16);
    assert_eq!(half.base_dtype(), DType::BF16);
    assert_eq!(
        half.layers[0].self_attn.q_proj.weight.val().dtype(),
        DType::BF16
    );
    assert_eq!(half.norm.weight.val().dtype(), DType::F32, "norms stay f32");

    // The forward pass: bf16 keeps about three significant digits of each weight.
    let batch = Batch::new(
        vec![vec![5, 9, 44, 100, 7], vec![17, 18]],
        0,
        PaddingSide::Left,
    )
    .unwrap();
    let logits = |m: &llm::Llama<common::B>| {
        let out = m
            .forward(&batch, &ForwardOptions::logits(LogitsMode::All))
            .unwrap();
        let t = out.logits.unwrap();
        assert_eq!(t.dtype(), DType::F32, "logits come back in f32");
        llm::model::tensor_to_f32(t)
    };
    let (full, reduced) = (logits(&model), logits(&half));
    let scale = full.iter().fold(0f32, |m, x| m.max(x.abs()));
    let worst = full
        .iter()
        .zip(&reduced)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(
        worst > 0.0 && worst < 0.05 * scale,
        "bf16 logits differ by {worst} (range {scale})"
    );

    // Training: the same LoRA run on both bases; adapters are f32 and the losses agree.
    let mut cfg = tiny_cfg();
    cfg.data.epochs = 1;
    let run = |m| {
        let dir = tempfile::tempdir().unwrap();
        let out = train(m, &tok, &chat, &toy_data(8), &cfg, dir.path(), &quiet()).unwrap();
        let last = out.checkpoints.last().unwrap().1.clone();
        let adapter =
            finetune::checkpoint::read_safetensors(&last.join(finetune::lora::ADAPTER_WEIGHTS))
                .unwrap();
        (out.log, adapter, dir)
    };
    let (log32, adapter32, _d1) = run(model);
    let (log16, adapter16, _d2) = run(half);
    assert_eq!(log32.len(), log16.len());
    for (a, b) in log32.iter().zip(&log16) {
        assert!(
            (a.loss - b.loss).abs() < 0.02 * a.loss,
            "step {}: loss {} (f32 base) vs {} (bf16 base)",
            a.step,
            a.loss,
            b.loss
        );
    }
    assert!(
        log16.last().unwrap().loss < log16[0].loss,
        "training lowers the loss"
    );
    // Adam moves each weight by about lr · sign(gradient), so weights whose gradients are
    // near zero may step either way under bf16 rounding; the adapters as a whole agree.
    let (mut dot, mut n32, mut n16) = (0f64, 0f64, 0f64);
    for (name, t) in &adapter16 {
        assert_eq!(t.dtype_name(), "f32", "{name} is saved in f32");
        for (a, b) in adapter32[name].to_f32().iter().zip(t.to_f32()) {
            dot += (*a as f64) * (b as f64);
            n32 += (*a as f64).powi(2);
            n16 += (b as f64).powi(2);
        }
    }
    let cosine = dot / (n32.sqrt() * n16.sqrt());
    assert!(cosine > 0.99, "adapters of the two runs: cosine {cosine}");
}
