"""The real TensorBoard server shows a monitored run: the ``lr`` and ``loss`` series, the events, the custom-scalars
charts (one per quantity) and the LR-vs-loss figure, read through TensorBoard's own HTTP API (what its web UI
requests); and the figure's x axis leaves room for event lines at the first and last step."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from lrmon import PHASE_TAG, LRMonitor, WarmupCosineSchedule
from lrmon.curve import CurveConfig
from lrmon.integrations.tensorboard import FIGURE_TAG, LR_CHART, PHASE_CHART, TensorBoardSink
from lrmon.integrations._figure import FIGURE_SIZE

STARTUP_LIMIT_S = 150  # TensorBoard imports TensorFlow when installed: ~10 s on a quiet machine
RUN, STEPS = "demo", 70
CONFIG = CurveConfig(0.1, 10, 60, 0.0, 0.001)


def tensorboard_command() -> str:
    found = shutil.which("tensorboard", path=str(Path(sys.executable).parent)) or shutil.which("tensorboard")
    if found is None:
        pytest.skip("the tensorboard command is not installed (pip install 'lrmon[tensorboard]')")
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get_bytes(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


def get_json(url: str) -> Any:
    return json.loads(get_bytes(url).decode("utf-8"))


def poll(url: str, ready: Callable[[Any], bool], server: subprocess.Popen, deadline: float, log: Path) -> Any:
    """GET ``url`` until ``ready(json)`` holds; fail with the server's log if it dies or the deadline passes."""
    last: Any = None
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"tensorboard exited with status {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            last = get_json(url)
            if ready(last):
                return last
        except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError):
            pass
        time.sleep(0.25)
    pytest.fail(f"{url} not ready after {STARTUP_LIMIT_S} s (last answer {last!r:.300}):\n{log.read_text()[-3000:]}")


def stop(server: subprocess.Popen) -> None:
    """Stop the server and its data-server child (they share the process group started for them)."""
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=10)
            return
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(server.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    server.wait(timeout=10)


def test_tensorboard_shows_lr_loss_events_charts_and_the_figure(tmp_path):
    command = tensorboard_command()
    pytest.importorskip("matplotlib")
    logdir = tmp_path / "logs"
    schedule = WarmupCosineSchedule(list(CONFIG.base_lrs), CONFIG.warmup_steps, CONFIG.total_steps,
                                    CONFIG.warmup_start_lr, CONFIG.eta_min)
    with LRMonitor(schedule, [TensorBoardSink(logdir / RUN, figure_every_s=0)], flush_every=16, save_every=STEPS // 2,
                   state_dir=tmp_path / "state") as monitor:
        for step in range(STEPS):
            monitor.step(loss=2.0 * np.exp(-step / 20) + 0.1)

    port, log = free_port(), tmp_path / "tensorboard.log"
    base = f"http://127.0.0.1:{port}"
    with open(log, "w") as log_file:
        server = subprocess.Popen(
            [command, "--logdir", str(logdir), "--host", "127.0.0.1", "--port", str(port)],
            stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        )
    try:
        deadline = time.monotonic() + STARTUP_LIMIT_S
        needed = ("scalars", "custom_scalars", "images")
        plugins = poll(f"{base}/data/plugins_listing", lambda p: all(p.get(name, {}).get("enabled") for name in needed),
                       server, deadline, log)
        assert plugins["text"]["enabled"]

        tags = poll(f"{base}/data/plugin/scalars/tags", lambda t: {"lr", "loss"} <= set(t.get(RUN, {})),
                    server, deadline, log)
        assert set(tags[RUN]) == {"lr", "loss", "lrmon/phase"}

        def series(tag: str) -> np.ndarray:  # rows of [wall time, step, value]
            query = urllib.parse.urlencode({"run": RUN, "tag": tag})
            return np.asarray(get_json(f"{base}/data/plugin/scalars/scalars?{query}"), np.float64)

        def chart_series(regex: str) -> dict[str, list]:  # what a custom-scalars chart draws: tag -> events
            query = urllib.parse.urlencode({"run": RUN, "tag": regex})
            answer = get_json(f"{base}/data/plugin/custom_scalars/scalars?{query}")
            assert answer["regex_valid"], regex
            return answer["tag_to_events"]

        lr, loss = series("lr"), series("loss")
        np.testing.assert_array_equal(lr[:, 1], np.arange(STEPS))
        np.testing.assert_allclose(lr[:, 2], np.asarray(CONFIG.lr_at(np.arange(STEPS)))[:, 0], rtol=1e-6, atol=1e-9)
        np.testing.assert_array_equal(loss[:, 1], np.arange(STEPS))
        np.testing.assert_allclose(loss[:, 2], 2.0 * np.exp(-np.arange(STEPS) / 20) + 0.1, rtol=1e-6)

        layout = get_json(f"{base}/data/plugin/custom_scalars/layout")
        (category,) = [c for c in layout["category"] if c["title"] == "lrmon"]
        charts = {chart["title"]: chart for chart in category["chart"]}
        assert list(charts) == [LR_CHART, "loss", PHASE_CHART]  # one chart, so one y-axis, per quantity
        assert charts["loss"]["multiline"]["tag"] == ["^loss$"]
        assert list(chart_series("^loss$")) == ["loss"] and len(chart_series("^loss$")["loss"]) == STEPS
        for title, tag in ((LR_CHART, "lr"), (PHASE_CHART, PHASE_TAG)):
            # a Margin chart with margins equal to the value: TensorBoard draws it unsmoothed
            assert charts[title]["margin"]["series"] == [{"value": tag, "lower": tag, "upper": tag}]
            drawn = chart_series(f"({re.escape(tag)})")  # the margin card asks for its tags as such a regex
            assert [event[1] for event in drawn[tag]] == list(range(STEPS))
        np.testing.assert_array_equal([event[2] for event in chart_series("(lrmon/phase)")[PHASE_TAG]],
                                      CONFIG.phase_at(np.arange(STEPS)))

        image_tags = get_json(f"{base}/data/plugin/images/tags")
        assert FIGURE_TAG in image_tags[RUN]
        query = urllib.parse.urlencode({"run": RUN, "tag": FIGURE_TAG})
        images = get_json(f"{base}/data/plugin/images/images?{query}")
        assert [image["step"] for image in images] == [STEPS // 2, STEPS]  # each save_state and close
        from matplotlib.image import imread

        last = get_bytes(f"{base}/data/plugin/images/individualImage?{images[-1]['query']}")
        assert imread(io.BytesIO(last), format="png").shape == (FIGURE_SIZE[1], FIGURE_SIZE[0], 4)

        texts = get_json(f"{base}/data/plugin/text/tags")
        assert {f"lrmon/events/{kind}" for kind, _ in CONFIG.events()} <= set(texts[RUN])
    finally:
        stop(server)
    assert server.returncode is not None


def test_figure_leaves_room_for_event_lines_at_the_first_and_last_step():
    """``lrmon plot`` and the sinks' figure: an event at the run's first or last step is drawn inside the axes,
    not on their edge (where the frame hides it)."""
    pytest.importorskip("matplotlib")
    from lrmon import plotting

    steps = np.arange(STEPS)
    lrs = np.asarray(CONFIG.lr_at(steps))[:, 0]
    from lrmon.runs import RunData

    data = RunData("test run", {"lr": (steps, lrs)}, (steps, 1.0 / (1.0 + steps)), None,
                            [(0, "warmup_start", ""), (STEPS - 1, "end", "")], CONFIG)
    figure = plotting._draw_run(data, plotting.PLOT_SIZE, None)
    for ax in figure.axes[:2]:  # the LR and loss panels (on the step axis)
        low, high = ax.get_xlim()
        assert low < 0 and high > STEPS - 1
