//! `[[extra_runs]]`: finetuning runs outside the monitor's calibration / held-out split,
//! measured (drift, EM) and scored by the PCA but never in a LOPO training fold. They
//! carry the figures that compare training regimes: full finetuning against LoRA (Fig. 11),
//! long runs for the step-aware alarm (Fig. 9), a benign anchor (`monitor.anchor`).
//!
//! A group's runs are labelled `<perturbation>+<tag>` in every table (`bad_medical+full`),
//! or by the perturbation's own name when the group has no tag (an anchor run of a
//! perturbation the split does not use).

use crate::Result;
use crate::manifest::{Loaded, known_perturbations};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtraRuns {
    /// Appended to each perturbation's label: `bad_medical+full`.
    pub tag: Option<String>,
    pub perturbations: Vec<String>,
    /// Seeds of these runs (default: `perturbations.seeds`).
    #[serde(default)]
    pub seeds: Vec<u64>,
    /// Finetune overrides on top of `finetune.set` (e.g. `{ mode = "full" }`).
    #[serde(default)]
    pub set: BTreeMap<String, toml::Value>,
    /// Checkpoints to label with EM (default: `em.steps`).
    pub em_steps: Option<Vec<u64>>,
}

/// One group of runs the plan makes: the split's perturbations and the extra groups alike.
#[derive(Debug, Clone)]
pub struct RunGroup {
    /// The label in the tables (`bad_medical`, `bad_medical+full`).
    pub label: String,
    /// The dataset: a perturbation name or a `.jsonl` file.
    pub dataset: String,
    pub seeds: Vec<u64>,
    pub set: BTreeMap<String, toml::Value>,
    pub em_steps: Vec<u64>,
    /// In `[[extra_runs]]` rather than the split.
    pub extra: bool,
}

impl ExtraRuns {
    pub fn label(&self, perturbation: &str) -> String {
        match &self.tag {
            Some(tag) => format!("{perturbation}+{tag}"),
            None => perturbation.to_string(),
        }
    }
}

impl Loaded {
    /// The split's perturbations (calibration, then held out), then every extra group.
    pub fn run_groups(&self) -> Vec<RunGroup> {
        let m = &self.manifest;
        let p = &m.perturbations;
        let split = p
            .calibration
            .iter()
            .chain(&p.held_out)
            .map(|pert| RunGroup {
                label: pert.clone(),
                dataset: pert.clone(),
                seeds: p.seeds.clone(),
                set: m.finetune.set.clone(),
                em_steps: m.em.steps.clone(),
                extra: false,
            });
        let extra = m.extra_runs.iter().flat_map(|group| {
            group.perturbations.iter().map(move |pert| {
                let mut set = m.finetune.set.clone();
                set.extend(group.set.clone());
                RunGroup {
                    label: group.label(pert),
                    dataset: pert.clone(),
                    seeds: if group.seeds.is_empty() {
                        p.seeds.clone()
                    } else {
                        group.seeds.clone()
                    },
                    set,
                    em_steps: group.em_steps.clone().unwrap_or_else(|| m.em.steps.clone()),
                    extra: true,
                }
            })
        });
        split.chain(extra).collect()
    }

    /// Names, tags and collisions of `[[extra_runs]]`.
    pub(crate) fn check_extra_runs(&self) -> Result<()> {
        let m = &self.manifest;
        let split: BTreeSet<&String> = m
            .perturbations
            .calibration
            .iter()
            .chain(&m.perturbations.held_out)
            .collect();
        let mut labels = BTreeSet::new();
        for (i, group) in m.extra_runs.iter().enumerate() {
            let key = |field: &str| format!("extra_runs.{i}.{field}");
            if let Some(tag) = &group.tag
                && (tag.is_empty()
                    || !tag
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'))
            {
                return Err(self.invalid(
                    &key("tag"),
                    format!("`{tag}`: use letters, digits, `_` or `-`"),
                ));
            }
            if group.perturbations.is_empty() {
                return Err(self.invalid(&key("perturbations"), "name at least one"));
            }
            if group.set.contains_key("seed") {
                return Err(self.invalid(&key("set"), "the seed comes from `seeds`"));
            }
            for pert in &group.perturbations {
                let is_file = pert.ends_with(".jsonl");
                if !is_file && !known_perturbations().contains(&pert.as_str()) {
                    return Err(self.invalid(
                        &key("perturbations"),
                        format!(
                            "unknown perturbation `{pert}` (known: {}; or a .jsonl chat file)",
                            known_perturbations().join(", ")
                        ),
                    ));
                }
                if is_file {
                    self.existing(&key("perturbations"), std::path::Path::new(pert))?;
                }
                let label = group.label(pert);
                if split.contains(&label) {
                    return Err(self.invalid(
                        &key("tag"),
                        format!(
                            "`{label}` is already a run of the split: give the group a tag so \
                             its runs get their own label"
                        ),
                    ));
                }
                if !labels.insert(label.clone()) {
                    return Err(self.invalid(
                        &key("perturbations"),
                        format!("`{label}` is made by two groups"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Labels of every run the manifest makes (split and extra).
    pub fn run_labels(&self) -> BTreeSet<String> {
        self.run_groups().into_iter().map(|g| g.label).collect()
    }
}
