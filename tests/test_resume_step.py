"""Resume at any step: the LR and the events follow the step the model was restored at, never a saved counter."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from lrmon import LRMonitor, MemorySink, WarmupCosineSchedule
from lrmon.state import StateError

CONFIG = dict(base_lr=0.1, warmup_steps=10, total_steps=50, eta_min=0.001)


def saved_state_dict(steps: int) -> dict:
    monitor = LRMonitor(WarmupCosineSchedule(**CONFIG), [MemorySink()])
    for _ in range(steps):
        monitor.step(loss=1.0)
    state = monitor.state_dict()
    monitor.close()
    return state


def resumed(state: dict, resume_step: int | None, steps: int) -> MemorySink:
    sink = MemorySink()
    with LRMonitor(WarmupCosineSchedule(**CONFIG), [sink], resume_from=state, resume_step=resume_step) as monitor:
        start = monitor.step_count
        for _ in range(start, steps):
            monitor.step(loss=1.0)
    return sink


@pytest.mark.parametrize("resume_step", [3, 10, 25, 40])  # before and after the saved step 25, across events
def test_resume_before_or_after_the_saved_step(resume_step):
    sink = resumed(saved_state_dict(25), resume_step, 55)
    steps = [step for step, _ in sink.scalars["lr"]]
    assert steps == list(range(resume_step, 55))
    compiled = jax.jit(WarmupCosineSchedule(**CONFIG).config.lr_at)  # what the optimizer applies (compiled)
    expected_lr = np.asarray(compiled(np.arange(resume_step, 55)))[:, 0]
    np.testing.assert_array_equal([lr for _, lr in sink.scalars["lr"]], expected_lr)
    schedule_events = {"warmup_start": 0, "warmup_end": 9, "cosine_start": 10, "end": 49, "overrun": 50}
    want = sorted([(step, kind) for kind, step in schedule_events.items() if step >= resume_step]
                  + [(resume_step, "resume")])
    assert sorted(sink.events) == want  # events before the resume step are not emitted again, later ones once
    assert sink.info.start_step == resume_step and sink.info.resumed


def test_a_schedule_started_at_last_epoch_emits_no_earlier_event():
    sink = MemorySink()
    with LRMonitor(WarmupCosineSchedule(**CONFIG, last_epoch=30), [sink]) as monitor:
        for _ in range(25):
            monitor.step()
    assert sink.events == [(49, "end"), (50, "overrun")]
    assert [step for step, _ in sink.scalars["lr"]] == list(range(30, 55))


@pytest.mark.parametrize("bad", [-1, 2**31, True, 2.5, "10"])
def test_a_resume_step_the_schedule_cannot_evaluate_is_refused(bad):
    with pytest.raises(StateError, match="resume_step must be an integer"):
        LRMonitor(WarmupCosineSchedule(**CONFIG), [MemorySink()], resume_from=saved_state_dict(5), resume_step=bad)


def test_resume_step_needs_a_state():
    with pytest.raises(ValueError, match="resume_step needs resume_from"):
        LRMonitor(WarmupCosineSchedule(**CONFIG), [MemorySink()], resume_step=5)


def test_a_state_of_another_configuration_is_refused_naming_the_fields():
    from lrmon import ConfigMismatchError

    with pytest.raises(ConfigMismatchError, match="total_steps"):
        LRMonitor(WarmupCosineSchedule(0.1, 10, 60, eta_min=0.001), [MemorySink()], resume_from=saved_state_dict(5))


def test_state_dict_is_a_saved_state_naming_each_tracker():
    state = saved_state_dict(7)
    assert state["step"] == 7 and state["trackers"]["MemorySink"]["holds_steps_below"] == 7


def test_a_compiled_loop_saves_at_multiples_of_save_every_not_at_buffer_boundaries():
    import jax.numpy as jnp
    import optax

    schedule = WarmupCosineSchedule(**CONFIG)
    sink = MemorySink()
    monitor = LRMonitor(schedule, [sink], graph_capacity=16, save_every=20)  # callbacks at 16, 32, 48
    tx = optax.sgd(schedule)

    def body(carry, _):
        opt_state, buffer = carry
        count = opt_state[1].count
        _, opt_state = tx.update(jnp.ones(()), opt_state, jnp.zeros(()))
        return (opt_state, monitor.graph_record(buffer, count, loss=jnp.float32(1.0))), None

    (_, buffer), _ = jax.jit(lambda c: jax.lax.scan(body, c, None, length=50))(
        (tx.init(jnp.zeros(())), monitor.graph_buffer(["loss"])))
    monitor.graph_drain(buffer)
    monitor.close()
    assert [step for step, _ in sink.saved_states] == [20, 40, 50]
