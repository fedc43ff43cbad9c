//! Trainable parameters by name: collecting their gradients, applying optimizer updates,
//! and reading or writing them as HF-named tensors.
//!
//! Names are module paths joined by dots, as burn's visitors report them
//! (`layers.3.self_attn.q_proj.lora.a`, `embed_tokens`, `norm.weight`).

use crate::config::OptimSettings;
use crate::optim::AdamW;
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::Tensor;
use burn::tensor::backend::{AutodiffBackend, Backend};
use llm::Llama;
use llm::model::tensor_to_f32;
use llm::weights::HostTensor;
use std::collections::BTreeMap;

/// Flattened gradients of the trainable parameters, by name.
pub type Grads<B> = BTreeMap<String, Tensor<B, 1>>;

struct GradCollector<'a, B: AutodiffBackend> {
    path: Vec<String>,
    grads: &'a B::Gradients,
    into: &'a mut Grads<B::InnerBackend>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for GradCollector<'_, B> {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let Some(grad) = param.val().grad(self.grads) else {
            return;
        };
        let n = grad.shape().num_elements();
        let flat = grad.reshape([n]);
        add_grad(self.into, self.path.join("."), flat);
    }
}

/// Add the gradients in `grads` of every parameter of `model` that has one to `into`.
pub fn accumulate_grads<B: AutodiffBackend>(
    model: &Llama<B>,
    grads: &B::Gradients,
    into: &mut Grads<B::InnerBackend>,
) {
    model.visit(&mut GradCollector {
        path: Vec::new(),
        grads,
        into,
    });
}

/// Add `more` into `into`, parameter by parameter.
pub fn add_grads<B: Backend>(into: &mut Grads<B>, more: Grads<B>) {
    for (name, g) in more {
        add_grad(into, name, g);
    }
}

fn add_grad<B: Backend>(into: &mut Grads<B>, name: String, g: Tensor<B, 1>) {
    let sum = match into.remove(&name) {
        Some(prev) => prev + g,
        None => g,
    };
    into.insert(name, sum);
}

/// The global L2 norm of all gradients.
pub fn global_norm<B: Backend>(grads: &Grads<B>) -> f64 {
    grads
        .values()
        .map(|g| tensor_to_f32(g.clone().square().sum())[0] as f64)
        .sum::<f64>()
        .sqrt()
}

struct Updater<'a, B: AutodiffBackend> {
    path: Vec<String>,
    grads: &'a Grads<B::InnerBackend>,
    optimizer: &'a mut AdamW<B::InnerBackend>,
    lr: f64,
    grad_scale: f64,
    cfg: &'a OptimSettings,
}

impl<B: AutodiffBackend> ModuleMapper<B> for Updater<'_, B> {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let name = self.path.join(".");
        let Some(grad) = self.grads.get(&name) else {
            return param;
        };
        let (id, tensor, mapper) = param.consume();
        let dims = tensor.dims();
        let inner = tensor.inner();
        let n = inner.shape().num_elements();
        let grad = grad.clone().mul_scalar(self.grad_scale);
        let updated = self
            .optimizer
            .update(&name, inner.reshape([n]), grad, self.lr, self.cfg);
        let value = Tensor::from_inner(updated.reshape(dims)).require_grad();
        Param::from_mapped_value(id, value, mapper)
    }
}

/// One AdamW step over every parameter that has a gradient in `grads`.
pub fn apply_update<B: AutodiffBackend>(
    model: Llama<B>,
    grads: &Grads<B::InnerBackend>,
    optimizer: &mut AdamW<B::InnerBackend>,
    lr: f64,
    grad_scale: f64,
    cfg: &OptimSettings,
) -> Llama<B> {
    optimizer.begin_step();
    model.map(&mut Updater {
        path: Vec::new(),
        grads,
        optimizer,
        lr,
        grad_scale,
        cfg,
    })
}

struct FreshLeaves;

impl<B: AutodiffBackend> ModuleMapper<B> for FreshLeaves {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, tensor, mapper) = param.consume();
        if !tensor.is_require_grad() {
            return Param::from_mapped_value(id, tensor, mapper);
        }
        let leaf = Tensor::from_inner(tensor.inner()).require_grad();
        Param::from_mapped_value(id, leaf, mapper)
    }
}

/// `model` with every trainable parameter re-made as a new autodiff leaf (same values,
/// shared storage).
pub fn fresh_leaves<B: AutodiffBackend>(model: Llama<B>) -> Llama<B> {
    model.map(&mut FreshLeaves)
}

struct Reader<'a> {
    path: Vec<String>,
    only: Option<&'a dyn Fn(&str) -> bool>,
    into: BTreeMap<String, HostTensor>,
}

impl<B: Backend> ModuleVisitor<B> for Reader<'_> {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let name = self.path.join(".");
        if self.only.is_some_and(|keep| !keep(&name)) {
            return;
        }
        let t = param.val();
        let shape = t.dims().to_vec();
        self.into
            .insert(name, HostTensor::f32(shape, tensor_to_f32(t)));
    }
}

/// Every float parameter (optionally only those whose name passes `keep`), by module path.
pub fn read_params<B: Backend>(
    model: &Llama<B>,
    keep: Option<&dyn Fn(&str) -> bool>,
) -> BTreeMap<String, HostTensor> {
    let mut reader = Reader {
        path: Vec::new(),
        only: keep,
        into: BTreeMap::new(),
    };
    model.visit(&mut reader);
    reader.into
}

struct Writer<'a, B: Backend> {
    path: Vec<String>,
    values: &'a BTreeMap<String, HostTensor>,
    device: B::Device,
    written: usize,
}

impl<B: Backend> ModuleMapper<B> for Writer<'_, B> {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let name = self.path.join(".");
        let Some(value) = self.values.get(&name) else {
            return param;
        };
        let (id, tensor, mapper) = param.consume();
        let dims = tensor.dims();
        if value.shape != dims {
            // Shapes were checked by the caller; keep the old value rather than panic.
            return Param::from_mapped_value(id, tensor, mapper);
        }
        let require_grad = tensor.is_require_grad();
        let mut new: Tensor<B, D> = llm::model::host_to_tensor(value.clone(), &self.device);
        if require_grad {
            new = new.require_grad();
        }
        self.written += 1;
        Param::from_mapped_value(id, new, mapper)
    }
}

/// Replace parameters by name; returns the model and how many were replaced.
pub fn write_params<B: Backend>(
    model: Llama<B>,
    values: &BTreeMap<String, HostTensor>,
) -> (Llama<B>, usize) {
    let device = model.device();
    let mut writer = Writer {
        path: Vec::new(),
        values,
        device,
        written: 0,
    };
    let model = model.map(&mut writer);
    let written = writer.written;
    (model, written)
}

/// Module path -> HF tensor name (`layers.3.mlp.up_proj.weight` -> `model.layers.3...`).
pub fn hf_name(path: &str) -> String {
    match path {
        "embed_tokens" => "model.embed_tokens.weight".into(),
        p if p.starts_with("lm_head.") => p.into(),
        p => format!("model.{p}"),
    }
}

/// HF tensor name -> module path (the inverse of [`hf_name`]).
pub fn module_path(hf: &str) -> String {
    match hf {
        "model.embed_tokens.weight" => "embed_tokens".into(),
        h => h.strip_prefix("model.").unwrap_or(h).into(),
    }
}
