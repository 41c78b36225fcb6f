#!/usr/bin/env bash
# Here, before the GPU calls (eval/gpu/README.md): everything the two calls carry, and a checkout small enough.
#   bash eval/gpu/prepare.sh [--no-slim]
# 1. ../shared/device/prepare.sh: the base model's GGUF in two halves (.device/part1, .device/part2) and the kit
# 2. the torchao wheel for the GPU machine's Python 3.12 (.device/whl; bitsandbytes' 43 MB wheel does not fit)
# 3. the quantization study's setups (.device/qstudy: 40 SciFact and 40 Vaswani test queries, 200+ documents each)
# 4. (below, 5.) the optional training call's data
# 6. payload.py --slim: the shipped adapters leave the working tree (git keeps them; finish.sh restores them)
# .device/ is git-ignored (through .git/info/exclude). ~2 min; needs the package registry.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
bash ../shared/device/prepare.sh
mkdir -p .device/whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
    -d .device/whl torchao==0.18.0
rm -rf .device/qstudy
python3 eval/bench/quantization_study.py --phase prepare --work .device/qstudy
# 5. the optional training call's data (.device/train, ~5 MiB in xz): SciFact train-fit with its BM25 negatives
#    (smollm2_shipped_cpu.sh --data-only makes them, ~20 s), the dev split, and the SciFact and Vaswani corpora
VARIANT=echo bash eval/training/smollm2_shipped_cpu.sh --data-only
rm -rf .device/train && mkdir -p .device/train
xz -9 -T2 -c runs/data/scifact-train-fit.bm25.jsonl > .device/train/scifact-train-fit.bm25.jsonl.xz
cp runs/data/scifact-train-fit.bm25.jsonl.mined.json runs/data/scifact-dev.tsv runs/data/scifact-dev.qrels .device/train/
xz -9 -T2 -c ../shared/data/scifact/corpus.jsonl > .device/train/scifact-corpus.jsonl.xz
xz -9 -T2 -c ../shared/data/vaswani/corpus.jsonl > .device/train/vaswani-corpus.jsonl.xz
if [ "${1:-}" != --no-slim ]; then
    python3 eval/gpu/payload.py --slim
else
    python3 eval/gpu/payload.py
fi
