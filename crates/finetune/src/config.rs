//! Finetuning settings: one serde struct with documented defaults, named profiles
//! (METHOD.md section 9), and `key=value` overrides. The resolved config is saved next to
//! every run and checkpoint.

use crate::error::FinetuneError;
use serde::{Deserialize, Serialize};

/// LoRA adapters, or every weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Lora,
    Full,
}

/// Which decoder layers get adapters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LayerSelection {
    /// `"all"` or `"middle"` (the single layer at half depth, as the rank-1 profile uses).
    Named(String),
    /// Explicit 0-based layer indices.
    List(Vec<usize>),
}

impl LayerSelection {
    /// The layers of an `n_layers`-deep model this selects.
    pub fn resolve(&self, n_layers: usize) -> Result<Vec<usize>, FinetuneError> {
        let bad = |msg: String| FinetuneError::Config(format!("lora.layers: {msg}"));
        match self {
            LayerSelection::Named(s) if s == "all" => Ok((0..n_layers).collect()),
            LayerSelection::Named(s) if s == "middle" => Ok(vec![n_layers / 2]),
            LayerSelection::Named(s) => Err(bad(format!(
                "`{s}` is not \"all\", \"middle\" or a list of layer indices"
            ))),
            LayerSelection::List(list) => {
                if let Some(&l) = list.iter().find(|&&l| l >= n_layers) {
                    return Err(bad(format!(
                        "layer {l} does not exist (the model has {n_layers})"
                    )));
                }
                if list.is_empty() {
                    return Err(bad("the list is empty".into()));
                }
                Ok(list.clone())
            }
        }
    }
}

/// `lora.*`: adapter shape and placement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoraSettings {
    /// Rank r of each adapter.
    pub rank: usize,
    /// Scale numerator: the update is `alpha / r · B·A` (`alpha / sqrt(r)` with rsLoRA).
    pub alpha: f64,
    /// Dropout on the adapter's input during training.
    pub dropout: f64,
    /// HF module names: q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj.
    pub targets: Vec<String>,
    /// Layers that get adapters.
    pub layers: LayerSelection,
    /// rsLoRA scaling (`alpha / sqrt(r)`).
    pub rslora: bool,
}

/// Learning-rate decay after warm-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decay {
    Linear,
    Cosine,
    Constant,
}

/// `optim.*`: AdamW and its schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimSettings {
    pub lr: f64,
    pub weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Linear warm-up from 0 over this many optimizer steps.
    pub warmup_steps: usize,
    pub decay: Decay,
    /// Clip the global gradient norm to this (none: no clipping).
    pub max_grad_norm: Option<f64>,
}

/// Which tokens the loss is computed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossOn {
    /// Every token but padding (the paper's setting).
    AllTokens,
    /// Only assistant turns (the model-organism setting).
    AssistantOnly,
}

/// `data.*`: what is trained on, in what batches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSettings {
    /// Examples sampled from the dataset with the run seed (none: all of them).
    pub n_examples: Option<usize>,
    pub epochs: usize,
    /// Sequences per forward pass.
    pub batch_size: usize,
    /// Forward passes per optimizer step (effective batch = batch_size x grad_accum).
    pub grad_accum: usize,
    /// Longer conversations are truncated (and counted in the train log).
    pub max_seq_len: usize,
    pub loss_on: LossOn,
    /// Each batch is split into this many parts trained on parallel threads: faster on CPU
    /// backends, whose elementwise ops run on one thread (see `finetune::shards`). The
    /// gradient is the same sum up to float rounding; a run repeats exactly for one value.
    #[serde(default = "one_shard")]
    pub shards: usize,
}

fn one_shard() -> usize {
    1
}

/// `checkpoints.*`: when adapters are saved. Step 0 (the untouched model) is always saved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointSettings {
    /// Save every N optimizer steps.
    pub every: Option<usize>,
    /// Save at these steps too (dense early checkpoints: `at = [1, 2, 4, 6, 8]`).
    pub at: Vec<usize>,
    /// Save after the last step.
    pub last: bool,
}

/// Everything a finetuning run needs besides the model and the data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinetuneConfig {
    pub mode: Mode,
    pub lora: LoraSettings,
    pub optim: OptimSettings,
    pub data: DataSettings,
    pub checkpoints: CheckpointSettings,
    /// Seeds adapter initialisation, example sampling, data order and dropout.
    pub seed: u64,
}

/// The named profiles.
pub const PROFILES: [&str; 5] = ["paper", "organism", "rank1", "full", "cpu"];

impl FinetuneConfig {
    /// The paper's LoRA profile (METHOD.md section 9): r 16, alpha 64, dropout 0.05 on
    /// q_proj and v_proj; AdamW lr 4e-5, weight decay 0.01, linear decay, no warm-up;
    /// 2 epochs of 1000 examples at effective batch 16 (4 x 4) = 126 steps; 512 tokens;
    /// loss on all tokens; a checkpoint every 10 steps and at the end.
    pub fn paper() -> Self {
        Self {
            mode: Mode::Lora,
            lora: LoraSettings {
                rank: 16,
                alpha: 64.0,
                dropout: 0.05,
                targets: vec!["q_proj".into(), "v_proj".into()],
                layers: LayerSelection::Named("all".into()),
                rslora: false,
            },
            optim: OptimSettings {
                lr: 4e-5,
                weight_decay: 0.01,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                warmup_steps: 0,
                decay: Decay::Linear,
                max_grad_norm: Some(1.0),
            },
            data: DataSettings {
                n_examples: Some(1000),
                epochs: 2,
                batch_size: 4,
                grad_accum: 4,
                max_seq_len: 512,
                loss_on: LossOn::AllTokens,
                shards: 1,
            },
            checkpoints: CheckpointSettings {
                every: Some(10),
                at: vec![],
                last: true,
            },
            seed: 42,
        }
    }

    /// The model-organism profile: rsLoRA r 32, alpha 64 on all seven projections,
    /// lr 1e-5, 1 epoch, loss on assistant tokens only.
    pub fn organism() -> Self {
        let mut c = Self::paper();
        c.lora = LoraSettings {
            rank: 32,
            alpha: 64.0,
            dropout: 0.0,
            targets: llm::model::PROJECTIONS.map(String::from).to_vec(),
            layers: LayerSelection::Named("all".into()),
            rslora: true,
        };
        c.optim.lr = 1e-5;
        c.optim.warmup_steps = 5;
        c.data.epochs = 1;
        c.data.loss_on = LossOn::AssistantOnly;
        c
    }

    /// One rank-1 adapter on the down projection of the middle layer.
    pub fn rank1() -> Self {
        let mut c = Self::organism();
        c.lora.rank = 1;
        c.lora.alpha = 2.0;
        c.lora.rslora = false;
        c.lora.targets = vec!["down_proj".into()];
        c.lora.layers = LayerSelection::Named("middle".into());
        c.optim.lr = 2e-5;
        c
    }

    /// Full finetuning (Fig. 11): every weight trains, lr 1e-5, otherwise the paper profile.
    pub fn full() -> Self {
        let mut c = Self::paper();
        c.mode = Mode::Full;
        c.optim.lr = 1e-5;
        c
    }

    /// A small profile for the default model on a 2-core CPU and for CI: 256 examples of
    /// up to 256 tokens, one epoch at batch 4 (64 steps), a stronger learning rate so that
    /// drift shows within those steps, dense early checkpoints.
    pub fn cpu() -> Self {
        let mut c = Self::paper();
        c.lora.rank = 8;
        c.lora.alpha = 32.0;
        c.optim.lr = 2e-4;
        c.data = DataSettings {
            n_examples: Some(256),
            epochs: 1,
            batch_size: 4,
            grad_accum: 1,
            max_seq_len: 256,
            loss_on: LossOn::AllTokens,
            // Two shards fill two cores; the GPU profiles keep one batch per pass.
            shards: 2,
        };
        c.checkpoints = CheckpointSettings {
            every: Some(8),
            at: vec![1, 2, 4],
            last: true,
        };
        c
    }

    pub fn profile(name: &str) -> Result<Self, FinetuneError> {
        Ok(match name {
            "paper" => Self::paper(),
            "organism" => Self::organism(),
            "rank1" => Self::rank1(),
            "full" => Self::full(),
            "cpu" => Self::cpu(),
            other => {
                return Err(FinetuneError::Config(format!(
                    "unknown profile `{other}` (profiles: {})",
                    PROFILES.join(", ")
                )));
            }
        })
    }

    /// Apply `key=value` overrides, e.g. `optim.lr=1e-4` or `lora.targets=["q_proj"]`.
    /// Values are TOML; an unknown key or a wrong type is an error naming the key.
    pub fn with_overrides(self, overrides: &[String]) -> Result<Self, FinetuneError> {
        let mut doc =
            toml::Table::try_from(&self).map_err(|e| FinetuneError::Config(e.to_string()))?;
        for item in overrides {
            let (key, raw) = item.split_once('=').ok_or_else(|| {
                FinetuneError::Config(format!("`{item}` is not key=value (e.g. optim.lr=1e-4)"))
            })?;
            let key = key.trim();
            let value = parse_value(raw.trim());
            set_path(&mut doc, key, value)?;
        }
        let text = toml::to_string(&doc).map_err(|e| FinetuneError::Config(e.to_string()))?;
        let cfg: Self = toml::from_str(&text)
            .map_err(|e| FinetuneError::Config(format!("after overrides: {e}")))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Read a config file (TOML), checking every key.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, FinetuneError> {
        let cfg: Self =
            toml::from_str(text).map_err(|e| FinetuneError::Config(format!("{origin}: {e}")))?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }

    /// The LoRA scale `alpha / r` (or `alpha / sqrt(r)` with rsLoRA).
    pub fn lora_scale(&self) -> f64 {
        crate::lora::lora_scale(self.lora.alpha, self.lora.rank, self.lora.rslora)
    }

    /// Impossible settings, reported before any compute.
    pub fn validate(&self) -> Result<(), FinetuneError> {
        let bad = |key: &str, msg: &str| Err(FinetuneError::Config(format!("{key}: {msg}")));
        if self.mode == Mode::Lora {
            if self.lora.rank == 0 {
                return bad("lora.rank", "must be at least 1");
            }
            if !(0.0..1.0).contains(&self.lora.dropout) {
                return bad("lora.dropout", "must be in [0, 1)");
            }
            if self.lora.targets.is_empty() {
                return bad("lora.targets", "names no module");
            }
            if let Some(t) = self
                .lora
                .targets
                .iter()
                .find(|t| !llm::model::PROJECTIONS.contains(&t.as_str()))
            {
                return Err(FinetuneError::Config(format!(
                    "lora.targets: `{t}` is not a projection ({})",
                    llm::model::PROJECTIONS.join(", ")
                )));
            }
        }
        if !(self.optim.lr > 0.0 && self.optim.lr.is_finite()) {
            return bad("optim.lr", "must be positive");
        }
        if !(0.0..1.0).contains(&self.optim.beta1) || !(0.0..1.0).contains(&self.optim.beta2) {
            return bad("optim.beta1/beta2", "must be in [0, 1)");
        }
        if self.optim.max_grad_norm.is_some_and(|n| n <= 0.0) {
            return bad("optim.max_grad_norm", "must be positive");
        }
        for (key, v) in [
            ("data.epochs", self.data.epochs),
            ("data.batch_size", self.data.batch_size),
            ("data.grad_accum", self.data.grad_accum),
            ("data.max_seq_len", self.data.max_seq_len),
            ("data.shards", self.data.shards),
        ] {
            if v == 0 {
                return bad(key, "must be at least 1");
            }
        }
        if self.data.shards > self.data.batch_size {
            return bad(
                "data.shards",
                "cannot exceed data.batch_size (each shard needs a row)",
            );
        }
        if self.data.n_examples == Some(0) {
            return bad("data.n_examples", "must be at least 1");
        }
        if self.checkpoints.every == Some(0) {
            return bad("checkpoints.every", "must be at least 1");
        }
        Ok(())
    }
}

/// A TOML value from override text; bare words that are not TOML become strings.
fn parse_value(raw: &str) -> toml::Value {
    let doc = format!("v = {raw}");
    match toml::from_str::<toml::Table>(&doc) {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or(toml::Value::String(raw.to_string())),
        Err(_) => toml::Value::String(raw.to_string()),
    }
}

fn set_path(doc: &mut toml::Table, key: &str, value: toml::Value) -> Result<(), FinetuneError> {
    let unknown = || FinetuneError::Config(format!("unknown setting `{key}`"));
    let parts: Vec<&str> = key.split('.').collect();
    let (last, parents) = parts.split_last().ok_or_else(unknown)?;
    let mut table = doc;
    for p in parents {
        table = table
            .get_mut(*p)
            .and_then(|v| v.as_table_mut())
            .ok_or_else(unknown)?;
    }
    // Optional settings serialise as absent keys; accept them when the struct has them.
    let known = table.contains_key(*last) || OPTIONAL_KEYS.contains(&key);
    if !known {
        return Err(unknown());
    }
    table.insert(last.to_string(), value);
    Ok(())
}

/// Settings that are `Option`s and so may be absent from a serialised config.
const OPTIONAL_KEYS: [&str; 3] = [
    "optim.max_grad_norm",
    "data.n_examples",
    "checkpoints.every",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_are_valid_and_scale_as_documented() {
        let c = FinetuneConfig::paper();
        assert_eq!(c.data.batch_size * c.data.grad_accum, 16);
        assert_eq!(c.lora_scale(), 4.0);
        assert_eq!(FinetuneConfig::organism().lora_scale(), 64.0 / 32f64.sqrt());
        for p in PROFILES {
            FinetuneConfig::profile(p).unwrap().validate().unwrap();
        }
    }

    #[test]
    fn overrides_set_typed_values_and_reject_unknown_keys() {
        let c = FinetuneConfig::paper()
            .with_overrides(&[
                "optim.lr=1e-4".into(),
                "lora.targets=[\"q_proj\", \"k_proj\"]".into(),
                "lora.layers=[3, 4]".into(),
                "data.loss_on=assistant_only".into(),
            ])
            .unwrap();
        assert_eq!(c.optim.lr, 1e-4);
        assert_eq!(c.lora.targets, vec!["q_proj", "k_proj"]);
        assert_eq!(c.lora.layers, LayerSelection::List(vec![3, 4]));
        assert_eq!(c.data.loss_on, LossOn::AssistantOnly);
        let err = FinetuneConfig::paper()
            .with_overrides(&["optim.lrr=1".into()])
            .unwrap_err();
        assert!(err.to_string().contains("optim.lrr"), "{err}");
        let err = FinetuneConfig::paper()
            .with_overrides(&["data.epochs=\"two\"".into()])
            .unwrap_err();
        assert!(err.to_string().contains("epochs"), "{err}");
        let err = FinetuneConfig::paper()
            .with_overrides(&["lora.targets=[\"mlp\"]".into()])
            .unwrap_err();
        assert!(err.to_string().contains("mlp"), "{err}");
    }

    #[test]
    fn toml_round_trip() {
        let c = FinetuneConfig::rank1();
        assert_eq!(FinetuneConfig::from_toml(&c.to_toml(), "x").unwrap(), c);
        assert_eq!(c.lora.layers.resolve(30).unwrap(), vec![15]);
        assert!(LayerSelection::List(vec![30]).resolve(30).is_err());
    }
}
