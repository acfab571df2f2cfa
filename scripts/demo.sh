#!/usr/bin/env bash
# Set up a venv (./.venv, or $LRMON_VENV) with what the main job uses (the `demo` extra: no clu, no TensorFlow) and
# run it: a short monitored training run logging to TensorBoard and W&B (offline). Arguments go to the example.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${LRMON_VENV:-$root/.venv}"
bash "$root/scripts/venv.sh" demo
cd "$root"
exec "$venv/bin/python" examples/quickstart.py "$@"
