//! `traitwatch activations`: residual-stream activations of prompts, to Parquet or
//! safetensors.

use crate::backend::BackendJob;
use anyhow::{Context, Result, bail};
use burn::tensor::backend::Backend;
use llm::model::tensor_to_f32;
use llm::{Batch, ForwardOptions, HookPoint, LoadedModel, LogitsMode, Message, PaddingSide};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tables::TableKind;
use tables::arrow::array::{
    ArrayRef, FixedSizeListArray, Float32Array, Int32Array, RecordBatch, StringArray, UInt32Array,
};
use tables::arrow::datatypes::{DataType, Field, Schema};

/// The Parquet table this command writes.
pub const ACTIVATIONS_TABLE: TableKind = TableKind {
    name: "activations",
    version: 1,
};

/// `--pooling`: the names `traitwatch traits --pooling` uses for the same ideas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Pooling {
    /// The prompt's last token (after the chat template's generation prompt).
    Last,
    /// Mean over the prompt's tokens.
    #[value(name = "prompt_mean", alias = "mean")]
    PromptMean,
    /// Every token (Parquet only).
    None,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Preset name, .gguf file or HF directory.
    #[arg(long, default_value = "smollm2-135m")]
    model: String,
    /// A prompt (repeatable).
    #[arg(long = "prompt")]
    prompts: Vec<String>,
    /// A file of prompts: .txt (one per line) or .jsonl ({"prompt": ..} or {"messages": [..]}).
    #[arg(long)]
    prompts_file: Option<PathBuf>,
    /// System message for every prompt.
    #[arg(long)]
    system: Option<String>,
    /// Raw text instead of the chat template.
    #[arg(long)]
    raw: bool,
    /// Hook points: `all`, or a comma list of embeddings, block.<l> (or <l>), final_norm.
    #[arg(long, default_value = "all")]
    layers: String,
    /// How each prompt's activations are reduced to rows.
    #[arg(long = "pooling", alias = "pool", value_enum, default_value = "last")]
    pool: Pooling,
    /// Prompts per forward pass.
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// Output file: .parquet or .safetensors.
    #[arg(long)]
    out: PathBuf,
}

/// The pooling as written into the output's metadata (the `--pooling` value).
fn pooling_label(pool: Pooling) -> &'static str {
    match pool {
        Pooling::Last => "last",
        Pooling::PromptMean => "prompt_mean",
        Pooling::None => "none",
    }
}

fn parse_points(spec: &str, n_layers: usize) -> Result<Vec<HookPoint>> {
    if spec.trim() == "all" {
        return Ok(HookPoint::all(n_layers));
    }
    let mut points = Vec::new();
    for part in spec.split(',').filter(|p| !p.trim().is_empty()) {
        let p: HookPoint = part.parse().map_err(anyhow::Error::msg)?;
        if !p.is_valid_for(n_layers) {
            bail!(
                "hook point {p} does not exist: the model has blocks 0..{}",
                n_layers - 1
            );
        }
        points.push(p);
    }
    points.sort();
    points.dedup();
    Ok(points)
}

/// One prompt: how it is shown in outputs, and its messages (or raw text).
struct Prompt {
    label: String,
    messages: Vec<Message>,
}

fn read_prompts(args: &Args) -> Result<Vec<Prompt>> {
    let mut out: Vec<Prompt> = args
        .prompts
        .iter()
        .map(|p| Prompt {
            label: p.clone(),
            messages: vec![Message::user(p.clone())],
        })
        .collect();
    if let Some(path) = &args.prompts_file {
        out.extend(read_prompt_file(path)?);
    }
    if out.is_empty() {
        bail!("no prompts: give --prompt or --prompts-file");
    }
    Ok(out)
}

fn read_prompt_file(path: &Path) -> Result<Vec<Prompt>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let jsonl = path.extension().is_some_and(|e| e == "jsonl");
    let mut out = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let at = || format!("{}:{}", path.display(), i + 1);
        if !jsonl {
            out.push(Prompt {
                label: line.to_string(),
                messages: vec![Message::user(line)],
            });
            continue;
        }
        let v: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("{}: invalid JSON", at()))?;
        if let Some(p) = v.get("prompt").and_then(|p| p.as_str()) {
            out.push(Prompt {
                label: p.to_string(),
                messages: vec![Message::user(p)],
            });
        } else if let Some(m) = v.get("messages") {
            let messages: Vec<Message> = serde_json::from_value(m.clone())
                .with_context(|| format!("{}: bad `messages`", at()))?;
            let label = messages
                .last()
                .map(|m| m.content.clone())
                .unwrap_or_default();
            out.push(Prompt { label, messages });
        } else {
            bail!("{}: expected a `prompt` string or a `messages` list", at());
        }
    }
    Ok(out)
}

fn tokenize<B: Backend>(model: &LoadedModel<B>, args: &Args, p: &Prompt) -> Result<Vec<u32>> {
    if args.raw {
        let text: Vec<&str> = p.messages.iter().map(|m| m.content.as_str()).collect();
        return Ok(model.tokenizer.encode_raw(&text.join("\n"))?);
    }
    let mut messages = Vec::new();
    if let Some(s) = &args.system {
        messages.push(Message::system(s.clone()));
    }
    messages.extend(p.messages.iter().cloned());
    let add_gen = messages.last().is_some_and(|m| m.role != "assistant");
    Ok(model
        .chat_template()?
        .render_tokens(&model.tokenizer, &messages, add_gen)?
        .ids)
}

/// Collected activations: per hook point, rows of `d` values with their prompt and position.
#[derive(Default)]
struct Collected {
    rows: BTreeMap<HookPoint, Vec<(u32, i32, Vec<f32>)>>,
}

impl BackendJob for Args {
    type Output = ();

    fn run<B: Backend>(self, device: B::Device) -> Result<()> {
        let format = match self.out.extension().and_then(|e| e.to_str()) {
            Some("parquet") => "parquet",
            Some("safetensors") => "safetensors",
            _ => bail!("--out must end in .parquet or .safetensors"),
        };
        if format == "safetensors" && self.pool == Pooling::None {
            bail!("--pooling none gives one row per token; write it to .parquet");
        }
        let prompts = read_prompts(&self)?;
        let model = super::load_model::<B>(&self.model, &device)?;
        let points = parse_points(&self.layers, model.model.n_layers())?;
        let ids: Vec<Vec<u32>> = prompts
            .iter()
            .map(|p| tokenize(&model, &self, p))
            .collect::<Result<_>>()?;
        let bar = progress::bar(
            ids.len() as u64,
            "{spinner} activations {bar:30} {pos}/{len} prompts [{elapsed} < {eta}]",
        );
        let opts = ForwardOptions::<B>::logits(LogitsMode::None).capture(points.iter().copied());
        let d = model.model.d_model();
        let mut collected = Collected::default();
        for (chunk_index, chunk) in ids.chunks(self.batch_size.max(1)).enumerate() {
            let first = chunk_index * self.batch_size.max(1);
            let batch = Batch::new(
                chunk.to_vec(),
                model.tokenizer.pad_or_eos(),
                PaddingSide::Left,
            )?;
            let out = model.model.forward(&batch, &opts)?;
            let t = batch.seq_len();
            for (point, hidden) in out.hidden {
                let h = tensor_to_f32(hidden);
                let rows = collected.rows.entry(point).or_default();
                for i in 0..batch.batch_size() {
                    let (o, n) = (batch.offset(i), batch.rows[i].len());
                    let at = |pos: usize| &h[(i * t + pos) * d..(i * t + pos + 1) * d];
                    let prompt = (first + i) as u32;
                    match self.pool {
                        Pooling::Last => rows.push((prompt, -1, at(batch.last_index(i)).to_vec())),
                        Pooling::PromptMean => {
                            let mut mean = vec![0f32; d];
                            for pos in o..o + n {
                                mean.iter_mut()
                                    .zip(at(pos))
                                    .for_each(|(m, x)| *m += x / n as f32);
                            }
                            rows.push((prompt, -1, mean));
                        }
                        Pooling::None => {
                            for (k, pos) in (o..o + n).enumerate() {
                                rows.push((prompt, k as i32, at(pos).to_vec()));
                            }
                        }
                    }
                }
            }
            bar.inc(chunk.len() as u64);
        }
        bar.finish_and_clear();
        let labels: Vec<String> = prompts.into_iter().map(|p| p.label).collect();
        let meta = BTreeMap::from([
            ("model".to_string(), model.location.path().display().to_string()),
            ("pooling".to_string(), pooling_label(self.pool).to_string()),
            (
                "layer_convention".to_string(),
                "block.l = residual stream after decoder block l (0-based); embeddings = block input 0; final_norm = after the final RMSNorm".to_string(),
            ),
        ]);
        match format {
            "parquet" => write_parquet(&self.out, &collected, &labels, d, &meta)?,
            _ => write_safetensors(&self.out, &collected, &labels, d, meta)?,
        }
        tracing::info!(prompts = labels.len(), hook_points = points.len(), out = %self.out.display(), "wrote activations");
        Ok(())
    }
}

fn write_parquet(
    path: &Path,
    c: &Collected,
    labels: &[String],
    d: usize,
    meta: &BTreeMap<String, String>,
) -> Result<()> {
    let (mut prompt, mut text, mut hook, mut pos, mut values) =
        (vec![], vec![], vec![], vec![], vec![]);
    for (point, rows) in &c.rows {
        for (p, position, v) in rows {
            prompt.push(*p);
            text.push(labels[*p as usize].clone());
            hook.push(point.to_string());
            pos.push(*position);
            values.extend_from_slice(v);
        }
    }
    let item = Arc::new(Field::new("item", DataType::Float32, false));
    let values = FixedSizeListArray::try_new(
        item.clone(),
        d as i32,
        Arc::new(Float32Array::from(values)),
        None,
    )?;
    let schema = Schema::new(vec![
        Field::new("prompt_index", DataType::UInt32, false),
        Field::new("prompt", DataType::Utf8, false),
        Field::new("hook", DataType::Utf8, false),
        Field::new("position", DataType::Int32, false),
        Field::new("values", DataType::FixedSizeList(item, d as i32), false),
    ]);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(UInt32Array::from(prompt)),
        Arc::new(StringArray::from(text)),
        Arc::new(StringArray::from(hook)),
        Arc::new(Int32Array::from(pos)),
        Arc::new(values),
    ];
    let batch = RecordBatch::try_new(Arc::new(schema), columns)?;
    tables::write_parquet(path, &batch, ACTIVATIONS_TABLE, meta)?;
    Ok(())
}

fn write_safetensors(
    path: &Path,
    c: &Collected,
    labels: &[String],
    d: usize,
    mut meta: BTreeMap<String, String>,
) -> Result<()> {
    meta.insert("prompts".into(), serde_json::to_string(labels)?);
    let data: Vec<(String, Vec<u8>, usize)> = c
        .rows
        .iter()
        .map(|(point, rows)| {
            let bytes = rows
                .iter()
                .flat_map(|(_, _, v)| v.iter().flat_map(|x| x.to_le_bytes()))
                .collect();
            (point.to_string(), bytes, rows.len())
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = data
        .iter()
        .map(|(name, bytes, n)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![*n, d], bytes)
                .map(|v| (name.clone(), v))
        })
        .collect::<Result<_, _>>()?;
    let tmp = tables::temp_path(path);
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    safetensors::serialize_to_file(views, Some(meta.into_iter().collect()), &tmp)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}
