"""One of two ``jax.distributed`` processes (2 CPU devices each, coordinator on 127.0.0.1 only).

Run by tests/test_multidevice.py as ``python distributed_worker.py PROCESS_ID PORT OUT_ROOT``. Each process trains
the same small model on data sharded over the 4 global devices, in five monitored loops:

* ``host``: a Python loop around a jitted step, ``monitor.step(loss=...)`` (flushes every 8 steps);
* ``graph_jit``: ``lax.scan`` under jit over the global mesh, ``graph_record`` (callback fires in process 0 only);
* ``graph_shard_map``: ``lax.scan`` under shard_map over the global mesh, with a cross-process ``pmean``
  (callback fires on every device of every process);
* ``chunked_scan``: ``monitor.scan`` over the global data in chunks of 16 steps (no callback: the per-step losses
  leave as outputs, read in every process at the same point);
* ``chunked_for_loop``: ``monitor.for_loop`` (brainstate, a braintools SGD whose schedule the monitor steps) over
  the global data in chunks of 16 steps.

Every monitor gets a ``JsonlSink``, a ``TensorBoardSink`` and (host and graph_shard_map, which also save the
monitor's state every ``SAVE_EVERY`` steps) an offline ``WandbSink``, all under
``OUT_ROOT/p<PROCESS_ID>/sinks/<loop>/`` (the state file in ``.../<loop>/state``); only process 0 may leave files
there. What each process saw goes to ``OUT_ROOT/p<PROCESS_ID>/report.json``.
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from pathlib import Path

PROCESS_ID, PORT, OUT_ROOT = int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
os.environ["JAX_PLATFORMS"] = "cpu"
sys.path.insert(0, str(Path(__file__).resolve().parent))

import jax  # noqa: E402

jax.distributed.initialize(
    coordinator_address=f"127.0.0.1:{PORT}", coordinator_bind_address=f"127.0.0.1:{PORT}",
    num_processes=2, process_id=PROCESS_ID, initialization_timeout=40, shutdown_timeout_seconds=20,
)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P  # noqa: E402

from common import CallbackCounter, JsonlSink, for_loop_with_twin  # noqa: E402
from lrmon import LRMonitor, WarmupCosineSchedule  # noqa: E402
from lrmon.integrations.tensorboard import TensorBoardSink  # noqa: E402

STEPS = 40
CAPACITY = 7
SAVE_EVERY = 16  # state saves (host and graph_shard_map loops): each must reach every tracker once
SCHEDULE = (0.1, 5, 30)

assert jax.process_index() == PROCESS_ID and jax.process_count() == 2, (jax.process_index(), jax.process_count())
assert jax.device_count() == 4 and jax.local_device_count() == 2, jax.devices()
MESH = Mesh(np.array(jax.devices()), ("d",))
DATA_NP = np.random.default_rng(0).normal(size=(STEPS, 64, 4)).astype(np.float32)  # the same in both processes
SHARDING = NamedSharding(MESH, P(None, "d"))
DATA = jax.make_array_from_callback(DATA_NP.shape, SHARDING, lambda index: DATA_NP[index])
OUT = OUT_ROOT / f"p{PROCESS_ID}"


def loss_fn(w, x):
    return jnp.mean((x @ w - 1.0) ** 2)


def new_monitor(loop: str, with_wandb: bool, **kwargs):
    sinks_dir = OUT / "sinks" / loop
    sinks = {"jsonl": JsonlSink(sinks_dir / "records.jsonl"), "tensorboard": TensorBoardSink(sinks_dir / "tb")}
    if with_wandb:
        from lrmon.integrations.wandb import WandbSink

        sinks["wandb"] = WandbSink(dir=sinks_dir / "wandb", mode="offline", project="lrmon-multidevice",
                                   name=f"{loop}-p{PROCESS_ID}")
    schedule = WarmupCosineSchedule(*SCHEDULE)
    monitor = LRMonitor(schedule, list(sinks.values()), state_dir=sinks_dir / "state", **kwargs)
    return schedule, monitor, sinks


def scan_body(monitor, schedule, axis=None):
    def body(carry, x):
        w, buffer, step = carry
        loss, grad = jax.value_and_grad(loss_fn)(w, x)
        if axis is not None:
            loss, grad = jax.lax.pmean(loss, axis), jax.lax.pmean(grad, axis)
        buffer = monitor.graph_record(buffer, step, loss=loss)
        return (w - schedule.lr_at(step) * grad, buffer, step + 1), loss

    def run(w, buffer, xs):
        (w, buffer, _), losses = jax.lax.scan(body, (w, buffer, jnp.int32(0)), xs)
        return w, buffer, losses

    return run


def host():
    schedule, monitor, sinks = new_monitor("host", True, flush_every=8, save_every=SAVE_EVERY)

    @jax.jit
    def train_step(w, xs, t):  # global arrays must be arguments, never closed over
        loss, grad = jax.value_and_grad(loss_fn)(w, xs[t])
        return w - schedule.lr_at(t) * grad, loss

    w = jnp.zeros(4)
    losses = []
    for t in range(STEPS):
        w, loss = train_step(w, DATA, t)
        monitor.step(loss=loss)
        losses.append(loss)
    return monitor, sinks, None, losses


def graph_jit():
    schedule, monitor, sinks = new_monitor("graph_jit", False, graph_capacity=CAPACITY)
    counter = CallbackCounter(monitor)
    _, buffer, losses = jax.jit(scan_body(monitor, schedule))(jnp.zeros(4), monitor.graph_buffer(["loss"]), DATA)
    monitor.graph_drain(buffer)
    return monitor, sinks, counter, losses


def graph_shard_map():
    schedule, monitor, sinks = new_monitor("graph_shard_map", True, graph_capacity=CAPACITY, save_every=SAVE_EVERY)
    counter = CallbackCounter(monitor)
    run = jax.jit(jax.shard_map(scan_body(monitor, schedule, "d"), mesh=MESH, in_specs=(P(), P(), P(None, "d")),
                                out_specs=(P(), P(), P())))
    _, buffer, losses = run(jnp.zeros(4), monitor.graph_buffer(["loss"]), DATA)
    monitor.graph_drain(buffer)
    return monitor, sinks, counter, losses


def chunked_scan():
    schedule, monitor, sinks = new_monitor("chunked_scan", False)

    def body(carry, x):
        w, step = carry
        loss, grad = jax.value_and_grad(loss_fn)(w, x)
        return (w - schedule.lr_at(step) * grad, step + 1), {"loss": loss}

    start = (jnp.zeros(4), jnp.int32(0))
    monitor.scan(body, start, DATA, chunk=16)
    _, reference = jax.jit(lambda carry, xs: jax.lax.scan(body, carry, xs))(start, DATA)  # the same training
    return monitor, sinks, None, reference["loss"]


def chunked_for_loop():
    schedule, monitor, sinks = new_monitor("chunked_for_loop", False)
    losses = for_loop_with_twin(monitor, schedule, WarmupCosineSchedule(*SCHEDULE), loss_fn, DATA)
    return monitor, sinks, None, losses


def main() -> None:
    report = {"process_index": jax.process_index(), "loops": {}}
    for loop in (host, graph_jit, graph_shard_map, chunked_scan, chunked_for_loop):
        start = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            monitor, sinks, counter, losses = loop()
            monitor.close()
        report["loops"][loop.__name__] = {
            "seconds": time.perf_counter() - start,
            "step_count": monitor.step_count,
            "emitted_events": monitor.emitted_events,
            "losses": [float(v) for v in jax.device_get(losses)],
            "callbacks": None if counter is None else counter.report(),
            "sinks_opened": {
                "jsonl": sinks["jsonl"].info is not None,
                "tensorboard": sinks["tensorboard"].event_file is not None,
                **({"wandb": sinks["wandb"].run is not None} if "wandb" in sinks else {}),
            },
            "warnings": [f"{w.category.__name__}: {w.message}" for w in caught],
            "wandb_run_dir": str(sinks["wandb"].run_dir) if "wandb" in sinks and sinks["wandb"].run_dir else None,
        }
        print(f"p{PROCESS_ID} {loop.__name__}: {report['loops'][loop.__name__]['seconds']:.2f} s", flush=True)
    report["wandb_imported"] = "wandb" in sys.modules
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "report.json").write_text(json.dumps(report))
    jax.distributed.shutdown()


if __name__ == "__main__":
    main()
