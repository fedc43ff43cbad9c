//! Linear layers that can carry a LoRA adapter, so finetuning attaches adapters to any
//! projection without rewriting the model.
//!
//! Weights keep HF's `[out, in]` layout (and adapters PEFT's), so checkpoints map 1:1 to
//! tensors; the forward multiplies by transposed views, which burn's matmul takes as
//! strides without copying.

use super::dropout::KeyedDropout;
use burn::module::{Module, Param};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

/// `x · wᵀ` for `x: [n, in]`, `w: [out, in]`. A weight held in half precision (frozen base
/// weights under `--precision bf16|f16`) multiplies a half copy of `x`, and the product
/// returns in `x`'s type, so the residual stream, norms and adapters stay in f32.
pub fn matmul_weight<B: Backend>(x: Tensor<B, 2>, w: Tensor<B, 2>) -> Tensor<B, 2> {
    let (xt, wt) = (x.dtype(), w.dtype());
    if xt == wt {
        x.matmul(w.transpose())
    } else {
        x.cast(wt).matmul(w.transpose()).cast(xt)
    }
}

/// `y = x·W + b + scale · dropout(x)·A·B` when an adapter is attached.
#[derive(Module, Debug)]
pub struct Linear<B: Backend> {
    /// `[out, in]`
    pub weight: Param<Tensor<B, 2>>,
    /// `[out]`
    pub bias: Option<Param<Tensor<B, 1>>>,
    pub lora: Option<LoraAdapter<B>>,
}

/// A low-rank update `W + scale · B·A`, in PEFT's layout.
#[derive(Module, Debug)]
pub struct LoraAdapter<B: Backend> {
    /// PEFT `lora_A`: `[r, in]`
    pub a: Param<Tensor<B, 2>>,
    /// PEFT `lora_B`: `[out, r]`
    pub b: Param<Tensor<B, 2>>,
    /// `alpha / r`, or `alpha / sqrt(r)` for rsLoRA.
    pub scale: f64,
    #[module(skip)]
    pub dropout: KeyedDropout,
}

impl<B: Backend> LoraAdapter<B> {
    pub fn rank(&self) -> usize {
        self.a.dims()[0]
    }

    /// The dense update `scale · B·A`, `[out, in]`.
    pub fn delta(&self) -> Tensor<B, 2> {
        self.b.val().matmul(self.a.val()).mul_scalar(self.scale)
    }
}

impl<B: Backend> Linear<B> {
    /// A layer from HF-layout `[out, in]` weights.
    pub fn new(weight: Tensor<B, 2>, bias: Option<Tensor<B, 1>>) -> Self {
        Self {
            weight: Param::from_tensor(weight),
            bias: bias.map(Param::from_tensor),
            lora: None,
        }
    }

    pub fn in_features(&self) -> usize {
        self.weight.dims()[1]
    }

    pub fn out_features(&self) -> usize {
        self.weight.dims()[0]
    }

    /// `x: [..., in] -> [..., out]`
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let dims = x.dims();
        let n: usize = dims[..D - 1].iter().product();
        let x2: Tensor<B, 2> = x.reshape([n, self.in_features()]);
        let mut y = matmul_weight(x2.clone(), self.weight.val());
        if let Some(lora) = &self.lora {
            // Scaling the rank-r intermediate rather than the [n, out] update saves a
            // full-width pass forward and backward.
            let dropped = lora.dropout.forward(x2);
            let update = dropped
                .matmul(lora.a.val().transpose())
                .mul_scalar(lora.scale)
                .matmul(lora.b.val().transpose());
            y = y + update;
        }
        if let Some(bias) = &self.bias {
            y = y + bias.val().unsqueeze_dim(0);
        }
        let mut out_dims = dims;
        out_dims[D - 1] = self.out_features();
        y.reshape(out_dims)
    }

    /// Fold the adapter into the weight and drop it (what `traitwatch merge` does).
    pub fn merge_lora(self) -> Self {
        match self.lora {
            None => self,
            Some(lora) => {
                let w = self.weight.val();
                let dtype = w.dtype();
                let merged = (w.cast(lora.a.val().dtype()) + lora.delta()).cast(dtype);
                Self {
                    weight: Param::from_tensor(merged.detach()),
                    bias: self.bias,
                    lora: None,
                }
            }
        }
    }
}
