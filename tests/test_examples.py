"""Each example runs (as a user runs it: a subprocess, small --steps) and leaves the files it promises.

The examples are started together, once per module, and each test waits for its own; TensorBoard files are read
back with TensorBoard's ``EventAccumulator`` in a helper process, W&B runs with wandb's own reader.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lrmon.curve import CurveConfig
from lrmon.integrations.wandb import read_offline_run
from lrmon.state import read_state, wandb_run_dirs

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
SCHEDULE_EVENTS = ("warmup_start", "warmup_end", "cosine_start", "end")

#: name -> (arguments after --out, schedule of the run: base_lr, warmup, total, warmup_start_lr, eta_min)
RUNS = {
    "quickstart": (["--steps", "120"], (3e-3, 12, 120, 1e-5, 1e-5)),  # the README's main job, via scripts/demo.sh
    "optax_loop": (["--steps", "120"], (3e-3, 12, 120, 0.0, 3e-5)),
    # W&B is checked with the other examples: the sink is the same, and each W&B run costs seconds of CPU
    "compiled_loop": (["--steps", "120", "--graph-capacity", "32", "--no-wandb"], (3e-3, 12, 120, 0.0, 3e-5)),
    "clu_loop": (["--steps", "100"], (3e-3, 10, 100, 0.0, 3e-5)),
    "preempt_resume": (["--steps", "160"], (3e-3, 16, 160, 0.0, 3e-5)),
}

_READ_TENSORBOARD = r"""
import json, sys, types
sys.modules["tensorboard.compat.notf"] = types.ModuleType("tensorboard.compat.notf")  # read without TensorFlow
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator, STORE_EVERYTHING_SIZE_GUIDANCE
from tensorboard.plugins.custom_scalar import layout_pb2
result = {}
for logdir in sys.argv[1:]:
    acc = EventAccumulator(logdir, size_guidance=STORE_EVERYTHING_SIZE_GUIDANCE)
    acc.Reload()
    tags = acc.Tags()
    layout = {}
    if "custom_scalars__config__" in tags["tensors"]:
        proto = layout_pb2.Layout.FromString(acc.Tensors("custom_scalars__config__")[-1].tensor_proto.string_val[0])
        layout = {c.title: {chart.title: list(chart.multiline.tag) if chart.HasField("multiline")
                            else [series.value for series in chart.margin.series] for chart in c.chart}
                  for c in proto.category}
    result[logdir] = {
        "scalars": {t: [[e.step, e.value] for e in acc.Scalars(t)] for t in tags["scalars"]},
        "texts": {t: [[e.step, e.tensor_proto.string_val[0].decode()] for e in acc.Tensors(t)]
                  for t in tags["tensors"] if t.startswith("lrmon/events/")},
        "layout": layout,
    }
print(json.dumps(result))
"""


def read_tensorboard(*logdirs: Path) -> dict[Path, dict]:
    result = subprocess.run([sys.executable, "-c", _READ_TENSORBOARD, *map(str, logdirs)], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return {Path(k): v for k, v in json.loads(result.stdout).items()}


@pytest.fixture(scope="module")
def example_runs(tmp_path_factory):
    """Start every example at once; ``example_runs(name)`` waits for that one: (out dir, completed process)."""
    base = tmp_path_factory.mktemp("examples")
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "2", "WANDB_SILENT": "true",
           "WANDB_CONFIG_DIR": str(base / "wandb-config"), "WANDB_CACHE_DIR": str(base / "wandb-cache"),
           "WANDB_DATA_DIR": str(base / "wandb-data"), "PYTHONPATH": str(ROOT),
           # one compilation cache for the examples: preempt_resume's second attempt compiles nothing again
           "JAX_COMPILATION_CACHE_DIR": str(base / "jax-cache"), "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
           "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "-1"}
    processes = {}
    for name, (arguments, _) in RUNS.items():
        out = base / name
        if name == "quickstart":  # exactly the README's command, which also sets up (here: reuses) the venv
            command = ["bash", str(ROOT / "scripts" / "demo.sh"), "--out", str(out), *arguments]
        else:
            command = [sys.executable, str(EXAMPLES / f"{name}.py"), "--out", str(out), *arguments]
        processes[name] = (out, subprocess.Popen(command, cwd=base, env=env, stdout=subprocess.PIPE,
                                                 stderr=subprocess.PIPE, text=True))
    finished: dict[str, tuple[Path, subprocess.CompletedProcess]] = {}

    def wait(name: str) -> tuple[Path, subprocess.CompletedProcess]:
        if name not in finished:
            out, process = processes[name]
            try:
                stdout, stderr = process.communicate(timeout=300)
            except subprocess.TimeoutExpired:
                process.kill()
                stdout, stderr = process.communicate()
            finished[name] = (out, subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr))
        return finished[name]

    yield wait
    for _, process in processes.values():
        if process.poll() is None:
            process.kill()
            process.wait()


def check_run(name: str, logdir: Path, records: dict, metrics: tuple[str, ...] = ("loss",),
              resumed_at: int | None = None) -> None:
    """The LR of every step exactly once, equal to the schedule's; the metrics; the events at their steps."""
    base_lr, warmup, total, warmup_start_lr, eta_min = RUNS[name][1]
    config = CurveConfig(base_lr, warmup, total, warmup_start_lr, eta_min)
    scalars, texts = records["scalars"], records["texts"]
    lr = np.asarray(scalars["lr"])
    np.testing.assert_array_equal(lr[:, 0], np.arange(total))  # each step once (a resume purges the overlap)
    np.testing.assert_allclose(lr[:, 1], np.asarray(config.lr_at(np.arange(total)))[:, 0], rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(np.asarray(scalars["lrmon/phase"])[:, 1], config.phase_at(np.arange(total)))
    for metric in metrics:
        values = np.asarray(scalars[metric])
        assert len(values) and np.isfinite(values[:, 1]).all(), metric
    loss = np.asarray(scalars["loss"])
    np.testing.assert_array_equal(loss[:, 0], np.arange(total))
    assert loss[-10:, 1].mean() < loss[:10, 1].mean()  # it trained
    for kind in SCHEDULE_EVENTS:
        steps = {step for step, _ in texts[f"lrmon/events/{kind}"]}
        assert steps == {dict(config.events())[kind]}, (kind, texts[f"lrmon/events/{kind}"])
    if resumed_at is not None:
        assert [step for step, _ in texts["lrmon/events/resume"]] == [resumed_at]
    else:
        assert "lrmon/events/resume" not in texts
    charts = records["layout"]["lrmon"]  # one chart per quantity, each on its own axis
    assert charts["learning rate"] == ["lr"] and charts["loss"] == ["^loss$"] and charts["phase"] == ["lrmon/phase"]


def check_wandb(run_dir: Path, total: int, first_step: int = 0) -> dict:
    run = read_offline_run(run_dir)
    assert run["exit_code"] == 0
    steps = sorted({int(row["trainer/step"]) for row in run["history"] if "lr" in row})
    assert steps == list(range(first_step, total))
    assert any("loss" in row for row in run["history"])
    return run


def printed_paths(stdout: str, marker: str) -> list[Path]:
    return [Path(line.split(marker, 1)[1].split()[0]) for line in stdout.splitlines() if marker in line]


def finished_run(example_runs, name: str) -> tuple[Path, subprocess.CompletedProcess, Path]:
    """Wait for ``name``: it exited 0, printed ``<out>/tensorboard`` as its one logdir, and the run there checks out."""
    out, result = example_runs(name)
    assert result.returncode == 0, result.stderr[-3000:]
    logdir = out / "tensorboard"
    assert printed_paths(result.stdout, "tensorboard --logdir ") == [logdir]
    check_run(name, logdir, read_tensorboard(logdir)[logdir])
    return out, result, logdir


def test_quickstart_main_job(example_runs):
    out, result, logdir = finished_run(example_runs, "quickstart")
    assert read_state(out / "state").step == read_state(logdir).step == 120
    (wandb_dir,) = printed_paths(result.stdout, "wandb sync ")
    run = check_wandb(wandb_dir, 120)
    states = [a for a in run["artifacts"] if a["type"] == "lr-schedule-state"]
    assert sorted(a["metadata"]["step"] for a in states) == [30, 60, 90, 120]
    assert "[lrmon] warmup_end at step 11" in result.stderr  # the console sink's event line
    check = subprocess.run([sys.executable, str(ROOT / "scripts" / "check_main_job.py"), str(out), "--steps", "120"],
                           capture_output=True, text=True, timeout=180)  # what CI checks after the main job
    assert check.returncode == 0, check.stdout[-2000:] + check.stderr[-2000:]


def test_optax_loop(example_runs):
    out, result, logdir = finished_run(example_runs, "optax_loop")
    assert read_state(logdir).step == 120  # the monitor's state, kept with the run
    (wandb_dir,) = printed_paths(result.stdout, "wandb sync ")
    assert wandb_dir.parent == out / "wandb" / "wandb"
    check_wandb(wandb_dir, 120)
    assert "[lrmon] cosine_start at step 12" in result.stderr  # the console sink's event line


def test_compiled_loop_scan_and_brainstate(example_runs):
    out, result = example_runs("compiled_loop")
    assert result.returncode == 0, result.stderr[-3000:]
    logdirs = [out / "scan" / "tensorboard", out / "brainstate" / "tensorboard"]
    assert printed_paths(result.stdout, "tensorboard --logdir ")[:2] == logdirs
    records = read_tensorboard(*logdirs)
    for logdir in logdirs:
        check_run("compiled_loop", logdir, records[logdir])
    assert "[scan] TensorBoard logdir" in result.stdout and "[brainstate] TensorBoard logdir" in result.stdout
    assert "wandb sync" not in result.stdout and not (out / "scan" / "wandb").exists()  # --no-wandb


def test_clu_loop(example_runs):
    out, result = example_runs("clu_loop")
    assert result.returncode == 0, result.stderr[-3000:]
    logdir = out / "tensorboard"
    records = read_tensorboard(logdir)[logdir]
    check_run("clu_loop", logdir, records, metrics=("loss", "eval_loss", "steps_per_sec"))
    assert [step for step, _ in records["scalars"]["eval_loss"]][-1] == 99
    assert records["layout"]["lrmon"]["eval_loss"] == ["^eval_loss$"]
    (wandb_dir,) = printed_paths(result.stdout, "wandb sync ")
    run = check_wandb(wandb_dir, 100)
    assert any("eval_loss" in row for row in run["history"])


def test_preempt_resume(example_runs):
    """orbax checkpoints every 40 steps, the monitor saves every 53, attempt 1 is killed after step 90: attempt 2
    restores orbax's latest committed step (80, or 40 when the async save of 80 had not committed yet)."""
    out, result = example_runs("preempt_resume")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "attempt 1: killed (SIGKILL) after step 90" in result.stdout
    restored = int(result.stdout.split("attempt 2: restored orbax step ")[1].split(",")[0])
    assert restored in (40, 80)
    logdir = out / "tensorboard"
    assert len(list(logdir.glob("events.out.tfevents.*"))) == 2  # one event file per attempt
    check_run("preempt_resume", logdir, read_tensorboard(logdir)[logdir], resumed_at=restored)
    state = read_state(logdir)
    assert state.step == 160 and ("resume", restored) in state.emitted_events
    runs = wandb_run_dirs(out / "wandb")  # in start order
    assert len(runs) == 2 and len({path.stem for run in runs for path in run.glob("run-*.wandb")}) == 1  # one id
    steps = [int(row["_step"]) for run in runs for row in read_offline_run(run)["history"] if "lr" in row]
    assert steps == list(range(160))  # over both attempts, in the order wandb sync uploads them: each step once
