r"""optax's schedule constructors, by optax's names and signatures, as schedules that know their phases and events.

``lrmon.schedules.optax.warmup_cosine_decay_schedule(0.0, 1e-3, 100, 1000)`` takes optax's arguments and
returns an :class:`OptaxSchedule`: a frozen, hashable value that is

* an optax schedule: ``schedule(count)`` is the LR at ``count`` (an array of count's shape), so
  ``optax.adamw(learning_rate=schedule)`` works; the value is optax's own, computed with optax's structure and
  operation order in float32 (``join_schedules`` of a linear warmup and a cosine decay, ``jnp.where`` at each
  boundary, the same clipping and the same Python-scalar constants), so it agrees with optax's schedule to float32
  rounding (evaluated the same way, eager or jitted, the values are bitwise optax's, with one deliberate
  exception: after a polynomial/linear transition lrmon holds ``end_value`` exactly, where optax's
  ``1 - count / T`` can be a float32 ulp off 0, which a fractional ``power`` amplifies to ~1e-4 of the range, or
  NaN when jitted);
* an lrmon curve (:mod:`lrmon.schedules._protocol`, one parameter group): ``lr_at`` (``jax.numpy``),
  ``exact_lr_at`` (the same formula in NumPy float64, no JAX call), ``phases``/``phase_at``, ``events``,
  ``to_dict``/:func:`lrmon.schedules.curve_from_dict`, ``differing_fields`` and ``peak_lr``.

This module does not import optax (an optional extra): it needs only JAX and NumPy.

Phases and events
-----------------

One rule for every constructor: the steps go through named *phases*; a phase's first step is the event
``<phase>_start`` and its last step ``<phase>_end``. A planned finite schedule ends with the phase ``final``
(the value optax holds after the schedule); its last planned step is the event ``end`` (``final_start``, one
step later, fires only if training runs past the planned schedule). Repeating events are numbered from 1:
staircase drops ``decay_<k>``, piecewise boundaries ``boundary_<k>`` (at the first step at the new value), the
boundaries of :func:`join_schedules` ``boundary_<k>`` (part ``k + 1`` starts there), the restarts of
:func:`sgdr_schedule` ``restart_<k>`` (cycle ``k + 1`` starts there). Every kind names one step: in a join, a
phase (or numbered family) that occurs in several parts is renamed ``<name>_<part number>`` in each of them
(``cosine_2_start``: the first step of the cosine of part 2, i.e. of SGDR cycle 2; ``decay_2_3``: the third
staircase drop of part 2). A phase of zero steps has no events and is not in ``phases`` (``phases`` lists the
phases the curve goes through, in order). ``W`` is ``warmup_steps``, ``B`` ``transition_begin``, ``T``
``transition_steps``, ``D`` ``decay_steps``; ``E`` is the first step whose value is ``end_value`` (float64
formula):

=================================  ==============================  ===================================================
constructor                        phases: steps                   events: step
=================================  ==============================  ===================================================
constant_schedule                  constant: ``[0, inf)``          constant_start: 0
polynomial_schedule                delay: ``[0, B)``               delay_start: 0, delay_end: B-1,
                                   polynomial: ``[B, B+T)``        polynomial_start: B, polynomial_end: B+T-1,
                                   final: ``[B+T, inf)``           end: B+T-1, final_start: B+T
                                                                   (``T = 0``: optax holds ``init_value``; final from 0)
linear_schedule                    as polynomial, ``linear``       as polynomial, ``linear_start``, ``linear_end``
cosine_decay_schedule              cosine: ``[0, D)``              cosine_start: 0, cosine_end: D-1, end: D-1,
                                   final: ``[D, inf)``             final_start: D
exponential_decay                  delay: ``[0, B)``               delay_start: 0, delay_end: B-1, decay_start: B,
                                   decay: ``[B, E)``               staircase: decay_k: B+k*T (k = 1, 2, ..., up to E:
                                   final: ``[E, inf)``             endless without ``end_value``), decay_end: E-1,
                                   (no final without end_value)    end: E-1, final_start: E
piecewise_constant_schedule        constant: ``[0, inf)``          constant_start: 0, boundary_k: k-th boundary (sorted)
piecewise_interpolate_schedule     linear or cosine (the           <type>_start: 0, boundary_k: b_k (k-th, sorted),
                                   interpolate_type): ``[0, b_n)`` <type>_end: b_n-1, end: b_n-1, final_start: b_n
                                   final: ``[b_n, inf)``
warmup_constant_schedule           warmup: ``[0, W)``              warmup_start: 0, warmup_end: W-1,
                                   constant: ``[W, inf)``          constant_start: W (no end: planned forever)
warmup_cosine_decay_schedule       warmup: ``[0, W)``              warmup_start: 0, warmup_end: W-1, cosine_start: W,
                                   cosine: ``[W, D)``              cosine_end: D-1, end: D-1, final_start: D
                                   final: ``[D, inf)``
warmup_exponential_decay_schedule  warmup: ``[0, W)``, then        warmup_start: 0, warmup_end: W-1, then those of
                                   exponential_decay's from W      exponential_decay shifted by W (decay_k: W+B+k*T)
linear_onecycle_schedule           warmup: ``[0, b1)``             warmup_start: 0, warmup_end: b1-1,
                                   decay: ``[b1, b2)``             decay_start: b1, decay_end: b2-1,
                                   anneal: ``[b2, T)``             anneal_start: b2, anneal_end: T-1,
                                   final: ``[T, inf)``             end: T-1, final_start: T
                                   (b1 = int(pct_start*T), b2 = int(pct_final*T))
cosine_onecycle_schedule           warmup: ``[0, b1)``             warmup_start: 0, warmup_end: b1-1,
                                   anneal: ``[b1, T)``             anneal_start: b1, anneal_end: T-1,
                                   final: ``[T, inf)``             end: T-1, final_start: T
sgdr_schedule                      each cycle's warmup and         restart_k: start of cycle k+1; each cycle's events
                                   cosine; final after the last    (cosine_<cycle>_start, ...); end: last step of the
                                                                   last cycle, final_start: the step after
join_schedules                     the parts' phases, each from    boundary_k: boundaries[k-1]; the parts' events,
                                   its boundary, cut at the next   shifted by their boundary and cut at the next; end
                                                                   and final_start of the last part
=================================  ==============================  ===================================================

Events that go on forever (a staircase :func:`exponential_decay` with no ``end_value``) are generated lazily:
``events(low, high)`` works for any finite ``high``; ``events()`` raises ``ValueError``.

Arguments
---------

The constructors check their arguments and raise ``TypeError``/``ValueError`` whose message starts with the
parameter's name for what optax refuses (``decay_steps <= 0`` for a cosine decay, negative scales, an unknown
``interpolate_type``, non-positive onecycle ``transition_steps``) and for what makes no sense as an LR schedule:
non-integer or bool step counts, negative ones (optax silently treats a negative ``transition_begin`` as 0),
non-finite or negative LRs, ``transition_steps < 1`` or ``decay_rate <= 0`` for an exponential decay (optax
documents both as "must be positive"/"must not be zero" and silently returns a constant), an ``end_value`` on the
wrong side of the decay's start (optax would hold it at every step), ``warmup_steps == 0`` for
:func:`warmup_constant_schedule` (optax then holds ``init_value``, not ``peak_value``), a ``power`` or ``exponent``
``<= 0``, a negative ``alpha``, percentages outside ``[0, 1]`` (and ``pct_final < pct_start``), non-increasing
join boundaries, a number of boundaries other than ``len(schedules) - 1``, join children not built by this
module. The checked values are Python numbers (an integer ``power`` or ``exponent`` stays an integer: optax
computes ``x ** 2`` and ``x ** 2.0`` differently), so ``to_dict()`` holds them as JSON.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

import numpy as np

from lrmon._validation import check_learning_rate, check_step_count
from lrmon.schedules._optax_math import Const, Cos, Exp, Joined, Poly, PwConst, PwInterp
from lrmon.schedules._optax_schedule import (
    _PREFIX,
    OptaxSchedule,
    _exponential_args,
    _interpolate_type,
    _number,
    _onecycle_args,
    _scales,
    _schedule,
    _warmup_cosine_args,
)
from lrmon.schedules._protocol import CURVE_KEY, curve_from_dict, register

__all__ = [
    "OptaxSchedule",
    "constant_schedule",
    "polynomial_schedule",
    "linear_schedule",
    "cosine_decay_schedule",
    "exponential_decay",
    "piecewise_constant_schedule",
    "piecewise_interpolate_schedule",
    "warmup_constant_schedule",
    "warmup_cosine_decay_schedule",
    "warmup_exponential_decay_schedule",
    "linear_onecycle_schedule",
    "cosine_onecycle_schedule",
    "sgdr_schedule",
    "join_schedules",
]


def _from_dict(data: dict[str, Any]) -> OptaxSchedule:
    """The schedule of :meth:`OptaxSchedule.to_dict`'s output (what :func:`curve_from_dict` calls)."""
    name = str(data[CURVE_KEY])[len(_PREFIX):]
    if set(data) != {CURVE_KEY, "args"} or not isinstance(data["args"], dict):
        raise ValueError(f"an optax schedule is {{'curve': 'optax.{name}', 'args': {{...}}}}, got keys {sorted(data)}")
    args = dict(data["args"])
    if isinstance(args.get("boundaries_and_scales"), dict):
        args["boundaries_and_scales"] = {_int_key(k): v for k, v in args["boundaries_and_scales"].items()}
    if isinstance(args.get("schedules"), list):
        args["schedules"] = [curve_from_dict(child) for child in args["schedules"]]
    return _CONSTRUCTORS[name](**args)


def _int_key(key: Any) -> Any:
    """A JSON object key back to the integer step it was (anything else is left for the check to refuse)."""
    if isinstance(key, str) and key.lstrip("-").isdigit():
        return int(key)
    return key


# -- the constructors --------------------------------------------------------------------------------------------
def constant_schedule(value: Any) -> OptaxSchedule:
    """Constructs a constant schedule.

    Args:
      value: value to be held constant throughout.

    Returns:
      A function that maps step counts to values (phase ``constant``).
    """
    value = check_learning_rate("value", value)
    return _schedule("constant_schedule", Const(value), value=value)


def polynomial_schedule(init_value: Any, end_value: Any, power: Any, transition_steps: int,
                        transition_begin: int = 0) -> OptaxSchedule:
    r"""Constructs a schedule with polynomial transition from init to end value.

    .. math::
      \begin{cases}
        I, & \text{if } t < B \\
        (I - E) \left( 1 - \frac{t - B}{T} \right)^{P} + E, & \text{if } B \leq t < B + T \\
        E, & \text{if } t \geq B + T
      \end{cases}

    Args:
      init_value: initial value for the scalar to be annealed.
      end_value: end value of the scalar to be annealed.
      power: the power of the polynomial used to transition from init to end (``> 0``).
      transition_steps: number of steps over which annealing takes place. The scalar starts changing at
        ``transition_begin`` steps and completes the transition by ``transition_begin + transition_steps``
        steps. If ``transition_steps == 0``, then the entire annealing process is disabled and the value is held
        fixed at ``init_value``.
      transition_begin: after how many steps to start annealing (before this many steps the scalar value is
        held fixed at ``init_value``).

    Returns:
      A function that maps step counts to values (phases ``delay``, ``polynomial``, ``final``).
    """
    return _polynomial("polynomial_schedule", "polynomial", init_value, end_value,
                       _number("power", power, above=0), transition_steps, transition_begin)


def linear_schedule(init_value: Any, end_value: Any, transition_steps: int,
                    transition_begin: int = 0) -> OptaxSchedule:
    r"""Schedule with linear transition from ``init_value`` to ``end_value``.

    .. math::
      \begin{cases}
        I, & \text{if } t < B \\
        I + \frac{t - B}{T} (E - I), & \text{if } B \leq t < B + T \\
        E, & \text{if } t \geq B + T
      \end{cases}

    This schedule is :func:`polynomial_schedule` with ``power=1``.

    Args:
      init_value: initial value for the scalar to be annealed.
      end_value: end value of the scalar to be annealed.
      transition_steps: number of steps over which annealing takes place. The scalar starts changing at
        ``transition_begin`` steps and completes the transition by ``transition_begin + transition_steps``
        steps. If ``transition_steps == 0``, then the entire annealing process is disabled and the value is held
        fixed at ``init_value``.
      transition_begin: after how many steps to start annealing (before this many steps the scalar value is
        held fixed at ``init_value``).

    Returns:
      A function that maps step counts to values (phases ``delay``, ``linear``, ``final``).
    """
    return _polynomial("linear_schedule", "linear", init_value, end_value, None, transition_steps,
                       transition_begin)


def _polynomial(constructor: str, phase: str, init_value: Any, end_value: Any, power: Any,
                transition_steps: Any, transition_begin: Any) -> OptaxSchedule:
    init_value = check_learning_rate("init_value", init_value)
    end_value = check_learning_rate("end_value", end_value)
    transition_steps = check_step_count("transition_steps", transition_steps, minimum=0)
    transition_begin = check_step_count("transition_begin", transition_begin, minimum=0)
    body = Poly(init_value, end_value, 1 if power is None else power, transition_steps, transition_begin,
                ("delay", phase, "final"))
    power_arg = {} if power is None else {"power": power}
    return _schedule(constructor, body, init_value=init_value, end_value=end_value, **power_arg,
                     transition_steps=transition_steps, transition_begin=transition_begin)


def cosine_decay_schedule(init_value: Any, decay_steps: int, alpha: Any = 0.0, exponent: Any = 1.0) -> OptaxSchedule:
    r"""Returns a function which implements cosine learning rate decay.

    .. math::
      \begin{cases}
        \alpha I + (1 - \alpha) I \left[ \frac{1}{2} \left( 1 + \cos \left( \pi\,\frac{t}{T} \right) \right)
          \right]^p & \text{, if } t \leq T \\
        \alpha I & \text{, if } t > T
      \end{cases}

    where :math:`T` is ``decay_steps``, :math:`p` is ``exponent`` and :math:`I` is ``init_value``.

    Args:
      init_value: An initial value for the learning rate.
      decay_steps: Positive integer - the number of steps for which to apply the decay for.
      alpha: The minimum value of the multiplier used to adjust the learning rate. Defaults to 0.0.
      exponent: The default decay is ``0.5 * (1 + cos(pi * t/T))``, where ``t`` is the current timestep and ``T``
        is the ``decay_steps``. The exponent modifies this to be ``(0.5 * (1 + cos(pi * t/T))) ** exponent``.
        Defaults to 1.0.

    Returns:
      A function that maps step counts to values (phases ``cosine``, ``final``).
    """
    init_value = check_learning_rate("init_value", init_value)
    decay_steps = check_step_count("decay_steps", decay_steps, minimum=1)
    alpha = _number("alpha", alpha, minimum=0)
    exponent = _number("exponent", exponent, above=0)
    return _schedule("cosine_decay_schedule", Cos(init_value, decay_steps, alpha, exponent), init_value=init_value,
                     decay_steps=decay_steps, alpha=alpha, exponent=exponent)


def exponential_decay(init_value: Any, transition_steps: int, decay_rate: Any, transition_begin: int = 0,
                      staircase: bool = False, end_value: Optional[Any] = None) -> OptaxSchedule:
    """Constructs a schedule with either continuous or discrete exponential decay.

    When ``count >= transition_begin`` the value is::

      rate_factor = ((count - transition_begin) / transition_steps)
      decayed_value = init_value * (decay_rate ** rate_factor)

    If the argument ``staircase`` is ``True`` then ``count / transition_steps`` is an integer division and the
    decayed value follows a staircase function.

    Args:
      init_value: the initial learning rate.
      transition_steps: must be positive. See the decay computation above.
      decay_rate: must be positive. The decay rate.
      transition_begin: after how many steps to start annealing (before this many steps the scalar value is held
        fixed at ``init_value``).
      staircase: if ``True``, decay the values at discrete intervals.
      end_value: the value at which the exponential decay stops. When ``decay_rate < 1``, ``end_value`` is
        treated as a lower bound, otherwise as an upper bound.

    Returns:
      A function that maps step counts to values (phases ``delay``, ``decay``, ``final``; staircase drops
      ``decay_<k>``, endless without ``end_value``).
    """
    args = _exponential_args("init_value", init_value, transition_steps, decay_rate, transition_begin, staircase,
                             end_value)
    return _schedule("exponential_decay", Exp(*args.values()), **args)


def piecewise_constant_schedule(init_value: Any,
                                boundaries_and_scales: Optional[dict[int, float]] = None) -> OptaxSchedule:
    """Piecewise constant schedule with scaled jumps at specific boundaries.

    At each step ``t``, this schedule returns ``init_value`` scaled by the product of all factors ``f_i`` such
    that ``t >= b_i``, where ``(b_i, f_i)`` are the entries in ``boundaries_and_scales``.

    Args:
      init_value: The starting value of the schedule.
      boundaries_and_scales: Dictionary of ``{step: scale}`` where ``scale`` is multiplied into the schedule
        value at the given ``step``. All ``scale`` values must be non-negative.

    Returns:
      A function that maps step index to schedule value (phase ``constant``; ``boundary_<k>`` at the k-th
      boundary in step order).
    """
    init_value = check_learning_rate("init_value", init_value)
    pairs = _scales("boundaries_and_scales", boundaries_and_scales)
    return _schedule("piecewise_constant_schedule", PwConst(init_value, pairs), init_value=init_value,
                     boundaries_and_scales=pairs)


def piecewise_interpolate_schedule(interpolate_type: str, init_value: Any,
                                   boundaries_and_scales: Optional[dict[int, float]] = None) -> OptaxSchedule:
    """Piecewise interpolated schedule with linear or cosine transitions.

    At each boundary, the scaling factor is multiplied into the current value; between boundaries the schedule
    interpolates (linearly or with a half cosine) between these accumulated values.

    Args:
      interpolate_type: Either ``'linear'`` or ``'cosine'``, specifying the interpolation method used between
        boundary segments.
      init_value: Starting value for the schedule.
      boundaries_and_scales: A dictionary ``{step: scale}`` that defines the boundaries and their corresponding
        multiplicative scaling factors.

    Returns:
      A function that maps step counts to interpolated values (phases ``linear`` or ``cosine``, ``final``;
      ``boundary_<k>`` at the k-th boundary).
    """
    interpolate_type = _interpolate_type(interpolate_type)
    init_value = check_learning_rate("init_value", init_value)
    pairs = _scales("boundaries_and_scales", boundaries_and_scales)
    return _schedule("piecewise_interpolate_schedule", PwInterp(interpolate_type, init_value, pairs),
                     interpolate_type=interpolate_type, init_value=init_value, boundaries_and_scales=pairs)


def warmup_constant_schedule(init_value: Any, peak_value: Any, warmup_steps: int) -> OptaxSchedule:
    """Linear warmup followed by constant schedule i.e no decay.

    Args:
      init_value: Initial value for the scalar to be annealed.
      peak_value: Peak value for scalar to be annealed at end of warmup.
      warmup_steps: Positive integer, the length of the linear warmup.

    Returns:
      A function that maps step counts to values (phases ``warmup``, ``constant``).
    """
    init_value = check_learning_rate("init_value", init_value)
    peak_value = check_learning_rate("peak_value", peak_value)
    warmup_steps = check_step_count("warmup_steps", warmup_steps, minimum=1)
    body = Poly(init_value, peak_value, 1, warmup_steps, 0, ("delay", "warmup", "constant"))
    return _schedule("warmup_constant_schedule", body, init_value=init_value, peak_value=peak_value,
                     warmup_steps=warmup_steps)


def warmup_cosine_decay_schedule(init_value: Any, peak_value: Any, warmup_steps: int, decay_steps: int,
                                 end_value: Any = 0.0, exponent: Any = 1.0) -> OptaxSchedule:
    """Linear warmup followed by cosine decay.

    Args:
      init_value: Initial value for the scalar to be annealed.
      peak_value: Peak value for scalar to be annealed at end of warmup.
      warmup_steps: the length of the linear warmup (0: none).
      decay_steps: Positive integer, the total length of the schedule. Note that this includes the warmup time,
        so the number of steps during which cosine annealing is applied is ``decay_steps - warmup_steps``
        (which must be positive).
      end_value: End value of the scalar to be annealed.
      exponent: The default decay is ``0.5 * (1 + cos(pi t/T))``, where ``t`` is the current timestep and ``T``
        is ``decay_steps``. The exponent modifies this to be ``(0.5 * (1 + cos(pi * t/T))) ** exponent``.
        Defaults to 1.0.

    Returns:
      A function that maps step counts to values (phases ``warmup``, ``cosine``, ``final``).
    """
    args = _warmup_cosine_args("", dict(init_value=init_value, peak_value=peak_value, warmup_steps=warmup_steps,
                                        decay_steps=decay_steps, end_value=end_value, exponent=exponent))
    return _schedule("warmup_cosine_decay_schedule", _warmup_cosine_body(**args), **args)


def _warmup_cosine_body(init_value: float, peak_value: float, warmup_steps: int, decay_steps: int,
                        end_value: float, exponent: float) -> Joined:
    alpha = 0.0 if peak_value == 0.0 else end_value / peak_value
    warmup = Poly(init_value, peak_value, 1, warmup_steps, 0, ("delay", "warmup", "peak"))
    return Joined((warmup, Cos(peak_value, decay_steps - warmup_steps, alpha, exponent)), (warmup_steps,))


def warmup_exponential_decay_schedule(init_value: Any, peak_value: Any, warmup_steps: int, transition_steps: int,
                                      decay_rate: Any, transition_begin: int = 0, staircase: bool = False,
                                      end_value: Optional[Any] = None) -> OptaxSchedule:
    """Linear warmup followed by exponential decay.

    Args:
      init_value: Initial value for the scalar to be annealed.
      peak_value: Peak value for scalar to be annealed at end of warmup.
      warmup_steps: the length of the linear warmup (0: none).
      transition_steps: must be positive. See :func:`exponential_decay` for more details.
      decay_rate: must be positive. The decay rate.
      transition_begin: after how many steps to start annealing (before this many steps the scalar value is
        held fixed at ``peak_value``).
      staircase: if ``True``, decay the values at discrete intervals.
      end_value: the value at which the exponential decay stops. When ``decay_rate < 1``, ``end_value`` is
        treated as a lower bound, otherwise as an upper bound.

    Returns:
      A function that maps step counts to values (phases ``warmup``, ``delay``, ``decay``, ``final``).
    """
    init_value = check_learning_rate("init_value", init_value)
    warmup_steps = check_step_count("warmup_steps", warmup_steps, minimum=0)
    decay = _exponential_args("peak_value", peak_value, transition_steps, decay_rate, transition_begin, staircase,
                              end_value)
    peak_value = decay["init_value"]
    warmup = Poly(init_value, peak_value, 1, warmup_steps, 0, ("delay", "warmup", "peak"))
    body = Joined((warmup, Exp(*decay.values())), (warmup_steps,))
    del decay["init_value"]
    return _schedule("warmup_exponential_decay_schedule", body, init_value=init_value, peak_value=peak_value,
                     warmup_steps=warmup_steps, **decay)


def linear_onecycle_schedule(transition_steps: int, peak_value: Any, pct_start: float = 0.3,
                             pct_final: float = 0.85, div_factor: float = 25.0,
                             final_div_factor: float = 1e4) -> OptaxSchedule:
    r"""Returns a learning rate with three linear phases.

    * *Phase 1*, from iteration 0 to ``pct_start * transition_steps``. The learning rate increases linearly from
      ``peak_value / div_factor`` to ``peak_value``.
    * *Phase 2*, from iteration ``pct_start * transition_steps`` to ``pct_final * transition_steps``. The learning
      rate decreases linearly from ``peak_value`` back to the initial ``peak_value/div_factor``.
    * *Phase 3*: For the remaining steps, the learning rate interpolates between ``peak_value/div_factor`` and
      ``peak_value / final_div_factor``.

    Args:
      transition_steps: Number of steps over which annealing takes place.
      peak_value: Maximum value attained by schedule at pct_start percent of the cycle (in number of steps).
      pct_start: The percentage of the cycle (in number of steps) spent increasing the learning rate.
      pct_final: The percentage of the cycle (in number of steps) spent increasing to ``peak_value`` then
        decreasing back to ``init_value``.
      div_factor: Determines the initial value via ``init_value = peak_value / div_factor``.
      final_div_factor: Determines the final value via ``final_value = init_value / final_div_factor``.

    Returns:
      A function that maps step counts to values (phases ``warmup``, ``decay``, ``anneal``, ``final``).
    """
    transition_steps, peak_value, pct_start, div_factor, final_div_factor = _onecycle_args(
        transition_steps, peak_value, pct_start, div_factor, final_div_factor)
    pct_final = float(_number("pct_final", pct_final, minimum=pct_start, maximum=1))
    scales, names = {}, {}  # optax's dict literal: a later key replaces an earlier equal one
    for boundary, scale, name in ((int(pct_start * transition_steps), div_factor, "warmup"),
                                  (int(pct_final * transition_steps), 1.0 / div_factor, "decay"),
                                  (transition_steps, 1.0 / final_div_factor, "anneal")):
        scales[boundary], names[boundary] = scale, name
    body = PwInterp("linear", peak_value / div_factor, tuple(sorted(scales.items())),
                    tuple(names[b] for b in sorted(names)))
    return _schedule("linear_onecycle_schedule", body, transition_steps=transition_steps, peak_value=peak_value,
                     pct_start=pct_start, pct_final=pct_final, div_factor=div_factor,
                     final_div_factor=final_div_factor)


def cosine_onecycle_schedule(transition_steps: int, peak_value: Any, pct_start: float = 0.3,
                             div_factor: float = 25.0, final_div_factor: float = 1e4) -> OptaxSchedule:
    """Returns a function which implements the onecycle learning rate schedule.

    This schedule increases the learning rate and then decreases it in a cosine-like manner. The number of steps
    over which the learning rate increases is determined by the ``pct_start`` argument. The maximum value of the
    learning rate is determined by the ``peak_value`` argument, the initial value of the learning rate is
    determined through the formula ``init_value = peak_value / div_factor``, and the final value is determined by
    the ``final_div_factor`` argument.

    Args:
      transition_steps: Number of steps over which annealing takes place.
      peak_value: Maximum value attained by schedule at pct_start percent of the cycle (in number of steps).
      pct_start: The percentage of the cycle (in number of steps) spent increasing the learning rate.
      div_factor: Determines the initial value via ``init_value = peak_value / div_factor``.
      final_div_factor: Determines the final value via ``final_value = init_value / final_div_factor``.

    Returns:
      A function that maps step counts to values (phases ``warmup``, ``anneal``, ``final``).
    """
    transition_steps, peak_value, pct_start, div_factor, final_div_factor = _onecycle_args(
        transition_steps, peak_value, pct_start, div_factor, final_div_factor)
    scales, names = {}, {}
    for boundary, scale, name in ((int(pct_start * transition_steps), div_factor, "warmup"),
                                  (int(transition_steps), 1.0 / (div_factor * final_div_factor), "anneal")):
        scales[boundary], names[boundary] = scale, name
    body = PwInterp("cosine", peak_value / div_factor, tuple(sorted(scales.items())),
                    tuple(names[b] for b in sorted(names)))
    return _schedule("cosine_onecycle_schedule", body, transition_steps=transition_steps, peak_value=peak_value,
                     pct_start=pct_start, div_factor=div_factor, final_div_factor=final_div_factor)


def sgdr_schedule(cosine_kwargs: Iterable[dict[str, Any]]) -> OptaxSchedule:
    """SGD with warm restarts.

    This learning rate schedule applies multiple joined cosine decay cycles.

    Args:
      cosine_kwargs: An Iterable of dicts, where each element specifies the arguments to pass to each cosine
        decay cycle (:func:`warmup_cosine_decay_schedule`'s). The ``decay_steps`` kwarg will specify how long
        each cycle lasts for, and therefore when to transition to the next cycle.

    Returns:
      A function that maps step counts to values (phases ``warmup``, ``cosine``, ``final``; ``restart_<k>`` where
      cycle ``k + 1`` starts).
    """
    if isinstance(cosine_kwargs, (str, bytes, Mapping)) or not isinstance(cosine_kwargs, Iterable):
        raise TypeError(f"cosine_kwargs must be an iterable of dicts, got {type(cosine_kwargs).__name__}")
    cycles = []
    for i, kwargs in enumerate(cosine_kwargs):
        where = f"cosine_kwargs[{i}]: "
        if not isinstance(kwargs, Mapping):
            raise TypeError(f"{where}must be a dict of warmup_cosine_decay_schedule's arguments, got "
                            f"{type(kwargs).__name__}")
        unknown = sorted(set(kwargs) - set(_WARMUP_COSINE_PARAMETERS))
        missing = sorted(set(_WARMUP_COSINE_PARAMETERS[:4]) - set(kwargs))
        if unknown or missing:
            raise TypeError(f"{where}warmup_cosine_decay_schedule takes {', '.join(_WARMUP_COSINE_PARAMETERS)}; "
                            f"unknown {unknown}, missing {missing}")
        cycles.append(_warmup_cosine_args(where, kwargs))
    if not cycles:
        raise ValueError("cosine_kwargs must hold at least one cycle")
    boundaries = tuple(int(b) for b in np.cumsum([cycle["decay_steps"] for cycle in cycles])[:-1])
    body = Joined(tuple(_warmup_cosine_body(**cycle) for cycle in cycles), boundaries, "restart")
    return _schedule("sgdr_schedule", body, cosine_kwargs=tuple(tuple(cycle.items()) for cycle in cycles))


_WARMUP_COSINE_PARAMETERS = ("init_value", "peak_value", "warmup_steps", "decay_steps", "end_value", "exponent")


def join_schedules(schedules: Sequence[OptaxSchedule], boundaries: Sequence[int]) -> OptaxSchedule:
    """Sequentially apply multiple schedules.

    Args:
      schedules: A list of schedules built with :mod:`lrmon.schedules.optax`. Each schedule will receive a step
        count indicating the number of steps since the previous boundary transition.
      boundaries: A list of integers (of length one less than schedules) that indicate when to transition
        between schedules (increasing, ``>= 0``).

    Returns:
      A function that maps step counts to values (the parts' phases; ``boundary_<k>`` where part ``k + 1``
      starts).
    """
    if isinstance(schedules, (str, bytes, Mapping)) or not isinstance(schedules, Sequence):
        raise TypeError(f"schedules must be a list of schedules, got {type(schedules).__name__}")
    if not schedules:
        raise ValueError("schedules must hold at least one schedule")
    for i, schedule in enumerate(schedules):
        if not isinstance(schedule, OptaxSchedule):
            raise TypeError(f"schedules[{i}] must be a schedule of lrmon.schedules.optax (build the children with "
                            f"lrmon.schedules.optax, same names and arguments as optax's), got "
                            f"{type(schedule).__name__}")
    if isinstance(boundaries, (str, bytes, Mapping)) or not isinstance(boundaries, (Sequence, np.ndarray)):
        raise TypeError(f"boundaries must be a list of integers, got {type(boundaries).__name__}")
    boundaries = list(boundaries)
    if len(boundaries) != len(schedules) - 1:
        raise ValueError(f"boundaries must hold len(schedules) - 1 = {len(schedules) - 1} steps, got "
                         f"{len(boundaries)}")
    checked = tuple(check_step_count(f"boundaries[{i}]", b, minimum=0) for i, b in enumerate(boundaries))
    for i in range(1, len(checked)):
        if checked[i] <= checked[i - 1]:
            raise ValueError(f"boundaries must increase, got {list(checked)}")
    body = Joined(tuple(schedule.body for schedule in schedules), checked, "boundary")
    return _schedule("join_schedules", body, schedules=tuple(schedules), boundaries=checked)


_CONSTRUCTORS: dict[str, Callable[..., OptaxSchedule]] = {
    fn.__name__: fn for fn in (
        constant_schedule, polynomial_schedule, linear_schedule, cosine_decay_schedule, exponential_decay,
        piecewise_constant_schedule, piecewise_interpolate_schedule, warmup_constant_schedule,
        warmup_cosine_decay_schedule, warmup_exponential_decay_schedule, linear_onecycle_schedule,
        cosine_onecycle_schedule, sgdr_schedule, join_schedules,
    )
}

for _name in _CONSTRUCTORS:
    register(_PREFIX + _name, _from_dict)
