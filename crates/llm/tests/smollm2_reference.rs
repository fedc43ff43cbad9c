//! The runtime against PyTorch transformers on the real default model.
//!
//! Reference numbers: `fixtures/smollm2_reference.json` (SmolLM2-135M-Instruct Q4_1 GGUF,
//! dequantized to f32 by transformers). These tests need the model installed by
//! `just setup`; without it they print SKIPPED and pass, except under `CI=true`, where a
//! missing model is a failure (CI installs it).
#![allow(clippy::unwrap_used)]

mod common;

use burn::backend::Flex;
use common::{assert_close_abs, floats, ids};
use llm::gguf::GgufFile;
use llm::loader::{self, LoadedModel, SMOLLM2_135M};
use llm::model::tensor_to_f32;
use llm::weights::{GgufWeights, WeightSource};
use llm::{Batch, ForwardOptions, HookPoint, LogitsMode, Message, PaddingSide, SamplingConfig};
use serde_json::Value;
use std::path::PathBuf;
use std::sync::OnceLock;

type B = Flex;

fn reference() -> &'static Value {
    static REF: OnceLock<Value> = OnceLock::new();
    REF.get_or_init(|| {
        serde_json::from_str(include_str!("fixtures/smollm2_reference.json")).unwrap()
    })
}

/// The installed default model, or `None` after printing why the test is skipped.
fn model_path(test: &str) -> Option<PathBuf> {
    llm::testing::default_model_or_skip(test)
}

fn model() -> Option<&'static LoadedModel<B>> {
    static MODEL: OnceLock<Option<LoadedModel<B>>> = OnceLock::new();
    MODEL
        .get_or_init(|| {
            let path = loader::installed(&SMOLLM2_135M)?;
            Some(
                loader::load_location(loader::ModelLocation::Gguf(path), &Default::default())
                    .unwrap(),
            )
        })
        .as_ref()
}

fn messages(prompt: &Value) -> Vec<Message> {
    serde_json::from_value(prompt["messages"].clone()).unwrap()
}

#[test]
fn weight_fingerprints_match() {
    let Some(path) = model_path("weight_fingerprints_match") else {
        return;
    };
    let weights = GgufWeights::new(GgufFile::open(&path).unwrap()).unwrap();
    let fp = &reference()["weight_fingerprints"];
    let row = |name: &str, row: usize| {
        let t = weights.get(name).unwrap().unwrap();
        let cols = t.shape.last().copied().unwrap();
        t.to_f32()[row * cols..row * cols + 8].to_vec()
    };
    let cases = [
        (
            "model.embed_tokens.weight[1,:8]",
            row("model.embed_tokens.weight", 1),
        ),
        (
            "model.layers.0.self_attn.q_proj.weight[0,:8]",
            row("model.layers.0.self_attn.q_proj.weight", 0),
        ),
        (
            "model.layers.0.mlp.down_proj.weight[0,:8]",
            row("model.layers.0.mlp.down_proj.weight", 0),
        ),
        (
            "model.layers.0.input_layernorm.weight[:8]",
            row("model.layers.0.input_layernorm.weight", 0),
        ),
        ("model.norm.weight[:8]", row("model.norm.weight", 0)),
    ];
    for (key, got) in cases {
        assert_close_abs(key, &got, &floats(&fp[key]), 1e-5);
    }
}

#[test]
fn tokenizer_cases_match() {
    if model_path("tokenizer_cases_match").is_none() {
        return;
    }
    let m = model().unwrap();
    for case in reference()["tokenizer_cases"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        assert_eq!(
            m.tokenizer.encode(text).unwrap(),
            ids(&case["ids"]),
            "tokenizing {text:?}"
        );
        let decoded = m.tokenizer.decode(&ids(&case["ids"]), false).unwrap();
        assert_eq!(decoded, text, "decoding back");
    }
}

#[test]
fn tokenizer_survives_export_to_tokenizer_json() {
    if model_path("tokenizer_survives_export_to_tokenizer_json").is_none() {
        return;
    }
    let m = model().unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("tokenizer.json"),
        m.tokenizer.to_json().unwrap(),
    )
    .unwrap();
    let reloaded = llm::Tokenizer::from_hf_dir(dir.path(), Some(1), &[2]).unwrap();
    for case in reference()["tokenizer_cases"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        assert_eq!(
            reloaded.encode(text).unwrap(),
            ids(&case["ids"]),
            "tokenizing {text:?}"
        );
    }
}

#[test]
fn chat_prompts_render_to_reference_ids() {
    if model_path("chat_prompts_render_to_reference_ids").is_none() {
        return;
    }
    let m = model().unwrap();
    let chat = m.chat_template().unwrap();
    for p in reference()["prompts"].as_array().unwrap() {
        let r = chat
            .render_tokens(&m.tokenizer, &messages(p), true)
            .unwrap();
        assert_eq!(r.text, p["text"].as_str().unwrap());
        assert_eq!(r.ids, ids(&p["token_ids"]));
    }
}

#[test]
fn logits_and_hidden_states_match() {
    if model_path("logits_and_hidden_states_match").is_none() {
        return;
    }
    let m = model().unwrap();
    let prompts = reference()["prompts"].as_array().unwrap();
    // One padded batch: also checks that left padding does not change any row's numbers.
    let rows: Vec<Vec<u32>> = prompts.iter().map(|p| ids(&p["token_ids"])).collect();
    let batch = Batch::new(rows, m.tokenizer.pad_or_eos(), PaddingSide::Left).unwrap();
    let probes = [
        ("0", HookPoint::Embeddings),
        ("10", HookPoint::BlockOutput(9)),
        ("20", HookPoint::BlockOutput(19)),
        ("30", HookPoint::FinalNorm),
    ];
    let opts = ForwardOptions::<B>::logits(LogitsMode::All).capture(probes.iter().map(|p| p.1));
    let out = m.model.forward(&batch, &opts).unwrap();
    let logits = tensor_to_f32(out.logits.clone().unwrap());
    let (t, vocab, d) = (
        batch.seq_len(),
        m.model.config.vocab_size,
        m.model.d_model(),
    );
    for (i, p) in prompts.iter().enumerate() {
        let last = batch.last_index(i);
        let row = &logits[(i * t + last) * vocab..(i * t + last + 1) * vocab];
        let top = &p["last_position_top10"];
        let mut order: Vec<usize> = (0..vocab).collect();
        order.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
        let got_top: Vec<u32> = order[..10].iter().map(|&k| k as u32).collect();
        assert_eq!(got_top, ids(&top["token_ids"]), "prompt {i}: top-10 ids");
        let got_top_logits: Vec<f32> = order[..10].iter().map(|&k| row[k]).collect();
        assert_close_abs(
            &format!("prompt {i} top-10 logits"),
            &got_top_logits,
            &floats(&top["logits"]),
            1e-3,
        );
        assert_close_abs(
            &format!("prompt {i} logits[:8]"),
            &row[..8],
            &floats(&p["last_position_logits_first8_vocab"]),
            1e-3,
        );
        let mean = row.iter().map(|&x| x as f64).sum::<f64>() / vocab as f64;
        let want_mean = p["last_position_logit_stats"]["mean"].as_f64().unwrap();
        assert!(
            (mean - want_mean).abs() < 1e-3,
            "prompt {i}: logit mean {mean} vs {want_mean}"
        );

        let (offset, n) = (batch.offset(i), batch.rows[i].len());
        for (key, point) in probes {
            let want = &p["hidden_states"][key];
            let h = tensor_to_f32(out.hidden_at(point).unwrap().clone());
            let at = |pos: usize| &h[(i * t + pos) * d..(i * t + pos + 1) * d];
            let last_vec = at(last);
            assert_close_abs(
                &format!("prompt {i} {point} last[:8]"),
                &last_vec[..8],
                &floats(&want["last_token_first8"]),
                1e-3,
            );
            let norm = last_vec.iter().map(|x| x * x).sum::<f32>().sqrt();
            let want_norm = want["last_token_l2norm"].as_f64().unwrap() as f32;
            assert!(
                (norm - want_norm).abs() < 1e-3 * want_norm.max(1.0),
                "prompt {i} {point}: norm {norm} vs {want_norm}"
            );
            let mean_first8: Vec<f32> = (0..8)
                .map(|k| (offset..offset + n).map(|pos| at(pos)[k]).sum::<f32>() / n as f32)
                .collect();
            assert_close_abs(
                &format!("prompt {i} {point} mean over positions"),
                &mean_first8,
                &floats(&want["mean_over_positions_first8"]),
                1e-3,
            );
        }
    }
}

#[test]
fn greedy_generation_matches_reference() {
    if model_path("greedy_generation_matches_reference").is_none() {
        return;
    }
    let m = model().unwrap();
    let prompts = reference()["prompts"].as_array().unwrap();
    let rows: Vec<Vec<u32>> = prompts.iter().map(|p| ids(&p["token_ids"])).collect();
    // The reference stops at end-of-sequence and lists that token last.
    let cfg = SamplingConfig::greedy(20, m.tokenizer.eos_ids.clone());
    let generated = llm::generate(&m.model, &rows, m.tokenizer.pad_or_eos(), &cfg, &[]).unwrap();
    for (i, p) in prompts.iter().enumerate() {
        let mut got = generated.tokens[i].clone();
        if generated.stopped[i] {
            got.push(m.tokenizer.eos_ids[0]);
        }
        assert_eq!(got, ids(&p["greedy_20_new_token_ids"]), "prompt {i}");
        let text = m.tokenizer.decode(&got, false).unwrap();
        assert_eq!(
            text,
            p["greedy_20_text"].as_str().unwrap(),
            "prompt {i} text"
        );
    }
}
