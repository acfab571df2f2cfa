"""Faults never stop training, and a state never names a step whose records its tracker does not hold.

Each case runs the crash/resume worker (``_resume/train_worker.py``) with a fault: the training finishes, every
tracker's newest state names a step ``S`` below which the tracker holds every record, and a resume from that
state completes the run with every step once.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from _trackers import accumulator
from lrmon.integrations.wandb import inspect_records
from lrmon.state import read_state, wandb_run_dirs
from test_resume import STEPS, check_tensorboard, check_wandb, finish, reference, start_worker  # noqa: F401


def wandb_rows(out) -> list[int]:
    runs = wandb_run_dirs(out / "wandb")
    return [int(record["history"]["item"]["_step"]) for run in runs for record in inspect_records(run)
            if record.get("type") == "history" and "lr" in record["history"]["item"]]


def run_ok(out, *args) -> subprocess.CompletedProcess:
    result = finish(start_worker(out, *args))
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_wandb_core_killed_mid_run(tmp_path, reference):
    result = run_ok(tmp_path, "--kill-child-at", "120", "--step-sleep", "0.002")
    assert "WandbSink failed" in result.stderr  # one warning; training went on
    state = read_state(tmp_path / "wandb")  # the newest state any attempt stored with W&B
    assert state.step <= 121
    rows = wandb_rows(tmp_path)
    assert set(range(state.step)) <= set(rows)  # every row below the state's step is in the .wandb file
    assert [e.step for e in accumulator(tmp_path / "tb").Scalars("lr")] == list(range(STEPS))
    run_ok(tmp_path, "--resume", "wandb", "--at-saved-step")  # resumed from W&B's own state: the run completes
    check_wandb(tmp_path, reference)


def test_sink_process_killed_mid_run(tmp_path, reference):
    result = run_ok(tmp_path, "--process-sink", "--kill-child-at", "120", "--step-sleep", "0.002")
    assert "ProcessSink[TensorBoardSink] failed" in result.stderr
    state = read_state(tmp_path / "tb")
    steps = [e.step for e in accumulator(tmp_path / "tb").Scalars("lr")]
    assert state.step <= 121 and steps[: state.step] == list(range(state.step))
    local = read_state(tmp_path / "state")  # the local state names what each tracker holds
    assert local.step == STEPS
    holds = local.trackers["ProcessSink[TensorBoardSink]"]["holds_steps_below"]
    assert state.step <= holds <= 121 and steps[:holds] == list(range(holds))  # what it names is there
    assert local.trackers["ProcessSink[TensorBoardSink]"]["failed"] is True
    run_ok(tmp_path, "--process-sink", "--resume", "tensorboard", "--at-saved-step")
    check_tensorboard(tmp_path / "tb", reference)


@pytest.fixture
def small_disk(tmp_path):
    """A 640 KB tmpfs (root only): the trackers and the state directory fill it mid-run."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=640k", "tmpfs", str(mount)]).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield mount
    subprocess.run(["umount", "-l", str(mount)])


def test_full_disk_never_stops_training_and_states_stay_true(small_disk, tmp_path, reference):
    out = small_disk / "run"
    out.mkdir()
    result = run_ok(out, "--flush-timeout", "5")  # exits 0: training finished, close() raised nothing
    assert "No space left on device" in result.stderr
    for tracker in ("tb", "wandb"):
        try:
            state = read_state(out / tracker)
        except Exception:  # noqa: BLE001 - the disk filled before this tracker's first state
            continue
        if tracker == "tb":
            steps = [e.step for e in accumulator(out / tracker).Scalars("lr")]
        else:
            steps = wandb_rows(out)
        assert set(range(state.step)) <= set(steps), tracker
    copy = tmp_path / "roomy" / out.name  # room again: a resume from the TensorBoard state completes the run
    shutil.copytree(out, copy, symlinks=True)
    run_ok(copy, "--resume", "tensorboard", "--at-saved-step")
    assert [e.step for e in accumulator(copy / "tb").Scalars("lr")] == list(range(STEPS))
