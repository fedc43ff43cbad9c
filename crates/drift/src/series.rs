//! Drift of one run: `x(t) = (p(t) - p(0)) / N` for every checkpoint (METHOD.md section 3).
//!
//! `p(t)` is the feature map applied to the prompt-mean activation `h̄(t)` (equal to the mean
//! of the per-prompt projections, since the map is linear) and `N = mean_i ||h_i(0)||`.

use crate::{ActivationSummary, DriftError, FeatureMap, Result, norm};
use serde::{Deserialize, Serialize};

/// One checkpoint's projections and drift.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftPoint {
    /// Optimiser step of the checkpoint (0 = base model).
    pub step: u64,
    /// `[k]` raw projections `p(t)`.
    pub projection: Vec<f64>,
    /// `[k]` drift `x(t) = (p(t) - p(0)) / N`; exactly 0 at step 0.
    pub drift: Vec<f64>,
    /// `||h̄(t) - h̄(0)|| / N`, the feature-free activation-norm baseline.
    pub activation_norm_drift: f64,
}

/// The drift of one run under one feature map, checkpoints in ascending step order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftSeries {
    /// The feature map's [`FeatureMap::feature_set`].
    pub feature_set: String,
    /// `[k]` feature names, the order of every `projection` and `drift`.
    pub feature_names: Vec<String>,
    /// `N = mean_i ||h_i(0)||`, from the step-0 summary.
    pub normaliser: f64,
    /// One point per checkpoint, step ascending; the first is step 0.
    pub points: Vec<DriftPoint>,
}

impl DriftSeries {
    /// The last checkpoint (the final drift vector enters the cluster PCA).
    pub fn last(&self) -> Option<&DriftPoint> {
        self.points.last()
    }
}

/// Drift of one run under `map`, from `(step, summary)` pairs in any order.
///
/// Errors: no step 0 ([`DriftError::NoStepZero`]), a repeated step, a step-0 normaliser
/// that is not finite and positive, a summary whose width is not `map.dim()`.
pub fn drift_series(
    points: &[(u64, ActivationSummary)],
    map: &dyn FeatureMap,
) -> Result<DriftSeries> {
    let mut sorted: Vec<&(u64, ActivationSummary)> = points.iter().collect();
    sorted.sort_by_key(|(step, _)| *step);
    if let Some(pair) = sorted.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(DriftError::DuplicateStep(pair[0].0));
    }
    let base = match sorted.first() {
        Some((0, summary)) => summary,
        _ => return Err(DriftError::NoStepZero),
    };
    let normaliser = base.mean_norm;
    if !(normaliser.is_finite() && normaliser > 0.0) {
        return Err(DriftError::BadNormaliser(normaliser));
    }
    let p0 = map.apply(&base.mean)?;
    let mut out = Vec::with_capacity(sorted.len());
    for (step, summary) in sorted {
        let projection = map.apply(&summary.mean)?;
        let drift = projection
            .iter()
            .zip(&p0)
            .map(|(p, q)| (p - q) / normaliser)
            .collect();
        let delta: Vec<f64> = summary
            .mean
            .iter()
            .zip(&base.mean)
            .map(|(a, b)| a - b)
            .collect();
        out.push(DriftPoint {
            step: *step,
            projection,
            drift,
            activation_norm_drift: norm(&delta) / normaliser,
        });
    }
    tracing::debug!(
        feature_set = map.feature_set(),
        checkpoints = out.len(),
        normaliser,
        "drift series"
    );
    Ok(DriftSeries {
        feature_set: map.feature_set().to_string(),
        feature_names: map.feature_names().to_vec(),
        normaliser,
        points: out,
    })
}
