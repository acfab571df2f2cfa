"""Preemption and resume: a run is killed mid-training and a new process continues it from its saved state.

What a preemptible job does, here with a pure JAX + optax loop on synthetic data:

1. every ``--save-every`` steps it checkpoints its own model and optimizer (``checkpoints/ckpt-<step>.npz``), then
   calls ``monitor.save_state()``: the monitor writes ``lrmon_state.json`` (the step, the schedule configuration,
   the events already emitted) atomically into the TensorBoard logdir and as a W&B artifact
   (``<W&B run dir>/lrmon-artifact``);
2. attempt 1 runs in a child process that is SIGKILLed at ``--preempt-at`` (no clean shutdown, as on a preempted
   machine);
3. attempt 2 (this process) builds the monitor with ``resume_from=<TensorBoard logdir>``: the schedule jumps to the
   saved step, events already emitted are not emitted again, a ``resume`` event marks the step, and TensorBoard
   purges what attempt 1 wrote after its last save, so every step appears once. The model is restored from the
   checkpoint of that same step (``monitor.step_count``).

Files go under ``--out`` (default ``./runs/preempt_resume``). Run::

    python examples/preempt_resume.py                        # 2000 steps, preempted at 1100, resumed at 1000
    python examples/preempt_resume.py --steps 200 --out /tmp/preempt

``--resume-source wandb`` resumes from the W&B artifact directory instead of the TensorBoard logdir.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/preempt_resume"), help="where the run's files go")
    parser.add_argument("--steps", type=int, default=2000, help="train steps (the schedule's total_steps)")
    parser.add_argument("--save-every", type=int, default=None, help="checkpoint interval (default steps/8)")
    parser.add_argument("--preempt-at", type=int, default=None, help="step after which attempt 1 is killed "
                        "(default 55%% of --steps)")
    parser.add_argument("--resume-source", choices=["tensorboard", "wandb"], default="tensorboard",
                        help="resume from the TensorBoard logdir or from the W&B artifact directory")
    parser.add_argument("--no-wandb", action="store_true", help="log to TensorBoard only")
    parser.add_argument("--attempt", type=int, default=0, help=argparse.SUPPRESS)  # 1: the child that is killed
    args = parser.parse_args(argv)
    args.save_every = args.save_every or max(1, args.steps // 8)
    args.preempt_at = args.preempt_at if args.preempt_at is not None else int(args.steps * 0.55)
    if args.no_wandb and args.resume_source == "wandb":
        parser.error("--resume-source wandb needs W&B logging")
    return args


def train(args: argparse.Namespace, resume_from: Path | None) -> dict[str, Any]:
    """One attempt: build (or resume) the monitor, restore the model, train, checkpoint every save_every steps."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax

    import lrmon
    from lrmon.console import ConsoleSink
    from lrmon.integrations.tensorboard import TensorBoardSink

    rng = np.random.default_rng(0)  # synthetic data (NumPy: no compilation spent on it): a random teacher
    x = rng.normal(size=(4096, 16)).astype(np.float32)
    y = (np.tanh(x @ rng.normal(size=16) / 2.0) + 0.05 * rng.normal(size=4096)).astype(np.float32)
    x, y = jnp.asarray(x), jnp.asarray(y)
    params = {"w1": (rng.normal(size=(16, 32)) / 4.0).astype(np.float32), "b1": np.zeros(32, np.float32),
              "w2": (rng.normal(size=32) / 6.0).astype(np.float32), "b2": np.zeros((), np.float32)}

    schedule = lrmon.WarmupCosineSchedule(base_lr=3e-3, warmup_steps=args.steps // 10, total_steps=args.steps,
                                          eta_min=3e-5)
    optimizer = optax.adamw(learning_rate=schedule, weight_decay=1e-4)
    opt_state = jax.jit(optimizer.init)(params)

    tb_dir = args.out / "tensorboard"
    sinks: list[lrmon.Sink] = [TensorBoardSink(tb_dir), ConsoleSink(desc=f"attempt {args.attempt or 2}")]
    wandb_sink = None
    if not args.no_wandb:
        from lrmon.integrations.wandb import WandbSink

        wandb_sink = WandbSink(dir=args.out / "wandb", project="lrmon-examples",
                               name=f"preempt_resume-attempt{args.attempt or 2}")
        sinks.append(wandb_sink)
    monitor = lrmon.LRMonitor(schedule, sinks, flush_every=50, state_dir=args.out / "state",
                              resume_from=resume_from)
    start = monitor.step_count
    checkpoints = args.out / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    if start > 0:  # restore the model and optimizer saved at the very step the monitor resumes at
        leaves, treedef = jax.tree_util.tree_flatten((params, opt_state))
        with np.load(checkpoints / f"ckpt-{start}.npz") as saved:
            params, opt_state = jax.tree_util.tree_unflatten(treedef, [saved[f"a{i}"] for i in range(len(leaves))])

    @jax.jit
    def train_step(params, opt_state, step, x, y):
        batch = jax.random.randint(jax.random.fold_in(jax.random.PRNGKey(3), step), (128,), 0, x.shape[0])

        def loss_fn(p):
            prediction = jnp.tanh(x[batch] @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]
            return jnp.mean((prediction - y[batch]) ** 2)

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    for step in range(start, args.steps):
        params, opt_state, loss = train_step(params, opt_state, step, x, y)
        monitor.step(loss=loss)
        done = step + 1
        if done % args.save_every == 0 and done < args.steps:
            leaves = jax.tree_util.tree_leaves((params, opt_state))
            temporary = checkpoints / f".ckpt-{done}.npz"
            np.savez(temporary, **{f"a{i}": np.asarray(leaf) for i, leaf in enumerate(leaves)})
            os.replace(temporary, checkpoints / f"ckpt-{done}.npz")  # the model first, then the monitor's state
            monitor.save_state()
        if args.attempt == 1 and done == args.preempt_at:
            sys.stdout.flush()
            sys.stderr.flush()
            os.kill(os.getpid(), signal.SIGKILL)  # preempted: no close(), no flush
    monitor.close()
    return {"start": start, "loss": float(loss), "tb_dir": tb_dir,
            "wandb_run": None if wandb_sink is None else wandb_sink.run_dir}


def main() -> None:
    args = parse_args()
    if args.attempt == 1:
        train(args, resume_from=None)
        return

    stale = [args.out / name for name in ("tensorboard", "wandb", "checkpoints", "state") if (args.out / name).exists()]
    for path in stale:  # a fresh demonstration: the previous one's files would be resumed or purged otherwise
        shutil.rmtree(path)
    if stale:
        print(f"removed the previous demonstration's {', '.join(p.name for p in stale)} in {args.out}")
    print(f"attempt 1: training {args.steps} steps, saving every {args.save_every}, preempted after step "
          f"{args.preempt_at} ...", flush=True)
    child = subprocess.run([sys.executable, __file__, *sys.argv[1:], "--attempt", "1"])
    if child.returncode != -signal.SIGKILL:
        raise SystemExit(f"attempt 1 should have been killed, but it exited with status {child.returncode}")
    print(f"attempt 1: killed (SIGKILL) after step {args.preempt_at}\n", flush=True)

    from lrmon.state import read_state

    tb_dir = args.out / "tensorboard"
    if args.resume_source == "wandb":
        runs = sorted((args.out / "wandb" / "wandb").glob("offline-run-*"), key=os.path.getmtime)
        source = runs[-1] / "lrmon-artifact"  # what artifact.download() returns online
    else:
        source = tb_dir
    saved = read_state(source)
    print(f"attempt 2: resuming from {source} (state saved at step {saved.step}; events already emitted: "
          f"{', '.join(f'{kind}@{step}' for kind, step in saved.emitted_events) or 'none'})", flush=True)
    result = train(args, resume_from=source)

    print(f"\nattempt 2: resumed at step {result['start']}, finished {args.steps} steps, final loss {result['loss']:.4f}")
    print(f"TensorBoard logdir: {tb_dir}  (both attempts; what attempt 1 wrote after step {saved.step} is purged)")
    print(f"  open it:   tensorboard --logdir {tb_dir}  (Custom Scalars tab: 'lr vs loss')")
    if result["wandb_run"] is not None:
        print(f"W&B offline runs: {args.out / 'wandb' / 'wandb'}  (one per attempt)")
        print(f"  upload them: wandb sync {args.out / 'wandb' / 'wandb'}/offline-run-*")
    print(f"state:     lrmon inspect {tb_dir}")
    print(f"plot it:   lrmon plot {tb_dir} --out {args.out / 'lr_vs_loss.png'}")


if __name__ == "__main__":
    main()
