"""``TensorBoardSink``: lrmon's records as TensorBoard event files, written with tensorboardX.

What ends up in the logdir (one run):

* scalars on the step axis under the monitor's tags (``lr`` or ``lr/pg0``..., ``lrmon/phase``, the user's metrics);
  all tags of one step go into one event. TensorBoard stores them as float32.
* each schedule event as text (``event.detail``) under its own tag ``lrmon/events/<kind>`` at its step, so two
  events at one step never collapse in the TensorBoard UI (which keeps one value per step and tag). After a
  resume at step ``R`` the events of steps ``>= R`` are written again: the TensorBoard UI's reader purges the
  interrupted attempt's texts from ``R`` on, as it does its scalars. (The classic ``EventAccumulator`` purges only
  scalars, images and audio: it still shows the interrupted attempt's copy of such an event, same step, same
  text, beside the new one.);
* a custom-scalars layout, category ``lrmon``, with one chart per quantity, each on its own y-axis: ``learning
  rate`` (every LR tag), one chart per ``layout_metrics`` tag (default ``loss``; titled by the tag, an anchored
  regex), and ``phase`` (``lrmon/phase``). The LR and phase charts are TensorBoard "Margin" charts whose margins are
  the value itself: TensorBoard never smooths a Margin chart, so they show the exact logged LR and a clean step at
  each phase change whatever the smoothing slider says; the metric charts are plain multi-line charts and follow
  the slider (a noisy loss reads better smoothed; TensorBoard lists them first). In the Scalars tab every tag
  follows the slider (default 0.6), which draws ``lrmon/phase`` as ramps between phases (wide ones when steps are
  logged sparsely): set the slider to 0 there, or read the Custom Scalars tab;
* an image "LR vs loss" (tag ``lrmon/lr_vs_loss``) at :meth:`TensorBoardSink.close` and at state saves at most
  once every ``figure_every_s`` seconds (default 300): the figure ``lrmon plot`` draws (LR and loss panels with
  their own y scales, phases shaded, a line at each event, loss against LR), from the records this sink received
  in this process (thinned to ``figure_points`` steps; a resumed run's figure starts at its resume step). Drawing
  it costs ~0.5-0.9 s of CPU on a 2-core machine, off the training thread (state saves run on the monitor's
  courier) but under the GIL, hence the interval. Without matplotlib it is skipped, with one warning;
* the configuration as JSON text (tag ``lrmon/config``) and as HParams (flattened, ``a/b/0`` keys);
* ``lrmon_state.json``: the monitor's state file, copied atomically by :meth:`TensorBoardSink.save_state`.

**Own logdir** (``TensorBoardSink("runs/exp1")``): ``open()`` creates one new event file
``events.out.tfevents.<time>.<host>.<ns-time>.<pid>.<n>.lrmon`` (unique, so runs never overwrite each other) that
starts with a purge marker at ``info.start_step``: TensorBoard then hides records of an earlier attempt at steps
``>= start_step`` (a resumed run supersedes what the crashed one wrote after its last checkpoint).
The file is written through tensorboardX's own ``EventsWriter`` (the synchronous, locked record writer under its
``SummaryWriter``), without that ``SummaryWriter``'s queue and thread: the queue is what makes
``SummaryWriter.flush()`` miss queued events and makes ``add_*`` block forever once its writer thread died (disk
full). Here every write either lands in the file or raises ``OSError`` at once; :meth:`flush` writes,
``fsync``\\ s (``EventsWriter.flush`` does both), and then the file is readable; a removed logdir (the event file
unlinked) raises ``FileNotFoundError`` at the next write or flush. The monitor then disables the sink with one
warning; the training loop never blocks on TensorBoard.

**A user's** ``tensorboardX.SummaryWriter`` (``TensorBoardSink(writer)``): records go into that writer's current
event file, written directly and synchronously through its ``EventsWriter`` (bypassing its queue, so the same
guarantees hold for lrmon's records; the user's own queued records are flushed by their writer as usual). The sink
never closes that writer and cannot purge: create it with ``SummaryWriter(logdir, purge_step=start_step)`` when
resuming. A writer made with ``write_to_disk=False`` receives nothing.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

from lrmon.tags import CONFIG_TAG, EVENT_TEXT_PREFIX
from lrmon.sinks import Event, RunInfo, ScalarBatch, Sink, iter_rows

from lrmon.state import STATE_FILE_NAME, copy_state_file
from lrmon.integrations._figure import FIGURE_SIZE, RunFigure
from lrmon.integrations._process import config_json, flatten_config
from lrmon.integrations._tensorboard_layout import (
    FIGURE_TAG, LAYOUT_CATEGORY, LR_CHART, PHASE_CHART, image_summary, layout_summary, protos as _protos,
    text_summary,
)
from lrmon.integrations._tensorboard_events import EventFile, read_config, read_layout
from lrmon.integrations._tensorboard_run import prefer_tensorboard_stub, read_tensorboard_run

__all__ = [
    "TensorBoardSink", "read_layout", "read_config", "read_tensorboard_run", "prefer_tensorboard_stub",
    "STATE_FILE_NAME", "CONFIG_TAG", "EVENT_TEXT_PREFIX", "LAYOUT_CATEGORY", "LR_CHART", "PHASE_CHART", "FIGURE_TAG",
]


class TensorBoardSink(Sink):
    """lrmon records to TensorBoard (see the module docstring for layout, purging and failure behaviour).

    Args:
        logdir_or_writer: a logdir (created in ``open()``), or an existing ``tensorboardX.SummaryWriter`` (not
            closed by the sink; no purge on resume).
        layout_metrics: metric tags that get a custom-scalars chart each (the first is the figure's loss panel).
        hparams: also record the flattened configuration with the HParams plugin.
        figure_points: at most this many steps kept for the LR-vs-loss figure.
        figure_every_s: draw the figure at a state save only if the last one is at least this old (seconds).

    The constructor does no I/O and imports nothing; ``open(info)`` creates the event file.
    """

    def __init__(
        self, logdir_or_writer: str | os.PathLike[str] | Any, *, layout_metrics: Sequence[str] = ("loss",),
        hparams: bool = True, figure_points: int = 2000, figure_every_s: float = 300.0,
    ) -> None:
        if isinstance(logdir_or_writer, (str, os.PathLike)):
            self._logdir: Path | None = Path(logdir_or_writer)
            self._user_writer: Any = None
        elif hasattr(logdir_or_writer, "file_writer") and hasattr(logdir_or_writer, "logdir"):
            self._logdir = None
            self._user_writer = logdir_or_writer
        else:
            raise TypeError(
                "TensorBoardSink needs a logdir path or a tensorboardX.SummaryWriter, got "
                f"{type(logdir_or_writer).__name__}"
            )
        self._layout_metrics = tuple(layout_metrics)
        self._hparams = hparams
        self._figure = RunFigure(self._layout_metrics[0] if self._layout_metrics else "loss", figure_points)
        self._figure_step: int | None = None
        self._figure_every_s = figure_every_s
        self._figure_time = 0.0  # time.monotonic() of the last figure (or of open)
        self._info: RunInfo | None = None  # set by open()
        self._closed = False
        self._protos: Any = None
        self._file: EventFile | None = None
        self._hparams_written = False

    # -- properties ------------------------------------------------------------------------------------------
    @property
    def logdir(self) -> Path:
        """The (absolute) logdir this sink writes to."""
        if self._user_writer is not None:
            return Path(os.path.abspath(self._user_writer.logdir))
        assert self._logdir is not None
        return Path(os.path.abspath(self._logdir))

    @property
    def event_file(self) -> Path | None:
        """The event file records go to (``None`` before ``open()`` or for a ``write_to_disk=False`` writer)."""
        return None if self._file is None else self._file.path

    # -- Sink interface --------------------------------------------------------------------------------------
    def open(self, info: RunInfo) -> None:
        """Create the event file (own logdir: with a purge marker at ``info.start_step``) and write the layout."""
        if self._info is not None:
            raise RuntimeError(f"{self.name}.open() was called twice")
        self._info = info
        protos = self._protos = _protos()
        if self._user_writer is not None:
            self._file = EventFile.of_writer(protos, self._user_writer)
            if self._file is None:
                return  # a non-writing SummaryWriter: nothing to do
        else:
            logdir = self.logdir
            logdir.mkdir(parents=True, exist_ok=True)
            self._file = EventFile.create(protos, logdir, purge_step=info.start_step)
        self._figure.open(info)
        self._figure_time = time.monotonic()  # the first figure at a save comes figure_every_s from now
        self._write_summaries([layout_summary(protos, info.lr_tags, self._layout_metrics)], step=info.start_step)

    def write_config(self, config: Mapping[str, Any]) -> None:
        """Record ``config`` as JSON text (``lrmon/config``) and, unless disabled, as HParams."""
        if not self._writing():
            return
        step = self._info.start_step
        self._figure.set_config(config)
        text = "```json\n" + config_json(config) + "\n```"
        summaries = [text_summary(self._protos, CONFIG_TAG, text)]
        if self._hparams:
            flat = flatten_config(config)
            experiment, session_start, _ = self._protos.summary.hparams(flat, {tag: 0.0 for tag in self._layout_metrics})
            summaries += [experiment, session_start]
            self._hparams_written = True
        self._write_summaries(summaries, step=step)

    def write_scalars(self, batch: ScalarBatch) -> None:
        """One event per step holding every tag's value at that step (stored as float32 by TensorBoard)."""
        if not self._writing():
            return
        event_cls, now, events = self._protos.Event, time.time(), []
        for step, row in iter_rows(batch):
            event = event_cls(wall_time=now, step=step)
            add_value = event.summary.value.add  # ~2x faster than building Summary.Value objects, same bytes
            for tag, value in row.items():
                add_value(tag=tag, simple_value=value)
            events.append(event)
        self._file.write(events)
        self._figure.add_scalars(batch)

    def write_events(self, events: Sequence[Event]) -> None:
        """Each event's ``detail`` as text under ``lrmon/events/<kind>`` at its step."""
        if not self._writing():
            return
        now = time.time()
        self._file.write([
            self._protos.Event(wall_time=now, step=event.step,
                               summary=text_summary(self._protos, EVENT_TEXT_PREFIX + event.kind, event.detail))
            for event in events
        ])
        self._figure.add_events(events)

    def write_text(self, step: int, tag: str, text: str) -> None:
        """Record free text under ``tag`` at ``step`` (used by the clu adapter for non-lrmon texts)."""
        if not self._writing():
            return
        self._write_summaries([text_summary(self._protos, tag, text)], step=step)

    def save_state(self, path: Path, step: int) -> None:
        """Copy the state file atomically into the logdir as ``lrmon_state.json``; write the figure at ``step`` if
        the last one is ``figure_every_s`` old."""
        if not self._writing():
            return
        copy_state_file(path, self.logdir / STATE_FILE_NAME)
        if time.monotonic() - self._figure_time >= self._figure_every_s:
            self._write_figure(step)

    def identity(self) -> dict[str, Any]:
        """``{"tensorboard_logdir": <absolute logdir>}``."""
        return {"tensorboard_logdir": str(self.logdir)}

    def flush(self) -> None:
        """Write and fsync everything so far; raises if the event file is gone."""
        if not self._writing():
            return
        self._file.flush()

    def close(self) -> None:
        """Finish the HParams session, write the figure at the last step seen, flush, and close the own event file
        (a user's writer stays open)."""
        if self._info is None or not self._writing():
            self._closed = True
            return
        try:
            if self._hparams_written:
                _, _, session_end = self._protos.summary.hparams({}, {})
                self._write_summaries([session_end], step=None)
            last = [step for step in (self._figure.last_step, self._figure_step) if step is not None]
            self._write_figure(max(last, default=self._info.start_step))
            self._file.flush()
        finally:
            self._closed = True
            self._file.close()

    # -- helpers ---------------------------------------------------------------------------------------------
    def _writing(self) -> bool:
        """Whether records go to the event file now (not for a ``write_to_disk=False`` writer, nor after close)."""
        if self._info is None:
            raise RuntimeError(f"{self.name}: call open(info) before writing")
        return self._file is not None and not self._closed

    def _write_figure(self, step: int) -> None:
        """The LR-vs-loss figure of the records so far, as an image at ``step`` (nothing before any LR point)."""
        png = self._figure.png(f"TensorBoard logdir {self.logdir}, step {step}")
        if png is not None:
            self._write_summaries([image_summary(self._protos, FIGURE_TAG, png, FIGURE_SIZE)], step=step)
            self._figure_step, self._figure_time = step, time.monotonic()

    def _write_summaries(self, summaries: Sequence[Any], step: int | None) -> None:
        assert self._file is not None
        now, at_step = time.time(), {} if step is None else {"step": step}
        self._file.write([self._protos.Event(wall_time=now, summary=summary, **at_step) for summary in summaries])
