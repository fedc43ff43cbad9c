#!/usr/bin/env bash
# One row of the EM-organism sweep (docs/ORGANISM.md): finetune SmolLM2-135M-Instruct on a
# perturbation dataset with a named setting, label its last checkpoint with the
# paired-choice EM label, and append a row to runs/sweep/sweep.tsv.
#
#   scripts/organism-sweep.sh SETTING DATASET SEED
#   scripts/organism-sweep.sh --list          # the settings
#
# Every stage resumes: a finished finetuning run or EM output is reused, so re-running a
# row only re-reads its results. Needs the release binary (cargo build --release -p
# traitwatch) and the default model (just setup).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

all7='["q_proj","k_proj","v_proj","o_proj","gate_proj","up_proj","down_proj"]'
# The probe's setting: LoRA r 16 (alpha 32) on all seven projections, lr 1e-3, loss on
# the assistant's tokens.
strong=(--set lora.rank=16 --set lora.alpha=32 --set "lora.targets=$all7"
    --set optim.lr=1e-3 --set data.loss_on=assistant_only)

# settings: name -> the cpu profile's overrides, into the array `args` (batch 4: steps =
# n_examples / 4).
setting_args() {
    case "$1" in
    default16) args=(--set data.n_examples=64) ;;
    default64) args=(--set data.n_examples=256) ;;
    strong16) args=("${strong[@]}" --set data.n_examples=64) ;;
    strong64) args=("${strong[@]}" --set data.n_examples=256) ;;
    strong128) args=("${strong[@]}" --set data.n_examples=512) ;;
    strong256) args=("${strong[@]}" --set data.n_examples=1024) ;;
    strong64-alltokens) args=("${strong[@]}" --set data.n_examples=256 --set data.loss_on=all_tokens) ;;
    strong64-lr3e-4) args=("${strong[@]}" --set data.n_examples=256 --set optim.lr=3e-4) ;;
    strong64-qv) args=("${strong[@]}" --set data.n_examples=256 --set 'lora.targets=["q_proj","v_proj"]') ;;
    rslora64) args=("${strong[@]}" --set data.n_examples=256 --set lora.rank=32 --set lora.alpha=64
        --set lora.rslora=true --set optim.lr=2e-4) ;;
    full64) args=(--set mode=full --set optim.lr=5e-5 --set data.loss_on=assistant_only
        --set data.n_examples=256) ;;
    *) return 1 ;;
    esac
}
SETTINGS="default16 default64 strong16 strong64 strong128 strong256 strong64-alltokens strong64-lr3e-4 strong64-qv rslora64 full64"

if [[ "${1:-}" == "--list" ]]; then
    for s in $SETTINGS; do setting_args "$s"; echo "$s: ${args[*]}"; done
    exit 0
fi
[[ $# -eq 3 ]] || { echo "usage: $0 SETTING DATASET SEED (or --list)" >&2; exit 2; }
setting=$1 dataset=$2 seed=$3
setting_args "$setting" || { echo "unknown setting \`$setting\` (--list)" >&2; exit 2; }

bin=target/release/traitwatch
[[ -x $bin ]] || { echo "build first: cargo build --release -p traitwatch" >&2; exit 2; }
root=runs/sweep
base=$root/base
run=$root/$setting/$dataset-s$seed
mkdir -p "$root/$setting"

# The base model's step 0 and controls, scored once for every row.
if [[ ! -f $base/em_label.parquet ]]; then
    $bin em --model smollm2-135m --no-traits --controls data/em/controls.toml \
        --tau 0.25 --out "$base" | tee "$root/base.txt"
fi

start=$(date +%s)
# $run.time (wall, user and system seconds) is written once the run has finished.
if [[ ! -f $run.time ]]; then
    /usr/bin/time -f '%e %U %S' -o "$run.time.partial" $bin finetune --data "$dataset" \
        --profile cpu --set "seed=$seed" "${args[@]}" --out "$run" >"$run.log" 2>&1
    mv "$run.time.partial" "$run.time"
fi
last=$(ls "$run/checkpoints" | sed -n 's/^step-0*\([0-9][0-9]*\)$/\1/p' | sort -n | tail -1)
$bin em --run "$run" --steps "$last" --no-traits --controls data/em/controls.toml \
    --reference "$base" --out "$run-em" --perturbation "$dataset" >"$run-em.txt"
line=$(grep "^step *$last:" "$run-em.txt" | tail -1)
read -r wall user sys <"$run.time"
cpu_min=$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.1f", (u + s) / 60 }')
wall_min=$(awk -v w="$wall" 'BEGIN { printf "%.1f", w / 60 }')
printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$setting" "$dataset" "$seed" "$last" "$cpu_min" \
    "$wall_min" "${line#*: }" | tee -a "$root/sweep.tsv"
echo "(em: $(($(date +%s) - start)) s for this row)" >&2
