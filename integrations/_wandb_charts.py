"""The row a :class:`~lrmon.integrations.wandb.WandbSink` logs at close: the events table, the LR-vs-loss table
and line-series panel, and the ``lrmon plot`` figure as an image (those that have data)."""

from __future__ import annotations

import io
from typing import Any, Sequence

from lrmon.integrations._figure import RunFigure
from lrmon.integrations._wandb_read import STEP_METRIC
from lrmon.integrations._wandb_runs import wandb_module

__all__ = ["final_row", "FIGURE_KEY"]

#: Key of the LR-vs-loss figure (a ``wandb.Image``) in the final row.
FIGURE_KEY = "lrmon/lr_vs_loss_figure"


def final_row(figure: RunFigure, run_id: str) -> dict[str, Any]:
    """The close row: events table, LR-vs-loss table, line-series panel and figure (those that have data)."""
    wandb = wandb_module()
    row: dict[str, Any] = {}
    lr_tags, loss_key, events = figure.lr_tags, figure.loss_tag, figure.events
    if events:
        columns = ["step", "kind", *lr_tags, "detail"]
        data = [[event.step, event.kind, *_pad(event.lrs, len(lr_tags)), event.detail] for event in events]
        row["lrmon/events"] = wandb.Table(columns=columns, data=data)
    keys = [*lr_tags, loss_key]
    series = {key: kept for key in keys if (kept := figure.points.series(key)) is not None}
    if series:
        values = {key: dict(zip(steps.tolist(), ys.tolist())) for key, (steps, ys) in series.items()}
        row["lrmon/lr_loss"] = wandb.Table(
            columns=[STEP_METRIC, *keys],
            data=[[step, *(values.get(key, {}).get(step) for key in keys)]
                  for step in sorted(set().union(*values.values()))],
        )
        row["lrmon/lr_vs_loss"] = wandb.plot.line_series(
            xs=[list(by_step) for by_step in values.values()],
            ys=[list(by_step.values()) for by_step in values.values()],
            keys=list(values), title="LR vs loss", xname=STEP_METRIC,
        )
    png = figure.png(f"W&B run {run_id}")
    if png is not None:
        from PIL import Image  # matplotlib's own dependency: present whenever a figure was drawn

        row[FIGURE_KEY] = wandb.Image(Image.open(io.BytesIO(png)), caption="LR vs loss")
    return row


def _pad(values: Sequence[float], length: int) -> list[float | None]:
    return [float(v) for v in values[:length]] + [None] * max(0, length - len(values))
