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

Layout: the fields and their types are declared once, with msgspec, in :mod:`lrmon._state_schema` (which also
checks what a schema cannot say: steps bounded by ``step``, the version, JSON data); :mod:`lrmon._state_model`
holds :class:`MonitorState`, :mod:`lrmon._state_codec` the bytes and the checksum, :mod:`lrmon._state_files` the
atomic write and the sources. This module is the public face of all four.

Reading is strict: every problem -- bytes that are not UTF-8, not JSON, truncated, a checksum mismatch, a missing,
unknown or mistyped field, an invalid schedule configuration, a document of another schema or of a newer version
-- raises :class:`StateError` (a ``ValueError``) saying what is wrong and where, and nothing else is ever raised
for any input bytes. Integers are never booleans or floats; ``NaN``/``Infinity`` and numbers that overflow a float
are rejected; objects may not repeat a key. Value rules:

* ``step`` (steps completed = the step training resumes at), ``last_logged_step`` and event steps are integers in
  ``[0, MAX_STEP]``; ``last_logged_step`` (or ``null``) and every event step are ``<= step``.
* ``emitted_events`` is a list of ``[kind, step]`` pairs, ``kind`` one of :data:`STATE_EVENT_KINDS`. Event steps
  are not checked against ``config.events()``: a run resumed with ``allow_config_change`` keeps the events
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

from lrmon._state_codec import MAX_STATE_BYTES, decode_state, encode_state
from lrmon._state_files import (
    ARTIFACT_MARKER_NAME, ARTIFACT_TYPE, LOCAL_ARTIFACT_DIR, STATE_FILE_NAME, atomic_write, check_artifact_type,
    copy_state_file, read_state, wandb_run_dirs, write_artifact_marker, write_state_file,
)
from lrmon._state_model import MonitorState, state_from_dict, state_to_dict, utc_timestamp
from lrmon._state_schema import MAX_JSON_DEPTH, MAX_STEP, STATE_EVENT_KINDS, STATE_SCHEMA, STATE_VERSION, StateError

__all__ = [
    "ARTIFACT_MARKER_NAME",
    "ARTIFACT_TYPE",
    "LOCAL_ARTIFACT_DIR",
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
    "encode_state",
    "read_state",
    "state_from_dict",
    "state_to_dict",
    "utc_timestamp",
    "wandb_run_dirs",
    "write_artifact_marker",
    "write_state_file",
]
