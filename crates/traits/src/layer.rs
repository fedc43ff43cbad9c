//! Best-layer selection by steering divergence (METHOD section 2).
//!
//! At each candidate layer `l`, every trait direction is added to the output of block `l`
//! at every position during greedy generation, with strength `± alpha_fraction x` the
//! layer's mean residual norm. The divergence of a steered continuation from the unsteered
//! one is the character edit distance divided by the longer length **(ours**: the paper
//! uses a character-level difference ratio). The layer whose steering changes the outputs
//! most, averaged over traits, signs and prompts, is `l*`.
//!
//! All settings of one layer run as one batch: rows = the unsteered prompts plus
//! traits x signs x prompts, each with its own steering vector.

use crate::directions::Directions;
use crate::error::{Result, TraitsError};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use indicatif::ProgressBar;
use llm::model::Intervention;
use llm::{HookPoint, LoadedModel, Message, SamplingConfig};

/// How layer selection steers.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SteeringConfig {
    /// Decoder blocks to try.
    pub candidate_layers: Vec<usize>,
    /// Steering strength as a fraction of the layer's mean residual norm.
    pub alpha_fraction: f64,
    /// Greedy tokens generated per prompt (the paper: 100).
    pub max_new_tokens: usize,
    /// Fixed user prompts (the paper: 3).
    pub prompts: Vec<String>,
}

/// Candidate layers when none are given: the middle third of the network (for
/// SmolLM2-135M's 30 layers, blocks 10-20, as METHOD suggests).
pub fn default_candidates(n_layers: usize) -> Vec<usize> {
    (n_layers / 3..=(2 * n_layers / 3).min(n_layers.saturating_sub(1))).collect()
}

/// One generation of the search: `sign` is +1 or -1 (steered) or 0 (unsteered).
#[derive(Debug, Clone, PartialEq)]
pub struct SteeringRow {
    pub layer: usize,
    /// Empty for unsteered rows.
    pub trait_name: String,
    pub sign: i8,
    pub prompt_index: usize,
    /// Absolute steering strength (0 for unsteered rows).
    pub alpha: f64,
    /// Divergence from the unsteered text of the same prompt and layer, in [0, 1].
    pub divergence: f64,
    pub text: String,
}

/// The search's outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerChoice {
    pub best_layer: usize,
    /// `(layer, mean divergence)` per candidate.
    pub scores: Vec<(usize, f64)>,
    pub rows: Vec<SteeringRow>,
}

/// Search `cfg.candidate_layers` for the layer where steering matters most.
pub fn select_layer<B: Backend>(
    lm: &LoadedModel<B>,
    directions: &Directions,
    cfg: &SteeringConfig,
    progress: Option<&ProgressBar>,
) -> Result<LayerChoice> {
    if cfg.candidate_layers.is_empty() || cfg.prompts.is_empty() {
        return Err(TraitsError::Input(
            "layer selection needs candidate layers and steering prompts".into(),
        ));
    }
    if !(cfg.alpha_fraction.is_finite() && cfg.alpha_fraction > 0.0) {
        return Err(TraitsError::Input(format!(
            "alpha_fraction {} must be a positive number",
            cfg.alpha_fraction
        )));
    }
    if let Some(&l) = cfg
        .candidate_layers
        .iter()
        .find(|&&l| l >= directions.n_layers)
    {
        return Err(TraitsError::Input(format!(
            "candidate layer {l} is outside the directions' {} layers",
            directions.n_layers
        )));
    }
    let template = lm.chat_template()?;
    let prompt_ids: Vec<Vec<u32>> = cfg
        .prompts
        .iter()
        .map(|p| {
            Ok(template
                .render_tokens(&lm.tokenizer, &[Message::user(p.clone())], true)?
                .ids)
        })
        .collect::<Result<_>>()?;
    if let Some(bar) = progress {
        bar.set_length(cfg.candidate_layers.len() as u64);
    }
    let mut rows = Vec::new();
    let mut scores = Vec::new();
    for &layer in &cfg.candidate_layers {
        let layer_rows = steer_layer(lm, directions, cfg, layer, &prompt_ids)?;
        let steered: Vec<f64> = layer_rows
            .iter()
            .filter(|r| r.sign != 0)
            .map(|r| r.divergence)
            .collect();
        let mean = steered.iter().sum::<f64>() / steered.len().max(1) as f64;
        tracing::info!(layer, divergence = mean, "steering divergence");
        scores.push((layer, mean));
        rows.extend(layer_rows);
        if let Some(bar) = progress {
            bar.inc(1);
        }
    }
    // Highest score; ties go to the shallower layer (stable and cheaper to monitor).
    let best_layer = scores
        .iter()
        .fold(None::<(usize, f64)>, |best, &(l, s)| match best {
            Some((_, b)) if b >= s => best,
            _ => Some((l, s)),
        })
        .map_or(cfg.candidate_layers[0], |(l, _)| l);
    Ok(LayerChoice {
        best_layer,
        scores,
        rows,
    })
}

/// Generate the unsteered and every steered continuation at `layer` in one batch.
pub fn steer_layer<B: Backend>(
    lm: &LoadedModel<B>,
    directions: &Directions,
    cfg: &SteeringConfig,
    layer: usize,
    prompt_ids: &[Vec<u32>],
) -> Result<Vec<SteeringRow>> {
    let d = directions.d_model;
    let alpha = cfg.alpha_fraction * directions.residual_norm[layer] as f64;
    // Row plan: (trait index or None, sign, prompt index).
    let mut plan: Vec<(Option<usize>, i8, usize)> =
        (0..prompt_ids.len()).map(|p| (None, 0, p)).collect();
    for t in 0..directions.traits.len() {
        for sign in [1i8, -1] {
            plan.extend((0..prompt_ids.len()).map(|p| (Some(t), sign, p)));
        }
    }
    let mut vectors = vec![0f32; plan.len() * d];
    for (row, (t, sign, _)) in plan.iter().enumerate() {
        if let Some(t) = t {
            let dir = directions.at(*t, layer);
            for (v, &x) in vectors[row * d..(row + 1) * d].iter_mut().zip(dir) {
                *v = (*sign as f64 * alpha * x as f64) as f32;
            }
        }
    }
    let device = lm.model.device();
    let steer = Intervention::per_row(
        HookPoint::BlockOutput(layer),
        Tensor::<B, 2>::from_data(TensorData::new(vectors, [plan.len(), d]), &device),
    );
    let inputs: Vec<Vec<u32>> = plan
        .iter()
        .map(|(_, _, p)| prompt_ids[*p].clone())
        .collect();
    let sampling = SamplingConfig::greedy(cfg.max_new_tokens, lm.tokenizer.eos_ids.clone());
    let generation = llm::generate(
        &lm.model,
        &inputs,
        lm.tokenizer.pad_or_eos(),
        &sampling,
        &[steer],
    )?;
    let texts: Vec<String> = generation
        .tokens
        .iter()
        .map(|ids| lm.tokenizer.decode(ids, true))
        .collect::<Result<_, _>>()?;
    let baseline = &texts[..prompt_ids.len()];
    Ok(plan
        .iter()
        .zip(&texts)
        .map(|((t, sign, p), text)| SteeringRow {
            layer,
            trait_name: t.map_or_else(String::new, |t| directions.traits[t].clone()),
            sign: *sign,
            prompt_index: *p,
            alpha: if *sign == 0 { 0.0 } else { alpha },
            divergence: divergence(&baseline[*p], text),
            text: text.clone(),
        })
        .collect())
}

/// Character edit distance divided by the longer length: 0 for equal texts, 1 for texts
/// with nothing in common.
pub fn divergence(a: &str, b: &str) -> f64 {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let longest = a.len().max(b.len());
    if longest == 0 {
        return 0.0;
    }
    // Levenshtein distance, two rows.
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(ca != cb);
            cur[j + 1] = substitute.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()] as f64 / longest as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn divergence_by_hand() {
        assert_eq!(divergence("", ""), 0.0);
        assert_eq!(divergence("abc", "abc"), 0.0);
        assert_eq!(divergence("abc", "xyz"), 1.0);
        // kitten -> sitting: 3 edits over 7 characters.
        assert!((divergence("kitten", "sitting") - 3.0 / 7.0).abs() < 1e-12);
        assert_eq!(divergence("", "ab"), 1.0);
    }

    #[test]
    fn default_candidates_are_the_middle_third() {
        assert_eq!(default_candidates(30), (10..=20).collect::<Vec<_>>());
        assert_eq!(default_candidates(3), vec![1, 2]);
    }
}
