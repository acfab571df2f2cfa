"""The curves of braintools' schedulers (``lrmon.schedules.braintools``) against real braintools objects.

Reference values: a fresh braintools scheduler stepped on the host, ``get_lr()`` and ``current_lrs`` read at every
``last_epoch`` ``t = 0 .. N-1``, and, through a real ``braintools.optim.SGD`` (plain SGD, ``grad = 1``, the
parameter reset to 0 before each update), the LR the optimizer actually applies. Float comparisons use tolerances in
float32 ulps of the curve's peak LR (as ``tests/test_schedule.py``): ``LR_ULPS`` for the float32 ``lr_at`` (eager,
jitted, scalar and vectorised) against braintools' float32 values (what its optimizer applies); ``EXACT_ULPS`` for
the float64 ``exact_lr_at`` against them (braintools' own float32 arithmetic is up to ~3 ulps of the peak from the
float64 formula: CyclicLR ``exp_range``'s ``t / step_size_up - 2 c + 1`` cancels).
"""

from __future__ import annotations

import functools
import json
import sys

import braintools
import brainstate
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lrmon.curve import CurveConfig
from lrmon.schedules import curve_from_dict
from lrmon.schedules.braintools import (
    SUPPORTED,
    ChainedSchedulerCurve,
    ConstantLRCurve,
    CosineAnnealingLRCurve,
    CosineAnnealingWarmRestartsCurve,
    CyclicLRCurve,
    ExponentialLRCurve,
    LinearLRCurve,
    SequentialLRCurve,
    StepLRCurve,
    curve_of,
)

O = braintools.optim
LR_ULPS = 2
EXACT_ULPS = 4

# id -> (a fresh braintools scheduler, number of steps compared)
CASES = {
    "step": (lambda: O.StepLR(0.1, step_size=3, gamma=0.5), 20),
    "step_2groups_long": (lambda: O.StepLR([0.1, 0.02], step_size=1, gamma=0.99), 300),
    "multistep_2groups": (lambda: O.MultiStepLR([0.1, 0.3], milestones=[5, 10, 10, 20], gamma=0.1), 25),
    "multistep_at_0": (lambda: O.MultiStepLR(0.5, milestones=[3, 0], gamma=0.5), 6),
    "exponential": (lambda: O.ExponentialLR(0.1, gamma=0.95), 50),
    "exponential_2groups_long": (lambda: O.ExponentialLR([1.0, 0.5], gamma=0.999), 400),
    "cosine": (lambda: O.CosineAnnealingLR(0.1, T_max=10, eta_min=0.001), 14),
    "cosine_2groups": (lambda: O.CosineAnnealingLR([0.1, 0.05], T_max=7), 10),
    "warm_restarts": (lambda: O.CosineAnnealingWarmRestarts(0.1, T_0=5, eta_min=0.01), 23),
    "warm_restarts_2groups_mult2": (lambda: O.CosineAnnealingWarmRestarts([0.1, 0.2], T_0=2, T_mult=2), 33),
    "warm_restarts_mult3": (lambda: O.CosineAnnealingWarmRestarts(0.1, T_0=3, T_mult=3), 45),
    "one_cycle": (lambda: O.OneCycleLR(0.1, total_steps=50), 55),
    "one_cycle_2groups_linear": (
        lambda: O.OneCycleLR([0.1, 0.2], total_steps=100, pct_start=0.29, anneal_strategy="linear"), 105),
    "one_cycle_fractional_warmup": (
        lambda: O.OneCycleLR(1.0, total_steps=10, pct_start=0.25, div_factor=10.0, final_div_factor=100.0), 13),
    "linear": (lambda: O.LinearLR(0.1, start_factor=0.1, total_iters=5), 8),
    "linear_2groups_down": (lambda: O.LinearLR([0.1, 0.2], start_factor=1.0, end_factor=0.5, total_iters=4), 7),
    "linear_instant": (lambda: O.LinearLR(0.1, start_factor=0.1, end_factor=0.7, total_iters=0), 3),
    "constant": (lambda: O.ConstantLR(0.1, factor=0.5, total_iters=3), 6),
    "constant_2groups_none": (lambda: O.ConstantLR([0.1, 0.2], factor=0.25, total_iters=0), 3),
    "polynomial": (lambda: O.PolynomialLR(0.1, total_iters=10), 13),
    "polynomial_2groups_square": (lambda: O.PolynomialLR([0.1, 0.2], total_iters=7, power=2.0), 10),
    "polynomial_sqrt": (lambda: O.PolynomialLR(0.1, total_iters=5, power=0.5), 8),
    "cyclic": (lambda: O.CyclicLR(0.01, max_lr=0.1, step_size_up=4), 20),
    "cyclic_2groups_triangular2": (
        lambda: O.CyclicLR([0.01, 0.02], max_lr=[0.1, 0.2], step_size_up=3, mode="triangular2"), 25),
    "cyclic_exp_range": (lambda: O.CyclicLR(0.01, max_lr=0.1, step_size_up=5, mode="exp_range", gamma=0.99), 40),
    "cyclic_up2_down5": (lambda: O.CyclicLR(0.01, max_lr=0.1, step_size_up=2, step_size_down=5), 22),
    "cyclic_up5_down2": (lambda: O.CyclicLR(0.01, max_lr=0.1, step_size_up=5, step_size_down=2), 22),
    "piecewise": (lambda: O.PiecewiseConstantSchedule(0.1, boundaries=[3, 7], values=[0.1, 0.05, 0.01]), 10),
    "piecewise_2groups": (lambda: O.PiecewiseConstantSchedule(
        [0.1, 0.2], boundaries=[0, 5, 5, 9], values=[1.0, 0.5, 0.4, 0.3, 0.1]), 12),
    "sequential": (lambda: O.SequentialLR(
        [O.LinearLR(0.1, start_factor=0.1, total_iters=3), O.CosineAnnealingLR(0.1, T_max=4)], milestones=[3]), 9),
    "sequential_2groups_3": (lambda: O.SequentialLR(
        [O.StepLR([0.1, 0.2], step_size=2, gamma=0.5), O.ExponentialLR([0.1, 0.2], gamma=0.9),
         O.CosineAnnealingWarmRestarts([0.1, 0.2], T_0=2)], milestones=[3, 6]), 9),
    "chained": (lambda: O.ChainedScheduler(
        [O.ConstantLR(0.1, factor=0.5, total_iters=3), O.ExponentialLR(0.1, gamma=0.9)]), 10),
    "chained_2groups_3": (lambda: O.ChainedScheduler(
        [O.StepLR([0.1, 0.2], step_size=2, gamma=0.5), O.CosineAnnealingWarmRestarts([0.1, 0.2], T_0=2, T_mult=2),
         O.PiecewiseConstantSchedule([0.1, 0.2], boundaries=[5], values=[0.1, 0.05])]), 12),
    "warmup_cosine_2groups": (lambda: O.WarmupCosineSchedule(
        [0.1, 0.2], warmup_steps=3, total_steps=10, warmup_start_lr=0.01, eta_min=0.001), 13),
}

# One configuration per class for the optimizer check.
OPTIMIZER_CASES = ["step", "multistep_2groups", "exponential", "cosine", "warm_restarts_2groups_mult2", "one_cycle",
                   "linear", "constant", "polynomial", "cyclic_exp_range", "piecewise", "sequential",
                   "chained_2groups_3", "warmup_cosine_2groups"]


def ulps_of_peak(curve, ulps: float) -> float:
    return ulps * float(np.spacing(np.float32(curve.peak_lr)))


def as_float64(values) -> np.ndarray:
    return np.asarray([float(np.asarray(v)) for v in values], np.float64)


@functools.cache
def braintools_lrs(case: str) -> np.ndarray:
    """``current_lrs`` of a fresh scheduler at ``last_epoch = 0 .. N-1`` (float64 as braintools holds them; equal to
    ``get_lr()``), shape ``(N, groups)``."""
    make, n = CASES[case]
    scheduler = make()
    rows = []
    for t in range(n):
        assert int(np.asarray(scheduler.last_epoch.value)) == t
        current = as_float64(scheduler.current_lrs.value)
        np.testing.assert_array_equal(current.astype(np.float32), as_float64(scheduler.get_lr()).astype(np.float32))
        rows.append(current)
        scheduler.step()
    return np.stack(rows)


@functools.cache
def compiled(curve):
    return jax.jit(curve.lr_at)


# ---------------------------------------------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", list(CASES))
def test_lr_at_equals_the_stepped_scheduler(case):
    make, n = CASES[case]
    curve = curve_of(make())
    expected = braintools_lrs(case)
    assert curve.num_groups == expected.shape[1]
    steps = np.arange(n)
    as_applied = expected.astype(np.float32)  # what braintools' optimizer applies
    tol = ulps_of_peak(curve, LR_ULPS)
    scalar_steps = np.stack([compiled(curve)(t) for t in range(n)])
    for name, got in [("vectorised", curve.lr_at(steps)), ("jit, scalar steps", scalar_steps)]:
        got = np.asarray(got)
        assert got.dtype == np.float32 and got.shape == (n, curve.num_groups), name
        np.testing.assert_allclose(got, as_applied, rtol=0, atol=tol, err_msg=f"{case} {name}")
    exact = curve.exact_lr_at(steps)
    assert exact.dtype == np.float64 and exact.shape == (n, curve.num_groups)
    np.testing.assert_allclose(exact, expected, rtol=0, atol=ulps_of_peak(curve, EXACT_ULPS), err_msg=case)
    assert curve.peak_lr >= float(np.max(expected)) - tol


@pytest.mark.parametrize("case", OPTIMIZER_CASES)
def test_the_lr_a_braintools_optimizer_applies_is_the_curve(case):
    """Plain SGD with ``grad = 1`` from a zero parameter: ``-parameter`` after the update is the LR applied (group 0:
    braintools' optimizer scales its default group by ``current_lrs[0]``); the scheduler is stepped after each update,
    once per train step."""
    make, n = CASES[case]
    scheduler = make()
    curve = curve_of(scheduler)
    optimizer = O.SGD(lr=scheduler)
    weight = brainstate.ParamState(jnp.zeros(3))
    optimizer.register_trainable_weights({"w": weight})
    tol = ulps_of_peak(curve, LR_ULPS)
    lr_at = compiled(curve)
    for t in range(min(n, 30)):
        weight.value = jnp.zeros(3)
        optimizer.update({"w": jnp.ones(3)})
        applied = -np.asarray(weight.value, np.float64)
        assert np.all(applied == applied[0])
        assert abs(applied[0] - float(lr_at(t)[0])) <= tol, (case, t, applied[0], float(lr_at(t)[0]))
        scheduler.step()


def test_two_parameter_groups_read_the_curve_of_their_group():
    """With a second group (``add_param_group``: braintools scales it Adam-style, so its parameter change is only
    ``lr`` up to Adam's rounding), the LR the group reads (``param_groups[g]['lr']``) is ``lr_at(t)[g]``.

    Not at ``t = 0``: until the first ``scheduler.step()`` braintools' added group holds the optimizer's ``base_lr``
    (group 0's), not the scheduler's LR of its group.
    """
    scheduler = O.MultiStepLR([0.1, 0.3], milestones=[2, 4], gamma=0.1)
    curve = curve_of(scheduler)
    optimizer = O.SGD(lr=scheduler)
    w0, w1 = brainstate.ParamState(jnp.zeros(2)), brainstate.ParamState(jnp.zeros(2))
    optimizer.register_trainable_weights({"w0": w0})
    optimizer.add_param_group({"w1": w1})
    for t in range(7):
        w0.value, w1.value = jnp.zeros(2), jnp.zeros(2)
        optimizer.update({"w0": jnp.ones(2), "w1": jnp.ones(2)})
        expected = np.asarray(curve.lr_at(t))
        assert float(-w0.value[0]) == expected[0]
        if t >= 1:
            held = np.asarray([np.asarray(g["lr"].value) for g in optimizer.param_groups], np.float32)
            np.testing.assert_array_equal(held, expected)
            np.testing.assert_allclose(float(-w1.value[0]), expected[1], rtol=1e-4)
        scheduler.step()


def test_lr_at_is_traceable_and_vectorised():
    curve = SequentialLRCurve((LinearLRCurve([0.1, 0.2], 0.1, 1.0, 3), CosineAnnealingLRCurve([0.1, 0.2], 6)), (3,))
    steps = np.arange(12).reshape(3, 4)
    grid = np.asarray(curve.lr_at(steps))
    assert grid.shape == (3, 4, 2)
    np.testing.assert_array_equal(grid.reshape(12, 2), np.asarray(curve.lr_at(np.arange(12))))
    assert np.asarray(curve.lr_at(5)).shape == (2,)
    np.testing.assert_array_equal(np.asarray(jax.vmap(curve.lr_at)(jnp.arange(12))),
                                  np.asarray(compiled(curve)(np.arange(12))))
    assert curve.exact_lr_at(steps).shape == (3, 4, 2)
    assert curve.phase_at(steps).shape == (3, 4) and curve.phase_at(steps).dtype == np.int8


def test_powers_stay_at_float64_precision_for_long_runs():
    """``gamma ** t`` for large ``t`` (braintools: Python float64) rounds once to float32, where ``jnp.power`` would
    drift by ``t`` times gamma's rounding."""
    curve = ExponentialLRCurve([0.1], 0.999)
    steps = np.arange(0, 50_000, 7)
    expected = (0.1 * 0.999 ** steps.astype(np.float64)).astype(np.float32)
    big = expected > 1e-28
    got = np.asarray(compiled(curve)(steps))[:, 0]
    np.testing.assert_array_equal(got[big], expected[big])
    cyclic = CyclicLRCurve([0.01], [0.1], 2000, 2000, "triangular")
    steps = np.arange(1_000_000, 1_004_000, 3)
    expected = braintools_lr_of_cyclic(steps)
    np.testing.assert_allclose(np.asarray(compiled(cyclic)(steps))[:, 0], expected, rtol=0,
                               atol=ulps_of_peak(cyclic, LR_ULPS))


def braintools_lr_of_cyclic(steps):
    """braintools' CyclicLR ``get_lr`` at host (``int``) epochs, one by one (its float64 ``t / step_size_up``)."""
    scheduler = O.CyclicLR(0.01, max_lr=0.1, step_size_up=2000)
    values = []
    for t in steps:
        scheduler.last_epoch.value = int(t)
        values.append(float(np.asarray(scheduler.get_lr()[0])))
    return np.asarray(values, np.float32)


# ---------------------------------------------------------------------------------------------------------------
# Phases and events
# ---------------------------------------------------------------------------------------------------------------
EVENTS = {
    "step": (10, [("decay_1", 3), ("decay_2", 6), ("decay_3", 9)]),
    "multistep_2groups": (None, [("milestone_1", 5), ("milestone_2", 10), ("milestone_3", 20)]),
    "multistep_at_0": (None, [("milestone_1", 0), ("milestone_2", 3)]),
    "exponential": (None, []),
    "cosine": (None, [("end", 10)]),
    "warm_restarts": (16, [("restart_1", 5), ("restart_2", 10), ("restart_3", 15)]),
    "warm_restarts_2groups_mult2": (31, [("restart_1", 2), ("restart_2", 6), ("restart_3", 14), ("restart_4", 30)]),
    "warm_restarts_mult3": (40, [("restart_1", 3), ("restart_2", 12), ("restart_3", 39)]),
    "one_cycle": (None, [("peak", 15), ("end", 50)]),
    "one_cycle_2groups_linear": (None, [("peak", 29), ("end", 100)]),  # warmup <= 28.999999999999996
    "one_cycle_fractional_warmup": (None, [("peak", 3), ("end", 10)]),
    "linear": (None, [("ramp_end", 5)]),
    "linear_instant": (None, [("ramp_end", 0)]),
    "constant": (None, [("factor_end", 2)]),
    "constant_2groups_none": (None, []),
    "polynomial": (None, [("end", 10)]),
    "cyclic": (13, [("cycle_1", 0), ("peak_1", 4), ("cycle_2", 8), ("peak_2", 12)]),
    "cyclic_up2_down5": (15, [("cycle_1", 0), ("peak_1", 2), ("cycle_2", 7), ("peak_2", 7), ("cycle_3", 14),
                              ("peak_3", 14)]),
    "cyclic_up5_down2": (21, [("cycle_1", 0), ("peak_1", 5), ("cycle_2", 7), ("peak_2", 13), ("cycle_3", 14),
                              ("peak_3", 20)]),
    "piecewise_2groups": (None, [("boundary_1", 0), ("boundary_2", 5), ("boundary_3", 9)]),
    # the LinearLR's ramp_end (3) is past its window [0, 3); the cosine's end (4) is shifted to 7
    "sequential": (None, [("milestone_1", 3), ("s1_end", 7)]),
    "sequential_2groups_3": (11, [("s0_decay_1", 2), ("milestone_1", 3), ("milestone_2", 6), ("s2_restart_1", 8),
                                  ("s2_restart_2", 10)]),
    "chained": (None, [("s0_factor_end", 2)]),
    "chained_2groups_3": (7, [("s0_decay_1", 2), ("s1_restart_1", 2), ("s0_decay_2", 4), ("s2_boundary_1", 5),
                              ("s0_decay_3", 6), ("s1_restart_2", 6)]),
    "warmup_cosine_2groups": (None, [("warmup_start", 0), ("warmup_end", 2), ("cosine_start", 3), ("end", 9),
                                     ("overrun", 10)]),
}


@pytest.mark.parametrize("case", list(EVENTS))
def test_events_are_as_documented(case):
    high, expected = EVENTS[case]
    curve = curve_of(CASES[case][0]())
    assert curve.events(0, high) == expected
    if high is None:
        assert curve.events() == expected
    else:
        with pytest.raises(ValueError, match="endless"):
            curve.events()
    # a window keeps the events inside it, in order
    if expected:
        first, last = expected[0][1], expected[-1][1]
        inner = [e for e in expected if first < e[1] < last]
        assert curve.events(first + 1, last) == inner


def test_one_cycle_peak_is_the_largest_lr_and_end_where_it_settles():
    for case in ("one_cycle", "one_cycle_2groups_linear", "one_cycle_fractional_warmup"):
        curve = curve_of(CASES[case][0]())
        lrs = braintools_lrs(case)[:, 0]
        assert dict(curve.events())["peak"] == int(np.argmax(lrs))
        end = dict(curve.events())["end"]
        assert lrs[end - 1] > lrs[end] and np.all(lrs[end:] == lrs[end])


def test_cyclic_peaks_are_where_each_cycle_peaks():
    for case in ("cyclic", "cyclic_2groups_triangular2", "cyclic_exp_range", "cyclic_up2_down5", "cyclic_up5_down2"):
        curve = curve_of(CASES[case][0]())
        lrs = braintools_lrs(case)[:, 0]
        period = curve.cycle_length
        for kind, step in curve.events(0, len(lrs)):
            if kind.startswith("peak_"):
                k = int(kind.split("_")[1])
                cycle = lrs[(k - 1) * period: min(k * period, len(lrs))]
                if k * period <= len(lrs) and np.ptp(cycle) > 0:  # braintools' up5/down2 has flat cycles
                    assert step == (k - 1) * period + int(np.argmax(cycle)), (case, kind)


PHASES = {
    "cosine": (("cosine", "past end"), {0: 0, 10: 0, 11: 1, 100: 1}),
    "polynomial": (("decay", "past end"), {0: 0, 10: 0, 11: 1}),
    "one_cycle": (("warmup", "anneal", "past end"), {0: 0, 15: 0, 16: 1, 50: 1, 51: 2}),
    "one_cycle_2groups_linear": (("warmup", "anneal", "past end"), {28: 0, 29: 1, 100: 1, 101: 2}),
    "linear": (("ramp", "constant"), {0: 0, 5: 0, 6: 1}),
    "constant": (("factor", "constant"), {0: 0, 2: 0, 3: 1}),
    "constant_2groups_none": (("factor", "constant"), {0: 1}),
    "cyclic": (("up", "down"), {0: 0, 3: 0, 4: 1, 7: 1, 8: 0, 12: 1}),
    "cyclic_up5_down2": (("up", "down"), {4: 0, 5: 1, 6: 1, 7: 0, 12: 0, 13: 1}),
    "step": (("decay",), {0: 0, 1000: 0}),
    "warm_restarts": (("cosine",), {0: 0, 5: 0}),
    "piecewise": (("piecewise",), {0: 0, 7: 0}),
    "sequential": (("s0_ramp", "s0_constant", "s1_cosine", "s1_past end"), {0: 0, 2: 0, 3: 2, 7: 2, 8: 3}),
    "chained": (("s0_factor+s1_decay", "s0_constant+s1_decay"), {0: 0, 2: 0, 3: 1}),
    "warmup_cosine_2groups": (("warmup", "cosine", "past end"), {0: 0, 2: 0, 3: 1, 9: 1, 10: 2}),
}


@pytest.mark.parametrize("case", list(PHASES))
def test_phases_at_their_boundaries(case):
    names, at = PHASES[case]
    curve = curve_of(CASES[case][0]())
    assert curve.phases == names
    steps = np.asarray(list(at))
    phase = curve.phase_at(steps)
    assert phase.dtype == np.int8
    assert phase.tolist() == list(at.values())


def test_endless_events_are_generated_lazily():
    big = 10**12
    assert StepLRCurve([0.1], 3, 0.5).events(big, big + 7) == [("decay_333333333334", big + 2),
                                                               ("decay_333333333335", big + 5)]
    assert CosineAnnealingWarmRestartsCurve([0.1], 5).events(big, big + 11) == [
        (f"restart_{big // 5}", big), (f"restart_{big // 5 + 1}", big + 5), (f"restart_{big // 5 + 2}", big + 10)]
    doubling = CosineAnnealingWarmRestartsCurve([0.1], 2, 2).events(0, 2**50)
    assert len(doubling) == 49 and doubling[-1] == ("restart_49", 2 * (2**49 - 1))
    assert CyclicLRCurve([0.01], [0.1], 4, 4).events(8 * big + 1, 8 * big + 9) == [
        (f"peak_{big + 1}", 8 * big + 4), (f"cycle_{big + 2}", 8 * big + 8)]
    # an endless child that is not the last one ends at its milestone
    finite = SequentialLRCurve((StepLRCurve([0.1], 2, 0.5), CosineAnnealingLRCurve([0.1], 4)), (5,))
    assert not finite.endless
    assert finite.events() == [("s0_decay_1", 2), ("s0_decay_2", 4), ("milestone_1", 5), ("s1_end", 9)]
    endless = ChainedSchedulerCurve((ConstantLRCurve([0.1], 0.5, 2), StepLRCurve([0.1], 4, 0.5)))
    with pytest.raises(ValueError, match="endless"):
        endless.events()
    assert endless.events(0, 9) == [("s0_factor_end", 1), ("s1_decay_1", 4), ("s1_decay_2", 8)]


# ---------------------------------------------------------------------------------------------------------------
# Plain data, identity, errors
# ---------------------------------------------------------------------------------------------------------------
def plateau():
    return O.ReduceLROnPlateau([0.1, 0.2], factor=0.5, patience=0, threshold=0.01, cooldown=1, min_lr=[0.01, 0.02])


@pytest.mark.parametrize("case", list(CASES) + ["plateau"])
def test_to_dict_round_trips_through_json(case):
    curve = curve_of(plateau() if case == "plateau" else CASES[case][0]())
    data = curve.to_dict()
    if not isinstance(curve, CurveConfig):
        assert data["curve"] == "braintools." + type(curve).scheduler
    back = curve_from_dict(json.loads(json.dumps(data)))
    assert back == curve and hash(back) == hash(curve) and back.to_dict() == data
    assert back.differing_fields(curve) == []
    steps = np.arange(CASES[case][1] if case in CASES else 3)  # the shape test_lr_at_... compiled
    np.testing.assert_array_equal(np.asarray(back.lr_at(steps)), np.asarray(curve.lr_at(steps)))


def test_every_supported_class_is_registered():
    from lrmon.schedules import curve_names

    names = set(curve_names())
    assert {f"braintools.{name}" for name in SUPPORTED if name != "WarmupCosineSchedule"} <= names
    assert set(SUPPORTED) == {
        "StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR", "CosineAnnealingWarmRestarts", "OneCycleLR",
        "LinearLR", "ConstantLR", "PolynomialLR", "CyclicLR", "PiecewiseConstantSchedule", "SequentialLR",
        "ChainedScheduler", "WarmupCosineSchedule", "ReduceLROnPlateau"}


def test_differing_fields():
    step = StepLRCurve([0.1], 3, 0.5)
    assert step.differing_fields(StepLRCurve([0.1], 3, 0.25)) == ["gamma"]
    assert step.differing_fields(StepLRCurve([0.1, 0.2], 4, 0.5)) == ["base_lrs", "step_size"]
    assert step.differing_fields(ExponentialLRCurve([0.1], 0.5)) == ["curve"]
    sequential = curve_of(CASES["sequential"][0]())
    other = curve_of(O.SequentialLR(
        [O.LinearLR(0.1, start_factor=0.1, total_iters=3), O.CosineAnnealingLR(0.1, T_max=8)], milestones=[4]))
    assert sequential.differing_fields(other) == ["schedulers[1].T_max", "milestones"]
    swapped = SequentialLRCurve((sequential.schedulers[0], StepLRCurve([0.1], 3, 0.5)), (3,))
    assert sequential.differing_fields(swapped) == ["schedulers[1].curve"]
    first, second = curve_of(plateau()), curve_of(O.ReduceLROnPlateau([0.1, 0.2], factor=0.2))
    assert first.differing_fields(second) == ["factor", "patience", "threshold", "cooldown", "min_lrs"]


def test_reduce_on_plateau_is_observed_flat_at_its_current_lrs():
    scheduler = plateau()
    curve = curve_of(scheduler)
    assert curve.observed and type(curve).observed
    assert not any(type(curve_of(CASES[c][0]())).observed for c in ("step", "sequential", "chained", "cyclic"))
    assert curve.phases == ("plateau",) and curve.events() == [] and curve.num_groups == 2
    np.testing.assert_array_equal(np.asarray(curve.lr_at(np.arange(3))), np.float32([[0.1, 0.2]] * 3))
    data = curve.to_dict()
    assert {k: data[k] for k in ("mode", "factor", "patience", "threshold", "threshold_mode", "cooldown",
                                 "min_lrs", "eps")} == {
        "mode": "min", "factor": 0.5, "patience": 0, "threshold": 0.01, "threshold_mode": "rel", "cooldown": 1,
        "min_lrs": [0.01, 0.02], "eps": 1e-8}
    scheduler.step(1.0)
    scheduler.step(1.0)  # no improvement, patience 0: the LRs are halved
    cut = curve_of(scheduler)
    np.testing.assert_allclose(cut.exact_lr_at(7), [0.05, 0.1], rtol=1e-6)
    assert cut.differing_fields(curve) == ["lrs"] and cut.peak_lr == pytest.approx(0.1)


def test_warmup_cosine_schedule_gives_lrmons_curve_config():
    curve = curve_of(CASES["warmup_cosine_2groups"][0]())
    assert curve == CurveConfig([0.1, 0.2], 3, 10, 0.01, 0.001)
    assert "curve" not in curve.to_dict()


def test_peak_lr():
    assert curve_of(CASES["one_cycle"][0]()).peak_lr == pytest.approx(0.1)
    assert curve_of(CASES["linear"][0]()).peak_lr == pytest.approx(0.1)
    assert curve_of(CASES["linear_2groups_down"][0]()).peak_lr == pytest.approx(0.2)
    assert curve_of(CASES["piecewise_2groups"][0]()).peak_lr == pytest.approx(0.5)  # boundary 0: values[0] unused
    assert curve_of(CASES["cyclic_exp_range"][0]()).peak_lr == pytest.approx(0.01 + 0.09 * 0.99**5)
    # a sequential child's peak past its window is not reached
    cut = SequentialLRCurve((LinearLRCurve([0.1], 0.1, 1.0, 10), ConstantLRCurve([0.01], 1.0, 0)), (4,))
    assert cut.peak_lr == pytest.approx(0.1 * (0.1 + 0.9 * 3 / 10))
    assert StepLRCurve([0.1], 2, 1.5).peak_lr == float("inf")


def test_unsupported_schedulers_raise_type_error():
    for scheduler in (O.WarmupScheduler(0.1), O.ExponentialDecayLR(0.1), object()):
        with pytest.raises(TypeError, match=type(scheduler).__name__) as error:
            curve_of(scheduler)
        assert "StepLR" in str(error.value) and "ChainedScheduler" in str(error.value)

    class StepLR:  # a look-alike from elsewhere (torch's StepLR has the same attributes)
        base_lrs, step_size, gamma = [0.1], 3, 0.5

    with pytest.raises(TypeError, match="StepLR"):
        curve_of(StepLR())
    with pytest.raises(TypeError, match="scale_fn"):
        curve_of(O.CyclicLR(0.01, max_lr=0.1, step_size_up=4, scale_fn=lambda x: 0.5 ** x))
    with pytest.raises(TypeError, match="observed"):
        curve_of(O.ChainedScheduler([O.StepLR(0.1), plateau()]))


def test_invalid_data_is_refused_with_the_field_named():
    good = StepLRCurve([0.1], 3, 0.5).to_dict()
    for change, field in [({"step_size": 0}, "step_size"), ({"gamma": "x"}, "gamma"), ({"base_lrs": []}, "base_lr"),
                          ({"extra": 1}, "extra")]:
        with pytest.raises(ValueError, match=field):
            curve_from_dict({**good, **change})
    bad = {k: v for k, v in good.items() if k != "gamma"}
    with pytest.raises(ValueError, match="gamma"):
        curve_from_dict(bad)
    with pytest.raises(ValueError, match="sorted"):
        curve_from_dict({"curve": "braintools.MultiStepLR", "base_lrs": [0.1], "milestones": [5, 3], "gamma": 0.1})
    with pytest.raises(ValueError, match="one more scheduler"):
        SequentialLRCurve((StepLRCurve([0.1], 3, 0.5),), (4,))


def test_the_module_imports_and_evaluates_without_braintools(monkeypatch):
    """braintools is an optional extra: the module never imports it (here loaded afresh, under another name, with
    ``import braintools`` failing; the registry is restored afterwards)."""
    import importlib.util

    import lrmon.schedules._protocol as protocol
    import lrmon.schedules.braintools as module

    monkeypatch.setitem(sys.modules, "braintools", None)
    monkeypatch.setattr(protocol, "_FROM_DICT", dict(protocol._FROM_DICT))
    spec = importlib.util.spec_from_file_location("_lrmon_braintools_probe", module.__file__)
    probe = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, probe)
    spec.loader.exec_module(probe)
    curve = curve_from_dict(probe.StepLRCurve([0.1], 2, 0.5).to_dict())
    assert type(curve) is probe.StepLRCurve
    assert float(curve.lr_at(4)[0]) == np.float32(0.025) and curve.exact_lr_at(4)[0] == 0.025
    assert curve.events(0, 5) == [("decay_1", 2), ("decay_2", 4)]
