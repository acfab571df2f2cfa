"""Reading the state a monitor resumes from, and the step it resumes at.

Nothing here changes a monitor: :func:`load_resume` returns what to continue from, or raises
(:class:`~lrmon.state.StateError`, :class:`~lrmon.ConfigMismatchError`) before anything was touched.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Mapping

import numpy as np

from lrmon.schedules._protocol import Curve, differing_fields
from lrmon.schedule import ConfigMismatchError
from lrmon.state import MAX_STEP, MonitorState, StateError, read_state, state_from_dict

__all__ = ["Resumed", "load_resume", "WANDB_ARTIFACT_PREFIX"]

#: ``resume_from="wandb-artifact:entity/project/lrmon-state-<run id>:latest"`` downloads that artifact (online).
WANDB_ARTIFACT_PREFIX = "wandb-artifact:"


@dataclasses.dataclass(frozen=True)
class Resumed:
    """A state to continue from, at ``step``; ``note`` says where it came from (for the ``resume`` event)."""

    state: MonitorState
    step: int
    note: str

    @property
    def last_logged_step(self) -> int | None:
        last = self.state.last_logged_step
        return None if last is None else min(last, self.step - 1)


def load_resume(source: Any, resume_step: int | None, config: Curve, allow_config_change: bool) -> Resumed:
    """The state of ``source`` (see ``LRMonitor(resume_from=...)``) at ``resume_step`` (default: its step).

    Raises ``ConfigMismatchError`` if the saved configuration differs from ``config`` (unless
    ``allow_config_change``) and ``StateError`` for an unreadable state or a step the schedule cannot evaluate.
    """
    if isinstance(source, str) and source.startswith(WANDB_ARTIFACT_PREFIX):
        from lrmon.integrations.wandb import download_state_artifact  # imports wandb: only when asked for

        source = download_state_artifact(source[len(WANDB_ARTIFACT_PREFIX):])
    if isinstance(source, MonitorState):
        state, origin = source, "a MonitorState"
    elif isinstance(source, Mapping):
        state, origin = state_from_dict(source, source="the state dict"), "a state dict"
    else:
        state, origin = read_state(source), os.fspath(source)
    differing = differing_fields(state.config, config)
    if differing and not allow_config_change:
        raise ConfigMismatchError(differing, state.config, config)
    step = state.step if resume_step is None else resume_step
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or not 0 <= step <= MAX_STEP:
        raise StateError(f"resume_step must be an integer in [0, {MAX_STEP}] (steps the schedule can "
                         f"evaluate), got {step!r}", origin)
    changed = f"; configuration changed in {differing}" if differing else ""
    saved = f" (state saved at step {state.step})" if int(step) != state.step else ""
    return Resumed(state, int(step), f", resumed from {origin}{saved}{changed}")
