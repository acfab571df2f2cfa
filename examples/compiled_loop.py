"""Fully compiled training loops monitored by lrmon, with the records written from inside the graph.

Two styles, both without a Python loop over steps:

* ``scan``: a functional JAX loop, ``jax.jit(lax.scan(body))`` over every step, with optax and the schedule as
  its learning rate. ``monitor.graph_record(buffer, step, loss=loss)`` in the scan body writes each step's LR and
  loss into a small device ring buffer carried through the scan; the buffer leaves the graph through one host
  callback per ``graph_capacity`` steps, and ``monitor.graph_drain(buffer)`` sends the rest after the loop.
* ``brainstate``: ``monitor.for_loop(train_step, steps)``, a ``brainstate.transform.for_loop`` over every step run
  in compiled chunks, with braintools' ``AdamW(lr=schedule)``: after each step the monitor records the LR the
  optimizer applied and steps the schedule, and the step's loss and LR leave as the loop's outputs (no callback).

Both fit a small MLP to synthetic regression data the script makes itself. Each style logs to TensorBoard and an
offline W&B run under ``--out`` (default ``./runs/compiled_loop``): ``<out>/<style>/tensorboard`` and
``<out>/<style>/wandb``. Run::

    python examples/compiled_loop.py                      # both styles, 3000 steps each
    python examples/compiled_loop.py --style scan --steps 300 --out /tmp/compiled
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jax
import jax.numpy as jnp

import lrmon
from lrmon.integrations.console import ConsoleSink
from lrmon.integrations.tensorboard import TensorBoardSink

from synthetic import batch_of, init_params, make_data, mse


def make_sinks(out: Path, style: str, use_wandb: bool) -> tuple[list[lrmon.Sink], Path, object]:
    sinks: list[lrmon.Sink] = [TensorBoardSink(out / style / "tensorboard"), ConsoleSink(desc=style)]
    wandb_sink = None
    if use_wandb:
        from lrmon.integrations.wandb import WandbSink

        wandb_sink = WandbSink(dir=out / style / "wandb", project="lrmon-examples", name=f"compiled_loop-{style}")
        sinks.append(wandb_sink)
    return sinks, out / style / "tensorboard", wandb_sink


def run_scan(args: argparse.Namespace, x: jax.Array, y: jax.Array) -> tuple[Path, object]:
    """``lax.scan`` over all steps; records leave the graph through the monitor's ring buffer."""
    import optax

    schedule = lrmon.WarmupCosineSchedule(base_lr=args.base_lr, warmup_steps=args.steps // 10,
                                          total_steps=args.steps, eta_min=args.base_lr / 100)
    optimizer = optax.adamw(learning_rate=schedule, weight_decay=1e-4)
    sinks, tb_dir, wandb_sink = make_sinks(args.out, "scan", not args.no_wandb)
    monitor = lrmon.LRMonitor(schedule, sinks, graph_capacity=args.graph_capacity)

    def body(carry, step):
        params, opt_state, buffer = carry
        batch = batch_of(step, x.shape[0])
        loss, grads = jax.value_and_grad(mse)(params, x[batch], y[batch])
        updates, opt_state = optimizer.update(grads, opt_state, params)  # optax's count == step here
        params = optax.apply_updates(params, updates)
        buffer = monitor.graph_record(buffer, step, loss=loss)  # in-graph: the LR at `step` and the loss
        return (params, opt_state, buffer), loss

    @jax.jit
    def train(params, opt_state, buffer):
        return jax.lax.scan(body, (params, opt_state, buffer), jnp.arange(args.steps))

    params = init_params()
    opt_state = jax.jit(optimizer.init)(params)
    (params, _, buffer), losses = train(params, opt_state, monitor.graph_buffer(["loss"]))
    monitor.graph_drain(buffer)  # the rows still in the ring buffer
    monitor.close()
    print(f"scan: final loss {float(losses[-1]):.4f} after {args.steps} steps")
    return tb_dir, wandb_sink


def run_brainstate(args: argparse.Namespace, x: jax.Array, y: jax.Array) -> tuple[Path, object]:
    """``brainstate.transform.for_loop`` over all steps with a braintools optimizer driven by the schedule."""
    import brainstate
    import braintools

    schedule = lrmon.WarmupCosineSchedule(base_lr=args.base_lr, warmup_steps=args.steps // 10,
                                          total_steps=args.steps, eta_min=args.base_lr / 100)
    weights = {name: brainstate.ParamState(jnp.asarray(value)) for name, value in init_params().items()}
    optimizer = braintools.optim.AdamW(lr=schedule, weight_decay=1e-4)
    optimizer.register_trainable_weights(weights)
    sinks, tb_dir, wandb_sink = make_sinks(args.out, "brainstate", not args.no_wandb)
    monitor = lrmon.LRMonitor(schedule, sinks)

    def train_step(step):
        batch = batch_of(step, x.shape[0])

        def loss_fn():
            return mse({name: state.value for name, state in weights.items()}, x[batch], y[batch])

        grads, loss = brainstate.transform.grad(loss_fn, grad_states=weights, return_value=True)()
        optimizer.update(grads)  # applies the LR the schedule holds for this step
        return {"loss": loss}  # the monitor then records that LR and the loss, and steps the schedule

    monitor.for_loop(train_step, jnp.arange(args.steps), chunk=1000)
    monitor.close()
    print(f"brainstate: {monitor.step_count} steps, schedule at step {int(schedule.last_epoch.value)}")
    return tb_dir, wandb_sink


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/compiled_loop"), help="where the runs' files go")
    parser.add_argument("--steps", type=int, default=3000, help="train steps per style (the schedule's total)")
    parser.add_argument("--style", choices=["scan", "brainstate", "both"], default="both")
    parser.add_argument("--base-lr", type=float, default=3e-3, help="peak LR")
    parser.add_argument("--graph-capacity", type=int, default=250,
                        help="rows of the scan style's in-graph buffer (one host callback per this many steps)")
    parser.add_argument("--no-wandb", action="store_true", help="log to TensorBoard only")
    args = parser.parse_args()

    x, y = map(jnp.asarray, make_data())
    results = []
    if args.style in ("scan", "both"):
        results.append(("scan", *run_scan(args, x, y)))
    if args.style in ("brainstate", "both"):
        results.append(("brainstate", *run_brainstate(args, x, y)))

    for style, tb_dir, wandb_sink in results:
        print(f"\n[{style}] TensorBoard logdir: {tb_dir}")
        print(f"  open it:   tensorboard --logdir {tb_dir}  (Custom Scalars: one chart per quantity; Images: the LR-vs-loss figure)")
        if wandb_sink is not None:
            print(f"[{style}] W&B offline run: {wandb_sink.run_dir}\n  upload it: wandb sync {wandb_sink.run_dir}")
        print(f"  plot it:   lrmon plot {tb_dir} --out {tb_dir.parent / 'lr_vs_loss.png'}")
    if len(results) > 1:
        print(f"\nboth runs side by side: tensorboard --logdir {args.out}")


if __name__ == "__main__":
    main()
