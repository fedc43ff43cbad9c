//! `traitwatch generate`: a reply from a model, greedy or sampled.

use crate::backend::BackendJob;
use anyhow::Result;
use burn::tensor::backend::Backend;
use llm::SamplingConfig;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Preset name, .gguf file or HF directory.
    #[arg(long, default_value = "smollm2-135m")]
    model: String,
    /// The user message.
    #[arg(long)]
    prompt: String,
    /// An optional system message.
    #[arg(long)]
    system: Option<String>,
    /// Feed the prompt as raw text instead of through the chat template.
    #[arg(long)]
    raw: bool,
    /// Longest reply, in tokens.
    #[arg(long, default_value_t = 256)]
    max_new_tokens: usize,
    /// 0 = greedy.
    #[arg(long, default_value_t = 0.0)]
    temperature: f64,
    /// Nucleus sampling threshold (1 = off).
    #[arg(long, default_value_t = 1.0)]
    top_p: f64,
    /// Sampling seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

impl BackendJob for Args {
    type Output = ();

    fn run<B: Backend>(self, device: B::Device) -> Result<()> {
        let model = super::load_model::<B>(&self.model, &device)?;
        let ids = super::prompt_ids(&model, self.system.as_deref(), &self.prompt, self.raw)?;
        let cfg = SamplingConfig {
            max_new_tokens: self.max_new_tokens,
            temperature: self.temperature,
            top_p: self.top_p,
            seed: self.seed,
            stop_tokens: model.tokenizer.eos_ids.clone(),
        };
        let started = std::time::Instant::now();
        let out = llm::generate(
            &model.model,
            &[ids],
            model.tokenizer.pad_or_eos(),
            &cfg,
            &[],
        )?;
        let tokens = &out.tokens[0];
        println!("{}", model.tokenizer.decode(tokens, true)?);
        let secs = started.elapsed().as_secs_f64();
        tracing::info!(
            new_tokens = tokens.len(),
            seconds = format!("{secs:.2}"),
            tokens_per_s = format!("{:.1}", tokens.len() as f64 / secs),
            stopped = out.stopped[0],
            "generated"
        );
        Ok(())
    }
}
