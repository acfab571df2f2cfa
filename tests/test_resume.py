"""Resume as real jobs do it: SIGKILL at any moment (construction, mid-step, inside a save), the model restored at
its own checkpoint step, the monitor resumed there from each kind of source in turn; then every tracker is read
back with its own reader and counted.

Checked after every chain of kills: TensorBoard (classic ``EventAccumulator`` and the UI's
``plugin_event_accumulator``) and W&B (every attempt directory of the one run id, in the order ``wandb sync``
uploads them) hold every train step exactly once, with the LR bit-identical to an uninterrupted run and equal to
the LR the optimizer applied; each schedule event is held once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from _trackers import accumulator
from lrmon.integrations.wandb import inspect_records
from lrmon.state import StateError, read_state, wandb_run_dirs

WORKER = Path(__file__).parent / "_resume" / "train_worker.py"
STEPS, SAVE_EVERY, CKPT_EVERY = 200, 25, 30  # the model's checkpoints are on a cadence of their own
SOURCES = ("ckpt", "tensorboard", "wandb", "state")
EXPECTED_EVENTS = {"warmup_start": 0, "warmup_end": 39, "cosine_start": 40, "end": 199}


def worker_env(out: Path) -> dict[str, str]:
    return {**os.environ, "WANDB_SILENT": "true", "WANDB_MODE": "offline", "WANDB_DIR": str(out),
            "WANDB_DATA_DIR": str(out / "wandb-data"), "WANDB_CACHE_DIR": str(out / "wandb-cache"),
            "WANDB_CONFIG_DIR": str(out / "wandb-config"), "JAX_PLATFORMS": "cpu"}


def start_worker(out: Path, *args: str) -> subprocess.Popen:
    command = [sys.executable, str(WORKER), "--out", str(out), "--steps", str(STEPS), "--save-every",
               str(SAVE_EVERY), "--ckpt-every", str(CKPT_EVERY), *args]
    return subprocess.Popen(command, env=worker_env(out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen, kill_after: float | None = None) -> subprocess.CompletedProcess:
    """Wait for the worker; with ``kill_after``, SIGKILL it that many seconds after its start if still running."""
    if kill_after is not None:
        try:
            process.wait(timeout=kill_after)
        except subprocess.TimeoutExpired:
            process.kill()
    stdout, stderr = process.communicate(timeout=240)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def run_chain(out: Path, kills: list[tuple[str, float | int]]) -> list[subprocess.CompletedProcess]:
    """Attempts until one finishes: each kill is ("time", seconds after start) or ("step", SIGKILL after that
    step) or ("save", SIGKILL inside the first state save at or after that step); attempt k > 1 resumes from
    ``SOURCES[k % 4]`` at the model's checkpoint step."""
    results = []
    for attempt in range(len(kills) + 1):
        resume = ["--resume", SOURCES[attempt % len(SOURCES)]] if attempt else []
        kind, when = kills[attempt] if attempt < len(kills) else ("none", None)
        extra = {"step": ["--crash-at", str(when)], "save": ["--crash-at", str(when), "--crash-in-save"]}.get(kind, [])
        sleep = ["--step-sleep", "0.01"] if kind == "time" else []
        result = finish(start_worker(out, *resume, *extra, *sleep), when if kind == "time" else None)
        results.append(result)
        if result.returncode == 0:
            return results
        assert result.returncode == -9, result.stderr[-3000:]
    raise AssertionError(f"no attempt finished: {[r.returncode for r in results]}")


def applied_lrs(out: Path) -> dict[int, float]:
    """The LR the optimizer applied at each step (the last attempt that ran the step wins)."""
    lines = (out / "applied.jsonl").read_text().splitlines()
    return {r["step"]: r["lr"] for r in map(json.loads, lines)}


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[int, float]:
    out = tmp_path_factory.mktemp("uninterrupted")
    (result,) = run_chain(out, [])
    assert result.returncode == 0, result.stderr[-3000:]
    lrs = applied_lrs(out)
    assert sorted(lrs) == list(range(STEPS))
    return lrs


def ui_texts(logdir: Path) -> dict[str, list[int]]:
    """Event texts as the TensorBoard UI's reader sees them (it purges texts at a resume, the classic one not)."""
    from tensorboard.backend.event_processing import plugin_event_accumulator

    acc = plugin_event_accumulator.EventAccumulator(str(logdir), size_guidance={"tensors": 0})
    acc.Reload()
    return {tag: [e.step for e in acc.Tensors(tag)] for tag in acc.Tags()["tensors"] if tag.startswith("lrmon/events/")}


def check_tensorboard(logdir: Path, reference: dict[int, float]) -> None:
    acc = accumulator(logdir)
    lr = [(e.step, e.value) for e in acc.Scalars("lr")]
    assert [step for step, _ in lr] == list(range(STEPS))  # each step once: the purge hides the superseded rows
    np.testing.assert_array_equal([value for _, value in lr], np.float32([reference[s] for s in range(STEPS)]))
    assert [e.step for e in acc.Scalars("loss")] == list(range(STEPS))
    ui = ui_texts(logdir)
    for kind, step in EXPECTED_EVENTS.items():
        assert ui[f"lrmon/events/{kind}"] == [step], (kind, ui)
        assert {e.step for e in acc.Tensors(f"lrmon/events/{kind}")} == {step}  # classic: maybe a superseded copy
    assert "lrmon/events/overrun" not in ui


def check_wandb(out: Path, reference: dict[int, float]) -> None:
    runs = wandb_run_dirs(out / "wandb")  # start order: the order wandb sync uploads them in
    # an attempt killed inside wandb.init, before wandb-core made the .wandb file, leaves a directory holding nothing
    runs = [run for run in runs if any(run.glob("run-*.wandb"))]
    assert len({path.stem[len("run-"):] for run in runs for path in run.glob("run-*.wandb")}) == 1, runs  # one id
    rows = [record["history"]["item"] for run in runs for record in inspect_records(run)
            if record.get("type") == "history"]
    lr_rows = [row for row in rows if "lr" in row]
    assert [int(row["_step"]) for row in lr_rows] == list(range(STEPS))  # each train step once, in order
    assert [int(row["trainer/step"]) for row in lr_rows] == list(range(STEPS))
    assert [float(row["lr"]) for row in lr_rows] == [float(np.float32(reference[s])) for s in range(STEPS)]
    for kind, step in EXPECTED_EVENTS.items():
        assert [int(row["_step"]) for row in rows if f"lrmon/event/{kind}" in row] == [step], kind


CHAINS = {  # a few fixed chains in the suite; test_many_random_kills (-m slow) runs 24 random ones
    "mid-step, then inside a save": [("step", 113), ("save", 150)],
    "inside the first save, then mid-warmup": [("save", 25), ("step", 33)],
    "during construction, then mid-run": [("time", 1.0), ("step", 171)],
    "three kills": [("step", 61), ("save", 100), ("step", 143)],
}


@pytest.mark.parametrize("chain", list(CHAINS), ids=list(CHAINS))
def test_killed_runs_resume_exactly(tmp_path, reference, chain):
    results = run_chain(tmp_path, CHAINS[chain])
    assert results[-1].returncode == 0
    assert applied_lrs(tmp_path) == reference  # the optimizer's LR: bit for bit the uninterrupted run's
    check_tensorboard(tmp_path / "tb", reference)
    check_wandb(tmp_path, reference)
    assert read_state(tmp_path / "tb").step == read_state(tmp_path / "wandb").step == STEPS


@pytest.mark.slow
def test_many_random_kills(tmp_path_factory, reference):
    """24 chains of 1-3 SIGKILLs at random moments (wall clock: construction, steps, saves), each chain checked."""
    rng = np.random.default_rng(12)
    started = time.monotonic()
    for case in range(24):
        out = tmp_path_factory.mktemp(f"random{case}")
        kills = [("time", float(rng.uniform(0.5, 9.0))) for _ in range(int(rng.integers(1, 4)))]
        run_chain(out, kills)
        assert applied_lrs(out) == reference, (case, kills)
        check_tensorboard(out / "tb", reference)
        check_wandb(out, reference)
    print(f"24 random kill chains checked in {time.monotonic() - started:.0f} s")


def test_resume_from_a_missing_or_damaged_state_is_refused(tmp_path):
    with pytest.raises(StateError, match="no such file"):
        read_state(tmp_path / "nothing")
    (tmp_path / "lrmon_state.json").write_text("{}")
    with pytest.raises(StateError):
        read_state(tmp_path)
