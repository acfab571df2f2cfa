"""Every name lrmon writes into a tracker, defined once: the LR tags, the phase scalar and its names, the events.

The monitor, the sinks, the readers and the CLI all take the names from here.
"""

from __future__ import annotations

import re
from typing import Sequence

__all__ = [
    "lr_tags", "is_lr_tag", "lr_tag_order", "PHASE_TAG", "EVENT_TEXT_PREFIX", "EVENT_ROW_PREFIX",
    "CONFIG_TAG", "RESERVED_PREFIX",
]

#: Prefix of every tag lrmon itself writes besides the LR tags (user metrics may not start with it).
RESERVED_PREFIX = "lrmon/"
#: The phase scalar: the index of the step's phase in the schedule's ``phases`` (warmup + cosine: 0 warmup,
#: 1 cosine, 2 past the end), given to sinks as ``RunInfo.phases``.
PHASE_TAG = "lrmon/phase"
#: Events as text (TensorBoard) and as summary keys (W&B): ``EVENT_TEXT_PREFIX + kind``.
EVENT_TEXT_PREFIX = "lrmon/events/"
#: Events as keys of the row of their step (W&B): ``EVENT_ROW_PREFIX + kind``. Not the summary's prefix on
#: purpose: wandb sets a history key's summary to its last logged value, so one key would hold both the row's
#: ``1`` and the summary's step.
EVENT_ROW_PREFIX = "lrmon/event/"
#: The run configuration as text (TensorBoard).
CONFIG_TAG = "lrmon/config"

_LR_TAG = re.compile(r"lr(?:/pg(\d+)|/([A-Za-z_][\w.-]*))?")


def lr_tags(groups: int, names: Sequence[str] | None = None) -> tuple[str, ...]:
    """The LR tag of each parameter group: ``lr/<name>`` for named groups, else ``("lr",)`` for one group and
    ``("lr/pg0", "lr/pg1", ...)`` for several.

    Raises:
      ValueError: ``names`` has not one distinct name per group, or a name that is not an identifier-like
        string (letters, digits, ``_``, ``.``, ``-``; not ``pg<digits>``).
    """
    if names is None:
        return ("lr",) if groups == 1 else tuple(f"lr/pg{g}" for g in range(groups))
    names = list(names)
    if len(names) != groups or len(set(names)) != groups:
        raise ValueError(f"group_names must hold {groups} distinct names (one per parameter group), got {names}")
    for name in names:
        match = _LR_TAG.fullmatch(f"lr/{name}") if isinstance(name, str) else None
        if match is None or match[1] is not None:
            raise ValueError(f"group_names: {name!r} is not a usable group name (letters, digits, _ . -; "
                             "not pg<number>)")
    return tuple(f"lr/{name}" for name in names)


def is_lr_tag(tag: str) -> bool:
    """Whether ``tag`` is one of :func:`lr_tags`' names."""
    return _LR_TAG.fullmatch(tag) is not None


def lr_tag_order(tag: str) -> tuple[int, str]:
    """Sort key of an LR tag: its parameter group (``lr`` is group 0); named groups after, by name."""
    match = _LR_TAG.fullmatch(tag)
    if match is None:
        raise ValueError(f"not an LR tag: {tag!r}")
    return (0, f"{int(match[1] or 0):010d}") if match[2] is None else (1, match[2])
