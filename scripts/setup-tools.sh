#!/usr/bin/env bash
# The deployment tools (Compose, Ansible) live in their own virtualenv: their pins conflict with
# flwr's in places (see ../shared/design/MACHINE-FACTS.md), so they never share the app's.
set -euo pipefail
python="${1:-python3}"
venv="${2:-.venv-tools}"
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q -r requirements-tools.lock
"$venv/bin/python" -m pip check
