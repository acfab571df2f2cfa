"""Calling sinks so that a failing tracker never stops training.

A sink whose method raises is disabled for the rest of the run, with one ``RuntimeWarning`` naming it and the
error; every other sink keeps receiving every record.
"""

from __future__ import annotations

import warnings
from typing import Any, Iterable, Sequence

from lrmon.sinks import Sink

__all__ = ["SinkFailedWarning", "SinkSet"]


class SinkFailedWarning(RuntimeWarning):
    """A sink raised and was disabled; training goes on."""


class SinkSet:
    """The monitor's sinks, each called through a guard; ``active`` lists the ones still enabled."""

    def __init__(self, sinks: Sequence[Sink]) -> None:
        if isinstance(sinks, Sink):
            raise TypeError(f"sinks must be a list of sinks, got one {sinks.name}: pass sinks=[{sinks.name}(...)]")
        if isinstance(sinks, (str, bytes)) or not isinstance(sinks, Iterable):
            raise TypeError(f"sinks must be a list of lrmon.Sink objects, got {type(sinks).__name__}")
        for index, sink in enumerate(sinks):
            if not isinstance(sink, Sink):
                raise TypeError(f"sinks[{index}] must be an lrmon.sinks.Sink, got {type(sink).__name__}")
        self.active: list[Sink] = list(sinks)
        self.failed: dict[str, BaseException] = {}

    def call(self, method: str, *args: Any) -> list[Any]:
        """Call ``sink.<method>(*args)`` on every active sink and return the results of those that succeeded.

        A sink that raises is disabled, with one warning naming it.
        """
        results = []
        for sink in list(self.active):
            try:
                results.append(getattr(sink, method)(*args))
            except Exception as error:  # noqa: BLE001 - any tracker error must not stop training
                self.active.remove(sink)
                self.failed[sink.name] = error
                self.report_failure(sink, method, error)
        return results

    def report_failure(self, sink: Sink, method: str, error: Exception) -> None:
        """Say that ``sink`` failed in ``method`` and was disabled: one ``SinkFailedWarning``."""
        warnings.warn(
            f"lrmon: sink {sink.name} failed in {method}() and is disabled; training goes on: "
            f"{type(error).__name__}: {error}",
            SinkFailedWarning,
            stacklevel=4,
        )

    def identities(self) -> dict[str, Any]:
        """Merged ``identity()`` of the active sinks."""
        merged: dict[str, Any] = {}
        for identity in self.call("identity"):
            merged.update(identity)
        return merged
