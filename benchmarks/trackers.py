#!/usr/bin/env python
"""What the monitor costs with the experiment trackers (TensorBoard and W&B offline) as its sinks.

Run ``python benchmarks/trackers.py [--quick] [--rounds N] [--only KEY,...]``; the last line is the JSON.

``tiny_full``       the tiny Python-loop step with the TensorBoard and W&B (offline) sinks, lr + loss every step,
                    wrapped in one ``lrmon.ProcessSink`` (the configuration lrmon documents for trackers on a fast
                    loop). A ProcessSink whose child cannot keep up thins rows: ``tiny_full_delivered_fraction`` is
                    the share of logged steps whose LR reached the trackers (1.0: all), counted by a probe sink
                    next to them; here the child catches up between blocks, so see also:
``tiny_full_sustained_fraction`` the same loop for one long block (``sustained_steps``) that never waits for the child:
                    the share of its steps whose LR reached the trackers while it ran (what a long run delivers; the
                    child thins the rest), with ``tiny_full_sustained_ratio``, that block's step over the bare one.
``realistic_full``  an MLP 784-512-512-10 (batch 128, synthetic data, optax SGD) step (the issue's "about 1 ms";
                    6-9 ms on a shared 2-core CPU, compute-bound on both cores), with the same
                    tracker sinks, lr + loss every step, and a state save (``monitor.save_state()``: local file +
                    each tracker) every 1000 steps, timed between blocks and charged amortized
                    (``"state_saving": true``).
``*_full_inprocess`` the same two with the tracker sinks in-process (no ProcessSink: on the monitor's courier
                    thread). With them (not with --quick): ``TensorBoardSink_row_us`` / ``WandbSink_row_us``, the
                    CPU cost of one row in each sink's ``write_scalars`` called directly, and, when the run also
                    times ``tiny_loop`` (``overhead.py``), ``realistic_inprocess_model_at_1ms``, a model (not a
                    measurement) of the in-process ratio on a 1 ms step: (tiny-loop monitor overhead + the rows'
                    cost + a state save per 1000 steps) / 1 ms. The MLP step here is several ms, and its noise
                    (shared machine) is larger than the trackers' cost.

After a block with tracker sinks the driver waits (untimed) until a ProcessSink child has drained its queue, so
leftover tracker work never runs during another variant's block; that wait is reported as
``*_child_backlog_s_per_block`` (> 0: the child does not keep up with that loop, and a long run would thin rows).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from typing import Any

import numpy as np

import _harness
from _harness import Run, Suite
from _steps import LOOP_FULL, LOOP_QUICK, LoopBare, LoopMonitor, MlpBare, monitor
from lrmon import ProcessSink
from lrmon.sinks import Sink

SAVE_EVERY = 1000  # realistic_full: the monitor's state is saved this often (amortized; see MlpFull.time_save)
OFFLOADED = {"tiny_full": "loop_full", "realistic_full": "mlp_full"}  # key: its variant (trackers in a ProcessSink)
IN_PROCESS = {"tiny_full_inprocess": "loop_full_inproc", "realistic_full_inprocess": "mlp_full_inproc"}
TRACKED = {**OFFLOADED, **IN_PROCESS}


class _DeliveryProbe(Sink):
    """Counts the LR rows that reach the tracker sinks (in a ProcessSink's child too) and the ``thinned`` events;
    writes them as JSON to ``path`` at close. Picklable, so it travels with the tracker sinks."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.arrivals: list[tuple[float, int]] = [(0.0, 0)]  # (time.monotonic(), rows so far): one clock per machine
        self.thinned: list[str] = []

    def write_scalars(self, batch: Any) -> None:
        if "lr" in batch:
            self.arrivals.append((time.monotonic(), self.arrivals[-1][1] + len(batch["lr"].steps)))

    def write_events(self, events: Any) -> None:
        self.thinned += [event.detail for event in events if event.kind == "thinned"]

    def close(self) -> None:
        with open(self.path, "w") as out:
            json.dump({"arrivals": self.arrivals, "thinned": self.thinned}, out)


def tracker_sinks(tmp: str, tag: str) -> list[Sink]:
    """The TensorBoard and W&B (offline) sinks, writing under ``tmp``."""
    from lrmon.integrations.tensorboard import TensorBoardSink
    from lrmon.integrations.wandb import WandbSink

    return [TensorBoardSink(os.path.join(tmp, f"tb-{tag}")),
            WandbSink(dir=os.path.join(tmp, f"wandb-{tag}"), mode="offline", project="lrmon-bench",
                      name=f"bench-{tag}")]


class _Tracked:
    """A monitored variant whose sinks are the trackers and a delivery probe, in one ProcessSink if ``offload``."""

    def _trackers(self, tmp: str, tag: str, offload: bool) -> list[Sink]:
        self.probe_path = os.path.join(tmp, f"delivery-{tag}.json")
        sinks = [*tracker_sinks(tmp, tag), _DeliveryProbe(self.probe_path)]
        return [ProcessSink(sinks)] if offload else sinks

    def settle(self) -> float:
        """Wait until the ProcessSink children of the monitor have taken every queued batch (and a little more,
        for the batch in progress and wandb-core's own queue), so that tracker work left over from one block does
        not run during the next block (of any variant): on 2 cores it would slow that one down. Returns the seconds
        spent waiting for the queue (the backlog the child had at the end of the block)."""
        start = time.perf_counter()
        for sink in self.monitor.sinks:
            if isinstance(sink, ProcessSink):
                _wait_empty(sink, start + 120)
        waited = time.perf_counter() - start
        self.monitor.flush()  # what the courier thread still has (in-process trackers) is written before the next block
        time.sleep(0.3)
        return waited

    def delivery(self, steps: int | None = None, window: tuple[float, float] | None = None) -> tuple[float, list[str]]:
        """After close: the fraction of ``steps`` (default: all logged) whose LR reached the trackers (within
        ``window``, two ``time.monotonic()`` values, if given), and the first thinned events."""
        with open(self.probe_path) as report:
            seen = json.load(report)
        start, end = window or (0.0, float("inf"))
        rows = [max(n for at, n in seen["arrivals"] if at <= t) for t in (start, end)]
        return round((rows[1] - rows[0]) / max(steps or self.monitor.step_count, 1), 4), seen["thinned"][:3]


def _wait_empty(sink: ProcessSink, deadline: float) -> None:
    while time.perf_counter() < deadline and sink.backlog():  # None (not countable) or 0: done
        time.sleep(0.01)


class LoopFull(_Tracked, LoopMonitor):
    """The tiny loop, ``monitor.step(loss=loss)`` every step into the trackers."""

    def __init__(self, tmp: str, tag: str, offload: bool) -> None:
        super().__init__(tmp, self._trackers(tmp, tag, offload))


class MlpFull(_Tracked, MlpBare):
    """The MLP loop, ``monitor.step(loss=loss)`` every step into the trackers, a state save every SAVE_EVERY."""

    def __init__(self, tmp: str, tag: str, offload: bool, hidden: int) -> None:
        super().__init__(hidden)
        self.monitor = monitor(self.schedule, self._trackers(tmp, tag, offload), tmp)
        self._after_step = lambda loss, _step=self.monitor.step: _step(loss=loss)
        self.save_times: list[float] = []

    def between_rounds(self) -> None:
        self.time_save()
        self.settle()

    def time_save(self) -> None:
        """One ``monitor.save_state()`` (local file + every tracker), timed; called between blocks.

        The issue saves every 1000 steps; rather than letting a save land in some blocks and not others (the median
        would then drop it), saves are timed apart and their median is added back as ``median / 1000`` per step.
        """
        start = time.perf_counter()
        self.monitor.save_state()
        self.save_times.append(time.perf_counter() - start)

    def amortized_s(self) -> float:
        return statistics.median(self.save_times) / SAVE_EVERY

    def close(self) -> None:
        self.monitor.close()


def measure_tracker_rows(tmp: str, batches: int) -> dict[str, float]:
    """CPU µs per row of each tracker sink's ``write_scalars`` (lr, lrmon/phase, loss), called directly in this
    process: what a step pays per logged row when the trackers run in-process (a ProcessSink moves this work, plus
    pickling, to its child)."""
    from lrmon.sinks import RunInfo, Series

    out: dict[str, float] = {}
    for sink in tracker_sinks(tmp, "rows"):
        sink.open(RunInfo(0, {"bench": True}, ("lr",)))
        sink.write_config({"bench": True})
        per_row = []
        for k in range(batches + 1):
            steps = np.arange(k * 256, (k + 1) * 256, dtype=np.int64)
            values = np.linspace(0.0, 1.0, 256)
            batch = {"lr": Series(steps, values), "lrmon/phase": Series(steps, values * 0),
                     "loss": Series(steps, values)}
            start = time.process_time()
            sink.write_scalars(batch)
            if k:  # the first batch warms up (lazy imports, metric definitions)
                per_row.append((time.process_time() - start) / 256)
        sink.close()
        out[f"{type(sink).__name__}_row_us"] = round(statistics.median(per_row) * 1e6, 2)
    return out


def sustained(run: Run) -> dict[str, Any]:
    """``tiny_full_sustained_fraction`` (see the module docstring): one block of ``sustained_steps`` after the
    timed rounds, its rows counted up to the block's end."""
    loop = LoopFull(run.tmp, "sustained", offload=True)
    loop.warm_up(run.blocks["loop_full"], _harness.WARM_STEPS["quick" if run.quick else "full"])
    loop.settle()
    steps, since, start = run.cfg["sustained_steps"], time.monotonic(), time.perf_counter()
    loop.run(steps)
    per_step, until = (time.perf_counter() - start) / steps, time.monotonic()
    loop.close()
    fraction, thinned = loop.delivery(steps, window=(since, until))
    return {"tiny_full_sustained_fraction": fraction, "tiny_full_sustained_ratio": round(
        per_step / run.median("loop_bare"), 4), "tiny_full_sustained_thinned": thinned[:1]}


def _delivery(run: Run) -> dict[str, Any]:
    """Per key: the ProcessSink child's backlog after a block, the delivered fraction and any thinning."""
    out: dict[str, Any] = {}
    for key, name in TRACKED.items():
        if name not in run.variants:
            continue
        if key in OFFLOADED:
            # seconds the ProcessSink child still needed after a block: > 0 means it does not keep up with the
            # loop; in a long run it then thins rows (the delivered fraction here stays 1.0: the blocks are short
            # and the child catches up between them)
            out[f"{key}_child_backlog_s_per_block"] = round(statistics.median(run.backlogs[name]), 3)
        out[f"{key}_delivered_fraction"], thinned = run.variants[name].delivery()
        if thinned:
            out[f"{key}_thinned"] = thinned
    return out


def _in_process_model(run: Run, rows: dict[str, float]) -> dict[str, float]:
    """A model, not a measurement: what a 1 ms step would pay with the trackers in-process = the monitor's host
    path (tiny loop difference) + every tracker's row + a state save every SAVE_EVERY steps."""
    monitored, bare = run.median("loop_monitor"), run.median("loop_bare")
    if monitored is None or bare is None:
        return {}
    per_step = max(monitored - bare, 0.0) + sum(rows.values()) * 1e-6 + run.variants["mlp_full_inproc"].amortized_s()
    return {"realistic_inprocess_model_at_1ms": round(1.0 + per_step / 1e-3, 4)}


def report(run: Run) -> dict[str, Any]:
    saving = {name: variant for name, variant in run.variants.items() if isinstance(variant, MlpFull)}
    out: dict[str, Any] = {f"{name}_state_save_ms": round(statistics.median(variant.save_times) * 1e3, 3)
                           for name, variant in saving.items()}
    # what close() waited for: trackers draining their backlog (a ProcessSink's child)
    out.update({f"{name}_close_s": round(run.close_s[name], 3) for name, variant in run.variants.items()
                if isinstance(variant, _Tracked)})
    out["state_saving"] = bool(saving)  # realistic_full* include a state save every SAVE_EVERY steps
    if saving:
        out["state_save_every"] = SAVE_EVERY
    out.update(_delivery(run))
    for key in ("realistic_full", "realistic_full_inprocess"):
        monitored, bare = run.median(TRACKED[key]), run.median("mlp_bare")
        if monitored is not None and bare is not None:
            # the realistic step is ~1 ms; here it is several ms and noisy: the measured difference
            out[f"{key}_overhead_us"] = round((monitored - bare) * 1e6, 2)
    if "mlp_full_inproc" in run.variants:
        rows = measure_tracker_rows(run.tmp, run.cfg["tracker_batches"])
        out.update(rows)
        out.update(_in_process_model(run, rows))
    return out


def variants(run: Run) -> _harness.Factories:
    cfg, tmp = run.cfg, run.tmp
    hidden, mlp = cfg["mlp_hidden"], cfg["mlp_block"]
    return {
        "loop_bare": (LoopBare, cfg["tiny_block"]),
        "loop_full": (lambda: LoopFull(tmp, "loop_full", offload=True), cfg["full_block"]),
        "loop_full_inproc": (lambda: LoopFull(tmp, "loop_full_inproc", offload=False), cfg["inproc_block"]),
        "mlp_bare": (lambda: MlpBare(hidden), mlp),
        "mlp_full": (lambda: MlpFull(tmp, "mlp_full", True, hidden), mlp),
        "mlp_full_inproc": (lambda: MlpFull(tmp, "mlp_full_inproc", False, hidden), mlp),
    }


SUITE = Suite(
    full=dict(LOOP_FULL, full_block=4096, inproc_block=1024, mlp_block=256, mlp_hidden=512, tracker_batches=4,
              sustained_steps=32768),
    quick=dict(LOOP_QUICK, full_block=64, inproc_block=64, mlp_block=8, mlp_hidden=32, tracker_batches=1,
               sustained_steps=512),
    pairs={key: (name, "mlp_bare" if name.startswith("mlp") else "loop_bare") for key, name in TRACKED.items()},
    goals={"realistic_full": 1.02, "tiny_full": 1.5, "realistic_full_inprocess": 1.02, "tiny_full_inprocess": 1.5},
    variants=variants,
    measures={"tiny_full_sustained_fraction": sustained},
    needs={"tiny_full_sustained_fraction": "tiny_full"},
    report=report,
    # two more wandb runs, seconds each; a long block
    slow=frozenset({"tiny_full_inprocess", "realistic_full_inprocess", "tiny_full_sustained_fraction"}),
)

if __name__ == "__main__":
    sys.exit(_harness.main([SUITE], "lrmon trackers benchmark"))
