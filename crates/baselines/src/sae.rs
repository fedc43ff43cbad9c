//! Training the ReLU sparse autoencoder (METHOD section 5, "ours"): reconstruction error
//! plus an L1 penalty on the latents, Adam, decoder rows renormalised to unit norm after
//! every step (so the penalty cannot be dodged by shrinking latents and growing the
//! decoder). Inputs are rescaled so their mean squared norm is `d`, which makes the L1
//! coefficient mean the same thing for every model. Reported: fraction of variance
//! unexplained (FVU), share of dead latents (never active on the data), mean L0.

use crate::{BaselineError, Result};
use burn::tensor::activation::relu;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Tensor, TensorData};
use drift::SparseAutoencoder;
use indicatif::ProgressBar;
use llm::model::tensor_to_f32;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Tokens whose activation norm exceeds this multiple of the median are left out.
pub const OUTLIER_FACTOR: f64 = 10.0;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SaeConfig {
    pub latents: usize,
    /// L1 coefficient on the latents, against the squared error summed over the d inputs
    /// (inputs scaled to mean squared norm d; decoder rows unit norm).
    pub l1: f64,
    pub lr: f64,
    pub steps: usize,
    pub batch_size: usize,
    pub seed: u64,
    /// Top-k SAE: keep the k largest latents per token (None: ReLU with the L1 penalty).
    pub top_k: Option<usize>,
}

impl Default for SaeConfig {
    fn default() -> Self {
        Self {
            latents: 256,
            l1: 1.0,
            lr: 1e-3,
            steps: 2000,
            batch_size: 512,
            seed: 0,
            top_k: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SaeLogRow {
    pub step: usize,
    pub loss: f64,
    /// Mean squared reconstruction error per token (scaled inputs).
    pub mse: f64,
    /// Mean active latents per token.
    pub l0: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SaeReport {
    /// Tokens trained and evaluated on.
    pub tokens: usize,
    /// Tokens set aside as outliers (norm > OUTLIER_FACTOR x median).
    pub excluded_tokens: usize,
    pub fvu: f64,
    pub dead_fraction: f64,
    pub mean_l0: f64,
}

/// Adam state of one parameter, on the inner (non-autodiff) backend.
struct Adam<B: Backend, const D: usize> {
    m: Tensor<B, D>,
    v: Tensor<B, D>,
}

impl<B: Backend, const D: usize> Adam<B, D> {
    fn new(like: &Tensor<B, D>) -> Self {
        Self {
            m: like.zeros_like(),
            v: like.zeros_like(),
        }
    }

    fn step(&mut self, p: Tensor<B, D>, g: Tensor<B, D>, lr: f64, t: usize) -> Tensor<B, D> {
        let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8f64);
        self.m = self.m.clone() * b1 + g.clone() * (1.0 - b1);
        self.v = self.v.clone() * b2 + g.powi_scalar(2) * (1.0 - b2);
        let mhat = self.m.clone() / (1.0 - b1.powi(t as i32));
        let vhat = self.v.clone() / (1.0 - b2.powi(t as i32));
        p - mhat / (vhat.sqrt() + eps) * lr
    }
}

/// Unit-norm rows.
fn normalise_rows<B: Backend>(w: Tensor<B, 2>) -> Tensor<B, 2> {
    let norm = w.clone().powi_scalar(2).sum_dim(1).sqrt().clamp_min(1e-12);
    w / norm
}

/// Train on `data` (`[n, d]` row-major activations).
pub fn train_sae<B: AutodiffBackend>(
    data: &[f32],
    d: usize,
    cfg: &SaeConfig,
    device: &B::Device,
    progress: Option<&ProgressBar>,
) -> Result<(SparseAutoencoder, Vec<SaeLogRow>, SaeReport)> {
    let n = data.len().checked_div(d).unwrap_or(0);
    if cfg.top_k.is_some_and(|k| k == 0 || k >= cfg.latents) {
        return Err(BaselineError::Input(format!(
            "top-k must be between 1 and the latent count - 1 ({})",
            cfg.latents
        )));
    }
    if n < 2 || data.len() != n * d || cfg.latents == 0 || cfg.batch_size == 0 {
        return Err(BaselineError::Input(format!(
            "an SAE needs at least two {d}-dimensional activations and positive sizes"
        )));
    }
    if let Some(v) = data.iter().find(|v| !v.is_finite()) {
        return Err(BaselineError::Input(format!("non-finite activation {v}")));
    }
    let m = cfg.latents;
    // Attention-sink tokens (the first token of a sequence, on Llama-family models) carry
    // activations orders of magnitude larger than the rest; left in, they dominate the
    // reconstruction error and the variance, and FVU reads ~0 whatever the SAE learned.
    // Rows above OUTLIER_FACTOR x the median norm are set aside (and counted).
    let norms: Vec<f64> = data
        .chunks_exact(d)
        .map(|r| r.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>().sqrt())
        .collect();
    let mut sorted = norms.clone();
    sorted.sort_by(f64::total_cmp);
    let cutoff = OUTLIER_FACTOR * sorted[n / 2];
    let kept: Vec<f32> = data
        .chunks_exact(d)
        .zip(&norms)
        .filter(|(_, norm)| **norm <= cutoff)
        .flat_map(|(r, _)| r.iter().copied())
        .collect();
    let excluded = n - kept.len() / d;
    let (data, n) = (&kept[..], kept.len() / d);
    if n < 2 {
        return Err(BaselineError::Input(
            "fewer than two activations left after removing outliers".into(),
        ));
    }
    let mean_sq = data.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / n as f64;
    let scale = (d as f64 / mean_sq.max(f64::MIN_POSITIVE)).sqrt();
    let x_all: Vec<f32> = data
        .iter()
        .map(|&v| (f64::from(v) * scale) as f32)
        .collect();
    let mean: Vec<f32> = (0..d)
        .map(|j| (0..n).map(|i| f64::from(x_all[i * d + j])).sum::<f64>() as f32 / n as f32)
        .collect();

    let mut rng = StdRng::seed_from_u64(cfg.seed);
    type Inner<B> = <B as AutodiffBackend>::InnerBackend;
    let init: Vec<f32> = (0..m * d).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    let w_dec0 = normalise_rows(Tensor::<Inner<B>, 2>::from_data(
        TensorData::new(init, [m, d]),
        device,
    ));
    let mut w_dec = w_dec0.clone();
    let mut w_enc = w_dec0.transpose();
    let mut b_enc = Tensor::<Inner<B>, 1>::zeros([m], device);
    let mut b_dec = Tensor::<Inner<B>, 1>::from_data(TensorData::new(mean.clone(), [d]), device);
    let (mut o_we, mut o_be, mut o_wd, mut o_bd) = (
        Adam::new(&w_enc),
        Adam::new(&b_enc),
        Adam::new(&w_dec),
        Adam::new(&b_dec),
    );
    let mut log = Vec::new();
    let b = cfg.batch_size.min(n);
    for step in 1..=cfg.steps {
        let rows: Vec<f32> = (0..b)
            .flat_map(|_| {
                let i = rng.random_range(0..n);
                x_all[i * d..(i + 1) * d].iter().copied()
            })
            .collect();
        let x = Tensor::<B, 2>::from_data(TensorData::new(rows, [b, d]), device);
        let we = Tensor::<B, 2>::from_inner(w_enc.clone()).require_grad();
        let be = Tensor::<B, 1>::from_inner(b_enc.clone()).require_grad();
        let wd = Tensor::<B, 2>::from_inner(w_dec.clone()).require_grad();
        let bd = Tensor::<B, 1>::from_inner(b_dec.clone()).require_grad();
        let pre = (x.clone() - bd.clone().unsqueeze::<2>()).matmul(we.clone())
            + be.clone().unsqueeze::<2>();
        let z = match cfg.top_k {
            None => relu(pre),
            Some(k) => {
                // Keep each row's k largest pre-activations (the mask carries no gradient).
                let inner = pre.clone().inner();
                let threshold = inner
                    .clone()
                    .topk(k, 1)
                    .narrow(1, k - 1, 1)
                    .repeat_dim(1, m);
                let mask = Tensor::<B, 2>::from_inner(inner.greater_equal(threshold).float());
                relu(pre) * mask
            }
        };
        let xhat = z.clone().matmul(wd.clone()) + bd.clone().unsqueeze::<2>();
        let mse = (x - xhat).powi_scalar(2).sum_dim(1).mean();
        let l1 = z.clone().sum_dim(1).mean();
        // A top-k SAE is sparse by construction: no L1 term.
        let l1_coefficient = if cfg.top_k.is_some() { 0.0 } else { cfg.l1 };
        let loss = mse.clone() + l1 * l1_coefficient;
        let grads = loss.backward();
        let missing = || BaselineError::Input("no gradient for an SAE parameter".into());
        w_enc = o_we.step(w_enc, we.grad(&grads).ok_or_else(missing)?, cfg.lr, step);
        b_enc = o_be.step(b_enc, be.grad(&grads).ok_or_else(missing)?, cfg.lr, step);
        w_dec =
            normalise_rows(o_wd.step(w_dec, wd.grad(&grads).ok_or_else(missing)?, cfg.lr, step));
        b_dec = o_bd.step(b_dec, bd.grad(&grads).ok_or_else(missing)?, cfg.lr, step);
        if step % 50 == 0 || step == cfg.steps {
            let loss_v = f64::from(tensor_to_f32(loss.inner())[0]);
            if !loss_v.is_finite() {
                return Err(BaselineError::Input(format!(
                    "SAE loss is {loss_v} at step {step}: lower the learning rate"
                )));
            }
            let active = tensor_to_f32(z.inner().greater_elem(0.0).float().sum_dim(1).mean())[0];
            log.push(SaeLogRow {
                step,
                loss: loss_v,
                mse: f64::from(tensor_to_f32(mse.inner())[0]) / d as f64,
                l0: f64::from(active),
            });
        }
        if let Some(pb) = progress {
            pb.inc(1);
        }
    }
    let host = |t: Tensor<Inner<B>, 2>| tensor_to_f32(t);
    let sae = SparseAutoencoder::new(
        d,
        m,
        scale,
        host(w_enc),
        tensor_to_f32(b_enc),
        host(w_dec),
        tensor_to_f32(b_dec),
        HashMap::new(),
    )?
    .with_top_k(cfg.top_k);
    let report = SaeReport {
        excluded_tokens: excluded,
        ..evaluate(&sae, &x_all, &mean, n, d)
    };
    Ok((sae, log, report))
}

/// FVU, dead latents and mean L0 of `sae` on already-scaled rows (host arithmetic).
fn evaluate(sae: &SparseAutoencoder, x: &[f32], mean: &[f32], n: usize, d: usize) -> SaeReport {
    let (mut err, mut var, mut l0) = (0.0f64, 0.0f64, 0.0f64);
    let mut alive = vec![false; sae.m];
    for i in 0..n {
        let row: Vec<f64> = x[i * d..(i + 1) * d]
            .iter()
            .map(|&v| f64::from(v))
            .collect();
        // encode() applies the input scale; these rows are scaled already.
        let unscaled: Vec<f64> = row.iter().map(|v| v / sae.scale).collect();
        let z = sae.encode(&unscaled);
        for (j, &zj) in z.iter().enumerate() {
            if zj > 0.0 {
                alive[j] = true;
                l0 += 1.0;
            }
        }
        for c in 0..d {
            let rec: f64 = f64::from(sae.b_dec[c])
                + z.iter()
                    .enumerate()
                    .map(|(j, zj)| zj * f64::from(sae.w_dec[j * d + c]))
                    .sum::<f64>();
            err += (row[c] - rec).powi(2);
            var += (row[c] - f64::from(mean[c])).powi(2);
        }
    }
    SaeReport {
        tokens: n,
        excluded_tokens: 0,
        fvu: err / var.max(f64::MIN_POSITIVE),
        dead_fraction: alive.iter().filter(|&&a| !a).count() as f64 / sae.m as f64,
        mean_l0: l0 / n as f64,
    }
}
