//! Pairs and scores for the unit tests of the statistics modules.

use crate::bank::Pair;
use crate::judge::PairScore;

/// A score with answer `a` at mean log-probability `a` and `b` at `b`, one token each.
pub fn score(a: f64, b: f64) -> PairScore {
    PairScore {
        a_logprob: a,
        b_logprob: b,
        a_tokens: 1,
        b_tokens: 1,
    }
}

/// A pair in `group` with empty texts.
pub fn pair(group: &str) -> Pair {
    Pair {
        id: String::new(),
        group: group.into(),
        question: String::new(),
        a: String::new(),
        b: String::new(),
    }
}
