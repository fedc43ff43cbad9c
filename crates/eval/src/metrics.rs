//! Classification metrics of the monitor (METHOD section 6): AUROC in its Mann-Whitney form
//! with ties counted one half, and the confusion-matrix rates. A rate whose denominator is
//! empty (no positives for FNR, no negatives for FPR) is None, never 0: Fig. 7 shows it
//! as a dash and it contributes nothing.

use serde::Serialize;

/// AUROC = P(score of a random positive > score of a random negative) + 0.5 P(tie).
/// None without at least one positive and one negative. O(n log n): ranks with ties
/// averaged, then the Mann-Whitney U of the positives.
pub fn auroc(scores: &[f64], labels: &[bool]) -> Option<f64> {
    assert_eq!(scores.len(), labels.len(), "one label per score");
    let n_pos = labels.iter().filter(|&&l| l).count();
    let n_neg = labels.len() - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut rank_sum_pos = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        // Ranks i+1 ..= j+1 (1-based) share their mean.
        let mean_rank = (i + j + 2) as f64 / 2.0;
        rank_sum_pos += mean_rank * order[i..=j].iter().filter(|&&k| labels[k]).count() as f64;
        i = j + 1;
    }
    let u = rank_sum_pos - (n_pos * (n_pos + 1)) as f64 / 2.0;
    Some(u / (n_pos * n_neg) as f64)
}

/// Counts of alarms against labels (positive = dangerous).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Confusion {
    pub tp: usize,
    pub fp: usize,
    pub tn: usize,
    pub fn_: usize,
}

impl Confusion {
    pub fn from_alarms(alarms: &[bool], labels: &[bool]) -> Self {
        assert_eq!(alarms.len(), labels.len(), "one label per alarm");
        let mut c = Self::default();
        for (&a, &l) in alarms.iter().zip(labels) {
            match (a, l) {
                (true, true) => c.tp += 1,
                (true, false) => c.fp += 1,
                (false, false) => c.tn += 1,
                (false, true) => c.fn_ += 1,
            }
        }
        c
    }

    pub fn positives(&self) -> usize {
        self.tp + self.fn_
    }

    pub fn negatives(&self) -> usize {
        self.tn + self.fp
    }

    /// Missed dangerous checkpoints / dangerous checkpoints.
    pub fn fnr(&self) -> Option<f64> {
        ratio(self.fn_, self.positives())
    }

    /// False alarms / benign checkpoints.
    pub fn fpr(&self) -> Option<f64> {
        ratio(self.fp, self.negatives())
    }

    pub fn accuracy(&self) -> Option<f64> {
        ratio(self.tp + self.tn, self.positives() + self.negatives())
    }

    /// Mean of sensitivity and specificity; None unless both classes are present.
    pub fn balanced_accuracy(&self) -> Option<f64> {
        Some(1.0 - (self.fnr()? + self.fpr()?) / 2.0)
    }
}

fn ratio(a: usize, b: usize) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

/// All metrics of one evaluation cell.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Metrics {
    pub confusion: Confusion,
    pub fnr: Option<f64>,
    pub fpr: Option<f64>,
    pub accuracy: Option<f64>,
    pub balanced_accuracy: Option<f64>,
    pub auroc: Option<f64>,
}

/// Metrics of scores (the regressor's clipped predictions) against labels, alarming when
/// a score exceeds `tau`.
pub fn metrics(scores: &[f64], labels: &[bool], tau: f64) -> Metrics {
    let alarms: Vec<bool> = scores.iter().map(|&s| s > tau).collect();
    let confusion = Confusion::from_alarms(&alarms, labels);
    Metrics {
        confusion,
        fnr: confusion.fnr(),
        fpr: confusion.fpr(),
        accuracy: confusion.accuracy(),
        balanced_accuracy: confusion.balanced_accuracy(),
        auroc: auroc(scores, labels),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition, pair by pair.
    fn auroc_by_pairs(scores: &[f64], labels: &[bool]) -> f64 {
        let (mut wins, mut pairs) = (0.0, 0.0);
        for (i, &li) in labels.iter().enumerate() {
            for (j, &lj) in labels.iter().enumerate() {
                if li && !lj {
                    pairs += 1.0;
                    if scores[i] > scores[j] {
                        wins += 1.0;
                    } else if scores[i] == scores[j] {
                        wins += 0.5;
                    }
                }
            }
        }
        wins / pairs
    }

    #[test]
    fn auroc_hand_computed_cases() {
        // Perfect, inverted, and all tied.
        assert_eq!(
            auroc(&[0.1, 0.2, 0.8, 0.9], &[false, false, true, true]),
            Some(1.0)
        );
        assert_eq!(
            auroc(&[0.9, 0.8, 0.2, 0.1], &[false, false, true, true]),
            Some(0.0)
        );
        assert_eq!(auroc(&[0.5; 4], &[false, true, false, true]), Some(0.5));
        // Positives {0.4, 0.6}, negatives {0.4, 0.2, 0.6}: pairs (0.4>0.2) 1, (0.4=0.4) .5,
        // (0.4<0.6) 0, (0.6>0.4) 1, (0.6>0.2) 1, (0.6=0.6) .5 -> 4/6.
        let s = [0.4, 0.6, 0.4, 0.2, 0.6];
        let l = [true, true, false, false, false];
        assert!((auroc(&s, &l).unwrap() - 4.0 / 6.0).abs() < 1e-12);
        assert_eq!(auroc(&[0.1, 0.2], &[true, true]), None);
    }

    #[test]
    fn auroc_matches_the_pairwise_definition_with_many_ties() {
        let scores: Vec<f64> = (0..60).map(|i| ((i * 37) % 11) as f64 / 10.0).collect();
        let labels: Vec<bool> = (0..60).map(|i| (i * 13) % 7 < 3).collect();
        let fast = auroc(&scores, &labels).unwrap();
        assert!((fast - auroc_by_pairs(&scores, &labels)).abs() < 1e-12);
    }

    #[test]
    fn rates_and_empty_denominators() {
        let m = metrics(&[0.01, 0.2, 0.07, 0.0], &[false, true, false, true], 0.05);
        assert_eq!(
            m.confusion,
            Confusion {
                tp: 1,
                fp: 1,
                tn: 1,
                fn_: 1
            }
        );
        assert_eq!(
            (m.fnr, m.fpr, m.accuracy),
            (Some(0.5), Some(0.5), Some(0.5))
        );
        assert_eq!(m.balanced_accuracy, Some(0.5));
        let no_pos = metrics(&[0.01, 0.2], &[false, false], 0.05);
        assert_eq!((no_pos.fnr, no_pos.fpr), (None, Some(0.5)));
        assert_eq!((no_pos.balanced_accuracy, no_pos.auroc), (None, None));
        // Alarm strictly above tau.
        assert_eq!(metrics(&[0.05], &[true], 0.05).fnr, Some(1.0));
    }
}
