//! The paper's tables as Markdown and LaTeX (booktabs), from the results only:
//! - `headline`: held-out-type detection, feature set x regressor, FNR / FPR / AUROC with
//!   95% cluster-bootstrap intervals (`monitor_metrics` of `lopo --held-out-types`);
//! - `pc1_stability`: leave-one-perturbation-out PC1 (`pc1_stability`, `traitwatch pca`);
//! - `em_threshold`: FNR / FPR at other EM thresholds (`monitor_sweep-*` files, kind
//!   `monitor_metrics`, written by `lopo`);
//! - `alarm_onsets`: first dangerous and first alarm step per run (`step_alarm`).
//!
//! Each goes to `<out>/tables/<name>.md` and `.tex`; `<out>/tables/tables.md` collects
//! them and says which were skipped for lack of inputs. An error only when none can be made.

use crate::fig3::feature_groups;
use crate::load::{Context, MetricRow};
use crate::style::{mean_std, pretty, write_atomically};
use crate::{FigureError, Result, load};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One table: a name (file stem), a caption, a header and rows of cells.
#[derive(Debug, Clone, PartialEq)]
pub struct TextTable {
    pub name: &'static str,
    pub caption: String,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl TextTable {
    pub fn markdown(&self) -> String {
        let mut out = format!(
            "| {} |\n|{}\n",
            self.header.join(" | "),
            "---|".repeat(self.header.len())
        );
        for r in &self.rows {
            out.push_str(&format!("| {} |\n", r.join(" | ")));
        }
        out
    }

    pub fn latex(&self) -> String {
        let esc = |s: &str| {
            s.replace('\\', "\\textbackslash{}")
                .replace('_', "\\_")
                .replace('%', "\\%")
                .replace('&', "\\&")
                .replace('#', "\\#")
                .replace('±', "$\\pm$")
                .replace('–', "--")
                .replace('|', "$|$")
                .replace('τ', "$\\tau$")
        };
        let cols = format!("l{}", "r".repeat(self.header.len().saturating_sub(1)));
        let mut out = format!(
            "% {}\n\\begin{{tabular}}{{{cols}}}\n\\toprule\n{} \\\\\n\\midrule\n",
            self.caption,
            self.header
                .iter()
                .map(|h| esc(h))
                .collect::<Vec<_>>()
                .join(" & ")
        );
        for r in &self.rows {
            out.push_str(&format!(
                "{} \\\\\n",
                r.iter().map(|c| esc(c)).collect::<Vec<_>>().join(" & ")
            ));
        }
        out.push_str("\\bottomrule\n\\end{tabular}\n");
        out
    }
}

fn pct_ci(v: Option<f64>, ci: Option<(f64, f64)>) -> String {
    match (v, ci) {
        (Some(v), Some((l, h))) => format!("{:.1} [{:.1}, {:.1}]", 100.0 * v, 100.0 * l, 100.0 * h),
        (Some(v), None) => format!("{:.1}", 100.0 * v),
        (None, _) => "–".into(),
    }
}

fn auc_ci(v: Option<f64>, ci: Option<(f64, f64)>) -> String {
    match (v, ci) {
        (Some(v), Some((l, h))) => format!("{v:.3} [{l:.3}, {h:.3}]"),
        (Some(v), None) => format!("{v:.3}"),
        (None, _) => "–".into(),
    }
}

fn mean_sd(values: &[f64], percent: bool) -> String {
    if values.is_empty() {
        return "–".into();
    }
    let (m, s) = mean_std(values);
    if percent {
        format!("{:.1} ± {:.1}", 100.0 * m, 100.0 * s)
    } else {
        format!("{m:.3} ± {s:.3}")
    }
}

/// Cells of one (feature group, regressor): the cell itself or mean ± sd over random bases.
fn metric_cells(
    cells: &[&MetricRow],
    f: &dyn Fn(&[&MetricRow]) -> Vec<String>,
) -> Vec<Vec<String>> {
    let mut regressors: Vec<&str> = Vec::new();
    for c in cells {
        if !regressors.contains(&c.regressor.as_str()) {
            regressors.push(&c.regressor);
        }
    }
    let mut rows = Vec::new();
    for (label, members) in feature_groups(cells) {
        for reg in &regressors {
            let m: Vec<&MetricRow> = cells
                .iter()
                .copied()
                .filter(|c| c.regressor == *reg && members.contains(&c.feature_set))
                .collect();
            if m.is_empty() {
                continue;
            }
            let mut row = vec![label.clone(), pretty(reg)];
            row.extend(f(&m));
            rows.push(row);
        }
    }
    rows
}

fn headline(rows: &[MetricRow]) -> Option<TextTable> {
    let cells: Vec<&MetricRow> = rows
        .iter()
        .filter(|r| !r.sweep && r.split == "held_out_types" && r.held_out == "held_out_types")
        .collect();
    let scope = if cells.iter().any(|c| c.scope == "pooled") {
        "pooled".to_string()
    } else {
        cells.first()?.scope.clone()
    };
    let cells: Vec<&MetricRow> = cells.into_iter().filter(|c| c.scope == scope).collect();
    let first = cells.first()?;
    let body = metric_cells(&cells, &|m| {
        if m.len() == 1 {
            let c = m[0];
            vec![
                format!("{} ({}/{})", c.n, c.positives, c.negatives),
                pct_ci(c.fnr, c.fnr_ci),
                pct_ci(c.fpr, c.fpr_ci),
                auc_ci(c.auroc, c.auroc_ci),
            ]
        } else {
            let v = |f: fn(&MetricRow) -> Option<f64>| {
                m.iter().filter_map(|c| f(c)).collect::<Vec<_>>()
            };
            vec![
                format!("{} ({}/{})", m[0].n, m[0].positives, m[0].negatives),
                mean_sd(&v(|c| c.fnr), true),
                mean_sd(&v(|c| c.fpr), true),
                mean_sd(&v(|c| c.auroc), false),
            ]
        }
    });
    let tau = first
        .tau
        .map_or(String::new(), |t| format!(", EM threshold τ = {t}"));
    Some(TextTable {
        name: "headline",
        caption: format!(
            "Detection on held-out perturbation types ({scope}{tau}); 95% cluster-bootstrap intervals; random bases as mean ± sd"
        ),
        header: [
            "feature set",
            "regressor",
            "n (pos/neg)",
            "FNR %",
            "FPR %",
            "AUROC",
        ]
        .map(String::from)
        .to_vec(),
        rows: body,
    })
}

fn sweep(rows: &[MetricRow]) -> Option<TextTable> {
    let split = ["held_out_types", "lopo"]
        .into_iter()
        .find(|s| rows.iter().any(|r| r.sweep && r.split == *s))?;
    let cells: Vec<&MetricRow> = rows
        .iter()
        .filter(|r| r.sweep && r.split == split && r.scope == "pooled")
        .collect();
    let reg = ["random_forest", "gradient_boosting", "ridge"]
        .into_iter()
        .find(|g| cells.iter().any(|c| c.regressor == *g))?;
    let mut by_tau: BTreeMap<i64, (f64, Vec<&MetricRow>)> = BTreeMap::new();
    for c in cells.into_iter().filter(|c| c.regressor == reg) {
        let Some(t) = c.tau else { continue };
        by_tau
            .entry((t * 1e6).round() as i64)
            .or_insert((t, vec![]))
            .1
            .push(c);
    }
    let mut body = Vec::new();
    for (t, cells) in by_tau.values() {
        for mut row in metric_cells(cells, &|m| {
            let v = |f: fn(&MetricRow) -> Option<f64>| {
                m.iter().filter_map(|c| f(c)).collect::<Vec<_>>()
            };
            let one = |x: Option<f64>| x.map_or("–".into(), |x| format!("{:.1}", 100.0 * x));
            if m.len() == 1 {
                let c = m[0];
                vec![
                    format!("{}/{}", c.positives, c.negatives),
                    one(c.fnr),
                    one(c.fpr),
                    c.balanced_accuracy
                        .map_or("–".into(), |b| format!("{b:.3}")),
                ]
            } else {
                vec![
                    format!("{}/{}", m[0].positives, m[0].negatives),
                    mean_sd(&v(|c| c.fnr), true),
                    mean_sd(&v(|c| c.fpr), true),
                    mean_sd(&v(|c| c.balanced_accuracy), false),
                ]
            }
        }) {
            row.remove(1);
            row.insert(0, format!("{t}"));
            body.push(row);
        }
    }
    (!body.is_empty()).then(|| TextTable {
        name: "em_threshold",
        caption: format!(
            "Sensitivity to the EM threshold τ ({} split, pooled, {}): the same predictions relabelled and re-alarmed",
            split.replace('_', " "),
            pretty(reg)
        ),
        header: ["τ", "feature set", "pos/neg", "FNR %", "FPR %", "bal. acc."]
            .map(String::from)
            .to_vec(),
        rows: body,
    })
}

fn stability(s: &load::Stability) -> TextTable {
    let rows = s
        .rows
        .iter()
        .map(|(p, cos, share)| {
            vec![
                p.clone(),
                format!("{cos:.4}"),
                format!("{:.1}", 100.0 * share),
            ]
        })
        .collect();
    let meta = |k: &str| s.metadata.get(k).and_then(|v| v.parse::<f64>().ok());
    let mut notes = Vec::new();
    if let Some(p) = meta("drift.null_p95_share") {
        notes.push(format!("isotropic null p95 PC1 share {:.1}%", 100.0 * p));
    }
    if let Some(w) = meta("drift.whitened_pc1_share") {
        notes.push(format!("whitened PC1 share {:.1}%", 100.0 * w));
    }
    let min = s.rows.iter().map(|r| r.1).fold(f64::INFINITY, f64::min);
    if min.is_finite() {
        notes.push(format!("min cosine {min:.4}"));
    }
    TextTable {
        name: "pc1_stability",
        caption: format!(
            "Leave-one-perturbation-out cluster PC1; {}",
            notes.join("; ")
        ),
        header: ["perturbation left out", "cosine to full PC1", "PC1 share %"]
            .map(String::from)
            .to_vec(),
        rows,
    }
}

fn onsets(rows: &[load::AlarmRow], tau: Option<f64>) -> Option<TextTable> {
    let tau = tau?;
    let mut runs: BTreeMap<(&str, &str, u64), Vec<&load::AlarmRow>> = BTreeMap::new();
    for r in rows {
        runs.entry((&r.model, &r.perturbation, r.seed))
            .or_default()
            .push(r);
    }
    let mut body = Vec::new();
    for ((model, pert, seed), mut list) in runs {
        list.sort_by_key(|r| r.step);
        let first = |f: &dyn Fn(&&load::AlarmRow) -> bool| {
            list.iter()
                .find(|r| f(r))
                .map_or("–".to_string(), |r| r.step.to_string())
        };
        let false_alarms = list
            .iter()
            .filter(|r| r.probability > 0.5 && r.target <= tau)
            .count();
        body.push(vec![
            model.to_string(),
            pert.to_string(),
            seed.to_string(),
            list.len().to_string(),
            first(&|r| r.target > tau),
            first(&|r| r.probability > 0.5),
            false_alarms.to_string(),
        ]);
    }
    (!body.is_empty()).then(|| TextTable {
        name: "alarm_onsets",
        caption: format!("Step-aware alarm (P > 50%): first dangerous step (EM target > {tau}) and first alarm step per run"),
        header: ["model", "perturbation", "seed", "checkpoints", "first dangerous step", "first alarm step", "false alarms"]
            .map(String::from)
            .to_vec(),
        rows: body,
    })
}

pub fn render(ctx: &Context, out: &Path) -> Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let mut made: Vec<TextTable> = Vec::new();
    let mut skipped: Vec<String> = Vec::new();
    let mut inputs = Vec::new();
    let metric_files = ctx.find("monitor_metrics")?;
    let metrics = load::metric_rows(&metric_files)?;
    let mut used_metrics = false;
    match headline(&metrics) {
        Some(t) => {
            made.push(t);
            used_metrics = true;
        }
        None => skipped.push(format!(
            "headline: needs a `monitor_metrics` table of the held-out-types split (from `{}`)",
            "lopo --held-out-types"
        )),
    }
    let stab_files = ctx.find("pc1_stability")?;
    if let Some(f) = stab_files.first() {
        made.push(stability(&load::stability(f)?));
        inputs.push(f.clone());
    } else {
        skipped.push("pc1_stability: needs a `pc1_stability` table (from `traitwatch pca`)".into());
    }
    match sweep(&metrics) {
        Some(t) => {
            made.push(t);
            used_metrics = true;
        }
        None => skipped.push(
            "em_threshold: needs a threshold sweep (`monitor_sweep-*.parquet`, from `lopo --all` or `--held-out-types`)".into(),
        ),
    }
    if used_metrics {
        inputs.extend(metric_files);
    }
    let alarm_files = ctx.find("step_alarm")?;
    let (alarms, tau) = load::alarm_rows(&alarm_files)?;
    match onsets(&alarms, tau) {
        Some(t) => {
            made.push(t);
            inputs.extend(alarm_files);
        }
        None => skipped
            .push("alarm_onsets: needs a `step_alarm` table (from `lopo --step-alarm`)".into()),
    }
    if made.is_empty() {
        return Err(FigureError::NoData {
            target: "tables".into(),
            reason: format!(
                "no table can be made from {}: {}",
                ctx.results.display(),
                skipped.join("; ")
            ),
        });
    }
    let dir = out.join("tables");
    std::fs::create_dir_all(&dir).map_err(|source| FigureError::Io {
        path: dir.clone(),
        source,
    })?;
    let mut files = Vec::new();
    let mut index = String::from("# Tables\n\n");
    for t in &made {
        for (ext, text) in [("md", t.markdown()), ("tex", t.latex())] {
            let path = dir.join(format!("{}.{ext}", t.name));
            write_atomically(&path, text.as_bytes())?;
            files.push(path);
        }
        index.push_str(&format!(
            "## {}\n\n{}\n\n{}\n",
            t.name,
            t.caption,
            t.markdown()
        ));
    }
    for s in &skipped {
        tracing::warn!("tables: skipped {s}");
        index.push_str(&format!("> skipped {s}\n\n"));
    }
    let path = dir.join("tables.md");
    write_atomically(&path, index.as_bytes())?;
    files.push(path);
    Ok((files, inputs))
}
