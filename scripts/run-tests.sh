#!/usr/bin/env bash
# The whole test suite: static checks, then pytest (which starts its own test services).
set -euo pipefail
cd "$(dirname "$0")/.."
export OTEL_SDK_DISABLED=true FLWR_TELEMETRY_ENABLED=0 FLWR_DISABLE_UPDATE_CHECK=1
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy .
.venv/bin/lint-imports --no-cache
# two workers: Flower tests on one of them in turn (tests/conftest.py), the rest beside them
# --durations: the slowest tests in every log (CI included), to keep the suite in its budget
.venv/bin/pytest -n 2 --durations=25 "$@"
