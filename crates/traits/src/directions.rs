//! Trait directions at every layer, and their safetensors file.
//!
//! File layout (`directions.safetensors`): one f32 tensor per trait, named by the trait,
//! `[n_layers, d_model]` (row `l` = unit direction at the output of decoder block `l`),
//! plus `__residual_norm__` `[n_layers]` (mean L2 norm of the pooled activations at each
//! layer, the scale steering strengths are fractions of). The safetensors metadata holds
//! [`DirectionsMeta`] as JSON under the key `traitwatch`.

use crate::error::{Result, TraitsError};
use std::collections::HashMap;
use std::path::Path;

/// Name of the residual-norm tensor in the directions file.
pub const RESIDUAL_NORM_TENSOR: &str = "__residual_norm__";
/// The layer convention written into every directions file.
pub const LAYER_CONVENTION: &str =
    "row l = output of decoder block l (0-based) = HF hidden_states[l+1], before the final norm";

/// Where a set of directions came from.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DirectionsMeta {
    /// Bank name (`alignment`, `semantic`, or a user's).
    pub bank: String,
    pub bank_version: u32,
    /// Hash of the bank and the extraction questions ([`crate::bank::content_hash`]).
    pub bank_hash: String,
    /// Pooling label ([`crate::Pooling::label`]).
    pub pooling: String,
    pub layer_convention: String,
    /// The model reference as given, and a fingerprint of its weights.
    pub model: String,
    pub model_fingerprint: String,
    /// Activations per pole and trait (questions x prompts).
    pub samples_per_pole: usize,
}

/// Unit trait directions, `[n_traits, n_layers, d_model]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Directions {
    /// Trait names in feature order.
    pub traits: Vec<String>,
    pub n_layers: usize,
    pub d_model: usize,
    /// `[n_traits, n_layers, d_model]`, each `[d_model]` row unit-norm.
    pub vectors: Vec<f32>,
    /// `[n_layers]`: mean norm of the pooled activations at each layer.
    pub residual_norm: Vec<f32>,
    pub meta: DirectionsMeta,
}

impl Directions {
    /// `[d_model]` unit direction of trait `t` at decoder block `layer`.
    pub fn at(&self, t: usize, layer: usize) -> &[f32] {
        let start = (t * self.n_layers + layer) * self.d_model;
        &self.vectors[start..start + self.d_model]
    }

    /// All traits' directions at `layer`, `[n_traits][d_model]`.
    pub fn layer(&self, layer: usize) -> Vec<Vec<f32>> {
        (0..self.traits.len())
            .map(|t| self.at(t, layer).to_vec())
            .collect()
    }

    /// Pairwise cosines of the trait directions at `layer`, `[n_traits][n_traits]`.
    pub fn cosines(&self, layer: usize) -> Vec<Vec<f64>> {
        let rows = self.layer(layer);
        rows.iter()
            .map(|a| rows.iter().map(|b| cosine(a, b)).collect())
            .collect()
    }

    /// Write atomically (temporary file, then rename).
    pub fn save(&self, path: &Path) -> Result<()> {
        let bad = |problem: String| TraitsError::Directions {
            file: path.to_path_buf(),
            problem,
        };
        let mut bytes: Vec<(String, Vec<u8>, Vec<usize>)> = Vec::new();
        let per_trait = self.n_layers * self.d_model;
        for (t, name) in self.traits.iter().enumerate() {
            let slice = &self.vectors[t * per_trait..(t + 1) * per_trait];
            bytes.push((
                name.clone(),
                f32_bytes(slice),
                vec![self.n_layers, self.d_model],
            ));
        }
        bytes.push((
            RESIDUAL_NORM_TENSOR.into(),
            f32_bytes(&self.residual_norm),
            vec![self.n_layers],
        ));
        let views = bytes
            .iter()
            .map(|(n, b, s)| {
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                    .map(|v| (n.clone(), v))
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(e.to_string()))?;
        let meta = serde_json::to_string(&serde_json::json!({
            "meta": self.meta,
            "traits": self.traits,
        }))
        .map_err(|e| bad(e.to_string()))?;
        let data =
            safetensors::serialize(views, Some(HashMap::from([("traitwatch".into(), meta)])))
                .map_err(|e| bad(e.to_string()))?;
        write_atomically(path, &data).map_err(|e| bad(format!("cannot write: {e}")))
    }

    /// Read a directions file, checking shapes and unit norms.
    pub fn load(path: &Path) -> Result<Self> {
        let bad = |problem: String| TraitsError::Directions {
            file: path.to_path_buf(),
            problem,
        };
        let bytes = std::fs::read(path).map_err(|e| bad(format!("cannot read: {e}")))?;
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)
            .map_err(|e| bad(format!("not a safetensors file: {e}")))?;
        let json = header
            .metadata()
            .as_ref()
            .and_then(|m| m.get("traitwatch"))
            .ok_or_else(|| bad("no `traitwatch` metadata: not a directions file".into()))?;
        #[derive(serde::Deserialize)]
        struct Header {
            meta: DirectionsMeta,
            traits: Vec<String>,
        }
        let head: Header =
            serde_json::from_str(json).map_err(|e| bad(format!("bad metadata: {e}")))?;
        let st = safetensors::SafeTensors::deserialize(&bytes)
            .map_err(|e| bad(format!("corrupt: {e}")))?;
        let read = |name: &str| tables::tensor::read_f32(&st, name).map_err(bad);
        let (norm_shape, residual_norm) = read(RESIDUAL_NORM_TENSOR)?;
        let n_layers = norm_shape.first().copied().unwrap_or(0);
        let mut vectors = Vec::new();
        let mut d_model = 0;
        for name in &head.traits {
            let (shape, values) = read(name)?;
            match shape.as_slice() {
                [l, d] if *l == n_layers && (d_model == 0 || *d == d_model) => d_model = *d,
                _ => {
                    return Err(bad(format!(
                        "tensor `{name}` has shape {shape:?}, expected [{n_layers}, d_model]"
                    )));
                }
            }
            if values.iter().any(|v| !v.is_finite()) {
                return Err(bad(format!("tensor `{name}` holds non-finite values")));
            }
            vectors.extend(values);
        }
        Ok(Self {
            traits: head.traits,
            n_layers,
            d_model,
            vectors,
            residual_norm,
            meta: head.meta,
        })
    }
}

/// Cosine similarity (0 when either vector is zero).
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (x as f64, y as f64);
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    if aa == 0.0 || bb == 0.0 {
        0.0
    } else {
        ab / (aa.sqrt() * bb.sqrt())
    }
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Write to a sibling temporary file, then rename into place.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = tables::temp_path(path);
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}
