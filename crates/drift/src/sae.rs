//! A trained sparse autoencoder as a feature map (METHOD section 5, the SAE baseline):
//! `z(h) = ReLU(W_enc^T (s·h - b_dec) + b_enc)`, `m` latents, where `s` rescales inputs
//! so the training activations had mean squared norm `d`. With this map, `drift_series`
//! gives exactly the baseline's feature `(z(h̄(t)) - z(h̄(0))) / N`. Stored as safetensors
//! (`w_enc [d, m]`, `b_enc [m]`, `w_dec [m, d]`, `b_dec [d]`, F32) with `layer`, `scale`
//! and training facts in the metadata. Trained by the `baselines` crate.

use crate::basis::FeatureMap;
use crate::{DriftError, Result};
use std::collections::HashMap;
use std::path::Path;

/// The SAE's weights and the metadata saved with them.
#[derive(Debug, Clone, PartialEq)]
pub struct SparseAutoencoder {
    /// Input width (the model's hidden size).
    pub d: usize,
    /// Number of latents.
    pub m: usize,
    /// Input scale `s`.
    pub scale: f64,
    /// `[d][m]` row-major.
    pub w_enc: Vec<f32>,
    /// `[m]` encoder bias.
    pub b_enc: Vec<f32>,
    /// `[m][d]` row-major; rows unit norm after training.
    pub w_dec: Vec<f32>,
    /// `[d]` decoder bias (subtracted from scaled inputs before encoding).
    pub b_dec: Vec<f32>,
    /// Top-k SAE: only the k largest latents stay active (None: plain ReLU).
    pub top_k: Option<usize>,
    /// Free-form facts saved with the weights (layer, model, training report).
    pub meta: HashMap<String, String>,
    names: Vec<String>,
}

fn bad(path: &Path, reason: String) -> DriftError {
    DriftError::InvalidArgument(format!("{}: {reason}", path.display()))
}

fn f32_view<'a>(
    shape: Vec<usize>,
    data: &'a [u8],
    path: &Path,
) -> Result<safetensors::tensor::TensorView<'a>> {
    safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape, data)
        .map_err(|e| bad(path, e.to_string()))
}

impl SparseAutoencoder {
    /// An SAE from its parts; errors if the shapes disagree.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        d: usize,
        m: usize,
        scale: f64,
        w_enc: Vec<f32>,
        b_enc: Vec<f32>,
        w_dec: Vec<f32>,
        b_dec: Vec<f32>,
        meta: HashMap<String, String>,
    ) -> Result<Self> {
        if w_enc.len() != d * m || w_dec.len() != m * d || b_enc.len() != m || b_dec.len() != d {
            return Err(DriftError::InvalidArgument(format!(
                "SAE shapes do not fit d = {d}, m = {m}"
            )));
        }
        Ok(Self {
            d,
            m,
            scale,
            w_enc,
            b_enc,
            w_dec,
            b_dec,
            top_k: None,
            meta,
            names: (0..m).map(|j| format!("latent_{j}")).collect(),
        })
    }

    /// The same SAE keeping only the `k` largest latents of each input.
    pub fn with_top_k(mut self, k: Option<usize>) -> Self {
        self.top_k = k;
        self
    }

    /// Latent activations of one input.
    pub fn encode(&self, h: &[f64]) -> Vec<f64> {
        let x: Vec<f64> = h
            .iter()
            .zip(&self.b_dec)
            .map(|(v, b)| self.scale * v - f64::from(*b))
            .collect();
        let mut z: Vec<f64> = self.b_enc.iter().map(|&b| f64::from(b)).collect();
        for (i, xi) in x.iter().enumerate() {
            let row = &self.w_enc[i * self.m..(i + 1) * self.m];
            for (zj, w) in z.iter_mut().zip(row) {
                *zj += xi * f64::from(*w);
            }
        }
        if let Some(k) = self.top_k.filter(|&k| k < self.m) {
            let mut sorted = z.clone();
            sorted.sort_by(|a, b| b.total_cmp(a));
            let threshold = sorted[k.saturating_sub(1)];
            z.iter_mut()
                .filter(|v| **v < threshold)
                .for_each(|v| *v = 0.0);
        }
        z.iter().map(|v| v.max(0.0)).collect()
    }

    /// Write the weights and metadata (with `scale`) to `path` atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let bytes = |v: &[f32]| -> Vec<u8> { v.iter().flat_map(|x| x.to_le_bytes()).collect() };
        let (we, be, wd, bd) = (
            bytes(&self.w_enc),
            bytes(&self.b_enc),
            bytes(&self.w_dec),
            bytes(&self.b_dec),
        );
        let views = vec![
            ("w_enc", f32_view(vec![self.d, self.m], &we, path)?),
            ("b_enc", f32_view(vec![self.m], &be, path)?),
            ("w_dec", f32_view(vec![self.m, self.d], &wd, path)?),
            ("b_dec", f32_view(vec![self.d], &bd, path)?),
        ];
        let mut meta = self.meta.clone();
        meta.insert("scale".into(), self.scale.to_string());
        if let Some(k) = self.top_k {
            meta.insert("top_k".into(), k.to_string());
        }
        let data =
            safetensors::serialize(views, Some(meta)).map_err(|e| bad(path, e.to_string()))?;
        let tmp = tables::temp_path(path);
        std::fs::write(&tmp, data)
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|e| bad(path, e.to_string()))
    }

    /// Read an SAE written by [`SparseAutoencoder::save`].
    pub fn load(path: &Path) -> Result<Self> {
        let data = std::fs::read(path).map_err(|e| bad(path, e.to_string()))?;
        let (_, header) =
            safetensors::SafeTensors::read_metadata(&data).map_err(|e| bad(path, e.to_string()))?;
        let meta: HashMap<String, String> = header.metadata().clone().unwrap_or_default();
        let st =
            safetensors::SafeTensors::deserialize(&data).map_err(|e| bad(path, e.to_string()))?;
        let tensor = |name: &str| tables::tensor::read_f32(&st, name).map_err(|e| bad(path, e));
        let (shape, w_enc) = tensor("w_enc")?;
        let [d, m] = shape[..] else {
            return Err(bad(path, format!("w_enc has shape {shape:?}")));
        };
        let scale = meta
            .get("scale")
            .and_then(|s| s.parse::<f64>().ok())
            .ok_or_else(|| bad(path, "no `scale` in the metadata".into()))?;
        let top_k = meta.get("top_k").and_then(|k| k.parse::<usize>().ok());
        Ok(Self::new(
            d,
            m,
            scale,
            w_enc,
            tensor("b_enc")?.1,
            tensor("w_dec")?.1,
            tensor("b_dec")?.1,
            meta,
        )
        .map_err(|e| bad(path, e.to_string()))?
        .with_top_k(top_k))
    }
}

impl FeatureMap for SparseAutoencoder {
    fn feature_set(&self) -> &str {
        "sae"
    }

    fn feature_names(&self) -> &[String] {
        &self.names
    }

    fn dim(&self) -> usize {
        self.d
    }

    fn apply(&self, h: &[f64]) -> Result<Vec<f64>> {
        if h.len() != self.d {
            return Err(DriftError::InvalidArgument(format!(
                "the SAE takes {}-dimensional activations, got {}",
                self.d,
                h.len()
            )));
        }
        Ok(self.encode(h))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_and_round_trips_through_safetensors() {
        // d = 2, m = 3: latent j reads input j (j < 2) and latent 2 reads their sum.
        let sae = SparseAutoencoder::new(
            2,
            3,
            2.0,
            vec![1.0, 0.0, 1.0, 0.0, 1.0, 1.0],
            vec![0.0, 0.0, -1.0],
            vec![1.0, 0.0, 0.0, 1.0, 0.7, 0.7],
            vec![0.5, 0.0],
            HashMap::from([("layer".to_string(), "3".to_string())]),
        )
        .unwrap();
        // s·h - b_dec = (2·1 - 0.5, 2·(-1)) = (1.5, -2): z = relu(1.5, -2, 1.5 - 2 - 1).
        assert_eq!(sae.apply(&[1.0, -1.0]).unwrap(), vec![1.5, 0.0, 0.0]);
        assert!(sae.apply(&[1.0]).is_err());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sae.safetensors");
        sae.save(&path).unwrap();
        let back = SparseAutoencoder::load(&path).unwrap();
        assert_eq!((back.d, back.m, back.scale), (2, 3, 2.0));
        assert_eq!(back.encode(&[1.0, -1.0]), sae.encode(&[1.0, -1.0]));
        assert_eq!(back.meta.get("layer").map(String::as_str), Some("3"));
        // Top-1: of latents (1.5, 0, 0) for this input only the largest survives; for
        // (2, 2) -> s·h - b_dec = (3.5, 4): pre (3.5, 4, 6.5), top-1 keeps 6.5.
        let top1 = sae.clone().with_top_k(Some(1));
        assert_eq!(top1.encode(&[2.0, 2.0]), vec![0.0, 0.0, 6.5]);
        top1.save(&path).unwrap();
        assert_eq!(SparseAutoencoder::load(&path).unwrap().top_k, Some(1));
    }
}
