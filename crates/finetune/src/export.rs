//! Writing a model (e.g. one with merged adapters) as an HF directory that transformers
//! loads: `config.json`, `generation_config.json`, the weights in the base model's dtype
//! (one `model.safetensors`, or shards of at most `max_shard_bytes` with
//! `model.safetensors.index.json`, as `save_pretrained` writes them), `tokenizer.json` and
//! `tokenizer_config.json` with the chat template.

use crate::checkpoint::{write_atomically, write_dir_atomically, write_json, write_safetensors_as};
use crate::error::FinetuneError;
use crate::params::{hf_name, read_params};
use burn::tensor::backend::Backend;
use llm::loader::ModelLocation;
use llm::weights::HostTensor;
use llm::{ChatTemplate, Llama, Tokenizer};
use std::collections::BTreeMap;
use std::path::Path;

/// The dtype of exported weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightDtype {
    F32,
    F16,
    BF16,
}

impl WeightDtype {
    /// The name `config.json` uses (`torch_dtype` / `dtype`).
    pub fn hf_name(self) -> &'static str {
        match self {
            WeightDtype::F32 => "float32",
            WeightDtype::F16 => "float16",
            WeightDtype::BF16 => "bfloat16",
        }
    }

    pub fn from_hf_name(name: &str) -> Option<Self> {
        match name {
            "float32" | "f32" => Some(WeightDtype::F32),
            "float16" | "f16" | "half" => Some(WeightDtype::F16),
            "bfloat16" | "bf16" => Some(WeightDtype::BF16),
            _ => None,
        }
    }

    fn bytes(self) -> u64 {
        match self {
            WeightDtype::F32 => 4,
            WeightDtype::F16 | WeightDtype::BF16 => 2,
        }
    }

    fn safetensors(self) -> safetensors::Dtype {
        match self {
            WeightDtype::F32 => safetensors::Dtype::F32,
            WeightDtype::F16 => safetensors::Dtype::F16,
            WeightDtype::BF16 => safetensors::Dtype::BF16,
        }
    }
}

/// The dtype a model was published in: that of an HF directory's stored weights (its
/// `config.json` `dtype` or `torch_dtype` where the weights cannot be read); f32 for a GGUF
/// file, whose quantized blocks have no HF dtype and whose dequantized values f32 holds
/// exactly.
pub fn base_dtype(location: &ModelLocation) -> WeightDtype {
    let ModelLocation::HfDir(dir) = location else {
        return WeightDtype::F32;
    };
    if let Some(stored) = stored_weights_dtype(dir) {
        return stored;
    }
    let named = crate::checkpoint::read_json(&dir.join("config.json"))
        .ok()
        .and_then(|cfg| {
            ["dtype", "torch_dtype"]
                .iter()
                .find_map(|key| cfg[*key].as_str().and_then(WeightDtype::from_hf_name))
        });
    named.unwrap_or(WeightDtype::F32)
}

/// The dtype of the first floating-point tensor in the directory's (first) safetensors
/// file, read from its JSON header alone.
fn stored_weights_dtype(dir: &Path) -> Option<WeightDtype> {
    use std::io::Read;
    let index = crate::checkpoint::read_json(&dir.join("model.safetensors.index.json")).ok();
    let file = match index {
        Some(index) => {
            let map = index["weight_map"].as_object()?;
            dir.join(map.values().next()?.as_str()?)
        }
        None => dir.join("model.safetensors"),
    };
    let mut f = std::fs::File::open(file).ok()?;
    let mut len = [0u8; 8];
    f.read_exact(&mut len).ok()?;
    let len = usize::try_from(u64::from_le_bytes(len)).ok()?;
    let mut header = vec![0u8; len.min(100_000_000)];
    f.read_exact(&mut header).ok()?;
    let header: serde_json::Value = serde_json::from_slice(&header).ok()?;
    header
        .as_object()?
        .iter()
        .find_map(|(name, t)| match (name.as_str(), t["dtype"].as_str()) {
            ("__metadata__", _) => None,
            (_, Some("F32")) => Some(WeightDtype::F32),
            (_, Some("F16")) => Some(WeightDtype::F16),
            (_, Some("BF16")) => Some(WeightDtype::BF16),
            _ => None,
        })
}

/// How [`save_hf_dir`] writes the weights.
#[derive(Debug, Clone, Copy)]
pub struct ExportOptions {
    pub dtype: WeightDtype,
    /// Largest shard in bytes; a model that fits in one is written as `model.safetensors`.
    pub max_shard_bytes: u64,
}

impl Default for ExportOptions {
    /// f32 in shards of at most 5 GB, transformers' own default shard size.
    fn default() -> Self {
        Self {
            dtype: WeightDtype::F32,
            max_shard_bytes: 5_000_000_000,
        }
    }
}

/// Save `model` as an HF directory at `dir` (replacing it atomically).
pub fn save_hf_dir<B: Backend>(
    model: &Llama<B>,
    tokenizer: &Tokenizer,
    chat: Option<&ChatTemplate>,
    dir: &Path,
    opts: &ExportOptions,
) -> Result<(), FinetuneError> {
    let weights: BTreeMap<String, HostTensor> = read_params(model, None)
        .into_iter()
        .map(|(path, t)| (hf_name(&path), t))
        .collect();
    let mut config = model.config.clone();
    config.tie_word_embeddings = model.lm_head.is_none();
    let mut config =
        serde_json::to_value(&config).map_err(|e| FinetuneError::Data(e.to_string()))?;
    for key in ["dtype", "torch_dtype"] {
        config[key] = opts.dtype.hf_name().into();
    }
    let token = |id: Option<u32>| id.and_then(|i| tokenizer.id_to_token(i));
    let mut tok_cfg = serde_json::json!({
        "bos_token": token(tokenizer.bos_id),
        "eos_token": token(tokenizer.eos_ids.first().copied()),
        "pad_token": token(tokenizer.pad_id),
        "add_bos_token": tokenizer.add_bos,
    });
    if let Some(chat) = chat {
        tok_cfg["chat_template"] = serde_json::Value::String(chat.source().to_string());
    }
    // Every stop token (a chat model's end-of-turn among them) goes where transformers'
    // `generate` looks for it.
    let generation = serde_json::json!({
        "bos_token_id": tokenizer.bos_id,
        "eos_token_id": tokenizer.eos_ids,
        "pad_token_id": tokenizer.pad_id,
    });
    let tokenizer_json = tokenizer.to_json()?;
    write_dir_atomically(dir, |tmp| {
        write_json(&tmp.join("config.json"), &config)?;
        write_json(&tmp.join("generation_config.json"), &generation)?;
        write_weights(tmp, weights, opts)?;
        write_atomically(&tmp.join("tokenizer.json"), tokenizer_json.as_bytes())?;
        write_json(&tmp.join("tokenizer_config.json"), &tok_cfg)
    })
}

/// The weights as one file, or as shards with an index when they exceed one shard.
fn write_weights(
    dir: &Path,
    weights: BTreeMap<String, HostTensor>,
    opts: &ExportOptions,
) -> Result<(), FinetuneError> {
    let size = |t: &HostTensor| t.shape.iter().product::<usize>() as u64 * opts.dtype.bytes();
    let total: u64 = weights.values().map(size).sum();
    let shards = plan_shards(&weights, size, opts.max_shard_bytes);
    if shards.len() <= 1 {
        let path = dir.join("model.safetensors");
        return write_safetensors_as(&path, &weights, opts.dtype.safetensors(), format_meta());
    }
    let mut weight_map = serde_json::Map::new();
    let mut rest = weights;
    let n = shards.len();
    for (i, names) in shards.into_iter().enumerate() {
        let file = format!("model-{:05}-of-{n:05}.safetensors", i + 1);
        let shard: BTreeMap<String, HostTensor> = names
            .into_iter()
            .filter_map(|name| rest.remove_entry(&name))
            .collect();
        for name in shard.keys() {
            weight_map.insert(name.clone(), file.clone().into());
        }
        write_safetensors_as(
            &dir.join(&file),
            &shard,
            opts.dtype.safetensors(),
            format_meta(),
        )?;
    }
    let index = serde_json::json!({
        "metadata": {"total_size": total},
        "weight_map": weight_map,
    });
    write_json(&dir.join("model.safetensors.index.json"), &index)
}

/// Tensor names per shard, in name order, each shard at most `max_bytes` (a tensor larger
/// than that gets a shard of its own).
fn plan_shards(
    weights: &BTreeMap<String, HostTensor>,
    size: impl Fn(&HostTensor) -> u64,
    max_bytes: u64,
) -> Vec<Vec<String>> {
    let mut shards: Vec<Vec<String>> = Vec::new();
    let mut filled = 0u64;
    for (name, t) in weights {
        let bytes = size(t);
        if shards.is_empty() || (filled > 0 && filled + bytes > max_bytes) {
            shards.push(Vec::new());
            filled = 0;
        }
        if let Some(last) = shards.last_mut() {
            last.push(name.clone());
        }
        filled += bytes;
    }
    shards
}

/// transformers reads `format: pt` from a safetensors header to know the tensors are
/// PyTorch's.
fn format_meta() -> Option<std::collections::HashMap<String, String>> {
    Some(std::collections::HashMap::from([(
        "format".to_string(),
        "pt".to_string(),
    )]))
}
