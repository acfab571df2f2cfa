"""``LRMonitor.for_loop``: brainstate ``for_loop`` in compiled chunks with no per-step callback or branch; every step
once, the logged LR the applied one (braintools optimizers read the schedule the monitor steps), resume, misuse.
8 virtual devices and 2 processes: ``tests/test_multidevice.py`` (``brainstate_chunked``, ``chunked_for_loop``)."""

from __future__ import annotations

import brainstate
import braintools
import jax.numpy as jnp
import numpy as np
import pytest

import lrmon
from lrmon import LRMonitor, MemorySink, WarmupCosineSchedule

CONFIG = (0.1, 10, 60)  # base_lr, warmup_steps, total_steps: all five events within 75 steps
EVENTS = [(0, "warmup_start"), (9, "warmup_end"), (10, "cosine_start"), (59, "end"), (60, "overrun")]


def probe(schedule):
    """A train step whose metric ``applied`` is exactly the LR its braintools SGD applied (weight reset to 0,
    gradient 1), and ``x`` echoes its input."""
    weight = brainstate.ParamState(jnp.zeros(()))
    optimizer = braintools.optim.SGD(lr=schedule)
    optimizer.register_trainable_weights({"w": weight})

    def body(x=jnp.float32(0)):
        weight.value = jnp.zeros(())
        optimizer.update({"w": jnp.ones(())})
        return {"applied": -weight.value, "x": x}

    return body


def column(sink: MemorySink, tag: str) -> tuple[list[int], np.ndarray]:
    pairs = sink.scalars[tag]
    return [t for t, _ in pairs], np.asarray([v for _, v in pairs], np.float64)


@pytest.mark.parametrize("chunk", [1, 7, 16, 75, 500])
def test_logs_the_applied_lr_at_every_step_once(chunk):
    schedule = WarmupCosineSchedule(*CONFIG)
    body, memory = probe(schedule), MemorySink()
    xs = jnp.arange(75, dtype=jnp.float32)
    with LRMonitor(schedule, [memory], flush_every=16) as monitor:
        monitor.for_loop(body, xs, chunk=chunk)
        assert monitor.step_count == int(schedule.last_epoch.value) == 75
    steps, lrs = column(memory, "lr")
    assert steps == list(range(75))
    np.testing.assert_array_equal(lrs, column(memory, "applied")[1])  # the LR logged is the LR applied, bit for bit
    np.testing.assert_array_equal(column(memory, "x")[1], np.arange(75))  # each row its own step's input
    np.testing.assert_allclose(lrs, np.asarray(WarmupCosineSchedule(*CONFIG).lr_at(np.arange(75)))[:, 0], rtol=2e-6)
    assert memory.events == EVENTS


def test_a_braintools_scheduler_and_log_every_across_host_and_loop_paths():
    scheduler = braintools.optim.StepLR(base_lr=0.1, step_size=4, gamma=0.5)
    body, memory = probe(scheduler), MemorySink()
    with LRMonitor(scheduler, [memory], log_every=3) as monitor:
        for _ in range(5):
            body()
            monitor.step(applied=0.0, x=0.0)
        monitor.for_loop(body, jnp.zeros(20), chunk=8)
        body()
        monitor.step(applied=0.0, x=0.0)
    steps, lrs = column(memory, "lr")
    assert steps == list(range(0, 26, 3)) and monitor.step_count == 26
    np.testing.assert_allclose(lrs, 0.1 * 0.5 ** (np.asarray(steps) // 4), rtol=1e-7)  # float32 in the loop
    loop_rows = [i for i, t in enumerate(steps) if 5 <= t < 25]
    np.testing.assert_array_equal(lrs[loop_rows], column(memory, "applied")[1][loop_rows])


def test_resume_continues_every_step_once():
    first, second = MemorySink(), MemorySink()
    schedule = WarmupCosineSchedule(*CONFIG)
    with LRMonitor(schedule, [first]) as monitor:
        monitor.for_loop(probe(schedule), length=33, chunk=16)
        state = monitor.state_dict()
    resumed = WarmupCosineSchedule(*CONFIG)
    with LRMonitor(resumed, [second], resume_from=state) as monitor:
        monitor.for_loop(probe(resumed), length=42, chunk=16)
        assert int(resumed.last_epoch.value) == monitor.step_count == 75
    steps = column(first, "lr")[0] + column(second, "lr")[0]
    assert steps == list(range(75))
    both = np.concatenate([column(first, "lr")[1], column(second, "lr")[1]])
    np.testing.assert_array_equal(both, np.concatenate([column(first, "applied")[1], column(second, "applied")[1]]))
    assert first.events + [e for e in second.events if e[1] != "resume"] == EVENTS
    assert (33, "resume") in second.events


def test_a_pure_curve_logs_the_curve_at_the_monitors_step():
    schedule = WarmupCosineSchedule(*CONFIG)  # no optimizer bound: the curve at each step, as optax applies it
    seen = brainstate.ShortTermState(jnp.zeros(()))

    def body():
        seen.value = seen.value + 1
        return {"count": seen.value}

    memory = MemorySink()
    with LRMonitor(schedule, [memory]) as monitor:
        monitor.for_loop(body, length=40, chunk=16)
    steps, lrs = column(memory, "lr")
    assert steps == list(range(40))
    np.testing.assert_array_equal(column(memory, "count")[1], np.arange(1, 41))
    np.testing.assert_allclose(lrs, np.asarray(schedule.lr_at(np.arange(40)))[:, 0], rtol=1e-6)
    assert memory.events == EVENTS[:3]


def test_a_body_that_also_steps_the_schedule_is_named_after_its_records_are_written():
    schedule = WarmupCosineSchedule(*CONFIG)
    body, memory = probe(schedule), MemorySink()

    def stepping_body():
        metrics = body()
        schedule.step()
        return metrics

    with LRMonitor(schedule, [memory]) as monitor:
        with pytest.raises(RuntimeError, match="something else stepped the schedule"):
            monitor.for_loop(stepping_body, length=10, chunk=4)
    assert column(memory, "lr")[0] == list(range(10))


def test_refusals_name_what_is_wrong():
    schedule = WarmupCosineSchedule(*CONFIG)
    body = probe(schedule)
    with LRMonitor(schedule, [MemorySink()]) as monitor:
        with pytest.raises(TypeError, match="metric"):
            monitor.for_loop(lambda: jnp.zeros(()), length=3)
        with pytest.raises(ValueError, match="scalar per step"):
            monitor.for_loop(lambda: {"loss": jnp.zeros(2)}, length=3)
        with pytest.raises(ValueError, match="xs or length"):
            monitor.for_loop(body)
        with pytest.raises(ValueError, match="chunk"):
            monitor.for_loop(body, length=3, chunk=0)
        with pytest.raises(ValueError, match="leading sizes"):
            monitor.for_loop(lambda a, b: body(), jnp.zeros(3), jnp.zeros(4))
        assert monitor.step_count == 0
    weight = brainstate.ParamState(jnp.zeros(()))
    optimizer = braintools.optim.SGD(lr=0.1)
    optimizer.register_trainable_weights({"w": weight})
    plateau = braintools.optim.ReduceLROnPlateau(base_lr=0.1)
    with LRMonitor(plateau) as monitor, pytest.raises(TypeError, match="ReduceLROnPlateau"):
        monitor.for_loop(body, length=3)
    closed = LRMonitor(WarmupCosineSchedule(*CONFIG))
    closed.close()
    with pytest.raises(RuntimeError, match="after close"):
        closed.for_loop(body, length=3)
    assert lrmon.LRMonitor.for_loop.__doc__


def test_a_rematerialised_body_still_logs_every_step_once():
    """Nothing in the loop replays: a ``jax.checkpoint`` under ``grad`` (whose callbacks fire twice) changes nothing."""
    import jax

    schedule = WarmupCosineSchedule(*CONFIG)
    weight = brainstate.ParamState(jnp.ones(3))
    optimizer = braintools.optim.SGD(lr=schedule)
    optimizer.register_trainable_weights({"w": weight})
    loss_of = jax.checkpoint(lambda w, x: jnp.sum((w - x) ** 2))

    def body(x):
        loss, grad = jax.value_and_grad(loss_of)(weight.value, x)
        optimizer.update({"w": grad})
        return {"loss": loss}

    memory = MemorySink()
    with LRMonitor(schedule, [memory]) as monitor:
        monitor.for_loop(body, jnp.linspace(0.0, 1.0, 30 * 3).reshape(30, 3), chunk=8)
    assert column(memory, "lr")[0] == column(memory, "loss")[0] == list(range(30))
    assert memory.events == EVENTS[:3]
