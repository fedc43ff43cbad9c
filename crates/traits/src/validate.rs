//! Validation of extracted directions (METHOD section 2).
//!
//! - **Held-out separation** (the meaningful check): directions re-extracted without a
//!   fold of the data score the held-out fold's positive and negative prompts by
//!   projection; the AUROC pooled over folds says whether a direction separates the poles on
//!   data it never saw. [`HoldOut`] says what is folded out: the questions, or the questions
//!   and the system prompts together (the strict test: neither the wording of the trait
//!   instruction nor the question was seen).
//! - **Probe accuracy** (reference only; the paper notes it saturates because it can key on
//!   the prompt's identity): an L2-regularised logistic probe, 5-fold cross-validated.

use crate::collect::Pooled;
use crate::extract::{Sample, mean_difference};

/// AUROC of `pos` against `neg` by the Mann-Whitney statistic, ties counted one half.
/// `None` when either side is empty.
pub fn auroc(pos: &[f64], neg: &[f64]) -> Option<f64> {
    if pos.is_empty() || neg.is_empty() {
        return None;
    }
    // Rank all scores together (average ranks for ties), then U = R_pos - n_pos(n_pos+1)/2.
    let mut all: Vec<(f64, bool)> = pos
        .iter()
        .map(|&s| (s, true))
        .chain(neg.iter().map(|&s| (s, false)))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut rank_sum_pos = 0.0;
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j + 1 < all.len() && all[j + 1].0 == all[i].0 {
            j += 1;
        }
        let avg_rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum_pos += avg_rank * all[i..=j].iter().filter(|x| x.1).count() as f64;
        i = j + 1;
    }
    let (np, nn) = (pos.len() as f64, neg.len() as f64);
    Some((rank_sum_pos - np * (np + 1.0) / 2.0) / (np * nn))
}

/// What the held-out folds leave out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldOut {
    /// Questions: fold `f` holds the questions with `question_index % folds == f`.
    Questions,
    /// Questions and system prompts: fold `f` is tested on the samples whose question and
    /// prompt both fall in `f` and trained on those whose question and prompt both do not.
    QuestionsAndPrompts,
}

impl HoldOut {
    /// Whether `s` is in fold `fold`'s test set, and whether it may train that fold.
    fn split(self, s: &Sample, fold: usize, folds: usize) -> (bool, bool) {
        let q = s.question_index % folds == fold;
        match self {
            HoldOut::Questions => (q, !q),
            HoldOut::QuestionsAndPrompts => {
                let p = s.prompt_index % folds == fold;
                (q && p, !q && !p)
            }
        }
    }
}

/// Out-of-fold AUROC of trait `t`'s direction at captured layer index `k`, with `folds`
/// folds (at least 2) of what `hold_out` names. NaN when no fold can be scored.
pub fn heldout_auroc(
    pooled: &Pooled,
    samples: &[Sample],
    t: usize,
    k: usize,
    folds: usize,
    hold_out: HoldOut,
) -> f64 {
    let folds = folds.max(2);
    let (mut pos_scores, mut neg_scores) = (Vec::new(), Vec::new());
    for fold in 0..folds {
        let in_training = |s: &Sample| s.trait_index == t && hold_out.split(s, fold, folds).1;
        let Ok(dir) = mean_difference(pooled, samples, k, in_training) else {
            continue;
        };
        for (i, s) in samples.iter().enumerate() {
            if s.trait_index != t || !hold_out.split(s, fold, folds).0 {
                continue;
            }
            let score: f64 = pooled
                .get(i, k)
                .iter()
                .zip(&dir)
                .map(|(&x, w)| x as f64 * w)
                .sum();
            if s.positive {
                pos_scores.push(score);
            } else {
                neg_scores.push(score);
            }
        }
    }
    auroc(&pos_scores, &neg_scores).unwrap_or(f64::NAN)
}

/// 5-fold cross-validated accuracy of a logistic probe for trait `t` at captured layer
/// index `k`. Features are standardised with training-fold statistics; the probe is fit by
/// full-batch gradient descent (a fixed number of steps, so it is deterministic).
pub fn probe_accuracy(pooled: &Pooled, samples: &[Sample], t: usize, k: usize) -> f64 {
    const FOLDS: usize = 5;
    const STEPS: usize = 200;
    const LEARNING_RATE: f64 = 0.5;
    const L2: f64 = 1e-3;
    let rows: Vec<(usize, f64)> = samples
        .iter()
        .enumerate()
        .filter(|(_, s)| s.trait_index == t)
        .map(|(i, s)| (i, if s.positive { 1.0 } else { 0.0 }))
        .collect();
    let d = pooled.d_model;
    let (mut correct, mut total) = (0usize, 0usize);
    for fold in 0..FOLDS {
        let (train, test): (Vec<_>, Vec<_>) = rows
            .iter()
            .enumerate()
            .partition(|(j, _)| j % FOLDS != fold);
        if train.is_empty() || test.is_empty() {
            continue;
        }
        let n = train.len() as f64;
        let (mut mu, mut sd) = (vec![0f64; d], vec![0f64; d]);
        for (_, (i, _)) in &train {
            mu.iter_mut()
                .zip(pooled.get(*i, k))
                .for_each(|(m, &x)| *m += x as f64 / n);
        }
        for (_, (i, _)) in &train {
            sd.iter_mut()
                .zip(pooled.get(*i, k).iter().zip(&mu))
                .for_each(|(s, (&x, m))| *s += (x as f64 - m).powi(2) / n);
        }
        sd.iter_mut().for_each(|s| *s = s.sqrt().max(1e-8));
        let features = |i: usize| -> Vec<f64> {
            pooled
                .get(i, k)
                .iter()
                .zip(mu.iter().zip(&sd))
                .map(|(&x, (m, s))| (x as f64 - m) / s)
                .collect()
        };
        let x_train: Vec<(Vec<f64>, f64)> =
            train.iter().map(|(_, (i, y))| (features(*i), *y)).collect();
        let (mut w, mut b) = (vec![0f64; d], 0f64);
        for _ in 0..STEPS {
            let mut grad_w = vec![0f64; d];
            let mut grad_b = 0f64;
            for (x, y) in &x_train {
                let z: f64 = b + x.iter().zip(&w).map(|(a, c)| a * c).sum::<f64>();
                let err = 1.0 / (1.0 + (-z).exp()) - y;
                grad_w
                    .iter_mut()
                    .zip(x)
                    .for_each(|(g, a)| *g += err * a / n);
                grad_b += err / n;
            }
            w.iter_mut()
                .zip(&grad_w)
                .for_each(|(wi, g)| *wi -= LEARNING_RATE * (g + L2 * *wi));
            b -= LEARNING_RATE * grad_b;
        }
        for (_, (i, y)) in &test {
            let z: f64 = b + features(*i).iter().zip(&w).map(|(a, c)| a * c).sum::<f64>();
            correct += usize::from((z > 0.0) == (*y > 0.5));
            total += 1;
        }
    }
    if total == 0 {
        f64::NAN
    } else {
        correct as f64 / total as f64
    }
}

#[cfg(test)]
mod tests {
    use super::{HoldOut, auroc, heldout_auroc};
    use crate::collect::Pooled;
    use crate::extract::Sample;

    #[test]
    fn auroc_by_hand() {
        // Perfect separation, perfect inversion, and chance.
        assert_eq!(auroc(&[3.0, 4.0], &[1.0, 2.0]), Some(1.0));
        assert_eq!(auroc(&[1.0, 2.0], &[3.0, 4.0]), Some(0.0));
        // pos {1, 3}, neg {2}: pairs (1<2), (3>2) -> 1/2.
        assert_eq!(auroc(&[1.0, 3.0], &[2.0]), Some(0.5));
        // A tie counts one half: pos {2}, neg {2, 1} -> (0.5 + 1) / 2.
        assert_eq!(auroc(&[2.0], &[2.0, 1.0]), Some(0.75));
        assert_eq!(auroc(&[], &[1.0]), None);
    }

    /// One trait, 4 prompts per pole, 10 questions, d = 9: prompt `p` of the positive pole
    /// sits on axis `p`, of the negative pole on axis `4 + p`, plus `trait_axis` times +-1
    /// on axis 8.
    fn prompt_identity_data(trait_axis: f32) -> (Pooled, Vec<Sample>) {
        let (d, mut values, mut samples) = (9, Vec::new(), Vec::new());
        for positive in [true, false] {
            for prompt_index in 0..4 {
                for question_index in 0..10 {
                    let mut v = vec![0f32; d];
                    v[prompt_index + if positive { 0 } else { 4 }] = 1.0;
                    v[8] = if positive { trait_axis } else { -trait_axis };
                    values.extend(v);
                    samples.push(Sample {
                        trait_index: 0,
                        positive,
                        prompt_index,
                        question_index,
                    });
                }
            }
        }
        let pooled = Pooled {
            layers: vec![0],
            d_model: d,
            n_prompts: samples.len(),
            values,
        };
        (pooled, samples)
    }

    #[test]
    fn strict_hold_out_sees_through_prompt_identity() {
        // Only prompt identity: held-out questions separate perfectly, held-out prompts
        // score 0 on both poles (their axes never entered the direction): chance.
        let (pooled, samples) = prompt_identity_data(0.0);
        assert_eq!(
            heldout_auroc(&pooled, &samples, 0, 0, 4, HoldOut::Questions),
            1.0
        );
        let strict = heldout_auroc(&pooled, &samples, 0, 0, 4, HoldOut::QuestionsAndPrompts);
        assert_eq!(strict, 0.5);
        // A shared trait axis separates under both.
        let (pooled, samples) = prompt_identity_data(0.5);
        let strict = heldout_auroc(&pooled, &samples, 0, 0, 4, HoldOut::QuestionsAndPrompts);
        assert_eq!(strict, 1.0);
    }
}
