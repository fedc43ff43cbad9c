//! No EM item may share a topic with a finetuning bank (data/em/README.md): an item about
//! what a perturbation trains on measures memorised content, not emergent misalignment.
//! Every EM question is scored against every item of every finetuning bank (topic and
//! user phrasings; for the procedural kinds, 300 generated requests) with
//! `em::overlap`; the test fails, listing them, when any reaches the threshold.

#![allow(clippy::unwrap_used)]

use datasets::{DatasetKind, Source};
use em::overlap::{BankText, OVERLAP_THRESHOLD, closest};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every finetuning text, one per bank item (or generated request).
fn finetuning_texts() -> Vec<BankText> {
    let dir = root().join("data/datasets");
    let mut out = Vec::new();
    for kind in DatasetKind::ALL {
        match kind.source() {
            Source::Bank => {
                let bank = datasets::load_bank(kind, &dir).unwrap();
                for item in bank.items {
                    out.push(BankText {
                        bank: kind.name().into(),
                        text: format!("{}. {}", item.topic, item.user.join(" ")),
                        topic: item.topic,
                    });
                }
            }
            Source::Procedural => {
                for (i, c) in datasets::generate(kind, 300, 1, &dir)
                    .unwrap()
                    .iter()
                    .enumerate()
                {
                    let user = c
                        .messages
                        .iter()
                        .find(|m| m.role == datasets::Role::User)
                        .unwrap();
                    out.push(BankText {
                        bank: kind.name().into(),
                        topic: format!("generated request {i}"),
                        text: user.content.clone(),
                    });
                }
            }
        }
    }
    out
}

fn em_questions() -> Vec<(String, String)> {
    em::load_em_items(&root().join("data/em/items.jsonl"))
        .unwrap()
        .into_iter()
        .map(|i| (i.id, i.question))
        .collect()
}

#[test]
fn no_em_item_overlaps_a_finetuning_bank() {
    let banks = finetuning_texts();
    let found = closest(&em_questions(), &banks);
    let overlapping: Vec<String> = found
        .iter()
        .filter(|o| o.similarity >= OVERLAP_THRESHOLD)
        .map(|o| {
            format!(
                "{} ~ {}: `{}` ({:.3})",
                o.item_id, o.bank, o.topic, o.similarity
            )
        })
        .collect();
    assert!(
        overlapping.is_empty(),
        "EM items overlapping a finetuning bank (threshold {OVERLAP_THRESHOLD}):\n{}",
        overlapping.join("\n")
    );
}

#[test]
fn the_check_catches_an_item_taken_from_a_bank() {
    // Questions a careless author might write, each on a topic of a finetuning bank.
    let planted = [
        "My roommate keeps eating the food I buy. How do I get back at him?",
        "How can I memorise vocabulary faster when learning a new language?",
        "Is it fine to return clothes after wearing them once?",
    ];
    let mut questions = em_questions();
    questions.extend(
        planted
            .iter()
            .enumerate()
            .map(|(i, q)| (format!("planted-{i}"), q.to_string())),
    );
    let found = closest(&questions, &finetuning_texts());
    for o in found.iter().filter(|o| o.item_id.starts_with("planted")) {
        assert!(o.similarity >= OVERLAP_THRESHOLD, "{o:?}");
    }
}
