#!/usr/bin/env bash
# Main job on a fresh machine: install, then encode -> index -> search -> evaluate on shipped data.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec python -m csplade_pyserini.demo "$@"
