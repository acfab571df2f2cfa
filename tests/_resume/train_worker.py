"""A monitored optax training run for the crash/resume tests; run as a subprocess.

    python train_worker.py --out D --steps N --save-every K [--crash-at S] [--crash-in-save] [--resume-from PATH]

Writes D/applied.jsonl (one line per step: the LR the optimizer applied), D/tb (TensorBoard) and D/wandb (W&B
offline). ``--crash-at S`` SIGKILLs the process right after step S; with ``--crash-in-save`` it is killed instead
inside the first state save at or after step S, between writing the temporary file and renaming it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
from pathlib import Path

import jax
import jax.numpy as jnp
import optax

import lrmon
from lrmon.integrations.tensorboard import TensorBoardSink
from lrmon.integrations.wandb import WandbSink

SCHEDULE = dict(base_lr=0.1, warmup_steps=40, total_steps=200, warmup_start_lr=1e-3, eta_min=1e-3)


def kill_inside_saves_from(step_of_crash: int, monitor_ref: list) -> None:
    """Make every atomic rename of a state file (local, TensorBoard copy) SIGKILL the process once the monitor is at or past ``step_of_crash``."""
    real_replace = os.replace

    def replace(source, destination):
        if monitor_ref and monitor_ref[0].step_count >= step_of_crash:
            os.kill(os.getpid(), signal.SIGKILL)
        real_replace(source, destination)

    os.replace = replace


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--save-every", type=int, required=True)
    parser.add_argument("--crash-at", type=int)
    parser.add_argument("--crash-in-save", action="store_true")
    parser.add_argument("--resume-from")
    args = parser.parse_args()
    monitor_ref: list = []
    if args.crash_in_save:
        kill_inside_saves_from(args.crash_at, monitor_ref)

    schedule = lrmon.WarmupCosineSchedule(**SCHEDULE)
    sinks = [TensorBoardSink(args.out / "tb"), WandbSink(dir=args.out / "wandb", project="lrmon-resume-test")]
    monitor = lrmon.LRMonitor(schedule, sinks, save_every=args.save_every, flush_every=8,
                              state_dir=args.out / "state", resume_from=args.resume_from)
    monitor_ref.append(monitor)
    tx = optax.sgd(schedule)
    opt_state = tx.init(jnp.zeros(()))
    # The user's own checkpoint restore: the optimizer continues at the monitor's (resumed) step.
    opt_state = (opt_state[0], opt_state[1]._replace(count=jnp.asarray(monitor.step_count, jnp.int32)))

    @jax.jit
    def train_step(opt_state):
        updates, opt_state = tx.update(jnp.ones(()), opt_state, jnp.zeros(()))
        return -updates, opt_state

    with open(args.out / "applied.jsonl", "a") as log:
        for _ in range(monitor.step_count, args.steps):
            step = monitor.step_count
            applied, opt_state = train_step(opt_state)
            log.write(json.dumps({"step": step, "lr": float(applied)}) + "\n")
            log.flush()
            monitor.step(loss=jnp.cos(applied))
            if args.crash_at is not None and not args.crash_in_save and step == args.crash_at:
                os.kill(os.getpid(), signal.SIGKILL)
    monitor.close()
    print(json.dumps({"wandb_run_dir": str(sinks[1].run_dir), "steps": monitor.step_count}))


if __name__ == "__main__":
    main()
