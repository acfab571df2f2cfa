"""Figures for the ``lrmon`` command: the planned schedule (``lrmon preview``) and a logged run (``lrmon plot``;
also as PNG bytes, :func:`run_png`, the image the TensorBoard and W&B sinks record).

matplotlib (``pip install 'lrmon[plot]'``) is imported inside the drawing functions only, and used headless: the
figures are ``matplotlib.figure.Figure`` objects rendered by the Agg canvas, never ``pyplot``, so no display,
GUI backend or global pyplot state is involved. PNGs have exactly the requested size in pixels.

Runs are read from

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
import io
import json
import math
import os
import re
import sys
import types
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from lrmon.tags import CONFIG_TAG, EVENT_ROW_PREFIX, EVENT_TEXT_PREFIX, PHASE_NAMES, PHASE_TAG, is_lr_tag, lr_tag_order
from lrmon.curve import ConfigFields, CurveConfig

__all__ = [
    "RunData", "RunReadError", "PREVIEW_SIZE", "PLOT_SIZE", "schedule_points", "schedule_summary",
    "plot_schedule", "find_run", "read_run", "read_tensorboard_run", "read_wandb_run", "plot_run", "run_png",
    "config_from_mapping",
]

#: Default size of ``lrmon preview``'s PNG, in pixels (width, height).
PREVIEW_SIZE = (1200, 650)
#: Default size of ``lrmon plot``'s PNG, in pixels (width, height).
PLOT_SIZE = (1400, 800)
#: Phase number -> label.
_PHASE_COLORS = {0: "#f6c85f", 1: "#9dd9f3", 2: "#d0d0d0"}
_EVENT_COLORS = {"warmup_start": "#b35806", "warmup_end": "#e08214", "cosine_start": "#2166ac", "end": "#542788",
                 "overrun": "#b2182b", "resume": "#1b7837", "thinned": "#777777"}
_DPI = 100
_MAX_CURVE_POINTS = 200_000
_X_MARGIN = 0.01  # of the step range, on both sides: event lines at the first and last step stay visible


class RunReadError(Exception):
    """A run directory that cannot be read or plotted; the message says why."""


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


def _figure(size: tuple[int, int]) -> Any:
    """A headless matplotlib Figure of ``size`` pixels (Agg canvas; no pyplot)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError("lrmon's plots need matplotlib: pip install 'lrmon[plot]'") from error
    width, height = size
    figure = Figure(figsize=(width / _DPI, height / _DPI), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Any, out: str | os.PathLike[str]) -> Path:
    """Write ``figure`` to ``out`` in the format its suffix names (PNG without one); returns ``out``."""
    out = Path(out)
    if out.parent and not out.parent.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=_DPI, format=out.suffix.lstrip(".").lower() or "png")
    return out


def _png_bytes(figure: Any) -> bytes:
    """``figure`` encoded as PNG by its Agg canvas (RGBA, the figure's size in pixels)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, dpi=_DPI, format="png")
    return buffer.getvalue()


def _x_limits(low: float, high: float) -> tuple[float, float]:
    """The x range ``[low, high]`` widened by a small margin on both sides (at least half a step)."""
    pad = max(0.5, _X_MARGIN * (high - low))
    return low - pad, high + pad


def _shade_phases(ax: Any, spans: Sequence[tuple[int, float, float]], labels: bool = True) -> None:
    seen: set[int] = set()
    for phase, start, stop in spans:
        label = PHASE_NAMES.get(phase, str(phase)) if labels and phase not in seen else None
        seen.add(phase)
        ax.axvspan(start, stop, color=_PHASE_COLORS.get(phase, "#eeeeee"), alpha=0.35, lw=0, label=label, zorder=0)


def _mark_events(ax: Any, events: Sequence[tuple[int, str]], label_text: bool = True) -> None:
    from matplotlib.transforms import blended_transform_factory

    transform = blended_transform_factory(ax.transData, ax.transAxes)
    last_step, level = None, 0
    for step, kind in sorted(events):
        color = _EVENT_COLORS.get(kind, "#444444")
        ax.axvline(step, color=color, lw=1.0, ls="--", zorder=1)
        if not label_text:
            continue
        level = level + 1 if last_step is not None and step - last_step <= _near(ax) else 0
        last_step = step
        low, high = ax.get_xlim()
        right_edge = step > low + 0.82 * (high - low)
        ax.text(step, 0.97 - 0.07 * (level % 4), f" {kind}@{step} " if right_edge else f" {kind}@{step}",
                transform=transform, color=color, fontsize=8, va="top", ha="right" if right_edge else "left",
                zorder=3, bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.75})


def _near(ax: Any) -> float:
    low, high = ax.get_xlim()
    return 0.12 * (high - low)


def _config_spans(config: CurveConfig, low: float, high: float) -> list[tuple[int, float, float]]:
    W, T = config.warmup_steps, config.total_steps
    spans = [(0, 0.0, float(W)), (1, float(W), float(T)), (2, float(T), math.inf)]
    return [(p, max(a, low), min(b, high)) for p, a, b in spans if min(b, high) > max(a, low)]


def plot_schedule(config: CurveConfig, out: str | os.PathLike[str], *, size: tuple[int, int] = PREVIEW_SIZE,
                  title: str | None = None) -> Path:
    """Draw the planned curve with its phases shaded and its events marked and listed; save it to ``out``."""
    steps, lrs = schedule_points(config)
    figure = _figure(size)
    grid = figure.add_gridspec(1, 2, width_ratios=[3.2, 1])
    ax = figure.add_subplot(grid[0, 0])
    side = figure.add_subplot(grid[0, 1])
    end = float(steps[-1])
    _shade_phases(ax, _config_spans(config, 0.0, end))
    for g in range(config.num_groups):
        label = "lr" if config.num_groups == 1 else f"lr/pg{g}"
        ax.plot(steps, lrs[:, g], lw=2, label=label, zorder=2)
    ax.set_xlim(*_x_limits(0.0, end))
    ax.set_ylim(bottom=min(0.0, float(lrs.min())), top=float(lrs.max()) * 1.35 if lrs.max() > 0 else 1.0)
    events = config.event_steps()
    event_lrs = _lr_at(config, np.asarray(list(events.values())))
    for i, (kind, step) in enumerate(events.items()):
        ax.plot([step] * config.num_groups, event_lrs[i], "o", ms=5, color=_EVENT_COLORS.get(kind, "#444444"),
                zorder=4)
    _mark_events(ax, [(step, kind) for kind, step in events.items()])
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
    return _save(figure, out)


# -- logged runs ----------------------------------------------------------------------------------------------
@dataclasses.dataclass
class RunData:
    """A logged run, whatever tracker it came from.

    ``lrs`` maps each LR tag (``lr`` or ``lr/pg<i>``) to ``(steps, values)``; ``loss`` is ``(steps, values)`` or
    ``None``; ``phase`` the ``lrmon/phase`` series or ``None``; ``events`` ``(step, kind, detail)`` in step order;
    ``config`` the schedule configuration the run recorded, if any; ``source`` says what was read.
    """

    source: str
    lrs: dict[str, tuple[np.ndarray, np.ndarray]]
    loss: tuple[np.ndarray, np.ndarray] | None
    phase: tuple[np.ndarray, np.ndarray] | None
    events: list[tuple[int, str, str]]
    config: CurveConfig | None
    loss_tag: str = "loss"




def _has_event_files(directory: Path) -> bool:
    return any(p.name.startswith("events.out.tfevents.") and p.is_file() for p in directory.iterdir())


def _wandb_run_dirs(directory: Path) -> list[Path]:
    """Offline run directories (holding ``run-*.wandb``) at ``directory``, in it, or in its ``wandb`` folder."""
    if any(directory.glob("run-*.wandb")):
        return [directory]
    for base in (directory, directory / "wandb"):
        if not base.is_dir():
            continue
        latest = base / "latest-run"
        if latest.is_dir() and any(latest.glob("run-*.wandb")):
            return [latest.resolve()]
        runs = sorted(p for p in base.iterdir() if p.is_dir() and any(p.glob("run-*.wandb")))
        if runs:
            return runs
    return []


def find_run(path: str | os.PathLike[str]) -> tuple[str, Path]:
    """``("tensorboard" | "wandb", directory)`` for a run path; :class:`RunReadError` if it is neither."""
    directory = Path(path)
    if not directory.exists():
        raise RunReadError(f"{directory}: no such file or directory")
    if directory.is_file():
        if directory.suffix == ".wandb":
            return "wandb", directory.parent
        if directory.name.startswith("events.out.tfevents."):
            return "tensorboard", directory.parent
        raise RunReadError(f"{directory}: not a TensorBoard logdir or a W&B offline run directory")
    if _has_event_files(directory):
        return "tensorboard", directory
    wandb_runs = _wandb_run_dirs(directory)
    if len(wandb_runs) == 1:
        return "wandb", wandb_runs[0]
    if len(wandb_runs) > 1:
        names = ", ".join(str(p) for p in wandb_runs[:5])
        raise RunReadError(f"{directory} holds {len(wandb_runs)} W&B runs; pass one of them: {names}")
    logdirs = sorted({p.parent for p in directory.rglob("events.out.tfevents.*") if p.is_file()})
    if len(logdirs) == 1:
        return "tensorboard", logdirs[0]
    if len(logdirs) > 1:
        names = ", ".join(str(p) for p in logdirs[:5])
        raise RunReadError(f"{directory} holds {len(logdirs)} TensorBoard runs; pass one of them: {names}")
    raise RunReadError(f"{directory}: no TensorBoard event files and no W&B offline run (run-*.wandb) found")


def read_run(path: str | os.PathLike[str], *, loss_tag: str = "loss") -> RunData:
    """Read a TensorBoard logdir or a W&B offline run directory (see :func:`find_run`)."""
    kind, directory = find_run(path)
    if kind == "tensorboard":
        return read_tensorboard_run(directory, loss_tag=loss_tag)
    return read_wandb_run(directory, loss_tag=loss_tag)


def _prefer_tensorboard_stub() -> None:
    """Let TensorBoard's readers use their TensorFlow-free stub when TensorFlow is not loaded yet.

    ``EventAccumulator`` otherwise imports TensorFlow on first use when it is installed (~10 s), only to read
    records the stub reads as well. Done only where the process has not imported TensorFlow or used
    ``tensorboard.compat.tf`` yet; call it in a process of your own (the ``lrmon`` command does).
    """
    if "tensorflow" in sys.modules or "tensorboard.compat.notf" in sys.modules:
        return
    sys.modules["tensorboard.compat.notf"] = types.ModuleType("tensorboard.compat.notf")


def read_tensorboard_run(logdir: str | os.PathLike[str], *, loss_tag: str = "loss") -> RunData:
    """Read lrmon's records from a TensorBoard logdir (event files directly in it)."""
    try:
        from tensorboard.backend.event_processing.event_accumulator import (
            STORE_EVERYTHING_SIZE_GUIDANCE,
            EventAccumulator,
        )
    except ImportError as error:
        raise ImportError("reading TensorBoard runs needs tensorboard: pip install 'lrmon[tensorboard]'") from error
    accumulator = EventAccumulator(str(logdir), size_guidance=STORE_EVERYTHING_SIZE_GUIDANCE)
    try:
        accumulator.Reload()
    except Exception as error:  # noqa: BLE001 - corrupted files surface as many error types
        raise RunReadError(f"{logdir}: cannot read the TensorBoard event files: {error}") from error
    tags = accumulator.Tags()
    scalar_tags = set(tags.get("scalars", []))

    def series(tag: str) -> tuple[np.ndarray, np.ndarray]:
        records = accumulator.Scalars(tag)
        return (np.asarray([r.step for r in records], np.int64), np.asarray([r.value for r in records], np.float64))

    lrs = {tag: series(tag) for tag in sorted((t for t in scalar_tags if is_lr_tag(t)), key=lr_tag_order)}
    events: list[tuple[int, str, str]] = []
    config: CurveConfig | None = None
    for tag in tags.get("tensors", []):
        if tag.startswith(EVENT_TEXT_PREFIX):
            kind = tag[len(EVENT_TEXT_PREFIX):]
            for record in accumulator.Tensors(tag):
                values = record.tensor_proto.string_val
                detail = values[0].decode("utf-8", "replace") if values else kind
                events.append((int(record.step), kind, detail))
        elif tag == CONFIG_TAG:
            records = accumulator.Tensors(tag)
            if records and records[-1].tensor_proto.string_val:
                config = _config_from_text(records[-1].tensor_proto.string_val[0].decode("utf-8", "replace"))
    events = _dedupe_events(events)
    return RunData(
        source=f"TensorBoard logdir {logdir}",
        lrs=lrs,
        loss=series(loss_tag) if loss_tag in scalar_tags else None,
        phase=series(PHASE_TAG) if PHASE_TAG in scalar_tags else None,
        events=events,
        config=config,
        loss_tag=loss_tag,
    )


def _config_from_text(text: str) -> CurveConfig | None:
    text = text.strip().removeprefix("```json").removesuffix("```").strip()
    try:
        return config_from_mapping(json.loads(text))
    except ValueError:
        return None


def config_from_mapping(data: Any) -> CurveConfig | None:
    """The schedule configuration in a run's recorded configuration (the monitor's flat dict, W&B's ``{"value":
    ...}`` form, or a clu writer's flattened ``base_lrs/<i>`` keys), or ``None`` if it holds none."""
    if not isinstance(data, Mapping):
        return None
    if "value" in data and isinstance(data["value"], Mapping) and len(data) <= 2:  # W&B's {"value": ...} form
        data = data["value"]
    if "base_lrs" not in data:  # flattened by a clu writer: base_lrs/0, base_lrs/1, ...
        flat = sorted((int(key.split("/", 1)[1]), value) for key, value in data.items()
                      if re.fullmatch(r"base_lrs/\d+", str(key)))
        data = {**data, "base_lrs": [value for _, value in flat]} if flat else data
    try:
        return CurveConfig.from_dict({name: data[name] for name in ConfigFields.__struct_fields__ if name in data})
    except ValueError:
        return None


def _dedupe_events(events: list[tuple[int, str, str]]) -> list[tuple[int, str, str]]:
    seen: dict[tuple[int, str], str] = {}
    for step, kind, detail in events:
        seen[(step, kind)] = detail
    return sorted(((step, kind, detail) for (step, kind), detail in seen.items()), key=lambda e: (e[0], e[1]))


def read_wandb_run(run_dir: str | os.PathLike[str], *, loss_tag: str = "loss") -> RunData:
    """Read lrmon's records from a W&B offline run directory (``offline-run-...``)."""
    try:
        from lrmon.integrations.wandb import STEP_METRIC, read_offline_run
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("reading W&B runs needs wandb: pip install 'lrmon[wandb]'") from error
    try:
        run = read_offline_run(run_dir)
    except (OSError, RuntimeError, ValueError) as error:
        raise RunReadError(f"{run_dir}: cannot read the W&B run: {error}") from error
    columns: dict[str, dict[int, float]] = {}
    events: list[tuple[int, str, str]] = []
    for row in run["history"]:
        step = row.get(STEP_METRIC)
        if not isinstance(step, (int, float)) or isinstance(step, bool):
            continue
        step = int(step)
        for key, value in row.items():
            if key.startswith(EVENT_ROW_PREFIX):
                events.append((step, key[len(EVENT_ROW_PREFIX):], key[len(EVENT_ROW_PREFIX):]))
            elif isinstance(value, (int, float)) and not isinstance(value, bool) and not key.startswith("_"):
                columns.setdefault(key, {})[step] = float(value)  # a resumed run's later row wins
    table = run.get("tables", {}).get("lrmon/events")
    if table:
        details = {}
        cols = table["columns"]
        for data in table["data"]:
            entry = dict(zip(cols, data))
            details[(int(entry["step"]), entry["kind"])] = str(entry.get("detail", entry["kind"]))
        events = [(step, kind, details.get((step, kind), detail)) for step, kind, detail in events]

    def series(key: str) -> tuple[np.ndarray, np.ndarray]:
        points = sorted(columns[key].items())
        return np.asarray([s for s, _ in points], np.int64), np.asarray([v for _, v in points], np.float64)

    lr_tags = sorted((key for key in columns if is_lr_tag(key)), key=lr_tag_order)
    return RunData(
        source=f"W&B offline run {run_dir}",
        lrs={tag: series(tag) for tag in lr_tags},
        loss=series(loss_tag) if loss_tag in columns else None,
        phase=series(PHASE_TAG) if PHASE_TAG in columns else None,
        events=_dedupe_events(events),
        config=config_from_mapping(run.get("config", {}).get("lrmon")),
        loss_tag=loss_tag,
    )


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
    return _save(_draw_run(data, size, title), out)


def run_png(data: RunData, *, size: tuple[int, int] = PLOT_SIZE, title: str | None = None) -> bytes:
    """:func:`plot_run`'s figure as PNG bytes (``size`` pixels, RGBA), e.g. for a tracker's image record."""
    return _png_bytes(_draw_run(data, size, title))


def _draw_run(data: RunData, size: tuple[int, int], title: str | None) -> Any:
    """The figure of :func:`plot_run`: two panels on the step axis (LR, loss; each its own y scale) and loss
    against LR. :class:`RunReadError` without any LR point."""
    if not any(len(steps) for steps, _ in data.lrs.values()):
        raise RunReadError(f"{data.source}: no LR series (tags 'lr' or 'lr/pg<i>') found")
    data = dataclasses.replace(data, lrs={tag: series for tag, series in data.lrs.items() if len(series[0])})
    figure = _figure(size)
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
        _shade_phases(ax, spans, labels=with_labels)
        ax.set_xlim(*_x_limits(low, high))
        ax.grid(alpha=0.3)
    for tag, (steps, values) in data.lrs.items():
        ax_lr.plot(steps, values, lw=1.6, label=tag, zorder=2)
    ax_lr.set_ylabel("learning rate")
    ax_lr.set_ylim(bottom=min(0.0, min(float(v.min()) for _, v in data.lrs.values() if len(v))),
                   top=max(float(v.max()) for _, v in data.lrs.values() if len(v)) * 1.35 or 1.0)
    _mark_events(ax_lr, event_marks)
    ax_lr.legend(loc="center right", fontsize=8)
    ax_lr.set_title(title or "learning rate and loss against step")
    _mark_events(ax_loss, event_marks, label_text=False)
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
            ax_xy.scatter(xs[chosen], ys[chosen], s=9, color=_darker(_PHASE_COLORS.get(phase, "#888888")),
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


def _darker(color: str) -> Any:
    from matplotlib.colors import to_rgb

    return tuple(0.65 * c for c in to_rgb(color))
