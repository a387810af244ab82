#!/usr/bin/env bash
# Fresh machine -> everything the tests need (Debian tools included) -> the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --system
python3 -m pytest -q tests "$@"
