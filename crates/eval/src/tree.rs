//! CART regression trees (squared error), the building block of the forest and of gradient
//! boosting. Splits at midpoints between consecutive distinct values; ties between equally
//! good splits go to the first feature and the lowest threshold, so a fit is deterministic
//! given its rows and its random feature subsets.

use rand::RngExt;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TreeParams {
    pub max_depth: usize,
    pub min_samples_leaf: usize,
    /// Features tried per split (None: all, as the paper's forest).
    pub max_features: Option<usize>,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Leaf(f64),
    Split {
        feature: usize,
        threshold: f64,
        left: usize,
        right: usize,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct RegressionTree {
    nodes: Vec<Node>,
}

struct Builder<'a> {
    x: &'a [Vec<f64>],
    y: &'a [f64],
    params: TreeParams,
    nodes: Vec<Node>,
}

fn mean(y: &[f64], idx: &[usize]) -> f64 {
    idx.iter().map(|&i| y[i]).sum::<f64>() / idx.len() as f64
}

impl RegressionTree {
    /// Fit on the rows `idx` of `x` (repeats allowed: a bootstrap sample).
    pub fn fit(
        x: &[Vec<f64>],
        y: &[f64],
        idx: &[usize],
        params: TreeParams,
        rng: &mut StdRng,
    ) -> Self {
        let mut b = Builder {
            x,
            y,
            params,
            nodes: Vec::new(),
        };
        let mut idx = idx.to_vec();
        b.build(&mut idx, 0, rng);
        Self { nodes: b.nodes }
    }

    pub fn predict(&self, row: &[f64]) -> f64 {
        let mut n = 0;
        loop {
            match self.nodes[n] {
                Node::Leaf(v) => return v,
                Node::Split {
                    feature,
                    threshold,
                    left,
                    right,
                } => {
                    n = if row[feature] <= threshold {
                        left
                    } else {
                        right
                    }
                }
            }
        }
    }

    pub fn depth(&self) -> usize {
        fn d(nodes: &[Node], n: usize) -> usize {
            match nodes[n] {
                Node::Leaf(_) => 0,
                Node::Split { left, right, .. } => 1 + d(nodes, left).max(d(nodes, right)),
            }
        }
        d(&self.nodes, 0)
    }
}

impl Builder<'_> {
    fn build(&mut self, idx: &mut [usize], depth: usize, rng: &mut StdRng) -> usize {
        let node = self.nodes.len();
        self.nodes.push(Node::Leaf(mean(self.y, idx)));
        let leaf = self.params.min_samples_leaf.max(1);
        // Distinct rows, not draws, decide whether a node may split (see `best_split`).
        if depth >= self.params.max_depth || distinct_rows(idx) < 2 * leaf {
            return node;
        }
        let Some((feature, threshold)) = self.best_split(idx, leaf, rng) else {
            return node;
        };
        // Partition in place: rows going left first.
        idx.sort_by(|&a, &b| {
            let (la, lb) = (
                self.x[a][feature] <= threshold,
                self.x[b][feature] <= threshold,
            );
            lb.cmp(&la)
        });
        let n_left = idx
            .iter()
            .filter(|&&i| self.x[i][feature] <= threshold)
            .count();
        let (l, r) = idx.split_at_mut(n_left);
        let left = self.build(l, depth + 1, rng);
        let right = self.build(r, depth + 1, rng);
        self.nodes[node] = Node::Split {
            feature,
            threshold,
            left,
            right,
        };
        node
    }

    /// The split with the lowest summed squared error, if any improves on none.
    fn best_split(&self, idx: &[usize], leaf: usize, rng: &mut StdRng) -> Option<(usize, f64)> {
        let d = self.x[idx[0]].len();
        let mut features: Vec<usize> = (0..d).collect();
        if let Some(k) = self.params.max_features.filter(|&k| k < d) {
            features.shuffle(rng);
            features.truncate(k.max(1));
            features.sort_unstable();
        }
        let n = idx.len() as f64;
        let total: f64 = idx.iter().map(|&i| self.y[i]).sum();
        let total_sq: f64 = idx.iter().map(|&i| self.y[i] * self.y[i]).sum();
        let parent_sse = total_sq - total * total / n;
        let mut best: Option<(f64, usize, f64)> = None;
        let mut order = idx.to_vec();
        let distinct = distinct_rows(idx);
        for &f in &features {
            // Copies of a row sort next to each other (row index breaks ties), so a row
            // counts as new on the left exactly where its first copy joins.
            order.sort_by(|&a, &b| self.x[a][f].total_cmp(&self.x[b][f]).then(a.cmp(&b)));
            let (mut sum_l, mut sq_l, mut distinct_l) = (0.0, 0.0, 0);
            for k in 1..order.len() {
                let row = order[k - 1];
                let yv = self.y[row];
                sum_l += yv;
                sq_l += yv * yv;
                if k == 1 || order[k - 2] != row {
                    distinct_l += 1;
                }
                let (lo, hi) = (self.x[row][f], self.x[order[k]][f]);
                // min_samples_leaf counts distinct rows on each side, as scikit-learn does:
                // its forest passes a bootstrap as per-row counts (sample weights), and its
                // leaf-size rule counts rows with a non-zero weight, not their weight. Sums
                // still count every draw, so leaf means and errors are the weighted ones.
                if distinct_l < leaf || distinct - distinct_l < leaf || lo >= hi {
                    continue;
                }
                let (nl, nr) = (k as f64, n - k as f64);
                let (sum_r, sq_r) = (total - sum_l, total_sq - sq_l);
                let sse = (sq_l - sum_l * sum_l / nl) + (sq_r - sum_r * sum_r / nr);
                if best.is_none_or(|(b, _, _)| sse < b - 1e-12 * parent_sse.abs().max(1e-300)) {
                    best = Some((sse, f, lo + (hi - lo) / 2.0));
                }
            }
        }
        best.filter(|(sse, _, _)| *sse < parent_sse)
            .map(|(_, f, t)| (f, t))
    }
}

/// How many different rows `idx` holds (a bootstrap repeats some).
fn distinct_rows(idx: &[usize]) -> usize {
    let mut rows = idx.to_vec();
    rows.sort_unstable();
    rows.dedup();
    rows.len()
}

/// `n` row indices drawn with replacement.
pub fn bootstrap_indices(n: usize, rng: &mut StdRng) -> Vec<usize> {
    (0..n).map(|_| rng.random_range(0..n)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn params(depth: usize, leaf: usize) -> TreeParams {
        TreeParams {
            max_depth: depth,
            min_samples_leaf: leaf,
            max_features: None,
        }
    }

    #[test]
    fn a_step_function_is_split_at_the_midpoint() {
        let x: Vec<Vec<f64>> = (0..10).map(|i| vec![i as f64, 0.0]).collect();
        let y: Vec<f64> = (0..10).map(|i| if i < 4 { 1.0 } else { 5.0 }).collect();
        let idx: Vec<usize> = (0..10).collect();
        let mut rng = StdRng::seed_from_u64(0);
        let t = RegressionTree::fit(&x, &y, &idx, params(3, 1), &mut rng);
        assert_eq!(t.depth(), 1, "one split explains everything");
        assert_eq!(t.predict(&[3.4, 0.0]), 1.0);
        assert_eq!(t.predict(&[3.6, 0.0]), 5.0);
    }

    #[test]
    fn leaf_size_counts_distinct_rows_of_a_bootstrap() {
        // Row 0 drawn five times, rows 1..9 once. Counting draws, a leaf of row 0's five
        // copies alone would be allowed (and is the best first split); counting distinct rows
        // (scikit-learn's rule for a forest's bootstrap counts), the only legal split is
        // 5 | 5 distinct rows, and the left leaf averages all nine draws in it.
        let x: Vec<Vec<f64>> = (0..10).map(|i| vec![i as f64]).collect();
        let y: Vec<f64> = (0..10)
            .map(|i| if i == 0 { -20.0 } else { i as f64 })
            .collect();
        let idx: Vec<usize> = [0, 0, 0, 0, 0].into_iter().chain(1..10).collect();
        let mut rng = StdRng::seed_from_u64(0);
        let t = RegressionTree::fit(&x, &y, &idx, params(1, 5), &mut rng);
        assert_eq!(
            t.predict(&[0.0]),
            (5.0 * -20.0 + 1.0 + 2.0 + 3.0 + 4.0) / 9.0
        );
        assert_eq!(t.predict(&[4.4]), t.predict(&[0.0]));
        assert_eq!(t.predict(&[4.6]), 7.0);
        // Nine draws but four distinct rows: too few to split into two leaves of two.
        let few = [0, 0, 0, 1, 1, 2, 2, 3, 3];
        let t = RegressionTree::fit(&x, &y, &few, params(3, 3), &mut rng);
        assert_eq!(t.depth(), 0);
    }

    #[test]
    fn depth_and_leaf_size_are_respected() {
        let x: Vec<Vec<f64>> = (0..40).map(|i| vec![(i * 7 % 40) as f64]).collect();
        let y: Vec<f64> = x.iter().map(|r| (r[0] * 0.3).sin()).collect();
        let idx: Vec<usize> = (0..40).collect();
        let mut rng = StdRng::seed_from_u64(0);
        let t = RegressionTree::fit(&x, &y, &idx, params(2, 5), &mut rng);
        assert!(t.depth() <= 2);
        // A leaf of a min-5 tree averages at least 5 targets: no prediction equals a
        // single isolated target unless neighbours agree.
        let deep = RegressionTree::fit(&x, &y, &idx, params(20, 1), &mut rng);
        assert!(deep.depth() > 2);
        for (r, &v) in x.iter().zip(&y) {
            assert!(
                (deep.predict(r) - v).abs() < 1e-12,
                "a fully grown tree fits its rows"
            );
        }
        let constant = RegressionTree::fit(&x, &[2.0; 40], &idx, params(5, 1), &mut rng);
        assert_eq!((constant.depth(), constant.predict(&[3.0])), (0, 2.0));
    }
}
