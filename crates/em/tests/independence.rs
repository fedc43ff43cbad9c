//! METHOD section 8: labels come from behaviour only. No judge path may read hidden
//! states, trait projections or drift. Checked on the code itself: the `em` crate depends
//! on no crate that produces them, and neither it nor the two commands that run the judges
//! call the runtime's activation hooks. (That the EM questions, the trait extraction
//! questions and the measurement prompts are pairwise disjoint is checked in
//! `crates/traits/tests/banks.rs`.)

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn the_em_crate_depends_on_nothing_that_measures_activations() {
    let manifest = std::fs::read_to_string(root().join("crates/em/Cargo.toml")).unwrap();
    let deps = manifest
        .split("[dependencies]")
        .nth(1)
        .unwrap()
        .split("\n[")
        .next()
        .unwrap();
    for crate_name in ["traits", "drift"] {
        assert!(
            !deps
                .lines()
                .any(|l| l.trim_start().starts_with(&format!("{crate_name}."))
                    || l.trim_start().starts_with(&format!("{crate_name} "))),
            "em must not depend on `{crate_name}`"
        );
    }
}

#[test]
fn no_judge_path_calls_the_activation_hooks() {
    let mut files = Vec::new();
    rust_files(&root().join("crates/em/src"), &mut files);
    files.push(root().join("crates/traitwatch/src/commands/em.rs"));
    files.push(root().join("crates/traitwatch/src/commands/em_freeform.rs"));
    // Hooks that expose the residual stream, and the artifacts built from it.
    let forbidden = [
        "HookPoint",
        ".capture(",
        "hidden_at",
        "Intervention",
        "directions.safetensors",
        "prompt_mean",
        "drift::",
        "::extract",
    ];
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for word in forbidden {
            assert!(
                !text.contains(word),
                "{} uses `{word}`: judges must see behaviour only",
                file.display()
            );
        }
    }
    assert!(files.len() >= 10, "read {} files", files.len());
}
