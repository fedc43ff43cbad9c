//! `traitwatch em`: behavioural labels for every checkpoint of a finetuning run (or for one
//! model) from the offline paired-choice judge (METHOD section 8).
//!
//! Each checkpoint scores the aligned and the misaligned answer of every EM item, and the
//! positive- and negative-pole answers of every per-trait item, by its own mean
//! log-probability per token. Never looks at activations. Writes into `--out`:
//! ```text
//! scores/step-NNNNNN.json  every pair's scores per checkpoint (cache: a killed run resumes)
//! em_items.parquet         one row per item and checkpoint (em crate's `em_items` table)
//! em_summary.parquet       proxy EM rate overall and per domain, per-trait behaviour, each
//!                          with a Wilson interval and its change from step 0
//! ```

use crate::backend::BackendJob;
use anyhow::{Context, Result};
use burn::tensor::backend::Backend;
use em::table::CheckpointScores;
use em::{Pair, PairScore};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    checkpoints: super::checkpoints::CheckpointArgs,
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
    /// System prompt for every question (default: none, so the model's default applies).
    #[arg(long)]
    system: Option<String>,
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    #[arg(long)]
    out: PathBuf,
}

/// One checkpoint's cached scores, valid for the same system prompt and item ids.
#[derive(serde::Serialize, serde::Deserialize)]
struct CachedScores {
    step: u64,
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

        let per_checkpoint = 2 * (em_pairs.len() + trait_pairs.len()) as u64;
        let bar = ProgressBar::new(per_checkpoint * checkpoints.len() as u64).with_style(
            ProgressStyle::with_template(
                "{spinner} judge {bar:30} {pos}/{len} answers [{elapsed} < {eta}] {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        let mut results: Vec<CachedScores> = Vec::new();
        for (step, dir) in &checkpoints {
            bar.set_message(format!("step {step}"));
            let path = cache.join(format!("step-{step:06}.json"));
            let cached = std::fs::read_to_string(&path)
                .ok()
                .and_then(|t| serde_json::from_str::<CachedScores>(&t).ok())
                .filter(|c| {
                    c.system == system
                        && c.em_ids == ids(&em_pairs)
                        && c.trait_ids == ids(&trait_pairs)
                });
            let scores = match cached {
                Some(c) => {
                    bar.inc(per_checkpoint);
                    c
                }
                None => {
                    let started = Instant::now();
                    if let Some(dir) = dir {
                        lm.model = finetune::checkpoint::apply_checkpoint(base.clone(), dir)?;
                    }
                    let (sys, b) = (self.system.as_deref(), self.batch_size);
                    let em = em::score_pairs(&lm, &em_pairs, sys, b, Some(&bar))?;
                    let tr = em::score_pairs(&lm, &trait_pairs, sys, b, Some(&bar))?;
                    let c = CachedScores {
                        step: *step,
                        system: system.clone(),
                        em_ids: ids(&em_pairs),
                        trait_ids: ids(&trait_pairs),
                        em,
                        traits: tr,
                        seconds: started.elapsed().as_secs_f64(),
                    };
                    super::write_atomically(&path, serde_json::to_string(&c)?.as_bytes())?;
                    c
                }
            };
            results.push(scores);
        }
        bar.finish_and_clear();

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
            if !trait_pairs.is_empty() {
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
        println!("wrote {}", self.out.join("em_summary.parquet").display());
        Ok(())
    }
}
