"""The monitor's state in the model's orbax checkpoint: model and monitor restore at one committed step."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lrmon
from lrmon.integrations import orbax as lrmon_orbax

ocp = pytest.importorskip("orbax.checkpoint")


def test_state_rides_in_the_checkpoint_and_resumes_at_its_step(tmp_path):
    schedule = lrmon.WarmupCosineSchedule(0.1, 5, 40)
    first = lrmon.MemorySink()
    monitor = lrmon.LRMonitor(schedule, [first], save_every=7)
    manager = ocp.CheckpointManager(tmp_path / "ckpt", options=ocp.CheckpointManagerOptions(save_interval_steps=6))
    params = {"w": jnp.zeros(3)}
    for t in range(20):  # orbax checkpoints at 1 (its first step), 6, 12, 18; the monitor saves at 7 and 14
        params = {"w": params["w"] + 1}
        monitor.step(loss=float(t))
        if manager.should_save(t + 1):
            manager.save(t + 1, args=ocp.args.Composite(train=ocp.args.StandardSave(params),
                                                        **{lrmon_orbax.ITEM: lrmon_orbax.save_args(monitor)}))
    manager.wait_until_finished()
    step = manager.latest_step()
    restored = manager.restore(step, args=ocp.args.Composite(train=ocp.args.StandardRestore(params),
                                                             **{lrmon_orbax.ITEM: lrmon_orbax.restore_args()}))
    state = restored[lrmon_orbax.ITEM]
    assert step == 18 and state["step"] == 18 and int(restored["train"]["w"][0]) == 18
    assert state["trackers"]["MemorySink"]["holds_steps_below"] == 18  # a waited save: every row below is held
    assert [step for step, _ in first.saved_states] == [1, 6, 7, 12, 14, 18]

    second = lrmon.MemorySink()
    resumed = lrmon.LRMonitor(lrmon.WarmupCosineSchedule(0.1, 5, 40), [second], resume_from=state, resume_step=step)
    for _ in range(step, 40):
        resumed.step(loss=0.0)
    resumed.close()
    assert [s for s, _ in second.scalars["lr"]] == list(range(18, 40))
    assert second.events == [(18, "resume"), (39, "end")]
    expected = np.asarray(jax.jit(schedule.config.lr_at)(np.arange(18, 40)))[:, 0]  # the applied (compiled) LR
    np.testing.assert_array_equal([lr for _, lr in second.scalars["lr"]], expected)
