"""Drawing primitives shared by lrmon's figures: a headless matplotlib figure (Agg canvas, no pyplot), saving
and PNG encoding, phase shading and event lines. matplotlib is imported inside these functions only."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any, Sequence

from lrmon._optional import optional_import

__all__ = ["PHASE_COLORS", "EVENT_COLORS", "new_figure", "save", "png_bytes", "x_limits", "shade_phases", "mark_events", "darker"]

#: Phase number -> shading colour; event kind -> line colour.
PHASE_COLORS = {0: "#f6c85f", 1: "#9dd9f3", 2: "#d0d0d0", 3: "#b8e186", 4: "#fdb863", 5: "#c2a5cf"}
EVENT_COLORS = {"warmup_start": "#b35806", "warmup_end": "#e08214", "cosine_start": "#2166ac", "end": "#542788",
                 "overrun": "#b2182b", "resume": "#1b7837", "thinned": "#777777"}
_DPI = 100
_DPI = 100
_X_MARGIN = 0.01  # of the step range, on both sides: event lines at the first and last step stay visible


def new_figure(size: tuple[int, int]) -> Any:
    """A headless matplotlib Figure of ``size`` pixels (Agg canvas; no pyplot)."""
    backend = optional_import("matplotlib.backends.backend_agg", needed_by="lrmon's plots", extra="plot")
    figure_module = optional_import("matplotlib.figure", needed_by="lrmon's plots", extra="plot")
    width, height = size
    figure = figure_module.Figure(figsize=(width / _DPI, height / _DPI), dpi=_DPI, layout="constrained")
    backend.FigureCanvasAgg(figure)
    return figure


def save(figure: Any, out: str | os.PathLike[str]) -> Path:
    """Write ``figure`` to ``out`` in the format its suffix names (PNG without one); returns ``out``."""
    out = Path(out)
    if out.parent and not out.parent.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=_DPI, format=out.suffix.lstrip(".").lower() or "png")
    return out


def png_bytes(figure: Any) -> bytes:
    """``figure`` encoded as PNG by its Agg canvas (RGBA, the figure's size in pixels)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, dpi=_DPI, format="png")
    return buffer.getvalue()


def x_limits(low: float, high: float) -> tuple[float, float]:
    """The x range ``[low, high]`` widened by a small margin on both sides (at least half a step)."""
    pad = max(0.5, _X_MARGIN * (high - low))
    return low - pad, high + pad


def shade_phases(ax: Any, spans: Sequence[tuple[int, float, float]], names: Sequence[str],
                 labels: bool = True) -> None:
    """Shade each ``(phase, start, stop)`` span; ``names[phase]`` labels the first span of each phase."""
    seen: set[int] = set()
    for phase, start, stop in spans:
        label = (names[phase] if 0 <= phase < len(names) else str(phase)) if labels and phase not in seen else None
        seen.add(phase)
        ax.axvspan(start, stop, color=PHASE_COLORS.get(phase, "#eeeeee"), alpha=0.35, lw=0, label=label, zorder=0)


def mark_events(ax: Any, events: Sequence[tuple[int, str]], label_text: bool = True) -> None:
    from matplotlib.transforms import blended_transform_factory

    transform = blended_transform_factory(ax.transData, ax.transAxes)
    last_step, level = None, 0
    for step, kind in sorted(events):
        color = EVENT_COLORS.get(kind, "#444444")
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


def darker(color: str) -> Any:
    from matplotlib.colors import to_rgb

    return tuple(0.65 * c for c in to_rgb(color))
