"""Issue 2 ("Foundation"): lrmon's schedule drives real optimizers, and the LR they apply at train step ``t`` is the
schedule's LR for ``last_epoch == t`` (``get_lr()`` before that step's ``step()``).

* braintools ``AdamW(lr=schedule)`` in a ``brainstate.transform.jit`` train step (the schedule stepped inside it):
  converges on a tiny regression; its parameter trajectory equals ``optax.adamw`` driven by the same curve (the
  two chains are the same operations), and not the trajectory of a curve shifted by one step.
* braintools ``SGD`` on a known gradient: the applied LR, measured from the parameter update, is the
  ``current_lrs`` value read before the update and ``lr_at(t)``.
* optax: ``optax.inject_hyperparams(optax.adamw)(learning_rate=schedule)`` records the LR it applied at each
  update; ``optax.sgd(schedule.as_optax())`` with gradient 1 applies exactly ``-lr_at(t)``.
"""

from __future__ import annotations

import braintools
import brainstate
import jax
import jax.numpy as jnp
import numpy as np
import optax

import lrmon
from lrmon.curve import CurveConfig

TRACED_ULPS = 2  # lrmon evaluated in different compiled contexts: XLA fusion differs by up to ~1 ulp


def tol(cfg: CurveConfig) -> float:
    return TRACED_ULPS * float(np.spacing(np.float32(cfg.peak_lr)))


# A tiny regression problem: y = X w* + b* (+ no noise), 4 features.
_RNG = np.random.default_rng(0)
X = jnp.asarray(_RNG.normal(size=(64, 4)), jnp.float32)
W_TRUE = jnp.asarray([[1.5], [-2.0], [0.5], [3.0]], jnp.float32)
Y = X @ W_TRUE + 0.25

CFG = CurveConfig(0.05, warmup_steps=20, total_steps=300, warmup_start_lr=1e-3, eta_min=1e-3)
N_STEPS = 320  # past total_steps: the LR holds eta_min
WEIGHT_DECAY = 1e-4


def _init_params():
    return {"weight": jnp.asarray(_RNG.normal(size=(4, 1)) * 0.1, jnp.float32), "bias": jnp.zeros((1,), jnp.float32)}


INIT = _init_params()


def _loss(params, x, y):
    return jnp.mean((x @ params["weight"] + params["bias"] - y) ** 2)


class Regression(brainstate.nn.Module):
    def __init__(self, params):
        super().__init__()
        self.weight = brainstate.ParamState(params["weight"])
        self.bias = brainstate.ParamState(params["bias"])

    def __call__(self, x):
        return x @ self.weight.value + self.bias.value


def test_braintools_adamw_in_brainstate_jit_converges_and_applies_the_schedule():
    schedule = lrmon.WarmupCosineSchedule.from_config(CFG)
    model = Regression(INIT)
    optimizer = braintools.optim.AdamW(lr=schedule, weight_decay=WEIGHT_DECAY)
    params = model.states(brainstate.ParamState)
    optimizer.register_trainable_weights(params)

    @brainstate.transform.jit
    def train_step(x, y):
        applied = schedule.current_lrs.value[0]   # what optax.scale_by_schedule(schedule) reads in this update
        reported = schedule.get_lr()[0]            # the schedule's LR at this step's last_epoch
        epoch = schedule.last_epoch.value
        grads, loss = brainstate.transform.grad(lambda: jnp.mean((model(x) - y) ** 2), params, return_value=True)()
        optimizer.step(grads)
        schedule.step()
        return loss, applied, reported, epoch, model.weight.value, model.bias.value

    losses, applied, reported, epochs, weights, biases = [], [], [], [], [], []
    for t in range(N_STEPS):
        host_lr = schedule.get_last_lr()[0]   # host view of the LR train step t will use
        loss, a, r, e, w, b = train_step(X, Y)
        np.testing.assert_array_equal(np.asarray(a), np.asarray(host_lr))
        for out, v in zip((losses, applied, reported, epochs, weights, biases), (loss, a, r, e, w, b)):
            out.append(np.asarray(v))
    losses, applied, reported = np.asarray(losses), np.asarray(applied), np.asarray(reported)
    np.testing.assert_array_equal(np.asarray(epochs), np.arange(N_STEPS))
    assert int(schedule.last_epoch.value) == N_STEPS
    assert int(optimizer.step_count.value) == N_STEPS

    # The LR applied at step t is get_lr() at last_epoch == t, which is the curve at t.
    curve = np.asarray(CFG.lr_at(np.arange(N_STEPS)))[:, 0]
    np.testing.assert_allclose(reported, applied, rtol=0, atol=tol(CFG))
    np.testing.assert_allclose(applied, curve, rtol=0, atol=tol(CFG))
    assert applied[0] == np.float32(CFG.warmup_start_lr)      # step 0 uses warmup_start_lr, not base_lr
    np.testing.assert_array_equal(applied[CFG.total_steps:], np.float32(CFG.eta_min))

    # Converges.
    assert np.all(np.isfinite(losses))
    assert losses[-1] < 1e-3 * losses[0], (losses[0], losses[-1])
    np.testing.assert_allclose(np.asarray(model.weight.value), np.asarray(W_TRUE), atol=0.02)

    # The same curve through optax.adamw (same chain: scale_by_adam -> add_decayed_weights -> -lr(count)) gives
    # the same trajectory; the curve shifted by one step (an off-by-one in the applied LR) does not.
    def optax_trajectory(shift):
        reference = lrmon.WarmupCosineSchedule.from_config(CFG)
        tx = optax.adamw(learning_rate=lambda count: reference(count + shift), weight_decay=WEIGHT_DECAY)

        @jax.jit
        def run(params):
            def body(carry, _):
                p, s = carry
                g = jax.grad(_loss)(p, X, Y)
                u, s = tx.update(g, s, p)
                p = optax.apply_updates(p, u)
                return (p, s), p
            return jax.lax.scan(body, (params, tx.init(params)), None, length=N_STEPS)[1]

        return run(INIT)

    ours = np.asarray(weights)[:, :, 0]
    reference = optax_trajectory(0)
    same = np.asarray(reference["weight"])[:, :, 0]
    shifted = np.asarray(optax_trajectory(1)["weight"])[:, :, 0]
    np.testing.assert_allclose(ours, same, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(biases)[:, 0], np.asarray(reference["bias"])[:, 0], rtol=1e-4, atol=1e-5)
    assert np.abs(ours[:CFG.warmup_steps] - shifted[:CFG.warmup_steps]).max() > 100 * np.abs(
        ours[:CFG.warmup_steps] - same[:CFG.warmup_steps]).max() + 1e-6


def test_braintools_sgd_applied_lr_measured_on_a_known_gradient():
    """SGD on a parameter reset to 0 with gradient 1: the update is exactly ``-lr``, so the applied LR is read
    from the parameter itself, not from any state the schedule exposes."""
    cfg = CurveConfig(0.1, warmup_steps=5, total_steps=20, warmup_start_lr=0.02, eta_min=0.004)
    schedule = lrmon.WarmupCosineSchedule.from_config(cfg)
    probe = brainstate.ParamState(jnp.zeros((), jnp.float32))
    optimizer = braintools.optim.SGD(lr=schedule)
    optimizer.register_trainable_weights({"probe": probe})

    @brainstate.transform.jit
    def train_step():
        read_before = schedule.current_lrs.value[0]
        probe.value = jnp.zeros((), jnp.float32)
        optimizer.step({"probe": jnp.ones((), jnp.float32)})
        applied = -probe.value
        schedule.step()
        return applied, read_before

    n = cfg.total_steps + 6
    applied, read_before = map(np.asarray, zip(*[train_step() for _ in range(n)]))
    np.testing.assert_array_equal(applied, read_before)         # the update used exactly current_lrs
    curve = np.asarray(cfg.lr_at(np.arange(n)))[:, 0]
    np.testing.assert_allclose(applied, curve, rtol=0, atol=tol(cfg))
    assert applied[0] == np.float32(0.02)                       # step 0: warmup_start_lr
    assert applied[5] == np.float32(0.1)                        # step W: base_lr (cosine start)
    np.testing.assert_array_equal(applied[20:], np.float32(0.004))
    # Not shifted by one: consecutive warmup LRs differ by 0.016.
    assert np.abs(applied[:5] - curve[1:6]).min() > 0.01
    # braintools' own view after the run: the optimizer's reported LR follows the schedule.
    np.testing.assert_array_equal(np.asarray(optimizer.current_lr), np.asarray(schedule.get_last_lr()[0]))


def test_optax_adamw_with_the_schedule_converges_and_applies_lr_at_count():
    schedule = lrmon.WarmupCosineSchedule.from_config(CFG)
    tx = optax.inject_hyperparams(optax.adamw)(learning_rate=schedule, weight_decay=WEIGHT_DECAY)

    @jax.jit
    def run(params):
        def body(carry, _):
            p, s = carry
            loss, g = jax.value_and_grad(_loss)(p, X, Y)
            u, s = tx.update(g, s, p)
            p = optax.apply_updates(p, u)
            # inject_hyperparams stores the value it used for this update.
            return (p, s), (loss, s.hyperparams["learning_rate"])
        return jax.lax.scan(body, (params, tx.init(params)), None, length=N_STEPS)

    (params, _), (losses, used) = run(INIT)
    losses, used = np.asarray(losses), np.asarray(used)
    curve = np.asarray(CFG.lr_at(np.arange(N_STEPS)))[:, 0]
    np.testing.assert_allclose(used, curve, rtol=0, atol=tol(CFG))
    assert used[0] == np.float32(CFG.warmup_start_lr)
    assert losses[-1] < 1e-3 * losses[0], (losses[0], losses[-1])
    np.testing.assert_allclose(np.asarray(params["weight"]), np.asarray(W_TRUE), atol=0.02)


def test_optax_sgd_applies_exactly_lr_at_count_per_group():
    cfg = CurveConfig([0.1, 0.03], warmup_steps=4, total_steps=12, warmup_start_lr=0.01, eta_min=0.002)
    schedule = lrmon.WarmupCosineSchedule.from_config(cfg)
    n = 16
    for group in range(cfg.num_groups):
        tx = optax.sgd(schedule.as_optax(group))

        @jax.jit
        def run():
            def body(state, _):
                updates, state = tx.update(jnp.ones(()), state)
                return state, -updates
            return jax.lax.scan(body, tx.init(jnp.zeros(())), None, length=n)[1]

        applied = np.asarray(run())
        np.testing.assert_allclose(applied, np.asarray(cfg.lr_at(np.arange(n)))[:, group], rtol=0, atol=tol(cfg))
        assert applied[0] == np.float32(0.01)
        assert applied[4] == np.float32(cfg.base_lrs[group])
        np.testing.assert_array_equal(applied[12:], np.float32(0.002))
    # As a plain optax schedule the schedule object itself is group 0, at the count (not last_epoch).
    schedule.step(7)
    np.testing.assert_allclose(np.asarray(schedule(jnp.arange(n))), np.asarray(cfg.lr_at(np.arange(n)))[:, 0],
                               rtol=0, atol=tol(cfg))
