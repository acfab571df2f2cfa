"""The courier: one ordered stream of sink calls, all on its thread; a hung sink costs rows, not time."""

from __future__ import annotations

import threading
import time

import numpy as np

from lrmon.courier import Courier
from lrmon.dispatch import SinkSet
from lrmon.sinks import MemorySink, Series, Sink


def batch(step: int) -> dict[str, Series]:
    return {"lr": Series(np.asarray([step]), np.asarray([0.1]))}


def lr_steps(sink: MemorySink) -> list[int]:
    return [s for s, _ in sink.scalars.get("lr", [])]


def test_calls_never_run_on_the_caller_thread_and_keep_their_order():
    sink = MemorySink()
    courier = Courier(SinkSet([sink]))
    threads = []
    courier.write_scalars(0, lambda: (threads.append(threading.current_thread()), batch(0))[1])
    assert courier.wait(10)
    assert lr_steps(sink) == [0] and threads and threads[0] is not threading.current_thread()
    release = threading.Event()
    courier.submit(lambda: release.wait(10))  # a slow save
    started = time.monotonic()
    for step in range(1, 50):
        courier.write_scalars(step, lambda step=step: batch(step))
    courier.call(Sink.write_events, [])
    assert time.monotonic() - started < 1.0  # queued, not waited for
    assert lr_steps(sink) == [0]
    assert not courier.wait(0.05)
    release.set()
    assert courier.wait(10)
    assert lr_steps(sink) == list(range(50))
    assert courier.stop(10)


def test_past_the_bound_row_batches_are_dropped_and_a_thinned_event_says_from_where():
    sink = MemorySink()
    courier = Courier(SinkSet([sink]), max_pending=4)
    started, release = threading.Event(), threading.Event()
    courier.submit(lambda: (started.set(), release.wait(10)))
    assert started.wait(10)  # the save runs: the queue holds only what comes now
    built = []
    for step in range(10):
        courier.write_scalars(step, lambda step=step: (built.append(step), batch(step))[1])
    courier.call(Sink.write_events, [])  # events and other calls are never dropped
    release.set()
    assert courier.wait(10)
    assert lr_steps(sink) == [0, 1, 2, 3]  # four fit behind the running save
    assert built == [0, 1, 2, 3]  # a dropped batch is never built (nor read from the device)
    assert [(step, kind) for step, kind in sink.events] == [(4, "thinned")]
    assert "dropped" in sink.event_records[0].detail
    courier.write_scalars(10, lambda: batch(10))  # drained: writes go through again
    assert courier.wait(10)
    assert lr_steps(sink)[-1] == 10


def test_a_failing_job_is_reported_and_the_courier_keeps_serving(recwarn):
    sink = MemorySink()
    courier = Courier(SinkSet([sink]))

    def broken() -> None:
        raise OSError("disk full")

    courier.submit(broken)
    courier.write_scalars(1, lambda: batch(1))
    assert courier.wait(10)
    assert lr_steps(sink) == [1]
    assert any("disk full" in str(w.message) for w in recwarn.list)
