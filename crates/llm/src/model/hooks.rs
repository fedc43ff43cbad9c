//! Hook points: the canonical names of residual-stream activations, what a forward pass
//! should capture or change, and what it returns.
//!
//! Layer convention (used everywhere in traitwatch): decoder blocks are numbered from 0, and
//! `BlockOutput(l)` is the residual stream at the OUTPUT of block `l`, before the final norm.
//! In HF `output_hidden_states` terms, `Embeddings` = `hidden_states[0]`,
//! `BlockOutput(l)` = `hidden_states[l + 1]` for `l < L - 1`, and `FinalNorm` =
//! `hidden_states[L]` (HF replaces its last entry by the normed stream, so HF has no
//! un-normed `BlockOutput(L - 1)`; we do).

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HookPoint {
    /// Token embeddings, the input to block 0.
    Embeddings,
    /// Residual stream after decoder block `l` (0-based).
    BlockOutput(usize),
    /// The final RMSNorm's output, the input to the LM head.
    FinalNorm,
}

impl HookPoint {
    /// Every hook point of a model with `n_layers` blocks, in forward order.
    pub fn all(n_layers: usize) -> Vec<HookPoint> {
        std::iter::once(HookPoint::Embeddings)
            .chain((0..n_layers).map(HookPoint::BlockOutput))
            .chain(std::iter::once(HookPoint::FinalNorm))
            .collect()
    }

    /// The block whose output this is; embeddings come "before block 0".
    fn order(self) -> (usize, usize) {
        match self {
            HookPoint::Embeddings => (0, 0),
            HookPoint::BlockOutput(l) => (1, l),
            HookPoint::FinalNorm => (2, 0),
        }
    }

    /// Whether this point lies within a model of `n_layers` blocks.
    pub fn is_valid_for(self, n_layers: usize) -> bool {
        match self {
            HookPoint::BlockOutput(l) => l < n_layers,
            _ => true,
        }
    }
}

impl fmt::Display for HookPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HookPoint::Embeddings => write!(f, "embeddings"),
            HookPoint::BlockOutput(l) => write!(f, "block.{l}"),
            HookPoint::FinalNorm => write!(f, "final_norm"),
        }
    }
}

impl FromStr for HookPoint {
    type Err = String;

    /// Accepts `embeddings`, `block.<l>` (or a bare layer number) and `final_norm`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        match s {
            "embeddings" | "embed" => return Ok(HookPoint::Embeddings),
            "final_norm" | "norm" => return Ok(HookPoint::FinalNorm),
            _ => {}
        }
        let num = s.strip_prefix("block.").unwrap_or(s);
        num.parse::<usize>()
            .map(HookPoint::BlockOutput)
            .map_err(|_| {
                format!(
                    "`{s}` is not a hook point (expected embeddings, block.<layer> or final_norm)"
                )
            })
    }
}

/// Which positions get logits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogitsMode {
    /// Every position: `[batch, seq, vocab]` (scoring, training).
    #[default]
    All,
    /// Only each row's last real token: `[batch, 1, vocab]` (generation).
    Last,
    /// No LM head at all (activation extraction); the forward may stop early.
    None,
}

/// Add a vector to the residual stream at `point`, at every position (activation steering).
#[derive(Debug, Clone)]
pub struct Intervention<B: Backend> {
    pub point: HookPoint,
    /// `[rows, d_model]`, already scaled: `rows == 1` steers every row of the batch alike,
    /// `rows == batch` gives each row its own vector (many steering settings in one pass).
    pub vectors: Tensor<B, 2>,
}

impl<B: Backend> Intervention<B> {
    /// The same `[d_model]` vector for every row.
    pub fn all_rows(point: HookPoint, vector: Tensor<B, 1>) -> Self {
        Self {
            point,
            vectors: vector.unsqueeze::<2>(),
        }
    }

    /// One `[d_model]` vector per row: `vectors` is `[batch, d_model]`.
    pub fn per_row(point: HookPoint, vectors: Tensor<B, 2>) -> Self {
        Self { point, vectors }
    }
}

/// What a forward pass captures, changes and returns.
#[derive(Debug, Clone)]
pub struct ForwardOptions<B: Backend> {
    pub capture: Vec<HookPoint>,
    pub logits: LogitsMode,
    pub interventions: Vec<Intervention<B>>,
}

impl<B: Backend> Default for ForwardOptions<B> {
    fn default() -> Self {
        Self {
            capture: Vec::new(),
            logits: LogitsMode::All,
            interventions: Vec::new(),
        }
    }
}

impl<B: Backend> ForwardOptions<B> {
    pub fn logits(mode: LogitsMode) -> Self {
        Self {
            logits: mode,
            ..Self::default()
        }
    }

    pub fn capture(mut self, points: impl IntoIterator<Item = HookPoint>) -> Self {
        self.capture.extend(points);
        self
    }

    /// Add `vector` (`[d_model]`) at `point` in every row.
    pub fn intervene(mut self, point: HookPoint, vector: Tensor<B, 1>) -> Self {
        self.interventions
            .push(Intervention::all_rows(point, vector));
        self
    }

    /// Add row `i` of `vectors` (`[batch, d_model]`) at `point` in row `i`.
    pub fn intervene_rows(mut self, point: HookPoint, vectors: Tensor<B, 2>) -> Self {
        self.interventions
            .push(Intervention::per_row(point, vectors));
        self
    }

    /// The number of blocks that must run: all of them unless no logits are wanted, in
    /// which case the pass can stop after the last block anything is captured from.
    pub(crate) fn blocks_needed(&self, n_layers: usize) -> usize {
        if self.logits != LogitsMode::None || self.capture.contains(&HookPoint::FinalNorm) {
            return n_layers;
        }
        self.capture
            .iter()
            .filter_map(|p| match p.order() {
                (1, l) => Some(l + 1),
                _ => None,
            })
            .max()
            .unwrap_or(0)
            .min(n_layers)
    }
}

/// Result of a forward pass.
#[derive(Debug)]
pub struct ForwardOutput<B: Backend> {
    /// `[batch, seq, vocab]` for `LogitsMode::All`, `[batch, 1, vocab]` for `Last`.
    pub logits: Option<Tensor<B, 3>>,
    /// Captured activations in forward order, each `[batch, seq, d_model]`.
    pub hidden: Vec<(HookPoint, Tensor<B, 3>)>,
}

impl<B: Backend> ForwardOutput<B> {
    /// The captured activation at `point`, if it was requested.
    pub fn hidden_at(&self, point: HookPoint) -> Option<&Tensor<B, 3>> {
        self.hidden
            .iter()
            .find(|(p, _)| *p == point)
            .map(|(_, t)| t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    #[test]
    fn names_round_trip() {
        for p in HookPoint::all(3) {
            assert_eq!(p.to_string().parse::<HookPoint>().unwrap(), p);
        }
        assert_eq!(
            "12".parse::<HookPoint>().unwrap(),
            HookPoint::BlockOutput(12)
        );
        assert!("block.x".parse::<HookPoint>().is_err());
    }

    #[test]
    fn early_exit_depth() {
        let o =
            ForwardOptions::<Flex>::logits(LogitsMode::None).capture([HookPoint::BlockOutput(4)]);
        assert_eq!(o.blocks_needed(30), 5);
        let o = ForwardOptions::<Flex>::logits(LogitsMode::None).capture([HookPoint::Embeddings]);
        assert_eq!(o.blocks_needed(30), 0);
        let o = ForwardOptions::<Flex>::logits(LogitsMode::Last);
        assert_eq!(o.blocks_needed(30), 30);
    }
}
