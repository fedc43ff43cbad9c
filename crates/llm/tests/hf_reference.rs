//! Every architecture against PyTorch transformers, on tiny random models.
//!
//! `fixtures/tiny/<arch>/` holds a model saved by transformers' `save_pretrained` (config,
//! safetensors, tokenizer, chat template) and `reference.json`, the numbers transformers
//! computed from it (`scripts/make_tiny_fixtures.py`): token ids, logits at every position,
//! the residual stream at every depth, greedy continuations, and a left-padded batch. Each
//! architecture's features (sliding windows shorter than the long prompt, soft-capping,
//! query/key norms, a local RoPE base, q/k/v biases) move these numbers by 0.5-5.5
//! (`feature_sensitivity_max_abs_logit_diff` in each file), far above the tolerance.
#![allow(clippy::unwrap_used)]

mod common;

use burn::backend::Flex;
use common::{assert_close_rel, floats, ids};
use llm::loader::{LoadedModel, ModelLocation, load_location};
use llm::model::tensor_to_f32;
use llm::{Batch, ForwardOptions, HookPoint, LogitsMode, Message, PaddingSide, SamplingConfig};
use serde_json::Value;
use std::path::PathBuf;

type B = Flex;

/// transformers' fp32 numbers, rounded to 6 significant digits.
const TOL: f32 = 1e-4;

const ARCHS: [&str; 5] = ["llama", "mistral", "qwen2", "gemma2", "gemma3_text"];

fn dir(arch: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/tiny/{arch}"))
}

fn load(arch: &str) -> (LoadedModel<B>, Value) {
    let model = load_location(ModelLocation::HfDir(dir(arch)), &Default::default()).unwrap();
    let text = std::fs::read_to_string(dir(arch).join("reference.json")).unwrap();
    (model, serde_json::from_str(&text).unwrap())
}

/// HF `hidden_states[k]` in our hook points: embeddings, block outputs, the final norm.
fn hook_point(k: usize, n_layers: usize) -> HookPoint {
    match k {
        0 => HookPoint::Embeddings,
        k if k == n_layers => HookPoint::FinalNorm,
        k => HookPoint::BlockOutput(k - 1),
    }
}

#[test]
fn prompts_tokenize_as_transformers_does() {
    for arch in ARCHS {
        let (m, reference) = load(arch);
        for p in reference["prompts"].as_array().unwrap() {
            let got = match p.get("messages") {
                Some(msgs) => {
                    let msgs: Vec<Message> = serde_json::from_value(msgs.clone()).unwrap();
                    let r = m
                        .chat_template()
                        .unwrap()
                        .render_tokens(&m.tokenizer, &msgs, true)
                        .unwrap();
                    assert_eq!(r.text, p["text"].as_str().unwrap(), "{arch}: chat text");
                    r.ids
                }
                None => m.tokenizer.encode_raw(p["text"].as_str().unwrap()).unwrap(),
            };
            assert_eq!(got, ids(&p["token_ids"]), "{arch}: {}", p["name"]);
        }
    }
}

#[test]
fn gemma_templates_have_no_system_role() {
    for arch in ["gemma2", "gemma3_text"] {
        let (m, _) = load(arch);
        let chat = m.chat_template().unwrap();
        assert!(!chat.supports_system(), "{arch}");
        let r = chat
            .render(&[Message::system("Be terse."), Message::user("Hi")], true)
            .unwrap();
        assert!(
            r.contains("<start_of_turn>user\nBe terse.<end_of_turn>"),
            "{arch}: {r}"
        );
    }
}

#[test]
fn logits_and_hidden_states_match_every_position() {
    for arch in ARCHS {
        let (m, reference) = load(arch);
        let n_layers = m.model.n_layers();
        let (vocab, d) = (m.model.config.vocab_size, m.model.d_model());
        let points: Vec<HookPoint> = (0..=n_layers).map(|k| hook_point(k, n_layers)).collect();
        for p in reference["prompts"].as_array().unwrap() {
            let name = format!("{arch}/{}", p["name"].as_str().unwrap());
            let row = ids(&p["token_ids"]);
            let t = row.len();
            let batch = Batch::new(vec![row], 0, PaddingSide::Left).unwrap();
            let opts = ForwardOptions::<B>::logits(LogitsMode::All).capture(points.iter().copied());
            let out = m.model.forward(&batch, &opts).unwrap();
            let logits = tensor_to_f32(out.logits.clone().unwrap());
            assert_close_rel(
                &format!("{name}: last-position logits"),
                &logits[(t - 1) * vocab..t * vocab],
                &floats(&p["last_position_logits"]),
                TOL,
            );
            for (pos, want) in p["logits_first8_per_position"]
                .as_array()
                .unwrap()
                .iter()
                .enumerate()
            {
                assert_close_rel(
                    &format!("{name}: logits[:8] at position {pos}"),
                    &logits[pos * vocab..pos * vocab + 8],
                    &floats(want),
                    TOL,
                );
            }
            let norms = floats(&p["hidden_states_last_position_l2norm"]);
            for (k, want) in p["hidden_states_last_position_first8"]
                .as_array()
                .unwrap()
                .iter()
                .enumerate()
            {
                let point = hook_point(k, n_layers);
                let h = tensor_to_f32(out.hidden_at(point).unwrap().clone());
                let last = &h[(t - 1) * d..t * d];
                assert_close_rel(
                    &format!("{name}: {point} last[:8]"),
                    &last[..8],
                    &floats(want),
                    TOL,
                );
                let norm = last.iter().map(|x| x * x).sum::<f32>().sqrt();
                assert_close_rel(&format!("{name}: {point} norm"), &[norm], &[norms[k]], TOL);
            }
        }
    }
}

#[test]
fn greedy_continuations_match() {
    for arch in ARCHS {
        let (m, reference) = load(arch);
        let prompts = reference["prompts"].as_array().unwrap();
        let rows: Vec<Vec<u32>> = prompts.iter().map(|p| ids(&p["token_ids"])).collect();
        // The reference never stops at end-of-sequence; a batch of three also checks that
        // left padding changes no row (the prompts differ in length).
        let cfg = SamplingConfig::greedy(8, Vec::new());
        let generated = llm::generate(&m.model, &rows, 0, &cfg, &[]).unwrap();
        for (i, p) in prompts.iter().enumerate() {
            assert_eq!(
                generated.tokens[i],
                ids(&p["greedy_8_new_token_ids"]),
                "{arch}: {}",
                p["name"]
            );
        }
    }
}

#[test]
fn left_padded_batches_match_transformers() {
    for arch in ARCHS {
        let (m, reference) = load(arch);
        let Some(case) = reference.get("batched_left_padded") else {
            continue;
        };
        // Rows without their padding: our batch pads them again (left, as the reference).
        let rows: Vec<Vec<u32>> = case["input_ids"]
            .as_array()
            .unwrap()
            .iter()
            .zip(case["attention_mask"].as_array().unwrap())
            .map(|(row, mask)| {
                ids(row)
                    .into_iter()
                    .zip(ids(mask))
                    .filter(|&(_, keep)| keep == 1)
                    .map(|(id, _)| id)
                    .collect()
            })
            .collect();
        let batch = Batch::new(rows, 0, PaddingSide::Left).unwrap();
        let out = m
            .model
            .forward(&batch, &ForwardOptions::<B>::logits(LogitsMode::Last))
            .unwrap();
        let logits = tensor_to_f32(out.logits.unwrap());
        let vocab = m.model.config.vocab_size;
        for (i, want) in case["last_position_logits"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
        {
            assert_close_rel(
                &format!("{arch}: padded row {i}"),
                &logits[i * vocab..(i + 1) * vocab],
                &floats(want),
                TOL,
            );
        }
    }
}
