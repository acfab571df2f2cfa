"""lrmon: a warmup + cosine LR schedule and a training monitor that logs it exactly to experiment trackers.

``import lrmon`` imports no tracker; the tracker sinks live in ``lrmon.integrations.<name>``.
"""

from lrmon.curve import EVENT_KINDS, CurveConfig
from lrmon.dispatch import SinkFailedWarning
from lrmon.monitor import LRMonitor
from lrmon.offload import ProcessSink
from lrmon.schedule import ConfigMismatchError, WarmupCosineSchedule
from lrmon.sinks import Event, MemorySink, RunInfo, Series, Sink
from lrmon.tags import PHASE_TAG

__all__ = [
    "CurveConfig", "EVENT_KINDS", "ConfigMismatchError", "WarmupCosineSchedule", "LRMonitor", "PHASE_TAG",
    "Sink", "MemorySink", "ProcessSink", "Series", "Event", "RunInfo", "SinkFailedWarning",
]
__version__ = "0.1.0"
