"""``LRMonitor.scan``: compiled chunks with no per-step callback; every step once, the same training as a plain
``lax.scan``, on one device and sharded over 8 virtual devices."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import lrmon
from lrmon.schedules import optax as lo

SCHEDULE = lo.warmup_cosine_decay_schedule(0.0, 0.1, 10, 60)
TX = optax.sgd(SCHEDULE)


def body(carry, x):
    w, opt_state = carry
    loss, grad = jax.value_and_grad(lambda w: jnp.sum((w - x) ** 2))(w)
    updates, opt_state = TX.update(grad, opt_state, w)
    return (optax.apply_updates(w, updates), opt_state), {"loss": loss}


def start():
    w = jnp.zeros(4)
    return w, TX.init(w)


XS = jnp.linspace(0.0, 1.0, 75 * 4).reshape(75, 4)


@pytest.mark.parametrize("chunk", [1, 7, 32, 75, 500])
def test_scan_trains_as_lax_scan_and_logs_every_step_once(chunk):
    (w_ref, _), outputs = jax.jit(lambda c, xs: jax.lax.scan(body, c, xs))(start(), XS)
    memory = lrmon.MemorySink()
    with lrmon.LRMonitor(SCHEDULE, [memory], flush_every=16) as monitor:
        w, _ = monitor.scan(body, start(), XS, chunk=chunk)
        assert monitor.step_count == 75
    np.testing.assert_array_equal(w, w_ref)  # the same training, bit for bit
    assert [t for t, _ in memory.scalars["lr"]] == list(range(75))
    np.testing.assert_array_equal([v for _, v in memory.scalars["loss"]], np.asarray(outputs["loss"], np.float32))
    np.testing.assert_allclose([v for _, v in memory.scalars["lr"]], [float(SCHEDULE(t)) for t in range(75)],
                               rtol=2e-6, atol=1e-9)
    assert memory.events == sorted((step, kind) for kind, step in SCHEDULE.events(0, 75))


def test_scan_continues_the_host_path_and_honours_log_every():
    memory = lrmon.MemorySink()
    with lrmon.LRMonitor(SCHEDULE, [memory], log_every=3) as monitor:
        for _ in range(5):
            monitor.step(loss=0.0)
        carry = monitor.scan(body, start(), XS[:20], chunk=8)
        monitor.scan(body, carry, length=None, xs=XS[20:30], chunk=8)
        monitor.step(loss=0.0)
    assert [t for t, _ in memory.scalars["lr"]] == list(range(0, 36, 3))
    assert monitor.step_count == 36


def test_scan_refuses_bad_bodies_and_stepped_schedules():
    with lrmon.LRMonitor(SCHEDULE, [lrmon.MemorySink()]) as monitor:
        with pytest.raises(TypeError, match="metric"):
            monitor.scan(lambda c, x: (c, x), start(), XS[:4])
        with pytest.raises(ValueError, match="scalar per step"):
            monitor.scan(lambda c, x: (c, {"loss": x}), start(), XS[:4])
        with pytest.raises(ValueError, match="xs or length"):
            monitor.scan(body, start())
        with pytest.raises(ValueError, match="chunk"):
            monitor.scan(body, start(), XS, chunk=0)
    braintools = pytest.importorskip("braintools")
    import brainstate

    scheduler = braintools.optim.StepLR(base_lr=0.1, step_size=5)
    optimizer = braintools.optim.SGD(lr=scheduler)
    optimizer.register_trainable_weights({"w": brainstate.ParamState(jnp.zeros(()))})
    with lrmon.LRMonitor(scheduler) as monitor, pytest.raises(TypeError, match="graph_step"):
        monitor.scan(body, start(), XS)


SHARDED = textwrap.dedent("""
    import json, sys
    import jax, jax.numpy as jnp, numpy as np, optax
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    import lrmon
    from lrmon.schedules import optax as lo
    schedule = lo.cosine_decay_schedule(0.1, 40)
    tx = optax.sgd(schedule)
    mesh = Mesh(np.array(jax.devices()), ("d",))
    def body(carry, x):
        w, s = carry
        loss, g = jax.value_and_grad(lambda w: jnp.mean((w - x) ** 2))(w)
        u, s = tx.update(g, s, w)
        return (optax.apply_updates(w, u), s), {"loss": loss}
    w = jax.device_put(jnp.zeros(64), NamedSharding(mesh, P("d")))
    xs = jax.device_put(jnp.ones((50, 64)), NamedSharding(mesh, P(None, "d")))
    memory = lrmon.MemorySink()
    with lrmon.LRMonitor(schedule, [memory]) as monitor:
        monitor.scan(body, (w, tx.init(w)), xs, chunk=16)
    print(json.dumps({"devices": jax.device_count(), "steps": [t for t, _ in memory.scalars["loss"]]}))
""")


def test_scan_sharded_over_8_devices_logs_every_step_once():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8", "JAX_PLATFORMS": "cpu"}
    result = subprocess.run([sys.executable, "-c", SHARDED], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"devices": 8, "steps": list(range(50))}
