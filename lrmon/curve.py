r"""The warmup + cosine curve as pure data and pure functions: its configuration, LR, phase and events.

For step :math:`t` (the index of the train step that uses the LR, :math:`t = 0, 1, \dots`), warmup length
:math:`W`, total length :math:`T`, peak :math:`\eta_{base}`, warmup start :math:`\eta_{ws}` and floor
:math:`\eta_{min}`:

.. math::

   \alpha_t = \operatorname{clip}\!\left(\frac{t}{\max(W, 1)}, 0, 1\right), \qquad
   p_t = \operatorname{clip}\!\left(\frac{t - W}{\max(T - W, 1)}, 0, 1\right)

.. math::

   \eta_t = \begin{cases}
     \eta_{ws} + \alpha_t\,(\eta_{base} - \eta_{ws}) & t < W \\
     \eta_{min} + \tfrac12 (\eta_{base} - \eta_{min})\,\bigl(1 + \cos(\pi p_t)\bigr) & t \ge W
   \end{cases}

This is braintools' ``WarmupCosineSchedule`` operation for operation (same clipping, same order, float32 under
JAX's default precision): evaluated the same way (eager ops) the values are bitwise braintools'; compiled (the
host-side ``get_lr`` and the monitor use one compiled function, XLA fuses it) they may differ from the eager values
by one float32 ulp, and the optimizer and the monitor always share the compiled form, so the LR logged is the LR
applied bit for bit. Against the seed's formula in float64 both stay within 3 float32 ulps of the peak LR (the
rounding of :math:`\pi p_t` in float32 dominates). Consequences: :math:`W = 0` starts the cosine at
:math:`\eta_{base}`; :math:`W = T` has no cosine phase (the LR is :math:`\eta_{base}` at :math:`t = T` and
:math:`\eta_{min}` after); for :math:`t \ge T` with :math:`T > W` the LR holds :math:`\eta_{min}` (never rises again).

Phases: 0 warmup (:math:`t < W`), 1 cosine (:math:`W \le t < T`), 2 past the end (:math:`t \ge T`).
Events, each at one step: ``warmup_start`` (0, if :math:`W > 0`), ``warmup_end`` (:math:`W - 1`, if :math:`W > 0`),
``cosine_start`` (:math:`W`, if :math:`T > W`), ``end`` (:math:`T - 1`), ``overrun`` (:math:`T`, reached only if
training goes on past the planned length).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import msgspec
import numpy as np

from lrmon._validation import check_learning_rate, check_learning_rates, check_step_count

__all__ = ["CurveConfig", "ConfigFields", "EVENT_KINDS", "PHASES", "PHASE_WARMUP", "PHASE_COSINE", "PHASE_PAST_END"]

PHASE_WARMUP, PHASE_COSINE, PHASE_PAST_END = 0, 1, 2
#: Phase number -> name.
PHASES: tuple[str, ...] = ("warmup", "cosine", "past end")

#: The schedule's events in the order they happen.
EVENT_KINDS: tuple[str, ...] = ("warmup_start", "warmup_end", "cosine_start", "end", "overrun")


class ConfigFields(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The JSON form of a :class:`CurveConfig` (:meth:`CurveConfig.to_dict`): every key required, no other key.

    Only the types are declared here (integers are never bools or floats; a float may be written as an integer);
    the values' domain is checked by :class:`CurveConfig` itself.
    """

    base_lrs: list[float]
    warmup_steps: int
    total_steps: int
    warmup_start_lr: float
    eta_min: float


@dataclasses.dataclass(frozen=True)
class CurveConfig:
    """A validated warmup + cosine configuration (see the module docstring for the math).

    Raises ``TypeError``/``ValueError`` naming the parameter for: negative, NaN or infinite LRs; an empty
    ``base_lrs``; non-integer or bool step counts; ``total_steps < 1``; ``warmup_steps < 0``;
    ``warmup_steps > total_steps``; ``eta_min`` above any ``base_lr``.
    """

    base_lrs: tuple[float, ...]
    warmup_steps: int
    total_steps: int
    warmup_start_lr: float = 0.0
    eta_min: float = 0.0

    def __post_init__(self) -> None:
        set_field = object.__setattr__
        set_field(self, "base_lrs", check_learning_rates("base_lr", self.base_lrs))
        set_field(self, "warmup_steps", check_step_count("warmup_steps", self.warmup_steps, minimum=0))
        set_field(self, "total_steps", check_step_count("total_steps", self.total_steps, minimum=1))
        set_field(self, "warmup_start_lr", check_learning_rate("warmup_start_lr", self.warmup_start_lr))
        set_field(self, "eta_min", check_learning_rate("eta_min", self.eta_min))
        if self.warmup_steps > self.total_steps:
            raise ValueError(
                f"warmup_steps ({self.warmup_steps}) must be <= total_steps ({self.total_steps})"
            )
        for group, base_lr in enumerate(self.base_lrs):
            if self.eta_min > base_lr:
                raise ValueError(f"eta_min ({self.eta_min}) must be <= base_lr ({base_lr}, parameter group {group})")

    # -- plain-data form -------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The configuration as JSON-ready plain data."""
        return {
            "base_lrs": list(self.base_lrs),
            "warmup_steps": self.warmup_steps,
            "total_steps": self.total_steps,
            "warmup_start_lr": self.warmup_start_lr,
            "eta_min": self.eta_min,
        }

    @classmethod
    def from_dict(cls, data: Any) -> "CurveConfig":
        """Build (and validate) a configuration from :meth:`to_dict`'s output.

        This is the one way lrmon reads a configuration from data (state documents, schedule state dicts, recorded
        run configurations): the fields and their JSON types are those of :class:`ConfigFields`.

        Args:
          data: a mapping with exactly the keys of :meth:`to_dict`.

        Returns:
          The validated configuration.

        Raises:
          ValueError: a missing, unknown or mistyped key (``msgspec.ValidationError``, naming the key) or a value
            the configuration refuses.
        """
        fields = msgspec.convert(data, ConfigFields, strict=True)
        return cls(**msgspec.structs.asdict(fields))

    def differing_fields(self, other: "CurveConfig") -> list[str]:
        """Names of the fields whose values differ between ``self`` and ``other``."""
        return [f.name for f in dataclasses.fields(self) if getattr(self, f.name) != getattr(other, f.name)]

    @property
    def num_groups(self) -> int:
        """Number of parameter groups (one LR each)."""
        return len(self.base_lrs)

    @property
    def peak_lr(self) -> float:
        """The largest LR the curve takes: ``max(base_lrs + (warmup_start_lr,))``."""
        return max(self.base_lrs + (self.warmup_start_lr,))

    # -- the curve -------------------------------------------------------------------------------------------
    def lr_at(self, step: Any) -> jnp.ndarray:
        """LR of every group at ``step`` (an int, array or tracer): shape ``step.shape + (num_groups,)``.

        Pure and traceable: usable under ``jax.jit``, ``vmap``, ``lax.scan`` and as an optax schedule.
        """
        return self._evaluate(jnp, jnp.asarray(step))

    def exact_lr_at(self, step: Any) -> np.ndarray:
        """The same curve evaluated with NumPy in float64 (no JAX call: safe inside host callbacks).

        Shape ``step.shape + (num_groups,)``; used for the LR shown with events.
        """
        return self._evaluate(np, np.asarray(step, np.float64))

    def _evaluate(self, xp: Any, step: Any) -> Any:
        """The curve with array module ``xp`` (``jax.numpy``: float32 as braintools; ``numpy``: float64)."""
        warmup, cosine_span = self.warmup_steps, self.total_steps - self.warmup_steps
        alpha = xp.clip(step / max(warmup, 1), 0.0, 1.0)[..., None]
        progress = xp.clip((step - warmup) / max(cosine_span, 1), 0.0, 1.0)
        cos_factor = ((1 + xp.cos(xp.pi * progress)) / 2)[..., None]
        base = xp.asarray(self.base_lrs)
        warmup_lr = self.warmup_start_lr + (base - self.warmup_start_lr) * alpha
        cosine_lr = self.eta_min + (base - self.eta_min) * cos_factor
        return xp.where((step < warmup)[..., None], warmup_lr, cosine_lr)

    def lr_per_group_at(self, step: Any) -> tuple[jnp.ndarray, ...]:
        """:meth:`lr_at` as one compiled call returning a tuple with one scalar per group (cheap on the host)."""
        return _compiled_lr_per_group(self)(step)

    def phase_at(self, step: np.ndarray) -> np.ndarray:
        """Phase number (0 warmup, 1 cosine, 2 past the end) of each step, as int8."""
        step = np.asarray(step)
        return (step >= self.warmup_steps).astype(np.int8) + (step >= self.total_steps).astype(np.int8)

    @property
    def phases(self) -> tuple[str, ...]:
        """Names of the phases :meth:`phase_at` numbers."""
        return PHASES

    def events(self, low: int = 0, high: int | None = None) -> list[tuple[str, int]]:
        """The events at steps in ``[low, high)`` as ``(kind, step)`` in step order (``overrun`` included: it
        fires only if reached)."""
        events: list[tuple[str, int]] = []
        if self.warmup_steps > 0:
            events += [("warmup_start", 0), ("warmup_end", self.warmup_steps - 1)]
        if self.total_steps > self.warmup_steps:
            events.append(("cosine_start", self.warmup_steps))
        events += [("end", self.total_steps - 1), ("overrun", self.total_steps)]
        return sorted([e for e in events if low <= e[1] and (high is None or e[1] < high)], key=lambda e: e[1])


@functools.lru_cache(maxsize=32)
def _compiled_lr_per_group(config: CurveConfig) -> Any:
    return jax.jit(lambda step: tuple(config.lr_at(step)[..., g] for g in range(config.num_groups)))
