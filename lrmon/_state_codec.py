r"""The state document as bytes: canonical JSON with a checksum, parsed strictly (never pickle, never eval).

*Canonical JSON* is ``json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
allow_nan=False)`` encoded as UTF-8. The checksum is the SHA-256 of the canonical JSON of every field but
``checksum``:

.. math::

   \mathrm{checksum} = \operatorname{sha256}\bigl(\operatorname{canonical}(doc \setminus \{checksum\})\bigr)

It is verified on the *parsed* document, so it does not depend on the formatting of the file.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from typing import Any, Mapping

from lrmon._state_model import MonitorState, state_from_dict, state_to_dict
from lrmon._state_schema import MAX_JSON_DEPTH, MAX_SHOWN, SchemaError, StateError, check_header, show

__all__ = ["MAX_STATE_BYTES", "canonical_json", "decode_state", "encode_state"]

#: Largest state document accepted, in bytes.
MAX_STATE_BYTES = 16 * 1024 * 1024

_CHECKSUM = "checksum"
_CHECKSUM_PATTERN = re.compile(r"[0-9a-f]{64}")
_MAX_INT_DIGITS = 64  # longest integer literal accepted in a document (steps need at most 19 digits)


def canonical_json(doc: Any) -> bytes:
    """``doc`` as canonical JSON bytes (see the module docstring)."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def _checksum(body: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_json(body)).hexdigest()


def encode_state(state: MonitorState) -> bytes:
    """The state as canonical JSON bytes (sorted keys, UTF-8), with its ``checksum`` field."""
    body = state_to_dict(state)
    return canonical_json({**body, _CHECKSUM: _checksum(body)})


def _reject_constant(name: str) -> Any:
    raise SchemaError(f"the document holds {name}, which is not a JSON number (NaN and infinities are not allowed)")


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise SchemaError(f"the document holds the number {text[:MAX_SHOWN]}, which overflows a float")
    return value


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > _MAX_INT_DIGITS:
        digits = len(text.lstrip("-"))
        raise SchemaError(f"the document holds an integer of {digits} digits (at most {_MAX_INT_DIGITS} allowed)")
    return int(text)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise SchemaError(f"an object in the document repeats the key {show(key)}")
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
    """Bytes -> parsed JSON, strictly; raises :class:`SchemaError`."""
    if len(data) > MAX_STATE_BYTES:
        raise SchemaError(f"the document is {len(data)} bytes, more than the {MAX_STATE_BYTES} bytes a state may have")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise SchemaError(f"the document is not UTF-8 text (byte {error.start}: {error.reason})") from None
    if not text.strip():
        raise SchemaError("the document is empty")
    try:
        doc = json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_reject_constant,
                         parse_float=_parse_float, parse_int=_parse_int)
    except json.JSONDecodeError as error:
        hint = " (the document appears truncated)" if _looks_truncated(text, error) else ""
        where = f"line {error.lineno} column {error.colno}"
        raise SchemaError(f"the document is not valid JSON{hint}: {error.msg} at {where}") from None
    except RecursionError:
        raise SchemaError("the document is nested too deeply to be a state document") from None
    except ValueError as error:  # e.g. an integer literal beyond Python's digit limit
        raise SchemaError(f"the document is not valid JSON: {error}") from None
    if _document_depth(doc) > MAX_JSON_DEPTH + 1:
        raise SchemaError(f"the document is nested deeper than {MAX_JSON_DEPTH + 1} levels")
    return doc


def _verify_checksum(doc: dict[str, Any]) -> dict[str, Any]:
    """The document without its checksum, after checking the checksum; raises :class:`SchemaError`."""
    if _CHECKSUM not in doc:
        raise SchemaError("missing field 'checksum' (every state written by lrmon has one)")
    expected = doc[_CHECKSUM]
    if not isinstance(expected, str) or not _CHECKSUM_PATTERN.fullmatch(expected):
        raise SchemaError(f"field 'checksum' must be 64 lowercase hex digits (sha256), got {show(expected)}")
    body = {key: value for key, value in doc.items() if key != _CHECKSUM}
    try:
        actual = _checksum(body)
    except UnicodeEncodeError:
        raise SchemaError("the document holds a string that is not valid Unicode text (a lone surrogate)") from None
    except (ValueError, RecursionError) as error:
        raise SchemaError(f"the document cannot be checksummed: {error}") from None
    if actual != expected:
        raise SchemaError(
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
        check_header(doc)  # before the checksum: a newer lrmon may checksum differently
        body = _verify_checksum(doc)
    except SchemaError as problem:
        raise StateError(str(problem), source) from None
    return state_from_dict(body, source=source)
