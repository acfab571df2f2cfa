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
import math
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from lrmon.tags import PHASE_NAMES
from lrmon.curve import CurveConfig
from lrmon._drawing import EVENT_COLORS, PHASE_COLORS, darker, mark_events, new_figure, png_bytes, save, shade_phases, x_limits
from lrmon.runs import RunData, RunReadError

__all__ = ["PREVIEW_SIZE", "PLOT_SIZE", "schedule_points", "schedule_summary", "plot_schedule", "plot_run", "run_png"]

#: Default size of ``lrmon preview``'s PNG, in pixels (width, height).
PREVIEW_SIZE = (1200, 650)
#: Default size of ``lrmon plot``'s PNG, in pixels (width, height).
PLOT_SIZE = (1400, 800)
_MAX_CURVE_POINTS = 200_000



# -- the planned schedule -------------------------------------------------------------------------------------
def _lr_at(config: CurveConfig, steps: Any) -> np.ndarray:
    """LRs (float64, ``[len(steps), groups]``) from the curve's own vectorised code, compiled once per config."""
    steps = np.asarray(steps, np.int64)
    return np.asarray(_compiled_curve(config)(steps), np.float64).reshape(len(steps), config.num_groups)


@functools.lru_cache(maxsize=8)
def _compiled_curve(config: CurveConfig) -> Any:
    import jax

    return jax.jit(config.lr_at)  # one XLA program instead of one per primitive (eager mode)


def schedule_points(config: CurveConfig, end: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(steps, lrs)`` of the planned curve over steps ``0 .. end`` (default: ``total_steps`` plus 5 %).

    Every step when there are at most 200 000; otherwise an even grid plus every event step and phase boundary
    (a curve drawn on a screen cannot show more).
    """
    if end is None:
        end = config.total_steps + max(1, config.total_steps // 20)
    if end + 1 <= _MAX_CURVE_POINTS:
        steps = np.arange(end + 1, dtype=np.int64)
    else:
        marks = [0, end, *config.event_steps().values(), config.warmup_steps, config.total_steps]
        grid = np.linspace(0, end, _MAX_CURVE_POINTS // 10, dtype=np.float64).round().astype(np.int64)
        steps = np.unique(np.concatenate([grid, np.asarray([m for m in marks if 0 <= m <= end], np.int64)]))
    return steps, _lr_at(config, steps)


def _format_lrs(lrs: Sequence[float]) -> str:
    return ", ".join(f"{lr:.6g}" for lr in lrs)


def schedule_summary(config: CurveConfig) -> list[str]:
    """The text summary ``lrmon preview`` prints: phases, LR at the key steps, events."""
    W, T = config.warmup_steps, config.total_steps
    groups = config.num_groups
    # the LR at each event's step, named as the event is (the peak is the first step after warmup), and mid-cosine
    key_steps = [(kind + (" (peak)" if step == W else ""), step) for kind, step in config.event_steps().items()]
    key_steps += [("middle", T // 2), ("after", T + 1)]
    key_steps.sort(key=lambda item: item[1])  # stable: ties keep the event order
    lrs = _lr_at(config, np.asarray([step for _, step in key_steps]))
    after_end = (f"LR holds {_format_lrs(lrs[-1])}" if np.array_equal(lrs[-1], lrs[-2]) else
                 f"LR {_format_lrs(lrs[-2])} at step {T}, then {_format_lrs(lrs[-1])}")
    key_steps, lrs = key_steps[:-1], lrs[:-1]
    lines = [
        f"warmup + cosine schedule: base_lr {_format_lrs(config.base_lrs)}"
        f" ({groups} parameter group{'s' if groups > 1 else ''}), warmup_start_lr {config.warmup_start_lr:g},"
        f" eta_min {config.eta_min:g}",
        "phases:",
        f"  warmup    {_span(0, W)}",
        f"  cosine    {_span(W, T)}",
        f"  past end  steps {T}.. ({after_end})",
        "LR:",
    ]
    labels = [f"{label}, step {step}" for label, step in key_steps]
    width = max(len(label) for label in labels)
    lines += [f"  {label:<{width}}  {_format_lrs(lrs[i])}" for i, label in enumerate(labels)]
    lines.append("events:")
    for kind, step in config.event_steps().items():
        note = "  (only if training runs past total_steps)" if kind == "overrun" else ""
        lines.append(f"  {kind:<13} step {step}{note}")
    return lines


def _span(start: int, stop: int) -> str:
    length = stop - start
    if length <= 0:
        return "none (0 steps)"
    return f"steps {start}..{stop - 1} ({length} step{'s' if length > 1 else ''})"


def _config_spans(config: CurveConfig, low: float, high: float) -> list[tuple[int, float, float]]:
    W, T = config.warmup_steps, config.total_steps
    spans = [(0, 0.0, float(W)), (1, float(W), float(T)), (2, float(T), math.inf)]
    return [(p, max(a, low), min(b, high)) for p, a, b in spans if min(b, high) > max(a, low)]


def plot_schedule(config: CurveConfig, out: str | os.PathLike[str], *, size: tuple[int, int] = PREVIEW_SIZE,
                  title: str | None = None) -> Path:
    """Draw the planned curve with its phases shaded and its events marked and listed; save it to ``out``."""
    steps, lrs = schedule_points(config)
    figure = new_figure(size)
    grid = figure.add_gridspec(1, 2, width_ratios=[3.2, 1])
    ax = figure.add_subplot(grid[0, 0])
    side = figure.add_subplot(grid[0, 1])
    end = float(steps[-1])
    shade_phases(ax, _config_spans(config, 0.0, end))
    for g in range(config.num_groups):
        label = "lr" if config.num_groups == 1 else f"lr/pg{g}"
        ax.plot(steps, lrs[:, g], lw=2, label=label, zorder=2)
    ax.set_xlim(*x_limits(0.0, end))
    ax.set_ylim(bottom=min(0.0, float(lrs.min())), top=float(lrs.max()) * 1.35 if lrs.max() > 0 else 1.0)
    events = config.event_steps()
    event_lrs = _lr_at(config, np.asarray(list(events.values())))
    for i, (kind, step) in enumerate(events.items()):
        ax.plot([step] * config.num_groups, event_lrs[i], "o", ms=5, color=EVENT_COLORS.get(kind, "#444444"),
                zorder=4)
    mark_events(ax, [(step, kind) for kind, step in events.items()])
    ax.set_xlabel("step (the train step that uses the LR)")
    ax.set_ylabel("learning rate")
    ax.set_title(title or "planned LR schedule (warmup + cosine)")
    ax.grid(alpha=0.3)
    ax.legend(loc="center right", fontsize=9)
    side.axis("off")
    text = ["events        step  lr"] + [f"{kind:<13} {step:>5}  {_format_lrs(event_lrs[i])}"
                                          for i, (kind, step) in enumerate(events.items())]
    text += ["", "phases", f"  warmup    {config.warmup_steps} steps",
             f"  cosine    {config.total_steps - config.warmup_steps} steps",
             f"  past end  from step {config.total_steps}", "",
             f"base_lr {_format_lrs(config.base_lrs)}", f"warmup_start_lr {config.warmup_start_lr:g}",
             f"eta_min {config.eta_min:g}"]
    side.text(0.0, 1.0, "\n".join(text), va="top", ha="left", family="monospace", fontsize=8.5,
              transform=side.transAxes)
    return save(figure, out)


# -- logged runs ----------------------------------------------------------------------------------------------
def _phase_spans(data: RunData, low: float, high: float) -> list[tuple[int, float, float]]:
    """Phase spans from the recorded configuration, else from the ``lrmon/phase`` series."""
    if data.config is not None:
        return _config_spans(data.config, low, high)
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
    for ax, with_labels in ((ax_lr, True), (ax_loss, False)):
        shade_phases(ax, spans, labels=with_labels)
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
                          label=PHASE_NAMES.get(phase, "unknown"), zorder=2)
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
