"""The braintools curves of the ramping, cyclic and piecewise schedulers: LinearLR, ConstantLR, PolynomialLR,
CyclicLR and PiecewiseConstantSchedule (see :mod:`lrmon.schedules.braintools`)."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Iterator

import jax.numpy as jnp
import numpy as np

from lrmon._validation import check_learning_rate, check_step_count
from lrmon.schedules._braintools_base import _BraintoolsCurve, _choice, _finite_end_phase, _groups, _lrs, _steps
from lrmon.schedules._exact_float32 import _divide, _scaled_pow


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
