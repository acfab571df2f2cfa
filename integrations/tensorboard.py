"""``TensorBoardSink``: lrmon's records as TensorBoard event files, written with tensorboardX's protos.

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
The file is written synchronously, without tensorboardX's ``SummaryWriter`` queue and thread: that queue is what
makes ``SummaryWriter.flush()`` miss queued events and makes ``add_*`` block forever once its writer thread died
(disk full). Here every write either lands in the file or raises ``OSError`` at once; :meth:`flush` writes,
``fsync``\\ s, and then the file is readable; a removed logdir (the event file unlinked) raises
``FileNotFoundError`` at the next write or flush. The monitor then disables the sink with one warning; the
training loop never blocks on TensorBoard.

**A user's** ``tensorboardX.SummaryWriter`` (``TensorBoardSink(writer)``): records go into that writer's current
event file, written directly and synchronously through its file object (bypassing its queue, so the same
guarantees hold for lrmon's records; the user's own queued records are flushed by their writer as usual). The sink
never closes that writer and cannot purge: create it with ``SummaryWriter(logdir, purge_step=start_step)`` when
resuming. A writer made with ``write_to_disk=False`` receives nothing.

When ``info.write`` is false (processes other than 0), the sink does no I/O at all.
"""

from __future__ import annotations

import json
import os
import re
import socket
import struct
import threading
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

from lrmon._optional import optional_import
from lrmon.tags import CONFIG_TAG, EVENT_TEXT_PREFIX, PHASE_TAG
from lrmon.sinks import Event, RunInfo, ScalarBatch, Sink, iter_rows

from lrmon.state import STATE_FILE_NAME, copy_state_file
from lrmon.integrations._figure import FIGURE_SIZE, RunFigure
from lrmon.integrations._process import WriteGate, config_json, flatten_config, unique_suffix

__all__ = [
    "TensorBoardSink", "read_layout", "read_config", "STATE_FILE_NAME", "CONFIG_TAG", "EVENT_TEXT_PREFIX",
    "LAYOUT_CATEGORY", "LR_CHART", "PHASE_CHART", "FIGURE_TAG",
]

#: Category of the custom-scalars layout.
LAYOUT_CATEGORY = "lrmon"
#: Titles of the layout's LR chart and phase chart (each metric's chart is titled by its tag).
LR_CHART, PHASE_CHART = "learning rate", "phase"
#: Image tag of the LR-vs-loss figure.
FIGURE_TAG = "lrmon/lr_vs_loss"
_LAYOUT_TAG = "custom_scalars__config__"  # where TensorBoard's custom-scalars plugin looks for the layout
_RGBA = 4  # Summary.Image colorspace of matplotlib's PNGs


def _tbx() -> Any:
    """Import tensorboardX lazily, with an install hint."""
    return optional_import("tensorboardX", needed_by="lrmon.integrations.tensorboard", extra="tensorboard")


def _protos() -> Any:
    """The tensorboardX proto modules and summary builders used here, as one namespace."""
    _tbx()
    from tensorboardX import summary as summary_lib
    from tensorboardX.proto import event_pb2, layout_pb2, summary_pb2, tensor_pb2, tensor_shape_pb2
    from tensorboardX.proto.plugin_text_pb2 import TextPluginData
    from tensorboardX.record_writer import masked_crc32c

    class P:  # a plain namespace
        pass

    P.Event, P.SessionLog = event_pb2.Event, event_pb2.SessionLog
    P.Summary, P.SummaryMetadata = summary_pb2.Summary, summary_pb2.SummaryMetadata
    P.TensorProto, P.TensorShapeProto = tensor_pb2.TensorProto, tensor_shape_pb2.TensorShapeProto
    P.TextPluginData, P.summary, P.masked_crc32c = TextPluginData, summary_lib, masked_crc32c
    P.layout = layout_pb2
    return P


def text_summary(protos: Any, tag: str, text: str) -> Any:
    """A text-plugin ``Summary`` under exactly ``tag`` (tensorboardX's ``add_text`` appends ``/text_summary``)."""
    plugin = protos.SummaryMetadata.PluginData(
        plugin_name="text", content=protos.TextPluginData(version=0).SerializeToString()
    )
    tensor = protos.TensorProto(
        dtype="DT_STRING",
        string_val=[text.encode("utf-8")],
        tensor_shape=protos.TensorShapeProto(dim=[protos.TensorShapeProto.Dim(size=1)]),
    )
    return protos.Summary(
        value=[protos.Summary.Value(tag=tag, metadata=protos.SummaryMetadata(plugin_data=plugin), tensor=tensor)]
    )


def layout_summary(protos: Any, lr_tags: Sequence[str], metrics: Sequence[str]) -> Any:
    """The custom-scalars layout (see the module docstring): exact Margin charts for the LR tags and the phase,
    a multi-line chart (anchored regex) per metric."""
    layout = protos.layout

    def exact(title: str, tags: Sequence[str]) -> Any:  # margins equal to the value: drawn unsmoothed
        series = [layout.MarginChartContent.Series(value=tag, lower=tag, upper=tag) for tag in tags]
        return layout.Chart(title=title, margin=layout.MarginChartContent(series=series))

    charts = [exact(LR_CHART, lr_tags)]
    charts += [layout.Chart(title=tag, multiline=layout.MultilineChartContent(tag=[f"^{re.escape(tag)}$"]))
               for tag in metrics]
    charts.append(exact(PHASE_CHART, [PHASE_TAG]))
    content = layout.Layout(category=[layout.Category(title=LAYOUT_CATEGORY, chart=charts)]).SerializeToString()
    plugin = protos.SummaryMetadata.PluginData(plugin_name="custom_scalars")
    tensor = protos.TensorProto(dtype="DT_STRING", string_val=[content], tensor_shape=protos.TensorShapeProto())
    return protos.Summary(value=[protos.Summary.Value(
        tag=_LAYOUT_TAG, tensor=tensor, metadata=protos.SummaryMetadata(plugin_data=plugin))])


def image_summary(protos: Any, tag: str, png: bytes, size: tuple[int, int]) -> Any:
    """An image ``Summary`` of PNG bytes (RGBA, ``size`` = (width, height) pixels) under ``tag``."""
    width, height = size
    image = protos.Summary.Image(height=height, width=width, colorspace=_RGBA, encoded_image_string=png)
    return protos.Summary(value=[protos.Summary.Value(tag=tag, image=image)])


class _EventFile:
    """One TensorBoard event file written synchronously (no queue, no thread); thread-safe."""

    def __init__(self, protos: Any, logdir: Path, purge_step: int | None) -> None:
        self._protos = protos
        self._lock = threading.Lock()
        name = f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}{unique_suffix()}"
        self.path = logdir / name
        self._file = open(self.path, "xb")  # noqa: SIM115 - kept open for the run
        self.write([protos.Event(wall_time=time.time(), file_version="brain.Event:2")])
        if purge_step is not None:  # what SummaryWriter(purge_step=N) writes, but in order, before any record
            self.write([protos.Event(wall_time=time.time(), step=purge_step, file_version="brain.Event:2"),
                        protos.Event(wall_time=time.time(), step=purge_step,
                                     session_log=protos.SessionLog(status=protos.SessionLog.START))])
        self.flush()

    def _frame(self, data: bytes) -> bytes:
        header = struct.pack("<Q", len(data))
        crc = self._protos.masked_crc32c
        return header + struct.pack("<I", crc(header)) + data + struct.pack("<I", crc(data))

    def write(self, events: Sequence[Any]) -> None:
        payload = b"".join(self._frame(event.SerializeToString()) for event in events)
        with self._lock:
            self._file.write(payload)
        self._check_linked()

    def flush(self) -> None:
        with self._lock:
            self._file.flush()
            os.fsync(self._file.fileno())
        self._check_linked()

    def close(self) -> None:
        with self._lock:
            if self._file.closed:
                return
            try:
                self._file.flush()
                os.fsync(self._file.fileno())
            finally:
                self._file.close()

    def _check_linked(self) -> None:
        if os.fstat(self._file.fileno()).st_nlink == 0:
            raise FileNotFoundError(f"TensorBoard event file {self.path} was removed (logdir deleted?)")


class _UserWriterFile:
    """Writes into a user's ``tensorboardX.SummaryWriter``'s current event file, bypassing its queue."""

    def __init__(self, writer: Any) -> None:
        file_writer = writer.file_writer or writer._get_file_writer()  # reopened if the user closed it
        events_writer = getattr(getattr(file_writer, "event_writer", None), "_ev_writer", None)
        if events_writer is None or not hasattr(events_writer, "write_event"):
            raise TypeError(
                "TensorBoardSink: this SummaryWriter has no local event file to write to "
                "(unsupported tensorboardX version?); pass a logdir instead"
            )
        self._events_writer = events_writer
        record_writer = getattr(events_writer, "_py_recordio_writer", None)
        self.path = Path(getattr(record_writer, "path", writer.logdir))
        self._raw_file = getattr(record_writer, "_writer", None)

    def write(self, events: Sequence[Any]) -> None:
        for event in events:
            self._events_writer.write_event(event)
        self._check_linked()

    def flush(self) -> None:
        self._events_writer.flush()
        self._check_linked()

    def close(self) -> None:
        self.flush()

    def _check_linked(self) -> None:
        fileno = getattr(self._raw_file, "fileno", None)
        if fileno is not None and os.fstat(fileno()).st_nlink == 0:
            raise FileNotFoundError(f"TensorBoard event file {self.path} was removed (logdir deleted?)")


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
        self._gate = WriteGate(self.name)
        self._protos: Any = None
        self._file: _EventFile | _UserWriterFile | None = None
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
        """The event file records go to (``None`` before ``open()`` or on processes that do not write)."""
        return None if self._file is None else self._file.path

    # -- Sink interface --------------------------------------------------------------------------------------
    def open(self, info: RunInfo) -> None:
        """Create the event file (own logdir: with a purge marker at ``info.start_step``) and write the layout."""
        if not self._gate.open(info):
            return
        protos = self._protos = _protos()
        if self._user_writer is not None:
            if getattr(self._user_writer, "_write_to_disk", True) is False:
                self._gate.closed = True  # a non-writing SummaryWriter: nothing to do
                return
            self._file = _UserWriterFile(self._user_writer)
        else:
            logdir = self.logdir
            logdir.mkdir(parents=True, exist_ok=True)
            self._file = _EventFile(protos, logdir, purge_step=info.start_step)
        self._figure.open(info)
        self._figure_time = time.monotonic()  # the first figure at a save comes figure_every_s from now
        self._write_summaries([layout_summary(protos, info.lr_tags, self._layout_metrics)], step=info.start_step)

    def write_config(self, config: Mapping[str, Any]) -> None:
        """Record ``config`` as JSON text (``lrmon/config``) and, unless disabled, as HParams."""
        if not self._gate.check() or self._file is None:
            return
        step = self._gate.info.start_step if self._gate.info else 0
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
        if not self._gate.check() or self._file is None:
            return
        protos = self._protos
        value_cls = protos.Summary.Value
        now = time.time()
        events = [
            protos.Event(
                wall_time=now, step=step,
                summary=protos.Summary(value=[value_cls(tag=tag, simple_value=value) for tag, value in row.items()]),
            )
            for step, row in iter_rows(batch)
        ]
        self._file.write(events)
        self._figure.add_scalars(batch)

    def write_events(self, events: Sequence[Event]) -> None:
        """Each event's ``detail`` as text under ``lrmon/events/<kind>`` at its step."""
        if not self._gate.check() or self._file is None:
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
        if not self._gate.check() or self._file is None:
            return
        self._write_summaries([text_summary(self._protos, tag, text)], step=step)

    def save_state(self, path: Path, step: int) -> None:
        """Copy the state file atomically into the logdir as ``lrmon_state.json``; write the figure at ``step`` if
        the last one is ``figure_every_s`` old."""
        if not self._gate.check() or self._file is None:
            return
        copy_state_file(path, self.logdir / STATE_FILE_NAME)
        if time.monotonic() - self._figure_time >= self._figure_every_s:
            self._write_figure(step)

    def identity(self) -> dict[str, Any]:
        """``{"tensorboard_logdir": <absolute logdir>}``."""
        return {"tensorboard_logdir": str(self.logdir)}

    def flush(self) -> None:
        """Write and fsync everything so far; raises if the event file is gone."""
        if not self._gate.check() or self._file is None:
            return
        self._file.flush()

    def close(self) -> None:
        """Finish the HParams session, write the figure at the last step seen, flush, and close the own event file
        (a user's writer stays open)."""
        if self._gate.info is None or not self._gate.check() or self._file is None:
            self._gate.closed = True
            return
        try:
            if self._hparams_written:
                _, _, session_end = self._protos.summary.hparams({}, {})
                self._write_summaries([session_end], step=None)
            last = [step for step in (self._figure.last_step, self._figure_step) if step is not None]
            self._write_figure(max(last, default=self._gate.info.start_step))
            self._file.flush()
        finally:
            self._gate.closed = True
            self._file.close()

    # -- helpers ---------------------------------------------------------------------------------------------
    def _write_figure(self, step: int) -> None:
        """The LR-vs-loss figure of the records so far, as an image at ``step`` (nothing before any LR point)."""
        png = self._figure.png(f"TensorBoard logdir {self.logdir}, step {step}")
        if png is not None:
            self._write_summaries([image_summary(self._protos, FIGURE_TAG, png, FIGURE_SIZE)], step=step)
            self._figure_step, self._figure_time = step, time.monotonic()

    def _write_summaries(self, summaries: Sequence[Any], step: int | None) -> None:
        assert self._file is not None
        now = time.time()
        events = []
        for summary in summaries:
            event = self._protos.Event(wall_time=now, summary=summary)
            if step is not None:
                event.step = step
            events.append(event)
        self._file.write(events)


def read_layout(logdir: str | os.PathLike[str]) -> dict[str, dict[str, list[str]]]:
    """The custom-scalars layouts stored in ``logdir``'s event files: ``{category: {chart: tags}}``, where
    ``tags`` are a multi-line chart's tag regexes or a Margin chart's value tags.

    A small reader for tests and the CLI; needs ``tensorboard`` (the layout is a string tensor under the tag
    ``custom_scalars__config__``).
    """
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.custom_scalar import layout_pb2

    accumulator = EventAccumulator(str(logdir), size_guidance={"tensors": 0})
    accumulator.Reload()
    result: dict[str, dict[str, list[str]]] = {}
    if _LAYOUT_TAG not in accumulator.Tags().get("tensors", []):
        return result
    for tensor_event in accumulator.Tensors(_LAYOUT_TAG):
        layout = layout_pb2.Layout.FromString(tensor_event.tensor_proto.string_val[0])
        for category in layout.category:
            charts = result.setdefault(category.title, {})
            for chart in category.chart:
                content = chart.multiline if chart.HasField("multiline") else chart.margin
                tags = list(content.tag) if chart.HasField("multiline") else [
                    s.value for s in content.series
                ]
                charts[chart.title] = tags
    return result


def read_config(logdir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The configuration the sink stored as text in ``logdir`` (the last one written), or ``None``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(logdir), size_guidance={"tensors": 0})
    accumulator.Reload()
    if CONFIG_TAG not in accumulator.Tags().get("tensors", []):
        return None
    text = accumulator.Tensors(CONFIG_TAG)[-1].tensor_proto.string_val[0].decode("utf-8")
    return json.loads(text.removeprefix("```json\n").removesuffix("\n```"))
