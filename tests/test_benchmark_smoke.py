"""``benchmarks/overhead.py --quick`` runs and ends with one JSON line holding every measurement (not their speed)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RATIO_KEYS = ["tiny_loop", "tiny_scan", "tiny_for_loop", "realistic_full", "tiny_full", "naive_loop", "naive_scan"]


def test_quick_benchmark_prints_every_measurement_as_json(tmp_path):
    env = {**os.environ, "WANDB_SILENT": "true", "WANDB_MODE": "offline"}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "overhead.py"), "--quick"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    lines = done.stdout.strip().splitlines()
    assert lines, done.stderr[-4000:]
    result = json.loads(lines[-1])
    for key in RATIO_KEYS + ["preview_1m_s"]:
        value = result[key]
        assert isinstance(value, (int, float)) and math.isfinite(value) and value > 0, (key, value)
    # memory growth over a run can be exactly zero (pages already resident): finite and not negative
    growth = result["rss_growth_mb_1m"]
    assert isinstance(growth, (int, float)) and math.isfinite(growth) and growth >= 0, growth
    assert isinstance(result["state_saving"], bool)
    assert result["quick"] is True
    assert set(result["medians_us"]) >= {"loop_bare", "loop_monitor", "scan_bare", "scan_monitor", "mlp_bare"}
    # the human-readable table comes before the JSON line
    assert any(line.startswith("tiny_loop") for line in lines[:-1])
    assert not list(tmp_path.iterdir()), "the benchmark must clean up after itself"
