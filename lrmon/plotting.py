"""Figures for the ``lrmon`` command: the planned schedule (``lrmon preview``) and a logged run (``lrmon plot``;
also as PNG bytes, :func:`run_png`, the image the TensorBoard and W&B sinks record).

matplotlib (``pip install 'lrmon[plot]'``) is imported inside the drawing functions only, and used headless: the
figures are ``matplotlib.figure.Figure`` objects rendered by the Agg canvas, never ``pyplot``, so no display,
GUI backend or global pyplot state is involved. PNGs have exactly the requested size in pixels.

Runs (:class:`lrmon.runs.RunData`) are read by each tracker's reader (:func:`lrmon.runs.read_run`) from

* a TensorBoard logdir (``EventAccumulator`` with ``STORE_EVERYTHING_SIZE_GUIDANCE``): scalars ``lr`` or
  ``lr/pg<i>``, the loss tag, ``lrmon/phase``; events from the text tags ``lrmon/events/<kind>``; the schedule
  configuration from the ``lrmon/config`` text when present;
* a W&B offline run directory (``offline-run-...`` holding ``run-<id>.wandb``, or a ``wandb`` directory / the
  ``dir=`` given to ``WandbSink`` when it holds one run or a ``latest-run`` link), read with
  :func:`lrmon.integrations.wandb.read_offline_run`: rows against ``trainer/step``, event rows
  ``lrmon/event/<kind>``, the ``lrmon/events`` table for the events' text, ``config["lrmon"]``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from lrmon.curve import PHASES, CurveConfig
from lrmon.schedules._function import FunctionCurve
from lrmon.schedules._protocol import Curve, config_fields, curve_name
from lrmon.tags import lr_tags
from lrmon._drawing import EVENT_COLORS, PHASE_COLORS, darker, mark_events, new_figure, png_bytes, save, shade_phases, x_limits
from lrmon.runs import RunData, RunReadError

__all__ = ["PREVIEW_SIZE", "PLOT_SIZE", "planned_end", "schedule_points", "phase_spans", "describe_curve",
           "schedule_summary", "plot_schedule", "plot_run", "run_png"]

#: Default size of ``lrmon preview``'s PNG, in pixels (width, height).
PREVIEW_SIZE = (1200, 650)
#: Default size of ``lrmon plot``'s PNG, in pixels (width, height).
PLOT_SIZE = (1400, 800)
_MAX_CURVE_POINTS = 200_000



# -- the planned schedule -------------------------------------------------------------------------------------
def _lr_at(config: Curve, steps: Any) -> np.ndarray:
    """LRs (float64, ``[len(steps), groups]``) from the curve's own vectorised code, compiled once per config."""
    steps = np.asarray(steps, np.int64)
    return np.asarray(_compiled_curve(config)(steps), np.float64).reshape(len(steps), config.num_groups)


@functools.lru_cache(maxsize=8)
def _compiled_curve(config: Curve) -> Any:
    import jax

    return jax.jit(config.lr_at)  # one XLA program instead of one per primitive (eager mode)


def planned_end(config: Curve) -> int:
    """The last step a preview draws: the last event plus 5 % (at least 100 steps).

    Raises:
      ValueError: the curve's events are endless (``StepLR``, SGDR without an end): give the steps to draw.
    """
    last = max((step for _, step in config.events()), default=0)
    return max(last + max(1, last // 20), 100)


def schedule_points(config: Curve, end: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(steps, lrs)`` of the planned curve over steps ``0 .. end`` (default: :func:`planned_end`).

    Every step when there are at most 200 000; otherwise an even grid plus every event step and phase boundary
    (a curve drawn on a screen cannot show more).
    """
    end = planned_end(config) if end is None else end
    if end + 1 <= _MAX_CURVE_POINTS:
        steps = np.arange(end + 1, dtype=np.int64)
    else:
        marks = [0, end, *(step for _, step in config.events(0, end + 1)),
                 *(start for _, start, _ in phase_spans(config, 0, end))]
        grid = np.linspace(0, end, _MAX_CURVE_POINTS // 10, dtype=np.float64).round().astype(np.int64)
        steps = np.unique(np.concatenate([grid, np.asarray([m for m in marks if 0 <= m <= end], np.int64)]))
    return steps, _lr_at(config, steps)


def phase_spans(config: Curve, low: float, high: float) -> list[tuple[int, float, float]]:
    """``(phase, start, stop)`` of each run of one phase over steps ``low..high`` (the last run is open)."""
    steps = np.arange(max(0, math.floor(low)), max(0, math.ceil(high)) + 1, dtype=np.int64)
    if not len(steps):
        return []
    phases = np.asarray(config.phase_at(steps), np.int64)
    starts = np.flatnonzero(np.diff(phases, prepend=-1))
    bounds = [*steps[starts].tolist(), math.inf]
    return [(int(phases[i]), max(float(a), low), min(float(b), high))
            for i, a, b in zip(starts.tolist(), bounds[:-1], bounds[1:]) if min(b, high) > max(a, low)]


def _format_lrs(lrs: Sequence[float]) -> str:
    return ", ".join(f"{lr:.6g}" for lr in lrs)


def describe_curve(config: Curve) -> str:
    """One line naming the schedule and its configuration."""
    groups = f" ({config.num_groups} parameter group{'s' if config.num_groups > 1 else ''})"
    if isinstance(config, CurveConfig):
        return (f"warmup + cosine schedule: base_lr {_format_lrs(config.base_lrs)}{groups}, "
                f"warmup_start_lr {config.warmup_start_lr:g}, eta_min {config.eta_min:g}")
    return f"{curve_name(config)} schedule{groups}: " + ", ".join(
        f"{k} {json.dumps(v)}" for k, v in config_fields(config).items())


def schedule_summary(config: Curve, end: int | None = None) -> list[str]:
    """The text summary ``lrmon preview`` prints: phases, LR at the key steps, events (steps ``0..end``)."""
    end = planned_end(config) if end is None else end
    events = config.events(0, end + 1)
    last_event = max((step for _, step in events), default=end)
    key_steps = [(kind, step) for kind, step in events] + [("middle", last_event // 2), ("after", end)]
    key_steps.sort(key=lambda item: item[1])  # stable: ties keep the event order
    lrs = _lr_at(config, np.asarray([step for _, step in key_steps]))
    peak = float(_lr_at(config, np.arange(end + 1)).max()) if end < _MAX_CURVE_POINTS else config.peak_lr
    lines = [describe_curve(config), "phases:"]
    names = config.phases
    width = max(len(name) for name in names) + 2
    spans = phase_spans(config, 0, end)
    for number, name in enumerate(names):
        runs = [(int(a), b) for p, a, b in spans if p == number]
        if not runs:
            lines.append(f"  {name:<{width}}none (0 steps)")
        elif runs[-1][1] >= end:
            start = runs[-1][0]
            after = _lr_at(config, np.asarray([start, end]))
            holds = (f"LR holds {_format_lrs(after[1])}" if np.array_equal(after[0], after[1]) else
                     f"LR {_format_lrs(after[0])} at step {start}, {_format_lrs(after[1])} at step {end}")
            lines.append(f"  {name:<{width}}steps {start}.. ({holds})" if len(runs) == 1 else
                         f"  {name:<{width}}{len(runs)} runs, the last from step {start} ({holds})")
        else:
            lines.append(f"  {name:<{width}}{_runs(runs)}")
    lines.append("LR:")
    rows = [(f"{label}{' (peak)' if label != 'after' and lrs[i].max() == peak else ''}, step {step}", lrs[i])
            for i, (label, step) in enumerate(key_steps) if label != "after"]
    label_width = max((len(label) for label, _ in rows), default=0)
    lines += [f"  {label:<{label_width}}  {_format_lrs(lr)}" for label, lr in rows]
    lines.append("events:")
    for kind, step in events:
        note = "  (only if training runs past the end)" if kind == "overrun" else ""
        lines.append(f"  {kind:<13} step {step}{note}")
    if not events:
        lines.append("  none")
    return lines


def _runs(runs: Sequence[tuple[int, float]]) -> str:
    length = sum(int(b) - a for a, b in runs)
    steps = f"{length} step{'s' if length > 1 else ''}"
    if len(runs) == 1:
        return f"steps {runs[0][0]}..{int(runs[0][1]) - 1} ({steps})"
    return f"{len(runs)} runs from step {runs[0][0]} to {int(runs[-1][1]) - 1} ({steps})"


def plot_schedule(config: Curve, out: str | os.PathLike[str], *, size: tuple[int, int] = PREVIEW_SIZE,
                  title: str | None = None, end: int | None = None) -> Path:
    """Draw the planned curve (steps ``0..end``) with its phases shaded and its events marked and listed."""
    steps, lrs = schedule_points(config, end)
    figure = new_figure(size)
    grid = figure.add_gridspec(1, 2, width_ratios=[3.2, 1])
    ax = figure.add_subplot(grid[0, 0])
    side = figure.add_subplot(grid[0, 1])
    last = float(steps[-1])
    spans = phase_spans(config, 0.0, last)
    shade_phases(ax, spans, config.phases)
    for g, tag in enumerate(lr_tags(config.num_groups)):
        ax.plot(steps, lrs[:, g], lw=2, label=tag, zorder=2)
    ax.set_xlim(*x_limits(0.0, last))
    ax.set_ylim(bottom=min(0.0, float(lrs.min())), top=float(lrs.max()) * 1.35 if lrs.max() > 0 else 1.0)
    events = config.events(0, int(last) + 1)
    event_lrs = _lr_at(config, np.asarray([step for _, step in events], np.int64))
    for i, (kind, step) in enumerate(events):
        ax.plot([step] * config.num_groups, event_lrs[i], "o", ms=5, color=EVENT_COLORS.get(kind, "#444444"),
                zorder=4)
    mark_events(ax, [(step, kind) for kind, step in events])
    ax.set_xlabel("step (the train step that uses the LR)")
    ax.set_ylabel("learning rate")
    ax.set_title(title or f"planned LR schedule ({curve_name(config)})")
    ax.grid(alpha=0.3)
    ax.legend(loc="center right", fontsize=9)
    side.axis("off")
    text = ["events        step  lr"] + [f"{kind:<13} {step:>5}  {_format_lrs(event_lrs[i])}"
                                          for i, (kind, step) in enumerate(events[:40])]
    text += ["", "phases"] + [f"  {config.phases[p]:<10} from step {int(a)}" for p, a, _ in spans[:20]]
    side.text(0.0, 1.0, "\n".join(text), va="top", ha="left", family="monospace", fontsize=8.5,
              transform=side.transAxes)
    return save(figure, out)


# -- logged runs ----------------------------------------------------------------------------------------------
def _phase_spans(data: RunData, low: float, high: float) -> list[tuple[int, float, float]]:
    """Phase spans from the recorded configuration, else from the ``lrmon/phase`` series."""
    if data.config is not None and not isinstance(data.config, FunctionCurve):
        return phase_spans(data.config, low, high)
    if data.phase is None or len(data.phase[0]) == 0:
        return []
    steps, values = data.phase
    spans: list[tuple[int, float, float]] = []
    start = 0
    for i in range(1, len(steps) + 1):
        if i == len(steps) or values[i] != values[start]:
            stop = float(steps[i]) if i < len(steps) else high
            spans.append((int(values[start]), float(steps[start]), stop))
            start = i
    return spans


def plot_run(data: RunData, out: str | os.PathLike[str], *, size: tuple[int, int] = PLOT_SIZE,
             title: str | None = None) -> Path:
    """LR and loss against step (phases shaded, events marked) and loss against LR; save to ``out``.

    ``title`` replaces the step panels' title and the figure's caption (by default the run's source).
    """
    return save(_draw_run(data, size, title), out)


def run_png(data: RunData, *, size: tuple[int, int] = PLOT_SIZE, title: str | None = None) -> bytes:
    """:func:`plot_run`'s figure as PNG bytes (``size`` pixels, RGBA), e.g. for a tracker's image record."""
    return png_bytes(_draw_run(data, size, title))


def _draw_run(data: RunData, size: tuple[int, int], title: str | None) -> Any:
    """The figure of :func:`plot_run`: two panels on the step axis (LR, loss; each its own y scale) and loss
    against LR. :class:`RunReadError` without any LR point."""
    if not any(len(steps) for steps, _ in data.lrs.values()):
        raise RunReadError(f"{data.source}: no LR series (tags 'lr' or 'lr/pg<i>') found")
    data = dataclasses.replace(data, lrs={tag: series for tag, series in data.lrs.items() if len(series[0])})
    figure = new_figure(size)
    grid = figure.add_gridspec(2, 2, width_ratios=[1.6, 1])
    ax_lr = figure.add_subplot(grid[0, 0])
    ax_loss = figure.add_subplot(grid[1, 0], sharex=ax_lr)
    ax_xy = figure.add_subplot(grid[:, 1])
    all_steps = np.concatenate([s for s, _ in data.lrs.values()] + ([data.loss[0]] if data.loss else []))
    low, high = float(all_steps.min()), float(all_steps.max())
    if high <= low:
        high = low + 1
    spans = _phase_spans(data, low, high)
    event_marks = [(step, kind) for step, kind, _ in data.events if low <= step <= high]
    names = PHASES if data.config is None else data.config.phases
    for ax, with_labels in ((ax_lr, True), (ax_loss, False)):
        shade_phases(ax, spans, names, labels=with_labels)
        ax.set_xlim(*x_limits(low, high))
        ax.grid(alpha=0.3)
    for tag, (steps, values) in data.lrs.items():
        ax_lr.plot(steps, values, lw=1.6, label=tag, zorder=2)
    ax_lr.set_ylabel("learning rate")
    ax_lr.set_ylim(bottom=min(0.0, min(float(v.min()) for _, v in data.lrs.values() if len(v))),
                   top=max(float(v.max()) for _, v in data.lrs.values() if len(v)) * 1.35 or 1.0)
    mark_events(ax_lr, event_marks)
    ax_lr.legend(loc="center right", fontsize=8)
    ax_lr.set_title(title or "learning rate and loss against step")
    mark_events(ax_loss, event_marks, label_text=False)
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel(data.loss_tag)
    lr_tag, (lr_steps, lr_values) = next(iter(data.lrs.items()))
    if data.loss is not None and len(data.loss[0]):
        loss_steps, loss_values = data.loss
        ax_loss.plot(loss_steps, loss_values, lw=1.2, color="#d62728", zorder=2, label=data.loss_tag)
        if _log_scale_fits(loss_values):
            ax_loss.set_yscale("log")
        common, lr_index, loss_index = np.intersect1d(lr_steps, loss_steps, return_indices=True)
        xs, ys = lr_values[lr_index], loss_values[loss_index]
        ax_xy.plot(xs, ys, lw=0.6, color="#999999", zorder=1)
        phases = _phases_of_steps(spans, common)
        for phase in sorted(set(phases.tolist())):
            chosen = phases == phase
            ax_xy.scatter(xs[chosen], ys[chosen], s=9, color=darker(PHASE_COLORS.get(phase, "#888888")),
                          label=names[phase] if 0 <= phase < len(names) else "unknown", zorder=2)
        if len(common):
            ax_xy.annotate("start", (xs[0], ys[0]), fontsize=8, xytext=(4, 4), textcoords="offset points")
            ax_xy.annotate("last", (xs[-1], ys[-1]), fontsize=8, xytext=(4, -10), textcoords="offset points")
        if _log_scale_fits(ys):
            ax_xy.set_yscale("log")
        if spans:
            ax_xy.legend(fontsize=8, title="phase", title_fontsize=8)
    else:
        for ax in (ax_loss, ax_xy):
            ax.text(0.5, 0.5, f"no '{data.loss_tag}' series in this run", ha="center", va="center",
                    transform=ax.transAxes, color="#666666")
    ax_xy.set_xlabel(lr_tag)
    ax_xy.set_ylabel(data.loss_tag)
    ax_xy.set_title(f"{data.loss_tag} against {lr_tag}")
    ax_xy.grid(alpha=0.3)
    if title is None:
        figure.suptitle(data.source, fontsize=9, color="#555555")
    return figure


def _phases_of_steps(spans: Sequence[tuple[int, float, float]], steps: np.ndarray) -> np.ndarray:
    phases = np.full(len(steps), -1, np.int64)
    for phase, start, stop in spans:
        phases[(steps >= start) & (steps < stop)] = phase
    if spans:  # the last span includes its end
        phase, start, stop = spans[-1]
        phases[(steps >= start) & (steps <= stop)] = phase
    return phases


def _log_scale_fits(values: np.ndarray) -> bool:
    finite = values[np.isfinite(values)]
    return bool(len(finite)) and bool(finite.min() > 0) and finite.max() / finite.min() > 20
