"""The braintools curves built from other curves, SequentialLR and ChainedScheduler, and the observed
ReduceLROnPlateau (see :mod:`lrmon.schedules.braintools`)."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar, Iterator

import jax.numpy as jnp
import numpy as np

from lrmon._validation import check_learning_rate, check_step_count
from lrmon.curve import CurveConfig
from lrmon.schedules._braintools_base import _BraintoolsCurve, _choice, _groups, _lrs, _real, _steps
from lrmon.schedules._exact_float32 import _divide


# ---------------------------------------------------------------------------------------------------------------
# Compositions
# ---------------------------------------------------------------------------------------------------------------
def _child_lr(xp: Any, child: Any, step: Any) -> Any:
    return child.lr_at(step) if xp is jnp else child.exact_lr_at(step)


def _candidates_of(curve: Any) -> list[int] | None:
    """Steps at which the curve's largest LR is taken (``None``: it grows without bound)."""
    if isinstance(curve, CurveConfig):
        return [0, curve.warmup_steps, curve.total_steps]
    return curve._peak_candidates()


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
