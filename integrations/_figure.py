"""The "LR vs loss" figure the tracker sinks draw from the records they receive (what ``lrmon plot`` draws).

:class:`RunFigure` keeps what a sink saw of the run: the LR tags', the loss's and ``lrmon/phase``'s points (thinned
by :class:`lrmon.thinning.Thinned`, so memory stays bounded however long the run), the events and the schedule
configuration, and renders them with :func:`lrmon.plotting.run_png`. matplotlib is imported only when a figure is drawn; without it
the figure is skipped, with one warning. Nothing here imports a tracker library.
"""

from __future__ import annotations

import warnings
from typing import Any, Mapping, Sequence

from lrmon.tags import PHASE_TAG
from lrmon.sinks import Event, RunInfo, ScalarBatch
from lrmon.thinning import Thinned

__all__ = ["RunFigure", "FIGURE_SIZE"]

#: The figure's (width, height) in pixels: fits a tracker's page at its actual size.
FIGURE_SIZE = (1200, 700)


class RunFigure:
    """What a sink saw of a run, for the LR-vs-loss figure: call :meth:`open`, :meth:`set_config`,
    :meth:`add_scalars` and :meth:`add_events` from the sink's methods, and :meth:`png` where it draws.

    Args:
        loss_tag: the metric drawn in the loss panel.
        cap: at most this many steps are kept (every k-th step, k doubling as needed).
    """

    def __init__(self, loss_tag: str = "loss", cap: int = 2000) -> None:
        self.loss_tag = loss_tag
        self.points = Thinned(cap)
        self.events: list[Event] = []
        self.lr_tags: tuple[str, ...] = ()
        self.last_step: int | None = None
        self._config: Mapping[str, Any] = {}
        self._warned = False

    def open(self, info: RunInfo) -> None:
        """Take the LR tags and the configuration from the sink's ``open(info)``."""
        self.lr_tags = tuple(info.lr_tags)
        self.set_config(info.config)

    def set_config(self, config: Mapping[str, Any]) -> None:
        """The run's configuration (``write_config``); the schedule in it gives the phases."""
        self._config = dict(config)

    def add_scalars(self, batch: ScalarBatch) -> None:
        """Keep the batch's LR, loss and phase points; :attr:`last_step` follows every tag's last step."""
        self.points.add({tag: series for tag, series in batch.items()
                         if tag in self.lr_tags or tag in (self.loss_tag, PHASE_TAG)})
        for series in batch.values():
            if len(series.steps):
                self._seen(int(series.steps[-1]))

    def add_events(self, events: Sequence[Event]) -> None:
        """Keep the events (they are few): the figure draws a line at each."""
        self.events.extend(events)
        for event in events:
            self._seen(event.step)

    def png(self, source: str) -> bytes | None:
        """The figure as PNG bytes (RGBA, :data:`FIGURE_SIZE` pixels, ``source`` as its caption); ``None`` before any
        LR point, or without matplotlib (then one warning, the first time, naming ``pip install 'lrmon[plot]'``)."""
        from lrmon.plotting import run_png
        from lrmon.runs import RunData, config_from_mapping

        lrs = {tag: series for tag in self.lr_tags if (series := self.points.series(tag)) is not None}
        if not lrs:
            return None
        data = RunData(
            source=source, lrs=lrs, loss=self.points.series(self.loss_tag), phase=self.points.series(PHASE_TAG),
            events=sorted(((event.step, event.kind, event.detail) for event in self.events), key=lambda e: e[0]),
            config=config_from_mapping(self._config), loss_tag=self.loss_tag,
        )
        try:
            return run_png(data, size=FIGURE_SIZE)
        except ImportError as error:
            if not self._warned:
                self._warned = True
                warnings.warn(f"lrmon: the LR-vs-loss figure is skipped ({error})", RuntimeWarning, stacklevel=3)
            return None

    def _seen(self, step: int) -> None:
        self.last_step = step if self.last_step is None else max(self.last_step, step)
