"""clu in both directions with real clu writers (TensorFlow's summary writer underneath), read back from files."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import lrmon
from lrmon.integrations.clu import CluSink, as_metric_writer
from lrmon.integrations.tensorboard import TensorBoardSink, read_config
from lrmon.integrations.wandb import STEP_METRIC, WandbSink, read_offline_run

from _trackers import (
    CONFIG, accumulator, curve, events, monitored_run, run_info, texts, wandb_env, write_run,
)

N = 300
__all__ = ["wandb_env"]  # the fixture, imported for pytest


def tensor_values(acc, tag: str) -> tuple[list[int], np.ndarray]:
    """clu's TF writer stores scalars as tensors: ``(steps, values)`` of ``tag``."""
    from tensorboard.util import tensor_util

    items = acc.Tensors(tag)
    return [e.step for e in items], np.array([tensor_util.make_ndarray(e.tensor_proto).item() for e in items])


def test_importing_lrmon_and_its_integrations_imports_no_tracker() -> None:
    code = textwrap.dedent("""
        import sys
        import lrmon, lrmon.integrations.tensorboard, lrmon.integrations.wandb, lrmon.integrations.clu
        from lrmon.integrations.clu import CluSink
        from lrmon.integrations.tensorboard import TensorBoardSink
        from lrmon.integrations.wandb import WandbSink
        TensorBoardSink("/nonexistent/never"); WandbSink(dir="/nonexistent/never"); CluSink.__doc__
        loaded = [m for m in ("wandb", "tensorboardX", "tensorboard", "clu", "tensorflow") if m in sys.modules]
        assert not loaded, loaded
        sys.modules["clu"] = None  # as if clu were not installed
        try:
            lrmon.integrations.clu.as_metric_writer(lrmon.MemorySink())
        except ImportError as error:
            assert "pip install 'lrmon[clu]'" in str(error), error
        else:
            raise AssertionError("no ImportError without clu")
        try:
            from lrmon.integrations.clu import SinkMetricWriter
        except ImportError as error:
            assert "lrmon[clu]" in str(error)
        else:
            raise AssertionError("no ImportError without clu")
        print("ok")
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]


def test_clu_sink_into_async_summary_writer(tmp_path: Path) -> None:
    from clu import metric_writers

    writer = metric_writers.AsyncWriter(metric_writers.SummaryWriter(str(tmp_path)))
    sink = CluSink(writer)
    write_run(sink, stop=N)
    sink.close()

    acc = accumulator(tmp_path)
    steps, lrs, loss = curve(CONFIG, 0, N)
    for tag, expected in (("lr", lrs[:, 0]), ("loss", loss), ("lrmon/phase", CONFIG.phase_at(steps))):
        got_steps, got = tensor_values(acc, tag)
        assert got_steps == steps.tolist(), tag
        np.testing.assert_array_equal(got, np.asarray(expected, np.float32))
    for event in events(CONFIG, N):
        assert texts(acc, f"lrmon/events/{event.kind}") == [(event.step, event.detail)]
    hparams = acc.PluginTagToContent("hparams")
    assert hparams, "write_hparams left no HParams record"
    assert any(b"schedule/warmup_steps" in content for content in hparams.values())


def test_sink_metric_writer_over_tensorboard_sink_in_multi_and_async_writers(tmp_path: Path) -> None:
    from clu import metric_writers

    sink_writer = as_metric_writer(TensorBoardSink(tmp_path / "lrmon"), run_info())
    assert isinstance(sink_writer, metric_writers.MetricWriter)
    plain = metric_writers.SummaryWriter(str(tmp_path / "clu"))
    writer = metric_writers.AsyncWriter(metric_writers.MultiWriter([sink_writer, plain]))
    steps, lrs, loss = curve(CONFIG, 0, N)
    writer.write_hparams({"schedule/warmup_steps": 30, "optimizer": "adamw"})
    for step in steps.tolist():
        writer.write_scalars(step, {"lr": lrs[step, 0], "loss": np.float32(loss[step])})
    for event in events(CONFIG, N):
        writer.write_texts(event.step, {f"lrmon/events/{event.kind}": event.detail})
    writer.write_texts(5, {"notes": "free text"})
    with pytest.warns(UserWarning, match="write_images"):
        writer.write_images(0, {"img": np.zeros((4, 4, 3), np.float32)})
        writer.flush()  # AsyncWriter: the warning is raised on its worker thread, surfaced here via the queue
    with pytest.warns(UserWarning, match="write_histograms"):
        writer.write_histograms(0, {"h": np.arange(10.0)})
        writer.flush()
    writer.close()

    acc = accumulator(tmp_path / "lrmon")
    got = acc.Scalars("lr")
    assert [e.step for e in got] == steps.tolist()
    np.testing.assert_array_equal([e.value for e in got], lrs[:, 0].astype(np.float32))
    np.testing.assert_array_equal([e.value for e in acc.Scalars("loss")], loss.astype(np.float32))
    for event in events(CONFIG, N):
        assert texts(acc, f"lrmon/events/{event.kind}") == [(event.step, event.detail)]
    assert texts(acc, "notes") == [(5, "free text")]
    assert read_config(tmp_path / "lrmon") == {"schedule/warmup_steps": 30, "optimizer": "adamw"}
    clu_steps, clu_lr = tensor_values(accumulator(tmp_path / "clu"), "lr")  # the other writer got the same
    assert clu_steps == steps.tolist()
    np.testing.assert_array_equal(clu_lr, lrs[:, 0].astype(np.float32))


def test_sink_metric_writer_over_wandb_sink(wandb_env: Path) -> None:
    from clu import metric_writers

    sink = WandbSink(dir=wandb_env)
    writer = metric_writers.AsyncWriter(as_metric_writer(sink, run_info()))
    steps, lrs, _ = curve(CONFIG, 0, 100)
    for step in steps.tolist():
        writer.write_scalars(step, {"lr": lrs[step, 0]})
    writer.write_texts(29, {"lrmon/events/warmup_end": "end of warmup"})
    writer.write_hparams({"batch_size": 64})
    writer.close()
    run = read_offline_run(sink.identity()["wandb_run_dir"])
    lr_rows = [(row[STEP_METRIC], row["lr"]) for row in run["history"] if "lr" in row]
    assert [s for s, _ in lr_rows] == steps.tolist()
    np.testing.assert_allclose([v for _, v in lr_rows], lrs[:, 0], rtol=1e-12)
    assert run["summary"]["lrmon/events/warmup_end"] == 29
    assert run["config"]["lrmon"] == {"batch_size": 64}


def test_monitor_with_memory_and_clu_sinks(tmp_path: Path) -> None:
    from clu import metric_writers

    clu_sink = CluSink(metric_writers.AsyncWriter(metric_writers.SummaryWriter(str(tmp_path))))
    memory = monitored_run(clu_sink, N, log_every=2, flush_every=50)
    acc = accumulator(tmp_path)
    for tag in ("lr", "loss", "lrmon/phase"):
        mem_steps, mem_values = zip(*memory.scalars[tag])
        got_steps, got = tensor_values(acc, tag)
        assert got_steps == list(mem_steps) == list(range(0, N, 2))
        np.testing.assert_array_equal(got, np.asarray(mem_values, np.float32))
    for step, kind in memory.events:
        assert [s for s, _ in texts(acc, f"lrmon/events/{kind}")] == [step]
    assert json.loads(json.dumps(memory.config))["warmup_steps"] == 30


def test_clu_sink_rejects_non_writers() -> None:
    with pytest.raises(TypeError):
        CluSink(object())


def test_sink_metric_writer_writes_nothing_on_other_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    import jax

    monkeypatch.setattr(jax, "process_index", lambda: 1)
    sink = lrmon.MemorySink()
    writer = as_metric_writer(sink, run_info())
    writer.write_hparams({"a": 1})
    writer.write_scalars(0, {"lr": 0.1})
    writer.write_summaries(1, {"lr": np.float32(0.1)})
    writer.write_texts(2, {"lrmon/events/warmup_end": "end", "notes": "text"})
    writer.flush()
    writer.close()
    assert sink.info is None and not sink.scalars and not sink.events and not sink.config and not sink.closed
