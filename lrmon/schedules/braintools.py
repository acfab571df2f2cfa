r"""The curve of each braintools scheduler, read from its public attributes.

:func:`curve_of` turns a ``braintools.optim`` scheduler into a curve (:mod:`lrmon.schedules._protocol`): an
immutable, hashable value whose ``lr_at(step)`` is the LR the scheduler holds for its optimizer (its
``current_lrs``) when its ``last_epoch`` is ``step``, i.e. after ``step`` calls of ``step()`` on a fresh scheduler.
braintools is never imported here (classes are recognised by name and public attributes: braintools is an
optional extra), so this module imports, and its curves evaluate, without it.

Each curve evaluates one formula twice, as :class:`lrmon.curve.CurveConfig` does: ``lr_at`` with ``jax.numpy``
(float32, traceable, vectorised) and ``exact_lr_at`` with NumPy (float64, no JAX call). The formula is braintools'
``get_lr`` operation for operation, in the same order. Where braintools computes with Python floats (its epoch is
an ``int`` when stepped on the host: ``t / total_iters``, ``base_lr * gamma ** t``, ``base_lr - eta_min``), that
is float64 arithmetic rounded to float32 when it meets a JAX array or the optimizer; ``lr_at`` reproduces it with
float64 constants and double-float32 products (Dekker) rounded once, and its divisions by constants are correctly
rounded (XLA's vectorised float32 division is not). So ``lr_at`` (one compiled function) is within about an ulp
of the peak of braintools' float32 LR (XLA's fused ``cos`` and ``pow``), and bitwise at most steps. A plain
``jnp.power(gamma, t)`` would drift by ``t`` times the rounding of ``gamma`` (1100 ulps for ``0.99 ** 2000``).

Steps are ``last_epoch`` values, counted from 0 (braintools' default ``last_epoch=0``); curves are defined for
``step >= 0``.

Phases and events (``<phase>_start``/``<phase>_end`` name a phase's first/last step, ``end`` the last planned step
where the schedule has one, i.e. the step where it reaches its final value and holds it; repeating events are
numbered from 1; ``s<i>_`` prefixes the events of ``schedulers[i]``, counted from 0):

=============================  ==========================================  ======================================
scheduler                      phases (steps)                              events (step)
=============================  ==========================================  ======================================
StepLR                         ``decay``                                   ``decay_k`` (``k * step_size``), endless
MultiStepLR                    ``decay``                                   ``milestone_k`` (k-th distinct milestone)
ExponentialLR                  ``decay``                                   none
CosineAnnealingLR              ``cosine`` [0, T_max], ``past end``         ``end`` (``T_max``)
CosineAnnealingWarmRestarts    ``cosine``                                  ``restart_k`` (``k * T_0`` for
                                                                           ``T_mult == 1``, else
                                                                           ``T_0 (T_mult**k - 1) / (T_mult - 1)``),
                                                                           endless
OneCycleLR                     ``warmup`` [0, floor(pct_start *            ``peak`` (the step of the largest LR:
                               total_steps)] (braintools' ``step <=        the last warmup step or the first
                               pct_start * total_steps``), ``anneal``      anneal step), ``end`` (first step with
                               [.., end], ``past end``                     the annealing complete: total_steps up
                                                                           to float64 rounding)
LinearLR                       ``ramp`` [0, total_iters], ``constant``     ``ramp_end`` (``total_iters``)
ConstantLR                     ``factor`` [0, total_iters), ``constant``   ``factor_end`` (``total_iters - 1``, if
                                                                           ``total_iters >= 1``)
PolynomialLR                   ``decay`` [0, total_iters], ``past end``    ``end`` (``total_iters``)
CyclicLR                       ``up``, ``down`` (from each cycle's apex)   ``cycle_k`` (``(k-1) * (up + down)``),
                                                                           ``peak_k`` (k-th apex), endless
PiecewiseConstantSchedule      ``piecewise``                               ``boundary_k`` (k-th distinct boundary)
SequentialLR                   ``s<i>_<phase>`` for each child's phases    ``milestone_k`` (``milestones[k-1]``),
                                                                           ``s<i>_<kind>``: child i's events
                                                                           shifted by its offset, within its window
ChainedScheduler               ``s0_<p>+s1_<q>+...`` (every combination)   ``s<i>_<kind>``: each child's events
WarmupCosineSchedule           :class:`lrmon.curve.CurveConfig`'s          ``warmup_start``, ``warmup_end``,
                               ``warmup``, ``cosine``, ``past end``        ``cosine_start``, ``end``, ``overrun``
ReduceLROnPlateau              ``plateau`` (observed: flat at the          none planned (the monitor observes the
                               current LRs)                                cuts)
=============================  ==========================================  ======================================

A curve with endless events generates them lazily: ``events(low, high)`` costs the events in ``[low, high)``, and
``events(high=None)`` raises ``ValueError``. CyclicLR's apex of cycle ``k`` is where braintools' triangle peaks,
``(2k - 1) * step_size_up`` clipped into the cycle (``(k-1) P + step_size_up`` when ``step_size_down ==
step_size_up``; braintools' formula ignores ``step_size_down`` inside a cycle, see :class:`CyclicLRCurve`).

Family names (``to_dict()["curve"]``) are ``"braintools.<ClassName>"``; ``WarmupCosineSchedule`` gives lrmon's own
:class:`~lrmon.curve.CurveConfig` (no ``"curve"`` key). ``observed`` is ``True`` only for ``ReduceLROnPlateau``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
from typing import Any, ClassVar, Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from lrmon._validation import check_learning_rate, check_learning_rates, check_step_count
from lrmon.curve import CurveConfig
from lrmon.schedules._protocol import CURVE_KEY, check_event_kind, curve_from_dict, register

__all__ = [
    "curve_of",
    "SUPPORTED",
    "StepLRCurve",
    "MultiStepLRCurve",
    "ExponentialLRCurve",
    "CosineAnnealingLRCurve",
    "CosineAnnealingWarmRestartsCurve",
    "OneCycleLRCurve",
    "LinearLRCurve",
    "ConstantLRCurve",
    "PolynomialLRCurve",
    "CyclicLRCurve",
    "PiecewiseConstantScheduleCurve",
    "SequentialLRCurve",
    "ChainedSchedulerCurve",
    "ReduceLROnPlateauCurve",
]

_NAME_PREFIX = "braintools."
_INT32_MAX = 2**31 - 1


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


def _split32(value: Any) -> tuple[Any, Any]:
    """Veltkamp's split of float32 ``value`` into two 12-bit halves (their products are exact in float32)."""
    scaled = value * np.float32(4097.0)
    high = scaled - (scaled - value)
    return high, value - high


def _mul2(a_hi: Any, a_lo: Any, b_hi: Any, b_lo: Any) -> tuple[Any, Any]:
    """The product of two double-float32 numbers ``hi + lo`` (Dekker), as a normalised ``(hi, lo)``."""
    product = a_hi * b_hi
    a1, a2 = _split32(a_hi)
    b1, b2 = _split32(b_hi)
    error = ((a1 * b1 - product) + a1 * b2 + a2 * b1) + a2 * b2
    error = error + (a_hi * b_lo + a_lo * b_hi)
    high = product + error
    return high, error - (high - product)


def _double32(value: float) -> tuple[np.float32, np.float32]:
    """A float64 as the sum of two float32s."""
    high = np.float32(value)
    return high, np.float32(value - float(high))


@functools.lru_cache(maxsize=256)
def _squarings(base: float) -> tuple[tuple[tuple[np.float32, np.float32], ...], float | None]:
    """``base ** 2**b`` (float64, as double-float32 pairs) for the bits ``b`` an int32 exponent can have, until the
    value saturates; and the saturated value (``0.0`` or ``inf``: each higher bit gives it) or ``None``."""
    pairs = []
    power = base
    for _ in range(31):
        if power == 1.0:
            return tuple(pairs), None
        if power == 0.0 or not math.isfinite(float(np.float32(power))):
            return tuple(pairs), (0.0 if power == 0.0 else math.inf)
        pairs.append(_double32(power))
        power = power * power
    return tuple(pairs), None


def _scaled_pow(xp: Any, coefficients: Sequence[float], base: float, exponent: Any) -> Any:
    """``coefficients[g] * base ** exponent`` for an integer array ``exponent >= 0``: shape ``exponent.shape + (G,)``.

    This is braintools' Python-float ``base_lr * gamma ** t``. NumPy: float64 (Python's ``float ** int`` is C
    ``pow``, as ``np.power``). ``jax.numpy``: the product over the set bits ``b`` of the exponent of ``base ** 2**b``
    in double-float32 arithmetic (about 48 bits), rounded to float32 once: braintools' float64 value rounded to
    float32, bitwise above ~1e-28 (where the low halves become subnormal).
    """
    if xp is np:
        return np.asarray(coefficients) * np.power(base, exponent.astype(np.float64))[..., None]
    pairs, saturated = _squarings(float(base))
    high = jnp.ones(exponent.shape, jnp.float32)
    low = jnp.zeros(exponent.shape, jnp.float32)
    for bit, (factor_hi, factor_lo) in enumerate(pairs):
        new_high, new_low = _mul2(high, low, factor_hi, factor_lo)
        selected = (exponent >> bit) & 1 == 1
        high, low = jnp.where(selected, new_high, high), jnp.where(selected, new_low, low)
    if saturated is not None:
        beyond = exponent >= 2 ** len(pairs)
        high, low = jnp.where(beyond, high * saturated, high), jnp.where(beyond, 0.0, low)
    split = [_double32(c) for c in coefficients]
    coefficient_hi = jnp.asarray([h for h, _ in split], jnp.float32)
    coefficient_lo = jnp.asarray([lo for _, lo in split], jnp.float32)
    result_hi, result_lo = _mul2(high[..., None], low[..., None], coefficient_hi, coefficient_lo)
    return result_hi + result_lo


def _divide(xp: Any, numerator: Any, denominator: float, offset: float = 0.0) -> Any:
    """``(numerator - offset) / denominator`` for an array numerator (integer, or float32 with ``offset == 0``) and
    constants ``offset`` and ``denominator``.

    ``jax.numpy``: the difference and the product by the reciprocal in double-float32 arithmetic, rounded once: the
    correctly rounded float32 quotient, i.e. braintools' float64 arithmetic rounded to float32 (and what its scalar
    float32 division gives), where XLA's vectorised float32 division may be an ulp off.
    """
    if xp is np:
        return (numerator - offset) / denominator if offset else numerator / denominator
    inverse_hi, inverse_lo = _double32(1.0 / denominator)
    if jnp.issubdtype(numerator.dtype, jnp.integer):
        high = numerator.astype(jnp.float32)
        low = (numerator - high.astype(numerator.dtype)).astype(jnp.float32)
    else:
        high, low = numerator, jnp.zeros_like(numerator)
    if offset:
        offset_hi, offset_lo = _double32(-offset)
        total = high + offset_hi  # Knuth's two-sum of high and -offset_hi
        virtual = total - high
        error = (high - (total - virtual)) + (offset_hi - virtual) + (low + offset_lo)
        high = total + error
        low = error - (high - total)
    result_hi, result_lo = _mul2(high, low, inverse_hi, inverse_lo)
    return result_hi + result_lo


def _groups(xp: Any, values: Sequence[float]) -> Any:
    return xp.asarray(values)


def _child_lr(xp: Any, child: Any, step: Any) -> Any:
    return child.lr_at(step) if xp is jnp else child.exact_lr_at(step)


def _candidates_of(curve: Any) -> list[int] | None:
    """Steps at which the curve's largest LR is taken (``None``: it grows without bound)."""
    if isinstance(curve, CurveConfig):
        return [0, curve.warmup_steps, curve.total_steps]
    return curve._peak_candidates()


def _plain(value: Any) -> Any:
    """A scheduler attribute as plain Python data (NumPy / JAX arrays and scalars -> lists and Python scalars)."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "shape") and hasattr(value, "tolist"):
        return value.tolist()
    return value


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


# ---------------------------------------------------------------------------------------------------------------
# Stateless closed forms
# ---------------------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class StepLRCurve(_BraintoolsCurve):
    r"""braintools ``StepLR``: :math:`\eta_t = \eta_{base}\,\gamma^{\lfloor t / s \rfloor}` (``s = step_size``).

    Phases: ``decay``. Events: ``decay_k`` at ``k * step_size`` (``k >= 1``, endless).
    """

    scheduler: ClassVar[str] = "StepLR"
    _phases: ClassVar[tuple[str, ...]] = ("decay",)
    endless: ClassVar[bool] = True

    base_lrs: tuple[float, ...]
    step_size: int
    gamma: float

    def __post_init__(self) -> None:
        set_field = object.__setattr__
        set_field(self, "base_lrs", _lrs("base_lrs", self.base_lrs))
        set_field(self, "step_size", check_step_count("step_size", self.step_size, minimum=1))
        set_field(self, "gamma", check_learning_rate("gamma", self.gamma))

    def _evaluate(self, xp: Any, step: Any) -> Any:
        return _scaled_pow(xp, self.base_lrs, self.gamma, step // self.step_size)

    def _events(self, low: int, high: int | None) -> Iterator[tuple[str, int]]:
        k = max(1, -(-low // self.step_size))
        while high is None or k * self.step_size < high:
            yield f"decay_{k}", k * self.step_size
            k += 1

    def _peak_candidates(self) -> list[int] | None:
        return [0] if self.gamma <= 1.0 else None


@dataclasses.dataclass(frozen=True)
class MultiStepLRCurve(_BraintoolsCurve):
    r"""braintools ``MultiStepLR``: :math:`\eta_t = \eta_{base}\,\gamma^{\#\{m \in \text{milestones}: t \ge m\}}`.

    ``jnp.power(gamma, count)`` as braintools (float32). Phases: ``decay``. Events: ``milestone_k`` at the k-th
    distinct milestone (a repeated milestone multiplies by ``gamma`` once per repetition, as braintools').
    """

    scheduler: ClassVar[str] = "MultiStepLR"
    _phases: ClassVar[tuple[str, ...]] = ("decay",)

    base_lrs: tuple[float, ...]
    milestones: tuple[int, ...]
    gamma: float

    def __post_init__(self) -> None:
        set_field = object.__setattr__
        set_field(self, "base_lrs", _lrs("base_lrs", self.base_lrs))
        set_field(self, "milestones", _steps("milestones", self.milestones))
        set_field(self, "gamma", check_learning_rate("gamma", self.gamma))

    def _evaluate(self, xp: Any, step: Any) -> Any:
        milestones = xp.asarray(self.milestones, dtype=xp.int32 if xp is jnp else np.int64)
        count = xp.sum(step[..., None] >= milestones, axis=-1)
        factor = xp.power(self.gamma, count)
        return _groups(xp, self.base_lrs) * factor[..., None]

    def _events(self, low: int, high: int | None) -> Iterator[tuple[str, int]]:
        for k, milestone in enumerate(sorted(set(self.milestones)), start=1):
            yield f"milestone_{k}", milestone

    def _peak_candidates(self) -> list[int] | None:
        return [0, *self.milestones]


@dataclasses.dataclass(frozen=True)
class ExponentialLRCurve(_BraintoolsCurve):
    r"""braintools ``ExponentialLR``: :math:`\eta_t = \eta_{base}\,\gamma^t`. Phases: ``decay``; no events."""

    scheduler: ClassVar[str] = "ExponentialLR"
    _phases: ClassVar[tuple[str, ...]] = ("decay",)

    base_lrs: tuple[float, ...]
    gamma: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "base_lrs", _lrs("base_lrs", self.base_lrs))
        object.__setattr__(self, "gamma", check_learning_rate("gamma", self.gamma))

    def _evaluate(self, xp: Any, step: Any) -> Any:
        return _scaled_pow(xp, self.base_lrs, self.gamma, step)

    def _peak_candidates(self) -> list[int] | None:
        return [0] if self.gamma <= 1.0 else None


@dataclasses.dataclass(frozen=True)
class CosineAnnealingLRCurve(_BraintoolsCurve):
    r"""braintools ``CosineAnnealingLR``, held at :math:`\eta_{min}` from ``T_max`` on:

    .. math:: \eta_t = \eta_{min} + (\eta_{base} - \eta_{min})\,\tfrac12\bigl(1 + \cos(\pi \min(t, T) / T)\bigr)

    Phases: ``cosine`` (``t <= T_max``), ``past end``. Events: ``end`` at ``T_max``.
    """

    scheduler: ClassVar[str] = "CosineAnnealingLR"
    _phases: ClassVar[tuple[str, ...]] = ("cosine", "past end")

    base_lrs: tuple[float, ...]
    T_max: int
    eta_min: float = 0.0

    def __post_init__(self) -> None:
        set_field = object.__setattr__
        set_field(self, "base_lrs", _lrs("base_lrs", self.base_lrs))
        set_field(self, "T_max", check_step_count("T_max", self.T_max, minimum=1))
        set_field(self, "eta_min", check_learning_rate("eta_min", self.eta_min))

    def _evaluate(self, xp: Any, step: Any) -> Any:
        epoch = xp.minimum(step, self.T_max)
        factor = (1 + xp.cos(_divide(xp, xp.pi * epoch, self.T_max))) / 2
        spans = [base_lr - self.eta_min for base_lr in self.base_lrs]
        return self.eta_min + _groups(xp, spans) * factor[..., None]

    def _phase(self, step: np.ndarray) -> Any:
        return _finite_end_phase(step, self.T_max)

    def _events(self, low: int, high: int | None) -> Iterator[tuple[str, int]]:
        yield "end", self.T_max

    def _peak_candidates(self) -> list[int] | None:
        return [0, self.T_max]


@dataclasses.dataclass(frozen=True)
class CosineAnnealingWarmRestartsCurve(_BraintoolsCurve):
    r"""braintools ``CosineAnnealingWarmRestarts`` (SGDR), as its incremental ``step()`` advances it.

    Cycle :math:`i` (from 0) starts at :math:`S_i = T_0 (T_{mult}^i - 1)/(T_{mult} - 1)` (:math:`i T_0` for
    :math:`T_{mult} = 1`) and lasts :math:`T_i = T_0 T_{mult}^i`; with :math:`T_{cur} = t - S_i` (integers, exact):

    .. math:: \eta_t = \eta_{min} + (\eta_{base} - \eta_{min})\bigl(1 + \cos(\pi T_{cur} / T_i)\bigr) / 2

    Phases: ``cosine``. Events: ``restart_k`` at :math:`S_k`, ``k >= 1`` (endless).
    """

    scheduler: ClassVar[str] = "CosineAnnealingWarmRestarts"
    _phases: ClassVar[tuple[str, ...]] = ("cosine",)
    endless: ClassVar[bool] = True

    base_lrs: tuple[float, ...]
    T_0: int
    T_mult: int = 1
    eta_min: float = 0.0

    def __post_init__(self) -> None:
        set_field = object.__setattr__
        set_field(self, "base_lrs", _lrs("base_lrs", self.base_lrs))
        set_field(self, "T_0", check_step_count("T_0", self.T_0, minimum=1))
        set_field(self, "T_mult", check_step_count("T_mult", self.T_mult, minimum=1))
        set_field(self, "eta_min", check_learning_rate("eta_min", self.eta_min))

    def _cycles(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Start and length of each cycle that starts within int32 (``T_mult > 1``)."""
        starts, lengths = [0], [self.T_0]
        while starts[-1] + lengths[-1] <= _INT32_MAX:
            starts.append(starts[-1] + lengths[-1])
            lengths.append(lengths[-1] * self.T_mult)
        return tuple(starts), tuple(min(n, _INT32_MAX) for n in lengths)

    def _position(self, xp: Any, step: Any) -> tuple[Any, Any]:
        """``(T_cur, T_i)`` at each step (integer arrays)."""
        if self.T_mult == 1:
            return step % self.T_0, xp.full(step.shape, self.T_0, step.dtype)
        starts, lengths = self._cycles()
        dtype = step.dtype
        cycle = xp.searchsorted(xp.asarray(starts, dtype=dtype), step, side="right") - 1
        return step - xp.asarray(starts, dtype=dtype)[cycle], xp.asarray(lengths, dtype=dtype)[cycle]

    def _evaluate(self, xp: Any, step: Any) -> Any:
        t_cur, t_i = self._position(xp, step)
        spans = [base_lr - self.eta_min for base_lr in self.base_lrs]
        angle = _divide(xp, xp.pi * t_cur, self.T_0) if self.T_mult == 1 else xp.pi * t_cur / t_i
        return self.eta_min + _groups(xp, spans) * (1 + xp.cos(angle))[..., None] / 2

    def _restarts(self) -> Iterator[int]:
        start, length = 0, self.T_0
        while True:
            start += length
            length *= self.T_mult
            yield start

    def _events(self, low: int, high: int | None) -> Iterator[tuple[str, int]]:
        if self.T_mult == 1:
            k = max(1, -(-low // self.T_0))
            while high is None or k * self.T_0 < high:
                yield f"restart_{k}", k * self.T_0
                k += 1
            return
        for k, start in enumerate(self._restarts(), start=1):
            if high is not None and start >= high:
                return
            if start >= low:
                yield f"restart_{k}", start

    def _peak_candidates(self) -> list[int] | None:
        return [0, self.T_0 - 1]


@dataclasses.dataclass(frozen=True)
class OneCycleLRCurve(_BraintoolsCurve):
    r"""braintools ``OneCycleLR`` (0-indexed): with :math:`w = p\,T` (``pct_start * total_steps``, float64),
    :math:`\eta_0 = \eta_{max}/d`, :math:`\eta_{end} = \eta_{max}/d_{final}`:

    .. math::

       \eta_t = \begin{cases}
         \eta_0 + \min(t/w, 1)\,(\eta_{max} - \eta_0) & t \le w \\
         \eta_{end} + f\bigl(\operatorname{clip}((t - w)/((1 - p) T), 0, 1)\bigr)\,(\eta_{max} - \eta_{end}) & t > w
       \end{cases}

    with :math:`f(a) = (1 + \cos \pi a)/2` (``'cos'``) or :math:`1 - a` (``'linear'``). Phases: ``warmup``
    (``t <= w``), ``anneal`` (up to ``end``), ``past end``. Events: ``peak`` (the step of the largest LR: the last
    warmup step, or the first anneal step when :math:`w` is not an integer and that one is higher), ``end`` (the
    first step at which the annealing is complete).
    """

    scheduler: ClassVar[str] = "OneCycleLR"
    _phases: ClassVar[tuple[str, ...]] = ("warmup", "anneal", "past end")

    max_lrs: tuple[float, ...]
    total_steps: int
    pct_start: float = 0.3
    anneal_strategy: str = "cos"
    div_factor: float = 25.0
    final_div_factor: float = 1e4

    def __post_init__(self) -> None:
        set_field = object.__setattr__
        set_field(self, "max_lrs", _lrs("max_lrs", self.max_lrs))
        set_field(self, "total_steps", check_step_count("total_steps", self.total_steps, minimum=1))
        set_field(self, "pct_start", _real("pct_start", self.pct_start))
        if not 0.0 < self.pct_start < 1.0:
            raise ValueError(f"pct_start must be in the open interval (0, 1), got {self.pct_start}")
        set_field(self, "anneal_strategy", _choice("anneal_strategy", self.anneal_strategy, ("cos", "linear")))
        set_field(self, "div_factor", _positive("div_factor", self.div_factor))
        set_field(self, "final_div_factor", _positive("final_div_factor", self.final_div_factor))

    @property
    def base_lrs(self) -> tuple[float, ...]:
        """The initial LRs, ``max_lr / div_factor`` (braintools' ``base_lrs``)."""
        return tuple(max_lr / self.div_factor for max_lr in self.max_lrs)

    @property
    def min_lrs(self) -> tuple[float, ...]:
        """The final LRs, ``max_lr / final_div_factor``."""
        return tuple(max_lr / self.final_div_factor for max_lr in self.max_lrs)

    @property
    def _warmup(self) -> float:
        return self.pct_start * self.total_steps

    @property
    def last_warmup_step(self) -> int:
        """The last step of the warmup (braintools' ``step <= pct_start * total_steps``)."""
        return math.floor(self._warmup)

    @property
    def end_step(self) -> int:
        """The first step at which the annealing is complete (``clip(...) == 1``, float64 as braintools)."""
        warmup, span = self._warmup, (1 - self.pct_start) * self.total_steps
        end = max(self.last_warmup_step + 1, math.ceil(warmup + span) - 2)
        while (end - warmup) / span < 1.0:
            end += 1
        return end

    @property
    def peak_step(self) -> int:
        """The step of the largest LR (the earlier one on a tie)."""
        last = self.last_warmup_step
        group = int(np.argmax(self.max_lrs))
        lr = self.exact_lr_at(np.asarray([last, last + 1]))[:, group]
        return last + 1 if lr[1] > lr[0] else last

    def _evaluate(self, xp: Any, step: Any) -> Any:
        warmup_steps = self._warmup
        warmup_pct = xp.minimum(_divide(xp, step, warmup_steps), 1.0)[..., None]
        rises = [max_lr - base_lr for base_lr, max_lr in zip(self.base_lrs, self.max_lrs)]
        warmup_lrs = _groups(xp, self.base_lrs) + warmup_pct * _groups(xp, rises)
        anneal_span = (1 - self.pct_start) * self.total_steps
        anneal_pct = xp.clip(_divide(xp, step, anneal_span, offset=warmup_steps), 0.0, 1.0)
        if self.anneal_strategy == "cos":
            anneal_factor = (1 + xp.cos(xp.pi * anneal_pct)) / 2
        else:
            anneal_factor = 1 - anneal_pct
        falls = [max_lr - min_lr for min_lr, max_lr in zip(self.min_lrs, self.max_lrs)]
        anneal_lrs = _groups(xp, self.min_lrs) + anneal_factor[..., None] * _groups(xp, falls)
        return xp.where((step <= self.last_warmup_step)[..., None], warmup_lrs, anneal_lrs)

    def _phase(self, step: np.ndarray) -> Any:
        return (step > self.last_warmup_step).astype(np.int8) + (step > self.end_step).astype(np.int8)

    def _events(self, low: int, high: int | None) -> Iterator[tuple[str, int]]:
        yield "peak", self.peak_step
        yield "end", self.end_step

    def _peak_candidates(self) -> list[int] | None:
        return [0, self.last_warmup_step, self.last_warmup_step + 1, self.end_step]


@dataclasses.dataclass(frozen=True)
class LinearLRCurve(_BraintoolsCurve):
    r"""braintools ``LinearLR``: :math:`\eta_t = \eta_{base}\,(f_s + (f_e - f_s)\operatorname{clip}(t/n, 0, 1))`
    (``n = total_iters``; ``n == 0``: :math:`\eta_{base} f_e`).

    Phases: ``ramp`` (``t <= total_iters``), ``constant``. Events: ``ramp_end`` at ``total_iters``.
    """

    scheduler: ClassVar[str] = "LinearLR"
    _phases: ClassVar[tuple[str, ...]] = ("ramp", "constant")

    base_lrs: tuple[float, ...]
    start_factor: float = 1.0 / 3
    end_factor: float = 1.0
    total_iters: int = 5

    def __post_init__(self) -> None:
        set_field = object.__setattr__
        set_field(self, "base_lrs", _lrs("base_lrs", self.base_lrs))
        set_field(self, "start_factor", check_learning_rate("start_factor", self.start_factor))
        set_field(self, "end_factor", check_learning_rate("end_factor", self.end_factor))
        set_field(self, "total_iters", check_step_count("total_iters", self.total_iters, minimum=0))

    def _evaluate(self, xp: Any, step: Any) -> Any:
        if self.total_iters == 0:
            lrs = _groups(xp, [base_lr * self.end_factor for base_lr in self.base_lrs])
            return xp.broadcast_to(lrs, step.shape + lrs.shape)
        interpolation = xp.clip(_divide(xp, step, self.total_iters), 0.0, 1.0)
        factor = self.start_factor + (self.end_factor - self.start_factor) * interpolation
        return _groups(xp, self.base_lrs) * factor[..., None]

    def _phase(self, step: np.ndarray) -> Any:
        return _finite_end_phase(step, self.total_iters)

    def _events(self, low: int, high: int | None) -> Iterator[tuple[str, int]]:
        yield "ramp_end", self.total_iters

    def _peak_candidates(self) -> list[int] | None:
        return [0, self.total_iters]


@dataclasses.dataclass(frozen=True)
class ConstantLRCurve(_BraintoolsCurve):
    r"""braintools ``ConstantLR``: :math:`\eta_t = \eta_{base}\,f` for ``t < total_iters``, :math:`\eta_{base}` after.

    Phases: ``factor`` (``t < total_iters``), ``constant``. Events: ``factor_end`` at ``total_iters - 1`` (when
    ``total_iters >= 1``).
    """

    scheduler: ClassVar[str] = "ConstantLR"
    _phases: ClassVar[tuple[str, ...]] = ("factor", "constant")

    base_lrs: tuple[float, ...]
    factor: float = 1.0 / 3
    total_iters: int = 5

    def __post_init__(self) -> None:
        set_field = object.__setattr__
        set_field(self, "base_lrs", _lrs("base_lrs", self.base_lrs))
        set_field(self, "factor", check_learning_rate("factor", self.factor))
        set_field(self, "total_iters", check_step_count("total_iters", self.total_iters, minimum=0))

    def _evaluate(self, xp: Any, step: Any) -> Any:
        factor = xp.where(step < self.total_iters, self.factor, 1.0)
        return _groups(xp, self.base_lrs) * factor[..., None]

    def _phase(self, step: np.ndarray) -> Any:
        return (step >= self.total_iters).astype(np.int8)

    def _events(self, low: int, high: int | None) -> Iterator[tuple[str, int]]:
        if self.total_iters >= 1:
            yield "factor_end", self.total_iters - 1

    def _peak_candidates(self) -> list[int] | None:
        return [0, self.total_iters]


@dataclasses.dataclass(frozen=True)
class PolynomialLRCurve(_BraintoolsCurve):
    r"""braintools ``PolynomialLR``: :math:`\eta_t = \eta_{base}\,(1 - \min(t, n)/n)^{p}` (``n = total_iters``).

    Phases: ``decay`` (``t <= total_iters``), ``past end``. Events: ``end`` at ``total_iters``.
    """

    scheduler: ClassVar[str] = "PolynomialLR"
    _phases: ClassVar[tuple[str, ...]] = ("decay", "past end")

    base_lrs: tuple[float, ...]
    total_iters: int = 5
    power: float = 1.0

    def __post_init__(self) -> None:
        set_field = object.__setattr__
        set_field(self, "base_lrs", _lrs("base_lrs", self.base_lrs))
        set_field(self, "total_iters", check_step_count("total_iters", self.total_iters, minimum=1))
        set_field(self, "power", check_learning_rate("power", self.power))

    def _evaluate(self, xp: Any, step: Any) -> Any:
        decay_factor = (1 - _divide(xp, xp.minimum(step, self.total_iters), self.total_iters)) ** self.power
        return _groups(xp, self.base_lrs) * decay_factor[..., None]

    def _phase(self, step: np.ndarray) -> Any:
        return _finite_end_phase(step, self.total_iters)

    def _events(self, low: int, high: int | None) -> Iterator[tuple[str, int]]:
        yield "end", self.total_iters

    def _peak_candidates(self) -> list[int] | None:
        return [0, self.total_iters]


@dataclasses.dataclass(frozen=True)
class CyclicLRCurve(_BraintoolsCurve):
    r"""braintools ``CyclicLR`` with a built-in ``mode`` (a custom ``scale_fn`` cannot be described).

    With :math:`u` = ``step_size_up``, :math:`P = u + ` ``step_size_down``, cycle :math:`c = 1 + \lfloor t/P
    \rfloor` and :math:`x = |t/u - 2c + 1|`:

    .. math:: \eta_t = \eta_{base} + (\eta_{max} - \eta_{base})\, s_t \max(0, 1 - x)

    with :math:`s_t = 1` (``triangular``), :math:`2^{1-c}` (``triangular2``) or :math:`\gamma^t` (``exp_range``).
    As in braintools, :math:`x` uses :math:`u` only: with ``step_size_down != step_size_up`` the triangle of cycle
    :math:`c` peaks at :math:`(2c - 1) u` (clipped into the cycle) rather than :math:`u` steps into it.

    Phases: ``up`` (before the cycle's apex), ``down`` (from it). Events, endless: ``cycle_k`` at the start of
    cycle ``k``, ``(k-1) P``, and ``peak_k`` at its apex.
    """

    scheduler: ClassVar[str] = "CyclicLR"
    _phases: ClassVar[tuple[str, ...]] = ("up", "down")
    endless: ClassVar[bool] = True

    base_lrs: tuple[float, ...]
    max_lrs: tuple[float, ...]
    step_size_up: int = 2000
    step_size_down: int = 2000
    mode: str = "triangular"
    gamma: float = 1.0

    def __post_init__(self) -> None:
        set_field = object.__setattr__
        set_field(self, "base_lrs", _lrs("base_lrs", self.base_lrs))
        set_field(self, "max_lrs", _lrs("max_lrs", self.max_lrs))
        if len(self.max_lrs) != len(self.base_lrs):
            raise ValueError(
                f"max_lrs must have one LR per parameter group ({len(self.base_lrs)}), got {len(self.max_lrs)}"
            )
        set_field(self, "step_size_up", check_step_count("step_size_up", self.step_size_up, minimum=1))
        set_field(self, "step_size_down", check_step_count("step_size_down", self.step_size_down, minimum=1))
        set_field(self, "mode", _choice("mode", self.mode, ("triangular", "triangular2", "exp_range")))
        set_field(self, "gamma", check_learning_rate("gamma", self.gamma))

    @property
    def cycle_length(self) -> int:
        """``step_size_up + step_size_down``."""
        return self.step_size_up + self.step_size_down

    def _apex(self, cycle: Any) -> Any:
        """The apex step of cycle ``cycle`` (from 1): where ``x`` is smallest within the cycle."""
        period = self.cycle_length
        return np.clip((2 * cycle - 1) * self.step_size_up, (cycle - 1) * period, cycle * period - 1)

    def _ratio(self, xp: Any, step: Any) -> Any:
        """``step / step_size_up``, correctly rounded (:func:`_divide`): ``x`` cancels its integer part, so an ulp of
        ``t / u`` there is an ulp of ``t / u`` in the LR."""
        return _divide(xp, step, self.step_size_up)

    def _evaluate(self, xp: Any, step: Any) -> Any:
        cycle = (1 + step // self.cycle_length).astype(xp.float32 if xp is jnp else np.float64)
        x = xp.abs(self._ratio(xp, step) - 2 * cycle + 1)
        heights = [max_lr - base_lr for base_lr, max_lr in zip(self.base_lrs, self.max_lrs)]
        if self.mode == "triangular":
            scaled = _groups(xp, heights) * 1.0
        elif self.mode == "triangular2":
            scaled = _groups(xp, heights) * (1.0 / (2.0 ** (cycle - 1)))[..., None]
        else:
            scaled = _scaled_pow(xp, heights, self.gamma, step)
        return _groups(xp, self.base_lrs) + scaled * xp.maximum(0, 1 - x)[..., None]

    def _phase(self, step: np.ndarray) -> Any:
        return (step >= self._apex(1 + step // self.cycle_length)).astype(np.int8)

    def _events(self, low: int, high: int | None) -> Iterator[tuple[str, int]]:
        k = max(1, low // self.cycle_length + 1)
        while high is None or (k - 1) * self.cycle_length < high:
            yield f"cycle_{k}", (k - 1) * self.cycle_length
            yield f"peak_{k}", int(self._apex(k))
            k += 1

    def _peak_candidates(self) -> list[int] | None:
        if self.mode == "exp_range" and self.gamma > 1.0:
            return None
        return [0, int(self._apex(1))]


@dataclasses.dataclass(frozen=True)
class PiecewiseConstantScheduleCurve(_BraintoolsCurve):
    r"""braintools ``PiecewiseConstantSchedule``: ``values[i]`` (absolute LRs, float32 as braintools stores them,
    the same for every group; ``base_lrs`` only counts the groups) from ``boundaries[i-1]`` to ``boundaries[i]``.

    Phases: ``piecewise``. Events: ``boundary_k`` at the k-th distinct boundary.
    """

    scheduler: ClassVar[str] = "PiecewiseConstantSchedule"
    _phases: ClassVar[tuple[str, ...]] = ("piecewise",)

    base_lrs: tuple[float, ...]
    boundaries: tuple[int, ...]
    values: tuple[float, ...]

    def __post_init__(self) -> None:
        set_field = object.__setattr__
        set_field(self, "base_lrs", _lrs("base_lrs", self.base_lrs))
        set_field(self, "boundaries", _steps("boundaries", self.boundaries))
        set_field(self, "values", _lrs("values", self.values))
        if len(self.values) != len(self.boundaries) + 1:
            raise ValueError(
                f"values must have one more entry than boundaries ({len(self.boundaries)}), got {len(self.values)}"
            )

    def _evaluate(self, xp: Any, step: Any) -> Any:
        boundaries = xp.asarray(self.boundaries, dtype=xp.int32 if xp is jnp else np.int64)
        value = xp.asarray(self.values)[xp.searchsorted(boundaries, step, side="right")]
        return xp.broadcast_to(value[..., None], step.shape + (self.num_groups,))

    def _events(self, low: int, high: int | None) -> Iterator[tuple[str, int]]:
        for k, boundary in enumerate(sorted(set(self.boundaries)), start=1):
            yield f"boundary_{k}", boundary

    def _peak_candidates(self) -> list[int] | None:
        return [0, *self.boundaries]


# ---------------------------------------------------------------------------------------------------------------
# Compositions
# ---------------------------------------------------------------------------------------------------------------
def _check_children(name: str, children: Any) -> tuple[Any, ...]:
    if not isinstance(children, (list, tuple)) or not children:
        raise ValueError(f"{name} must be a non-empty list of curves, got {children!r}")
    for i, child in enumerate(children):
        if not all(hasattr(child, a) for a in ("lr_at", "exact_lr_at", "phase_at", "events", "to_dict")):
            raise TypeError(f"{name}[{i}] must be a curve, got {type(child).__name__}")
        if getattr(child, "observed", False):
            raise TypeError(f"{name}[{i}] is observed ({type(child).__name__}): it has no planned curve to compose")
    return tuple(children)


@dataclasses.dataclass(frozen=True)
class SequentialLRCurve(_BraintoolsCurve):
    r"""braintools ``SequentialLR``: ``schedulers[i]`` from ``milestones[i-1]`` (offset ``o_i``; ``o_0 = 0``) to
    ``milestones[i]``, evaluated at the milestone-relative step ``t - o_i`` (braintools steps the active child with
    it).

    Phases: each child's, as ``s<i>_<phase>``. Events: ``milestone_k`` at ``milestones[k-1]`` and each child's as
    ``s<i>_<kind>`` shifted by ``o_i``, those within the child's window only; endless when the last child's are.
    """

    scheduler: ClassVar[str] = "SequentialLR"

    schedulers: tuple[Any, ...]
    milestones: tuple[int, ...]

    def __post_init__(self) -> None:
        set_field = object.__setattr__
        set_field(self, "schedulers", _check_children("schedulers", self.schedulers))
        set_field(self, "milestones", _steps("milestones", self.milestones))
        if len(self.schedulers) != len(self.milestones) + 1:
            raise ValueError(
                f"SequentialLR needs one more scheduler than milestones ({len(self.milestones)}), "
                f"got {len(self.schedulers)}"
            )
        groups = {child.num_groups for child in self.schedulers}
        if len(groups) != 1:
            raise ValueError(f"the schedulers of a SequentialLR must have the same number of groups, got {groups}")
        if len(self.phases) > 127:
            raise ValueError(f"SequentialLR has {len(self.phases)} phases; at most 127 are supported")

    @property
    def base_lrs(self) -> tuple[float, ...]:
        """The first scheduler's ``base_lrs`` (braintools')."""
        return tuple(self.schedulers[0].base_lrs)

    @property
    def offsets(self) -> tuple[int, ...]:
        """The step at which each scheduler starts: ``(0, *milestones)``."""
        return (0, *self.milestones)

    @property
    def endless(self) -> bool:  # type: ignore[override]
        return bool(getattr(self.schedulers[-1], "endless", False))

    @property
    def phases(self) -> tuple[str, ...]:
        return tuple(f"s{i}_{phase}" for i, child in enumerate(self.schedulers) for phase in child.phases)

    def _index(self, xp: Any, step: Any) -> Any:
        if not self.milestones:
            return xp.zeros(step.shape, step.dtype)
        return xp.searchsorted(xp.asarray(self.milestones, dtype=step.dtype), step, side="right")

    def _evaluate(self, xp: Any, step: Any) -> Any:
        index = self._index(xp, step)[..., None]
        result = _child_lr(xp, self.schedulers[0], step)
        for i, (child, offset) in enumerate(zip(self.schedulers, self.offsets)):
            if i:
                lr = _child_lr(xp, child, xp.maximum(step - offset, 0))
                result = xp.where(index == i, lr, result)
        return result

    def _phase(self, step: np.ndarray) -> Any:
        index = self._index(np, step)
        phase = np.zeros(step.shape, np.int8)
        first = 0
        for i, (child, offset) in enumerate(zip(self.schedulers, self.offsets)):
            child_phase = child.phase_at(np.maximum(step - offset, 0)).astype(np.int8) + first
            phase = np.where(index == i, child_phase, phase)
            first += len(child.phases)
        return phase

    def _events(self, low: int, high: int | None) -> Iterator[tuple[str, int]]:
        for k, milestone in enumerate(self.milestones, start=1):
            yield f"milestone_{k}", milestone
        stops = (*self.milestones, None)
        for i, (child, start, stop) in enumerate(zip(self.schedulers, self.offsets, stops)):
            lo = max(low, start)
            hi = stop if high is None else (high if stop is None else min(high, stop))
            if hi is not None and lo >= hi:
                continue
            for kind, step in child.events(lo - start, None if hi is None else hi - start):
                yield f"s{i}_{kind}", step + start

    def _peak_candidates(self) -> list[int] | None:
        candidates: list[int] = []
        stops = (*self.milestones, None)
        for child, start, stop in zip(self.schedulers, self.offsets, stops):
            if stop is not None and stop <= start:
                continue
            inner = _candidates_of(child)
            if inner is None:
                if stop is None:
                    return None
                inner = []
            candidates += [start + c for c in inner if stop is None or start + c < stop] + [start]
            if stop is not None:
                candidates.append(stop - 1)
        return candidates


@dataclasses.dataclass(frozen=True)
class ChainedSchedulerCurve(_BraintoolsCurve):
    r"""braintools ``ChainedScheduler``: the first scheduler's ``base_lrs`` times each scheduler's factor
    ``lr_i(t) / base_lr_i`` (0 where ``base_lr_i == 0``), in the schedulers' order, as braintools' ``get_lr``
    (a scheduler with fewer groups lends its last one). Every scheduler is stepped at once, so all see ``t``.

    Phases: every combination ``s0_<p>+s1_<q>+...`` of the children's phases (child 0 the most significant).
    Events: each child's as ``s<i>_<kind>``; endless when any child's are.
    """

    scheduler: ClassVar[str] = "ChainedScheduler"

    schedulers: tuple[Any, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "schedulers", _check_children("schedulers", self.schedulers))
        if math.prod(len(child.phases) for child in self.schedulers) > 127:
            raise ValueError("the ChainedScheduler's children have more than 127 combinations of phases")

    @property
    def base_lrs(self) -> tuple[float, ...]:
        """The first scheduler's ``base_lrs`` (braintools')."""
        return tuple(self.schedulers[0].base_lrs)

    @property
    def endless(self) -> bool:  # type: ignore[override]
        return any(getattr(child, "endless", False) for child in self.schedulers)

    @property
    def phases(self) -> tuple[str, ...]:
        names = [""]
        for i, child in enumerate(self.schedulers):
            names = [f"{name}+s{i}_{phase}" if name else f"s{i}_{phase}" for name in names for phase in child.phases]
        return tuple(names)

    def _evaluate(self, xp: Any, step: Any) -> Any:
        groups = self.num_groups
        combined = _groups(xp, self.base_lrs)
        for child in self.schedulers:
            lrs = _child_lr(xp, child, step)
            child_bases = list(child.base_lrs)
            columns = [min(i, lrs.shape[-1] - 1) for i in range(groups)]
            bases = [child_bases[min(i, len(child_bases) - 1)] for i in range(groups)]
            factors = [_divide(xp, lrs[..., column], base) if base != 0 else xp.zeros(lrs.shape[:-1], lrs.dtype)
                       for column, base in zip(columns, bases)]
            combined = combined * xp.stack(factors, axis=-1)
        return combined

    def _phase(self, step: np.ndarray) -> Any:
        phase = np.zeros(step.shape, np.int64)
        for child in self.schedulers:
            phase = phase * len(child.phases) + child.phase_at(step)
        return phase.astype(np.int8)

    def _events(self, low: int, high: int | None) -> Iterator[tuple[str, int]]:
        for i, child in enumerate(self.schedulers):
            for kind, step in child.events(low, high):
                yield f"s{i}_{kind}", step

    def _peak_candidates(self) -> list[int] | None:
        candidates: list[int] = []
        for child in self.schedulers:
            inner = _candidates_of(child)
            if inner is None:
                return None
            candidates += inner
        return candidates


# ---------------------------------------------------------------------------------------------------------------
# Observed
# ---------------------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class ReduceLROnPlateauCurve(_BraintoolsCurve):
    """braintools ``ReduceLROnPlateau``: its LR depends on the metrics, so the monitor observes it (``observed``).

    The planned curve is flat at ``lrs``, the scheduler's ``current_lrs`` when the curve was read; one phase
    ``plateau``; no planned events. The other fields are the scheduler's configuration (``base_lrs``, ``mode``,
    ``factor``, ``patience``, ``threshold``, ``threshold_mode``, ``cooldown``, ``min_lrs``, ``eps``) for a
    configuration check (``lrs`` changes as the LR is cut: compare the others).
    """

    scheduler: ClassVar[str] = "ReduceLROnPlateau"
    observed: ClassVar[bool] = True
    _phases: ClassVar[tuple[str, ...]] = ("plateau",)

    lrs: tuple[float, ...]
    base_lrs: tuple[float, ...]
    mode: str = "min"
    factor: float = 0.1
    patience: int = 10
    threshold: float = 1e-4
    threshold_mode: str = "rel"
    cooldown: int = 0
    min_lrs: tuple[float, ...] = (0.0,)
    eps: float = 1e-8

    def __post_init__(self) -> None:
        set_field = object.__setattr__
        set_field(self, "lrs", _lrs("lrs", self.lrs))
        set_field(self, "base_lrs", _lrs("base_lrs", self.base_lrs))
        set_field(self, "mode", _choice("mode", self.mode, ("min", "max")))
        set_field(self, "factor", check_learning_rate("factor", self.factor))
        set_field(self, "patience", check_step_count("patience", self.patience, minimum=0))
        set_field(self, "threshold", _real("threshold", self.threshold))
        set_field(self, "threshold_mode", _choice("threshold_mode", self.threshold_mode, ("rel", "abs")))
        set_field(self, "cooldown", check_step_count("cooldown", self.cooldown, minimum=0))
        set_field(self, "min_lrs", _lrs("min_lrs", self.min_lrs))
        set_field(self, "eps", _real("eps", self.eps))

    @property
    def num_groups(self) -> int:
        return len(self.lrs)

    def _evaluate(self, xp: Any, step: Any) -> Any:
        lrs = _groups(xp, self.lrs)
        return xp.broadcast_to(lrs, step.shape + lrs.shape)


# ---------------------------------------------------------------------------------------------------------------
# Reading a scheduler
# ---------------------------------------------------------------------------------------------------------------
def _lr_list(values: Any) -> list[float]:
    values = _plain(values)
    return [float(v) for v in (values if isinstance(values, list) else [values])]


def _read_cyclic(s: Any) -> CyclicLRCurve:
    if getattr(s, "scale_fn", None) is not None:
        raise TypeError(
            "CyclicLR with a custom scale_fn cannot be described as a curve (lrmon cannot read a function): "
            "use mode='triangular', 'triangular2' or 'exp_range'"
        )
    groups = min(len(s.base_lrs), len(s.max_lrs))  # braintools zips them
    return CyclicLRCurve(
        _lr_list(s.base_lrs)[:groups], _lr_list(s.max_lrs)[:groups], _plain(s.step_size_up),
        _plain(s.step_size_down), s.mode, _plain(s.gamma),
    )


_READERS: dict[str, Any] = {
    "StepLR": lambda s: StepLRCurve(_lr_list(s.base_lrs), _plain(s.step_size), _plain(s.gamma)),
    "MultiStepLR": lambda s: MultiStepLRCurve(_lr_list(s.base_lrs), _plain(s.milestones), _plain(s.gamma)),
    "ExponentialLR": lambda s: ExponentialLRCurve(_lr_list(s.base_lrs), _plain(s.gamma)),
    "CosineAnnealingLR": lambda s: CosineAnnealingLRCurve(_lr_list(s.base_lrs), _plain(s.T_max), _plain(s.eta_min)),
    "CosineAnnealingWarmRestarts": lambda s: CosineAnnealingWarmRestartsCurve(
        _lr_list(s.base_lrs), _plain(s.T_0), _plain(s.T_mult), _plain(s.eta_min)),
    "OneCycleLR": lambda s: OneCycleLRCurve(
        _lr_list(s.max_lrs), _plain(s.total_steps), _plain(s.pct_start), s.anneal_strategy,
        _plain(s.div_factor), _plain(s.final_div_factor)),
    "LinearLR": lambda s: LinearLRCurve(
        _lr_list(s.base_lrs), _plain(s.start_factor), _plain(s.end_factor), _plain(s.total_iters)),
    "ConstantLR": lambda s: ConstantLRCurve(_lr_list(s.base_lrs), _plain(s.factor), _plain(s.total_iters)),
    "PolynomialLR": lambda s: PolynomialLRCurve(_lr_list(s.base_lrs), _plain(s.total_iters), _plain(s.power)),
    "CyclicLR": _read_cyclic,
    "PiecewiseConstantSchedule": lambda s: PiecewiseConstantScheduleCurve(
        _lr_list(s.base_lrs), _plain(s.boundaries), _lr_list(s.values)),
    "SequentialLR": lambda s: SequentialLRCurve(tuple(curve_of(c) for c in s.schedulers), _plain(s.milestones)),
    "ChainedScheduler": lambda s: ChainedSchedulerCurve(tuple(curve_of(c) for c in s.schedulers)),
    "WarmupCosineSchedule": lambda s: CurveConfig(
        _lr_list(s.base_lrs), _plain(s.warmup_steps), _plain(s.total_steps), _plain(s.warmup_start_lr),
        _plain(s.eta_min)),
    "ReduceLROnPlateau": lambda s: ReduceLROnPlateauCurve(
        _lr_list(s.current_lrs.value), _lr_list(s.base_lrs), s.mode, _plain(s.factor), _plain(s.patience),
        _plain(s.threshold), s.threshold_mode, _plain(s.cooldown), _lr_list(s.min_lrs), _plain(s.eps)),
}

#: The braintools scheduler classes :func:`curve_of` reads.
SUPPORTED: tuple[str, ...] = tuple(_READERS)


def curve_of(scheduler: Any) -> Any:
    """The curve of a braintools scheduler (see the module docstring), read from its public attributes.

    Also accepts lrmon's own ``WarmupCosineSchedule`` (its ``config``). Read the curve outside ``jax.jit`` (the
    attributes must be concrete).

    Raises:
      TypeError: not one of the :data:`SUPPORTED` braintools classes (the message names the class and lists them),
        a ``CyclicLR`` with a custom ``scale_fn``, or a composition holding a ``ReduceLROnPlateau``.
      ValueError: an attribute outside what the curve describes (the message names it).
    """
    config = getattr(scheduler, "config", None)
    if isinstance(config, CurveConfig):
        return config
    cls = type(scheduler)
    reader = _READERS.get(cls.__name__)
    if reader is None or not cls.__module__.startswith("braintools"):
        raise TypeError(
            f"cannot describe the schedule of {cls.__module__}.{cls.__qualname__}: lrmon reads the braintools.optim "
            f"schedulers {', '.join(SUPPORTED)}"
        )
    try:
        return reader(scheduler)
    except AttributeError as error:
        raise TypeError(f"{cls.__name__} without the attributes braintools' has: {error}") from None


for _cls in (StepLRCurve, MultiStepLRCurve, ExponentialLRCurve, CosineAnnealingLRCurve,
             CosineAnnealingWarmRestartsCurve, OneCycleLRCurve, LinearLRCurve, ConstantLRCurve, PolynomialLRCurve,
             CyclicLRCurve, PiecewiseConstantScheduleCurve, SequentialLRCurve, ChainedSchedulerCurve,
             ReduceLROnPlateauCurve):
    register(_NAME_PREFIX + _cls.scheduler, _cls.from_dict)
del _cls
