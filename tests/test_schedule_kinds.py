"""The monitor on every kind of schedule: optax curves, plain optax functions, braintools schedulers, a plateau
schedule (observed cuts, through SIGKILL and resume), injected hyperparameters, named parameter groups."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import lrmon
from _trackers import accumulator, wandb_env
from lrmon.hyperparams import injected_hyperparams
from lrmon.schedules import optax as lo

__all__ = ["wandb_env"]  # the fixture, imported for pytest

WORKER = Path(__file__).parent / "_resume" / "plateau_worker.py"


def run_optax(schedule, steps, *, start=0, resume_from=None, tx_factory=optax.sgd):
    """An optax SGD loop on w (grad 1) monitored into a MemorySink: (sink, applied LRs, monitor state)."""
    memory = lrmon.MemorySink()
    monitor = lrmon.LRMonitor(schedule, [memory], flush_every=7, resume_from=resume_from)
    tx = optax.inject_hyperparams(tx_factory)(learning_rate=schedule)
    params = {"w": jnp.zeros(())}
    state = tx.init(params)
    state = state._replace(count=jnp.asarray(start, jnp.int32))
    applied = []
    for _ in range(start, steps):
        updates, state = tx.update({"w": jnp.ones(())}, state, params)
        applied.append(-float(updates["w"]))
        monitor.step(loss=1.0)
    saved = monitor.state_dict()
    monitor.close()
    return memory, np.asarray(applied), saved


CURVES = {
    "sgdr": lambda: lo.sgdr_schedule([dict(init_value=0.0, peak_value=1e-2, warmup_steps=5, decay_steps=20,
                                           end_value=1e-4)] * 3),
    "piecewise": lambda: lo.piecewise_constant_schedule(0.1, {10: 0.5, 30: 0.1}),
    "onecycle": lambda: lo.cosine_onecycle_schedule(60, 0.05),
    "joined": lambda: lo.join_schedules([lo.constant_schedule(0.01), lo.linear_schedule(0.01, 0.0, 30)], [15]),
}


@pytest.mark.parametrize("name", sorted(CURVES))
def test_optax_curves_log_the_applied_lr_and_each_event_once_and_resume_bit_for_bit(name):
    schedule, steps = CURVES[name](), 70
    full, applied, _ = run_optax(schedule, steps)
    lrs = [lr for _, lr in full.scalars["lr"]]
    assert [t for t, _ in full.scalars["lr"]] == list(range(steps))
    # the logged LR is the LR the update applied, and optax's own schedule's, within float32 rounding (optax
    # evaluates its own compiled copy of the curve, which XLA may fuse differently)
    tolerance = dict(rtol=2e-6, atol=1e-7 * max(applied))
    np.testing.assert_allclose(lrs, applied, **tolerance)
    reference = optax_reference(name)
    np.testing.assert_allclose(lrs, [float(reference(t)) for t in range(steps)], **tolerance)
    planned = sorted((step, kind) for kind, step in schedule.events(0, steps))  # ties: by kind
    assert full.events == planned and len(planned) == len(set(k for _, k in planned)) > 0
    first, _, state = run_optax(schedule, 33)
    rest, _, _ = run_optax(schedule, steps, start=33, resume_from=state)
    assert first.scalars["lr"] + rest.scalars["lr"] == full.scalars["lr"]  # bit for bit
    assert first.events + [e for e in rest.events if e[1] != "resume"] == full.events


def optax_reference(name):
    """optax's own schedule for CURVES[name]."""
    return {
        "sgdr": lambda: optax.sgdr_schedule([dict(init_value=0.0, peak_value=1e-2, warmup_steps=5, decay_steps=20,
                                                  end_value=1e-4)] * 3),
        "piecewise": lambda: optax.piecewise_constant_schedule(0.1, {10: 0.5, 30: 0.1}),
        "onecycle": lambda: optax.cosine_onecycle_schedule(60, 0.05),
        "joined": lambda: optax.join_schedules([optax.constant_schedule(0.01), optax.linear_schedule(0.01, 0.0, 30)],
                                               [15]),
    }[name]()


def test_a_resume_refuses_another_schedule_and_names_the_differing_argument():
    _, _, state = run_optax(CURVES["piecewise"](), 12)
    with pytest.raises(lrmon.ConfigMismatchError, match="curve"):
        lrmon.LRMonitor(CURVES["sgdr"](), resume_from=state)
    other = lo.piecewise_constant_schedule(0.2, {10: 0.5, 30: 0.1})
    with pytest.raises(lrmon.ConfigMismatchError, match="init_value"):
        lrmon.LRMonitor(other, resume_from=state)


def test_a_plain_optax_function_is_logged_by_evaluation_without_events():
    fn = optax.warmup_cosine_decay_schedule(0.0, 1e-2, 10, 50)
    memory, applied, state = run_optax(fn, 40)
    np.testing.assert_allclose([lr for _, lr in memory.scalars["lr"]], applied, rtol=2e-6, atol=1e-9)
    assert memory.events == [] and memory.info.phases == ("schedule",)
    assert state["config"] == {"curve": "function", "name": f"{fn.__module__}.{fn.__qualname__}"}


def test_injected_hyperparameters_are_the_values_the_update_applied_host_and_scan():
    wd = optax.linear_schedule(1e-2, 0.0, 20)
    tx = optax.inject_hyperparams(optax.adamw)(learning_rate=lo.constant_schedule(1e-3), weight_decay=wd, b1=0.8)
    params = {"w": jnp.ones(3)}
    state = tx.init(params)
    memory = lrmon.MemorySink()
    monitor = lrmon.LRMonitor(lo.constant_schedule(1e-3), [memory])
    for _ in range(25):
        _, state = tx.update({"w": jnp.ones(3)}, state, params)
        monitor.step(**injected_hyperparams(state))
    monitor.close()
    assert [v for _, v in memory.scalars["hparams/weight_decay"]] == pytest.approx(
        [float(wd(t)) for t in range(25)], rel=1e-6, abs=1e-9)
    assert [v for _, v in memory.scalars["hparams/b1"]] == pytest.approx([0.8] * 25)
    assert "hparams/learning_rate" not in memory.scalars

    scanned = lrmon.MemorySink()
    monitor = lrmon.LRMonitor(lo.constant_schedule(1e-3), [scanned])
    buffer = monitor.graph_buffer(["hparams/weight_decay", "hparams/b1", "hparams/eps", "hparams/eps_root",
                                   "hparams/b2"])

    def body(carry, _):
        state, buffer = carry
        step = state.count
        _, state = tx.update({"w": jnp.ones(3)}, state, params)
        return (state, monitor.graph_record(buffer, step, **injected_hyperparams(state))), None

    (state, buffer), _ = jax.lax.scan(body, (tx.init(params), buffer), length=25)
    monitor.graph_drain(buffer)
    monitor.close()
    assert [t for t, _ in scanned.scalars["hparams/weight_decay"]] == list(range(25))
    assert [v for _, v in scanned.scalars["hparams/weight_decay"]] == pytest.approx(  # compiled: within an ulp
        [float(wd(t)) for t in range(25)], rel=1e-6, abs=1e-9)
    with pytest.raises(ValueError, match="inject_hyperparams"):
        injected_hyperparams(optax.sgd(0.1).init(params))


def test_named_parameter_groups_and_the_optimizer_step_axis():
    memory = lrmon.MemorySink()
    schedule = lrmon.WarmupCosineSchedule([0.1, 0.01], 2, 10)
    with lrmon.LRMonitor(schedule, [memory], group_names=["backbone", "head"], step_axis="optimizer") as monitor:
        for _ in range(4):
            monitor.step()
    assert set(memory.scalars) == {"lr/backbone", "lr/head", "lrmon/phase"}
    assert memory.info.config["step_axis"] == "optimizer"
    with pytest.raises(ValueError, match="step_axis"):
        lrmon.LRMonitor(lrmon.WarmupCosineSchedule(0.1, 2, 10), step_axis="micro")


def braintools_run(scheduler, steps):
    """A braintools SGD loop (grad 1) on a scheduler the monitor steps: (logged LRs, applied LRs, events)."""
    import brainstate
    import braintools

    weight = brainstate.ParamState(jnp.zeros(()))
    optimizer = braintools.optim.SGD(lr=scheduler)
    optimizer.register_trainable_weights({"w": weight})
    memory = lrmon.MemorySink()
    applied = []
    with lrmon.LRMonitor(scheduler, [memory]) as monitor:
        for _ in range(steps):
            before = float(weight.value)
            optimizer.update({"w": jnp.ones(())})
            applied.append(before - float(weight.value))
            monitor.step()
    return np.asarray([lr for _, lr in memory.scalars["lr"]]), np.asarray(applied), memory.events


def test_a_braintools_scheduler_is_stepped_and_its_applied_lr_logged():
    import braintools

    logged, applied, events = braintools_run(braintools.optim.StepLR(base_lr=0.1, step_size=7, gamma=0.5), 30)
    np.testing.assert_allclose(logged, applied, rtol=1e-5)
    np.testing.assert_allclose(logged, 0.1 * 0.5 ** (np.arange(30) // 7), rtol=1e-6)
    assert events == [(7, "decay_1"), (14, "decay_2"), (21, "decay_3"), (28, "decay_4")]


def tensorboard_rows(logdir: Path) -> tuple[list[int], list[float], list[tuple[int, str]]]:
    acc = accumulator(logdir)
    rows = acc.Scalars("lr")
    events = sorted((e.step, tag.rsplit("/", 1)[1]) for tag in acc.Tags()["tensors"]
                    if tag.startswith("lrmon/events/") for e in acc.Tensors(tag))
    return [r.step for r in rows], [r.value for r in rows], events


def test_plateau_cuts_are_observed_events_and_survive_sigkill_and_resume(tmp_path):
    def worker(out, *args):
        return subprocess.run([sys.executable, str(WORKER), "--out", str(out), *args], capture_output=True,
                              text=True, timeout=240)

    reference = worker(tmp_path / "ref")
    assert reference.returncode == 0, reference.stderr[-2000:]
    steps, lrs, events = tensorboard_rows(tmp_path / "ref" / "tb")
    applied = json.loads((tmp_path / "ref" / "applied-first.json").read_text())
    assert steps == list(range(60))
    # logged == applied at every step (measured as the float32 parameter's change: ~3e-7 of rounding)
    np.testing.assert_allclose(lrs, [lr for _, lr in applied], rtol=1e-5, atol=1e-6)
    # metric 1.0, .8, .7, .7, .7 (2 bad epochs > patience 1: cut at epoch 4), .7, .7 (cut at epoch 6), ...
    cuts = [(step, kind) for step, kind in events if kind.startswith("lr_reduced_")]
    assert cuts == [(20, "lr_reduced_1"), (30, "lr_reduced_2"), (45, "lr_reduced_3"), (55, "lr_reduced_4")]
    assert lrs[19] == pytest.approx(0.1) and lrs[20] == pytest.approx(0.05) and lrs[59] == pytest.approx(0.00625)

    killed = worker(tmp_path / "chain", "--kill-after", "37")
    assert killed.returncode == -9
    resumed = worker(tmp_path / "chain", "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    chain_steps, chain_lrs, chain_events = tensorboard_rows(tmp_path / "chain" / "tb")
    assert chain_steps == steps and chain_lrs == lrs  # every step once, bit for bit
    assert [e for e in chain_events if e[1] != "resume"] == events  # each cut once


def test_trackers_and_the_cli_hold_an_sgdr_run_with_its_restarts(tmp_path, wandb_env):
    from lrmon.cli import main
    from lrmon.integrations.tensorboard import TensorBoardSink
    from lrmon.integrations.wandb import WandbSink
    from lrmon.runs import read_run

    schedule = CURVES["sgdr"]()
    sinks = [TensorBoardSink(tmp_path / "tb"), WandbSink(dir=tmp_path / "wandb", project="lrmon-kinds")]
    with lrmon.LRMonitor(schedule, sinks) as monitor:
        for t in range(70):
            monitor.step(loss=float(np.exp(-t / 30)))
    planned = sorted((step, kind) for kind, step in schedule.events(0, 70))
    assert ("restart_1", 20) in schedule.events() and ("restart_2", 40) in schedule.events()
    for where in (tmp_path / "tb", tmp_path / "wandb"):
        data = read_run(where)
        assert data.config == schedule  # the recorded configuration rebuilds the curve
        assert [(step, kind) for step, kind, _ in data.events] == planned  # each event once, read back
        (steps, values), = data.lrs.values()
        assert steps.tolist() == list(range(70))
        np.testing.assert_allclose(values, np.asarray(schedule.lr_at(np.arange(70)))[:, 0], rtol=1e-6)
        assert main(["plot", str(where), "--out", str(tmp_path / f"{where.name}.png")]) == 0


def test_preview_draws_every_supported_schedule_from_the_command_line(tmp_path, capsys):
    from lrmon.cli import main

    cases = {
        "optax.sgdr_schedule": {"cosine_kwargs": [dict(init_value=0.0, peak_value=1e-2, warmup_steps=5,
                                                      decay_steps=20)] * 2},
        "optax.exponential_decay": {"init_value": 0.1, "transition_steps": 10, "decay_rate": 0.5,
                                    "staircase": True},
        "braintools.StepLR": {"base_lr": 0.1, "step_size": 10, "gamma": 0.5},
    }
    for name, args in cases.items():
        out = tmp_path / f"{name}.png"
        status = main(["preview", "--schedule", name, "--args", json.dumps(args), "--steps", "60", "--out", str(out)])
        stdout = capsys.readouterr().out
        assert status == 0 and out.stat().st_size > 10_000, name
        assert "events:" in stdout and "phases:" in stdout
    assert "restart_1     step 20" in main_output(main, capsys, "optax.sgdr_schedule", cases)
    assert main(["preview", "--schedule", "braintools.StepLR", "--args", json.dumps(cases["braintools.StepLR"]),
                 "--no-plot"]) == 2
    assert "endless" in capsys.readouterr().err
    assert main(["preview", "--list"]) == 0
    listed = capsys.readouterr().out.split()
    assert {"optax.sgdr_schedule", "braintools.StepLR", "braintools.OneCycleLR"} <= set(listed)


def main_output(main, capsys, name, cases):
    assert main(["preview", "--schedule", name, "--args", json.dumps(cases[name]), "--no-plot"]) == 0
    return capsys.readouterr().out


def braintools_schedulers():
    """One configuration of each braintools scheduler the monitor steps (built fresh on each call)."""
    import braintools

    o = braintools.optim
    return {
        "StepLR": lambda: o.StepLR(base_lr=0.1, step_size=7, gamma=0.5),
        "MultiStepLR": lambda: o.MultiStepLR(base_lr=0.1, milestones=(5, 12, 30), gamma=0.3),
        "ExponentialLR": lambda: o.ExponentialLR(base_lr=0.1, gamma=0.95),
        "CosineAnnealingLR": lambda: o.CosineAnnealingLR(base_lr=0.1, T_max=30, eta_min=1e-3),
        "CosineAnnealingWarmRestarts": lambda: o.CosineAnnealingWarmRestarts(base_lr=0.1, T_0=6, T_mult=2),
        "OneCycleLR": lambda: o.OneCycleLR(max_lr=0.1, total_steps=30),
        "LinearLR": lambda: o.LinearLR(base_lr=0.1, start_factor=0.2, total_iters=10),
        "ConstantLR": lambda: o.ConstantLR(base_lr=0.1, factor=0.5, total_iters=8),
        "PolynomialLR": lambda: o.PolynomialLR(base_lr=0.1, total_iters=25, power=2.0),
        "CyclicLR": lambda: o.CyclicLR(base_lr=0.01, max_lr=0.1, step_size_up=4),
        "PiecewiseConstantSchedule": lambda: o.PiecewiseConstantSchedule(base_lr=0.1, boundaries=[10, 20],
                                                                          values=[0.1, 0.05, 0.01]),
        "SequentialLR": lambda: o.SequentialLR([o.LinearLR(base_lr=0.1, start_factor=0.1, total_iters=5),
                                                o.StepLR(base_lr=0.1, step_size=6, gamma=0.5)], milestones=[5]),
        "ChainedScheduler": lambda: o.ChainedScheduler([o.StepLR(base_lr=0.1, step_size=6, gamma=0.5),
                                                        o.LinearLR(base_lr=0.1, start_factor=0.5, total_iters=9)]),
    }


@pytest.mark.parametrize("name", sorted(braintools_schedulers()))
def test_each_braintools_scheduler_logs_its_applied_lr_and_resumes_bit_for_bit(name):
    import brainstate
    import braintools

    build = braintools_schedulers()[name]

    def run(steps, resume_from=None):
        scheduler = build()
        weight = brainstate.ParamState(jnp.zeros(()))
        optimizer = braintools.optim.SGD(lr=scheduler)
        optimizer.register_trainable_weights({"w": weight})
        memory, applied = lrmon.MemorySink(), []
        monitor = lrmon.LRMonitor(scheduler, [memory], resume_from=resume_from)
        for _ in range(monitor.step_count, steps):
            before = float(weight.value)
            optimizer.update({"w": jnp.ones(())})
            applied.append(before - float(weight.value))
            monitor.step()
        state = monitor.state_dict()
        monitor.close()
        return memory, np.asarray(applied), state

    full, applied, _ = run(40)
    lrs = np.asarray([lr for _, lr in full.scalars["lr"]])
    np.testing.assert_allclose(lrs, applied, rtol=1e-5, atol=1e-7)  # the LR logged is the LR applied
    from lrmon.schedule_source import curve_of

    curve = curve_of(build())
    assert full.events == sorted((step, kind) for kind, step in curve.events(0, 40))
    first, _, state = run(17)
    rest, _, _ = run(40, resume_from=state)
    assert first.scalars["lr"] + rest.scalars["lr"] == full.scalars["lr"]  # bit for bit
    assert first.events + [e for e in rest.events if e[1] != "resume"] == full.events


def test_a_braintools_optimizers_momentum_weight_decay_and_betas_are_logged():
    braintools = pytest.importorskip("braintools")
    from lrmon.hyperparams import optimizer_hyperparams

    scheduler = braintools.optim.StepLR(base_lr=0.1, step_size=5)
    adamw = braintools.optim.AdamW(lr=scheduler, betas=(0.8, 0.99), weight_decay=0.05)
    assert optimizer_hyperparams(adamw) == {"hparams/b1": pytest.approx(0.8), "hparams/b2": pytest.approx(0.99),
                                            "hparams/eps": pytest.approx(1e-8),
                                            "hparams/weight_decay": pytest.approx(0.05)}
    assert optimizer_hyperparams(braintools.optim.Momentum(lr=0.1, momentum=0.9))["hparams/momentum"] == \
        pytest.approx(0.9)
    memory = lrmon.MemorySink()
    with lrmon.LRMonitor(scheduler, [memory]) as monitor:
        hparams = optimizer_hyperparams(adamw)
        for _ in range(3):
            monitor.step(**hparams)
    assert memory.scalars["hparams/weight_decay"] == [(t, pytest.approx(0.05)) for t in range(3)]
