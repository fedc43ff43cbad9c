//! `traitwatch em`: behavioural labels for every checkpoint of a finetuning run (or for one
//! model) from the offline paired-choice judge (METHOD section 8).
//!
//! Each checkpoint scores the aligned and the misaligned answer of every EM item, and the
//! positive- and negative-pole answers of every per-trait item, by its own mean
//! log-probability per token. Never looks at activations. `--trait-steps` limits the
//! per-trait items to some checkpoints; `--reference` takes step 0 from an earlier `em`
//! output of the base model (the pipeline scores it once per model). Writes into `--out`:
//! ```text
//! scores/step-NNNNNN.json  every pair's scores per checkpoint (cache: a killed run resumes)
//! em_items.parquet         one row per item and checkpoint (em crate's `em_items` table)
//! em_summary.parquet       proxy EM rate overall and per domain, per-trait behaviour, each
//!                          with a Wilson interval and its change from step 0
//! em_label.parquet         the label: mean paired change of the misaligned answer's
//!                          log-odds since step 0, bootstrap interval, paired t-test, and
//!                          its fraction of the control scale (with --controls)
//! em_controls.parquet      with --controls: every control prompt's shift on the base model
//! scores/controls.json     the controls' scores (cache)
//! ```

use crate::backend::BackendJob;
use anyhow::{Context, Result};
use burn::tensor::backend::Backend;
use em::table::CheckpointScores;
use em::{Pair, PairScore};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    checkpoints: super::checkpoints::CheckpointArgs,
    /// Paired-choice EM items (JSONL: a question with an aligned and a misaligned answer).
    #[arg(long, default_value = "data/em/items.jsonl")]
    items: PathBuf,
    /// Directory of per-trait item files `<trait>.jsonl`.
    #[arg(long, default_value = "data/em/traits")]
    trait_items: PathBuf,
    /// The trait bank whose trait names (and order) select the per-trait files.
    #[arg(long, default_value = "data/traits/alignment.toml")]
    trait_bank: PathBuf,
    /// Skip the per-trait items.
    #[arg(long)]
    no_traits: bool,
    /// Score the per-trait items only at these checkpoints (comma-separated; step 0
    /// always). Default: at every checkpoint evaluated.
    #[arg(long, value_delimiter = ',')]
    trait_steps: Vec<u64>,
    /// Take step 0 (the base model) from this earlier `em` output directory instead of
    /// scoring it again: every run of one base model shares it. Its cached scores must be
    /// for the same model, system prompt, items and batch size.
    #[arg(long)]
    reference: Option<PathBuf>,
    /// Control prompts (`data/em/controls.toml`): scored on the base model once (or taken
    /// from `--reference`), they give the label its scale and validation (em_controls).
    #[arg(long)]
    controls: Option<PathBuf>,
    /// Check this threshold (a fraction of the control scale) against the controls and
    /// print the verdict; needs --controls.
    #[arg(long, requires = "controls")]
    tau: Option<f64>,
    /// System prompt for every question (default: none, so the model's default applies).
    #[arg(long)]
    system: Option<String>,
    /// Prompts per forward pass.
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// Output directory (em tables and the per-checkpoint score cache).
    #[arg(long)]
    out: PathBuf,
}

/// One checkpoint's cached scores, valid for the same model, system prompt, item ids and
/// batch size (padding changes the float summation order, so scores can differ by ulps).
#[derive(serde::Serialize, serde::Deserialize)]
struct CachedScores {
    step: u64,
    #[serde(default)]
    model: String,
    #[serde(default)]
    batch_size: usize,
    system: String,
    em_ids: Vec<String>,
    trait_ids: Vec<String>,
    em: Vec<PairScore>,
    traits: Vec<PairScore>,
    seconds: f64,
}

/// The `statistic` values of the summary table (see `em::table`).
const PROXY_EM: &str = em::labels::PROXY_EM;
const SHIFT: &str = "shift_to_misaligned";
const TRAIT_POSITIVE: &str = "trait_positive";

fn ids(pairs: &[Pair]) -> Vec<String> {
    pairs.iter().map(|p| p.id.clone()).collect()
}

/// What a checkpoint's cached scores must have been computed with to be reused.
struct Expected<'a> {
    model: &'a str,
    batch_size: usize,
    system: &'a str,
    em_ids: Vec<String>,
    trait_ids: Vec<String>,
}

impl Expected<'_> {
    /// None when `c` matches; otherwise what differs, for the `--reference` error.
    fn mismatch(&self, c: &CachedScores) -> Option<String> {
        let differs = |what: &str, ours: &dyn std::fmt::Debug, theirs: &dyn std::fmt::Debug| {
            Some(format!("{what}: {theirs:?} there, {ours:?} here"))
        };
        if c.model != self.model {
            return differs("model", &self.model, &c.model);
        }
        if c.batch_size != self.batch_size {
            return differs("batch size", &self.batch_size, &c.batch_size);
        }
        if c.system != self.system {
            return differs("system prompt", &self.system, &c.system);
        }
        if c.em_ids != self.em_ids {
            return Some(format!(
                "EM items: {} there, {} here (or other ids)",
                c.em_ids.len(),
                self.em_ids.len()
            ));
        }
        if c.trait_ids != self.trait_ids {
            return Some(format!(
                "per-trait items: {} there, {} here (or other ids)",
                c.trait_ids.len(),
                self.trait_ids.len()
            ));
        }
        None
    }
}

fn read_cached(path: &std::path::Path) -> Option<CachedScores> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

/// Step 0's scores from another `em` output directory, checked against `expected`.
fn reference_scores(dir: &std::path::Path, expected: &Expected) -> Result<CachedScores> {
    let path = dir.join("scores").join("step-000000.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("--reference: reading {}", path.display()))?;
    let c: CachedScores = serde_json::from_str(&text)
        .with_context(|| format!("--reference: parsing {}", path.display()))?;
    if let Some(why) = expected.mismatch(&c) {
        anyhow::bail!(
            "--reference {}: its step-0 scores were computed differently ({why}); drop \
             --reference to score step 0 here",
            dir.display()
        );
    }
    Ok(c)
}

impl BackendJob for Args {
    type Output = ();

    fn run<B: Backend>(self, device: B::Device) -> Result<()> {
        let em_pairs: Vec<Pair> = em::load_em_items(&self.items)?
            .iter()
            .map(em::EmItem::pair)
            .collect();
        let trait_pairs: Vec<Pair> = if self.no_traits {
            Vec::new()
        } else {
            let names = traits::TraitBank::load(&self.trait_bank)?.trait_names();
            em::load_trait_items(&self.trait_items, &names)?
                .iter()
                .map(em::TraitItem::pair)
                .collect()
        };
        let super::checkpoints::Checkpoints {
            model_ref,
            list: checkpoints,
            key,
        } = self.checkpoints.resolve()?;
        let mut lm = super::load_model::<B>(&model_ref, &device)?;
        let base = lm.model.clone();
        let system = self.system.clone().unwrap_or_default();
        let cache = self.out.join("scores");
        std::fs::create_dir_all(&cache).with_context(|| format!("creating {}", cache.display()))?;

        // Which checkpoints score the per-trait items: step 0 always (their reference).
        let traits_at = |step: u64| {
            step == 0 || self.trait_steps.is_empty() || self.trait_steps.contains(&step)
        };
        let pairs_at =
            |step: u64| 2 * (em_pairs.len() + traits_at(step) as usize * trait_pairs.len()) as u64;
        let total: u64 = checkpoints.iter().map(|(s, _)| pairs_at(*s)).sum();
        let bar = progress::bar(
            total,
            "{spinner} judge {bar:30} {pos}/{len} answers [{elapsed} < {eta}] {msg}",
        );
        let no_traits: &[Pair] = &[];
        let mut results: Vec<CachedScores> = Vec::new();
        for (step, dir) in &checkpoints {
            bar.set_message(format!("step {step}"));
            let step_traits = if traits_at(*step) {
                &trait_pairs[..]
            } else {
                no_traits
            };
            let expected = Expected {
                model: &model_ref,
                batch_size: self.batch_size,
                system: &system,
                em_ids: ids(&em_pairs),
                trait_ids: ids(step_traits),
            };
            let path = cache.join(format!("step-{step:06}.json"));
            let mut cached = read_cached(&path).filter(|c| expected.mismatch(c).is_none());
            if cached.is_none()
                && *step == 0
                && let Some(reference) = &self.reference
            {
                let c = reference_scores(reference, &expected)?;
                super::write_atomically(&path, serde_json::to_string(&c)?.as_bytes())?;
                tracing::info!("step 0 from {}", reference.display());
                cached = Some(c);
            }
            let scores = match cached {
                Some(c) => {
                    bar.inc(pairs_at(*step));
                    c
                }
                None => {
                    let started = Instant::now();
                    if let Some(dir) = dir {
                        lm.model = finetune::checkpoint::apply_checkpoint(base.clone(), dir)?;
                    }
                    let (sys, b) = (self.system.as_deref(), self.batch_size);
                    let em = em::score_pairs(&lm, &em_pairs, sys, b, Some(&bar))?;
                    let tr = em::score_pairs(&lm, step_traits, sys, b, Some(&bar))?;
                    let c = CachedScores {
                        step: *step,
                        model: model_ref.clone(),
                        batch_size: self.batch_size,
                        system: system.clone(),
                        em_ids: expected.em_ids,
                        trait_ids: expected.trait_ids,
                        em,
                        traits: tr,
                        seconds: started.elapsed().as_secs_f64(),
                    };
                    super::write_atomically(&path, serde_json::to_string(&c)?.as_bytes())?;
                    // The bar is hidden off a terminal (Slurm, CI): a line per checkpoint.
                    tracing::info!(
                        step,
                        seconds = c.seconds,
                        answers_done = bar.position(),
                        answers = bar.length().unwrap_or(0),
                        "judged checkpoint"
                    );
                    c
                }
            };
            results.push(scores);
        }
        let controls = match &self.controls {
            Some(path) => {
                let bank = em::ControlBank::load(path)?;
                lm.model = base.clone();
                let cached = super::em_label::control_scores(
                    &lm,
                    &model_ref,
                    &bank,
                    &em_pairs,
                    self.batch_size,
                    &cache,
                    self.reference.as_deref(),
                    &bar,
                )?;
                let step0 = results.iter().find(|c| c.step == 0).map(|c| &c.em);
                step0.map(|s| em::controls::measure(&bank, &em_pairs, s, &cached.scores))
            }
            None => None,
        };
        bar.finish_and_clear();
        let checkpoint_scores: Vec<(u64, &[PairScore])> =
            results.iter().map(|c| (c.step, &c.em[..])).collect();
        let label = super::em_label::write_label(
            &self.out,
            &key,
            &em_pairs,
            &checkpoint_scores,
            controls.as_deref(),
            &system,
        )?;

        let mut tables_in = Vec::new();
        let mut rates = Vec::new();
        let reference = results.iter().find(|c| c.step == 0).map(|c| &c.em);
        for c in &results {
            tables_in.push(CheckpointScores {
                step: c.step,
                bank: "em",
                pairs: &em_pairs,
                scores: &c.em,
            });
            rates.push((c.step, PROXY_EM.to_string(), em::proxy_em(&em_pairs, &c.em)));
            if let Some(r) = reference {
                let shift = em::shift_toward_b(&em_pairs, &c.em, r);
                rates.push((c.step, SHIFT.to_string(), shift));
            }
            if !c.traits.is_empty() {
                tables_in.push(CheckpointScores {
                    step: c.step,
                    bank: "traits",
                    pairs: &trait_pairs,
                    scores: &c.traits,
                });
                let behaviour = em::trait_behaviour(&trait_pairs, &c.traits);
                rates.push((c.step, TRAIT_POSITIVE.to_string(), behaviour));
            }
        }
        em::table::write_items(
            &self.out.join("em_items.parquet"),
            &key,
            &tables_in,
            &system,
        )?;
        em::table::write_summary(&self.out.join("em_summary.parquet"), &key, &rates, &system)?;

        let overall = |step: u64, stat: &str| {
            rates
                .iter()
                .find(|(s, name, _)| *s == step && name == stat)
                .map(|r| r.2[0].clone())
        };
        let base_rate = overall(0, PROXY_EM).map_or(f64::NAN, |g| g.rate);
        for c in &results {
            let Some(all) = overall(c.step, PROXY_EM) else {
                continue;
            };
            let shift = overall(c.step, SHIFT).map_or(String::new(), |g| {
                format!(
                    "; {:.0}% of items moved toward the misaligned answer",
                    100.0 * g.rate
                )
            });
            println!(
                "step {:>5}: proxy EM {:.1}% [{:.1}, {:.1}] ({}/{}), {:+.1} points from step 0{shift} ({:.1} s)",
                c.step,
                100.0 * all.rate,
                100.0 * all.low,
                100.0 * all.high,
                all.count,
                all.n,
                100.0 * (all.rate - base_rate),
                c.seconds
            );
        }
        if let Some((_, _, behaviour)) = rates.iter().rev().find(|r| r.1 == TRAIT_POSITIVE) {
            let text: Vec<String> = behaviour
                .iter()
                .map(|g| format!("{} {:.0}%", g.group, 100.0 * g.rate))
                .collect();
            println!(
                "last checkpoint, positive pole preferred: {}",
                text.join(", ")
            );
        }
        if let Some(results) = &controls {
            super::em_label::print_controls(results, self.tau);
        }
        let scale = controls.as_deref().and_then(em::controls::scale);
        super::em_label::print_label(&label, scale);
        println!("wrote {}", self.out.join("em_summary.parquet").display());
        Ok(())
    }
}
