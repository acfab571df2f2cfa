"""Shared helpers for the tracker-sink tests: realistic batches, read-back, wandb isolation, bounded calls."""

from __future__ import annotations

import functools
import os
import threading
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pytest

import lrmon
from lrmon.sinks import Event, RunInfo, ScalarBatch, Series

#: The curve most tests log: warmup 30, cosine to 250, run past the end (overrun at 250).
CONFIG = lrmon.CurveConfig(base_lrs=(1e-3,), warmup_steps=30, total_steps=250, warmup_start_lr=1e-5, eta_min=1e-6)
TWO_GROUPS = lrmon.CurveConfig(base_lrs=(3e-3, 5e-4), warmup_steps=20, total_steps=120)


def lr_tags(config: lrmon.CurveConfig) -> tuple[str, ...]:
    return ("lr",) if config.num_groups == 1 else tuple(f"lr/pg{g}" for g in range(config.num_groups))


def run_info(config: lrmon.CurveConfig = CONFIG, start_step: int = 0) -> RunInfo:
    return RunInfo(start_step=start_step, config={"schedule": config.to_dict(), "log_every": 1},
                   lr_tags=lr_tags(config), resumed=start_step > 0)


MAX_STEPS = 20_000


@functools.lru_cache(maxsize=None)
def lr_table(config: lrmon.CurveConfig) -> np.ndarray:
    """``config.lr_at(np.arange(MAX_STEPS))`` as float64, computed once per configuration (eager JAX compiles
    per shape, so slicing one table keeps the tests fast)."""
    return np.asarray(config.lr_at(np.arange(MAX_STEPS)), np.float64)


def curve(config: lrmon.CurveConfig, start: int, stop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(steps, lrs[n, groups] float64, loss float64)`` for steps ``start..stop-1`` (the loss is a fake decay)."""
    steps = np.arange(start, stop, dtype=np.int64)
    lrs = lr_table(config)[start:stop]
    loss = 2.0 * np.exp(-steps / 120.0) + 0.05 * np.sin(steps)
    return steps, lrs, loss


def batches(config: lrmon.CurveConfig, start: int, stop: int, size: int = 64) -> list[dict[str, Series]]:
    """The monitor's batches for steps ``start..stop-1``: LR tag(s), ``lrmon/phase`` and ``loss``."""
    steps, lrs, loss = curve(config, start, stop)
    phase = config.phase_at(steps).astype(np.float64)
    out = []
    for lo in range(0, len(steps), size):
        sl = slice(lo, lo + size)
        batch = {tag: Series(steps[sl], lrs[sl, g]) for g, tag in enumerate(lr_tags(config))}
        batch["lrmon/phase"] = Series(steps[sl], phase[sl])
        batch["loss"] = Series(steps[sl], loss[sl])
        out.append(batch)
    return out


def events(config: lrmon.CurveConfig, stop: int) -> list[Event]:
    """The schedule's events at steps below ``stop``, in step order."""
    due = sorted((step, kind) for kind, step in config.events() if step < stop)
    table = lr_table(config)
    return [Event(step, kind, tuple(table[step].tolist()), f"{kind} at step {step}") for step, kind in due]


def split_batch_after(batch: ScalarBatch, steps: Sequence[int]) -> list[dict[str, Series]]:
    """``batch`` cut right after each of ``steps``: the pieces, in step order, none empty (the order the monitor
    delivers in: an event after the rows of its step)."""
    first = [series.steps for series in batch.values() if len(series.steps)]
    if not first:
        return []
    bounds = sorted({int(step) for step in steps})
    pieces, low = [], None
    for high in [*bounds, None]:
        piece = {}
        for tag, series in batch.items():
            keep = np.ones(len(series.steps), bool)
            if low is not None:
                keep &= series.steps > low
            if high is not None:
                keep &= series.steps <= high
            piece[tag] = Series(series.steps[keep], series.values[keep])
        if any(len(series.steps) for series in piece.values()):
            pieces.append(piece)
        low = high
    return pieces


def write_run(sink: Any, config: lrmon.CurveConfig = CONFIG, start: int = 0, stop: int = 300) -> None:
    """Drive ``sink`` through the Sink interface as the monitor would: open, config, batches of steps
    ``[start, stop)``, each followed by the events of its steps (``sink`` stays open)."""
    info = run_info(config, start_step=start)
    sink.open(info)
    sink.write_config(info.config)
    due = [e for e in events(config, stop) if e.step >= start]
    for batch in batches(config, start, stop):
        for cut in split_batch_after(batch, [e.step for e in due]):
            sink.write_scalars(cut)
            last = int(cut["lrmon/phase"].steps[-1])
            sink.write_events([e for e in due if e.step <= last])
            due = [e for e in due if e.step > last]
    sink.write_events(due)


def monitored_run(sink: Any, steps: int, **monitor_kwargs: Any) -> lrmon.MemorySink:
    """A monitored run of ``steps`` steps on :data:`CONFIG`'s curve (loss ``exp(-t/100)``) into a ``MemorySink``
    and ``sink``; returns the ``MemorySink``, the reference the tracker's files are compared with."""
    memory = lrmon.MemorySink()
    schedule = lrmon.WarmupCosineSchedule.from_config(CONFIG)
    monitor = lrmon.LRMonitor(schedule, sinks=[memory, sink], **monitor_kwargs)
    for t in range(steps):
        monitor.step(loss=float(np.exp(-t / 100)))
    monitor.close()
    return memory


def accumulator(logdir: Path) -> Any:
    """A loaded ``EventAccumulator`` keeping everything (the default keeps only 10 texts per tag)."""
    from tensorboard.backend.event_processing.event_accumulator import (
        STORE_EVERYTHING_SIZE_GUIDANCE,
        EventAccumulator,
    )

    acc = EventAccumulator(str(logdir), size_guidance=STORE_EVERYTHING_SIZE_GUIDANCE)
    acc.Reload()
    return acc


def texts(acc: Any, tag: str) -> list[tuple[int, str]]:
    """``(step, text)`` of every text record under ``tag``."""
    return [(e.step, e.tensor_proto.string_val[0].decode()) for e in acc.Tensors(tag)]


def call_with_timeout(fn: Callable[[], Any], timeout: float) -> tuple[bool, Any, BaseException | None]:
    """Run ``fn`` in a daemon thread: ``(finished, result, exception)``; ``finished`` is false if it hung."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = fn()
        except BaseException as error:  # noqa: BLE001 - reported to the caller
            box["error"] = error

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    return not thread.is_alive(), box.get("result"), box.get("error")


def child_pids(name: str) -> list[int]:
    """Direct child processes of this process whose command line contains ``name`` (read from /proc)."""
    pids = []
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for pid in children:
            try:
                if name in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"):
                    pids.append(int(pid))
            except OSError:
                continue
    return sorted(set(pids))


@pytest.fixture
def wandb_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Offline, silent wandb with every wandb directory under ``tmp_path``; returns the runs' ``dir``."""
    for var, sub in (("WANDB_DIR", "wandb-dir"), ("WANDB_DATA_DIR", "wandb-data"),
                     ("WANDB_CACHE_DIR", "wandb-cache"), ("WANDB_CONFIG_DIR", "wandb-config")):
        (tmp_path / sub).mkdir()
        monkeypatch.setenv(var, str(tmp_path / sub))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    runs = tmp_path / "runs"
    return runs
