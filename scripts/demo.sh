#!/usr/bin/env bash
# Set up ./.venv and run the main job: a short monitored training run logging to TensorBoard and W&B (offline).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/venv.sh" all
cd "$root"
exec .venv/bin/python examples/quickstart.py "$@"
