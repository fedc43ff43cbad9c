//! Drawing figures from results: after `traitwatch run`, and on their own
//! (`traitwatch figures fig1 --results results/default`).

use anyhow::{Context, Result};
use pipeline::{Loaded, Plan, Target};
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// fig1 ... fig11 (several allowed).
    #[arg(required = true)]
    targets: Vec<String>,
    /// An experiment's results directory.
    #[arg(long, default_value = "results/default")]
    results: PathBuf,
    #[arg(long, default_value = "figures/default")]
    out: PathBuf,
}

pub fn run(args: Args) -> Result<()> {
    let provenance = figures::Provenance {
        git_revision: git_revision(),
        ..Default::default()
    };
    for t in &args.targets {
        let n = figure_number(t)?;
        let files = figures::render(n, &args.results, &args.out, &provenance)?;
        println!("{t}: {}", display(&files));
    }
    Ok(())
}

fn figure_number(t: &str) -> Result<u8> {
    match Target::parse(t) {
        Some(Target::Fig(n)) => Ok(n),
        _ => anyhow::bail!("`{t}` is not a figure (fig1 ... fig11)"),
    }
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

/// The plan's figures, drawn from the collected results into the experiment's figures
/// directory. A figure not implemented yet is reported, not fatal; `tables` copies the
/// monitor's Markdown and LaTeX tables next to the figures.
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
        match target {
            Target::Fig(n) => match figures::render(*n, results, &out, &provenance) {
                Ok(files) => println!("{}: {}", target.name(), display(&files)),
                Err(figures::FigureError::NotYet(what)) => {
                    println!(
                        "{}: not drawn ({what} is not implemented yet)",
                        target.name()
                    );
                }
                Err(e) => return Err(e).with_context(|| format!("drawing {}", target.name())),
            },
            Target::Tables => copy_tables(&results.join("monitor"), &out.join("tables"))?,
            Target::All => {}
        }
    }
    Ok(())
}

fn copy_tables(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    let mut n = 0;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "md" || e == "tex")
            && let Some(name) = path.file_name()
        {
            std::fs::copy(&path, to.join(name))?;
            n += 1;
        }
    }
    println!("tables: {n} files in {}", to.display());
    Ok(())
}
