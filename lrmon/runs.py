"""Logged runs, whatever tracker holds them: :class:`RunData`, and finding and reading a run directory.

Each tracker's reader lives beside its writer (:func:`lrmon.integrations.tensorboard.read_tensorboard_run`,
:func:`lrmon.integrations.wandb.read_wandb_run`, each built on that tracker's own reader); :func:`read_run` finds
which one a path holds and calls it (importing that tracker only then).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from lrmon.curve import ConfigFields, CurveConfig
from lrmon.schedules._protocol import CURVE_KEY, Curve, curve_from_dict

__all__ = ["RunData", "RunReadError", "find_run", "read_run", "config_from_mapping", "config_from_text",
           "dedupe_events"]


class RunReadError(Exception):
    """A run directory that cannot be read or plotted; the message says why."""


@dataclasses.dataclass
class RunData:
    """A logged run, whatever tracker it came from.

    ``lrs`` maps each LR tag (``lr`` or ``lr/pg<i>``) to ``(steps, values)``; ``loss`` is ``(steps, values)`` or
    ``None``; ``phase`` the ``lrmon/phase`` series or ``None``; ``events`` ``(step, kind, detail)`` in step order;
    ``config`` the schedule configuration the run recorded, if any; ``source`` says what was read.
    """

    source: str
    lrs: dict[str, tuple[np.ndarray, np.ndarray]]
    loss: tuple[np.ndarray, np.ndarray] | None
    phase: tuple[np.ndarray, np.ndarray] | None
    events: list[tuple[int, str, str]]
    config: Curve | None
    loss_tag: str = "loss"


def _has_event_files(directory: Path) -> bool:
    return any(p.name.startswith("events.out.tfevents.") and p.is_file() for p in directory.iterdir())


def _wandb_run_dirs(directory: Path) -> list[Path]:
    """Offline run directories (holding ``run-*.wandb``) at ``directory``, in it, or in its ``wandb`` folder."""
    if any(directory.glob("run-*.wandb")):
        return [directory]
    for base in (directory, directory / "wandb"):
        if not base.is_dir():
            continue
        latest = base / "latest-run"
        if latest.is_dir() and any(latest.glob("run-*.wandb")):
            return [latest.resolve()]
        runs = sorted(p for p in base.iterdir() if p.is_dir() and any(p.glob("run-*.wandb")))
        if runs:
            return runs
    return []


def find_run(path: str | os.PathLike[str]) -> tuple[str, Path]:
    """``("tensorboard" | "wandb", directory)`` for a run path; :class:`RunReadError` if it is neither."""
    directory = Path(path)
    if not directory.exists():
        raise RunReadError(f"{directory}: no such file or directory")
    if directory.is_file():
        if directory.suffix == ".wandb":
            return "wandb", directory.parent
        if directory.name.startswith("events.out.tfevents."):
            return "tensorboard", directory.parent
        raise RunReadError(f"{directory}: not a TensorBoard logdir or a W&B offline run directory")
    if _has_event_files(directory):
        return "tensorboard", directory
    wandb_runs = _wandb_run_dirs(directory)
    if len(wandb_runs) == 1:
        return "wandb", wandb_runs[0]
    if len(wandb_runs) > 1:
        names = ", ".join(str(p) for p in wandb_runs[:5])
        raise RunReadError(f"{directory} holds {len(wandb_runs)} W&B runs; pass one of them: {names}")
    logdirs = sorted({p.parent for p in directory.rglob("events.out.tfevents.*") if p.is_file()})
    if len(logdirs) == 1:
        return "tensorboard", logdirs[0]
    if len(logdirs) > 1:
        names = ", ".join(str(p) for p in logdirs[:5])
        raise RunReadError(f"{directory} holds {len(logdirs)} TensorBoard runs; pass one of them: {names}")
    raise RunReadError(f"{directory}: no TensorBoard event files and no W&B offline run (run-*.wandb) found")


def read_run(path: str | os.PathLike[str], *, loss_tag: str = "loss") -> RunData:
    """Read a TensorBoard logdir or a W&B offline run directory (see :func:`find_run`)."""
    kind, directory = find_run(path)
    if kind == "tensorboard":
        from lrmon.integrations.tensorboard import read_tensorboard_run

        return read_tensorboard_run(directory, loss_tag=loss_tag)
    from lrmon.integrations.wandb import read_wandb_run

    return read_wandb_run(directory, loss_tag=loss_tag)


def config_from_text(text: str) -> Curve | None:
    """The schedule configuration in a recorded configuration text (JSON, maybe in a Markdown code fence)."""
    text = text.strip().removeprefix("```json").removesuffix("```").strip()
    try:
        return config_from_mapping(json.loads(text))
    except ValueError:
        return None


#: Keys the monitor adds to the schedule's ``to_dict()`` in a run's recorded configuration.
_MONITOR_KEYS = ("schedule", "log_every", "step_axis")


def config_from_mapping(data: Any) -> Curve | None:
    """The schedule configuration in a run's recorded configuration (the monitor's flat dict, W&B's ``{"value":
    ...}`` form, or a clu writer's flattened ``base_lrs/<i>`` keys), or ``None`` if it holds none."""
    if not isinstance(data, Mapping):
        return None
    if "value" in data and isinstance(data["value"], Mapping) and len(data) <= 2:  # W&B's {"value": ...} form
        data = data["value"]
    if "base_lrs" not in data:  # flattened by a clu writer: base_lrs/0, base_lrs/1, ...
        flat = sorted((int(key.split("/", 1)[1]), value) for key, value in data.items()
                      if re.fullmatch(r"base_lrs/\d+", str(key)))
        data = {**data, "base_lrs": [value for _, value in flat]} if flat else data
    try:
        if CURVE_KEY in data:  # another schedule: its to_dict() beside the monitor's own keys
            return curve_from_dict({key: value for key, value in data.items() if key not in _MONITOR_KEYS})
        return CurveConfig.from_dict({name: data[name] for name in ConfigFields.__struct_fields__ if name in data})
    except ValueError:
        return None


def dedupe_events(events: list[tuple[int, str, str]]) -> list[tuple[int, str, str]]:
    """Events ``(step, kind, detail)`` once per ``(step, kind)`` (the last detail wins), in step order."""
    seen: dict[tuple[int, str], str] = {}
    for step, kind, detail in events:
        seen[(step, kind)] = detail
    return sorted(((step, kind, detail) for (step, kind), detail in seen.items()), key=lambda e: (e[0], e[1]))
