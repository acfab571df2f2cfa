"""The in-graph path: records buffered on device and sent to the host through ``jax.debug.callback`` rarely.

A :class:`GraphBuffer` is a ring of ``capacity`` rows. Each row holds a step and one float32 value per column: the
LR of every group, then the user's metrics, named by the buffer's static ``names`` (part of its pytree structure,
so a compiled function decodes its callbacks with the names it was traced with). :func:`record` writes one row
(only on logged steps) and, when the ring is full, sends the whole ring to the host in one ``jax.debug.callback``
gated by ``lax.cond``, so the callback fires once per ``capacity`` logged steps. Every payload carries its steps,
so the host can put rows in order and drop duplicates (``pmap``/``shard_map`` fire once per device, ``grad`` of
``jax.checkpoint`` twice).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

__all__ = ["GraphBuffer", "empty_buffer", "record", "check_consecutive", "HostReceiver"]

#: ``receiver(names, steps, rows, count, last_step)``: the first ``count`` rows are valid, their columns after the
#: LRs are the metrics ``names``; ``last_step`` is the latest train step seen in the graph (logged or not).
HostReceiver = Callable[[tuple[str, ...], np.ndarray, np.ndarray, np.ndarray, np.ndarray], None]


@functools.partial(jax.tree_util.register_dataclass,
                   data_fields=["steps", "rows", "count", "last_step", "skipped_to"], meta_fields=["names"])
@dataclasses.dataclass(frozen=True)
class GraphBuffer:
    """Device-side ring of records; a pytree, so it can live in a ``lax.scan`` carry or in brainstate States."""

    steps: jax.Array  # int32 [capacity]
    rows: jax.Array  # float32 [capacity, groups + len(names)]
    count: jax.Array  # int32 []: valid rows
    last_step: jax.Array  # int32 []: latest step seen, -1 before any
    skipped_to: jax.Array  # int32 []: first step that did not follow ``last_step`` (see ``check_consecutive``), or -1
    names: tuple[str, ...] = ()  # static: the metric columns, after the LRs

    def replace(self, **changes: Any) -> "GraphBuffer":
        return dataclasses.replace(self, **changes)

    def emptied(self) -> "GraphBuffer":
        """The same buffer with no rows, still knowing the last step seen."""
        return empty_buffer(*self.rows.shape, self.names).replace(last_step=self.last_step)


def empty_buffer(capacity: int, width: int, names: tuple[str, ...] = (), last_step: int = -1) -> GraphBuffer:
    """A buffer with no records; ``last_step`` is the step before the first one expected."""
    return GraphBuffer(
        steps=jnp.zeros((capacity,), jnp.int32),
        rows=jnp.zeros((capacity, width), jnp.float32),
        count=jnp.zeros((), jnp.int32),
        last_step=jnp.full((), last_step, jnp.int32),
        skipped_to=jnp.full((), -1, jnp.int32),
        names=tuple(names),
    )


def check_consecutive(buffer: GraphBuffer, step: jax.Array) -> GraphBuffer:
    """Note in the buffer the first ``step`` that is not ``buffer.last_step + 1`` (traceable; no host work).

    For a recorder that steps the schedule itself: a gap means something else stepped it too. The host reads
    ``skipped_to`` when the buffer is drained.
    """
    step = jnp.asarray(step, jnp.int32)
    first_gap = (buffer.skipped_to < 0) & (step != buffer.last_step + 1)
    return buffer.replace(skipped_to=jnp.where(first_gap, step, buffer.skipped_to))


def record(buffer: GraphBuffer, step: jax.Array, lrs: jax.Array, metrics: Mapping[str, Any], log_every: int,
           receiver: HostReceiver) -> GraphBuffer:
    """Write the row ``lrs`` + ``metrics`` (exactly the buffer's names) for ``step`` if ``step % log_every == 0``;
    send the ring to ``receiver`` when full."""
    if set(metrics) != set(buffer.names):
        raise ValueError(f"metrics must be exactly the names the buffer was made for: {buffer.names}, "
                         f"got {sorted(metrics)}")
    values = [jnp.reshape(jnp.asarray(metrics[name], jnp.float32), ()) for name in buffer.names]
    row = jnp.concatenate([jnp.reshape(lrs, (-1,)).astype(jnp.float32),
                           jnp.stack(values) if values else jnp.zeros((0,), jnp.float32)])
    step = jnp.asarray(step, jnp.int32)
    logged = (step % log_every) == 0
    steps = buffer.steps.at[buffer.count].set(step)
    rows = buffer.rows.at[buffer.count].set(row)
    count = buffer.count + logged.astype(jnp.int32)
    full = count == buffer.steps.shape[0]

    def send(operands: tuple[jax.Array, ...]) -> jax.Array:
        jax.debug.callback(functools.partial(receiver, buffer.names), *operands)
        return jnp.zeros((), jnp.int32)

    def keep(operands: tuple[jax.Array, ...]) -> jax.Array:
        return operands[2]

    count = lax.cond(full, send, keep, (steps, rows, count, step))
    return buffer.replace(steps=steps, rows=rows, count=count, last_step=jnp.maximum(buffer.last_step, step))
