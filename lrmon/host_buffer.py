"""The host path's buffer: the steps and metric references of the train steps since the last flush.

:meth:`HostBuffer.append` keeps references only (device arrays are not read). :meth:`HostBuffer.take` empties the
buffer into a :class:`PendingRows`, whose device values start being gathered at once (one stacking call and one
asynchronous copy per chunk, :mod:`lrmon.fetch`) and are read by :meth:`PendingRows.values`, later, on the courier's
thread.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import jax
import numpy as np

from lrmon.delivery import Values
from lrmon.fetch import PendingScalars

__all__ = ["HostBuffer", "PendingRows", "curve_at", "padded_steps", "outputs_as_rows"]

#: Device scalars fetched per compiled stacking call. The call takes one argument per scalar and compiles once per
#: size; compiling it grows faster than linearly with that size (4096 arguments: ~9 s, 16384: >2 min on a 2-core
#: CPU), so a large ``flush_every`` is fetched in chunks of this many.
FETCH_CHUNK = 256


class PendingRows:
    """A flush's rows whose device values are being gathered."""

    def __init__(self, steps: np.ndarray, lrs: Any, metrics: Mapping[str, tuple[np.ndarray, PendingScalars]]) -> None:
        self.steps, self._lrs, self._metrics = steps, lrs, metrics

    def values(self) -> Values:
        """``(steps, lrs [n, groups], {metric: (steps, values)})``, waiting for the device if needed."""
        if isinstance(self._lrs, list):  # LRs the schedule held for a braintools optimizer, one list per group
            lrs = np.stack([pending.result() for pending in self._lrs], axis=1)
        else:  # the compiled curve at these steps (padded)
            lrs = np.asarray(self._lrs, np.float64)[: len(self.steps)]
        return self.steps, lrs, {name: (steps, pending.result()) for name, (steps, pending) in self._metrics.items()}


class HostBuffer:
    """Steps, metrics and (for a braintools optimizer) the applied LRs since the last :meth:`take`.

    Args:
      flush_every: rows per flush (the padded size of the LR evaluation: one compiled shape).
      groups: parameter groups (LRs per row).
      lr_of_steps: the compiled curve, for schedules the monitor does not step (optax).
      check_metrics: validates a row's metrics when their names change.
    """

    def __init__(self, flush_every: int, groups: int, lr_of_steps: Callable[[np.ndarray], Any],
                 check_metrics: Callable[[Mapping[str, Any]], None]) -> None:
        self.flush_every, self.groups = flush_every, groups
        self._lr_of_steps, self._check_metrics = lr_of_steps, check_metrics
        self._steps: list[int] = []
        self._metrics: list[Mapping[str, Any]] = []
        self._applied: list[Sequence[Any]] = []
        self._names: frozenset[str] = frozenset()
        self._uniform = True

    def append(self, step: int, metrics: Mapping[str, Any], applied_lrs: Sequence[Any] | None) -> None:
        """Keep the row of ``step``; ``applied_lrs``: the LRs the optimizer applied (``None``: the curve's)."""
        if metrics.keys() != self._names:
            self._check_metrics(metrics)
            self._uniform = not self._steps  # the rows since the last take all have the same metric names
            self._names = frozenset(metrics)
        self._steps.append(step)
        self._metrics.append(metrics)
        if applied_lrs is not None:
            self._applied.append(applied_lrs)

    def take(self) -> PendingRows | None:
        """The rows kept so far (their gathering started), or ``None``; the buffer is then empty."""
        if not self._steps:
            return None
        steps = np.asarray(self._steps, np.int64)
        rows, applied, uniform = self._metrics, self._applied, self._uniform
        self._steps, self._metrics, self._applied, self._uniform = [], [], [], True
        chunk = min(self.flush_every, FETCH_CHUNK)
        if applied:
            lrs: Any = [PendingScalars([lr[g] for lr in applied], chunk) for g in range(self.groups)]
        else:
            lrs = self._lr_of_steps(padded_steps(steps, self.flush_every))  # one shape: compiled once
        metrics = {name: (metric_steps, PendingScalars(values, chunk))
                   for name, (metric_steps, values) in _columns(steps, rows, uniform).items()}
        return PendingRows(steps, lrs, metrics)


def _columns(steps: np.ndarray, rows: list[Mapping[str, Any]], uniform: bool
             ) -> dict[str, tuple[np.ndarray, list[Any]]]:
    """Each metric's steps and values (a metric may be missing on some rows unless ``uniform``)."""
    if uniform:  # the usual case: the same metrics every step
        return {name: (steps, [row[name] for row in rows]) for name in rows[0]}
    lists: dict[str, tuple[list[int], list[Any]]] = {}
    for step, row in zip(steps.tolist(), rows):
        for name, value in row.items():
            lists.setdefault(name, ([], []))[0].append(step)
            lists[name][1].append(value)
    return {name: (np.asarray(s, np.int64), values) for name, (s, values) in lists.items()}


def curve_at(steps: np.ndarray, lr_of_steps: Callable[[np.ndarray], Any]) -> Any:
    """The compiled curve at ``steps`` (dispatched, not read), padded to a power of 2: few shapes, few compiles;
    the first ``len(steps)`` rows are the LRs."""
    return lr_of_steps(padded_steps(steps, 1 << max(len(steps) - 1, 0).bit_length()))


def padded_steps(steps: np.ndarray, size: int) -> np.ndarray:
    """``steps`` as int32 padded with zeros to ``size``, so the compiled curve sees few distinct shapes."""
    padded = np.zeros((size,), np.int32)
    padded[: len(steps)] = steps
    return padded


def outputs_as_rows(steps: Any, metrics: Mapping[str, Any], log_every: int,
                    check_metrics: Callable[[Mapping[str, Any]], None]
                    ) -> tuple[np.ndarray, dict[str, tuple[np.ndarray, np.ndarray]], int] | None:
    """A compiled loop's per-step outputs (``LRMonitor.record_many``) as rows: ``(logged steps, {metric: (steps,
    values)}, last step)``, or ``None`` without any step; ``ValueError`` for ragged or unordered input."""
    steps = np.asarray(jax.device_get(steps), np.int64).reshape(-1)
    values = {name: np.asarray(v, np.float64).reshape(-1) for name, v in jax.device_get(metrics).items()}
    for name, column in values.items():
        if column.shape != steps.shape:
            raise ValueError(f"metric {name!r} has {column.size} values for {steps.size} steps")
    check_metrics(dict.fromkeys(values, 0.0))
    if not steps.size:
        return None
    if np.any(np.diff(steps) <= 0):
        raise ValueError("steps must be strictly increasing")
    logged = steps % log_every == 0
    return steps[logged], {name: (steps[logged], column[logged]) for name, column in values.items()}, int(steps[-1])
