//! The one place that picks a burn backend. Library crates are generic over `Backend`;
//! commands implement [`BackendJob`] and run on whichever backend `--backend` names,
//! among those compiled in (cargo features `wgpu`, `cuda`).

use anyhow::{Result, bail};
use burn::tensor::DType;
use burn::tensor::backend::Backend;
use clap::ValueEnum;
use std::sync::OnceLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendChoice {
    /// burn's flex CPU backend (always available; measured faster than ndarray here).
    Cpu,
    /// wgpu: Vulkan, Metal or DX12 GPUs (build with `--features wgpu`).
    Wgpu,
    /// CUDA GPUs (build with `--features cuda`).
    Cuda,
}

/// The type the frozen base weights are held in. Activations, norms, LoRA adapters, their
/// gradients and the optimizer state are f32 whatever this says (see
/// `llm::Llama::with_base_dtype`); 16 bits halve a 7-9B model's weight memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Precision {
    F32,
    F16,
    Bf16,
}

impl Precision {
    /// The base weights' dtype, `None` for f32 (no cast).
    pub fn base_dtype(self) -> Option<DType> {
        match self {
            Precision::F32 => None,
            Precision::F16 => Some(DType::F16),
            Precision::Bf16 => Some(DType::BF16),
        }
    }
}

/// `--precision`, set once by `main` before any command runs; models load through
/// `commands::load_model`, which reads it.
static PRECISION: OnceLock<Precision> = OnceLock::new();

/// The base-weight precision of this process (f32 until `main` sets it).
pub fn precision() -> Precision {
    PRECISION.get().copied().unwrap_or(Precision::F32)
}

/// Work that can run on any backend.
pub trait BackendJob {
    type Output;
    fn run<B: Backend>(self, device: B::Device) -> Result<Self::Output>;
}

/// Run `job` on the chosen backend.
pub fn dispatch<J: BackendJob>(
    choice: BackendChoice,
    precision: Precision,
    job: J,
) -> Result<J::Output> {
    tracing::debug!(?choice, ?precision, "backend");
    if PRECISION.set(precision).is_err() && self::precision() != precision {
        bail!("--precision was already set to {:?}", self::precision());
    }
    match choice {
        BackendChoice::Cpu => job.run::<burn::backend::Flex>(Default::default()),
        #[cfg(feature = "wgpu")]
        BackendChoice::Wgpu => {
            use burn::backend::wgpu::{Wgpu, WgpuDevice};
            if precision == Precision::Bf16 {
                bail!("wgpu has no bf16 support; use --precision f16 or f32");
            }
            ensure_starts::<Wgpu<f32>>(
                "wgpu",
                "no Vulkan, Metal or DX12 adapter was found (for a software one, install Mesa's lavapipe)",
            )?;
            job.run::<Wgpu<f32>>(WgpuDevice::default())
        }
        #[cfg(feature = "cuda")]
        BackendChoice::Cuda => {
            use burn::backend::cuda::{Cuda, CudaDevice};
            ensure_starts::<Cuda<f32>>(
                "CUDA",
                "no NVIDIA driver or GPU was found on this machine",
            )?;
            job.run::<Cuda<f32>>(CudaDevice::default())
        }
        #[allow(unreachable_patterns)]
        other => bail!(
            "backend {other:?} is not compiled into this binary; rebuild with `--features {}`",
            format!("{other:?}").to_lowercase()
        ),
    }
}

/// burn panics when a GPU backend cannot start (no driver, no adapter); probe it with one
/// tiny tensor and turn that panic into an error that says what is missing.
#[cfg(any(feature = "wgpu", feature = "cuda"))]
fn ensure_starts<B: Backend>(name: &str, missing: &str) -> Result<()> {
    use burn::tensor::Tensor;
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let probe = std::panic::catch_unwind(|| {
        Tensor::<B, 1>::zeros([1], &B::Device::default()).into_data();
    });
    std::panic::set_hook(previous);
    if probe.is_err() {
        bail!("the {name} backend could not start: {missing}");
    }
    Ok(())
}
