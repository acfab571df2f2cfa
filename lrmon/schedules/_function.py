"""A plain schedule function (``count -> LR``, e.g. one of optax's own) as a curve: LR by evaluation, no events.

The monitor logs such a schedule by evaluating it at each logged step (what an optax optimizer applies at that
count). Its phases and events are *absent*, not recovered: a plain function keeps its boundaries in a closure
that lrmon does not parse. Build the schedule with :mod:`lrmon.schedules.optax` (same names and signatures) to
get them. Its ``to_dict()`` holds the function's qualified name only, so a resume checks the name, and
``curve_from_dict`` of that data gives a curve that cannot be evaluated (``lr_at`` raises ``TypeError``).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, ClassVar

import jax.numpy as jnp
import numpy as np

from lrmon.schedules._protocol import CURVE_KEY, register

__all__ = ["FunctionCurve", "FUNCTION_CURVE"]

#: The ``"curve"`` name of a plain function's ``to_dict()``.
FUNCTION_CURVE = "function"


@dataclasses.dataclass(frozen=True)
class FunctionCurve:
    """The curve of ``fn`` (one parameter group; ``fn`` is ``None`` when rebuilt from data)."""

    name: str
    fn: Callable[[Any], Any] | None = dataclasses.field(default=None, compare=False)
    observed: ClassVar[bool] = False

    @classmethod
    def of(cls, fn: Callable[[Any], Any]) -> "FunctionCurve":
        return cls(f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', type(fn).__name__)}", fn)

    num_groups = 1
    phases = ("schedule",)

    @property
    def peak_lr(self) -> float:
        """Unknown without evaluating the function everywhere: NaN."""
        return math.nan

    def lr_at(self, step: Any) -> jnp.ndarray:
        if self.fn is None:
            raise TypeError(f"schedule function {self.name} was rebuilt from data and cannot be evaluated")
        step = jnp.asarray(step)
        return jnp.broadcast_to(jnp.asarray(self.fn(step)), step.shape)[..., None]

    def exact_lr_at(self, step: Any) -> np.ndarray:
        """The function's own values (it may call JAX: no event of this curve needs them inside a callback)."""
        return np.asarray(self.lr_at(np.asarray(step)), np.float64)

    def phase_at(self, step: Any) -> np.ndarray:
        return np.zeros(np.shape(step), np.int8)

    def events(self, low: int = 0, high: int | None = None) -> list[tuple[str, int]]:
        return []

    def to_dict(self) -> dict[str, Any]:
        return {CURVE_KEY: FUNCTION_CURVE, "name": self.name}

    def differing_fields(self, other: "FunctionCurve") -> list[str]:
        return [] if other.name == self.name else ["name"]


def _from_dict(data: dict[str, Any]) -> FunctionCurve:
    if set(data) != {CURVE_KEY, "name"} or not isinstance(data["name"], str):
        raise ValueError(f"a function curve is {{'curve': 'function', 'name': <str>}}, got keys {sorted(data)}")
    return FunctionCurve(data["name"])


register(FUNCTION_CURVE, _from_dict)
