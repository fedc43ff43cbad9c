//! [`ActivationSummary`]: what drift needs from one checkpoint's activations.
//!
//! Drift along any linear feature map depends on the activations only through their mean
//! over prompts, so a checkpoint's `[n_prompts][d]` rows are reduced once to `h̄(t)` plus
//! the mean per-prompt norm (the normaliser `N` when `t = 0`).

use crate::{DriftError, Result, check_matrix};
use serde::{Deserialize, Serialize};

/// One checkpoint's activations at the drift layer, summarised over the measurement prompts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivationSummary {
    /// `[d]` prompt-mean activation `h̄(t) = mean_i h_i(t)`.
    pub mean: Vec<f64>,
    /// `mean_i ||h_i(t)||`, the mean of the per-prompt L2 norms.
    pub mean_norm: f64,
    /// Number of prompts `n` averaged over.
    pub n_prompts: usize,
}

impl ActivationSummary {
    /// Summarise `rows`, the `[n_prompts][d]` last-token activations of one checkpoint.
    ///
    /// Sums run in f64. Errors: no rows or zero-width rows ([`DriftError::Empty`]), rows of
    /// unequal length ([`DriftError::Ragged`]), a NaN or infinity ([`DriftError::NonFinite`]).
    pub fn from_rows(rows: &[Vec<f32>]) -> Result<Self> {
        let d = check_matrix("activation rows", rows)?;
        if d == 0 {
            return Err(DriftError::Empty {
                what: "activation row",
            });
        }
        let mut mean = vec![0.0f64; d];
        let mut norm_sum = 0.0f64;
        for row in rows {
            let mut sq = 0.0f64;
            for (m, &v) in mean.iter_mut().zip(row) {
                let v = f64::from(v);
                *m += v;
                sq += v * v;
            }
            norm_sum += sq.sqrt();
        }
        let n = rows.len() as f64;
        mean.iter_mut().for_each(|m| *m /= n);
        Ok(Self {
            mean,
            mean_norm: norm_sum / n,
            n_prompts: rows.len(),
        })
    }

    /// `d`, the activation width.
    pub fn dim(&self) -> usize {
        self.mean.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_mean_norm() {
        // Rows (3,4) and (0,0): mean (1.5, 2), norms 5 and 0, mean norm 2.5.
        let s = ActivationSummary::from_rows(&[vec![3.0, 4.0], vec![0.0, 0.0]]).unwrap();
        assert_eq!(s.mean, vec![1.5, 2.0]);
        assert_eq!(s.mean_norm, 2.5);
        assert_eq!(s.n_prompts, 2);
        assert_eq!(s.dim(), 2);
    }

    #[test]
    fn rejects_bad_rows() {
        assert!(matches!(
            ActivationSummary::from_rows(&[]),
            Err(DriftError::Empty { .. })
        ));
        assert!(ActivationSummary::from_rows(&[vec![]]).is_err());
        let err = ActivationSummary::from_rows(&[vec![1.0, 2.0], vec![1.0]]).unwrap_err();
        assert!(matches!(err, DriftError::Ragged { row: 1, .. }), "{err}");
        assert!(err.to_string().contains("ragged"), "{err}");
        let err = ActivationSummary::from_rows(&[vec![1.0, f32::NAN]]).unwrap_err();
        assert!(
            matches!(err, DriftError::NonFinite { row: 0, col: 1, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("non-finite"), "{err}");
    }
}
