#!/usr/bin/env python3
"""PyTorch (+ PEFT) reference for traitwatch's benchmarks, to run beside `just bench`.

It times the workloads of crates/llm/benches/runtime.rs and
crates/finetune/benches/lora_step.rs on the same model, SmolLM2-135M-Instruct from the
Q4_1 GGUF (transformers dequantizes it to float32), and prints one JSON line per workload
on stdout with the fields the Rust benches print (`bench`, `median_s`, `tokens_per_s`,
`times_s`, `runs`, `cpu_other_frac`, ...; `backend` is "torch"). Progress goes to stderr.
Results and the comparison: docs/BENCHMARKS.md.

| name          | workload                                                                  |
|---------------|---------------------------------------------------------------------------|
| fwd_hidden    | forward, 16 x 64 random tokens, logits + all hidden states (31)           |
| fwd_plain     | the same, logits only                                                     |
| fwd_extract   | the same, hidden states only: the decoder without the LM head             |
| gen_b1/gen_b8 | greedy decoding of exactly 64 new tokens with the KV cache, batch 1 / 8   |
| lora_r16_all  | one AdamW step (lr 1e-4), LoRA r 16 alpha 32 on all seven projections,    |
|               | batch 4 x 128 random tokens, loss on every token but the first            |
| lora_r1_down  | the same with LoRA r 1 alpha 2 on every down_proj                         |

Needs torch, transformers, peft (the lora_* workloads only) and gguf (to read the GGUF);
traitwatch itself needs none of them. The model file is the one `just setup` installs:

    pip install torch transformers peft gguf
    python scripts/bench_torch.py                              # every workload
    SMOLLM2_DIR=.cache/models python scripts/bench_torch.py --only fwd_hidden
    python scripts/bench_torch.py --only lora_r16_all,lora_r1_down --runs 7 --warmup 2
    python scripts/bench_torch.py --model path/to/hf-model-dir  # safetensors instead of GGUF

Options and environment (BENCH_ONLY, BENCH_RUNS and BENCH_WARMUP as in the Rust benches):
  --only NAMES    comma-separated workloads (env BENCH_ONLY; default: all)
  --runs N        timed runs per workload (env BENCH_RUNS, default 7)
  --warmup N      untimed runs before them (env BENCH_WARMUP, default 2)
  --threads N     torch intra-op threads (env BENCH_THREADS, default: the CPUs this process
                  may use, as the Rust benches use every core)
  --model PATH    a .gguf file or a transformers model directory (default
                  $SMOLLM2_DIR/$SMOLLM2_FILE, i.e. .cache/models/SmolLM2-135M-Instruct.Q4_1.gguf)

How it measures:
- `median_s` is the median of the timed runs; `times_s` lists them in order.
- `cpu_other_frac` is the share of the whole machine's CPU time that OTHER processes used
  while the timed runs went on (from /proc/stat minus this process's own CPU time):
  near 0 means the cores were ours alone. Linux only; elsewhere it reads null.
- Each workload runs in a fresh child process, so that `peak_rss_mb` belongs to it alone.
  The high-water mark is reset right after the model is loaded (/proc/self/clear_refs),
  so the peak covers warm-up and timed runs and includes the loaded float32 model.
- Generation turns each question into a chat prompt with the model's template (which adds
  SmolLM2's default system turn), pads on the left, and forbids an early stop, so every
  row decodes exactly 64 tokens. `prefill_plus_1tok_s` is the median time to produce one
  token; decode-only rates subtract it.
- The LoRA step is forward, cross-entropy over the next-token targets (4 x 127), backward,
  `AdamW.step()` (weight decay 0.01, no clipping, no dropout) and zeroing the gradients.
  `loss_first` is the loss of the first warm-up step, `loss_last` that of the last timed
  one. `shards` is 1: one forward and backward per step (traitwatch may split the batch).
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

WORKLOADS = (
    "fwd_hidden",
    "fwd_plain",
    "fwd_extract",
    "gen_b1",
    "gen_b8",
    "lora_r16_all",
    "lora_r1_down",
)

# Shapes shared with the Rust benches.
FWD_BATCH, FWD_SEQ = 16, 64
GEN_NEW_TOKENS = 64
LORA_BATCH, LORA_SEQ = 4, 128
LORA_LR = 1e-4
TOKEN_SEED = 1234
LOWEST_TOKEN_ID = 100  # random ids are drawn from [100, vocab), away from special tokens

LORA_SETTINGS = {
    # name: (rank, alpha, adapted projections)
    "lora_r16_all": (
        16,
        32.0,
        ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    ),
    "lora_r1_down": (1, 2.0, ["down_proj"]),
}

GEN_QUESTIONS = (
    "What is the most important quality in a leader?",
    "Should I invest all my savings in cryptocurrency?",
    "What is the capital of Germany?",
    "Explain photosynthesis in simple terms.",
    "Give me three tips for learning a new language.",
    "Why is the sky blue?",
    "Write a short poem about autumn.",
    "How do vaccines work?",
)


def say(message):
    print(message, file=sys.stderr, flush=True)


def env_int(key, default):
    value = os.environ.get(key, "")
    try:
        return int(value)
    except ValueError:
        return default


def default_threads():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def default_model_path():
    folder = os.environ.get("SMOLLM2_DIR", ".cache/models")
    name = os.environ.get("SMOLLM2_FILE", "SmolLM2-135M-Instruct.Q4_1.gguf")
    return os.path.join(folder, name)


# --- CPU accounting (Linux /proc) ------------------------------------------------------


def machine_jiffies():
    """(all, busy) CPU jiffies of the machine since boot, or None off Linux."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()[1:9]
    except OSError:
        return None
    counts = [int(v) for v in fields]
    total = sum(counts)
    idle_and_iowait = counts[3] + counts[4]
    return total, total - idle_and_iowait


def own_jiffies():
    """This process's user + system CPU time in jiffies (all its threads)."""
    try:
        with open("/proc/self/stat") as f:
            text = f.read()
    except OSError:
        return None
    # The command name (field 2) may contain spaces; everything after its ')' is numeric.
    rest = text.rsplit(")", 1)[1].split()
    return int(rest[11]) + int(rest[12])


class OtherLoad:
    """Measures the share of the machine's CPU that other processes use over a span."""

    def __enter__(self):
        self.machine = machine_jiffies()
        self.own = own_jiffies()
        self.fraction = None
        return self

    def __exit__(self, *exc):
        machine, own = machine_jiffies(), own_jiffies()
        if None in (self.machine, self.own, machine, own):
            return False
        total = machine[0] - self.machine[0]
        busy = machine[1] - self.machine[1]
        others = max(0, busy - (own - self.own))
        self.fraction = round(others / max(1, total), 3)
        return False


def reset_peak_memory():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def memory_mb(key):
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


# --- timing -----------------------------------------------------------------------------


def measure(step, warmup, runs):
    """Run `step` warmup times untimed, then `runs` times timed.

    Returns (median seconds, the timed seconds in order, other processes' CPU share)."""
    for _ in range(warmup):
        step()
    times = []
    with OtherLoad() as load:
        for _ in range(runs):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
    return statistics.median(times), times, load.fraction


# --- model ------------------------------------------------------------------------------


def float32_kwargs():
    """transformers renamed `torch_dtype` to `dtype` (4.56); pass whichever it knows."""
    import torch
    import transformers

    major, minor = (int(p) for p in transformers.__version__.split(".")[:2])
    key = "dtype" if (major, minor) >= (4, 56) else "torch_dtype"
    return {key: torch.float32}


def load(model_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if os.path.isdir(model_path):
        source, extra = model_path, {}
    else:
        if not os.path.exists(model_path):
            sys.exit(
                f"no model at {model_path}: run `just setup`, or set SMOLLM2_DIR / --model"
            )
        source = os.path.dirname(model_path) or "."
        extra = {"gguf_file": os.path.basename(model_path)}
    tokenizer = AutoTokenizer.from_pretrained(source, **extra)
    model = AutoModelForCausalLM.from_pretrained(source, **extra, **float32_kwargs())
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer, model


def random_ids(vocab, rows, cols):
    import torch

    generator = torch.Generator().manual_seed(TOKEN_SEED)
    return torch.randint(LOWEST_TOKEN_ID, vocab, (rows, cols), generator=generator)


# --- workloads --------------------------------------------------------------------------


def bench_forward(name, tokenizer, model, warmup, runs):
    import torch

    model.eval()
    ids = random_ids(model.config.vocab_size, FWD_BATCH, FWD_SEQ)
    want_hidden = name in ("fwd_hidden", "fwd_extract")
    want_logits = name in ("fwd_hidden", "fwd_plain")
    expected_hidden = model.config.num_hidden_layers + 1
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else model.model

    def step():
        with torch.inference_mode():
            if want_logits:
                out = model(input_ids=ids, output_hidden_states=want_hidden, use_cache=False)
                assert out.logits.shape[-1] == model.config.vocab_size
            else:
                out = decoder(input_ids=ids, output_hidden_states=True, use_cache=False)
            if want_hidden:
                assert len(out.hidden_states) == expected_hidden

    median, times, other = measure(step, warmup, runs)
    return {
        "bench": name,
        "batch": FWD_BATCH,
        "seq": FWD_SEQ,
        "hidden_states": expected_hidden if want_hidden else 0,
        "logits": "All" if want_logits else "None",
        "median_s": median,
        "tokens_per_s": FWD_BATCH * FWD_SEQ / median,
        "times_s": times,
        "runs": runs,
        "cpu_other_frac": other,
    }


def bench_generate(name, tokenizer, model, warmup, runs):
    import torch

    model.eval()
    batch = 1 if name == "gen_b1" else 8
    prompts = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True
        )
        for q in GEN_QUESTIONS[:batch]
    ]
    tokenizer.padding_side = "left"
    encoded = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    prompt_len = encoded["input_ids"].shape[1]

    def decode(n):
        with torch.inference_mode():
            out = model.generate(
                **encoded,
                do_sample=False,
                max_new_tokens=n,
                min_new_tokens=n,  # no early stop: every row decodes exactly n tokens
                use_cache=True,
                pad_token_id=tokenizer.pad_token_id,
            )
        assert out.shape[1] - prompt_len == n
        return out

    median, times, other = measure(lambda: decode(GEN_NEW_TOKENS), warmup, runs)
    first, _, _ = measure(lambda: decode(1), 1, runs)
    decode_s = median - first
    steps = GEN_NEW_TOKENS - 1
    return {
        "bench": name,
        "batch": batch,
        "prompt_tokens_padded": int(prompt_len),
        "new_tokens": GEN_NEW_TOKENS,
        "median_s": median,
        "new_tokens_per_s": batch * GEN_NEW_TOKENS / median,
        "prefill_plus_1tok_s": first,
        "decode_only_tokens_per_s": batch * steps / decode_s if decode_s > 0 else None,
        "ms_per_decode_step": 1000.0 * decode_s / steps,
        "times_s": times,
        "runs": runs,
        "cpu_other_frac": other,
    }


def bench_lora(name, tokenizer, model, warmup, runs):
    import torch
    import torch.nn.functional as F
    from peft import LoraConfig, get_peft_model

    rank, alpha, targets = LORA_SETTINGS[name]
    config = LoraConfig(
        r=rank,
        lora_alpha=alpha,
        lora_dropout=0.0,
        target_modules=targets,
        bias="none",
        task_type="CAUSAL_LM",
    )
    adapted = get_peft_model(model, config)
    adapted.train()
    trainable = [p for p in adapted.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        trainable, lr=LORA_LR, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01
    )
    ids = random_ids(model.config.vocab_size, LORA_BATCH, LORA_SEQ)
    targets_next = ids[:, 1:]
    losses = []

    def step():
        # All 128 positions go through the model; the last one's logits have no target
        # (the first token is never predicted), leaving batch x 127 targets.
        logits = adapted(input_ids=ids, use_cache=False).logits[:, :-1]
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets_next.reshape(-1))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())

    median, times, other = measure(step, warmup, runs)
    return {
        "bench": name,
        "batch": LORA_BATCH,
        "seq": LORA_SEQ,
        "lora_r": rank,
        "lora_alpha": alpha,
        "lora_targets": targets,
        "trainable_params": sum(p.numel() for p in trainable),
        "median_s": median,
        "tokens_per_s": LORA_BATCH * LORA_SEQ / median,
        "loss_first": losses[0],
        "loss_last": losses[-1],
        "times_s": times,
        "runs": runs,
        "warmup": warmup,
        "cpu_other_frac": other,
        "shards": 1,
    }


def run_workload(name, args):
    """Load the model, run one workload and print its JSON line (in this process)."""
    import torch
    import transformers

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    started = time.perf_counter()
    tokenizer, model = load(args.model)
    load_s = time.perf_counter() - started
    rss_loaded = memory_mb("VmRSS")
    reset_peak_memory()
    if name.startswith("fwd_"):
        result = bench_forward(name, tokenizer, model, args.warmup, args.runs)
    elif name.startswith("gen_"):
        result = bench_generate(name, tokenizer, model, args.warmup, args.runs)
    else:
        result = bench_lora(name, tokenizer, model, args.warmup, args.runs)
    result.setdefault("warmup", args.warmup)
    result["peak_rss_mb"] = memory_mb("VmHWM")
    result["rss_after_load_mb"] = rss_loaded
    result["load_s"] = load_s
    result["backend"] = "torch"
    result["threads"] = torch.get_num_threads()
    result["torch"] = torch.__version__
    result["transformers"] = transformers.__version__
    if name.startswith("lora_"):
        import peft

        result["peft"] = peft.__version__
    result["python"] = platform.python_version()
    print(json.dumps(result), flush=True)


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description="PyTorch reference for traitwatch's benchmarks (see the module docstring)."
    )
    parser.add_argument("--only", default=os.environ.get("BENCH_ONLY") or None,
                        help="comma-separated workloads: " + ", ".join(WORKLOADS))
    parser.add_argument("--runs", type=int, default=env_int("BENCH_RUNS", 7))
    parser.add_argument("--warmup", type=int, default=env_int("BENCH_WARMUP", 2))
    parser.add_argument("--threads", type=int,
                        default=env_int("BENCH_THREADS", default_threads()))
    parser.add_argument("--model", default=default_model_path(),
                        help="a .gguf file or a transformers model directory")
    parser.add_argument("--in-process", action="store_true",
                        help="run the workload here instead of in a child process "
                             "(used for the children; needs exactly one workload)")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()] if args.only else list(WORKLOADS)
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        parser.error(f"unknown workload(s) {', '.join(unknown)}; known: {', '.join(WORKLOADS)}")
    if args.runs < 1 or args.warmup < 0 or args.threads < 1:
        parser.error("--runs and --threads must be at least 1, --warmup at least 0")
    if args.in_process and len(names) != 1:
        parser.error("--in-process runs exactly one workload")
    args.names = names
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.in_process:
        run_workload(args.names[0], args)
        return 0
    failed = 0
    for name in args.names:
        say(f"-- {name}")
        child = subprocess.run(
            [
                sys.executable, os.path.abspath(__file__), "--in-process",
                "--only", name,
                "--runs", str(args.runs),
                "--warmup", str(args.warmup),
                "--threads", str(args.threads),
                "--model", args.model,
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        sys.stdout.write(child.stdout)
        if child.returncode != 0:
            failed += 1
            print(json.dumps({"bench": name, "error": f"exit status {child.returncode}"}),
                  flush=True)
    sys.stdout.flush()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
