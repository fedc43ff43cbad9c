//! Baselines on the raw activation drift `(h̄(t) - h̄(0)) / N` (METHOD section 5): PCA-7 and
//! PLS-7 per model, **fit on the training rows of each fold only** and applied to its test
//! rows, so no held-out checkpoint shapes the basis it is scored in.

use crate::linear::matrix;
use crate::{EvalError, Result};
use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

/// How a feature set's raw rows become features inside a fold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reduction {
    /// Top-k principal components of the centred training rows.
    Pca(usize),
    /// k-component partial least squares of the training targets (PLS1, NIPALS), on rows
    /// and targets standardised as scikit-learn's `PLSRegression` does by default.
    Pls(usize),
}

/// A fitted linear map: `((x - mean) / scale) · rotation`, `rotation` d x k (scale 1 for
/// PCA).
#[derive(Debug, Clone, PartialEq)]
pub struct Projection {
    mean: DVector<f64>,
    scale: DVector<f64>,
    rotation: DMatrix<f64>,
}

fn centred(rows: &[Vec<f64>]) -> Result<(DMatrix<f64>, DVector<f64>)> {
    let x = matrix(rows)?;
    let mean = DVector::from_iterator(x.ncols(), x.column_iter().map(|c| c.mean()));
    let xc = DMatrix::from_fn(x.nrows(), x.ncols(), |i, j| x[(i, j)] - mean[j]);
    Ok((xc, mean))
}

impl Projection {
    pub fn fit(reduction: Reduction, rows: &[Vec<f64>], targets: &[f64]) -> Result<Self> {
        match reduction {
            Reduction::Pca(k) => Self::pca(rows, k),
            Reduction::Pls(k) => Self::pls(rows, targets, k),
        }
    }

    /// Principal axes by SVD of the centred rows; components beyond the rank are zero.
    pub fn pca(rows: &[Vec<f64>], k: usize) -> Result<Self> {
        let (xc, mean) = centred(rows)?;
        let d = xc.ncols();
        let svd = xc.svd(false, true);
        let v_t = svd
            .v_t
            .ok_or_else(|| EvalError::Input("SVD did not converge".into()))?;
        // Singular values come sorted in decreasing order.
        let mut rotation = DMatrix::zeros(d, k);
        for c in 0..k.min(v_t.nrows()) {
            // Sign: largest-magnitude loading positive, so a fit is reproducible.
            let row = v_t.row(c);
            let sign = if row
                .iter()
                .fold(0.0f64, |m, v| if v.abs() > m.abs() { *v } else { m })
                < 0.0
            {
                -1.0
            } else {
                1.0
            };
            for j in 0..d {
                rotation[(j, c)] = sign * row[j];
            }
        }
        let scale = DVector::from_element(d, 1.0);
        Ok(Self {
            mean,
            scale,
            rotation,
        })
    }

    /// PLS1 by NIPALS on standardised rows and targets; stops early when the rows are
    /// exhausted.
    ///
    /// Like scikit-learn's `PLSRegression(scale=True)`, the default the paper used, each
    /// column is centred and divided by its sample (n - 1) standard deviation, a constant
    /// column by 1: without it the first weight follows whichever features have the largest
    /// raw variance. The target is standardised too; that only rescales `X^T y` and the
    /// target's deflation, so the weights and scores are those of the unscaled target.
    pub fn pls(rows: &[Vec<f64>], targets: &[f64], k: usize) -> Result<Self> {
        let (mut x, mean) = centred(rows)?;
        if targets.len() != x.nrows() {
            return Err(EvalError::Input(format!(
                "PLS: {} rows for {} targets",
                x.nrows(),
                targets.len()
            )));
        }
        let scale = DVector::from_iterator(
            x.ncols(),
            x.column_iter()
                .map(|c| sample_sd(c.norm_squared(), c.len())),
        );
        for (j, mut col) in x.column_iter_mut().enumerate() {
            col /= scale[j];
        }
        let y_mean = targets.iter().sum::<f64>() / targets.len() as f64;
        let mut y = DVector::from_iterator(targets.len(), targets.iter().map(|v| v - y_mean));
        let y_sd = sample_sd(y.norm_squared(), y.len());
        y /= y_sd;
        let d = x.ncols();
        let (mut w_cols, mut p_cols) = (Vec::new(), Vec::new());
        for _ in 0..k {
            let w = x.transpose() * &y;
            let norm = w.norm();
            if norm < 1e-12 {
                break;
            }
            let w = w / norm;
            let t = &x * &w;
            let tt = t.dot(&t);
            if tt < 1e-18 {
                break;
            }
            let p = x.transpose() * &t / tt;
            let q = y.dot(&t) / tt;
            x -= &t * p.transpose();
            y -= q * &t;
            w_cols.push(w);
            p_cols.push(p);
        }
        let a = w_cols.len();
        let mut rotation = DMatrix::zeros(d, k);
        if a > 0 {
            let w = DMatrix::from_columns(&w_cols);
            let p = DMatrix::from_columns(&p_cols);
            // Scores of new rows: (x - mean) W (P^T W)^-1.
            let inv = (p.transpose() * &w)
                .try_inverse()
                .ok_or_else(|| EvalError::Input("PLS: singular loadings".into()))?;
            let r = w * inv;
            rotation.view_mut((0, 0), (d, a)).copy_from(&r);
        }
        Ok(Self {
            mean,
            scale,
            rotation,
        })
    }

    pub fn apply(&self, row: &[f64]) -> Vec<f64> {
        let x = (DVector::from_iterator(row.len(), row.iter().copied()) - &self.mean)
            .component_div(&self.scale);
        (self.rotation.transpose() * x).iter().copied().collect()
    }
}

/// Sample standard deviation (n - 1) of a centred column of `n` values whose squares sum
/// to `sum_sq`; 1 for a constant column (or a single row), which then stays as it is.
fn sample_sd(sum_sq: f64, n: usize) -> f64 {
    let sd = (sum_sq / n.saturating_sub(1).max(1) as f64).sqrt();
    if sd > 0.0 { sd } else { 1.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pca_finds_the_axis_of_largest_variance() {
        // Points along (3, 4)/5 with a little spread along (-4, 3)/5, uncorrelated: every
        // position along the axis appears with both offsets.
        let rows: Vec<Vec<f64>> = (0..20)
            .map(|i| {
                let (a, b) = ((i / 2) as f64 - 4.5, if i % 2 == 0 { 0.1 } else { -0.1 });
                vec![0.6 * a - 0.8 * b + 1.0, 0.8 * a + 0.6 * b - 2.0]
            })
            .collect();
        let p = Projection::pca(&rows, 2).unwrap();
        let axis = p.apply(&[1.0 + 0.6, -2.0 + 0.8]);
        assert!(
            (axis[0] - 1.0).abs() < 1e-9 && axis[1].abs() < 1e-9,
            "{axis:?}"
        );
        // More components than the rank: the extra ones are zero.
        let p = Projection::pca(&rows[..2], 3).unwrap();
        assert_eq!(p.apply(&rows[0]).len(), 3);
    }

    #[test]
    fn pls_recovers_a_linear_target_in_one_component() {
        let rows: Vec<Vec<f64>> = (0..30)
            .map(|i| vec![(i % 5) as f64, (i % 7) as f64, ((i * 3) % 11) as f64])
            .collect();
        let beta = [0.5, -1.0, 2.0];
        let y: Vec<f64> = rows
            .iter()
            .map(|r| r.iter().zip(beta).map(|(a, b)| a * b).sum())
            .collect();
        // With as many components as features, PLS spans the least-squares fit: a linear
        // regression on the scores reproduces y exactly.
        let p = Projection::pls(&rows, &y, 3).unwrap();
        let scores: Vec<Vec<f64>> = rows.iter().map(|r| p.apply(r)).collect();
        let fit = crate::linear::Ridge::fit(&scores, &y, 1e-12).unwrap();
        for (s, v) in scores.iter().zip(&y) {
            assert!((fit.predict(s) - v).abs() < 1e-6);
        }
        // The first weight points along X^T y.
        let one = Projection::pls(&rows, &y, 1).unwrap();
        assert_eq!(one.apply(&rows[0]).len(), 1);
    }
}
