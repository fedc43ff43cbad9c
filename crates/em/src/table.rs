//! The Parquet tables of the paired-choice judge.
//!
//! | table | file | columns |
//! |-------|------|---------|
//! | `em_items` v1 | `em_items.parquet` | model, perturbation, seed, step, bank (`em` or `traits`), item_id, group, a_logprob, b_logprob, a_tokens, b_tokens, b_wins |
//! | `em_summary` v1 | `em_summary.parquet` | model, perturbation, seed, step, statistic, group, n, count, rate, low, high, mean_margin, delta_from_step0 |
//!
//! In `em_items`, for bank `em` `a` is the aligned answer and `b` the misaligned one; for
//! bank `traits` `a` is the positive pole. In `em_summary`, `statistic` is one of
//! - `proxy_em`: `rate` = the **proxy EM rate**, the share of EM items whose misaligned
//!   answer wins; `group` the domain (`all` for the overall row);
//! - `shift_to_misaligned`: `rate` = the share of EM items whose margin moved toward the
//!   misaligned answer since step 0, `mean_margin` the mean change of the margin;
//! - `trait_positive`: `rate` = the share of a trait's items whose positive-pole answer
//!   wins; `group` the trait.
//!
//! | `em_label` v1 | `em_label.parquet` | model, perturbation, seed, step, group, n, mean_shift, se, low, high, t, p_value, toward, control_scale, control_fraction |
//! | `em_controls` v1 | `em_controls.parquet` | model, perturbation, seed, step, control, kind, n, mean_shift, se, low, high, t, p_value, toward, control_scale, control_fraction |
//!
//! `em_label` is the label the monitor uses (see `crate::shift`): `mean_shift` is the mean
//! paired change of the misaligned answer's log-odds since step 0 (nats per token, positive
//! toward misalignment), `low`/`high` its 95% bootstrap interval, `t`/`p_value` the paired
//! t-test, `toward` the share of items that moved toward the misaligned answer;
//! `control_fraction` = `mean_shift / control_scale`, where `control_scale` is the pooled
//! positive control's shift on the base model (NaN when no controls were measured).
//! `em_controls` holds those controls (see `crate::controls`), measured at step 0.
//!
//! `delta_from_step0` is `rate` minus the same statistic's and group's rate at step 0 (NaN
//! without a step 0). The system prompt the judge used is in the metadata (`em.system`).

use crate::bank::Pair;
use crate::controls::ControlResult;
use crate::judge::PairScore;
use crate::shift::Shift;
use crate::summary::GroupRate;
use crate::{EmError, Result};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use tables::arrow::array::{
    ArrayRef, BooleanArray, Float64Array, RecordBatch, StringArray, UInt64Array,
};
use tables::{RunKey, TableKind};

pub const ITEMS_TABLE: TableKind = TableKind {
    name: "em_items",
    version: 1,
};
pub const SUMMARY_TABLE: TableKind = TableKind {
    name: "em_summary",
    version: 1,
};
pub const LABEL_TABLE: TableKind = TableKind {
    name: "em_label",
    version: 1,
};
pub const CONTROLS_TABLE: TableKind = TableKind {
    name: "em_controls",
    version: 1,
};
/// Metadata key: the judge's system prompt (empty: the model's default).
pub const SYSTEM_KEY: &str = "em.system";

/// One checkpoint's scores of one bank.
#[derive(Debug, Clone)]
pub struct CheckpointScores<'a> {
    pub step: u64,
    /// `em` or `traits`.
    pub bank: &'a str,
    pub pairs: &'a [Pair],
    pub scores: &'a [PairScore],
}

pub(crate) fn batch(columns: Vec<(&str, ArrayRef)>) -> Result<RecordBatch> {
    tables::record_batch(columns)
        .map_err(|e| EmError::Input(format!("building a results table: {e}")))
}

pub(crate) use tables::col::strings;

/// The run's key columns, the step and one label column (`bank` or `statistic`).
pub(crate) fn key_columns(
    run: &RunKey,
    label: &'static str,
    rows: impl Iterator<Item = (u64, String)> + Clone,
) -> Vec<(&'static str, ArrayRef)> {
    let n = rows.clone().count();
    vec![
        ("model", strings(std::iter::repeat_n(run.model.as_str(), n))),
        (
            "perturbation",
            strings(std::iter::repeat_n(run.perturbation.as_str(), n)),
        ),
        (
            "seed",
            Arc::new(UInt64Array::from_iter_values(std::iter::repeat_n(
                run.seed, n,
            ))),
        ),
        (
            "step",
            Arc::new(UInt64Array::from_iter_values(rows.clone().map(|r| r.0))),
        ),
        (
            label,
            Arc::new(StringArray::from_iter_values(rows.map(|r| r.1))),
        ),
    ]
}

/// Write every item's scores for every checkpoint of `run`.
pub fn write_items(
    path: &Path,
    run: &RunKey,
    checkpoints: &[CheckpointScores<'_>],
    system: &str,
) -> Result<()> {
    let rows: Vec<(u64, &str, &Pair, &PairScore)> = checkpoints
        .iter()
        .flat_map(|c| {
            c.pairs
                .iter()
                .zip(c.scores)
                .map(move |(p, s)| (c.step, c.bank, p, s))
        })
        .collect();
    let f = |get: fn(&PairScore) -> f64| -> ArrayRef {
        Arc::new(Float64Array::from_iter_values(
            rows.iter().map(|r| get(r.3)),
        ))
    };
    let u = |get: fn(&PairScore) -> usize| -> ArrayRef {
        Arc::new(UInt64Array::from_iter_values(
            rows.iter().map(|r| get(r.3) as u64),
        ))
    };
    let mut columns = key_columns(run, "bank", rows.iter().map(|r| (r.0, r.1.to_string())));
    columns.extend([
        ("item_id", strings(rows.iter().map(|r| r.2.id.as_str()))),
        ("group", strings(rows.iter().map(|r| r.2.group.as_str()))),
        ("a_logprob", f(|s| s.a_logprob)),
        ("b_logprob", f(|s| s.b_logprob)),
        ("a_tokens", u(|s| s.a_tokens)),
        ("b_tokens", u(|s| s.b_tokens)),
        (
            "b_wins",
            Arc::new(BooleanArray::from_iter(
                rows.iter().map(|r| Some(r.3.b_wins())),
            )),
        ),
    ]);
    let meta = BTreeMap::from([(SYSTEM_KEY.to_string(), system.to_string())]);
    Ok(tables::write_parquet(
        path,
        &batch(columns)?,
        ITEMS_TABLE,
        &meta,
    )?)
}

/// Write rates per checkpoint: `(step, statistic, rates)`, with each group's change from
/// step 0.
pub fn write_summary(
    path: &Path,
    run: &RunKey,
    rates: &[(u64, String, Vec<GroupRate>)],
    system: &str,
) -> Result<()> {
    let base = |statistic: &str, group: &str| {
        rates
            .iter()
            .find(|(step, stat, _)| *step == 0 && stat == statistic)
            .and_then(|(_, _, r)| r.iter().find(|g| g.group == group))
            .map_or(f64::NAN, |g| g.rate)
    };
    let rows: Vec<(u64, &str, &GroupRate, f64)> = rates
        .iter()
        .flat_map(|(step, stat, r)| {
            r.iter()
                .map(move |g| (*step, stat.as_str(), g, g.rate - base(stat, &g.group)))
        })
        .collect();
    let f = |get: fn(&GroupRate) -> f64| -> ArrayRef {
        Arc::new(Float64Array::from_iter_values(
            rows.iter().map(|r| get(r.2)),
        ))
    };
    let mut columns = key_columns(
        run,
        "statistic",
        rows.iter().map(|r| (r.0, r.1.to_string())),
    );
    columns.extend([
        ("group", strings(rows.iter().map(|r| r.2.group.as_str()))),
        (
            "n",
            Arc::new(UInt64Array::from_iter_values(
                rows.iter().map(|r| r.2.n as u64),
            )),
        ),
        (
            "count",
            Arc::new(UInt64Array::from_iter_values(
                rows.iter().map(|r| r.2.count as u64),
            )),
        ),
        ("rate", f(|g| g.rate)),
        ("low", f(|g| g.low)),
        ("high", f(|g| g.high)),
        ("mean_margin", f(|g| g.mean_margin)),
        (
            "delta_from_step0",
            Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.3))),
        ),
    ]);
    let meta = BTreeMap::from([(SYSTEM_KEY.to_string(), system.to_string())]);
    Ok(tables::write_parquet(
        path,
        &batch(columns)?,
        SUMMARY_TABLE,
        &meta,
    )?)
}

/// The statistic columns of one [`Shift`] per row, with the control scale.
fn shift_columns(shifts: &[&Shift], scale: f64) -> Vec<(&'static str, ArrayRef)> {
    let f = |get: &dyn Fn(&Shift) -> f64| -> ArrayRef {
        Arc::new(Float64Array::from_iter_values(
            shifts.iter().map(|s| get(s)),
        ))
    };
    vec![
        (
            "n",
            Arc::new(UInt64Array::from_iter_values(
                shifts.iter().map(|s| s.n as u64),
            )),
        ),
        ("mean_shift", f(&|s| s.mean)),
        ("se", f(&|s| s.se)),
        ("low", f(&|s| s.low)),
        ("high", f(&|s| s.high)),
        ("t", f(&|s| s.t)),
        ("p_value", f(&|s| s.p_value)),
        ("toward", f(&|s| s.toward)),
        ("control_scale", f(&|_| scale)),
        ("control_fraction", f(&|s| s.mean / scale)),
    ]
}

/// Write the label per checkpoint: `(step, shifts)` with the overall group first.
/// `control_scale` is the pooled positive control's shift (None: not measured).
pub fn write_label(
    path: &Path,
    run: &RunKey,
    label: &[(u64, Vec<Shift>)],
    control_scale: Option<f64>,
    system: &str,
) -> Result<()> {
    let rows: Vec<(u64, &Shift)> = label
        .iter()
        .flat_map(|(step, shifts)| shifts.iter().map(move |s| (*step, s)))
        .collect();
    let mut columns = key_columns(run, "group", rows.iter().map(|r| (r.0, r.1.group.clone())));
    let shifts: Vec<&Shift> = rows.iter().map(|r| r.1).collect();
    columns.extend(shift_columns(&shifts, control_scale.unwrap_or(f64::NAN)));
    let meta = BTreeMap::from([(SYSTEM_KEY.to_string(), system.to_string())]);
    Ok(tables::write_parquet(
        path,
        &batch(columns)?,
        LABEL_TABLE,
        &meta,
    )?)
}

/// Write the controls measured on `run`'s base model (step 0), pooled control first.
pub fn write_controls(path: &Path, run: &RunKey, results: &[ControlResult]) -> Result<()> {
    let scale = crate::controls::scale(results).unwrap_or(f64::NAN);
    let mut columns = key_columns(run, "control", results.iter().map(|r| (0, r.name.clone())));
    columns.push(("kind", strings(results.iter().map(|r| r.kind.name()))));
    let shifts: Vec<&Shift> = results.iter().map(|r| &r.shift).collect();
    columns.extend(shift_columns(&shifts, scale));
    Ok(tables::write_parquet(
        path,
        &batch(columns)?,
        CONTROLS_TABLE,
        &BTreeMap::new(),
    )?)
}
