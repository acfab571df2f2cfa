"""The benchmarks run with ``--quick`` and end with one JSON line holding their measurements (not their speed):
``benchmarks/overhead.py`` (all of them) and each group's script alone."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RATIO_KEYS = ["tiny_loop", "tiny_loop_floor", "trivial_call", "tiny_scan", "tiny_scan_outputs", "tiny_scan_chunked",
              "tiny_for_loop", "tiny_for_loop_chunked", "realistic_full", "tiny_full", "naive_loop", "host_read_loop", "naive_scan"]


def _run_quick(script: str, cwd: Path, *args: str) -> list[str]:
    """The output lines of ``benchmarks/<script> --quick``; it must leave nothing in ``cwd``."""
    env = {**os.environ, "WANDB_SILENT": "true", "WANDB_MODE": "offline"}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), "--quick", *args], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    lines = done.stdout.strip().splitlines()
    assert lines, done.stderr[-4000:]
    assert not list(cwd.iterdir()), "the benchmark must clean up after itself"
    return lines


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def test_quick_benchmark_prints_every_measurement_as_json(tmp_path):
    lines = _run_quick("overhead.py", tmp_path)
    result = json.loads(lines[-1])
    for key in RATIO_KEYS + ["preview_1m_s"]:
        assert _positive(result[key]), (key, result[key])
    # memory growth over a run can be exactly zero (pages already resident): finite and not negative
    growth = result["rss_growth_mb_1m"]
    assert isinstance(growth, (int, float)) and math.isfinite(growth) and growth >= 0, growth
    # the monitor's own cost per step over a trivial call: a difference of two medians (finite; its sign is noise
    # in a quick run)
    assert isinstance(result["monitor_step_us"], float) and math.isfinite(result["monitor_step_us"])
    assert _positive(result["trivial_call_us"])
    assert result["state_saving"] is True
    assert result["quick"] is True
    assert set(result["medians_us"]) >= {"loop_bare", "loop_monitor", "scan_bare", "scan_monitor", "mlp_bare"}
    # the human-readable table comes before the JSON line
    assert any(line.startswith("tiny_loop") for line in lines[:-1])


@pytest.mark.parametrize(("script", "key"), [("loops.py", "tiny_scan"), ("trackers.py", "tiny_full"),
                                             ("preview.py", "preview_1m_s"), ("memory.py", "rss_growth_mb_1m")])
def test_each_benchmark_runs_alone(tmp_path, script, key):
    result = json.loads(_run_quick(script, tmp_path, "--only", key)[-1])
    assert key in result and result["quick"] is True
    assert key == "rss_growth_mb_1m" or _positive(result[key]), (key, result[key])
