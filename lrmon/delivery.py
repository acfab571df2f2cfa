"""The one road from the monitor's records to its courier: the rows of a step range, then that range's events.

:meth:`Delivery.deliver` takes rows whose values may still be on the device (a zero-argument ``values`` callable
reads them) and sends, in step order, each run of rows up to an event step followed by the events of those steps,
so a tracker always holds an event after the rows of its step and before the rows of later steps. The values are
read on the courier's thread (:mod:`lrmon.courier`): the training thread waits neither for the device nor for a
tracker.
"""

from __future__ import annotations

import functools
from typing import Callable, Mapping, Sequence

import numpy as np

from lrmon.bookkeeping import Bookkeeping
from lrmon.courier import Courier
from lrmon.schedules._protocol import Curve
from lrmon.sinks import Event, Series, Sink
from lrmon.tags import PHASE_TAG

__all__ = ["Delivery", "Values"]

#: Rows once read: ``(steps, lrs [n, groups], {metric: (steps, values)})``; a metric's steps are a subset of the
#: rows' steps (a metric missing on some rows).
Values = tuple[np.ndarray, np.ndarray, Mapping[str, tuple[np.ndarray, np.ndarray]]]


class Delivery:
    """Sends rows and events through ``courier`` in step order, as ``books`` says what is new.

    Args:
      config: the schedule's curve (events, phases, exact LRs).
      lr_tags: the tag of each group's LR.
      books: the run's bookkeeping (what was sent).
      courier: the ordered road to the sinks.
      writes: whether this process writes (JAX process 0); other processes only keep the books.
      read_at_once: read device values on the caller's thread, when rows arrive (multi-process runs: their
        computations span the processes, and reading on another thread, at another point in each process,
        deadlocks XLA's CPU runtime).
    """

    def __init__(self, config: Curve, lr_tags: Sequence[str], books: Bookkeeping, courier: Courier, *,
                 writes: bool, read_at_once: bool) -> None:
        self.config, self.lr_tags, self.books, self.courier = config, tuple(lr_tags), books, courier
        self.writes, self.read_at_once = writes, read_at_once

    def deliver(self, steps: np.ndarray, values: Callable[[], Values]) -> None:
        """Send the rows at ``steps`` (increasing) not sent yet, each run followed by the events of its steps."""
        fresh = self.books.take_fresh(steps)
        if not fresh.size:
            return
        if self.read_at_once:
            read = values()
            values = lambda: read  # noqa: E731
        else:
            values = functools.cache(values)
        for low, high in _step_ranges(fresh, self.books.event_steps_before(int(fresh[-1]))):
            if self.writes:
                self.courier.write_scalars(low, functools.partial(self._rows, values, low, high))
            self.events_upto(high + 1)

    def events_upto(self, completed: int) -> None:
        """Send the events at steps below ``completed`` not sent yet (each once: the books only advance)."""
        self.emit(self.books.take_due_events(completed))

    def emit(self, due: Sequence[tuple[int, str]], detail_suffix: str = "") -> None:
        """Send the events ``(step, kind)``, with the exact LR at their step."""
        if not due:
            return
        lrs = self.config.exact_lr_at([step for step, _ in due])  # NumPy: this may run in a host callback
        self.send_events([(step, kind, tuple(lrs[i].tolist()), _describe(kind, step, lrs[i]) + detail_suffix)
                            for i, (step, kind) in enumerate(due)])

    def send_events(self, events: Sequence[tuple[int, str, tuple[float, ...], str]]) -> None:
        """Send events ``(step, kind, lrs, detail)`` as they are (planned ones, or a plateau's observed cuts)."""
        if self.writes:
            self.courier.call(Sink.write_events, [Event(*event) for event in events])

    def _rows(self, values: Callable[[], Values], low: int, high: int) -> dict[str, Series]:
        """The rows at steps ``low..high`` as a batch: LRs, phase and metrics (on the courier's thread)."""
        steps, lrs, metrics = values()
        keep = (steps >= low) & (steps <= high)
        batch = {tag: Series(steps[keep], lrs[keep, g]) for g, tag in enumerate(self.lr_tags)}
        batch[PHASE_TAG] = Series(steps[keep], self.config.phase_at(steps[keep]).astype(np.float64))
        for name, (metric_steps, metric_values) in metrics.items():
            inside = (metric_steps >= low) & (metric_steps <= high)
            batch[name] = Series(metric_steps[inside], np.asarray(metric_values, np.float64)[inside])
        return batch


def _step_ranges(steps: np.ndarray, cuts: Sequence[int]) -> list[tuple[int, int]]:
    """``(first, last)`` step of each run of ``steps`` (increasing) cut right after each of ``cuts``; none empty."""
    ends = np.searchsorted(steps, sorted(set(cuts)), side="right")
    bounds = [0, *[int(end) for end in ends], len(steps)]
    return [(int(steps[a]), int(steps[b - 1])) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def _describe(kind: str, step: int, lrs: np.ndarray) -> str:
    lr_text = ", ".join(f"{lr:.6g}" for lr in lrs.tolist())
    return f"{kind} at step {step} (lr {lr_text})"
