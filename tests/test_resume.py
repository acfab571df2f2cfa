"""Resume: SIGKILLed training runs continue from the TensorBoard logdir or the W&B artifact directory exactly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import (
    STORE_EVERYTHING_SIZE_GUIDANCE,
    EventAccumulator,
)

import lrmon
from lrmon.integrations.wandb import read_offline_run
from lrmon.state import STATE_FILE_NAME, StateError, read_state

WORKER = Path(__file__).parent / "_resume" / "train_worker.py"
STEPS, SAVE_EVERY = 200, 25
EVENT_KINDS = ("warmup_start", "warmup_end", "cosine_start", "end")


def run_worker(out: Path, *args: str, expect_kill: bool = False) -> dict | None:
    env = {**os.environ, "WANDB_SILENT": "true", "WANDB_MODE": "offline", "WANDB_DIR": str(out),
           "WANDB_DATA_DIR": str(out / "wandb-data"), "WANDB_CACHE_DIR": str(out / "wandb-cache"),
           "WANDB_CONFIG_DIR": str(out / "wandb-config")}
    proc = subprocess.run([sys.executable, str(WORKER), "--out", str(out), "--steps", str(STEPS),
                           "--save-every", str(SAVE_EVERY), *args], env=env, capture_output=True, text=True,
                          timeout=180)
    if expect_kill:
        assert proc.returncode == -9, proc.stderr[-3000:]
        return None
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def applied_lrs(out: Path) -> list[tuple[int, float]]:
    return [(r["step"], r["lr"]) for r in map(json.loads, (out / "applied.jsonl").read_text().splitlines())]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, object]:
    out = tmp_path_factory.mktemp("uninterrupted")
    info = run_worker(out)
    lrs = applied_lrs(out)
    assert [s for s, _ in lrs] == list(range(STEPS))
    return {"lrs": [lr for _, lr in lrs], "out": out, "info": info}


def tensorboard_records(logdir: Path) -> tuple[dict[str, list], dict[str, list[int]]]:
    accumulator = EventAccumulator(str(logdir), size_guidance=STORE_EVERYTHING_SIZE_GUIDANCE)
    accumulator.Reload()
    tags = accumulator.Tags()
    scalars = {tag: [(e.step, e.value) for e in accumulator.Scalars(tag)] for tag in tags["scalars"]}
    events = {tag.rsplit("/", 1)[-1]: [e.step for e in accumulator.Tensors(tag)]
              for tag in tags["tensors"] if tag.startswith("lrmon/events/")}
    return scalars, events


def crashed_then_resumed(out: Path, crash_at: int, source: str, in_save: bool) -> tuple[int, dict]:
    """Run until SIGKILL, resume from ``source`` ("tensorboard" or "wandb-artifact"); return (resume step, info)."""
    run_worker(out, "--crash-at", str(crash_at), *(["--crash-in-save"] if in_save else []), expect_kill=True)
    if source == "tensorboard":
        resume_from = out / "tb"
    else:
        [resume_from] = list((out / "wandb").glob("wandb/offline-run-*/lrmon-artifact"))
    state = read_state(resume_from)
    assert state.step % SAVE_EVERY == 0 and state.step <= crash_at + 1
    info = run_worker(out, "--resume-from", str(resume_from))
    return state.step, info


def random_step(seed: int) -> int:
    return int(np.random.default_rng(seed).integers(SAVE_EVERY, STEPS - 10))


@pytest.mark.parametrize("crash_at,source,in_save", [
    (45, "tensorboard", False),  # after warmup_end/cosine_start (39, 40) but before the save at 50: re-emitted
    (random_step(1), "tensorboard", True),
    (random_step(2), "wandb-artifact", False),
    (random_step(3), "wandb-artifact", True),
    (random_step(4), "tensorboard", False),
])
def test_killed_run_resumes_exactly(tmp_path, reference, crash_at, source, in_save):
    resumed_at, info = crashed_then_resumed(tmp_path, crash_at, source, in_save)

    # The LR sequence, crashed part up to the resume step + resumed part, equals the uninterrupted run's bitwise.
    lines = applied_lrs(tmp_path)
    restart = next(i for i in range(1, len(lines)) if lines[i][0] <= lines[i - 1][0])
    crashed, resumed = lines[:restart], lines[restart:]
    assert crashed[-1][0] >= crash_at - (SAVE_EVERY if in_save else 0) and resumed[0][0] == resumed_at
    first_part = [(s, lr) for s, lr in crashed if s < resumed_at]
    second_part = resumed
    combined = first_part + second_part
    assert [s for s, _ in combined] == list(range(STEPS))
    assert [lr for _, lr in combined] == reference["lrs"]

    # TensorBoard (purge applied by its own reader): every step once with the right value, every event once.
    scalars, events = tensorboard_records(tmp_path / "tb")
    assert [s for s, _ in scalars["lr"]] == list(range(STEPS))
    np.testing.assert_array_equal([v for _, v in scalars["lr"]], np.float32(reference["lrs"]))
    assert [s for s, _ in scalars["loss"]] == list(range(STEPS))
    for kind in EVENT_KINDS:
        assert len(events[kind]) == 1, (kind, events[kind])
    assert events["resume"] == [resumed_at]

    # W&B: the continued run holds each step from the resume step on exactly once, and its events.
    run = read_offline_run(info["wandb_run_dir"])
    rows = [row for row in run["history"] if "lr" in row]
    assert [row["trainer/step"] for row in rows] == list(range(resumed_at, STEPS))
    np.testing.assert_allclose([row["lr"] for row in rows], reference["lrs"][resumed_at:], rtol=1e-6)
    assert run["summary"]["lrmon/events/resume"] == resumed_at
    assert [a["type"] for a in run["artifacts"]].count("lr-schedule-state") >= 1


def test_uninterrupted_run_has_one_state_artifact_per_save(reference):
    run = read_offline_run(reference["info"]["wandb_run_dir"])
    states = [a for a in run["artifacts"] if a["type"] == "lr-schedule-state"]
    assert sorted(a["metadata"]["step"] for a in states) == list(range(SAVE_EVERY, STEPS + 1, SAVE_EVERY))
    assert all("latest" in a["aliases"] and f"step-{a['metadata']['step']}" in a["aliases"] for a in states)
    state = read_state(reference["out"] / "tb")
    assert state.step == STEPS and {k for k, _ in state.emitted_events} == set(EVENT_KINDS)


def test_mismatched_configuration_is_refused_unless_allowed(tmp_path):
    sink = lrmon.MemorySink()
    with lrmon.LRMonitor(lrmon.WarmupCosineSchedule(0.1, 10, 100), [sink], state_dir=tmp_path) as monitor:
        for _ in range(30):
            monitor.step()
    changed = lrmon.WarmupCosineSchedule(0.2, 10, 120)
    with pytest.raises(lrmon.ConfigMismatchError, match=r"\['base_lrs', 'total_steps'\]"):
        lrmon.LRMonitor(changed, [lrmon.MemorySink()], resume_from=tmp_path / STATE_FILE_NAME)
    assert int(changed.last_epoch.value) == 0  # nothing changed by the failed resume

    resumed_sink = lrmon.MemorySink()
    with lrmon.LRMonitor(changed, [resumed_sink], resume_from=tmp_path / STATE_FILE_NAME,
                         allow_config_change=True) as monitor:
        for _ in range(5):
            monitor.step()
    assert resumed_sink.scalars["lr"][0][0] == 30
    assert resumed_sink.scalars["lr"][0][1] == pytest.approx(float(changed.lr_at(30)[0]))
    assert resumed_sink.events == [(30, "resume")]
    assert "configuration changed in ['base_lrs', 'total_steps']" in resumed_sink.event_records[0].detail


def test_resume_from_a_corrupted_state_raises_and_changes_nothing(tmp_path):
    with lrmon.LRMonitor(lrmon.WarmupCosineSchedule(0.1, 10, 100), state_dir=tmp_path) as monitor:
        for _ in range(12):
            monitor.step()
    path = tmp_path / STATE_FILE_NAME
    path.write_bytes(path.read_bytes().replace(b'"step":12', b'"step":13'))
    schedule = lrmon.WarmupCosineSchedule(0.1, 10, 100)
    with pytest.raises(StateError, match="checksum"):
        lrmon.LRMonitor(schedule, resume_from=path)
    assert int(schedule.last_epoch.value) == 0


def test_a_wandb_artifact_reference_that_cannot_be_downloaded_raises_and_changes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path))  # no stored key either
    schedule = lrmon.WarmupCosineSchedule(0.1, 10, 100)
    with pytest.raises(StateError, match="me/proj/lrmon-state-abc:latest: cannot download the W&B artifact"):
        lrmon.LRMonitor(schedule, resume_from="wandb-artifact:me/proj/lrmon-state-abc:latest")
    assert int(schedule.last_epoch.value) == 0
