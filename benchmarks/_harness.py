"""The timing harness the benchmark scripts share: interleaved, repeated timings of monitored vs bare steps.

Rounds: every round times each variant for one block of steps (order shuffled per round, fixed seed); a variant's
per-step time is the median over rounds of (block time / block steps). Each block ends with
``block_until_ready`` on the loop's outputs, so dispatch-ahead does not hide the step. Host-path blocks are
multiples of the monitor's flush interval (256 steps), so every block pays its share of flushes. The JSON also
holds ``min_ratios`` (fastest block / fastest block: contention only adds time) and ``cpu_ratios`` (process CPU
time, all of this process's threads but not child processes such as wandb-core or a ProcessSink's child): on a
shared machine these are steadier than wall-clock medians. After the warm-up, ``gc.freeze()`` moves what setup
allocated (jax, wandb, ...) out of the collector's way, so the ``gc.collect()`` before each block is cheap; the
loops' own garbage is still collected inside the blocks.

A script hands ``main`` its ``Suite`` objects; their variants run interleaved in the same rounds, so every ratio is
against the bare step of the same run. The last line of the output is one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import random
import shutil
import statistics
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

WARM_STEPS = {"full": 300, "quick": 8}  # Python-loop warm-up: past one flush (256 steps) in a full run


class Variant:
    """``run(n)`` runs ``n`` train steps and returns when their results are ready; the other methods are hooks of
    the harness (no-ops here)."""

    warm_cap: int | None = None  # a slow loop warms up for at most this many steps

    def run(self, n: int) -> None:
        raise NotImplementedError

    def warm_up(self, block: int, steps: int) -> None:
        """Compile and get past the first flush (a slow loop's first flush then lands in round one: the median
        drops it)."""
        self.run(min(block, steps, self.warm_cap or steps))

    def trim(self) -> None:
        """Before each block, untimed: drop what a MemorySink kept, so memory stays bounded across rounds."""

    def settle(self) -> float | None:
        """After each block, untimed: wait for leftover work; the seconds waited, or None if nothing to wait for."""
        return None

    def between_rounds(self) -> None:
        """After each round, untimed."""

    def amortized_s(self) -> float:
        """Seconds per step added to every block (work timed apart from the blocks, e.g. a periodic save)."""
        return 0.0

    def close(self) -> None:
        pass


Factories = dict[str, tuple[Callable[[], Variant], int]]  # variant name: (factory, block steps)


@dataclass
class Run:
    """One benchmark run: its configuration, and after the rounds the variants (closed) and their timings."""

    cfg: dict[str, int]
    quick: bool
    wanted: set[str]
    tmp: str
    variants: dict[str, Variant] = field(default_factory=dict)
    blocks: dict[str, int] = field(default_factory=dict)
    times: dict[str, list[float]] = field(default_factory=dict)
    cpu_times: dict[str, list[float]] = field(default_factory=dict)
    backlogs: dict[str, list[float]] = field(default_factory=dict)
    close_s: dict[str, float] = field(default_factory=dict)

    def median(self, name: str) -> float | None:
        """Median per-step seconds of variant ``name``, None if it did not run."""
        return statistics.median(self.times[name]) if self.times.get(name) else None


@dataclass
class Suite:
    """What one script measures. ``pairs``: ratio key -> (monitored variant, bare variant), built by ``variants``;
    ``measures``: other keys -> a function of the run returning that key and its extras; ``needs``: measure key ->
    the pair whose timed variants it reads (measured with it); ``report``: extras derived from the timed variants;
    ``slow``: keys --quick leaves out; ``full``/``quick``: its configuration."""

    full: dict[str, int]
    quick: dict[str, int]
    pairs: dict[str, tuple[str, str]] = field(default_factory=dict)
    goals: dict[str, float] = field(default_factory=dict)
    variants: Callable[[Run], Factories] = lambda run: {}
    measures: dict[str, Callable[[Run], dict[str, Any]]] = field(default_factory=dict)
    needs: dict[str, str] = field(default_factory=dict)
    report: Callable[[Run], dict[str, Any]] = lambda run: {}
    slow: frozenset[str] = frozenset()

    @property
    def keys(self) -> set[str]:
        return set(self.pairs) | set(self.measures)


def shuffled_rounds(names: list[str], rounds: int) -> Iterator[list[str]]:
    """``rounds`` times the names, shuffled anew each round (fixed seed: every run has the same order)."""
    order, rng = list(names), random.Random(0)
    for _ in range(rounds):
        rng.shuffle(order)
        yield list(order)


def _time_block(run: Run, name: str) -> None:
    variant, steps = run.variants[name], run.blocks[name]
    variant.trim()
    gc.collect()
    cpu_start, start = time.process_time(), time.perf_counter()
    variant.run(steps)
    run.times[name].append((time.perf_counter() - start) / steps)
    run.cpu_times[name].append((time.process_time() - cpu_start) / steps)
    backlog = variant.settle()
    if backlog is not None:
        run.backlogs.setdefault(name, []).append(backlog)


def _warm_up(run: Run) -> None:
    """Compile every variant and let the trackers start, then freeze what setup allocated."""
    for name, variant in run.variants.items():
        variant.warm_up(run.blocks[name], WARM_STEPS["quick" if run.quick else "full"])
        variant.settle()
    # Everything allocated so far (jax, wandb, tensorboard, the compiled steps) goes to the permanent generation:
    # the gc.collect() before each block then takes milliseconds instead of ~0.4 s, and blocks start from the
    # same collector state. Collections caused by the loops' own garbage still happen inside the blocks.
    gc.collect()
    gc.freeze()


def _time_rounds(run: Run, rounds: int) -> None:
    """Time the variants in interleaved rounds; each variant's amortized work is added last."""
    run.times = {name: [] for name in run.variants}
    run.cpu_times = {name: [] for name in run.variants}
    for order in shuffled_rounds(list(run.variants), rounds):
        for name in order:
            _time_block(run, name)
        for variant in run.variants.values():
            variant.between_rounds()
    for name, variant in run.variants.items():
        extra = variant.amortized_s()
        run.times[name] = [t + extra for t in run.times[name]]


def _close(run: Run) -> None:
    for name, variant in run.variants.items():
        start = time.perf_counter()
        variant.close()
        run.close_s[name] = time.perf_counter() - start


def _pair_ratios(times: dict[str, list[float]], pairs: dict[str, tuple[str, str]],
                 of: Callable[[list[float]], float]) -> dict[str, float]:
    """key: of(monitored times) / of(bare times), for the pairs that ran."""
    return {key: round(of(times[m]) / of(times[b]), 4) for key, (m, b) in pairs.items() if m in times and b in times}


def _build(run: Run, suites: list[Suite], pairs: dict[str, tuple[str, str]]) -> None:
    """Build the variants the wanted ratios need (a bare variant several suites name is built once)."""
    needed = {name for key in run.wanted & set(pairs) for name in pairs[key]}
    for suite in suites:
        for name, (factory, block) in suite.variants(run).items():
            if name in needed and name not in run.variants:
                run.variants[name] = factory()
                run.blocks[name] = block


def _measure(run: Run, suites: list[Suite], pairs: dict[str, tuple[str, str]], start: float) -> tuple[dict, dict]:
    """Time the variants, then each suite's one-off measurements: (headline values, extras)."""
    _build(run, suites, pairs)
    _warm_up(run)
    timed = time.perf_counter()
    _time_rounds(run, run.cfg["rounds"])
    done = time.perf_counter()
    _close(run)
    result = _pair_ratios(run.times, pairs, statistics.median)
    extras: dict[str, Any] = {}
    for suite in suites:
        extras.update(suite.report(run))
    extras.update(setup_s=round(timed - start, 1), timed_s=round(done - timed, 1))
    for suite in suites:
        for key, measure in suite.measures.items():
            if key in run.wanted:
                values = measure(run)
                result[key] = values.pop(key)
                extras.update(values)
    return result, extras


def _print_tables(run: Run, result: dict, extras: dict, suites: list[Suite], pairs: dict) -> None:
    goals = {key: goal for suite in suites for key, goal in suite.goals.items()}
    cpu = {name: statistics.median(values) for name, values in run.cpu_times.items() if values}
    if run.times:
        print(f"{'variant':<18}{'block':>7}{'median us/step':>16}{'min':>10}{'max':>10}{'cpu us/step':>13}")
    for name, values in run.times.items():
        print(f"{name:<18}{run.blocks[name]:>7}{run.median(name) * 1e6:>16.2f}{min(values) * 1e6:>10.2f}"
              f"{max(values) * 1e6:>10.2f}{cpu[name] * 1e6:>13.2f}")
    if run.times:
        print()
    print(f"{'ratio / value':<26}{'median':>10}{'goal':>8}{'paired':>9}{'min/min':>9}{'cpu':>9}")
    for key, value in result.items():
        goal = goals.get(key)
        paired = lowest = cpu_ratio = ""
        if key in pairs:
            monitored, bare = pairs[key]
            paired = f"{statistics.median(m / b for m, b in zip(run.times[monitored], run.times[bare])):.3f}"
            lowest = f"{min(run.times[monitored]) / min(run.times[bare]):.3f}"
            cpu_ratio = f"{cpu[monitored] / cpu[bare]:.3f}"
        status = "" if goal is None else ("ok" if value <= goal else "MISSED")
        delivered = extras.get(f"{key}_delivered_fraction")
        if delivered is not None and delivered < 1:
            status += f" (only {delivered:.1%} of the steps' rows reached the trackers)"
        print(f"{key:<26}{value:>10.4f}{'' if goal is None else goal:>8}{paired:>9}{lowest:>9}{cpu_ratio:>9}  {status}")
    for key, value in extras.items():
        print(f"{key:<46}{value}")


def _parse(suites: list[Suite], description: str, argv: list[str] | None) -> tuple[argparse.Namespace, set[str]]:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="tiny configuration (seconds; numbers not meaningful)")
    parser.add_argument("--rounds", type=int, help="rounds of interleaved blocks (default 7, quick 2)")
    parser.add_argument("--only", help="comma-separated keys to measure (default: all)")
    args = parser.parse_args(argv)
    all_keys = set().union(*(suite.keys for suite in suites))
    slow = set().union(*(suite.slow for suite in suites)) if args.quick else set()
    wanted = set(args.only.split(",")) if args.only else all_keys - slow
    if wanted - all_keys:
        parser.error(f"unknown keys {sorted(wanted - all_keys)}; known: {sorted(all_keys)}")
    needs = {key: pair for suite in suites for key, pair in suite.needs.items()}
    return args, wanted | {needs[key] for key in wanted & set(needs)}


def main(suites: list[Suite], description: str, argv: list[str] | None = None) -> int:
    """Parse ``--quick``, ``--rounds N`` and ``--only KEY,...``, measure, print the tables and the JSON line."""
    args, wanted = _parse(suites, description, argv)
    start = time.perf_counter()
    cfg = {"rounds": 2 if args.quick else 7}
    for suite in suites:
        cfg.update(suite.quick if args.quick else suite.full)
    cfg["rounds"] = args.rounds or cfg["rounds"]
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    os.environ.setdefault("WANDB_SILENT", "true")
    import jax

    pairs = {key: pair for suite in suites for key, pair in suite.pairs.items()}
    run = Run(cfg, args.quick, wanted, tempfile.mkdtemp(prefix="lrmon-bench-"))
    try:
        result, extras = _measure(run, suites, pairs, start)
    finally:
        gc.unfreeze()
        for name, variant in run.variants.items():
            if name not in run.close_s:  # on the way out after an error: best effort
                with contextlib.suppress(Exception):
                    variant.close()
        shutil.rmtree(run.tmp, ignore_errors=True)
    print(f"{description}: jax {jax.__version__}, {jax.devices()[0].platform}, {os.cpu_count()} CPUs, "
          f"{cfg['rounds']} rounds{' (QUICK: numbers not meaningful)' if args.quick else ''}")
    _print_tables(run, result, extras, suites, pairs)
    cpu_times = {name: [statistics.median(values)] for name, values in run.cpu_times.items() if values}
    result.update(extras, quick=bool(args.quick), rounds=cfg["rounds"],
                  medians_us={name: round(run.median(name) * 1e6, 3) for name in run.times},
                  # min-of-blocks ratios: on a shared machine contention only adds time, so these bound the
                  # intrinsic cost; CPU-time ratios (this process's threads; not the trackers' child processes)
                  # are steadier under contention
                  min_ratios=_pair_ratios(run.times, pairs, min),
                  cpu_ratios=_pair_ratios(cpu_times, pairs, statistics.median),
                  wall_s=round(time.perf_counter() - start, 1))
    print(json.dumps(result))
    return 0
