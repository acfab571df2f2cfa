"""The ``lrmon`` command: preview, plot (TensorBoard and W&B runs), inspect; one-line errors and exit statuses."""

from __future__ import annotations

import ast
import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lrmon import LRMonitor, WarmupCosineSchedule
from lrmon.cli import main
from lrmon.curve import CurveConfig
from lrmon.state import MonitorState, write_state_file

pytest.importorskip("matplotlib")

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT)}
RUN_STEPS, WARMUP, TOTAL = 70, 10, 60  # runs go 10 steps past total_steps: every event fires


def png(path: Path) -> np.ndarray:
    """The image as an array (height, width, channels), read back with matplotlib."""
    from matplotlib import image

    return image.imread(str(path))


def assert_picture(path: Path, width: int, height: int) -> None:
    pixels = png(path)
    assert pixels.shape[:2] == (height, width), pixels.shape
    assert pixels[..., :3].var() > 1e-3  # not blank
    rgb = (pixels[..., :3] * 255).round().astype(np.uint32)
    colors = np.unique(rgb[..., 0] << 16 | rgb[..., 1] << 8 | rgb[..., 2])
    assert len(colors) > 20  # drawn, not a flat fill


def one_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    return lines[0]


def monitored_run(sinks: list) -> None:
    with LRMonitor(WarmupCosineSchedule(0.1, WARMUP, TOTAL, eta_min=0.001), sinks, flush_every=16) as monitor:
        for step in range(RUN_STEPS):
            monitor.step(loss=2.0 * np.exp(-step / 20) + 0.1)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A TensorBoard logdir and a W&B offline run of the same monitored run, plotted with ``lrmon plot``.

    The TensorBoard plot runs as its own process (``python -m lrmon``, as users run it: it reads event files
    without importing TensorFlow, which must not happen inside this shared test process), started at once so that
    it overlaps with the W&B plot, which runs in this process. Yields {kind: (run dir, png, result)}.
    """
    from lrmon.integrations.tensorboard import TensorBoardSink
    from lrmon.integrations.wandb import WandbSink

    base = tmp_path_factory.mktemp("cli_runs")
    monitored_run([TensorBoardSink(base / "tb"), WandbSink(dir=base / "wandb", project="lrmon-cli-test")])
    tb_png = base / "tensorboard.png"
    command = [sys.executable, "-m", "lrmon", "plot", str(base / "tb"), "--out", str(tb_png)]
    process = subprocess.Popen(command, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wandb_png = base / "wandb.png"
        with contextlib.redirect_stdout(io.StringIO()) as stdout, contextlib.redirect_stderr(io.StringIO()) as stderr:
            status = main(["plot", str(base / "wandb"), "--out", str(wandb_png)])
        wandb_result = subprocess.CompletedProcess(["lrmon", "plot"], status, stdout.getvalue(), stderr.getvalue())
        tb_stdout, tb_stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    return {
        "tensorboard": (base / "tb", tb_png, subprocess.CompletedProcess(command, process.returncode, tb_stdout,
                                                                        tb_stderr)),
        "wandb": (base / "wandb", wandb_png, wandb_result),
    }


# -- preview --------------------------------------------------------------------------------------------------
def test_preview_writes_the_schedule_png_and_prints_a_summary(tmp_path, capsys):
    out = tmp_path / "img" / "schedule.png"
    status = main(["preview", "--base-lr", "1e-3", "--warmup-steps", "100", "--total-steps", "1000",
                   "--eta-min", "1e-5", "--out", str(out)])
    stdout = capsys.readouterr().out
    assert status == 0
    assert_picture(out, 1200, 650)
    key_steps = [0, 99, 100, 500, 999, 1000]
    lrs = np.asarray(CurveConfig(1e-3, 100, 1000, 0.0, 1e-5).lr_at(np.asarray(key_steps)))[:, 0]
    assert "warmup    steps 0..99 (100 steps)" in stdout
    assert "cosine    steps 100..999 (900 steps)" in stdout
    assert "past end  steps 1000.. (LR holds 1e-05)" in stdout
    # one vocabulary: the LR lines name the events at their own steps (warmup_end is the last warmup step)
    for label, step, lr in zip(["warmup_start", "warmup_end", "cosine_start (peak)", "middle", "end", "overrun"],
                               key_steps, lrs):
        line = next(line for line in stdout.splitlines() if f"{label}, step {step} " in line)
        assert float(line.split()[-1]) == pytest.approx(float(lr), rel=1e-5)
    for kind, step in CurveConfig(1e-3, 100, 1000, 0.0, 1e-5).events():
        assert any(line.split()[:3] == [kind, "step", str(step)] for line in stdout.splitlines()), kind
    assert f"wrote {out} (1200x650 px)" in stdout


def test_preview_size_and_parameter_groups(tmp_path, capsys):
    out = tmp_path / "groups.png"
    assert main(["preview", "--base-lr", "0.1", "0.01", "--warmup-steps", "0", "--total-steps", "50",
                 "--size", "640x360", "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert "2 parameter groups" in stdout and "warmup    none (0 steps)" in stdout
    assert_picture(out, 640, 360)


@pytest.mark.parametrize("arguments, problem", [
    (["--base-lr", "1e-3", "--warmup-steps", "100", "--total-steps", "10"], "warmup_steps (100) must be <= total"),
    (["--base-lr", "-1", "--warmup-steps", "1", "--total-steps", "10"], "base_lr"),
    (["--base-lr", "nan", "--warmup-steps", "1", "--total-steps", "10"], "NaN"),
    (["--base-lr", "1e-3", "--warmup-steps", "1", "--total-steps", "0"], "total_steps"),
    (["--base-lr", "1e-3", "--warmup-steps", "1", "--total-steps", "10", "--eta-min", "0.1"], "eta_min"),
])
def test_preview_refuses_an_invalid_schedule_in_one_line_with_status_2(tmp_path, capsys, arguments, problem):
    out = tmp_path / "never.png"
    assert main(["preview", *arguments, "--out", str(out)]) == 2
    captured = capsys.readouterr()
    line = one_line(captured.err)
    assert line.startswith("lrmon preview: error: invalid schedule:") and problem in line
    assert captured.out == "" and not out.exists()


@pytest.mark.parametrize("arguments, problem", [
    ([], "required: COMMAND"),
    (["frob"], "invalid choice: 'frob'"),
    (["preview", "--warmup-steps", "1", "--total-steps", "10"], "--base-lr"),
    (["preview", "--base-lr", "fast", "--warmup-steps", "1", "--total-steps", "10"], "invalid float value: 'fast'"),
    (["preview", "--base-lr", "1e-3", "--warmup-steps", "1.5", "--total-steps", "10"], "invalid int value: '1.5'"),
    (["preview", "--base-lr", "1e-3", "--warmup-steps", "1", "--total-steps", "10", "--size", "9x9"], "--size"),
    (["plot"], "RUN"),
    (["inspect", "a", "b"], "unrecognized arguments: b"),
])
def test_bad_arguments_give_one_line_and_status_2(capsys, arguments, problem):
    with pytest.raises(SystemExit) as exit_info:
        main(arguments)
    assert exit_info.value.code == 2
    line = one_line(capsys.readouterr().err)
    assert "error:" in line and problem in line


def test_python_dash_m_lrmon_reports_errors_in_one_line(tmp_path, monkeypatch, capsys):
    import runpy

    monkeypatch.setattr(sys, "argv", ["lrmon", "preview", "--base-lr", "1e-3", "--warmup-steps", "20",
                                      "--total-steps", "10", "--out", str(tmp_path / "x.png")])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_module("lrmon", run_name="__main__", alter_sys=True)
    assert exit_info.value.code == 2
    assert one_line(capsys.readouterr().err).startswith("lrmon preview: error: invalid schedule: warmup_steps (20)")


@pytest.mark.parametrize("module", ["lrmon/cli", "lrmon/plotting", "lrmon/_drawing", "integrations/console"])
def test_matplotlib_and_tqdm_are_imported_only_inside_the_functions_that_draw(module):
    """No module-level import of matplotlib or tqdm in the CLI, the plotting modules or the console sink."""
    tree = ast.parse((ROOT / f"{module}.py").read_text())
    imported = []
    for node in tree.body:  # module level only (functions import what they draw with)
        if isinstance(node, ast.Import):
            imported += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            imported.append(node.module or "")
    assert not [name for name in imported if name.split(".")[0] in ("matplotlib", "tqdm")], imported
    if module == "lrmon/cli":  # the CLI reads runs through lrmon.runs (and draws through lrmon.plotting, lazily)
        assert "lrmon.runs" in imported


# -- plot -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["tensorboard", "wandb"])
def test_plot_draws_lr_and_loss_of_a_logged_run(runs, kind):
    run_dir, out, result = runs[kind]
    assert result.returncode == 0, result.stderr
    assert_picture(out, 1400, 800)
    stdout = result.stdout
    assert f"1 LR series ({RUN_STEPS} points), {RUN_STEPS} 'loss' points, 5 events" in stdout
    for kind_, step in CurveConfig(0.1, WARMUP, TOTAL).events():
        assert f"event {kind_} at step {step}: {kind_} at step {step} (lr " in stdout


def test_plot_reads_the_run_it_is_given(runs):
    from lrmon import runs as run_readers
    from lrmon.integrations.wandb import read_wandb_run

    run_dir, _, _ = runs["wandb"]
    kind, directory = run_readers.find_run(run_dir)
    assert kind == "wandb" and directory.name.startswith("offline-run-")
    data = read_wandb_run(directory)
    assert list(data.lrs) == ["lr"] and data.config == CurveConfig(0.1, WARMUP, TOTAL, 0.0, 0.001)
    steps, lrs = data.lrs["lr"]
    np.testing.assert_array_equal(steps, np.arange(RUN_STEPS))
    np.testing.assert_allclose(lrs, np.asarray(data.config.lr_at(steps))[:, 0], rtol=1e-6, atol=1e-9)
    assert [(step, kind) for step, kind, _ in data.events] == sorted(
        (step, kind) for kind, step in data.config.events())


@pytest.mark.parametrize("make, problem", [
    (lambda d: d / "missing", "no such file or directory"),
    (lambda d: d, "no TensorBoard event files and no W&B offline run"),
])
def test_plot_of_something_that_is_not_a_run_is_one_line_with_status_1(tmp_path, capsys, make, problem):
    assert main(["plot", str(make(tmp_path)), "--out", str(tmp_path / "x.png")]) == 1
    line = one_line(capsys.readouterr().err)
    assert line.startswith("lrmon plot: error:") and problem in line


# -- inspect --------------------------------------------------------------------------------------------------
def make_state(path: Path) -> Path:
    state = MonitorState(schedule_class="WarmupCosineSchedule", config=CurveConfig([1e-3], 100, 1000, 0.0, 1e-5),
                         step=250, emitted_events=(("warmup_start", 0), ("warmup_end", 99), ("cosine_start", 100)),
                         last_logged_step=249, trackers={"tensorboard": {"logdir": "/runs/x"}},
                         monitor_config={"log_every": 1})
    return write_state_file(path, state)


def test_inspect_prints_a_valid_state(tmp_path, capsys):
    path = make_state(tmp_path / "lrmon_state.json")
    assert main(["inspect", str(path)]) == 0
    stdout = capsys.readouterr().out
    assert "step:" in stdout and "250 (cosine" in stdout
    assert "next event:" in stdout and "end at step 999" in stdout
    assert stdout.strip().splitlines()[-1].startswith("valid: yes")
    assert main(["inspect", str(tmp_path), "--json"]) == 0  # the directory holding it, as JSON
    document = capsys.readouterr().out.rsplit("valid: yes", 1)[0]
    assert json.loads(document)["step"] == 250


def test_inspect_reads_the_state_a_monitored_run_left_in_its_logdir(runs, capsys):
    run_dir, _, _ = runs["tensorboard"]
    assert main(["inspect", str(run_dir)]) == 0
    stdout = capsys.readouterr().out
    assert "step:" in stdout and f"{RUN_STEPS} (past the end" in stdout and "valid: yes" in stdout


@pytest.mark.parametrize("damage, problem", [
    (lambda data: data.replace(b'"step":250', b'"step":251'), "checksum mismatch"),
    (lambda data: data[: len(data) // 2], "truncated"),
    (lambda data: b"", "empty"),
    (lambda data: data.replace(b'"warmup_steps":100', b'"warmup_steps":5000'), "lrmon state"),
])
def test_inspect_reports_a_corrupted_state_as_invalid_with_status_1(tmp_path, capsys, damage, problem):
    path = make_state(tmp_path / "lrmon_state.json")
    path.write_bytes(damage(path.read_bytes()))
    assert main(["inspect", str(path)]) == 1
    captured = capsys.readouterr()
    line = one_line(captured.err)
    assert line.startswith("lrmon inspect: INVALID:") and problem in line
    assert "valid: yes" not in captured.out


def test_inspect_of_a_missing_state_is_invalid(tmp_path, capsys):
    assert main(["inspect", str(tmp_path / "nothing.json")]) == 1
    assert "no such file" in one_line(capsys.readouterr().err)
    assert main(["inspect", str(tmp_path)]) == 1
    assert "no lrmon_state.json" in one_line(capsys.readouterr().err)


def wandb_run_dirs(runs) -> tuple[Path, Path]:
    """The W&B ``dir=`` of the module's run and its one offline run directory."""
    root, _, _ = runs["wandb"]
    (run_dir,) = (root / "wandb").glob("offline-run-*")
    return root, run_dir


@pytest.mark.parametrize("relative", ["wandb/latest-run", "offline-run", "wandb"])
def test_plot_of_a_relative_wandb_path(runs, tmp_path, monkeypatch, capsys, relative):
    root, run_dir = wandb_run_dirs(runs)
    monkeypatch.chdir(root)  # `wandb leet inspect` runs in a temporary cwd: the path must not stay relative
    path = run_dir.relative_to(root) if relative == "offline-run" else Path(relative)
    assert main(["plot", str(path), "--out", str(tmp_path / "rel.png")]) == 0, capsys.readouterr().err
    assert f"1 LR series ({RUN_STEPS} points)" in capsys.readouterr().out
    assert_picture(tmp_path / "rel.png", 1400, 800)


@pytest.mark.parametrize("which", ["run dir", "wandb root", "sink dir"])
def test_inspect_finds_the_state_artifact_in_a_wandb_run_or_root_directory(runs, capsys, which):
    root, run_dir = wandb_run_dirs(runs)
    path = {"run dir": run_dir, "wandb root": root / "wandb", "sink dir": root}[which]
    assert main(["inspect", str(path)]) == 0, capsys.readouterr().err
    stdout = capsys.readouterr().out
    assert f"{RUN_STEPS} (past the end" in stdout and "valid: yes" in stdout


def test_inspect_refuses_a_fifo_without_opening_it(tmp_path, capsys):
    fifo = tmp_path / "lrmon_state.json"
    os.mkfifo(fifo)  # opening it for reading would block forever
    assert main(["inspect", str(fifo)]) == 1
    assert "not a regular file" in one_line(capsys.readouterr().err)
    assert main(["inspect", str(tmp_path)]) == 1
    assert "not a regular file" in one_line(capsys.readouterr().err)
