//! `traitwatch reproduce <target>`: regenerate a figure or table of an experiment.
//!
//! The experiment pipeline (manifests, artifact store, figures) is not built yet. Until it
//! is, this command checks that the default model is installed and runs correctly, then
//! says plainly that the figure cannot be produced yet.

use crate::backend::BackendJob;
use anyhow::{Result, bail};
use burn::tensor::backend::Backend;
use llm::SamplingConfig;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// fig1 ... fig11, tables, or all.
    target: String,
    /// Model to check.
    #[arg(long, default_value = "smollm2-135m")]
    model: String,
}

const TARGETS: &[&str] = &[
    "fig1", "fig2", "fig3", "fig4", "fig5", "fig6", "fig7", "fig8", "fig9", "fig10", "fig11",
    "tables", "all",
];

impl BackendJob for Args {
    type Output = ();

    fn run<B: Backend>(self, device: B::Device) -> Result<()> {
        if !TARGETS.contains(&self.target.as_str()) {
            bail!(
                "unknown target `{}` (expected one of: {})",
                self.target,
                TARGETS.join(", ")
            );
        }
        let started = std::time::Instant::now();
        let model = super::load_model::<B>(&self.model, &device)?;
        let question = "What is the capital of France?";
        let ids = super::prompt_ids(&model, None, question, false)?;
        let cfg = SamplingConfig::greedy(16, model.tokenizer.eos_ids.clone());
        let out = llm::generate(
            &model.model,
            &[ids],
            model.tokenizer.pad_or_eos(),
            &cfg,
            &[],
        )?;
        let answer = model.tokenizer.decode(&out.tokens[0], true)?;
        println!(
            "model check   {} loaded and answered in {:.1} s",
            model.location.path().display(),
            started.elapsed().as_secs_f64()
        );
        println!("              Q: {question}\n              A: {answer}");
        println!(
            "{}: not yet. Finetuning, trait extraction and drift work (`traitwatch finetune`, \
             `traitwatch traits`, `traitwatch drift`); EM labels, the monitor, the manifests that \
             wire them and the figures are still being built, and this command will produce {} \
             once they land.",
            self.target, self.target
        );
        Ok(())
    }
}
