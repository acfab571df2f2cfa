"""What the braintools curves (:mod:`lrmon.schedules.braintools`) share: argument checks, step helpers and the
protocol methods of their base class."""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
from typing import Any, ClassVar, Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from lrmon._validation import check_learning_rates, check_step_count
from lrmon.schedules._protocol import CURVE_KEY, check_event_kind, curve_from_dict

_NAME_PREFIX = "braintools."


# ---------------------------------------------------------------------------------------------------------------
# Argument checks (TypeError for the wrong kind, ValueError outside the domain; the message names the field)
# ---------------------------------------------------------------------------------------------------------------
def _real(name: str, value: Any) -> float:
    """A finite real number (not a bool) as a ``float``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def _positive(name: str, value: Any) -> float:
    value = _real(name, value)
    if value <= 0.0:
        raise ValueError(f"{name} must be > 0, got {value}")
    return value


def _steps(name: str, values: Any, *, minimum: int = 0) -> tuple[int, ...]:
    """A non-decreasing sequence of integer steps ``>= minimum``."""
    if not isinstance(values, (list, tuple)):
        raise TypeError(f"{name} must be a list of integers, got {type(values).__name__} {values!r}")
    steps = tuple(check_step_count(f"{name}[{i}]", v, minimum=minimum) for i, v in enumerate(values))
    if any(b < a for a, b in zip(steps, steps[1:])):
        raise ValueError(f"{name} must be sorted in ascending order, got {list(steps)}")
    return steps


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def _lrs(name: str, value: Any) -> tuple[float, ...]:
    if isinstance(value, (list, tuple)):
        return check_learning_rates(name, list(value))
    raise TypeError(f"{name} must be a list of learning rates, got {type(value).__name__} {value!r}")


def _check_range(low: Any, high: Any) -> tuple[int, int | None]:
    low = check_step_count("low", low, minimum=-(2**63))
    if high is not None:
        high = check_step_count("high", high, minimum=-(2**63))
    return low, high


# ---------------------------------------------------------------------------------------------------------------
# Shared evaluation helpers
# ---------------------------------------------------------------------------------------------------------------
def _jnp_steps(step: Any) -> Any:
    step = jnp.asarray(step)
    return step if jnp.issubdtype(step.dtype, jnp.integer) else step.astype(jnp.int32)


def _np_steps(step: Any) -> np.ndarray:
    return np.asarray(step).astype(np.int64)


def _groups(xp: Any, values: Sequence[float]) -> Any:
    return xp.asarray(values)


# ---------------------------------------------------------------------------------------------------------------
# The protocol, shared by every family
# ---------------------------------------------------------------------------------------------------------------
class _BraintoolsCurve:
    """Protocol methods shared by the braintools curve families (each a frozen dataclass)."""

    #: True when the monitor observes the LR (the curve's LR is only the plan until the first cut).
    observed: ClassVar[bool] = False
    #: True when the curve has endless events (``events(high=None)`` raises ``ValueError``).
    endless: ClassVar[bool] = False
    #: The braintools class name.
    scheduler: ClassVar[str]
    _phases: ClassVar[tuple[str, ...]]

    # -- identity and plain data -----------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """The family's name in ``to_dict()``: ``"braintools.<ClassName>"``."""
        return _NAME_PREFIX + self.scheduler

    def to_dict(self) -> dict[str, Any]:
        """The curve as JSON-ready plain data: ``{"curve": "braintools.<ClassName>", <field>: <value>, ...}``."""
        data: dict[str, Any] = {CURVE_KEY: self.name}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name == "schedulers":
                value = [child.to_dict() for child in value]
            elif isinstance(value, tuple):
                value = list(value)
            data[field.name] = value
        return data

    @classmethod
    def from_dict(cls, data: Any) -> "_BraintoolsCurve":
        """Build (and validate) a curve from :meth:`to_dict`'s output; ``TypeError``/``ValueError`` naming the
        field for a missing, unknown or mistyped one (:func:`~lrmon.schedules.curve_from_dict` reports them as
        ``ValueError``)."""
        if not isinstance(data, dict):
            raise TypeError(f"a schedule configuration must be an object, got {type(data).__name__}")
        fields = dict(data)
        name = fields.pop(CURVE_KEY, None)
        if name != _NAME_PREFIX + cls.scheduler:
            raise ValueError(f"{CURVE_KEY} must be {_NAME_PREFIX + cls.scheduler!r}, got {name!r}")
        if "schedulers" in fields:
            children = fields["schedulers"]
            if not isinstance(children, list):
                raise TypeError(f"schedulers must be a list, got {type(children).__name__}")
            fields["schedulers"] = tuple(curve_from_dict(child) for child in children)
        return cls(**fields)

    def differing_fields(self, other: Any) -> list[str]:
        """Names of the fields whose values differ (``["curve"]`` for another family; a child's as
        ``schedulers[i].<field>``)."""
        if type(other) is not type(self):
            return ["curve"]
        names: list[str] = []
        for field in dataclasses.fields(self):
            mine, theirs = getattr(self, field.name), getattr(other, field.name)
            if field.name == "schedulers" and len(mine) == len(theirs):
                for i, (a, b) in enumerate(zip(mine, theirs)):
                    sub = a.differing_fields(b) if type(a) is type(b) else ["curve"]
                    names += [f"schedulers[{i}].{n}" for n in sub]
            elif mine != theirs:
                names.append(field.name)
        return names

    # -- the curve -------------------------------------------------------------------------------------------
    @property
    def num_groups(self) -> int:
        """Number of parameter groups (one LR each)."""
        return len(self.base_lrs)

    @property
    def phases(self) -> tuple[str, ...]:
        """Names of the phases :meth:`phase_at` numbers."""
        return self._phases

    @property
    def peak_lr(self) -> float:
        """The largest LR the curve takes (``inf`` for a curve that grows without bound: ``gamma > 1``)."""
        candidates = self._peak_candidates()
        if candidates is None:
            return math.inf
        return float(np.max(self.exact_lr_at(np.asarray(sorted(set(candidates)), np.int64))))

    def lr_at(self, step: Any) -> jnp.ndarray:
        """LR of every group at ``step`` (an int, array or tracer): shape ``step.shape + (num_groups,)``, float32.

        Pure and traceable: usable under ``jax.jit``, ``vmap``, ``lax.scan`` and as an optax schedule. It runs as one
        compiled function per curve (inlined when traced), not op by op: the double-float32 arithmetic is a few
        hundred small operations.
        """
        return _compiled_lr(self)(step)

    def exact_lr_at(self, step: Any) -> np.ndarray:
        """The same curve evaluated with NumPy in float64 (no JAX call: safe inside host callbacks)."""
        return np.asarray(self._evaluate(np, _np_steps(step)), np.float64)

    def phase_at(self, step: Any) -> np.ndarray:
        """Index into :attr:`phases` of each step's phase, as int8 (shape ``step.shape``)."""
        step = _np_steps(step)
        return np.broadcast_to(np.asarray(self._phase(step), np.int8), step.shape).copy()

    def events(self, low: int = 0, high: int | None = None) -> list[tuple[str, int]]:
        """The events at steps in ``[low, high)`` as ``(kind, step)`` in step order.

        Raises:
          ValueError: ``high is None`` for a curve with endless events.
        """
        low, high = _check_range(low, high)
        if high is None and self.endless:
            raise ValueError(
                f"{self.name} has endless events (they repeat for as long as training runs): pass a finite high"
            )
        events = [(check_event_kind(k), int(s)) for k, s in self._events(low, high)
                  if low <= s and (high is None or s < high)]
        return sorted(events, key=lambda event: event[1])

    # -- per family ------------------------------------------------------------------------------------------
    def _evaluate(self, xp: Any, step: Any) -> Any:  # pragma: no cover - every family defines it
        raise NotImplementedError

    def _phase(self, step: np.ndarray) -> Any:
        return np.zeros(step.shape, np.int8)

    def _events(self, low: int, high: int | None) -> Iterator[tuple[str, int]]:
        return iter(())

    def _peak_candidates(self) -> list[int] | None:
        return [0]


@functools.lru_cache(maxsize=64)
def _compiled_lr(curve: _BraintoolsCurve) -> Any:
    return jax.jit(lambda step: curve._evaluate(jnp, _jnp_steps(step)))


def _finite_end_phase(step: np.ndarray, end: int) -> np.ndarray:
    """Phase 0 up to and including ``end``, 1 ("past end") after."""
    return (step > end).astype(np.int8)
