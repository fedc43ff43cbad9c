//! Weight sources. HF tensor names (`model.layers.0.self_attn.q_proj.weight`) and HF values
//! are the one convention: a GGUF file is read through a table that maps them to llama.cpp
//! names ([`GgufNaming`]), undoes llama.cpp's row permutation of Q and K for the `llama`
//! architecture, and takes back the 1 llama.cpp adds to Gemma's norm weights.

use crate::error::LlmError;
use crate::gguf::{GgufFile, GgufNaming};
use half::{bf16, f16};
use memmap2::Mmap;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A tensor on the host, row-major. Half-precision data stays half until it reaches the
/// device, so a bf16 checkpoint is never widened to f32 on the host.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    pub shape: Vec<usize>,
    pub data: HostData,
}

#[derive(Debug, Clone, PartialEq)]
pub enum HostData {
    F32(Vec<f32>),
    F16(Vec<f16>),
    BF16(Vec<bf16>),
}

/// `values` as little-endian bytes of `dtype` (F32, F16 or BF16, rounded to nearest);
/// `None` for any other dtype.
pub fn encode_f32_as(values: &[f32], dtype: safetensors::Dtype) -> Option<Vec<u8>> {
    Some(match dtype {
        safetensors::Dtype::F32 => values.iter().flat_map(|x| x.to_le_bytes()).collect(),
        safetensors::Dtype::F16 => values
            .iter()
            .flat_map(|x| f16::from_f32(*x).to_le_bytes())
            .collect(),
        safetensors::Dtype::BF16 => values
            .iter()
            .flat_map(|x| bf16::from_f32(*x).to_le_bytes())
            .collect(),
        _ => return None,
    })
}

impl HostTensor {
    pub fn f32(shape: Vec<usize>, values: Vec<f32>) -> Self {
        Self {
            shape,
            data: HostData::F32(values),
        }
    }

    /// The values as f32 (copies).
    pub fn to_f32(&self) -> Vec<f32> {
        match &self.data {
            HostData::F32(v) => v.clone(),
            HostData::F16(v) => v.iter().map(|x| x.to_f32()).collect(),
            HostData::BF16(v) => v.iter().map(|x| x.to_f32()).collect(),
        }
    }

    pub fn dtype_name(&self) -> &'static str {
        match self.data {
            HostData::F32(_) => "f32",
            HostData::F16(_) => "f16",
            HostData::BF16(_) => "bf16",
        }
    }
}

/// Anything that yields model tensors by HF name.
pub trait WeightSource {
    /// A name for error messages (usually the path).
    fn describe(&self) -> String;
    /// The tensor, or `None` if the source has no tensor of that name.
    fn get(&self, hf_name: &str) -> Result<Option<HostTensor>, LlmError>;
    /// Every HF-named tensor the source holds.
    fn names(&self) -> Vec<String>;
    /// Whether the source holds `hf_name` (without reading it).
    fn contains(&self, hf_name: &str) -> bool {
        self.names().iter().any(|n| n == hf_name)
    }
}

/// Undo llama.cpp's Q/K permutation. llama.cpp stores each head's rows interleaved as
/// `(pair, half)` for its interleaved-pair RoPE; HF stores them as `(half, pair)` for
/// rotate-half RoPE. `rows` is `n_heads · head_dim` rows of `cols` values each.
pub fn unpermute_qk(values: &[f32], n_heads: usize, cols: usize) -> Vec<f32> {
    let rows = values.len() / cols;
    let head_dim = rows / n_heads;
    let half = head_dim / 2;
    let mut out = vec![0f32; values.len()];
    for h in 0..n_heads {
        for pair in 0..half {
            for part in 0..2 {
                let src = h * head_dim + pair * 2 + part;
                let dst = h * head_dim + part * half + pair;
                out[dst * cols..(dst + 1) * cols]
                    .copy_from_slice(&values[src * cols..(src + 1) * cols]);
            }
        }
    }
    out
}

/// Weights from a GGUF file, dequantized to f32 on request.
#[derive(Debug)]
pub struct GgufWeights {
    pub file: GgufFile,
    naming: GgufNaming,
    /// `(q heads, kv heads)` when Q/K rows need un-permuting (llama architecture).
    permuted_heads: Option<(usize, usize)>,
    /// Gemma: llama.cpp stores norm weights as `1 + w`, HF as `w`.
    norm_offset: f32,
}

impl GgufWeights {
    pub fn new(file: GgufFile) -> Result<Self, LlmError> {
        let arch = file.architecture()?.to_string();
        let permuted_heads = if arch == "llama" {
            let heads = file.get_u64("llama.attention.head_count")? as usize;
            let kv = file
                .get_u64("llama.attention.head_count_kv")
                .map_or(heads, |v| v as usize);
            Some((heads, kv))
        } else {
            None
        };
        let norm_offset = if arch.starts_with("gemma") { 1.0 } else { 0.0 };
        Ok(Self {
            naming: GgufNaming::for_architecture(&arch),
            file,
            permuted_heads,
            norm_offset,
        })
    }

    /// GGUF's per-dimension RoPE divisors (Llama 3 scaling), if the file has them.
    pub fn rope_freq_factors(&self) -> Result<Option<Vec<f32>>, LlmError> {
        if self.file.tensor_info("rope_freqs.weight").is_none() {
            return Ok(None);
        }
        Ok(Some(self.file.tensor_f32("rope_freqs.weight")?.1))
    }
}

impl WeightSource for GgufWeights {
    fn describe(&self) -> String {
        self.file.path().display().to_string()
    }

    fn get(&self, hf_name: &str) -> Result<Option<HostTensor>, LlmError> {
        let Some(name) = self.naming.to_gguf(hf_name) else {
            return Ok(None);
        };
        if self.file.tensor_info(&name).is_none() {
            return Ok(None);
        }
        let (shape, mut values) = self.file.tensor_f32(&name)?;
        if let Some((heads, kv_heads)) = self.permuted_heads {
            let n = if name.contains(".attn_q.") {
                Some(heads)
            } else if name.contains(".attn_k.") {
                Some(kv_heads)
            } else {
                None
            };
            if let Some(n) = n {
                let cols = if shape.len() == 2 { shape[1] } else { 1 };
                values = unpermute_qk(&values, n, cols);
            }
        }
        if self.norm_offset != 0.0 && name.ends_with("norm.weight") {
            values.iter_mut().for_each(|v| *v -= self.norm_offset);
        }
        Ok(Some(HostTensor::f32(shape, values)))
    }

    fn contains(&self, hf_name: &str) -> bool {
        self.naming
            .to_gguf(hf_name)
            .is_some_and(|g| self.file.tensor_info(&g).is_some())
    }

    fn names(&self) -> Vec<String> {
        self.file
            .tensors
            .iter()
            .filter_map(|t| self.naming.to_hf(&t.name))
            .collect()
    }
}

/// Weights from an HF directory: `model.safetensors`, or shards listed in
/// `model.safetensors.index.json`.
pub struct SafetensorsWeights {
    dir: PathBuf,
    files: Vec<(PathBuf, Mmap, usize, safetensors::tensor::Metadata)>,
    index: HashMap<String, usize>,
}

impl std::fmt::Debug for SafetensorsWeights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SafetensorsWeights")
            .field("dir", &self.dir)
            .field("files", &self.files.len())
            .field("tensors", &self.index.len())
            .finish()
    }
}

impl SafetensorsWeights {
    pub fn open(dir: &Path) -> Result<Self, LlmError> {
        let shard_names = shard_list(dir)?;
        let mut files = Vec::new();
        let mut index = HashMap::new();
        for name in shard_names {
            let path = dir.join(&name);
            let io = |source| LlmError::Io {
                path: path.clone(),
                source,
            };
            let file = std::fs::File::open(&path).map_err(io)?;
            // SAFETY: read-only private map of a weights file that is not modified while open.
            #[allow(unsafe_code)]
            let map = unsafe { Mmap::map(&file) }.map_err(io)?;
            let (header_len, meta) =
                safetensors::SafeTensors::read_metadata(&map).map_err(|e| {
                    LlmError::Safetensors {
                        path: path.clone(),
                        reason: e.to_string(),
                    }
                })?;
            for tensor_name in meta.tensors().keys() {
                index.insert(tensor_name.clone(), files.len());
            }
            files.push((path, map, header_len, meta));
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            files,
            index,
        })
    }
}

impl SafetensorsWeights {
    /// `(name, dtype, shape)` of every tensor, sorted by name, without reading any data.
    pub fn tensor_table(&self) -> Vec<(String, String, Vec<usize>)> {
        let mut rows: Vec<_> = self
            .files
            .iter()
            .flat_map(|(_, _, _, meta)| {
                meta.tensors()
                    .into_iter()
                    .map(|(name, info)| (name, format!("{:?}", info.dtype), info.shape.clone()))
            })
            .collect();
        rows.sort();
        rows
    }
}

fn shard_list(dir: &Path) -> Result<Vec<String>, LlmError> {
    let index_path = dir.join("model.safetensors.index.json");
    if index_path.exists() {
        let text = std::fs::read_to_string(&index_path).map_err(|source| LlmError::Io {
            path: index_path.clone(),
            source,
        })?;
        let bad = |reason: String| LlmError::Safetensors {
            path: index_path.clone(),
            reason,
        };
        let json: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        let map = json
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| bad("no `weight_map` object".into()))?;
        let mut shards: Vec<String> = map
            .values()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        shards.sort();
        shards.dedup();
        return Ok(shards);
    }
    if dir.join("model.safetensors").exists() {
        return Ok(vec!["model.safetensors".into()]);
    }
    Err(LlmError::NotAModel {
        path: dir.to_path_buf(),
    })
}

impl WeightSource for SafetensorsWeights {
    fn describe(&self) -> String {
        self.dir.display().to_string()
    }

    fn get(&self, hf_name: &str) -> Result<Option<HostTensor>, LlmError> {
        let Some(&i) = self.index.get(hf_name) else {
            return Ok(None);
        };
        let (path, map, header_len, meta) = &self.files[i];
        let bad = |reason: String| LlmError::Safetensors {
            path: path.clone(),
            reason,
        };
        let info = meta
            .info(hf_name)
            .ok_or_else(|| bad(format!("index lists `{hf_name}` but the file lacks it")))?;
        let (start, end) = info.data_offsets;
        let base = 8 + header_len;
        let bytes = map.get(base + start..base + end).ok_or_else(|| {
            bad(format!(
                "data of `{hf_name}` lies beyond the end of the file"
            ))
        })?;
        let shape = info.shape.clone();
        let data = match info.dtype {
            safetensors::Dtype::F32 => HostData::F32(
                bytes
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            ),
            safetensors::Dtype::F16 => HostData::F16(
                bytes
                    .chunks_exact(2)
                    .map(|c| f16::from_le_bytes([c[0], c[1]]))
                    .collect(),
            ),
            safetensors::Dtype::BF16 => HostData::BF16(
                bytes
                    .chunks_exact(2)
                    .map(|c| bf16::from_le_bytes([c[0], c[1]]))
                    .collect(),
            ),
            other => {
                return Err(LlmError::UnsupportedDtype {
                    source_name: path.display().to_string(),
                    name: hf_name.to_string(),
                    dtype: format!("{other:?}"),
                });
            }
        };
        Ok(Some(HostTensor { shape, data }))
    }

    fn contains(&self, hf_name: &str) -> bool {
        self.index.contains_key(hf_name)
    }

    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.index.keys().cloned().collect();
        names.sort();
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpermute_inverts_llama_cpp_permute() {
        // llama.cpp: w.reshape(n_head, 2, hd/2, cols).swapaxes(1, 2) — row (h, half, pair)
        // moves to (h, pair, half). Build that by hand for 2 heads of head_dim 4, 1 column.
        let hf: Vec<f32> = (0..8).map(|i| i as f32).collect();
        let mut permuted = vec![0f32; 8];
        for h in 0..2 {
            for half in 0..2 {
                for pair in 0..2 {
                    permuted[h * 4 + pair * 2 + half] = hf[h * 4 + half * 2 + pair];
                }
            }
        }
        assert_eq!(permuted, vec![0., 2., 1., 3., 4., 6., 5., 7.]);
        assert_eq!(unpermute_qk(&permuted, 2, 1), hf);
    }
}
