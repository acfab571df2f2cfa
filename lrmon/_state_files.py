"""State files: the atomic write, and reading a state from a file or from the directories trackers leave.

:func:`write_state_file` replaces the file atomically: a temporary file ``.<name>.<hex>.tmp`` in the same
directory is written and ``fsync``-ed, ``os.replace``-d over the file, then the directory is ``fsync``-ed, so a
crash at any point leaves the old or the new complete file. :func:`read_state` accepts the sources listed in
:mod:`lrmon.state`.
"""

from __future__ import annotations

import json
import os
import re
import stat
import uuid
from pathlib import Path
from typing import Any

from lrmon._state_codec import MAX_STATE_BYTES, canonical_json, decode_state, encode_state
from lrmon._state_model import MonitorState
from lrmon._state_schema import StateError, show

__all__ = [
    "ARTIFACT_MARKER_NAME", "ARTIFACT_TYPE", "LOCAL_ARTIFACT_DIR", "STATE_FILE_NAME", "atomic_write",
    "check_artifact_type", "copy_state_file", "read_state", "wandb_run_dirs", "write_artifact_marker",
    "write_state_file",
]

#: Name of the state file, in a directory, a TensorBoard logdir and a W&B artifact alike.
STATE_FILE_NAME = "lrmon_state.json"
#: Name of the marker file that identifies a W&B artifact directory holding a state.
ARTIFACT_MARKER_NAME = "lrmon_artifact.json"
#: Folder inside a W&B run directory where the W&B sink keeps a copy of its latest state artifact's files.
LOCAL_ARTIFACT_DIR = "lrmon-artifact"
#: W&B artifact type of state artifacts (also the ``type`` in the marker file).
ARTIFACT_TYPE = "lr-schedule-state"


def _fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable (POSIX; a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` by a file holding ``data``: the old or the new complete file exists at every instant."""
    directory = path.parent
    temp = directory / f".{path.name}.{uuid.uuid4().hex}.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise
    _fsync_directory(directory)


def write_state_file(path: str | os.PathLike[str], state: MonitorState) -> Path:
    """Write ``state`` to ``path`` atomically (see the module docstring) and return the path."""
    path = Path(path)
    atomic_write(path, encode_state(state))
    return path


def copy_state_file(source: str | os.PathLike[str], destination: str | os.PathLike[str]) -> Path:
    """Copy a state file to ``destination`` atomically (as :func:`write_state_file` writes); return the path."""
    destination = Path(destination)
    atomic_write(destination, Path(source).read_bytes())
    return destination


def write_artifact_marker(directory: str | os.PathLike[str]) -> Path:
    """Write the marker :data:`ARTIFACT_MARKER_NAME` into ``directory`` (a W&B artifact's staging directory)."""
    path = Path(directory) / ARTIFACT_MARKER_NAME
    marker = {"type": ARTIFACT_TYPE, "state_file": STATE_FILE_NAME}
    atomic_write(path, canonical_json(marker))
    return path


def check_artifact_type(artifact_type: Any, *, source: str = "<artifact>") -> None:
    """Raise :class:`StateError` unless ``artifact_type`` (e.g. a W&B ``artifact.type``) is :data:`ARTIFACT_TYPE`."""
    if artifact_type != ARTIFACT_TYPE or not isinstance(artifact_type, str):
        raise StateError(
            f"artifact of the wrong type: {show(artifact_type)}, expected {ARTIFACT_TYPE!r} "
            "(lrmon resumes from the state artifacts its W&B sink logs)",
            source,
        )


def _read_bytes(path: Path) -> bytes:
    """The file's bytes (at most one more than a state may have); a FIFO, device or socket is refused unopened."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise StateError("not a regular file (a FIFO, device or socket is never read)", str(path))
        with open(path, "rb") as file:
            data = file.read(MAX_STATE_BYTES + 1)
    except OSError as error:
        raise StateError(f"cannot be read: {error.strerror or error}", str(path)) from error
    return data


def _check_marker(directory: Path) -> None:
    """If ``directory`` holds an artifact marker, check that it names a state artifact."""
    marker = directory / ARTIFACT_MARKER_NAME
    if not os.path.isfile(marker):
        return
    data = _read_bytes(marker)
    try:
        content = json.loads(data.decode("utf-8")) if len(data) <= MAX_STATE_BYTES else None
    except (ValueError, RecursionError):
        content = None
    if not isinstance(content, dict) or not isinstance(content.get("type"), str):
        raise StateError(f"artifact marker {ARTIFACT_MARKER_NAME} is not a JSON object with a string 'type'",
                         str(directory))
    check_artifact_type(content["type"], source=str(directory))


def read_state(source: str | os.PathLike[str]) -> MonitorState:
    """Read a state from a state file, a TensorBoard logdir or a W&B artifact directory holding one.

    Raises :class:`StateError` if there is nothing to read ("no lrmon_state.json in <dir>"), if a directory's
    artifact marker names another artifact type, or if the document is invalid. Reading changes nothing.
    """
    path = Path(source)
    if not _is_dir(path):
        return decode_state(_read_bytes(path), source=str(path))
    run_dirs = wandb_run_dirs(path)[::-1]
    if (path / STATE_FILE_NAME).exists() or (path / LOCAL_ARTIFACT_DIR).is_dir() or not run_dirs:
        return _read_state_dir(_state_dir_of(path))
    errors = []
    for run_dir in run_dirs:  # newest first: the latest attempt of the run that saved a state
        try:
            return _read_state_dir(_state_dir_of(run_dir))
        except StateError as error:
            errors.append(f"{run_dir.name}: {error}")
    raise StateError(f"no valid state in the W&B runs of {path} ({'; '.join(errors)})", str(path))


def _is_dir(path: Path) -> bool:
    try:
        return stat.S_ISDIR(os.stat(path).st_mode)
    except FileNotFoundError:
        raise StateError("no such file or directory", str(path)) from None
    except OSError as error:
        raise StateError(f"cannot be read: {error.strerror or error}", str(path)) from error


def _state_dir_of(directory: Path) -> Path:
    """``directory``, or a W&B run directory's :data:`LOCAL_ARTIFACT_DIR` when it has no state of its own."""
    local = directory / LOCAL_ARTIFACT_DIR
    return local if not (directory / STATE_FILE_NAME).exists() and local.is_dir() else directory


def _read_state_dir(directory: Path) -> MonitorState:
    _check_marker(directory)
    state_path = directory / STATE_FILE_NAME
    if not os.path.lexists(state_path):
        raise StateError(f"no {STATE_FILE_NAME} in {directory}", str(directory))
    return decode_state(_read_bytes(state_path), source=str(state_path))


#: A W&B run directory's name: ``[offline-]run-<YYYYmmdd_HHMMSS>-<run id>[-<n>]`` (``-<n>`` when attempts of one
#: run start within the same second).
_WANDB_RUN_DIR = re.compile(r"(?:offline-)?run-(?P<time>\d{8}_\d{6})-(?P<id>[^/]+?)(?:-(?P<n>\d+))?")


def wandb_run_dirs(directory: str | os.PathLike[str], run_id: str | None = None) -> list[Path]:
    """The W&B run directories in ``directory`` or in its ``wandb/`` (of ``run_id`` only, if given), in start order:
    the order ``wandb sync`` uploads the attempts of one run in."""
    found = []
    for parent in (Path(directory), Path(directory) / "wandb"):
        for run_dir in parent.glob("*run-*") if parent.is_dir() else ():
            match = _WANDB_RUN_DIR.fullmatch(run_dir.name)
            if match and run_dir.is_dir() and not run_dir.is_symlink() and run_id in (None, match["id"]):
                found.append((match["time"], int(match["n"] or 0), run_dir))
    return [run_dir for *_, run_dir in sorted(found)]
