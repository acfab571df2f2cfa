"""The main job: a brainstate model trained with braintools' AdamW on lrmon's warmup + cosine schedule, monitored
into TensorBoard and Weights & Biases (offline: no account, no network), with a progress bar on the console and the
monitor's state saved every quarter of the run.

    python examples/quickstart.py [--out runs/quickstart] [--steps 600]

Data: a synthetic regression problem made here (y = sin(3x) + noise).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import brainstate
import braintools
import jax
import jax.numpy as jnp

import lrmon
from lrmon.integrations.console import ConsoleSink
from lrmon.integrations.tensorboard import TensorBoardSink
from lrmon.integrations.wandb import WandbSink


class MLP(brainstate.nn.Module):
    """1 -> 64 -> 64 -> 1 tanh network."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = [brainstate.nn.Linear(1, 64), brainstate.nn.Linear(64, 64), brainstate.nn.Linear(64, 1)]

    def __call__(self, x: jax.Array) -> jax.Array:
        for layer in self.layers[:-1]:
            x = jnp.tanh(layer(x))
        return self.layers[-1](x)


def synthetic_data(key: jax.Array, n: int = 512) -> tuple[jax.Array, jax.Array]:
    """Inputs in [-1, 1] and noisy targets sin(3x)."""
    x_key, noise_key = jax.random.split(key)
    x = jax.random.uniform(x_key, (n, 1), minval=-1.0, maxval=1.0)
    return x, jnp.sin(3 * x) + 0.05 * jax.random.normal(noise_key, (n, 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/quickstart"), help="where logs and state go")
    parser.add_argument("--steps", type=int, default=600, help="train steps (the schedule plans for this many)")
    args = parser.parse_args()
    out = args.out.resolve()
    os.environ.setdefault("WANDB_SILENT", "true")

    brainstate.random.seed(0)
    model = MLP()
    schedule = lrmon.WarmupCosineSchedule(base_lr=3e-3, warmup_steps=args.steps // 10, total_steps=args.steps,
                                          warmup_start_lr=1e-5, eta_min=1e-5)
    optimizer = braintools.optim.AdamW(lr=schedule, weight_decay=1e-4)
    optimizer.register_trainable_weights(model.states(brainstate.ParamState))
    x, y = synthetic_data(jax.random.PRNGKey(0))

    @brainstate.transform.jit
    def train_step() -> jax.Array:
        def loss_fn() -> jax.Array:
            return jnp.mean((model(x) - y) ** 2)

        grads, loss = brainstate.transform.grad(loss_fn, model.states(brainstate.ParamState), return_value=True)()
        optimizer.update(grads)
        return loss

    tensorboard = TensorBoardSink(out / "tensorboard")
    wandb_sink = WandbSink(dir=out, project="lrmon-quickstart")
    sinks = [ConsoleSink(), tensorboard, wandb_sink]
    with lrmon.LRMonitor(schedule, sinks, flush_every=20, save_every=max(args.steps // 4, 1),
                         state_dir=out / "state") as monitor:
        for _ in range(args.steps):
            monitor.step(loss=train_step())
    final_loss = float(jnp.mean((model(x) - y) ** 2))
    print(f"trained {args.steps} steps, final loss {final_loss:.4f}; events: {monitor.emitted_events}")
    print(f"TensorBoard:        tensorboard --logdir {tensorboard.logdir}")
    print(f"W&B (offline run):  wandb sync {wandb_sink.run_dir}")
    print(f"LR vs loss figure:  lrmon plot {tensorboard.logdir} --out {out / 'lr_vs_loss.png'}")
    print(f"resume state:       lrmon inspect {out / 'state'}  (also in the logdir and the W&B artifact)")


if __name__ == "__main__":
    main()
