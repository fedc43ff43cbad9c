//! Export a plan to Slurm: three sbatch scripts and a submit script that chains them.
//! traitwatch does not schedule across machines; the cluster's scheduler does.
//!
//! 1. `shared.sbatch`: per-model stages the cells share (trait directions, SAE);
//! 2. `cells.sbatch`: a job array, one task per cell (finetune, drift, EM), after 1;
//! 3. `merge.sbatch`: the PCA, results, monitor and figures, after every task of 2.
//!
//! All write into the manifest's artifact store, which must be on a shared file system;
//! the store's locks and atomic renames keep concurrent tasks from corrupting it.
//!
//! Every path in the scripts is absolute and the jobs start in the project root
//! (`--chdir`), so `submit.sh` works from any directory and a job's log lands in the same
//! place whoever submitted it. Cluster settings come from the manifest's `[slurm]` table
//! ([`SlurmSpec`]), overridden by `traitwatch slurm` flags (the same struct).

use crate::manifest::Loaded;
use crate::plan::Plan;
use crate::{PipelineError, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The binary the jobs run unless told otherwise (relative to the project root).
const DEFAULT_BINARY: &str = "target/release/traitwatch";

/// `[slurm]` in a manifest. `traitwatch slurm` fills the same struct from its flags and
/// [`SlurmSpec::overridden_by`] puts them on top: a flag's value wins, and a list given by
/// flags replaces the manifest's list.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlurmSpec {
    /// The traitwatch binary as the compute nodes see it (default
    /// `target/release/traitwatch` under the project root).
    pub binary: Option<String>,
    pub partition: Option<String>,
    /// `--account`: whom the cluster bills.
    pub account: Option<String>,
    /// `--qos`: the quality of service the jobs ask for.
    pub qos: Option<String>,
    /// GPUs per task (default: 1 with a GPU backend, none on the CPU backend).
    pub gpus: Option<u32>,
    /// Wall-clock limit per task, Slurm syntax (default `12:00:00`).
    pub time: Option<String>,
    /// Default 8.
    pub cpus_per_task: Option<u32>,
    /// Default `64G`.
    pub mem: Option<String>,
    /// At most this many cells run at once (`--array=0-N%K`).
    pub array_throttle: Option<u32>,
    /// Extra `#SBATCH` options for every job, one per entry (`--constraint=a100`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sbatch: Vec<String>,
    /// Shell lines every job runs before traitwatch (`module load cuda`, `source venv/bin/activate`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub setup: Vec<String>,
}

/// Options the jobs' scripts set themselves; an extra `#SBATCH` line must not fight them.
const OWNED: &[(&str, &str)] = &[
    ("--job-name", "-J"),
    ("--output", "-o"),
    ("--chdir", "-D"),
    ("--array", "-a"),
    ("--dependency", "-d"),
];

impl SlurmSpec {
    /// This spec with `over`'s settings on top.
    pub fn overridden_by(&self, over: &SlurmSpec) -> SlurmSpec {
        let pick = |o: &Option<String>, s: &Option<String>| o.clone().or_else(|| s.clone());
        let list = |o: &Vec<String>, s: &Vec<String>| {
            if o.is_empty() { s.clone() } else { o.clone() }
        };
        SlurmSpec {
            binary: pick(&over.binary, &self.binary),
            partition: pick(&over.partition, &self.partition),
            account: pick(&over.account, &self.account),
            qos: pick(&over.qos, &self.qos),
            gpus: over.gpus.or(self.gpus),
            time: pick(&over.time, &self.time),
            cpus_per_task: over.cpus_per_task.or(self.cpus_per_task),
            mem: pick(&over.mem, &self.mem),
            array_throttle: over.array_throttle.or(self.array_throttle),
            sbatch: list(&over.sbatch, &self.sbatch),
            setup: list(&over.setup, &self.setup),
        }
    }

    /// The first bad setting, as (key, message); the caller says where it was set.
    pub fn check(&self) -> Result<(), (String, String)> {
        let bad = |key: &str, message: String| Err((key.to_string(), message));
        let words = [
            ("binary", &self.binary),
            ("partition", &self.partition),
            ("account", &self.account),
            ("qos", &self.qos),
            ("time", &self.time),
            ("mem", &self.mem),
        ];
        for (key, value) in words {
            if let Some(v) = value
                && (v.trim().is_empty() || v.contains(['\n', '\r']))
            {
                return bad(key, format!("`{v}`: must be one non-empty line"));
            }
        }
        for (key, value) in [("time", &self.time), ("mem", &self.mem)] {
            if let Some(v) = value
                && v.contains(char::is_whitespace)
            {
                return bad(key, format!("`{v}`: Slurm syntax has no spaces"));
            }
        }
        if self.array_throttle == Some(0) {
            return bad(
                "array_throttle",
                "must be at least 1 (cells that may run at once)".into(),
            );
        }
        if self.cpus_per_task == Some(0) {
            return bad("cpus_per_task", "must be at least 1".into());
        }
        for (i, line) in self.sbatch.iter().enumerate() {
            sbatch_option(line).map_err(|m| (format!("sbatch.{i}"), m))?;
        }
        for (i, line) in self.setup.iter().enumerate() {
            if line.trim().is_empty() || line.contains(['\n', '\r']) {
                return bad(
                    &format!("setup.{i}"),
                    format!("{line:?}: one non-empty shell line per entry"),
                );
            }
        }
        Ok(())
    }
}

/// An extra `#SBATCH` line as its option (`--constraint=a100`), with or without the
/// `#SBATCH` prefix; options the scripts own are refused.
fn sbatch_option(line: &str) -> Result<String, String> {
    let option = line.trim();
    let option = option.strip_prefix("#SBATCH").unwrap_or(option).trim();
    if !option.starts_with('-') || line.contains(['\n', '\r']) {
        return Err(format!(
            "{line:?}: one sbatch option per entry, such as `--constraint=a100`"
        ));
    }
    let name = option.split(['=', ' ', '\t']).next().unwrap_or_default();
    if let Some((long, _)) = OWNED.iter().find(|(l, s)| name == *l || name == *s) {
        return Err(format!(
            "`{option}`: the generated scripts set {long} themselves"
        ));
    }
    Ok(option.to_string())
}

/// What `traitwatch slurm` was asked for on its command line.
#[derive(Debug, Clone, Default)]
pub struct ExportRequest {
    /// Settings given as flags (on top of the manifest's `[slurm]`).
    pub flags: SlurmSpec,
    /// `--backend` for the stage commands (e.g. `cuda`); None: the CPU backend.
    pub backend: Option<String>,
    /// Where the scripts go (default `<root>/slurm/<experiment>`).
    pub out: Option<PathBuf>,
    /// The targets the merge job makes (`fig1`, `tables`, `all`, ...).
    pub targets: Vec<String>,
    /// The directory relative flag paths (`--out`, `--binary`) are relative to.
    pub cwd: PathBuf,
}

/// Everything the scripts say, resolved: paths absolute, defaults filled in.
#[derive(Debug, Clone)]
pub struct SlurmOptions {
    pub manifest: PathBuf,
    /// The project root: the jobs' working directory and their `TRAITWATCH_HOME`.
    pub root: PathBuf,
    /// The artifact store (named in the scripts; it must be on a shared file system).
    pub store: PathBuf,
    /// Where the scripts are written; the jobs' logs go to `logs/` inside it.
    pub out: PathBuf,
    /// The traitwatch binary as the compute nodes see it.
    pub binary: String,
    pub backend: Option<String>,
    pub partition: Option<String>,
    pub account: Option<String>,
    pub qos: Option<String>,
    /// GPUs per task (0: none requested).
    pub gpus: u32,
    pub time: String,
    pub cpus_per_task: u32,
    pub mem: String,
    pub array_throttle: Option<u32>,
    /// Extra `#SBATCH` options.
    pub sbatch: Vec<String>,
    /// Shell lines run before traitwatch.
    pub setup: Vec<String>,
    pub targets: Vec<String>,
}

impl SlurmOptions {
    /// The manifest's `[slurm]` with the request's flags on top, checked and resolved.
    pub fn resolve(loaded: &Loaded, request: ExportRequest) -> Result<SlurmOptions> {
        request.flags.check().map_err(|(key, message)| {
            // `sbatch.1` is the second --sbatch flag: the message quotes its value.
            let flag = key.split('.').next().unwrap_or_default().replace('_', "-");
            PipelineError::Other(format!("--{flag}: {message}"))
        })?;
        let spec = loaded.manifest.slurm.overridden_by(&request.flags);
        let from_cwd = |p: &Path| crate::home::resolve(&request.cwd, p);
        // A flag's path is relative to where the command ran; the manifest's (and the
        // default) to the project root. A bare name is a command on the nodes' PATH.
        let binary = match (&request.flags.binary, &spec.binary) {
            (Some(b), _) if b.contains('/') => from_cwd(Path::new(b)).display().to_string(),
            (None, b) => {
                let b = b.as_deref().unwrap_or(DEFAULT_BINARY);
                if b.contains('/') {
                    loaded.resolve(Path::new(b)).display().to_string()
                } else {
                    b.to_string()
                }
            }
            (Some(b), _) => b.clone(),
        };
        let name = &loaded.manifest.experiment.name;
        let out = match &request.out {
            Some(out) => from_cwd(out),
            None => loaded.root.join("slurm").join(name),
        };
        let manifest = std::path::absolute(&loaded.path).map_err(crate::io(&loaded.path))?;
        let gpu = request.backend.is_some();
        Ok(SlurmOptions {
            manifest,
            root: loaded.root.clone(),
            store: loaded.store_dir(),
            out,
            binary,
            backend: request.backend,
            partition: spec.partition,
            account: spec.account,
            qos: spec.qos,
            gpus: spec.gpus.unwrap_or(u32::from(gpu)),
            time: spec.time.unwrap_or_else(|| "12:00:00".into()),
            cpus_per_task: spec.cpus_per_task.unwrap_or(8),
            mem: spec.mem.unwrap_or_else(|| "64G".into()),
            array_throttle: spec.array_throttle,
            sbatch: spec
                .sbatch
                .iter()
                .map(|l| sbatch_option(l).map_err(PipelineError::Other))
                .collect::<Result<_>>()?,
            setup: spec.setup,
            targets: request.targets,
        })
    }

    fn logs(&self) -> PathBuf {
        self.out.join("logs")
    }
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
        shell_word(Path::new(&opts.binary)),
        shell_word(&opts.manifest)
    );
    let array = match opts.array_throttle {
        Some(k) => format!("#SBATCH --array=0-{}%{k}\n", n_cells.saturating_sub(1)),
        None => format!("#SBATCH --array=0-{}\n", n_cells.saturating_sub(1)),
    };
    let shared = job(name, "shared", opts, "", &format!("{run} --shared\n"));
    let cells = job(
        name,
        "cells",
        opts,
        &array,
        &format!("{run} --cell \"$SLURM_ARRAY_TASK_ID\"\n"),
    );
    let targets = if opts.targets.is_empty() {
        String::new()
    } else {
        format!(" --targets {}", opts.targets.join(","))
    };
    let merge = job(
        name,
        "merge",
        opts,
        "",
        &format!("{run} --merge{targets}\n"),
    );
    let out = |file: &str| shell_word(&opts.out.join(file));
    let submit = format!(
        "#!/bin/bash\n# Submit {name}: {n_cells} cells. Every path is absolute: run it from any directory.\n\
         set -euo pipefail\n\
         mkdir -p {logs}\n\
         shared=$(sbatch --parsable {shared})\n\
         cells=$(sbatch --parsable --dependency=afterok:\"$shared\" {cells})\n\
         merge=$(sbatch --parsable --dependency=afterok:\"$cells\" {merge})\n\
         echo \"submitted: shared $shared, cells $cells (array of {n_cells}), merge $merge\"\n\
         echo \"logs: {logs_shown}\"\n",
        logs = shell_word(&opts.logs()),
        logs_shown = opts.logs().display(),
        shared = out("shared.sbatch"),
        cells = out("cells.sbatch"),
        merge = out("merge.sbatch"),
    );
    vec![
        ("shared.sbatch".into(), shared),
        ("cells.sbatch".into(), cells),
        ("merge.sbatch".into(), merge),
        ("submit.sh".into(), submit),
    ]
}

/// One job's script: its `#SBATCH` header, the setup lines, then `body`.
fn job(name: &str, suffix: &str, opts: &SlurmOptions, array: &str, body: &str) -> String {
    let mut s = String::from("#!/bin/bash\n");
    let mut option = |o: String| s.push_str(&format!("#SBATCH {o}\n"));
    option(format!("--job-name=tw-{name}-{suffix}"));
    option(format!("--chdir={}", sbatch_word(&opts.root)));
    // An array task's log is named by the array job and its index; the others by job id.
    let log = if array.is_empty() {
        "%x-%j.out"
    } else {
        "%x-%A_%a.out"
    };
    option(format!("--output={}", sbatch_word(&opts.logs().join(log))));
    option(format!("--time={}", opts.time));
    option(format!("--cpus-per-task={}", opts.cpus_per_task));
    option(format!("--mem={}", opts.mem));
    for (flag, value) in [
        ("partition", &opts.partition),
        ("account", &opts.account),
        ("qos", &opts.qos),
    ] {
        if let Some(v) = value {
            option(format!("--{flag}={v}"));
        }
    }
    // The merge job only reads and draws; it never needs a GPU.
    if opts.gpus > 0 && suffix != "merge" {
        option(format!("--gres=gpu:{}", opts.gpus));
    }
    for extra in &opts.sbatch {
        option(extra.clone());
    }
    s.push_str(array);
    s.push_str(&format!(
        "# The artifact store (on a file system every node sees): {}\n",
        opts.store.display()
    ));
    // `-u` only after the setup lines: `module load` and venv activation scripts read
    // variables that may be unset, which is not an error of ours.
    s.push_str("set -eo pipefail\n");
    if !opts.setup.is_empty() {
        s.push_str("# setup ([slurm] setup / --setup)\n");
        for line in &opts.setup {
            s.push_str(line);
            s.push('\n');
        }
    }
    s.push_str("set -u\n");
    s.push_str(&format!(
        "export {}={}\n",
        crate::home::HOME_ENV,
        shell_word(&opts.root)
    ));
    s.push_str(body);
    s
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

/// A path as one word of an `#SBATCH` line (sbatch splits those at spaces, honouring
/// double quotes).
fn sbatch_word(path: &Path) -> String {
    let s = path.display().to_string();
    if s.contains(char::is_whitespace) {
        format!("\"{s}\"")
    } else {
        s
    }
}

#[cfg(test)]
#[path = "slurm_tests.rs"]
mod tests;
