//! Dropout on a LoRA adapter's input, with masks that are a pure function of a key.
//!
//! burn's `Dropout` draws from the backend's process-wide RNG, so two batch shards trained
//! on parallel threads would interleave their draws and a run would no longer repeat bit
//! for bit. Here element `i` of the mask is decided by a hash of `(key, i)`: the trainer
//! gives every adapter a key per step and shard, and the mask is the same whatever thread
//! or backend computes it.

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

/// Inverted dropout with probability `prob`: kept elements are scaled by `1 / (1 - prob)`.
/// Active only under autodiff (training), as burn's `Dropout`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KeyedDropout {
    pub prob: f64,
    /// Set by the trainer before each forward pass (see `finetune::lora::set_dropout_keys`).
    pub key: u64,
}

impl KeyedDropout {
    pub fn new(prob: f64) -> Self {
        Self { prob, key: 0 }
    }

    pub fn forward<B: Backend>(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        if self.prob <= 0.0 || !B::ad_enabled(&x.device()) {
            return x;
        }
        let [rows, cols] = x.dims();
        let mask = self.mask(rows * cols);
        let mask = Tensor::<B, 2>::from_data(TensorData::new(mask, [rows, cols]), &x.device());
        x * mask
    }

    /// `n` mask values, each 0 or `1 / (1 - prob)`.
    pub fn mask(&self, n: usize) -> Vec<f32> {
        let keep = (1.0 / (1.0 - self.prob)) as f32;
        // An element is dropped when its 32-bit hash falls below prob · 2^32.
        let threshold = (self.prob * 4_294_967_296.0) as u64;
        let mut out = Vec::with_capacity(n);
        for pair in 0..n.div_ceil(2) {
            let h = splitmix64(self.key ^ splitmix64(pair as u64));
            for half in [h & 0xFFFF_FFFF, h >> 32] {
                if out.len() < n {
                    out.push(if half < threshold { 0.0 } else { keep });
                }
            }
        }
        out
    }
}

/// SplitMix64's finaliser: a fast bijective mix with good avalanche.
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_drop_about_prob_and_depend_only_on_the_key() {
        let d = KeyedDropout { prob: 0.25, key: 7 };
        let m = d.mask(100_001);
        assert_eq!(m.len(), 100_001);
        let dropped = m.iter().filter(|&&v| v == 0.0).count() as f64 / m.len() as f64;
        assert!((dropped - 0.25).abs() < 0.01, "dropped {dropped}");
        assert!(m.iter().all(|&v| v == 0.0 || (v - 1.0 / 0.75).abs() < 1e-6));
        assert_eq!(m, d.mask(100_001));
        assert_ne!(m, KeyedDropout { prob: 0.25, key: 8 }.mask(100_001));
        // A prefix of a longer mask is the shorter mask.
        assert_eq!(d.mask(10)[..], m[..10]);
    }

    #[test]
    fn off_without_autodiff_or_probability() {
        type B = burn::backend::Flex;
        let x = Tensor::<B, 2>::ones([3, 4], &Default::default());
        let y = KeyedDropout { prob: 0.5, key: 1 }.forward(x.clone());
        assert_eq!(y.into_data(), x.into_data());
    }
}
