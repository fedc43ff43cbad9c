//! Running a plan: every stage whose artifact is missing, in order, each in its partial
//! directory under a lock, sealed when its command succeeds. One bar follows the whole
//! plan (weighted by the stages' estimated cost, with an ETA); the stage commands draw
//! their own bars beneath it.

use crate::plan::{Plan, Stage};
use crate::store::Store;
use crate::{PipelineError, Result};
use std::time::Instant;

/// Executes one stage's command line (the words after `traitwatch`, ending in `--out DIR`).
pub trait Executor {
    fn execute(&mut self, stage: &Stage, argv: &[String]) -> std::result::Result<(), String>;
}

/// Which stages to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selection {
    /// Everything the targets need.
    All,
    /// Per-model stages that cells share (trait directions, SAE): a Slurm job before the array.
    Shared,
    /// One cell's stages (finetune, drift, em), by its index in [`Plan::cells`]; shared
    /// inputs must already exist.
    Cell(usize),
    /// Stages that combine cells (the per-model PCA): the Slurm job after the array.
    Merge,
}

#[derive(Debug, Default)]
pub struct Report {
    pub ran: Vec<usize>,
    pub reused: Vec<usize>,
}

impl Plan {
    /// The stages a selection covers, in order.
    pub fn select(&self, selection: Selection) -> Result<Vec<usize>> {
        let cells = self.cells();
        Ok(match selection {
            Selection::All => (0..self.stages.len()).collect(),
            Selection::Shared => (0..self.stages.len())
                .filter(|&i| self.stages[i].cell.is_none() && !self.combines_cells(i))
                .collect(),
            Selection::Merge => (0..self.stages.len())
                .filter(|&i| self.combines_cells(i))
                .collect(),
            Selection::Cell(n) => {
                let Some((_, stages)) = cells.get(n) else {
                    return Err(PipelineError::Other(format!(
                        "cell {n} does not exist: the plan has cells 0..{}",
                        cells.len()
                    )));
                };
                stages.clone()
            }
        })
    }

    /// A stage without a cell that reads cells' artifacts (the PCA).
    fn combines_cells(&self, i: usize) -> bool {
        self.stages[i].cell.is_none()
            && self.stages[i]
                .inputs
                .iter()
                .any(|&j| self.stages[j].cell.is_some())
    }

    /// Run the selected stages whose artifacts are missing. `cost` weighs a stage for the
    /// progress bar's ETA (e.g. estimated seconds).
    pub fn run(
        &self,
        selection: Selection,
        executor: &mut dyn Executor,
        cost: &dyn Fn(&Stage) -> f64,
    ) -> Result<Report> {
        let chosen = self.select(selection)?;
        let mut report = Report::default();
        let todo: Vec<usize> = chosen
            .iter()
            .copied()
            .filter(|&i| {
                let done = Store::is_complete(&self.dir(i));
                if done {
                    report.reused.push(i);
                }
                !done
            })
            .collect();
        // Inputs outside the selection must exist already (a Slurm task never computes
        // another task's artifact).
        for &i in &todo {
            for &j in &self.stages[i].inputs {
                if !chosen.contains(&j) && !Store::is_complete(&self.dir(j)) {
                    return Err(PipelineError::Other(format!(
                        "{} needs {}, which is not computed yet (run the shared stages first)",
                        self.stages[i].id(),
                        self.stages[j].id()
                    )));
                }
            }
        }
        let weight = |i: usize| (cost(&self.stages[i]).max(1.0) * 10.0) as u64;
        let total: u64 = todo.iter().map(|&i| weight(i)).sum();
        // In the process's set of bars: each stage draws its own below this one.
        let bar = progress::bar(
            total,
            "{prefix:>10} [{bar:30}] {percent:>3}% [{elapsed} < {eta}] {msg}",
        )
        .with_prefix("plan");
        tracing::info!(
            "{} stages to run, {} already in {}",
            todo.len(),
            report.reused.len(),
            self.store.root().display()
        );
        for (k, &i) in todo.iter().enumerate() {
            let stage = &self.stages[i];
            bar.set_message(format!("{}/{} {}", k + 1, todo.len(), stage.id()));
            let dir = self.dir(i);
            let work = Store::begin(&dir)?;
            let argv = self.argv(i, work.dir())?;
            let started = Instant::now();
            tracing::info!("running {}", stage.id());
            executor
                .execute(stage, &argv)
                .map_err(|message| PipelineError::Stage {
                    stage: stage.id(),
                    message: format!(
                        "{message}\n(what it wrote is kept in {}; re-running resumes there)",
                        work.dir().display()
                    ),
                })?;
            let inputs: Vec<serde_json::Value> = stage
                .inputs
                .iter()
                .map(|&j| serde_json::json!({"stage": self.stages[j].id(), "hash": self.stages[j].hash}))
                .collect();
            let shown: Vec<String> = argv
                .iter()
                .map(|a| {
                    if a == &work.dir().display().to_string() {
                        "<out>".to_string()
                    } else {
                        a.clone()
                    }
                })
                .collect();
            let meta = serde_json::json!({
                "stage": stage.kind.name(),
                "id": stage.id(),
                "hash": stage.hash,
                "command": shown,
                "inputs": inputs,
                "seconds": started.elapsed().as_secs_f64(),
                "finished_unix": std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs()),
            });
            work.commit(&meta)?;
            report.ran.push(i);
            bar.inc(weight(i));
        }
        bar.finish_and_clear();
        Ok(report)
    }
}
