"""Delivery: the rows of a step range, then that range's events, in step order, read on the courier's thread."""

from __future__ import annotations

import threading

import numpy as np

from lrmon.bookkeeping import Bookkeeping
from lrmon.courier import Courier
from lrmon.curve import CurveConfig
from lrmon.delivery import Delivery
from lrmon.dispatch import SinkSet
from lrmon.sinks import MemorySink

CONFIG = CurveConfig([0.1], 10, 100)


class OrderSink(MemorySink):
    """Remembers the order of what it was given: ("rows", first, last) and ("event", kind, step)."""

    def __init__(self) -> None:
        super().__init__()
        self.order: list[tuple] = []

    def write_scalars(self, batch):
        steps = batch["lr"].steps
        self.order.append(("rows", int(steps[0]), int(steps[-1])))
        super().write_scalars(batch)

    def write_events(self, events):
        self.order.extend(("event", e.kind, e.step) for e in events)
        super().write_events(events)


def delivery(sink, step=0):
    books = Bookkeeping(CONFIG, step, flush_every=256, log_every=1, save_every=None)
    return Delivery(CONFIG, ["lr"], books, Courier(SinkSet([sink])), writes=True, read_at_once=False), books


def test_each_event_follows_the_rows_of_its_step_and_precedes_later_rows():
    sink = OrderSink()
    d, books = delivery(sink)
    steps = np.arange(0, 14)
    d.deliver(steps, lambda: (steps, CONFIG.exact_lr_at(steps), {"loss": (steps, steps * 0.5)}))
    d.events_upto(14)
    assert d.courier.wait(10)
    assert sink.order == [("rows", 0, 0), ("event", "warmup_start", 0), ("rows", 1, 9), ("event", "warmup_end", 9),
                          ("rows", 10, 10), ("event", "cosine_start", 10), ("rows", 11, 13)]
    assert [s for s, _ in sink.scalars["loss"]] == list(range(14))
    assert [v for _, v in sink.scalars["lrmon/phase"]][:11] == [0.0] * 10 + [1.0]


def test_values_are_read_once_on_the_courier_thread_and_duplicates_are_dropped():
    sink = OrderSink()
    d, books = delivery(sink, step=20)
    reads = []
    steps = np.arange(15, 30)

    def values():
        reads.append(threading.current_thread())
        return steps, CONFIG.exact_lr_at(steps), {}

    d.deliver(steps, values)
    d.deliver(steps, values)  # the same rows again (e.g. a second device's callback): nothing new
    assert d.courier.wait(10)
    assert len(reads) == 1 and reads[0] is not threading.current_thread()
    assert [s for s, _ in sink.scalars["lr"]] == list(range(20, 30))
