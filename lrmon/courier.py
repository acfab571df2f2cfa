"""The one road from the monitor to its sinks: every sink call, in the order the monitor made it, on one thread.

The training thread only queues. Writing a flush's rows costs a tracker real time (W&B: ~60 µs of Python a row;
their device values may still be computing), and a state save flushes every tracker (``fsync``, W&B's
acknowledgement) before storing the state with it: tens of milliseconds, or seconds with a sick tracker. All of
it runs on the courier's own thread, in the order it was queued, so the sinks see one ordered stream and are never
called from two threads at once. The training thread waits only in :meth:`Courier.wait` (explicit
``flush()``/``save_state()``/``close()``).

The queue is bounded: past ``max_pending`` items, row batches are dropped (never events, saves or the other calls)
until it drains, and a ``thinned`` event, queued in order, says from which step: a hung tracker costs rows, never
the training thread's time.
"""

from __future__ import annotations

import collections
import threading
import warnings
from typing import Any, Callable, Concatenate, ParamSpec

from lrmon.dispatch import SinkSet
from lrmon.sinks import Event, ScalarBatch, Sink

__all__ = ["Courier"]

P = ParamSpec("P")


class Courier:
    """Calls ``sinks`` in order, on its own thread."""

    def __init__(self, sinks: SinkSet, *, max_pending: int = 256) -> None:
        self.sinks = sinks
        self._max_pending = max_pending
        self._queue: collections.deque[Callable[[], None]] = collections.deque()
        self._busy = False  # the thread is running an item
        self._dropping = False  # row batches are being dropped until the queue drains
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False

    def call(self, method: Callable[Concatenate[Sink, P], Any], *args: P.args, **kwargs: P.kwargs) -> None:
        """``sinks.call(method, *args)`` (``method`` a :class:`Sink` function), after everything queued before it."""
        self.submit(lambda: self.sinks.call(method, *args, **kwargs))

    def write_scalars(self, first_step: int, rows: Callable[[], ScalarBatch]) -> None:
        """``sinks.call(Sink.write_scalars, rows())`` after everything queued before it; ``rows`` (built on the
        courier's thread: it may wait for the device) starts at ``first_step``. Dropped while the queue is full."""
        with self._changed:
            if len(self._queue) < self._max_pending:
                self._enqueue(lambda: self.sinks.call(Sink.write_scalars, rows()))
            elif not self._dropping:
                self._dropping = True
                self._enqueue(lambda: self.sinks.call(Sink.write_events, [_dropped_event(first_step)]))

    def submit(self, work: Callable[[], None]) -> None:
        """Run ``work`` on the courier's thread, after everything queued before it."""
        with self._changed:
            self._enqueue(work)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until everything queued so far has run; False if ``timeout`` passed first."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._queue and not self._busy, timeout)

    def stop(self, timeout: float | None = None) -> bool:
        """Wait for the queue, then end the courier's thread; False if that did not happen within ``timeout``."""
        drained = self.wait(timeout)
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        return drained

    # -- internals ---------------------------------------------------------------------------------------------
    def _enqueue(self, work: Callable[[], None]) -> None:  # _changed held
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name="lrmon-courier", daemon=True)
            self._thread.start()
        self._queue.append(work)
        self._changed.notify_all()

    def _serve(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._stopping or self._queue)
                if not self._queue:
                    return
                work = self._queue.popleft()
                self._busy = True
            try:
                work()
            except Exception as error:  # noqa: BLE001 - the courier must keep serving; sinks are guarded already
                warnings.warn(f"lrmon: a delivery to the sinks failed: {error!r}", RuntimeWarning, stacklevel=1)
            finally:
                with self._changed:
                    self._busy = False
                    if not self._queue:
                        self._dropping = False
                    self._changed.notify_all()


def _dropped_event(first: int) -> Event:
    return Event(first, "thinned", (), f"scalar rows from step {first} on were dropped while a sink was still busy "
                                        "(until it caught up)")
