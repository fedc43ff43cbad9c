//! After the stages: gather an experiment's tables into `results/<experiment>/`, evaluate
//! the monitor where a target needs it (`lopo`), and draw the figures.

use anyhow::{Context, Result};
use pipeline::{Loaded, Plan, StageKind, Store};
use std::path::{Path, PathBuf};

/// Files larger than this stay in the store (adapters, checkpoints); results hold tables,
/// small tensors (directions, prompt means) and JSON records.
const MAX_COPIED_BYTES: u64 = 32 << 20;

/// Copy the tables of every finished artifact of the experiment (all targets, not only
/// this run's: a `reproduce fig1` after a `reproduce all` keeps the whole grid) into a
/// fresh `results/<experiment>/` (`<stage>/<slug>/...`), replacing the previous one only
/// once the copy is complete. Returns the directory and whether the whole grid is there.
pub fn collect(loaded: &Loaded) -> Result<(PathBuf, bool)> {
    let plan = Plan::build(loaded, &[pipeline::Target::All])?;
    let results = loaded.results_dir();
    let staging = sibling(&results, ".collecting");
    if staging.exists() {
        std::fs::remove_dir_all(&staging)
            .with_context(|| format!("removing {}", staging.display()))?;
    }
    let mut copied = 0usize;
    let mut complete = true;
    for (i, stage) in plan.stages.iter().enumerate() {
        // The base model's EM stage: every run's EM tables repeat its step 0 already.
        if stage.kind == StageKind::Em && stage.cell.is_none() {
            continue;
        }
        let dir = plan.dir(i);
        if !Store::is_complete(&dir) {
            complete = false;
            continue;
        }
        let dest = staging.join(stage.kind.name()).join(&stage.slug);
        std::fs::create_dir_all(&dest).with_context(|| format!("creating {}", dest.display()))?;
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))?
        {
            let path = entry?.path();
            if !path.is_file() || !wanted(stage.kind, &path)? {
                continue;
            }
            if let Some(name) = path.file_name() {
                std::fs::copy(&path, dest.join(name))
                    .with_context(|| format!("copying {}", path.display()))?;
                copied += 1;
            }
        }
        let from = format!("{}\n", dir.display());
        std::fs::write(dest.join("ARTIFACT"), from)?;
    }
    let old = sibling(&results, ".previous");
    if results.exists() {
        if old.exists() {
            std::fs::remove_dir_all(&old)?;
        }
        std::fs::rename(&results, &old)
            .with_context(|| format!("moving {} aside", results.display()))?;
    }
    if let Some(parent) = results.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::rename(&staging, &results)
        .with_context(|| format!("moving the new results into {}", results.display()))?;
    if old.exists() {
        std::fs::remove_dir_all(&old)?;
    }
    tracing::info!("collected {copied} files into {}", results.display());
    Ok((results, complete))
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

fn wanted(kind: StageKind, path: &Path) -> Result<bool> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let small = std::fs::metadata(path)?.len() <= MAX_COPIED_BYTES;
    Ok(match kind {
        // The run's record and training log; adapters stay in the store.
        StageKind::Finetune => ext == "parquet" || path.ends_with("run.json"),
        _ => small && matches!(ext, "parquet" | "json" | "safetensors" | "md" | "tex"),
    })
}

/// The monitor's evaluation (when a target needs it, or whenever the whole grid is
/// collected: it takes seconds and keeps `results/` whole) and the figures.
pub fn finish(
    loaded: &Loaded,
    plan: &Plan,
    (results, whole_grid): (&Path, bool),
    manifest: &Path,
) -> Result<()> {
    let m = &loaded.manifest;
    if whole_grid || plan.targets.iter().any(|t| t.needs_monitor()) {
        let common = |split: &[&str]| -> Vec<String> {
            let mut argv: Vec<String> = vec!["lopo".into(), "--results".into()];
            argv.push(results.display().to_string());
            argv.extend(split.iter().map(|s| s.to_string()));
            let tau = if m.monitor.label == "logodds" {
                m.em.logodds_tau
            } else {
                m.em.tau
            };
            argv.extend(["--tau".into(), tau.to_string()]);
            argv.extend(["--label".into(), m.monitor.label.clone()]);
            argv
        };
        let boot = m.monitor.bootstrap.to_string();
        let seed = m.monitor.seed.to_string();
        let mut splits: Vec<Vec<String>> = vec![];
        for split in [&["--all"][..], &["--held-out-types"][..]] {
            let mut argv = common(split);
            argv.extend([
                "--bootstrap".into(),
                boot.clone(),
                "--seed".into(),
                seed.clone(),
            ]);
            splits.push(argv);
        }
        let mut alarm = common(&["--step-alarm"]);
        if let Some(anchor) = &m.monitor.anchor {
            alarm.extend(["--anchor".into(), anchor.clone()]);
        }
        splits.push(alarm);
        for argv in splits {
            use clap::Parser;
            let args = lopo::Args::try_parse_from(&argv)
                .with_context(|| format!("monitor arguments {argv:?}"))?;
            // A split with no data (e.g. no held-out runs) is reported, not fatal.
            if let Err(e) = lopo::run(args) {
                tracing::warn!("monitor `{}`: {e:#}", argv[3..].join(" "));
            }
        }
    }
    super::figures::make(loaded, plan, results, manifest)
}
