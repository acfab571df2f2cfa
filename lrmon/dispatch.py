"""Calling sinks so that a failing tracker never stops training.

A sink whose method raises is disabled for the rest of the run, with one ``RuntimeWarning`` naming it and the
error; every other sink keeps receiving every record.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any, Callable, Concatenate, Iterable, ParamSpec, Sequence, TypeVar

from lrmon.sinks import Sink
from lrmon.state import StateError

__all__ = ["SinkFailedWarning", "SinkSet"]

P = ParamSpec("P")
R = TypeVar("R")


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

    def call(self, method: Callable[Concatenate[Sink, P], R], *args: P.args, **kwargs: P.kwargs) -> list[R]:
        """Call ``method`` (a :class:`Sink` function, e.g. ``Sink.write_scalars``) on every active sink and return
        the results of those that succeeded.

        A sink that raises is disabled, with one warning naming it.
        """
        results = []
        for sink in list(self.active):
            ok, result = self.call_one(sink, method, *args, **kwargs)
            if ok:
                results.append(result)
        return results

    def call_one(self, sink: Sink, method: Callable[Concatenate[Sink, P], R], *args: P.args,
                 **kwargs: P.kwargs) -> tuple[bool, R | None]:
        """Call ``method`` on ``sink`` if the sink is active: ``(succeeded, result)``; a sink that raises is
        disabled, with one warning naming it. ``method`` is looked up on the sink by name, so overrides run.

        A :class:`~lrmon.state.StateError` raised by ``open`` is the exception: it says the resume cannot be right
        (e.g. the state names another run than the sink's), which must stop the monitor's construction.
        """
        if sink not in self.active:
            return False, None
        try:
            return True, getattr(sink, method.__name__)(*args, **kwargs)
        except StateError:
            if method is Sink.open:
                raise
            error = sys.exc_info()[1]
        except Exception as caught:  # noqa: BLE001 - any tracker error must not stop training
            error = caught
        self.active.remove(sink)
        self.failed[sink.name] = error
        self.report_failure(sink, method.__name__, error)
        return False, None

    def report_failure(self, sink: Sink, method: str, error: Exception) -> None:
        """Say that ``sink`` failed in its method named ``method`` and was disabled: one ``SinkFailedWarning``."""
        warnings.warn(
            f"lrmon: sink {sink.name} failed in {method}() and is disabled; training goes on: "
            f"{type(error).__name__}: {error}",
            SinkFailedWarning,
            stacklevel=4,
        )

    def identities(self) -> dict[str, Any]:
        """Merged ``identity()`` of the active sinks (what a sink wrapping several, e.g. ``ProcessSink``, reports)."""
        merged: dict[str, Any] = {}
        for identity in self.call(Sink.identity):
            merged.update(identity)
        return merged
