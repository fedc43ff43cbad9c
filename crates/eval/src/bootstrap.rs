//! 95% intervals by a cluster bootstrap over whole runs (METHOD section 6): resample runs
//! with replacement, keep all checkpoints of each drawn run, recompute the metric.

use rand::RngExt;
use rand::SeedableRng;
use rand::rngs::StdRng;

/// Percentile interval (2.5%, 97.5%) of `statistic` over `resamples` cluster resamples.
/// `clusters[i]` is the cluster (run) of item `i`; `statistic` gets the item indices of
/// one resample (repeats included) and may return None (e.g. no positives drawn), which
/// is skipped. None if no resample gave a value.
pub fn cluster_bootstrap(
    clusters: &[usize],
    resamples: usize,
    seed: u64,
    statistic: impl Fn(&[usize]) -> Option<f64>,
) -> Option<(f64, f64)> {
    let n_clusters = clusters.iter().max().map_or(0, |m| m + 1);
    if n_clusters == 0 {
        return None;
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
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    Some((percentile(&values, 0.025), percentile(&values, 0.975)))
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
        let (lo, hi) = cluster_bootstrap(&clusters, 2000, 1, mean).unwrap();
        assert!(lo < 4.5 && hi > 4.5 && lo > 2.0 && hi < 7.0, "({lo}, {hi})");
        let flat: Vec<usize> = (0..100).collect();
        let (flo, fhi) = cluster_bootstrap(&flat, 2000, 1, mean).unwrap();
        assert!(
            fhi - flo < (hi - lo) * 0.5,
            "item bootstrap is narrower: ({flo}, {fhi})"
        );
        assert_eq!(cluster_bootstrap(&clusters, 10, 1, |_| None), None);
        assert_eq!(cluster_ids(&["a", "b", "a", "c"]), vec![0, 1, 0, 2]);
    }
}
