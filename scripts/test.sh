#!/usr/bin/env bash
# Test suite on a fresh machine: install (with test extras), then pytest. Exits non-zero when a test fails.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh test
exec python -m pytest -ra "$@"
