//! Files of a run: atomic writes, JSON and safetensors helpers, and the layout of the
//! output directory.
//!
//! ```text
//! <out>/
//!   run.json                  resolved config, data summary, fingerprints (written first)
//!   train_log.parquet         one row per optimizer step (rewritten at each checkpoint)
//!   checkpoints/step-000000/  the untouched model (PEFT adapter with B = 0, or nothing for FFT)
//!   checkpoints/step-000010/  adapter_config.json + adapter_model.safetensors (LoRA)
//!                             or model.safetensors (full finetuning: every trained weight)
//!                             + traitwatch_state.safetensors + traitwatch_state.json (resume)
//! ```
//! A checkpoint directory is written under a temporary name and renamed into place, so a
//! run killed at any moment leaves only complete checkpoints.

use crate::error::FinetuneError;
use llm::model::host_to_tensor;
use llm::weights::{HostData, HostTensor};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

pub const RUN_FILE: &str = "run.json";
pub const TRAIN_LOG: &str = "train_log.parquet";
pub const CHECKPOINTS: &str = "checkpoints";
/// The optimizer state a run resumes from. Not `trainer_state.json`: that is HF Trainer's
/// file, with another schema, and it marks an HF Trainer checkpoint (see `run_dir`).
pub const STATE_TENSORS: &str = "traitwatch_state.safetensors";
pub const STATE_JSON: &str = "traitwatch_state.json";
pub const FULL_WEIGHTS: &str = "model.safetensors";

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FinetuneError + '_ {
    move |source| FinetuneError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The directory of the checkpoint at `step`.
pub fn checkpoint_dir(out: &Path, step: usize) -> PathBuf {
    out.join(CHECKPOINTS).join(format!("step-{step:06}"))
}

/// Complete checkpoints in `out`, as `(step, dir)` sorted by step.
pub fn list_checkpoints(out: &Path) -> Vec<(usize, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(out.join(CHECKPOINTS)) else {
        return Vec::new();
    };
    let mut found: Vec<(usize, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let step = name.strip_prefix("step-")?.parse().ok()?;
            Some((step, e.path()))
        })
        .collect();
    found.sort();
    found
}

/// Fill a fresh temporary directory with `write`, then rename it to `dir`. An existing
/// `dir` is replaced.
pub fn write_dir_atomically(
    dir: &Path,
    write: impl FnOnce(&Path) -> Result<(), FinetuneError>,
) -> Result<(), FinetuneError> {
    let parent = dir.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io(parent))?;
    let name = dir
        .file_name()
        .map_or_else(|| "dir".into(), |n| n.to_string_lossy().into_owned());
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
    }
    std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    if let Err(e) = write(&tmp) {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(io(dir))?;
    }
    std::fs::rename(&tmp, dir).map_err(io(dir))
}

/// Write a file through a temporary sibling and a rename.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), FinetuneError> {
    let tmp = tables::temp_path(path);
    std::fs::write(&tmp, bytes).map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

pub fn write_json(path: &Path, value: &serde_json::Value) -> Result<(), FinetuneError> {
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    write_atomically(path, text.as_bytes())
}

pub fn read_json(path: &Path) -> Result<serde_json::Value, FinetuneError> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    serde_json::from_str(&text).map_err(|e| FinetuneError::Adapter {
        path: path.to_path_buf(),
        reason: format!("invalid JSON: {e}"),
    })
}

/// Write f32 tensors (other host dtypes are widened) with optional string metadata.
pub fn write_safetensors(
    path: &Path,
    tensors: &BTreeMap<String, HostTensor>,
    metadata: Option<HashMap<String, String>>,
) -> Result<(), FinetuneError> {
    write_safetensors_as(path, tensors, safetensors::Dtype::F32, metadata)
}

/// Write `tensors` converted to `dtype` (F32, F16 or BF16).
pub fn write_safetensors_as(
    path: &Path,
    tensors: &BTreeMap<String, HostTensor>,
    dtype: safetensors::Dtype,
    metadata: Option<HashMap<String, String>>,
) -> Result<(), FinetuneError> {
    let encode = |values: Vec<f32>| {
        llm::weights::encode_f32_as(&values, dtype).ok_or_else(|| FinetuneError::Adapter {
            path: path.to_path_buf(),
            reason: format!("cannot write tensors as {dtype:?}"),
        })
    };
    let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = tensors
        .iter()
        .map(|(name, t)| Ok((name.clone(), encode(t.to_f32())?, t.shape.clone())))
        .collect::<Result<_, FinetuneError>>()?;
    let bad = |e: safetensors::SafeTensorError| FinetuneError::Adapter {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let views = bytes
        .iter()
        .map(|(n, b, s)| {
            safetensors::tensor::TensorView::new(dtype, s.clone(), b).map(|v| (n.clone(), v))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(bad)?;
    let data = safetensors::serialize(views, metadata).map_err(bad)?;
    write_atomically(path, &data)
}

/// Read every tensor of a safetensors file (f32, f16 or bf16) to the host.
pub fn read_safetensors(path: &Path) -> Result<BTreeMap<String, HostTensor>, FinetuneError> {
    let bytes = std::fs::read(path).map_err(io(path))?;
    let bad = |reason: String| FinetuneError::Adapter {
        path: path.to_path_buf(),
        reason,
    };
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| bad(e.to_string()))?;
    let mut out = BTreeMap::new();
    for (name, view) in st.tensors() {
        let data = view.data();
        let host = match view.dtype() {
            safetensors::Dtype::F32 => HostData::F32(
                data.chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            ),
            safetensors::Dtype::F16 => HostData::F16(
                data.chunks_exact(2)
                    .map(|c| half::f16::from_le_bytes([c[0], c[1]]))
                    .collect(),
            ),
            safetensors::Dtype::BF16 => HostData::BF16(
                data.chunks_exact(2)
                    .map(|c| half::bf16::from_le_bytes([c[0], c[1]]))
                    .collect(),
            ),
            other => {
                return Err(bad(format!(
                    "tensor `{name}` has unsupported dtype {other:?}"
                )));
            }
        };
        out.insert(
            name,
            HostTensor {
                shape: view.shape().to_vec(),
                data: host,
            },
        );
    }
    Ok(out)
}

/// Upload a host tensor as a 1-D (flattened) tensor.
pub fn flat_tensor<B: burn::tensor::backend::Backend>(
    t: &HostTensor,
    device: &B::Device,
) -> burn::tensor::Tensor<B, 1> {
    let n = t.shape.iter().product();
    host_to_tensor(HostTensor::f32(vec![n], t.to_f32()), device)
}

/// The model at a checkpoint: `base` with the checkpoint's LoRA adapter attached (PEFT
/// directory), or with its fully finetuned weights written in (`model.safetensors`); a
/// directory with neither (the step-0 checkpoint of full finetuning) is the base itself.
pub fn apply_checkpoint<B: burn::tensor::backend::Backend>(
    base: llm::Llama<B>,
    dir: &Path,
) -> Result<llm::Llama<B>, FinetuneError> {
    if !dir.is_dir() {
        return Err(FinetuneError::Io {
            path: dir.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no checkpoint directory"),
        });
    }
    if dir.join(crate::lora::ADAPTER_CONFIG).exists() {
        return crate::lora::load_peft(base, dir);
    }
    let full = dir.join(FULL_WEIGHTS);
    if !full.exists() {
        return Ok(base);
    }
    let by_path = read_safetensors(&full)?
        .into_iter()
        .map(|(hf, t)| (crate::params::module_path(&hf), t))
        .collect();
    Ok(crate::params::write_params(base, &by_path).0)
}
