//! 95% intervals by a cluster bootstrap over whole runs (METHOD section 6): resample runs
//! with replacement, keep all checkpoints of each drawn run, recompute the metric.

use rand::RngExt;
use rand::SeedableRng;
use rand::rngs::StdRng;

/// A bootstrap interval and how many resamples it had to leave out.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BootstrapInterval {
    /// Percentile interval (2.5%, 97.5%); None if no resample gave a value.
    pub interval: Option<(f64, f64)>,
    /// Resamples on which the statistic had no finite value (e.g. no positive run drawn),
    /// left out of the percentiles. Reported because many of them mean the interval only
    /// describes the resamples that happened to hold both classes.
    pub dropped: usize,
}

/// Percentile interval (2.5%, 97.5%) of `statistic` over `resamples` cluster resamples.
/// `clusters[i]` is the cluster (run) of item `i`; `statistic` gets the item indices of
/// one resample (repeats included) and may return None (e.g. no positives drawn): such a
/// resample is left out and counted in `dropped`. With no items, every resample counts as
/// dropped.
pub fn cluster_bootstrap(
    clusters: &[usize],
    resamples: usize,
    seed: u64,
    statistic: impl Fn(&[usize]) -> Option<f64>,
) -> BootstrapInterval {
    let n_clusters = clusters.iter().max().map_or(0, |m| m + 1);
    if n_clusters == 0 {
        return BootstrapInterval {
            interval: None,
            dropped: resamples,
        };
    }
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); n_clusters];
    for (i, &c) in clusters.iter().enumerate() {
        members[c].push(i);
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let mut values = Vec::with_capacity(resamples);
    let mut items = Vec::new();
    for _ in 0..resamples {
        items.clear();
        for _ in 0..n_clusters {
            items.extend(&members[rng.random_range(0..n_clusters)]);
        }
        if let Some(v) = statistic(&items).filter(|v| v.is_finite()) {
            values.push(v);
        }
    }
    let dropped = resamples - values.len();
    if values.is_empty() {
        return BootstrapInterval {
            interval: None,
            dropped,
        };
    }
    values.sort_by(f64::total_cmp);
    BootstrapInterval {
        interval: Some((percentile(&values, 0.025), percentile(&values, 0.975))),
        dropped,
    }
}

/// Linear interpolation between order statistics (numpy's default).
fn percentile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// Dense cluster ids (0..k) from any hashable run key, in first-seen order.
pub fn cluster_ids<K: PartialEq>(keys: &[K]) -> Vec<usize> {
    let mut seen: Vec<&K> = Vec::new();
    keys.iter()
        .map(|k| match seen.iter().position(|s| *s == k) {
            Some(i) => i,
            None => {
                seen.push(k);
                seen.len() - 1
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_cover_the_truth_and_respect_clusters() {
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0, 5.0], 0.5), 3.0);
        assert!((percentile(&[0.0, 10.0], 0.025) - 0.25).abs() < 1e-12);
        // Ten runs of ten identical values: within-run copies add no information, so the
        // interval of the mean is as wide as with one value per run.
        let clusters: Vec<usize> = (0..100).map(|i| i / 10).collect();
        let values: Vec<f64> = (0..100).map(|i| (i / 10) as f64).collect();
        let mean =
            |idx: &[usize]| Some(idx.iter().map(|&i| values[i]).sum::<f64>() / idx.len() as f64);
        let b = cluster_bootstrap(&clusters, 2000, 1, mean);
        assert_eq!(b.dropped, 0);
        let (lo, hi) = b.interval.unwrap();
        assert!(lo < 4.5 && hi > 4.5 && lo > 2.0 && hi < 7.0, "({lo}, {hi})");
        let flat: Vec<usize> = (0..100).collect();
        let (flo, fhi) = cluster_bootstrap(&flat, 2000, 1, mean).interval.unwrap();
        assert!(
            fhi - flo < (hi - lo) * 0.5,
            "item bootstrap is narrower: ({flo}, {fhi})"
        );
        let none = BootstrapInterval {
            interval: None,
            dropped: 10,
        };
        assert_eq!(cluster_bootstrap(&clusters, 10, 1, |_| None), none);
        assert_eq!(cluster_bootstrap(&[], 10, 1, mean), none);
        assert_eq!(cluster_ids(&["a", "b", "a", "c"]), vec![0, 1, 0, 2]);
    }

    #[test]
    fn resamples_without_a_value_are_counted() {
        // Two runs, one positive and one negative: a resample draws the positive run at
        // least once with probability 3/4, so about a quarter have no positive and no
        // FNR-like value. They are left out of the interval and counted.
        let positive = [true, true, false, false];
        let clusters = [0, 0, 1, 1];
        let share = |idx: &[usize]| {
            let pos = idx.iter().filter(|&&i| positive[i]).count();
            (pos > 0).then(|| pos as f64 / idx.len() as f64)
        };
        let b = cluster_bootstrap(&clusters, 4000, 3, share);
        assert!(b.interval.is_some());
        assert!((800..1200).contains(&b.dropped), "dropped {}", b.dropped);
        // Not finite counts as no value too.
        let b = cluster_bootstrap(&clusters, 100, 3, |_| Some(f64::NAN));
        assert_eq!((b.interval, b.dropped), (None, 100));
    }
}
