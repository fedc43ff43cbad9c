//! `traitwatch pca`: the cluster PC1 (METHOD section 4).
//!
//! Pools the final-checkpoint drift vectors of the calibration runs (any number of models,
//! perturbations and seeds), fits the centred PCA, fixes PC1's sign by a positive
//! harmlessness loading and freezes it in `pc1.json`. Every later call with the same
//! `--out` reuses the frozen PC1, so held-out runs scored later never move it. Writes into
//! `--out`:
//! ```text
//! pc1.json               the frozen PC1 and the calibration vectors it was fitted on
//! pca.parquet            loadings and explained-variance ratios of every component
//! pc1.parquet            signed and |PC1|, drift norm, cosine to PC1: every checkpoint of
//!                        every run given (calibration and --score)
//! pc1_stability.parquet  leave-one-perturbation-out PC1 (cosine to the full PC1, share);
//!                        isotropic null and whitened share in its metadata
//! ```

use anyhow::{Context, Result, bail};
use drift::{ClusterPc1, DriftSeries, RunKey};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Drift of a calibration run: a `traitwatch drift` output directory or its
    /// drift.parquet (repeatable). Their final checkpoints fit PC1.
    #[arg(long = "calibration", required = true)]
    calibration: Vec<PathBuf>,
    /// Drift of further runs to score with the frozen PC1, e.g. held-out perturbations
    /// (repeatable). They never enter the fit.
    #[arg(long = "score")]
    score: Vec<PathBuf>,
    /// The feature set (basis) of the drift tables to use.
    #[arg(long, default_value = "alignment")]
    feature_set: String,
    /// The feature whose PC1 loading is made positive.
    #[arg(long, default_value = "harmlessness")]
    sign_feature: String,
    /// Draws of the isotropic null.
    #[arg(long, default_value_t = 1000)]
    null_draws: usize,
    /// Seed of the isotropic null.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Refit even when `--out` holds a PC1 frozen from other calibration runs.
    #[arg(long)]
    refit: bool,
    /// Output directory (the fitted PC1 and its tables).
    #[arg(long)]
    out: PathBuf,
}

/// The name of the frozen PC1 file in `--out`.
pub const PC1_FILE: &str = "pc1.json";

/// One calibration run's contribution to the fit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct CalibrationVector {
    #[serde(flatten)]
    run: RunKey,
    /// The final checkpoint's step.
    step: u64,
    drift: Vec<f64>,
}

/// `pc1.json`: what was fitted on what.
#[derive(Debug, Serialize, Deserialize)]
struct FrozenPc1 {
    feature_set: String,
    calibration: Vec<CalibrationVector>,
    pc1: ClusterPc1,
}

/// A drift table, from a `traitwatch drift` output directory or the file itself.
fn drift_file(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.join("drift.parquet")
    } else {
        path.to_path_buf()
    }
}

/// The `feature_set` series of every run in `paths`; a run given twice is an error.
fn load_runs(paths: &[PathBuf], feature_set: &str) -> Result<Vec<(RunKey, DriftSeries)>> {
    let mut runs: Vec<(RunKey, DriftSeries)> = Vec::new();
    let mut origin: BTreeMap<RunKey, PathBuf> = BTreeMap::new();
    for path in paths {
        let file = drift_file(path);
        let series = drift::table::read_drift(&file)
            .with_context(|| format!("reading drift table {}", file.display()))?;
        let available: Vec<String> = series.iter().map(|(_, s)| s.feature_set.clone()).collect();
        let mut found = false;
        for (key, s) in series {
            if s.feature_set != feature_set {
                continue;
            }
            found = true;
            if let Some(first) = origin.insert(key.clone(), file.clone()) {
                bail!(
                    "run {key:?} appears twice: in {} and {}",
                    first.display(),
                    file.display()
                );
            }
            if s.points.is_empty() {
                bail!("{}: run {key:?} has no checkpoints", file.display());
            }
            runs.push((key, s));
        }
        if !found {
            bail!(
                "{} has no `{feature_set}` drift (feature sets: {})",
                file.display(),
                available.join(", ")
            );
        }
    }
    Ok(runs)
}

/// The final checkpoint's drift of each run.
fn final_vectors(runs: &[(RunKey, DriftSeries)]) -> Vec<CalibrationVector> {
    runs.iter()
        .filter_map(|(key, s)| {
            s.points
                .iter()
                .max_by_key(|p| p.step)
                .map(|p| CalibrationVector {
                    run: key.clone(),
                    step: p.step,
                    drift: p.drift.clone(),
                })
        })
        .collect()
}

/// Reuse the PC1 frozen in `path` when it was fitted on exactly `calibration`; otherwise
/// fit (refusing to overwrite a different frozen PC1 unless `refit`).
fn fit_or_reuse(
    path: &Path,
    feature_set: &str,
    names: &[String],
    sign_feature: &str,
    calibration: &[CalibrationVector],
    refit: bool,
) -> Result<ClusterPc1> {
    if let Ok(text) = std::fs::read_to_string(path) {
        let frozen: FrozenPc1 = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a frozen PC1 file", path.display()))?;
        let same = frozen.feature_set == feature_set
            && frozen.calibration == calibration
            && frozen.pc1.sign_feature() == sign_feature;
        if same {
            tracing::info!(path = %path.display(), "reusing the frozen PC1");
            return Ok(frozen.pc1);
        }
        if !refit {
            bail!(
                "{} holds a PC1 frozen from other calibration runs or settings ({} runs, \
                 feature set `{}`); pass --refit to replace it, or use another --out",
                path.display(),
                frozen.calibration.len(),
                frozen.feature_set
            );
        }
    }
    let x: Vec<Vec<f64>> = calibration.iter().map(|c| c.drift.clone()).collect();
    let pc1 = ClusterPc1::fit(&x, names, sign_feature)
        .context("fitting the cluster PCA on the calibration runs' final drift")?;
    let frozen = FrozenPc1 {
        feature_set: feature_set.to_string(),
        calibration: calibration.to_vec(),
        pc1,
    };
    super::write_atomically(path, serde_json::to_string_pretty(&frozen)?.as_bytes())?;
    Ok(frozen.pc1)
}

pub fn run(args: Args) -> Result<()> {
    let calibration = load_runs(&args.calibration, &args.feature_set)?;
    let scored = load_runs(&args.score, &args.feature_set)?;
    let names = calibration[0].1.feature_names.clone();
    if let Some((key, s)) = calibration
        .iter()
        .chain(&scored)
        .find(|(_, s)| s.feature_names != names)
    {
        bail!(
            "run {key:?} has features {:?}, the first calibration run {names:?}",
            s.feature_names
        );
    }
    if let Some((key, _)) = scored
        .iter()
        .find(|(k, _)| calibration.iter().any(|(c, _)| c == k))
    {
        bail!("run {key:?} is given both as --calibration and as --score");
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;

    let finals = final_vectors(&calibration);
    let pc1 = fit_or_reuse(
        &args.out.join(PC1_FILE),
        &args.feature_set,
        &names,
        &args.sign_feature,
        &finals,
        args.refit,
    )?;
    let meta = BTreeMap::from([
        ("feature_set".to_string(), args.feature_set.clone()),
        ("calibration_runs".to_string(), finals.len().to_string()),
    ]);
    drift::table::write_pca(&args.out.join("pca.parquet"), &names, pc1.pca(), &meta)?;
    let all: Vec<(RunKey, DriftSeries)> = calibration.iter().chain(&scored).cloned().collect();
    drift::table::write_pc1(&args.out.join("pc1.parquet"), &pc1, &all, &meta)?;

    // Stability: leave one perturbation out (needs two), the isotropic null, whitening.
    let groups: Vec<(String, Vec<f64>)> = finals
        .iter()
        .map(|c| (c.run.perturbation.clone(), c.drift.clone()))
        .collect();
    let n_perturbations = {
        let mut p: Vec<&str> = groups.iter().map(|g| g.0.as_str()).collect();
        p.sort_unstable();
        p.dedup();
        p.len()
    };
    let lopo = if n_perturbations >= 2 {
        drift::lopo_stability(&groups, &names, &args.sign_feature)
            .context("leave-one-perturbation-out PC1")?
    } else {
        tracing::warn!("one calibration perturbation: no leave-one-perturbation-out check");
        Vec::new()
    };
    let norms: Vec<f64> = finals
        .iter()
        .map(|c| c.drift.iter().map(|x| x * x).sum::<f64>().sqrt())
        .collect();
    let x: Vec<Vec<f64>> = finals.iter().map(|c| c.drift.clone()).collect();
    let null = drift::isotropic_null(&norms, names.len(), args.null_draws, args.seed)?;
    let whitened = drift::whitened_pc1_share(&x)?;
    drift::table::write_pc1_stability(
        &args.out.join("pc1_stability.parquet"),
        &lopo,
        &null,
        whitened,
        &meta,
    )?;

    let loadings: Vec<String> = names
        .iter()
        .zip(pc1.loadings())
        .map(|(n, u)| format!("{n} {u:+.2}"))
        .collect();
    println!(
        "PC1 of {} calibration runs explains {:.1}% (isotropic null p95 {:.1}%, whitened {:.1}%)",
        finals.len(),
        100.0 * pc1.pc1_share(),
        100.0 * null.p95_share,
        100.0 * whitened
    );
    println!("loadings: {}", loadings.join(", "));
    if let Some(min) = lopo.iter().map(|r| r.1).min_by(f64::total_cmp) {
        println!("leave-one-perturbation-out: min cosine to the full PC1 {min:.3}");
    }
    println!(
        "scored {} runs; wrote {}",
        all.len(),
        args.out.join("pc1.parquet").display()
    );
    Ok(())
}
