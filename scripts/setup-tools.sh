#!/usr/bin/env bash
# The deployment tools (Compose, Ansible) live in their own virtualenv: their pins conflict with
# flwr's in places (see ../shared/design/MACHINE-FACTS.md), so they never share the app's.
set -euo pipefail
# Debian packages the tests drive (offline checks of the deployment files): nginx for `nginx -t`,
# prometheus for `promtool check config`; chromium for the dashboard's browser tests (Playwright
# drives Debian's build: never `playwright install`). Installed only when missing.
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium chromium-driver)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v promtool >/dev/null || missing+=(prometheus)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq && $sudo env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}"
fi
python="${1:-python3}"
venv="${2:-.venv-tools}"
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q -r requirements-tools.lock
"$venv/bin/python" -m pip check
