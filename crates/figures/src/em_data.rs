//! The EM label the figures draw, one number per checkpoint, read from whichever tables
//! `traitwatch em` wrote: the free-form judge's `em_rate` (`em_summary`), the paired-choice
//! log-odds shift as a fraction of the positive controls' shift (`em_label`,
//! `control_fraction`), or the old paired-choice `proxy_em` (`em_summary`). Per run, the
//! first of these that exists is used, in that order: the same preference as the monitor's
//! default (`eval::load_results`), so a figure shows the label the monitor was trained on.
//!
//! A rate lies in 0..1; a control fraction does not (a run can move further than the
//! controls, or away from misalignment), so axes clamp only the rates.

use crate::Result;
use crate::load::{CheckpointColumns, Context, f64s, strings};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Which label a row holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EmKind {
    /// The free-form judge's EM rate (0..1).
    FreeForm,
    /// The paired-choice log-odds shift since step 0, as a fraction of the positive controls'.
    LogOdds,
    /// The paired-choice share of items the misaligned answer wins (0..1).
    Proxy,
}

impl EmKind {
    /// A rate, bounded to 0..1 (so 0..100% on an axis).
    pub fn bounded(self) -> bool {
        !matches!(self, Self::LogOdds)
    }

    /// The axis text for values in % (the value x 100).
    pub fn axis_label(self) -> &'static str {
        match self {
            Self::FreeForm => "EM rate (%, free-form judge)",
            Self::LogOdds => "EM label (% of the positive controls' shift)",
            Self::Proxy => "proxy EM (%, paired choice)",
        }
    }

    /// The table column or statistic it comes from.
    pub fn statistic(self) -> &'static str {
        match self {
            Self::FreeForm => "em_rate",
            Self::LogOdds => "control_fraction",
            Self::Proxy => "proxy_em",
        }
    }
}

/// One checkpoint's overall EM label.
#[derive(Debug, Clone, PartialEq)]
pub struct EmRow {
    pub model: String,
    pub perturbation: String,
    pub seed: u64,
    pub step: u64,
    pub kind: EmKind,
    /// A fraction: the rate, or the shift over the controls' shift. Figures draw it x100.
    pub value: f64,
}

impl EmRow {
    pub fn run(&self) -> (&str, &str, u64) {
        (&self.model, &self.perturbation, self.seed)
    }
}

/// The axis label for `rows` (their kinds, mixed if they differ).
pub fn axis_label(rows: &[EmRow]) -> String {
    let kinds: BTreeSet<EmKind> = rows.iter().map(|r| r.kind).collect();
    match kinds.len() {
        0 => EmKind::FreeForm.axis_label().to_string(),
        1 => kinds
            .into_iter()
            .next()
            .map_or("", EmKind::axis_label)
            .to_string(),
        _ => format!(
            "EM ({}; mixed labels)",
            kinds
                .iter()
                .map(|k| k.statistic())
                .collect::<Vec<_>>()
                .join(" / ")
        ),
    }
}

/// The range an axis of `rows` x100 may show: 0..100 for rates, unbounded otherwise.
pub fn axis_bounds(rows: &[EmRow]) -> (f64, f64) {
    if rows.iter().all(|r| r.kind.bounded()) {
        (0.0, 100.0)
    } else {
        (f64::NEG_INFINITY, f64::INFINITY)
    }
}

/// Every checkpoint's EM label under the results, and the tables read. A run's rows are
/// all of one kind (see the module docs for which).
pub fn em_rows(ctx: &Context) -> Result<(Vec<EmRow>, Vec<PathBuf>)> {
    let summary = ctx.find("em_summary")?;
    let label = ctx.find("em_label")?;
    let mut rows = summary_rows(&summary)?;
    rows.extend(label_rows(&label)?);
    Ok((keep_preferred(rows), [summary, label].concat()))
}

/// Per run, the rows of its most preferred kind; within a kind, a checkpoint found in two
/// files keeps the first.
fn keep_preferred(rows: Vec<EmRow>) -> Vec<EmRow> {
    let mut best: BTreeMap<(String, String, u64), EmKind> = BTreeMap::new();
    for r in &rows {
        let key = (r.model.clone(), r.perturbation.clone(), r.seed);
        let kind = best.entry(key).or_insert(r.kind);
        *kind = (*kind).min(r.kind);
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for r in rows {
        let key = (r.model.clone(), r.perturbation.clone(), r.seed);
        if best.get(&key) != Some(&r.kind) {
            continue;
        }
        if !seen.insert((key, r.step)) {
            tracing::warn!(
                "EM label of {} {} seed {} step {} found in two tables; the first is kept",
                r.model,
                r.perturbation,
                r.seed,
                r.step
            );
            continue;
        }
        out.push(r);
    }
    out.sort_by(|a, b| (a.run(), a.step).cmp(&(b.run(), b.step)));
    out
}

/// The overall (`all`) `em_rate` and `proxy_em` rows of `em_summary` tables.
fn summary_rows(files: &[PathBuf]) -> Result<Vec<EmRow>> {
    let mut out = Vec::new();
    for path in files {
        read(
            path,
            "rate",
            &mut |b, i| {
                let stat = strings(b, "statistic", path)?.value(i);
                let group = strings(b, "group", path)?.value(i);
                Ok(match (group, stat) {
                    ("all", "em_rate") => Some(EmKind::FreeForm),
                    ("all", "proxy_em") => Some(EmKind::Proxy),
                    _ => None,
                })
            },
            &mut out,
        )?;
    }
    Ok(out)
}

/// The overall (`all`) rows of `em_label` tables that were measured against controls.
fn label_rows(files: &[PathBuf]) -> Result<Vec<EmRow>> {
    let mut out = Vec::new();
    for path in files {
        read(
            path,
            "control_fraction",
            &mut |b, i| {
                Ok((strings(b, "group", path)?.value(i) == "all").then_some(EmKind::LogOdds))
            },
            &mut out,
        )?;
    }
    Ok(out)
}

type Classify<'a> =
    dyn FnMut(&tables::arrow::array::RecordBatch, usize) -> Result<Option<EmKind>> + 'a;

/// Push the rows of `path` that `classify` gives a kind, with a finite `value_column`.
fn read(
    path: &Path,
    value_column: &str,
    classify: &mut Classify,
    out: &mut Vec<EmRow>,
) -> Result<()> {
    let table = tables::read_parquet(path, None)?;
    for b in &table.batches {
        let key = CheckpointColumns::of(b, path)?;
        let value = f64s(b, value_column, path)?;
        for i in 0..b.num_rows() {
            let Some(kind) = classify(b, i)? else {
                continue;
            };
            if !value.value(i).is_finite() {
                continue;
            }
            let (model, perturbation, seed, step) = key.key(i);
            out.push(EmRow {
                model,
                perturbation,
                seed,
                step,
                kind,
                value: value.value(i),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(pert: &str, step: u64, kind: EmKind, value: f64) -> EmRow {
        EmRow {
            model: "m".into(),
            perturbation: pert.into(),
            seed: 1,
            step,
            kind,
            value,
        }
    }

    #[test]
    fn a_run_keeps_only_its_preferred_label() {
        let rows = vec![
            row("a", 4, EmKind::Proxy, 0.6),
            row("a", 4, EmKind::LogOdds, -0.3),
            row("a", 16, EmKind::LogOdds, 1.2),
            row("b", 4, EmKind::Proxy, 0.55),
            row("c", 4, EmKind::FreeForm, 0.1),
            row("c", 4, EmKind::LogOdds, 0.9),
        ];
        let kept = keep_preferred(rows);
        let kinds: Vec<(&str, u64, EmKind)> = kept
            .iter()
            .map(|r| (r.perturbation.as_str(), r.step, r.kind))
            .collect();
        assert_eq!(
            kinds,
            [
                ("a", 4, EmKind::LogOdds),
                ("a", 16, EmKind::LogOdds),
                ("b", 4, EmKind::Proxy),
                ("c", 4, EmKind::FreeForm)
            ]
        );
    }

    #[test]
    fn only_rates_bound_the_axis() {
        assert_eq!(
            axis_bounds(&[row("a", 1, EmKind::Proxy, 0.5)]),
            (0.0, 100.0)
        );
        let mixed = [
            row("a", 1, EmKind::Proxy, 0.5),
            row("b", 1, EmKind::LogOdds, 1.4),
        ];
        assert_eq!(axis_bounds(&mixed).1, f64::INFINITY);
        assert!(axis_label(&mixed).contains("mixed"));
    }
}
