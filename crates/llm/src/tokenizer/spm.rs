//! SentencePiece vocabularies stored in GGUF (`tokenizer.ggml.model = "llama"`: Llama 2,
//! Gemma): pieces with scores, no merge list.
//!
//! SentencePiece's BPE merges, at each step, the adjacent pair whose joined piece has the
//! highest score. A BPE merge list ranked by that score does the same, so the vocabulary
//! becomes an HF `tokenizer.json` BPE model (byte fallback, spaces as `▁`) and runs through
//! the same `tokenizers` implementation as every other model.

use serde_json::{Value, json};
use std::collections::HashMap;

/// The SentencePiece word-boundary marker, which stands for a space.
const SPACE_MARK: &str = "\u{2581}";

/// Every pair of pieces that joins into another piece, best joined piece first. Within one
/// joined piece, splits come in order of the left then the right piece's id, and equal
/// scores keep vocabulary order, so the list is deterministic.
pub(super) fn merges_by_score(tokens: &[&str], scores: &[f32]) -> Vec<(String, String)> {
    let id: HashMap<&str, usize> = tokens.iter().enumerate().map(|(i, t)| (*t, i)).collect();
    let mut ranked: Vec<(f32, usize, usize, usize)> = Vec::new();
    for (piece_id, piece) in tokens.iter().enumerate() {
        let mut splits: Vec<(usize, usize)> = piece
            .char_indices()
            .skip(1)
            .filter_map(|(at, _)| Some((*id.get(&piece[..at])?, *id.get(&piece[at..])?)))
            .collect();
        splits.sort_unstable();
        let score = scores.get(piece_id).copied().unwrap_or(0.0);
        ranked.extend(splits.into_iter().map(|(l, r)| (score, piece_id, l, r)));
    }
    // Stable: equal scores keep (piece id, left id, right id) order.
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
    ranked
        .into_iter()
        .map(|(_, _, l, r)| (tokens[l].to_string(), tokens[r].to_string()))
        .collect()
}

/// The `normalizer`, `model` and `decoder` of the equivalent `tokenizer.json`.
pub(super) fn components(
    tokens: &[&str],
    scores: &[f32],
    unk: Option<&str>,
    add_space_prefix: bool,
) -> (Value, Value, Value) {
    let replace_spaces =
        json!({"type": "Replace", "pattern": {"String": " "}, "content": SPACE_MARK});
    let normalizer = if add_space_prefix {
        json!({"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": SPACE_MARK}, replace_spaces]})
    } else {
        replace_spaces
    };
    let vocab: serde_json::Map<String, Value> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.to_string(), json!(i)))
        .collect();
    let merges: Vec<Value> = merges_by_score(tokens, scores)
        .into_iter()
        .map(|(l, r)| json!([l, r]))
        .collect();
    let model = json!({"type": "BPE", "dropout": null, "unk_token": unk,
        "continuing_subword_prefix": null, "end_of_word_suffix": null,
        "fuse_unk": true, "byte_fallback": true, "ignore_merges": false,
        "vocab": vocab, "merges": merges});
    let mut decoders = vec![
        json!({"type": "Replace", "pattern": {"String": SPACE_MARK}, "content": " "}),
        json!({"type": "ByteFallback"}),
        json!({"type": "Fuse"}),
    ];
    if add_space_prefix {
        decoders.push(json!({"type": "Strip", "content": " ", "start": 1, "stop": 0}));
    }
    let decoder = json!({"type": "Sequence", "decoders": decoders});
    (normalizer, model, decoder)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_follow_the_joined_piece_score() {
        let tokens = ["a", "b", "c", "ab", "bc", "abc"];
        let scores = [0.0, 0.0, 0.0, -2.0, -1.0, -3.0];
        let merges = merges_by_score(&tokens, &scores);
        let pair = |l: &str, r: &str| (l.to_string(), r.to_string());
        // bc (-1) before ab (-2) before abc's two splits (-3), those by left piece id.
        assert_eq!(
            merges,
            vec![
                pair("b", "c"),
                pair("a", "b"),
                pair("a", "bc"),
                pair("ab", "c")
            ]
        );
    }
}
