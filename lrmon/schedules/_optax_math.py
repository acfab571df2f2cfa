r"""The parts :mod:`lrmon.schedules.optax` builds its curves from: optax's formulas and their timelines.

Each part is a frozen dataclass holding one of optax's primitive schedules (constant, polynomial, cosine decay,
exponential decay, piecewise constant, piecewise interpolate) or optax's ``join_schedules`` of parts. A part

* evaluates its formula with an array module ``xp`` (:meth:`_Part.evaluate`): ``jax.numpy`` gives optax's own
  float32 values operation for operation (same clipping, same order, same Python-scalar constants), ``numpy``
  the same formula in float64 (no JAX call);
* describes its timeline: :meth:`_Part.segments`, the runs of its phases ``(name, start, stop)`` (``stop`` is
  ``None`` for the last, open run), and its numbered events (``decay_<k>``, ``boundary_<k>``, ...);
* streams its events lazily (:meth:`_Part.event_stream`), clipped to a window ``[low, limit)``: a joined part
  sees only its window, so a phase cut by the next boundary ends at the step before it.

An event is ``(step, rank, family, suffix)``: its kind is ``f"{family}_{suffix}"`` (``cosine_start``,
``decay_3``); ``rank`` orders the events of one step (join boundaries, phase starts, numbered events, phase ends,
then the curve's ``end``).
In a join, a family that occurs in more than one part (or is the join's own boundary family) is renamed
``<family>_<part number>`` in each of them, so that every kind names one step.
"""

from __future__ import annotations

import dataclasses
import functools
import heapq
import math
from typing import Any, ClassVar, Iterable, Iterator

import numpy as np

__all__ = ["Const", "Poly", "Cos", "Exp", "PwConst", "PwInterp", "Joined", "Segment", "Event", "END_RANK"]

#: ``(phase name, first step, stop)``: the steps ``[first, stop)`` (``stop`` ``None``: no end).
Segment = tuple[str, int, "int | None"]
#: ``(step, rank, family, suffix)``; the kind is ``f"{family}_{suffix}"``.
Event = tuple[int, int, str, Any]

_BOUNDARY_RANK, _START_RANK, _NUMBERED_RANK, _END_RANK = 0, 1, 2, 3
#: Rank of the curve's ``end`` event (after every other event of its step).
END_RANK = 4


def _event_key(event: Event) -> tuple[int, int]:
    return event[0], event[1]


def _full(xp: Any, step: Any, value: float) -> Any:
    """``value`` at every step (optax returns the bare value; the protocol wants step's shape)."""
    return xp.full(xp.shape(step), value, dtype=float)


def _limit_min(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)


class _Part:
    """What every part provides; subclasses define :meth:`evaluate` and :meth:`segments`."""

    def evaluate(self, xp: Any, step: Any) -> Any:
        """The value at ``step`` (an array of any shape) with array module ``xp``: an array of step's shape."""
        raise NotImplementedError

    def segments(self) -> tuple[Segment, ...]:
        """The runs of the phases, in order: non-empty, contiguous, from step 0, the last one open."""
        raise NotImplementedError

    @property
    def numbered(self) -> str | None:
        """The family of the numbered events (``decay``, ``boundary``), or ``None``."""
        return None

    def numbered_steps(self, low: int, limit: int | None) -> Iterator[tuple[int, int]]:
        """``(number, step)`` of the numbered events at steps in ``[low, limit)``, in step order."""
        return iter(())

    def endless(self) -> bool:
        """True when the numbered events go on forever."""
        return False

    def breaks(self) -> Iterable[int]:
        """Steps where the value may jump inside a phase (for :meth:`peak`)."""
        return ()

    def event_stream(self, low: int, limit: int | None) -> Iterator[Event]:
        """The events at steps in ``[low, limit)`` in ``(step, rank)`` order; the phases are cut at ``limit``."""
        phase_events: list[Event] = []
        for name, start, stop in self.segments():
            if limit is not None:
                if start >= limit:
                    break
                stop = limit if stop is None else min(stop, limit)
            if start >= low:
                phase_events.append((start, _START_RANK, name, "start"))
            if stop is not None and stop - 1 >= low:
                phase_events.append((stop - 1, _END_RANK, name, "end"))
        phase_events.sort(key=_event_key)
        family = self.numbered
        numbered = ((step, _NUMBERED_RANK, family, k) for k, step in self.numbered_steps(low, limit))
        return heapq.merge(phase_events, numbered, key=_event_key)

    def families(self, limit: int | None) -> set[str]:
        """The event families at steps below ``limit`` (the phase names and the numbered family)."""
        names = {name for name, start, _ in self.segments() if limit is None or start < limit}
        if self.numbered is not None and next(self.numbered_steps(0, limit), None) is not None:
            names.add(self.numbered)
        return names

    def peak(self, limit: int | None) -> float:
        """The largest value (float64 formula) at steps in ``[0, limit)``.

        Every primitive is monotone within a phase except at :meth:`breaks`, and its last, open phase never rises
        (:class:`Exp` overrides this for unbounded growth), so the largest value is at one of these steps.
        """
        steps = {0}
        for _, start, stop in self.segments():
            if limit is not None and start >= limit:
                break
            steps.add(start)
            if stop is not None:
                steps.add(stop - 1 if limit is None else min(stop, limit) - 1)
        steps.update(b for b in self.breaks() if limit is None or b < limit)
        if limit is not None:
            steps.add(limit - 1)
        values = self.evaluate(np, np.asarray(sorted(steps), np.float64))
        return float(np.max(values))


@dataclasses.dataclass(frozen=True)
class Const(_Part):
    """optax's ``constant_schedule``: ``value`` at every step."""

    value: float
    name: str = "constant"

    def evaluate(self, xp: Any, step: Any) -> Any:
        return _full(xp, step, self.value)

    def segments(self) -> tuple[Segment, ...]:
        return ((self.name, 0, None),)


@dataclasses.dataclass(frozen=True)
class Poly(_Part):
    """optax's ``polynomial_schedule`` (``power=1``: ``linear_schedule``).

    ``names``: the phases before ``transition_begin``, during the transition and after it. With
    ``transition_steps == 0`` optax holds ``init_value`` at every step: one phase, the last name, from step 0.
    """

    init_value: float
    end_value: float
    power: float
    transition_steps: int
    transition_begin: int
    names: tuple[str, str, str] = ("delay", "polynomial", "final")

    def evaluate(self, xp: Any, step: Any) -> Any:
        if self.transition_steps <= 0:
            return _full(xp, step, self.init_value)
        count = xp.clip(step - self.transition_begin, 0, self.transition_steps)
        frac = 1 - count / self.transition_steps
        # Compiled, XLA computes count / T as count * (1 / T), and 1 - T * (1 / T) may be a float32 ulp off 0:
        # optax's own jitted schedule then holds end_value + (init_value - end_value) * ulp ** power after the
        # transition (NaN for a fractional power, 1e-4 of the range for power 0.5). The value optax computes
        # eager, frac == 0 at count == T, is kept exactly; eager, no value changes.
        frac = xp.where(count < self.transition_steps, frac, 0.0)
        return (self.init_value - self.end_value) * (frac**self.power) + self.end_value

    def segments(self) -> tuple[Segment, ...]:
        before, during, after = self.names
        begin, stop = self.transition_begin, self.transition_begin + self.transition_steps
        if self.transition_steps <= 0:
            return ((after, 0, None),)
        return ((before, 0, begin),) * (begin > 0) + ((during, begin, stop), (after, stop, None))


@dataclasses.dataclass(frozen=True)
class Cos(_Part):
    """optax's ``cosine_decay_schedule``: phases ``cosine`` (``[0, decay_steps)``) and ``final``."""

    init_value: float
    decay_steps: int
    alpha: float
    exponent: float

    def evaluate(self, xp: Any, step: Any) -> Any:
        decay_steps = float(self.decay_steps)  # optax: avoids int32 overflow when jitted
        count = xp.minimum(step, decay_steps)
        cosine_decay = 0.5 * (1 + xp.cos(xp.pi * count / decay_steps))
        decayed = (1 - self.alpha) * cosine_decay**self.exponent + self.alpha
        return self.init_value * decayed

    def segments(self) -> tuple[Segment, ...]:
        return (("cosine", 0, self.decay_steps), ("final", self.decay_steps, None))


@dataclasses.dataclass(frozen=True)
class Exp(_Part):
    """optax's ``exponential_decay``: phases ``delay`` (before ``transition_begin``), ``decay`` and ``final``
    (from :attr:`clamp_step`, the first step clamped at ``end_value``; none without a reachable ``end_value``);
    numbered events ``decay_<k>`` at the staircase drops ``transition_begin + k * transition_steps``."""

    init_value: float
    transition_steps: int
    decay_rate: float
    transition_begin: int
    staircase: bool
    end_value: float | None

    def _decayed(self, xp: Any, step: Any) -> Any:
        decreased_count = step - self.transition_begin
        p = decreased_count / self.transition_steps
        if self.staircase:
            p = xp.floor(p)
        return xp.where(decreased_count <= 0, self.init_value, self.init_value * xp.power(self.decay_rate, p))

    def evaluate(self, xp: Any, step: Any) -> Any:
        decayed = self._decayed(xp, step)
        if self.end_value is not None:
            decayed = (xp.maximum if self.decay_rate < 1.0 else xp.minimum)(decayed, self.end_value)
        return decayed

    def _changes(self) -> bool:
        return self.decay_rate != 1.0 and self.init_value != 0.0

    def _reached(self, step: int) -> bool:
        """The unclamped float64 value at ``step`` is at or beyond ``end_value``."""
        value = float(self._decayed(np, np.float64(step)))
        return value <= self.end_value if self.decay_rate < 1.0 else value >= self.end_value

    @functools.cached_property
    def clamp_step(self) -> int | None:
        """The first step whose value is ``end_value`` (float64 formula); ``None`` if never."""
        end, init, rate = self.end_value, self.init_value, self.decay_rate
        if end is None or not self._changes() or end == 0.0:
            return None
        begin, span = self.transition_begin, self.transition_steps
        periods = math.log(end / init) / math.log(rate)  # >= 0: end_value is on the decay's side of init_value
        guess = periods if self.staircase else periods * span
        if not guess < 2.0**52:
            return None
        n = max(0, math.ceil(guess))
        at = (lambda k: begin + k * span) if self.staircase else (lambda k: begin + k)
        while n > 0 and self._reached(at(n - 1)):
            n -= 1
        while not self._reached(at(n)):
            n += 1
        return at(n)

    def segments(self) -> tuple[Segment, ...]:
        begin, clamp = self.transition_begin, self.clamp_step
        out: tuple[Segment, ...] = (("delay", 0, begin),) * (begin > 0)
        if clamp is None:
            return out + (("decay", begin, None),)
        return out + (("decay", begin, clamp),) * (clamp > begin) + (("final", clamp, None),)

    @property
    def numbered(self) -> str | None:
        return "decay" if self.staircase and self._changes() else None

    def numbered_steps(self, low: int, limit: int | None) -> Iterator[tuple[int, int]]:
        if self.numbered is None:
            return
        begin, span, clamp = self.transition_begin, self.transition_steps, self.clamp_step
        stop = _limit_min(limit, None if clamp is None else clamp + 1)
        k = max(1, -(-(low - begin) // span))
        while stop is None or begin + k * span < stop:
            yield k, begin + k * span
            k += 1

    def endless(self) -> bool:
        return self.numbered is not None and self.clamp_step is None

    def peak(self, limit: int | None) -> float:
        if limit is None and self.decay_rate > 1.0 and self.init_value > 0.0 and self.clamp_step is None:
            return math.inf
        return super().peak(limit)


def _boundary_steps(pairs: tuple[tuple[int, float], ...], low: int, limit: int | None) -> Iterator[tuple[int, int]]:
    """``(k, boundary)`` of the sorted boundaries in ``[low, limit)`` (``k`` counts from 1 over all of them)."""
    return ((k, b) for k, (b, _) in enumerate(pairs, 1) if b >= low and (limit is None or b < limit))


@dataclasses.dataclass(frozen=True)
class PwConst(_Part):
    """optax's ``piecewise_constant_schedule``: one phase ``constant``; ``boundary_<k>`` at the k-th boundary."""

    init_value: float
    boundaries_and_scales: tuple[tuple[int, float], ...]  # sorted, as optax iterates them

    def evaluate(self, xp: Any, step: Any) -> Any:
        if not self.boundaries_and_scales:
            return _full(xp, step, self.init_value)
        v = self.init_value
        for threshold, scale in self.boundaries_and_scales:
            indicator = xp.maximum(0.0, xp.sign(threshold - step))
            v = v * indicator + (1 - indicator) * scale * v
        return v

    def segments(self) -> tuple[Segment, ...]:
        return (("constant", 0, None),)

    @property
    def numbered(self) -> str | None:
        return "boundary" if self.boundaries_and_scales else None

    def numbered_steps(self, low: int, limit: int | None) -> Iterator[tuple[int, int]]:
        return _boundary_steps(self.boundaries_and_scales, low, limit)

    def breaks(self) -> Iterable[int]:
        return (boundary for boundary, _ in self.boundaries_and_scales)


def _linear_interpolate(xp: Any, start: Any, end: Any, pct: Any) -> Any:
    return (end - start) * pct + start


def _cosine_interpolate(xp: Any, start: Any, end: Any, pct: Any) -> Any:
    return end + (start - end) / 2.0 * (xp.cos(xp.pi * pct) + 1)


@dataclasses.dataclass(frozen=True)
class PwInterp(_Part):
    """optax's ``piecewise_interpolate_schedule`` (and so its onecycle schedules).

    ``names``: one phase name per interval (the onecycle phases), then ``final``; ``None``: one phase named after
    ``interpolate_type`` up to the last boundary, then ``final``, with ``boundary_<k>`` at the k-th boundary.
    """

    interpolate_type: str
    init_value: float
    boundaries_and_scales: tuple[tuple[int, float], ...]  # sorted, as optax iterates them
    names: tuple[str, ...] | None = None

    _INTERPOLATE: ClassVar[dict[str, Any]] = {"linear": _linear_interpolate, "cosine": _cosine_interpolate}

    def evaluate(self, xp: Any, step: Any) -> Any:
        boundaries = tuple(boundary for boundary, _ in self.boundaries_and_scales)
        scales = tuple(scale for _, scale in self.boundaries_and_scales)
        bounds = xp.asarray((0,) + boundaries)
        values = xp.cumprod(xp.asarray((self.init_value,) + scales))
        interval_sizes = xp.maximum(bounds[1:] - bounds[:-1], 1)
        count = step[..., None]  # optax's schedule takes a scalar count; this is it for every step at once
        indicator = xp.logical_and(bounds[:-1] <= count, count < bounds[1:])
        pct = (count - bounds[:-1]) / interval_sizes
        interp_vals = self._INTERPOLATE[self.interpolate_type](xp, values[:-1], values[1:], pct)
        return xp.sum(indicator * interp_vals, axis=-1) + (bounds[-1] <= step) * values[-1]

    def segments(self) -> tuple[Segment, ...]:
        boundaries = [boundary for boundary, _ in self.boundaries_and_scales]
        last = boundaries[-1] if boundaries else 0
        if self.names is None:
            return ((self.interpolate_type, 0, last),) * (last > 0) + (("final", last, None),)
        out, previous = [], 0
        for boundary, name in zip(boundaries, self.names):
            if boundary > previous:
                out.append((name, previous, boundary))
            previous = boundary
        return tuple(out) + (("final", last, None),)

    @property
    def numbered(self) -> str | None:
        return "boundary" if self.names is None and self.boundaries_and_scales else None

    def numbered_steps(self, low: int, limit: int | None) -> Iterator[tuple[int, int]]:
        return _boundary_steps(self.boundaries_and_scales if self.names is None else (), low, limit)

    def breaks(self) -> Iterable[int]:
        return (boundary for boundary, _ in self.boundaries_and_scales)


def _shifted(events: Iterator[Event], offset: int, rename: dict[str, str]) -> Iterator[Event]:
    for step, rank, family, suffix in events:
        yield step + offset, rank, rename[family], suffix


@dataclasses.dataclass(frozen=True)
class Joined(_Part):
    """optax's ``join_schedules``: part ``i + 1`` from ``boundaries[i]`` on, evaluated at ``step - boundary``.

    ``family``: the numbered family of the boundaries (``boundary``, ``restart``), or ``None`` for none (a warmup
    joined to a decay, where the phases say it all). ``boundaries`` are non-decreasing.
    """

    parts: tuple[_Part, ...]
    boundaries: tuple[int, ...]
    family: str | None = None

    def evaluate(self, xp: Any, step: Any) -> Any:
        output = self.parts[0].evaluate(xp, step)
        for boundary, part in zip(self.boundaries, self.parts[1:]):
            output = xp.where(step < boundary, output, part.evaluate(xp, step - boundary))
        return output

    def windows(self) -> list[tuple[int, _Part, int, int | None]]:
        """``(index, part, start, stop)`` of each part with a non-empty window ``[start, stop)``."""
        starts, stops = (0,) + self.boundaries, self.boundaries + (None,)
        return [(i, part, start, stop) for i, (part, start, stop) in enumerate(zip(self.parts, starts, stops))
                if stop is None or stop > start]

    @functools.cached_property
    def renames(self) -> tuple[dict[str, str], ...]:
        """Per part: family -> its name in this join (``<family>_<part number>`` where it would repeat)."""
        names: list[dict[str, str]] = [{} for _ in self.parts]
        for i, part, start, stop in self.windows():
            names[i] = {family: family for family in part.families(None if stop is None else stop - start)}
        reserved = [self.family] if self.family is not None and self.boundaries else []
        while True:
            counts: dict[str, int] = {}
            for name in reserved + [n for part_names in names for n in part_names.values()]:
                counts[name] = counts.get(name, 0) + 1
            clashes = {name for name, count in counts.items() if count > 1}
            if not clashes:
                return tuple(names)
            for i, part_names in enumerate(names):
                for family, name in part_names.items():
                    if name in clashes:
                        part_names[family] = f"{name}_{i + 1}"

    def segments(self) -> tuple[Segment, ...]:
        out: list[Segment] = []
        for _, part, start, stop in self.windows():
            for name, first, end in part.segments():
                first, end = first + start, None if end is None else end + start
                if stop is not None:
                    if first >= stop:
                        break
                    end = stop if end is None else min(end, stop)
                out.append((name, first, end))
        return tuple(out)

    def event_stream(self, low: int, limit: int | None) -> Iterator[Event]:
        streams: list[Iterator[Event]] = []
        if self.family is not None:
            streams.append(iter([(b, _BOUNDARY_RANK, self.family, k) for k, b in enumerate(self.boundaries, 1)
                                 if b >= low and (limit is None or b < limit)]))
        for i, part, start, stop in self.windows():
            if limit is not None and start >= limit:
                break
            part_limit = _limit_min(stop, limit)
            part_limit = None if part_limit is None else part_limit - start
            streams.append(_shifted(part.event_stream(max(0, low - start), part_limit), start, self.renames[i]))
        return heapq.merge(*streams, key=_event_key)

    def families(self, limit: int | None) -> set[str]:
        names = set()
        if self.family is not None and any(limit is None or b < limit for b in self.boundaries):
            names.add(self.family)
        for i, part, start, stop in self.windows():
            if limit is not None and start >= limit:
                break
            part_limit = _limit_min(stop, limit)
            names |= {self.renames[i][f] for f in part.families(None if part_limit is None else part_limit - start)}
        return names

    def endless(self) -> bool:
        return self.windows()[-1][1].endless()

    def peak(self, limit: int | None) -> float:
        peaks = []
        for _, part, start, stop in self.windows():
            if limit is not None and start >= limit:
                break
            part_limit = _limit_min(stop, limit)
            peaks.append(part.peak(None if part_limit is None else part_limit - start))
        return max(peaks)
