//! Manifests end to end: `traitwatch plan`, `run`, `slurm` and `reproduce`.
//!
//! The pipeline crate turns a manifest into stages, each one of this binary's commands;
//! here they are executed in-process (the same code a user runs by hand), then the
//! results are collected under `results/<experiment>/`, the monitor is evaluated where a
//! target needs it, and the figures are drawn.

use anyhow::{Context, Result, bail};
use pipeline::runner::{Executor, Selection};
use pipeline::{Arg, Loaded, Plan, Stage, StageKind, Store, Target};
use std::path::{Path, PathBuf};

/// The embedded default experiment.
pub const DEFAULT_MANIFEST: &str = "experiments/default.toml";

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// The experiment manifest (TOML).
    manifest: PathBuf,
    /// What to make (default: the manifest's `[figures] make`).
    #[arg(long, value_delimiter = ',', value_parser = target_parser())]
    targets: Vec<Target>,
    /// Print every stage's command line.
    #[arg(long)]
    commands: bool,
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The experiment manifest (TOML).
    manifest: PathBuf,
    /// What to make (default: the manifest's `[figures] make`).
    #[arg(long, value_delimiter = ',', value_parser = target_parser())]
    targets: Vec<Target>,
    /// Run only this cell's stages (finetune, drift, EM); index as `traitwatch plan` lists them.
    #[arg(long, conflicts_with_all = ["shared", "merge"])]
    cell: Option<usize>,
    /// Run only the per-model stages cells share (trait directions, SAE).
    #[arg(long, conflicts_with = "merge")]
    shared: bool,
    /// Run the stages that combine cells, then collect results, monitor and figures.
    #[arg(long)]
    merge: bool,
}

/// `traitwatch slurm`. Cluster settings may also sit in the manifest's `[slurm]` table
/// (same names, `_` for `-`); a flag given here wins over it.
#[derive(Debug, clap::Args)]
pub struct SlurmArgs {
    /// The experiment manifest (TOML).
    manifest: PathBuf,
    /// What the merge job makes (default: the manifest's `[figures] make`).
    #[arg(long, value_delimiter = ',', value_parser = target_parser())]
    targets: Vec<Target>,
    /// Where the scripts go, the jobs' logs in logs/ inside it (default: slurm/<experiment>
    /// under the project root).
    #[arg(long)]
    out: Option<PathBuf>,
    /// The traitwatch binary as the compute nodes see it: a path (relative to this
    /// directory) or a command on their PATH [default: target/release/traitwatch under the
    /// project root].
    #[arg(long)]
    binary: Option<String>,
    /// The partition the jobs go to (default: the cluster's).
    #[arg(long)]
    partition: Option<String>,
    /// The account the jobs are billed to (#SBATCH --account).
    #[arg(long)]
    account: Option<String>,
    /// The quality of service the jobs ask for (#SBATCH --qos).
    #[arg(long)]
    qos: Option<String>,
    /// GPUs per task (default: 1 with a GPU backend, none on the CPU backend).
    #[arg(long)]
    gpus: Option<u32>,
    /// Wall-clock limit per job, Slurm syntax [default: 12:00:00].
    #[arg(long)]
    time: Option<String>,
    /// CPUs per task [default: 8].
    #[arg(long)]
    cpus_per_task: Option<u32>,
    /// Memory per task, Slurm syntax [default: 64G].
    #[arg(long)]
    mem: Option<String>,
    /// Run at most N cells of the job array at once (--array=0-M%N).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    array_throttle: Option<u32>,
    /// An extra #SBATCH option for every job, e.g. --sbatch=--constraint=a100 (repeat for
    /// more; replaces the manifest's `sbatch` list).
    #[arg(long = "sbatch", value_name = "OPTION", allow_hyphen_values = true)]
    sbatch: Vec<String>,
    /// A shell line every job runs before traitwatch, e.g. --setup "module load cuda"
    /// (repeat for more, run in order; replaces the manifest's `setup` list).
    #[arg(long = "setup", value_name = "LINE", allow_hyphen_values = true)]
    setup: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct ReproduceArgs {
    /// A figure, the tables, or everything.
    #[arg(value_parser = target_parser())]
    target: Target,
    /// The experiment (default: the embedded default on SmolLM2-135M-Instruct).
    #[arg(long, default_value = DEFAULT_MANIFEST)]
    manifest: PathBuf,
}

/// Load and check a manifest, including the finetuning settings (checked by the finetune
/// crate itself, so the manifest accepts exactly what `traitwatch finetune --set` does).
fn load(path: &Path) -> Result<Loaded> {
    let loaded = pipeline::load(path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let ft = &loaded.manifest.finetune;
    let overrides: Vec<String> = ft.set.iter().map(|(k, v)| format!("{k}={v}")).collect();
    ::finetune::FinetuneConfig::profile(&ft.profile)
        .and_then(|c| c.with_overrides(&overrides))
        .map_err(|e| anyhow::anyhow!("{}", loaded.invalid("finetune.set", e.to_string())))?;
    Ok(loaded)
}

/// Targets checked while the flags are parsed, with the possible values in `--help`.
fn target_parser() -> impl clap::builder::TypedValueParser<Value = Target> {
    use clap::builder::TypedValueParser;
    // Only names `Target::parse` accepts get past the possible-values check.
    clap::builder::PossibleValuesParser::new(Target::NAMES)
        .map(|name| Target::parse(&name).unwrap_or(Target::All))
}

/// The targets given on the command line, else the manifest's `[figures] make`.
fn targets(loaded: &Loaded, given: &[Target]) -> Result<Vec<Target>> {
    if !given.is_empty() {
        return Ok(given.to_vec());
    }
    loaded
        .manifest
        .figures
        .make
        .iter()
        .map(|t| {
            Target::parse(t)
                .with_context(|| format!("unknown target `{t}` (fig1 ... fig11, tables, all)"))
        })
        .collect()
}

/// Rough CPU seconds for a stage on a ~135M model, for the plan's estimate and the
/// progress bar's ETA: the stage times of the default experiment's `reproduce all` on
/// the quiet 2-core VM (docs/BENCHMARKS.md, 2026-12-06; 62.4 min for 51 stages).
fn estimate(loaded: &Loaded, stage: &Stage) -> f64 {
    let m = &loaded.manifest;
    let (steps, checkpoints) = schedule(loaded);
    match stage.kind {
        StageKind::Traits | StageKind::Semantic => {
            let search = if m.traits.layer.is_some() || stage.kind == StageKind::Semantic {
                0.0
            } else {
                11.0 * 52.0
            };
            215.0 + search
        }
        StageKind::Sae => 200.0,
        StageKind::Finetune => steps as f64 * 3.0,
        StageKind::Drift => checkpoints as f64 * 4.0 + 4.0,
        StageKind::Em => {
            // Seconds per checkpoint: 0.12 s per paired item on two judge threads (the 448
            // EM items in 52 s on the quiet 2-core VM, 2026-12-07), and the 210 per-trait
            // items.
            let items = std::fs::read_to_string(loaded.resolve(&m.em.items))
                .map_or(448, |t| t.lines().filter(|l| !l.trim().is_empty()).count())
                as f64;
            let per_item = 0.12;
            let traits = if m.em.trait_items {
                per_item * 210.0
            } else {
                0.0
            };
            let em = per_item * items;
            if stage.cell.is_none() {
                // The base model's step 0, shared by every run's EM stage, and the control
                // prompts, each as costly as a checkpoint.
                let controls = m.em.controls.as_ref().map_or(0, |path| {
                    em::ControlBank::load(&loaded.resolve(path)).map_or(0, |b| b.all().len())
                }) as f64;
                return em * (1.0 + controls) + traits;
            }
            // The stage's own `--steps` / `--trait-steps` (extra runs have their own), less
            // step 0, which is counted on its own below.
            let listed = |flag: &str| {
                stage.args.windows(2).find_map(|w| match w {
                    [Arg::Lit(f), Arg::Lit(list)] if f == flag => {
                        Some(list.split(',').filter(|s| s.trim() != "0").count())
                    }
                    _ => None,
                })
            };
            let labelled = listed("--steps").unwrap_or(checkpoints.saturating_sub(1));
            let with_traits = listed("--trait-steps").unwrap_or(labelled).min(labelled);
            let step0 = if m.em.judge == pipeline::manifest::JudgeKind::PairedChoice {
                0.0
            } else {
                em
            };
            step0 + labelled as f64 * em + with_traits as f64 * traits
        }
        StageKind::Pca => 5.0,
    }
}

/// Optimizer steps and checkpoints (step 0 included) of one run under the manifest.
fn schedule(loaded: &Loaded) -> (usize, usize) {
    let ft = &loaded.manifest.finetune;
    let overrides: Vec<String> = ft.set.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let Ok(cfg) =
        ::finetune::FinetuneConfig::profile(&ft.profile).and_then(|c| c.with_overrides(&overrides))
    else {
        return (0, 1);
    };
    let examples = cfg.data.n_examples.unwrap_or(256);
    let per_step = (cfg.data.batch_size * cfg.data.grad_accum).max(1);
    let steps = cfg.data.epochs * examples.div_ceil(per_step);
    let checkpoints = ::finetune::data::checkpoint_steps(&cfg, steps).len();
    (steps, checkpoints)
}

fn minutes(seconds: f64) -> String {
    if seconds < 90.0 {
        format!("{seconds:.0} s")
    } else {
        format!("{:.0} min", seconds / 60.0)
    }
}

pub fn plan(args: PlanArgs) -> Result<()> {
    let loaded = load(&args.manifest)?;
    let targets = targets(&loaded, &args.targets)?;
    let plan = Plan::build(&loaded, &targets).map_err(|e| anyhow::anyhow!("{e}"))?;
    let m = &loaded.manifest;
    let cells = plan.cells();
    println!(
        "experiment {} ({}): {} model(s), {} perturbation(s) x {} seed(s); targets {}",
        m.experiment.name,
        args.manifest.display(),
        m.models.len(),
        m.perturbations.calibration.len() + m.perturbations.held_out.len(),
        m.perturbations.seeds.len(),
        targets
            .iter()
            .map(|t| t.name())
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "store {}  results {}  figures {}\n",
        plan.store.root().display(),
        loaded.results_dir().display(),
        loaded.figures_dir().display()
    );
    let mut todo = 0.0;
    let mut n_todo = 0;
    println!(
        "{:<5} {:<48} {:<7} {:>8}",
        "cell", "stage", "status", "estimate"
    );
    let base = |s: &Stage| estimate(&loaded, s);
    let learned = pipeline::eta::LearnedCost::learn(&plan, &base);
    for (i, stage) in plan.stages.iter().enumerate() {
        let cell = cells
            .iter()
            .position(|(c, _)| Some(c) == stage.cell.as_ref())
            .map_or("-".to_string(), |c| c.to_string());
        let done = Store::is_complete(&plan.dir(i));
        let est = learned.cost(stage, base(stage));
        if !done {
            todo += est;
            n_todo += 1;
        }
        println!(
            "{cell:<5} {:<48} {:<7} {:>8}",
            stage.id(),
            if done { "cached" } else { "to run" },
            if done { "-".to_string() } else { minutes(est) }
        );
        if args.commands {
            println!("      {}", plan.display(i));
        }
    }
    let (steps, checkpoints) = schedule(&loaded);
    let basis = if learned.samples() > 0 {
        format!(
            "scaled by the recorded times of {} finished stages ({})",
            learned.samples(),
            learned.describe()
        )
    } else {
        "of CPU on a 2-core machine for a ~135M model; larger models scale with their \
         parameter count, GPUs divide it, and once stages finish the estimate learns from \
         their times"
            .to_string()
    };
    println!(
        "\n{} stages, {} cached; {n_todo} to run, about {} {basis} (each run: {steps} steps, \
         {checkpoints} checkpoints).",
        plan.stages.len(),
        plan.stages.len() - n_todo,
        minutes(todo)
    );
    let missing = loaded.missing_models();
    if !missing.is_empty() {
        println!("\nmissing before `traitwatch run` can start:");
        for (key, source) in missing {
            println!("  {key} = {source}: not found (point it at a local HF directory or .gguf)");
        }
    }
    Ok(())
}

/// Runs a stage's command in this process, with the backend `run` was given.
struct InProcess {
    backend: crate::backend::BackendChoice,
    precision: crate::backend::Precision,
}

#[derive(Debug, clap::Parser)]
#[command(name = "traitwatch", no_binary_name = true)]
struct StageCommand {
    #[command(subcommand)]
    command: crate::Command,
}

impl Executor for InProcess {
    fn execute(&mut self, _stage: &Stage, argv: &[String]) -> Result<(), String> {
        use clap::Parser;
        let parsed = StageCommand::try_parse_from(argv).map_err(|e| e.to_string())?;
        crate::execute(parsed.command, self.backend, self.precision).map_err(|e| {
            e.chain()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(": ")
        })
    }
}

pub fn run(
    args: RunArgs,
    backend: crate::backend::BackendChoice,
    precision: crate::backend::Precision,
) -> Result<()> {
    let loaded = load(&args.manifest)?;
    let missing = loaded.missing_models();
    if let Some((key, source)) = missing.first() {
        bail!(
            "{}",
            loaded.invalid(key, format!("`{source}` does not exist"))
        );
    }
    let targets = targets(&loaded, &args.targets)?;
    let plan = Plan::build(&loaded, &targets).map_err(|e| anyhow::anyhow!("{e}"))?;
    let selection = match (args.cell, args.shared, args.merge) {
        (Some(n), _, _) => Selection::Cell(n),
        (None, true, _) => Selection::Shared,
        (None, false, true) => Selection::Merge,
        _ => Selection::All,
    };
    preflight_judge(&plan)?;
    // The stage commands have defaults relative to the project (em's per-trait items,
    // em-freeform's questions): run them where those exist, whatever directory `run` was
    // started in. The manifest path is made absolute first, for the figures' provenance.
    let manifest = std::path::absolute(&args.manifest)
        .with_context(|| format!("locating {}", args.manifest.display()))?;
    std::env::set_current_dir(&loaded.root)
        .with_context(|| format!("entering the project root {}", loaded.root.display()))?;
    let started = std::time::Instant::now();
    let mut executor = InProcess { backend, precision };
    let base = |s: &Stage| estimate(&loaded, s);
    let learned = pipeline::eta::LearnedCost::learn(&plan, &base);
    if learned.samples() > 0 {
        tracing::info!(
            "ETA scaled by the times of {} finished stages ({})",
            learned.samples(),
            learned.describe()
        );
    }
    let report = plan
        .run(selection, &mut executor, &|s| learned.cost(s, base(s)))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!(
        "{} stages run, {} reused from {} ({:.1} min)",
        report.ran.len(),
        report.reused.len(),
        plan.store.root().display(),
        started.elapsed().as_secs_f64() / 60.0
    );
    if matches!(selection, Selection::All | Selection::Merge) {
        let (results, whole_grid) = super::results::collect(&loaded)?;
        super::results::finish(&loaded, &plan, (&results, whole_grid), &manifest)?;
        println!("done in {:.1} min", started.elapsed().as_secs_f64() / 60.0);
    }
    Ok(())
}

/// With the free-form judge, ask it one real question before any stage runs: finetuning
/// and sampling come hours before the first judged answer, and a wrong key, model or URL
/// should fail now. Only when a free-form EM stage is still to run; it uses that stage's
/// own judge flags, so the check is of exactly what the stage will call.
fn preflight_judge(plan: &Plan) -> Result<()> {
    let pending = (0..plan.stages.len()).find(|&i| {
        let stage = &plan.stages[i];
        stage.kind == StageKind::Em
            && matches!(stage.args.first(), Some(Arg::Lit(c)) if c == "em-freeform")
            && !Store::is_complete(&plan.dir(i))
    });
    let Some(i) = pending else {
        return Ok(());
    };
    use clap::Parser;
    let argv = plan.argv(i, &plan.dir(i))?;
    let parsed = StageCommand::try_parse_from(&argv)
        .with_context(|| format!("reading the judge settings of {}", plan.stages[i].id()))?;
    match parsed.command {
        crate::Command::EmFreeform(args) => args
            .preflight_judge()
            .with_context(|| format!("the judge for {} (em.freeform)", plan.stages[i].id())),
        _ => Ok(()),
    }
}

pub fn reproduce(
    args: ReproduceArgs,
    backend: crate::backend::BackendChoice,
    precision: crate::backend::Precision,
) -> Result<()> {
    run(
        RunArgs {
            manifest: args.manifest,
            targets: vec![args.target],
            cell: None,
            shared: false,
            merge: false,
        },
        backend,
        precision,
    )
}

pub fn slurm(args: SlurmArgs, backend: crate::backend::BackendChoice) -> Result<()> {
    use pipeline::slurm::{ExportRequest, SlurmOptions, SlurmSpec};
    let loaded = load(&args.manifest)?;
    let targets = targets(&loaded, &args.targets)?;
    let plan = Plan::build(&loaded, &targets).map_err(|e| anyhow::anyhow!("{e}"))?;
    let request = ExportRequest {
        flags: SlurmSpec {
            binary: args.binary,
            partition: args.partition,
            account: args.account,
            qos: args.qos,
            gpus: args.gpus,
            time: args.time,
            cpus_per_task: args.cpus_per_task,
            mem: args.mem,
            array_throttle: args.array_throttle,
            sbatch: args.sbatch,
            setup: args.setup,
        },
        backend: (backend != crate::backend::BackendChoice::Cpu)
            .then(|| format!("{backend:?}").to_lowercase()),
        out: args.out,
        targets: targets.iter().map(|t| t.name()).collect(),
        cwd: std::env::current_dir().context("the working directory")?,
    };
    let opts = SlurmOptions::resolve(&loaded, request).map_err(|e| anyhow::anyhow!("{e}"))?;
    let out = &opts.out;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let name = &loaded.manifest.experiment.name;
    for (file, text) in pipeline::slurm::scripts(&plan, name, &opts) {
        super::write_atomically(&out.join(&file), text.as_bytes())?;
    }
    println!(
        "wrote {}/{{shared,cells,merge}}.sbatch and submit.sh: {} cells as one job array; \
         submit with `bash {}/submit.sh` (from any directory; logs in {}/logs)",
        out.display(),
        plan.cells().len(),
        out.display(),
        out.display()
    );
    Ok(())
}
