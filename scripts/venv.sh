#!/usr/bin/env bash
# Create (or reuse) a venv and install lrmon (editable) with the extras given as the argument, e.g.
# `scripts/venv.sh test`. The venv is ./.venv unless LRMON_VENV names another directory.
# Run by the other scripts; prints nothing when the environment is already up to date.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
extras="${1:-demo}"
venv="${LRMON_VENV:-$root/.venv}"
python="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip
fi
stamp="$venv/.lrmon-installed-$extras"
if [ ! -f "$stamp" ] || [ "$root/pyproject.toml" -nt "$stamp" ]; then
  "$venv/bin/python" -m pip install -q -e "$root[$extras]"
  touch "$stamp"
fi
