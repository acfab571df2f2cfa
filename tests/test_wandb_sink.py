"""WandbSink against real offline wandb 0.31, read back with wandb's own ``leet inspect`` (read_offline_run)."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import warnings
from contextlib import suppress
from pathlib import Path

import numpy as np
import pytest

import lrmon
from lrmon.integrations.wandb import FIGURE_KEY, STEP_METRIC, WandbSink, read_offline_run
from lrmon.integrations._figure import FIGURE_SIZE
from lrmon.state import read_state

from _trackers import (
    CONFIG, TWO_GROUPS, batches, call_with_timeout, child_pids, curve, events, monitored_run, run_info, wandb_env, write_run,
)

N = 300
__all__ = ["wandb_env"]  # the fixture, imported for pytest


def rows_by_step(history: list[dict], key: str) -> dict[int, list[float]]:
    """``trainer/step -> [values of key]`` over the history rows that have ``key``."""
    out: dict[int, list[float]] = {}
    for row in history:
        if key in row:
            out.setdefault(int(row[STEP_METRIC]), []).append(row[key])
    return out


def test_sink_interface_read_back(wandb_env: Path, tmp_path: Path) -> None:
    sink = WandbSink(dir=wandb_env, project="lrmon-tests")
    write_run(sink, stop=N)
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"step": N - 1, "config": CONFIG.to_dict()}))
    sink.save_state(state, N - 1)
    saved = state.read_text()
    state.write_text("changed after save_state")  # the artifact must hold the content at save time
    identity = sink.identity()
    sink.close()

    run = read_offline_run(identity["wandb_run_dir"])
    assert run["run_id"] == identity["wandb_run_id"] and run["project"] == "lrmon-tests"
    assert run["state"] == "finished" and run["exit_code"] == 0  # close() waited for the exit record
    steps, lrs, loss = curve(CONFIG, 0, N)
    for key, expected in (("lr", lrs[:, 0]), ("loss", loss), ("lrmon/phase", CONFIG.phase_at(steps))):
        got = rows_by_step(run["history"], key)
        assert sorted(got) == steps.tolist(), key  # one row per step, on trainer/step
        assert all(len(v) == 1 for v in got.values())
        np.testing.assert_allclose([got[s][0] for s in steps.tolist()], expected, rtol=1e-12, atol=0)

    for event in events(CONFIG, N):
        assert rows_by_step(run["history"], f"lrmon/event/{event.kind}") == {event.step: [1]}
        assert run["summary"][f"lrmon/events/{event.kind}"] == event.step
    assert run["config"]["lrmon"] == json.loads(json.dumps(run_info().config))
    metrics = {m.get("name") or m.get("glob_name"): m for m in run["metrics"]}
    assert metrics["*"]["step_metric"] == STEP_METRIC and STEP_METRIC in metrics

    (artifact,) = [a for a in run["artifacts"] if a["type"] == "lr-schedule-state"]
    assert artifact["name"] == f"lrmon-state-{identity['wandb_run_id']}"
    assert set(artifact["aliases"]) == {"latest", f"step-{N - 1}"}
    assert artifact["metadata"]["step"] == N - 1 and artifact["metadata"]["schedule"] == CONFIG.to_dict()
    files = {entry["path"]: Path(entry["local_path"]) for entry in artifact["files"]}
    assert sorted(files) == ["lrmon_artifact.json", "lrmon_state.json"]
    assert files["lrmon_state.json"].read_text() == saved
    marker = {"type": "lr-schedule-state", "state_file": "lrmon_state.json"}
    assert json.loads(files["lrmon_artifact.json"].read_text()) == marker
    local = Path(identity["wandb_run_dir"]) / "lrmon-artifact"  # offline stand-in for artifact.download()
    assert sorted(p.name for p in local.iterdir()) == ["lrmon_artifact.json", "lrmon_state.json"]
    assert (local / "lrmon_state.json").read_text() == saved

    table = run["tables"]["lrmon/events"]
    assert table["columns"] == ["step", "kind", "lr", "detail"]
    assert [(r[0], r[1], r[3]) for r in table["data"]] == [(e.step, e.kind, e.detail) for e in events(CONFIG, N)]
    chart = run["tables"]["lrmon/lr_loss"]
    assert chart["columns"] == [STEP_METRIC, "lr", "loss"]
    np.testing.assert_allclose(np.array(chart["data"], dtype=float), np.column_stack([steps, lrs[:, 0], loss]))
    assert "lrmon/lr_vs_loss_table" in run["tables"]  # the line_series panel's data

    if importlib.util.find_spec("matplotlib") is not None:  # the LR-vs-loss picture needs 'lrmon[plot]'
        from matplotlib.image import imread

        figure = run["summary"][FIGURE_KEY]  # logged once, in the final row
        assert figure["_type"] == "image-file" and (figure["width"], figure["height"]) == FIGURE_SIZE
        assert rows_by_step(run["history"], f"{FIGURE_KEY}.path") == {N - 1: [figure["path"]]}
        pixels = imread(Path(identity["wandb_run_dir"]) / "files" / figure["path"])
        assert pixels.shape == (FIGURE_SIZE[1], FIGURE_SIZE[0], 4) and pixels[..., :3].var() > 1e-3


def test_rows_are_logged_at_their_train_step_with_events_in_them(wandb_env: Path) -> None:
    """wandb's ``_step`` is the train step; each event lands in the row of its step, not a row of its own."""
    sink = WandbSink(dir=wandb_env)
    write_run(sink, TWO_GROUPS, 0, 200)
    sink.close()
    history = read_offline_run(sink.identity()["wandb_run_dir"])["history"]
    train_rows = [row for row in history if "lr/pg0" in row]
    assert [row["_step"] for row in train_rows] == [row["trainer/step"] for row in train_rows] == list(range(200))
    for event in events(TWO_GROUPS, 200):
        (row,) = [row for row in history if f"lrmon/event/{event.kind}" in row]
        assert row["_step"] == event.step and "lr/pg0" in row  # merged into the step's own row


def test_users_run_is_not_finished_and_gets_step_metrics(wandb_env: Path) -> None:
    import wandb

    run = wandb.init(mode="offline", dir=str(wandb_env), reinit="create_new",
                     settings=wandb.Settings(console="off", silent=True, x_disable_stats=True, x_disable_meta=True,
                                             x_save_requirements=False))
    sink = WandbSink(run)
    sink.open(run_info())
    sink.write_scalars(batches(CONFIG, 0, 50)[0])
    sink.close()
    run.log({"user/metric": 3.0})  # still open: the sink does not finish a run it did not create
    run.finish()
    wandb.teardown()  # the documented way to be sure the .wandb file is complete
    back = read_offline_run(run.settings.sync_dir)
    assert sorted(rows_by_step(back["history"], "lr")) == list(range(50))
    assert any(row.get("user/metric") == 3 for row in back["history"])
    defined = {m.get("name"): m.get("step_metric") for m in back["metrics"] if m.get("name")}
    assert defined["lr"] == STEP_METRIC and defined["loss"] == STEP_METRIC
    assert not any(m.get("glob_name") == "*" for m in back["metrics"])  # the user's other metrics untouched


def test_no_io_in_constructor(wandb_env: Path, tmp_path: Path) -> None:
    sink = WandbSink(dir=tmp_path / "never", project="x")
    assert not (tmp_path / "never").exists()
    assert sink.identity() == {} and sink.run is None
    with pytest.raises(TypeError):
        WandbSink(object(), project="x")


def test_monitor_with_memory_and_wandb_sinks(wandb_env: Path, tmp_path: Path) -> None:
    sink = WandbSink(dir=wandb_env)
    memory = monitored_run(sink, N, log_every=1, flush_every=64, save_every=100, state_dir=tmp_path / "state")
    run = read_offline_run(sink.identity()["wandb_run_dir"])
    saved = sorted(a["metadata"]["step"] for a in run["artifacts"] if a["type"] == "lr-schedule-state")
    assert saved == [step for step, _ in memory.saved_states] and saved[-1] == N
    state = read_state(sink.artifact_dir)  # what resume_from= reads offline
    assert state.step == N and state.config == CONFIG
    assert state.trackers["WandbSink"]["wandb_run_id"] == run["run_id"]  # identity() went into the state
    for tag in ("lr", "loss", "lrmon/phase"):
        got = rows_by_step(run["history"], tag)
        expected = dict(memory.scalars[tag])
        assert sorted(got) == sorted(expected)
        np.testing.assert_allclose([got[s][0] for s in sorted(got)], [expected[s] for s in sorted(got)], rtol=1e-12)
    assert len(memory.events) == 5
    for step, kind in memory.events:
        assert run["summary"][f"lrmon/events/{kind}"] == step
    assert run["config"]["lrmon"] == json.loads(json.dumps(memory.config))


def test_dead_wandb_core_raises_at_once_and_the_monitor_goes_on(wandb_env: Path) -> None:
    import wandb

    memory = lrmon.MemorySink()
    schedule = lrmon.WarmupCosineSchedule(base_lr=1e-3, warmup_steps=30, total_steps=250)
    sink = WandbSink(dir=wandb_env)
    monitor = lrmon.LRMonitor(schedule, sinks=[memory, sink], flush_every=32)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for t in range(N):
                if t == 100:
                    pids = child_pids("wandb-core")
                    assert pids, "no wandb-core child process found"
                    for pid in pids:
                        os.kill(pid, signal.SIGKILL)
                        with suppress(ChildProcessError):
                            os.waitpid(pid, 0)
                    # the sink's next call raises instead of hanging
                    finished, _, error = call_with_timeout(lambda: sink.write_scalars(batches(CONFIG, 1000, 1008)[0]), 10)
                    assert finished, "WandbSink hung after wandb-core died"
                    assert isinstance(error, Exception)
                monitor.step(loss=1.0)
            finished, _, _ = call_with_timeout(monitor.close, 20)
            assert finished
        failures = [w for w in caught if issubclass(w.category, lrmon.SinkFailedWarning)]
        assert len(failures) == 1 and "WandbSink" in str(failures[0].message)
        assert [s for s, _ in memory.scalars["lr"]] == list(range(N))
    finally:
        with suppress(Exception):
            wandb.teardown()  # forget the dead service so later runs in this process start a new one


def test_a_relative_dir_closes_promptly(wandb_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``dir="runs/exp1"`` as in the README: reading the run back runs in another cwd, so paths are made absolute."""
    wandb_env.mkdir(parents=True)
    monkeypatch.chdir(wandb_env)
    sink = WandbSink(dir="runs/exp1", finish_timeout=20)
    write_run(sink, CONFIG, 0, 40)
    finished, _, error = call_with_timeout(sink.close, 30)
    assert finished and error is None
    assert read_offline_run(sink.identity()["wandb_run_dir"])["exit_code"] == 0


def test_a_state_naming_another_run_is_refused_and_continue_run_kwargs_names_it(wandb_env: Path,
                                                                                 tmp_path: Path) -> None:
    import wandb

    from lrmon.integrations.wandb import continue_run_kwargs
    from lrmon.state import StateError

    monitored_run(WandbSink(dir=wandb_env), 20, state_dir=tmp_path / "state")
    saved = read_state(tmp_path / "state").trackers["WandbSink"]["wandb_run_id"]
    kwargs = continue_run_kwargs(tmp_path / "state")
    assert kwargs["id"] == saved and kwargs["resume"] == "allow"
    with pytest.raises(StateError, match=f"names W&B run '{saved}'"):
        lrmon.LRMonitor(lrmon.WarmupCosineSchedule.from_config(CONFIG), [WandbSink(dir=wandb_env, id="otherrun")],
                        resume_from=tmp_path / "state")
    with pytest.raises(RuntimeError, match="known only once the sink is open"):
        WandbSink(dir=wandb_env).artifact_dir
    wandb.teardown()


def test_batched_rows_read_back_as_run_log_writes_them(wandb_env: Path) -> None:
    """HistoryRows sends a batch's rows in one hand-off through wandb internals; the run holds what ``run.log`` per
    row writes: same rows, same ``_step``, merged steps, NaN and infinities, rows without ``step=``, summary."""
    import wandb

    from lrmon.integrations._wandb_rows import HistoryRows
    from lrmon.integrations.wandb import default_settings

    rows = [({"lr": 1e-3 * t, "loss": 2.0 - t / 7, STEP_METRIC: t}, t) for t in range(40)]
    rows[5:5] = [({"lrmon/event/warmup_end": 1, STEP_METRIC: 4}, 4)]  # merged into step 4's row
    rows += [({"loss": float("nan"), "lr": float("inf"), "big": 2**60, STEP_METRIC: 40}, 40)]
    backs = []
    for batched in (False, True):
        wandb_env.mkdir(parents=True, exist_ok=True)
        run = wandb.init(dir=str(wandb_env), mode="offline", reinit="create_new", settings=default_settings())
        sender = HistoryRows(run, batched=batched, at_steps=True)
        assert sender.batched is batched  # a plain own run with wandb 0.31 takes batches
        sender.log(rows[:1])
        sender.log(rows[1:])
        sender.log([({"tail": 1.5}, None), ({"tail": 2.5}, None)])
        steps = (run.step, run._local_step)  # wandb-core's next step; what names later media files (Run._log)
        run_dir = run.settings.sync_dir
        run.finish()
        wandb.teardown()
        back = read_offline_run(run_dir)
        drop = ("_timestamp", "_runtime")
        backs.append(([{k: v for k, v in row.items() if k not in drop} for row in back["history"]],
                      {k: v for k, v in back["summary"].items() if k not in drop}, steps))
    assert backs[1] == backs[0]
    history = backs[0][0]
    assert [row["_step"] for row in history] == list(range(42))  # the first row without step= completes step 40
    assert history[4]["lrmon/event/warmup_end"] == 1 and history[4]["lr"] == pytest.approx(4e-3)
