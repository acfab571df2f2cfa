"""The host buffer: references kept per step, gathered in one batch at take(), metrics missing on some rows."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lrmon.curve import CurveConfig
from lrmon.host_buffer import HostBuffer, padded_steps

CONFIG = CurveConfig([0.1], 10, 100)


def make(flush_every=8, check=lambda metrics: None):
    return HostBuffer(flush_every, 1, jax.jit(CONFIG.lr_at), check)


def test_take_gathers_device_scalars_and_the_curve_at_the_steps():
    buffer = make()
    for t in range(5):
        buffer.append(t, {"loss": jnp.float32(t) / 2}, None)
    pending = buffer.take()
    assert buffer.take() is None  # emptied
    steps, lrs, metrics = pending.values()
    assert steps.tolist() == list(range(5))
    np.testing.assert_allclose(lrs[:, 0], CONFIG.exact_lr_at(np.arange(5))[:, 0], rtol=1e-6)
    assert metrics["loss"][1].tolist() == [0.0, 0.5, 1.0, 1.5, 2.0]


def test_a_metric_missing_on_some_rows_keeps_its_own_steps_and_applied_lrs_are_used():
    buffer = make()
    buffer.append(0, {"loss": 1.0}, [jnp.float32(0.25)])
    buffer.append(1, {"loss": 2.0, "acc": 0.5}, [jnp.float32(0.5)])
    steps, lrs, metrics = buffer.take().values()
    assert lrs[:, 0].tolist() == [0.25, 0.5]  # what the optimizer applied, not the curve
    assert metrics["acc"][0].tolist() == [1] and metrics["loss"][0].tolist() == [0, 1]


def test_metrics_are_checked_when_their_names_change_only():
    seen = []
    buffer = make(check=lambda metrics: seen.append(sorted(metrics)))
    for t in range(3):
        buffer.append(t, {"loss": 1.0}, None)
    buffer.append(3, {"loss": 1.0, "acc": 1.0}, None)
    assert seen == [["loss"], ["acc", "loss"]]
    with pytest.raises(ValueError):
        make(check=lambda metrics: (_ for _ in ()).throw(ValueError("bad"))).append(0, {"x": 1}, None)


def test_padded_steps_have_one_shape():
    assert padded_steps(np.arange(3), 8).tolist() == [0, 1, 2, 0, 0, 0, 0, 0]
