//! Host-side preparation of a forward pass: padding, positions, the attention mask and the
//! rotary tables. Everything here is small (`batch x seq`-sized), computed on the CPU in f32
//! the way HF computes it, then uploaded once per pass.

use crate::config::{ModelConfig, RopeScaling};
use crate::error::LlmError;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};

/// Where the padding goes. Left padding puts every row's last token at the same index, which
/// generation and last-token pooling want; right padding suits training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PaddingSide {
    #[default]
    Left,
    Right,
}

/// A batch of token sequences of different lengths.
#[derive(Debug, Clone)]
pub struct Batch {
    pub rows: Vec<Vec<u32>>,
    pub pad_id: u32,
    pub side: PaddingSide,
}

impl Batch {
    pub fn new(rows: Vec<Vec<u32>>, pad_id: u32, side: PaddingSide) -> Result<Self, LlmError> {
        if rows.is_empty() {
            return Err(LlmError::Input("empty batch".into()));
        }
        if let Some(i) = rows.iter().position(|r| r.is_empty()) {
            return Err(LlmError::Input(format!(
                "row {i} of the batch has no tokens"
            )));
        }
        Ok(Self { rows, pad_id, side })
    }

    pub fn batch_size(&self) -> usize {
        self.rows.len()
    }

    /// Padded length.
    pub fn seq_len(&self) -> usize {
        self.rows.iter().map(Vec::len).max().unwrap_or(0)
    }

    pub fn lengths(&self) -> Vec<usize> {
        self.rows.iter().map(Vec::len).collect()
    }

    /// Padding before row `i`'s first token.
    pub fn offset(&self, i: usize) -> usize {
        match self.side {
            PaddingSide::Left => self.seq_len() - self.rows[i].len(),
            PaddingSide::Right => 0,
        }
    }

    /// Index of row `i`'s last real token in the padded sequence.
    pub fn last_index(&self, i: usize) -> usize {
        self.offset(i) + self.rows[i].len() - 1
    }

    /// `[batch, seq]` token ids, padded.
    pub fn token_tensor<B: Backend>(&self, device: &B::Device) -> Tensor<B, 2, Int> {
        let t = self.seq_len();
        let mut ids = vec![self.pad_id as i64; self.batch_size() * t];
        for (i, row) in self.rows.iter().enumerate() {
            let o = self.offset(i);
            for (j, &id) in row.iter().enumerate() {
                ids[i * t + o + j] = id as i64;
            }
        }
        Tensor::from_data(TensorData::new(ids, [self.batch_size(), t]), device)
    }

    /// Per row, which padded positions hold real tokens.
    pub fn valid(&self) -> Vec<Vec<bool>> {
        let t = self.seq_len();
        (0..self.batch_size())
            .map(|i| {
                let (o, n) = (self.offset(i), self.rows[i].len());
                (0..t).map(|j| j >= o && j < o + n).collect()
            })
            .collect()
    }

    /// Per row, the RoPE position of each padded slot (0 on padding), so that padding never
    /// shifts a sequence's positions.
    pub fn positions(&self) -> Vec<Vec<usize>> {
        let t = self.seq_len();
        (0..self.batch_size())
            .map(|i| {
                let o = self.offset(i);
                (0..t).map(|j| j.saturating_sub(o)).collect()
            })
            .collect()
    }
}

/// Inverse RoPE frequencies `[head_dim / 2]`, including Llama 3 or linear scaling, or
/// per-dimension factors from GGUF's `rope_freqs` tensor.
#[derive(Debug, Clone)]
pub struct Rope {
    inv_freq: Vec<f32>,
    head_dim: usize,
}

impl Rope {
    /// The rotary embedding of full-attention layers (all layers but Gemma 3's local ones).
    pub fn new(cfg: &ModelConfig, freq_factors: Option<&[f32]>) -> Self {
        let mut rope = Self::plain(cfg.head_dim(), cfg.rope_theta);
        if let Some(s) = cfg.rope_scaling.as_ref() {
            rope.scale(s);
        }
        if let Some(factors) = freq_factors {
            for (f, k) in rope.inv_freq.iter_mut().zip(factors) {
                *f /= *k;
            }
        }
        rope
    }

    /// Gemma 3's local layers: their own base, never scaled. `None` when every layer uses
    /// [`Rope::new`].
    pub fn local(cfg: &ModelConfig) -> Option<Self> {
        cfg.local_rope_base()
            .map(|base| Self::plain(cfg.head_dim(), base))
    }

    fn plain(head_dim: usize, base: f64) -> Self {
        let base = base as f32;
        let inv_freq = (0..head_dim / 2)
            .map(|i| 1.0 / base.powf((2 * i) as f32 / head_dim as f32))
            .collect();
        Self { inv_freq, head_dim }
    }

    fn scale(&mut self, s: &RopeScaling) {
        // Validated in ModelConfig::validate: the values each scheme needs are present.
        let factor = s.factor.unwrap_or(1.0) as f32;
        match s.rope_type.as_str() {
            "linear" => self.inv_freq.iter_mut().for_each(|f| *f /= factor),
            "llama3" => {
                let low = s.low_freq_factor.unwrap_or(1.0) as f32;
                let high = s.high_freq_factor.unwrap_or(1.0) as f32;
                let old_ctx = s.original_max_position_embeddings.unwrap_or(8192) as f32;
                let (low_wavelen, high_wavelen) = (old_ctx / low, old_ctx / high);
                for f in &mut self.inv_freq {
                    let wavelen = 2.0 * std::f32::consts::PI / *f;
                    if wavelen > low_wavelen {
                        *f /= factor;
                    } else if wavelen >= high_wavelen {
                        let smooth = (old_ctx / wavelen - low) / (high - low);
                        *f = (1.0 - smooth) * *f / factor + smooth * *f;
                    }
                }
            }
            _ => {}
        }
    }

    /// `(cos, sin)` tables of shape `[batch, seq, heads, head_dim]`, repeated over heads so
    /// every multiply is elementwise on equal shapes (broadcasting is slow on burn's CPU
    /// backend). `sin` carries the sign of `rotate_half`: `-sin` on the first half.
    pub fn tables<B: Backend>(
        &self,
        positions: &[Vec<usize>],
        heads: usize,
        device: &B::Device,
    ) -> (Tensor<B, 4>, Tensor<B, 4>) {
        let (b, t, hd) = (positions.len(), positions[0].len(), self.head_dim);
        let mut cos = Vec::with_capacity(b * t * heads * hd);
        let mut sin = Vec::with_capacity(b * t * heads * hd);
        let mut cos_row = vec![0f32; hd];
        let mut sin_row = vec![0f32; hd];
        for row in positions {
            for &p in row {
                for (i, &f) in self.inv_freq.iter().enumerate() {
                    let angle = p as f32 * f;
                    let (s, c) = angle.sin_cos();
                    cos_row[i] = c;
                    cos_row[i + hd / 2] = c;
                    sin_row[i] = -s;
                    sin_row[i + hd / 2] = s;
                }
                for _ in 0..heads {
                    cos.extend_from_slice(&cos_row);
                    sin.extend_from_slice(&sin_row);
                }
            }
        }
        let shape = [b, t, heads, hd];
        (
            Tensor::from_data(TensorData::new(cos, shape), device),
            Tensor::from_data(TensorData::new(sin, shape), device),
        )
    }
}

/// `x·cos + rotate_half(x)·sin` with `rotate_half([x1, x2]) = [-x2, x1]`; the sign is in
/// the table, so this is `x·cos + [x2, x1]·sin`. All `[batch, seq, heads, head_dim]`.
pub fn apply_rope<B: Backend>(
    x: Tensor<B, 4>,
    cos: &Tensor<B, 4>,
    sin: &Tensor<B, 4>,
) -> Tensor<B, 4> {
    let [b, t, h, hd] = x.dims();
    let x1 = x.clone().slice([0..b, 0..t, 0..h, 0..hd / 2]);
    let x2 = x.clone().slice([0..b, 0..t, 0..h, hd / 2..hd]);
    let swapped = Tensor::cat(vec![x2, x1], 3);
    x * cos.clone() + swapped * sin.clone()
}

/// What one kind of layer (full or sliding attention) shares in a forward pass: rotary
/// tables for queries and keys, and the attention mask.
#[derive(Debug, Clone)]
pub struct AttentionTables<B: Backend> {
    /// `[batch, seq, heads, head_dim]`
    pub q_cos: Tensor<B, 4>,
    pub q_sin: Tensor<B, 4>,
    /// `[batch, seq, kv_heads, head_dim]`
    pub k_cos: Tensor<B, 4>,
    pub k_sin: Tensor<B, 4>,
    /// `[batch, kv_heads | 1, groups | 1, seq, keys]`, see [`attention_mask`].
    pub mask: Tensor<B, 5>,
}

/// The tables of every layer of one forward pass: one set per distinct (RoPE, window)
/// pair among the layers, so a Llama pass builds one and a Gemma pass two.
#[derive(Debug, Clone)]
pub struct PassTables<B: Backend> {
    sets: Vec<AttentionTables<B>>,
    /// Per layer, its index into `sets`.
    of_layer: Vec<usize>,
}

impl<B: Backend> PassTables<B> {
    /// Tables for new tokens at `positions`, attending over keys described by `key_valid`
    /// and `key_positions` (cached keys first, then the new ones). `local` is the RoPE of
    /// layers with their own base (Gemma 3), used where the config says a layer slides.
    pub fn new(
        cfg: &ModelConfig,
        rope: &Rope,
        local: Option<&Rope>,
        positions: &[Vec<usize>],
        key_valid: &[Vec<bool>],
        key_positions: &[Vec<usize>],
        device: &B::Device,
    ) -> Self {
        let (h, kvh) = (cfg.num_attention_heads, cfg.kv_heads());
        let q_len = positions.first().map_or(0, Vec::len);
        // (uses the local RoPE, window) of each layer, and the distinct ones in order.
        let kinds: Vec<(bool, Option<usize>)> = (0..cfg.num_hidden_layers)
            .map(|l| {
                (
                    local.is_some() && cfg.layer_is_sliding(l),
                    cfg.window_for_layer(l),
                )
            })
            .collect();
        let mut distinct: Vec<(bool, Option<usize>)> = Vec::new();
        for k in &kinds {
            if !distinct.contains(k) {
                distinct.push(*k);
            }
        }
        let mut rope_tables: Vec<(bool, [Tensor<B, 4>; 4])> = Vec::new();
        let sets = distinct
            .iter()
            .map(|&(use_local, window)| {
                let [q_cos, q_sin, k_cos, k_sin] =
                    match rope_tables.iter().find(|(u, _)| *u == use_local) {
                        Some((_, t)) => t.clone(),
                        None => {
                            let r = if use_local {
                                local.unwrap_or(rope)
                            } else {
                                rope
                            };
                            let (q_cos, q_sin) = r.tables(positions, h, device);
                            let (k_cos, k_sin) = r.tables(positions, kvh, device);
                            let t = [q_cos, q_sin, k_cos, k_sin];
                            rope_tables.push((use_local, t.clone()));
                            t
                        }
                    };
                let mask = attention_mask(
                    key_valid,
                    key_positions,
                    q_len,
                    (kvh, h / kvh),
                    window,
                    device,
                );
                AttentionTables {
                    q_cos,
                    q_sin,
                    k_cos,
                    k_sin,
                    mask,
                }
            })
            .collect();
        let of_layer = kinds
            .iter()
            .map(|k| distinct.iter().position(|d| d == k).unwrap_or(0))
            .collect();
        Self { sets, of_layer }
    }

    /// The tables of layer `l`.
    pub fn layer(&self, l: usize) -> &AttentionTables<B> {
        &self.sets[self.of_layer.get(l).copied().unwrap_or(0)]
    }
}

/// Above this many elements the mask stays broadcast (`[batch, 1, 1, q, k]`) instead of
/// being materialised per head; big passes belong on GPUs, where broadcasting is cheap.
const FULL_MASK_MAX: usize = 1 << 22;

/// Additive attention mask (0 = attend, -inf = blocked), shaped
/// `[batch, kv_heads, groups, q_len, k_len]` to match the grouped scores, or broadcast over
/// the two head dimensions when that would be large.
///
/// Query `i` sits at absolute index `k_len - q_len + i`. A key is visible when it is real
/// (`key_valid`), not in the future, and inside the sliding window if there is one. Each
/// query may always see itself, so a padding row never softmaxes over nothing (no NaN).
pub fn attention_mask<B: Backend>(
    key_valid: &[Vec<bool>],
    key_positions: &[Vec<usize>],
    q_len: usize,
    heads: (usize, usize),
    window: Option<usize>,
    device: &B::Device,
) -> Tensor<B, 5> {
    let (b, k_len) = (key_valid.len(), key_valid[0].len());
    let first_q = k_len - q_len;
    let (kv_heads, groups) = heads;
    let per_row = q_len * k_len;
    let copies = if b * kv_heads * groups * per_row <= FULL_MASK_MAX {
        kv_heads * groups
    } else {
        1
    };
    let mut mask = vec![0f32; b * copies * per_row];
    for r in 0..b {
        let block = &mut mask[r * copies * per_row..(r * copies + 1) * per_row];
        for i in 0..q_len {
            let qi = first_q + i;
            for j in 0..k_len {
                let in_window = window
                    .is_none_or(|w| key_positions[r][qi].saturating_sub(key_positions[r][j]) < w);
                let visible = j == qi || (j < qi && key_valid[r][j] && in_window);
                if !visible {
                    block[i * k_len + j] = f32::NEG_INFINITY;
                }
            }
        }
        for c in 1..copies {
            mask.copy_within(
                r * copies * per_row..(r * copies + 1) * per_row,
                (r * copies + c) * per_row,
            );
        }
    }
    let shape = if copies == 1 {
        [b, 1, 1, q_len, k_len]
    } else {
        [b, kv_heads, groups, q_len, k_len]
    };
    Tensor::from_data(TensorData::new(mask, shape), device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn left_and_right_padding() {
        let b = Batch::new(vec![vec![5, 6, 7], vec![8]], 0, PaddingSide::Left).unwrap();
        assert_eq!(b.seq_len(), 3);
        assert_eq!(b.offset(1), 2);
        assert_eq!(b.last_index(1), 2);
        assert_eq!(b.positions()[1], vec![0, 0, 0]);
        assert_eq!(b.positions()[0], vec![0, 1, 2]);
        assert_eq!(b.valid()[1], vec![false, false, true]);
        let r = Batch::new(vec![vec![5, 6, 7], vec![8]], 0, PaddingSide::Right).unwrap();
        assert_eq!(r.last_index(1), 0);
        assert_eq!(r.valid()[1], vec![true, false, false]);
        assert!(Batch::new(vec![vec![]], 0, PaddingSide::Left).is_err());
    }
}
