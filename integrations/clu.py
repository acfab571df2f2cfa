"""clu in both directions: ``CluSink`` (lrmon -> any clu ``MetricWriter``) and ``SinkMetricWriter`` (a clu
``MetricWriter`` on top of an lrmon sink, for ``MultiWriter``/``AsyncWriter`` pipelines).

Importing this module imports neither clu nor TensorFlow (``import clu.metric_writers`` pulls in TensorFlow, ~5 s).
``CluSink`` never imports clu: it only calls the writer's methods. ``SinkMetricWriter`` subclasses clu's
``MetricWriter``, so the class is built on first use (``as_metric_writer(...)`` or attribute access); without clu
installed that raises ``ImportError`` with the install hint ``pip install 'lrmon[clu]'``.

``CluSink(writer)``: ``write_scalars`` -> ``writer.write_scalars(step, {tag: value})`` once per step;
``write_events`` -> ``writer.write_texts(step, {"lrmon/events/<kind>": detail})``; ``write_config`` ->
``writer.write_hparams(<flattened config>)`` (clu wants a flat mapping: keys ``a/b/0``); ``flush``/``close``
forward (``close_writer=False`` keeps the writer open). clu has no file storage, so ``save_state`` does nothing:
add a ``TensorBoardSink`` or ``WandbSink`` to keep the state file with the run. Use ``clu.metric_writers.
create_default_writer(logdir, just_logging=jax.process_index() > 0)`` as clu recommends (the monitor itself calls
its sinks on process 0 only).

``SinkMetricWriter(sink, info=None)`` maps clu's calls onto an lrmon sink (e.g. ``TensorBoardSink``,
``WandbSink``), opening it on the first call with ``info`` (default: a fresh run, LR tag ``lr``). Like clu's own
writers it is made on every process and does nothing on processes other than 0 (``jax.process_index() != 0``):

=====================  ==========================================================================================
``write_scalars``      one-step batch ``{tag: Series([step], [value])}``
``write_summaries``    scalar (0-d) values as scalars; other tensors ignored (one warning)
``write_texts``        ``lrmon/events/<kind>`` -> an lrmon ``Event(step, kind, (), text)``; other tags -> the
                       sink's ``write_text(step, tag, text)`` if it is a ``TextSink``, else ignored (one warning)
``write_hparams``      ``sink.write_config(hparams)``
``write_images``,      not supported by lrmon sinks: ignored, one ``UserWarning`` per method (raising would
``write_videos``,      stop a ``MultiWriter`` from reaching its other writers)
``write_audios``,
``write_histograms``
``flush``/``close``    ``sink.flush()`` / ``sink.close()``
=====================  ==========================================================================================
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import jax
import numpy as np

from lrmon._optional import optional_import
from lrmon.tags import EVENT_TEXT_PREFIX
from lrmon.sinks import Event, RunInfo, ScalarBatch, Series, Sink, TextSink, iter_rows

from lrmon.integrations._process import flatten_config

__all__ = ["CluSink", "SinkMetricWriter", "as_metric_writer"]


_REQUIRED_WRITER_METHODS = ("write_scalars", "write_texts", "write_hparams", "flush", "close")


class CluSink(Sink):
    """Forwards lrmon's records to a clu ``MetricWriter`` (see the module docstring).

    Args:
        metric_writer: any object with clu's ``MetricWriter`` methods (``SummaryWriter``, ``AsyncWriter``,
            ``MultiWriter``, ``LoggingWriter``, ...).
        close_writer: close the writer in :meth:`close` (default); ``False`` only flushes it.
    """

    def __init__(self, metric_writer: Any, *, close_writer: bool = True) -> None:
        missing = [name for name in _REQUIRED_WRITER_METHODS if not callable(getattr(metric_writer, name, None))]
        if missing:
            raise TypeError(f"CluSink needs a clu MetricWriter; {type(metric_writer).__name__} lacks {missing}")
        self._writer = metric_writer
        self._close_writer = close_writer

    @property
    def name(self) -> str:
        return f"CluSink({type(self._writer).__name__})"

    def write_config(self, config: Mapping[str, Any]) -> None:
        """``write_hparams`` of the flattened configuration (keys ``a/b/0``)."""
        self._writer.write_hparams(flatten_config(config))

    def write_scalars(self, batch: ScalarBatch) -> None:
        """``write_scalars(step, row)`` once per step, steps increasing."""
        for step, row in iter_rows(batch):
            self._writer.write_scalars(step, row)

    def write_events(self, events: Sequence[Event]) -> None:
        """``write_texts(step, {"lrmon/events/<kind>": detail, ...})`` once per step with events."""
        by_step: dict[int, dict[str, str]] = {}
        for event in events:
            by_step.setdefault(event.step, {})[EVENT_TEXT_PREFIX + event.kind] = event.detail
        for step in sorted(by_step):
            self._writer.write_texts(step, by_step[step])

    def save_state(self, path: Path, step: int) -> None:
        """Nothing: a clu ``MetricWriter`` cannot store files."""

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        if self._close_writer:
            self._writer.close()
        else:
            self._writer.flush()


# -- SinkMetricWriter: built on first use so that importing this module never imports clu/TensorFlow --------------
_SINK_METRIC_WRITER: Optional[type] = None


def _metric_writer_base() -> type:
    interface = optional_import("clu.metric_writers.interface", needed_by="lrmon.integrations.clu.SinkMetricWriter",
                                extra="clu")
    return interface.MetricWriter


def _scalar(value: Any) -> float | None:
    """``float(value)`` for a 0-d / one-element numeric value, else ``None``."""
    array = np.asarray(value)
    if array.size != 1 or (not np.issubdtype(array.dtype, np.number) and array.dtype != np.bool_):
        return None
    return float(array.reshape(()))


def _build_class() -> type:
    base = _metric_writer_base()

    class SinkMetricWriter(base):  # type: ignore[misc, valid-type]
        """A clu ``MetricWriter`` writing into an lrmon sink (see ``lrmon.integrations.clu``)."""

        def __init__(self, sink: Sink, info: RunInfo | None = None) -> None:
            if not isinstance(sink, Sink):
                raise TypeError(f"SinkMetricWriter needs an lrmon Sink, got {type(sink).__name__}")
            self.sink = sink
            # several clu producers share the writer (the loop's metrics, the monitor's batches): no step order
            self._info = dataclasses.replace(info or RunInfo(start_step=0, config={}, lr_tags=("lr",)),
                                             in_step_order=False)
            self._opened = False
            self._closed = False
            self._warned: set[str] = set()

        def _writing(self) -> bool:
            """Open the sink on the first write; false on processes other than 0, which write nothing."""
            if self._closed:
                raise RuntimeError("SinkMetricWriter: write after close()")
            if not self._opened and jax.process_index() == 0:
                self.sink.open(self._info)
                self._opened = True
            return self._opened

        def _warn_once(self, what: str) -> None:
            if what not in self._warned:
                self._warned.add(what)
                warnings.warn(f"lrmon SinkMetricWriter({self.sink.name}): {what} not supported; ignored",
                              UserWarning, stacklevel=3)

        # -- supported -----------------------------------------------------------------------------------------
        def write_scalars(self, step: int, scalars: Mapping[str, Any]) -> None:
            if not self._writing():
                return
            batch: dict[str, Series] = {}
            for tag, value in scalars.items():
                number = _scalar(value)
                if number is None:
                    raise ValueError(f"write_scalars: {tag!r} is not a scalar (shape {np.shape(value)})")
                batch[tag] = Series(np.array([int(step)], dtype=np.int64), np.array([number], dtype=np.float64))
            if batch:
                self.sink.write_scalars(batch)

        def write_summaries(self, step: int, values: Mapping[str, Any],
                            metadata: Optional[Mapping[str, Any]] = None) -> None:
            if not self._writing():
                return
            scalars = {tag: value for tag, value in values.items() if _scalar(value) is not None}
            if len(scalars) < len(values):
                self._warn_once("write_summaries of non-scalar tensors")
            if scalars:
                self.write_scalars(step, scalars)

        def write_texts(self, step: int, texts: Mapping[str, str]) -> None:
            if not self._writing():
                return
            events = [Event(step=int(step), kind=tag[len(EVENT_TEXT_PREFIX):], lrs=(), detail=str(text))
                      for tag, text in texts.items() if tag.startswith(EVENT_TEXT_PREFIX)]
            if events:
                self.sink.write_events(events)
            others = {tag: text for tag, text in texts.items() if not tag.startswith(EVENT_TEXT_PREFIX)}
            if isinstance(self.sink, TextSink):
                for tag, text in others.items():
                    self.sink.write_text(int(step), tag, str(text))
            elif others:
                self._warn_once("write_texts outside lrmon/events/ for this sink")

        def write_hparams(self, hparams: Mapping[str, Any]) -> None:
            if self._writing():
                self.sink.write_config(dict(hparams))

        def flush(self) -> None:
            if self._opened and not self._closed:
                self.sink.flush()

        def close(self) -> None:
            if self._closed:
                return
            self._closed = True
            if self._opened:
                self.sink.close()

        # -- not supported: ignored with one warning each ------------------------------------------------------
        def write_images(self, step: int, images: Mapping[str, Any]) -> None:
            self._warn_once("write_images")

        def write_videos(self, step: int, videos: Mapping[str, Any]) -> None:
            self._warn_once("write_videos")

        def write_audios(self, step: int, audios: Mapping[str, Any], *, sample_rate: int) -> None:
            self._warn_once("write_audios")

        def write_histograms(self, step: int, arrays: Mapping[str, Any],
                             num_buckets: Optional[Mapping[str, int]] = None) -> None:
            self._warn_once("write_histograms")

    SinkMetricWriter.__module__ = __name__
    return SinkMetricWriter


def _sink_metric_writer_class() -> type:
    global _SINK_METRIC_WRITER
    if _SINK_METRIC_WRITER is None:
        _SINK_METRIC_WRITER = _build_class()
    return _SINK_METRIC_WRITER


def as_metric_writer(sink: Sink, info: RunInfo | None = None) -> Any:
    """A clu ``MetricWriter`` (a ``SinkMetricWriter``) writing into ``sink``; imports clu (and TensorFlow)."""
    return _sink_metric_writer_class()(sink, info)


def __getattr__(name: str) -> Any:
    """``SinkMetricWriter`` is created on first access (PEP 562), importing clu only then."""
    if name == "SinkMetricWriter":
        return _sink_metric_writer_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
