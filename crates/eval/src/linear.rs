//! Linear models: ridge regression (the comparator regressor) and L2-penalised logistic
//! regression (the step-aware alarm), with a standardiser. Solved in closed form / by
//! Newton's method with nalgebra.

use crate::{EvalError, Result};
use nalgebra::{DMatrix, DVector};

/// Rows as a matrix; empty input or ragged rows are errors.
pub(crate) fn matrix(x: &[Vec<f64>]) -> Result<DMatrix<f64>> {
    let d = x.first().map_or(0, Vec::len);
    if x.is_empty() || d == 0 || x.iter().any(|r| r.len() != d) {
        return Err(EvalError::Input(
            "a linear model needs a non-empty matrix with rows of equal length".into(),
        ));
    }
    Ok(DMatrix::from_fn(x.len(), d, |i, j| x[i][j]))
}

/// Per-feature mean and standard deviation (population); a constant feature keeps scale 1.
#[derive(Debug, Clone, PartialEq)]
pub struct Standardizer {
    pub mean: Vec<f64>,
    pub scale: Vec<f64>,
}

impl Standardizer {
    pub fn fit(x: &[Vec<f64>]) -> Result<Self> {
        let m = matrix(x)?;
        let n = m.nrows() as f64;
        let mean: Vec<f64> = m.column_iter().map(|c| c.sum() / n).collect();
        let scale = m
            .column_iter()
            .zip(&mean)
            .map(|(c, mu)| {
                let sd = (c.iter().map(|v| (v - mu).powi(2)).sum::<f64>() / n).sqrt();
                if sd > 0.0 { sd } else { 1.0 }
            })
            .collect();
        Ok(Self { mean, scale })
    }

    pub fn transform(&self, row: &[f64]) -> Vec<f64> {
        row.iter()
            .zip(self.mean.iter().zip(&self.scale))
            .map(|(v, (m, s))| (v - m) / s)
            .collect()
    }
}

/// Ridge regression with an unpenalised intercept (data centred), `alpha` = 1 in the paper.
#[derive(Debug, Clone, PartialEq)]
pub struct Ridge {
    weights: Vec<f64>,
    intercept: f64,
}

impl Ridge {
    pub fn fit(x: &[Vec<f64>], y: &[f64], alpha: f64) -> Result<Self> {
        let m = matrix(x)?;
        let n = m.nrows() as f64;
        let x_mean: Vec<f64> = m.column_iter().map(|c| c.sum() / n).collect();
        let y_mean = y.iter().sum::<f64>() / n;
        let xc = DMatrix::from_fn(m.nrows(), m.ncols(), |i, j| m[(i, j)] - x_mean[j]);
        let yc = DVector::from_iterator(y.len(), y.iter().map(|v| v - y_mean));
        let mut gram = xc.transpose() * &xc;
        for j in 0..gram.ncols() {
            gram[(j, j)] += alpha;
        }
        let rhs = xc.transpose() * yc;
        let w = gram
            .clone()
            .cholesky()
            .map(|c| c.solve(&rhs))
            .or_else(|| gram.lu().solve(&rhs))
            .ok_or_else(|| EvalError::Input("ridge system is singular (alpha = 0?)".into()))?;
        let intercept = y_mean - dot(w.as_slice(), &x_mean);
        Ok(Self {
            weights: w.iter().copied().collect(),
            intercept,
        })
    }

    pub fn predict(&self, row: &[f64]) -> f64 {
        self.intercept + dot(&self.weights, row)
    }
}

/// Logistic regression minimising `sum log-loss + ||w||^2 / (2C)` (intercept unpenalised),
/// by Newton's method.
#[derive(Debug, Clone, PartialEq)]
pub struct Logistic {
    pub weights: Vec<f64>,
    pub intercept: f64,
}

/// `w · row`.
fn dot(w: &[f64], row: &[f64]) -> f64 {
    w.iter().zip(row).map(|(a, b)| a * b).sum()
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

impl Logistic {
    pub fn fit(x: &[Vec<f64>], labels: &[bool], c: f64) -> Result<Self> {
        let m = matrix(x)?;
        let (n, d) = (m.nrows(), m.ncols());
        // Design with a leading column of ones for the intercept.
        let a = DMatrix::from_fn(n, d + 1, |i, j| if j == 0 { 1.0 } else { m[(i, j - 1)] });
        let y = DVector::from_iterator(n, labels.iter().map(|&l| f64::from(u8::from(l))));
        let mut beta = DVector::<f64>::zeros(d + 1);
        let lambda = 1.0 / c;
        for _ in 0..100 {
            let p = (&a * &beta).map(sigmoid);
            let mut grad = a.transpose() * (&p - &y);
            let mut hess = DMatrix::<f64>::zeros(d + 1, d + 1);
            for i in 0..n {
                let w = p[i] * (1.0 - p[i]);
                let row = a.row(i);
                hess += w * row.transpose() * row;
            }
            for j in 1..=d {
                grad[j] += lambda * beta[j];
                hess[(j, j)] += lambda;
            }
            let step = hess
                .lu()
                .solve(&grad)
                .ok_or_else(|| EvalError::Input("logistic regression: singular Hessian".into()))?;
            beta -= &step;
            if step.amax() < 1e-10 {
                break;
            }
        }
        Ok(Self {
            intercept: beta[0],
            weights: beta.iter().skip(1).copied().collect(),
        })
    }

    pub fn probability(&self, row: &[f64]) -> f64 {
        sigmoid(self.intercept + dot(&self.weights, row))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ridge_recovers_a_line_and_shrinks_with_alpha() {
        let x: Vec<Vec<f64>> = (0..20).map(|i| vec![i as f64, (i % 3) as f64]).collect();
        let y: Vec<f64> = x.iter().map(|r| 3.0 * r[0] - 2.0 * r[1] + 1.0).collect();
        let r = Ridge::fit(&x, &y, 1e-9).unwrap();
        assert!((r.predict(&[4.0, 1.0]) - 11.0).abs() < 1e-6);
        let shrunk = Ridge::fit(&x, &y, 1e4).unwrap();
        assert!(shrunk.weights[0].abs() < r.weights[0].abs());
        // Closed form in one dimension: w = sxy / (sxx + alpha).
        let x1: Vec<Vec<f64>> = vec![vec![0.0], vec![1.0], vec![2.0]];
        let r1 = Ridge::fit(&x1, &[0.0, 1.0, 2.0], 1.0).unwrap();
        assert!((r1.weights[0] - 2.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn logistic_solution_satisfies_its_optimality_conditions() {
        let x: Vec<Vec<f64>> = (0..30).map(|i| vec![i as f64 / 10.0 - 1.5]).collect();
        let labels: Vec<bool> = (0..30).map(|i| (i * 17) % 30 > 12).collect();
        let m = Logistic::fit(&x, &labels, 1.0).unwrap();
        // Gradient of the penalised loss is zero at the optimum.
        let (mut g0, mut g1) = (0.0, 0.0);
        for (r, &l) in x.iter().zip(&labels) {
            let e = m.probability(r) - f64::from(u8::from(l));
            g0 += e;
            g1 += e * r[0];
        }
        g1 += m.weights[0];
        assert!(g0.abs() < 1e-8 && g1.abs() < 1e-8, "gradient ({g0}, {g1})");
        let sep: Vec<bool> = x.iter().map(|r| r[0] > 0.0).collect();
        let s = Logistic::fit(&x, &sep, 1.0).unwrap();
        assert!(s.probability(&[1.0]) > 0.9 && s.probability(&[-1.0]) < 0.1);
    }

    #[test]
    fn standardizer_centres_and_scales() {
        let s = Standardizer::fit(&[vec![1.0, 5.0], vec![3.0, 5.0]]).unwrap();
        assert_eq!(s.transform(&[3.0, 5.0]), vec![1.0, 0.0]);
        assert!(Standardizer::fit(&[]).is_err());
    }
}
