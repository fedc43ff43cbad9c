# traitwatch tasks. `just` lists them; each does its own set-up.

set shell := ["bash", "-euo", "pipefail", "-c"]

# Where installed models (and other caches) live.
export TRAITWATCH_CACHE := env("TRAITWATCH_CACHE", justfile_directory() / ".cache")

# List the recipes.
default:
    @just --list

# Fetch and verify the embedded default model (SmolLM2-135M-Instruct); no-op when present.
setup:
    bash scripts/fetch-default-model.sh

# Fetch and verify Gemma 3 270M (the real Gemma check of the runtime); no-op when present.
setup-gemma3:
    bash scripts/fetch-gemma3.sh

# Run the test suite (tests that need the real models run because setup installs them).
test: setup setup-gemma3
    cargo test --workspace --no-fail-fast

# Formatting and clippy, warnings as errors.
lint:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets -- -D warnings

# Type-check the GPU backends (they need no GPU to build).
check-backends:
    cargo check -p traitwatch --features wgpu
    cargo check -p traitwatch --features cuda

# The wgpu backend against the CPU backend (tiny models: logits, activations, LoRA steps);
# runs on any Vulkan adapter, Mesa's software lavapipe included, and says SKIPPED without one.
test-wgpu:
    cargo test -p traitwatch --features wgpu --test backend_check -- --nocapture

# The CUDA backend against the CPU backend, on a machine with an NVIDIA GPU.
test-cuda:
    cargo test -p traitwatch --features cuda --test backend_check -- --nocapture
    cargo run -p traitwatch --features cuda -- --backend cuda backend-check

# Link the CUDA build (release), proving it builds offline; run it where a GPU is.
build-cuda:
    cargo build --release -p traitwatch --features cuda

# Benchmarks on the default model: runtime, then LoRA training steps (results: docs/BENCHMARKS.md).
bench: setup
    cargo bench -p llm --bench runtime
    cargo bench -p finetune --bench lora_step

# The EM label's validation on a model: every control prompt's shift on the base model,
# and whether the protocol's tau (0.25 of the control scale) is valid for it.
em-controls model="smollm2-135m": setup
    cargo run --release -p traitwatch -- em --model {{model}} --no-traits \
        --controls data/em/controls.toml --tau 0.25 --out runs/em-controls/{{model}}

# One row of the EM-organism sweep (docs/ORGANISM.md): `just organism strong64 bad_medical 1`.
organism setting dataset seed: setup
    cargo build --release -p traitwatch
    scripts/organism-sweep.sh {{setting}} {{dataset}} {{seed}}

# Make a figure or table (fig1 ... fig11, tables, all), computing what the store lacks.
reproduce target="all" manifest="experiments/default.toml": setup
    cargo run --release -p traitwatch -- reproduce {{target}} --manifest {{manifest}}

# Start a one-node Slurm cluster here (Debian's slurm-wlm, root) and run the Slurm export
# for real on the tiny model: shared job, job array of cells, merge job.
slurm-smoke:
    scripts/slurm-one-node.sh
    cargo test -p traitwatch --test pipeline slurm -- --nocapture

# What a manifest runs: cells, stages, what is cached, an estimate of the work.
plan manifest="experiments/default.toml" *args:
    cargo run --release -p traitwatch -- plan {{manifest}} {{args}}

# Describe a model (preset, .gguf or HF directory).
inspect model="smollm2-135m": setup
    cargo run --release -p traitwatch -- inspect {{model}}

# Evaluate the monitor on an experiment's results: `just lopo --held-out bad_medical`,
# `just lopo --all`, `just lopo --held-out-types` (add --results DIR for another experiment).
lopo *args:
    cargo run --release -p lopo -- {{args}}
