"""The monitor's state document: what a run needs to resume, as checksummed JSON (never pickle, never eval).

A state is a :class:`MonitorState`. On disk and in trackers it is one JSON object, written by
:func:`encode_state` / :func:`write_state_file` and read back by :func:`decode_state` / :func:`read_state`::

    {
      "checksum": "<sha256 hex of the canonical JSON of every other field>",
      "config": {"base_lrs": [0.001], "eta_min": 0.0, "total_steps": 10000,
                 "warmup_start_lr": 0.0, "warmup_steps": 1000},
      "emitted_events": [["warmup_start", 0], ["warmup_end", 999]],
      "last_logged_step": 1499,
      "monitor_config": {"log_every": 10},
      "schedule_class": "WarmupCosineSchedule",
      "schema": "lrmon.monitor-state",
      "step": 1500,
      "trackers": {"wandb": {"project": "demo", "run_id": "abc123"}},
      "version": 1,
      "written_at": "2024-05-01T12:00:00.000000+00:00"
    }

*Canonical JSON* is ``json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
allow_nan=False)`` encoded as UTF-8; :func:`encode_state` returns exactly the canonical JSON of the whole document
(the example above is indented only for reading). The checksum is verified on the *parsed* document, so it does
not depend on the formatting of the file.

Reading is strict: every problem -- bytes that are not UTF-8, not JSON, truncated, a checksum mismatch, a missing,
unknown or mistyped field, an invalid schedule configuration, a document of another schema or of a newer version
-- raises :class:`StateError` (a ``ValueError``) saying what is wrong and where, and nothing else is ever raised
for any input bytes. Integers are never booleans or floats; ``NaN``/``Infinity`` and numbers that overflow a float
are rejected; objects may not repeat a key. Value rules:

* ``step`` (steps completed = the step training resumes at), ``last_logged_step`` and event steps are integers in
  ``[0, MAX_STEP]``; ``last_logged_step`` (or ``null``) and every event step are ``<= step``.
* ``emitted_events`` is a list of ``[kind, step]`` pairs, ``kind`` one of :data:`STATE_EVENT_KINDS`. Event steps
  are not checked against ``config.event_steps()``: a run resumed with ``allow_config_change`` keeps the events
  emitted under its earlier configuration.
* ``trackers`` and ``monitor_config`` are JSON objects: string keys, finite numbers, at most
  :data:`MAX_JSON_DEPTH` levels deep.
* ``written_at`` is an ISO 8601 time (``datetime.fromisoformat``); ``schedule_class`` a Python identifier.

Files and trackers
------------------
The state file is always named :data:`STATE_FILE_NAME` (``lrmon_state.json``).
:func:`write_state_file` replaces it atomically (temporary file in the same directory, ``fsync``, ``os.replace``,
``fsync`` of the directory): a crash at any point leaves the old or the new complete file. A process killed during
a write may leave a hidden temporary file ``.lrmon_state.json.<hex>.tmp`` behind; readers ignore it and it may be
deleted.

:func:`read_state` accepts the state file itself or a directory holding it:

* a state directory or a TensorBoard logdir: ``lrmon_state.json`` in it;
* a W&B run directory (``offline-run-...``): the copy of its latest state artifact in :data:`LOCAL_ARTIFACT_DIR`;
* a W&B root directory (``wandb/``, or the ``dir=`` given to the W&B sink, holding ``wandb/``): the newest run
  directory in it whose copy is a valid state (several attempts of one run each leave a directory);
* a W&B artifact directory (what ``artifact.download()`` returns). The W&B sink logs artifacts of type
  :data:`ARTIFACT_TYPE` (``"lr-schedule-state"``) holding ``lrmon_state.json`` and a marker file
  :data:`ARTIFACT_MARKER_NAME` (``lrmon_artifact.json``, written by :func:`write_artifact_marker`) whose content is
  ``{"type": "lr-schedule-state", "state_file": "lrmon_state.json"}``. A directory whose marker names another
  type is refused with "artifact of the wrong type"; a directory without a marker is read as a plain directory.
  Before downloading, a sink can check the W&B artifact's own type with :func:`check_artifact_type`.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import math
import numbers
import os
import re
import stat
import uuid
from pathlib import Path
from typing import Any, Mapping

from lrmon.curve import EVENT_KINDS, CurveConfig

__all__ = [
    "ARTIFACT_MARKER_NAME",
    "LOCAL_ARTIFACT_DIR",
    "wandb_run_dirs",
    "ARTIFACT_TYPE",
    "MAX_JSON_DEPTH",
    "MAX_STATE_BYTES",
    "MAX_STEP",
    "STATE_EVENT_KINDS",
    "STATE_FILE_NAME",
    "STATE_SCHEMA",
    "STATE_VERSION",
    "MonitorState",
    "StateError",
    "atomic_write",
    "check_artifact_type",
    "copy_state_file",
    "decode_state",
    "describe_state",
    "encode_state",
    "read_state",
    "state_from_dict",
    "state_to_dict",
    "utc_timestamp",
    "write_artifact_marker",
    "write_state_file",
]

#: Value of the ``schema`` field of every state document.
STATE_SCHEMA = "lrmon.monitor-state"
#: The state document version this lrmon writes and reads.
STATE_VERSION = 1
#: Name of the state file, in a directory, a TensorBoard logdir and a W&B artifact alike.
STATE_FILE_NAME = "lrmon_state.json"
#: Name of the marker file that identifies a W&B artifact directory holding a state.
ARTIFACT_MARKER_NAME = "lrmon_artifact.json"
#: Folder inside a W&B run directory where the W&B sink keeps a copy of its latest state artifact's files.
LOCAL_ARTIFACT_DIR = "lrmon-artifact"
#: W&B artifact type of state artifacts (also the ``type`` in the marker file).
ARTIFACT_TYPE = "lr-schedule-state"
#: Event kinds a state may record: the schedule's events plus the monitor's ``resume`` and ``thinned``.
STATE_EVENT_KINDS: tuple[str, ...] = EVENT_KINDS + ("resume", "thinned")
#: Largest step a state may hold: the schedule evaluates steps as int32 (JAX's default integer), so a larger one
#: could not be resumed.
MAX_STEP = 2**31 - 1
#: Largest state document accepted, in bytes.
MAX_STATE_BYTES = 16 * 1024 * 1024
#: Deepest nesting allowed inside ``trackers`` and ``monitor_config`` (the field's own object is level 1).
MAX_JSON_DEPTH = 32

_FIELD_NAMES = (
    "schema", "version", "schedule_class", "config", "step", "emitted_events", "last_logged_step", "trackers",
    "monitor_config", "written_at",
)
_CHECKSUM = "checksum"
_CHECKSUM_PATTERN = re.compile(r"[0-9a-f]{64}")
_MAX_INT_DIGITS = 64  # longest integer literal accepted in a document (steps need at most 19 digits)
_MAX_SHOWN = 60  # longest rendering of an offending value in a message


class StateError(ValueError):
    """A state document or source that cannot be used; the message says what is wrong and where.

    ``source`` names where the document came from (a path, ``"<bytes>"``) or is ``None`` for a
    :class:`MonitorState` built in code; ``problem`` is the message without that prefix.
    """

    def __init__(self, problem: str, source: str | None = None) -> None:
        self.problem = problem
        self.source = source
        prefix = f"lrmon state {source}" if source is not None else "invalid lrmon state"
        super().__init__(f"{prefix}: {problem}")


class _Problem(Exception):
    """Internal: a problem found while validating, turned into a :class:`StateError` with its source."""


def utc_timestamp() -> str:
    """The current time in UTC as an ISO 8601 string (the default ``written_at``)."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat()


# -- the state -----------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True, kw_only=True)
class MonitorState:
    """Everything the monitor needs to resume a run (keyword-only; validated and normalized on construction).

    Attributes:
      schedule_class: name of the schedule's class, e.g. ``"WarmupCosineSchedule"``.
      config: the schedule's configuration.
      step: number of train steps completed, i.e. the step training resumes at (the schedule's ``last_epoch``).
      emitted_events: ``(kind, step)`` pairs already emitted, in emission order (normalized to a tuple of tuples).
      last_logged_step: the last step logged to the trackers, or ``None`` if none was.
      trackers: JSON data identifying each tracker's run, e.g. ``{"wandb": {"run_id": ..., "project": ...}}``.
      monitor_config: the monitor's own settings as JSON data, e.g. ``{"log_every": 10}``.
      written_at: ISO 8601 time the state was captured (default: now, UTC).
      schema, version: document identity; always :data:`STATE_SCHEMA` and :data:`STATE_VERSION`.

    Invalid values raise :class:`StateError`. ``trackers`` and ``monitor_config`` are deep-copied into plain JSON
    form (tuples become lists, numbers plain ``int``/``float``), so the state equals its decoded encoding.
    """

    schedule_class: str
    config: CurveConfig
    step: int
    emitted_events: tuple[tuple[str, int], ...] = ()
    last_logged_step: int | None = None
    trackers: dict[str, Any] = dataclasses.field(default_factory=dict)
    monitor_config: dict[str, Any] = dataclasses.field(default_factory=dict)
    written_at: str = dataclasses.field(default_factory=utc_timestamp)
    schema: str = STATE_SCHEMA
    version: int = STATE_VERSION

    __hash__ = None  # type: ignore[assignment]  # holds dicts

    def __post_init__(self) -> None:
        try:
            for name, value in _validated_fields(self).items():
                object.__setattr__(self, name, value)
        except _Problem as problem:
            raise StateError(str(problem)) from None

    def schedule_state_dict(self) -> dict[str, Any]:
        """The state in ``WarmupCosineSchedule.state_dict()`` form, for ``schedule.load_state_dict``."""
        from lrmon.schedule import SCHEDULE_STATE_VERSION

        return {
            "version": SCHEDULE_STATE_VERSION,
            "class": self.schedule_class,
            "config": self.config.to_dict(),
            "last_epoch": self.step,
        }


# -- validation of values ------------------------------------------------------------------------------------------
def _show(value: Any) -> str:
    """A short rendering of an offending value (never recursing into containers, never huge)."""
    if isinstance(value, bool) or isinstance(value, float):
        return f"{value!r} (a {type(value).__name__})"
    if isinstance(value, int) and value.bit_length() > 128:
        return f"an integer of {value.bit_length()} bits"
    if value is None or isinstance(value, (int, str)):
        text = repr(value)
        return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."
    if isinstance(value, (list, tuple, dict)):
        return f"a {type(value).__name__} of length {len(value)}"
    return f"a {type(value).__name__}"


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_step(where: str, value: Any, *, maximum: int = MAX_STEP, bound: str = "") -> int:
    """``value`` as an int in ``[0, maximum]``; ``bound`` explains a maximum other than :data:`MAX_STEP`."""
    if not _is_int(value):
        raise _Problem(f"{where} must be an integer >= 0, got {_show(value)}")
    value = int(value)
    if value < 0:
        raise _Problem(f"{where} must be an integer >= 0, got {_show(value)}")
    if value > maximum:
        limit = f"<= {maximum}{bound}" if bound else f"<= {maximum} (MAX_STEP: the schedule evaluates int32 steps)"
        raise _Problem(f"{where} is out of range: must be {limit}, got {_show(value)}")
    return value


def _check_schema(value: Any) -> None:
    if value != STATE_SCHEMA or not isinstance(value, str):
        raise _Problem(f"not an lrmon monitor state: field 'schema' is {_show(value)}, expected {STATE_SCHEMA!r}")


def _check_version(value: Any) -> None:
    if not _is_int(value):
        raise _Problem(f"field 'version' must be an integer, got {_show(value)}")
    if value > STATE_VERSION:
        raise _Problem(
            f"written by a newer lrmon (state version {_show(value)}; this lrmon reads version {STATE_VERSION}): "
            "upgrade lrmon to resume from it"
        )
    if value != STATE_VERSION:
        raise _Problem(f"unknown state version {_show(value)} (this lrmon reads version {STATE_VERSION})")


def _check_schedule_class(value: Any) -> str:
    if not isinstance(value, str) or not value.isidentifier():
        raise _Problem(f"field 'schedule_class' must be a class name (a Python identifier), got {_show(value)}")
    return value


def _check_config(value: Any) -> CurveConfig:
    if not isinstance(value, CurveConfig):
        raise _Problem(f"field 'config' must be a CurveConfig, got {_show(value)}")
    return value


def _check_events(value: Any, step: int) -> tuple[tuple[str, int], ...]:
    if not isinstance(value, (list, tuple)):
        raise _Problem(f"field 'emitted_events' must be a list of [kind, step] pairs, got {_show(value)}")
    events = []
    for index, pair in enumerate(value):
        where = f"field 'emitted_events'[{index}]"
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise _Problem(f"{where} must be a [kind, step] pair, got {_show(pair)}")
        kind, event_step = pair
        if not isinstance(kind, str) or kind not in STATE_EVENT_KINDS:
            raise _Problem(f"{where} has an unknown event kind {_show(kind)} (known: {', '.join(STATE_EVENT_KINDS)})")
        event_step = _check_step(f"{where} step", event_step, maximum=step, bound=" (the state's step)")
        events.append((kind, event_step))
    return tuple(events)


def _check_last_logged(value: Any, step: int) -> int | None:
    if value is None:
        return None
    return _check_step("field 'last_logged_step'", value, maximum=step, bound=" (the state's step)")


def _json_copy(value: Any, where: str, depth: int) -> Any:
    """A plain-JSON deep copy of ``value``; raises :class:`_Problem` naming the first non-JSON part."""
    if depth > MAX_JSON_DEPTH and isinstance(value, (list, tuple, Mapping)):
        raise _Problem(f"{where} is nested deeper than {MAX_JSON_DEPTH} levels")
    if value is None or isinstance(value, bool):
        return value
    if _is_int(value):
        return int(value)
    if isinstance(value, numbers.Real):
        number = float(value)
        if not math.isfinite(number):
            raise _Problem(f"{where} must be a finite number, got {_show(number)}")
        return number
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise _Problem(f"{where} is not valid Unicode text (it holds a lone surrogate)") from None
        return value
    if isinstance(value, (list, tuple)):
        return [_json_copy(item, f"{where}[{i}]", depth + 1) for i, item in enumerate(value)]
    if isinstance(value, Mapping):
        copy = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise _Problem(f"{where} has a non-string key {_show(key)}: JSON object keys are strings")
            copy[_json_copy(key, f"{where} key", depth)] = _json_copy(item, f"{where}[{key!r}]", depth + 1)
        return copy
    raise _Problem(f"{where} must hold only JSON data, got {_show(value)}")


def _check_json_object(name: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise _Problem(f"field {name!r} must be a JSON object, got {_show(value)}")
    return _json_copy(value, f"field {name!r}", 1)


def _check_written_at(value: Any) -> str:
    if not isinstance(value, str):
        raise _Problem(f"field 'written_at' must be an ISO 8601 time string, got {_show(value)}")
    try:
        datetime.datetime.fromisoformat(value)
    except ValueError:
        raise _Problem(f"field 'written_at' must be an ISO 8601 time string, got {_show(value)}") from None
    return value


def _validated_fields(state: MonitorState) -> dict[str, Any]:
    """Every field of ``state`` checked and normalized; raises :class:`_Problem` for the first bad one."""
    _check_schema(state.schema)
    _check_version(state.version)
    step = _check_step("field 'step'", state.step)
    return {
        "schedule_class": _check_schedule_class(state.schedule_class),
        "config": _check_config(state.config),
        "step": step,
        "emitted_events": _check_events(state.emitted_events, step),
        "last_logged_step": _check_last_logged(state.last_logged_step, step),
        "trackers": _check_json_object("trackers", state.trackers),
        "monitor_config": _check_json_object("monitor_config", state.monitor_config),
        "written_at": _check_written_at(state.written_at),
    }


# -- plain-data form -----------------------------------------------------------------------------------------------
def state_to_dict(state: MonitorState) -> dict[str, Any]:
    """The state as a JSON-ready document, without the checksum."""
    return {
        "schema": state.schema,
        "version": state.version,
        "schedule_class": state.schedule_class,
        "config": state.config.to_dict(),
        "step": state.step,
        "emitted_events": [[kind, step] for kind, step in state.emitted_events],
        "last_logged_step": state.last_logged_step,
        "trackers": json.loads(json.dumps(state.trackers)),
        "monitor_config": json.loads(json.dumps(state.monitor_config)),
        "written_at": state.written_at,
    }


def _check_field_names(doc: Mapping[Any, Any]) -> None:
    missing = [name for name in _FIELD_NAMES if name not in doc]
    unknown = sorted((key for key in doc if key not in _FIELD_NAMES), key=repr)
    if missing:
        raise _Problem(f"missing field{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))}")
    if unknown:
        raise _Problem(f"unknown field{'s' if len(unknown) > 1 else ''} {', '.join(_show(k) for k in unknown)}")


def _config_from_data(value: Any) -> CurveConfig:
    """A :class:`CurveConfig` from its ``to_dict`` form; its ``TypeError``/``ValueError`` become problems."""
    if not isinstance(value, Mapping):
        raise _Problem(f"field 'config' must be a JSON object, got {_show(value)}")
    if "base_lrs" in value and not isinstance(value["base_lrs"], (list, tuple)):
        raise _Problem(f"field 'config': base_lrs must be a list of numbers, got {_show(value['base_lrs'])}")
    try:
        return CurveConfig.from_dict(value)
    except (TypeError, ValueError, OverflowError) as error:
        raise _Problem(f"field 'config' is not a valid schedule configuration: {error}") from None


def state_from_dict(doc: Any, *, source: str = "<dict>") -> MonitorState:
    """Build a :class:`MonitorState` from :func:`state_to_dict`'s output (no ``checksum`` field).

    Raises :class:`StateError` naming ``source`` for any problem (see the module docstring for the rules).
    """
    try:
        if not isinstance(doc, Mapping):
            raise _Problem(f"the document must be a JSON object, got {_show(doc)}")
        _check_schema(doc.get("schema"))
        _check_version(doc.get("version"))
        _check_field_names(doc)
        config = _config_from_data(doc["config"])
    except _Problem as problem:
        raise StateError(str(problem), source) from None
    try:
        return MonitorState(**{name: doc[name] for name in _FIELD_NAMES if name != "config"}, config=config)
    except StateError as error:
        raise StateError(error.problem, source) from None


# -- bytes ---------------------------------------------------------------------------------------------------------
def _canonical_json(doc: Any) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def _checksum(body: Mapping[str, Any]) -> str:
    return hashlib.sha256(_canonical_json(body)).hexdigest()


def encode_state(state: MonitorState) -> bytes:
    """The state as canonical JSON bytes (sorted keys, UTF-8), with its ``checksum`` field."""
    body = state_to_dict(state)
    return _canonical_json({**body, _CHECKSUM: _checksum(body)})


def _reject_constant(name: str) -> Any:
    raise _Problem(f"the document holds {name}, which is not a JSON number (NaN and infinities are not allowed)")


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Problem(f"the document holds the number {text[:_MAX_SHOWN]}, which overflows a float")
    return value


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > _MAX_INT_DIGITS:
        digits = len(text.lstrip("-"))
        raise _Problem(f"the document holds an integer of {digits} digits (at most {_MAX_INT_DIGITS} allowed)")
    return int(text)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _Problem(f"an object in the document repeats the key {_show(key)}")
        result[key] = value
    return result


def _document_depth(doc: Any) -> int:
    """Nesting depth of parsed JSON (a scalar is 0, ``[]`` is 1), computed without recursion."""
    deepest, stack = 0, [(doc, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (list, dict)):
            deepest = max(deepest, depth)
            stack.extend((item, depth + 1) for item in (value.values() if isinstance(value, dict) else value))
    return deepest


def _looks_truncated(text: str, error: json.JSONDecodeError) -> bool:
    """Whether a JSON syntax error is explained by the text ending early (an object cut short)."""
    if error.msg == "Extra data":
        return False
    text = text.strip()
    return error.pos >= len(text) or (text.startswith("{") and not text.endswith("}"))


def _parse_document(data: bytes) -> Any:
    """Bytes -> parsed JSON, strictly; raises :class:`_Problem`."""
    if len(data) > MAX_STATE_BYTES:
        raise _Problem(f"the document is {len(data)} bytes, more than the {MAX_STATE_BYTES} bytes a state may have")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _Problem(f"the document is not UTF-8 text (byte {error.start}: {error.reason})") from None
    if not text.strip():
        raise _Problem("the document is empty")
    try:
        doc = json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_reject_constant,
                         parse_float=_parse_float, parse_int=_parse_int)
    except json.JSONDecodeError as error:
        hint = " (the document appears truncated)" if _looks_truncated(text, error) else ""
        where = f"line {error.lineno} column {error.colno}"
        raise _Problem(f"the document is not valid JSON{hint}: {error.msg} at {where}") from None
    except RecursionError:
        raise _Problem("the document is nested too deeply to be a state document") from None
    except ValueError as error:  # e.g. an integer literal beyond Python's digit limit
        raise _Problem(f"the document is not valid JSON: {error}") from None
    if _document_depth(doc) > MAX_JSON_DEPTH + 1:
        raise _Problem(f"the document is nested deeper than {MAX_JSON_DEPTH + 1} levels")
    return doc


def _verify_checksum(doc: dict[str, Any]) -> dict[str, Any]:
    """The document without its checksum, after checking the checksum; raises :class:`_Problem`."""
    if _CHECKSUM not in doc:
        raise _Problem("missing field 'checksum' (every state written by lrmon has one)")
    expected = doc[_CHECKSUM]
    if not isinstance(expected, str) or not _CHECKSUM_PATTERN.fullmatch(expected):
        raise _Problem(f"field 'checksum' must be 64 lowercase hex digits (sha256), got {_show(expected)}")
    body = {key: value for key, value in doc.items() if key != _CHECKSUM}
    try:
        actual = _checksum(body)
    except UnicodeEncodeError:
        raise _Problem("the document holds a string that is not valid Unicode text (a lone surrogate)") from None
    except (ValueError, RecursionError) as error:
        raise _Problem(f"the document cannot be checksummed: {error}") from None
    if actual != expected:
        raise _Problem(
            f"the document is corrupted: checksum mismatch (stored {expected[:12]}..., "
            f"content hashes to {actual[:12]}...); the file was damaged or edited by hand"
        )
    return body


def decode_state(data: bytes, *, source: str = "<bytes>") -> MonitorState:
    """Parse and validate a document written by :func:`encode_state`.

    Raises :class:`StateError` (a ``ValueError``) whose message starts with ``lrmon state <source>:`` for every
    problem, and nothing else for any bytes; ``TypeError`` only if ``data`` is not bytes-like.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"decode_state expects bytes, got {type(data).__name__}")
    try:
        doc = _parse_document(bytes(data))
        if not isinstance(doc, dict):
            raise _Problem(f"the document must be a JSON object, got {_show(doc)}")
        _check_schema(doc.get("schema"))
        _check_version(doc.get("version"))  # before the checksum: a newer lrmon may checksum differently
        body = _verify_checksum(doc)
    except _Problem as problem:
        raise StateError(str(problem), source) from None
    return state_from_dict(body, source=source)


# -- files ---------------------------------------------------------------------------------------------------------
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
    atomic_write(path, _canonical_json(marker))
    return path


def check_artifact_type(artifact_type: Any, *, source: str = "<artifact>") -> None:
    """Raise :class:`StateError` unless ``artifact_type`` (e.g. a W&B ``artifact.type``) is :data:`ARTIFACT_TYPE`."""
    if artifact_type != ARTIFACT_TYPE or not isinstance(artifact_type, str):
        raise StateError(
            f"artifact of the wrong type: {_show(artifact_type)}, expected {ARTIFACT_TYPE!r} "
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


# -- description ---------------------------------------------------------------------------------------------------
def _phase_description(state: MonitorState) -> str:
    config, step = state.config, state.step
    if step < config.warmup_steps:
        phase = "warmup"
    elif step < config.total_steps:
        phase = "cosine"
    else:
        phase = "past the end"
    return f"{phase}, {100.0 * step / config.total_steps:.1f}% of total_steps"


def _next_event(state: MonitorState) -> str:
    upcoming = [(step, kind) for kind, step in state.config.event_steps().items() if step >= state.step]
    if not upcoming:
        return "none"
    step, kind = min(upcoming)
    return f"{kind} at step {step}"


def describe_state(state: MonitorState) -> str:
    """A human-readable multi-line summary of ``state`` (for ``lrmon inspect``)."""
    config = state.config
    events = ", ".join(f"{kind}@{step}" for kind, step in state.emitted_events) or "none"
    rows = [
        ("written at", state.written_at),
        ("schedule", state.schedule_class),
        ("base_lrs", f"{list(config.base_lrs)} ({config.num_groups} parameter group{'s' * (config.num_groups > 1)})"),
        ("warmup_steps", str(config.warmup_steps)),
        ("total_steps", str(config.total_steps)),
        ("warmup_start_lr", repr(config.warmup_start_lr)),
        ("eta_min", repr(config.eta_min)),
        ("step", f"{state.step} ({_phase_description(state)})"),
        ("last logged step", "none" if state.last_logged_step is None else str(state.last_logged_step)),
        ("events emitted", events),
        ("next event", _next_event(state)),
    ]
    rows += [(f"tracker {name}", json.dumps(value, sort_keys=True)) for name, value in sorted(state.trackers.items())]
    rows.append(("monitor config", json.dumps(state.monitor_config, sort_keys=True)))
    width = max(len(label) for label, _ in rows) + 1
    lines = [f"lrmon monitor state (schema {state.schema}, version {state.version})"]
    lines += [f"  {label + ':':<{width}} {value}" for label, value in rows]
    return "\n".join(lines)
