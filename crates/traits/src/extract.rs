//! Trait-direction extraction: difference of mean activations between contrasting system
//! prompts, at every layer (METHOD section 2).
//!
//! For trait `t` and layer `l`: `d_t[l] = normalise(mean(pos) - mean(neg))`, where `pos`
//! holds the pooled activations of every (positive system prompt, question) pair and `neg`
//! those of the negative prompts: 5 prompts x 30 questions = 150 vectors per pole with the
//! shipped banks.

use crate::bank::{TraitBank, content_hash};
use crate::collect::{CollectOptions, Pooled, Pooling, collect};
use crate::directions::{Directions, DirectionsMeta, LAYER_CONVENTION};
use crate::error::{Result, TraitsError};
use burn::tensor::backend::Backend;
use indicatif::ProgressBar;
use llm::{Llama, LoadedModel, Message};
use sha2::{Digest, Sha256};

/// Which prompt pair produced one pooled activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    pub trait_index: usize,
    pub positive: bool,
    pub prompt_index: usize,
    pub question_index: usize,
}

/// Every (trait, pole, system prompt, question) conversation of a bank, in a fixed order.
pub fn extraction_samples(
    bank: &TraitBank,
    questions: &[String],
) -> (Vec<Sample>, Vec<Vec<Message>>) {
    let mut samples = Vec::new();
    let mut conversations = Vec::new();
    for (t, spec) in bank.traits.iter().enumerate() {
        for (positive, prompts) in [(true, &spec.positive), (false, &spec.negative)] {
            for (p, system) in prompts.iter().enumerate() {
                for (q, question) in questions.iter().enumerate() {
                    samples.push(Sample {
                        trait_index: t,
                        positive,
                        prompt_index: p,
                        question_index: q,
                    });
                    conversations.push(vec![
                        Message::system(system.clone()),
                        Message::user(question.clone()),
                    ]);
                }
            }
        }
    }
    (samples, conversations)
}

/// Directions plus the pooled activations they came from (kept for validation).
#[derive(Debug, Clone)]
pub struct Extraction {
    pub directions: Directions,
    /// `[samples, n_layers, d_model]`, every layer captured.
    pub pooled: Pooled,
    pub samples: Vec<Sample>,
}

/// Run every conversation of `bank` through the model and form unit directions.
pub fn extract<B: Backend>(
    lm: &LoadedModel<B>,
    model_ref: &str,
    bank: &TraitBank,
    questions: &[String],
    pooling: Pooling,
    batch_size: usize,
    progress: Option<&ProgressBar>,
) -> Result<Extraction> {
    if questions.is_empty() {
        return Err(TraitsError::Input("no extraction questions".into()));
    }
    let (samples, conversations) = extraction_samples(bank, questions);
    if let Some(bar) = progress {
        bar.set_length(conversations.len() as u64);
    }
    let opts = CollectOptions {
        layers: (0..lm.model.n_layers()).collect(),
        pooling,
        batch_size,
        steering: None,
    };
    let pooled = collect(lm, &conversations, &opts, progress)?;
    let (vectors, residual_norm) = difference_of_means(&pooled, &samples, bank.traits.len())?;
    let spec0 = &bank.traits[0];
    let meta = DirectionsMeta {
        bank: bank.name.clone(),
        bank_version: bank.version,
        bank_hash: content_hash(bank, questions),
        pooling: pooling.label(),
        layer_convention: LAYER_CONVENTION.into(),
        model: model_ref.into(),
        model_fingerprint: model_fingerprint(&lm.model),
        samples_per_pole: spec0.positive.len() * questions.len(),
    };
    let directions = Directions {
        traits: bank.trait_names(),
        n_layers: pooled.layers.len(),
        d_model: pooled.d_model,
        vectors,
        residual_norm,
        meta,
    };
    Ok(Extraction {
        directions,
        pooled,
        samples,
    })
}

/// Unit `mean(pos) - mean(neg)` per trait and captured layer, `[n_traits, layers, d]`,
/// and the mean norm of all pooled vectors per layer, `[layers]`. Sums in f64.
pub fn difference_of_means(
    pooled: &Pooled,
    samples: &[Sample],
    n_traits: usize,
) -> Result<(Vec<f32>, Vec<f32>)> {
    let (n_layers, d) = (pooled.layers.len(), pooled.d_model);
    if samples.len() != pooled.n_prompts {
        return Err(TraitsError::Input(format!(
            "{} samples for {} pooled activations",
            samples.len(),
            pooled.n_prompts
        )));
    }
    let mut vectors = Vec::with_capacity(n_traits * n_layers * d);
    let norm_sum: Vec<f64> = (0..n_layers)
        .map(|k| (0..pooled.n_prompts).map(|i| norm(pooled.get(i, k))).sum())
        .collect();
    for t in 0..n_traits {
        for k in 0..n_layers {
            let diff = mean_difference(pooled, samples, k, |s| s.trait_index == t).map_err(
                |(n_pos, n_neg)| {
                    TraitsError::Input(format!(
                        "trait {t} has {n_pos} positive and {n_neg} negative activations"
                    ))
                },
            )?;
            let len = diff.iter().map(|x| x * x).sum::<f64>().sqrt();
            if len == 0.0 || !len.is_finite() {
                return Err(TraitsError::Input(format!(
                    "trait {t}: positive and negative means are identical (or not finite) at layer {}",
                    pooled.layers[k]
                )));
            }
            vectors.extend(diff.iter().map(|x| (x / len) as f32));
        }
    }
    let residual_norm = norm_sum
        .iter()
        .map(|s| (s / pooled.n_prompts.max(1) as f64) as f32)
        .collect();
    Ok((vectors, residual_norm))
}

/// `mean(pos) - mean(neg)` (`[d_model]`, not normalised) at captured layer index `k` over
/// the samples `include` accepts; `Err((n_pos, n_neg))` when a pole has none.
pub fn mean_difference(
    pooled: &Pooled,
    samples: &[Sample],
    k: usize,
    include: impl Fn(&Sample) -> bool,
) -> Result<Vec<f64>, (usize, usize)> {
    let d = pooled.d_model;
    let (mut pos, mut neg) = (vec![0f64; d], vec![0f64; d]);
    let (mut n_pos, mut n_neg) = (0usize, 0usize);
    for (i, s) in samples.iter().enumerate().filter(|(_, s)| include(s)) {
        let (acc, n) = if s.positive {
            (&mut pos, &mut n_pos)
        } else {
            (&mut neg, &mut n_neg)
        };
        acc.iter_mut()
            .zip(pooled.get(i, k))
            .for_each(|(a, &x)| *a += x as f64);
        *n += 1;
    }
    if n_pos == 0 || n_neg == 0 {
        return Err((n_pos, n_neg));
    }
    Ok(pos
        .iter()
        .zip(&neg)
        .map(|(p, q)| p / n_pos as f64 - q / n_neg as f64)
        .collect())
}

fn norm(v: &[f32]) -> f64 {
    v.iter()
        .map(|&x| (x as f64) * (x as f64))
        .sum::<f64>()
        .sqrt()
}

/// A short fingerprint of a model's weights: its config, and the sum and sum of squares of
/// its embedding and LM-head matrices (hex, first 16 digits of a sha256). Cheap, and
/// different for any two checkpoints that differ in those matrices or the architecture.
pub fn model_fingerprint<B: Backend>(model: &Llama<B>) -> String {
    let (head, _) = model.head_params();
    let embed = model.embed_tokens.val();
    let stats = |t: burn::tensor::Tensor<B, 2>| {
        let sum = llm::model::tensor_to_f32(t.clone().sum());
        let sq = llm::model::tensor_to_f32(t.powi_scalar(2).sum());
        format!("{:?}/{:?}", sum, sq)
    };
    let text = format!(
        "{}|{}|{}",
        serde_json::to_string(&model.config).unwrap_or_default(),
        stats(embed),
        stats(head)
    );
    let digest = Sha256::digest(text.as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}
