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
