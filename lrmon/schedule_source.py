"""Reading a schedule object the monitor is handed: its curve, the step it is at, and who moves it.

Three roles, decided by the schedule's kind:

* **pure**: an :mod:`lrmon.schedules.optax` schedule, a plain optax schedule function, or a warmup + cosine
  schedule no optimizer has bound: the LR of step ``t`` is the curve at ``t`` (what optax applies at count ``t``);
* **stepped**: a braintools scheduler (or a warmup + cosine schedule bound by a braintools optimizer with
  ``lr=schedule``): the optimizer reads the schedule's ``current_lrs``, so the monitor steps it once per train step
  and records the LR it holds;
* **observed**: braintools' ``ReduceLROnPlateau``: the user steps it with a metric; the monitor records the LR it
  holds and observes its cuts (:mod:`lrmon.plateau`).
"""

from __future__ import annotations

from typing import Any

import jax

from lrmon.curve import CurveConfig
from lrmon.schedules._function import FunctionCurve
from lrmon.schedules._protocol import Curve

__all__ = ["curve_of", "Role", "step_driven_schedule", "stepped_elsewhere"]

_WARMUP_COSINE = "WarmupCosineSchedule"


def curve_of(schedule: Any) -> Curve:
    """The curve of a schedule the monitor supports; ``TypeError`` naming what it accepts for anything else."""
    config = getattr(schedule, "config", None)
    if isinstance(config, CurveConfig):
        return config
    if _is_braintools_scheduler(schedule):
        from lrmon.schedules.braintools import curve_of as braintools_curve

        return braintools_curve(schedule)
    if isinstance(schedule, Curve):
        return schedule
    if callable(schedule):
        return FunctionCurve.of(schedule)
    raise TypeError(
        "schedule must be an lrmon.WarmupCosineSchedule, a schedule of lrmon.schedules.optax, an optax schedule "
        f"function or a braintools.optim scheduler, got {type(schedule).__name__}"
    )


class Role:
    """How the monitor moves a schedule, decided once; :meth:`drives` is the per-step test."""

    def __init__(self, schedule: Any) -> None:
        braintools = _is_braintools_scheduler(schedule)
        self.observed = braintools and type(schedule).__name__ == "ReduceLROnPlateau"
        self._bindable = braintools and type(schedule).__name__ == _WARMUP_COSINE
        self._stepped = braintools and not self.observed and not self._bindable
        self._holds_step = braintools and not self.observed
        self._schedule = schedule

    def drives(self) -> bool:
        """True when an optimizer reads the schedule's stepped state: a braintools scheduler (a warmup + cosine
        one once an optimizer has bound it with ``lr=schedule``); never an observed one, which the user steps."""
        return self._stepped or (self._bindable and self._schedule.optimizer is not None)

    def start_step(self) -> int:
        """The step a schedule that holds one is at (its ``last_epoch``, read once); 0 for the others."""
        return int(jax.device_get(self._schedule.last_epoch.value)) if self._holds_step else 0

    def move_to(self, step: int) -> None:
        """Put a schedule that holds a step at ``step`` (resume); pure curves and observed schedules hold none."""
        if self._holds_step:
            self._schedule.step(step)
            if type(self._schedule).__name__ == "ChainedScheduler":  # it jumps its children, counts itself by one
                self._schedule.last_epoch.value = step


def step_driven_schedule(schedule: Any, t: int) -> None:
    """Step a schedule an optimizer reads (after train step ``t``); ``RuntimeError`` if something else stepped it."""
    value = schedule.last_epoch.value
    if isinstance(value, int) and value != t:
        raise RuntimeError(stepped_elsewhere("step", f"the schedule is at step {value}, the monitor expected {t}"))
    schedule.step()


def stepped_elsewhere(method: str, found: str) -> str:
    """The one message for a schedule that ``LRMonitor.<method>()`` steps and something else stepped too;
    ``found``: what showed it."""
    return (f"LRMonitor.{method}(): {found}: something else stepped the schedule. {method}() steps it once per train "
            "step; do not also call schedule.step() yourself")


def _is_braintools_scheduler(schedule: Any) -> bool:
    """A braintools ``LRScheduler`` (lrmon's ``WarmupCosineSchedule`` included), recognised by its protocol."""
    return all(hasattr(schedule, name) for name in ("current_lrs", "last_epoch", "base_lrs", "step"))
