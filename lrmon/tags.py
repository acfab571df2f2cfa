"""Every name lrmon writes into a tracker, defined once: the LR tags, the phase scalar and its names, the events.

The monitor, the sinks, the readers and the CLI all take the names from here.
"""

from __future__ import annotations

import re

__all__ = [
    "lr_tags", "is_lr_tag", "lr_tag_order", "PHASE_TAG", "PHASE_NAMES", "EVENT_TEXT_PREFIX", "EVENT_ROW_PREFIX",
    "CONFIG_TAG", "RESERVED_PREFIX",
]

#: Prefix of every tag lrmon itself writes besides the LR tags (user metrics may not start with it).
RESERVED_PREFIX = "lrmon/"
#: The phase scalar: 0 warmup, 1 cosine, 2 past the end (:data:`PHASE_NAMES`).
PHASE_TAG = "lrmon/phase"
#: Phase number -> name, as the console, the figures and the CLI show it.
PHASE_NAMES = {0: "warmup", 1: "cosine", 2: "past end"}
#: Events as text (TensorBoard) and as summary keys (W&B): ``EVENT_TEXT_PREFIX + kind``.
EVENT_TEXT_PREFIX = "lrmon/events/"
#: Events as keys of the row of their step (W&B): ``EVENT_ROW_PREFIX + kind``. Not the summary's prefix on
#: purpose: wandb sets a history key's summary to its last logged value, so one key would hold both the row's
#: ``1`` and the summary's step.
EVENT_ROW_PREFIX = "lrmon/event/"
#: The run configuration as text (TensorBoard).
CONFIG_TAG = "lrmon/config"

_LR_TAG = re.compile(r"lr(?:/pg(\d+))?")


def lr_tags(groups: int) -> tuple[str, ...]:
    """The LR tag of each parameter group: ``("lr",)`` for one group, ``("lr/pg0", "lr/pg1", ...)`` for several."""
    return ("lr",) if groups == 1 else tuple(f"lr/pg{g}" for g in range(groups))


def is_lr_tag(tag: str) -> bool:
    """Whether ``tag`` is one of :func:`lr_tags`' names."""
    return _LR_TAG.fullmatch(tag) is not None


def lr_tag_order(tag: str) -> int:
    """Sort key of an LR tag: its parameter group (``lr`` is group 0)."""
    match = _LR_TAG.fullmatch(tag)
    if match is None:
        raise ValueError(f"not an LR tag: {tag!r}")
    return int(match[1] or 0)
