"""A pure JAX + optax training loop monitored by lrmon.

The schedule is the optax learning rate (``optax.adamw(learning_rate=schedule)``: optax evaluates the curve at its
update count), the loop is a plain Python loop around a jitted step, and ``monitor.step(loss=loss)`` records the
LR the step applied, the phase and the loss (device values are fetched in batches, never one per step).

The model is a small MLP fitted to a synthetic regression problem the script makes itself. Records go to
TensorBoard and to an offline W&B run under ``--out`` (default ``./runs/optax_loop``), and a progress bar shows
step, LR, phase and loss on the terminal. Run::

    python examples/optax_loop.py                 # 3000 steps, ~10 s on a laptop CPU
    python examples/optax_loop.py --steps 200 --out /tmp/optax_run
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

import lrmon
from lrmon.console import ConsoleSink
from lrmon.integrations.tensorboard import TensorBoardSink


def make_data(n: int = 4096, dim: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic regression problem: targets of a random teacher network plus a little noise.

    Made with NumPy: eager JAX random calls would each compile a small XLA program first.
    """
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dim)).astype(np.float32)
    teacher_in, teacher_out = rng.normal(size=(dim, 16)) / np.sqrt(dim), rng.normal(size=16) / 4.0
    y = np.tanh(x @ teacher_in) @ teacher_out + 0.05 * rng.normal(size=n)
    return x, y.astype(np.float32)


def init_params(dim: int, hidden: int = 64, seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "w1": (rng.normal(size=(dim, hidden)) / np.sqrt(dim)).astype(np.float32),
        "b1": np.zeros(hidden, np.float32),
        "w2": (rng.normal(size=hidden) / np.sqrt(hidden)).astype(np.float32),
        "b2": np.zeros((), np.float32),
    }


def predict(params: dict[str, jax.Array], x: jax.Array) -> jax.Array:
    return jnp.tanh(x @ params["w1"] + params["b1"]) @ params["w2"] + params["b2"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/optax_loop"), help="where the run's files go")
    parser.add_argument("--steps", type=int, default=3000, help="train steps (the schedule's total_steps)")
    parser.add_argument("--warmup", type=int, default=None, help="warmup steps (default: 10%% of --steps)")
    parser.add_argument("--base-lr", type=float, default=3e-3, help="peak LR")
    parser.add_argument("--batch", type=int, default=128, help="batch size")
    parser.add_argument("--no-wandb", action="store_true", help="log to TensorBoard only")
    args = parser.parse_args()
    warmup = args.steps // 10 if args.warmup is None else args.warmup

    x, y = map(jnp.asarray, make_data())
    params = init_params(x.shape[1])
    schedule = lrmon.WarmupCosineSchedule(base_lr=args.base_lr, warmup_steps=warmup, total_steps=args.steps,
                                          eta_min=args.base_lr / 100)
    optimizer = optax.adamw(learning_rate=schedule, weight_decay=1e-4)
    opt_state = jax.jit(optimizer.init)(params)

    @jax.jit
    def train_step(params, opt_state, step, x, y):
        batch = jax.random.randint(jax.random.fold_in(jax.random.PRNGKey(2), step), (args.batch,), 0, x.shape[0])

        def loss_fn(p):
            return jnp.mean((predict(p, x[batch]) - y[batch]) ** 2)

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    tb_dir = args.out / "tensorboard"
    sinks: list[lrmon.Sink] = [TensorBoardSink(tb_dir), ConsoleSink()]
    wandb_sink = None
    if not args.no_wandb:
        from lrmon.integrations.wandb import WandbSink

        wandb_sink = WandbSink(dir=args.out / "wandb", project="lrmon-examples", name="optax_loop")
        sinks.append(wandb_sink)

    with lrmon.LRMonitor(schedule, sinks, flush_every=100) as monitor:
        for step in range(args.steps):
            params, opt_state, loss = train_step(params, opt_state, step, x, y)
            monitor.step(loss=loss)  # the record of step `step`: the LR optax applied at count `step`
        final_loss = float(loss)

    print(f"\nfinal loss {final_loss:.4f} after {args.steps} steps")
    print(f"TensorBoard logdir: {tb_dir}\n  open it:  tensorboard --logdir {tb_dir}  (Custom Scalars tab: 'lr vs loss')")
    if wandb_sink is not None:
        print(f"W&B offline run:    {wandb_sink.run_dir}\n  upload it: wandb sync {wandb_sink.run_dir}")
    print(f"plot it:  lrmon plot {tb_dir} --out {args.out / 'lr_vs_loss.png'}")


if __name__ == "__main__":
    main()
