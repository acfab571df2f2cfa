"""Helpers shared by the tracker sinks: unique file names, the configuration flattened or as JSON.

Nothing here imports a tracker library.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from typing import Any, Mapping

__all__ = ["unique_suffix", "flatten_config", "config_json"]

_COUNTER = itertools.count()


def unique_suffix() -> str:
    """A file-name suffix unique to this process and call, sorting in creation order within one second.

    Nanosecond time first (fixed width), then the process id and a per-process counter.
    """
    return f".{time.time_ns():020d}.{os.getpid()}.{next(_COUNTER)}.lrmon"


def flatten_config(config: Mapping[str, Any], prefix: str = "", sep: str = "/") -> dict[str, bool | int | float | str]:
    """Flatten nested mappings and sequences into ``{"a/b/0": value}`` with bool/int/float/str leaves.

    Other leaves (``None``, objects) become their ``str``; an empty sequence becomes ``"[]"``.
    """
    flat: dict[str, bool | int | float | str] = {}
    for key, value in config.items():
        name = f"{prefix}{sep}{key}" if prefix else str(key)
        if type(value).__module__ == "numpy" and getattr(value, "ndim", None) == 0:
            value = value.item()  # numpy scalar -> Python scalar
        if isinstance(value, Mapping):
            flat.update(flatten_config(value, name, sep))
        elif isinstance(value, (list, tuple)):
            if not value:
                flat[name] = "[]"
            for index, item in enumerate(value):
                flat.update(flatten_config({str(index): item}, name, sep))
        elif isinstance(value, (bool, int, float, str)):
            flat[name] = value
        else:
            flat[name] = str(value)
    return flat


def config_json(config: Mapping[str, Any]) -> str:
    """The configuration as indented, key-sorted JSON (``str`` for anything JSON cannot encode)."""
    return json.dumps(config, indent=2, sort_keys=True, default=str)
