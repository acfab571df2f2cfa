"""``ProcessSink``: tracker sinks run in a child process, so their Python work never holds the training GIL.

A tracker's Python side is slow next to a fast train step (a row, on a 2-core machine: ``WandbSink`` ~50 µs here
and ~90 µs in wandb-core, ``TensorBoardSink`` ~25 µs; a tiny step takes 30-90 µs), and a thread in the training
process competes for the GIL (NOTES: ~4-10x on a small step). ``ProcessSink(sinks)`` sends each batch through a
bounded queue to a child process that calls the real sinks; the training thread only enqueues.

When the child cannot keep up, nothing blocks and nothing grows without bound:

* the child thins scalar batches while its backlog is over half the queue: it keeps the rows whose step is a
  multiple of a stride that doubles (up to 1024) while the backlog stays high and halves once it is empty;
* if the queue is full anyway, the batch is dropped in the parent.

Either way the sinks receive a ``thinned`` event saying from which step and how. Events, the configuration and
state saves are never thinned or dropped: they travel through a separate, unbounded queue (they are few). Each
carries the number of scalar batches sent before it, and the child applies it only once it has applied those
batches, so the sinks see every call in the order the monitor made it (a state never overtakes its rows).

``flush()`` waits until the child has written and flushed everything sent before it, so the resume invariant
(:mod:`lrmon.saving`) holds through the child: a state is stored only with records that are durable there. In
the child, each sink is flushed before it gets a state; one that fails is disabled and gets no newer one.

A sink that fails in the child is disabled there; the parent warns once, naming it (``SinkFailedWarning``).
If the child dies, the next call raises (a wait for the child notices within a tenth of a second), and the
monitor disables the ``ProcessSink`` with one warning.
The sinks are copied into the child when it starts (at ``open``), so they must be picklable before they are
opened: a sink built from a path or from arguments is; one wrapping a live object (a ``wandb`` run, a
``SummaryWriter``) is not and stays in-process.
"""

from __future__ import annotations

import multiprocessing
import os
import collections
import queue
import tempfile
import time
import warnings
from multiprocessing.reduction import ForkingPickler
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from lrmon.dispatch import SinkFailedWarning, SinkSet
from lrmon.sinks import Event, RunInfo, ScalarBatch, Series, Sink
from lrmon.thinning import thin

__all__ = ["ProcessSink"]

_MAX_STRIDE = 1024


class ProcessSink(Sink):
    """Runs ``sinks`` in a child process (see the module docstring).

    Args:
      sinks: the sinks to run there (picklable: not yet opened).
      max_queued_batches: bound of the queue between the training process and the child.
      reply_timeout: seconds ``flush()`` and ``close()`` wait for the child to write what is queued (they return at
        once, raising, if the child has died).
    """

    def __init__(self, sinks: Sequence[Sink], *, max_queued_batches: int = 32, reply_timeout: float = 120.0) -> None:
        SinkSet(sinks)  # type check with a clear error
        try:
            ForkingPickler.dumps(list(sinks))
        except Exception as error:  # noqa: BLE001 - any pickling failure means the same thing
            raise TypeError(f"ProcessSink: the sinks must be picklable before they are opened ({error}); "
                            "keep a sink that wraps a live object (a wandb run, a SummaryWriter) in-process") from error
        if max_queued_batches < 2:
            raise ValueError(f"max_queued_batches must be >= 2, got {max_queued_batches}")
        self._sinks = list(sinks)
        self._max_queued = max_queued_batches
        self._reply_timeout = reply_timeout
        self._process: Any = None
        self._data: Any = None  # bounded: scalar batches
        self._control: Any = None  # unbounded: everything else (rare and small)
        self._outbox: Any = None
        self._sent = 0  # scalar batches put on the data queue
        self._flushes = 0
        self._identity: dict[str, Any] = {}
        self._dropped_from: int | None = None
        self._dropped_rows = 0
        self._closed = False

    @property
    def name(self) -> str:
        return f"ProcessSink[{', '.join(sink.name for sink in self._sinks)}]"

    # -- Sink interface --------------------------------------------------------------------------------------
    def open(self, info: RunInfo) -> None:
        """Start the child process and open the sinks there."""
        context = multiprocessing.get_context("spawn")
        self._data = context.Queue(maxsize=self._max_queued)
        self._control = context.Queue()
        self._outbox = context.Queue()
        self._process = context.Process(target=_serve,
                                        args=(self._sinks, self._data, self._max_queued, self._control, self._outbox),
                                        name="lrmon-sinks", daemon=True)
        self._process.start()
        self._send(Sink.open, info)

    def write_config(self, config: Mapping[str, Any]) -> None:
        self._send(Sink.write_config, dict(config))

    def backlog(self) -> int | None:
        """Scalar batches queued for the child and not taken yet (``None`` where the platform cannot count them,
        e.g. macOS, or before ``open``)."""
        try:
            return None if self._data is None else self._data.qsize()
        except NotImplementedError:
            return None

    def write_scalars(self, batch: ScalarBatch) -> None:
        """Enqueue the batch without waiting; if the queue is full, drop it and say so with the next event."""
        if self._closed:
            return
        self._check_child()
        try:
            self._data.put_nowait(dict(batch))
            self._sent += 1
        except queue.Full:
            steps = [series.steps for series in batch.values() if len(series.steps)]
            if steps:
                first = int(min(s[0] for s in steps))
                self._dropped_from = first if self._dropped_from is None else self._dropped_from
                self._dropped_rows += int(max(len(s) for s in steps))
        else:
            self._report_drops()

    def write_events(self, events: Sequence[Event]) -> None:
        self._report_drops()
        self._send(Sink.write_events, list(events))

    def save_state(self, path: Path, step: int) -> None:
        """Send the state file's bytes (the file itself may be replaced by the next save before the child runs)."""
        self._send(Sink.save_state, Path(path).read_bytes(), int(step))

    def identity(self) -> dict[str, Any]:
        """The child's sinks' identities, as the child last reported them (after opening them; never waits)."""
        if not self._closed:
            self._check_child()
        return dict(self._identity)

    def flush(self) -> None:
        """Make the child write and flush everything sent so far, and wait for it to confirm."""
        self._flushes += 1
        self._send(Sink.flush, self._flushes)
        self._wait_for("flushed", self._flushes)

    def close(self) -> None:
        """Flush and close the sinks in the child, wait for it to finish, and stop it."""
        if self._closed:
            return
        try:
            self._report_drops()
            self._send(Sink.close)
            self._wait_for("closed", None)
            self._process.join(timeout=self._reply_timeout)
        finally:
            self._closed = True
            if self._process is not None and self._process.is_alive():
                self._process.kill()

    # -- internals -------------------------------------------------------------------------------------------
    def _send(self, method: Callable[..., Any], *args: Any) -> None:
        """Send a control message (a :class:`Sink` function and its arguments), to be applied after the scalar
        batches sent before it."""
        if self._closed:
            return
        self._check_child()
        self._control.put((self._sent, method, *args))

    def _report_drops(self) -> None:
        if self._dropped_from is None or self._closed:
            return
        detail = (f"{self._dropped_rows} rows of scalars from step {self._dropped_from} on were dropped: "
                  f"the sink process could not keep up with training")
        event = Event(self._dropped_from, "thinned", (), detail)
        self._dropped_from, self._dropped_rows = None, 0
        self._send(Sink.write_events, [event])

    def _check_child(self) -> None:
        """Warn about sinks that failed in the child; raise if the child is gone."""
        while True:
            try:
                message = self._outbox.get_nowait()
            except queue.Empty:
                break
            self._handle(message)
        if not self._process.is_alive():
            raise RuntimeError(f"{self.name}: the sink process exited (code {self._process.exitcode})")

    def _wait_for(self, kind: str, token: Any) -> None:
        """Wait for the child's ``(kind, token)`` answer; raise if the child dies or ``reply_timeout`` passes."""
        deadline = time.monotonic() + self._reply_timeout
        while True:
            try:
                message = self._outbox.get(timeout=0.1)
            except queue.Empty:
                if not self._process.is_alive():
                    raise RuntimeError(f"{self.name}: the sink process exited (code {self._process.exitcode}) "
                                       f"before answering {kind!r}") from None
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"{self.name}: no {kind!r} answer from the sink process within "
                                       f"{self._reply_timeout:g} s") from None
                continue
            if message[0] == kind and message[1] == token:
                return
            self._handle(message)

    def _handle(self, message: tuple[Any, ...]) -> None:
        if message[0] == "identity":
            self._identity = message[1]
        elif message[0] == "failed":
            _, sink_name, method, error = message
            warnings.warn(f"lrmon: sink {sink_name} failed in {method}() in the sink process and is disabled; "
                          f"training goes on: {error}", SinkFailedWarning, stacklevel=4)


def _first_step(batch: Mapping[str, Series]) -> int | None:
    firsts = [int(series.steps[0]) for series in batch.values() if len(series.steps)]
    return min(firsts) if firsts else None


class _FailureReportingSinks(SinkSet):
    """The child's sinks: a failure disables the sink and is reported to the parent instead of warned here."""

    def __init__(self, sinks: Sequence[Sink], outbox: Any) -> None:
        super().__init__(sinks)
        self._outbox = outbox

    def report_failure(self, sink: Sink, method: str, error: Exception) -> None:
        self._outbox.put(("failed", sink.name, method, f"{type(error).__name__}: {error}"))


def _serve(sinks: Sequence[Sink], data: Any, capacity: int, control: Any, outbox: Any) -> None:
    """The child process: apply the parent's messages to the sinks, in the parent's order, until ``close``.

    It runs at a lower CPU priority than training (``nice`` 10; wandb-core, started here, inherits it): on a busy
    machine the trackers yield, fall behind and get thinned, instead of slowing the train step. Measured on a
    shared 2-core machine (tiny loop, TensorBoard + W&B, each step logged; ``benchmarks/trackers.py``, step time
    over the bare step / share of a long run's rows delivered): nice 0 1.8-2.6x / ~39 %; nice 10 1.6-2.2x /
    ~20 %; nice 19 1.4-1.6x / 2-14 %; ``SCHED_IDLE`` ~1.4x / ~7 %. The child costs the step even at low priority
    (it keeps the second core busy); a ProcessSink of a sink that does nothing costs 1.2-1.6x.
    """
    os.nice(10)
    active = _FailureReportingSinks(sinks, outbox)
    thinning = _Thinning(capacity)
    state_dir = Path(tempfile.mkdtemp(prefix="lrmon-sinks-"))
    applied = 0  # scalar batches applied
    waiting: collections.deque[tuple[Any, ...]] = collections.deque()  # control messages, in order
    while True:
        try:
            while True:
                waiting.append(control.get_nowait())
        except queue.Empty:
            pass
        if waiting and waiting[0][0] <= applied:  # everything sent before it has been applied
            _, method, *args = waiting.popleft()
            if method is Sink.close:
                active.call(Sink.close)
                os.rmdir(state_dir)  # empty: each state file is removed once the sinks have stored it
                outbox.put(("closed", None))
                return
            _apply(active, method, args, state_dir, outbox)
            continue
        try:
            batch = data.get(timeout=0.05)
        except queue.Empty:
            continue
        applied += 1
        thinning.write(active, batch, data.qsize())


def _apply(active: SinkSet, method: Callable[..., Any], args: list[Any], state_dir: Path, outbox: Any) -> None:
    """Apply one control message in the child."""
    if method is Sink.save_state:  # each sink is flushed first: it gets the state only if its records are durable
        data_bytes, step = args
        path = state_dir / f"state-{step}.json"
        path.write_bytes(data_bytes)
        for sink in list(active.active):
            if active.call_one(sink, Sink.flush)[0]:
                active.call_one(sink, Sink.save_state, path, step)
        os.unlink(path)
    elif method is Sink.flush:
        active.call(Sink.flush)
        outbox.put(("identity", active.identities()))
        outbox.put(("flushed", args[0]))
    else:
        active.call(method, *args)
        if method is Sink.open:
            outbox.put(("identity", active.identities()))


class _Thinning:
    """The child's scalar thinning: a stride that doubles while the backlog is over half the queue."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.stride = self.reported = 1

    def write(self, active: SinkSet, batch: Mapping[str, Series], backlog: int) -> None:
        if backlog * 2 >= self.capacity and self.stride < _MAX_STRIDE:
            self.stride *= 2
        elif backlog == 0 and self.stride > 1:
            self.stride //= 2
        first = _first_step(batch)
        if self.stride > self.reported and first is not None:
            self.reported = self.stride
            detail = (f"scalars thinned to steps that are multiples of {self.stride} from step {first} on: "
                      f"the sink process fell {backlog} batches behind training")
            active.call(Sink.write_events, [Event(first, "thinned", (), detail)])
        active.call(Sink.write_scalars, thin(batch, self.stride))
