r"""The one schedule protocol: what the monitor, the state, the trackers and the CLI read from a schedule's curve.

A *curve* is an immutable, hashable value describing a learning-rate schedule as a pure function of the step
:math:`t` (the index of the train step that uses the LR). Every curve provides

* ``lr_at(step)``: the LR of every parameter group, shape ``step.shape + (num_groups,)``, with ``jax.numpy``:
  traceable and vectorised (what an optimizer applies);
* ``exact_lr_at(step)``: the same with NumPy in float64 (no JAX call: safe inside host callbacks);
* ``phases`` (names) and ``phase_at(step)`` (the index of each step's phase in ``phases``, int8);
* ``events(low, high)``: the named steps in ``[low, high)``, as ``(kind, step)`` in step order; each kind names
  one step (repeating events are numbered: ``restart_1``, ``restart_2``, ...). ``high=None`` lists them all and
  raises ``ValueError`` for a curve with endless events (``StepLR``);
* ``to_dict()`` and :func:`curve_from_dict` (via :func:`register`) for the state and the configuration check,
  ``differing_fields(other)`` for the check's message;
* ``num_groups`` and ``peak_lr`` (the largest LR the curve takes; for figures).

:class:`lrmon.curve.CurveConfig` (warmup + cosine) is one curve; :mod:`lrmon.schedules.optax` and
:mod:`lrmon.schedules.braintools` hold the others. Its ``to_dict`` has no ``"curve"`` key (the state format of
lrmon 0.1); every other curve's has ``"curve": <name>``.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Protocol, runtime_checkable

import numpy as np

__all__ = ["Curve", "CURVE_KEY", "register", "curve_from_dict", "curve_names", "check_event_kind", "differing_fields",
           "curve_name", "config_fields"]

#: Key of ``to_dict()`` naming the curve's family (absent for warmup + cosine).
CURVE_KEY = "curve"

_FROM_DICT: dict[str, Callable[[dict[str, Any]], "Curve"]] = {}


@runtime_checkable
class Curve(Protocol):
    """A learning-rate curve; see the module docstring."""

    @property
    def num_groups(self) -> int: ...

    @property
    def peak_lr(self) -> float: ...

    @property
    def phases(self) -> tuple[str, ...]: ...

    def lr_at(self, step: Any) -> Any: ...

    def exact_lr_at(self, step: Any) -> np.ndarray: ...

    def phase_at(self, step: Any) -> np.ndarray: ...

    def events(self, low: int = 0, high: int | None = None) -> list[tuple[str, int]]: ...

    def to_dict(self) -> dict[str, Any]: ...

    def differing_fields(self, other: "Curve") -> list[str]: ...


def register(name: str, from_dict: Callable[[dict[str, Any]], Curve]) -> None:
    """Make :func:`curve_from_dict` build curves whose ``to_dict()`` says ``"curve": name``."""
    _FROM_DICT[name] = from_dict


def curve_names() -> list[str]:
    """The registered curve names (after importing the modules that register them)."""
    _import_families()
    return sorted(_FROM_DICT)


def curve_from_dict(data: Any) -> Curve:
    """The curve of a ``to_dict()`` output: warmup + cosine without a ``"curve"`` key, else the named family.

    Raises:
      ValueError: not a mapping, an unknown curve name, or fields the family refuses (the message names them).
    """
    if not isinstance(data, dict):
        raise ValueError(f"a schedule configuration must be an object, got {type(data).__name__}")
    if CURVE_KEY not in data:
        from lrmon.curve import CurveConfig

        return CurveConfig.from_dict(data)
    name = data[CURVE_KEY]
    _import_families()
    if name not in _FROM_DICT:
        raise ValueError(f"unknown schedule {name!r}: this lrmon knows {', '.join(sorted(_FROM_DICT))}")
    try:
        return _FROM_DICT[name](data)
    except (TypeError, KeyError) as error:
        raise ValueError(f"schedule {name!r}: {error}") from None


def curve_name(curve: Curve) -> str:
    """The family name of ``curve`` (``"warmup_cosine"`` for :class:`lrmon.curve.CurveConfig`)."""
    return curve.to_dict().get(CURVE_KEY, "warmup_cosine")


def differing_fields(saved: Curve, current: Curve) -> list[str]:
    """The configuration fields that differ between two curves (``["curve"]`` for two different families)."""
    if curve_name(saved) != curve_name(current):
        return [CURVE_KEY]
    return saved.differing_fields(current)


def config_fields(curve: Curve) -> dict[str, Any]:
    """The configuration fields of ``curve``: ``to_dict()`` without its ``"curve"`` key, ``"args"`` flattened."""
    data = curve.to_dict()
    return {**{k: v for k, v in data.items() if k not in (CURVE_KEY, "args")}, **data.get("args", {})}


def check_event_kind(kind: str) -> str:
    """An event kind is a lower-case identifier (it becomes part of tracker tags)."""
    if not (isinstance(kind, str) and kind and kind[0].isalpha() and kind.replace("_", "a").isalnum()
            and kind == kind.lower()):
        raise ValueError(f"event kind must be a lower-case identifier, got {kind!r}")
    return kind


def _import_families() -> None:
    """Import the modules that register curve families (each registers itself on import)."""
    for module in ("lrmon.schedules._function", "lrmon.schedules.braintools", "lrmon.schedules.optax"):
        importlib.import_module(module)
