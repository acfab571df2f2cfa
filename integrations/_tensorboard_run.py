"""Reading lrmon's records back from a TensorBoard logdir, with TensorBoard's own ``EventAccumulator`` (the
reader beside :mod:`lrmon.integrations.tensorboard`'s writer)."""

from __future__ import annotations

import os
import sys
import types

import numpy as np

from lrmon._optional import optional_import
from lrmon.curve import CurveConfig
from lrmon.runs import RunData, RunReadError, config_from_text, dedupe_events
from lrmon.tags import CONFIG_TAG, EVENT_TEXT_PREFIX, PHASE_TAG, is_lr_tag, lr_tag_order

__all__ = ["read_tensorboard_run", "prefer_tensorboard_stub"]


def prefer_tensorboard_stub() -> None:
    """Let TensorBoard's readers use their TensorFlow-free stub when TensorFlow is not loaded yet.

    ``EventAccumulator`` otherwise imports TensorFlow on first use when it is installed (~10 s), only to read
    records the stub reads as well. Done only where the process has not imported TensorFlow or used
    ``tensorboard.compat.tf`` yet; call it in a process of your own (the ``lrmon`` command does).
    """
    if "tensorflow" in sys.modules or "tensorboard.compat.notf" in sys.modules:
        return
    sys.modules["tensorboard.compat.notf"] = types.ModuleType("tensorboard.compat.notf")


def read_tensorboard_run(logdir: str | os.PathLike[str], *, loss_tag: str = "loss") -> RunData:
    """Read lrmon's records from a TensorBoard logdir (event files directly in it)."""
    reader = optional_import("tensorboard.backend.event_processing.event_accumulator",
                             needed_by="reading TensorBoard runs", extra="tensorboard")
    accumulator = reader.EventAccumulator(str(logdir), size_guidance=reader.STORE_EVERYTHING_SIZE_GUIDANCE)
    try:
        accumulator.Reload()
    except Exception as error:  # noqa: BLE001 - corrupted files surface as many error types
        raise RunReadError(f"{logdir}: cannot read the TensorBoard event files: {error}") from error
    tags = accumulator.Tags()
    scalar_tags = set(tags.get("scalars", []))

    def series(tag: str) -> tuple[np.ndarray, np.ndarray]:
        records = accumulator.Scalars(tag)
        return (np.asarray([r.step for r in records], np.int64), np.asarray([r.value for r in records], np.float64))

    lrs = {tag: series(tag) for tag in sorted((t for t in scalar_tags if is_lr_tag(t)), key=lr_tag_order)}
    events: list[tuple[int, str, str]] = []
    config: CurveConfig | None = None
    for tag in tags.get("tensors", []):
        if tag.startswith(EVENT_TEXT_PREFIX):
            kind = tag[len(EVENT_TEXT_PREFIX):]
            for record in accumulator.Tensors(tag):
                values = record.tensor_proto.string_val
                detail = values[0].decode("utf-8", "replace") if values else kind
                events.append((int(record.step), kind, detail))
        elif tag == CONFIG_TAG:
            records = accumulator.Tensors(tag)
            if records and records[-1].tensor_proto.string_val:
                config = config_from_text(records[-1].tensor_proto.string_val[0].decode("utf-8", "replace"))
    events = dedupe_events(events)
    return RunData(
        source=f"TensorBoard logdir {logdir}",
        lrs=lrs,
        loss=series(loss_tag) if loss_tag in scalar_tags else None,
        phase=series(PHASE_TAG) if PHASE_TAG in scalar_tags else None,
        events=events,
        config=config,
        loss_tag=loss_tag,
    )
