//! LoRA adapters: attaching them with PEFT's initialisation, and reading and writing them
//! in PEFT's checkpoint layout so PEFT can load ours and we can load PEFT's.
//!
//! PEFT layout: `adapter_config.json` plus `adapter_model.safetensors` holding, for each
//! adapted module, `base_model.model.<HF module path>.lora_A.weight` `[r, in]` and
//! `...lora_B.weight` `[out, r]`. The update is `scale · B·A` with `scale = alpha / r`
//! (`alpha / sqrt(r)` with rsLoRA).

use crate::config::FinetuneConfig;
use crate::error::FinetuneError;
use burn::module::{Module, Param};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use llm::Llama;
use llm::model::{
    KeyedDropout, LoraAdapter, PROJECTIONS, host_to_tensor, projection_path, tensor_to_f32,
};
use llm::weights::HostTensor;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;

pub const ADAPTER_CONFIG: &str = "adapter_config.json";
pub const ADAPTER_WEIGHTS: &str = "adapter_model.safetensors";
const PEFT_PREFIX: &str = "base_model.model.";

/// Freeze every base weight and attach fresh adapters where `cfg.lora` says, initialised as
/// PEFT does: A uniform in ±1/sqrt(in) (Kaiming with a = sqrt(5)), B zero, so step 0 is
/// exactly the base model. The draws come from a host RNG seeded by the run seed, the
/// layer and the module, so they do not depend on the backend.
pub fn attach<B: Backend>(
    model: Llama<B>,
    cfg: &FinetuneConfig,
) -> Result<Llama<B>, FinetuneError> {
    let mut model = model.no_grad();
    let layers = cfg.lora.layers.resolve(model.n_layers())?;
    let device = model.device();
    let scale = cfg.lora_scale();
    let r = cfg.lora.rank;
    for &l in &layers {
        for (k, name) in PROJECTIONS.iter().enumerate() {
            if !cfg.lora.targets.iter().any(|t| t == name) {
                continue;
            }
            let lin = model.layers[l]
                .projection_mut(name)
                .ok_or_else(|| FinetuneError::Config(format!("no projection {name}")))?;
            let (out, inp) = (lin.out_features(), lin.in_features());
            let mut rng = StdRng::seed_from_u64(
                cfg.seed ^ ((l as u64) << 16) ^ ((k as u64) << 40) ^ 0x4C6F5241,
            );
            let bound = 1.0 / (inp as f32).sqrt();
            let a: Vec<f32> = (0..r * inp)
                .map(|_| (rng.random::<f32>() * 2.0 - 1.0) * bound)
                .collect();
            let a = Tensor::from_data(TensorData::new(a, [r, inp]), &device);
            let b = Tensor::zeros([out, r], &device);
            lin.lora = Some(LoraAdapter {
                a: Param::from_tensor(a),
                b: Param::from_tensor(b),
                scale,
                dropout: KeyedDropout::new(cfg.lora.dropout),
            });
        }
    }
    Ok(model)
}

/// Give every adapter's dropout its own mask key, derived from `base` (one per step,
/// micro-batch and shard) and the adapter's place in the model.
pub fn set_dropout_keys<B: Backend>(model: &mut Llama<B>, base: u64) {
    for_each_adapter_mut(model, |place, lora| {
        lora.dropout.key = llm::model::splitmix64(base ^ splitmix_place(place as u64));
    });
}

/// Call `f` on every adapter with its place in the model (layer x projection index).
pub fn for_each_adapter_mut<B: Backend>(
    model: &mut Llama<B>,
    mut f: impl FnMut(usize, &mut LoraAdapter<B>),
) {
    for (l, layer) in model.layers.iter_mut().enumerate() {
        for (k, name) in PROJECTIONS.iter().enumerate() {
            if let Some(lora) = layer.projection_mut(name).and_then(|p| p.lora.as_mut()) {
                f(l * PROJECTIONS.len() + k, lora);
            }
        }
    }
}

fn splitmix_place(place: u64) -> u64 {
    llm::model::splitmix64(place.wrapping_mul(0xD6E8_FEB8_6659_FD93))
}

/// Every adapter in the model as `(HF module path, adapter)`.
pub fn adapters<B: Backend>(model: &Llama<B>) -> Vec<(String, &LoraAdapter<B>)> {
    let mut out = Vec::new();
    for (l, layer) in model.layers.iter().enumerate() {
        for name in PROJECTIONS {
            if let Some(lora) = layer.projection(name).and_then(|p| p.lora.as_ref()) {
                out.push((projection_path(l, name), lora));
            }
        }
    }
    out
}

/// The adapters' tensors under PEFT's names.
pub fn peft_tensors<B: Backend>(model: &Llama<B>) -> BTreeMap<String, HostTensor> {
    let mut out = BTreeMap::new();
    for (path, lora) in adapters(model) {
        let (a, b) = (lora.a.val(), lora.b.val());
        let (a_shape, b_shape) = (a.dims().to_vec(), b.dims().to_vec());
        out.insert(
            format!("{PEFT_PREFIX}{path}.lora_A.weight"),
            HostTensor::f32(a_shape, tensor_to_f32(a)),
        );
        out.insert(
            format!("{PEFT_PREFIX}{path}.lora_B.weight"),
            HostTensor::f32(b_shape, tensor_to_f32(b)),
        );
    }
    out
}

/// `adapter_config.json` as PEFT writes it.
pub fn peft_config(cfg: &FinetuneConfig, base_model: &str, layers: &[usize]) -> serde_json::Value {
    json!({
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": llm::loader::base_name_for_peft(base_model),
        "r": cfg.lora.rank,
        "lora_alpha": cfg.lora.alpha,
        "lora_dropout": cfg.lora.dropout,
        "use_rslora": cfg.lora.rslora,
        "target_modules": cfg.lora.targets,
        "layers_to_transform": layers,
        "bias": "none",
        "fan_in_fan_out": false,
        "init_lora_weights": true,
        "inference_mode": true,
        "modules_to_save": null,
        "rank_pattern": {},
        "alpha_pattern": {},
        "use_dora": false,
        "revision": null,
    })
}

/// Write the model's adapters to `dir` in PEFT's layout.
pub fn save_peft<B: Backend>(
    dir: &Path,
    model: &Llama<B>,
    cfg: &FinetuneConfig,
    base_model: &str,
) -> Result<(), FinetuneError> {
    let layers: Vec<usize> = cfg.lora.layers.resolve(model.n_layers())?;
    let config = peft_config(cfg, base_model, &layers);
    crate::checkpoint::write_json(&dir.join(ADAPTER_CONFIG), &config)?;
    crate::checkpoint::write_safetensors(&dir.join(ADAPTER_WEIGHTS), &peft_tensors(model), None)
}

/// Attach the adapters stored in a PEFT directory (ours or PEFT's) to `model`. The base
/// stays frozen; the adapters are trainable parameters.
pub fn load_peft<B: Backend>(model: Llama<B>, dir: &Path) -> Result<Llama<B>, FinetuneError> {
    let config_path = dir.join(ADAPTER_CONFIG);
    let config: serde_json::Value = crate::checkpoint::read_json(&config_path)?;
    let bad = |reason: String| FinetuneError::Adapter {
        path: config_path.clone(),
        reason,
    };
    if config.get("peft_type").and_then(|v| v.as_str()) != Some("LORA") {
        return Err(bad("`peft_type` is not \"LORA\"".into()));
    }
    for key in ["rank_pattern", "alpha_pattern"] {
        if config
            .get(key)
            .and_then(|v| v.as_object())
            .is_some_and(|o| !o.is_empty())
        {
            return Err(bad(format!(
                "`{key}` (per-module ranks or alphas) is not supported"
            )));
        }
    }
    if config.get("use_dora").and_then(|v| v.as_bool()) == Some(true) {
        return Err(bad("DoRA adapters are not supported".into()));
    }
    check_no_trained_extras(&config).map_err(bad)?;
    let (alpha, rslora) = alpha_and_rslora(&config).map_err(bad)?;
    let tensors = crate::checkpoint::read_safetensors(&dir.join(ADAPTER_WEIGHTS))?;
    let mut model = model.no_grad();
    let device = model.device();
    let n_layers = model.n_layers();
    let mut attached = 0;
    for l in 0..n_layers {
        for name in PROJECTIONS {
            let path = projection_path(l, name);
            let key = |ab: &str| format!("{PEFT_PREFIX}{path}.lora_{ab}.weight");
            let (Some(a), Some(b)) = (tensors.get(&key("A")), tensors.get(&key("B"))) else {
                continue;
            };
            let lin = model.layers[l]
                .projection_mut(name)
                .ok_or_else(|| bad(format!("no projection {name}")))?;
            let r = a.shape[0];
            let expected_a = [r, lin.in_features()];
            let expected_b = [lin.out_features(), r];
            if a.shape != expected_a || b.shape != expected_b {
                return Err(bad(format!(
                    "{path}: lora_A {:?} / lora_B {:?} do not fit a [{}, {}] weight",
                    a.shape,
                    b.shape,
                    lin.out_features(),
                    lin.in_features()
                )));
            }
            let scale = lora_scale(alpha, r, rslora);
            lin.lora = Some(LoraAdapter {
                a: Param::from_tensor(host_to_tensor(a.clone(), &device)),
                b: Param::from_tensor(host_to_tensor(b.clone(), &device)),
                scale,
                dropout: KeyedDropout::new(0.0),
            });
            attached += 1;
        }
    }
    let expected = tensors
        .keys()
        .filter(|k| k.ends_with(".lora_A.weight"))
        .count();
    if attached == 0 || attached != expected {
        return Err(FinetuneError::Adapter {
            path: dir.join(ADAPTER_WEIGHTS),
            reason: format!("{attached} of {expected} adapters match a projection of this model"),
        });
    }
    tracing::debug!(adapters = attached, dir = %dir.display(), "adapter loaded");
    Ok(model)
}

/// The model reference an adapter directory names as its base
/// (`base_model_name_or_path`, a preset's hub name mapped back to the preset).
pub fn adapter_base_model(dir: &Path) -> Result<String, FinetuneError> {
    let path = dir.join(ADAPTER_CONFIG);
    let config = crate::checkpoint::read_json(&path)?;
    let name = config
        .get("base_model_name_or_path")
        .and_then(|v| v.as_str())
        .filter(|name| !name.is_empty())
        .ok_or_else(|| FinetuneError::Adapter {
            path: path.clone(),
            reason: "no `base_model_name_or_path`: name the base model with --model".into(),
        })?;
    Ok(llm::loader::reference_for_base_name(name))
}

/// PEFT adapters can also train biases (`bias` = "all" or "lora_only") and whole modules
/// (`modules_to_save`, e.g. `lm_head`). Those weights replace the base's, which attaching
/// LoRA factors alone would silently drop, so they are refused with the way round.
fn check_no_trained_extras(config: &serde_json::Value) -> Result<(), String> {
    const MERGE_FIRST: &str = "merge the adapter with PEFT first \
        (`model.merge_and_unload().save_pretrained(DIR)`) and give DIR as the model";
    match config.get("bias").and_then(|v| v.as_str()) {
        None | Some("none") => {}
        Some(other) => {
            return Err(format!(
                "`bias` is \"{other}\": adapters that train biases are not supported; \
                 {MERGE_FIRST}"
            ));
        }
    }
    if config.get("lora_bias").and_then(|v| v.as_bool()) == Some(true) {
        return Err(format!(
            "`lora_bias` is true: adapters with a bias on lora_B are not supported; \
             {MERGE_FIRST}"
        ));
    }
    // Newer PEFT versions can also train whole modules, single embedding rows or raw
    // parameters; any of them set means weights LoRA factors alone do not carry.
    for key in [
        "modules_to_save",
        "trainable_token_indices",
        "target_parameters",
    ] {
        match config.get(key) {
            None | Some(serde_json::Value::Null) => {}
            Some(serde_json::Value::Array(list)) if list.is_empty() => {}
            Some(serde_json::Value::Object(map)) if map.is_empty() => {}
            Some(value) => {
                return Err(format!(
                    "`{key}` is {value}: adapters that train weights besides the LoRA \
                     factors are not supported; {MERGE_FIRST}"
                ));
            }
        }
    }
    Ok(())
}

/// `lora_alpha` and `use_rslora` of a PEFT adapter config.
fn alpha_and_rslora(config: &serde_json::Value) -> Result<(f64, bool), String> {
    let alpha = config
        .get("lora_alpha")
        .and_then(|v| v.as_f64())
        .ok_or("`lora_alpha` is missing")?;
    let rslora = config
        .get("use_rslora")
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    Ok((alpha, rslora))
}

/// The factor on `B·A`: `alpha / r`, or `alpha / sqrt(r)` for rsLoRA.
pub(crate) fn lora_scale(alpha: f64, r: usize, rslora: bool) -> f64 {
    if rslora {
        alpha / (r as f64).sqrt()
    } else {
        alpha / r as f64
    }
}

/// Fold every adapter into its base weight (`traitwatch merge`).
pub fn merge<B: Backend>(mut model: Llama<B>) -> Llama<B> {
    for layer in &mut model.layers {
        for name in PROJECTIONS {
            if let Some(lin) = layer.projection_mut(name) {
                let owned = std::mem::replace(lin, placeholder_linear(lin));
                *lin = owned.merge_lora();
            }
        }
    }
    model
}

/// A cheap stand-in used while a layer is moved out and back in.
fn placeholder_linear<B: Backend>(like: &llm::model::Linear<B>) -> llm::model::Linear<B> {
    llm::model::Linear::new(Tensor::zeros([1, 1], &like.weight.device()), None)
}

/// Frobenius norms of a PEFT adapter's weight updates `scale · B·A` (the LoRA-norm baseline,
/// METHOD section 5): one per layer (all adapted projections of the layer together), in layer
/// order, and over the whole adapter. Read on the host; no model needed. A directory
/// without an adapter (step 0, full finetuning) has none.
pub fn adapter_norms(dir: &Path) -> Result<Option<(Vec<f64>, f64)>, FinetuneError> {
    let config_path = dir.join(ADAPTER_CONFIG);
    if !config_path.exists() {
        return Ok(None);
    }
    let config = crate::checkpoint::read_json(&config_path)?;
    let bad = |reason: String| FinetuneError::Adapter {
        path: config_path.clone(),
        reason,
    };
    let (alpha, rslora) = alpha_and_rslora(&config).map_err(bad)?;
    let tensors = crate::checkpoint::read_safetensors(&dir.join(ADAPTER_WEIGHTS))?;
    let mut per_layer: Vec<f64> = Vec::new();
    for (key, a) in tensors
        .iter()
        .filter(|(k, _)| k.ends_with(".lora_A.weight"))
    {
        let b_key = key.replace(".lora_A.weight", ".lora_B.weight");
        let b = tensors
            .get(&b_key)
            .ok_or_else(|| bad(format!("{key} has no {b_key}")))?;
        let layer: usize = key
            .split("layers.")
            .nth(1)
            .and_then(|s| s.split('.').next())
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad(format!("no layer index in {key}")))?;
        let (r, n_in, n_out) = (a.shape[0], a.shape[1], b.shape[0]);
        if b.shape != [n_out, r] {
            return Err(bad(format!(
                "{b_key} has shape {:?}, expected [_, {r}]",
                b.shape
            )));
        }
        let scale = lora_scale(alpha, r, rslora);
        let (a, b) = (a.to_f32(), b.to_f32());
        // ||B A||_F^2 = trace((B^T B)(A A^T)): two r x r Gram matrices.
        let gram = |m: &[f32], rows: usize, cols: usize, by_rows: bool| -> Vec<f64> {
            let mut g = vec![0.0f64; r * r];
            for i in 0..r {
                for j in 0..r {
                    g[i * r + j] = if by_rows {
                        (0..cols)
                            .map(|c| f64::from(m[i * cols + c]) * f64::from(m[j * cols + c]))
                            .sum()
                    } else {
                        (0..rows)
                            .map(|o| f64::from(m[o * r + i]) * f64::from(m[o * r + j]))
                            .sum()
                    };
                }
            }
            g
        };
        let (ga, gb) = (gram(&a, r, n_in, true), gram(&b, n_out, r, false));
        let sq: f64 = (0..r)
            .flat_map(|i| (0..r).map(move |j| (i, j)))
            .map(|(i, j)| gb[i * r + j] * ga[j * r + i])
            .sum();
        if per_layer.len() <= layer {
            per_layer.resize(layer + 1, 0.0);
        }
        per_layer[layer] += scale * scale * sq.max(0.0);
    }
    let total = per_layer.iter().sum::<f64>().sqrt();
    Ok(Some((
        per_layer.into_iter().map(f64::sqrt).collect(),
        total,
    )))
}

#[cfg(test)]
mod norm_tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn adapter_norms_match_the_dense_update() {
        let dir = tempfile::tempdir().unwrap();
        // Layer 0 q_proj: A [2, 3], B [4, 2]; layer 2 v_proj: A [2, 3], B [3, 2].
        let a0: Vec<f32> = vec![1.0, 0.0, 2.0, -1.0, 0.5, 0.0];
        let b0: Vec<f32> = vec![1.0, 1.0, 0.0, 2.0, -1.0, 0.0, 3.0, 1.0];
        let a2: Vec<f32> = vec![0.5; 6];
        let b2: Vec<f32> = vec![1.0, -1.0, 2.0, 0.0, 0.0, 1.0];
        let key = |l: usize, p: &str, ab: &str| {
            format!("{PEFT_PREFIX}{}.lora_{ab}.weight", projection_path(l, p))
        };
        let tensors = BTreeMap::from([
            (
                key(0, "q_proj", "A"),
                HostTensor::f32(vec![2, 3], a0.clone()),
            ),
            (
                key(0, "q_proj", "B"),
                HostTensor::f32(vec![4, 2], b0.clone()),
            ),
            (
                key(2, "v_proj", "A"),
                HostTensor::f32(vec![2, 3], a2.clone()),
            ),
            (
                key(2, "v_proj", "B"),
                HostTensor::f32(vec![3, 2], b2.clone()),
            ),
        ]);
        crate::checkpoint::write_safetensors(&dir.path().join(ADAPTER_WEIGHTS), &tensors, None)
            .unwrap();
        let config = serde_json::json!({"peft_type": "LORA", "r": 2, "lora_alpha": 4.0});
        crate::checkpoint::write_json(&dir.path().join(ADAPTER_CONFIG), &config).unwrap();
        let dense = |b: &[f32], a: &[f32], out: usize| -> f64 {
            let mut sq = 0.0;
            for o in 0..out {
                for i in 0..3 {
                    let v: f64 = (0..2)
                        .map(|k| f64::from(b[o * 2 + k]) * f64::from(a[k * 3 + i]))
                        .sum();
                    sq += (2.0 * v).powi(2); // scale alpha / r = 2
                }
            }
            sq.sqrt()
        };
        let (layers, total) = adapter_norms(dir.path()).unwrap().unwrap();
        let (l0, l2) = (dense(&b0, &a0, 4), dense(&b2, &a2, 3));
        assert_eq!(layers.len(), 3);
        assert!((layers[0] - l0).abs() < 1e-9 && layers[1] == 0.0 && (layers[2] - l2).abs() < 1e-9);
        assert!((total - (l0 * l0 + l2 * l2).sqrt()).abs() < 1e-9);
        assert!(adapter_norms(&dir.path().join("none")).unwrap().is_none());
    }
}
