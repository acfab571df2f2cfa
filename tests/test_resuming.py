"""load_resume: what a monitor continues from, or an error naming what is wrong, before anything is touched."""

from __future__ import annotations

import pytest

from lrmon import ConfigMismatchError, CurveConfig
from lrmon.resuming import load_resume
from lrmon.state import MAX_STEP, MonitorState, StateError, state_to_dict

CONFIG = CurveConfig([0.1], 10, 100)


def saved(step=40, last_logged=39):
    return MonitorState(schedule_class="WarmupCosineSchedule", config=CONFIG, step=step,
                        emitted_events=(("warmup_start", 0), ("warmup_end", 9), ("cosine_start", 10)),
                        last_logged_step=last_logged, trackers={}, monitor_config={})


def test_resume_at_the_saved_step_or_another_one():
    at_saved = load_resume(state_to_dict(saved()), None, CONFIG, False)
    assert at_saved.step == 40 and at_saved.last_logged_step == 39 and at_saved.note == ", resumed from a state dict"
    earlier = load_resume(saved(), 25, CONFIG, False)
    assert earlier.step == 25 and earlier.last_logged_step == 24 and "state saved at step 40" in earlier.note


def test_a_mismatch_or_a_step_outside_the_schedule_raises_naming_it():
    with pytest.raises(ConfigMismatchError, match="total_steps"):
        load_resume(saved(), None, CurveConfig([0.1], 10, 200), False)
    assert "configuration changed" in load_resume(saved(), None, CurveConfig([0.1], 10, 200), True).note
    for bad in (-1, MAX_STEP + 1, 2.5, True):
        with pytest.raises(StateError, match="resume_step must be an integer"):
            load_resume(saved(), bad, CONFIG, False)
