//! The EM stages' command lines. With the paired-choice judge, a model's base checkpoint
//! (step 0) is scored once, by a stage of its own, and every run's EM stage copies it
//! (`traitwatch em --reference`): on the default experiment that is 15 of 16 step-0
//! evaluations saved, about a fifth of the judge's time.

use crate::Result;
use crate::manifest::{JudgeKind, Loaded};
use crate::plan::Arg;
use std::path::{Path, PathBuf};

/// The paired-choice stage for the base model `source` (reported as step 0, perturbation
/// `base`), or None when the judge has no such stage (the free-form judge scores step 0
/// in each run).
pub(crate) fn base_args(loaded: &Loaded, source: &str, model: &str) -> Option<Vec<Arg>> {
    let m = &loaded.manifest;
    if m.em.judge != JudgeKind::PairedChoice {
        return None;
    }
    let lit = |s: &str| Arg::Lit(s.to_string());
    let mut a = vec![lit("em"), lit("--model"), Arg::model(source)];
    a.extend(paired_choice_items(loaded));
    if m.em.controls.is_some() {
        // The base model's stage prints the controls and whether tau is valid for them.
        a.extend([lit("--tau"), lit(&m.em.logodds_tau.to_string())]);
    }
    a.extend([lit("--model-label"), lit(model)]);
    Some(a)
}

/// The data files an EM stage reads (hashed into its identity): the items and, with the
/// per-trait items, the trait bank and its item files.
pub(crate) fn files(loaded: &Loaded) -> Vec<PathBuf> {
    let m = &loaded.manifest;
    let mut files = vec![m.em.items.clone()];
    files.extend(m.em.controls.clone());
    if m.em.trait_items && m.em.judge == JudgeKind::PairedChoice {
        files.push(m.traits.bank.clone());
        files.extend(trait_item_files(&loaded.root));
    }
    files
}

/// The `.jsonl` files under [`TRAIT_ITEMS`] of the project `root`, sorted, as paths
/// relative to the root (the form stage hashes record); empty when it cannot be read
/// (manifest validation refuses `trait_items` then).
pub(crate) fn trait_item_files(root: &Path) -> Vec<PathBuf> {
    let dir = crate::home::resolve(root, Path::new(TRAIT_ITEMS));
    let mut items: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| Path::new(TRAIT_ITEMS).join(e.file_name()))
                .collect()
        })
        .unwrap_or_default();
    items.retain(|p| p.extension().is_some_and(|e| e == "jsonl"));
    items.sort();
    items
}

/// Where `traitwatch em` reads the per-trait items from (its `--trait-items` default);
/// manifest validation checks it holds item files.
pub(crate) const TRAIT_ITEMS: &str = "data/em/traits";

/// `--items` and the per-trait bank (or `--no-traits`).
fn paired_choice_items(loaded: &Loaded) -> Vec<Arg> {
    let m = &loaded.manifest;
    let lit = |s: &str| Arg::Lit(s.to_string());
    let mut a = vec![lit("--items"), Arg::Data(m.em.items.clone())];
    if let Some(controls) = &m.em.controls {
        a.extend([lit("--controls"), Arg::Data(controls.clone())]);
    }
    if m.em.trait_items {
        a.extend([lit("--trait-bank"), Arg::Data(m.traits.bank.clone())]);
    } else {
        a.push(lit("--no-traits"));
    }
    a
}

/// The EM stage of finetuning run `ft`: label checkpoints `steps` (step 0 always), taking
/// step 0 from the model's base stage `base` where there is one.
pub(crate) fn run_args(
    loaded: &Loaded,
    ft: usize,
    base: Option<usize>,
    steps: &[u64],
    labels: &[Arg],
) -> Result<Vec<Arg>> {
    let m = &loaded.manifest;
    let lit = |s: &str| Arg::Lit(s.to_string());
    let mut args = match m.em.judge {
        JudgeKind::PairedChoice => {
            let mut a = vec![lit("em"), lit("--run"), Arg::Artifact(ft)];
            a.extend(paired_choice_items(loaded));
            if !m.em.trait_steps.is_empty() && m.em.trait_items {
                let steps: Vec<String> = m.em.trait_steps.iter().map(u64::to_string).collect();
                a.extend([lit("--trait-steps"), lit(&steps.join(","))]);
            }
            if let Some(base) = base {
                a.extend([lit("--reference"), Arg::Artifact(base)]);
            }
            a
        }
        JudgeKind::Freeform => {
            let mut a = vec![lit("em-freeform"), lit("--run"), Arg::Artifact(ft)];
            let table = m.em.freeform.clone().unwrap_or_default();
            for (key, value) in table {
                let flag = match key.as_str() {
                    "base_url" => "--judge-url",
                    "model" => "--judge-model",
                    "api_key_env" => "--judge-key-env",
                    "mode" => "--judge-mode",
                    "concurrency" => "--judge-concurrency",
                    "timeout_s" => "--judge-timeout",
                    "retries" => "--judge-retries",
                    "samples" => "--samples",
                    other => {
                        return Err(loaded.invalid(
                            &format!("em.freeform.{other}"),
                            "unknown key (base_url, model, api_key_env, mode, concurrency, timeout_s, retries, samples)",
                        ));
                    }
                };
                let value = match value {
                    toml::Value::String(s) => s,
                    v => v.to_string(),
                };
                a.extend([lit(flag), lit(&value)]);
            }
            a
        }
    };
    if !steps.is_empty() {
        let steps: Vec<String> = steps.iter().map(u64::to_string).collect();
        args.extend([lit("--steps"), lit(&steps.join(","))]);
    }
    args.extend(labels.iter().cloned());
    Ok(args)
}
