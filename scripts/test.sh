#!/usr/bin/env bash
# The whole test suite, as CI runs it: install what is missing, then pytest in parallel (two workers:
# tests that build kernel objects use unique names, so workers never share them;
# each module runs on one worker, in file order: some share a module-wide lab cluster).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install.sh
.venv/bin/ruff check node compose orchestrator tests bench
exec .venv/bin/pytest -n "${PYTEST_WORKERS:-2}" --dist loadscope -p no:cacheprovider "$@" tests
