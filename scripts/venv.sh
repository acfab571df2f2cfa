#!/usr/bin/env bash
# Create (or reuse) ./.venv and install lrmon with the extras given as arguments, e.g. `scripts/venv.sh test`.
# Sourced by the other scripts; prints nothing when the environment is already up to date.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
extras="${1:-all}"
python="${PYTHON:-python3}"
if [ ! -x "$root/.venv/bin/python" ]; then
  "$python" -m venv "$root/.venv"
  "$root/.venv/bin/python" -m pip install -q --upgrade pip
fi
stamp="$root/.venv/.lrmon-installed-$extras"
if [ ! -f "$stamp" ] || [ "$root/pyproject.toml" -nt "$stamp" ]; then
  "$root/.venv/bin/python" -m pip install -q -e "$root[$extras]"
  touch "$stamp"
fi
