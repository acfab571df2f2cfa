"""Shared by the multi-device worker scripts (run as subprocesses by tests/test_multidevice.py; not collected).

``JsonlSink`` is a file-backed ``MemorySink``: every call the monitor makes is appended to a JSON-lines file, which
is created in ``open()``, so a sink the monitor never opens leaves no file behind.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import lrmon


def brainstate_trainer(schedule: Any, loss_fn: Any) -> tuple[Any, Any]:
    """A braintools SGD on ``schedule`` training a fresh weight of 4 zeros: ``(weight, train_step(x) -> loss)``."""
    import brainstate
    import braintools
    import jax
    import jax.numpy as jnp

    weight = brainstate.ParamState(jnp.zeros(4))
    optimizer = braintools.optim.SGD(lr=schedule)
    optimizer.register_trainable_weights({"w": weight})

    def train_step(x: Any) -> Any:
        loss, grad = jax.value_and_grad(loss_fn)(weight.value, x)
        optimizer.update({"w": grad})
        return loss

    return weight, train_step


def for_loop_with_twin(monitor: lrmon.LRMonitor, schedule: Any, twin: Any, loss_fn: Any, data: Any) -> Any:
    """Train over ``data`` with ``monitor.for_loop`` (chunks of 16; the monitor steps ``schedule``) and a twin
    model on ``twin`` (the same configuration) in one unmonitored brainstate ``for_loop`` stepping its schedule
    itself; assert both end with the same weight, bit for bit, and return the twin's per-step losses."""
    import brainstate
    import numpy as np

    weight, train_step = brainstate_trainer(schedule, loss_fn)
    monitor.for_loop(lambda x: {"loss": train_step(x)}, data, chunk=16)
    twin_weight, twin_step = brainstate_trainer(twin, loss_fn)

    def reference_step(x: Any) -> Any:
        loss = twin_step(x)
        twin.step()
        return loss

    losses = brainstate.transform.jit(lambda xs: brainstate.transform.for_loop(reference_step, xs))(data)
    np.testing.assert_array_equal(np.asarray(weight.value), np.asarray(twin_weight.value))
    return losses


class JsonlSink(lrmon.Sink):
    """Appends ``{"call": ..., ...}`` lines to ``path``; the file (and its folder) are created in ``open()``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.info: lrmon.RunInfo | None = None
        self.calls: list[str] = []
        self._file: Any = None

    def _line(self, **record: Any) -> None:
        self.calls.append(record["call"])
        self._file.write(json.dumps(record) + "\n")

    def open(self, info: lrmon.RunInfo) -> None:
        self.info = info
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a", encoding="utf-8")
        self._line(call="open", start_step=info.start_step, lr_tags=list(info.lr_tags))

    def write_config(self, config: Any) -> None:
        self._line(call="write_config", config=dict(config))

    def write_scalars(self, batch: Any) -> None:
        self._line(call="write_scalars", batch={tag: [s.steps.tolist(), s.values.tolist()] for tag, s in batch.items()})

    def write_events(self, events: Any) -> None:
        self._line(call="write_events", events=[event.to_dict() for event in events])

    def save_state(self, path: Any, step: int) -> None:
        self._line(call="save_state", step=int(step))

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._line(call="close")
            self._file.close()


def read_jsonl(path: str | Path) -> dict[str, Any]:
    """``{"scalars": {tag: [(step, value), ...]}, "events": [(step, kind), ...], "saves": [step, ...],
    "calls": [...]}`` from a file."""
    scalars: dict[str, list[tuple[int, float]]] = {}
    events: list[tuple[int, str]] = []
    saves: list[int] = []
    calls: list[str] = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        calls.append(record["call"])
        if record["call"] == "write_scalars":
            for tag, (steps, values) in record["batch"].items():
                scalars.setdefault(tag, []).extend(zip(steps, values))
        elif record["call"] == "write_events":
            events.extend((event["step"], event["kind"]) for event in record["events"])
        elif record["call"] == "save_state":
            saves.append(record["step"])
    return {"scalars": scalars, "events": events, "saves": saves, "calls": calls}


class CallbackCounter:
    """Wraps a monitor's host-callback receiver to count firings, their threads and their distinct payloads.

    Must be installed before the step function is traced (the traced callback captures the bound method).
    """

    def __init__(self, monitor: lrmon.LRMonitor) -> None:
        self.firings = 0
        self.threads: set[int] = set()
        self.payloads: dict[tuple, int] = {}  # (first step, last step, count) -> firings
        self.identical = True  # every firing for the same ring carried identical rows
        self._rows: dict[tuple, bytes] = {}
        self._lock = threading.Lock()
        recorder = monitor._recorder
        inner = recorder._receive_safely

        def receive(names, steps, rows, count, last_step):
            n = int(count)
            key = (int(steps[0]), int(steps[max(n - 1, 0)]), n)
            with self._lock:
                self.firings += 1
                self.threads.add(threading.get_ident())
                self.payloads[key] = self.payloads.get(key, 0) + 1
                data = rows[:n].tobytes() + steps[:n].tobytes()
                if self._rows.setdefault(key, data) != data:
                    self.identical = False
            inner(names, steps, rows, count, last_step)

        recorder._receive_safely = receive

    def report(self) -> dict[str, Any]:
        return {"firings": self.firings, "threads": len(self.threads),
                "multiplicities": sorted(set(self.payloads.values())), "rings": len(self.payloads),
                "identical_payloads": self.identical}
