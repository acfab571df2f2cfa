"""The monitor's in-graph end: device buffers (:mod:`lrmon.graph`) made, written, drained and decoded.

A :class:`GraphRecorder` hands every payload it decodes, from a host callback or a drain, to ``receive(steps,
values, last_step)`` (the monitor's pipeline), never an exception into compiled code.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable, Mapping, Sequence

import brainstate
import jax
import jax.numpy as jnp
import numpy as np

from lrmon.delivery import Values
from lrmon.graph import GraphBuffer, check_consecutive, empty_buffer, record
from lrmon.schedule_source import stepped_elsewhere

__all__ = ["GraphRecorder"]

#: ``receive(steps, values, last_step)``: rows at ``steps``, ``values()`` reads them; ``last_step`` is the latest
#: train step the graph saw.
Receiver = Callable[[np.ndarray, Callable[[], Values], int], None]


class GraphRecorder:
    """Makes and drains the device buffers of :meth:`LRMonitor.graph_record` and :meth:`LRMonitor.graph_step`.

    Args:
      capacity: rows of a buffer (one host callback per this many logged steps).
      groups: parameter groups (the first columns of a row are their LRs).
      log_every: rows are written at steps with ``step % log_every == 0``.
      check_names: validates the metric names of a new buffer.
      receive: where decoded rows go.
    """

    def __init__(self, capacity: int, groups: int, log_every: int, check_names: Callable[[Sequence[str]], None],
                 receive: Receiver) -> None:
        self.capacity, self.groups, self.log_every = capacity, groups, log_every
        self._check_names, self._receive = check_names, receive
        self.state: brainstate.State | None = None  # the buffer of graph_step
        self.closed = False
        self._misuse: str | None = None

    def buffer(self, names: Sequence[str] = (), next_step: int = 0) -> GraphBuffer:
        """An empty buffer with room for the LRs and the metrics ``names``."""
        names = tuple(names)
        self._check_names(names)
        return empty_buffer(self.capacity, self.groups + len(names), names, last_step=next_step - 1)

    def record(self, buffer: GraphBuffer, step: Any, lrs: jax.Array, metrics: Mapping[str, Any]) -> GraphBuffer:
        """Write the row of ``step`` (traceable)."""
        return record(buffer, step, lrs, metrics, self.log_every, self._receive_safely)

    def init_state(self, names: Sequence[str], next_step: int) -> None:
        """Create (outside any transform) the brainstate ``State`` that :meth:`step_state` writes to."""
        self.state = brainstate.State(self.buffer(names, next_step))

    def step_state(self, schedule: Any, metrics: Mapping[str, Any]) -> None:
        """Record the LR ``schedule`` holds (what its optimizer applied) at its step, then step it (traceable)."""
        if self.state is None:
            raise ValueError("call monitor.init_graph_state(metric_names) before using graph_step inside a transform")
        step = schedule.last_epoch.value
        lrs = jnp.stack([jnp.asarray(lr, jnp.float32) for lr in schedule.current_lrs.value])
        self.state.value = self.record(check_consecutive(self.state.value, step), step, lrs, metrics)
        schedule.step()

    def drain_state(self) -> None:
        """Send what the ``State`` buffer holds (on the host, outside transforms)."""
        if self.state is not None:
            buffer = self.state.value
            self.state.value = buffer.emptied()
            self.drain(buffer)

    def drain(self, buffer: GraphBuffer) -> None:
        """Send the rows left in ``buffer``; notes (see :meth:`take_misuse`) a schedule stepped by someone else."""
        fields = jax.device_get((buffer.steps, buffer.rows, buffer.count, buffer.last_step, buffer.skipped_to))
        if np.ndim(fields[2]):  # per-device copies stacked by pmap: identical (replicated carry), keep the first
            fields = tuple(field[(0,) * np.ndim(fields[2])] for field in fields)
        steps, rows, count, last_step, skipped_to = fields
        self._decode(buffer.names, steps, rows, count, last_step)
        if skipped_to >= 0 and self._misuse is None:
            found = f"the schedule reached step {int(skipped_to)} without the step before it being recorded"
            self._misuse = stepped_elsewhere("graph_step", found) + ". The records made so far were written."

    def take_misuse(self) -> str | None:
        """A misuse found while draining, once."""
        misuse, self._misuse = self._misuse, None
        return misuse

    def _receive_safely(self, names: tuple[str, ...], steps: np.ndarray, rows: np.ndarray, count: np.ndarray,
                        last_step: np.ndarray) -> None:
        """Host end of the in-graph callback: never lets an exception into the compiled step."""
        try:
            if self.closed:
                raise RuntimeError(f"{int(count)} rows arrived after close() and were dropped (close the monitor "
                                   "after the compiled loop has finished)")
            self._decode(names, steps, rows, count, last_step)
        except Exception as error:  # noqa: BLE001
            warnings.warn(f"lrmon: in-graph records could not be written: {error!r}", RuntimeWarning, stacklevel=1)

    def _decode(self, names: tuple[str, ...], steps: Any, rows: Any, count: Any, last_step: Any) -> None:
        count, groups = int(count), self.groups
        steps = np.asarray(steps[:count], np.int64)
        rows = np.asarray(rows[:count], np.float64)
        metrics = {name: (steps, rows[:, groups + i]) for i, name in enumerate(names)}
        self._receive(steps, lambda: (steps, rows[:, :groups], metrics), int(last_step))
