"""Observing a metric-driven schedule (braintools' ``ReduceLROnPlateau``): its LR cuts and its state.

Its LR is not a function of the step, so its cuts cannot be planned: the monitor observes them. The user calls
``plateau.step(metric)`` at the top of the train step that first uses the new LR (when a new epoch starts,
before that step's update and its ``monitor.step()``)::

    for t in range(monitor.step_count, total):
        if t and t % steps_per_epoch == 0:
            plateau.step(validation_loss)
        ...train step t with the LR plateau holds...
        monitor.step(loss=loss)

so the state saved for step ``t`` (taken when step ``t - 1`` ends) holds the scheduler before that call, and a
resumed loop makes the call again at ``t``. The scheduler then holds a new list of LRs. :meth:`PlateauObserver.check` notices the new list by identity (no device read on the other
steps), reads it once, and reports a cut when an LR fell: the event ``lr_reduced_<n>`` (numbered from 1 over the
run) at the first train step that uses the new LR, with the old and new LRs. The scheduler's state (best metric,
counters, LRs) is part of the monitor's state (``schedule_state``), so a resumed run cuts where it would have.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import jax.numpy as jnp
import numpy as np

__all__ = ["PlateauObserver", "Cut", "CUT_PREFIX"]

#: Event kind prefix of a cut: ``lr_reduced_1``, ``lr_reduced_2``, ...
CUT_PREFIX = "lr_reduced_"
_COUNTERS = ("last_epoch", "num_bad_epochs", "cooldown_counter")


class Cut:
    """An observed cut: event ``kind``, and the LRs of every group before and after it."""

    def __init__(self, kind: str, old: Sequence[float], new: Sequence[float]) -> None:
        self.kind, self.old, self.new = kind, tuple(old), tuple(new)

    def describe(self, step: int) -> str:
        show = lambda lrs: ", ".join(f"{lr:.6g}" for lr in lrs)  # noqa: E731
        return f"{self.kind} at step {step} (lr {show(self.old)} -> {show(self.new)})"


class PlateauObserver:
    """Watches ``scheduler.current_lrs`` for cuts; ``cuts_so_far`` numbers the next one (on resume)."""

    def __init__(self, scheduler: Any, cuts_so_far: int = 0) -> None:
        self.scheduler = scheduler
        self.cuts = cuts_so_far
        self._seen = scheduler.current_lrs.value
        self._lrs = _read(self._seen)

    def check(self) -> Cut | None:
        """The cut since the last call, if the scheduler holds new, lower LRs (one device read per new list)."""
        held = self.scheduler.current_lrs.value
        if held is self._seen:
            return None
        old, self._seen, self._lrs = self._lrs, held, _read(held)
        if not any(new < before for new, before in zip(self._lrs, old)):
            return None
        self.cuts += 1
        return Cut(f"{CUT_PREFIX}{self.cuts}", old, self._lrs)

    def state(self) -> dict[str, Any]:
        """The scheduler's state as JSON data (an infinite ``best``, before any metric, as ``None``)."""
        s = self.scheduler
        best = float(np.asarray(s.best.value))
        state = {name: int(np.asarray(getattr(s, name).value)) for name in _COUNTERS}
        state.update(best=best if math.isfinite(best) else None, current_lrs=list(self._lrs))
        return state

    def restore(self, state: dict[str, Any]) -> None:
        """Load :meth:`state`'s output into the scheduler (and its optimizer, if one is bound)."""
        s = self.scheduler
        try:
            counters = {name: int(state[name]) for name in _COUNTERS}
            lrs = [float(lr) for lr in state["current_lrs"]]
            best = state["best"]
            best = (math.inf if s.mode == "min" else -math.inf) if best is None else float(best)
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"malformed ReduceLROnPlateau state in schedule_state: {error!r}") from None
        for name, value in counters.items():
            getattr(s, name).value = value
        s.best.value = best
        s.current_lrs.value = [jnp.asarray(lr, jnp.float32) for lr in lrs]
        if getattr(s, "optimizer", None) is not None:
            for group, lr in zip(s.optimizer.param_groups, s.current_lrs.value):
                group["lr"].value = lr
            s.optimizer.current_lr = s.current_lrs.value[0]
        self._seen, self._lrs = s.current_lrs.value, lrs


def _read(lrs: Sequence[Any]) -> list[float]:
    return [float(lr) for lr in np.asarray([np.asarray(lr) for lr in lrs], np.float64).reshape(-1)]
