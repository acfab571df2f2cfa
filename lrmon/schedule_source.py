"""Reading a schedule object the monitor is handed: lrmon's own, or braintools' ``WarmupCosineSchedule``.

The monitor needs three things from a schedule: its :class:`~lrmon.curve.CurveConfig`, the step it is at, and
whether an optimizer reads the schedule's stepped state (braintools' protocol) — in which case the monitor must
step the schedule itself once per train step, and record the LR that the schedule holds for the optimizer.
"""

from __future__ import annotations

from typing import Any

import jax

from lrmon.curve import CurveConfig

__all__ = ["curve_config_of", "current_step_of", "drives_an_optimizer", "step_driven_schedule"]

_CONFIG_ATTRIBUTES = ("warmup_steps", "total_steps", "warmup_start_lr", "eta_min")


def curve_config_of(schedule: Any) -> CurveConfig:
    """The configuration of an lrmon or braintools ``WarmupCosineSchedule``; ``TypeError`` for anything else."""
    config = getattr(schedule, "config", None)
    if isinstance(config, CurveConfig):
        return config
    if type(schedule).__name__ == "WarmupCosineSchedule" and all(hasattr(schedule, a) for a in _CONFIG_ATTRIBUTES):
        return CurveConfig(list(schedule.base_lrs), *(getattr(schedule, a) for a in _CONFIG_ATTRIBUTES))
    raise TypeError(
        "schedule must be an lrmon.WarmupCosineSchedule or a braintools.optim.WarmupCosineSchedule, "
        f"got {type(schedule).__name__}"
    )


def current_step_of(schedule: Any) -> int:
    """The schedule's ``last_epoch`` as a Python int (reads the device once if it lives there)."""
    value = schedule.last_epoch.value
    return int(jax.device_get(value))


def drives_an_optimizer(schedule: Any) -> bool:
    """True when a braintools optimizer reads the schedule's stepped state (it was bound with ``lr=schedule``)."""
    return getattr(schedule, "optimizer", None) is not None


def step_driven_schedule(schedule: Any, t: int) -> None:
    """Step a schedule an optimizer reads (after train step ``t``); ``RuntimeError`` if something else stepped it."""
    value = schedule.last_epoch.value
    if isinstance(value, int) and value != t:
        raise RuntimeError(
            f"the schedule is at step {value} but the monitor expected {t}: the monitor steps the schedule; "
            "do not also call schedule.step() yourself"
        )
    schedule.step()
