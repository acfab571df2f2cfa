"""A monitored optax training run for the crash/resume tests; run as a subprocess, killed at any moment.

    python train_worker.py --out D --steps N --save-every K --ckpt-every C [--resume SOURCE] [--crash-at S]
                           [--crash-in-save] [--step-sleep SECONDS]

The model's own checkpoint (``D/ckpt.json``: the optimizer's count and the monitor's ``state_dict()``, written
atomically every ``C`` steps, as orbax would) is on a cadence unrelated to the monitor's ``save_every``. A resumed
attempt restores that checkpoint and resumes the monitor at its step from ``SOURCE``: ``ckpt`` (the state inside
the checkpoint), ``state`` (D/state), ``tensorboard`` (D/tb) or ``wandb`` (the W&B root directory D/wandb); with no
checkpoint yet it starts afresh. Writes D/applied.jsonl (per step: the LR the optimizer applied; the last line of
a step wins), D/tb and D/wandb. ``--crash-at S`` SIGKILLs the process right after step S; with
``--crash-in-save`` instead inside the first state-file rename at or after step S.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import optax

import lrmon
from lrmon.integrations.tensorboard import TensorBoardSink
from lrmon.integrations.wandb import WandbSink

SCHEDULE = dict(base_lr=0.1, warmup_steps=40, total_steps=200, warmup_start_lr=1e-3, eta_min=1e-3)


def kill_inside_saves_from(step_of_crash: int, monitor_ref: list) -> None:
    """Make every atomic rename of a state file SIGKILL the process once the monitor is at or past the step."""
    real_replace = os.replace

    def replace(source, destination):
        if monitor_ref and monitor_ref[0].step_count >= step_of_crash and "lrmon_state" in str(destination):
            os.kill(os.getpid(), signal.SIGKILL)
        real_replace(source, destination)

    os.replace = replace


def resume_source(out: Path, kind: str, checkpoint: dict) -> object:
    return {"ckpt": checkpoint["monitor"], "state": out / "state", "tensorboard": out / "tb",
            "wandb": out / "wandb"}[kind]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--save-every", type=int, required=True)
    parser.add_argument("--ckpt-every", type=int, required=True)
    parser.add_argument("--resume", choices=["ckpt", "state", "tensorboard", "wandb"])
    parser.add_argument("--crash-at", type=int)
    parser.add_argument("--crash-in-save", action="store_true")
    parser.add_argument("--step-sleep", type=float, default=0.0)
    args = parser.parse_args()
    monitor_ref: list = []
    if args.crash_in_save:
        kill_inside_saves_from(args.crash_at, monitor_ref)

    ckpt_path = args.out / "ckpt.json"
    checkpoint = json.loads(ckpt_path.read_text()) if args.resume and ckpt_path.exists() else None
    schedule = lrmon.WarmupCosineSchedule(**SCHEDULE)
    sinks = [TensorBoardSink(args.out / "tb"), WandbSink(dir=args.out / "wandb", project="lrmon-resume-test")]
    resume = {} if checkpoint is None else {"resume_from": resume_source(args.out, args.resume, checkpoint),
                                            "resume_step": checkpoint["step"]}
    monitor = lrmon.LRMonitor(schedule, sinks, save_every=args.save_every, flush_every=8,
                              state_dir=args.out / "state", **resume)
    monitor_ref.append(monitor)
    tx = optax.sgd(schedule)
    opt_state = tx.init(jnp.zeros(()))
    # the model's checkpoint restore: the optimizer continues at the checkpoint's step
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
            done = step + 1
            if done % args.ckpt_every == 0:  # the model's checkpoint, with the monitor's state inside (atomic)
                temporary = ckpt_path.with_suffix(".tmp")
                temporary.write_text(json.dumps({"step": done, "monitor": monitor.state_dict()}))
                os.rename(temporary, ckpt_path)
            if args.crash_at is not None and not args.crash_in_save and step == args.crash_at:
                os.kill(os.getpid(), signal.SIGKILL)
            if args.step_sleep:
                time.sleep(args.step_sleep)
    monitor.close()
    print(json.dumps({"wandb_run_dir": str(sinks[1].run_dir), "steps": monitor.step_count}))


if __name__ == "__main__":
    main()
