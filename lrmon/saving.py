"""Saving the monitor's state by the resume invariant, off the training thread.

**The invariant.** A state that names step ``S`` is stored with a tracker only once every record below ``S`` is
durable in that tracker: the state save runs on the courier (:mod:`lrmon.courier`), after every record sent before
it, and first calls each sink's ``flush()``, which returns only when what the sink was given is durable (TensorBoard:
written and ``fsync``\\ ed; W&B: acknowledged by wandb-core as written to the run's ``.wandb`` file; a
``ProcessSink``: confirmed by its child). A sink whose flush fails is disabled and never gets a newer state.

The local state file names every sink with the step below which that sink holds every record
(``holds_steps_below``: ``S`` for those that flushed, the step of their last good save for those that failed), so
a resume from it knows what each tracker really has. Rows a sink was told were thinned (a ``thinned`` event) are
the only exception: they were dropped on purpose and said so.

**Faults never stop training.** A state directory that cannot be written (full, removed, read-only) gets one
warning; the state is then written to a private temporary directory so the trackers still get it, and the user's
directory is tried again at the next save.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

from lrmon.courier import Courier
from lrmon.sinks import RunInfo, Sink
from lrmon.state import STATE_FILE_NAME, MonitorState, atomic_write, encode_state

__all__ = ["StateSaver", "sink_keys", "HOLDS_KEY"]

#: Key, in each tracker's entry of a state, of the step below which that tracker holds every record.
HOLDS_KEY = "holds_steps_below"


def sink_keys(sinks: list[Sink]) -> list[str]:
    """The key of each sink's entry in a state's ``trackers``: its name, ``#2``, ``#3``, ... for repeats."""
    keys, seen = [], {}
    for sink in sinks:
        seen[sink.name] = seen.get(sink.name, 0) + 1
        keys.append(sink.name if seen[sink.name] == 1 else f"{sink.name}#{seen[sink.name]}")
    return keys


class StateSaver:
    """Writes states to the local state file and through every sink, on the courier's thread."""

    def __init__(self, courier: Courier, sinks: list[Sink], state_dir: Path | None,
                 previous: dict[str, Any] | None = None) -> None:
        self._courier = courier
        self._keys = dict(zip(map(id, sinks), sink_keys(sinks)))
        self._sinks = list(sinks)
        self._state_dir = state_dir
        self._private_dir: Path | None = None
        self._warned_dir = False
        #: per sink key: its entry in the last state written (identity and ``holds_steps_below``)
        self.trackers: dict[str, Any] = dict(previous or {})
        #: ``(step, path)`` of the last state file written
        self.last: tuple[int, Path] | None = None

    def open_sinks(self, info: RunInfo) -> None:
        """Open each sink with its entry of the resumed state (``info.previous``: what it held then), give it the
        configuration, then record its identity (e.g. its W&B run id) before any save, so that even a state taken
        before the first save (``monitor.state_dict()`` in an early model checkpoint) names the trackers' runs."""
        active = self._courier.sinks
        for sink in self._sinks:
            previous = self.trackers.get(self._keys[id(sink)], {})
            active.call_one(sink, Sink.open, dataclasses.replace(info, previous=previous))
        active.call(Sink.write_config, info.config)
        for sink in self._sinks:
            ok, identity = active.call_one(sink, Sink.identity)
            if ok and identity:
                key = self._keys[id(sink)]
                self.trackers[key] = {HOLDS_KEY: None, **self.trackers.get(key, {}), **identity}

    def save(self, state: MonitorState) -> None:
        """Store ``state`` (its ``trackers`` filled in here) once every record sent before it is durable."""
        self._courier.submit(lambda: self._store(state))

    def close(self) -> None:
        """Remove the private directory (the trackers and the user's directory keep their copies)."""
        if self._private_dir is not None:
            shutil.rmtree(self._private_dir, ignore_errors=True)

    # -- on the courier's thread -----------------------------------------------------------------------------
    def _store(self, state: MonitorState) -> None:
        active = self._courier.sinks
        durable = [sink for sink in self._sinks if active.call_one(sink, Sink.flush)[0]]
        trackers = dict(self.trackers)
        for sink in self._sinks:
            key = self._keys[id(sink)]
            entry = dict(trackers.get(key, {}))
            ok, identity = active.call_one(sink, Sink.identity) if sink in durable else (False, None)
            if ok:
                entry.update(identity or {}, **{HOLDS_KEY: state.step})
            else:
                entry.update(failed=True)
                entry.setdefault(HOLDS_KEY, None)
            trackers[key] = entry
        state = dataclasses.replace(state, trackers=trackers)
        path = self._write(encode_state(state))
        self.trackers = trackers
        if path is None:
            return
        self.last = (state.step, path)
        for sink in durable:
            active.call_one(sink, Sink.save_state, path, state.step)

    def _write(self, data: bytes) -> Path | None:
        """Write the state file: the user's directory if possible, else a private one; ``None`` if neither."""
        if self._state_dir is not None:
            try:
                return self._write_into(self._state_dir, data)
            except OSError as error:
                self._warn(f"cannot write the state file in {self._state_dir} ({error}); training goes on and the "
                           "trackers still get the state")
        try:
            if self._private_dir is None:
                self._private_dir = Path(tempfile.mkdtemp(prefix="lrmon-state-"))
            return self._write_into(self._private_dir, data)
        except OSError as error:
            self._warn(f"cannot write the state file anywhere ({error}); this save is skipped, training goes on")
            return None

    @staticmethod
    def _write_into(directory: Path, data: bytes) -> Path:
        os.makedirs(directory, exist_ok=True)
        path = directory / STATE_FILE_NAME
        atomic_write(path, data)
        return path

    def _warn(self, message: str) -> None:
        if not self._warned_dir:
            self._warned_dir = True
            warnings.warn(f"lrmon: {message}", RuntimeWarning, stacklevel=2)
