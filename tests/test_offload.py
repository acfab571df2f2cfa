"""ProcessSink: tracker sinks in a child process; nothing blocks training, thinning is reported, failures contained."""

from __future__ import annotations

import os
import signal
import warnings

import pytest
from _offload_sinks import JsonlSink, read

import lrmon
from lrmon import LRMonitor, MemorySink, ProcessSink, WarmupCosineSchedule


def run(sinks, steps: int, **monitor_kwargs) -> LRMonitor:
    with LRMonitor(WarmupCosineSchedule(0.1, 20, 400), sinks, **monitor_kwargs) as monitor:
        for t in range(steps):
            monitor.step(loss=float(t))
    return monitor


def test_every_record_arrives_when_the_sink_process_keeps_up(tmp_path):
    memory = MemorySink()
    run([ProcessSink([JsonlSink(tmp_path / "a.jsonl")], max_queued_batches=1000), memory], 450, flush_every=64,
        save_every=200)
    records = read(tmp_path / "a.jsonl")
    rows = [(r["tag"], r["step"], r["value"]) for r in records if "tag" in r]
    want = [(tag, step, value) for tag, series in memory.scalars.items() for step, value in series]
    assert sorted(rows) == sorted(want)
    assert [(r["step"], r["event"]) for r in records if "event" in r] == memory.events
    assert [r["state_step"] for r in records if "state_step" in r] == [200, 400, 450]


def test_a_slow_tracker_is_thinned_and_says_so_events_and_states_are_never_thinned(tmp_path):
    memory = MemorySink()
    slow = ProcessSink([JsonlSink(tmp_path / "slow.jsonl", seconds_per_batch=0.05)], max_queued_batches=4)
    run([slow, memory], 4000, flush_every=8, save_every=1000)
    records = read(tmp_path / "slow.jsonl")
    lr_steps = [r["step"] for r in records if r.get("tag") == "lr"]
    assert len(lr_steps) < 4000 and len(set(lr_steps)) == len(lr_steps)
    thinned = [r for r in records if r.get("event") == "thinned"]
    assert thinned and ("thinned to steps" in thinned[0]["detail"] or "dropped" in thinned[0]["detail"])
    schedule_events = [(step, kind) for step, kind in memory.events if kind != "thinned"]
    assert [(r["step"], r["event"]) for r in records if r.get("event") not in (None, "thinned")] == schedule_events
    assert [r["state_step"] for r in records if "state_step" in r] == [1000, 2000, 3000, 4000]


def test_a_failing_sink_in_the_process_is_disabled_with_one_warning(tmp_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run([ProcessSink([JsonlSink(tmp_path / "bad.jsonl", fail_on_batch=2), JsonlSink(tmp_path / "good.jsonl")],
                         max_queued_batches=1000)], 400, flush_every=16)
    failures = [w for w in caught if issubclass(w.category, lrmon.SinkFailedWarning)]
    assert len(failures) == 1 and "JsonlSink" in str(failures[0].message)
    assert [r["step"] for r in read(tmp_path / "good.jsonl") if r.get("tag") == "lr"] == list(range(400))


def test_a_dead_sink_process_disables_the_sink_and_training_goes_on(tmp_path):
    process_sink = ProcessSink([JsonlSink(tmp_path / "a.jsonl")])
    memory = MemorySink()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with LRMonitor(WarmupCosineSchedule(0.1, 20, 400), [process_sink, memory], flush_every=16) as monitor:
            for t in range(100):
                monitor.step()
            os.kill(process_sink._process.pid, signal.SIGKILL)
            process_sink._process.join(timeout=30)
            for t in range(100):
                monitor.step()
    failures = [w for w in caught if issubclass(w.category, lrmon.SinkFailedWarning)]
    assert len(failures) == 1 and "ProcessSink[JsonlSink]" in str(failures[0].message)
    assert [s for s, _ in memory.scalars["lr"]] == list(range(200))


def test_an_unpicklable_sink_is_refused_with_a_clear_error():
    class LiveSink(MemorySink):
        def __init__(self):
            super().__init__()
            self.lock = __import__("threading").Lock()

    with pytest.raises(TypeError, match="picklable"):
        ProcessSink([LiveSink()])


def test_close_returns_at_once_when_the_sink_process_died(tmp_path):
    import time

    process_sink = ProcessSink([JsonlSink(tmp_path / "a.jsonl")], reply_timeout=120)
    monitor = LRMonitor(WarmupCosineSchedule(0.1, 20, 400), [process_sink, MemorySink()], flush_every=16)
    for _ in range(50):
        monitor.step()
    os.kill(process_sink._process.pid, signal.SIGKILL)
    process_sink._process.join(timeout=30)
    started = time.monotonic()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        monitor.close()
    assert time.monotonic() - started < 10  # not the 120 s reply timeout: the child is known dead
