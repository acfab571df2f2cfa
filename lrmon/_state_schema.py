"""The state document's schema: its fields and their types, declared once with msgspec.

:class:`StateFields` declares every field of a state document (see :mod:`lrmon.state` for the format) and
:class:`ScheduleState` the schedule's part of it, in ``WarmupCosineSchedule.state_dict()`` form; both use
:class:`~lrmon.curve.ConfigFields` for the configuration. :func:`check_state` validates a document (or the fields
of a :class:`~lrmon.state.MonitorState` built in code) against the schema, then checks what a schema cannot
express: the version, the steps bounded by the state's own ``step``, the time format and the JSON data of
``trackers`` and ``monitor_config``. Every problem is a :class:`SchemaError` naming the field.
"""

import datetime
import math
import numbers
import re
from typing import Annotated, Any, Literal, Mapping, TypeVar, Union

import msgspec

from lrmon.curve import EVENT_KINDS, ConfigFields
from lrmon.schedules._protocol import CURVE_KEY, Curve, curve_from_dict

#: Value of the ``schema`` field of every state document.
STATE_SCHEMA = "lrmon.monitor-state"
#: The state document version this lrmon writes and reads.
STATE_VERSION = 1
#: Event kinds of a warmup + cosine state: the schedule's events plus the monitor's ``resume`` and ``thinned``;
#: other schedules name their own events (lower-case identifiers, :func:`~lrmon.schedules.curve_from_dict`).
STATE_EVENT_KINDS: tuple[str, ...] = EVENT_KINDS + ("resume", "thinned")
#: Largest step a state may hold: the schedule evaluates steps as int32 (JAX's default integer), so a larger one
#: could not be resumed.
MAX_STEP = 2**31 - 1
#: Deepest nesting allowed inside ``trackers`` and ``monitor_config`` (the field's own object is level 1).
MAX_JSON_DEPTH = 32

MAX_SHOWN = 60  # longest rendering of an offending value in a message
_T = TypeVar("_T")

Step = Annotated[int, msgspec.Meta(ge=0, le=MAX_STEP)]
ClassName = Annotated[str, msgspec.Meta(pattern=r"^[^\W\d]\w*\Z")]
EventKind = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]*\Z")]


class StateFields(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Every field of a state document but its ``checksum``, with its JSON type."""

    schema: Literal[STATE_SCHEMA]  # type: ignore[valid-type]
    version: int
    schedule_class: ClassName
    config: dict[str, Any]
    step: Step
    emitted_events: tuple[tuple[EventKind, Step], ...]
    last_logged_step: Union[Step, None]
    trackers: dict[str, Any]
    monitor_config: dict[str, Any]
    written_at: str
    schedule_state: Union[dict[str, Any], None] = None


class ScheduleState(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The schedule's part of a state, as ``WarmupCosineSchedule.state_dict()`` writes it."""

    version: Literal[STATE_VERSION]  # type: ignore[valid-type]
    schedule_class: ClassName = msgspec.field(name="class")
    config: dict[str, Any]
    last_epoch: Step


#: What a field holds, added to a message about it.
_HINTS = {
    "schedule_class": "a class name: a Python identifier",
    "class": "a class name: a Python identifier",
    "emitted_events": "[kind, step] pairs, kind a lower-case identifier (the schedule's events, resume, thinned)",
    "version": f"this lrmon reads version {STATE_VERSION}",
}
for _name in ("step", "last_logged_step", "last_epoch"):
    _HINTS[_name] = f"a step in [0, MAX_STEP = {MAX_STEP}]: the schedule evaluates int32 steps"
_ERROR = re.compile(r"(?P<detail>.*?)(?: - at `(?P<key>key` in `)?\$(?P<path>[^`]*)`)?", re.DOTALL)
_SEGMENT = re.compile(r"\.([^.\[]+)|\[(\d+)\]")
_FIELD = re.compile(r"Object (?P<what>missing required|contains unknown) field `(?P<name>.*)`", re.DOTALL)


class StateError(ValueError):
    """A state document or source that cannot be used; the message says what is wrong and where.

    ``source`` names where the document came from (a path, ``"<bytes>"``) or is ``None`` for a
    :class:`~lrmon.state.MonitorState` built in code; ``problem`` is the message without that prefix.
    """

    def __init__(self, problem: str, source: str | None = None) -> None:
        self.problem = problem
        self.source = source
        prefix = f"lrmon state {source}" if source is not None else "invalid lrmon state"
        super().__init__(f"{prefix}: {problem}")


class SchemaError(ValueError):
    """A value that does not fit the schema; the message names the field (a :class:`StateError` without source)."""


def show(value: Any) -> str:
    """A short rendering of an offending value (never recursing into containers, never huge)."""
    if isinstance(value, (bool, float)):
        return f"{value!r} (a {type(value).__name__})"
    if isinstance(value, int) and value.bit_length() > 128:
        return f"an integer of {value.bit_length()} bits"
    if value is None or isinstance(value, (int, str)):
        text = repr(value)
        return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 3] + "..."
    if isinstance(value, (list, tuple, dict)):
        return f"a {type(value).__name__} of length {len(value)}"
    return f"a {type(value).__name__}"


def convert(data: Any, schema: type[_T], where: str | None = None) -> _T:
    """``data`` checked against ``schema`` (a msgspec type), strictly: no bool for an int, no string for a number.

    Args:
      data: plain Python data (e.g. parsed JSON).
      schema: the type ``data`` must have.
      where: how messages name ``data`` itself; ``None`` names the fields of an object (``field 'step'``).

    Returns:
      ``data`` as ``schema``.

    Raises:
      SchemaError: naming the offending field, what it must be and what it is.
    """
    try:
        return msgspec.convert(data, schema, strict=True)
    except msgspec.ValidationError as error:
        raise _schema_error(str(error), data, where) from None


def _schema_error(message: str, data: Any, where: str | None) -> SchemaError:
    """msgspec's ``"<detail> - at `$.a[0]`"`` as ``"field 'a'[0]: <detail>, got <value> (<hint>)"``."""
    parts = _ERROR.fullmatch(message)
    detail, path = parts["detail"], [key or int(index) for key, index in _SEGMENT.findall(parts["path"] or "")]
    missing = _FIELD.fullmatch(detail)
    if missing:
        path.append(missing["name"])
    name = where or (f"field {path[0]!r}" if path else "the document")
    name += "".join(f"[{segment!r}]" for segment in path[1 if where is None else 0:])
    if missing:
        return SchemaError(f"{'missing' if missing['what'].startswith('missing') else 'unknown'} {name}")
    detail = detail[0].lower() + detail[1:]
    if parts["key"]:
        return SchemaError(f"a key of {name}: {detail}")
    value = data
    try:
        for segment in path:
            value = value[segment]
    except (LookupError, TypeError):  # e.g. a set given in code: msgspec iterates it, indexing it fails
        return SchemaError(f"{name}: {detail}")
    hint = f" ({_HINTS[path[0]]})" if where is None and path and path[0] in _HINTS else ""
    got = "" if detail.startswith("invalid enum value") else f", got {show(value)}"  # enum errors show it
    detail = re.sub(r"matching regex .*", "that is a Python identifier", re.sub(r", got [^,]*$", "", detail))
    return SchemaError(f"{name}: {detail}{got}{hint}")


def check_version(version: Any) -> None:
    """Raise :class:`SchemaError` unless ``version`` is :data:`STATE_VERSION` (saying whether it is newer)."""
    version = convert(version, int, "field 'version'")
    if version > STATE_VERSION:
        raise SchemaError(
            f"written by a newer lrmon (state version {version}; this lrmon reads version {STATE_VERSION}): "
            "upgrade lrmon to resume from it"
        )
    if version != STATE_VERSION:
        raise SchemaError(f"unknown state version {version} (this lrmon reads version {STATE_VERSION})")


def check_header(data: Any) -> None:
    """Raise :class:`SchemaError` unless ``data`` is an object of :data:`STATE_SCHEMA` at :data:`STATE_VERSION`."""
    if not isinstance(data, Mapping):
        raise SchemaError(f"the document must be a JSON object, got {show(data)}")
    schema = data.get("schema")
    if schema != STATE_SCHEMA or not isinstance(schema, str):
        raise SchemaError(f"not an lrmon monitor state: field 'schema' is {show(schema)}, expected {STATE_SCHEMA!r}")
    check_version(data.get("version"))


def check_state(data: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a state (document form: ``config`` as plain data) validated and normalized.

    Returns:
      The fields other than ``config`` (events as a tuple of pairs, ``trackers`` and ``monitor_config`` as plain
      JSON copies).

    Raises:
      SchemaError: for the first field that is wrong.
    """
    check_header(data)
    if isinstance(data.get("emitted_events"), (set, frozenset)):  # msgspec would take it, in no defined order
        raise SchemaError("field 'emitted_events' must be a sequence in emission order, got a set")
    fields = convert(data, StateFields)
    check_config(fields.config, "field 'config'")
    if CURVE_KEY not in fields.config:  # warmup + cosine: its own event kinds only
        for index, (kind, _) in enumerate(fields.emitted_events):
            if kind not in STATE_EVENT_KINDS:
                raise SchemaError(f"field 'emitted_events'[{index}][0]: invalid enum value {kind!r} "
                                  f"([kind, step] pairs, kind one of {', '.join(STATE_EVENT_KINDS)})")
    for index, (_, step) in enumerate(fields.emitted_events):
        _check_at_most_step(f"field 'emitted_events'[{index}] step", step, fields.step)
    _check_at_most_step("field 'last_logged_step'", fields.last_logged_step, fields.step)
    try:
        datetime.datetime.fromisoformat(fields.written_at)
    except ValueError:
        raise SchemaError(f"field 'written_at' must be an ISO 8601 time string, got {show(fields.written_at)}") from None
    normalized = {name: getattr(fields, name) for name in fields.__struct_fields__ if name != "config"}
    for name in ("trackers", "monitor_config", "schedule_state"):
        if normalized[name] is not None:
            normalized[name] = _json_copy(normalized[name], f"field {name!r}", 1)
    return normalized


def _check_at_most_step(where: str, value: int | None, step: int) -> None:
    if value is not None and value > step:
        raise SchemaError(f"{where} is out of range: must be <= {step} (the state's step), got {value}")


def _json_copy(value: Any, where: str, depth: int) -> Any:
    """A plain-JSON deep copy of ``value`` (finite numbers, string keys, valid text, at most
    :data:`MAX_JSON_DEPTH` levels); raises :class:`SchemaError` naming the first part that is not."""
    if depth > MAX_JSON_DEPTH and isinstance(value, (list, tuple, Mapping)):
        raise SchemaError(f"{where} is nested deeper than {MAX_JSON_DEPTH} levels")
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        if not math.isfinite(value):
            raise SchemaError(f"{where} must be a finite number, got {show(float(value))}")
        return float(value)
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise SchemaError(f"{where} is not valid Unicode text (it holds a lone surrogate)") from None
        return value
    if isinstance(value, (list, tuple)):
        return [_json_copy(item, f"{where}[{i}]", depth + 1) for i, item in enumerate(value)]
    if isinstance(value, Mapping):
        copy = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise SchemaError(f"{where} has a non-string key {show(key)}: JSON object keys are strings")
            copy[_json_copy(key, f"{where} key", depth)] = _json_copy(item, f"{where}[{key!r}]", depth + 1)
        return copy
    raise SchemaError(f"{where} must hold only JSON data, got {show(value)}")


def check_config(data: Any, where: str) -> None:
    """Raise :class:`SchemaError` if a warmup + cosine configuration (no ``"curve"`` key) has mistyped fields
    (other schedules are checked by their own ``from_dict``, in :func:`config_from_data`)."""
    if CURVE_KEY not in data:
        convert(data, ConfigFields, where)


def config_from_data(data: Any) -> Curve:
    """The curve of its ``to_dict()`` form (:func:`~lrmon.schedules.curve_from_dict`); raises :class:`SchemaError`."""
    try:
        return curve_from_dict(data)
    except (TypeError, ValueError, OverflowError) as error:
        raise SchemaError(f"field 'config' is not a valid schedule configuration: {error}") from None


def schedule_state_dict(schedule_class: str, config: Curve, step: int) -> dict[str, Any]:
    """The :class:`ScheduleState` of a schedule as plain data (``WarmupCosineSchedule.state_dict()``)."""
    return msgspec.to_builtins(ScheduleState(STATE_VERSION, schedule_class, config.to_dict(), step))


def read_schedule_state(data: Any) -> tuple[Curve, int]:
    """The configuration and step of a :class:`ScheduleState` in plain data; raises :class:`SchemaError`."""
    state = convert(data, ScheduleState)
    check_config(state.config, "field 'config'")
    return config_from_data(state.config), state.last_epoch
