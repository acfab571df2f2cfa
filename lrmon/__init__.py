"""lrmon: a warmup + cosine LR schedule and a training monitor that logs it exactly to experiment trackers.

``import lrmon`` imports no tracker; the tracker sinks live in ``lrmon.integrations.<name>``.
"""

from lrmon.curve import CurveConfig, EVENT_KINDS
from lrmon.schedule import ConfigMismatchError, WarmupCosineSchedule

__all__ = ["CurveConfig", "EVENT_KINDS", "ConfigMismatchError", "WarmupCosineSchedule"]
__version__ = "0.1.0"
