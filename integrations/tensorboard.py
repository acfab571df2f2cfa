"""``TensorBoardSink``: lrmon's records as TensorBoard event files, written with tensorboardX's protos.

What ends up in the logdir (one run):

* scalars on the step axis under the monitor's tags (``lr`` or ``lr/pg0``..., ``lrmon/phase``, the user's metrics);
  all tags of one step go into one event. TensorBoard stores them as float32.
* each schedule event as text (``event.detail``) under its own tag ``lrmon/events/<kind>`` at its step, so two
  events at one step never collapse in the TensorBoard UI (which keeps one value per step and tag);
* a custom-scalars layout (category ``lrmon``, chart ``lr vs loss``: the LR tags and ``layout_metrics``, as
  anchored regexes) and a chart of ``lrmon/phase``;
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

import importlib
import json
import os
import re
import socket
import struct
import threading
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

from lrmon.sinks import Event, RunInfo, ScalarBatch, Sink, iter_rows

from lrmon.state import STATE_FILE_NAME, copy_state_file
from lrmon.integrations._process import WriteGate, config_json, flatten_config, unique_suffix

__all__ = ["TensorBoardSink", "read_layout", "read_config", "STATE_FILE_NAME", "CONFIG_TAG", "EVENT_TAG_PREFIX", "LAYOUT_CATEGORY"]

#: Text tag of the run configuration.
CONFIG_TAG = "lrmon/config"
#: Text tags of events: ``EVENT_TAG_PREFIX + kind``.
EVENT_TAG_PREFIX = "lrmon/events/"
#: Category of the custom-scalars layout.
LAYOUT_CATEGORY = "lrmon"


def _tbx() -> Any:
    """Import tensorboardX's pieces lazily, with an install hint."""
    try:
        return importlib.import_module("tensorboardX")
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "lrmon.integrations.tensorboard needs tensorboardX: pip install 'lrmon[tensorboard]'"
        ) from error


def _protos() -> Any:
    """The tensorboardX proto modules and summary builders used here, as one namespace."""
    _tbx()
    from tensorboardX import summary as summary_lib
    from tensorboardX.proto import event_pb2, summary_pb2, tensor_pb2, tensor_shape_pb2
    from tensorboardX.proto.plugin_text_pb2 import TextPluginData
    from tensorboardX.record_writer import masked_crc32c

    class P:  # a plain namespace
        pass

    P.Event, P.SessionLog = event_pb2.Event, event_pb2.SessionLog
    P.Summary, P.SummaryMetadata = summary_pb2.Summary, summary_pb2.SummaryMetadata
    P.TensorProto, P.TensorShapeProto = tensor_pb2.TensorProto, tensor_shape_pb2.TensorShapeProto
    P.TextPluginData, P.summary, P.masked_crc32c = TextPluginData, summary_lib, masked_crc32c
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


def read_event_texts(logdir: Path, protos: Any, prefix: str = EVENT_TAG_PREFIX) -> set[tuple[str, int]]:
    """``(tag, step)`` of every text record under ``prefix`` in the logdir's event files.

    Reads the TFRecord framing directly (length, masked CRC, data, CRC); a file cut short by a crash ends the
    reading of that file. Used so that a run resumed into the same logdir does not write an event text again:
    TensorBoard's purge hides an interrupted run's scalars from the resume step on, but not its texts.
    """
    found: set[tuple[str, int]] = set()
    for path in sorted(logdir.glob("events.out.tfevents.*")):
        data = path.read_bytes()
        offset = 0
        while offset + 12 <= len(data):
            (length,) = struct.unpack_from("<Q", data, offset)
            start, end = offset + 12, offset + 12 + length
            if end + 4 > len(data):
                break
            event = protos.Event.FromString(data[start:end])
            found.update((value.tag, event.step) for value in event.summary.value if value.tag.startswith(prefix))
            offset = end + 4
    return found


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
        layout_metrics: metric tags put beside the LR tags in the ``lr vs loss`` custom-scalars chart.
        hparams: also record the flattened configuration with the HParams plugin.

    The constructor does no I/O and imports nothing; ``open(info)`` creates the event file.
    """

    def __init__(
        self, logdir_or_writer: str | os.PathLike[str] | Any, *, layout_metrics: Sequence[str] = ("loss",),
        hparams: bool = True,
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
        self._gate = WriteGate(self.name)
        self._protos: Any = None
        self._file: _EventFile | _UserWriterFile | None = None
        self._hparams_written = False
        self._texts_in_logdir: set[tuple[str, int]] = set()

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
            self._texts_in_logdir = read_event_texts(logdir, protos)
            self._file = _EventFile(protos, logdir, purge_step=info.start_step)
        lr_patterns = [f"^{re.escape(tag)}$" for tag in info.lr_tags]
        metric_patterns = [f"^{re.escape(tag)}$" for tag in self._layout_metrics]
        layout = {
            LAYOUT_CATEGORY: {
                "lr vs loss": ["Multiline", lr_patterns + metric_patterns],
                "phase": ["Multiline", ["^lrmon/phase$"]],
            }
        }
        self._write_summaries([protos.summary.custom_scalars(layout)], step=info.start_step)

    def write_config(self, config: Mapping[str, Any]) -> None:
        """Record ``config`` as JSON text (``lrmon/config``) and, unless disabled, as HParams."""
        if not self._gate.check() or self._file is None:
            return
        step = self._gate.info.start_step if self._gate.info else 0
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

    def write_events(self, events: Sequence[Event]) -> None:
        """Each event's ``detail`` as text under ``lrmon/events/<kind>`` at its step (skipped if an earlier attempt
        of the run already wrote that event at that step into this logdir)."""
        if not self._gate.check() or self._file is None:
            return
        now = time.time()
        self._file.write([
            self._protos.Event(wall_time=now, step=event.step,
                               summary=text_summary(self._protos, EVENT_TAG_PREFIX + event.kind, event.detail))
            for event in events
            if (EVENT_TAG_PREFIX + event.kind, event.step) not in self._texts_in_logdir
        ])

    def write_text(self, step: int, tag: str, text: str) -> None:
        """Record free text under ``tag`` at ``step`` (used by the clu adapter for non-lrmon texts)."""
        if not self._gate.check() or self._file is None:
            return
        self._write_summaries([text_summary(self._protos, tag, text)], step=step)

    def save_state(self, path: Path, step: int) -> None:
        """Copy the state file atomically into the logdir as ``lrmon_state.json``."""
        if not self._gate.check() or self._file is None:
            return
        copy_state_file(path, self.logdir / STATE_FILE_NAME)

    def identity(self) -> dict[str, Any]:
        """``{"tensorboard_logdir": <absolute logdir>}``."""
        return {"tensorboard_logdir": str(self.logdir)}

    def flush(self) -> None:
        """Write and fsync everything so far; raises if the event file is gone."""
        if not self._gate.check() or self._file is None:
            return
        self._file.flush()

    def close(self) -> None:
        """Finish the HParams session, flush, and close the own event file (a user's writer stays open)."""
        if self._gate.info is None or not self._gate.check() or self._file is None:
            self._gate.closed = True
            return
        try:
            if self._hparams_written:
                _, _, session_end = self._protos.summary.hparams({}, {})
                self._write_summaries([session_end], step=None)
            self._file.flush()
        finally:
            self._gate.closed = True
            self._file.close()

    # -- helpers ---------------------------------------------------------------------------------------------
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
    """The custom-scalars layouts stored in ``logdir``'s event files: ``{category: {chart: [tag regexes]}}``.

    A small reader for tests and the CLI; needs ``tensorboard`` (the layout is a string tensor under the tag
    ``custom_scalars__config__``).
    """
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.custom_scalar import layout_pb2

    accumulator = EventAccumulator(str(logdir), size_guidance={"tensors": 0})
    accumulator.Reload()
    result: dict[str, dict[str, list[str]]] = {}
    if "custom_scalars__config__" not in accumulator.Tags().get("tensors", []):
        return result
    for tensor_event in accumulator.Tensors("custom_scalars__config__"):
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
