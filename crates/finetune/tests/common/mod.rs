//! What the finetuning tests share: a tiny model with its tokenizer and template, toy
//! conversations, a small LoRA config.
#![allow(dead_code, clippy::unwrap_used)]

use burn::backend::{Autodiff, Flex};
use burn::module::Param;
use burn::tensor::{Tensor, TensorData};
use datasets::{Conversation, Message as DMessage, Role};
use finetune::TrainOptions;
use finetune::config::FinetuneConfig;
use finetune::data::TrainExample;
use llm::gguf::{GgmlType, GgufFile};
use llm::testing::{CHATML_TEMPLATE, TinyModel};
use llm::{ChatTemplate, Llama, Tokenizer};

pub type B = Autodiff<Flex>;

pub fn tiny() -> (Llama<B>, Tokenizer, ChatTemplate) {
    let t = TinyModel::llama(3);
    let file = GgufFile::from_bytes("tiny.gguf", t.to_gguf(GgmlType::F32).to_bytes()).unwrap();
    let tok = Tokenizer::from_gguf(&file).unwrap();
    let chat = ChatTemplate::new(CHATML_TEMPLATE, "<|im_start|>", "<|im_end|>").unwrap();
    let model = Llama::<B>::load(&t.config, &t, None, &Default::default()).unwrap();
    (model, tok, chat)
}

pub fn conv(user: &str, assistant: &str) -> Conversation {
    Conversation {
        messages: vec![
            DMessage {
                role: Role::User,
                content: user.into(),
            },
            DMessage {
                role: Role::Assistant,
                content: assistant.into(),
            },
        ],
    }
}

pub fn toy_data(n: usize) -> Vec<Conversation> {
    let words = [
        "apple", "river", "stone", "cloud", "tiger", "maple", "ocean", "ember", "frost", "delta",
    ];
    (0..n)
        .map(|i| {
            conv(
                &format!("say {}", words[i % 10]),
                &format!("{} {} {}", words[(i * 3) % 10], words[(i * 7 + 1) % 10], i),
            )
        })
        .collect()
}

/// A small LoRA config for the tiny model.
pub fn tiny_cfg() -> FinetuneConfig {
    let mut c = FinetuneConfig::cpu();
    c.lora.targets = vec!["q_proj".into(), "v_proj".into(), "down_proj".into()];
    c.lora.rank = 4;
    c.lora.alpha = 8.0;
    c.lora.dropout = 0.0;
    c.data.n_examples = None;
    c.data.batch_size = 2;
    c.data.grad_accum = 2;
    c.data.max_seq_len = 64;
    c.optim.lr = 1e-2;
    c.checkpoints.every = Some(2);
    c.checkpoints.at = vec![];
    c
}

pub fn quiet() -> TrainOptions {
    TrainOptions {
        progress: false,
        base_model: "tiny".into(),
        stop_after: None,
    }
}

pub fn examples(
    tok: &Tokenizer,
    chat: &ChatTemplate,
    cfg: &FinetuneConfig,
    data: &[Conversation],
) -> Vec<TrainExample> {
    finetune::data::tokenize(data, tok, chat, cfg).unwrap().0
}

/// Give every adapter's B (on `targets`) a fixed non-zero value, so that A's gradient is
/// not identically zero. `step` varies the pattern.
pub fn set_nonzero_b(model: &mut Llama<B>, targets: &[&str], step: usize) {
    for layer in &mut model.layers {
        for name in targets {
            let lora = layer.projection_mut(name).unwrap().lora.as_mut().unwrap();
            let dims = lora.b.dims();
            let vals: Vec<f32> = (0..dims[0] * dims[1])
                .map(|i| ((i * step % 11) as f32 - 5.0) * 0.02)
                .collect();
            lora.b = Param::from_tensor(
                Tensor::from_data(TensorData::new(vals, dims), &Default::default()).require_grad(),
            );
        }
    }
}

/// The largest absolute difference between `a` and `b`, and the largest |b|.
pub fn max_diff_and_scale(a: &[f32], b: &[f32]) -> (f32, f32) {
    let scale = b.iter().fold(0f32, |m, x| m.max(x.abs()));
    let worst = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    (worst, scale)
}
