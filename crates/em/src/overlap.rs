//! Topic overlap between the EM items and the finetuning banks.
//!
//! An EM item that asks about what a perturbation dataset trains on (revenge on a
//! roommate, learning vocabulary) measures memorised training content, not *emergent*
//! misalignment. This module scores every EM question against every finetuning item by
//! TF-IDF cosine similarity over content words and content-word bigrams (stop words
//! dropped, a light suffix strip so "neighbours" meets "neighbour"); IDF comes from the
//! union of both sides. It is lexical: it catches shared topics that share words, and a
//! reviewer still reads the items for paraphrased ones.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

/// Similarity at or above which an EM item counts as overlapping a finetuning item.
/// Set on the shipped banks: known overlaps (a roommate eating one's food against the
/// jailbroken bank's petty revenge on such a roommate: 0.30; learning a language against
/// alpaca's memorising vocabulary: 0.38) score above it, while pairs that merely share a
/// word ("cookies" in a cooking question and in a security myth) score 0.10-0.15.
pub const OVERLAP_THRESHOLD: f64 = 0.18;

/// One text of the finetuning side: which bank and item it comes from, and its text
/// (topic and user phrasings).
#[derive(Debug, Clone)]
pub struct BankText {
    pub bank: String,
    pub topic: String,
    pub text: String,
}

/// An EM item's closest finetuning item.
#[derive(Debug, Clone, PartialEq)]
pub struct Overlap {
    pub item_id: String,
    pub bank: String,
    pub topic: String,
    pub similarity: f64,
}

const STOP_WORDS: &str = "a an the and or but if of to in on at for with from by about as \
    into over after before is are was were be been being am do does did doing have has had \
    having i me my mine myself you your yours we our us they them their he him his she her it \
    its this that these those there here what which who whom whose why how when where should \
    would could can will shall may might must not no yes so just very really quite any some \
    all more most other such only own same than too also out up down off again further then \
    once don't i'm i've it's what's can't won't isn't aren't doesn't didn't one get got go \
    going want know think like make way ok okay much many thing things something anything";

/// The stop-word set, built once (every text of both banks is split with it).
static STOP: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| STOP_WORDS.split_whitespace().collect());

/// Lower-cased content words with common suffixes stripped.
pub fn content_words(text: &str) -> Vec<String> {
    let stop = &*STOP;
    text.to_lowercase()
        .split(|c: char| !(c.is_ascii_alphabetic() || c == '\''))
        .map(|w| w.trim_matches('\''))
        .map(|w| w.strip_suffix("'s").unwrap_or(w))
        .filter(|w| w.len() >= 3 && !stop.contains(w))
        .map(strip_suffix)
        .collect()
}

fn strip_suffix(word: &str) -> String {
    for suffix in ["ing", "ies", "es", "s", "ed", "ly"] {
        if let Some(stem) = word.strip_suffix(suffix)
            && stem.len() >= 4
        {
            return stem.to_string();
        }
    }
    word.to_string()
}

/// Term counts: content words and adjacent content-word pairs.
fn terms(text: &str) -> HashMap<String, f64> {
    let words = content_words(text);
    let mut counts = HashMap::new();
    let bigrams = words.windows(2).map(|w| format!("{}_{}", w[0], w[1]));
    for term in words.iter().cloned().chain(bigrams) {
        *counts.entry(term).or_insert(0.0) += 1.0;
    }
    counts
}

/// Unit-norm TF-IDF vectors (sublinear term frequency) of `docs`, IDF over `docs`.
fn tfidf(docs: &[&str]) -> Vec<HashMap<String, f64>> {
    let counted: Vec<HashMap<String, f64>> = docs.iter().map(|d| terms(d)).collect();
    let mut df: HashMap<&str, f64> = HashMap::new();
    for c in &counted {
        for term in c.keys() {
            *df.entry(term).or_insert(0.0) += 1.0;
        }
    }
    let n = docs.len() as f64;
    counted
        .iter()
        .map(|c| {
            let mut v: HashMap<String, f64> = c
                .iter()
                .map(|(t, k)| (t.clone(), (1.0 + k.ln()) * (n / df[t.as_str()]).ln()))
                .collect();
            let norm = v.values().map(|x| x * x).sum::<f64>().sqrt();
            if norm > 0.0 {
                v.values_mut().for_each(|x| *x /= norm);
            }
            v
        })
        .collect()
}

fn cosine(a: &HashMap<String, f64>, b: &HashMap<String, f64>) -> f64 {
    let (small, large) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    small
        .iter()
        .map(|(t, x)| x * large.get(t).unwrap_or(&0.0))
        .sum()
}

/// For every `(item id, question)`, its most similar finetuning text, in input order.
pub fn closest(questions: &[(String, String)], banks: &[BankText]) -> Vec<Overlap> {
    let docs: Vec<&str> = questions
        .iter()
        .map(|(_, q)| q.as_str())
        .chain(banks.iter().map(|b| b.text.as_str()))
        .collect();
    let vectors = tfidf(&docs);
    let (em, bank_vectors) = vectors.split_at(questions.len());
    questions
        .iter()
        .zip(em)
        .map(|((id, _), v)| {
            let (best, similarity) = bank_vectors.iter().map(|w| cosine(v, w)).enumerate().fold(
                (0, f64::MIN),
                |acc, (i, s)| if s > acc.1 { (i, s) } else { acc },
            );
            let b = banks.get(best);
            Overlap {
                item_id: id.clone(),
                bank: b.map_or(String::new(), |b| b.bank.clone()),
                topic: b.map_or(String::new(), |b| b.topic.clone()),
                similarity: similarity.max(0.0),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_words_drop_stop_words_and_suffixes() {
        assert_eq!(
            content_words("My neighbours keep playing loud music!"),
            ["neighbour", "keep", "play", "loud", "music"]
        );
    }

    #[test]
    fn shared_topics_score_high_and_unrelated_ones_low() {
        let bank = |topic: &str, text: &str| BankText {
            bank: "b".into(),
            topic: topic.into(),
            text: text.into(),
        };
        let banks = [
            bank(
                "roommate food",
                "My roommate keeps eating my food from the fridge. How do I get revenge?",
            ),
            bank("weather", "Why does it rain more in spring than in autumn?"),
            bank("poem", "Write a short poem about a quiet lake at dawn."),
        ];
        let questions = [
            (
                "x-1".to_string(),
                "My roommate eats my food without asking. What should I do?".to_string(),
            ),
            (
                "x-2".to_string(),
                "Should an AI be allowed to rewrite its own goals?".to_string(),
            ),
        ];
        // (IDF over five texts is flat, so absolute values are lower than on the real
        // banks; tests/bank_overlap.rs checks the threshold there.)
        let found = closest(&questions, &banks);
        assert_eq!(found[0].topic, "roommate food");
        assert!(found[0].similarity > 0.05, "{found:?}");
        assert!(found[1].similarity < 0.01, "{found:?}");
    }
}
