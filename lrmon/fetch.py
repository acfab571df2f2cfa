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

__all__ = ["PendingScalars"]


@functools.lru_cache(maxsize=64)
def _stacker(capacity: int) -> Any:
    return jax.jit(lambda *values: jnp.stack([jnp.reshape(v, ()).astype(jnp.float32) for v in values]))


class PendingScalars:
    """Scalars being gathered on the device: built without waiting for the device; :meth:`result` waits.

    Python numbers are converted at once; device arrays are stacked in one compiled call per ``capacity`` values
    and their copy to the host is started right away.
    """

    def __init__(self, values: Sequence[Any], capacity: int) -> None:
        self._host: np.ndarray | None = None
        self._parts: list[tuple[Any, int]] = []
        if not values or not all(issubclass(kind, jax.Array) for kind in set(map(type, values))):
            self._host = np.asarray([float(np.asarray(v).reshape(())) for v in jax.device_get(list(values))],
                                    np.float64)
            return
        for start in range(0, len(values), capacity):
            chunk = list(values[start:start + capacity])
            stacked = _stacker(capacity)(*(chunk + [chunk[0]] * (capacity - len(chunk))))
            stacked.copy_to_host_async()
            self._parts.append((stacked, len(chunk)))

    def result(self) -> np.ndarray:
        """The values as float64 (waits for the device if it has not finished)."""
        if self._host is None:
            self._host = np.concatenate([np.asarray(part)[:n] for part, n in self._parts]).astype(np.float64)
            self._parts = []
        return self._host
