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
import optax

import lrmon
from lrmon.integrations.console import ConsoleSink
from lrmon.integrations.tensorboard import TensorBoardSink

from synthetic import BATCH, batch_of, init_params, make_data, mse, print_results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/optax_loop"), help="where the run's files go")
    parser.add_argument("--steps", type=int, default=3000, help="train steps (the schedule's total_steps)")
    parser.add_argument("--warmup", type=int, default=None, help="warmup steps (default: 10%% of --steps)")
    parser.add_argument("--base-lr", type=float, default=3e-3, help="peak LR")
    parser.add_argument("--batch", type=int, default=BATCH, help="batch size")
    parser.add_argument("--no-wandb", action="store_true", help="log to TensorBoard only")
    args = parser.parse_args()
    warmup = args.steps // 10 if args.warmup is None else args.warmup

    x, y = map(jnp.asarray, make_data())
    params = init_params()
    schedule = lrmon.WarmupCosineSchedule(base_lr=args.base_lr, warmup_steps=warmup, total_steps=args.steps,
                                          eta_min=args.base_lr / 100)
    optimizer = optax.adamw(learning_rate=schedule, weight_decay=1e-4)
    opt_state = jax.jit(optimizer.init)(params)

    @jax.jit
    def train_step(params, opt_state, step, x, y):
        batch = batch_of(step, x.shape[0], args.batch)
        loss, grads = jax.value_and_grad(mse)(params, x[batch], y[batch])
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
    print_results(tb_dir, wandb_sink, args.out / "lr_vs_loss.png")


if __name__ == "__main__":
    main()
