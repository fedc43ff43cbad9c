//! Evaluation results as Parquet (`monitor_metrics`, `monitor_predictions`) and as Markdown
//! and LaTeX tables (feature set x regressor x metric). An undefined rate prints as a dash.

use crate::Result;
use crate::dataset::MonitorData;
use crate::evaluate::{Cell, Interval, PredictionRow};
use std::collections::BTreeMap;
use std::path::Path;
use tables::TableKind;
use tables::arrow::array::ArrayRef;

pub const METRICS_TABLE: TableKind = TableKind {
    name: "monitor_metrics",
    version: 1,
};
pub const FOLDS_TABLE: TableKind = TableKind {
    name: "monitor_folds",
    version: 1,
};
pub const PREDICTIONS_TABLE: TableKind = TableKind {
    name: "monitor_predictions",
    version: 1,
};

use tables::col::{floats, strings, uints};

fn write(
    path: &Path,
    columns: Vec<(&str, ArrayRef)>,
    kind: TableKind,
    meta: &BTreeMap<String, String>,
) -> Result<()> {
    let batch = tables::record_batch(columns)
        .map_err(|e| crate::EvalError::Input(format!("building {}: {e}", kind.name)))?;
    Ok(tables::write_parquet(path, &batch, kind, meta)?)
}

/// Which checkpoint trained or tested in which fold: one row per (fold, checkpoint).
pub fn write_folds(
    path: &Path,
    data: &MonitorData,
    folds: &[crate::Fold],
    meta: &BTreeMap<String, String>,
) -> Result<()> {
    let rows: Vec<(usize, &crate::Fold, &str, usize)> = folds
        .iter()
        .enumerate()
        .flat_map(|(f, fold)| {
            let train = fold.train.iter().map(move |&i| (f, fold, "train", i));
            train.chain(fold.test.iter().map(move |&i| (f, fold, "test", i)))
        })
        .collect();
    let cp = |i: usize| &data.checkpoints[i];
    let held_out: Vec<String> = rows.iter().map(|r| r.1.held_out.join("+")).collect();
    let columns = vec![
        ("fold", uints(rows.iter().map(|r| r.0 as u64))),
        (
            "fold_model",
            strings(rows.iter().map(|r| r.1.model.as_str())),
        ),
        ("held_out", strings(held_out.iter().map(String::as_str))),
        ("role", strings(rows.iter().map(|r| r.2))),
        (
            "model",
            strings(rows.iter().map(|r| cp(r.3).model.as_str())),
        ),
        (
            "perturbation",
            strings(rows.iter().map(|r| cp(r.3).perturbation.as_str())),
        ),
        ("seed", uints(rows.iter().map(|r| cp(r.3).seed))),
        ("step", uints(rows.iter().map(|r| cp(r.3).step))),
    ];
    write(path, columns, FOLDS_TABLE, meta)
}

/// Write cells with the threshold each was computed at.
pub fn write_metrics(
    path: &Path,
    rows: &[(f64, Cell)],
    meta: &BTreeMap<String, String>,
) -> Result<()> {
    let cells: Vec<&Cell> = rows.iter().map(|r| &r.1).collect();
    let lo = |f: fn(&Cell) -> Interval| floats(cells.iter().map(move |c| f(c).map(|i| i.0)));
    let hi = |f: fn(&Cell) -> Interval| floats(cells.iter().map(move |c| f(c).map(|i| i.1)));
    let m = |f: fn(&Cell) -> Option<f64>| floats(cells.iter().map(|c| f(c)));
    let columns = vec![
        ("tau", floats(rows.iter().map(|r| Some(r.0)))),
        ("scope", strings(cells.iter().map(|c| c.scope.as_str()))),
        (
            "held_out",
            strings(cells.iter().map(|c| c.held_out.as_str())),
        ),
        (
            "feature_set",
            strings(cells.iter().map(|c| c.feature_set.as_str())),
        ),
        (
            "regressor",
            strings(cells.iter().map(|c| c.regressor.as_str())),
        ),
        ("n", uints(cells.iter().map(|c| c.n as u64))),
        (
            "positives",
            uints(cells.iter().map(|c| c.metrics.confusion.positives() as u64)),
        ),
        (
            "negatives",
            uints(cells.iter().map(|c| c.metrics.confusion.negatives() as u64)),
        ),
        ("fnr", m(|c| c.metrics.fnr)),
        ("fnr_low", lo(|c| c.fnr_ci)),
        ("fnr_high", hi(|c| c.fnr_ci)),
        ("fpr", m(|c| c.metrics.fpr)),
        ("fpr_low", lo(|c| c.fpr_ci)),
        ("fpr_high", hi(|c| c.fpr_ci)),
        ("accuracy", m(|c| c.metrics.accuracy)),
        ("balanced_accuracy", m(|c| c.metrics.balanced_accuracy)),
        ("auroc", m(|c| c.metrics.auroc)),
        ("auroc_low", lo(|c| c.auroc_ci)),
        ("auroc_high", hi(|c| c.auroc_ci)),
        (
            "bootstrap_dropped",
            uints(cells.iter().map(|c| c.bootstrap_dropped as u64)),
        ),
    ];
    write(path, columns, METRICS_TABLE, meta)
}

pub fn write_predictions(
    path: &Path,
    data: &MonitorData,
    rows: &[PredictionRow],
    tau: f64,
    meta: &BTreeMap<String, String>,
) -> Result<()> {
    let cp = |r: &PredictionRow| &data.checkpoints[r.prediction.checkpoint];
    let columns = vec![
        ("model", strings(rows.iter().map(|r| cp(r).model.as_str()))),
        (
            "perturbation",
            strings(rows.iter().map(|r| cp(r).perturbation.as_str())),
        ),
        ("seed", uints(rows.iter().map(|r| cp(r).seed))),
        ("step", uints(rows.iter().map(|r| cp(r).step))),
        (
            "feature_set",
            strings(rows.iter().map(|r| r.feature_set.as_str())),
        ),
        (
            "regressor",
            strings(rows.iter().map(|r| r.regressor.as_str())),
        ),
        ("fold", uints(rows.iter().map(|r| r.prediction.fold as u64))),
        ("target", floats(rows.iter().map(|r| Some(cp(r).target)))),
        (
            "predicted",
            floats(rows.iter().map(|r| Some(r.prediction.predicted))),
        ),
        (
            "dangerous",
            floats(
                rows.iter()
                    .map(|r| Some(f64::from(u8::from(cp(r).target > tau)))),
            ),
        ),
        (
            "alarm",
            floats(rows.iter().map(|r| {
                let at = crate::monitor::alarm_threshold(&r.regressor, tau);
                Some(f64::from(u8::from(r.prediction.predicted > at)))
            })),
        ),
    ];
    write(path, columns, PREDICTIONS_TABLE, meta)
}

fn pct(v: Option<f64>, ci: Interval) -> String {
    match (v, ci) {
        (Some(v), Some((l, h))) => format!("{:.1} [{:.1}, {:.1}]", 100.0 * v, 100.0 * l, 100.0 * h),
        (Some(v), None) => format!("{:.1}", 100.0 * v),
        (None, _) => "-".into(),
    }
}

fn auc(v: Option<f64>, ci: Interval) -> String {
    match (v, ci) {
        (Some(v), Some((l, h))) => format!("{v:.3} [{l:.3}, {h:.3}]"),
        (Some(v), None) => format!("{v:.3}"),
        (None, _) => "-".into(),
    }
}

const HEADER: [&str; 9] = [
    "scope",
    "held out",
    "feature set",
    "regressor",
    "n (pos/neg)",
    "FNR %",
    "FPR %",
    "bal. acc.",
    "AUROC",
];

fn cells_text(c: &Cell) -> [String; 9] {
    let conf = c.metrics.confusion;
    [
        c.scope.clone(),
        c.held_out.clone(),
        c.feature_set.clone(),
        c.regressor.clone(),
        format!("{} ({}/{})", c.n, conf.positives(), conf.negatives()),
        pct(c.metrics.fnr, c.fnr_ci),
        pct(c.metrics.fpr, c.fpr_ci),
        c.metrics
            .balanced_accuracy
            .map_or("-".into(), |v| format!("{v:.3}")),
        auc(c.metrics.auroc, c.auroc_ci),
    ]
}

/// Whether a feature set is one of the seeded random bases (`random_<k>`).
fn is_random_basis(name: &str) -> bool {
    name.strip_prefix("random_")
        .is_some_and(|k| k.parse::<usize>().is_ok())
}

fn mean_sd(values: &[f64], percent: bool) -> String {
    if values.is_empty() {
        return "-".into();
    }
    let scale = if percent { 100.0 } else { 1.0 };
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let sd = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0)).sqrt();
    if percent {
        format!("{:.1} ± {:.1}", scale * mean, scale * sd)
    } else {
        format!("{mean:.3} ± {sd:.3}")
    }
}

/// Table rows: each cell as is, except the random bases, which become one row per (scope,
/// regressor) with mean ± sd over the bases, where the first of them stood.
pub fn table_rows(cells: &[Cell]) -> Vec<[String; 9]> {
    let mut rows = Vec::new();
    let mut done: Vec<(&str, &str, &str)> = Vec::new();
    for c in cells {
        if !is_random_basis(&c.feature_set) {
            rows.push(cells_text(c));
            continue;
        }
        let group = (c.scope.as_str(), c.held_out.as_str(), c.regressor.as_str());
        if done.contains(&group) {
            continue;
        }
        done.push(group);
        let members: Vec<&Cell> = cells
            .iter()
            .filter(|x| {
                is_random_basis(&x.feature_set)
                    && (x.scope.as_str(), x.held_out.as_str(), x.regressor.as_str()) == group
            })
            .collect();
        let values = |f: fn(&Cell) -> Option<f64>| -> Vec<f64> {
            members.iter().filter_map(|c| f(c)).collect()
        };
        let conf = c.metrics.confusion;
        rows.push([
            c.scope.clone(),
            c.held_out.clone(),
            format!("random ({} bases)", members.len()),
            c.regressor.clone(),
            format!("{} ({}/{})", c.n, conf.positives(), conf.negatives()),
            mean_sd(&values(|c| c.metrics.fnr), true),
            mean_sd(&values(|c| c.metrics.fpr), true),
            mean_sd(&values(|c| c.metrics.balanced_accuracy), false),
            mean_sd(&values(|c| c.metrics.auroc), false),
        ]);
    }
    rows
}

/// A Markdown table (see [`table_rows`]).
pub fn markdown(cells: &[Cell]) -> String {
    let mut out = format!(
        "| {} |\n|{}\n",
        HEADER.join(" | "),
        "---|".repeat(HEADER.len())
    );
    for row in table_rows(cells) {
        out.push_str(&format!("| {} |\n", row.join(" | ")));
    }
    out.push_str(&dropped_note(cells));
    out
}

/// A line under the table when some interval left out bootstrap resamples (a resample
/// drawing no positive or no negative run has no FNR, FPR or AUROC): such an interval
/// describes only the resamples that held both classes, which a reader should know.
fn dropped_note(cells: &[Cell]) -> String {
    let hit: Vec<usize> = cells
        .iter()
        .map(|c| c.bootstrap_dropped)
        .filter(|&d| d > 0)
        .collect();
    match hit.iter().max() {
        None => String::new(),
        Some(most) => format!(
            "\nBootstrap: the intervals of {} of {} rows left out resamples on which the metric \
             was undefined (at most {most}; column `bootstrap_dropped` of `monitor_metrics`).\n",
            hit.len(),
            cells.len()
        ),
    }
}

/// A LaTeX tabular (booktabs; see [`table_rows`]).
pub fn latex(cells: &[Cell]) -> String {
    let esc = |s: &str| s.replace('_', "\\_").replace('%', "\\%");
    let mut out = format!(
        "\\begin{{tabular}}{{llll{}}}\n\\toprule\n{} \\\\\n\\midrule\n",
        "r".repeat(HEADER.len() - 4),
        HEADER
            .iter()
            .map(|h| esc(h))
            .collect::<Vec<_>>()
            .join(" & ")
    );
    for row in table_rows(cells) {
        let row: Vec<String> = row.iter().map(|s| esc(s).replace('±', "$\\pm$")).collect();
        out.push_str(&format!("{} \\\\\n", row.join(" & ")));
    }
    out.push_str("\\bottomrule\n\\end{tabular}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::metrics;

    fn cell(feature_set: &str, auroc_scores: &[f64]) -> Cell {
        let labels = [false, true, false, true];
        Cell {
            scope: "m".into(),
            held_out: "bad_medical".into(),
            feature_set: feature_set.into(),
            regressor: "ridge".into(),
            n: 4,
            metrics: metrics(auroc_scores, &labels, 0.05),
            fnr_ci: None,
            fpr_ci: None,
            auroc_ci: None,
            bootstrap_dropped: 0,
        }
    }

    #[test]
    fn random_bases_collapse_to_mean_and_sd() {
        let cells = [
            cell("alignment", &[0.0, 0.9, 0.0, 0.8]),
            cell("random_0", &[0.0, 0.9, 0.0, 0.8]),
            cell("random_1", &[0.9, 0.0, 0.8, 0.0]),
        ];
        let rows = table_rows(&cells);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1][2], "random (2 bases)");
        // AUROC 1 and 0: mean 0.5, sd 0.707.
        assert_eq!(rows[1][8], "0.500 ± 0.707");
        assert_eq!(rows[0][8], "1.000");
        let md = markdown(&cells);
        assert!(
            md.contains(
                "| m | bad_medical | alignment | ridge | 4 (2/2) | 0.0 | 0.0 | 1.000 | 1.000 |"
            ),
            "{md}"
        );
        assert!(!md.contains("Bootstrap:"), "nothing dropped, no note: {md}");
        let mut dropped = cells.clone();
        dropped[0].bootstrap_dropped = 37;
        assert!(
            markdown(&dropped).contains("intervals of 1 of 3 rows left out resamples")
                && markdown(&dropped).contains("at most 37"),
            "{}",
            markdown(&dropped)
        );
        let tex = latex(&cells);
        assert!(
            tex.contains("random (2 bases)")
                && tex.contains("$\\pm$")
                && tex.contains("\\bottomrule"),
            "{tex}"
        );
    }
}
