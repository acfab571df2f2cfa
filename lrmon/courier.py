"""The one road from the monitor to its sinks: every sink call, in the order the monitor made it.

Most calls (a batch of rows, a few events) are cheap and run at once on the caller's thread. A state save is not:
it flushes every tracker (``fsync``, W&B's acknowledgement) before storing the state with it, which can take tens
of milliseconds or, with a sick tracker, seconds. :meth:`Courier.submit` therefore runs such work on the courier's
own thread, and every call made while it is pending queues behind it, so the sinks still see one ordered stream
and are never called from two threads at once. The training thread never waits for a save, only
:meth:`Courier.wait` (explicit ``flush()``/``save_state()``/``close()``) does.

While work is queued, the queue is bounded: past ``max_pending`` items, scalar batches are dropped (never events,
saves or the other calls) until it drains, and a ``thinned`` event, queued in order, says from which step: a hung
tracker costs rows, never the training thread's time.
"""

from __future__ import annotations

import collections
import threading
import warnings
from typing import Any, Callable

from lrmon.dispatch import SinkSet
from lrmon.sinks import Event

__all__ = ["Courier"]


class Courier:
    """Calls ``sinks`` in order, on the caller's thread when nothing is queued, else on its own thread."""

    def __init__(self, sinks: SinkSet, *, max_pending: int = 256) -> None:
        self.sinks = sinks
        self._max_pending = max_pending
        self._queue: collections.deque[Callable[[], None]] = collections.deque()
        self._busy = False  # a call is running (on either thread)
        self._dropping = False  # scalar batches are being dropped until the queue drains
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False

    def call(self, method: str, *args: Any) -> None:
        """``sinks.call(method, *args)``: now if nothing is queued, else after what is."""
        with self._changed:
            direct = not self._busy and not self._queue
            if direct:
                self._busy = True
            elif method != "write_scalars" or len(self._queue) < self._max_pending:
                self._enqueue(lambda: self.sinks.call(method, *args))
            elif not self._dropping:
                self._dropping = True
                self._enqueue(lambda: self.sinks.call("write_events", [_dropped_event(args[0])]))
        if direct:
            try:
                self.sinks.call(method, *args)
            finally:
                self._finish()

    def submit(self, work: Callable[[], None]) -> None:
        """Run ``work`` on the courier's thread, after everything queued before it."""
        with self._changed:
            self._enqueue(work)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until everything submitted so far has run; False if ``timeout`` passed first."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._queue and not self._busy, timeout)

    def stop(self, timeout: float | None = None) -> bool:
        """Wait for the queue, then end the courier's thread; False if that did not happen within ``timeout``."""
        drained = self.wait(timeout)
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        return drained

    # -- internals (``_changed`` held where noted) ------------------------------------------------------------
    def _enqueue(self, work: Callable[[], None]) -> None:  # _changed held
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name="lrmon-courier", daemon=True)
            self._thread.start()
        self._queue.append(work)
        self._changed.notify_all()

    def _serve(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._stopping or (self._queue and not self._busy))
                if not self._queue:
                    return
                work = self._queue.popleft()
                self._busy = True
            try:
                work()
            except Exception as error:  # noqa: BLE001 - the courier must keep serving; sinks are guarded already
                warnings.warn(f"lrmon: a delivery to the sinks failed: {error!r}", RuntimeWarning, stacklevel=1)
            finally:
                self._finish()

    def _finish(self) -> None:
        with self._changed:
            self._busy = False
            if not self._queue:
                self._dropping = False
            self._changed.notify_all()


def _dropped_event(batch: Any) -> Event:
    first = min((int(series.steps[0]) for series in batch.values() if len(series.steps)), default=0)
    return Event(first, "thinned", (), f"scalar rows from step {first} on were dropped while a sink was still busy "
                                        "with an earlier state save (until it caught up)")
