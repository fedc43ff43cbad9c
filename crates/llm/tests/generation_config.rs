//! `generation_config.json` stop tokens: chat models such as Gemma 2 list their
//! end-of-turn token only there, and generation must stop on it.
#![allow(clippy::unwrap_used)]

use burn::backend::Flex;
use llm::SamplingConfig;
use llm::loader::{ModelLocation, load_location};
use llm::testing::TinyModel;
use std::path::Path;

type B = Flex;

fn greedy_tokens(dir: &Path, prompt: &[u32], max_new: usize) -> (Vec<u32>, Vec<u32>) {
    let lm =
        load_location::<B>(ModelLocation::HfDir(dir.to_path_buf()), &Default::default()).unwrap();
    let cfg = SamplingConfig::greedy(max_new, lm.tokenizer.eos_ids.clone());
    let out = llm::generate(&lm.model, &[prompt.to_vec()], 0, &cfg, &[]).unwrap();
    (out.tokens[0].clone(), lm.tokenizer.eos_ids.clone())
}

/// Save `tiny`, generate greedily, then name the token generated at position `k` (the first
/// new token from position 1 on, else position 0) as an extra stop token in
/// `generation_config.json`: generation must end right there.
fn check_stop_token(tiny: &TinyModel) {
    let dir = tempfile::tempdir().unwrap();
    tiny.save_hf_dir(dir.path(), 1).unwrap();
    let prompt = [2u32, 40, 41, 42, 43];
    let (free, eos) = greedy_tokens(dir.path(), &prompt, 8);
    assert_eq!(
        free.len(),
        8,
        "without the stop token the answer runs to the limit"
    );
    assert_eq!(
        eos.len(),
        1,
        "without generation_config.json: config.json's EOS only"
    );
    let k = (1..free.len())
        .find(|&k| !free[..k].contains(&free[k]))
        .unwrap_or(0);
    let (config_eos, end_of_turn) = (eos[0], free[k]);
    std::fs::write(
        dir.path().join("generation_config.json"),
        format!(r#"{{"eos_token_id": [{config_eos}, {end_of_turn}], "do_sample": false}}"#),
    )
    .unwrap();
    let (stopped, eos) = greedy_tokens(dir.path(), &prompt, 8);
    assert!(
        eos.contains(&config_eos) && eos.contains(&end_of_turn),
        "{eos:?}"
    );
    assert_eq!(
        stopped,
        free[..k],
        "generation ends at the end-of-turn token"
    );
}

#[test]
fn generation_config_stop_tokens_end_generation() {
    // Gemma style: the end-of-turn token is listed only in generation_config.json. (A tiny
    // random Gemma with tied, scaled embeddings repeats the prompt's last token, so here it
    // stops at once instead of running to the limit.)
    check_stop_token(&TinyModel::gemma3(11));
    // And after a few tokens, on a model whose greedy output varies.
    check_stop_token(&TinyModel::llama(11));
}

#[test]
fn a_single_id_and_a_missing_key_both_load() {
    let dir = tempfile::tempdir().unwrap();
    TinyModel::gemma2(12).save_hf_dir(dir.path(), 1).unwrap();
    let path = dir.path().join("generation_config.json");
    std::fs::write(&path, r#"{"eos_token_id": 7}"#).unwrap();
    assert_eq!(
        llm::loader::generation_stop_ids(dir.path()).unwrap(),
        vec![7]
    );
    std::fs::write(&path, r#"{"temperature": 0.7}"#).unwrap();
    assert!(
        llm::loader::generation_stop_ids(dir.path())
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_bad_generation_config_names_the_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    TinyModel::gemma2(13).save_hf_dir(dir.path(), 1).unwrap();
    std::fs::write(
        dir.path().join("generation_config.json"),
        r#"{"eos_token_id": ["<end_of_turn>"]}"#,
    )
    .unwrap();
    let err = llm::loader::generation_stop_ids(dir.path())
        .unwrap_err()
        .to_string();
    assert!(err.contains("generation_config.json"), "{err}");
    assert!(err.contains("eos_token_id"), "{err}");
}
