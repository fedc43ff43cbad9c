//! The cluster PC1 (METHOD.md section 4) and its stability checks.
//!
//! [`ClusterPc1::fit`] runs the centred PCA over the final drift vectors of the calibration
//! runs and fixes PC1's sign so the sign feature (harmlessness) loads positively; it is then
//! frozen (serde) and applied without centring: `signed PC1 = x·u`, `|PC1| = |x·u|`.
//! Checks: [`lopo_stability`] (leave one perturbation out), [`isotropic_null`] (what PC1
//! share random directions with the observed norms reach), [`whitened_pc1_share`].

use crate::rng::unit_vector;
use crate::{DriftError, Pca, Result, check_matrix, dot, norm};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

/// The frozen cluster PC1: a unit direction `u` (`[k]`) in drift space, plus the full PCA
/// it came from. Build with [`ClusterPc1::fit`]; store and reload as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterPc1 {
    feature_names: Vec<String>,
    sign_feature: String,
    /// All components; `components[0]` is `u`, sign-fixed by `sign_feature`.
    pca: Pca,
}

impl ClusterPc1 {
    /// Fit on `final_drifts` (`[n_runs][k]`, one final drift vector per calibration run)
    /// with `feature_names` (`[k]`), keeping all `min(n_runs, k)` components, and flip PC1
    /// so its `sign_feature` loading is positive (left as is if exactly 0).
    ///
    /// Errors: as [`Pca::fit`]; names not matching `k`; `sign_feature` not among the names.
    pub fn fit(
        final_drifts: &[Vec<f64>],
        feature_names: &[String],
        sign_feature: &str,
    ) -> Result<Self> {
        let k = check_matrix("final drift vectors", final_drifts)?;
        if feature_names.len() != k {
            return Err(DriftError::DimensionMismatch {
                what: "feature names vs drift vectors",
                expected: k,
                found: feature_names.len(),
            });
        }
        let sign_index = feature_names
            .iter()
            .position(|n| n == sign_feature)
            .ok_or_else(|| DriftError::UnknownFeature(sign_feature.to_string()))?;
        let mut pca = Pca::fit(final_drifts, usize::MAX)?;
        if let Some(u) = pca.components.first_mut()
            && u[sign_index] < 0.0
        {
            u.iter_mut().for_each(|x| *x = -*x);
        }
        Ok(Self {
            feature_names: feature_names.to_vec(),
            sign_feature: sign_feature.to_string(),
            pca,
        })
    }

    /// `[k]` PC1 loadings `u` (unit norm), in [`ClusterPc1::feature_names`] order.
    pub fn loadings(&self) -> &[f64] {
        self.pca.components.first().map_or(&[], Vec::as_slice)
    }

    /// `[k]` feature names.
    pub fn feature_names(&self) -> &[String] {
        &self.feature_names
    }

    /// The feature whose PC1 loading is made positive.
    pub fn sign_feature(&self) -> &str {
        &self.sign_feature
    }

    /// `[k]` mean of the fitted drift vectors (not used by [`ClusterPc1::signed`]).
    pub fn mean(&self) -> &[f64] {
        &self.pca.mean
    }

    /// `[c]` explained-variance ratios of all components (summing to 1).
    pub fn explained_variance_ratio(&self) -> &[f64] {
        &self.pca.explained_variance_ratio
    }

    /// PC1's share of the total variance.
    pub fn pc1_share(&self) -> f64 {
        self.pca
            .explained_variance_ratio
            .first()
            .copied()
            .unwrap_or(0.0)
    }

    /// The underlying PCA, with PC1 sign-fixed as in [`ClusterPc1::loadings`].
    pub fn pca(&self) -> &Pca {
        &self.pca
    }

    /// Signed PC1 of a drift vector `x` (`[k]`): `x·u`, no centring.
    pub fn signed(&self, x: &[f64]) -> Result<f64> {
        let u = self.loadings();
        if x.len() != u.len() {
            return Err(DriftError::DimensionMismatch {
                what: "drift vector vs PC1",
                expected: u.len(),
                found: x.len(),
            });
        }
        Ok(dot(x, u))
    }

    /// `|PC1|(x) = |x·u|`.
    pub fn magnitude(&self, x: &[f64]) -> Result<f64> {
        Ok(self.signed(x)?.abs())
    }

    /// `(||x||, cos(x, u))`: how far the run drifted and how aligned with PC1 it is.
    /// The cosine is 0 for a zero vector.
    pub fn decompose(&self, x: &[f64]) -> Result<(f64, f64)> {
        let s = self.signed(x)?;
        let n = norm(x);
        Ok((n, if n > 0.0 { s / n } else { 0.0 }))
    }
}

/// Leave-one-perturbation-out stability of PC1.
///
/// `groups` holds `(perturbation, final drift vector [k])` for every calibration run. For
/// each distinct perturbation, in order of first appearance, PC1 is refitted without its
/// runs; returns `(perturbation left out, cosine of that PC1 to the full PC1, its PC1
/// share)`. Both PC1s are sign-fixed by `sign_feature` first, so the cosine is signed.
/// Errors: as [`ClusterPc1::fit`], including fewer than 2 runs left after leaving one out.
pub fn lopo_stability(
    groups: &[(String, Vec<f64>)],
    feature_names: &[String],
    sign_feature: &str,
) -> Result<Vec<(String, f64, f64)>> {
    let all: Vec<Vec<f64>> = groups.iter().map(|(_, x)| x.clone()).collect();
    let full = ClusterPc1::fit(&all, feature_names, sign_feature)?;
    let mut perturbations: Vec<&str> = Vec::new();
    for (p, _) in groups {
        if !perturbations.contains(&p.as_str()) {
            perturbations.push(p);
        }
    }
    let mut out = Vec::with_capacity(perturbations.len());
    for left_out in perturbations {
        let rest: Vec<Vec<f64>> = groups
            .iter()
            .filter(|(p, _)| p != left_out)
            .map(|(_, x)| x.clone())
            .collect();
        let part = ClusterPc1::fit(&rest, feature_names, sign_feature)?;
        let cosine = dot(part.loadings(), full.loadings());
        tracing::debug!(left_out, cosine, share = part.pc1_share(), "LOPO PC1");
        out.push((left_out.to_string(), cosine, part.pc1_share()));
    }
    Ok(out)
}

/// The isotropic null for the PC1 share.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NullSummary {
    /// Mean PC1 share over the draws.
    pub mean_share: f64,
    /// 95th percentile of the PC1 share (linear interpolation between order statistics:
    /// position `0.95 * (draws - 1)` in the sorted shares, as numpy's default).
    pub p95_share: f64,
    /// Number of draws.
    pub draws: usize,
}

/// PC1 share when the drift vectors point in random directions: each draw builds
/// `norms.len()` vectors in `R^k`, uniform random unit directions scaled by the observed
/// `norms`, fits the centred PCA and records PC1's share. Deterministic for `seed`.
///
/// Errors: fewer than 2 norms, a negative or non-finite norm, `k == 0`, `draws == 0`,
/// all norms zero.
pub fn isotropic_null(norms: &[f64], k: usize, draws: usize, seed: u64) -> Result<NullSummary> {
    if norms.len() < 2 {
        return Err(DriftError::TooFewRows {
            what: "isotropic null",
            needed: 2,
            found: norms.len(),
        });
    }
    if let Some(bad) = norms.iter().find(|r| !(r.is_finite() && **r >= 0.0)) {
        return Err(DriftError::InvalidArgument(format!(
            "isotropic null: drift norm {bad} is not finite and >= 0"
        )));
    }
    if k == 0 || draws == 0 {
        return Err(DriftError::InvalidArgument(format!(
            "isotropic null needs k >= 1 and draws >= 1, got k = {k}, draws = {draws}"
        )));
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let mut shares = Vec::with_capacity(draws);
    for _ in 0..draws {
        let rows: Vec<Vec<f64>> = norms
            .iter()
            .map(|r| {
                unit_vector(&mut rng, k)
                    .into_iter()
                    .map(|x| x * r)
                    .collect()
            })
            .collect();
        let pca = Pca::fit(&rows, 1)?;
        shares.push(pca.explained_variance_ratio[0]);
    }
    let mean_share = shares.iter().sum::<f64>() / draws as f64;
    shares.sort_by(f64::total_cmp);
    Ok(NullSummary {
        mean_share,
        p95_share: quantile_sorted(&shares, 0.95),
        draws,
    })
}

/// Quantile `q` of non-empty ascending `sorted`, interpolating linearly between the order
/// statistics around position `q * (len - 1)`.
fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    sorted[lo] + (pos - lo as f64) * (sorted[hi] - sorted[lo])
}

/// The whitening control: PC1 share after scaling each feature of `x` (`[n][k]`) to unit
/// sample variance. Features with zero variance are left unscaled. Errors: as [`Pca::fit`].
pub fn whitened_pc1_share(x: &[Vec<f64>]) -> Result<f64> {
    let k = check_matrix("whitening input", x)?;
    let n = x.len();
    if n < 2 {
        return Err(DriftError::TooFewRows {
            what: "whitened PCA",
            needed: 2,
            found: n,
        });
    }
    let scale: Vec<f64> = (0..k)
        .map(|j| {
            let mean = x.iter().map(|r| r[j]).sum::<f64>() / n as f64;
            let var = x.iter().map(|r| (r[j] - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
            if var > 0.0 { var.sqrt() } else { 1.0 }
        })
        .collect();
    let scaled: Vec<Vec<f64>> = x
        .iter()
        .map(|r| r.iter().zip(&scale).map(|(v, s)| v / s).collect())
        .collect();
    Ok(Pca::fit(&scaled, 1)?.explained_variance_ratio[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_interpolates() {
        let s: Vec<f64> = (0..=100).map(f64::from).collect();
        assert_eq!(quantile_sorted(&s, 0.95), 95.0);
        assert_eq!(quantile_sorted(&[1.0, 2.0], 0.95), 1.95);
        assert_eq!(quantile_sorted(&[3.0], 0.95), 3.0);
    }

    #[test]
    fn null_argument_errors() {
        assert!(isotropic_null(&[1.0], 3, 10, 0).is_err());
        assert!(isotropic_null(&[1.0, f64::NAN], 3, 10, 0).is_err());
        assert!(isotropic_null(&[1.0, 1.0], 0, 10, 0).is_err());
        assert!(isotropic_null(&[1.0, 1.0], 3, 0, 0).is_err());
    }
}
