"""Multi-device and multi-process runs (issue 7): every step is recorded once, every event once, by process 0 only.

Everything runs in subprocesses, so this test process keeps its single CPU device:

* ``_multidevice/sharded_worker.py``: one process with 8 virtual CPU devices runs the in-graph path under a jit with
  sharded inputs, ``pmap`` (also with a callback at every step on all 8 devices at once), ``shard_map``, ``grad`` of
  ``jax.checkpoint`` (recorded outside and inside the checkpointed function), brainstate ``for_loop`` under a sharded
  jit (flushed/closed while the computation is in flight), ``monitor.for_loop`` (brainstate, no callback), and the
  host path on sharded data. Each run writes to a ``MemorySink`` (dumped to JSON) and a ``TensorBoardSink`` logdir,
  read back here with ``EventAccumulator``.
* ``_multidevice/distributed_worker.py`` twice: ``jax.distributed`` with 2 processes x 2 CPU devices on
  127.0.0.1, five monitored loops, each process with its own output directory holding a file sink, TensorBoard and
  offline W&B. Process 0's directory must hold exactly one run per loop with every step once; process 1's must stay
  empty.

All three processes start together (the machine has 2 cores; most of their time is imports) and are killed if they
outlive their deadline (``LRMON_MULTIDEVICE_TIMEOUT_SCALE`` multiplies the deadlines on slow machines).
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent / "_multidevice"
SCALE = float(os.environ.get("LRMON_MULTIDEVICE_TIMEOUT_SCALE", "1"))
SHARDED_DEADLINE_S = 100 * SCALE
DISTRIBUTED_DEADLINE_S = 60 * SCALE

STEPS = 40  # what both workers run (graph_capacity 7, so graph_drain always has rows left)
EXPECTED_EVENTS = [(0, "warmup_start"), (4, "warmup_end"), (5, "cosine_start"), (29, "end"), (30, "overrun")]
SCHEDULE = (0.1, 5, 30)

#: Sharded-worker scenario -> how often the host callback fires per full ring (what the monitor must deduplicate).
FIRINGS_PER_RING = {
    "sharded_jit": 1,  # jit over 8 devices: once, with the gathered value
    "pmap": 8,  # once per device
    "pmap_every_step": 8,
    "shard_map": 8,
    "remat_outside": 1,  # recorded outside grad: the checkpoint does not replay it
    "remat_inside": 2,  # recorded inside the checkpointed function: replayed in the backward pass
    "brainstate_sharded": 1,
    "host_sharded": None,  # host path: no callback
    "brainstate_chunked": None,  # monitor.for_loop: per-step outputs, no callback
}
#: Full rings sent through the callback (others: STEPS // 7 = 5); brainstate: 3 dispatches of STEPS, each drained.
RINGS = {"pmap_every_step": STEPS, "brainstate_sharded": 3 * (STEPS // 7)}
STEPS_RUN = {"brainstate_sharded": 3 * STEPS}


def _load_common() -> Any:
    spec = importlib.util.spec_from_file_location("lrmon_multidevice_common", HERE / "common.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class _Group:
    """Subprocesses started together, each in its own session so that a kill also ends what they started."""

    def __init__(self, name: str, deadline_s: float) -> None:
        self.name = name
        self.deadline = time.monotonic() + deadline_s
        self.deadline_s = deadline_s
        self.procs: list[tuple[subprocess.Popen, Path]] = []

    def start(self, args: list[str], env: dict[str, str], log: Path, nice: int = 0) -> None:
        handle = open(log, "wb")
        proc = subprocess.Popen([sys.executable, *args], env=env, stdout=handle, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                preexec_fn=(lambda: os.nice(nice)) if nice else None)
        handle.close()
        self.procs.append((proc, log))

    def wait(self) -> None:
        """Wait for every process; at the deadline kill them all. ``problem`` then says what went wrong."""
        self.problem = ""
        for proc, _ in self.procs:
            try:
                proc.wait(timeout=max(self.deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                self.kill()
                self.problem = f"{self.name}: still running after {self.deadline_s:.0f} s, killed"
                break
        else:
            codes = [proc.returncode for proc, _ in self.procs]
            if any(codes):
                self.problem = f"{self.name}: exit codes {codes}"
        self.seconds = self.deadline_s - (self.deadline - time.monotonic())
        if self.problem:
            self.problem += "\n" + self.output()

    def kill(self) -> None:
        for proc, _ in self.procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)  # the session this test started for that process
                except ProcessLookupError:
                    pass
                proc.wait()

    def output(self) -> str:
        return "\n".join(f"--- {log.name} (last 4000 chars)\n{log.read_bytes()[-4000:].decode(errors='replace')}"
                         for _, log in self.procs)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Start the sharded worker and both distributed processes at once; wait for all; return their outputs."""
    root = tmp_path_factory.mktemp("multidevice")
    env = {key: value for key, value in os.environ.items() if not key.startswith(("XLA_", "JAX_", "WANDB_"))}
    env.update(JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1", WANDB_MODE="offline", WANDB_SILENT="true",
               WANDB_CONFIG_DIR=str(root / "wandb-config"), WANDB_CACHE_DIR=str(root / "wandb-cache"),
               WANDB_DATA_DIR=str(root / "wandb-data"), WANDB_DIR=str(root / "wandb-default"))
    distributed = _Group("distributed_worker", DISTRIBUTED_DEADLINE_S)
    port = _free_port()
    for process_id in (0, 1):
        distributed.start([str(HERE / "distributed_worker.py"), str(process_id), str(port), str(root / "dist")],
                          env, root / f"dist-p{process_id}.log")
    sharded = _Group("sharded_worker", SHARDED_DEADLINE_S)  # niced: the two distributed processes come first
    sharded.start([str(HERE / "sharded_worker.py"), str(root / "sharded")], env, root / "sharded.log", nice=10)
    try:
        distributed.wait()
        # Imported while the sharded worker runs: lrmon, tensorboard's event reader, and the TensorFlow that
        # tensorboard loads lazily at the first read where TensorFlow is installed (~5-15 s here, mostly disk).
        import lrmon  # noqa: F401
        from tensorboard.backend.event_processing import event_accumulator
        from tensorboard.compat import tf as lazy_tf

        getattr(lazy_tf, "__version__", None)
        sharded.wait()
    finally:
        sharded.kill()
        distributed.kill()
    print(f"\nmultidevice workers (started together): distributed {distributed.seconds:.1f} s, "
          f"sharded {sharded.seconds:.1f} s")
    # A failed or hung group fails only its own tests (the sharded worker's finished scenarios still count).
    return {"root": root, "accumulator": event_accumulator, "common": _load_common(),
            "sharded_problem": sharded.problem, "distributed_problem": distributed.problem}


def _read_tensorboard(runs: dict, logdir: Path) -> dict[str, Any]:
    """Scalars (tag -> steps) and text events (tag -> steps) of a logdir, plus its event files."""
    module = runs["accumulator"]
    accumulator = module.EventAccumulator(str(logdir), size_guidance=module.STORE_EVERYTHING_SIZE_GUIDANCE).Reload()
    tags = accumulator.Tags()
    return {
        "files": sorted(p.name for p in logdir.glob("events.out.tfevents.*")),
        "scalars": {tag: [e.step for e in accumulator.Scalars(tag)] for tag in tags["scalars"]},
        "scalar_values": {tag: [e.value for e in accumulator.Scalars(tag)] for tag in tags["scalars"]},
        "events": sorted((e.step, tag.rsplit("/", 1)[1]) for tag in tags["tensors"]
                         if tag.startswith("lrmon/events/") for e in accumulator.Tensors(tag)),
    }


def _lrmon_warnings(caught: list[str]) -> list[str]:
    """lrmon's own warnings (a sink disabled, records that could not be written)."""
    return [text for text in caught if "lrmon" in text]


def _sharded_result(runs: dict, scenario: str) -> dict:
    path = runs["root"] / "sharded" / scenario / "result.json"
    assert path.exists(), f"no result for {scenario}:\n{runs['sharded_problem']}"
    result = json.loads(path.read_text())
    assert "error" not in result, result["error"]
    return result


def _lr_at(steps: np.ndarray) -> np.ndarray:
    from lrmon import WarmupCosineSchedule

    return np.asarray(WarmupCosineSchedule(*SCHEDULE).lr_at(np.asarray(steps)), np.float64)[:, 0]  # one group


# -- one process, 8 devices --------------------------------------------------------------------------------------
@pytest.mark.parametrize("scenario", list(FIRINGS_PER_RING))
def test_eight_devices_every_step_once_in_memory_and_tensorboard(runs, scenario):
    out = runs["root"] / "sharded" / scenario
    result = _sharded_result(runs, scenario)
    steps = list(range(STEPS_RUN.get(scenario, STEPS)))
    scalars = {tag: [tuple(pair) for pair in pairs] for tag, pairs in result["scalars"].items()}

    assert result["step_count"] == len(steps) and result["closed"]
    assert _lrmon_warnings(result["warnings"]) == []
    for tag in ("lr", "loss", "lrmon/phase"):
        assert [s for s, _ in scalars[tag]] == steps, tag
    assert [tuple(e) for e in result["events"]] == [e for e in EXPECTED_EVENTS if e[0] < len(steps)]
    assert len(result["losses"]) == len(steps)
    np.testing.assert_allclose([v for _, v in scalars["lr"]], _lr_at(np.asarray(steps)), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose([v for _, v in scalars["loss"]], result["losses"], rtol=1e-6)  # the graph's loss

    board = _read_tensorboard(runs, out / "tb")
    assert len(board["files"]) == 1, board["files"]
    for tag in ("lr", "loss", "lrmon/phase"):
        assert board["scalars"][tag] == steps, tag
    np.testing.assert_allclose(board["scalar_values"]["lr"], _lr_at(np.asarray(steps)), rtol=1e-6, atol=1e-9)
    assert board["events"] == [e for e in EXPECTED_EVENTS if e[0] < len(steps)]


@pytest.mark.parametrize("scenario", [name for name, n in FIRINGS_PER_RING.items() if n is not None])
def test_eight_devices_duplicates_were_really_delivered(runs, scenario):
    """The records above are exact although the callback fired this often, concurrently, with equal payloads."""
    callbacks = _sharded_result(runs, scenario)["callbacks"]
    rings = RINGS.get(scenario, STEPS // 7)
    assert callbacks["rings"] == rings
    assert callbacks["multiplicities"] == [FIRINGS_PER_RING[scenario]]
    assert callbacks["firings"] == rings * FIRINGS_PER_RING[scenario]
    assert callbacks["identical_payloads"]
    if FIRINGS_PER_RING[scenario] == 8:
        assert callbacks["threads"] > 1  # from several XLA threads, serialized by the monitor's lock


# -- jax.distributed: 2 processes x 2 devices ---------------------------------------------------------------------
LOOPS = ("host", "graph_jit", "graph_shard_map", "chunked_scan", "chunked_for_loop")
WANDB_LOOPS = ("host", "graph_shard_map")


def _report(runs: dict, process_id: int) -> dict:
    assert not runs["distributed_problem"], runs["distributed_problem"]
    return json.loads((runs["root"] / "dist" / f"p{process_id}" / "report.json").read_text())


@pytest.mark.parametrize("loop", LOOPS)
def test_distributed_process_0_writes_one_run_with_every_step_once(runs, loop):
    assert not runs["distributed_problem"], runs["distributed_problem"]
    sinks = runs["root"] / "dist" / "p0" / "sinks" / loop
    records = runs["common"].read_jsonl(sinks / "records.jsonl")
    assert records["calls"][:2] == ["open", "write_config"] and records["calls"][-1] == "close"
    assert records["calls"].count("open") == 1
    for tag in ("lr", "loss", "lrmon/phase"):
        assert [s for s, _ in records["scalars"][tag]] == list(range(STEPS)), tag
    assert records["events"] == EXPECTED_EVENTS
    report = _report(runs, 0)["loops"][loop]
    np.testing.assert_allclose([v for _, v in records["scalars"]["loss"]], report["losses"], rtol=1e-6)

    board = _read_tensorboard(runs, sinks / "tb")
    assert len(board["files"]) == 1, board["files"]
    assert board["scalars"]["lr"] == list(range(STEPS)) and board["scalars"]["loss"] == list(range(STEPS))
    assert board["events"] == EXPECTED_EVENTS

    if loop in WANDB_LOOPS:
        from lrmon.integrations.wandb import read_offline_run

        run_dirs = sorted((sinks / "wandb" / "wandb").glob("offline-run-*"))
        assert len(run_dirs) == 1, run_dirs
        run = read_offline_run(run_dirs[0])
        assert run["exit_code"] == 0
        history = run["history"]
        assert [row["trainer/step"] for row in history if "lr" in row] == list(range(STEPS))
        events = sorted((row["trainer/step"], key.rsplit("/", 1)[1]) for row in history for key in row
                        if key.startswith("lrmon/event/"))
        assert events == EXPECTED_EVENTS


@pytest.mark.parametrize("loop", WANDB_LOOPS)
def test_distributed_one_state_artifact_per_save(runs, loop):
    """Every state save of process 0 reaches W&B as exactly one artifact version and TensorBoard's logdir once;
    duplicate callbacks (2 devices per process) and process 1 add none."""
    assert not runs["distributed_problem"], runs["distributed_problem"]
    from lrmon.integrations.wandb import read_offline_run

    sinks = runs["root"] / "dist" / "p0" / "sinks" / loop
    saves = runs["common"].read_jsonl(sinks / "records.jsonl")["saves"]
    assert saves and saves == sorted(set(saves)) and saves[-1] == STEPS
    run = read_offline_run(next((sinks / "wandb" / "wandb").glob("offline-run-*")))
    state_artifacts = [a for a in run["artifacts"] if a["type"] == "lr-schedule-state"]
    assert sorted(a["metadata"]["step"] for a in state_artifacts) == saves
    for artifact in state_artifacts:
        assert f"step-{artifact['metadata']['step']}" in artifact["aliases"]
    assert (sinks / "tb" / "lrmon_state.json").is_file() and (sinks / "state" / "lrmon_state.json").is_file()


def test_distributed_process_1_counts_steps_and_writes_nothing(runs):
    assert not runs["distributed_problem"], runs["distributed_problem"]
    p1_sinks = runs["root"] / "dist" / "p1" / "sinks"
    left = [str(p.relative_to(p1_sinks)) for p in p1_sinks.rglob("*")] if p1_sinks.exists() else []
    assert left == []
    report, report0 = _report(runs, 1), _report(runs, 0)
    assert report["process_index"] == 1 and report0["process_index"] == 0
    assert not report["wandb_imported"]  # the W&B sink was never opened: no wandb.init, no wandb-core
    for loop in LOOPS:
        seen = report["loops"][loop]
        assert not any(seen["sinks_opened"].values()), (loop, seen["sinks_opened"])
        assert all(report0["loops"][loop]["sinks_opened"].values())
        assert seen["step_count"] == STEPS
        assert _lrmon_warnings(seen["warnings"]) == []  # e.g. no sink disabled for being flushed unopened
        assert _lrmon_warnings(report0["loops"][loop]["warnings"]) == []
        assert seen["emitted_events"] == report0["loops"][loop]["emitted_events"] == dict(
            (kind, step) for step, kind in EXPECTED_EVENTS)
    # Where the in-graph callback fires: jit over the global mesh, once, in process 0 only; shard_map on every
    # device of every process (2 per process), deduplicated by each process's monitor.
    assert report0["loops"]["graph_jit"]["callbacks"]["multiplicities"] == [1]
    assert report["loops"]["graph_jit"]["callbacks"]["firings"] == 0
    for rep in (report0, report):
        assert rep["loops"]["graph_shard_map"]["callbacks"]["multiplicities"] == [2]
