"""Issue 2 ("Foundation"): every code example of the seed document (braintools' ``WarmupCosineSchedule`` docs) runs,
with ``braintools.optim.WarmupCosineSchedule`` replaced by ``lrmon.WarmupCosineSchedule``.

Each example is transcribed as written (marked ``# -- seed --``); optimizers stay braintools. What the seed leaves
undefined is real here, not stubbed: a tiny brainstate model with ``ParamState``s (and a ``state_dict()``, which
the checkpoint example calls), a jitted ``train_step`` that updates it with the example's optimizer, ``save``
(JSON, no pickle), ``current_step``. Each test then checks what the example prints or builds against the curve.
"""

from __future__ import annotations

import json
import math
import re

import braintools
import brainstate
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lrmon


# ---------------------------------------------------------------------------------------------------------------
# What the examples assume exists
# ---------------------------------------------------------------------------------------------------------------
class TinyModel(brainstate.nn.Module):
    """A real (tiny) brainstate model: Linear(4, 8) -> tanh -> Linear(8, 1)."""

    def __init__(self, seed: int = 0):
        super().__init__()
        brainstate.random.seed(seed)
        self.hidden = brainstate.nn.Linear(4, 8)
        self.out = brainstate.nn.Linear(8, 1)

    def __call__(self, x):
        return self.out(jnp.tanh(self.hidden(x)))

    def state_dict(self):
        """Parameter values by path (the checkpoint example calls ``model.state_dict()``)."""
        return {"/".join(map(str, path)): state.value
                for path, state in self.states(brainstate.ParamState).items()}


_RNG = np.random.default_rng(1)
X = jnp.asarray(_RNG.normal(size=(32, 4)), jnp.float32)
Y = jnp.sin(X @ jnp.asarray([[1.0], [-1.0], [0.5], [2.0]], jnp.float32))


def make_train_step(model, get_optimizer):
    """A real jitted train step: MSE loss, gradients of the model's ParamStates, one step of the example's
    optimizer (looked up at call time, since the examples create it after the model)."""

    @brainstate.transform.jit
    def train_step(x, y):
        params = model.states(brainstate.ParamState)
        grads, loss = brainstate.transform.grad(lambda: jnp.mean((model(x) - y) ** 2), params,
                                                return_value=True)()
        get_optimizer().step(grads)
        return loss

    return train_step


def _jsonable(value):
    """Checkpoint contents as JSON data: mappings (keys as strings), sequences, arrays as nested lists."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):  # optax states are NamedTuples
        return [_jsonable(v) for v in value]
    if isinstance(value, (jax.Array, np.ndarray, np.generic)):
        return np.asarray(value).tolist()
    return value


def save(obj, path):
    """The example's ``save``: JSON rather than pickle (lrmon's state_dict is JSON data)."""
    with open(path, "w") as f:
        json.dump(_jsonable(obj), f)


def load(path):
    with open(path) as f:
        return json.load(f)


def lr(scheduler, step, group=0) -> float:
    """The curve's LR at ``step`` (scalar steps share one compiled shape)."""
    return float(np.asarray(scheduler.lr_at(step))[group])


def f64(base, warmup, total, warmup_start, eta_min, t) -> float:
    """The seed's formula in float64 (with the documented clipping past ``total``)."""
    if t < warmup:
        return warmup_start + t / warmup * (base - warmup_start)
    progress = min(max((t - warmup) / max(total - warmup, 1), 0.0), 1.0)
    return eta_min + 0.5 * (base - eta_min) * (1 + math.cos(math.pi * progress))


def assert_lr(scheduler, step, expected, group=0):
    np.testing.assert_allclose(lr(scheduler, step, group), expected, rtol=2e-6, atol=1e-12)


# ---------------------------------------------------------------------------------------------------------------
# The examples
# ---------------------------------------------------------------------------------------------------------------
def test_basic_vision_transformer_training(capsys):
    model = TinyModel()
    train_step = make_train_step(model, lambda: optimizer)

    # -- seed --
    # Standard ViT training schedule
    scheduler = lrmon.WarmupCosineSchedule(
        base_lr=0.001,           # Peak learning rate
        warmup_steps=10000,      # 10k warmup steps
        total_steps=100000,      # 100k total steps
        warmup_start_lr=1e-6,    # Start from small LR
        eta_min=1e-5             # End at small LR
    )
    optimizer = braintools.optim.AdamW(lr=scheduler, weight_decay=0.05)
    optimizer.register_trainable_weights(model.states(brainstate.ParamState))
    # -- end seed --

    # The seed loops over 100000 steps. One iteration (jitted train_step + host scheduler.step()) costs ~1 ms
    # on this 2-core machine (several ms under load): 100000 of them is minutes. So the loop body runs literally
    # for the first 200 steps and then only at the steps that print (every 1000th): before each of those,
    # step(epoch) jumps to the last_epoch the skipped iterations would have left (the schedule's state is its
    # step; the skipped train steps are the only thing not replayed).
    literal = 200
    steps_run = list(range(literal)) + list(range(1000, 100000, 1000))
    losses = []
    for step in steps_run:
        if int(scheduler.last_epoch.value) != step:
            scheduler.step(step)
        # -- seed (loop body) --
        loss = train_step(X, Y)
        scheduler.step()
        if step % 1000 == 0:
            lr_now = scheduler.get_lr()[0]
            print(f"Step {step}: LR = {lr_now:.6f}")
        # -- end seed --
        losses.append(float(loss))
    scheduler.step(100000)  # where the full loop ends

    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 100
    for line, step in zip(lines, range(0, 100000, 1000)):
        match = re.fullmatch(r"Step (\d+): LR = (\d\.\d{6})", line)
        assert match and int(match.group(1)) == step, line
        # The example prints after scheduler.step(): the LR of the *next* train step (step + 1).
        expected = f64(0.001, 10000, 100000, 1e-6, 1e-5, step + 1)
        assert abs(float(match.group(2)) - expected) <= 5e-7 + 1e-9, (line, expected)
    assert lines[0] == "Step 0: LR = 0.000001"
    assert lines[10] == "Step 10000: LR = 0.001000"
    assert lines[-1] == "Step 99000: LR = 0.000010"
    # The model really trained, and the schedule ends at eta_min.
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0]
    assert int(optimizer.step_count.value) == len(steps_run)
    assert int(scheduler.last_epoch.value) == 100000
    np.testing.assert_allclose(float(np.asarray(scheduler.get_lr()[0])), 1e-5, rtol=1e-6)


def test_self_supervised_learning_simclr_byol():
    # -- seed --
    # Self-supervised learning benefits from longer warmup
    scheduler = lrmon.WarmupCosineSchedule(
        base_lr=0.3,             # High LR for contrastive learning
        warmup_steps=4000,       # ~10 epochs warmup
        total_steps=40000,       # 100 epochs total
        warmup_start_lr=0.0,     # Start from zero
        eta_min=0.0              # Decay to zero
    )

    # Scale learning rate with batch size (linear scaling rule)
    batch_size = 4096
    base_batch_size = 256
    scaled_lr = 0.3 * (batch_size / base_batch_size)
    scheduler.base_lrs = [scaled_lr]
    # -- end seed --

    assert scaled_lr == pytest.approx(4.8)
    assert scheduler.base_lrs == [scaled_lr]
    assert lr(scheduler, 0) == 0.0
    assert_lr(scheduler, 2000, scaled_lr / 2)
    assert lr(scheduler, 4000) == np.float32(scaled_lr)       # the new peak, not 0.3
    assert_lr(scheduler, 22000, f64(scaled_lr, 4000, 40000, 0.0, 0.0, 22000))
    assert lr(scheduler, 40000) == 0.0
    assert float(np.asarray(scheduler.get_lr()[0])) == 0.0    # step 0 still warmup_start_lr
    assert scheduler.state_dict()["config"]["base_lrs"] == [scaled_lr]


def test_fine_tuning_pretrained_models():
    # -- seed --
    # Shorter warmup for fine-tuning
    scheduler = lrmon.WarmupCosineSchedule(
        base_lr=5e-5,            # Lower LR for fine-tuning
        warmup_steps=500,        # Quick warmup
        total_steps=10000,       # Shorter total training
        warmup_start_lr=0.0,
        eta_min=1e-6
    )
    optimizer = braintools.optim.AdamW(lr=scheduler, weight_decay=0.01)
    # -- end seed --

    assert optimizer.lr is scheduler and scheduler.optimizer is optimizer
    assert lr(scheduler, 0) == 0.0
    assert_lr(scheduler, 250, 2.5e-5)
    assert_lr(scheduler, 500, 5e-5)
    assert_lr(scheduler, 10000, 1e-6)
    # The LR braintools applies follows the schedule (scale_by_schedule reads its current_lrs).
    assert float(np.asarray(scheduler(0))) == 0.0
    scheduler.step(250)
    np.testing.assert_allclose(-float(np.asarray(scheduler(0))), 2.5e-5, rtol=2e-6)
    np.testing.assert_allclose(float(np.asarray(optimizer.current_lr)), 2.5e-5, rtol=2e-6)


def test_distributed_training_with_large_batches():
    # -- seed --
    # Large batch training needs careful warmup
    world_size = 8  # 8 GPUs
    batch_per_gpu = 64
    total_batch = batch_per_gpu * world_size  # 512

    # Linear scaling rule with warmup
    base_lr = 0.001
    scaled_lr = base_lr * (total_batch / 128)  # Scale from base batch 128

    scheduler = lrmon.WarmupCosineSchedule(
        base_lr=scaled_lr,
        warmup_steps=2000,       # Longer warmup for large batch
        total_steps=50000,
        warmup_start_lr=base_lr / 100,  # Start at 1% of base
        eta_min=scaled_lr * 0.01
    )
    # -- end seed --

    assert total_batch == 512 and scaled_lr == pytest.approx(0.004)
    assert lr(scheduler, 0) == np.float32(1e-5)
    assert_lr(scheduler, 1000, f64(scaled_lr, 2000, 50000, 1e-5, scaled_lr * 0.01, 1000))
    assert_lr(scheduler, 2000, scaled_lr)
    assert lr(scheduler, 50000) == np.float32(scaled_lr * 0.01)
    assert lr(scheduler, 60000) == np.float32(scaled_lr * 0.01)


def test_mae_style_masked_autoencoder_training():
    # -- seed --
    # MAE uses specific warmup schedule
    scheduler = lrmon.WarmupCosineSchedule(
        base_lr=1.5e-4,          # Base LR for batch 4096
        warmup_steps=40 * 312,   # 40 epochs of warmup
        total_steps=1600 * 312,  # 1600 epochs total
        warmup_start_lr=0.0,
        eta_min=0.0
    )

    # Combined with specific optimizer settings
    optimizer = braintools.optim.AdamW(
        lr=scheduler,
        betas=(0.9, 0.95),  # MAE-specific betas
        weight_decay=0.05
    )
    # -- end seed --

    assert scheduler.warmup_steps == 12480 and scheduler.total_steps == 499200
    assert optimizer.betas == (0.9, 0.95) and optimizer.lr is scheduler
    assert lr(scheduler, 0) == 0.0
    assert lr(scheduler, 12480) == np.float32(1.5e-4)
    assert_lr(scheduler, 255840, f64(1.5e-4, 12480, 499200, 0.0, 0.0, 255840))  # middle of the cosine: half
    assert lr(scheduler, 499200) == 0.0


def test_bert_style_transformer_training():
    # -- seed --
    # BERT uses fraction-based warmup
    total_steps = 1000000
    warmup_fraction = 0.1  # 10% warmup

    scheduler = lrmon.WarmupCosineSchedule(
        base_lr=1e-4,
        warmup_steps=int(total_steps * warmup_fraction),
        total_steps=total_steps,
        warmup_start_lr=0.0,
        eta_min=1e-5
    )
    # -- end seed --

    assert scheduler.warmup_steps == 100000
    assert lr(scheduler, 0) == 0.0
    assert_lr(scheduler, 50000, 5e-5)
    assert_lr(scheduler, 100000, 1e-4)  # eta_min + (base_lr - eta_min) * 1 in float32: within an ulp of 1e-4
    assert_lr(scheduler, 550000, f64(1e-4, 100000, 1000000, 0.0, 1e-5, 550000))
    assert lr(scheduler, 1000000) == np.float32(1e-5)


def test_monitoring_warmup_progression(capsys):
    # -- seed -- (the whole 10000-step loop runs as written)
    scheduler = lrmon.WarmupCosineSchedule(
        base_lr=0.001,
        warmup_steps=1000,
        total_steps=10000,
        warmup_start_lr=1e-5,
        eta_min=1e-4
    )

    for step in range(10000):
        scheduler.step()
        lr = scheduler.get_lr()[0]

        # Track phase transitions
        if step == 0:
            print(f"Starting warmup from LR = {lr:.6f}")
        elif step == scheduler.warmup_steps - 1:
            print(f"Ending warmup at LR = {lr:.6f}")
        elif step == scheduler.warmup_steps:
            print(f"Starting cosine decay from LR = {lr:.6f}")
        elif step == scheduler.total_steps - 1:
            print(f"Training complete at LR = {lr:.6f}")
    # -- end seed --

    # The example calls step() before get_lr(), so at loop index `step` it prints the LR of train step step + 1:
    # 1e-5 + 1/1000 * (1e-3 - 1e-5) = 1.099e-5 first (not warmup_start_lr), base_lr at the end of warmup, eta_min
    # at the end.
    assert capsys.readouterr().out.splitlines() == [
        "Starting warmup from LR = 0.000011",
        "Ending warmup at LR = 0.001000",
        "Starting cosine decay from LR = 0.001000",
        "Training complete at LR = 0.000100",
    ]
    assert int(scheduler.last_epoch.value) == 10000
    assert float(np.asarray(lr)) == np.float32(1e-4)


def test_custom_warmup_strategies():
    # -- seed --
    # Aggressive warmup (reach peak quickly)
    fast_warmup = lrmon.WarmupCosineSchedule(
        base_lr=0.01,
        warmup_steps=100,        # Very short warmup
        total_steps=10000,
        warmup_start_lr=0.001,   # Start at 10% of peak
        eta_min=0.0001
    )

    # Conservative warmup (gradual increase)
    slow_warmup = lrmon.WarmupCosineSchedule(
        base_lr=0.01,
        warmup_steps=5000,       # 50% of training for warmup
        total_steps=10000,
        warmup_start_lr=1e-6,    # Start very low
        eta_min=0.001
    )
    # -- end seed --

    assert lr(fast_warmup, 0) == np.float32(0.001)
    assert_lr(fast_warmup, 50, 0.0055)
    assert_lr(fast_warmup, 100, 0.01)
    assert lr(fast_warmup, 10000) == np.float32(0.0001)
    assert lr(slow_warmup, 0) == np.float32(1e-6)
    assert_lr(slow_warmup, 2500, f64(0.01, 5000, 10000, 1e-6, 0.001, 2500))
    assert_lr(slow_warmup, 5000, 0.01)
    assert_lr(slow_warmup, 7500, 0.0055)
    assert lr(slow_warmup, 10000) == np.float32(0.001)
    # Fast reaches its peak 4900 steps earlier.
    assert lr(fast_warmup, 200) > lr(slow_warmup, 200) * 10


def test_combining_with_gradient_accumulation():
    # -- seed --
    # Gradient accumulation affects effective batch size
    accumulation_steps = 4
    per_step_batch = 32
    effective_batch = per_step_batch * accumulation_steps  # 128

    # Adjust learning rate and warmup accordingly
    scheduler = lrmon.WarmupCosineSchedule(
        base_lr=0.001 * (effective_batch / 32),
        warmup_steps=2000 // accumulation_steps,  # Adjust for accumulation
        total_steps=50000 // accumulation_steps,
        warmup_start_lr=1e-5,
        eta_min=1e-5
    )
    # -- end seed --

    assert effective_batch == 128
    assert scheduler.base_lrs == [0.004] and scheduler.warmup_steps == 500 and scheduler.total_steps == 12500
    assert lr(scheduler, 0) == np.float32(1e-5)
    assert_lr(scheduler, 500, 0.004)
    assert_lr(scheduler, 6500, f64(0.004, 500, 12500, 1e-5, 1e-5, 6500))
    assert lr(scheduler, 12500) == np.float32(1e-5)


def test_state_persistence_for_checkpointing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the example writes 'checkpoint.pkl' in the working directory
    model = TinyModel(seed=5)
    train_step = make_train_step(model, lambda: optimizer)

    # -- seed --
    # Save scheduler state
    scheduler = lrmon.WarmupCosineSchedule(
        base_lr=0.001,
        warmup_steps=1000,
        total_steps=10000
    )
    # -- end seed --
    optimizer = braintools.optim.AdamW(lr=scheduler, weight_decay=0.05)
    optimizer.register_trainable_weights(model.states(brainstate.ParamState))
    # "# ... train for some steps ..."
    current_step = 0
    for current_step in range(1, 38):
        train_step(X, Y)
        scheduler.step()
    # -- seed --
    checkpoint = {
        'step': current_step,
        'scheduler': scheduler.state_dict(),
        'optimizer': optimizer.state_dict(),
        'model': model.state_dict()
    }
    save(checkpoint, 'checkpoint.pkl')

    # Resume training
    scheduler = lrmon.WarmupCosineSchedule(
        base_lr=0.001,
        warmup_steps=1000,
        total_steps=10000
    )
    scheduler.load_state_dict(checkpoint['scheduler'])
    # Continue from saved step
    # -- end seed --

    assert int(scheduler.last_epoch.value) == current_step == 37
    saved_lrs = checkpoint['scheduler']
    np.testing.assert_array_equal(np.asarray(scheduler.get_lr()), np.asarray(scheduler.config.lr_per_group_at(37)))
    assert_lr(scheduler, 37, 37 / 1000 * 0.001)

    # The file is JSON (no pickle) and resumes the same way.
    on_disk = load(tmp_path / 'checkpoint.pkl')
    assert on_disk['step'] == 37
    assert on_disk['scheduler'] == saved_lrs == scheduler.state_dict()
    assert set(on_disk) == {'step', 'scheduler', 'optimizer', 'model'}
    for path, value in model.state_dict().items():
        np.testing.assert_array_equal(np.asarray(on_disk['model'][path]["weight"], np.float32),
                                      np.asarray(value["weight"]))
    resumed = lrmon.WarmupCosineSchedule(base_lr=0.001, warmup_steps=1000, total_steps=10000)
    resumed.load_state_dict(on_disk['scheduler'])
    np.testing.assert_array_equal(np.asarray(resumed.get_lr()), np.asarray(scheduler.get_lr()))
    resumed.step()
    scheduler.step()
    np.testing.assert_array_equal(np.asarray(resumed.get_lr()), np.asarray(scheduler.get_lr()))

    # Resuming into a differently configured schedule is refused (braintools would silently change the curve).
    other = lrmon.WarmupCosineSchedule(base_lr=0.001, warmup_steps=500, total_steps=10000)
    with pytest.raises(lrmon.ConfigMismatchError, match="warmup_steps"):
        other.load_state_dict(on_disk['scheduler'])
