"""Reading many device scalars to the host in one transfer.

Converting device arrays one by one costs ~15 µs each on CPU (one host copy per buffer); stacking them on device
in one jitted call and copying the stack costs ~0.6 µs each. Batches are padded to a fixed ``capacity`` so the
stacking function compiles once per (capacity, dtype, shape).
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["fetch_scalars"]


@functools.lru_cache(maxsize=64)
def _stacker(capacity: int) -> Any:
    return jax.jit(lambda *values: jnp.stack([jnp.reshape(v, ()).astype(jnp.float32) for v in values]))


def fetch_scalars(values: Sequence[Any], capacity: int) -> np.ndarray:
    """``values`` (Python numbers and/or one-element device arrays) as a float64 array, in one device transfer."""
    if not values:
        return np.zeros((0,), np.float64)
    if not all(isinstance(v, jax.Array) for v in values):
        return np.asarray([float(np.asarray(v).reshape(())) for v in jax.device_get(list(values))], np.float64)
    out = np.empty((len(values),), np.float64)
    for start in range(0, len(values), capacity):
        chunk = list(values[start:start + capacity])
        padded = chunk + [chunk[0]] * (capacity - len(chunk))
        out[start:start + len(chunk)] = np.asarray(_stacker(capacity)(*padded))[:len(chunk)]
    return out
