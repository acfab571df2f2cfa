"""A braintools SGD run whose LR a ReduceLROnPlateau cuts on a scripted metric, logged to TensorBoard; it can kill
itself with SIGKILL after a given step and resume from its state directory (for tests/test_schedule_kinds.py)."""

from __future__ import annotations

import argparse
import json
import os
import signal
from pathlib import Path

import braintools
import brainstate
import jax.numpy as jnp

import lrmon
from lrmon.integrations.tensorboard import TensorBoardSink

STEPS, EPOCH = 60, 5
#: Validation loss at the start of each epoch: improves, then stalls (patience 1 -> a cut every 2 bad epochs).
METRIC = [1.0, 0.8, 0.7, 0.7, 0.7, 0.7, 0.7, 0.65, 0.65, 0.65, 0.65, 0.65]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--kill-after", type=int, default=None)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()
    plateau = braintools.optim.ReduceLROnPlateau(base_lr=0.1, factor=0.5, patience=1, cooldown=0)
    weight = brainstate.ParamState(jnp.zeros(()))
    optimizer = braintools.optim.SGD(lr=plateau)
    optimizer.register_trainable_weights({"w": weight})
    monitor = lrmon.LRMonitor(plateau, [TensorBoardSink(args.out / "tb")], save_every=5, flush_every=4,
                              state_dir=args.out / "state",
                              resume_from=args.out / "state" if args.resume else None)
    applied = []
    for t in range(monitor.step_count, STEPS):
        if t and t % EPOCH == 0:
            plateau.step(METRIC[t // EPOCH])
        before = float(weight.value)
        optimizer.update({"w": jnp.ones(())})  # grad 1: the parameter moves by -lr
        applied.append([t, before - float(weight.value)])
        monitor.step(loss=METRIC[t // EPOCH])
        if t == args.kill_after:
            monitor.flush()
            os.kill(os.getpid(), signal.SIGKILL)
    monitor.close()
    (args.out / f"applied-{'resumed' if args.resume else 'first'}.json").write_text(json.dumps(applied))


if __name__ == "__main__":
    main()
