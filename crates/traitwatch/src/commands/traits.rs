//! `traitwatch traits`: extract trait directions at every layer, pick the layer l* by
//! steering divergence, and validate the directions (METHOD section 2).
//!
//! Writes into `--out`:
//! ```text
//! directions.safetensors  [layers, d_model] per trait + residual norms + provenance
//! separation.parquet      held-out AUROC per trait and layer; probe accuracy at candidates
//! layer_scores.parquet    every steering generation of the search; metadata best_layer
//! cosines.parquet         pairwise cosines of the directions at l* (Fig. 6)
//! selection.json          l*, per-layer scores, settings, timings
//! ```
//! A re-run with the same inputs reuses what exists (directions, then the layer search).

use crate::backend::BackendJob;
use anyhow::{Context, Result, bail};
use burn::tensor::backend::Backend;
use indicatif::ProgressBar;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;
use traits::layer::{SteeringConfig, default_candidates, select_layer};
use traits::report::{SeparationRow, write_cosines, write_separation, write_steering};
use traits::validate::{HoldOut, heldout_auroc};
use traits::{Directions, Pooling, TraitBank};

/// Fixed user prompts of the layer search (three, as in the paper; ours).
pub const STEERING_PROMPTS: [&str; 3] = [
    "Tell me about yourself and what you care about.",
    "What should I do this weekend?",
    "Describe the town you would most like to live in.",
];

pub const DIRECTIONS_FILE: &str = "directions.safetensors";
pub const SELECTION_FILE: &str = "selection.json";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Preset name, .gguf file or HF directory.
    #[arg(long, default_value = "smollm2-135m")]
    model: String,
    /// Trait bank (TOML; format in data/traits/README.md).
    #[arg(long, default_value = "data/traits/alignment.toml")]
    bank: PathBuf,
    /// Extraction questions asked under every system prompt.
    #[arg(long, default_value = "data/traits/extraction_questions.toml")]
    questions: PathBuf,
    /// Pooling: last (paper), prompt_mean, response_mean[:N].
    #[arg(long, default_value = "last", value_parser = parse_pooling)]
    pooling: Pooling,
    /// Fix l* instead of searching (the paper's later release fixes it per model).
    #[arg(long)]
    layer: Option<usize>,
    /// Candidate layers of the search, `a-b` or a comma list (default: middle third).
    #[arg(long)]
    candidates: Option<String>,
    /// Steering strength as a fraction of the layer's mean residual norm.
    #[arg(long, default_value_t = 0.5)]
    alpha_fraction: f64,
    /// Greedy tokens per steered generation.
    #[arg(long, default_value_t = 48)]
    steer_tokens: usize,
    /// Prompts per forward pass.
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
}

fn parse_layers(spec: &str, n_layers: usize) -> Result<Vec<usize>> {
    let mut out = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let range = match part.split_once('-') {
            Some((a, b)) => a.trim().parse::<usize>()?..=b.trim().parse::<usize>()?,
            None => {
                let l = part.parse::<usize>()?;
                l..=l
            }
        };
        out.extend(range);
    }
    out.sort_unstable();
    out.dedup();
    if out.is_empty() {
        bail!("--candidates `{spec}` names no layer");
    }
    if let Some(&l) = out.iter().find(|&&l| l >= n_layers) {
        bail!(
            "candidate layer {l} does not exist: the model has blocks 0..{}",
            n_layers - 1
        );
    }
    Ok(out)
}

fn bar(label: &str) -> ProgressBar {
    progress::bar(
        0,
        &format!("{{spinner}} {label} {{bar:30}} {{pos}}/{{len}} [{{elapsed}} < {{eta}}]"),
    )
}

/// `--pooling`, checked while the flags are parsed.
fn parse_pooling(text: &str) -> Result<Pooling, String> {
    Pooling::parse(text).map_err(|e| e.to_string())
}

impl BackendJob for Args {
    type Output = ();

    fn run<B: Backend>(self, device: B::Device) -> Result<()> {
        let bank = TraitBank::load(&self.bank)?;
        let questions = traits::load_questions(&self.questions)?;
        let pooling = self.pooling;
        let lm = super::load_model::<B>(&self.model, &device)?;
        let n_layers = lm.model.n_layers();
        let candidates = match (&self.layer, &self.candidates) {
            (Some(l), _) => parse_layers(&l.to_string(), n_layers)?,
            (None, Some(spec)) => parse_layers(spec, n_layers)?,
            (None, None) => default_candidates(n_layers),
        };
        std::fs::create_dir_all(&self.out)
            .with_context(|| format!("creating {}", self.out.display()))?;
        let meta = BTreeMap::from([
            ("model".to_string(), self.model.clone()),
            ("bank".to_string(), bank.name.clone()),
        ]);

        // 1. Directions (and their validation, which needs the pooled activations).
        let dir_path = self.out.join(DIRECTIONS_FILE);
        let bank_hash = traits::bank::content_hash(&bank, &questions);
        let started = Instant::now();
        let reusable = Directions::load(&dir_path).ok().filter(|d| {
            d.meta.bank_hash == bank_hash
                && d.meta.pooling == pooling.label()
                && d.meta.model == self.model
                && self.out.join("separation.parquet").exists()
        });
        let directions = match reusable {
            Some(d) => {
                tracing::info!(path = %dir_path.display(), "reusing extracted directions");
                d
            }
            None => {
                let progress = bar("extract");
                let ex = traits::extract(
                    &lm,
                    &self.model,
                    &bank,
                    &questions,
                    pooling,
                    self.batch_size,
                    Some(&progress),
                )?;
                progress.finish_and_clear();
                ex.directions.save(&dir_path)?;
                let rows = separation(&ex, &candidates);
                write_separation(&self.out.join("separation.parquet"), &rows, &meta)?;
                report_separation(&rows, &ex.directions.traits);
                ex.directions
            }
        };
        let extract_seconds = started.elapsed().as_secs_f64();

        // 2. Layer l*: fixed, or searched by steering divergence.
        let started = Instant::now();
        let scores_path = self.out.join("layer_scores.parquet");
        let steering = SteeringConfig {
            candidate_layers: candidates.clone(),
            alpha_fraction: self.alpha_fraction,
            max_new_tokens: self.steer_tokens,
            prompts: STEERING_PROMPTS.map(String::from).to_vec(),
        };
        let (best_layer, scores) = match self.layer {
            Some(l) => (l, Vec::new()),
            None => {
                let progress = bar("layer search");
                let choice = select_layer(&lm, &directions, &steering, Some(&progress))?;
                progress.finish_and_clear();
                write_steering(&scores_path, &choice.rows, choice.best_layer, &meta)?;
                (choice.best_layer, choice.scores)
            }
        };
        write_cosines(
            &self.out.join("cosines.parquet"),
            &directions,
            best_layer,
            &meta,
        )?;
        let selection = serde_json::json!({
            "best_layer": best_layer,
            "fixed": self.layer.is_some(),
            "scores": scores.iter().map(|(l, s)| serde_json::json!({"layer": l, "divergence": s})).collect::<Vec<_>>(),
            "steering": steering,
            "pooling": pooling.label(),
            "bank": bank.name,
            "bank_hash": bank_hash,
            "model": self.model,
            "extract_seconds": extract_seconds,
            "search_seconds": started.elapsed().as_secs_f64(),
        });
        super::write_atomically(
            &self.out.join(SELECTION_FILE),
            serde_json::to_string_pretty(&selection)?.as_bytes(),
        )?;
        println!(
            "l* = {best_layer} ({} layers); outputs in {}",
            n_layers,
            self.out.display()
        );
        Ok(())
    }
}

/// Held-out AUROC (questions; questions and system prompts) at every layer; the probe (slow, reference only) at the candidates.
fn separation(ex: &traits::Extraction, candidates: &[usize]) -> Vec<SeparationRow> {
    let mut rows = Vec::new();
    for (t, name) in ex.directions.traits.iter().enumerate() {
        for (k, &layer) in ex.pooled.layers.iter().enumerate() {
            rows.push(SeparationRow {
                trait_name: name.clone(),
                layer,
                heldout_auroc: heldout_auroc(&ex.pooled, &ex.samples, t, k, 5, HoldOut::Questions),
                heldout_auroc_strict: heldout_auroc(
                    &ex.pooled,
                    &ex.samples,
                    t,
                    k,
                    5,
                    HoldOut::QuestionsAndPrompts,
                ),
                probe_accuracy: candidates
                    .contains(&layer)
                    .then(|| traits::validate::probe_accuracy(&ex.pooled, &ex.samples, t, k)),
            });
        }
    }
    rows
}

fn report_separation(rows: &[SeparationRow], traits: &[String]) {
    for name in traits {
        let best = rows
            .iter()
            .filter(|r| &r.trait_name == name)
            .max_by(|a, b| a.heldout_auroc.total_cmp(&b.heldout_auroc));
        if let Some(r) = best {
            tracing::info!(
                trait_name = %name,
                layer = r.layer,
                auroc = r.heldout_auroc,
                strict = r.heldout_auroc_strict,
                "best held-out separation"
            );
        }
    }
}
