"""Read the main job's output back with each tracker's own reader and check it is complete.

    python scripts/check_main_job.py [OUT] [--steps N]      (defaults: runs/quickstart, 600: the demo's defaults)

TensorBoard through ``EventAccumulator``, W&B through ``wandb leet inspect`` (``read_offline_run``), the state with
lrmon's strict reader: every train step exactly once with the schedule's LR, each schedule event once at its step,
the state at the last step. Run by ``.ci/run`` in the main job's own venv; exit status 1 and one line per problem
otherwise.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", type=Path, default=Path("runs/quickstart"))
    parser.add_argument("--steps", type=int, default=600)
    args = parser.parse_args()
    from tensorboard.backend.event_processing.event_accumulator import (
        STORE_EVERYTHING_SIZE_GUIDANCE,
        EventAccumulator,
    )

    from lrmon.curve import CurveConfig
    from lrmon.integrations.wandb import read_offline_run
    from lrmon.state import read_state

    steps = args.steps
    config = CurveConfig(3e-3, steps // 10, steps, 1e-5, 1e-5)  # examples/quickstart.py's schedule
    expected_lr = np.asarray(config.lr_at(np.arange(steps)), np.float64)[:, 0]
    expected_events = {kind: step for kind, step in config.events() if step < steps}
    problems: list[str] = []

    def check(condition: bool, what: str) -> None:
        if not condition:
            problems.append(what)

    acc = EventAccumulator(str(args.out / "tensorboard"), size_guidance=STORE_EVERYTHING_SIZE_GUIDANCE)
    acc.Reload()
    for tag in ("lr", "loss", "lrmon/phase"):
        logged = [e.step for e in acc.Scalars(tag)] if tag in acc.Tags()["scalars"] else []
        check(logged == list(range(steps)), f"TensorBoard {tag}: {len(logged)} rows, not steps 0..{steps - 1} once each")
    if "lr" in acc.Tags()["scalars"]:
        logged_lr = np.asarray([e.value for e in acc.Scalars("lr")])
        check(logged_lr.shape == expected_lr.shape and np.allclose(logged_lr, expected_lr, rtol=1e-6, atol=0),
              "TensorBoard lr differs from the schedule's")
    for kind, step in expected_events.items():
        tag = f"lrmon/events/{kind}"
        found = [e.step for e in acc.Tensors(tag)] if tag in acc.Tags()["tensors"] else []
        check(found == [step], f"TensorBoard event {kind}: at steps {found}, expected [{step}]")

    run_dirs = sorted((args.out / "wandb").glob("offline-run-*"))
    check(len(run_dirs) == 1, f"W&B: {len(run_dirs)} offline run directories, expected 1")
    if run_dirs:
        run = read_offline_run(run_dirs[0])
        check(run["exit_code"] == 0, f"W&B: exit code {run['exit_code']}")
        rows = {}
        for row in run["history"]:
            if "lr" in row:
                step = int(row["trainer/step"])
                check(step not in rows, f"W&B: step {step} logged twice")
                rows[step] = float(row["lr"])
        check(sorted(rows) == list(range(steps)), f"W&B: {len(rows)} lr rows, not steps 0..{steps - 1}")
        if sorted(rows) == list(range(steps)):
            check(np.allclose([rows[t] for t in range(steps)], expected_lr, rtol=1e-6, atol=0),
                  "W&B lr differs from the schedule's")
        for kind, step in expected_events.items():
            found = [int(row["trainer/step"]) for row in run["history"] if f"lrmon/event/{kind}" in row]
            check(found == [step], f"W&B event {kind}: at steps {found}, expected [{step}]")

    for where in (args.out / "state", args.out / "tensorboard"):
        state = read_state(where)
        check(state.step == steps, f"state in {where} names step {state.step}, expected {steps}")
    for problem in problems:
        print(f"check_main_job: {problem}", file=sys.stderr)
    if not problems:
        print(f"check_main_job: {args.out}: TensorBoard and W&B hold steps 0..{steps - 1} once each with the "
              f"schedule's LR, events {sorted(expected_events, key=expected_events.get)} once each; state at {steps}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
