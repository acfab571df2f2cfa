"""What a state save costs the training thread, against the same monitored loop without saves, in train steps.

    python benchmarks/save_cost.py [--model mlp|device|both] [--steps 600] [--save-every 50] [--rounds 5]

Two models, each in a Python loop:

* ``mlp``: a ~1-10 ms MLP step (784-512-512-10, batch 128, optax AdamW) computed on this CPU. On a 2-core machine
  it keeps both cores busy, so any other work (the courier's thread, wandb-core's process) slows the model itself:
  this is machine contention, not only the training thread's cost.
* ``device``: the stand-in for a model on an accelerator: the step's host thread waits ``--device-ms`` (3 ms) with
  the GIL released (``time.sleep``) and returns a tiny jitted loss. The host's cores are free, as on a GPU machine,
  so what remains is what a save costs the training thread (its own work and the GIL).

Each round runs three variants, in a
shuffled order, each with a fresh monitor: ``bare`` (no monitor), ``monitored`` (TensorBoard + W&B offline,
``loss`` every step) and ``saving`` (the same with a state save every ``--save-every`` steps). Each step is timed
whole: the train step (dispatched and waited for) plus ``monitor.step()``; construction and ``close()`` are not
timed.

Printed (medians over rounds):

* ``save_cost_in_train_steps``: (mean step of ``saving`` - mean step of ``monitored``) x save_every / median bare
  step: everything a save costs the training thread, spread over the steps while it runs on the courier's thread
  (GIL contention included). The goal (issue 12): about one train step or less.
* ``save_step_monitor_ms``: ``monitor.step()`` on the step that triggers a save, and as a ratio to the bare step.
* ``monitored_ratio`` and ``saving_ratio``: mean step / median bare step.

The last line is the JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

import lrmon
from _harness import shuffled_rounds
from lrmon.integrations.tensorboard import TensorBoardSink
from lrmon.integrations.wandb import WandbSink


def make_train_step(schedule):
    rng = np.random.default_rng(0)
    sizes = [784, 512, 512, 10]
    params = [(jnp.asarray(rng.normal(size=(a, b)) / np.sqrt(a), jnp.float32), jnp.zeros(b)) for a, b in
              zip(sizes[:-1], sizes[1:])]
    x = jnp.asarray(rng.normal(size=(128, 784)), jnp.float32)
    y = jnp.asarray(rng.integers(0, 10, 128))
    tx = optax.adamw(schedule)

    @jax.jit
    def train_step(params, opt_state):
        def loss_fn(p):
            h = x
            for w, b in p[:-1]:
                h = jnp.tanh(h @ w + b)
            logits = h @ p[-1][0] + p[-1][1]
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return train_step, params, tx.init(params)


def make_device_step(schedule, device_ms: float):
    """A step whose host thread only waits (GIL released), as it waits for an accelerator."""
    count = jnp.zeros((), jnp.int32)

    @jax.jit
    def loss_of(count):
        return jnp.cos(count.astype(jnp.float32)) * schedule(count), count + 1

    def train_step(params, count):
        time.sleep(device_ms / 1e3)
        loss, count = loss_of(count)
        return params, count, loss

    return train_step, (), count


def run_variant(variant: str, args: argparse.Namespace, out: Path) -> tuple[list[float], list[float]]:
    """Per-step times (train step + monitor.step) and monitor.step() times on save-triggering steps."""
    schedule = lrmon.WarmupCosineSchedule(1e-3, args.steps // 10, args.steps)
    if args.model == "mlp":
        train_step, params, opt_state = make_train_step(schedule)
    else:
        train_step, params, opt_state = make_device_step(schedule, args.device_ms)
    monitor = None
    if variant != "bare":
        sinks = [TensorBoardSink(out / "tb"), WandbSink(dir=out / "wandb", project="lrmon-bench")]
        monitor = lrmon.LRMonitor(schedule, sinks, save_every=args.save_every if variant == "saving" else None,
                                  state_dir=out / "state")
    for _ in range(3):  # compile outside the timed loop
        jax.block_until_ready(train_step(params, opt_state))
    steps, save_calls = [], []
    for t in range(args.steps):
        start = time.perf_counter()
        params, opt_state, loss = train_step(params, opt_state)
        loss.block_until_ready()
        middle = time.perf_counter()
        if monitor is not None:
            monitor.step(loss=loss)
        end = time.perf_counter()
        steps.append(end - start)
        if variant == "saving" and (t + 1) % args.save_every == 0:
            save_calls.append(end - middle)
    if monitor is not None:
        monitor.close()
    return steps[20:], save_calls  # past the first flushes' compilation


def measure(args: argparse.Namespace, out: Path) -> dict:
    per_round: dict[str, list[float]] = {"cost": [], "save_step_ms": [], "monitored": [], "saving": []}
    for index, variants in enumerate(shuffled_rounds(["bare", "monitored", "saving"], args.rounds)):
        times = {variant: run_variant(variant, args, out / f"r{index}-{variant}") for variant in variants}
        bare = float(np.median(times["bare"][0]))
        mean = {variant: float(np.mean(times[variant][0])) for variant in ("monitored", "saving")}
        per_round["cost"].append((mean["saving"] - mean["monitored"]) * args.save_every / bare)
        per_round["save_step_ms"].append(1e3 * float(np.median(times["saving"][1])))
        per_round["monitored"].append(mean["monitored"] / bare)
        per_round["saving"].append(mean["saving"] / bare)
        per_round.setdefault("bare_ms", []).append(1e3 * bare)
    result = {
        "bare_step_ms": round(float(np.median(per_round["bare_ms"])), 3),
        "save_cost_in_train_steps": round(float(np.median(per_round["cost"])), 3),
        "save_cost_in_train_steps_per_round": [round(c, 2) for c in per_round["cost"]],
        "save_step_monitor_ms": round(float(np.median(per_round["save_step_ms"])), 3),
        "monitored_ratio": round(float(np.median(per_round["monitored"])), 3),
        "saving_ratio": round(float(np.median(per_round["saving"])), 3),
        "rounds": args.rounds, "save_every": args.save_every, "model": args.model,
    }
    result["save_step_monitor_in_train_steps"] = round(result["save_step_monitor_ms"] / result["bare_step_ms"], 3)
    print(f"[{args.model}] bare train step (median): {result['bare_step_ms']:.2f} ms; a state save every "
          f"{args.save_every} steps")
    print(f"a save costs the training thread {result['save_cost_in_train_steps']:.2f} train steps (median of "
          f"{args.rounds} rounds: {result['save_cost_in_train_steps_per_round']})")
    print(f"monitor.step() on a save step: {result['save_step_monitor_ms']:.3f} ms "
          f"({result['save_step_monitor_in_train_steps']:.2f} train steps)")
    print(f"mean step / bare step: monitored {result['monitored_ratio']:.3f}, with saves {result['saving_ratio']:.3f}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["mlp", "device", "both"], default="both")
    parser.add_argument("--device-ms", type=float, default=3.0)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--save-every", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="lrmon-save-cost-"))
    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ.setdefault("WANDB_MODE", "offline")
    results = {}
    for model in (["mlp", "device"] if args.model == "both" else [args.model]):
        results[model] = measure(argparse.Namespace(**{**vars(args), "model": model}), out / model)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
