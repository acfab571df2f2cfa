"""Misuse of the monitor is refused loudly: a clear error naming the problem, and nothing already recorded lost."""

from __future__ import annotations

import brainstate
import braintools
import jax.numpy as jnp
import numpy as np
import pytest

from lrmon import LRMonitor, MemorySink, WarmupCosineSchedule
from lrmon.integrations.tensorboard import TensorBoardSink

CLOSED = "after close\\(\\).*would be lost"


def closed_monitor(steps: int = 5) -> tuple[LRMonitor, MemorySink]:
    sink = MemorySink()
    with LRMonitor(WarmupCosineSchedule(0.1, 2, 10), [sink]) as monitor:
        for t in range(steps):
            monitor.step(loss=float(t))
    return monitor, sink


@pytest.mark.parametrize("call", [
    lambda m: m.step(loss=1.0),
    lambda m: m.flush(),
    lambda m: m.save_state(),
    lambda m: m.record_many(np.arange(5, 8), loss=np.zeros(3)),
    lambda m: m.graph_drain(m.graph_buffer(["loss"])),
])
def test_recording_after_close_is_refused_and_the_run_stays_intact(call):
    monitor, sink = closed_monitor()
    with pytest.raises(RuntimeError, match=CLOSED):
        call(monitor)
    assert [step for step, _ in sink.scalars["lr"]] == list(range(5))
    assert len(sink.saved_states) == 1 and sink.closed
    monitor.close()  # closing twice stays harmless


def test_reentering_a_closed_monitor_is_refused():
    monitor, sink = closed_monitor()
    with pytest.raises(RuntimeError, match="`with monitor:` after close"):
        with monitor:
            monitor.step(loss=1.0)
    assert [step for step, _ in sink.scalars["lr"]] == list(range(5))


def test_nested_with_blocks_are_refused():
    monitor = LRMonitor(WarmupCosineSchedule(0.1, 2, 10), [MemorySink()])
    with monitor:
        with pytest.raises(RuntimeError, match="already inside a `with monitor:` block"):
            monitor.__enter__()
        monitor.step()


@pytest.mark.parametrize("sinks, words", [
    (MemorySink(), "sinks must be a list of sinks, got one MemorySink: pass sinks=\\[MemorySink"),
    (TensorBoardSink("unused"), "sinks must be a list of sinks, got one TensorBoardSink"),
    (42, "sinks must be a list of lrmon.Sink objects, got int"),
    ("runs/tb", "sinks must be a list of lrmon.Sink objects, got str"),
    ([MemorySink(), "runs/tb"], "sinks\\[1\\] must be an lrmon.sinks.Sink, got str"),
])
def test_sinks_that_are_not_a_list_of_sinks_are_refused_naming_sinks(sinks, words):
    with pytest.raises(TypeError, match=words):
        LRMonitor(WarmupCosineSchedule(0.1, 2, 10), sinks)


def test_graph_step_with_a_schedule_also_stepped_by_the_user_is_refused_after_writing_what_it_has():
    schedule = WarmupCosineSchedule(0.1, 4, 40)
    weight = brainstate.ParamState(jnp.zeros(()))
    optimizer = braintools.optim.SGD(lr=schedule)
    optimizer.register_trainable_weights({"w": weight})
    sink = MemorySink()
    monitor = LRMonitor(schedule, [sink], graph_capacity=4)
    monitor.init_graph_state(["loss"])

    @brainstate.transform.jit
    def train_step():
        optimizer.update({"w": jnp.ones(())})
        monitor.graph_step(loss=weight.value)
        schedule.step()  # the mistake: graph_step already steps the schedule

    for _ in range(6):
        train_step()
    with pytest.raises(RuntimeError, match="something else stepped the schedule.*do not also call schedule.step"):
        monitor.close()
    assert [step for step, _ in sink.scalars["lr"]] == [0, 2, 4, 6, 8, 10]  # every row it recorded was written
    assert sink.closed and len(sink.saved_states) == 1


def test_graph_step_used_correctly_raises_nothing():
    schedule = WarmupCosineSchedule(0.1, 4, 40)
    sink = MemorySink()
    monitor = LRMonitor(schedule, [sink], graph_capacity=4)
    monitor.init_graph_state(["loss"])

    @brainstate.transform.jit
    def train_step():
        monitor.graph_step(loss=jnp.float32(1.0))

    for _ in range(6):
        train_step()
    monitor.flush()
    monitor.close()
    assert [step for step, _ in sink.scalars["lr"]] == list(range(6))
