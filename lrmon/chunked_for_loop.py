"""``LRMonitor.for_loop``: a ``brainstate.transform.for_loop`` run in compiled chunks, logged with no callback or
branch in the per-step body.

Each chunk is one ``brainstate.transform.jit`` of a ``for_loop`` over ``chunk`` steps (compiled once per chunk
length); the steps' metrics, and for a stepped schedule the LRs it held, leave as the loop's outputs and are taken
after it (:func:`lrmon.chunked_scan.run_in_chunks`: the next chunk is dispatched first, the outputs are read on
the courier's thread).

A *stepped* schedule (a braintools scheduler an optimizer reads, :mod:`lrmon.schedule_source`) is recorded and
stepped inside the loop: after ``body`` (the train step, whose optimizer applied the LR the schedule holds), the
step's output carries ``schedule.current_lrs`` and the schedule is stepped, once per step. For a pure curve (optax's
protocol) the LR of each row is the curve at the monitor's step, as in :meth:`LRMonitor.scan`.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import brainstate
import jax
import jax.numpy as jnp

from lrmon.chunked_scan import Take, check_outputs, run_in_chunks

__all__ = ["ChunkedForLoop", "ForLoopBody"]

#: ``body(*x) -> {metric: scalar}``: one train step on brainstate ``State``s, ``x`` the step's slices of ``xs``.
ForLoopBody = Callable[..., Mapping[str, Any]]


class ChunkedForLoop:
    """Compiled chunks of one for-loop body.

    Args:
      body: the train step.
      stepped: the schedule to record and step once per step (its optimizer reads it), or ``None`` (a pure curve).
    """

    def __init__(self, body: ForLoopBody, stepped: Any = None) -> None:
        self._stepped = stepped

        def one_step(*x: Any) -> Any:
            metrics = check_outputs("for_loop body", "{metric: value}", body(*x))
            if stepped is None:
                return metrics
            held = jnp.stack([jnp.asarray(lr, jnp.float32) for lr in stepped.current_lrs.value])
            stepped.step()
            return metrics, held

        self._call = brainstate.transform.jit(
            lambda xs, length: brainstate.transform.for_loop(one_step, *xs, length=length), static_argnums=1)

    def run(self, xs: tuple[Any, ...], length: int | None, chunk: int, first_step: int, take: Take) -> int | None:
        """Run ``length`` steps (or ``xs``'s leading axis); ``take(first, count, metrics[, held LRs])`` each chunk.

        Returns the step a stepped schedule is at after the loop (read once, at the end: it waits for the last
        chunk), or ``None`` for a pure curve."""
        unpack = take if self._stepped is None else (lambda first, count, outputs: take(first, count, *outputs))
        run_in_chunks(lambda part, size: self._call(part or (), size), xs or None, length, chunk, first_step, unpack)
        return None if self._stepped is None else int(jax.device_get(self._stepped.last_epoch.value))
