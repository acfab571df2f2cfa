"""The value :mod:`lrmon.schedules.optax`'s constructors return, :class:`OptaxSchedule`, and the checks of their
arguments."""

from __future__ import annotations

import dataclasses
import functools
import heapq
import math
import numbers
from typing import Any, ClassVar, Mapping

import jax.numpy as jnp
import numpy as np

from lrmon._validation import check_learning_rate, check_step_count
from lrmon.schedules._optax_math import END_RANK, _Part
from lrmon.schedules._protocol import CURVE_KEY

_PREFIX = "optax."


@dataclasses.dataclass(frozen=True)
class OptaxSchedule:
    """A schedule built by one of this module's constructors: an optax schedule and an lrmon curve.

    Equal (and equally hashed) when built by the same constructor with equal arguments. Build it with the
    constructors (``body``, the curve itself, is derived from the arguments).

    Attributes:
      constructor: the optax name of the constructor (``"warmup_cosine_decay_schedule"``).
      args: its arguments, ``(name, value)`` in signature order, defaults filled in (mappings as sorted pairs,
        sequences as tuples, child schedules as :class:`OptaxSchedule`).
    """

    constructor: str
    args: tuple[tuple[str, Any], ...]
    body: _Part = dataclasses.field(compare=False, repr=False)

    #: One parameter group.
    num_groups: ClassVar[int] = 1

    # -- the optax schedule and the curve ----------------------------------------------------------------------
    def __call__(self, count: Any) -> Any:
        """The value at ``count`` (optax's schedule protocol): a ``jax.numpy`` array of count's shape."""
        return self.body.evaluate(jnp, jnp.asarray(count))

    def lr_at(self, step: Any) -> Any:
        """LR at ``step`` (an int, array or tracer): shape ``step.shape + (1,)``; traceable and vectorised."""
        return self(step)[..., None]

    def exact_lr_at(self, step: Any) -> np.ndarray:
        """The same formula in NumPy float64 (no JAX call: safe inside host callbacks): ``step.shape + (1,)``."""
        return np.asarray(self.body.evaluate(np, np.asarray(step, np.float64)), np.float64)[..., None]

    @functools.cached_property
    def peak_lr(self) -> float:
        """The largest LR the curve takes (float64 formula; ``inf`` for an exponential growth with no end)."""
        return self.body.peak(None)

    @functools.cached_property
    def _segments(self) -> tuple[tuple[str, int, int | None], ...]:
        return self.body.segments()

    @functools.cached_property
    def phases(self) -> tuple[str, ...]:
        """The names of the phases the curve goes through, in order of first occurrence."""
        return tuple(dict.fromkeys(name for name, _, _ in self._segments))

    @functools.cached_property
    def _runs(self) -> tuple[np.ndarray, np.ndarray]:
        """The first step of each run of a phase, and the run's phase number."""
        return (np.asarray([start for _, start, _ in self._segments], np.float64),
                np.asarray([self.phases.index(name) for name, _, _ in self._segments], np.int8))

    def phase_at(self, step: Any) -> np.ndarray:
        """The index in :attr:`phases` of each step's phase, as int8 (steps below 0 are in the first phase)."""
        starts, phase_numbers = self._runs
        run = np.searchsorted(starts, np.asarray(step, np.float64), side="right") - 1
        return phase_numbers[np.maximum(run, 0)]

    def events(self, low: int = 0, high: int | None = None) -> list[tuple[str, int]]:
        """The events at steps in ``[low, high)`` as ``(kind, step)`` in step order (see the module docstring).

        Raises:
          ValueError: ``high`` is ``None`` and the curve's events are endless (a staircase exponential decay with
            no ``end_value``): give a finite ``high``.
        """
        low, high = max(0, int(low)), None if high is None else int(high)
        if high is None and self.body.endless():
            raise ValueError(
                f"high: the events of this {self.constructor} are endless (a staircase exponential decay drops "
                "every transition_steps steps, with no end_value): give a finite high"
            )
        last_name, last_start, _ = self._segments[-1]
        end = [(last_start - 1, END_RANK, "end", None)] if last_name == "final" and last_start > 0 else []
        stream = self.body.event_stream(low, None)  # lazy: stops being read at high
        out: list[tuple[str, int]] = []
        for step, _, family, suffix in heapq.merge(stream, end, key=lambda event: (event[0], event[1])):
            if high is not None and step >= high:
                break
            if step >= low:
                out.append((family if suffix is None else f"{family}_{suffix}", step))
        return out

    # -- plain data --------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """``{"curve": "optax.<constructor>", "args": {...}}``: the constructor's arguments as JSON-ready data."""
        return {CURVE_KEY: _PREFIX + self.constructor, "args": {name: _to_json(name, v) for name, v in self.args}}

    def differing_fields(self, other: Any) -> list[str]:
        """Names of the arguments that differ (``["curve"]`` for another constructor or another kind of curve)."""
        if not isinstance(other, OptaxSchedule) or other.constructor != self.constructor:
            return [CURVE_KEY]
        theirs = dict(other.args)
        return [name for name, value in self.args if theirs.get(name) != value]

    def __repr__(self) -> str:
        return f"{self.constructor}({', '.join(f'{name}={value!r}' for name, value in self.args)})"


def _to_json(name: str, value: Any) -> Any:
    if isinstance(value, OptaxSchedule):
        return value.to_dict()
    if name == "boundaries_and_scales":
        return {str(boundary): scale for boundary, scale in value}
    if name == "cosine_kwargs":
        return [dict(kwargs) for kwargs in value]
    if isinstance(value, tuple):
        return [_to_json(name, v) for v in value]
    return value


def _schedule(constructor: str, body: _Part, **args: Any) -> OptaxSchedule:
    return OptaxSchedule(constructor, tuple(args.items()), body)


# -- argument checks ---------------------------------------------------------------------------------------------
def _number(name: str, value: Any, *, minimum: float | None = None, above: float | None = None,
            maximum: float | None = None) -> int | float:
    """A finite real number, kept an ``int`` if it is one (optax computes ``x ** 2`` and ``x ** 2.0`` differently)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        dtype = getattr(value, "dtype", None)
        if getattr(value, "shape", None) != () or dtype is None or np.dtype(dtype).kind not in ("i", "u", "f"):
            raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
        value = value.item()
    value = int(value) if isinstance(value, numbers.Integral) else float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if above is not None and not value > above:
        raise ValueError(f"{name} must be > {above}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return value


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__} {value!r}")
    return bool(value)


def _scales(name: str, value: Any) -> tuple[tuple[int, float], ...]:
    """``{step: scale}`` (or ``None``) as sorted ``(step, scale)`` pairs, as optax iterates it."""
    if value is None:
        return ()
    if not isinstance(value, Mapping):
        raise TypeError(f"{name} must be a dict {{step: scale}} or None, got {type(value).__name__}")
    pairs = [(check_step_count(f"{name} key {k!r}", k, minimum=0), k) for k in value]
    out = tuple(sorted((step, _number(f"{name}[{k!r}]", value[k], minimum=0.0)) for step, k in pairs))
    if len({step for step, _ in out}) != len(out):
        raise ValueError(f"{name} has the same step twice: {sorted(value)}")
    return tuple((step, float(scale)) for step, scale in out)


def _check_end_value(end_value: Any, decay_rate: float, start: float, start_name: str) -> float | None:
    if end_value is None:
        return None
    end_value = check_learning_rate("end_value", end_value)
    if decay_rate < 1.0 and end_value > start:
        raise ValueError(f"end_value ({end_value}) must be <= {start_name} ({start}) when decay_rate < 1: optax "
                         f"clamps the decay at end_value from below and would hold it at every step")
    if decay_rate >= 1.0 and end_value < start:
        raise ValueError(f"end_value ({end_value}) must be >= {start_name} ({start}) when decay_rate >= 1: optax "
                         f"clamps the growth at end_value from above and would hold it at every step")
    return end_value


def _exponential_args(start_name: str, init_value: Any, transition_steps: Any, decay_rate: Any,
                      transition_begin: Any, staircase: Any, end_value: Any) -> dict[str, Any]:
    init_value = check_learning_rate(start_name, init_value)
    decay_rate = _number("decay_rate", decay_rate, above=0)
    return dict(
        init_value=init_value,
        transition_steps=check_step_count("transition_steps", transition_steps, minimum=1),
        decay_rate=decay_rate,
        transition_begin=check_step_count("transition_begin", transition_begin, minimum=0),
        staircase=_flag("staircase", staircase),
        end_value=_check_end_value(end_value, decay_rate, init_value, start_name),
    )


def _interpolate_type(value: Any) -> str:
    if value not in ("linear", "cosine") or not isinstance(value, str):
        raise ValueError(f"interpolate_type must be either 'cosine' or 'linear', got {value!r}")
    return value


def _warmup_cosine_args(where: str, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The checked arguments of a warmup + cosine decay (``where`` prefixes the messages: ``cosine_kwargs[1]: ``)."""
    try:
        warmup_steps = check_step_count("warmup_steps", kwargs["warmup_steps"], minimum=0)
        decay_steps = check_step_count("decay_steps", kwargs["decay_steps"], minimum=1)
        if decay_steps <= warmup_steps:
            raise ValueError(f"decay_steps ({decay_steps}) must be > warmup_steps ({warmup_steps}): optax's cosine "
                             "decay requires positive decay_steps - warmup_steps")
        return dict(
            init_value=check_learning_rate("init_value", kwargs["init_value"]),
            peak_value=check_learning_rate("peak_value", kwargs["peak_value"]),
            warmup_steps=warmup_steps,
            decay_steps=decay_steps,
            end_value=check_learning_rate("end_value", kwargs.get("end_value", 0.0)),
            exponent=_number("exponent", kwargs.get("exponent", 1.0), above=0),
        )
    except (TypeError, ValueError) as error:
        if not where:
            raise
        raise type(error)(f"{where}{error}") from None


def _onecycle_args(transition_steps: Any, peak_value: Any, pct_start: Any, div_factor: Any,
                   final_div_factor: Any) -> tuple[int, float, float, float, float]:
    return (check_step_count("transition_steps", transition_steps, minimum=1),
            check_learning_rate("peak_value", peak_value),
            float(_number("pct_start", pct_start, minimum=0, maximum=1)),
            float(_number("div_factor", div_factor, above=0)),
            float(_number("final_div_factor", final_div_factor, above=0)))
