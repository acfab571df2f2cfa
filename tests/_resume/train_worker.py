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
from lrmon.state import StateError

SCHEDULE = dict(base_lr=0.1, warmup_steps=40, total_steps=200, warmup_start_lr=1e-3, eta_min=1e-3)


def kill_inside_saves_from(step_of_crash: int, monitor_ref: list) -> None:
    """Make every atomic rename of a state file SIGKILL the process once the monitor is at or past the step."""
    real_replace = os.replace

    def replace(source, destination):
        if monitor_ref and monitor_ref[0].step_count >= step_of_crash and "lrmon_state" in str(destination):
            os.kill(os.getpid(), signal.SIGKILL)
        real_replace(source, destination)

    os.replace = replace


def kill_child(sinks: list) -> None:
    """SIGKILL the sink process (``--process-sink``) or else wandb-core, as a crash of that process would."""
    if isinstance(sinks[0], lrmon.ProcessSink):
        os.kill(sinks[0]._process.pid, signal.SIGKILL)  # noqa: SLF001 - the test reaches for the child's pid
        return
    children = {pid for task in Path(f"/proc/{os.getpid()}/task").iterdir()
                for pid in (task / "children").read_text().split()}
    for pid in children:
        if b"wandb-core" in Path(f"/proc/{pid}/cmdline").read_bytes():
            os.kill(int(pid), signal.SIGKILL)


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
    parser.add_argument("--at-saved-step", action="store_true", help="resume at the source's own step")
    parser.add_argument("--process-sink", action="store_true", help="TensorBoard in a ProcessSink")
    parser.add_argument("--kill-child-at", type=int, help="SIGKILL wandb-core / the sink process after this step")
    parser.add_argument("--flush-timeout", type=float, default=60.0)
    args = parser.parse_args()
    monitor_ref: list = []
    if args.crash_in_save:
        kill_inside_saves_from(args.crash_at, monitor_ref)

    ckpt_path = args.out / "ckpt.json"
    checkpoint = json.loads(ckpt_path.read_text()) if args.resume and ckpt_path.exists() else None
    if args.at_saved_step and args.resume:  # the model restored at the step of the state it resumes from
        checkpoint = {"step": None, "monitor": None}
    schedule = lrmon.WarmupCosineSchedule(**SCHEDULE)
    # a stable run id, as W&B recommends for preemptible jobs: one run even if an attempt dies before any save
    tensorboard = TensorBoardSink(args.out / "tb")
    sinks = [lrmon.ProcessSink([tensorboard]) if args.process_sink else tensorboard,
             WandbSink(dir=args.out / "wandb", project="lrmon-resume-test", id=f"job{args.out.name[-12:]}",
                       flush_timeout=args.flush_timeout)]
    resume = {} if checkpoint is None else {"resume_from": resume_source(args.out, args.resume, checkpoint),
                                            "resume_step": checkpoint["step"]}
    try:
        monitor = lrmon.LRMonitor(schedule, sinks, save_every=args.save_every, flush_every=8,
                                  state_dir=args.out / "state", **resume)
    except StateError:  # that source holds no state yet (killed before its first save): the checkpoint's own
        resume["resume_from"] = checkpoint["monitor"]  # (a failed resume opened no sink: they can be reused)
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
            if step == args.kill_child_at:
                kill_child(sinks)
            if args.step_sleep:
                time.sleep(args.step_sleep)
    monitor.close()
    print(json.dumps({"wandb_run_dir": str(sinks[1].run_dir), "steps": monitor.step_count}))


if __name__ == "__main__":
    main()
