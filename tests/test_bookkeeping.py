"""Bookkeeping: which rows are new, which events are due, when to flush and save — a function of the step."""

from __future__ import annotations

import numpy as np

from lrmon.bookkeeping import Bookkeeping
from lrmon.curve import CurveConfig

CONFIG = CurveConfig([0.1], 10, 100)  # events: warmup_start 0, warmup_end 9, cosine_start 10, end 99, overrun 100


def books(step=0, **kwargs):
    return Bookkeeping(CONFIG, step, flush_every=kwargs.pop("flush_every", 32), log_every=1,
                       save_every=kwargs.pop("save_every", None), **kwargs)


def test_rows_are_new_once_and_never_below_the_start_step():
    b = books(step=20)
    assert b.take_fresh(np.arange(15, 25)).tolist() == list(range(20, 25))
    assert b.take_fresh(np.arange(22, 30)).tolist() == list(range(25, 30))  # duplicates dropped
    assert b.last_logged_step == 29 and b.last_logged_before(25) == 24 and b.last_logged_before(0) is None


def test_events_are_due_once_in_step_order_and_a_resumed_run_keeps_only_earlier_ones():
    b = books()
    assert b.take_due_events(11) == [(0, "warmup_start"), (9, "warmup_end"), (10, "cosine_start")]
    assert b.take_due_events(11) == [] and b.take_due_events(5) == []
    assert b.events_before(10) == (("warmup_start", 0), ("warmup_end", 9))
    resumed = books(step=50, emitted=[("warmup_start", 0), ("warmup_end", 9), ("cosine_start", 10), ("end", 99)])
    assert resumed.emission_log == [("warmup_start", 0), ("warmup_end", 9), ("cosine_start", 10)]
    assert resumed.take_due_events(101) == [(99, "end"), (100, "overrun")]


def test_flushes_come_after_event_steps_and_at_saves_and_saves_at_multiples():
    b = books(flush_every=1000, save_every=25)
    assert b.flush_at == 1  # right after warmup_start at step 0
    b.step = 1
    b.take_due_events(1)
    b.plan_next_flush()
    assert b.flush_at == 10  # right after warmup_end (step 9)
    b.step = 57  # a compiled loop's rows arrived past two multiples
    assert b.take_due_save() == 50 and b.take_due_save() is None
    b.plan_next_flush()
    assert b.flush_at == 75
