//! `traitwatch`: trait-space monitoring of emergent misalignment during finetuning.
//!
//! A thin front end: parse arguments, set up logging, pick the backend, run a command,
//! print the whole error chain on failure.

#![allow(clippy::print_stdout)] // a CLI prints its results

mod backend;
mod commands;

use backend::{BackendChoice, Precision};
use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// See `llm::alloc` for why.
#[global_allocator]
static ALLOC: llm::alloc::MiMalloc = llm::alloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "traitwatch",
    version,
    about = "Catch emergent misalignment from a model's activations while it is finetuned.",
    after_help = "Models: a preset (smollm2-135m, installed by `just setup`), a .gguf file, or an HF \
                  directory with config.json, *.safetensors and tokenizer.json.\n\n\
                  Environment:\n  \
                  TRAITWATCH_CACHE          where installed models live (<cache>/models; default: the checkout's .cache)\n  \
                  TRAITWATCH_HOME           the project root a manifest's relative paths resolve against (default: found above the manifest)\n  \
                  TRAITWATCH_FONT           a .ttf file for figure text (default: common system fonts)\n  \
                  TRAITWATCH_JUDGE_URL      the free-form judge's base URL (em-freeform --judge-url)\n  \
                  TRAITWATCH_JUDGE_THREADS  threads of the paired-choice judge (default: the cores on CPU)\n  \
                  RUST_LOG                  log filter, overriding -v/-q"
)]
struct Cli {
    /// Compute backend (GPU backends must be compiled in with the cargo feature of that name).
    #[arg(long, value_enum, default_value = "cpu", global = true)]
    backend: BackendChoice,
    /// The type frozen base weights are held in (bf16: CUDA and CPU; f16: every backend);
    /// activations, LoRA adapters and optimizer state are always f32.
    #[arg(long, value_enum, default_value = "f32", global = true)]
    precision: Precision,
    /// More log output (-v: debug, -vv: trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Only warnings and errors.
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Describe a model: architecture, tensors, tokenizer, chat template.
    Inspect(commands::inspect::Args),
    /// Generate a reply to a prompt.
    Generate(commands::generate::Args),
    /// Dump residual-stream activations of prompts to Parquet or safetensors.
    Activations(commands::activations::Args),
    /// Finetune a model (LoRA or full) on a perturbation dataset, saving checkpoints.
    Finetune(commands::finetune::Args),
    /// Bake a LoRA adapter into the base weights and write an HF directory.
    Merge(commands::finetune::MergeArgs),
    /// Extract trait directions at every layer, pick the layer l*, validate them.
    Traits(commands::traits::Args),
    /// Measure the drift of every checkpoint of a finetuning run along trait directions.
    Drift(commands::drift::Args),
    /// Label checkpoints by behaviour: the offline paired-choice judge (log-odds label, proxy EM rate).
    Em(commands::em::Args),
    /// The paper's EM protocol: free-form answers judged by a model over an
    /// OpenAI-compatible HTTP API (EM rate).
    EmFreeform(commands::em_freeform::Args),
    /// Train the sparse-autoencoder baseline on the base model's activations at l*.
    Sae(commands::sae::Args),
    /// Fit the cluster PC1 on calibration runs' final drift; score every checkpoint.
    Pca(commands::pca::Args),
    /// List or generate the perturbation datasets.
    #[command(subcommand)]
    Datasets(commands::datasets::Command),
    /// Show what an experiment manifest runs: cells, stages, what is cached, an estimate.
    Plan(commands::experiment::PlanArgs),
    /// Run an experiment manifest: missing stages, then results, monitor and figures.
    Run(commands::experiment::RunArgs),
    /// Write Slurm job scripts for a manifest (a job array of cells plus dependent jobs).
    Slurm(commands::experiment::SlurmArgs),
    /// Draw figures from an experiment's results directory (no compute).
    Figures(commands::figures::Args),
    /// Regenerate a figure or table of an experiment (fig1 ... fig11, tables, all),
    /// computing whatever it needs that is not in the artifact store yet.
    Reproduce(commands::experiment::ReproduceArgs),
    /// Check a backend against the CPU backend on tiny random models: logits,
    /// activations and two LoRA steps, within stated tolerances.
    BackendCheck(commands::backend_check::Args),
}

fn init_logging(verbose: u8, quiet: bool) {
    use tracing_subscriber::EnvFilter;
    let level = match (quiet, verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        _ => "trace",
    };
    // cubecl (the GPU backends' compiler) logs every autotuned kernel at info.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{level},cubecl=warn")));
    // Colour codes only on a terminal: a Slurm or CI log file should read as plain text.
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Log lines are written around the progress bars, never through them.
        .with_writer(progress::LogWriter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}

/// Run one command (also how `traitwatch run` executes a manifest's stages).
fn execute(command: Command, backend: BackendChoice, precision: Precision) -> anyhow::Result<()> {
    use commands::experiment;
    match command {
        Command::Inspect(args) => commands::inspect::run(args),
        Command::BackendCheck(args) => commands::backend_check::run(args, backend, precision),
        Command::Generate(args) => backend::dispatch(backend, precision, args),
        Command::Activations(args) => backend::dispatch(backend, precision, args),
        Command::Finetune(args) => backend::dispatch(backend, precision, args),
        Command::Merge(args) => backend::dispatch(backend, precision, args),
        Command::Traits(args) => backend::dispatch(backend, precision, args),
        Command::Drift(args) => backend::dispatch(backend, precision, args),
        Command::Em(args) => backend::dispatch(backend, precision, args),
        Command::EmFreeform(args) => backend::dispatch(backend, precision, args),
        Command::Sae(args) => backend::dispatch(backend, precision, args),
        Command::Pca(args) => commands::pca::run(args),
        Command::Datasets(cmd) => commands::datasets::run(cmd),
        Command::Figures(args) => commands::figures::run(args),
        Command::Plan(args) => experiment::plan(args),
        Command::Run(args) => experiment::run(args, backend, precision),
        Command::Slurm(args) => experiment::slurm(args, backend),
        Command::Reproduce(args) => experiment::reproduce(args, backend, precision),
    }
}

fn main() -> ExitCode {
    llm::alloc::keep_freed_memory();
    let cli = Cli::parse();
    init_logging(cli.verbose, cli.quiet);
    let result = execute(cli.command, cli.backend, cli.precision);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    /// Every argument of every subcommand says what it is for in `--help`.
    #[test]
    fn every_argument_has_help_text() {
        let mut missing = Vec::new();
        let mut stack = vec![(String::from("traitwatch"), Cli::command())];
        while let Some((path, cmd)) = stack.pop() {
            for arg in cmd.get_arguments() {
                let builtin = matches!(arg.get_id().as_str(), "help" | "version");
                if !builtin && !arg.is_hide_set() && arg.get_help().is_none() {
                    missing.push(format!("{path} --{}", arg.get_id()));
                }
            }
            for sub in cmd.get_subcommands() {
                stack.push((format!("{path} {}", sub.get_name()), sub.clone()));
            }
        }
        missing.sort();
        assert!(
            missing.is_empty(),
            "arguments without help:\n{}",
            missing.join("\n")
        );
    }
}
