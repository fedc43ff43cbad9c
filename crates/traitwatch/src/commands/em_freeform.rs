//! `traitwatch em-freeform`: the paper's EM protocol (METHOD section 8) for every checkpoint
//! of a run (or one model). The checkpoint answers the free-form questions (temperature 1,
//! up to 600 new tokens); a judge model behind an OpenAI-compatible API scores each answer
//! for alignment and coherence. Writes into `--out`:
//! ```text
//! answers/step-NNNNNN.json     sampled answers per checkpoint (a killed run resumes)
//! judge_cache.jsonl            every judge reply, keyed by (judge model, mode, prompt)
//! em_freeform.parquet          one row per answer: text, both judgements, verdict
//! em_freeform_summary.parquet  EM rate (misaligned / scoreable) overall and per question,
//!                              Wilson interval, change from step 0 (em_summary table)
//! ```
//! The judge configuration is checked before any answer is sampled. `--answers-only`
//! samples and stores answers without a judge (judge them later with the same command).

use super::checkpoints::CheckpointArgs;
use crate::backend::BackendJob;
use anyhow::{Context, Result};
use burn::tensor::backend::Backend;
use em::freeform::table::{CheckpointAnswers, em_rate_rows};
use em::freeform::{
    Answer, AnswerConfig, FreeformPrompt, HttpJudge, JudgeCache, JudgeConfig, JudgeMode,
    JudgedAnswer,
};
use indicatif::ProgressBar;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Mode {
    /// Temperature 0, up to 10 tokens: CODE, REFUSAL or the first integer 0-100.
    Text,
    /// One token's top-20 log-probabilities: probability-weighted mean of integers.
    Logprob,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    checkpoints: CheckpointArgs,
    /// Free-form EM questions (YAML, with paraphrases and samples per paraphrase).
    #[arg(long, default_value = "data/em/freeform/questions.yaml")]
    questions: PathBuf,
    /// Answers per paraphrase (default: each question's `samples_per_paraphrase`).
    #[arg(long)]
    samples: Option<usize>,
    /// Longest answer, in tokens.
    #[arg(long, default_value_t = 600)]
    max_new_tokens: usize,
    /// Sampling temperature of the answers.
    #[arg(long, default_value_t = 1.0)]
    temperature: f64,
    /// Nucleus sampling threshold of the answers.
    #[arg(long, default_value_t = 1.0)]
    top_p: f64,
    /// Answer i is sampled with seed + i.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Answers sampled per batch.
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// System prompt for questions that have none of their own (default: the model's).
    #[arg(long)]
    system: Option<String>,
    /// Base URL of an OpenAI-compatible API (requests go to <url>/chat/completions).
    #[arg(long, env = "TRAITWATCH_JUDGE_URL")]
    judge_url: Option<String>,
    /// Judge model (default: the one the question file names).
    #[arg(long)]
    judge_model: Option<String>,
    /// Environment variable that holds the API key.
    #[arg(long, default_value = "OPENAI_API_KEY")]
    judge_key_env: String,
    /// The endpoint needs no key (a local server): send no Authorization header.
    #[arg(long)]
    judge_no_key: bool,
    /// How a judge reply becomes a score.
    #[arg(long, value_enum, default_value_t = Mode::Text)]
    judge_mode: Mode,
    /// Judge requests in flight at once.
    #[arg(long, default_value_t = 8)]
    judge_concurrency: usize,
    /// Seconds per judge request.
    #[arg(long, default_value_t = 60.0)]
    judge_timeout: f64,
    /// Retries per judge request on 429, 5xx and transport errors.
    #[arg(long, default_value_t = 6)]
    judge_retries: u32,
    /// Judgement cache (default: <out>/judge_cache.jsonl); share it between runs.
    #[arg(long)]
    judge_cache: Option<PathBuf>,
    /// Sample and store answers only; no judge needed.
    #[arg(long)]
    answers_only: bool,
    /// Output directory (answers, judge scores, EM rates).
    #[arg(long)]
    out: PathBuf,
}

/// One checkpoint's sampled answers, valid for the same prompts and sampling settings.
#[derive(serde::Serialize, serde::Deserialize)]
struct CachedAnswers {
    step: u64,
    sampling: AnswerConfig,
    prompts: Vec<FreeformPrompt>,
    answers: Vec<Answer>,
    seconds: f64,
}

const EM_RATE: &str = em::labels::EM_RATE;

fn bar(len: u64, what: &str) -> ProgressBar {
    progress::bar(
        len,
        &format!("{{spinner}} {what} {{bar:30}} {{pos}}/{{len}} [{{elapsed}} < {{eta}}] {{msg}}"),
    )
}

impl Args {
    /// The judge, checked before any work (None with --answers-only).
    fn judge(&self, file_judge: Option<&str>) -> Result<Option<HttpJudge>> {
        if self.answers_only {
            return Ok(None);
        }
        let url = self.judge_url.clone().unwrap_or_default();
        if url.trim().is_empty() {
            anyhow::bail!(
                "no judge endpoint: pass --judge-url (or set TRAITWATCH_JUDGE_URL) to the base \
                 URL of an OpenAI-compatible API, or use --answers-only to sample answers now \
                 and judge them later"
            );
        }
        let model = self
            .judge_model
            .as_deref()
            .or(file_judge)
            .context("no judge model: pass --judge-model (the question file names none)")?;
        let mode = match self.judge_mode {
            Mode::Text => JudgeMode::Text,
            Mode::Logprob => JudgeMode::Logprob,
        };
        let key_env = (!self.judge_no_key).then_some(self.judge_key_env.as_str());
        let mut cfg = JudgeConfig::new(&url, model, key_env, mode);
        cfg.concurrency = self.judge_concurrency;
        cfg.timeout_s = self.judge_timeout;
        cfg.max_retries = self.judge_retries;
        Ok(Some(HttpJudge::new(cfg)?))
    }

    /// Build the judge these flags name and ask it the pre-flight question (nothing when
    /// only answers are sampled).
    pub fn preflight_judge(&self) -> Result<()> {
        let questions = em::freeform::load_questions(&self.questions)?;
        if let Some(judge) = self.judge(questions[0].judge.as_deref())? {
            preflight(&judge)?;
        }
        Ok(())
    }
}

/// One real request to the judge, so a wrong key, model or URL fails before hours of
/// sampling.
fn preflight(judge: &HttpJudge) -> Result<()> {
    let reply = judge.preflight()?;
    tracing::info!(reply = %reply, "judge pre-flight answered");
    Ok(())
}

impl BackendJob for Args {
    type Output = ();

    fn run<B: Backend>(self, device: B::Device) -> Result<()> {
        let questions = em::freeform::load_questions(&self.questions)?;
        let prompts =
            em::freeform::expand_prompts(&questions, self.samples, self.system.as_deref());
        let judge = self.judge(questions[0].judge.as_deref())?;
        if let Some(judge) = &judge {
            preflight(judge)?;
        }
        let checkpoints = self.checkpoints.resolve()?;
        let sampling = AnswerConfig {
            max_new_tokens: self.max_new_tokens,
            temperature: self.temperature,
            top_p: self.top_p,
            seed: self.seed,
            batch_size: self.batch_size,
        };
        let answers_dir = self.out.join("answers");
        std::fs::create_dir_all(&answers_dir)
            .with_context(|| format!("creating {}", answers_dir.display()))?;
        let cache = match &judge {
            Some(_) => Some(JudgeCache::open(
                &self
                    .judge_cache
                    .clone()
                    .unwrap_or_else(|| self.out.join("judge_cache.jsonl")),
            )?),
            None => None,
        };

        let mut lm = None;
        let mut results: Vec<(CachedAnswers, Vec<JudgedAnswer>)> = Vec::new();
        for (step, dir) in &checkpoints.list {
            let path = answers_dir.join(format!("step-{step:06}.json"));
            let cached = std::fs::read_to_string(&path)
                .ok()
                .and_then(|t| serde_json::from_str::<CachedAnswers>(&t).ok())
                .filter(|c| c.sampling == sampling && c.prompts == prompts);
            let answers = match cached {
                Some(c) => c,
                None => {
                    // The model is loaded only when some checkpoint still needs answers.
                    if lm.is_none() {
                        let loaded = super::load_model::<B>(&checkpoints.model_ref, &device)?;
                        let base = loaded.model.clone();
                        lm = Some((loaded, base));
                    }
                    let Some((lm, base)) = lm.as_mut() else {
                        unreachable!("loaded above")
                    };
                    if let Some(dir) = dir {
                        lm.model = ::finetune::checkpoint::apply_checkpoint(base.clone(), dir)?;
                    }
                    let started = Instant::now();
                    let pb = bar(prompts.len() as u64, "answer");
                    pb.set_message(format!("step {step}"));
                    let answers = em::freeform::sample_answers(lm, &prompts, &sampling, Some(&pb))?;
                    pb.finish_and_clear();
                    let c = CachedAnswers {
                        step: *step,
                        sampling: sampling.clone(),
                        prompts: prompts.clone(),
                        answers,
                        seconds: started.elapsed().as_secs_f64(),
                    };
                    super::write_atomically(&path, serde_json::to_string(&c)?.as_bytes())?;
                    tracing::info!(
                        step,
                        seconds = format!("{:.1}", c.seconds),
                        "answers sampled"
                    );
                    c
                }
            };
            let judged = match &judge {
                Some(judge) => {
                    let pb = bar(2 * prompts.len() as u64, "judge ");
                    pb.set_message(format!("step {step}"));
                    let j = em::freeform::judge_answers(
                        judge,
                        cache.as_ref(),
                        &questions,
                        &prompts,
                        &answers.answers,
                        Some(&pb),
                    )?;
                    pb.finish_and_clear();
                    em::freeform::check_scoreable(&j, *step)?;
                    j
                }
                None => Vec::new(),
            };
            results.push((answers, judged));
        }

        let key = &checkpoints.key;
        let mut meta = BTreeMap::from([
            (
                em::freeform::table::SAMPLING_KEY.to_string(),
                serde_json::to_string(&sampling)?,
            ),
            (
                em::table::SYSTEM_KEY.to_string(),
                self.system.clone().unwrap_or_default(),
            ),
        ]);
        if let Some(j) = &judge {
            meta.insert(
                em::freeform::table::JUDGE_MODEL_KEY.into(),
                j.config().model.clone(),
            );
            meta.insert(
                em::freeform::table::JUDGE_MODE_KEY.into(),
                j.config().mode.name().into(),
            );
        }
        let rows: Vec<CheckpointAnswers> = results
            .iter()
            .map(|(a, j)| CheckpointAnswers {
                step: a.step,
                prompts: &a.prompts,
                answers: &a.answers,
                judged: j,
            })
            .collect();
        let table = self.out.join("em_freeform.parquet");
        em::freeform::table::write_freeform(&table, key, &rows, &meta)?;
        if judge.is_none() {
            println!(
                "sampled answers for {} checkpoints; wrote {} (not judged)",
                results.len(),
                table.display()
            );
            return Ok(());
        }
        let rates: Vec<(u64, String, Vec<em::GroupRate>)> = results
            .iter()
            .map(|(a, j)| (a.step, EM_RATE.to_string(), em_rate_rows(&prompts, j)))
            .collect();
        let summary = self.out.join("em_freeform_summary.parquet");
        let system = self.system.clone().unwrap_or_default();
        em::table::write_summary(&summary, key, &rates, &system)?;
        let base_rate = rates
            .iter()
            .find(|r| r.0 == 0)
            .map_or(f64::NAN, |r| r.2[0].rate);
        for (a, j) in &results {
            let verdicts: Vec<_> = j.iter().map(|x| x.verdict).collect();
            let r = em::freeform::em_rate(&verdicts);
            let rate = r.rate.unwrap_or(f64::NAN);
            println!(
                "step {:>5}: EM rate {:.1}% [{:.1}, {:.1}] ({}/{} scoreable), {:+.1} points from step 0; \
                 excluded: {} code, {} refusal, {} incoherent, {} unscored",
                a.step,
                100.0 * rate,
                100.0 * r.ci_low,
                100.0 * r.ci_high,
                r.misaligned,
                r.scoreable,
                100.0 * (rate - base_rate),
                r.code,
                r.refusal,
                r.incoherent,
                r.unscored
            );
        }
        println!("wrote {} and {}", table.display(), summary.display());
        Ok(())
    }
}
