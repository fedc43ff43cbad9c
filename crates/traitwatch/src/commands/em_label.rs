//! The label part of `traitwatch em`: the control prompts on the base model (scored once,
//! cached, or taken from `--reference`), the per-checkpoint log-odds shift, its tables and
//! the lines printed for it. The `em` crate computes; this file only caches and reports.

use anyhow::{Context, Result};
use burn::tensor::backend::Backend;
use em::controls::{ControlBank, ControlResult};
use em::{Pair, PairScore, Shift};
use indicatif::ProgressBar;
use llm::LoadedModel;
use std::path::Path;
use tables::RunKey;

/// The controls' scores on the base model, valid for the same model, items, batch size
/// and control prompts.
#[derive(serde::Serialize, serde::Deserialize, PartialEq)]
pub struct CachedControls {
    pub model: String,
    pub batch_size: usize,
    pub em_ids: Vec<String>,
    pub bank: ControlBank,
    /// One score list per control, in `bank.all()` order.
    pub scores: Vec<Vec<PairScore>>,
}

const CACHE_FILE: &str = "controls.json";

fn read(path: &Path) -> Option<CachedControls> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

fn same_setup(c: &CachedControls, want: &CachedControls) -> bool {
    c.model == want.model
        && c.batch_size == want.batch_size
        && c.em_ids == want.em_ids
        && c.bank == want.bank
}

/// The control scores for `bank`: from this run's cache, else from the reference run's
/// cache, else scored now on `lm` (which must be the base model) and cached.
#[allow(clippy::too_many_arguments)]
pub fn control_scores<B: Backend>(
    lm: &LoadedModel<B>,
    model: &str,
    bank: &ControlBank,
    pairs: &[Pair],
    batch_size: usize,
    cache_dir: &Path,
    reference: Option<&Path>,
    progress: &ProgressBar,
) -> Result<CachedControls> {
    let mut want = CachedControls {
        model: model.to_string(),
        batch_size,
        em_ids: pairs.iter().map(|p| p.id.clone()).collect(),
        bank: bank.clone(),
        scores: Vec::new(),
    };
    let path = cache_dir.join(CACHE_FILE);
    let candidates =
        std::iter::once(path.clone()).chain(reference.map(|r| r.join("scores").join(CACHE_FILE)));
    for candidate in candidates {
        if let Some(c) = read(&candidate).filter(|c| same_setup(c, &want)) {
            if candidate != path {
                tracing::info!("controls from {}", candidate.display());
                super::write_atomically(&path, serde_json::to_string(&c)?.as_bytes())?;
            }
            return Ok(c);
        }
    }
    progress.inc_length((2 * pairs.len() * bank.all().len()) as u64);
    for (kind, control) in bank.all() {
        progress.set_message(format!("{} control `{}`", kind.name(), control.name));
        let started = std::time::Instant::now();
        let s = em::score_pairs(lm, pairs, Some(&control.system), batch_size, Some(progress))?;
        want.scores.push(s);
        tracing::info!(
            control = %control.name,
            seconds = started.elapsed().as_secs_f64(),
            done = want.scores.len(),
            of = bank.all().len(),
            "scored control prompt"
        );
    }
    super::write_atomically(&path, serde_json::to_string(&want)?.as_bytes())
        .with_context(|| format!("caching the controls in {}", path.display()))?;
    Ok(want)
}

/// Print the controls as a table, with the tau check when a tau is given.
pub fn print_controls(results: &[ControlResult], tau: Option<f64>) {
    let scale = em::controls::scale(results).unwrap_or(f64::NAN);
    println!("controls on the base model (shift of the misaligned answer's log-odds, nats/token):");
    println!(
        "  {:<20} {:<8} {:>9} {:>20} {:>8} {:>9} {:>7} {:>9}",
        "control", "kind", "shift", "95% CI", "se", "p", "toward", "fraction"
    );
    for r in results {
        let s = &r.shift;
        println!(
            "  {:<20} {:<8} {:>+9.4} {:>20} {:>8.4} {:>9.2e} {:>6.0}% {:>+9.3}",
            r.name,
            r.kind.name(),
            s.mean,
            format!("[{:+.4}, {:+.4}]", s.low, s.high),
            s.se,
            s.p_value,
            100.0 * s.toward,
            s.mean / scale
        );
    }
    if let Some(tau) = tau {
        let problems = em::controls::check_tau(results, tau);
        if problems.is_empty() {
            println!(
                "tau = {tau} of the control scale = {:.4} nats/token: the pooled positive \
                 control clears it by more than 3 standard errors and 3x, every neutral \
                 control stays below it",
                tau * scale
            );
        } else {
            for p in problems {
                println!("tau = {tau} FAILS: {p}");
            }
        }
    }
}

/// The label at every checkpoint (against step 0) and its tables.
pub fn write_label(
    out: &Path,
    key: &RunKey,
    pairs: &[Pair],
    checkpoints: &[(u64, &[PairScore])],
    controls: Option<&[ControlResult]>,
    system: &str,
) -> Result<Vec<(u64, Vec<Shift>)>> {
    let Some((_, step0)) = checkpoints.iter().find(|(s, _)| *s == 0) else {
        return Ok(Vec::new());
    };
    let label: Vec<(u64, Vec<Shift>)> = checkpoints
        .iter()
        .map(|(step, scores)| (*step, em::shift::shift(pairs, scores, step0)))
        .collect();
    let scale = controls.and_then(em::controls::scale);
    em::table::write_label(&out.join("em_label.parquet"), key, &label, scale, system)?;
    if let Some(results) = controls {
        em::table::write_controls(&out.join("em_controls.parquet"), key, results)?;
    }
    Ok(label)
}

/// One line per checkpoint: the label, its interval, test and control fraction.
pub fn print_label(label: &[(u64, Vec<Shift>)], scale: Option<f64>) {
    for (step, shifts) in label {
        let s = &shifts[0];
        let fraction = scale.map_or(String::new(), |c| {
            format!(", {:+.3} of control", s.mean / c)
        });
        println!(
            "step {step:>5}: EM label {:+.4} nats/token [{:+.4}, {:+.4}], p = {:.2e}, {:.0}% of \
             items toward misaligned{fraction}",
            s.mean,
            s.low,
            s.high,
            s.p_value,
            100.0 * s.toward
        );
    }
}
