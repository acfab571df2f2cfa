"""One process, 8 virtual CPU devices: the in-graph path under sharded jit, pmap, shard_map and grad of remat.

Run by tests/test_multidevice.py as ``python sharded_worker.py OUT_DIR [SCENARIO ...]`` (it sets
``XLA_FLAGS=--xla_force_host_platform_device_count=8`` itself, before importing jax). For every scenario it writes
``OUT_DIR/<scenario>/result.json`` (what the MemorySink holds, the per-step losses computed in the graph, how often
the host callback fired) as soon as that scenario is done, and ``OUT_DIR/<scenario>/tb`` (a TensorBoardSink logdir)
for the test to read back. A scenario that raises gets ``{"error": <traceback>}`` as its result and the others
still run; one that hangs makes the process exit with a traceback (faulthandler).
"""

from __future__ import annotations

import faulthandler
import json
import os
import sys
import time
import traceback
import warnings
from pathlib import Path

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P  # noqa: E402

from common import CallbackCounter, brainstate_trainer, for_loop_with_twin  # noqa: E402
from lrmon import LRMonitor, MemorySink, WarmupCosineSchedule  # noqa: E402
from lrmon.integrations.tensorboard import TensorBoardSink  # noqa: E402

STEPS = 40  # not a multiple of CAPACITY: graph_drain has rows left to send
CAPACITY = 7
SCHEDULE = (0.1, 5, 30)  # base_lr, warmup_steps, total_steps: all five events happen within STEPS
WATCHDOG_S = 60

assert jax.device_count() == 8, jax.devices()
MESH = Mesh(np.array(jax.devices()), ("d",))
DATA = jax.random.normal(jax.random.key(0), (STEPS, 64, 4), jnp.float32)
SHARDED_DATA = jax.device_put(DATA, NamedSharding(MESH, P(None, "d")))  # the batch axis over 8 devices


def loss_fn(w, x):
    return jnp.mean((x @ w - 1.0) ** 2)


def new_monitor(out: Path, capacity: int = CAPACITY, flush_every: int = 256):
    schedule = WarmupCosineSchedule(*SCHEDULE)
    memory = MemorySink()
    monitor = LRMonitor(schedule, [memory, TensorBoardSink(out / "tb")], graph_capacity=capacity,
                        flush_every=flush_every)
    return schedule, memory, monitor


def scan_step(monitor, schedule, grad_step):
    """A lax.scan body: one SGD step (``grad_step`` gives loss and gradient), recorded with graph_record."""

    def body(carry, x):
        w, buffer, step = carry
        loss, grad = grad_step(w, x)
        buffer = monitor.graph_record(buffer, step, loss=loss)
        return (w - schedule.lr_at(step) * grad, buffer, step + 1), loss

    return body


def plain_grad(axis=None):
    def grad_step(w, x):
        loss, grad = jax.value_and_grad(loss_fn)(w, x)
        if axis is not None:  # per-device values: average them so every device records the same row
            loss, grad = jax.lax.pmean(loss, axis), jax.lax.pmean(grad, axis)
        return loss, grad
    return grad_step


def train_scan(monitor, schedule, grad_step):
    body = scan_step(monitor, schedule, grad_step)

    def run(w, buffer, xs):
        (w, buffer, _), losses = jax.lax.scan(body, (w, buffer, jnp.int32(0)), xs)
        return w, buffer, losses

    return run


# -- scenarios: each returns (monitor, memory sink, callback counter, losses [STEPS]) ---------------------------
def sharded_jit(out):
    """jit, inputs sharded over 8 devices: the callback fires once per ring, with the gathered value."""
    schedule, memory, monitor = new_monitor(out)
    counter = CallbackCounter(monitor)
    run = jax.jit(train_scan(monitor, schedule, plain_grad()))
    _, buffer, losses = run(jnp.zeros(4), monitor.graph_buffer(["loss"]), SHARDED_DATA)
    monitor.graph_drain(buffer)
    return monitor, memory, counter, losses


def pmap(out, capacity=CAPACITY):
    """pmap over 8 devices, replicated carry: the callback fires once per ring on every device (8x)."""
    schedule, memory, monitor = new_monitor(out, capacity)
    counter = CallbackCounter(monitor)
    run = jax.pmap(train_scan(monitor, schedule, plain_grad("d")), axis_name="d", in_axes=(None, None, 1))
    per_device = DATA.reshape(STEPS, 8, 8, 4)  # [steps, device, per-device batch, features]
    _, buffer, losses = run(jnp.zeros(4), monitor.graph_buffer(["loss"]), per_device)
    monitor.graph_drain(buffer)  # the stacked per-device copies, as pmap returns them
    return monitor, memory, counter, losses[0]


def pmap_every_step(out):
    """pmap with graph_capacity=1: 8 devices fire a callback at every step, concurrently, from 8 XLA threads."""
    return pmap(out, capacity=1)


def shard_map(out):
    """shard_map over 8 devices, buffer replicated (out_specs P()): 8 firings per ring."""
    schedule, memory, monitor = new_monitor(out)
    counter = CallbackCounter(monitor)
    run = jax.jit(jax.shard_map(train_scan(monitor, schedule, plain_grad("d")), mesh=MESH,
                                in_specs=(P(), P(), P(None, "d")), out_specs=(P(), P(), P())))
    _, buffer, losses = run(jnp.zeros(4), monitor.graph_buffer(["loss"]), SHARDED_DATA)
    monitor.graph_drain(buffer)
    return monitor, memory, counter, losses


def remat_outside(out):
    """grad of jax.checkpoint(loss), recorded in the step function outside the grad (the usual place)."""
    schedule, memory, monitor = new_monitor(out)
    counter = CallbackCounter(monitor)

    def grad_step(w, x):
        return jax.value_and_grad(jax.checkpoint(loss_fn))(w, x)

    run = jax.jit(train_scan(monitor, schedule, grad_step))
    _, buffer, losses = run(jnp.zeros(4), monitor.graph_buffer(["loss"]), SHARDED_DATA)
    monitor.graph_drain(buffer)
    return monitor, memory, counter, losses


def remat_inside(out):
    """graph_record inside the checkpointed loss function (buffer threaded out as aux): the forward pass is
    replayed in the backward pass, so the callback fires twice per ring."""
    schedule, memory, monitor = new_monitor(out)
    counter = CallbackCounter(monitor)

    def body(carry, x):
        w, buffer, step = carry

        @jax.checkpoint
        def recorded_loss(w, buffer):
            loss = loss_fn(w, x)
            return loss, monitor.graph_record(buffer, step, loss=loss)

        (loss, buffer), grad = jax.value_and_grad(recorded_loss, has_aux=True)(w, buffer)
        return (w - schedule.lr_at(step) * grad, buffer, step + 1), loss

    @jax.jit
    def run(w, buffer, xs):
        (w, buffer, _), losses = jax.lax.scan(body, (w, buffer, jnp.int32(0)), xs)
        return w, buffer, losses

    _, buffer, losses = run(jnp.zeros(4), monitor.graph_buffer(["loss"]), SHARDED_DATA)
    monitor.graph_drain(buffer)
    return monitor, memory, counter, losses


def brainstate_sharded(out):
    """brainstate jit + for_loop + graph_step on 8-device sharded data, three dispatches, each followed at once
    by monitor.flush() or monitor.close() without waiting for the computation (multi-device dispatch is
    asynchronous: the computation may still be in a host callback, waiting for the monitor's lock)."""
    import brainstate

    schedule, memory, monitor = new_monitor(out)
    _, train = brainstate_trainer(schedule, loss_fn)
    monitor.init_graph_state(["loss"])
    counter = CallbackCounter(monitor)

    def train_step(x):
        loss = train(x)
        monitor.graph_step(loss=loss)
        return loss

    @brainstate.transform.jit
    def run(xs):
        return brainstate.transform.for_loop(train_step, xs)

    losses = []
    for dispatch in range(3):
        losses.append(run(SHARDED_DATA))
        if dispatch < 2:  # the third is closed at once by main(): close() must not deadlock either
            monitor.flush()  # used to deadlock: fetched the state under the lock the in-flight callbacks wait for
    return monitor, memory, counter, jnp.concatenate(losses)


def brainstate_chunked(out):
    """``monitor.for_loop`` (brainstate, no callback) on 8-device sharded data in chunks of 16 steps."""
    schedule, memory, monitor = new_monitor(out)
    losses = for_loop_with_twin(monitor, schedule, WarmupCosineSchedule(*SCHEDULE), loss_fn, SHARDED_DATA)
    return monitor, memory, None, losses


def host_sharded(out):
    """Host path: a Python loop around a jitted step on sharded data, monitor.step(loss=<replicated array>)."""
    schedule, memory, monitor = new_monitor(out, flush_every=8)

    @jax.jit
    def train_step(w, t):
        loss, grad = jax.value_and_grad(loss_fn)(w, SHARDED_DATA[t])
        return w - schedule.lr_at(t) * grad, loss

    w, losses = jnp.zeros(4), []
    for t in range(STEPS):
        w, loss = train_step(w, t)
        monitor.step(loss=loss)
        losses.append(loss)
    return monitor, memory, None, jnp.stack(losses)


# brainstate_sharded last: if it hangs, the watchdog ends the process and only its result is missing.
SCENARIOS = {f.__name__: f for f in (sharded_jit, pmap, pmap_every_step, shard_map, remat_outside, remat_inside,
                                      host_sharded, brainstate_chunked, brainstate_sharded)}


def main(out_root: Path, names: list[str]) -> None:
    for name in names or list(SCENARIOS):
        out = out_root / name
        out.mkdir(parents=True, exist_ok=True)
        faulthandler.dump_traceback_later(WATCHDOG_S, exit=True)
        start = time.perf_counter()
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                monitor, memory, counter, losses = SCENARIOS[name](out)
                monitor.close()
        except Exception:  # noqa: BLE001 - reported to the test, which fails this scenario only
            (out / "result.json").write_text(json.dumps({"scenario": name, "error": traceback.format_exc()}))
            print(f"{name}: FAILED", flush=True)
            continue
        finally:
            faulthandler.cancel_dump_traceback_later()
        seconds = time.perf_counter() - start
        result = {
            "scenario": name,
            "seconds": seconds,
            "scalars": memory.scalars,
            "events": memory.events,
            "step_count": monitor.step_count,
            "losses": np.asarray(losses, np.float64).tolist(),
            "callbacks": None if counter is None else counter.report(),
            "closed": memory.closed,
            "warnings": [f"{w.category.__name__}: {w.message}" for w in caught],
        }
        (out / "result.json").write_text(json.dumps(result))
        print(f"{name}: {seconds:.2f} s", flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2:])
