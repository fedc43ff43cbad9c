//! Export a plan to Slurm: three sbatch scripts and a submit script that chains them.
//! traitwatch does not schedule across machines; the cluster's scheduler does.
//!
//! 1. `shared.sbatch`: per-model stages the cells share (trait directions, SAE);
//! 2. `cells.sbatch`: a job array, one task per cell (finetune, drift, EM), after 1;
//! 3. `merge.sbatch`: the PCA, results, monitor and figures, after every task of 2.
//!
//! All write into the manifest's artifact store, which must be on a shared file system;
//! the store's locks and atomic renames keep concurrent tasks from corrupting it.

use crate::plan::Plan;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct SlurmOptions {
    pub manifest: PathBuf,
    /// The traitwatch binary as the compute nodes see it.
    pub binary: String,
    /// `--backend` for the stage commands (e.g. `cuda`).
    pub backend: Option<String>,
    pub partition: Option<String>,
    /// GPUs per task (0: none requested).
    pub gpus: u32,
    /// Wall-clock limit per task, Slurm syntax (`HH:MM:SS`).
    pub time: String,
    pub cpus_per_task: u32,
    pub mem: String,
    /// The working directory (the checkout) on the compute nodes.
    pub workdir: PathBuf,
    /// The targets the merge job makes (`fig1`, `tables`, `all`, ...).
    pub targets: Vec<String>,
}

/// The scripts to write, by file name.
pub fn scripts(plan: &Plan, name: &str, opts: &SlurmOptions) -> Vec<(String, String)> {
    let n_cells = plan.cells().len();
    let backend = opts
        .backend
        .as_ref()
        .map(|b| format!(" --backend {b}"))
        .unwrap_or_default();
    let run = format!(
        "{}{backend} run {}",
        opts.binary,
        shell_word(&opts.manifest)
    );
    let job = |suffix: &str, extra: &str, body: &str, gpus: u32| -> String {
        let mut s = String::from("#!/bin/bash\n");
        s.push_str(&format!("#SBATCH --job-name=tw-{name}-{suffix}\n"));
        s.push_str("#SBATCH --output=slurm/logs/%x-%A_%a.out\n");
        s.push_str(&format!("#SBATCH --time={}\n", opts.time));
        s.push_str(&format!("#SBATCH --cpus-per-task={}\n", opts.cpus_per_task));
        s.push_str(&format!("#SBATCH --mem={}\n", opts.mem));
        if let Some(p) = &opts.partition {
            s.push_str(&format!("#SBATCH --partition={p}\n"));
        }
        if gpus > 0 {
            s.push_str(&format!("#SBATCH --gres=gpu:{gpus}\n"));
        }
        s.push_str(extra);
        s.push_str("set -euo pipefail\n");
        s.push_str(&format!("cd {}\n", shell_word(&opts.workdir)));
        s.push_str(body);
        s
    };
    let shared = job("shared", "", &format!("{run} --shared\n"), opts.gpus);
    let cells = job(
        "cells",
        &format!("#SBATCH --array=0-{}\n", n_cells.saturating_sub(1)),
        &format!("{run} --cell \"$SLURM_ARRAY_TASK_ID\"\n"),
        opts.gpus,
    );
    let targets = if opts.targets.is_empty() {
        String::new()
    } else {
        format!(" --targets {}", opts.targets.join(","))
    };
    let merge = job("merge", "", &format!("{run} --merge{targets}\n"), 0);
    let submit = format!(
        "#!/bin/bash\n# Submit {name}: {n_cells} cells. Run from the checkout: bash slurm/{name}/submit.sh\n\
         set -euo pipefail\n\
         mkdir -p slurm/logs\n\
         dir=$(dirname \"$0\")\n\
         shared=$(sbatch --parsable \"$dir/shared.sbatch\")\n\
         cells=$(sbatch --parsable --dependency=afterok:\"$shared\" \"$dir/cells.sbatch\")\n\
         merge=$(sbatch --parsable --dependency=afterok:\"$cells\" \"$dir/merge.sbatch\")\n\
         echo \"submitted: shared $shared, cells $cells (array of {n_cells}), merge $merge\"\n"
    );
    vec![
        ("shared.sbatch".into(), shared),
        ("cells.sbatch".into(), cells),
        ("merge.sbatch".into(), merge),
        ("submit.sh".into(), submit),
    ]
}

/// A path as one shell word.
fn shell_word(path: &Path) -> String {
    let s = path.display().to_string();
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+".contains(c))
    {
        s
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}
