//! The experiment manifest: one TOML file (plus the files it includes) that says which
//! models, perturbations, seeds and settings an experiment runs, and which figures it makes.
//!
//! Loading merges `include`d files (theirs first, the including file's keys win, tables
//! merged key by key), then checks everything before any compute: unknown keys and wrong
//! types come from serde, the rest (missing files, impossible settings) from
//! [`Manifest::check`]. Every error names the key and the file and line that set it.

use crate::locate::Sources;
use crate::{PipelineError, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The perturbation dataset kinds (`traitwatch datasets list`).
pub fn known_perturbations() -> Vec<&'static str> {
    datasets::DatasetKind::ALL
        .iter()
        .map(|k| k.name())
        .collect()
}

/// Finetuning profiles of the finetune crate.
pub const KNOWN_PROFILES: &[&str] = &["paper", "organism", "rank1", "full", "cpu"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Files merged underneath this one (paths relative to the including file).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<PathBuf>,
    pub experiment: Experiment,
    pub models: Vec<ModelSpec>,
    pub perturbations: Perturbations,
    pub finetune: FinetuneSpec,
    #[serde(default)]
    pub traits: TraitsSpec,
    #[serde(default)]
    pub drift: DriftSpec,
    #[serde(default)]
    pub em: EmSpec,
    #[serde(default)]
    pub sae: SaeSpec,
    #[serde(default)]
    pub monitor: MonitorSpec,
    #[serde(default)]
    pub figures: FiguresSpec,
    /// Runs outside the split (full finetuning, long runs, an anchor): see `extra`.
    #[serde(default)]
    pub extra_runs: Vec<crate::extra::ExtraRuns>,
    /// Cluster settings for `traitwatch slurm` (its flags override them).
    #[serde(default)]
    pub slurm: crate::slurm::SlurmSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    /// Names the results and figures directories.
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// The content-addressed artifact store (shared between experiments).
    #[serde(default = "default_store")]
    pub store: PathBuf,
    /// Where the collected results go (default `results/<name>`).
    pub results: Option<PathBuf>,
    /// Where figures and tables go (default `figures/<name>`).
    pub figures: Option<PathBuf>,
}

fn default_store() -> PathBuf {
    PathBuf::from("runs")
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// The model's label in every table and figure.
    pub name: String,
    /// A preset name (`smollm2-135m`), a `.gguf` file or a Hugging Face directory.
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Perturbations {
    /// Perturbations the monitor is trained on (LOPO runs inside these).
    pub calibration: Vec<String>,
    /// Perturbation types never seen in training: the headline evaluation.
    #[serde(default)]
    pub held_out: Vec<String>,
    /// Finetuning seeds; every (model, perturbation, seed) is one cell.
    pub seeds: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinetuneSpec {
    /// A finetune profile: paper, organism, rank1, full, cpu.
    pub profile: String,
    /// Setting overrides, as `traitwatch finetune --set key=value` (e.g. `"data.n_examples" = 64`).
    #[serde(default)]
    pub set: BTreeMap<String, toml::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TraitsSpec {
    pub bank: PathBuf,
    pub questions: PathBuf,
    /// A second bank extracted at the same layer: the semantic 7-D control.
    pub semantic_bank: Option<PathBuf>,
    /// `last` (the paper), `prompt_mean`, `response_mean[:N]`.
    pub pooling: String,
    /// Fix l* (an integer) instead of searching for it.
    pub layer: Option<usize>,
    /// Candidate layers of the search, `a-b` or a comma list (default: the middle third).
    pub candidates: Option<String>,
}

impl Default for TraitsSpec {
    fn default() -> Self {
        Self {
            bank: "data/traits/alignment.toml".into(),
            questions: "data/traits/extraction_questions.toml".into(),
            semantic_bank: None,
            pooling: "last".into(),
            layer: None,
            candidates: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DriftSpec {
    pub prompts: PathBuf,
    /// Seeded random 7-D control bases.
    pub random_bases: usize,
    pub basis_seed: u64,
}

impl Default for DriftSpec {
    fn default() -> Self {
        Self {
            prompts: "data/traits/measurement_prompts.toml".into(),
            random_bases: 10,
            basis_seed: 0,
        }
    }
}

/// Which behavioural evaluation labels the checkpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum JudgeKind {
    /// The offline paired-choice judge (`traitwatch em`): the proxy EM rate.
    PairedChoice,
    /// The paper's free-form protocol over an HTTP judge (`traitwatch em-freeform`).
    Freeform,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmSpec {
    pub judge: JudgeKind,
    /// Alarm threshold on the free-form EM rate (and on the proxy increase).
    pub tau: f64,
    /// Alarm threshold on the paired-choice label (`monitor.label = "logodds"`), as a
    /// fraction of the base model's positive-control shift.
    pub logodds_tau: f64,
    /// The control prompts that scale the paired-choice label (`traitwatch em --controls`).
    pub controls: Option<PathBuf>,
    /// Paired-choice items; per-trait items are skipped when `trait_items` is false.
    pub items: PathBuf,
    pub trait_items: bool,
    /// Label only these checkpoints (step 0, the reference, always); empty: every one.
    pub steps: Vec<u64>,
    /// Score the per-trait items only at these of the labelled checkpoints (step 0
    /// always); empty: at every labelled one.
    pub trait_steps: Vec<u64>,
    /// The free-form judge endpoint (`[em.freeform]`: base_url, model, ...), when `judge = "freeform"`.
    pub freeform: Option<toml::Table>,
}

impl Default for EmSpec {
    fn default() -> Self {
        Self {
            judge: JudgeKind::PairedChoice,
            tau: 0.05,
            logodds_tau: 0.25,
            controls: None,
            items: "data/em/items.jsonl".into(),
            trait_items: false,
            steps: Vec::new(),
            trait_steps: Vec::new(),
            freeform: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SaeSpec {
    /// Train the SAE baseline and add its feature set to the drift tables.
    pub enabled: bool,
    pub latents: usize,
    pub l1: f64,
    pub steps: usize,
    pub top_k: Option<usize>,
}

impl Default for SaeSpec {
    fn default() -> Self {
        Self {
            enabled: false,
            latents: 256,
            l1: 1.0,
            steps: 2000,
            top_k: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MonitorSpec {
    /// `logodds` (paired-choice log-odds shift, fraction of the control; needs
    /// `em.controls`), `proxy` (paired-choice rate increase over step 0) or `em-rate`
    /// (free-form judge).
    pub label: String,
    pub bootstrap: usize,
    pub seed: u64,
    /// A benign perturbation whose runs anchor the step-aware alarm.
    pub anchor: Option<String>,
}

impl Default for MonitorSpec {
    fn default() -> Self {
        Self {
            label: "proxy".into(),
            bootstrap: 1000,
            seed: 42,
            anchor: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FiguresSpec {
    /// Targets `traitwatch run` makes: fig1 ... fig11, tables.
    pub make: Vec<String>,
}

impl Default for FiguresSpec {
    fn default() -> Self {
        Self {
            make: vec!["fig1".into()],
        }
    }
}

/// A manifest with where it came from, for error messages and relative paths.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub manifest: Manifest,
    /// The manifest file given by the user.
    pub path: PathBuf,
    /// Its sources, the user's file last, with their texts (for locating keys).
    pub sources: Sources,
    /// The project root the manifest's relative paths resolve against (`home`).
    pub root: PathBuf,
}

impl Loaded {
    /// An error about `key` (a dotted path), located at the file and line that set it.
    pub fn invalid(&self, key: &str, message: impl Into<String>) -> PipelineError {
        PipelineError::Invalid {
            key: key.to_string(),
            at: self.sources.locate(key),
            message: message.into(),
        }
    }
}

/// Read a manifest and everything it includes, and check it (no compute). Relative paths
/// resolve against the project root ([`crate::home::find_root`]: `$TRAITWATCH_HOME`, else
/// found from the manifest or the current directory).
pub fn load(path: &Path) -> Result<Loaded> {
    let home = std::env::var_os(crate::home::HOME_ENV);
    let cwd = std::env::current_dir().ok();
    let root = crate::home::find_root(path, home.as_deref(), cwd.as_deref())?;
    load_in(path, root)
}

/// [`load`] with the project root given.
pub fn load_in(path: &Path, root: PathBuf) -> Result<Loaded> {
    let mut sources = Sources::default();
    let merged = read_merged(path, &mut sources, &mut Vec::new())?;
    // Unknown keys and wrong types: serde names the key; we add where it was set.
    let manifest: Manifest =
        serde_path_to_error::deserialize(toml::Value::Table(merged)).map_err(|e| {
            // toml appends "in `table`"; the key path below says it better.
            let inner = e.inner().to_string();
            let message = inner.lines().next().unwrap_or_default().trim().to_string();
            let mut key = crate::locate::dotted(&e.path().to_string());
            if let Some(field) = unknown_field(&message)
                && !key.ends_with(field)
            {
                key = if key.is_empty() || key == "." {
                    field.to_string()
                } else {
                    format!("{key}.{field}")
                };
            }
            PipelineError::Invalid {
                at: sources.locate(&key),
                key,
                message,
            }
        })?;
    let loaded = Loaded {
        manifest,
        path: path.to_path_buf(),
        sources,
        root,
    };
    loaded.check()?;
    Ok(loaded)
}

/// The field an "unknown field `x`, expected ..." message names.
fn unknown_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split('`').next()
}

/// The manifest at `path` with its includes merged underneath it.
fn read_merged(
    path: &Path,
    sources: &mut Sources,
    stack: &mut Vec<PathBuf>,
) -> Result<toml::Table> {
    let canonical = path.canonicalize().map_err(|e| PipelineError::Manifest {
        path: path.to_path_buf(),
        message: format!("cannot read: {e}"),
    })?;
    if stack.contains(&canonical) {
        return Err(PipelineError::Manifest {
            path: path.to_path_buf(),
            message: "includes itself (an include cycle)".into(),
        });
    }
    let text = std::fs::read_to_string(path).map_err(|e| PipelineError::Manifest {
        path: path.to_path_buf(),
        message: format!("cannot read: {e}"),
    })?;
    let mut table: toml::Table = toml::from_str(&text).map_err(|e| PipelineError::Manifest {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    stack.push(canonical);
    let includes = match table.remove("include") {
        None => Vec::new(),
        Some(toml::Value::Array(items)) => items
            .into_iter()
            .map(|v| match v {
                toml::Value::String(s) => Ok(s),
                other => Err(PipelineError::Manifest {
                    path: path.to_path_buf(),
                    message: format!("`include` entries are file paths, found {other}"),
                }),
            })
            .collect::<Result<Vec<_>>>()?,
        Some(other) => {
            return Err(PipelineError::Manifest {
                path: path.to_path_buf(),
                message: format!("`include` is a list of file paths, found {other}"),
            });
        }
    };
    let base = path.parent().unwrap_or(Path::new("."));
    let mut merged = toml::Table::new();
    for include in includes {
        let inc = read_merged(&base.join(&include), sources, stack)?;
        merge(&mut merged, inc);
    }
    merge(&mut merged, table);
    stack.pop();
    sources.push(path.to_path_buf(), text);
    Ok(merged)
}

/// Merge `over` into `base`: tables key by key, anything else replaced.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

impl Loaded {
    /// Checks that need more than types: names, files, ranges. Paths are relative to the
    /// project root (`home`).
    fn check(&self) -> Result<()> {
        let m = &self.manifest;
        if m.experiment.name.is_empty() || m.experiment.name.contains(['/', '\\']) {
            return Err(self.invalid(
                "experiment.name",
                "must be a non-empty name without slashes",
            ));
        }
        if m.models.is_empty() {
            return Err(self.invalid("models", "name at least one model ([[models]])"));
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, model) in m.models.iter().enumerate() {
            if !names.insert(&model.name) {
                return Err(self.invalid(
                    &format!("models.{i}.name"),
                    format!("model name `{}` is used twice", model.name),
                ));
            }
        }
        let p = &m.perturbations;
        if p.calibration.is_empty() {
            return Err(self.invalid(
                "perturbations.calibration",
                "name at least one calibration perturbation",
            ));
        }
        for (field, list) in [("calibration", &p.calibration), ("held_out", &p.held_out)] {
            for name in list {
                let is_file = name.ends_with(".jsonl");
                if !is_file && !known_perturbations().contains(&name.as_str()) {
                    return Err(self.invalid(
                        &format!("perturbations.{field}"),
                        format!(
                            "unknown perturbation `{name}` (known: {}; or a .jsonl chat file)",
                            known_perturbations().join(", ")
                        ),
                    ));
                }
            }
        }
        if let Some(both) = p.calibration.iter().find(|c| p.held_out.contains(c)) {
            return Err(self.invalid(
                "perturbations.held_out",
                format!("`{both}` is both calibration and held out: the evaluation would leak"),
            ));
        }
        if p.seeds.is_empty() {
            return Err(self.invalid("perturbations.seeds", "name at least one seed"));
        }
        if !KNOWN_PROFILES.contains(&m.finetune.profile.as_str()) {
            return Err(self.invalid(
                "finetune.profile",
                format!(
                    "unknown profile `{}` (profiles: {})",
                    m.finetune.profile,
                    KNOWN_PROFILES.join(", ")
                ),
            ));
        }
        if m.finetune.set.contains_key("seed") {
            return Err(self.invalid(
                "finetune.set",
                "the seed comes from perturbations.seeds; do not set it here",
            ));
        }
        self.check_files()?;
        if m.em.trait_items && m.em.judge == JudgeKind::PairedChoice {
            // The EM stages hash these files; a missing directory must not silently drop
            // them from the stage identity (and `traitwatch em` would fail later anyway).
            let dir = self.resolve(Path::new(crate::em_stage::TRAIT_ITEMS));
            if crate::em_stage::trait_item_files(&self.root).is_empty() {
                return Err(self.invalid(
                    "em.trait_items",
                    format!(
                        "the per-trait items are read from {} (under the project root), \
                         which has no .jsonl files",
                        dir.display()
                    ),
                ));
            }
        }
        if !(0.0..1.0).contains(&m.em.tau) {
            return Err(self.invalid("em.tau", "the EM threshold is a rate in [0, 1)"));
        }
        if !m.em.trait_steps.is_empty() {
            if !m.em.trait_items {
                return Err(self.invalid(
                    "em.trait_steps",
                    "says where to score the per-trait items, but `em.trait_items` is false",
                ));
            }
            if let Some(step) =
                m.em.trait_steps
                    .iter()
                    .find(|s| !m.em.steps.is_empty() && **s != 0 && !m.em.steps.contains(s))
            {
                return Err(self.invalid(
                    "em.trait_steps",
                    format!("step {step} is not one of the labelled checkpoints (`em.steps`)"),
                ));
            }
        }
        if m.em.judge == JudgeKind::Freeform {
            let Some(table) = &m.em.freeform else {
                return Err(self.invalid(
                    "em.judge",
                    "the free-form judge needs an [em.freeform] table with base_url and model",
                ));
            };
            for key in ["base_url", "model"] {
                if !table.contains_key(key) {
                    return Err(self.invalid("em.freeform", format!("`{key}` is missing")));
                }
            }
        }
        if !["logodds", "proxy", "em-rate"].contains(&m.monitor.label.as_str()) {
            return Err(self.invalid(
                "monitor.label",
                format!(
                    "`{}`: expected `logodds`, `proxy` or `em-rate`",
                    m.monitor.label
                ),
            ));
        }
        if m.monitor.label == "logodds" && m.em.controls.is_none() {
            return Err(self.invalid(
                "monitor.label",
                "`logodds` is a fraction of the control shift: set `em.controls` (the control \
                 prompts, data/em/controls.toml)",
            ));
        }
        if !(m.em.logodds_tau > 0.0 && m.em.logodds_tau < 1.0) {
            return Err(self.invalid(
                "em.logodds_tau",
                "a fraction of the control shift in (0, 1)",
            ));
        }
        self.check_extra_runs()?;
        self.manifest
            .slurm
            .check()
            .map_err(|(key, message)| self.invalid(&format!("slurm.{key}"), message))?;
        if let Some(anchor) = &m.monitor.anchor
            && !self.run_labels().contains(anchor)
        {
            return Err(self.invalid(
                "monitor.anchor",
                format!("`{anchor}` is not one of the experiment's perturbations"),
            ));
        }
        if m.sae.enabled && m.sae.latents == 0 {
            return Err(self.invalid("sae.latents", "must be at least 1"));
        }
        for target in &m.figures.make {
            if crate::Target::parse(target).is_none() {
                return Err(self.invalid(
                    "figures.make",
                    format!("unknown target `{target}` (fig1 ... fig11, tables, all)"),
                ));
            }
        }
        Ok(())
    }
}
