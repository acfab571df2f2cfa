"""Tests of lrmon.state: the monitor's checksummed JSON state document, its atomic file and its sources."""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any, Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lrmon._state_codec as codec_module
from lrmon.cli import describe_state
from lrmon.curve import EVENT_KINDS, CurveConfig
from lrmon.state import (
    ARTIFACT_MARKER_NAME,
    ARTIFACT_TYPE,
    MAX_JSON_DEPTH,
    MAX_STEP,
    STATE_EVENT_KINDS,
    STATE_FILE_NAME,
    STATE_SCHEMA,
    STATE_VERSION,
    MonitorState,
    StateError,
    check_artifact_type,
    decode_state,
    encode_state,
    read_state,
    state_from_dict,
    state_to_dict,
    write_artifact_marker,
    write_state_file,
)

FIELDS = ("schema", "version", "schedule_class", "config", "step", "emitted_events", "last_logged_step", "trackers",
          "monitor_config", "written_at")


def make_state(**changes: Any) -> MonitorState:
    """A valid state in the cosine phase; ``changes`` override fields."""
    fields: dict[str, Any] = dict(
        schedule_class="WarmupCosineSchedule",
        config=CurveConfig((1e-3, 3e-4), warmup_steps=100, total_steps=1000, warmup_start_lr=1e-5, eta_min=1e-6),
        step=250,
        emitted_events=(("warmup_start", 0), ("warmup_end", 99), ("cosine_start", 100), ("resume", 200)),
        last_logged_step=249,
        trackers={"wandb": {"run_id": "abc123", "project": "demo"}, "tensorboard": {"logdir": "runs/x"}},
        monitor_config={"log_every": 10, "events": True, "tags": ["a", "b"]},
        written_at="2024-05-01T12:00:00+00:00",
    )
    fields.update(changes)
    return MonitorState(**fields)


def checksum_of(body: dict[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def document(**changes: Any) -> dict[str, Any]:
    """A valid decoded document (with checksum) of :func:`make_state`."""
    return json.loads(encode_state(make_state(**changes)))


def seal(doc: dict[str, Any]) -> bytes:
    """``doc`` as bytes with a freshly computed (hence matching) checksum."""
    body = {key: value for key, value in doc.items() if key != "checksum"}
    return json.dumps({**body, "checksum": checksum_of(body)}).encode("utf-8")


def edited(edit: Callable[[dict[str, Any]], None]) -> bytes:
    """A valid document changed by ``edit`` (in place), re-sealed with a matching checksum."""
    doc = document()
    edit(doc)
    return seal(doc)


def decode_error(data: bytes, source: str = "<bytes>") -> str:
    with pytest.raises(StateError) as info:
        decode_state(data, source=source)
    message = str(info.value)
    assert message.startswith(f"lrmon state {source}: ")
    return message


# -- round trip ----------------------------------------------------------------------------------------------------
def test_round_trip_preserves_every_field() -> None:
    state = make_state()
    decoded = decode_state(encode_state(state))
    assert decoded == state
    assert decoded.config == state.config
    assert decoded.emitted_events == state.emitted_events
    assert isinstance(decoded.emitted_events, tuple) and all(isinstance(e, tuple) for e in decoded.emitted_events)


def test_encoding_is_canonical_and_checksummed() -> None:
    data = encode_state(make_state())
    doc = json.loads(data)
    assert data == json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    assert set(doc) == set(FIELDS) | {"checksum"}
    assert doc["schema"] == STATE_SCHEMA and doc["version"] == STATE_VERSION == 1
    body = {key: value for key, value in doc.items() if key != "checksum"}
    assert doc["checksum"] == checksum_of(body)
    assert body == state_to_dict(make_state())
    assert encode_state(make_state()) == data  # deterministic


def test_non_ascii_text_is_written_as_utf8() -> None:
    state = make_state(trackers={"wandb": {"project": "lernrate-übung-学习率"}})
    data = encode_state(state)
    assert "学习率".encode("utf-8") in data
    assert decode_state(data) == state


def test_state_from_dict_inverts_state_to_dict() -> None:
    state = make_state()
    assert state_from_dict(state_to_dict(state)) == state
    with pytest.raises(StateError, match=r"lrmon state <dict>: unknown field 'checksum'"):
        state_from_dict(json.loads(encode_state(state)))


def test_defaults_and_normalization() -> None:
    state = MonitorState(schedule_class="WarmupCosineSchedule", config=CurveConfig(0.1, 0, 10), step=0,
                         emitted_events=[["warmup_start", 0]], monitor_config={"sizes": (1, 2), "ratio": 1})
    assert state.schema == STATE_SCHEMA and state.version == STATE_VERSION
    assert state.emitted_events == (("warmup_start", 0),)
    assert state.monitor_config == {"sizes": [1, 2], "ratio": 1}
    assert state.last_logged_step is None and state.trackers == {}
    assert datetime.datetime.fromisoformat(state.written_at).tzinfo is not None
    assert decode_state(encode_state(state)) == state


def test_trackers_are_copied_not_shared() -> None:
    trackers = {"wandb": {"run_id": "a"}}
    state = make_state(trackers=trackers)
    trackers["wandb"]["run_id"] = "changed"
    assert state.trackers == {"wandb": {"run_id": "a"}}


def test_replace_revalidates() -> None:
    state = make_state()
    assert dataclasses.replace(state, step=300).step == 300
    with pytest.raises(StateError, match="field 'step'"):
        dataclasses.replace(state, step=-1)


def test_schedule_state_dict_restores_a_schedule() -> None:
    from lrmon.schedule import WarmupCosineSchedule

    state = make_state()
    schedule = WarmupCosineSchedule.from_config(state.config)
    schedule.load_state_dict(state.schedule_state_dict())
    assert int(schedule.last_epoch.value) == state.step


def test_describe_state() -> None:
    text = describe_state(make_state())
    lines = text.splitlines()
    assert lines[0] == "lrmon monitor state (schema lrmon.monitor-state, version 1)"
    for expected in ("WarmupCosineSchedule", "2024-05-01T12:00:00+00:00", "[0.001, 0.0003] (2 parameter groups)",
                     "250 (cosine, 25.0% of total_steps)", "249", "warmup_start@0, warmup_end@99",
                     "resume@200", "end at step 999", '"run_id": "abc123"', '"log_every": 10', "runs/x"):
        assert expected in text, expected
    fresh = describe_state(make_state(step=0, emitted_events=(), last_logged_step=None, trackers={}))
    assert "last logged step:" in fresh and "none" in fresh and "warmup, 0.0%" in fresh
    assert "next event:" in fresh and "warmup_start at step 0" in fresh
    done = describe_state(make_state(step=1001))
    assert "past the end" in done and re.search(r"next event: +none", done)


# -- construction errors -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"step": "x"}, "field 'step': expected `int`, got 'x' (a step in [0, MAX_STEP = 2147483647]"),
        ({"step": True}, "field 'step': expected `int`, got True (a bool)"),
        ({"step": 2.0}, "field 'step': expected `int`, got 2.0 (a float)"),
        ({"step": -1}, "field 'step': expected `int` >= 0, got -1"),
        ({"step": MAX_STEP + 1}, "field 'step': expected `int` <= 2147483647, got 2147483648"),
        ({"schedule_class": ""}, "field 'schedule_class': expected `str` that is a Python identifier, got"),
        ({"schedule_class": "a b"}, "field 'schedule_class': expected `str` that is a Python identifier, got"),
        ({"config": {"base_lrs": [0.1]}}, "field 'config' must be a schedule curve"),
        ({"emitted_events": (("bogus", 1),)}, "field 'emitted_events'[0][0]: invalid enum value 'bogus' ([kind, step] pairs, kind one of warmup_start,"),
        ({"emitted_events": (("end", 251),)}, "field 'emitted_events'[0] step is out of range: must be <= 250"),
        ({"emitted_events": (("end",),)}, "field 'emitted_events'[0]: expected `array` of length 2, got a tuple of length 1"),
        ({"emitted_events": "end"}, "field 'emitted_events': expected `array`, got 'end' ([kind, step] pairs"),
        ({"last_logged_step": 251}, "field 'last_logged_step' is out of range"),
        ({"last_logged_step": 1.5}, "field 'last_logged_step': expected `int | null`, got 1.5 (a float)"),
        ({"trackers": {1: "a"}}, "a key of field 'trackers': expected `str`, got `int`"),
        ({"trackers": []}, "field 'trackers': expected `object`, got a list of length 0"),
        ({"trackers": {"w": {"x": {1, 2}}}}, "field 'trackers'['w']['x'] must hold only JSON data, got a set"),
        ({"monitor_config": {"x": float("nan")}}, "field 'monitor_config'['x'] must be a finite number"),
        ({"monitor_config": {"x": float("inf")}}, "field 'monitor_config'['x'] must be a finite number"),
        ({"monitor_config": {"x": "\ud800"}}, "field 'monitor_config'['x'] is not valid Unicode text"),
        ({"written_at": "yesterday"}, "field 'written_at' must be an ISO 8601 time string, got 'yesterday'"),
        ({"written_at": 5}, "field 'written_at': expected `str`, got 5"),
        ({"version": 2}, "written by a newer lrmon"),
        ({"schema": "other"}, "not an lrmon monitor state"),
    ],
)
def test_invalid_construction_raises_state_error(changes: dict[str, Any], expected: str) -> None:
    with pytest.raises(StateError) as info:
        make_state(**changes)
    assert str(info.value).startswith("invalid lrmon state: ")
    assert expected in str(info.value)
    assert isinstance(info.value, ValueError)


def test_too_deep_json_data_is_rejected() -> None:
    deep: Any = "leaf"
    for _ in range(MAX_JSON_DEPTH):
        deep = [deep]
    assert decode_state(encode_state(make_state(trackers={"x": deep[0]}))).trackers == {"x": deep[0]}  # at the limit
    with pytest.raises(StateError, match=f"nested deeper than {MAX_JSON_DEPTH} levels"):
        make_state(trackers={"x": deep})
    very_deep: Any = []
    for _ in range(100_000):
        very_deep = [very_deep]
    with pytest.raises(StateError, match="nested deeper"):
        make_state(monitor_config={"x": very_deep})


# -- decoding errors -----------------------------------------------------------------------------------------------
def _set(path: tuple[Any, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(doc: dict[str, Any]) -> None:
        target = doc
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return edit


def _delete(name: str) -> Callable[[dict[str, Any]], None]:
    return lambda doc: doc.pop(name)


GOOD = encode_state(make_state())

DECODE_CASES: list[tuple[str, bytes, str]] = [
    ("not utf-8", GOOD.replace(b"demo", b"d\xffmo"), "is not UTF-8 text (byte"),
    ("latin-1", "{\"a\": \"é\"}".encode("latin-1"), "is not UTF-8 text"),
    ("empty", b"", "the document is empty"),
    ("whitespace", b"  \n", "the document is empty"),
    ("not json", b"hello", "is not valid JSON"),
    ("trailing garbage", GOOD + b"x", "is not valid JSON: Extra data"),
    ("truncated", GOOD[: len(GOOD) // 2], "is not valid JSON (the document appears truncated)"),
    ("utf-8 bom", b"\xef\xbb\xbf" + GOOD, "is not valid JSON"),
    ("array", b"[1, 2]", "the document must be a JSON object, got a list of length 2"),
    ("string", b'"x"', "the document must be a JSON object, got 'x'"),
    ("null", b"null", "the document must be a JSON object, got None"),
    ("NaN", b'{"schema": NaN}', "holds NaN, which is not a JSON number"),
    ("Infinity", b'{"x": [Infinity]}', "holds Infinity"),
    ("-Infinity", b'{"x": -Infinity}', "holds -Infinity"),
    ("float overflow", b'{"x": 1e999}', "holds the number 1e999, which overflows a float"),
    ("huge int", b'{"x": ' + b"9" * 10_000 + b"}", "holds an integer of 10000 digits"),
    ("deep nesting", b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ("moderately deep", b'{"x":' + b"[" * 50 + b"]" * 50 + b"}", "nested deeper than"),
    ("duplicate key", b'{"schema": "lrmon.monitor-state", "schema": "x"}', "repeats the key 'schema'"),
    ("lone surrogate", edited(_set(("trackers", "wandb", "project"), "x")).replace(b'"x"', b'"\\ud800"'),
     "not valid Unicode text"),
    ("no schema", edited(_delete("schema")), "not an lrmon monitor state: field 'schema' is None"),
    ("wrong schema", edited(_set(("schema",), "something.else")), "not an lrmon monitor state"),
    ("other json", b'{"name": "model", "layers": 3}', "not an lrmon monitor state"),
    ("newer version", edited(_set(("version",), 2)), "written by a newer lrmon (state version 2"),
    ("newer version, any body", b'{"schema": "lrmon.monitor-state", "version": 7, "new": 1}', "newer lrmon"),
    ("version 0", edited(_set(("version",), 0)), "unknown state version 0"),
    ("version bool", edited(_set(("version",), True)), "field 'version': expected `int`, got True (a bool)"),
    ("version float", edited(_set(("version",), 1.0)), "field 'version': expected `int`, got 1.0 (a float)"),
    ("version string", edited(_set(("version",), "1")), "field 'version': expected `int`, got '1'"),
    ("no checksum", json.dumps(state_to_dict(make_state())).encode(), "missing field 'checksum'"),
    ("checksum type", json.dumps({**document(), "checksum": 5}).encode(), "'checksum' must be 64 lowercase hex"),
    ("checksum case", json.dumps({**document(), "checksum": document()["checksum"].upper()}).encode(),
     "'checksum' must be 64 lowercase hex"),
    ("corrupted", GOOD.replace(b'"step":250', b'"step":251'), "is corrupted: checksum mismatch"),
    ("corrupted text", GOOD.replace(b"abc123", b"abc124"), "is corrupted"),
    ("missing step", edited(_delete("step")), "missing field 'step'"),
    ("missing written_at", edited(_delete("written_at")), "missing field 'written_at'"),
    ("unknown field", edited(_set(("extra",), 1)), "unknown field 'extra'"),
    ("step string", edited(_set(("step",), "x")), "field 'step': expected `int`, got 'x' (a step in [0, MAX_STEP = 2147483647]"),
    ("step bool", edited(_set(("step",), True)), "field 'step': expected `int`, got True (a bool)"),
    ("step float", edited(_set(("step",), 250.0)), "field 'step': expected `int`, got 250.0 (a float)"),
    ("step negative", edited(_set(("step",), -3)), "field 'step': expected `int` >= 0, got -3"),
    ("step null", edited(_set(("step",), None)), "field 'step': expected `int`, got None"),
    ("step huge", edited(_set(("step",), 2**70)), "field 'step': expected `int` <= 2147483647, got 1180591620717411303424"),
    ("schedule_class", edited(_set(("schedule_class",), ["x"])), "field 'schedule_class': expected `str`, got a list"),
    ("config not object", edited(_set(("config",), [1])), "field 'config': expected `object`, got a list of length 1"),
    ("config scalar lrs", edited(_set(("config", "base_lrs"), 0.1)), "field 'config'['base_lrs']: expected `array`, got 0.1 (a float)"),
    ("config empty lrs", edited(_set(("config", "base_lrs"), [])), "field 'config' is not a valid schedule"),
    ("config negative lr", edited(_set(("config", "base_lrs"), [-1.0])), "base_lr[0] must be >= 0"),
    ("config string lr", edited(_set(("config", "base_lrs"), ["0.1"])), "field 'config'['base_lrs'][0]: expected `float`, got '0.1'"),
    ("config warmup > total", edited(_set(("config", "warmup_steps"), 5000)),
     "warmup_steps (5000) must be <= total_steps (1000)"),
    ("config float steps", edited(_set(("config", "total_steps"), 1000.0)), "field 'config'['total_steps']: expected `int`, got 1000.0 (a float)"),
    ("config bool steps", edited(_set(("config", "warmup_steps"), False)), "field 'config'['warmup_steps']: expected `int`, got False (a bool)"),
    ("config missing key", edited(lambda doc: doc["config"].pop("eta_min")), "missing field 'config'['eta_min']"),
    ("config eta_min", edited(_set(("config", "eta_min"), 1.0)), "eta_min (1.0) must be <= base_lr"),
    ("events not list", edited(_set(("emitted_events",), {"end": 1})), "field 'emitted_events': expected `array`, got a dict of length 1"),
    ("event not pair", edited(_set(("emitted_events",), [["end", 1, 2]])), "field 'emitted_events'[0]: expected `array` of length 2, got a list of length 3"),
    ("event object", edited(_set(("emitted_events",), [{"kind": "end"}])), "field 'emitted_events'[0]: expected `array`, got a dict of length 1"),
    ("event kind", edited(_set(("emitted_events", 1, 0), "warmup_middle")),
     "field 'emitted_events'[1][0]: invalid enum value 'warmup_middle'"),
    ("event kind type", edited(_set(("emitted_events", 0, 0), 3)), "field 'emitted_events'[0][0]: expected `str`, got 3"),
    ("event step future", edited(_set(("emitted_events", 2, 1), 251)),
     "field 'emitted_events'[2] step is out of range: must be <= 250 (the state's step), got 251"),
    ("event step negative", edited(_set(("emitted_events", 0, 1), -1)), "field 'emitted_events'[0][1]: expected `int` >= 0, got -1"),
    ("event step float", edited(_set(("emitted_events", 0, 1), 0.0)), "got 0.0 (a float)"),
    ("last logged", edited(_set(("last_logged_step",), "249")), "field 'last_logged_step': expected `int | null`, got '249'"),
    ("last logged future", edited(_set(("last_logged_step",), 300)), "field 'last_logged_step' is out of range"),
    ("trackers type", edited(_set(("trackers",), "wandb")), "field 'trackers': expected `object`, got 'wandb'"),
    ("monitor_config type", edited(_set(("monitor_config",), None)), "field 'monitor_config': expected `object`, got None"),
    ("written_at", edited(_set(("written_at",), "2024-13-45")), "field 'written_at' must be an ISO 8601 time"),
]


@pytest.mark.parametrize(("data", "expected"), [case[1:] for case in DECODE_CASES], ids=[c[0] for c in DECODE_CASES])
def test_decode_errors_name_the_problem(data: bytes, expected: str) -> None:
    message = decode_error(data, source="run/lrmon_state.json")
    assert expected in message


def test_decode_error_is_a_value_error_with_source_and_problem() -> None:
    with pytest.raises(ValueError) as info:
        decode_state(b"[]", source="here")
    assert isinstance(info.value, StateError)
    assert info.value.source == "here" and "must be a JSON object" in info.value.problem


def test_every_truncation_is_reported_as_truncated() -> None:
    data = encode_state(make_state())
    for end in range(1, len(data)):
        assert "the document appears truncated" in decode_error(data[:end]), end
    assert "the document is empty" in decode_error(data[:0])


def test_oversized_document_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(codec_module, "MAX_STATE_BYTES", 100)
    assert "more than the 100 bytes" in decode_error(GOOD)


def test_decode_accepts_bytes_like_and_rejects_other_types() -> None:
    assert decode_state(bytearray(GOOD)) == decode_state(memoryview(GOOD)) == make_state()
    with pytest.raises(TypeError, match="expects bytes"):
        decode_state(GOOD.decode())  # type: ignore[arg-type]


def test_state_from_dict_rejects_non_json_python_values() -> None:
    doc = state_to_dict(make_state())
    with pytest.raises(StateError, match="the document must be a JSON object"):
        state_from_dict([doc])
    with pytest.raises(StateError, match="a key of field 'trackers': expected `str`"):
        state_from_dict({**doc, "trackers": {("a",): 1}})
    with pytest.raises(StateError, match="a key of the document: expected `str`"):
        state_from_dict({**doc, 3: "x"})
    with pytest.raises(StateError, match=r"field 'config'\['base_lrs'\]\[0\]: number out of range"):
        state_from_dict({**doc, "config": {**doc["config"], "base_lrs": [10**400]}})
    with pytest.raises(StateError, match="field 'config' is not a valid schedule configuration: eta_min"):
        state_from_dict({**doc, "config": {**doc["config"], "eta_min": 1.0}})
    with pytest.raises(StateError, match="field 'emitted_events' must be a sequence in emission order, got a set"):
        make_state(emitted_events={("end", 1), ("resume", 2)})


# -- files ---------------------------------------------------------------------------------------------------------
def test_write_and_read_state_file(tmp_path: Path) -> None:
    path = tmp_path / STATE_FILE_NAME
    assert write_state_file(path, make_state()) == path
    assert path.read_bytes() == encode_state(make_state())
    assert read_state(path) == make_state()
    assert read_state(str(path)) == make_state()
    write_state_file(path, make_state(step=300))
    assert read_state(path).step == 300
    assert sorted(p.name for p in tmp_path.iterdir()) == [STATE_FILE_NAME]


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_written_file_follows_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        path = write_state_file(tmp_path / STATE_FILE_NAME, make_state())
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("failing", ["replace", "fsync", "write"])
def test_crash_during_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               failing: str) -> None:
    path = write_state_file(tmp_path / STATE_FILE_NAME, make_state(step=250))
    old_bytes = path.read_bytes()
    written: list[str] = []

    def crash(*args: Any, **kwargs: Any) -> None:
        written.extend(p.name for p in tmp_path.iterdir() if p.name != STATE_FILE_NAME)
        raise OSError(28, "No space left on device (simulated)")

    if failing == "write":
        monkeypatch.setattr(os, "fdopen", lambda fd, mode: _FailingFile(fd, crash))
    else:
        monkeypatch.setattr(os, failing, crash)
    with pytest.raises(OSError, match="simulated"):
        write_state_file(path, make_state(step=300))
    monkeypatch.undo()
    assert written and all(name.startswith(f".{STATE_FILE_NAME}.") and name.endswith(".tmp") for name in written)
    assert path.read_bytes() == old_bytes
    assert read_state(tmp_path).step == 250
    assert sorted(p.name for p in tmp_path.iterdir()) == [STATE_FILE_NAME]  # the temporary file was removed


class _FailingFile:
    """A file object whose ``write`` crashes (after the temporary file exists)."""

    def __init__(self, fd: int, crash: Callable[[], None]) -> None:
        self._file = open(fd, "wb", closefd=True)
        self._crash = crash

    def __enter__(self) -> "_FailingFile":
        return self

    def __exit__(self, *exc: Any) -> None:
        self._file.close()

    def write(self, data: bytes) -> None:
        self._file.write(data[: len(data) // 2])
        self._crash()


def test_interrupt_during_write_cleans_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_state_file(tmp_path / STATE_FILE_NAME, make_state())

    def interrupt(*args: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupt)
    with pytest.raises(KeyboardInterrupt):
        write_state_file(path, make_state(step=300))
    monkeypatch.undo()
    assert read_state(path) == make_state()
    assert sorted(p.name for p in tmp_path.iterdir()) == [STATE_FILE_NAME]


def test_leftover_temporary_files_are_ignored(tmp_path: Path) -> None:
    write_state_file(tmp_path / STATE_FILE_NAME, make_state())
    (tmp_path / f".{STATE_FILE_NAME}.0123abcd.tmp").write_bytes(GOOD[:40])  # a write killed half-way
    assert read_state(tmp_path) == make_state()
    write_state_file(tmp_path / STATE_FILE_NAME, make_state(step=251))
    assert read_state(tmp_path).step == 251


_WRITER = textwrap.dedent(
    """
    import sys
    from lrmon.curve import CurveConfig
    from lrmon.state import MonitorState, write_state_file
    config = CurveConfig(1e-3, 10, 10**9)
    path = sys.argv[1]
    payload = {"blob": "x" * 200_000}  # large enough that a kill can land mid-write
    print("ready", flush=True)
    step = 1
    while True:
        write_state_file(path, MonitorState(schedule_class="WarmupCosineSchedule", config=config, step=step,
                                            monitor_config=payload))
        step += 1
    """
)


@pytest.mark.slow  # ~4 s: the child process imports jax
@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_sigkill_during_writes_leaves_a_complete_file(tmp_path: Path) -> None:
    path = tmp_path / STATE_FILE_NAME
    process = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        last = 0
        for _ in range(5):  # read while it writes: always a complete state
            time.sleep(0.05)
            if path.exists():
                state = read_state(path)
                assert state.step >= last
                last = state.step
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    final = read_state(tmp_path)  # any leftover .tmp file is ignored
    assert final.step >= max(last, 1)
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != STATE_FILE_NAME]
    assert all(name.startswith(f".{STATE_FILE_NAME}.") and name.endswith(".tmp") for name in leftovers)


# -- read_state sources --------------------------------------------------------------------------------------------
def test_read_state_from_tensorboard_logdir(tmp_path: Path) -> None:
    (tmp_path / "events.out.tfevents.1714560000.host.1.0").write_bytes(b"\x00binary")
    write_state_file(tmp_path / STATE_FILE_NAME, make_state())
    assert read_state(tmp_path) == make_state()


def test_read_state_from_wandb_artifact_dir(tmp_path: Path) -> None:
    artifact = tmp_path / "artifacts" / "lrmon-state-abc123:v3"
    artifact.mkdir(parents=True)
    write_state_file(artifact / STATE_FILE_NAME, make_state())
    marker = write_artifact_marker(artifact)
    assert marker.name == ARTIFACT_MARKER_NAME
    assert json.loads(marker.read_bytes()) == {"type": ARTIFACT_TYPE, "state_file": STATE_FILE_NAME}
    assert read_state(artifact) == make_state()
    assert read_state(str(artifact)) == make_state()


def test_read_state_refuses_an_artifact_of_the_wrong_type(tmp_path: Path) -> None:
    write_state_file(tmp_path / STATE_FILE_NAME, make_state())
    (tmp_path / ARTIFACT_MARKER_NAME).write_text(json.dumps({"type": "model"}))
    with pytest.raises(StateError, match=r"artifact of the wrong type: 'model', expected 'lr-schedule-state'") as e:
        read_state(tmp_path)
    assert str(tmp_path) in str(e.value)


@pytest.mark.parametrize("content", [b"not json", b"[]", b'{"kind": "x"}', b'{"type": 3}', b"\xff"])
def test_read_state_refuses_a_malformed_marker(tmp_path: Path, content: bytes) -> None:
    write_state_file(tmp_path / STATE_FILE_NAME, make_state())
    (tmp_path / ARTIFACT_MARKER_NAME).write_bytes(content)
    with pytest.raises(StateError, match="artifact marker lrmon_artifact.json is not a JSON object"):
        read_state(tmp_path)


def test_read_state_empty_dir(tmp_path: Path) -> None:
    with pytest.raises(StateError, match=f"no lrmon_state.json in {tmp_path}"):
        read_state(tmp_path)
    write_artifact_marker(tmp_path)  # a state artifact without its state
    with pytest.raises(StateError, match="no lrmon_state.json in"):
        read_state(tmp_path)


def test_read_state_state_file_in_subdirectory_is_not_searched(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    write_state_file(tmp_path / "sub" / STATE_FILE_NAME, make_state())
    with pytest.raises(StateError, match="no lrmon_state.json in"):
        read_state(tmp_path)


def test_read_state_missing_path(tmp_path: Path) -> None:
    with pytest.raises(StateError, match="no such file or directory"):
        read_state(tmp_path / "nope")


def test_read_state_corrupted_file_names_the_path_and_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / STATE_FILE_NAME
    damaged = GOOD.replace(b'"step":250', b'"step":251')
    path.write_bytes(damaged)
    with pytest.raises(StateError, match=r"is corrupted: checksum mismatch") as info:
        read_state(tmp_path)
    assert str(info.value).startswith(f"lrmon state {path}: ")
    assert path.read_bytes() == damaged
    assert sorted(p.name for p in tmp_path.iterdir()) == [STATE_FILE_NAME]


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="POSIX permissions, not as root")
def test_read_state_unreadable_file(tmp_path: Path) -> None:
    path = write_state_file(tmp_path / STATE_FILE_NAME, make_state())
    path.chmod(0)
    try:
        with pytest.raises(StateError, match="cannot be read"):
            read_state(path)
    finally:
        path.chmod(0o644)


def test_check_artifact_type() -> None:
    check_artifact_type(ARTIFACT_TYPE)
    with pytest.raises(StateError, match="lrmon state team/proj/run:v1: artifact of the wrong type: 'dataset'"):
        check_artifact_type("dataset", source="team/proj/run:v1")


# -- properties ----------------------------------------------------------------------------------------------------
PROPERTY = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
                | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8))
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=4), inner, max_size=3), max_leaves=5)
lrs = st.floats(min_value=0.0, max_value=10.0, allow_nan=False)


@st.composite
def curve_configs(draw: st.DrawFn) -> CurveConfig:
    base_lrs = draw(st.lists(lrs, min_size=1, max_size=3))
    total = draw(st.integers(min_value=1, max_value=10**12))
    warmup = draw(st.integers(min_value=0, max_value=total))
    eta_min = draw(st.floats(min_value=0.0, max_value=min(base_lrs)))
    return CurveConfig(base_lrs, warmup, total, draw(lrs), eta_min)


@st.composite
def states(draw: st.DrawFn) -> MonitorState:
    step = draw(st.integers(min_value=0, max_value=MAX_STEP))
    event = st.tuples(st.sampled_from(STATE_EVENT_KINDS), st.integers(min_value=0, max_value=step))
    when = draw(st.datetimes(timezones=st.just(datetime.timezone.utc)))
    return MonitorState(
        schedule_class=draw(st.sampled_from(["WarmupCosineSchedule", "MySchedule_2"])),
        config=draw(curve_configs()),
        step=step,
        emitted_events=draw(st.lists(event, max_size=6)),
        last_logged_step=draw(st.none() | st.integers(min_value=0, max_value=step)),
        trackers=draw(st.dictionaries(st.text(max_size=6), json_values, max_size=2)),
        monitor_config=draw(st.dictionaries(st.text(max_size=6), json_values, max_size=2)),
        written_at=when.isoformat(),
    )


def decode_or_state_error(data: bytes) -> MonitorState | None:
    """Decode ``data``; a :class:`StateError` gives ``None``; anything else fails the test."""
    try:
        state = decode_state(data)
    except StateError as error:
        assert str(error).startswith("lrmon state <bytes>: ") and error.problem
        return None
    assert decode_state(encode_state(state)) == state  # whatever decodes is a real, re-encodable state
    return state


@PROPERTY
@given(states())
def test_property_round_trip(state: MonitorState) -> None:
    data = encode_state(state)
    assert decode_state(data) == state
    assert encode_state(decode_state(data)) == data
    assert state_from_dict(state_to_dict(state)) == state
    assert describe_state(state).startswith("lrmon monitor state")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_property_random_bytes_raise_only_state_error(data: bytes) -> None:
    decode_or_state_error(data)


json_ish = st.text(alphabet='{}[]",:0123456789.eE+-tfrunlaNIyi \\u"schemavrsitp', max_size=200)


@settings(max_examples=300, deadline=None)
@given(json_ish)
def test_property_json_like_text_raises_only_state_error(text: str) -> None:
    decode_or_state_error(text.encode("utf-8"))


@PROPERTY
@given(states(), st.data())
def test_property_byte_mutations_raise_only_state_error(state: MonitorState, data: st.DataObject) -> None:
    original = encode_state(state)
    mutated = bytearray(original)
    for _ in range(data.draw(st.integers(min_value=1, max_value=3), label="mutations")):
        position = data.draw(st.integers(min_value=0, max_value=max(len(mutated) - 1, 0)), label="position")
        operation = data.draw(st.sampled_from(["flip", "delete", "insert", "token"]), label="operation")
        if operation == "flip" and mutated:
            mutated[position] ^= data.draw(st.integers(min_value=1, max_value=255), label="xor")
        elif operation == "delete":
            del mutated[position: position + data.draw(st.integers(min_value=1, max_value=8), label="length")]
        elif operation == "insert":
            mutated[position:position] = data.draw(st.binary(min_size=1, max_size=8), label="bytes")
        else:
            token = data.draw(st.sampled_from([b"NaN", b"Infinity", b"-Infinity", b"1e999", b"9" * 80,
                                               b'"\\ud800"', b"[" * 40, b"true", b"null", b"{}", b",", b'"']))
            mutated[position:position] = token
    result = decode_or_state_error(bytes(mutated))
    if bytes(mutated) != original and result is not None:
        # Only changes the canonical re-encoding ignores (e.g. whitespace) may survive the checksum.
        assert encode_state(result) == original


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    paths = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            paths += _paths(item, prefix + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            paths += _paths(item, prefix + (index,))
    return paths


@PROPERTY
@given(states(), st.data(), json_values, st.booleans())
def test_property_value_replacements_raise_only_state_error(state: MonitorState, data: st.DataObject,
                                                            replacement: Any, reseal: bool) -> None:
    doc = json.loads(encode_state(state))
    path = data.draw(st.sampled_from(_paths(doc)), label="path")
    target = doc
    for key in path[:-1]:
        target = target[key]
    original_value = target[path[-1]]
    target[path[-1]] = replacement
    raw = seal(doc) if reseal else json.dumps(doc).encode("utf-8")
    result = decode_or_state_error(raw)
    if result is not None and not reseal:  # the stored checksum only matches if nothing really changed
        assert json.dumps(replacement, sort_keys=True) == json.dumps(original_value, sort_keys=True)


@settings(max_examples=40, deadline=None)
@given(states(), st.sampled_from(FIELDS + ("checksum",)))
def test_property_missing_field_is_named(state: MonitorState, field: str) -> None:
    doc = json.loads(encode_state(state))
    del doc[field]
    message = decode_error(seal(doc) if field != "checksum" else json.dumps(doc).encode())
    assert repr(field) in message


@settings(max_examples=60, deadline=None)
@given(states())
def test_property_truncation_is_always_an_error(state: MonitorState) -> None:
    data = encode_state(state)
    for end in range(0, len(data), max(1, len(data) // 40)):
        assert decode_or_state_error(data[:end]) is None


def test_event_kinds_cover_the_schedule_and_the_monitor() -> None:
    assert STATE_EVENT_KINDS == EVENT_KINDS + ("resume", "thinned")


# -- compatibility -------------------------------------------------------------------------------------------------
FIXTURE = Path(__file__).parent / "data" / "lrmon_state_v1.json"  # written by lrmon before the msgspec schema


def test_a_state_file_written_by_the_earlier_code_still_loads() -> None:
    state = read_state(FIXTURE)
    assert state.config == CurveConfig((1e-3, 3e-4), warmup_steps=100, total_steps=1000, warmup_start_lr=1e-5,
                                       eta_min=1e-6)
    assert (state.step, state.last_logged_step, state.written_at) == (250, 249, "2024-05-01T12:00:00.123456+00:00")
    assert state.emitted_events[-2:] == (("resume", 200), ("thinned", 240))
    assert state.trackers["wandb"]["project"] == "lernrate-übung-学习率"
    assert state.monitor_config["nested"] == {"big": 12345678901234567890, "neg": -2.5e-300}
    assert encode_state(state) == FIXTURE.read_bytes()  # the same bytes, the same checksum
