#!/usr/bin/env python
"""Whether the monitor's memory stays flat over a long run.

Run ``python benchmarks/memory.py [--quick]``; the last line is the JSON.

``rss_growth_mb_1m``    growth of the resident set (``/proc/self/statm``, after ``gc.collect()``) over 1,000,000
                        ``monitor.step(loss=<device scalar>)`` calls without a jitted step (the monitor's own
                        per-step path, flushes and writes included), after 100,000 warm-up steps, into a sink that
                        counts rows and keeps nothing (a ``MemorySink`` keeps every record by design). The growth of
                        ``ru_maxrss`` over the same span is reported as ``rss_peak_growth_mb_1m``, the time per
                        ``monitor.step`` as ``rss_monitor_step_us``.
"""

from __future__ import annotations

import gc
import os
import resource
import sys
import time
from typing import Any

import _harness
from _harness import Run, Suite
from _steps import monitor
from lrmon.sinks import Sink


def _rss_mb() -> float:
    """Current resident set size in MB (Linux ``/proc/self/statm``; elsewhere the peak, ``ru_maxrss``)."""
    try:
        with open("/proc/self/statm") as statm:
            pages = int(statm.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return _peak_rss_mb()


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


class _CountingSink(Sink):
    """Counts the rows written, keeps nothing."""

    def __init__(self) -> None:
        self.rows = 0

    def write_scalars(self, batch: Any) -> None:
        self.rows += len(batch["lr"].steps)

    def write_events(self, events: Any) -> None:
        pass


def measure_rss(warmup: int, steps: int, tmp: str) -> tuple[float, float, float]:
    """(RSS growth MB, ru_maxrss growth MB, seconds) over ``steps`` monitor.step calls after ``warmup`` steps."""
    import jax.numpy as jnp

    from lrmon import WarmupCosineSchedule

    sink = _CountingSink()
    monitored = monitor(WarmupCosineSchedule(0.1, 1000, (warmup + steps) * 9 // 10), [sink], tmp)
    loss = jnp.float32(1.0)
    step = monitored.step
    for _ in range(warmup):
        step(loss=loss)
    gc.collect()
    before, peak_before = _rss_mb(), _peak_rss_mb()
    start = time.perf_counter()
    for _ in range(steps):
        step(loss=loss)
    monitored.flush()
    seconds = time.perf_counter() - start
    gc.collect()
    after, peak_after = _rss_mb(), _peak_rss_mb()
    monitored.close()
    assert sink.rows == warmup + steps, sink.rows
    return after - before, peak_after - peak_before, seconds


def memory(run: Run) -> dict[str, float]:
    warmup, steps = run.cfg["rss_warmup"], run.cfg["rss_steps"]
    growth, peak_growth, seconds = measure_rss(warmup, steps, run.tmp)
    return {"rss_growth_mb_1m": round(max(growth, 0.0), 3), "rss_peak_growth_mb_1m": round(peak_growth, 3),
            "rss_steps": steps, "rss_monitor_step_us": round(seconds / steps * 1e6, 3)}


SUITE = Suite(full=dict(rss_warmup=100_000, rss_steps=1_000_000), quick=dict(rss_warmup=1_000, rss_steps=5_000),
              goals={"rss_growth_mb_1m": 20.0}, measures={"rss_growth_mb_1m": memory})

if __name__ == "__main__":
    sys.exit(_harness.main([SUITE], "lrmon memory benchmark"))
