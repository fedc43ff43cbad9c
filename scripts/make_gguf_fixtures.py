#!/usr/bin/env python3
"""Random GGUF tensors of every type traitwatch dequantizes, with gguf-py's f32 values for them.

Writes crates/llm/tests/fixtures/gguf_quants/quants.gguf, read by the Rust test
crates/llm/tests/gguf_quants.rs. For each type T the file holds two tensors of the same
shape (4 rows):

    T           random blocks of T, stored as is
    T.expected  float32, what gguf.quants.dequantize returns for those bytes

so the test checks our reader and our dequantizer against an independent implementation
(gguf-py, the Python package maintained alongside llama.cpp) without needing Python itself.

Block bytes are uniformly random (fixed seed), except that every f16 scale or min field is
overwritten with a finite value of moderate size, a few of them subnormal, so that the
dequantized values are finite and exercise the sign and every quant bit. Plain float types
get random bit patterns with the non-finite ones (exponent all ones) masked out.

Requirements (not needed by traitwatch itself; CI does not run this):

    python3 -m pip install gguf==0.19.0 numpy

    python3 scripts/make_gguf_fixtures.py          # (re)write the fixture, then re-read and verify it
"""
import importlib.metadata
import sys
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType as Q
from gguf import GGUFReader, GGUFWriter
from gguf.constants import GGML_QUANT_SIZES
from gguf.quants import dequantize

SEED = 20240611
ROWS = 4
OUT = Path(__file__).resolve().parent.parent / "crates/llm/tests/fixtures/gguf_quants/quants.gguf"

# Byte offsets of the f16 scale/min fields inside one block of each quantized type.
HALF_FIELDS = {
    Q.Q4_0: [0],
    Q.Q4_1: [0, 2],
    Q.Q5_0: [0],
    Q.Q5_1: [0, 2],
    Q.Q8_0: [0],
    Q.Q2_K: [80, 82],
    Q.Q3_K: [108],
    Q.Q4_K: [0, 2],
    Q.Q5_K: [0, 2],
    Q.Q6_K: [208],
}
# Plain float types: (bytes per element, integer view, mask of the exponent bits).
FLOATS = {
    Q.F32: (4, np.uint32, 0x7F800000),
    Q.F16: (2, np.uint16, 0x7C00),
    Q.BF16: (2, np.uint16, 0x7F80),
}


def random_halves(rng: np.random.Generator, n: int) -> np.ndarray:
    """n finite f16 values of either sign, log-uniform over [2^-8, 2], every fifth subnormal."""
    mags = np.exp2(rng.uniform(-8.0, 1.0, size=n))
    mags[::5] = rng.uniform(1e-7, 6e-5, size=len(mags[::5]))
    signs = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    return (signs * mags).astype(np.float16)


def quantized_rows(rng: np.random.Generator, qtype: Q) -> np.ndarray:
    """ROWS rows of random blocks with sane scale fields, as a uint8 array (ROWS, bytes/row)."""
    block_elems, block_bytes = GGML_QUANT_SIZES[qtype]
    # One block (256 elements) per row for the K-quants, four (128) for the 32-element formats.
    blocks_per_row = max(1, 128 // block_elems)
    n_blocks = ROWS * blocks_per_row
    blocks = rng.integers(0, 256, size=(n_blocks, block_bytes), dtype=np.uint8)
    for at in HALF_FIELDS[qtype]:
        blocks[:, at:at + 2] = random_halves(rng, n_blocks).view(np.uint8).reshape(n_blocks, 2)
    return blocks.reshape(ROWS, blocks_per_row * block_bytes)


def float_rows(rng: np.random.Generator, qtype: Q) -> np.ndarray:
    """ROWS rows of 64 random finite values of a plain float type, as raw bytes."""
    size, view, exp_mask = FLOATS[qtype]
    bits = rng.integers(0, np.iinfo(view).max, size=(ROWS, 64), dtype=view, endpoint=True)
    # An all-ones exponent is inf or NaN: clear its top bit to make the value finite.
    top_exp_bit = view(exp_mask & ~(exp_mask >> 1))
    non_finite = (bits & view(exp_mask)) == view(exp_mask)
    bits[non_finite] &= ~top_exp_bit
    return bits.view(np.uint8).reshape(ROWS, 64 * size)


def main() -> int:
    version = importlib.metadata.version("gguf")
    rng = np.random.default_rng(SEED)
    writer = GGUFWriter(str(OUT), arch="traitwatch-fixture")
    writer.add_string("traitwatch.fixture.generator", "scripts/make_gguf_fixtures.py")
    writer.add_string("traitwatch.fixture.gguf_py_version", version)
    writer.add_uint64("traitwatch.fixture.seed", SEED)
    expected = {}
    for qtype in [*FLOATS, *HALF_FIELDS]:
        raw = float_rows(rng, qtype) if qtype in FLOATS else quantized_rows(rng, qtype)
        values = np.ascontiguousarray(dequantize(raw, qtype), dtype=np.float32)
        if not np.isfinite(values).all():
            raise SystemExit(f"{qtype.name}: gguf-py produced non-finite values")
        writer.add_tensor(qtype.name, raw, raw_dtype=qtype)
        writer.add_tensor(f"{qtype.name}.expected", values)
        expected[qtype.name] = values
    OUT.parent.mkdir(parents=True, exist_ok=True)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()

    # Re-read the file to check that what the Rust test will see is what was dequantized.
    reader = GGUFReader(str(OUT))
    tensors = {t.name: t for t in reader.tensors}
    for name, values in expected.items():
        again = dequantize(np.asarray(tensors[name].data), tensors[name].tensor_type)
        stored = np.asarray(tensors[f"{name}.expected"].data)
        if not (np.array_equal(again.reshape(values.shape), values) and np.array_equal(stored, values)):
            raise SystemExit(f"{name}: the written file does not round-trip")
        print(f"{name:5} {str(values.shape):10} {tensors[name].n_bytes:5} bytes")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes) with gguf {version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
