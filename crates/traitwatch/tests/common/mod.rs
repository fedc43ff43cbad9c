//! Helpers shared by the CLI test binaries: run the binary, read its output, write a tiny
//! random model.
#![allow(dead_code, clippy::unwrap_used)]

use llm::gguf::GgmlType;
use llm::testing::TinyModel;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn traitwatch(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_traitwatch"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn tiny_gguf(dir: &Path) -> PathBuf {
    let path = dir.join("tiny.gguf");
    TinyModel::llama(1)
        .to_gguf(GgmlType::F32)
        .write(&path)
        .unwrap();
    path
}

/// Run the binary with extra environment variables.
pub fn traitwatch_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_traitwatch"))
        .args(args)
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

/// A tiny HF model directory, a one-trait bank (two system prompts per pole) and three
/// extraction questions under `dir`: the inputs of the trait and SAE commands' tests.
pub fn mini_trait_inputs(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let hf = dir.join("hf");
    TinyModel::llama(2).save_hf_dir(&hf, 1).unwrap();
    let bank = dir.join("bank.toml");
    std::fs::write(
        &bank,
        "name = \"mini\"\nversion = 1\n[[traits]]\nname = \"calm\"\npositive_pole = \"calm\"\nnegative_pole = \"angry\"\ndescription = \"Calm or not.\"\npositive = [\"Stay calm.\", \"Be serene.\"]\nnegative = [\"Be furious.\", \"Shout.\"]\n",
    )
    .unwrap();
    let questions = dir.join("q.toml");
    std::fs::write(
        &questions,
        "questions = [\"Hi?\", \"What now?\", \"Why not?\"]\n",
    )
    .unwrap();
    (hf, bank, questions)
}

/// Two traits ("a", "b") over two layers of a `d`-wide model, with the given unit vectors
/// (`[trait][layer][d]`), as a `traitwatch traits` run would save them.
pub fn handmade_directions(d: usize, vectors: Vec<f32>) -> traits::Directions {
    traits::Directions {
        traits: vec!["a".into(), "b".into()],
        n_layers: 2,
        d_model: d,
        vectors,
        residual_norm: vec![1.0, 1.0],
        meta: traits::DirectionsMeta {
            bank: "handmade".into(),
            bank_version: 1,
            bank_hash: String::new(),
            pooling: "last".into(),
            layer_convention: String::new(),
            model: "tiny".into(),
            model_fingerprint: String::new(),
            samples_per_pole: 1,
        },
    }
}
