"""A clu user's training loop with lrmon's sinks inside clu's ``AsyncWriter``.

The loop is written the clu way: one ``MetricWriter`` (here ``AsyncWriter(MultiWriter([...]))``) receives every
metric, and ``periodic_actions.ReportProgress`` reports the step rate. lrmon plugs in on both sides:

* ``SinkMetricWriter(sink, info)`` turns lrmon's ``TensorBoardSink`` and ``WandbSink`` into clu writers, so the
  clu pipeline writes TensorBoard event files with lrmon's layout (a custom-scalars chart per quantity) and
  an offline W&B run with ``trainer/step`` as its x-axis;
* ``CluSink(writer)`` makes the same clu writer a sink of the ``LRMonitor``: the LR, the phase and the schedule
  events travel through clu's background thread like every other metric.

The model is a small MLP fitted with optax to synthetic regression data the script makes itself. Importing clu's
writers imports TensorFlow (a few seconds). Files go under ``--out`` (default ``./runs/clu_loop``). Run::

    python examples/clu_loop.py
    python examples/clu_loop.py --steps 200 --out /tmp/clu_run
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jax
import jax.numpy as jnp
import optax

import lrmon
from lrmon.integrations.console import ConsoleSink
from lrmon.integrations.clu import CluSink, SinkMetricWriter
from lrmon.integrations.tensorboard import TensorBoardSink

from synthetic import batch_of, init_params, make_data, mse, print_results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/clu_loop"), help="where the run's files go")
    parser.add_argument("--steps", type=int, default=3000, help="train steps (the schedule's total_steps)")
    parser.add_argument("--eval-every", type=int, default=None, help="steps between evaluations (default steps/20)")
    parser.add_argument("--base-lr", type=float, default=3e-3, help="peak LR")
    parser.add_argument("--no-wandb", action="store_true", help="log to TensorBoard only")
    args = parser.parse_args()
    eval_every = args.eval_every or max(1, args.steps // 20)

    from clu import metric_writers, periodic_actions  # imports TensorFlow

    x, y = make_data(n=4096 + 1024)
    x, y, x_eval, y_eval = map(jnp.asarray, (x[:4096], y[:4096], x[4096:], y[4096:]))  # held-out evaluation data
    schedule = lrmon.WarmupCosineSchedule(base_lr=args.base_lr, warmup_steps=args.steps // 10,
                                          total_steps=args.steps, eta_min=args.base_lr / 100)
    optimizer = optax.adamw(learning_rate=schedule, weight_decay=1e-4)
    params = init_params()
    opt_state = jax.jit(optimizer.init)(params)

    @jax.jit
    def train_step(params, opt_state, step, x, y):
        batch = batch_of(step, x.shape[0])
        loss, grads = jax.value_and_grad(mse)(params, x[batch], y[batch])
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    evaluate = jax.jit(mse)

    # lrmon's sinks as clu writers. They are opened with this RunInfo (the monitor's LR tag and configuration); like
    # clu's own writers, they write on process 0 only.
    info = lrmon.RunInfo(start_step=0, config={"schedule": "WarmupCosineSchedule", **schedule.config.to_dict()},
                         lr_tags=("lr",))
    tb_dir = args.out / "tensorboard"
    clu_writers = [SinkMetricWriter(TensorBoardSink(tb_dir, layout_metrics=("loss", "eval_loss")), info)]
    wandb_sink = None
    if not args.no_wandb:
        from lrmon.integrations.wandb import WandbSink

        wandb_sink = WandbSink(dir=args.out / "wandb", project="lrmon-examples", name="clu_loop")
        clu_writers.append(SinkMetricWriter(wandb_sink, info))
    writer = metric_writers.AsyncWriter(metric_writers.MultiWriter(clu_writers))
    report_progress = periodic_actions.ReportProgress(num_train_steps=args.steps, writer=writer,
                                                      every_steps=max(1, args.steps // 10))

    # The monitor writes through the same clu writer; the console bar is a plain lrmon sink beside it.
    monitor = lrmon.LRMonitor(schedule, [CluSink(writer, close_writer=False), ConsoleSink()], flush_every=100)
    for step in range(args.steps):
        params, opt_state, loss = train_step(params, opt_state, step, x, y)
        monitor.step(loss=loss)
        report_progress(step + 1)  # clu counts completed steps
        if (step + 1) % eval_every == 0 or step + 1 == args.steps:
            writer.write_scalars(step, {"eval_loss": float(evaluate(params, x_eval, y_eval))})
    monitor.close()
    writer.close()  # waits for clu's background thread, then closes the lrmon sinks behind it

    print(f"\nfinal eval loss {float(evaluate(params, x_eval, y_eval)):.4f} after {args.steps} steps")
    print_results(tb_dir, wandb_sink, args.out / "lr_vs_loss.png")


if __name__ == "__main__":
    main()
