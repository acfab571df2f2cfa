"""The courier: one ordered stream of sink calls; saves off the caller's thread; a hung sink costs rows, not time."""

from __future__ import annotations

import threading
import time

import numpy as np

from lrmon.courier import Courier
from lrmon.dispatch import SinkSet
from lrmon.sinks import MemorySink, Series


def batch(step: int) -> dict[str, Series]:
    return {"lr": Series(np.asarray([step]), np.asarray([0.1]))}


def test_calls_queued_behind_slow_work_keep_their_order_and_never_wait():
    sink = MemorySink()
    courier = Courier(SinkSet([sink]))
    courier.call("write_scalars", batch(0))  # nothing queued: runs at once, here
    assert [s for s, _ in sink.scalars["lr"]] == [0]
    release = threading.Event()
    courier.submit(lambda: release.wait(10))  # a slow save
    started = time.monotonic()
    for step in range(1, 50):
        courier.call("write_scalars", batch(step))
    assert time.monotonic() - started < 1.0  # queued, not waited for
    assert [s for s, _ in sink.scalars["lr"]] == [0]
    release.set()
    assert courier.wait(10)
    assert [s for s, _ in sink.scalars["lr"]] == list(range(50))
    assert courier.stop(10)


def test_past_the_bound_scalar_batches_are_dropped_and_a_thinned_event_says_from_where():
    sink = MemorySink()
    courier = Courier(SinkSet([sink]), max_pending=4)
    started, release = threading.Event(), threading.Event()
    courier.submit(lambda: (started.set(), release.wait(10)))
    assert started.wait(10)  # the save runs: the queue holds only what comes now
    for step in range(10):
        courier.call("write_scalars", batch(step))
    courier.call("write_events", [])  # events and other calls are never dropped
    release.set()
    assert courier.wait(10)
    assert [s for s, _ in sink.scalars["lr"]] == [0, 1, 2, 3]  # four fit behind the running save
    assert [(step, kind) for step, kind in sink.events] == [(4, "thinned")]
    assert "dropped" in sink.event_records[0].detail
    courier.call("write_scalars", batch(10))  # drained: writes go straight through again
    assert [s for s, _ in sink.scalars["lr"]][-1] == 10


def test_a_failing_job_is_reported_and_the_courier_keeps_serving(recwarn):
    sink = MemorySink()
    courier = Courier(SinkSet([sink]))

    def broken() -> None:
        raise OSError("disk full")

    courier.submit(broken)
    courier.call("write_scalars", batch(1))
    assert courier.wait(10)
    assert [s for s, _ in sink.scalars["lr"]] == [1]
    assert any("disk full" in str(w.message) for w in recwarn.list)
