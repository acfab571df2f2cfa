r"""The curve of each braintools scheduler, read from its public attributes.

:func:`curve_of` turns a ``braintools.optim`` scheduler into a curve (:mod:`lrmon.schedules._protocol`): an
immutable, hashable value whose ``lr_at(step)`` is the LR the scheduler holds for its optimizer (its
``current_lrs``) when its ``last_epoch`` is ``step``, i.e. after ``step`` calls of ``step()`` on a fresh scheduler.
braintools is never imported here (classes are recognised by name and public attributes: braintools is an
optional extra), so this module imports, and its curves evaluate, without it.

Each curve evaluates one formula twice, as :class:`lrmon.curve.CurveConfig` does: ``lr_at`` with ``jax.numpy``
(float32, traceable, vectorised) and ``exact_lr_at`` with NumPy (float64, no JAX call). The formula is braintools'
``get_lr`` operation for operation, in the same order. Where braintools computes with Python floats (its epoch is
an ``int`` when stepped on the host: ``t / total_iters``, ``base_lr * gamma ** t``, ``base_lr - eta_min``), that
is float64 arithmetic rounded to float32 when it meets a JAX array or the optimizer; ``lr_at`` reproduces it with
float64 constants and double-float32 products (Dekker) rounded once, and its divisions by constants are correctly
rounded (XLA's vectorised float32 division is not). So ``lr_at`` (one compiled function) is within about an ulp
of the peak of braintools' float32 LR (XLA's fused ``cos`` and ``pow``), and bitwise at most steps. A plain
``jnp.power(gamma, t)`` would drift by ``t`` times the rounding of ``gamma`` (1100 ulps for ``0.99 ** 2000``).

Steps are ``last_epoch`` values, counted from 0 (braintools' default ``last_epoch=0``); curves are defined for
``step >= 0``.

Phases and events (``<phase>_start``/``<phase>_end`` name a phase's first/last step, ``end`` the last planned step
where the schedule has one, i.e. the step where it reaches its final value and holds it; repeating events are
numbered from 1; ``s<i>_`` prefixes the events of ``schedulers[i]``, counted from 0):

=============================  ==========================================  ======================================
scheduler                      phases (steps)                              events (step)
=============================  ==========================================  ======================================
StepLR                         ``decay``                                   ``decay_k`` (``k * step_size``), endless
MultiStepLR                    ``decay``                                   ``milestone_k`` (k-th distinct milestone)
ExponentialLR                  ``decay``                                   none
CosineAnnealingLR              ``cosine`` [0, T_max], ``past end``         ``end`` (``T_max``)
CosineAnnealingWarmRestarts    ``cosine``                                  ``restart_k`` (``k * T_0`` for
                                                                           ``T_mult == 1``, else
                                                                           ``T_0 (T_mult**k - 1) / (T_mult - 1)``),
                                                                           endless
OneCycleLR                     ``warmup`` [0, floor(pct_start *            ``peak`` (the step of the largest LR:
                               total_steps)] (braintools' ``step <=        the last warmup step or the first
                               pct_start * total_steps``), ``anneal``      anneal step), ``end`` (first step with
                               [.., end], ``past end``                     the annealing complete: total_steps up
                                                                           to float64 rounding)
LinearLR                       ``ramp`` [0, total_iters], ``constant``     ``ramp_end`` (``total_iters``)
ConstantLR                     ``factor`` [0, total_iters), ``constant``   ``factor_end`` (``total_iters - 1``, if
                                                                           ``total_iters >= 1``)
PolynomialLR                   ``decay`` [0, total_iters], ``past end``    ``end`` (``total_iters``)
CyclicLR                       ``up``, ``down`` (from each cycle's apex)   ``cycle_k`` (``(k-1) * (up + down)``),
                                                                           ``peak_k`` (k-th apex), endless
PiecewiseConstantSchedule      ``piecewise``                               ``boundary_k`` (k-th distinct boundary)
SequentialLR                   ``s<i>_<phase>`` for each child's phases    ``milestone_k`` (``milestones[k-1]``),
                                                                           ``s<i>_<kind>``: child i's events
                                                                           shifted by its offset, within its window
ChainedScheduler               ``s0_<p>+s1_<q>+...`` (every combination)   ``s<i>_<kind>``: each child's events
WarmupCosineSchedule           :class:`lrmon.curve.CurveConfig`'s          ``warmup_start``, ``warmup_end``,
                               ``warmup``, ``cosine``, ``past end``        ``cosine_start``, ``end``, ``overrun``
ReduceLROnPlateau              ``plateau`` (observed: flat at the          none planned (the monitor observes the
                               current LRs)                                cuts)
=============================  ==========================================  ======================================

A curve with endless events generates them lazily: ``events(low, high)`` costs the events in ``[low, high)``, and
``events(high=None)`` raises ``ValueError``. CyclicLR's apex of cycle ``k`` is where braintools' triangle peaks,
``(2k - 1) * step_size_up`` clipped into the cycle (``(k-1) P + step_size_up`` when ``step_size_down ==
step_size_up``; braintools' formula ignores ``step_size_down`` inside a cycle, see :class:`CyclicLRCurve`).

Family names (``to_dict()["curve"]``) are ``"braintools.<ClassName>"``; ``WarmupCosineSchedule`` gives lrmon's own
:class:`~lrmon.curve.CurveConfig` (no ``"curve"`` key). ``observed`` is ``True`` only for ``ReduceLROnPlateau``.
"""

from __future__ import annotations

from typing import Any

from lrmon.curve import CurveConfig
from lrmon.schedules._braintools_base import _NAME_PREFIX
from lrmon.schedules._braintools_composite import ChainedSchedulerCurve, ReduceLROnPlateauCurve, SequentialLRCurve
from lrmon.schedules._braintools_decays import (
    CosineAnnealingLRCurve,
    CosineAnnealingWarmRestartsCurve,
    ExponentialLRCurve,
    MultiStepLRCurve,
    OneCycleLRCurve,
    StepLRCurve,
)
from lrmon.schedules._braintools_ramps import (
    ConstantLRCurve,
    CyclicLRCurve,
    LinearLRCurve,
    PiecewiseConstantScheduleCurve,
    PolynomialLRCurve,
)
from lrmon.schedules._protocol import register

__all__ = [
    "curve_of",
    "SUPPORTED",
    "StepLRCurve",
    "MultiStepLRCurve",
    "ExponentialLRCurve",
    "CosineAnnealingLRCurve",
    "CosineAnnealingWarmRestartsCurve",
    "OneCycleLRCurve",
    "LinearLRCurve",
    "ConstantLRCurve",
    "PolynomialLRCurve",
    "CyclicLRCurve",
    "PiecewiseConstantScheduleCurve",
    "SequentialLRCurve",
    "ChainedSchedulerCurve",
    "ReduceLROnPlateauCurve",
]


# ---------------------------------------------------------------------------------------------------------------
# Reading a scheduler
# ---------------------------------------------------------------------------------------------------------------
def _plain(value: Any) -> Any:
    """A scheduler attribute as plain Python data (NumPy / JAX arrays and scalars -> lists and Python scalars)."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "shape") and hasattr(value, "tolist"):
        return value.tolist()
    return value


def _lr_list(values: Any) -> list[float]:
    values = _plain(values)
    return [float(v) for v in (values if isinstance(values, list) else [values])]


def _read_cyclic(s: Any) -> CyclicLRCurve:
    if getattr(s, "scale_fn", None) is not None:
        raise TypeError(
            "CyclicLR with a custom scale_fn cannot be described as a curve (lrmon cannot read a function): "
            "use mode='triangular', 'triangular2' or 'exp_range'"
        )
    groups = min(len(s.base_lrs), len(s.max_lrs))  # braintools zips them
    return CyclicLRCurve(
        _lr_list(s.base_lrs)[:groups], _lr_list(s.max_lrs)[:groups], _plain(s.step_size_up),
        _plain(s.step_size_down), s.mode, _plain(s.gamma),
    )


_READERS: dict[str, Any] = {
    "StepLR": lambda s: StepLRCurve(_lr_list(s.base_lrs), _plain(s.step_size), _plain(s.gamma)),
    "MultiStepLR": lambda s: MultiStepLRCurve(_lr_list(s.base_lrs), _plain(s.milestones), _plain(s.gamma)),
    "ExponentialLR": lambda s: ExponentialLRCurve(_lr_list(s.base_lrs), _plain(s.gamma)),
    "CosineAnnealingLR": lambda s: CosineAnnealingLRCurve(_lr_list(s.base_lrs), _plain(s.T_max), _plain(s.eta_min)),
    "CosineAnnealingWarmRestarts": lambda s: CosineAnnealingWarmRestartsCurve(
        _lr_list(s.base_lrs), _plain(s.T_0), _plain(s.T_mult), _plain(s.eta_min)),
    "OneCycleLR": lambda s: OneCycleLRCurve(
        _lr_list(s.max_lrs), _plain(s.total_steps), _plain(s.pct_start), s.anneal_strategy,
        _plain(s.div_factor), _plain(s.final_div_factor)),
    "LinearLR": lambda s: LinearLRCurve(
        _lr_list(s.base_lrs), _plain(s.start_factor), _plain(s.end_factor), _plain(s.total_iters)),
    "ConstantLR": lambda s: ConstantLRCurve(_lr_list(s.base_lrs), _plain(s.factor), _plain(s.total_iters)),
    "PolynomialLR": lambda s: PolynomialLRCurve(_lr_list(s.base_lrs), _plain(s.total_iters), _plain(s.power)),
    "CyclicLR": _read_cyclic,
    "PiecewiseConstantSchedule": lambda s: PiecewiseConstantScheduleCurve(
        _lr_list(s.base_lrs), _plain(s.boundaries), _lr_list(s.values)),
    "SequentialLR": lambda s: SequentialLRCurve(tuple(curve_of(c) for c in s.schedulers), _plain(s.milestones)),
    "ChainedScheduler": lambda s: ChainedSchedulerCurve(tuple(curve_of(c) for c in s.schedulers)),
    "WarmupCosineSchedule": lambda s: CurveConfig(
        _lr_list(s.base_lrs), _plain(s.warmup_steps), _plain(s.total_steps), _plain(s.warmup_start_lr),
        _plain(s.eta_min)),
    "ReduceLROnPlateau": lambda s: ReduceLROnPlateauCurve(
        _lr_list(s.current_lrs.value), _lr_list(s.base_lrs), s.mode, _plain(s.factor), _plain(s.patience),
        _plain(s.threshold), s.threshold_mode, _plain(s.cooldown), _lr_list(s.min_lrs), _plain(s.eps)),
}

#: The braintools scheduler classes :func:`curve_of` reads.
SUPPORTED: tuple[str, ...] = tuple(_READERS)


def curve_of(scheduler: Any) -> Any:
    """The curve of a braintools scheduler (see the module docstring), read from its public attributes.

    Also accepts lrmon's own ``WarmupCosineSchedule`` (its ``config``). Read the curve outside ``jax.jit`` (the
    attributes must be concrete).

    Raises:
      TypeError: not one of the :data:`SUPPORTED` braintools classes (the message names the class and lists them),
        a ``CyclicLR`` with a custom ``scale_fn``, or a composition holding a ``ReduceLROnPlateau``.
      ValueError: an attribute outside what the curve describes (the message names it).
    """
    config = getattr(scheduler, "config", None)
    if isinstance(config, CurveConfig):
        return config
    cls = type(scheduler)
    reader = _READERS.get(cls.__name__)
    if reader is None or not cls.__module__.startswith("braintools"):
        raise TypeError(
            f"cannot describe the schedule of {cls.__module__}.{cls.__qualname__}: lrmon reads the braintools.optim "
            f"schedulers {', '.join(SUPPORTED)}"
        )
    try:
        return reader(scheduler)
    except AttributeError as error:
        raise TypeError(f"{cls.__name__} without the attributes braintools' has: {error}") from None


for _cls in (StepLRCurve, MultiStepLRCurve, ExponentialLRCurve, CosineAnnealingLRCurve,
             CosineAnnealingWarmRestartsCurve, OneCycleLRCurve, LinearLRCurve, ConstantLRCurve, PolynomialLRCurve,
             CyclicLRCurve, PiecewiseConstantScheduleCurve, SequentialLRCurve, ChainedSchedulerCurve,
             ReduceLROnPlateauCurve):
    register(_NAME_PREFIX + _cls.scheduler, _cls.from_dict)
del _cls
