"""The sink interface the monitor writes to, and ``MemorySink``, which keeps the records in Python.

Modelled on clu's ``MetricWriter``, but batched: the monitor hands a sink many steps at once, so a sink pays its
per-call overhead once per batch, not once per train step. The call order a sink sees is::

    open(info)                       # once, before anything else
    write_config(config)             # once, after open
    (write_scalars(batch) | write_events(events) | save_state(path, step))*
                                     # in step order: an event comes after the rows of its step and
                                     # before any row of a later step; a state of step S after every
                                     # record below S
    flush()*                         # any time; returns once everything written so far is durable
                                     # (raise if that cannot be known: the sink then gets no newer state)
    close()                          # once; implies flush

A sink method that raises makes the monitor disable that sink (one warning naming it); the others go on.
"""

from __future__ import annotations

import abc
import dataclasses
from pathlib import Path
from typing import Any, Iterator, Mapping, Protocol, Sequence, runtime_checkable

import numpy as np

from lrmon.curve import PHASES

__all__ = ["Series", "ScalarBatch", "Event", "RunInfo", "Sink", "TextSink", "MemorySink", "iter_rows"]


@dataclasses.dataclass(frozen=True)
class Series:
    """One tag's values in a batch: ``steps`` (int64, strictly increasing) and ``values`` (float64), same length."""

    steps: np.ndarray
    values: np.ndarray


#: A batch of scalars: tag -> its series. Tags: ``lr`` (or ``lr/pg0``, ``lr/pg1``, ...), ``lrmon/phase``, and the
#: user's metrics under their own names.
ScalarBatch = Mapping[str, Series]


@dataclasses.dataclass(frozen=True)
class Event:
    """A schedule event at ``step``: ``kind`` is one of the schedule's events (warmup + cosine:
    ``lrmon.EVENT_KINDS``), an observed cut (``lr_reduced_<n>``), ``resume`` or ``thinned``.

    ``lrs`` holds the LR of each group at that step; ``detail`` is a human-readable line.
    """

    step: int
    kind: str
    lrs: tuple[float, ...]
    detail: str

    def to_dict(self) -> dict[str, Any]:
        """The event as plain data."""
        return {"step": self.step, "kind": self.kind, "lrs": list(self.lrs), "detail": self.detail}


@dataclasses.dataclass(frozen=True)
class RunInfo:
    """What a sink is told when it opens.

    ``start_step`` is 0 on a fresh run and the step training resumes from after a resume (records at steps
    ``>= start_step`` from an earlier attempt must be superseded, e.g. TensorBoard's ``purge_step``).
    ``config`` is the schedule's and the monitor's configuration as plain data; ``lr_tags`` the LR tags in group
    order; ``phases`` the schedule's phase names (the ``lrmon/phase`` scalar is an index into them). The monitor
    opens sinks on JAX process 0 only, so a sink just writes. ``previous`` is this sink's entry
    in the state the run resumed from (its ``identity()`` then, e.g. the W&B run id, and ``holds_steps_below``:
    the step below which it held every record), empty on a fresh run. ``in_step_order`` says that records come
    in step order (see the module docstring): the monitor's do; a sink shared by several producers (the clu
    adapter) is opened with it false.
    """

    start_step: int
    config: Mapping[str, Any]
    lr_tags: tuple[str, ...]
    resumed: bool = False
    phases: tuple[str, ...] = PHASES
    previous: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    in_step_order: bool = True


def iter_rows(batch: ScalarBatch) -> Iterator[tuple[int, dict[str, float]]]:
    """Merge a batch into rows ``(step, {tag: value})`` in increasing step order (for row-based trackers)."""
    rows: dict[int, dict[str, float]] = {}
    for tag, series in batch.items():
        for step, value in zip(series.steps.tolist(), series.values.tolist()):
            rows.setdefault(step, {})[tag] = value
    for step in sorted(rows):
        yield step, rows[step]


class Sink(abc.ABC):
    """Where the monitor's records go. Subclasses implement ``write_scalars`` and ``write_events``."""

    @property
    def name(self) -> str:
        """Name used in warnings about this sink."""
        return type(self).__name__

    def open(self, info: RunInfo) -> None:
        """Called once before any write."""

    def write_config(self, config: Mapping[str, Any]) -> None:
        """Record the run's configuration (hyperparameters)."""

    @abc.abstractmethod
    def write_scalars(self, batch: ScalarBatch) -> None:
        """Record a batch of scalars (see :class:`Series`)."""

    @abc.abstractmethod
    def write_events(self, events: Sequence[Event]) -> None:
        """Record schedule events, in step order."""

    def save_state(self, path: Path, step: int) -> None:
        """Store the monitor's state file ``path`` (written at ``step``) with this tracker, e.g. as an artifact."""

    def identity(self) -> dict[str, Any]:
        """What identifies this sink's run (e.g. W&B run id, TensorBoard logdir), saved in the monitor's state."""
        return {}

    def flush(self) -> None:
        """Make everything written so far durable and readable."""

    def close(self) -> None:
        """Flush and release resources; called once."""
        self.flush()


@runtime_checkable
class TextSink(Protocol):
    """A sink that also records free text (``TensorBoardSink``, ``WandbSink``): the clu adapter's ``write_texts``
    outside ``lrmon/events/`` goes there."""

    def write_text(self, step: int, tag: str, text: str) -> None:
        """Record ``text`` under ``tag`` at ``step``."""


class MemorySink(Sink):
    """Keeps every record in Python: ``scalars[tag] = [(step, value), ...]`` and ``events = [(step, kind), ...]``.

    ``event_records`` holds the full :class:`Event` objects, ``config`` the configuration, ``info`` the
    :class:`RunInfo` it was opened with, ``saved_states`` the ``(step, bytes)`` of each state save. Writing keeps the
    batches' arrays (no per-row Python work on the training thread); ``scalars`` builds the lists when read.
    Memory grows with the run: for tests, short runs and users who want the records in Python; :meth:`clear`
    forgets the scalars kept so far.
    """

    def __init__(self) -> None:
        self._batches: dict[str, list[Series]] = {}
        self._scalars: dict[str, list[tuple[int, float]]] | None = {}
        self.events: list[tuple[int, str]] = []
        self.event_records: list[Event] = []
        self.config: dict[str, Any] = {}
        self.info: RunInfo | None = None
        self.saved_states: list[tuple[int, bytes]] = []
        self.closed = False

    @property
    def scalars(self) -> dict[str, list[tuple[int, float]]]:
        """``tag -> [(step, value), ...]`` in the order written."""
        if self._scalars is None:
            self._scalars = {
                tag: list(zip(np.concatenate([b.steps for b in batches]).tolist(),
                              np.concatenate([b.values for b in batches]).tolist()))
                for tag, batches in self._batches.items()
            }
        return self._scalars

    def clear(self) -> None:
        """Forget the scalars recorded so far (events, config and states stay)."""
        self._batches, self._scalars = {}, {}

    def open(self, info: RunInfo) -> None:
        self.info = info

    def write_config(self, config: Mapping[str, Any]) -> None:
        self.config = dict(config)

    def write_scalars(self, batch: ScalarBatch) -> None:
        for tag, series in batch.items():
            self._batches.setdefault(tag, []).append(series)
        self._scalars = None

    def write_events(self, events: Sequence[Event]) -> None:
        self.events.extend((event.step, event.kind) for event in events)
        self.event_records.extend(events)

    def save_state(self, path: Path, step: int) -> None:
        self.saved_states.append((step, Path(path).read_bytes()))

    def close(self) -> None:
        self.closed = True
