#!/usr/bin/env python
"""How long previewing a long schedule takes on the host.

Run ``python benchmarks/preview.py [--quick]``; the last line is the JSON.

``preview_1m_s``        seconds for ``schedule.lr_at(np.arange(1_000_000))`` to a NumPy array, warm (median of 5;
                        the first, cold call, compiling the eager ops, is reported as ``preview_1m_cold_s``; the
                        same through ``jax.jit(schedule.lr_at)``, warm, as ``preview_1m_jit_s``).
"""

from __future__ import annotations

import statistics
import sys
import time
from typing import Any, Callable

import numpy as np

import _harness
from _harness import Run, Suite


def _seconds(call: Callable[[], Any]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def measure_preview(steps: int) -> tuple[float, float, float]:
    """(cold, warm median, jitted warm median) seconds to evaluate the schedule at ``np.arange(steps)`` on the host."""
    import jax

    from lrmon import WarmupCosineSchedule

    schedule = WarmupCosineSchedule(0.1, 10_000, steps)
    grid = np.arange(steps)
    jitted_fn = jax.jit(schedule.lr_at)

    def eager() -> np.ndarray:
        return np.asarray(schedule.lr_at(grid))

    def jitted() -> np.ndarray:
        return np.asarray(jitted_fn(grid))

    start = time.perf_counter()
    values = eager()
    cold = time.perf_counter() - start
    assert values.shape == (steps, 1) and np.isfinite(values).all()
    warm = statistics.median(_seconds(eager) for _ in range(5))
    jitted()
    return cold, warm, statistics.median(_seconds(jitted) for _ in range(5))


def preview(run: Run) -> dict[str, float]:
    steps = run.cfg["preview_steps"]
    cold, warm, warm_jit = measure_preview(steps)
    return {"preview_1m_s": round(warm, 4), "preview_1m_cold_s": round(cold, 4),
            "preview_1m_jit_s": round(warm_jit, 4), "preview_steps": steps}


SUITE = Suite(full=dict(preview_steps=1_000_000), quick=dict(preview_steps=1_000_000),
              goals={"preview_1m_s": 0.5}, measures={"preview_1m_s": preview})

if __name__ == "__main__":
    sys.exit(_harness.main([SUITE], "lrmon preview benchmark"))
