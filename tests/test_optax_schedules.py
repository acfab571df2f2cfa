"""lrmon.schedules.optax: optax's constructors as curves with phases and events, checked against optax itself.

The references are optax's own schedules (same names, same arguments): lrmon's values must be optax's within
float32 rounding at every step of random configurations, eager and jitted, and its float64 ``exact_lr_at`` within
float32 tolerance of them. Events and phases are checked against hand-computed steps for fixed configurations
(the boundaries documented in the module's table) and, for the random ones, against ``phase_at``.

Tolerances are relative to the value (``rtol``) plus float32 ulps *of the peak* (``atol``): near the end of a decay
the values are tiny and a per-value ulp would be meaningless.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import lrmon.schedules.optax as lo
from lrmon.schedules import Curve, curve_from_dict
from lrmon.schedules._protocol import check_event_kind

ULP = float(np.finfo(np.float32).eps)
#: Same float32 formula, maybe fused differently (jit): a few ulps of the value or 2 ulps of the peak.
F32 = dict(rtol=1e-6, ulps_of_peak=2.0)
#: The float64 formula against optax's float32 values.
F64 = dict(rtol=1e-6, ulps_of_peak=8.0)
STEPS = np.arange(0, 701)  # past the end of every random configuration below (ends < 600)
NUM_CASES = 5


def exact_tolerance(schedule):
    """:data:`F64`, widened where optax's float32 arithmetic is known to lose more than a few ulps:

    * optax rounds ``decay_rate`` to float32 before raising it to the power ``p`` (the periods since the decay
      began): its exponential values are off by up to ``p * 2**-24`` relative (a growth bounded by ``end_value``
      shows it at the peak);
    * a cosine decay with ``exponent < 1``: ``1 + cos(pi t / D)`` near ``t = D`` cancels to a few float32 ulps of
      1, and the root amplifies that to about ``D / 8`` ulps of the peak at ``t = D - 1``.
    """
    tolerance = dict(F64)
    for kind, length, exponent in _decays(schedule):
        if kind == "exponential":
            tolerance["rtol"] = max(tolerance["rtol"], F64["rtol"] + ULP * float(STEPS[-1]) / length)
        elif exponent < 1.0:
            tolerance["ulps_of_peak"] = max(tolerance["ulps_of_peak"], F64["ulps_of_peak"] + length / 8.0)
    return tolerance


def _decays(schedule):
    """``(kind, steps, exponent)`` of every exponential and cosine decay in ``schedule`` (joins included)."""
    args = dict(schedule.args)
    if "exponential" in schedule.constructor:
        yield "exponential", args["transition_steps"], None
    elif schedule.constructor == "cosine_decay_schedule":
        yield "cosine", args["decay_steps"], args["exponent"]
    elif schedule.constructor == "warmup_cosine_decay_schedule":
        yield "cosine", args["decay_steps"] - args["warmup_steps"], args["exponent"]
    elif schedule.constructor == "sgdr_schedule":
        for cycle in map(dict, args["cosine_kwargs"]):
            yield "cosine", cycle["decay_steps"] - cycle["warmup_steps"], cycle["exponent"]
    elif schedule.constructor == "join_schedules":
        for child in args["schedules"]:
            yield from _decays(child)


def assert_close(actual, expected, *, rtol, ulps_of_peak, peak, what=""):
    np.testing.assert_allclose(np.asarray(actual, np.float64), np.asarray(expected, np.float64), rtol=rtol,
                               atol=ulps_of_peak * ULP * peak, err_msg=what)


# ---------------------------------------------------------------------------------------------------------------
# Random configurations: (constructor name, args, kwargs), the same for optax and lrmon
# ---------------------------------------------------------------------------------------------------------------
def _lr(rng, high=1.0):
    return float(rng.uniform(0.0, high))


def _steps(rng, low, high):
    return int(rng.integers(low, high + 1))


def _exponential_kwargs(rng, start):
    rate = float(rng.choice([rng.uniform(0.3, 0.99), rng.uniform(1.01, 1.3)]))
    transition_steps, transition_begin, end = _steps(rng, 1, 40), _steps(rng, 0, 40), None
    if rate > 1.0:  # a growth always gets an upper bound, reached within the steps checked (below 600)
        periods = min((550 - transition_begin) / transition_steps, math.log(1e4) / math.log(rate))
        end = start * rate ** float(rng.uniform(0.5, periods))
    elif rng.random() < 0.6:
        end = start * float(rng.uniform(0.0, 1.0))
    return dict(transition_steps=transition_steps, decay_rate=rate, transition_begin=transition_begin,
                staircase=bool(rng.random() < 0.5), end_value=end)


def _scales_dict(rng, count):
    boundaries = rng.choice(np.arange(0, 400), size=count, replace=False)
    return {int(b): float(rng.choice([rng.uniform(0.0, 2.0), 0.1, 1.0])) for b in boundaries}


def _cycle(rng):
    warmup = _steps(rng, 0, 30)
    peak = _lr(rng)
    return dict(init_value=_lr(rng, peak), peak_value=peak, warmup_steps=warmup,
                decay_steps=warmup + _steps(rng, 1, 100), end_value=_lr(rng, peak),
                exponent=float(rng.choice([1.0, 2.0, 0.5])))


def random_case(name, rng):
    if name == "constant_schedule":
        return (_lr(rng),), {}
    if name == "polynomial_schedule":
        return (_lr(rng), _lr(rng), rng.choice([1, 2, 0.5, 3.0]).item(), _steps(rng, 0, 300), _steps(rng, 0, 100)), {}
    if name == "linear_schedule":
        return (_lr(rng), _lr(rng), _steps(rng, 0, 300)), dict(transition_begin=_steps(rng, 0, 100))
    if name == "cosine_decay_schedule":
        return (_lr(rng), _steps(rng, 1, 500)), dict(alpha=float(rng.choice([0.0, rng.uniform(0, 0.5)])),
                                                      exponent=float(rng.choice([1.0, 2.0, 0.5])))
    if name == "exponential_decay":
        init = float(rng.uniform(1e-4, 1.0))
        return (init,), _exponential_kwargs(rng, init)
    # few boundary counts: each count is a new shape, and a new shape costs every eager op a compilation
    if name == "piecewise_constant_schedule":
        return (_lr(rng), _scales_dict(rng, int(rng.choice([0, 3])))), {}
    if name == "piecewise_interpolate_schedule":
        kind = str(rng.choice(["linear", "cosine"]))  # the onecycles' shapes: 3 linear, 2 cosine boundaries
        return (kind, _lr(rng), _scales_dict(rng, 3 if kind == "linear" else 2)), {}
    if name == "warmup_constant_schedule":
        return (_lr(rng), _lr(rng), _steps(rng, 1, 300)), {}
    if name == "warmup_cosine_decay_schedule":
        return (), _cycle(rng)
    if name == "warmup_exponential_decay_schedule":
        peak = float(rng.uniform(1e-4, 1.0))
        return (_lr(rng, peak), peak, _steps(rng, 0, 100)), _exponential_kwargs(rng, peak)
    if name == "linear_onecycle_schedule":
        pct_start = float(rng.uniform(0.0, 0.6))
        return (_steps(rng, 1, 500), _lr(rng)), dict(pct_start=pct_start, pct_final=float(rng.uniform(pct_start, 1)),
                                                     div_factor=float(rng.uniform(2, 30)),
                                                     final_div_factor=float(rng.uniform(10, 1e4)))
    if name == "cosine_onecycle_schedule":
        return (_steps(rng, 1, 500), _lr(rng)), dict(pct_start=float(rng.uniform(0.0, 1.0)),
                                                     div_factor=float(rng.uniform(2, 30)),
                                                     final_div_factor=float(rng.uniform(10, 1e4)))
    if name == "sgdr_schedule":
        return ([_cycle(rng) for _ in range(_steps(rng, 1, 4))],), {}
    if name == "join_schedules":
        simple = ["constant_schedule", "linear_schedule", "cosine_decay_schedule", "exponential_decay",
                  "piecewise_constant_schedule", "warmup_cosine_decay_schedule", "linear_onecycle_schedule"]
        children = [(child, *random_case(child, rng)) for child in rng.choice(simple, size=_steps(rng, 1, 4))]
        boundaries = sorted(int(b) for b in rng.choice(np.arange(0, 300), size=len(children) - 1, replace=False))
        return (children, boundaries), {}
    raise AssertionError(name)


def build(lib, name, args, kwargs):
    """The schedule ``name`` of ``lib`` (``optax`` or ``lrmon.schedules.optax``); join children built alike."""
    if name == "join_schedules":
        children, boundaries = args
        return lib.join_schedules([build(lib, *child) for child in children], boundaries)
    return getattr(lib, name)(*args, **kwargs)


CONSTRUCTORS = [
    "constant_schedule", "polynomial_schedule", "linear_schedule", "cosine_decay_schedule", "exponential_decay",
    "piecewise_constant_schedule", "piecewise_interpolate_schedule", "warmup_constant_schedule",
    "warmup_cosine_decay_schedule", "warmup_exponential_decay_schedule", "linear_onecycle_schedule",
    "cosine_onecycle_schedule", "sgdr_schedule", "join_schedules",
]


def cases(name):
    rng = np.random.default_rng(CONSTRUCTORS.index(name) + 1000)
    return [random_case(name, rng) for _ in range(NUM_CASES)]


def with_end_value_held(schedule, expected):
    """optax's values, except where lrmon deliberately differs: after a polynomial transition with a fractional
    power lrmon holds ``end_value``, where optax may hold ``end + (init - end) * ulp ** power`` (see
    :func:`test_a_polynomial_holds_its_end_value_exactly`); for power 1 that is below one ulp of the peak."""
    args = dict(schedule.args)
    if schedule.constructor != "polynomial_schedule" or float(args["power"]).is_integer() \
            or args["transition_steps"] == 0:
        return expected
    after = STEPS >= args["transition_begin"] + args["transition_steps"]
    return np.where(after, np.float32(args["end_value"]), expected)


def optax_values(schedule, steps=STEPS):
    """optax's eager values at ``steps`` (optax's piecewise_interpolate_schedule, so its onecycles, takes a scalar
    count only: vmap evaluates those per step)."""
    steps = jnp.asarray(steps)
    try:
        values = np.asarray(schedule(steps), np.float64)
    except (TypeError, ValueError):
        values = np.asarray(jax.vmap(schedule)(steps), np.float64)
    return np.broadcast_to(values, steps.shape)  # constant_schedule gives its bare value


# ---------------------------------------------------------------------------------------------------------------
# Values: optax's own, at every step
# ---------------------------------------------------------------------------------------------------------------
def test_the_public_names_and_signatures_are_optax_s():
    import inspect

    for name in CONSTRUCTORS:
        ours, theirs = inspect.signature(getattr(lo, name)), inspect.signature(getattr(optax, name))
        assert [(p.name, p.default, p.kind) for p in ours.parameters.values()] == \
               [(p.name, p.default, p.kind) for p in theirs.parameters.values()], name
    assert set(CONSTRUCTORS) | {"OptaxSchedule", "piecewise_interpolate_schedule"} == set(lo.__all__)


@pytest.mark.parametrize("name", CONSTRUCTORS)
def test_values_equal_optax_at_every_step(name):
    for i, (args, kwargs) in enumerate(cases(name)):
        ours, theirs = build(lo, name, args, kwargs), build(optax, name, args, kwargs)
        expected = with_end_value_held(ours, optax_values(theirs))
        peak = max(float(expected.max()), 1e-30)
        what = f"{name}{args}{kwargs}"
        assert_close(ours(jnp.asarray(STEPS)), expected, peak=peak, what=what, **F32)
        lr = ours.lr_at(STEPS)
        assert lr.shape == STEPS.shape + (1,)
        assert_close(lr[..., 0], expected, peak=peak, what=what, **F32)
        assert_close(ours.exact_lr_at(STEPS)[..., 0], expected, peak=peak, what=what, **exact_tolerance(ours))
        assert ours.exact_lr_at(STEPS).dtype == np.float64
        # the peak: the largest float64 value (a join's last part may peak past STEPS), at least optax's
        np.testing.assert_allclose(ours.peak_lr, ours.exact_lr_at(np.arange(20_000)).max(), rtol=1e-12)
        assert ours.peak_lr >= expected.max() * (1 - exact_tolerance(ours)["rtol"]), what
        if i == 0:  # compiled: the optimizer's form (compiling every case would cost seconds)
            called, lr = jax.jit(lambda steps: (ours(steps), ours.lr_at(steps)))(STEPS)
            assert_close(called, expected, peak=peak, what=what, **F32)
            assert_close(lr[..., 0], expected, peak=peak, what=what, **F32)


def test_scalar_and_2d_steps_have_the_protocol_shapes():
    # (scalar counts, as optax's update passes them, are also what the optimizer tests below run on)
    schedule = lo.warmup_cosine_decay_schedule(0.0, 1.0, 10, 100)
    reference = optax.warmup_cosine_decay_schedule(0.0, 1.0, 10, 100)
    for step in (0, 5, 10, 99, 100, 1000):
        value = schedule(jnp.asarray(step, jnp.int32))
        assert value.shape == () and value.dtype == jnp.float32
        assert float(value) == float(reference(jnp.asarray(step, jnp.int32)))  # eager: optax's very bits
    assert schedule.lr_at(5).shape == (1,)
    assert schedule.exact_lr_at(5).shape == (1,)
    grid = np.arange(12).reshape(3, 4) * 10
    for ours in (schedule, lo.linear_onecycle_schedule(100, 1.0)):  # (onecycle: optax's takes scalars only)
        lr = jax.jit(ours.lr_at)(grid)
        assert lr.shape == (3, 4, 1)
        assert ours.exact_lr_at(grid).shape == (3, 4, 1)
        assert_close(lr, ours.exact_lr_at(grid), peak=1.0, **F64)
        assert ours.phase_at(grid).shape == (3, 4) and ours.phase_at(grid).dtype == np.int8
    assert_close(jax.vmap(schedule.lr_at)(STEPS)[..., 0], optax_values(reference), peak=1.0, **F32)


def test_a_polynomial_holds_its_end_value_exactly():
    """Where lrmon differs from optax on purpose. optax computes ``frac = 1 - count / T``; XLA evaluates an array
    ``count / T`` as ``count * (1 / T)``, so for some ``T`` (246 here) ``frac`` is a float32 ulp above 0 at
    ``count == T`` and optax holds ``end + (init - end) * ulp ** power`` from ``B + T`` on (2.4e-4 of the range for
    power 0.5; compiled it can also be a ulp below 0: NaN). lrmon's frac is exactly 0 there: ``end_value``."""
    steps = jnp.asarray([245, 246, 247, 1000])
    theirs = np.asarray(optax.polynomial_schedule(1.0, 0.0, 0.5, 246)(steps))
    assert theirs[1:].min() > 2e-4  # optax's eager array values
    for values in (lo.polynomial_schedule(1.0, 0.0, 0.5, 246)(steps),
                   jax.jit(lo.polynomial_schedule(1.0, 0.0, 0.5, 246))(steps),
                   lo.polynomial_schedule(1.0, 0.0, 0.5, 246).exact_lr_at(steps)[..., 0]):
        np.testing.assert_array_equal(np.asarray(values)[1:], 0.0)
        # before the end: optax's value (the root amplifies the rounding of frac = 1 / 246 to ~1e-5)
        np.testing.assert_allclose(np.asarray(values)[0], theirs[0], rtol=1e-5)
    assert float(lo.linear_schedule(1.0, 0.25, 246)(jnp.asarray([300]))[0]) == 0.25


def test_exponential_growth_without_end_value_is_optax_s_and_has_no_peak():
    ours, theirs = lo.exponential_decay(1e-6, 10, 1.5, transition_begin=3), optax.exponential_decay(1e-6, 10, 1.5, 3)
    expected = optax_values(theirs)[:200]  # (1.5 ** 70 overflows float32 later)
    assert_close(ours(STEPS)[:200], expected, peak=float(expected.max()), **F32)
    assert ours.peak_lr == float("inf")
    assert ours.events() == [("delay_start", 0), ("delay_end", 2), ("decay_start", 3)]


def test_the_curve_protocol():
    schedule = lo.sgdr_schedule([dict(init_value=0.0, peak_value=1.0, warmup_steps=5, decay_steps=20)])
    assert isinstance(schedule, Curve)
    assert schedule.num_groups == 1
    assert hash(schedule) == hash(lo.sgdr_schedule([dict(init_value=0.0, peak_value=1.0, warmup_steps=5,
                                                         decay_steps=20, end_value=0.0, exponent=1.0)]))
    with pytest.raises(dataclasses.FrozenInstanceError):
        schedule.args = ()


# ---------------------------------------------------------------------------------------------------------------
# Optimizers: optax applies the lrmon schedule exactly as its own
# ---------------------------------------------------------------------------------------------------------------
OPTIMIZER_CASES = [
    ("warmup_cosine_decay_schedule", (0.0, 0.1, 2, 6), {}),
    ("sgdr_schedule", ([dict(init_value=0.0, peak_value=0.1, warmup_steps=1, decay_steps=3),
                        dict(init_value=0.01, peak_value=0.05, warmup_steps=0, decay_steps=3)],), {}),
    ("linear_onecycle_schedule", (6, 0.1), {}),
    ("exponential_decay", (0.1, 2, 0.5), dict(staircase=True)),
    ("piecewise_constant_schedule", (0.1, {2: 0.5, 4: 0.1}), {}),
    ("join_schedules", ([("linear_schedule", (0.0, 0.1, 2), {}), ("cosine_decay_schedule", (0.1, 4), {})], [2]), {}),
]


def _train(optimizer, steps=4, jit=False):
    # two leaves of one shape: eager optax compiles each op once per shape
    params = {"w": jnp.asarray([1.0, -2.0, 3.0]), "b": jnp.asarray([0.5, 0.0, -0.5])}

    def loss(p):
        return jnp.sum((p["w"] - jnp.asarray([0.5, 0.1, -1.0])) ** 2) + jnp.sum(p["b"] ** 2)

    state = optimizer.init(params)

    def step(params, state):
        updates, state = optimizer.update(jax.grad(loss)(params), state, params)
        return optax.apply_updates(params, updates), state

    step = jax.jit(step) if jit else step
    trajectory = []
    for _ in range(steps):
        params, state = step(params, state)
        trajectory.append(np.concatenate([np.asarray(params["w"]), np.asarray(params["b"])]))
    return np.asarray(trajectory)


@pytest.mark.parametrize("name, args, kwargs", OPTIMIZER_CASES, ids=[c[0] for c in OPTIMIZER_CASES])
def test_optax_optimizers_apply_the_same_updates(name, args, kwargs):
    ours, theirs = build(lo, name, args, kwargs), build(optax, name, args, kwargs)
    for make in (lambda s: optax.sgd(learning_rate=s), lambda s: optax.adamw(learning_rate=s, weight_decay=1e-2)):
        np.testing.assert_allclose(_train(make(ours)), _train(make(theirs)), rtol=1e-6, atol=1e-7)
    if name == "warmup_cosine_decay_schedule":
        np.testing.assert_allclose(_train(optax.adamw(ours), jit=True), _train(optax.adamw(theirs), jit=True),
                                   rtol=1e-6, atol=1e-7)


# ---------------------------------------------------------------------------------------------------------------
# Events and phases: exact steps for fixed configurations (the module docstring's table)
# ---------------------------------------------------------------------------------------------------------------
SGDR_CYCLES = [dict(init_value=0.0, peak_value=1.0, warmup_steps=5, decay_steps=20),
               dict(init_value=0.0, peak_value=1.0, warmup_steps=0, decay_steps=30),
               dict(init_value=0.0, peak_value=0.5, warmup_steps=2, decay_steps=10)]

EXPECTED_EVENTS = [
    (lo.constant_schedule(0.1), [("constant_start", 0)]),
    (lo.polynomial_schedule(1.0, 0.1, 2, 50, 10),
     [("delay_start", 0), ("delay_end", 9), ("polynomial_start", 10), ("polynomial_end", 59), ("end", 59),
      ("final_start", 60)]),
    (lo.linear_schedule(0.0, 1.0, 30),
     [("linear_start", 0), ("linear_end", 29), ("end", 29), ("final_start", 30)]),
    (lo.linear_schedule(0.5, 1.0, 0, 10), [("final_start", 0)]),  # optax: transition disabled, init_value held
    (lo.cosine_decay_schedule(1.0, 100),
     [("cosine_start", 0), ("cosine_end", 99), ("end", 99), ("final_start", 100)]),
    # staircase: 1 -> 0.5 (15) -> 0.25 (25) -> 0.125 (35) -> 0.0625, clamped at 0.1 (45)
    (lo.exponential_decay(1.0, 10, 0.5, transition_begin=5, staircase=True, end_value=0.1),
     [("delay_start", 0), ("delay_end", 4), ("decay_start", 5), ("decay_1", 15), ("decay_2", 25), ("decay_3", 35),
      ("decay_end", 44), ("end", 44), ("final_start", 45), ("decay_4", 45)]),
    # continuous: 0.5 ** (t / 10) reaches 0.25 at t = 20
    (lo.exponential_decay(1.0, 10, 0.5, end_value=0.25),
     [("decay_start", 0), ("decay_end", 19), ("end", 19), ("final_start", 20)]),
    (lo.exponential_decay(1.0, 10, 0.5), [("decay_start", 0)]),
    (lo.piecewise_constant_schedule(1.0, {200: 0.1, 100: 0.5}),
     [("constant_start", 0), ("boundary_1", 100), ("boundary_2", 200)]),
    (lo.piecewise_interpolate_schedule("linear", 1.0, {4: 0.1, 8: 0.01}),
     [("linear_start", 0), ("boundary_1", 4), ("linear_end", 7), ("end", 7), ("final_start", 8), ("boundary_2", 8)]),
    (lo.warmup_constant_schedule(0.0, 1.0, 10), [("warmup_start", 0), ("warmup_end", 9), ("constant_start", 10)]),
    (lo.warmup_cosine_decay_schedule(0.0, 1.0, 10, 100),
     [("warmup_start", 0), ("warmup_end", 9), ("cosine_start", 10), ("cosine_end", 99), ("end", 99),
      ("final_start", 100)]),
    (lo.warmup_cosine_decay_schedule(0.3, 1.0, 0, 100),
     [("cosine_start", 0), ("cosine_end", 99), ("end", 99), ("final_start", 100)]),
    # decay from 10 + 3 = 13; drops every 5: 0.5 (18), 0.25 (23), 0.125 clamped at 0.2 (28)
    (lo.warmup_exponential_decay_schedule(0.0, 1.0, 10, 5, 0.5, transition_begin=3, staircase=True, end_value=0.2),
     [("warmup_start", 0), ("warmup_end", 9), ("delay_start", 10), ("delay_end", 12), ("decay_start", 13),
      ("decay_1", 18), ("decay_2", 23), ("decay_end", 27), ("end", 27), ("final_start", 28), ("decay_3", 28)]),
    # int(0.3 * 100) = 30, int(0.85 * 100) = 85
    (lo.linear_onecycle_schedule(100, 1.0),
     [("warmup_start", 0), ("warmup_end", 29), ("decay_start", 30), ("decay_end", 84), ("anneal_start", 85),
      ("anneal_end", 99), ("end", 99), ("final_start", 100)]),
    (lo.cosine_onecycle_schedule(50, 1.0, pct_start=0.2),
     [("warmup_start", 0), ("warmup_end", 9), ("anneal_start", 10), ("anneal_end", 49), ("end", 49),
      ("final_start", 50)]),
    # cycles [0, 20), [20, 50), [50, 60): warmup in cycles 1 and 3, cosine in all, so both are numbered by cycle
    (lo.sgdr_schedule(SGDR_CYCLES),
     [("warmup_1_start", 0), ("warmup_1_end", 4), ("cosine_1_start", 5), ("cosine_1_end", 19), ("restart_1", 20),
      ("cosine_2_start", 20), ("cosine_2_end", 49), ("restart_2", 50), ("warmup_3_start", 50),
      ("warmup_3_end", 51), ("cosine_3_start", 52), ("cosine_3_end", 59), ("end", 59), ("final_start", 60)]),
    (lo.sgdr_schedule(SGDR_CYCLES[1:2]),
     [("cosine_start", 0), ("cosine_end", 29), ("end", 29), ("final_start", 30)]),
    # parts [0, 20), [20, 40), [40, inf): constant in parts 2 and 3, boundary also the join's own
    (lo.join_schedules([lo.linear_schedule(0.0, 1.0, 10), lo.constant_schedule(0.5),
                        lo.piecewise_constant_schedule(0.5, {5: 0.5})], [20, 40]),
     [("linear_start", 0), ("linear_end", 9), ("final_start", 10), ("final_end", 19), ("boundary_1", 20),
      ("constant_2_start", 20), ("constant_2_end", 39), ("boundary_2", 40), ("constant_3_start", 40),
      ("boundary_3_1", 45)]),
    # a cosine cut by the boundary ends at the step before it
    (lo.join_schedules([lo.cosine_decay_schedule(1.0, 100), lo.warmup_cosine_decay_schedule(0.0, 1.0, 5, 25)], [50]),
     [("cosine_1_start", 0), ("cosine_1_end", 49), ("boundary_1", 50), ("warmup_start", 50), ("warmup_end", 54),
      ("cosine_2_start", 55), ("cosine_2_end", 74), ("end", 74), ("final_start", 75)]),
]


@pytest.mark.parametrize("schedule, expected", EXPECTED_EVENTS, ids=[s.constructor for s, _ in EXPECTED_EVENTS])
def test_event_steps_are_exact(schedule, expected):
    assert schedule.events() == expected
    assert schedule.events(0, 10**6) == expected


EXPECTED_PHASES = [
    (lo.warmup_cosine_decay_schedule(0.0, 1.0, 10, 100), ("warmup", "cosine", "final"),
     [0] * 10 + [1] * 90 + [2] * 20),
    (lo.warmup_cosine_decay_schedule(0.0, 1.0, 0, 100), ("cosine", "final"), [0] * 100 + [1] * 20),
    (lo.linear_schedule(0.0, 1.0, 30, 10), ("delay", "linear", "final"), [0] * 10 + [1] * 30 + [2] * 80),
    (lo.exponential_decay(1.0, 10, 0.5, transition_begin=5, staircase=True, end_value=0.1),
     ("delay", "decay", "final"), [0] * 5 + [1] * 40 + [2] * 75),
    (lo.piecewise_constant_schedule(1.0, {20: 0.1}), ("constant",), [0] * 120),
    (lo.linear_onecycle_schedule(100, 1.0), ("warmup", "decay", "anneal", "final"),
     [0] * 30 + [1] * 55 + [2] * 15 + [3] * 20),
    (lo.warmup_exponential_decay_schedule(0.0, 1.0, 10, 5, 0.5, transition_begin=3), ("warmup", "delay", "decay"),
     [0] * 10 + [1] * 3 + [2] * 107),
    (lo.sgdr_schedule(SGDR_CYCLES), ("warmup", "cosine", "final"),
     [0] * 5 + [1] * 15 + [1] * 30 + [0] * 2 + [1] * 8 + [2] * 60),
]


@pytest.mark.parametrize("schedule, phases, expected", EXPECTED_PHASES, ids=[s.constructor for s, *_ in EXPECTED_PHASES])
def test_phase_at_matches_the_documented_boundaries(schedule, phases, expected):
    assert schedule.phases == phases
    steps = np.arange(len(expected))
    np.testing.assert_array_equal(schedule.phase_at(steps), np.asarray(expected, np.int8))
    assert schedule.phase_at(steps).dtype == np.int8
    assert int(schedule.phase_at(10**9)) == expected[-1]


def _phase_of(kind, phases):
    """The phase named by a ``<phase>[_<part>]_start``/``_end`` kind, and whether the part number was appended."""
    base, _, edge = kind.rpartition("_")
    if edge not in ("start", "end"):
        return None, False
    if base in phases:
        return base, False
    stripped = re.sub(r"(_\d+)+$", "", base)
    return (stripped, True) if stripped in phases else (None, False)


@pytest.mark.parametrize("name", CONSTRUCTORS)
def test_events_are_unique_sorted_filterable_and_agree_with_phase_at(name):
    rng = np.random.default_rng(7)
    for args, kwargs in cases(name):
        schedule = build(lo, name, args, kwargs)
        high = int(STEPS[-1]) + 1
        events = schedule.events(0, high)
        kinds = [kind for kind, _ in events]
        assert len(set(kinds)) == len(kinds), events
        assert [step for _, step in events] == sorted(step for _, step in events)
        for kind in kinds:
            check_event_kind(kind)
        for _ in range(5):
            low, top = sorted(int(x) for x in rng.integers(0, high, size=2))
            assert schedule.events(low, top) == [(k, s) for k, s in events if low <= s < top]
        if not schedule.body.endless():
            assert schedule.events() == events + [e for e in schedule.events() if e[1] >= high]
        phases = schedule.phases
        for kind, step in events:
            if kind == "end":
                assert phases[schedule.phase_at(step + 1)] == "final" and ("final_start", step + 1) in events
                continue
            phase, renamed = _phase_of(kind, phases)
            if phase is None:
                continue  # a numbered event (decay_k, boundary_k, restart_k)
            assert phases[schedule.phase_at(step)] == phase, (kind, step)
            if not renamed:
                neighbour = step - 1 if kind.endswith("_start") else step + 1
                assert neighbour < 0 or phases[schedule.phase_at(neighbour)] != phase, (kind, step, events)


def test_endless_events_are_generated_lazily():
    schedule = lo.exponential_decay(1.0, 10, 0.5, staircase=True)
    with pytest.raises(ValueError, match="^high: .*endless"):
        schedule.events()
    assert schedule.events(10**6, 10**6 + 25) == [("decay_100000", 10**6), ("decay_100001", 10**6 + 10),
                                                   ("decay_100002", 10**6 + 20)]
    assert schedule.events(10**12, 10**12 + 1) == [(f"decay_{10**11}", 10**12)]
    joined = lo.join_schedules([lo.constant_schedule(1.0), schedule], [5])
    with pytest.raises(ValueError, match="^high"):
        joined.events()
    assert joined.events(0, 26) == [("constant_start", 0), ("constant_end", 4), ("boundary_1", 5),
                                    ("decay_start", 5), ("decay_1", 15), ("decay_2", 25)]
    warmup = lo.warmup_exponential_decay_schedule(0.0, 1.0, 4, 3, 0.9, staircase=True)
    with pytest.raises(ValueError, match="^high"):
        warmup.events()
    # bounded by end_value, the same staircase is finite
    assert lo.exponential_decay(1.0, 10, 0.5, staircase=True, end_value=0.3).events()[-1] == ("decay_2", 20)


def test_nested_joins_keep_every_kind_unique():
    inner = lo.join_schedules([lo.constant_schedule(1.0), lo.piecewise_constant_schedule(1.0, {3: 0.5})], [10])
    outer = lo.join_schedules([inner, lo.sgdr_schedule(SGDR_CYCLES), inner], [30, 100])
    events = outer.events()
    kinds = [kind for kind, _ in events]
    assert len(set(kinds)) == len(kinds)
    assert ("boundary_1", 30) in events and ("boundary_2", 100) in events
    # the inner joins' own boundary family, renamed boundary_<part> in parts 1 and 3: boundary_<part>_1
    assert ("boundary_1_1", 10) in events and ("boundary_3_1", 110) in events
    for kind in kinds:
        check_event_kind(kind)
    expected = optax_values(optax.join_schedules(
        [optax.join_schedules([optax.constant_schedule(1.0), optax.piecewise_constant_schedule(1.0, {3: 0.5})],
                              [10]),
         optax.sgdr_schedule(SGDR_CYCLES),
         optax.join_schedules([optax.constant_schedule(1.0), optax.piecewise_constant_schedule(1.0, {3: 0.5})],
                              [10])], [30, 100]))
    assert_close(outer(STEPS), expected, peak=1.0, **F32)


# ---------------------------------------------------------------------------------------------------------------
# Plain data
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", CONSTRUCTORS)
def test_to_dict_round_trips_through_json(name):
    for args, kwargs in cases(name)[:3]:
        schedule = build(lo, name, args, kwargs)
        data = schedule.to_dict()
        assert data["curve"] == f"optax.{name}"
        text = json.dumps(data, allow_nan=False)
        assert json.loads(text) == data
        again = curve_from_dict(json.loads(text))
        assert again == schedule and hash(again) == hash(schedule)
        assert again.differing_fields(schedule) == []
        assert again.events(0, 1000) == schedule.events(0, 1000)
        np.testing.assert_array_equal(again.exact_lr_at(STEPS), schedule.exact_lr_at(STEPS))


def test_to_dict_holds_the_constructor_s_arguments():
    assert lo.warmup_cosine_decay_schedule(0.0, 1e-3, 100, 1000).to_dict() == {
        "curve": "optax.warmup_cosine_decay_schedule",
        "args": {"init_value": 0.0, "peak_value": 1e-3, "warmup_steps": 100, "decay_steps": 1000,
                 "end_value": 0.0, "exponent": 1.0}}
    assert lo.piecewise_constant_schedule(1.0, {200: 0.1, 100: 0.5}).to_dict()["args"] == {
        "init_value": 1.0, "boundaries_and_scales": {"100": 0.5, "200": 0.1}}
    joined = lo.join_schedules([lo.constant_schedule(1.0), lo.exponential_decay(1.0, 10, 0.5)], [5])
    assert joined.to_dict()["args"] == {"schedules": [lo.constant_schedule(1.0).to_dict(),
                                                      lo.exponential_decay(1.0, 10, 0.5).to_dict()],
                                        "boundaries": [5]}
    assert lo.piecewise_constant_schedule(1.0) == lo.piecewise_constant_schedule(1.0, {})


def test_differing_fields_names_the_arguments():
    base = lo.warmup_cosine_decay_schedule(0.0, 1e-3, 100, 1000)
    assert base.differing_fields(lo.warmup_cosine_decay_schedule(0.0, 1e-3, 100, 2000)) == ["decay_steps"]
    assert base.differing_fields(lo.warmup_cosine_decay_schedule(0.1, 1e-3, 100, 1000, end_value=1e-5)) == \
        ["init_value", "end_value"]
    assert base.differing_fields(lo.cosine_decay_schedule(1e-3, 1000)) == ["curve"]
    assert base != lo.warmup_cosine_decay_schedule(0.0, 1e-3, 100, 2000)
    sgdr = lo.sgdr_schedule(SGDR_CYCLES)
    assert sgdr.differing_fields(lo.sgdr_schedule(SGDR_CYCLES[:2])) == ["cosine_kwargs"]
    joined = lo.join_schedules([lo.constant_schedule(1.0), lo.constant_schedule(0.5)], [5])
    assert joined.differing_fields(lo.join_schedules([lo.constant_schedule(1.0), lo.constant_schedule(0.5)], [6])) \
        == ["boundaries"]


def test_curve_from_dict_refuses_bad_data():
    with pytest.raises(ValueError, match="decay_steps"):
        curve_from_dict({"curve": "optax.cosine_decay_schedule", "args": {"init_value": 1.0, "decay_steps": 0}})
    with pytest.raises(ValueError, match="optax.cosine_decay_schedule"):
        curve_from_dict({"curve": "optax.cosine_decay_schedule", "args": {"init_value": 1.0, "steps": 10}})
    with pytest.raises(ValueError):
        curve_from_dict({"curve": "optax.constant_schedule", "args": {"value": 1.0}, "extra": 1})
    with pytest.raises(ValueError, match="lrmon.schedules.optax"):  # a join's child must be one of ours
        curve_from_dict({"curve": "optax.join_schedules",
                         "args": {"schedules": [{"base_lrs": [0.1], "warmup_steps": 1, "total_steps": 10,
                                                 "warmup_start_lr": 0.0, "eta_min": 0.0}], "boundaries": []}})


# ---------------------------------------------------------------------------------------------------------------
# Bad inputs
# ---------------------------------------------------------------------------------------------------------------
_CYCLE = dict(init_value=0.0, peak_value=1.0, warmup_steps=1, decay_steps=10)
BAD_INPUTS = [
    (lambda: lo.constant_schedule("0.1"), TypeError, "value"),
    (lambda: lo.constant_schedule(float("nan")), ValueError, "value"),
    (lambda: lo.constant_schedule(-0.1), ValueError, "value"),
    (lambda: lo.linear_schedule(0.0, 1.0, 10.5), TypeError, "transition_steps"),
    (lambda: lo.linear_schedule(0.0, 1.0, True), TypeError, "transition_steps"),
    (lambda: lo.linear_schedule(0.0, 1.0, -1), ValueError, "transition_steps"),
    (lambda: lo.linear_schedule(0.0, 1.0, 10, transition_begin=-1), ValueError, "transition_begin"),
    (lambda: lo.linear_schedule(0.0, float("inf"), 10), ValueError, "end_value"),
    (lambda: lo.polynomial_schedule(1.0, 0.0, 0, 10), ValueError, "power"),
    (lambda: lo.polynomial_schedule(1.0, 0.0, "2", 10), TypeError, "power"),
    (lambda: lo.cosine_decay_schedule(1.0, 0), ValueError, "decay_steps"),
    (lambda: lo.cosine_decay_schedule(1.0, 10, alpha=-0.1), ValueError, "alpha"),
    (lambda: lo.cosine_decay_schedule(1.0, 10, exponent=0.0), ValueError, "exponent"),
    (lambda: lo.exponential_decay(1.0, 0, 0.5), ValueError, "transition_steps"),
    (lambda: lo.exponential_decay(1.0, 10, 0.0), ValueError, "decay_rate"),
    (lambda: lo.exponential_decay(1.0, 10, float("inf")), ValueError, "decay_rate"),
    (lambda: lo.exponential_decay(1.0, 10, 0.5, staircase=1), TypeError, "staircase"),
    (lambda: lo.exponential_decay(1.0, 10, 0.5, end_value=2.0), ValueError, "end_value"),
    (lambda: lo.exponential_decay(1.0, 10, 1.5, end_value=0.5), ValueError, "end_value"),
    (lambda: lo.piecewise_constant_schedule(1.0, {10: -0.1}), ValueError, "boundaries_and_scales"),
    (lambda: lo.piecewise_constant_schedule(1.0, {1.5: 0.1}), TypeError, "boundaries_and_scales"),
    (lambda: lo.piecewise_constant_schedule(1.0, {-1: 0.1}), ValueError, "boundaries_and_scales"),
    (lambda: lo.piecewise_constant_schedule(1.0, [(10, 0.1)]), TypeError, "boundaries_and_scales"),
    (lambda: lo.piecewise_interpolate_schedule("quadratic", 1.0), ValueError, "interpolate_type"),
    (lambda: lo.warmup_constant_schedule(0.0, 1.0, 0), ValueError, "warmup_steps"),
    (lambda: lo.warmup_cosine_decay_schedule(0.0, 1.0, 10, 10), ValueError, "decay_steps"),
    (lambda: lo.warmup_cosine_decay_schedule(0.0, 1.0, -1, 10), ValueError, "warmup_steps"),
    (lambda: lo.warmup_cosine_decay_schedule(0.0, 1.0, 1, 10, end_value=None), TypeError, "end_value"),
    (lambda: lo.warmup_exponential_decay_schedule(0.0, 1.0, 10, 5, 0.5, end_value=2.0), ValueError, "end_value"),
    (lambda: lo.warmup_exponential_decay_schedule(0.0, 1.0, 10.0, 5, 0.5), TypeError, "warmup_steps"),
    (lambda: lo.linear_onecycle_schedule(0, 1.0), ValueError, "transition_steps"),
    (lambda: lo.linear_onecycle_schedule(100, 1.0, pct_start=1.5), ValueError, "pct_start"),
    (lambda: lo.linear_onecycle_schedule(100, 1.0, pct_final=0.1), ValueError, "pct_final"),
    (lambda: lo.linear_onecycle_schedule(100, 1.0, div_factor=0.0), ValueError, "div_factor"),
    (lambda: lo.cosine_onecycle_schedule(-5, 1.0), ValueError, "transition_steps"),
    (lambda: lo.cosine_onecycle_schedule(100, 1.0, final_div_factor=-1.0), ValueError, "final_div_factor"),
    (lambda: lo.sgdr_schedule([]), ValueError, "cosine_kwargs"),
    (lambda: lo.sgdr_schedule(5), TypeError, "cosine_kwargs"),
    (lambda: lo.sgdr_schedule([dict(init_value=0.0, peak_value=1.0, warmup_steps=0)]), TypeError, "cosine_kwargs"),
    (lambda: lo.sgdr_schedule([{**_CYCLE, "decay_steps": 0}]), ValueError, "cosine_kwargs"),
    (lambda: lo.sgdr_schedule([{**_CYCLE, "alpha": 0.1}]), TypeError, "cosine_kwargs"),
    (lambda: lo.join_schedules([optax.constant_schedule(1.0)], []), TypeError, "schedules"),
    (lambda: lo.join_schedules([], []), ValueError, "schedules"),
    (lambda: lo.join_schedules([lo.constant_schedule(1.0)] * 2, []), ValueError, "boundaries"),
    (lambda: lo.join_schedules([lo.constant_schedule(1.0)] * 3, [20, 10]), ValueError, "boundaries"),
    (lambda: lo.join_schedules([lo.constant_schedule(1.0)] * 2, [1.5]), TypeError, "boundaries"),
]


@pytest.mark.parametrize("make, error, parameter", BAD_INPUTS, ids=[f"{i}-{p}" for i, (_, _, p) in
                                                                    enumerate(BAD_INPUTS)])
def test_bad_inputs_name_the_parameter(make, error, parameter):
    with pytest.raises(error) as raised:
        make()
    assert str(raised.value).startswith(parameter), str(raised.value)


def test_join_refuses_foreign_children_with_a_hint():
    with pytest.raises(TypeError, match="build the children with lrmon.schedules.optax"):
        lo.join_schedules([lo.constant_schedule(1.0), optax.constant_schedule(0.5)], [10])


def test_what_optax_refuses_is_refused_too():
    for make_with in (lambda lib: lib.cosine_decay_schedule(1.0, 0),
                      lambda lib: lib.piecewise_constant_schedule(1.0, {10: -0.5}),
                      lambda lib: lib.piecewise_interpolate_schedule("cubic", 1.0),
                      lambda lib: lib.linear_onecycle_schedule(0, 1.0),
                      lambda lib: lib.cosine_onecycle_schedule(0, 1.0)):
        with pytest.raises(ValueError):
            make_with(optax)
        with pytest.raises(ValueError):
            make_with(lo)
