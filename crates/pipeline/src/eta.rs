//! Stage-time estimates learned from the store. Every finished stage's `meta.json` records
//! how long it took; a pending stage's built-in estimate (which assumes a ~135M model on a
//! 2-core CPU) is scaled by how far the recorded times of finished stages of the same kind
//! were from their own built-in estimates. That carries the model's size, the backend and
//! the machine into the ETA without knowing any of them: a killed `paper.toml` run on a GPU
//! resumes with an ETA from its own finished stages, not from the CPU constants.

use crate::plan::{Plan, Stage};
use crate::store::{META_FILE, Store};
use std::collections::BTreeMap;
use std::path::Path;

/// Recorded / estimated seconds per stage kind, from a plan's finished stages.
#[derive(Debug, Clone, Default)]
pub struct LearnedCost {
    ratio_by_kind: BTreeMap<&'static str, f64>,
    /// Over every finished stage: the fallback for a kind with none finished yet.
    overall: Option<f64>,
    samples: usize,
}

impl LearnedCost {
    /// Learn from the plan's stages that are complete in the store and recorded their time.
    pub fn learn(plan: &Plan, base: &dyn Fn(&Stage) -> f64) -> Self {
        let mut sums: BTreeMap<&'static str, (f64, f64)> = BTreeMap::new();
        let mut samples = 0;
        for (i, stage) in plan.stages.iter().enumerate() {
            // Only finished stages are estimated here: an estimate may read data files.
            let dir = plan.dir(i);
            let Some(recorded) = Store::is_complete(&dir)
                .then(|| recorded_seconds(&dir))
                .flatten()
            else {
                continue;
            };
            let estimated = base(stage);
            if estimated <= 0.0 {
                continue;
            }
            let entry = sums.entry(stage.kind.name()).or_default();
            entry.0 += recorded;
            entry.1 += estimated;
            samples += 1;
        }
        Self::from_sums(sums, samples)
    }

    fn from_sums(sums: BTreeMap<&'static str, (f64, f64)>, samples: usize) -> Self {
        let (recorded, estimated) = sums
            .values()
            .fold((0.0, 0.0), |(r, e), (r1, e1)| (r + r1, e + e1));
        let overall = (estimated > 0.0).then(|| recorded / estimated);
        let ratio_by_kind = sums
            .into_iter()
            .filter(|(_, (_, e))| *e > 0.0)
            .map(|(kind, (r, e))| (kind, r / e))
            .collect();
        Self {
            ratio_by_kind,
            overall,
            samples,
        }
    }

    /// The learned estimate of `stage`, given its built-in one.
    pub fn cost(&self, stage: &Stage, base: f64) -> f64 {
        let ratio = self
            .ratio_by_kind
            .get(stage.kind.name())
            .copied()
            .or(self.overall)
            .unwrap_or(1.0);
        base * ratio
    }

    /// Finished stages the estimates learned from.
    pub fn samples(&self) -> usize {
        self.samples
    }

    /// "finetune x0.62, em x1.30" (empty when nothing was learned).
    pub fn describe(&self) -> String {
        self.ratio_by_kind
            .iter()
            .map(|(kind, r)| format!("{kind} x{r:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The `seconds` a finished stage's `meta.json` recorded.
fn recorded_seconds(dir: &Path) -> Option<f64> {
    let text = std::fs::read_to_string(dir.join(META_FILE)).ok()?;
    let meta: serde_json::Value = serde_json::from_str(&text).ok()?;
    meta.get("seconds")?
        .as_f64()
        .filter(|s| s.is_finite() && *s >= 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_per_kind_with_the_overall_one_as_fallback() {
        let sums = BTreeMap::from([("finetune", (30.0, 60.0)), ("drift", (90.0, 30.0))]);
        let learned = LearnedCost::from_sums(sums, 4);
        assert_eq!(learned.ratio_by_kind["finetune"], 0.5);
        assert_eq!(learned.ratio_by_kind["drift"], 3.0);
        assert_eq!(learned.overall, Some(120.0 / 90.0));
        assert_eq!(learned.describe(), "drift x3.00, finetune x0.50");
        assert_eq!(LearnedCost::default().overall, None);
    }
}
