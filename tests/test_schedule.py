"""Issue 2 ("Foundation"): the warmup + cosine curve, its stateful scheduler API, validation and state.

Reference values come from three independent places:

* ``braintools.optim.WarmupCosineSchedule`` (the class lrmon re-implements): lrmon's eager ``lr_at`` is bitwise
  equal to braintools' eager ``get_lr``. (lrmon's host ``get_lr()`` is a compiled call, and compiled XLA code
  differs from eager op-by-op evaluation by up to 1 ulp, as any jitted use of either library does; those
  comparisons use ``TRACED_ULPS``.)
* the seed document's formula evaluated in float64 (``seed_lr64`` below),
* ``optax.warmup_cosine_decay_schedule`` where it describes the same curve (``W < T``).

Float comparisons use tolerances in float32 ulps *of the peak LR* (``max(base_lrs + [warmup_start_lr])``): near the
end of the cosine the values are tiny and a per-value ulp would be meaningless.

Tolerance against the float64 formula and optax: ``REFERENCE_ULPS`` (4), not the 2 the issue asks for. lrmon's
eager curve is bitwise equal to braintools' (asserted below, stronger than any tolerance), and braintools' float32
arithmetic is itself up to ~2.9 ulps of the peak away from the float64 formula (measured over 500 random
configurations with T <= 10**5: the rounding of ``pi * (t - W) / (T - W)`` alone moves ``cos`` by up to ~1.9 float32
ulps of 1). optax's float32 evaluation is as far from float64 (~2.9) and up to 3.0 ulps from braintools. So no
implementation that keeps braintools' values can be within 2 ulps of the float64 formula everywhere. 2 ulps is what
lrmon keeps against its own compiled (jit / vmap / for_loop) evaluations, where only XLA fusion differs
(``TRACED_ULPS``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import braintools
import brainstate
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lrmon
from lrmon.curve import CurveConfig

REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------------------------------------
# References
# ---------------------------------------------------------------------------------------------------------------
def seed_lr64(cfg: CurveConfig, steps: np.ndarray) -> np.ndarray:
    """The seed document's two-phase formula in float64: shape ``steps.shape + (groups,)``.

    Warmup (t < W):  eta_ws + t / W * (eta_base - eta_ws)
    Cosine (t >= W): eta_min + 1/2 (eta_base - eta_min) (1 + cos(pi (t - W) / (T - W)))

    The seed's formula is undefined for ``W == T`` (0/0) and would rise again past ``T``; there the reference
    uses the documented conventions (braintools' own clipping): the cosine progress is
    ``clip((t - W) / max(T - W, 1), 0, 1)``, so the LR is ``eta_base`` at ``t == W == T`` and ``eta_min`` for
    every ``t >= T`` (``t > T`` when ``W == T``).
    """
    t = np.asarray(steps, dtype=np.float64)[..., None]
    base = np.asarray(cfg.base_lrs, dtype=np.float64)
    W, T = cfg.warmup_steps, cfg.total_steps
    ws, eta_min = cfg.warmup_start_lr, cfg.eta_min
    with np.errstate(divide="ignore", invalid="ignore"):
        warm = ws + t / W * (base - ws) if W > 0 else np.full(t.shape[:-1] + base.shape, np.nan)
        progress = np.clip((t - W) / max(T - W, 1), 0.0, 1.0)
    cosine = eta_min + 0.5 * (base - eta_min) * (1.0 + np.cos(np.pi * progress))
    return np.where(t < W, warm, cosine)


REFERENCE_ULPS = 4  # vs the float64 formula and vs optax (see the module docstring)
TRACED_ULPS = 2     # lrmon eager vs lrmon under jit / vmap / for_loop (XLA fusion differs by ~1 ulp)
SMALL_STEPS = 128   # step-array length used for the small hand-written configurations (all have T + 5 <= 128)


def ulp_tolerance(cfg: CurveConfig, ulps: int = TRACED_ULPS) -> float:
    """``ulps`` float32 ulps of the peak LR."""
    return ulps * float(np.spacing(np.float32(cfg.peak_lr)))


def braintools_lr(cfg: CurveConfig, steps: np.ndarray) -> np.ndarray:
    """braintools' LRs at many steps at once: its ``get_lr`` is written with ``jnp.where``, so an array-valued
    ``last_epoch`` evaluates the whole curve in one call (same ops as a scalar step, elementwise)."""
    sched = braintools.optim.WarmupCosineSchedule(
        base_lr=list(cfg.base_lrs), warmup_steps=cfg.warmup_steps, total_steps=cfg.total_steps,
        warmup_start_lr=cfg.warmup_start_lr, eta_min=cfg.eta_min,
    )
    sched.last_epoch.value = jnp.asarray(steps)
    return np.stack([np.asarray(v) for v in sched.get_lr()], axis=-1)


def optax_lr(cfg: CurveConfig, steps: np.ndarray) -> np.ndarray | None:
    """optax's warmup + cosine with the same curve, or None where optax cannot describe it.

    Mapping: init_value = warmup_start_lr, peak_value = base_lr (one schedule per group), warmup_steps = W,
    decay_steps = T (optax's decay_steps *includes* the warmup), end_value = eta_min. optax evaluates the
    schedule at the count of updates already applied, so the first update uses count 0: the same step convention
    as lrmon's ``t``. It requires ``T - W > 0`` (no ``W == T``). With ``W == 0`` its linear phase is a constant
    that ``join_schedules`` never selects (the cosine applies from count 0), which is lrmon's ``W == 0`` curve.
    """
    W, T = cfg.warmup_steps, cfg.total_steps
    if not W < T:
        return None
    out = []
    for base in cfg.base_lrs:
        sched = optax.warmup_cosine_decay_schedule(
            init_value=cfg.warmup_start_lr, peak_value=base, warmup_steps=W, decay_steps=T, end_value=cfg.eta_min,
        )
        out.append(np.asarray(sched(jnp.asarray(steps))))
    return np.stack(out, axis=-1)


# ---------------------------------------------------------------------------------------------------------------
# Random valid configurations
# ---------------------------------------------------------------------------------------------------------------
_lr = st.floats(min_value=1e-7, max_value=10.0, allow_nan=False, allow_infinity=False, allow_subnormal=False)


@st.composite
def configs(draw, max_total: int = 100_000) -> CurveConfig:
    total = draw(st.one_of(st.integers(1, 40), st.integers(1, max_total), st.sampled_from([max_total])))
    warmup = draw(st.one_of(st.just(0), st.just(total), st.integers(0, total)))
    groups = draw(st.integers(1, 3))
    base_lrs = draw(st.lists(st.one_of(_lr, st.just(0.0)) if groups > 1 else _lr, min_size=groups,
                             max_size=groups))
    min_base, max_base = min(base_lrs), max(base_lrs)
    warmup_start = draw(st.one_of(st.just(0.0), st.floats(0.0, 2 * max_base, allow_subnormal=False)))
    eta_min = draw(st.one_of(st.just(0.0), st.just(min_base), st.floats(0.0, min_base, allow_subnormal=False)))
    return CurveConfig(base_lrs, warmup, total, warmup_start, eta_min)


def curve_steps(cfg: CurveConfig) -> np.ndarray:
    """Every step from 0 to 2**17 - 1 (past ``T`` for every ``T <= 10**5``), plus a few steps far past the end.

    One fixed length for every configuration: each new array shape costs eager jax ops a fresh compilation
    (seconds in all), while evaluating 131k steps costs milliseconds."""
    assert cfg.total_steps < 2**17
    far = np.array([cfg.total_steps, cfg.total_steps + 1, 2 * cfg.total_steps, 10 * cfg.total_steps + 7,
                    2**20, 2**24 + 3, 2**30, 2**31 - 1])
    return np.concatenate([np.arange(2**17), far])


# ---------------------------------------------------------------------------------------------------------------
# Parity of the curve
# ---------------------------------------------------------------------------------------------------------------
def _worst(cfg, steps, err, tol):
    """Failure message: the configuration, the worst step and its error in ulps of the peak."""
    return cfg, int(steps[np.unravel_index(err.argmax(), err.shape)[0]]), err.max() / tol * REFERENCE_ULPS


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cfg=configs())
def test_curve_parity_with_braintools_seed_formula_and_optax(cfg):
    # ``WarmupCosineSchedule.lr_at`` is ``CurveConfig.lr_at``; building a schedule per example would add a jit
    # compilation (its host ``get_lr``) that this test does not need.
    steps = curve_steps(cfg)
    ours = np.asarray(cfg.lr_at(steps))
    assert ours.shape == steps.shape + (cfg.num_groups,)
    assert ours.dtype == np.float32
    assert np.all(np.isfinite(ours))
    tol = ulp_tolerance(cfg, REFERENCE_ULPS)

    # braintools: the same ops in the same order -> bitwise equal (and so within any tolerance).
    np.testing.assert_array_equal(ours, braintools_lr(cfg, steps))

    # The seed's formula in float64.
    ref = seed_lr64(cfg, steps)
    err = np.abs(ours.astype(np.float64) - ref)
    assert err.max() <= tol, _worst(cfg, steps, err, tol)

    # optax, where it describes the same curve.
    reference = optax_lr(cfg, steps)
    if reference is not None:
        err = np.abs(ours.astype(np.float64) - reference.astype(np.float64))
        assert err.max() <= tol, _worst(cfg, steps, err, tol)

    # Never rises again after the end, never leaves [min, max] of its parameters.
    end = steps >= cfg.total_steps
    if cfg.total_steps > cfg.warmup_steps:
        np.testing.assert_array_equal(ours[end], np.broadcast_to(np.float32(cfg.eta_min), ours[end].shape))
    # (within float32 rounding: eta_min + (base - eta_min) * 1 may land one ulp above base_lr)
    assert np.all(ours <= np.float32(cfg.peak_lr) + ulp_tolerance(cfg, 1))
    assert np.all(ours >= np.float32(min(cfg.eta_min, cfg.warmup_start_lr)) - ulp_tolerance(cfg, 1))


@pytest.mark.parametrize(
    "cfg",
    [
        CurveConfig(0.1, 0, 10),                                      # W == 0: starts at base_lr
        CurveConfig(0.1, 10, 10, warmup_start_lr=0.01, eta_min=1e-3),  # W == T: no cosine phase
        CurveConfig([0.1, 0.02], 3, 3),                               # W == T, two groups
        CurveConfig(0.1, 1, 1),                                       # W == T == 1
        CurveConfig(0.1, 0, 1, eta_min=0.05),                         # T == 1 with W == 0
        CurveConfig(0.3, 1, 2, warmup_start_lr=0.5),                  # warmup start above the peak
    ],
    ids=["W=0", "W=T", "W=T-2groups", "W=T=1", "T=1", "ws>base"],
)
def test_edge_configurations(cfg):
    schedule = lrmon.WarmupCosineSchedule.from_config(cfg)
    W, T = cfg.warmup_steps, cfg.total_steps
    steps = np.arange(SMALL_STEPS)  # one length for all small cases: each new shape recompiles eager ops
    ours = np.asarray(schedule.lr_at(steps))
    assert np.all(np.isfinite(ours))
    np.testing.assert_array_equal(ours, braintools_lr(cfg, steps))
    base = np.asarray(cfg.base_lrs, np.float32)
    if W == 0:
        np.testing.assert_array_equal(ours[0], base)                      # cosine starts at base_lr
    else:
        np.testing.assert_array_equal(ours[0], np.float32(cfg.warmup_start_lr))
    if W == T:
        # braintools' convention (documented by lrmon): base_lr at t == T, eta_min after.
        np.testing.assert_array_equal(ours[T], base)
        np.testing.assert_array_equal(ours[T + 1:], np.broadcast_to(np.float32(cfg.eta_min), ours[T + 1:].shape))
    else:
        np.testing.assert_array_equal(ours[T:], np.broadcast_to(np.float32(cfg.eta_min), ours[T:].shape))
    np.testing.assert_allclose(ours, seed_lr64(cfg, steps), rtol=0, atol=ulp_tolerance(cfg, REFERENCE_ULPS))


def test_phases_and_events_follow_the_step_convention():
    cfg = CurveConfig(0.1, 3, 8)
    np.testing.assert_array_equal(cfg.phase_at(np.arange(10)), [0, 0, 0, 1, 1, 1, 1, 1, 2, 2])
    assert dict(cfg.events()) == {"warmup_start": 0, "warmup_end": 2, "cosine_start": 3, "end": 7, "overrun": 8}
    assert dict(CurveConfig(0.1, 0, 5).events()) == {"cosine_start": 0, "end": 4, "overrun": 5}
    assert dict(CurveConfig(0.1, 5, 5).events()) == {"warmup_start": 0, "warmup_end": 4, "end": 4, "overrun": 5}


# ---------------------------------------------------------------------------------------------------------------
# The stateful API: step(), step(epoch), get_lr(), current_lrs
# ---------------------------------------------------------------------------------------------------------------
def _lrs(values) -> np.ndarray:
    return np.asarray([np.asarray(v) for v in values], dtype=np.float32)


def assert_host_lrs(schedule, t, braintools_schedule=None):
    """The stateful values at ``last_epoch == t``.

    ``get_lr()``, ``get_last_lr()`` and ``current_lrs`` agree bitwise with each other and with the host's compiled
    form of the curve (``CurveConfig.lr_per_group_at``); the eager ``lr_at`` and braintools' eager ``get_lr``
    are other float32 evaluations of the same ops (XLA fusion differs: up to 1 ulp), so those comparisons use
    ``TRACED_ULPS``.
    """
    cfg = schedule.config
    assert int(schedule.last_epoch.value) == t
    got = _lrs(schedule.get_lr())
    np.testing.assert_array_equal(got, _lrs(cfg.lr_per_group_at(t)))
    np.testing.assert_array_equal(_lrs(schedule.get_last_lr()), got)
    np.testing.assert_array_equal(_lrs(schedule.current_lrs.value), got)
    tol = ulp_tolerance(cfg)
    np.testing.assert_allclose(got, np.asarray(schedule.lr_at(t)), rtol=0, atol=tol)
    if braintools_schedule is not None:
        assert int(braintools_schedule.last_epoch.value) == t
        np.testing.assert_allclose(got, _lrs(braintools_schedule.get_lr()), rtol=0, atol=tol)
        np.testing.assert_allclose(got, _lrs(braintools_schedule.current_lrs.value), rtol=0, atol=tol)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cfg=configs(max_total=2000), data=st.data())
def test_stateful_api_matches_lr_at_and_braintools(cfg, data):
    ours = lrmon.WarmupCosineSchedule.from_config(cfg)
    theirs = braintools.optim.WarmupCosineSchedule(
        base_lr=list(cfg.base_lrs), warmup_steps=cfg.warmup_steps, total_steps=cfg.total_steps,
        warmup_start_lr=cfg.warmup_start_lr, eta_min=cfg.eta_min,
    )
    # Step 0 (before any step()): the LR of train step 0, already in current_lrs.
    assert_host_lrs(ours, 0, theirs)

    n = data.draw(st.integers(1, 8), label="step() calls")
    for t in range(1, n + 1):
        ours.step()
        theirs.step()
        assert_host_lrs(ours, t, theirs)

    W, T = cfg.warmup_steps, cfg.total_steps
    interesting = [0, max(W - 1, 0), W, W + 1, max(T - 1, 0), T, T + 1, 3 * T + 2]
    jumps = data.draw(st.lists(st.one_of(st.sampled_from(interesting), st.integers(0, 2 * T + 10)),
                               min_size=1, max_size=6), label="step(epoch) jumps")
    for epoch in jumps:
        ours.step(epoch)
        theirs.step(epoch)
        assert_host_lrs(ours, epoch, theirs)
        ours.step()  # and one plain step after the jump
        theirs.step()
        assert_host_lrs(ours, epoch + 1, theirs)


def test_w_equals_t_stateful_matches_braintools():
    kw = dict(base_lr=[0.1, 0.04], warmup_steps=6, total_steps=6, warmup_start_lr=1e-3, eta_min=1e-4)
    ours, theirs = lrmon.WarmupCosineSchedule(**kw), braintools.optim.WarmupCosineSchedule(**kw)
    seen = []
    for t in range(10):
        assert_host_lrs(ours, t, theirs)
        if t >= 6:  # exact values from here on: bitwise with braintools
            np.testing.assert_array_equal(_lrs(ours.get_lr()), _lrs(theirs.get_lr()))
        seen.append(_lrs(ours.get_lr()))
        ours.step()
        theirs.step()
    np.testing.assert_array_equal(seen[6], np.float32([0.1, 0.04]))        # base_lr at t == T
    np.testing.assert_array_equal(seen[7], np.float32([1e-4, 1e-4]))       # eta_min after
    np.testing.assert_array_equal(seen[9], np.float32([1e-4, 1e-4]))


def test_initial_last_epoch_resumes_the_curve():
    cfg = CurveConfig([0.2, 0.1], 5, 50, warmup_start_lr=0.01, eta_min=0.001)
    schedule = lrmon.WarmupCosineSchedule.from_config(cfg, last_epoch=17)
    assert_host_lrs(schedule, 17)
    schedule.step()
    assert_host_lrs(schedule, 18)


# ---------------------------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------------------------
_VALID = dict(base_lr=0.1, warmup_steps=10, total_steps=100, warmup_start_lr=0.0, eta_min=0.0)

_INVALID = [
    # (overrides, exception type, parameter name that must appear in the message)
    (dict(base_lr=-0.1), ValueError, "base_lr"),
    (dict(base_lr=float("nan")), ValueError, "base_lr"),
    (dict(base_lr=float("inf")), ValueError, "base_lr"),
    (dict(base_lr=[0.1, -1e-3]), ValueError, "base_lr"),
    (dict(base_lr=[0.1, float("nan")]), ValueError, "base_lr"),
    (dict(base_lr=[]), ValueError, "base_lr"),
    (dict(base_lr=()), ValueError, "base_lr"),
    (dict(base_lr="0.1"), TypeError, "base_lr"),
    (dict(base_lr=True), TypeError, "base_lr"),
    (dict(warmup_start_lr=-1e-6), ValueError, "warmup_start_lr"),
    (dict(warmup_start_lr=float("nan")), ValueError, "warmup_start_lr"),
    (dict(warmup_start_lr=float("inf")), ValueError, "warmup_start_lr"),
    (dict(warmup_start_lr=float("-inf")), ValueError, "warmup_start_lr"),
    (dict(eta_min=-1e-6), ValueError, "eta_min"),
    (dict(eta_min=float("nan")), ValueError, "eta_min"),
    (dict(eta_min=float("inf")), ValueError, "eta_min"),
    (dict(eta_min=0.2), ValueError, "eta_min"),                        # eta_min > base_lr
    (dict(base_lr=[0.1, 0.01], eta_min=0.05), ValueError, "eta_min"),  # above one group's base_lr
    (dict(total_steps=0), ValueError, "total_steps"),
    (dict(total_steps=-5, warmup_steps=0), ValueError, "total_steps"),
    (dict(warmup_steps=-1), ValueError, "warmup_steps"),
    (dict(warmup_steps=101), ValueError, "warmup_steps"),              # warmup_steps > total_steps
    (dict(warmup_steps=1.5), TypeError, "warmup_steps"),
    (dict(warmup_steps=10.0), TypeError, "warmup_steps"),
    (dict(warmup_steps=True), TypeError, "warmup_steps"),
    (dict(warmup_steps="10"), TypeError, "warmup_steps"),
    (dict(total_steps=1.5), TypeError, "total_steps"),
    (dict(total_steps=True), TypeError, "total_steps"),
    (dict(total_steps="10"), TypeError, "total_steps"),
    (dict(last_epoch=-1), ValueError, "last_epoch"),
    (dict(last_epoch=2.0), TypeError, "last_epoch"),
]


@pytest.mark.parametrize("overrides,exc,name", _INVALID, ids=[repr(o) for o, _, _ in _INVALID])
def test_invalid_configuration_raises_naming_the_parameter(overrides, exc, name):
    with pytest.raises(exc, match=name):
        lrmon.WarmupCosineSchedule(**{**_VALID, **overrides})


@pytest.mark.parametrize(
    "overrides",
    [dict(warmup_steps=0), dict(warmup_steps=100), dict(warmup_steps=np.int64(10), total_steps=np.int32(100)),
     dict(base_lr=np.float32(0.1)), dict(base_lr=0.0), dict(eta_min=0.1), dict(warmup_start_lr=0.5),
     dict(base_lr=(0.1, 0.2)), dict(total_steps=1, warmup_steps=1), dict(total_steps=1, warmup_steps=0)],
    ids=lambda o: repr(o),
)
def test_valid_boundaries_give_finite_curves(overrides):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no division-by-zero or invalid-value warning either
        schedule = lrmon.WarmupCosineSchedule(**{**_VALID, **overrides})
        steps = np.arange(SMALL_STEPS)
        values = np.asarray(schedule.lr_at(steps))
        assert np.all(np.isfinite(_lrs(schedule.get_lr())))
    assert np.all(np.isfinite(values))
    np.testing.assert_array_equal(values, braintools_lr(schedule.config, steps))
    assert isinstance(schedule.warmup_steps, int) and isinstance(schedule.total_steps, int)


def test_invalid_step_epoch_raises():
    schedule = lrmon.WarmupCosineSchedule(**_VALID)
    for bad, exc in [(-1, ValueError), (1.5, TypeError), (True, TypeError), ("3", TypeError)]:
        with pytest.raises(exc, match="epoch"):
            schedule.step(bad)
    assert int(schedule.last_epoch.value) == 0


# ---------------------------------------------------------------------------------------------------------------
# base_lrs assignment
# ---------------------------------------------------------------------------------------------------------------
def test_assigning_base_lrs_changes_the_curve():
    schedule = lrmon.WarmupCosineSchedule(base_lr=0.3, warmup_steps=40, total_steps=400, eta_min=0.0)
    schedule.step(40)
    np.testing.assert_allclose(np.asarray(schedule.get_lr()[0]), 0.3, rtol=1e-7)
    schedule.base_lrs = [4.8]
    assert schedule.base_lrs == [4.8] and schedule.config.base_lrs == (4.8,)
    np.testing.assert_array_equal(np.asarray(schedule.get_lr()[0]), np.float32(4.8))
    np.testing.assert_array_equal(_lrs(schedule.current_lrs.value), np.float32([4.8]))
    np.testing.assert_array_equal(np.asarray(schedule.lr_at(20))[0], np.float32(2.4))
    expected = CurveConfig(4.8, 40, 400)
    np.testing.assert_array_equal(np.asarray(schedule.lr_at(np.arange(500))),
                                  np.asarray(expected.lr_at(np.arange(500))))
    assert schedule.state_dict()["config"]["base_lrs"] == [4.8]
    # An invalid assignment raises and leaves the curve alone.
    with_floor = lrmon.WarmupCosineSchedule(base_lr=0.3, warmup_steps=40, total_steps=400, eta_min=0.1)
    with pytest.raises(ValueError, match="eta_min"):
        with_floor.base_lrs = [0.05]
    with pytest.raises(ValueError, match="base_lr"):
        with_floor.base_lrs = []
    assert with_floor.base_lrs == [0.3]


# ---------------------------------------------------------------------------------------------------------------
# state_dict / load_state_dict
# ---------------------------------------------------------------------------------------------------------------
_CFG = dict(base_lr=[0.1, 0.05], warmup_steps=10, total_steps=100, warmup_start_lr=1e-3, eta_min=1e-4)


def test_state_dict_round_trip_through_json():
    schedule = lrmon.WarmupCosineSchedule(**_CFG)
    for _ in range(7):
        schedule.step()
    state = schedule.state_dict()
    assert state["last_epoch"] == 7
    assert state["config"] == {"base_lrs": [0.1, 0.05], "warmup_steps": 10, "total_steps": 100,
                               "warmup_start_lr": 1e-3, "eta_min": 1e-4}
    restored = json.loads(json.dumps(state))  # JSON data, no pickle needed
    assert restored == state
    other = lrmon.WarmupCosineSchedule(**_CFG)
    other.load_state_dict(restored)
    assert int(other.last_epoch.value) == 7
    np.testing.assert_array_equal(_lrs(other.get_lr()), _lrs(schedule.get_lr()))
    assert_host_lrs(other, 7)
    other.step()
    schedule.step()
    np.testing.assert_array_equal(_lrs(other.get_lr()), _lrs(schedule.get_lr()))
    assert other.state_dict() == schedule.state_dict()


def test_state_dict_after_steps_inside_jit_is_json():
    schedule = lrmon.WarmupCosineSchedule(**_CFG)

    @brainstate.transform.jit
    def advance():
        schedule.step()

    for _ in range(3):
        advance()
    state = json.loads(json.dumps(schedule.state_dict()))
    assert state["last_epoch"] == 3


@pytest.mark.parametrize(
    "change,fields",
    [
        (dict(warmup_steps=20), ["warmup_steps"]),
        (dict(total_steps=200), ["total_steps"]),
        (dict(eta_min=0.0), ["eta_min"]),
        (dict(warmup_start_lr=0.0), ["warmup_start_lr"]),
        (dict(base_lr=[0.1, 0.06]), ["base_lrs"]),
        (dict(base_lr=[0.1]), ["base_lrs"]),
        (dict(warmup_steps=0, total_steps=50), ["warmup_steps", "total_steps"]),
    ],
)
def test_loading_a_different_configuration_raises_config_mismatch(change, fields):
    saved = lrmon.WarmupCosineSchedule(**{**_CFG, **change})
    saved.step(42)
    state = saved.state_dict()
    current = lrmon.WarmupCosineSchedule(**_CFG)
    current.step(3)
    before = (current.state_dict(), _lrs(current.current_lrs.value))
    with pytest.raises(lrmon.ConfigMismatchError) as info:
        current.load_state_dict(state)
    assert isinstance(info.value, ValueError)
    assert sorted(info.value.fields) == sorted(fields)
    for field in fields:
        assert field in str(info.value)
    # Nothing changed.
    assert current.state_dict() == before[0]
    np.testing.assert_array_equal(_lrs(current.current_lrs.value), before[1])

    # allow_config_change: keep the current configuration, take the saved step.
    current.load_state_dict(state, allow_config_change=True)
    assert current.config == CurveConfig(**{k if k != "base_lr" else "base_lrs": v for k, v in _CFG.items()})
    assert_host_lrs(current, 42)


def _good_state():
    schedule = lrmon.WarmupCosineSchedule(**_CFG)
    schedule.step(5)
    return schedule.state_dict()


def _malformed_states():
    good = _good_state()
    cases = {}

    def variant(name, **changes):
        state = json.loads(json.dumps(good))
        for key, value in changes.items():
            if value is _DROP:
                del state[key]
            else:
                state[key] = value
        cases[name] = state

    def config_variant(name, **changes):
        state = json.loads(json.dumps(good))
        for key, value in changes.items():
            if value is _DROP:
                del state["config"][key]
            else:
                state["config"][key] = value
        cases[name] = state

    variant("missing version", version=_DROP)
    variant("missing config", config=_DROP)
    variant("missing last_epoch", last_epoch=_DROP)
    variant("other version", version=2)
    variant("config not a mapping", config=[1, 2, 3])
    variant("negative last_epoch", last_epoch=-1)
    variant("float last_epoch", last_epoch=5.5)
    variant("bool last_epoch", last_epoch=True)
    variant("string last_epoch", last_epoch="5")
    variant("null last_epoch", last_epoch=None)
    config_variant("config missing field", eta_min=_DROP)
    config_variant("config unknown field", extra=1)
    config_variant("config warmup > total", warmup_steps=1000)
    config_variant("config negative lr", eta_min=-1.0)
    config_variant("config string lr", eta_min="x")
    config_variant("config float steps", total_steps=100.5)
    config_variant("config empty base_lrs", base_lrs=[])
    return cases


_DROP = object()


@pytest.mark.parametrize("name", list(_malformed_states()))
def test_malformed_state_raises_value_error_and_changes_nothing(name):
    state = _malformed_states()[name]
    schedule = lrmon.WarmupCosineSchedule(**_CFG)
    schedule.step(3)
    before = (schedule.state_dict(), _lrs(schedule.current_lrs.value))
    for allow in (False, True):
        with pytest.raises(ValueError):
            schedule.load_state_dict(state, allow_config_change=allow)
        assert schedule.state_dict() == before[0]
        np.testing.assert_array_equal(_lrs(schedule.current_lrs.value), before[1])


def test_non_mapping_state_raises_and_changes_nothing():
    schedule = lrmon.WarmupCosineSchedule(**_CFG)
    schedule.step(3)
    before = schedule.state_dict()
    for bad in (None, [1, 2], "state", 3):
        with pytest.raises((TypeError, ValueError)):
            schedule.load_state_dict(bad)
    assert schedule.state_dict() == before


def test_braintools_state_dict_is_not_accepted_silently():
    """braintools' state (no configuration) cannot be loaded as if it matched."""
    theirs = braintools.optim.WarmupCosineSchedule(base_lr=0.1, warmup_steps=10, total_steps=100)
    theirs.step(4)
    schedule = lrmon.WarmupCosineSchedule(**_CFG)
    with pytest.raises(ValueError):
        schedule.load_state_dict(theirs.state_dict())
    assert int(schedule.last_epoch.value) == 0


# ---------------------------------------------------------------------------------------------------------------
# Inside brainstate / jax transforms
# ---------------------------------------------------------------------------------------------------------------
def test_step_and_get_lr_inside_brainstate_jit():
    cfg = CurveConfig([0.1, 0.05], 4, 12, warmup_start_lr=0.01, eta_min=0.001)
    schedule = lrmon.WarmupCosineSchedule.from_config(cfg)
    tol = ulp_tolerance(cfg)

    @brainstate.transform.jit
    def train_step():
        used = jnp.stack(schedule.get_lr())      # the LR of this train step
        current = jnp.stack(schedule.current_lrs.value)
        schedule.step()
        return used, current, schedule.last_epoch.value

    for t in range(16):
        used, current, epoch = train_step()
        np.testing.assert_allclose(np.asarray(used), np.asarray(cfg.lr_at(t)), rtol=0, atol=tol)
        np.testing.assert_allclose(np.asarray(current), np.asarray(cfg.lr_at(t)), rtol=0, atol=tol)
        assert int(epoch) == t + 1
    assert int(schedule.last_epoch.value) == 16
    np.testing.assert_allclose(_lrs(schedule.current_lrs.value), np.asarray(cfg.lr_at(16)), rtol=0, atol=tol)

    @brainstate.transform.jit
    def jump(epoch):
        schedule.step(epoch)
        return jnp.stack(schedule.get_lr())

    for epoch in (0, 3, 4, 11, 12, 40):
        np.testing.assert_allclose(np.asarray(jump(jnp.asarray(epoch))), np.asarray(cfg.lr_at(epoch)),
                                   rtol=0, atol=tol)
        assert int(schedule.last_epoch.value) == epoch
    # Back on the host after traced updates: still consistent, still JSON state.
    schedule.step()
    assert_host_lrs(schedule, 41)
    assert schedule.state_dict()["last_epoch"] == 41


def test_step_and_get_lr_inside_brainstate_for_loop():
    cfg = CurveConfig([0.1, 0.05], 7, 30, warmup_start_lr=0.02, eta_min=0.001)
    schedule = lrmon.WarmupCosineSchedule.from_config(cfg)
    reference = braintools.optim.WarmupCosineSchedule(base_lr=[0.1, 0.05], warmup_steps=7, total_steps=30,
                                                      warmup_start_lr=0.02, eta_min=0.001)

    def body(i):
        used = jnp.stack(schedule.get_lr())
        schedule.step()
        theirs = jnp.stack(reference.get_lr())
        reference.step()
        return used, theirs, schedule.last_epoch.value

    used, theirs, epochs = brainstate.transform.for_loop(body, jnp.arange(40))
    np.testing.assert_array_equal(np.asarray(epochs), np.arange(1, 41))
    np.testing.assert_allclose(np.asarray(used), np.asarray(cfg.lr_at(np.arange(40))), rtol=0,
                               atol=ulp_tolerance(cfg))
    np.testing.assert_array_equal(np.asarray(used), np.asarray(theirs))  # same trace, same ops as braintools
    assert int(schedule.last_epoch.value) == 40
    np.testing.assert_allclose(_lrs(schedule.current_lrs.value), np.asarray(cfg.lr_at(40)), rtol=0,
                               atol=ulp_tolerance(cfg))


def test_jax_jit_vmap_of_lr_at():
    cfg = CurveConfig([0.1, 0.05, 0.2], 5, 50, warmup_start_lr=0.01, eta_min=0.001)
    schedule = lrmon.WarmupCosineSchedule.from_config(cfg)
    steps = jnp.arange(64)
    vectorised = jax.jit(jax.vmap(schedule.lr_at))(steps)
    assert vectorised.shape == (64, 3)
    np.testing.assert_allclose(np.asarray(vectorised), np.asarray(schedule.lr_at(steps)), rtol=0,
                               atol=ulp_tolerance(cfg))
    np.testing.assert_allclose(np.asarray(vectorised), seed_lr64(cfg, np.arange(64)), rtol=0,
                               atol=ulp_tolerance(cfg, REFERENCE_ULPS))
    # As an optax schedule, jitted, per group.
    for group in range(3):
        fn = jax.jit(schedule.as_optax(group))
        np.testing.assert_allclose(np.asarray(jax.vmap(fn)(steps)), np.asarray(schedule.lr_at(steps))[:, group],
                                   rtol=0, atol=ulp_tolerance(cfg))
    with pytest.raises(ValueError, match="group"):
        schedule.as_optax(3)
    # lax.scan over the pure form.
    _, scanned = jax.lax.scan(lambda c, t: (c, schedule.lr_at(t)), None, steps)
    np.testing.assert_allclose(np.asarray(scanned), np.asarray(schedule.lr_at(steps)), rtol=0,
                               atol=ulp_tolerance(cfg))


# ---------------------------------------------------------------------------------------------------------------
# Packaging: import lrmon imports no tracker; the wheel holds only lrmon/
# ---------------------------------------------------------------------------------------------------------------
def test_import_lrmon_imports_no_tracker():
    code = ("import lrmon, sys; hit = {'wandb', 'tensorboardX', 'clu', 'tensorflow', 'tensorboard'} & set(sys.modules);"
            " assert not hit, hit")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(REPO))


def test_wheel_contains_only_the_lrmon_package(tmp_path):
    """A real (non-editable) wheel: every file under ``lrmon/`` or its dist-info; no top-level ``integrations``."""
    import shutil

    source = tmp_path / "src"  # build from a copy: building in place would leave build/ in the working tree
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".venv", ".git", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", ".hypothesis", "runs",
        "wandb", "tests", "benchmarks", "examples", "*.whl"))
    out = tmp_path / "wheel"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                    "-q", "-w", str(out), str(source)], check=True, capture_output=True)
    (wheel,) = out.glob("lrmon-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        dist_info = {n.split("/")[0] for n in names if n.split("/")[0].endswith(".dist-info")}
        assert len(dist_info) == 1
        outside = [n for n in names if n.split("/")[0] not in {"lrmon"} | dist_info]
        assert not outside, outside
        assert "lrmon/__init__.py" in names and "lrmon/integrations/__init__.py" in names
        (top_level,) = [n for n in names if n.endswith("top_level.txt")] or [None]
        if top_level is not None:
            assert archive.read(top_level).decode().split() == ["lrmon"]
    # Installed from the wheel alone: lrmon and lrmon.integrations import from there; `integrations` does not.
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target",
                    str(site), str(wheel)], check=True, capture_output=True)
    assert not (site / "integrations").exists()
    code = (
        "import sys, importlib.util; sys.path.insert(0, sys.argv[1]);"
        "import lrmon, lrmon.integrations;"
        "assert lrmon.__file__.startswith(sys.argv[1]), lrmon.__file__;"
        "assert lrmon.integrations.__file__.startswith(sys.argv[1]), lrmon.integrations.__file__;"
        "assert importlib.util.find_spec('integrations') is None"
    )
    subprocess.run([sys.executable, "-c", code, str(site)], check=True, cwd=str(tmp_path))
