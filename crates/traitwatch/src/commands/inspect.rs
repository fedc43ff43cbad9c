//! `traitwatch inspect <model>`: what a model is, without loading its weights.

use anyhow::Result;
use llm::gguf::GgufFile;
use llm::weights::SafetensorsWeights;
use llm::{ChatTemplate, ModelConfig, ModelLocation, Tokenizer};
use std::collections::BTreeMap;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Preset name, .gguf file or HF directory.
    model: String,
    /// List every tensor (name, type, shape).
    #[arg(long)]
    tensors: bool,
    /// Print all GGUF metadata.
    #[arg(long)]
    metadata: bool,
}

pub fn run(args: Args) -> Result<()> {
    let location = llm::resolve(&args.model)?;
    match &location {
        ModelLocation::Gguf(path) => {
            let file = GgufFile::open(path)?;
            let cfg = ModelConfig::from_gguf(&file)?;
            let tokenizer = Tokenizer::from_gguf(&file)?;
            let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
            println!(
                "model         {} (GGUF v{}, {:.1} MB)",
                path.display(),
                file.version,
                size as f64 / 1e6
            );
            print_config(&cfg);
            let mut by_type: BTreeMap<String, usize> = BTreeMap::new();
            for t in &file.tensors {
                *by_type.entry(t.ggml_type.to_string()).or_default() += 1;
            }
            let types: Vec<String> = by_type.iter().map(|(t, n)| format!("{t} {n}")).collect();
            println!(
                "tensors       {} ({})",
                file.tensors.len(),
                types.join(", ")
            );
            let pre = file.get_str("tokenizer.ggml.pre").unwrap_or("default");
            print_tokenizer(
                &tokenizer,
                &format!("byte-level BPE from GGUF, pre-tokenizer `{pre}`"),
            );
            let template = file.get_str("tokenizer.chat_template").ok();
            print_chat(template, &tokenizer)?;
            if args.metadata {
                println!("\nmetadata");
                for (k, v) in &file.metadata {
                    println!("  {k:<48} {v}");
                }
            }
            if args.tensors {
                println!(
                    "\n{:<40} {:>6}  {:<16} {:>12}",
                    "tensor", "type", "shape", "bytes"
                );
                for t in &file.tensors {
                    println!(
                        "{:<40} {:>6}  {:<16} {:>12}",
                        t.name,
                        t.ggml_type.to_string(),
                        format!("{:?}", t.shape()),
                        t.byte_size()
                    );
                }
            }
        }
        ModelLocation::HfDir(dir) => {
            let (cfg, tokenizer) = llm::loader::hf_config_and_tokenizer(dir)?;
            let weights = SafetensorsWeights::open(dir)?;
            println!("model         {} (HF directory)", dir.display());
            print_config(&cfg);
            let table = weights.tensor_table();
            let mut by_type: BTreeMap<String, usize> = BTreeMap::new();
            for (_, dtype, _) in &table {
                *by_type.entry(dtype.clone()).or_default() += 1;
            }
            let types: Vec<String> = by_type.iter().map(|(t, n)| format!("{t} {n}")).collect();
            println!("tensors       {} ({})", table.len(), types.join(", "));
            print_tokenizer(&tokenizer, "tokenizer.json");
            let template = llm::loader::hf_chat_template(dir)?;
            print_chat(template.as_deref(), &tokenizer)?;
            if args.tensors {
                println!("\n{:<56} {:>6}  shape", "tensor", "dtype");
                for (name, dtype, shape) in &table {
                    println!("{name:<56} {dtype:>6}  {shape:?}");
                }
            }
        }
    }
    Ok(())
}

fn print_config(cfg: &ModelConfig) {
    println!(
        "architecture  {} ({} layers, d_model {}, {} heads / {} KV heads, head_dim {}, MLP {})",
        cfg.model_type,
        cfg.num_hidden_layers,
        cfg.hidden_size,
        cfg.num_attention_heads,
        cfg.kv_heads(),
        cfg.head_dim(),
        cfg.intermediate_size
    );
    let tied = if cfg.tie_word_embeddings {
        "tied"
    } else {
        "separate"
    };
    println!(
        "parameters    {:.1} M ({tied} embeddings and LM head)",
        cfg.n_params() as f64 / 1e6
    );
    println!(
        "positions     RoPE theta {}, context {}{}",
        cfg.rope_theta,
        cfg.max_position_embeddings,
        cfg.rope_scaling
            .as_ref()
            .map_or(String::new(), |s| format!(", scaling {}", s.rope_type))
    );
    println!(
        "hook points   embeddings, block.0 .. block.{}, final_norm (block.l = residual stream after decoder block l, 0-based)",
        cfg.num_hidden_layers.saturating_sub(1)
    );
}

fn print_tokenizer(tok: &Tokenizer, kind: &str) {
    let name = |id: Option<u32>| match id {
        Some(i) => format!("{i} {}", tok.id_to_token(i).unwrap_or_default()),
        None => "none".into(),
    };
    println!(
        "tokenizer     {kind}; {} tokens; bos {}, eos {}, pad {}; {} special tokens",
        tok.vocab_size(),
        name(tok.bos_id),
        name(tok.eos_ids.first().copied()),
        name(tok.pad_id),
        tok.special_tokens().len()
    );
}

fn print_chat(template: Option<&str>, tok: &Tokenizer) -> Result<()> {
    match template {
        None => println!("chat          no chat template (base model: use --raw prompts)"),
        Some(src) => {
            let text = |id: Option<u32>| id.and_then(|i| tok.id_to_token(i)).unwrap_or_default();
            let t = ChatTemplate::new(src, &text(tok.bos_id), &text(tok.eos_ids.first().copied()))?;
            let system = if t.supports_system() {
                "yes"
            } else {
                "no (system prompts are wrapped as a user turn)"
            };
            println!(
                "chat          Jinja template, {} chars; system role: {system}",
                src.len()
            );
        }
    }
    Ok(())
}
