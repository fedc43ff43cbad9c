//! Mean-centred, unscaled PCA by SVD (nalgebra), with a deterministic sign per component.
//!
//! For centred data `X` (`[n][k]`), `X = U S V^T`: the rows of `V^T` are the components, the
//! sample variance along component `j` is `s_j^2 / (n - 1)`, and its share of the total
//! variance is `s_j^2 / sum_i s_i^2`, the sum running over all `min(n, k)` singular values.

use crate::{DriftError, Result, check_matrix, dot};
use nalgebra::DMatrix;
use serde::{Deserialize, Serialize};

/// SVD stops and reports [`DriftError::SvdFailed`] after this many iterations; the implicit-
/// shift QR needs a few per singular value, so this only catches pathological inputs.
const SVD_MAX_ITERATIONS: usize = 100_000;

/// A fitted PCA over `n` samples of `k` features, keeping `c` components.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pca {
    /// `[k]` per-feature mean removed before the SVD.
    pub mean: Vec<f64>,
    /// `[c][k]` orthonormal components, by decreasing variance. Sign: each component's
    /// entry of largest magnitude is positive (the first such entry on ties).
    pub components: Vec<Vec<f64>>,
    /// `[c]` sample variance along each component, `s_j^2 / (n - 1)`.
    pub explained_variance: Vec<f64>,
    /// `[c]` share of the total variance; over all `min(n, k)` components it sums to 1.
    pub explained_variance_ratio: Vec<f64>,
    /// `[c]` singular values `s_j` of the centred data, decreasing.
    pub singular_values: Vec<f64>,
    /// `n`, the number of samples fitted.
    pub n_samples: usize,
}

impl Pca {
    /// Fit on `x` (`[n][k]`), keeping `min(n_components, n, k)` components.
    ///
    /// Errors: fewer than 2 rows, ragged or non-finite rows, zero-width rows,
    /// `n_components == 0`, all rows identical ([`DriftError::ZeroVariance`]).
    pub fn fit(x: &[Vec<f64>], n_components: usize) -> Result<Self> {
        let k = check_matrix("PCA input", x)?;
        let n = x.len();
        if n < 2 {
            return Err(DriftError::TooFewRows {
                what: "PCA",
                needed: 2,
                found: n,
            });
        }
        if k == 0 {
            return Err(DriftError::Empty {
                what: "PCA feature vector",
            });
        }
        if n_components == 0 {
            return Err(DriftError::InvalidArgument(
                "PCA needs n_components >= 1".into(),
            ));
        }
        let mean: Vec<f64> = (0..k)
            .map(|j| x.iter().map(|row| row[j]).sum::<f64>() / n as f64)
            .collect();
        let centred = DMatrix::from_fn(n, k, |i, j| x[i][j] - mean[j]);
        let svd = centred
            .try_svd(false, true, f64::EPSILON * 5.0, SVD_MAX_ITERATIONS)
            .ok_or(DriftError::SvdFailed)?;
        let v_t = svd.v_t.ok_or(DriftError::SvdFailed)?;
        let all: Vec<f64> = svd.singular_values.iter().copied().collect();
        let total: f64 = all.iter().map(|s| s * s).sum();
        if total <= 0.0 {
            return Err(DriftError::ZeroVariance("PCA input"));
        }
        let c = n_components.min(all.len());
        let components: Vec<Vec<f64>> = (0..c)
            .map(|j| sign_fixed(v_t.row(j).iter().copied().collect()))
            .collect();
        let singular_values = all[..c].to_vec();
        tracing::debug!(n, k, c, pc1_share = all[0] * all[0] / total, "PCA fit");
        Ok(Self {
            mean,
            components,
            explained_variance: singular_values
                .iter()
                .map(|s| s * s / (n - 1) as f64)
                .collect(),
            explained_variance_ratio: singular_values.iter().map(|s| s * s / total).collect(),
            singular_values,
            n_samples: n,
        })
    }

    /// Scores `[c]` of one sample `x` (`[k]`): `(x - mean) · components[j]`.
    pub fn transform(&self, x: &[f64]) -> Result<Vec<f64>> {
        if x.len() != self.mean.len() {
            return Err(DriftError::DimensionMismatch {
                what: "PCA transform input",
                expected: self.mean.len(),
                found: x.len(),
            });
        }
        let centred: Vec<f64> = x.iter().zip(&self.mean).map(|(a, m)| a - m).collect();
        Ok(self.components.iter().map(|c| dot(c, &centred)).collect())
    }
}

/// Flip `v` so that its entry of largest magnitude (the first, on ties) is positive.
fn sign_fixed(v: Vec<f64>) -> Vec<f64> {
    let mut pivot = 0.0f64;
    for &x in &v {
        if x.abs() > pivot.abs() {
            pivot = x;
        }
    }
    if pivot < 0.0 {
        v.into_iter().map(|x| -x).collect()
    } else {
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_convention() {
        assert_eq!(sign_fixed(vec![0.1, -0.9, 0.3]), vec![-0.1, 0.9, -0.3]);
        assert_eq!(sign_fixed(vec![-0.5, 0.5]), vec![0.5, -0.5]);
    }

    #[test]
    fn errors() {
        let one = Pca::fit(&[vec![1.0, 2.0]], 1).unwrap_err();
        assert!(
            matches!(one, DriftError::TooFewRows { found: 1, .. }),
            "{one}"
        );
        let same = Pca::fit(&[vec![1.0, 2.0], vec![1.0, 2.0]], 1).unwrap_err();
        assert!(same.to_string().contains("zero total variance"), "{same}");
        let nan = Pca::fit(&[vec![1.0], vec![f64::NAN]], 1).unwrap_err();
        assert!(matches!(nan, DriftError::NonFinite { row: 1, .. }), "{nan}");
        assert!(Pca::fit(&[vec![1.0], vec![2.0]], 0).is_err());
    }
}
