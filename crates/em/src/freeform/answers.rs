//! The checkpoint's own free-form answers: every paraphrase of every question, as many
//! samples as configured, sampled at temperature 1 (METHOD section 8) in the model's chat
//! format. Answer `i` is sampled with seed `seed + i`, so it does not depend on the batch
//! size.

use super::questions::FreeformQuestion;
use crate::{EmError, Result};
use burn::tensor::backend::Backend;
use indicatif::ProgressBar;
use llm::{LoadedModel, Message, SamplingConfig};
use serde::{Deserialize, Serialize};

/// One answer to produce: which question, paraphrase and sample, under which system prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FreeformPrompt {
    pub question_id: String,
    /// Index into the question list.
    pub question_index: usize,
    pub paraphrase: usize,
    pub sample: usize,
    pub system: Option<String>,
    pub question: String,
}

/// Expand questions into prompts: `samples` per paraphrase (None: each question's own
/// `samples_per_paraphrase`). A question's own system prompt wins over `default_system`.
pub fn expand_prompts(
    questions: &[FreeformQuestion],
    samples: Option<usize>,
    default_system: Option<&str>,
) -> Vec<FreeformPrompt> {
    let mut out = Vec::new();
    for (qi, q) in questions.iter().enumerate() {
        for (pi, text) in q.paraphrases.iter().enumerate() {
            for sample in 0..samples.unwrap_or(q.samples_per_paraphrase) {
                out.push(FreeformPrompt {
                    question_id: q.id.clone(),
                    question_index: qi,
                    paraphrase: pi,
                    sample,
                    system: q.system.clone().or(default_system.map(str::to_string)),
                    question: text.clone(),
                });
            }
        }
    }
    out
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnswerConfig {
    pub max_new_tokens: usize,
    pub temperature: f64,
    pub top_p: f64,
    pub seed: u64,
    pub batch_size: usize,
}

impl Default for AnswerConfig {
    /// The paper protocol: temperature 1, up to 600 new tokens.
    fn default() -> Self {
        Self {
            max_new_tokens: 600,
            temperature: 1.0,
            top_p: 1.0,
            seed: 0,
            batch_size: 16,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    pub text: String,
    pub tokens: usize,
    /// Ended on an end-of-turn token (false: cut at `max_new_tokens`).
    pub stopped: bool,
}

/// Sample one answer per prompt, `batch_size` prompts per generation call. `progress`
/// advances by one per answer.
pub fn sample_answers<B: Backend>(
    lm: &LoadedModel<B>,
    prompts: &[FreeformPrompt],
    cfg: &AnswerConfig,
    progress: Option<&ProgressBar>,
) -> Result<Vec<Answer>> {
    if cfg.batch_size == 0 {
        return Err(EmError::Input("batch size must be at least 1".into()));
    }
    let chat = lm
        .chat_template()
        .map_err(|e| EmError::Input(format!("free-form answers need a chat template: {e}")))?;
    let ids: Vec<Vec<u32>> = prompts
        .iter()
        .map(|p| {
            let mut messages = Vec::new();
            if let Some(s) = &p.system {
                messages.push(Message::system(s));
            }
            messages.push(Message::user(&p.question));
            Ok(chat.render_tokens(&lm.tokenizer, &messages, true)?.ids)
        })
        .collect::<Result<_>>()?;
    let mut answers = Vec::with_capacity(prompts.len());
    for (b, chunk) in ids.chunks(cfg.batch_size).enumerate() {
        let start = b * cfg.batch_size;
        let sampling = SamplingConfig {
            max_new_tokens: cfg.max_new_tokens,
            temperature: cfg.temperature,
            top_p: cfg.top_p,
            // generate() seeds row r with seed + r: answer i gets seed + i.
            seed: cfg.seed.wrapping_add(start as u64),
            stop_tokens: lm.tokenizer.eos_ids.clone(),
        };
        let out = llm::generate(&lm.model, chunk, lm.tokenizer.pad_or_eos(), &sampling, &[])?;
        for (tokens, stopped) in out.tokens.iter().zip(out.stopped) {
            answers.push(Answer {
                text: lm.tokenizer.decode(tokens, true)?,
                tokens: tokens.len(),
                stopped,
            });
        }
        if let Some(pb) = progress {
            pb.inc(chunk.len() as u64);
        }
    }
    Ok(answers)
}
