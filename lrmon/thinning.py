"""Thinning scalars to the steps that are multiples of a stride: the one rule behind ``ProcessSink``'s thinning
under back-pressure (:mod:`lrmon.offload`) and the bounded LR-vs-loss figures of the tracker sinks (:class:`Thinned`).
"""

from __future__ import annotations

import numpy as np

from lrmon.sinks import ScalarBatch, Series

__all__ = ["thin", "Thinned"]


def thin(batch: ScalarBatch, stride: int) -> dict[str, Series]:
    """The points of ``batch`` whose step is a multiple of ``stride`` (every tag kept, possibly empty)."""
    if stride == 1:
        return dict(batch)
    return {tag: Series(series.steps[keep], series.values[keep])
            for tag, series in batch.items() for keep in [series.steps % stride == 0]}


def _steps_of(batch: ScalarBatch) -> set[int]:
    return {step for series in batch.values() for step in series.steps.tolist()}


class Thinned:
    """At most ``cap`` steps of a run's scalars: those at multiples of a stride that doubles whenever more are kept.

    Batches may come in any step order; a point written again at a step replaces the earlier one.
    """

    def __init__(self, cap: int) -> None:
        self.cap = max(2, cap)
        self.stride = 1
        self._batches: list[dict[str, Series]] = []  # thinned, none empty
        self._steps: set[int] = set()  # the distinct steps kept

    def add(self, batch: ScalarBatch) -> None:
        """Keep the batch's points at the steps the stride divides, then thin to at most ``cap`` steps."""
        kept = thin(batch, self.stride)
        steps = _steps_of(kept)
        if not steps:
            return
        self._batches.append(kept)
        self._steps |= steps
        while len(self._steps) > self.cap:
            self.stride *= 2
            self._batches = [kept for kept in (thin(b, self.stride) for b in self._batches) if _steps_of(kept)]
            self._steps = set().union(*map(_steps_of, self._batches))

    def series(self, tag: str) -> tuple[np.ndarray, np.ndarray] | None:
        """``(steps, values)`` of ``tag``'s kept points in step order (the last written at each step), or ``None``
        when none is kept."""
        parts = [batch[tag] for batch in self._batches if tag in batch and len(batch[tag].steps)]
        if not parts:
            return None
        steps = np.concatenate([part.steps for part in parts]).astype(np.int64)
        values = np.concatenate([part.values for part in parts]).astype(np.float64)
        order = np.argsort(steps, kind="stable")
        steps, values = steps[order], values[order]
        last = np.append(steps[1:] != steps[:-1], True)  # the last of each run of equal steps: the latest written
        return steps[last], values[last]
