//! The `drift` table: projections and drift per run, checkpoint and feature (columns in
//! the [module docs](super)).

use super::{RunKey, column};
use crate::{DriftError, DriftPoint, DriftSeries, Result};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use tables::TableKind;
use tables::arrow::array::{Float64Array, RecordBatch, StringArray, UInt64Array};
use tables::arrow::datatypes::{DataType, Field, Schema};

/// Kind of the `drift` table.
pub const DRIFT_TABLE: TableKind = TableKind {
    name: "drift",
    version: 1,
};

/// Write `runs` (each a run and its drift under one feature set) to `path` atomically.
///
/// Errors: a series with no features or no checkpoints, a point whose `projection` or
/// `drift` length is not `k`, the same (run, feature set) twice, or a write failure.
pub fn write_drift(
    path: &Path,
    runs: &[(RunKey, DriftSeries)],
    extra: &BTreeMap<String, String>,
) -> Result<()> {
    let mut seen = HashSet::new();
    for (key, s) in runs {
        let k = s.feature_names.len();
        let what = format!("{key:?} feature set `{}`", s.feature_set);
        if k == 0 || s.points.is_empty() {
            return Err(DriftError::InvalidArgument(format!(
                "{what}: a drift series needs features and checkpoints"
            )));
        }
        if s.points
            .iter()
            .any(|p| p.projection.len() != k || p.drift.len() != k)
        {
            return Err(DriftError::InvalidArgument(format!(
                "{what}: a point's projection or drift length is not {k}"
            )));
        }
        if !seen.insert((key, s.feature_set.as_str())) {
            return Err(DriftError::InvalidArgument(format!("{what} appears twice")));
        }
    }
    let rows = runs.iter().flat_map(|(key, s)| {
        s.points.iter().flat_map(move |p| {
            s.feature_names
                .iter()
                .enumerate()
                .map(move |(j, f)| (key, s, p, f, j))
        })
    });
    let (mut model, mut perturbation, mut seed, mut step) = (vec![], vec![], vec![], vec![]);
    let (mut feature_set, mut feature, mut projection, mut drift) =
        (vec![], vec![], vec![], vec![]);
    let (mut norm_drift, mut normaliser) = (vec![], vec![]);
    for (key, s, p, f, j) in rows {
        model.push(key.model.as_str());
        perturbation.push(key.perturbation.as_str());
        seed.push(key.seed);
        step.push(p.step);
        feature_set.push(s.feature_set.as_str());
        feature.push(f.as_str());
        projection.push(p.projection[j]);
        drift.push(p.drift[j]);
        norm_drift.push(p.activation_norm_drift);
        normaliser.push(s.normaliser);
    }
    let utf8 = |name| Field::new(name, DataType::Utf8, false);
    let f64_field = |name| Field::new(name, DataType::Float64, false);
    let schema = Schema::new(vec![
        utf8("model"),
        utf8("perturbation"),
        Field::new("seed", DataType::UInt64, false),
        Field::new("step", DataType::UInt64, false),
        utf8("feature_set"),
        utf8("feature"),
        f64_field("projection"),
        f64_field("drift"),
        f64_field("activation_norm_drift"),
        f64_field("normaliser"),
    ]);
    let batch = RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(StringArray::from(model)),
            Arc::new(StringArray::from(perturbation)),
            Arc::new(UInt64Array::from(seed)),
            Arc::new(UInt64Array::from(step)),
            Arc::new(StringArray::from(feature_set)),
            Arc::new(StringArray::from(feature)),
            Arc::new(Float64Array::from(projection)),
            Arc::new(Float64Array::from(drift)),
            Arc::new(Float64Array::from(norm_drift)),
            Arc::new(Float64Array::from(normaliser)),
        ],
    )?;
    tables::write_parquet(path, &batch, DRIFT_TABLE, extra)?;
    tracing::debug!(path = %path.display(), rows = batch.num_rows(), "wrote drift table");
    Ok(())
}

/// Read a `drift` table back into `(run, series)` pairs, in the order they were written.
///
/// Errors: the file is not a `drift` table of this version, or its rows do not form
/// complete series (steps out of order, a checkpoint missing features, a changing
/// normaliser).
pub fn read_drift(path: &Path) -> Result<Vec<(RunKey, DriftSeries)>> {
    let table = tables::read_parquet(path, Some(DRIFT_TABLE))?;
    let malformed = |reason: String| DriftError::MalformedTable {
        path: path.to_path_buf(),
        reason,
    };
    let mut out: Vec<(RunKey, DriftSeries)> = Vec::new();
    let mut index: HashMap<(RunKey, String), usize> = HashMap::new();
    for batch in &table.batches {
        let model = column::<StringArray>(batch, "model", path)?;
        let perturbation = column::<StringArray>(batch, "perturbation", path)?;
        let seed = column::<UInt64Array>(batch, "seed", path)?;
        let step = column::<UInt64Array>(batch, "step", path)?;
        let feature_set = column::<StringArray>(batch, "feature_set", path)?;
        let feature = column::<StringArray>(batch, "feature", path)?;
        let projection = column::<Float64Array>(batch, "projection", path)?;
        let drift = column::<Float64Array>(batch, "drift", path)?;
        let norm_drift = column::<Float64Array>(batch, "activation_norm_drift", path)?;
        let normaliser = column::<Float64Array>(batch, "normaliser", path)?;
        for i in 0..batch.num_rows() {
            let key = RunKey {
                model: model.value(i).to_string(),
                perturbation: perturbation.value(i).to_string(),
                seed: seed.value(i),
            };
            let group = (key.clone(), feature_set.value(i).to_string());
            let g = *index.entry(group).or_insert_with(|| {
                out.push((
                    key,
                    DriftSeries {
                        feature_set: feature_set.value(i).to_string(),
                        feature_names: Vec::new(),
                        normaliser: normaliser.value(i),
                        points: Vec::new(),
                    },
                ));
                out.len() - 1
            });
            let (key, series) = &mut out[g];
            let (step, name) = (step.value(i), feature.value(i));
            let at = |series: &DriftSeries| format!("{key:?} `{}` step {step}", series.feature_set);
            if series.normaliser != normaliser.value(i) {
                return Err(malformed(format!("{}: normaliser changes", at(series))));
            }
            if series.points.last().is_none_or(|p| p.step != step) {
                if let Some(prev) = series.points.last() {
                    if prev.step > step {
                        return Err(malformed(format!("{}: steps not ascending", at(series))));
                    }
                    if prev.projection.len() != series.feature_names.len() {
                        let reason = format!("{}: step {} lacks features", at(series), prev.step);
                        return Err(malformed(reason));
                    }
                }
                series.points.push(DriftPoint {
                    step,
                    projection: Vec::new(),
                    drift: Vec::new(),
                    activation_norm_drift: norm_drift.value(i),
                });
            }
            let first_point = series.points.len() == 1;
            let j = series.points.last().map_or(0, |p| p.projection.len());
            if first_point {
                if series.feature_names.iter().any(|n| n == name) {
                    return Err(malformed(format!("{}: `{name}` repeated", at(series))));
                }
                series.feature_names.push(name.to_string());
            } else if series.feature_names.get(j).map(String::as_str) != Some(name) {
                return Err(malformed(format!("{}: unexpected `{name}`", at(series))));
            }
            if series.points.last().map(|p| p.activation_norm_drift) != Some(norm_drift.value(i)) {
                return Err(malformed(format!(
                    "{}: activation_norm_drift changes",
                    at(series)
                )));
            }
            if let Some(point) = series.points.last_mut() {
                point.projection.push(projection.value(i));
                point.drift.push(drift.value(i));
            }
        }
    }
    for (key, series) in &out {
        if let Some(last) = series.points.last()
            && last.projection.len() != series.feature_names.len()
        {
            return Err(malformed(format!(
                "{key:?} `{}` step {}: missing features",
                series.feature_set, last.step
            )));
        }
    }
    Ok(out)
}
