//! On the installed default model (SmolLM2-135M-Instruct): the seven alignment directions
//! separate held-out positive from negative prompts.
//!
//! A reduced extraction keeps this inside CI's time: all five system prompts per pole, ten
//! of the thirty questions, one layer. Two hold-outs, 5 folds each: questions only (the
//! paper's check), and questions and system prompts together (strict: every score comes from
//! a direction that saw neither that question nor that wording of the trait instruction).
//! The per-trait AUROCs are printed, so a trait that separates poorly is reported, not
//! hidden. On this 135M model the strict separation is weak (mean about 0.63): much of what
//! a direction picks up at the last prompt token is the wording of the prompts it was
//! extracted from. The thresholds pin what the model does, with a margin. The full bank's numbers (`traitwatch traits`,
//! all 30 questions and 5 prompts per pole) are in docs/BENCHMARKS.md.
//!
//! Needs `just setup`; without the model it prints SKIPPED and passes, except under
//! `CI=true`, where a missing model fails.

#![allow(clippy::unwrap_used)]

use burn::backend::Flex;
use llm::loader;
use std::path::Path;
use traits::bank::{TraitBank, load_questions};
use traits::collect::{CollectOptions, Pooling, collect};
use traits::extract::extraction_samples;
use traits::validate::{HoldOut, heldout_auroc};

type B = Flex;

/// Where the held-out separation of the full bank peaks on this model (docs/BENCHMARKS.md;
/// the steering search picks 14, next to it).
const LAYER: usize = 15;
const QUESTIONS: usize = 10;
const FOLDS: usize = 5;

#[test]
fn alignment_directions_separate_held_out_prompts_on_the_default_model() {
    let Some(path) = llm::testing::default_model_or_skip(
        "alignment_directions_separate_held_out_prompts_on_the_default_model",
    ) else {
        return;
    };
    let lm =
        loader::load_location::<B>(loader::ModelLocation::Gguf(path), &Default::default()).unwrap();
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/traits");
    let bank = TraitBank::load(&data.join("alignment.toml")).unwrap();
    let mut questions = load_questions(&data.join("extraction_questions.toml")).unwrap();
    questions.truncate(QUESTIONS);
    let (samples, conversations) = extraction_samples(&bank, &questions);
    let opts = CollectOptions {
        layers: vec![LAYER],
        pooling: Pooling::LastPromptToken,
        batch_size: 16,
        steering: None,
    };
    let pooled = collect(&lm, &conversations, &opts, None).unwrap();

    let auroc = |t, hold_out| heldout_auroc(&pooled, &samples, t, 0, FOLDS, hold_out);
    let names = bank.trait_names();
    let questions: Vec<f64> = (0..names.len())
        .map(|t| auroc(t, HoldOut::Questions))
        .collect();
    let strict: Vec<f64> = (0..names.len())
        .map(|t| auroc(t, HoldOut::QuestionsAndPrompts))
        .collect();
    eprintln!("held-out AUROC at layer {LAYER}: trait, questions held out, questions and prompts");
    for (t, name) in names.iter().enumerate() {
        eprintln!("  {name:<14} {:.3} {:.3}", questions[t], strict[t]);
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    eprintln!(
        "  {:<14} {:.3} {:.3}",
        "mean",
        mean(&questions),
        mean(&strict)
    );
    assert!(
        mean(&questions) > 0.85,
        "mean AUROC, questions held out: {questions:?}"
    );
    assert!(
        mean(&strict) > 0.58,
        "mean AUROC, prompts held out too: {strict:?}"
    );
    for (t, name) in names.iter().enumerate() {
        assert!(
            questions[t] > 0.8 && strict[t] > 0.45,
            "{name} does not separate held-out prompts: {:.3} / {:.3}",
            questions[t],
            strict[t]
        );
    }
}
