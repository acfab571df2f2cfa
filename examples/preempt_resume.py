"""Preemption and resume with orbax: a run is killed mid-training and a new process continues it exactly.

What a preemptible job does, here with a pure JAX + optax loop on synthetic data:

1. it checkpoints its model and optimizer with an orbax ``CheckpointManager`` every ``--ckpt-every`` steps, on
   orbax's own cadence; the monitor's state rides in the same checkpoint step (``lrmon.integrations.orbax``), so
   model and monitor always restore at one step. The monitor also saves its state to the trackers on a cadence of
   its own (``--save-every``): the TensorBoard logdir and the W&B run;
2. attempt 1 runs in a child process that is SIGKILLed at ``--preempt-at`` (no clean shutdown, as on a preempted
   machine), a step that is no multiple of the checkpoint interval;
3. attempt 2 (this process) restores orbax's latest step and builds the monitor with
   ``resume_from=<the restored state>, resume_step=<that step>``: the LR continues at the applied value, events
   before that step are not emitted again, a ``resume`` event marks it, TensorBoard purges what attempt 1 wrote
   after it, and W&B continues the same run, skipping the steps attempt 1 already wrote. Every step is logged once.

Files go under ``--out`` (default ``./runs/preempt_resume``). Run::

    python examples/preempt_resume.py                        # 2000 steps, checkpoint every 500, killed at 1130
    python examples/preempt_resume.py --steps 200 --out /tmp/preempt
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
    parser.add_argument("--ckpt-every", type=int, default=None, help="orbax checkpoint interval (default steps/4)")
    parser.add_argument("--save-every", type=int, default=None,
                        help="the monitor's own state-save interval to the trackers (default steps/3)")
    parser.add_argument("--preempt-at", type=int, default=None, help="step after which attempt 1 is killed "
                        "(default 56.5%% of --steps)")
    parser.add_argument("--no-wandb", action="store_true", help="log to TensorBoard only")
    parser.add_argument("--attempt", type=int, default=0, help=argparse.SUPPRESS)  # 1: the child that is killed
    args = parser.parse_args(argv)
    args.ckpt_every = args.ckpt_every or max(1, args.steps // 4)
    args.save_every = args.save_every or max(1, args.steps // 3)
    args.preempt_at = args.preempt_at if args.preempt_at is not None else int(args.steps * 0.565)
    return args


def train(args: argparse.Namespace) -> dict[str, Any]:
    """One attempt: restore orbax's latest step (model, optimizer and monitor state) if any, then train."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax
    import orbax.checkpoint as ocp

    import lrmon
    from lrmon.integrations.console import ConsoleSink
    from lrmon.integrations import orbax as lrmon_orbax
    from lrmon.integrations.tensorboard import TensorBoardSink

    rng = np.random.default_rng(0)  # synthetic data (NumPy: no compilation spent on it): a random teacher
    x = rng.normal(size=(4096, 16)).astype(np.float32)
    y = (np.tanh(x @ rng.normal(size=16) / 2.0) + 0.05 * rng.normal(size=4096)).astype(np.float32)
    x, y = jnp.asarray(x), jnp.asarray(y)
    params = {"w1": jnp.asarray(rng.normal(size=(16, 32)) / 4.0, jnp.float32), "b1": jnp.zeros(32),
              "w2": jnp.asarray(rng.normal(size=32) / 6.0, jnp.float32), "b2": jnp.zeros(())}

    schedule = lrmon.WarmupCosineSchedule(base_lr=3e-3, warmup_steps=args.steps // 10, total_steps=args.steps,
                                          eta_min=3e-5)
    optimizer = optax.adamw(learning_rate=schedule, weight_decay=1e-4)
    opt_state = jax.jit(optimizer.init)(params)

    manager = ocp.CheckpointManager((args.out / "checkpoints").resolve(),
                                    options=ocp.CheckpointManagerOptions(save_interval_steps=args.ckpt_every,
                                                                         max_to_keep=2))
    restored_step, saved_monitor = manager.latest_step(), None
    if restored_step is not None:  # model, optimizer and monitor state of one committed step
        restored = manager.restore(restored_step, args=ocp.args.Composite(
            train=ocp.args.StandardRestore((params, opt_state)), **{lrmon_orbax.ITEM: lrmon_orbax.restore_args()}))
        (params, opt_state), saved_monitor = restored["train"], restored[lrmon_orbax.ITEM]

    tb_dir = args.out / "tensorboard"
    sinks: list[lrmon.Sink] = [TensorBoardSink(tb_dir), ConsoleSink(desc=f"attempt {args.attempt or 2}")]
    wandb_sink = None
    if not args.no_wandb:
        from lrmon.integrations.wandb import WandbSink

        wandb_sink = WandbSink(dir=args.out / "wandb", project="lrmon-examples", name="preempt_resume")
        sinks.append(wandb_sink)
    monitor = lrmon.LRMonitor(schedule, sinks, flush_every=50, save_every=args.save_every,
                              state_dir=args.out / "state", resume_from=saved_monitor, resume_step=restored_step)
    start = monitor.step_count

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
        if manager.should_save(done):  # orbax's cadence; the monitor's state goes into the same step
            manager.save(done, args=ocp.args.Composite(train=ocp.args.StandardSave((params, opt_state)),
                                                       **{lrmon_orbax.ITEM: lrmon_orbax.save_args(monitor)}))
        if args.attempt == 1 and done == args.preempt_at:
            sys.stdout.flush()
            sys.stderr.flush()
            os.kill(os.getpid(), signal.SIGKILL)  # preempted: no close(), no flush, maybe mid-save
    manager.wait_until_finished()
    monitor.close()
    return {"start": start, "loss": float(loss), "tb_dir": tb_dir,
            "wandb_run": None if wandb_sink is None else wandb_sink.run_dir}


def main() -> None:
    args = parse_args()
    if args.attempt == 1:
        train(args)
        return

    stale = [args.out / name for name in ("tensorboard", "wandb", "checkpoints", "state") if (args.out / name).exists()]
    for path in stale:  # a fresh demonstration: the previous one's files would be resumed or purged otherwise
        shutil.rmtree(path)
    if stale:
        print(f"removed the previous demonstration's {', '.join(p.name for p in stale)} in {args.out}")
    print(f"attempt 1: training {args.steps} steps, orbax checkpoint every {args.ckpt_every}, monitor state saved "
          f"every {args.save_every}, preempted after step {args.preempt_at} ...", flush=True)
    child = subprocess.run([sys.executable, __file__, *sys.argv[1:], "--attempt", "1"])
    if child.returncode != -signal.SIGKILL:
        raise SystemExit(f"attempt 1 should have been killed, but it exited with status {child.returncode}")
    print(f"attempt 1: killed (SIGKILL) after step {args.preempt_at}\n", flush=True)

    result = train(args)
    tb_dir = result["tb_dir"]
    print(f"\nattempt 2: restored orbax step {result['start']}, finished {args.steps} steps, "
          f"final loss {result['loss']:.4f}")
    print(f"TensorBoard logdir: {tb_dir}  (both attempts; what attempt 1 wrote after step {result['start']} is "
          "purged)")
    print(f"  open it:   tensorboard --logdir {tb_dir}")
    if result["wandb_run"] is not None:
        print(f"W&B: one run, one offline directory per attempt, in {result['wandb_run'].parent}")
        print(f"  upload it: wandb sync {result['wandb_run'].parent}/offline-run-*-{result['wandb_run'].name[-8:]}")
    print(f"state:     lrmon inspect {tb_dir}")
    print(f"plot it:   lrmon plot {tb_dir} --out {args.out / 'lr_vs_loss.png'}")


if __name__ == "__main__":
    main()
