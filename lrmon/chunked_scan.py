"""``LRMonitor.scan``: a ``lax.scan`` run in compiled chunks whose per-step metrics leave after each chunk.

The per-step body holds no callback and no branch: each chunk is one compiled ``lax.scan`` over ``chunk`` steps
returning the steps' metrics as outputs, and the monitor takes them after it (:func:`run_in_chunks`). The next
chunk is dispatched before the previous chunk's outputs are handed over, and the outputs are read on the courier's
thread, so the host never waits for the device between chunks. Steps are the monitor's own (``step_count``,
``step_count + 1``, ...): the LR of each row is the curve at that step, what optax applies at that count, or the
LR a stepped schedule held there (:mod:`lrmon.chunked_for_loop`).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import jax
import numpy as np

from lrmon._validation import check_step_count
from lrmon.delivery import Values
from lrmon.host_buffer import curve_at

__all__ = ["ChunkedScan", "Body", "Take", "run_in_chunks", "chunk_rows", "check_outputs"]

#: ``body(carry, x) -> (carry, {metric: scalar})``, the scan body.
Body = Callable[[Any, Any], tuple[Any, Mapping[str, Any]]]
#: ``take(first_step, count, metrics[, held_lrs])``: hand a finished chunk's outputs (device arrays) to the monitor.
Take = Callable[..., None]


class ChunkedScan:
    """Compiled chunks of one scan body (compiled once per chunk length)."""

    def __init__(self, body: Body) -> None:
        self._call = jax.jit(lambda carry, xs, length: jax.lax.scan(body, carry, xs, length=length),
                             static_argnums=2)

    def run(self, carry: Any, xs: Any, length: int | None, chunk: int, first_step: int, take: Take) -> Any:
        """Scan ``length`` steps (or ``xs``'s leading axis) from ``carry``; ``take`` each chunk's metrics; the
        final carry."""
        def run_chunk(part: Any, size: int) -> Mapping[str, Any]:
            nonlocal carry
            carry, metrics = self._call(carry, part, size)
            return check_outputs("scan body", "(carry, {metric: value})", metrics)

        run_in_chunks(run_chunk, xs, length, chunk, first_step, take)
        return carry


def run_in_chunks(run_chunk: Callable[[Any, int], Any], xs: Any, length: int | None, chunk: int, first_step: int,
                  take: Take) -> None:
    """Call ``run_chunk(part of xs, size)`` (dispatches a compiled chunk, returns its outputs) over ``length`` steps
    (or ``xs``'s leading axis), and ``take`` each chunk's outputs once the next chunk is dispatched."""
    chunk = check_step_count("chunk", chunk, minimum=1)
    total = _length_of(xs, length)
    pending = None
    for start in range(0, total, chunk):
        size = min(chunk, total - start)
        part = None if xs is None else jax.tree_util.tree_map(lambda a: a[start:start + size], xs)
        outputs = run_chunk(part, size)
        if pending is not None:
            take(*pending)  # the previous chunk, while this one runs
        pending = (first_step + start, size, outputs)
    if pending is not None:
        take(*pending)


def check_outputs(what: str, shape: str, metrics: Any) -> Mapping[str, Any]:
    """``metrics`` if it is a mapping, else ``TypeError`` saying that ``what`` must return ``shape``."""
    if not isinstance(metrics, Mapping):
        raise TypeError(f"the {what} must return {shape}, got {type(metrics).__name__} as its metrics")
    return metrics


def chunk_rows(first: int, count: int, metrics: Mapping[str, Any], log_every: int,
               lr_of_steps: Callable[[np.ndarray], Any], check_metrics: Callable[[Mapping[str, Any]], None],
               held_lrs: Any = None) -> tuple[np.ndarray, Callable[[], Values]]:
    """The logged steps of a chunk (steps ``first..first+count-1``) and a reader of their rows' values.

    The LRs are ``held_lrs`` (``[count, groups]``: what a stepped schedule held at each step) or else the compiled
    curve at the logged steps. Nothing is read here: the LRs' evaluation is dispatched, and the reader (run on the
    courier's thread) waits for it and for the metrics. ``ValueError`` for a metric that is not one scalar per step.
    """
    check_metrics(dict.fromkeys(metrics, 0.0))
    for name, value in metrics.items():
        if np.shape(value) != (count,):
            raise ValueError(f"metric {name!r} of the loop body must be a scalar per step, got shape "
                             f"{np.shape(value)[1:]}")
    steps = np.arange(first, first + count, dtype=np.int64)
    logged = steps[steps % log_every == 0]
    rows = logged - first
    curve = curve_at(logged, lr_of_steps) if held_lrs is None else None

    def values() -> Values:
        lrs = (np.asarray(curve, np.float64)[: len(logged)] if held_lrs is None
               else np.asarray(held_lrs, np.float64)[rows])
        return logged, lrs, {name: (logged, np.asarray(value, np.float64)[rows]) for name, value in metrics.items()}

    return logged, values


def _length_of(xs: Any, length: int | None) -> int:
    leaves = jax.tree_util.tree_leaves(xs)
    sizes = {int(np.shape(leaf)[0]) for leaf in leaves}
    if len(sizes) > 1:
        raise ValueError(f"xs leaves have different leading sizes {sorted(sizes)}")
    if length is None:
        if not sizes:
            raise ValueError("the loop needs xs or length")
        return sizes.pop()
    length = check_step_count("length", length, minimum=0)
    if sizes and sizes != {length}:
        raise ValueError(f"length {length} differs from xs's leading size {sizes.pop()}")
    return length
