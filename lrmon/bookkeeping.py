"""Where a monitored run is, and what is due: the step, the rows and events already sent, the next flush and save.

Pure bookkeeping (no device, no sink, no thread), in the spirit of clu's ``PeriodicAction``: the monitor asks it
which rows are new, which events are due and when to flush or save, and tells it what happened. Each fact is held
once:

* ``step``: the index of the next train step (steps completed so far);
* ``last_logged_step``: the last step whose row was sent; rows at or below it, or below ``start_step`` (the step
  the run started or resumed at), are duplicates and dropped;
* ``emission_log``: the events sent, in order, as ``(kind, step)``; every event at a step below ``events_below`` was
  sent (or lies before the run);
* ``last_save_step``: the save cadence counts from here; ``saved_step``: the step of the last save.

Planned events are a function of the step (the curve's ``events``), so a resumed run emits exactly the events at
or after its step; observed ones (a plateau's cuts) are noted as they are sent.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from lrmon.schedules._protocol import Curve
from lrmon.state import MonitorState

__all__ = ["Bookkeeping"]


class Bookkeeping:
    """The monitor's counters; see the module docstring.

    Args:
      config: the schedule's curve (its events).
      step: the step the run starts (or resumes) at.
      flush_every, log_every, save_every: the monitor's cadences (``save_every=None``: no periodic saves).
      last_logged_step: on resume, the last step the trackers hold a row of (``None``: none).
      emitted: on resume, the events already sent, as ``(kind, step)``.
    """

    def __init__(self, config: Curve, step: int, *, flush_every: int, log_every: int, save_every: int | None,
                 last_logged_step: int | None = None, emitted: Sequence[tuple[str, int]] = ()) -> None:
        self.config = config
        self.flush_every, self.log_every, self.save_every = flush_every, log_every, save_every
        self.step = self.start_step = self.events_below = self.last_save_step = step
        self.last_logged_step = last_logged_step
        self.emission_log: list[tuple[str, int]] = [(kind, at) for kind, at in emitted if at < step]
        self.saved_step: int | None = None
        self.flush_at = self._next_flush_step()

    # -- rows ----------------------------------------------------------------------------------------------
    def take_fresh(self, steps: np.ndarray) -> np.ndarray:
        """The steps (increasing) not sent yet; they count as sent from now on."""
        after = self.start_step - 1 if self.last_logged_step is None else max(self.last_logged_step,
                                                                              self.start_step - 1)
        fresh = steps[steps > after]
        if fresh.size:
            self.last_logged_step = int(fresh[-1])
        return fresh

    # -- events --------------------------------------------------------------------------------------------
    def event_steps_before(self, step: int) -> list[int]:
        """Steps of the events not sent yet that lie below ``step``."""
        return [at for _, at in self.config.events(self.events_below, max(step, self.events_below))]

    def take_due_events(self, completed: int) -> list[tuple[int, str]]:
        """The events at steps below ``completed`` not sent yet, as ``(step, kind)`` in step order; from now on
        they count as sent."""
        if completed <= self.events_below:
            return []
        due = sorted((at, kind) for kind, at in self.config.events(self.events_below, completed))
        self.events_below = completed
        self.note_sent(due)
        return due

    def note_sent(self, events: Sequence[tuple[int, str]]) -> None:
        """Record events sent (``(step, kind)``), e.g. a ``resume`` marker."""
        self.emission_log.extend((kind, at) for at, kind in events)

    def events_before(self, step: int) -> tuple[tuple[str, int], ...]:
        """The events sent at steps below ``step``: what a state of ``step`` holds."""
        return tuple((kind, at) for kind, at in self.emission_log if at < step)

    # -- flushes and saves ---------------------------------------------------------------------------------
    def flush_due(self) -> bool:
        return self.step >= self.flush_at

    def plan_next_flush(self) -> None:
        self.flush_at = self._next_flush_step()

    def take_due_save(self) -> int | None:
        """The multiple of ``save_every`` just reached, if a save is due (records may arrive past it, from a
        compiled loop's buffer: the state of a step is a function of the step); it counts as saved."""
        if self.save_every is None or self.step < self._next_save_step():
            return None
        step = self.step // self.save_every * self.save_every
        self.note_saved(step)
        return step

    def note_saved(self, step: int) -> None:
        self.last_save_step = self.saved_step = step

    def last_logged_before(self, step: int) -> int | None:
        """The last step with a row below ``step``: what a state of ``step`` names."""
        last = self.last_logged_step
        return None if last is None or step == 0 else min(last, step - 1)

    def state_at(self, step: int, schedule_class: str, trackers: dict,
                 schedule_state: dict | None = None) -> MonitorState:
        """The state of ``step`` (what a save of that step stores, once the sinks hold every record below it)."""
        return MonitorState(
            schedule_class=schedule_class, config=self.config, step=step,
            emitted_events=self.events_before(step), last_logged_step=self.last_logged_before(step),
            trackers=trackers, monitor_config={"log_every": self.log_every, "save_every": self.save_every},
            schedule_state=schedule_state,
        )

    def _next_save_step(self) -> int:
        assert self.save_every is not None
        return (self.last_save_step // self.save_every + 1) * self.save_every

    def _next_flush_step(self) -> int:
        """After ``flush_every`` logged steps, right after an event step, or when a save is due."""
        first = max(self.step, self.events_below)
        horizon = self.step + self.flush_every * self.log_every
        upcoming = [at + 1 for _, at in self.config.events(first, max(horizon, first))[:1]]
        if self.save_every is not None:
            upcoming.append(self._next_save_step())
        return min([horizon] + upcoming)
