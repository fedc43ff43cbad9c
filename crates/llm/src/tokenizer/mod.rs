//! Tokenizers: byte-level BPE or SentencePiece from GGUF metadata, or an HF `tokenizer.json`.
//!
//! A GGUF tokenizer is turned into the equivalent `tokenizer.json` document (vocab, merges,
//! special tokens, and the pre-tokenizer named by `tokenizer.ggml.pre`; for SentencePiece
//! vocabularies, merges ranked by piece score, see [`spm`]) and handed to the `tokenizers`
//! crate, so every source goes through the same, well-tested implementation and a GGUF
//! tokenizer can be exported as `tokenizer.json`.

mod spm;

use crate::error::LlmError;
use crate::gguf::GgufFile;
use serde_json::{Value, json};
use std::path::Path;

/// GGUF token types (`tokenizer.ggml.token_type`).
const TOKEN_TYPE_CONTROL: i64 = 3;
const TOKEN_TYPE_USER_DEFINED: i64 = 4;

/// Llama 3's pre-tokenizer split pattern.
const LLAMA3_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Qwen2's: the same with single digits.
const QWEN2_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Token ids with the byte range of the text each one covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    pub ids: Vec<u32>,
    pub offsets: Vec<(usize, usize)>,
}

pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    pub bos_id: Option<u32>,
    /// Tokens that end a generation (end-of-sequence and end-of-turn).
    pub eos_ids: Vec<u32>,
    pub pad_id: Option<u32>,
    /// Whether raw (untemplated) text should start with BOS.
    pub add_bos: bool,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("vocab", &self.vocab_size())
            .field("bos_id", &self.bos_id)
            .field("eos_ids", &self.eos_ids)
            .field("pad_id", &self.pad_id)
            .finish()
    }
}

fn tok_err(e: impl std::fmt::Display) -> LlmError {
    LlmError::Tokenizer(e.to_string())
}

/// The pre-tokenizer and BPE options for a `tokenizer.ggml.pre` name.
fn pre_tokenizer_for(pre: &str) -> Option<(Value, bool)> {
    let byte_level = |use_regex: bool| json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": use_regex});
    let split = |pattern: &str| json!({"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": false});
    Some(match pre {
        "default" | "gpt2" | "gpt-2" => (byte_level(true), false),
        "smollm" => (
            json!({"type": "Sequence", "pretokenizers": [
                {"type": "Digits", "individual_digits": true}, byte_level(true)]}),
            false,
        ),
        "llama-bpe" | "llama3" | "smaug-bpe" => (
            json!({"type": "Sequence", "pretokenizers": [split(LLAMA3_PATTERN), byte_level(false)]}),
            true,
        ),
        "qwen2" => (
            json!({"type": "Sequence", "pretokenizers": [split(QWEN2_PATTERN), byte_level(false)]}),
            false,
        ),
        _ => return None,
    })
}

impl Tokenizer {
    /// Build the tokenizer stored in a GGUF file's `tokenizer.ggml.*` metadata.
    pub fn from_gguf(gguf: &GgufFile) -> Result<Self, LlmError> {
        let path = gguf.path().display().to_string();
        let model = gguf.get_str("tokenizer.ggml.model")?;
        let tokens = gguf.get_str_array("tokenizer.ggml.tokens")?;
        let types = gguf.get_i64_array("tokenizer.ggml.token_type").ok();
        if types.as_ref().is_some_and(|t| t.len() != tokens.len()) {
            return Err(LlmError::Tokenizer(format!(
                "{path}: {} token types for {} tokens",
                types.as_ref().map_or(0, Vec::len),
                tokens.len()
            )));
        }
        let (normalizer, pre_tokenizer, bpe, decoder) = match model {
            "gpt2" => {
                let pre = gguf.get_str("tokenizer.ggml.pre").unwrap_or("default");
                let (pre_tokenizer, ignore_merges) = pre_tokenizer_for(pre).ok_or_else(|| {
                    LlmError::Tokenizer(format!(
                        "{path}: pre-tokenizer `{pre}` is not supported from GGUF (supported: default, gpt2, smollm, llama-bpe, qwen2); use the model's HF directory with tokenizer.json"
                    ))
                })?;
                let merges = gguf.get_str_array("tokenizer.ggml.merges")?;
                let vocab: serde_json::Map<String, Value> = tokens
                    .iter()
                    .enumerate()
                    .map(|(i, t)| (t.to_string(), json!(i)))
                    .collect();
                let bpe = json!({"type": "BPE", "dropout": null, "unk_token": null,
                      "continuing_subword_prefix": null, "end_of_word_suffix": null,
                      "fuse_unk": false, "byte_fallback": false, "ignore_merges": ignore_merges,
                      "vocab": vocab, "merges": merges});
                let decoder = json!({"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true});
                (Value::Null, pre_tokenizer, bpe, decoder)
            }
            "llama" => {
                let scores = gguf.get_f64_array("tokenizer.ggml.scores")?;
                if scores.len() != tokens.len() {
                    return Err(LlmError::Tokenizer(format!(
                        "{path}: {} token scores for {} tokens",
                        scores.len(),
                        tokens.len()
                    )));
                }
                let scores: Vec<f32> = scores.iter().map(|&s| s as f32).collect();
                let unk = gguf
                    .get_u64("tokenizer.ggml.unknown_token_id")
                    .ok()
                    .and_then(|i| tokens.get(i as usize).copied());
                let prefix = gguf
                    .get_bool("tokenizer.ggml.add_space_prefix")
                    .unwrap_or(true);
                let (normalizer, bpe, decoder) = spm::components(&tokens, &scores, unk, prefix);
                (normalizer, Value::Null, bpe, decoder)
            }
            other => {
                return Err(LlmError::Tokenizer(format!(
                    "{path}: tokenizer model `{other}` is not supported from GGUF (only byte-level BPE, `gpt2`, and SentencePiece, `llama`); point the manifest at the model's HF directory with tokenizer.json instead"
                )));
            }
        };
        let added: Vec<Value> = types
            .iter()
            .flatten()
            .enumerate()
            .filter(|&(_, &ty)| ty == TOKEN_TYPE_CONTROL || ty == TOKEN_TYPE_USER_DEFINED)
            .map(|(i, &ty)| {
                json!({"id": i, "content": tokens[i], "single_word": false, "lstrip": false,
                       "rstrip": false, "normalized": false, "special": ty == TOKEN_TYPE_CONTROL})
            })
            .collect();
        let doc = json!({
            "version": "1.0",
            "truncation": null,
            "padding": null,
            "added_tokens": added,
            "normalizer": normalizer,
            "pre_tokenizer": pre_tokenizer,
            "post_processor": null,
            "decoder": decoder,
            "model": bpe,
        });
        let inner = tokenizers::Tokenizer::from_bytes(doc.to_string().as_bytes())
            .map_err(|e| LlmError::Tokenizer(format!("{path}: {e}")))?;
        let id = |key: &str| gguf.get_u64(key).ok().map(|v| v as u32);
        let eos = id("tokenizer.ggml.eos_token_id");
        let mut eos_ids: Vec<u32> = eos.into_iter().collect();
        // End-of-turn tokens also end a reply.
        if let Some(eot) = id("tokenizer.ggml.eot_token_id") {
            eos_ids.push(eot);
        }
        eos_ids.dedup();
        let tok = Self {
            inner,
            bos_id: id("tokenizer.ggml.bos_token_id"),
            eos_ids,
            pad_id: id("tokenizer.ggml.padding_token_id"),
            add_bos: gguf
                .get_bool("tokenizer.ggml.add_bos_token")
                .unwrap_or(false),
        };
        tracing::debug!(vocab = tok.vocab_size(), model, "tokenizer built from GGUF");
        Ok(tok)
    }

    /// Load `tokenizer.json` (and `tokenizer_config.json`, if present) from an HF directory.
    /// `bos`/`eos` ids from `config.json` fill in what the tokenizer files do not say.
    pub fn from_hf_dir(dir: &Path, bos: Option<u32>, eos: &[u32]) -> Result<Self, LlmError> {
        let path = dir.join("tokenizer.json");
        let inner = tokenizers::Tokenizer::from_file(&path)
            .map_err(|e| LlmError::Tokenizer(format!("{}: {e}", path.display())))?;
        let cfg = read_json_if_exists(&dir.join("tokenizer_config.json"))?;
        let token_id = |key: &str| -> Option<u32> {
            let v = cfg.as_ref()?.get(key)?;
            let text = v.as_str().or_else(|| v.get("content")?.as_str())?;
            inner.token_to_id(text)
        };
        let bos_id = token_id("bos_token").or(bos);
        let mut eos_ids: Vec<u32> = eos.to_vec();
        if let Some(e) = token_id("eos_token")
            && !eos_ids.contains(&e)
        {
            eos_ids.insert(0, e);
        }
        let pad_id = token_id("pad_token");
        // add_bos: explicit in tokenizer_config.json, else whatever the post-processor does.
        let add_bos = match cfg
            .as_ref()
            .and_then(|c| c.get("add_bos_token"))
            .and_then(Value::as_bool)
        {
            Some(v) => v,
            None => {
                let with = inner.encode("a", true).map_err(tok_err)?;
                let first = with.get_ids().first().copied();
                first.is_some() && first == bos_id
            }
        };
        Ok(Self {
            inner,
            bos_id,
            eos_ids,
            pad_id,
            add_bos,
        })
    }

    /// Token ids of `text`. Special tokens written in the text (`<|im_start|>`) are
    /// recognised; nothing is added around it.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, LlmError> {
        Ok(self
            .inner
            .encode(text, false)
            .map_err(tok_err)?
            .get_ids()
            .to_vec())
    }

    /// Token ids with BOS prepended when this model expects it on raw text.
    pub fn encode_raw(&self, text: &str) -> Result<Vec<u32>, LlmError> {
        let mut ids = self.encode(text)?;
        if let (true, Some(bos)) = (self.add_bos, self.bos_id) {
            ids.insert(0, bos);
        }
        Ok(ids)
    }

    /// Token ids with the byte range of `text` each token covers.
    pub fn encode_with_offsets(&self, text: &str) -> Result<Encoded, LlmError> {
        let enc = self.inner.encode(text, false).map_err(tok_err)?;
        Ok(Encoded {
            ids: enc.get_ids().to_vec(),
            offsets: enc.get_offsets().to_vec(),
        })
    }

    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String, LlmError> {
        self.inner.decode(ids, skip_special).map_err(tok_err)
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// The id used for padding: the pad token, else the first end-of-sequence token, else 0.
    pub fn pad_or_eos(&self) -> u32 {
        self.pad_id.or(self.eos_ids.first().copied()).unwrap_or(0)
    }

    /// The special (control) tokens, as `(id, text)`.
    pub fn special_tokens(&self) -> Vec<(u32, String)> {
        let mut v: Vec<(u32, String)> = self
            .inner
            .get_added_tokens_decoder()
            .into_iter()
            .filter(|(_, t)| t.special)
            .map(|(id, t)| (id, t.content))
            .collect();
        v.sort();
        v
    }

    /// The tokenizer as an HF `tokenizer.json` document.
    pub fn to_json(&self) -> Result<String, LlmError> {
        self.inner.to_string(false).map_err(tok_err)
    }
}

/// Parse a JSON file if it exists (`None` when absent; an error when unreadable or invalid).
pub(crate) fn read_json_if_exists(path: &Path) -> Result<Option<Value>, LlmError> {
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).map_err(|source| LlmError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| LlmError::Config {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
}
