#!/usr/bin/env python3
"""Tiny random HF models, one per architecture, with transformers' outputs for them.

Writes crates/llm/tests/fixtures/tiny/<arch>/ for llama, mistral, qwen2, gemma2 and
gemma3_text: config.json, model.safetensors (float32), tokenizer.json, tokenizer_config.json
(with a chat template) and reference.json, the numbers traitwatch's Rust runtime is tested
against. Every model is seeded, so a rerun with the same library versions writes the same files.

The tokenizer is a small byte-level BPE trained here on the paragraphs below, shared by all
five models (one copy per directory). Weights are drawn with a large enough spread (std 0.2)
that logits and hidden states are far from zero.

Needs torch, transformers, safetensors, tokenizers (not required by traitwatch itself; CI does
not run this).

    python scripts/make_tiny_fixtures.py            # (re)write the fixtures, then reload and verify them
    python scripts/make_tiny_fixtures.py --check    # only reload the written fixtures and verify them
"""
import argparse
import copy
import importlib.metadata
import json
import math
import sys
from pathlib import Path

import torch
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "crates/llm/tests/fixtures/tiny"
THREADS = 2
VOCAB = 320
WINDOW = 6
INIT_STD = 0.2
GREEDY_NEW = 8

# Ids 0..6, in this order, ahead of the 256 byte tokens and the merges.
SPECIALS = ["<pad>", "<eos>", "<bos>", "<|im_start|>", "<|im_end|>", "<start_of_turn>", "<end_of_turn>"]

TRAINING_TEXT = [
    "A small model is a good place to start. It runs in a blink, it fits in a test, and every "
    "number it prints can be checked by hand if need be. The point is not what it says but that "
    "two programs agree on what it says.",
    "The fox ran over the hill and down to the river, where the water was cold and the stones "
    "were smooth. There it stopped, looked back at the hill, and then went on along the bank.",
    "When the window slides, each token sees only the tokens just before it. The rest of the "
    "sequence is still there, in the cache, but the attention mask hides it from the query.",
    "def add(a, b):\n    return a + b\n\nfor i in range(10):\n    print(i, add(i, i))\n",
    "Numbers such as 12, 345 and 6789 appear now and then; so do dates like 2024-05-17 and "
    "times like 09:30. Punctuation, too: commas, full stops, colons; and (sometimes) brackets!",
    "What does the fox say? Nobody knows for sure, but the question has been asked many times, "
    "in many rooms, by many people who wanted to sound clever at the end of a long evening.",
]

CHATML = (
    "{%- for message in messages -%}"
    "{{ '<|im_start|>' ~ message['role'] ~ '\\n' ~ message['content'] ~ '<|im_end|>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)
# Llama 3 style: the template writes BOS itself.
CHATML_WITH_BOS = "{{- bos_token -}}" + CHATML
GEMMA_TURNS = (
    "{{- bos_token -}}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'system' -%}"
    "{{ raise_exception('This template has no system role; put instructions in the first user turn.') }}"
    "{%- endif -%}"
    "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}"
    "{{ '<start_of_turn>' ~ role ~ '\\n' ~ (message['content'] | trim) ~ '<end_of_turn>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\\n' }}{%- endif -%}"
)

SHORT = "The fox"
LONG = "The fox ran to the river bank, looked back at the hill and went on."
USER = "What does the fox say?"
SYSTEM = "You answer in one line."
BATCH = ["When the window slides, each token sees only a few before it.", "The fox ran."]


def spec(arch):
    """Config, seed, tokenizer choices and norm-weight centre for `arch`."""
    ids = {t: i for i, t in enumerate(SPECIALS)}
    common = dict(
        vocab_size=VOCAB, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
        max_position_embeddings=256, pad_token_id=ids["<pad>"], bos_token_id=ids["<bos>"],
    )
    chatml_tokens = dict(eos="<|im_end|>", eos_id=ids["<|im_end|>"])
    if arch == "llama":
        cfg = dict(model_type="llama", hidden_size=64, intermediate_size=64, num_hidden_layers=2,
                   rms_norm_eps=1e-5, tie_word_embeddings=True, hidden_act="silu",
                   rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
                   eos_token_id=ids["<|im_end|>"], **common)
        return dict(cfg=cfg, seed=101, add_bos=True, template=CHATML_WITH_BOS, system=True, norm_centre=1.0,
                    **chatml_tokens)
    if arch == "mistral":
        cfg = dict(model_type="mistral", hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                   rms_norm_eps=1e-5, tie_word_embeddings=False, hidden_act="silu", sliding_window=WINDOW,
                   rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
                   eos_token_id=ids["<|im_end|>"], **common)
        return dict(cfg=cfg, seed=202, add_bos=False, template=CHATML, system=True, norm_centre=1.0,
                    **chatml_tokens)
    if arch == "qwen2":
        cfg = dict(model_type="qwen2", hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                   rms_norm_eps=1e-6, tie_word_embeddings=False, hidden_act="silu", use_sliding_window=False,
                   rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
                   eos_token_id=ids["<|im_end|>"], **common)
        return dict(cfg=cfg, seed=303, add_bos=False, template=CHATML, system=True, norm_centre=1.0,
                    **chatml_tokens)
    if arch == "gemma2":
        cfg = dict(model_type="gemma2", hidden_size=32, intermediate_size=64, num_hidden_layers=4,
                   rms_norm_eps=1e-6, tie_word_embeddings=True, hidden_activation="gelu_pytorch_tanh",
                   query_pre_attn_scalar=24, attn_logit_softcapping=2.5, final_logit_softcapping=3.0,
                   sliding_window=WINDOW,
                   layer_types=["sliding_attention", "full_attention"] * 2,
                   rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
                   eos_token_id=ids["<eos>"], **common)
        return dict(cfg=cfg, seed=404, add_bos=True, template=GEMMA_TURNS, system=False, norm_centre=0.0,
                    eos="<eos>", eos_id=ids["<eos>"])
    if arch == "gemma3_text":
        cfg = dict(model_type="gemma3_text", hidden_size=32, intermediate_size=64, num_hidden_layers=4,
                   rms_norm_eps=1e-6, tie_word_embeddings=True, hidden_activation="gelu_pytorch_tanh",
                   query_pre_attn_scalar=32, attn_logit_softcapping=None, final_logit_softcapping=None,
                   sliding_window=WINDOW, sliding_window_pattern=3,
                   layer_types=["sliding_attention", "sliding_attention", "full_attention", "sliding_attention"],
                   rope_parameters={
                       "full_attention": {"rope_type": "default", "rope_theta": 100000.0},
                       "sliding_attention": {"rope_type": "default", "rope_theta": 1000.0},
                   },
                   eos_token_id=[ids["<eos>"], ids["<end_of_turn>"]], **common)
        return dict(cfg=cfg, seed=505, add_bos=True, template=GEMMA_TURNS, system=False, norm_centre=0.0,
                    eos="<eos>", eos_id=ids["<eos>"])
    raise ValueError(arch)


ARCHS = ["llama", "mistral", "qwen2", "gemma2", "gemma3_text"]


def sig(x, digits=6):
    if isinstance(x, torch.Tensor):
        return sig(x.detach().double().tolist(), digits)
    if isinstance(x, (list, tuple)):
        return [sig(v, digits) for v in x]
    x = float(x)
    if x == 0.0 or not math.isfinite(x):
        return x
    return float(f"{x:.{digits}g}")


def train_tokenizer(add_bos):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB, min_frequency=2, special_tokens=SPECIALS, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(TRAINING_TEXT, trainer)
    assert tok.get_vocab_size() == VOCAB, tok.get_vocab_size()
    for i, t in enumerate(SPECIALS):
        assert tok.token_to_id(t) == i, (t, tok.token_to_id(t))
    if add_bos:
        bos = SPECIALS.index("<bos>")
        tok.post_processor = processors.TemplateProcessing(
            single="<bos> $A", pair="<bos> $A <bos> $B", special_tokens=[("<bos>", bos)])
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return tok


def build_model(arch, s):
    cfg = dict(s["cfg"])
    model_type = cfg.pop("model_type")
    config = AutoConfig.for_model(model_type, **cfg)
    config._attn_implementation = "eager"
    torch.manual_seed(s["seed"])
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32, attn_implementation="eager").eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(s["norm_centre"] + INIT_STD * torch.randn_like(p))
            else:
                p.copy_(INIT_STD * torch.randn_like(p))
    return model


def write_dir(arch, s, model, tok):
    d = OUT / arch
    d.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(d, safe_serialization=True)
    gen = d / "generation_config.json"
    if gen.exists():
        gen.unlink()
    tok.save(str(d / "tokenizer.json"))
    tok_cfg = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<bos>",
        "eos_token": s["eos"],
        "pad_token": "<pad>",
        "add_bos_token": s["add_bos"],
        "add_eos_token": False,
        "model_max_length": s["cfg"]["max_position_embeddings"],
        "chat_template": s["template"],
    }
    (d / "tokenizer_config.json").write_text(json.dumps(tok_cfg, indent=1) + "\n")
    return d


def load_dir(d):
    model = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32, attn_implementation="eager").eval()
    tok = AutoTokenizer.from_pretrained(d)
    return model, tok


def position_ids_for(mask):
    return (mask.cumsum(-1) - 1).clamp(min=0)


@torch.inference_mode()
def forward(model, ids, mask=None):
    x = torch.tensor([ids]) if not isinstance(ids, torch.Tensor) else ids
    kw = {}
    if mask is not None:
        kw = {"attention_mask": mask, "position_ids": position_ids_for(mask)}
    return model(x, output_hidden_states=True, use_cache=False, **kw)


@torch.inference_mode()
def greedy(model, ids, n):
    seq = list(ids)
    for _ in range(n):
        logits = model(torch.tensor([seq]), use_cache=False).logits[0, -1]
        seq.append(int(logits.argmax()))
    return seq[len(ids):]


def prompt_entry(model, tok, name, *, text=None, messages=None):
    entry = {"name": name}
    if messages is not None:
        text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        ids = tok(text, add_special_tokens=False)["input_ids"]
        direct = tok.apply_chat_template(messages, tokenize=True, add_generation_prompt=True, return_dict=True)
        assert list(direct["input_ids"]) == ids, (direct["input_ids"], ids)
        entry["messages"] = messages
        entry["encoding"] = "tok.apply_chat_template(messages, add_generation_prompt=True), tokenized with add_special_tokens=False"
    else:
        ids = tok(text)["input_ids"]
        entry["encoding"] = "tok(text) (add_special_tokens=True: BOS prepended where the tokenizer adds it)"
    out = forward(model, ids)
    logits = out.logits[0]
    entry.update({
        "text": text,
        "token_ids": ids,
        "n_tokens": len(ids),
        "last_position_logits": sig(logits[-1]),
        "last_position_argmax": int(logits[-1].argmax()),
        "logits_first8_per_position": sig(logits[:, :8]),
        "hidden_states_last_position_first8": [sig(h[0, -1, :8]) for h in out.hidden_states],
        "hidden_states_last_position_l2norm": [sig(h[0, -1].norm()) for h in out.hidden_states],
        "greedy_8_new_token_ids": greedy(model, ids, GREEDY_NEW),
    })
    return entry, out


def batched_entry(model, tok):
    """Two prompts of different lengths, left-padded into one batch."""
    single = [tok(t)["input_ids"] for t in BATCH]
    n = max(len(s) for s in single)
    pad = tok.pad_token_id
    ids = torch.tensor([[pad] * (n - len(s)) + s for s in single])
    mask = torch.tensor([[0] * (n - len(s)) + [1] * len(s) for s in single])
    out = forward(model, ids, mask)
    alone = [forward(model, s).logits[0, -1] for s in single]
    diff = max(float((out.logits[b, -1] - alone[b]).abs().max()) for b in range(len(single)))
    assert diff < 1e-4, diff
    return {
        "NOTE": ("left padding with <pad>; attention_mask 0 on pads; position_ids = cumsum(mask) - 1 clamped at 0 "
                 "(what generate() passes), so each row's real tokens sit at positions 0.. as when run alone"),
        "texts": BATCH,
        "input_ids": ids.tolist(),
        "attention_mask": mask.tolist(),
        "position_ids": position_ids_for(mask).tolist(),
        "last_position_logits": [sig(out.logits[b, -1]) for b in range(len(single))],
        "max_abs_diff_vs_unbatched": sig(diff),
    }


@torch.inference_mode()
def sensitivity(arch, model, long_ids):
    """How far the long prompt's last logits move when one feature is turned off."""
    base = forward(model, long_ids).logits[0, -1]

    def variant(edit_cfg=None, edit_model=None):
        cfg = copy.deepcopy(model.config)
        if edit_cfg:
            edit_cfg(cfg)
        m = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32, attn_implementation="eager").eval()
        m.load_state_dict(model.state_dict())
        if edit_model:
            edit_model(m)
        return sig((forward(m, long_ids).logits[0, -1] - base).abs().max())

    out = {}
    if getattr(model.config, "sliding_window", None):
        def no_window(c):
            c.sliding_window = 1 << 20
        out["without_sliding_window"] = variant(no_window)
    if arch == "gemma2":
        def no_attn_cap(c):
            c.attn_logit_softcapping = None
        def no_final_cap(c):
            c.final_logit_softcapping = None
        out["without_attn_logit_softcapping"] = variant(no_attn_cap)
        out["without_final_logit_softcapping"] = variant(no_final_cap)
    if arch == "gemma3_text":
        def same_base(c):
            c.rope_parameters["sliding_attention"]["rope_theta"] = c.rope_parameters["full_attention"]["rope_theta"]
        out["local_layers_with_global_rope_base"] = variant(same_base)
    if arch.startswith("gemma"):
        def scalar_head_dim(c):
            c.query_pre_attn_scalar = c.head_dim
        out["query_pre_attn_scalar_as_head_dim"] = variant(scalar_head_dim)
    if arch == "qwen2":
        def zero_bias(m):
            for name, p in m.named_parameters():
                if name.endswith(".bias"):
                    p.zero_()
        out["without_qkv_biases"] = variant(edit_model=zero_bias)
    return out


def reference(arch, s, model, tok):
    cfg = model.config
    emb = model.get_input_embeddings()
    scale = float(getattr(emb, "embed_scale", torch.tensor(1.0)))
    prompts = []
    short, out = prompt_entry(model, tok, "short", text=SHORT)
    # Check the stated hidden_states[0] convention.
    ids = torch.tensor(short["token_ids"])
    h0 = emb.weight[ids] * (emb.embed_scale if hasattr(emb, "embed_scale") else 1.0)
    assert torch.allclose(out.hidden_states[0][0], h0, atol=0, rtol=0)
    prompts.append(short)
    long, _ = prompt_entry(model, tok, "long", text=LONG)
    assert long["n_tokens"] > 2 * WINDOW, long["n_tokens"]
    prompts.append(long)
    messages = ([{"role": "system", "content": SYSTEM}] if s["system"] else []) + [{"role": "user", "content": USER}]
    chat, _ = prompt_entry(model, tok, "chat", messages=messages)
    prompts.append(chat)

    rejects_system = None
    if not s["system"]:
        try:
            tok.apply_chat_template([{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}],
                                    tokenize=False, add_generation_prompt=True)
            rejects_system = False
        except Exception:
            rejects_system = True
        assert rejects_system

    n_layers = cfg.num_hidden_layers
    gemma = arch.startswith("gemma")
    ref = {
        "arch": arch,
        "model_class": type(model).__name__,
        "versions": {
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "tokenizers": importlib.metadata.version("tokenizers"),
            "safetensors": importlib.metadata.version("safetensors"),
        },
        "dtype": "float32",
        "attn_implementation": "eager",
        "seed": s["seed"],
        "init": (f"every weight N(0, {INIT_STD}) except norm weights: "
                 + ("N(0, 0.2) (Gemma multiplies by 1 + w)" if gemma else "1 + N(0, 0.2)")),
        "config_summary": {
            "hidden": cfg.hidden_size, "layers": n_layers, "heads": cfg.num_attention_heads,
            "kv_heads": cfg.num_key_value_heads, "head_dim": cfg.head_dim, "intermediate": cfg.intermediate_size,
            "vocab": cfg.vocab_size, "tie_word_embeddings": cfg.tie_word_embeddings,
            "sliding_window": getattr(cfg, "sliding_window", None),
            "layer_types": getattr(cfg, "layer_types", None),
            "rope_parameters": cfg.rope_parameters,
            "query_pre_attn_scalar": getattr(cfg, "query_pre_attn_scalar", None),
            "attn_logit_softcapping": getattr(cfg, "attn_logit_softcapping", None),
            "final_logit_softcapping": getattr(cfg, "final_logit_softcapping", None),
            "embed_scale": scale,
        },
        "tokenizer": {
            "kind": f"byte-level BPE trained by scripts/make_tiny_fixtures.py, vocab {VOCAB}",
            "special_token_ids": {t: i for i, t in enumerate(SPECIALS)},
            "adds_bos": s["add_bos"],
            "bos_token": "<bos>", "eos_token": s["eos"], "pad_token": "<pad>",
            "chat_template_rejects_system": rejects_system,
        },
        "conventions": {
            "hidden_states_index": (
                "hidden_states has num_hidden_layers + 1 entries; hidden_states[0] = input of layer 0 = "
                + (f"embed_tokens(ids) * sqrt(hidden) (embed_scale = float32(sqrt({cfg.hidden_size})) = {scale!r}, "
                   "i.e. INCLUDING Gemma's embedding scaling)" if gemma else "embed_tokens(ids) (no scaling)")
                + f"; hidden_states[L] for 1<=L<={n_layers - 1} = residual stream after decoder layer L (1-based); "
                f"hidden_states[{n_layers}] = model.norm(output of layer {n_layers}) (HF replaces the last entry "
                "by the normed last_hidden_state)"),
            "logits": ("last_position_logits: all vocab entries at the last prompt position; logits_first8_per_position: "
                       "vocab ids 0..7 at every position, in order"
                       + ("; Gemma 2 logits are after final soft-capping" if arch == "gemma2" else "")),
            "sliding_window": (f"a sliding layer lets query i attend to keys j with i - {WINDOW} < j <= i "
                               f"(itself and the {WINDOW - 1} before it)"),
            "greedy": "greedy_8_new_token_ids: 8 argmax steps, full recompute each step, no KV cache, no stop on EOS",
            "rounding": "floats rounded to 6 significant digits",
            "suggested_tolerance": "fp32: |d| < 1e-4 abs on logits and hidden states",
        },
        "prompts": prompts,
        "feature_sensitivity_max_abs_logit_diff": {
            "NOTE": "last-position logits of the long prompt, this change vs the real model (shows the feature is exercised)",
            **sensitivity(arch, model, long["token_ids"]),
        },
    }
    if arch in ("mistral", "gemma3_text"):
        ref["batched_left_padded"] = batched_entry(model, tok)
    return ref


def compare(a, b, path="", tol=1e-5):
    """Numbers equal within `tol` relative (ints exactly), recursively; returns the mismatch paths."""
    bad = []
    if isinstance(a, dict) and isinstance(b, dict):
        for k in set(a) | set(b):
            if k == "versions":
                continue
            if k not in a or k not in b:
                bad.append(f"{path}/{k}: missing")
            else:
                bad += compare(a[k], b[k], f"{path}/{k}", tol)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            bad.append(f"{path}: length {len(a)} vs {len(b)}")
        else:
            for i, (x, y) in enumerate(zip(a, b)):
                bad += compare(x, y, f"{path}[{i}]", tol)
    elif isinstance(a, float) or isinstance(b, float):
        if not (isinstance(a, (int, float)) and isinstance(b, (int, float))):
            bad.append(f"{path}: {a!r} vs {b!r}")
        elif abs(a - b) > tol * max(1.0, abs(a), abs(b)):
            bad.append(f"{path}: {a} vs {b}")
    elif a != b:
        bad.append(f"{path}: {a!r} vs {b!r}")
    return bad


def size_of(d):
    return sum(f.stat().st_size for f in d.rglob("*") if f.is_file())


def check(arch):
    d = OUT / arch
    s = spec(arch)
    model, tok = load_dir(d)
    fresh = reference(arch, s, model, tok)
    stored = json.loads((d / "reference.json").read_text())
    bad = compare(stored, fresh)
    status = "ok" if not bad else f"{len(bad)} MISMATCHES: " + "; ".join(bad[:5])
    print(f"{arch}: reload check {status} ({size_of(d) // 1024} KiB)", file=sys.stderr)
    return not bad


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only verify the written fixtures")
    ap.add_argument("archs", nargs="*", default=ARCHS)
    args = ap.parse_args()
    torch.set_num_threads(THREADS)

    ok = True
    if not args.check:
        for arch in args.archs:
            s = spec(arch)
            tok_backend = train_tokenizer(s["add_bos"])
            model = build_model(arch, s)
            d = write_dir(arch, s, model, tok_backend)
            tok = AutoTokenizer.from_pretrained(d)
            ref = reference(arch, s, model, tok)
            (d / "reference.json").write_text(json.dumps(ref, indent=1, ensure_ascii=False) + "\n")
    for arch in args.archs:
        ok &= check(arch)
    total = size_of(OUT)
    print(f"fixtures/tiny: {total // 1024} KiB", file=sys.stderr)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
