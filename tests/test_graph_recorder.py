"""The in-graph buffer and its recorder: names are static data of the buffer; payloads decode with their names."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from lrmon import LRMonitor, MemorySink, WarmupCosineSchedule
from lrmon.graph import check_consecutive, empty_buffer
from lrmon.graph_recorder import GraphRecorder


def scan_loop(monitor, schedule):
    def body(buffer, t):
        return monitor.graph_record(buffer, t, loss=jnp.cos(t.astype(jnp.float32)),
                                    **({"acc": t.astype(jnp.float32)} if "acc" in buffer.names else {})), None

    return jax.jit(lambda buffer, ts: lax.scan(body, buffer, ts)[0])


def test_a_compiled_function_decodes_its_rows_with_the_names_it_was_traced_with():
    sink = MemorySink()
    schedule = WarmupCosineSchedule(0.1, 4, 40)
    monitor = LRMonitor(schedule, [sink], graph_capacity=8)
    run = scan_loop(monitor, schedule)
    buffer = monitor.graph_buffer(["loss"])
    other = monitor.graph_buffer(["acc", "loss"])  # a second buffer, with other columns, made before the run
    first = run(buffer, jnp.arange(0, 20))  # traced with ["loss"]: its callbacks decode with ["loss"]
    assert other.names == ("acc", "loss") and first.names == ("loss",)
    monitor.graph_drain(first)
    monitor.graph_drain(run(other, jnp.arange(20, 40)))  # a new structure: traced again with its own names
    monitor.close()
    assert [s for s, _ in sink.scalars["loss"]] == list(range(40))
    np.testing.assert_allclose([v for _, v in sink.scalars["loss"]], np.cos(np.arange(40, dtype=np.float32)),
                               rtol=1e-6)
    assert [s for s, _ in sink.scalars["acc"]] == list(range(20, 40))
    assert [v for _, v in sink.scalars["acc"]] == [float(s) for s in range(20, 40)]


def test_record_refuses_metrics_other_than_the_buffer_names():
    recorder = GraphRecorder(4, 1, 1, lambda names: None, lambda *args: None)
    buffer = recorder.buffer(["loss"])
    with pytest.raises(ValueError, match=r"exactly the names the buffer was made for: \('loss',\)"):
        recorder.record(buffer, 0, jnp.ones(1), {"acc": 1.0})


def test_drain_hands_rows_in_order_with_the_last_step_and_notes_a_gap_once():
    received = []
    recorder = GraphRecorder(4, 1, 1, lambda names: None,
                             lambda steps, values, last: received.append((steps.tolist(), values(), last)))
    buffer = recorder.buffer(["loss"], next_step=5)
    assert int(buffer.last_step) == 4
    for step in (5, 6):
        buffer = recorder.record(buffer, step, jnp.asarray([0.5]), {"loss": float(step)})
    recorder.drain(buffer)
    (steps, (value_steps, lrs, metrics), last), = received
    assert steps == [5, 6] and last == 6 and lrs[:, 0].tolist() == [0.5, 0.5]
    assert metrics["loss"][1].tolist() == [5.0, 6.0]
    assert recorder.take_misuse() is None
    gapped = check_consecutive(empty_buffer(4, 1, (), last_step=6), 9)  # step 9 after 6: someone else stepped
    recorder.drain(gapped)
    assert "step 9" in recorder.take_misuse() and recorder.take_misuse() is None
