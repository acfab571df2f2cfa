#!/usr/bin/env bash
# Set up a venv (./.venv, or $LRMON_VENV) with the test extras and run the whole test suite. Extra arguments go to
# pytest.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${LRMON_VENV:-$root/.venv}"
bash "$root/scripts/venv.sh" test
cd "$root"
exec "$venv/bin/python" -m pytest -q "$@"
