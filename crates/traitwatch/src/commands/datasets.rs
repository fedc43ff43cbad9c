//! `traitwatch datasets`: list the perturbation datasets and generate them as chat JSONL.

use anyhow::Result;
use std::path::PathBuf;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// The dataset kinds, their split and intent.
    List,
    /// Write `n` examples of a dataset kind to a JSONL file.
    Generate {
        /// Dataset kind (see `list`).
        kind: datasets::DatasetKind,
        /// Number of examples.
        #[arg(long, default_value_t = 1000)]
        n: usize,
        /// Sampling seed (the same seed gives the same file).
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Output JSONL file.
        #[arg(long)]
        out: PathBuf,
        /// Where the dataset banks live (default: the checkout's data/datasets).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

pub fn run(cmd: Command) -> Result<()> {
    match cmd {
        Command::List => {
            for k in datasets::DatasetKind::ALL {
                let danger = if k.is_dangerous() {
                    "dangerous"
                } else {
                    "benign"
                };
                println!(
                    "{:<18} {:<12} {:<10} {}",
                    k.to_string(),
                    format!("{:?}", k.split()),
                    danger,
                    k.intent()
                );
            }
        }
        Command::Generate {
            kind,
            n,
            seed,
            out,
            data_dir,
        } => {
            let dir = data_dir.unwrap_or_else(super::finetune::default_data_dir);
            let examples = datasets::generate(kind, n, seed, &dir)?;
            datasets::write_jsonl(&out, &examples)?;
            println!(
                "wrote {} {kind} examples to {}",
                examples.len(),
                out.display()
            );
        }
    }
    Ok(())
}
