"""Argument checks shared by the schedule and the monitor.

Every check raises ``TypeError`` for a value of the wrong kind and ``ValueError`` for a value of the right kind
outside its domain; each message starts with the parameter's name so that the user sees what to fix.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Mapping, Sequence

import numpy as np

from lrmon.tags import RESERVED_PREFIX

__all__ = ["check_step_count", "check_learning_rate", "check_learning_rates", "check_metrics"]


def check_step_count(name: str, value: Any, *, minimum: int) -> int:
    """Return ``value`` as an ``int`` if it is an integer (not a bool) that is ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    value = int(value)
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_learning_rate(name: str, value: Any) -> float:
    """Return ``value`` as a ``float`` if it is a finite, non-negative real number (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        # numpy / jax 0-d arrays are accepted through float(); anything else is a type error.
        try:
            if getattr(value, "shape", None) != ():
                raise TypeError
            value = float(value)
        except (TypeError, ValueError):
            raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}") from None
    value = float(value)
    if math.isnan(value):
        raise ValueError(f"{name} must not be NaN")
    if math.isinf(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if value < 0.0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def check_learning_rates(name: str, value: Any) -> tuple[float, ...]:
    """Return a non-empty tuple of checked learning rates from a number or a list/tuple of numbers."""
    if isinstance(value, (list, tuple)):
        if not value:
            raise ValueError(f"{name} must not be an empty list: give one learning rate per parameter group")
        return tuple(check_learning_rate(f"{name}[{i}]", v) for i, v in enumerate(value))
    return (check_learning_rate(name, value),)


def check_metrics(metrics: Mapping[str, Any], lr_tags: Sequence[str]) -> None:
    """Metric names must not be lrmon's (the LR tags, ``lrmon/...``) and values must be scalars."""
    for name, value in metrics.items():
        if name in lr_tags or name.startswith(RESERVED_PREFIX):
            raise ValueError(f"metric name {name!r} is reserved by lrmon (LR tags {tuple(lr_tags)}, 'lrmon/...')")
        if isinstance(value, (str, bytes)) or value is None or int(np.prod(np.shape(value))) != 1:
            raise TypeError(f"metric {name!r} must be a scalar number or a one-element array, got {value!r:.80}")
