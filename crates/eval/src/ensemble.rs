//! Tree ensembles: the paper's random-forest regressor and the gradient-boosting comparator
//! (METHOD section 6).

use crate::tree::{RegressionTree, TreeParams, bootstrap_indices};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

/// Random forest regressor; defaults are the paper's (100 trees, depth 5, 5 per leaf,
/// bootstrap, all features per split, seed 42). As in scikit-learn, a leaf's size counts
/// the distinct training rows in it, not their bootstrap draws.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ForestParams {
    pub n_trees: usize,
    pub max_depth: usize,
    pub min_samples_leaf: usize,
    pub bootstrap: bool,
    pub max_features: Option<usize>,
    pub seed: u64,
}

impl Default for ForestParams {
    fn default() -> Self {
        Self {
            n_trees: 100,
            max_depth: 5,
            min_samples_leaf: 5,
            bootstrap: true,
            max_features: None,
            seed: 42,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RandomForest {
    trees: Vec<RegressionTree>,
}

impl RandomForest {
    pub fn fit(x: &[Vec<f64>], y: &[f64], p: &ForestParams) -> Self {
        let mut rng = StdRng::seed_from_u64(p.seed);
        let all: Vec<usize> = (0..y.len()).collect();
        let tree = TreeParams {
            max_depth: p.max_depth,
            min_samples_leaf: p.min_samples_leaf,
            max_features: p.max_features,
        };
        let trees = (0..p.n_trees.max(1))
            .map(|_| {
                let idx = if p.bootstrap {
                    bootstrap_indices(y.len(), &mut rng)
                } else {
                    all.clone()
                };
                RegressionTree::fit(x, y, &idx, tree, &mut rng)
            })
            .collect();
        Self { trees }
    }

    pub fn predict(&self, row: &[f64]) -> f64 {
        self.trees.iter().map(|t| t.predict(row)).sum::<f64>() / self.trees.len() as f64
    }
}

/// Gradient boosting on squared error; defaults are the paper's comparator (100 stages,
/// depth 3, learning rate 0.1).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BoostingParams {
    pub n_stages: usize,
    pub max_depth: usize,
    pub learning_rate: f64,
    pub min_samples_leaf: usize,
    pub seed: u64,
}

impl Default for BoostingParams {
    fn default() -> Self {
        Self {
            n_stages: 100,
            max_depth: 3,
            learning_rate: 0.1,
            min_samples_leaf: 1,
            seed: 42,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct GradientBoosting {
    init: f64,
    learning_rate: f64,
    trees: Vec<RegressionTree>,
}

impl GradientBoosting {
    pub fn fit(x: &[Vec<f64>], y: &[f64], p: &BoostingParams) -> Self {
        let mut rng = StdRng::seed_from_u64(p.seed);
        let init = y.iter().sum::<f64>() / y.len().max(1) as f64;
        let mut fitted = vec![init; y.len()];
        let idx: Vec<usize> = (0..y.len()).collect();
        let tree = TreeParams {
            max_depth: p.max_depth,
            min_samples_leaf: p.min_samples_leaf,
            max_features: None,
        };
        let mut trees = Vec::with_capacity(p.n_stages);
        for _ in 0..p.n_stages {
            let residual: Vec<f64> = y.iter().zip(&fitted).map(|(a, b)| a - b).collect();
            let t = RegressionTree::fit(x, &residual, &idx, tree, &mut rng);
            for (f, row) in fitted.iter_mut().zip(x) {
                *f += p.learning_rate * t.predict(row);
            }
            trees.push(t);
        }
        Self {
            init,
            learning_rate: p.learning_rate,
            trees,
        }
    }

    pub fn predict(&self, row: &[f64]) -> f64 {
        self.init + self.learning_rate * self.trees.iter().map(|t| t.predict(row)).sum::<f64>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// y = 1 when x0 > 0.5, else 0; x1 is noise.
    fn data(n: usize) -> (Vec<Vec<f64>>, Vec<f64>) {
        let x: Vec<Vec<f64>> = (0..n)
            .map(|i| {
                vec![
                    (i as f64 + 0.5) / n as f64,
                    ((i * 7919) % 101) as f64 / 101.0,
                ]
            })
            .collect();
        let y = x.iter().map(|r| f64::from(u8::from(r[0] > 0.5))).collect();
        (x, y)
    }

    #[test]
    fn the_forest_learns_a_threshold_and_is_reproducible() {
        let (x, y) = data(200);
        let f = RandomForest::fit(&x, &y, &ForestParams::default());
        assert!(f.predict(&[0.9, 0.3]) > 0.95);
        assert!(f.predict(&[0.1, 0.3]) < 0.05);
        let again = RandomForest::fit(&x, &y, &ForestParams::default());
        assert_eq!(f, again, "same seed, same forest");
        let other = RandomForest::fit(
            &x,
            &y,
            &ForestParams {
                seed: 7,
                ..Default::default()
            },
        );
        assert_ne!(f, other);
    }

    #[test]
    fn boosting_fits_a_smooth_target() {
        let x: Vec<Vec<f64>> = (0..100).map(|i| vec![i as f64 / 100.0]).collect();
        let y: Vec<f64> = x.iter().map(|r| 2.0 * r[0] + 1.0).collect();
        let g = GradientBoosting::fit(&x, &y, &BoostingParams::default());
        let mse: f64 = x
            .iter()
            .zip(&y)
            .map(|(r, v)| (g.predict(r) - v).powi(2))
            .sum::<f64>()
            / 100.0;
        assert!(mse < 1e-3, "training mse {mse}");
    }
}
