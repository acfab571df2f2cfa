"""The ``Summary`` protos :class:`~lrmon.integrations.tensorboard.TensorBoardSink` writes: text, the
custom-scalars layout and the figure image, built from tensorboardX's protos (see that module's docstring)."""

from __future__ import annotations

import re
from typing import Any, Sequence

from lrmon._optional import optional_import
from lrmon.tags import PHASE_TAG

__all__ = [
    "LAYOUT_CATEGORY", "LR_CHART", "PHASE_CHART", "FIGURE_TAG", "LAYOUT_TAG", "protos", "text_summary",
    "layout_summary", "image_summary",
]

#: Category of the custom-scalars layout.
LAYOUT_CATEGORY = "lrmon"
#: Titles of the layout's LR chart and phase chart (each metric's chart is titled by its tag).
LR_CHART, PHASE_CHART = "learning rate", "phase"
#: Image tag of the LR-vs-loss figure.
FIGURE_TAG = "lrmon/lr_vs_loss"
#: Where TensorBoard's custom-scalars plugin looks for the layout.
LAYOUT_TAG = "custom_scalars__config__"
_RGBA = 4  # Summary.Image colorspace of matplotlib's PNGs


def protos() -> Any:
    """The tensorboardX proto modules, summary builders and event writer used here, as one namespace (imported
    lazily, with an install hint)."""
    optional_import("tensorboardX", needed_by="lrmon.integrations.tensorboard", extra="tensorboard")
    from tensorboardX import summary as summary_lib
    from tensorboardX.event_file_writer import EventsWriter
    from tensorboardX.proto import event_pb2, layout_pb2, summary_pb2, tensor_pb2, tensor_shape_pb2
    from tensorboardX.proto.plugin_text_pb2 import TextPluginData

    class P:  # a plain namespace
        pass

    P.Event, P.SessionLog, P.EventsWriter = event_pb2.Event, event_pb2.SessionLog, EventsWriter
    P.Summary, P.SummaryMetadata = summary_pb2.Summary, summary_pb2.SummaryMetadata
    P.TensorProto, P.TensorShapeProto = tensor_pb2.TensorProto, tensor_shape_pb2.TensorShapeProto
    P.TextPluginData, P.summary, P.layout = TextPluginData, summary_lib, layout_pb2
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
    """The custom-scalars layout (see the sink's module docstring): exact Margin charts for the LR tags and the
    phase, a multi-line chart (anchored regex) per metric. (tensorboardX's ``summary.custom_scalars`` allows one
    series per Margin chart; the LR chart has one per parameter group.)"""
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
        tag=LAYOUT_TAG, tensor=tensor, metadata=protos.SummaryMetadata(plugin_data=plugin))])


def image_summary(protos: Any, tag: str, png: bytes, size: tuple[int, int]) -> Any:
    """An image ``Summary`` of PNG bytes (RGBA, ``size`` = (width, height) pixels) under ``tag``."""
    width, height = size
    image = protos.Summary.Image(height=height, width=width, colorspace=_RGBA, encoded_image_string=png)
    return protos.Summary(value=[protos.Summary.Value(tag=tag, image=image)])
