"""LRMonitor semantics: exact-step LR, exactly-once events, both paths, failing sinks, wrapping braintools."""

from __future__ import annotations

import time

import warnings

import braintools
import brainstate
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import lrmon
from lrmon import LRMonitor, MemorySink, WarmupCosineSchedule

CONFIGS = [  # (base_lr, warmup_steps, total_steps, warmup_start_lr, eta_min, steps run)
    (0.1, 10, 50, 0.0, 0.0, 60),  # past total_steps
    (0.05, 0, 40, 0.0, 0.001, 45),  # no warmup
    (0.2, 30, 30, 0.01, 0.0, 35),  # warmup only (W == T)
    (0.3, 40, 100, 1e-4, 0.01, 25),  # stops mid-warmup
    ([0.1, 0.02], 7, 33, 0.0, 0.001, 33),  # two groups, stops exactly at T
    (1e-3, 1, 1, 0.0, 0.0, 5),  # T == 1
]


def expected_events(warmup: int, total: int, steps_run: int) -> list[tuple[int, str]]:
    """The issue's specification, written out independently of lrmon.curve."""
    events = []
    if warmup > 0:
        events += [(0, "warmup_start"), (warmup - 1, "warmup_end")]
    if total > warmup:
        events.append((warmup, "cosine_start"))
    events.append((total - 1, "end"))
    events.append((total, "overrun"))
    return sorted(e for e in events if e[0] < steps_run)


def seed_formula(step: np.ndarray, base: float, warmup: int, total: int, start: float, floor: float) -> np.ndarray:
    """The seed document's two-phase formula in float64 (braintools' clipping for the edge cases)."""
    alpha = np.clip(step / max(warmup, 1), 0, 1)
    progress = np.clip((step - warmup) / max(total - warmup, 1), 0, 1)
    cosine = floor + 0.5 * (base - floor) * (1 + np.cos(np.pi * progress))
    return np.where(step < warmup, start + alpha * (base - start), cosine)


def sgd_unit_step(tx: optax.GradientTransformation, opt_state):
    """One optax SGD step with gradient 1 at parameter 0: (optax's count before it, new state, -update, loss)."""
    count = opt_state[1].count
    updates, opt_state = tx.update(jnp.ones(()), opt_state, jnp.zeros(()))
    return count, opt_state, -updates, jnp.sin(opt_state[1].count.astype(jnp.float32))


def optax_applied_lrs(schedule: WarmupCosineSchedule, monitor: LRMonitor, steps: int, **metric) -> np.ndarray:
    """Run an optax SGD loop (gradient 1, parameter reset to 0): the update of step t is -lr_t exactly."""
    tx = optax.sgd(schedule)
    opt_state = tx.init(jnp.zeros(()))

    @jax.jit
    def train_step(opt_state):
        _, opt_state, lr, loss = sgd_unit_step(tx, opt_state)
        return lr, opt_state, loss

    applied = []
    for _ in range(steps):
        lr, opt_state, loss = train_step(opt_state)
        monitor.step(loss=loss)
        applied.append(lr)
    return np.asarray(jax.device_get(applied), np.float64)


def braintools_probe(schedule: WarmupCosineSchedule):
    """A weight and a braintools SGD bound to ``schedule``: reset the weight to 0 and update with gradient 1, and the
    weight is then exactly minus the LR the optimizer applied."""
    weight = brainstate.ParamState(jnp.zeros(()))
    optimizer = braintools.optim.SGD(lr=schedule)
    optimizer.register_trainable_weights({"w": weight})
    return weight, optimizer


def host_path_records(config: tuple, log_every: int) -> MemorySink:
    """What the host path (``optax_applied_lrs`` with ``monitor.step``) records for a ``CONFIGS`` entry."""
    base, warmup, total, start, floor, steps = config
    sink = MemorySink()
    with LRMonitor(WarmupCosineSchedule(base, warmup, total, start, floor), [sink], log_every=log_every) as host:
        optax_applied_lrs(host.schedule, host, steps)
    return sink


@pytest.mark.parametrize("log_every", [1, 7, 100])
@pytest.mark.parametrize("config", CONFIGS)
def test_host_path_logs_the_lr_optax_applied_and_each_event_once(config, log_every):
    base, warmup, total, start, floor, steps = config
    schedule = WarmupCosineSchedule(base, warmup, total, start, floor)
    sink = MemorySink()
    with LRMonitor(schedule, [sink], log_every=log_every, flush_every=16) as monitor:
        applied = optax_applied_lrs(schedule, monitor, steps)
    logged_steps = list(range(0, steps, log_every))
    tag = "lr" if not isinstance(base, list) else "lr/pg0"
    assert [s for s, _ in sink.scalars[tag]] == logged_steps
    np.testing.assert_array_equal([v for _, v in sink.scalars[tag]], applied[logged_steps])
    assert sink.events == expected_events(warmup, total, steps)
    assert [s for s, _ in sink.scalars["loss"]] == logged_steps
    np.testing.assert_allclose([v for _, v in sink.scalars["loss"]], np.sin(np.asarray(logged_steps) + 1.0), rtol=1e-6)
    phases = [v for _, v in sink.scalars["lrmon/phase"]]
    assert phases == [float((t >= warmup) + (t >= total)) for t in logged_steps]
    if isinstance(base, list):
        want = seed_formula(np.asarray(logged_steps, float), base[1], warmup, total, start, floor)
        np.testing.assert_allclose([v for _, v in sink.scalars["lr/pg1"]], want, atol=2 * np.spacing(np.float32(0.1)))
    assert sink.closed and schedule.last_epoch.value == steps


@pytest.mark.parametrize("config", CONFIGS[:4])
def test_host_path_with_braintools_optimizer_logs_the_applied_lr(config):
    base, warmup, total, start, floor, steps = config
    schedule = WarmupCosineSchedule(base, warmup, total, start, floor)
    weight, optimizer = braintools_probe(schedule)

    @brainstate.transform.jit
    def train_step():
        weight.value = jnp.zeros(())
        optimizer.update({"w": jnp.ones(())})
        return -weight.value  # 0 - lr * 1: exactly the applied LR

    sink = MemorySink()
    applied = []
    with LRMonitor(schedule, [sink]) as monitor:
        for _ in range(steps):
            applied.append(train_step())
            monitor.step()
    applied = np.asarray(jax.device_get(applied), np.float64)
    np.testing.assert_array_equal([v for _, v in sink.scalars["lr"]], applied)
    np.testing.assert_allclose(applied, seed_formula(np.arange(steps, dtype=float), base, warmup, total, start, floor),
                               atol=2 * np.spacing(np.float32(max(base, start))))
    assert sink.events == expected_events(warmup, total, steps)


def test_monitor_refuses_a_schedule_also_stepped_by_the_user():
    schedule = WarmupCosineSchedule(0.1, 2, 10)
    braintools.optim.SGD(lr=schedule)  # binds the schedule: the monitor must step it
    monitor = LRMonitor(schedule, [MemorySink()])
    monitor.step()
    schedule.step()
    with pytest.raises(RuntimeError, match="do not also call schedule.step"):
        monitor.step()


@pytest.mark.parametrize("log_every", [1, 7])
@pytest.mark.parametrize("config", CONFIGS)
def test_in_graph_scan_matches_the_host_path(config, log_every):
    base, warmup, total, start, floor, steps = config
    host_sink, graph_sink = host_path_records(config, log_every), MemorySink()

    schedule = WarmupCosineSchedule(base, warmup, total, start, floor)
    monitor = LRMonitor(schedule, [graph_sink], log_every=log_every, graph_capacity=8)
    tx = optax.sgd(schedule)

    def body(carry, _):
        opt_state, buffer = carry
        count, opt_state, lr, loss = sgd_unit_step(tx, opt_state)
        buffer = monitor.graph_record(buffer, count, loss=loss)
        return (opt_state, buffer), lr

    (_, buffer), applied = jax.jit(lambda c: jax.lax.scan(body, c, None, length=steps))(
        (tx.init(jnp.zeros(())), monitor.graph_buffer(["loss"])))
    monitor.graph_drain(buffer)
    monitor.close()
    assert graph_sink.scalars == host_sink.scalars
    assert graph_sink.events == host_sink.events == expected_events(warmup, total, steps)
    logged = np.asarray(applied)[::log_every]
    tag = "lr" if not isinstance(base, list) else "lr/pg0"
    np.testing.assert_array_equal([v for _, v in graph_sink.scalars[tag]], logged)


@pytest.mark.parametrize("config", CONFIGS[:4])
def test_in_graph_brainstate_for_loop_steps_the_schedule(config):
    base, warmup, total, start, floor, steps = config
    schedule = WarmupCosineSchedule(base, warmup, total, start, floor)
    weight, optimizer = braintools_probe(schedule)
    sink = MemorySink()
    monitor = LRMonitor(schedule, [sink], graph_capacity=16)
    monitor.init_graph_state(["loss"])

    def train_step(i):
        weight.value = jnp.zeros(())
        optimizer.update({"w": jnp.ones(())})
        applied = -weight.value
        monitor.graph_step(loss=applied * 2)
        return applied

    applied = np.asarray(brainstate.transform.for_loop(train_step, jnp.arange(steps)), np.float64)
    monitor.close()
    np.testing.assert_array_equal([v for _, v in sink.scalars["lr"]], applied)
    np.testing.assert_array_equal([v for _, v in sink.scalars["loss"]], np.float32(applied * 2))
    assert sink.events == expected_events(warmup, total, steps)
    assert int(schedule.last_epoch.value) == steps == monitor.step_count


def test_events_fire_at_their_step_even_when_scalars_are_thinned():
    sink = MemorySink()
    with LRMonitor(WarmupCosineSchedule(0.1, 13, 57), [sink], log_every=1000) as monitor:
        for _ in range(70):
            monitor.step()
    assert [s for s, _ in sink.scalars["lr"]] == [0]
    assert sink.events == [(0, "warmup_start"), (12, "warmup_end"), (13, "cosine_start"), (56, "end"),
                           (57, "overrun")]
    for record in sink.event_records:  # the event's LR is the curve's exact (float64) value at its step
        assert record.lrs == pytest.approx((float(seed_formula(np.float64(record.step), 0.1, 13, 57, 0.0, 0.0)),),
                                           rel=1e-12, abs=1e-15)


def test_events_are_delivered_promptly_not_only_at_close():
    sink = MemorySink()
    monitor = LRMonitor(WarmupCosineSchedule(0.1, 5, 1000), [sink], flush_every=10_000)
    for _ in range(6):
        monitor.step()
    expected = [(0, "warmup_start"), (4, "warmup_end"), (5, "cosine_start")]
    deadline = time.monotonic() + 10  # delivered by the courier's thread, without a flush
    while sink.events != expected and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sink.events == expected
    assert [s for s, _ in sink.scalars["lr"]] == list(range(6))  # each event after the rows of its step
    monitor.close()


class FailingSink(MemorySink):
    """Raises on its third write_scalars call."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def write_scalars(self, batch):
        self.calls += 1
        if self.calls == 3:
            raise OSError("disk full (simulated by the test's sink)")
        super().write_scalars(batch)


def test_a_failing_sink_is_disabled_with_one_warning_and_training_goes_on():
    good, bad = MemorySink(), FailingSink()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with LRMonitor(WarmupCosineSchedule(0.1, 10, 100), [bad, good], flush_every=8) as monitor:
            for _ in range(120):
                monitor.step(loss=1.0)
    failures = [w for w in caught if issubclass(w.category, lrmon.SinkFailedWarning)]
    assert len(failures) == 1 and "FailingSink" in str(failures[0].message)
    assert [s for s, _ in good.scalars["lr"]] == list(range(120))
    assert len(good.events) == 5
    assert bad not in monitor.sinks and bad.calls == 3


def test_a_failing_host_callback_never_breaks_the_compiled_loop():
    bad = FailingSink()
    monitor = LRMonitor(WarmupCosineSchedule(0.1, 2, 50), [bad], graph_capacity=2)
    buffer = monitor.graph_buffer(["loss"])

    def body(buffer, t):
        return monitor.graph_record(buffer, t, loss=t * 1.0), None

    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        buffer, _ = jax.lax.scan(body, buffer, jnp.arange(40))
        jax.effects_barrier()
        monitor.graph_drain(buffer)
        monitor.close()
    assert bad.calls == 3 and monitor.step_count == 40


def test_wraps_an_existing_braintools_schedule():
    seed_schedule = braintools.optim.WarmupCosineSchedule(base_lr=0.01, warmup_steps=5, total_steps=20, eta_min=1e-4)
    sink = MemorySink()
    with LRMonitor(seed_schedule, [sink]) as monitor:
        for _ in range(22):
            monitor.step()
    reference = braintools.optim.WarmupCosineSchedule(base_lr=0.01, warmup_steps=5, total_steps=20, eta_min=1e-4)
    want = []
    for _ in range(22):
        want.append(float(reference.get_lr()[0]))
        reference.step()
    np.testing.assert_allclose([v for _, v in sink.scalars["lr"]], want, rtol=0, atol=2 * np.spacing(np.float32(0.01)))
    assert sink.events == expected_events(5, 20, 22)
    assert sink.config["warmup_steps"] == 5 and sink.config["schedule"] == "WarmupCosineSchedule"


def test_bad_arguments_name_what_is_wrong():
    schedule = WarmupCosineSchedule(0.1, 2, 10)
    with pytest.raises(TypeError, match="schedule must be"):
        LRMonitor(object())
    with pytest.raises(ValueError, match="log_every"):
        LRMonitor(schedule, log_every=0)
    with pytest.raises(TypeError, match=r"sinks\[0\]"):
        LRMonitor(schedule, [object()])
    monitor = LRMonitor(schedule, [MemorySink()])
    with pytest.raises(ValueError, match="reserved"):
        monitor.step(lr=0.3)
    with pytest.raises(TypeError, match="metric 'loss'"):
        monitor.step(loss=np.ones(3))
    with pytest.raises(TypeError, match="metric 'loss'"):
        monitor.step(loss="high")


def test_multi_group_tags():
    sink = MemorySink()
    with LRMonitor(WarmupCosineSchedule([0.1, 0.2, 0.3], 2, 10), [sink]) as monitor:
        monitor.step()
    assert set(sink.scalars) == {"lr/pg0", "lr/pg1", "lr/pg2", "lrmon/phase"}
    assert sink.info.lr_tags == ("lr/pg0", "lr/pg1", "lr/pg2")


@pytest.mark.slow
def test_memory_stays_flat_over_a_million_steps():
    import resource

    class CountingSink(lrmon.Sink):
        rows = 0

        def write_scalars(self, batch):
            CountingSink.rows += len(batch["lr"].steps)

        def write_events(self, events):
            pass

    monitor = LRMonitor(WarmupCosineSchedule(0.1, 1000, 900_000), [CountingSink()])
    loss = jnp.float32(1.0)
    for _ in range(100_000):
        monitor.step(loss=loss)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for _ in range(900_000):
        monitor.step(loss=loss)
    monitor.close()
    growth_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert CountingSink.rows == 1_000_000
    assert growth_mb < 20, growth_mb


@pytest.mark.parametrize("log_every", [1, 7])
@pytest.mark.parametrize("config", CONFIGS)
def test_record_many_from_scan_outputs_matches_the_host_path(config, log_every):
    base, warmup, total, start, floor, steps = config
    host_sink, scan_sink = host_path_records(config, log_every), MemorySink()

    schedule = WarmupCosineSchedule(base, warmup, total, start, floor)
    tx = optax.sgd(schedule)

    def body(opt_state, _):
        count, opt_state, lr, loss = sgd_unit_step(tx, opt_state)
        return opt_state, (count, loss, lr)

    with LRMonitor(schedule, [scan_sink], log_every=log_every) as monitor:
        half = steps // 2  # two compiled chunks, as a long run would be
        opt_state = tx.init(jnp.zeros(()))
        applied = []
        for length in (half, steps - half):
            opt_state, (counts, losses, lrs) = jax.lax.scan(body, opt_state, None, length=length)
            monitor.record_many(counts, loss=losses)
            applied.append(np.asarray(lrs))
    assert scan_sink.scalars == host_sink.scalars and scan_sink.events == host_sink.events
    tag = "lr" if not isinstance(base, list) else "lr/pg0"
    np.testing.assert_array_equal([v for _, v in scan_sink.scalars[tag]], np.concatenate(applied)[::log_every])
    assert monitor.step_count == steps


def test_record_many_rejects_bad_input():
    monitor = LRMonitor(WarmupCosineSchedule(0.1, 2, 10), [MemorySink()])
    with pytest.raises(ValueError, match="metric 'loss' has 2 values for 3 steps"):
        monitor.record_many(np.arange(3), loss=np.ones(2))
    with pytest.raises(ValueError, match="strictly increasing"):
        monitor.record_many(np.array([0, 2, 1]), loss=np.ones(3))
