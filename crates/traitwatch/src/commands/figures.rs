//! Drawing figures from results: after `traitwatch run`, and on their own
//! (`traitwatch figures fig1 --results results/default`).

use anyhow::{Context, Result};
use pipeline::{Loaded, Plan, Target};
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// fig1 ... fig11 or tables (several allowed).
    #[arg(required = true)]
    targets: Vec<String>,
    /// An experiment's results directory.
    #[arg(long, default_value = "results/default")]
    results: PathBuf,
    /// Where the figures (PNG, SVG, PDF) and tables go.
    #[arg(long, default_value = "figures/default")]
    out: PathBuf,
}

pub fn run(args: Args) -> Result<()> {
    let provenance = figures::Provenance {
        git_revision: git_revision(),
        ..Default::default()
    };
    for t in &args.targets {
        let target = figures::Target::parse(t)?;
        let files = figures::render(target, &args.results, &args.out, &provenance)?;
        println!("{t}: {}", display(&files));
    }
    Ok(())
}

fn display(files: &[PathBuf]) -> String {
    files
        .iter()
        .map(|f| f.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The checkout's revision, for the sidecars (None outside a git checkout).
fn git_revision() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The plan's figures and tables, drawn from the collected results into the experiment's
/// figures directory. A figure whose inputs this experiment does not have (or that is not
/// implemented yet) is reported and skipped, so one missing table does not stop the rest.
pub fn make(loaded: &Loaded, plan: &Plan, results: &Path, manifest: &Path) -> Result<()> {
    let out = loaded.figures_dir();
    let text =
        std::fs::read(manifest).with_context(|| format!("reading {}", manifest.display()))?;
    let hash: String = {
        use sha2::Digest;
        sha2::Sha256::digest(&text)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    let provenance = figures::Provenance {
        manifest: Some(manifest.to_path_buf()),
        manifest_sha256: Some(hash),
        git_revision: git_revision(),
    };
    for target in &plan.targets {
        let which = match target {
            Target::Fig(n) => figures::Target::Fig(*n),
            Target::Tables => figures::Target::Tables,
            Target::All => continue,
        };
        use figures::FigureError as E;
        match figures::render(which, results, &out, &provenance) {
            Ok(files) => println!("{}: {}", target.name(), display(&files)),
            Err(e @ (E::NotYet(_) | E::MissingTable { .. } | E::NoData { .. })) => {
                println!("{}: not drawn ({e})", target.name());
            }
            Err(e) => return Err(e).with_context(|| format!("drawing {}", target.name())),
        }
    }
    Ok(())
}
