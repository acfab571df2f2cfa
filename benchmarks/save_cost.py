"""What a state save costs the training thread: ``monitor.step()`` on save steps against the bare train step.

    python benchmarks/save_cost.py [--steps 1500] [--save-every 50] [--out DIR]

A ~1-10 ms MLP step (784-512-512-10, batch 128, optax AdamW) in a Python loop, monitored into TensorBoard and W&B
(offline) on the training thread, with a state save every ``--save-every`` steps. Per step it times the train step
(dispatch and wait for the result, so the bare time is the model's) and ``monitor.step()`` separately, and the
train steps right after each save (the save's work runs on the monitor's courier thread meanwhile). It prints
the medians and the worst case of ``monitor.step()`` on save steps and on other steps, each as a ratio to the
median bare step of the same run; the last line is the JSON. The goal (issue 12): a save costs the training thread
no more than about one train step.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

import lrmon
from lrmon.integrations.tensorboard import TensorBoardSink
from lrmon.integrations.wandb import WandbSink


def mlp_step():
    rng = np.random.default_rng(0)
    sizes = [784, 512, 512, 10]
    params = [(jnp.asarray(rng.normal(size=(a, b)) / np.sqrt(a), jnp.float32), jnp.zeros(b)) for a, b in
              zip(sizes[:-1], sizes[1:])]
    x = jnp.asarray(rng.normal(size=(128, 784)), jnp.float32)
    y = jnp.asarray(rng.integers(0, 10, 128))
    return params, x, y


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--save-every", type=int, default=50)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="lrmon-save-cost-"))
    os.environ.setdefault("WANDB_SILENT", "true")
    params, x, y = mlp_step()
    schedule = lrmon.WarmupCosineSchedule(1e-3, args.steps // 10, args.steps)
    tx = optax.adamw(schedule)
    opt_state = tx.init(params)

    @jax.jit
    def train_step(params, opt_state):
        def loss_fn(p):
            h = x
            for w, b in p[:-1]:
                h = jnp.tanh(h @ w + b)
            logits = h @ p[-1][0] + p[-1][1]
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    sinks = [TensorBoardSink(out / "tb"), WandbSink(dir=out / "wandb", project="lrmon-bench")]
    monitor = lrmon.LRMonitor(schedule, sinks, save_every=args.save_every, state_dir=out / "state")
    bare, save_steps, other_steps, after_save = [], [], [], []
    for t in range(args.steps):
        start = time.perf_counter()
        params, opt_state, loss = train_step(params, opt_state)
        loss.block_until_ready()
        middle = time.perf_counter()
        monitor.step(loss=loss)
        end = time.perf_counter()
        if t >= 20:  # past compilation
            bare.append(middle - start)
            if 0 < t % args.save_every <= 10:  # the save runs on the courier meanwhile: does the step slow down?
                after_save.append(middle - start)
            (save_steps if (t + 1) % args.save_every == 0 else other_steps).append(end - middle)
    monitor.close()
    step_ms = 1e3 * float(np.median(bare))
    result = {
        "bare_step_ms": round(step_ms, 3),
        "save_step_monitor_ms_median": round(1e3 * float(np.median(save_steps)), 3),
        "save_step_monitor_ms_max": round(1e3 * float(np.max(save_steps)), 3),
        "other_step_monitor_ms_median": round(1e3 * float(np.median(other_steps)), 4),
        "steps_after_save_ms_median": round(1e3 * float(np.median(after_save)), 3),
        "saves": len(save_steps),
    }
    result["save_cost_in_train_steps_median"] = round(result["save_step_monitor_ms_median"] / step_ms, 3)
    result["save_cost_in_train_steps_max"] = round(result["save_step_monitor_ms_max"] / step_ms, 3)
    print(f"bare train step (median): {step_ms:.2f} ms; {len(save_steps)} state saves")
    print(f"monitor.step() on a save step: median {result['save_step_monitor_ms_median']:.3f} ms "
          f"({result['save_cost_in_train_steps_median']:.2f} train steps), max {result['save_step_monitor_ms_max']:.2f} "
          f"ms ({result['save_cost_in_train_steps_max']:.2f} train steps)")
    print(f"monitor.step() on other steps: median {result['other_step_monitor_ms_median']:.4f} ms; the 10 train steps "
          f"after a save (the save runs meanwhile): median {result['steps_after_save_ms_median']:.2f} ms")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
