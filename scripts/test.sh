#!/usr/bin/env bash
# Set up ./.venv with the test extras and run the whole test suite. Extra arguments go to pytest.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/venv.sh" test
cd "$root"
exec .venv/bin/python -m pytest -q "$@"
