"""ConsoleSink: a tqdm bar of step, LR, phase and metrics; events as lines; time-throttled."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest

from lrmon import LRMonitor, RunInfo, Series, WarmupCosineSchedule
from lrmon.integrations.console import ConsoleSink

pytest.importorskip("tqdm")


def frames(text: str) -> list[str]:
    """The bar states and lines written (tqdm separates redraws with carriage returns)."""
    return [part.strip() for part in re.split(r"[\r\n]", text) if part.strip()]


def test_bar_shows_step_lr_phase_and_loss_and_prints_each_event_once():
    out = io.StringIO()
    with LRMonitor(WarmupCosineSchedule(0.1, 10, 50), [ConsoleSink(out, min_interval=0)], flush_every=8) as monitor:
        for step in range(60):
            monitor.step(loss=1.0 / (step + 1))
    text = out.getvalue()
    lines = frames(text)
    for kind, step in [("warmup_start", 0), ("warmup_end", 9), ("cosine_start", 10), ("end", 49), ("overrun", 50)]:
        assert sum(line.startswith(f"[lrmon] {kind} at step {step} ") for line in lines) == 1, (kind, text)
    assert "phase=warmup" in text and "phase=cosine" in text
    final = lines[-1]
    assert "60/60" in final  # past total_steps the count goes on
    assert "phase=past end" in final and "lr=0.000e+00" in final
    assert f"loss={1 / 60:.4g}" in final


def test_redraws_are_throttled_in_time():
    out = io.StringIO()
    sink = ConsoleSink(out, min_interval=3600)
    sink.open(RunInfo(start_step=0, config={"total_steps": 100}, lr_tags=("lr",)))
    for step in range(20):
        steps = np.asarray([step])
        sink.write_scalars({"lr": Series(steps, np.asarray([0.5])), "loss": Series(steps, np.asarray([1000.0 + step]))})
        sink.flush()
    text_before_close = out.getvalue()
    sink.close()
    text = out.getvalue()
    assert "loss=1000" in text_before_close  # the first values are drawn at once
    assert not any(f"loss={1000 + step}" in text for step in range(1, 19))  # nothing within the interval
    assert "loss=1019" in text and "20/100" in text  # the newest values are drawn at close


def test_multi_group_lrs_and_chosen_metrics():
    out = io.StringIO()
    sink = ConsoleSink(out, metrics=["acc"], min_interval=0)
    with LRMonitor(WarmupCosineSchedule([0.1, 0.01], 2, 4), [sink]) as monitor:
        for _ in range(3):
            monitor.step(loss=2.0, acc=0.5)
    final = frames(out.getvalue())[-1]
    assert "lr=" in final and "/" in final.split("lr=")[1].split(",")[0]  # both groups
    assert "acc=0.5" in final and "loss=" not in final


def test_default_file_is_stderr(capsys):
    with LRMonitor(WarmupCosineSchedule(0.1, 1, 3), [ConsoleSink(min_interval=0)]) as monitor:
        monitor.step(loss=1.0)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "[lrmon] warmup_start at step 0" in captured.err and "lr=" in captured.err


def test_bad_interval_is_refused():
    with pytest.raises(ValueError, match="min_interval"):
        ConsoleSink(min_interval=-1)
