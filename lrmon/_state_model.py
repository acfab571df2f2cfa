"""The monitor's state as a Python value, :class:`MonitorState`, and its plain-data (document) form."""

from __future__ import annotations

import dataclasses
import datetime
import json
from typing import Any

from lrmon._state_schema import (
    STATE_SCHEMA, STATE_VERSION, SchemaError, StateError, StateFields, check_state, config_from_data,
    schedule_state_dict, show,
)
from lrmon.schedules._protocol import Curve

__all__ = ["MonitorState", "state_from_dict", "state_to_dict", "utc_timestamp"]


def utc_timestamp() -> str:
    """The current time in UTC as an ISO 8601 string (the default ``written_at``)."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat()


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
      schedule_state: the JSON state of a schedule whose LR is not a function of the step (braintools'
        ``ReduceLROnPlateau``: its best metric, counters and LRs), or ``None`` (the document then has no such key).
      schema, version: document identity; always :data:`STATE_SCHEMA` and :data:`STATE_VERSION`.

    Invalid values raise :class:`StateError`: the fields are checked against the one schema of the state document
    (:class:`~lrmon._state_schema.StateFields`). ``trackers`` and ``monitor_config`` are deep-copied into plain
    JSON form (tuples become lists, numbers plain ``int``/``float``), so the state equals its decoded encoding.
    """

    schedule_class: str
    config: Curve
    step: int
    emitted_events: tuple[tuple[str, int], ...] = ()
    last_logged_step: int | None = None
    trackers: dict[str, Any] = dataclasses.field(default_factory=dict)
    monitor_config: dict[str, Any] = dataclasses.field(default_factory=dict)
    written_at: str = dataclasses.field(default_factory=utc_timestamp)
    schedule_state: dict[str, Any] | None = None
    schema: str = STATE_SCHEMA
    version: int = STATE_VERSION

    __hash__ = None  # type: ignore[assignment]  # holds dicts

    def __post_init__(self) -> None:
        try:
            if not isinstance(self.config, Curve):
                raise SchemaError(f"field 'config' must be a schedule curve (lrmon.schedules.Curve), "
                                  f"got {show(self.config)}")
            fields = {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}
            for name, value in check_state({**fields, "config": self.config.to_dict()}).items():
                object.__setattr__(self, name, value)
        except SchemaError as problem:
            raise StateError(str(problem)) from None

    def schedule_state_dict(self) -> dict[str, Any]:
        """The state in ``WarmupCosineSchedule.state_dict()`` form, for ``schedule.load_state_dict``."""
        return schedule_state_dict(self.schedule_class, self.config, self.step)


def state_to_dict(state: MonitorState) -> dict[str, Any]:
    """The state as a JSON-ready document, without the checksum.

    Args:
      state: the state.

    Returns:
      A fresh dict with every field of :class:`~lrmon._state_schema.StateFields`, in plain JSON types.
    """
    doc = {name: getattr(state, name) for name in StateFields.__struct_fields__}
    doc.update(config=state.config.to_dict(), emitted_events=[list(event) for event in state.emitted_events],
               trackers=json.loads(json.dumps(state.trackers)),
               monitor_config=json.loads(json.dumps(state.monitor_config)))
    if state.schedule_state is None:
        del doc["schedule_state"]
    return doc


def state_from_dict(doc: Any, *, source: str = "<dict>") -> MonitorState:
    """Build a :class:`MonitorState` from :func:`state_to_dict`'s output (no ``checksum`` field).

    Args:
      doc: the document, as plain data.
      source: how messages name the document.

    Returns:
      The validated state.

    Raises:
      StateError: naming ``source`` and the field, for any problem (see :mod:`lrmon.state` for the rules).
    """
    try:
        check_state(doc)  # every field named and typed before any is used
        config = config_from_data(doc["config"])
    except SchemaError as problem:
        raise StateError(str(problem), source) from None
    return MonitorState(**{name: doc[name] for name in StateFields.__struct_fields__ if name in doc and name != "config"},
                        config=config)
