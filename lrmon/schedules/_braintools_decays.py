"""The braintools curves of the decaying schedulers: StepLR, MultiStepLR, ExponentialLR, CosineAnnealingLR,
CosineAnnealingWarmRestarts and OneCycleLR (see :mod:`lrmon.schedules.braintools`)."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar, Iterator

import jax.numpy as jnp
import numpy as np

from lrmon._validation import check_learning_rate, check_step_count
from lrmon.schedules._braintools_base import (
    _BraintoolsCurve, _choice, _finite_end_phase, _groups, _lrs, _positive, _real, _steps,
)
from lrmon.schedules._exact_float32 import _divide, _scaled_pow

_INT32_MAX = 2**31 - 1


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
