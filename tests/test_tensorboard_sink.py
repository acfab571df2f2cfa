"""TensorBoardSink against real tensorboardX/tensorboard: exact read-back, purge on resume, faults never hang."""

from __future__ import annotations

import io
import json
import os
import resource
import shutil
import sys
import warnings
from contextlib import suppress
from pathlib import Path

import numpy as np
import pytest

import lrmon
from lrmon.integrations.tensorboard import (
    FIGURE_TAG, LR_CHART, PHASE_CHART, STATE_FILE_NAME, TensorBoardSink, read_config, read_layout,
)
from lrmon.integrations._figure import FIGURE_SIZE

from _trackers import (
    CONFIG, TWO_GROUPS, accumulator, batches, call_with_timeout, curve, events, monitored_run, run_info, texts,
    write_run,
)

N = 300


def scalars(acc, tag: str) -> tuple[np.ndarray, np.ndarray]:
    items = acc.Scalars(tag)
    return np.array([e.step for e in items]), np.array([e.value for e in items])


def test_scalars_events_layout_config_read_back_after_flush_without_close(tmp_path: Path) -> None:
    sink = TensorBoardSink(tmp_path / "tb")
    write_run(sink)
    sink.flush()  # no close: flush alone must make everything readable
    acc = accumulator(tmp_path / "tb")
    steps, lrs, loss = curve(CONFIG, 0, N)

    got_steps, got_lr = scalars(acc, "lr")
    np.testing.assert_array_equal(got_steps, steps)  # every step exactly once, in order
    np.testing.assert_array_equal(got_lr, lrs[:, 0].astype(np.float32).astype(np.float64))
    _, got_loss = scalars(acc, "loss")
    np.testing.assert_array_equal(got_loss, loss.astype(np.float32).astype(np.float64))
    _, got_phase = scalars(acc, "lrmon/phase")
    np.testing.assert_array_equal(got_phase, CONFIG.phase_at(steps))

    expected = {e.kind: (e.step, e.detail) for e in events(CONFIG, N)}
    assert set(expected) == {"warmup_start", "warmup_end", "cosine_start", "end", "overrun"}
    for kind, (step, detail) in expected.items():
        assert texts(acc, f"lrmon/events/{kind}") == [(step, detail)]  # exactly once, own tag, at its step

    layout = read_layout(tmp_path / "tb")["lrmon"]  # one chart per quantity, in this order
    assert list(layout.items()) == [(LR_CHART, ["lr"]), ("loss", ["^loss$"]), (PHASE_CHART, [lrmon.PHASE_TAG])]
    assert read_config(tmp_path / "tb") == {"schedule": CONFIG.to_dict(), "log_every": 1}
    assert "_hparams_/session_start_info" in acc.PluginTagToContent("hparams")
    sink.close()
    assert "_hparams_/session_end_info" in accumulator(tmp_path / "tb").PluginTagToContent("hparams")


def test_flush_is_enough_at_every_point(tmp_path: Path) -> None:
    sink = TensorBoardSink(tmp_path)
    sink.open(run_info())
    written = 0
    for batch in batches(CONFIG, 0, 200, size=50):
        sink.write_scalars(batch)
        written += len(batch["lr"].steps)
        sink.flush()
        assert len(accumulator(tmp_path).Scalars("lr")) == written
    sink.close()


def test_two_groups_layout_names_every_lr_tag(tmp_path: Path) -> None:
    sink = TensorBoardSink(tmp_path, layout_metrics=("loss", "val_loss"))
    write_run(sink, TWO_GROUPS, stop=150)
    sink.close()
    acc = accumulator(tmp_path)
    _, lrs, _ = curve(TWO_GROUPS, 0, 150)
    for g in range(2):
        np.testing.assert_array_equal(scalars(acc, f"lr/pg{g}")[1], lrs[:, g].astype(np.float32))
    assert read_layout(tmp_path)["lrmon"] == {
        LR_CHART: ["lr/pg0", "lr/pg1"], "loss": ["^loss$"], "val_loss": ["^val_loss$"], PHASE_CHART: ["lrmon/phase"],
    }


def test_resume_purges_the_crashed_attempt_from_start_step(tmp_path: Path) -> None:
    first = TensorBoardSink(tmp_path)
    first.open(run_info())
    for batch in batches(CONFIG, 0, 200):
        first.write_scalars({"lr": batch["lr"]})
    first.flush()  # "crash": never closed
    second = TensorBoardSink(tmp_path)  # same second, same logdir: must not overwrite the first file
    second.open(run_info(start_step=150))
    steps = np.arange(150, N)
    second.write_scalars({"lr": lrmon.sinks.Series(steps, np.full(len(steps), 0.5))})
    second.close()
    assert len(list(tmp_path.glob("events.out.tfevents.*"))) == 2
    got_steps, got = scalars(accumulator(tmp_path), "lr")
    np.testing.assert_array_equal(got_steps, np.arange(N))  # steps 150..199 of the crashed attempt are gone
    np.testing.assert_array_equal(got[:150], curve(CONFIG, 0, 150)[1][:, 0].astype(np.float32))
    assert (got[150:] == 0.5).all()


def test_users_summary_writer_is_written_through_and_left_open(tmp_path: Path) -> None:
    from tensorboardX import SummaryWriter

    writer = SummaryWriter(str(tmp_path), filename_suffix=".user")
    writer.add_scalar("user/metric", 1.0, 0)
    sink = TensorBoardSink(writer)
    write_run(sink, stop=100)
    sink.flush()
    acc = accumulator(tmp_path)  # the user's writer is still open: lrmon's records are readable anyway
    assert len(acc.Scalars("lr")) == 100
    assert texts(acc, "lrmon/events/warmup_end") == [(29, "warmup_end at step 29")]
    sink.close()
    writer.add_scalar("user/metric", 2.0, 1)  # still usable: the sink did not close it
    writer.close()
    assert [e.value for e in accumulator(tmp_path).Scalars("user/metric")] == [1.0, 2.0]
    assert sink.identity() == {"tensorboard_logdir": str(tmp_path.resolve())}


def test_save_state_atomic_copy_and_identity(tmp_path: Path) -> None:
    logdir = tmp_path / "logs"
    sink = TensorBoardSink(logdir)
    sink.open(run_info())
    state = tmp_path / "state.json"
    for step in (10, 20):
        state.write_text(json.dumps({"step": step}))
        sink.save_state(state, step)
        assert json.loads((logdir / STATE_FILE_NAME).read_text()) == {"step": step}
    assert sorted(p.name for p in logdir.iterdir() if not p.name.startswith("events.")) == [STATE_FILE_NAME]
    assert sink.identity() == {"tensorboard_logdir": str(logdir.resolve())}
    sink.close()


def test_no_io_in_constructor_and_misuse_raises(tmp_path: Path) -> None:
    logdir = tmp_path / "never"
    sink = TensorBoardSink(logdir)
    assert not logdir.exists()  # constructor: no I/O
    with pytest.raises(RuntimeError, match="before writing"):
        sink.write_scalars(batches(CONFIG, 0, 50)[0])
    sink.open(run_info())
    with pytest.raises(RuntimeError, match="called twice"):
        sink.open(run_info())
    sink.close()
    sink.write_events(events(CONFIG, 50))  # after close: nothing, no error
    sink.flush()
    sink.close()


@pytest.mark.parametrize("replace_with_file", [False, True])
def test_removed_logdir_raises_instead_of_losing_data(tmp_path: Path, replace_with_file: bool) -> None:
    logdir = tmp_path / "tb"
    sink = TensorBoardSink(logdir)
    sink.open(run_info())
    sink.write_scalars(batches(CONFIG, 0, 64)[0])
    sink.flush()
    shutil.rmtree(logdir)
    if replace_with_file:
        logdir.write_text("not a directory")
    finished, _, error = call_with_timeout(lambda: sink.write_scalars(batches(CONFIG, 64, 128)[0]), 10)
    assert finished, "write_scalars hung after the logdir was removed"
    assert isinstance(error, FileNotFoundError)
    finished, _, error = call_with_timeout(sink.flush, 10)
    assert finished and isinstance(error, OSError)


@pytest.mark.parametrize("users_writer", [False, True])
def test_full_disk_raises_within_bounded_time(tmp_path: Path, users_writer: bool) -> None:
    """RLIMIT_FSIZE makes writes past 64 KiB fail with EFBIG, as a full disk fails with ENOSPC."""
    from tensorboardX import SummaryWriter

    writer = SummaryWriter(str(tmp_path)) if users_writer else None
    sink = TensorBoardSink(writer if users_writer else tmp_path)
    sink.open(run_info())
    big = batches(CONFIG, 0, 20_000, size=20_000)[0]  # ~1 MB of events
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, hard))
    try:
        finished, _, error = call_with_timeout(lambda: (sink.write_scalars(big), sink.flush()), 20)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert finished, "the sink hung on a full disk"
    assert isinstance(error, OSError), error
    with suppress(OSError):
        sink.close()
    if writer is not None:
        with suppress(OSError):
            writer.close()


def test_monitor_with_memory_and_tensorboard_sinks(tmp_path: Path) -> None:
    memory = monitored_run(TensorBoardSink(tmp_path), N, log_every=1, flush_every=64)
    acc = accumulator(tmp_path)
    for tag in ("lr", "loss", "lrmon/phase"):
        mem_steps, mem_values = zip(*memory.scalars[tag])
        got_steps, got = scalars(acc, tag)
        np.testing.assert_array_equal(got_steps, mem_steps)
        np.testing.assert_array_equal(got, np.asarray(mem_values).astype(np.float32))
    assert len(memory.events) == 5
    for step, kind in memory.events:
        assert [s for s, _ in texts(acc, f"lrmon/events/{kind}")] == [step]
    assert read_config(tmp_path) == json.loads(json.dumps(memory.config))


def test_monitor_disables_a_tensorboard_sink_whose_logdir_vanished(tmp_path: Path) -> None:
    memory = lrmon.MemorySink()
    schedule = lrmon.WarmupCosineSchedule(base_lr=1e-3, warmup_steps=30, total_steps=250)
    logdir = tmp_path / "tb"
    monitor = lrmon.LRMonitor(schedule, sinks=[memory, TensorBoardSink(logdir)], flush_every=32)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for t in range(N):
            if t == 100:
                shutil.rmtree(logdir)
            monitor.step(loss=1.0)
        monitor.close()
    failures = [w for w in caught if issubclass(w.category, lrmon.SinkFailedWarning)]
    assert len(failures) == 1 and "TensorBoardSink" in str(failures[0].message)
    assert [s for s, _ in memory.scalars["lr"]] == list(range(N))  # training and the other sink went on
    assert not os.path.exists(logdir)


def test_non_finite_metrics_are_recorded_not_rejected(tmp_path: Path) -> None:
    sink = TensorBoardSink(tmp_path)
    sink.open(run_info())
    steps = np.arange(3)
    sink.write_scalars({"loss": lrmon.Series(steps, np.array([np.nan, np.inf, -np.inf]))})
    sink.close()
    values = [e.value for e in accumulator(tmp_path).Scalars("loss")]
    assert np.isnan(values[0]) and values[1:] == [np.inf, -np.inf]


def figure_pixels(image) -> np.ndarray:
    """A TensorBoard image record's PNG decoded with matplotlib (height, width, RGBA), checked against its size."""
    from matplotlib.image import imread

    assert (image.width, image.height) == FIGURE_SIZE
    pixels = imread(io.BytesIO(image.encoded_image_string), format="png")
    assert pixels.shape == (FIGURE_SIZE[1], FIGURE_SIZE[0], 4)
    return pixels


def has_color(pixels: np.ndarray, hex_color: str) -> bool:
    """Whether some pixel is exactly ``hex_color`` (a line drawn in it)."""
    rgb = (pixels[..., :3] * 255).round().astype(np.int64)
    want = [int(hex_color[i:i + 2], 16) for i in (1, 3, 5)]
    return bool((rgb == want).all(axis=-1).any())


def test_lr_vs_loss_figure_at_each_save_and_at_close(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    memory = monitored_run(TensorBoardSink(tmp_path, figure_every_s=0), N, flush_every=64, save_every=150,
                           state_dir=tmp_path / "s")
    saves = [step for step, _ in memory.saved_states]
    assert saves == [150, 300]
    images = accumulator(tmp_path).Images(FIGURE_TAG)
    assert [image.step for image in images] == saves + [N]  # at save_state and at close, never per write
    pixels = [figure_pixels(image) for image in images]
    for picture in pixels:
        assert has_color(picture, "#1f77b4") and has_color(picture, "#d62728")  # the LR and the loss curves
    assert not np.array_equal(pixels[0], pixels[1])  # each figure shows the run so far


def test_without_matplotlib_the_figure_is_skipped_with_one_warning(tmp_path: Path, monkeypatch) -> None:
    for name in [name for name in sys.modules if name.split(".")[0] == "matplotlib"] + ["matplotlib"]:
        monkeypatch.setitem(sys.modules, name, None)  # as if matplotlib were not installed
    sink = TensorBoardSink(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        write_run(sink, stop=100)
        state = tmp_path / "state.json"
        state.write_text("{}")
        sink.save_state(state, 50)
        sink.save_state(state, 100)
        sink.close()
    notes = [str(w.message) for w in caught if "figure" in str(w.message)]
    assert len(notes) == 1 and "pip install 'lrmon[plot]'" in notes[0], notes
    acc = accumulator(tmp_path)
    assert FIGURE_TAG not in acc.Tags()["images"] and len(acc.Scalars("lr")) == 100
