//! The plan: which stages a manifest's targets need, each as a `traitwatch` command with
//! its inputs, its content hash and its artifact directory.
//!
//! A stage's hash covers its kind, the format version, its command line (input artifacts
//! by their hashes, not their paths), the contents of the data files it reads and the
//! identity of the model, so a changed bank or setting re-runs exactly what depends on it.

use crate::em_stage;
use crate::identity::{content_hash, hex, model_identity};
use crate::manifest::Loaded;
use crate::store::Store;
use crate::{PipelineError, Result};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Bump when a stage's output format changes, so old artifacts are not reused.
const FORMAT_VERSION: u32 = 1;

/// The version a stage kind's hash carries: [`FORMAT_VERSION`], plus bumps for kinds whose
/// results changed under the same command line. Finetune 2: keyed LoRA dropout and the
/// cpu profile's two batch shards (a profile's settings are not on the command line).
fn stage_version(kind: StageKind) -> u32 {
    match kind {
        StageKind::Finetune => FORMAT_VERSION + 1,
        _ => FORMAT_VERSION,
    }
}

/// What `traitwatch reproduce` / `run` can be asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    Fig(u8),
    Tables,
    All,
}

impl Target {
    /// Every name [`Target::parse`] accepts, as `--help` lists them.
    pub const NAMES: [&'static str; 13] = [
        "fig1", "fig2", "fig3", "fig4", "fig5", "fig6", "fig7", "fig8", "fig9", "fig10", "fig11",
        "tables", "all",
    ];

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "tables" => Some(Self::Tables),
            "all" => Some(Self::All),
            _ => {
                let n: u8 = s.strip_prefix("fig")?.parse().ok()?;
                (1..=11).contains(&n).then_some(Self::Fig(n))
            }
        }
    }

    pub fn name(self) -> String {
        match self {
            Self::Fig(n) => format!("fig{n}"),
            Self::Tables => "tables".into(),
            Self::All => "all".into(),
        }
    }

    /// The concrete targets (`all` is every figure and the tables).
    pub fn expand(targets: &[Target]) -> Vec<Target> {
        let mut out: Vec<Target> = Vec::new();
        for &t in targets {
            match t {
                Target::All => out.extend((1..=11).map(Target::Fig).chain([Target::Tables])),
                t => out.push(t),
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// Whether the figure needs the monitor's evaluation (`lopo`) on top of the stages.
    pub fn needs_monitor(self) -> bool {
        matches!(self, Target::Fig(3 | 7 | 9) | Target::Tables | Target::All)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum StageKind {
    Traits,
    Semantic,
    Sae,
    Finetune,
    Drift,
    Em,
    Pca,
}

impl StageKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Traits => "traits",
            Self::Semantic => "semantic",
            Self::Sae => "sae",
            Self::Finetune => "finetune",
            Self::Drift => "drift",
            Self::Em => "em",
            Self::Pca => "pca",
        }
    }
}

/// One word of a stage's command line.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    Lit(String),
    /// The artifact directory of an earlier stage.
    Artifact(usize),
    /// A file inside an earlier stage's artifact.
    ArtifactFile(usize, &'static str),
    /// The layer an earlier traits stage selected (read from its `selection.json`).
    LayerOf(usize),
    /// A project file as the manifest wrote it: hashed in that form (so an artifact's
    /// identity does not depend on where the checkout lives, and matches a `Lit` of the
    /// same text), given to the command resolved against the project root.
    Data(PathBuf),
}

impl Arg {
    /// A model source: a path-like one is project data, a preset name is a literal.
    pub fn model(source: &str) -> Arg {
        if crate::home::is_path_like(source) {
            Arg::Data(PathBuf::from(source))
        } else {
            Arg::Lit(source.to_string())
        }
    }
}

/// A (model, perturbation, seed) finetuning run and what is measured on it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cell {
    pub model: String,
    pub perturbation: String,
    pub seed: u64,
}

#[derive(Debug, Clone)]
pub struct Stage {
    pub kind: StageKind,
    /// Human-readable part of the artifact name: `smollm2-135m-bad_medical-s1`.
    pub slug: String,
    pub model: String,
    pub cell: Option<Cell>,
    /// The `traitwatch` subcommand and its arguments, without `--out`.
    pub args: Vec<Arg>,
    /// Earlier stages whose artifacts this one reads.
    pub inputs: Vec<usize>,
    pub hash: String,
}

impl Stage {
    /// `finetune/smollm2-135m-bad_medical-s1`.
    pub fn id(&self) -> String {
        format!("{}/{}", self.kind.name(), self.slug)
    }
}

#[derive(Debug)]
pub struct Plan {
    pub stages: Vec<Stage>,
    pub targets: Vec<Target>,
    pub store: Store,
    /// The project root [`Arg::Data`] paths resolve against.
    pub root: PathBuf,
}

/// Which perturbations need drift and EM labels for a set of targets.
struct Needs {
    drift: BTreeSet<String>,
    em: BTreeSet<String>,
    pca: bool,
}

fn needs(loaded: &Loaded, targets: &[Target]) -> Needs {
    let p = &loaded.manifest.perturbations;
    let every: BTreeSet<String> = p.calibration.iter().chain(&p.held_out).cloned().collect();
    let some = |names: &[&str]| -> BTreeSet<String> {
        names
            .iter()
            .map(|s| s.to_string())
            .filter(|n| every.contains(n))
            .collect()
    };
    let mut n = Needs {
        drift: BTreeSet::new(),
        em: BTreeSet::new(),
        pca: false,
    };
    for t in Target::expand(targets) {
        match t {
            // |PC1| of bad_medical vs number_sequence, PC1 fitted on calibration; EM of bad_medical.
            Target::Fig(1) => {
                n.drift.extend(p.calibration.iter().cloned());
                n.drift.extend(some(&["bad_medical", "number_sequence"]));
                n.em.extend(some(&["bad_medical"]));
                n.pca = true;
            }
            Target::Fig(4) => {
                n.drift.extend(p.calibration.iter().cloned());
                n.pca = true;
            }
            Target::Fig(6) => {}
            // Everything else reads the whole grid, extra runs included.
            _ => {
                n.drift.extend(loaded.run_labels());
                n.em.extend(loaded.run_labels());
                n.pca = true;
            }
        }
    }
    n
}

impl Plan {
    pub fn build(loaded: &Loaded, targets: &[Target]) -> Result<Plan> {
        let m = &loaded.manifest;
        let store = Store::new(&loaded.store_dir());
        let needs = needs(loaded, targets);
        let mut b = Builder {
            stages: Vec::new(),
            root: loaded.root.clone(),
        };
        let lit = |s: &str| Arg::Lit(s.to_string());
        let path = |p: &Path| Arg::Data(p.to_path_buf());
        // The data files every EM stage reads (the same for all of them): listed once.
        let em_files = em_stage::files(loaded);
        for model in &m.models {
            let src = model.source.as_str();
            // Trait directions: alignment bank, l* fixed or searched.
            let mut args = vec![lit("traits"), lit("--model"), Arg::model(src)];
            args.extend([lit("--bank"), path(&m.traits.bank)]);
            args.extend([lit("--questions"), path(&m.traits.questions)]);
            args.extend([lit("--pooling"), lit(&m.traits.pooling)]);
            if let Some(layer) = m.traits.layer {
                args.extend([lit("--layer"), lit(&layer.to_string())]);
            } else if let Some(c) = &m.traits.candidates {
                args.extend([lit("--candidates"), lit(c)]);
            }
            let files = vec![m.traits.bank.clone(), m.traits.questions.clone()];
            let traits = b.add(StageKind::Traits, &model.name, None, args, files, src)?;
            if needs.drift.is_empty() {
                continue;
            }
            // The semantic control, extracted at the alignment bank's layer.
            let semantic = match &m.traits.semantic_bank {
                Some(bank) => {
                    let mut args = vec![lit("traits"), lit("--model"), Arg::model(src)];
                    args.extend([lit("--bank"), path(bank)]);
                    args.extend([lit("--questions"), path(&m.traits.questions)]);
                    args.extend([lit("--pooling"), lit(&m.traits.pooling)]);
                    args.extend([lit("--layer"), Arg::LayerOf(traits)]);
                    let files = vec![bank.clone(), m.traits.questions.clone()];
                    Some(b.add(StageKind::Semantic, &model.name, None, args, files, src)?)
                }
                None => None,
            };
            let sae = if m.sae.enabled {
                let s = &m.sae;
                let mut args = vec![lit("sae"), lit("--model"), Arg::model(src)];
                args.extend([lit("--directions"), Arg::Artifact(traits)]);
                args.extend([lit("--bank"), path(&m.traits.bank)]);
                args.extend([lit("--questions"), path(&m.traits.questions)]);
                args.extend([lit("--prompts"), path(&m.drift.prompts)]);
                args.extend([lit("--latents"), lit(&s.latents.to_string())]);
                args.extend([lit("--l1"), lit(&s.l1.to_string())]);
                args.extend([lit("--steps"), lit(&s.steps.to_string())]);
                if let Some(k) = s.top_k {
                    args.extend([lit("--top-k"), lit(&k.to_string())]);
                }
                let files = vec![
                    m.traits.bank.clone(),
                    m.traits.questions.clone(),
                    m.drift.prompts.clone(),
                ];
                Some(b.add(StageKind::Sae, &model.name, None, args, files, src)?)
            } else {
                None
            };
            // Step 0 of the EM judge, scored once for all runs of this model.
            let base_em = match em_stage::base_args(loaded, src, &model.name) {
                Some(args) if !needs.em.is_empty() => {
                    let files = em_files.clone();
                    Some(b.add(StageKind::Em, &model.name, None, args, files, src)?)
                }
                _ => None,
            };
            let mut calibration_drift = Vec::new();
            let mut scored_drift = Vec::new();
            for group in loaded.run_groups() {
                let pert = &group.label;
                if !needs.drift.contains(pert) && !needs.em.contains(pert) {
                    continue;
                }
                for &seed in &group.seeds {
                    let cell = Cell {
                        model: model.name.clone(),
                        perturbation: pert.clone(),
                        seed,
                    };
                    let mut args = vec![lit("finetune"), lit("--model"), Arg::model(src)];
                    let data = if group.dataset.ends_with(".jsonl") {
                        Arg::Data(PathBuf::from(&group.dataset))
                    } else {
                        lit(&group.dataset)
                    };
                    args.extend([lit("--data"), data]);
                    args.extend([lit("--profile"), lit(&m.finetune.profile)]);
                    args.extend([lit("--set"), lit(&format!("seed={seed}"))]);
                    for (key, value) in &group.set {
                        args.extend([lit("--set"), lit(&format!("{key}={value}"))]);
                    }
                    let dataset = if group.dataset.ends_with(".jsonl") {
                        PathBuf::from(&group.dataset)
                    } else {
                        PathBuf::from("data/datasets").join(format!("{}.toml", group.dataset))
                    };
                    let ft = b.add(
                        StageKind::Finetune,
                        &model.name,
                        Some(&cell),
                        args,
                        vec![dataset],
                        src,
                    )?;
                    let labels = [
                        lit("--perturbation"),
                        lit(pert),
                        lit("--model-label"),
                        lit(&model.name),
                    ];
                    if needs.drift.contains(pert) {
                        let mut args = vec![lit("drift"), lit("--run"), Arg::Artifact(ft)];
                        args.extend([lit("--directions"), Arg::Artifact(traits)]);
                        if let Some(s) = semantic {
                            args.extend([lit("--directions"), Arg::Artifact(s)]);
                        }
                        if let Some(s) = sae {
                            args.extend([lit("--sae"), Arg::ArtifactFile(s, "sae.safetensors")]);
                        }
                        args.extend([lit("--prompts"), path(&m.drift.prompts)]);
                        args.extend([
                            lit("--random-bases"),
                            lit(&m.drift.random_bases.to_string()),
                        ]);
                        args.extend([lit("--basis-seed"), lit(&m.drift.basis_seed.to_string())]);
                        args.extend(labels.clone());
                        let files = vec![m.drift.prompts.clone()];
                        let d =
                            b.add(StageKind::Drift, &model.name, Some(&cell), args, files, src)?;
                        if m.perturbations.calibration.contains(pert) {
                            calibration_drift.push(d);
                        } else {
                            scored_drift.push(d);
                        }
                    }
                    if needs.em.contains(pert) {
                        let args =
                            em_stage::run_args(loaded, ft, base_em, &group.em_steps, &labels)?;
                        let files = em_files.clone();
                        b.add(StageKind::Em, &model.name, Some(&cell), args, files, src)?;
                    }
                }
            }
            if needs.pca && !calibration_drift.is_empty() {
                // The drift tables name a bank's feature set after the bank.
                let set = bank_name(loaded, &m.traits.bank)?;
                let mut args = vec![lit("pca"), lit("--feature-set"), lit(&set)];
                for &d in &calibration_drift {
                    args.extend([lit("--calibration"), Arg::Artifact(d)]);
                }
                for &d in &scored_drift {
                    args.extend([lit("--score"), Arg::Artifact(d)]);
                }
                b.add(StageKind::Pca, &model.name, None, args, Vec::new(), src)?;
            }
        }
        Ok(Plan {
            stages: b.stages,
            targets: Target::expand(targets),
            store,
            root: b.root,
        })
    }

    /// Where stage `i`'s finished artifact lives.
    pub fn dir(&self, i: usize) -> PathBuf {
        let s = &self.stages[i];
        self.store.artifact_dir(s.kind.name(), &s.slug, &s.hash)
    }

    /// Stage `i`'s full command line (after `traitwatch`), writing into `out`. Input
    /// artifacts must be complete (`LayerOf` reads the selection they wrote).
    pub fn argv(&self, i: usize, out: &Path) -> Result<Vec<String>> {
        let mut argv = Vec::new();
        for arg in &self.stages[i].args {
            argv.push(match arg {
                Arg::Lit(s) => s.clone(),
                Arg::Data(p) => crate::home::resolve(&self.root, p).display().to_string(),
                Arg::Artifact(j) => self.dir(*j).display().to_string(),
                Arg::ArtifactFile(j, f) => self.dir(*j).join(f).display().to_string(),
                Arg::LayerOf(j) => selected_layer(&self.dir(*j))?.to_string(),
            });
        }
        argv.extend(["--out".to_string(), out.display().to_string()]);
        Ok(argv)
    }

    /// The command as `plan` prints it: input artifacts by their store path.
    pub fn display(&self, i: usize) -> String {
        let words: Vec<String> = self.stages[i]
            .args
            .iter()
            .map(|arg| match arg {
                Arg::Lit(s) if s.contains([' ', '"', '[']) => format!("'{s}'"),
                Arg::Lit(s) => s.clone(),
                Arg::Data(p) => crate::home::resolve(&self.root, p).display().to_string(),
                Arg::Artifact(j) => self.dir(*j).display().to_string(),
                Arg::ArtifactFile(j, f) => self.dir(*j).join(f).display().to_string(),
                Arg::LayerOf(j) => format!("<l* of {}>", self.stages[*j].id()),
            })
            .collect();
        format!("traitwatch {}", words.join(" "))
    }

    /// The cells, in plan order, each with the indices of its stages.
    pub fn cells(&self) -> Vec<(Cell, Vec<usize>)> {
        let mut out: Vec<(Cell, Vec<usize>)> = Vec::new();
        for (i, s) in self.stages.iter().enumerate() {
            if let Some(c) = &s.cell {
                match out.iter_mut().find(|(k, _)| k == c) {
                    Some((_, v)) => v.push(i),
                    None => out.push((c.clone(), vec![i])),
                }
            }
        }
        out
    }
}

/// A trait bank's `name` (its feature set in the drift tables).
fn bank_name(loaded: &Loaded, bank: &Path) -> Result<String> {
    let bank = &loaded.resolve(bank);
    let text = std::fs::read_to_string(bank).map_err(crate::io(bank))?;
    let table: toml::Table = toml::from_str(&text)
        .map_err(|e| loaded.invalid("traits.bank", format!("{}: {e}", bank.display())))?;
    match table.get("name") {
        Some(toml::Value::String(name)) => Ok(name.clone()),
        _ => Err(loaded.invalid("traits.bank", format!("{} has no `name`", bank.display()))),
    }
}

/// l* from a traits artifact's `selection.json`.
fn selected_layer(dir: &Path) -> Result<usize> {
    let file = dir.join("selection.json");
    let text = std::fs::read_to_string(&file).map_err(crate::io(&file))?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| PipelineError::Other(format!("{}: {e}", file.display())))?;
    json["best_layer"]
        .as_u64()
        .map(|l| l as usize)
        .ok_or_else(|| PipelineError::Other(format!("{} has no best_layer", file.display())))
}

struct Builder {
    stages: Vec<Stage>,
    /// The project root data files and model directories resolve against.
    root: PathBuf,
}

impl Builder {
    fn add(
        &mut self,
        kind: StageKind,
        model: &str,
        cell: Option<&Cell>,
        args: Vec<Arg>,
        files: Vec<PathBuf>,
        model_source: &str,
    ) -> Result<usize> {
        let slug = match cell {
            Some(c) => format!("{}-{}-s{}", c.model, slug_part(&c.perturbation), c.seed),
            None => model.to_string(),
        };
        let mut inputs = Vec::new();
        let mut h = Sha256::new();
        h.update(format!("{} v{}\n", kind.name(), stage_version(kind)));
        for arg in &args {
            match arg {
                Arg::Lit(s) => h.update(format!("lit {s}\n")),
                Arg::Data(p) => h.update(format!("lit {}\n", p.display())),
                Arg::Artifact(j) | Arg::ArtifactFile(j, _) | Arg::LayerOf(j) => {
                    inputs.push(*j);
                    h.update(format!(
                        "input {:?} {}\n",
                        arg_tag(arg),
                        self.stages[*j].hash
                    ));
                }
            }
        }
        // Files by the name the manifest gave them, contents read from the project.
        for file in &files {
            let found = crate::home::resolve(&self.root, file);
            h.update(format!(
                "file {} {}\n",
                file.display(),
                content_hash(&found)?
            ));
        }
        h.update(format!(
            "model {}\n",
            model_identity(model_source, &self.root)
        ));
        inputs.sort_unstable();
        inputs.dedup();
        let hash = hex(&h.finalize());
        self.stages.push(Stage {
            kind,
            slug,
            model: model.to_string(),
            cell: cell.cloned(),
            args,
            inputs,
            hash,
        });
        Ok(self.stages.len() - 1)
    }
}

fn arg_tag(arg: &Arg) -> String {
    match arg {
        Arg::ArtifactFile(_, f) => format!("file:{f}"),
        Arg::LayerOf(_) => "layer".into(),
        _ => "dir".into(),
    }
}

fn slug_part(s: &str) -> String {
    let name = Path::new(s)
        .file_stem()
        .map_or_else(|| s.to_string(), |n| n.to_string_lossy().into_owned());
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::Target;

    #[test]
    fn every_listed_target_name_parses_back_to_itself() {
        for name in Target::NAMES {
            assert_eq!(Target::parse(name).map(Target::name).as_deref(), Some(name));
        }
        assert!(Target::parse("fig12").is_none());
    }
}
