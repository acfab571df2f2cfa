"""The real TensorBoard server shows a monitored run: the ``lr`` and ``loss`` series, the events, and the
``lr vs loss`` custom-scalars chart, read through TensorBoard's own HTTP API (what its web UI requests)."""

from __future__ import annotations

import json
import os
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

from lrmon import LRMonitor, WarmupCosineSchedule
from lrmon.curve import CurveConfig
from lrmon.integrations.tensorboard import TensorBoardSink

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


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read().decode("utf-8"))


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


def test_tensorboard_shows_lr_loss_events_and_the_lr_vs_loss_chart(tmp_path):
    command = tensorboard_command()
    logdir = tmp_path / "logs"
    schedule = WarmupCosineSchedule(list(CONFIG.base_lrs), CONFIG.warmup_steps, CONFIG.total_steps,
                                    CONFIG.warmup_start_lr, CONFIG.eta_min)
    with LRMonitor(schedule, [TensorBoardSink(logdir / RUN)], flush_every=16) as monitor:
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
        plugins = poll(f"{base}/data/plugins_listing",
                       lambda p: p.get("scalars", {}).get("enabled") and p.get("custom_scalars", {}).get("enabled"),
                       server, deadline, log)
        assert plugins["text"]["enabled"]

        tags = poll(f"{base}/data/plugin/scalars/tags", lambda t: {"lr", "loss"} <= set(t.get(RUN, {})),
                    server, deadline, log)
        assert set(tags[RUN]) == {"lr", "loss", "lrmon/phase"}

        def series(tag: str) -> np.ndarray:  # rows of [wall time, step, value]
            query = urllib.parse.urlencode({"run": RUN, "tag": tag})
            return np.asarray(get_json(f"{base}/data/plugin/scalars/scalars?{query}"), np.float64)

        lr, loss = series("lr"), series("loss")
        np.testing.assert_array_equal(lr[:, 1], np.arange(STEPS))
        np.testing.assert_allclose(lr[:, 2], np.asarray(CONFIG.lr_at(np.arange(STEPS)))[:, 0], rtol=1e-6, atol=1e-9)
        np.testing.assert_array_equal(loss[:, 1], np.arange(STEPS))
        np.testing.assert_allclose(loss[:, 2], 2.0 * np.exp(-np.arange(STEPS) / 20) + 0.1, rtol=1e-6)

        layout = get_json(f"{base}/data/plugin/custom_scalars/layout")
        (category,) = [c for c in layout["category"] if c["title"] == "lrmon"]
        charts = {chart["title"]: chart for chart in category["chart"]}
        regexes = charts["lr vs loss"]["multiline"]["tag"]
        assert regexes == ["^lr$", "^loss$"]
        for regex, tag in zip(regexes, ["lr", "loss"]):  # what the chart draws: each regex selects its series
            query = urllib.parse.urlencode({"run": RUN, "tag": regex})
            answer = get_json(f"{base}/data/plugin/custom_scalars/scalars?{query}")
            assert answer["regex_valid"] and list(answer["tag_to_events"]) == [tag]
            assert len(answer["tag_to_events"][tag]) == STEPS

        texts = get_json(f"{base}/data/plugin/text/tags")
        assert {f"lrmon/events/{kind}" for kind in CONFIG.event_steps()} <= set(texts[RUN])
    finally:
        stop(server)
    assert server.returncode is not None
