"""The in-graph path: records buffered on device and sent to the host through ``jax.debug.callback`` rarely.

A :class:`GraphBuffer` is a ring of ``capacity`` rows. Each row holds a step and ``width`` float32 values (the LR of
every group, then the user's metrics, in a fixed order). :func:`record` writes one row (only on logged steps) and,
when the ring is full, sends the whole ring to the host in one ``jax.debug.callback`` gated by ``lax.cond``, so the
callback fires once per ``capacity`` logged steps. Every payload carries its steps, so the host can put rows in
order and drop duplicates (``pmap``/``shard_map`` fire once per device, ``grad`` of ``jax.checkpoint`` twice).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

__all__ = ["GraphBuffer", "empty_buffer", "record", "check_consecutive", "HostReceiver"]

#: ``receiver(steps, rows, count, last_step)``: the first ``count`` rows are valid; ``last_step`` is the latest
#: train step seen in the graph (logged or not).
HostReceiver = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], None]


class GraphBuffer(NamedTuple):
    """Device-side ring of records; a pytree, so it can live in a ``lax.scan`` carry or in brainstate States."""

    steps: jax.Array  # int32 [capacity]
    rows: jax.Array  # float32 [capacity, width]
    count: jax.Array  # int32 []: valid rows
    last_step: jax.Array  # int32 []: latest step seen, -1 before any
    skipped_to: jax.Array  # int32 []: first step that did not follow ``last_step`` (see ``check_consecutive``), or -1


def empty_buffer(capacity: int, width: int, last_step: int = -1) -> GraphBuffer:
    """A buffer with no records; ``last_step`` is the step before the first one expected."""
    return GraphBuffer(
        steps=jnp.zeros((capacity,), jnp.int32),
        rows=jnp.zeros((capacity, width), jnp.float32),
        count=jnp.zeros((), jnp.int32),
        last_step=jnp.full((), last_step, jnp.int32),
        skipped_to=jnp.full((), -1, jnp.int32),
    )


def check_consecutive(buffer: GraphBuffer, step: jax.Array) -> GraphBuffer:
    """Note in the buffer the first ``step`` that is not ``buffer.last_step + 1`` (traceable; no host work).

    For a recorder that steps the schedule itself: a gap means something else stepped it too. The host reads
    ``skipped_to`` when the buffer is drained.
    """
    step = jnp.asarray(step, jnp.int32)
    first_gap = (buffer.skipped_to < 0) & (step != buffer.last_step + 1)
    return buffer._replace(skipped_to=jnp.where(first_gap, step, buffer.skipped_to))


def record(buffer: GraphBuffer, step: jax.Array, values: jax.Array, log_every: int,
           receiver: HostReceiver) -> GraphBuffer:
    """Write ``values`` (shape ``[width]``) for ``step`` if ``step % log_every == 0``; send the ring when full."""
    step = jnp.asarray(step, jnp.int32)
    logged = (step % log_every) == 0
    steps = buffer.steps.at[buffer.count].set(step)
    rows = buffer.rows.at[buffer.count].set(values.astype(jnp.float32))
    count = buffer.count + logged.astype(jnp.int32)
    full = count == buffer.steps.shape[0]

    def send(operands: tuple[jax.Array, ...]) -> jax.Array:
        jax.debug.callback(receiver, *operands)
        return jnp.zeros((), jnp.int32)

    def keep(operands: tuple[jax.Array, ...]) -> jax.Array:
        return operands[2]

    count = lax.cond(full, send, keep, (steps, rows, count, step))
    return GraphBuffer(steps, rows, count, jnp.maximum(buffer.last_step, step), buffer.skipped_to)
