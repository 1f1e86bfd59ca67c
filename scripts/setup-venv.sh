#!/usr/bin/env bash
# Create the project's virtualenv and install the locked stack (runtime + dev/test tools).
set -euo pipefail
python="${1:-python3}"
venv="${2:-.venv}"
if ! "$python" -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null; then
  echo "flp needs Python >= 3.11 (found: $("$python" --version 2>&1))" >&2
  exit 1
fi
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q -r requirements.lock
"$venv/bin/python" -m pip install -q --no-deps -e .
"$venv/bin/python" -m pip check
