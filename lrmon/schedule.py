r"""``WarmupCosineSchedule``: braintools' warmup + cosine scheduler, with a full-configuration state.

The math is in :mod:`lrmon.curve`. The LR used by train step :math:`t` is the value at ``last_epoch == t``:
construct the schedule, run train step 0 with ``get_lr()``, call ``step()``, run train step 1, and so on.

**Two protocols, one object.** The schedule serves two optimizer libraries whose schedule protocols differ, and
which one is in force depends on whether a braintools optimizer has bound it:

================================  ===========================================  ================================
                                  optax (``optax.adamw(learning_rate=s)``)     braintools (``AdamW(lr=s)``)
================================  ===========================================  ================================
who steps it                      nobody: pure, ``s(count)`` per update        ``s.step()`` once per train step
``s(x)`` returns                  :math:`+\eta(x)`, group 0 (``as_optax(g)``:  :math:`-\eta(\text{last\_epoch})`
                                  group ``g``)                                 (braintools scales updates by it)
what the monitor logs             the curve at optax's count                   the LR the schedule holds
================================  ===========================================  ================================

Where braintools is installed the class derives from ``braintools.optim.LRScheduler`` (braintools is not required
otherwise). ``attach_optimizer`` (called by braintools when it binds the schedule) switches ``__call__`` from the
first column to the second; :class:`lrmon.schedule_source.Role` is how the monitor tells them apart.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Sequence

import brainstate
import jax
import jax.numpy as jnp

from lrmon._state_schema import STATE_VERSION, SchemaError, read_schedule_state, schedule_state_dict
from lrmon._validation import check_step_count
from lrmon.curve import CurveConfig
from lrmon.schedules._protocol import Curve, config_fields, differing_fields

__all__ = ["WarmupCosineSchedule", "ConfigMismatchError", "SCHEDULE_STATE_VERSION"]

#: Version of the dictionary written by :meth:`WarmupCosineSchedule.state_dict`: that of the state document, whose
#: schedule part it is (:class:`lrmon._state_schema.ScheduleState`).
SCHEDULE_STATE_VERSION = STATE_VERSION


def _config_field(name: str, doc: str) -> property:
    """A read-only property returning the configuration's field ``name``."""
    return property(lambda self: getattr(self._config, name), doc=doc)

class ConfigMismatchError(ValueError):
    """A saved state's configuration differs from the schedule it is loaded into; ``fields`` names the fields."""

    def __init__(self, fields: Sequence[str], saved: Curve, current: Curve) -> None:
        self.fields = list(fields)
        was, now = config_fields(saved), config_fields(current)
        details = ", ".join(f"{f}: saved {was.get(f)!r} != current {now.get(f)!r}" for f in fields)
        super().__init__(
            f"saved schedule configuration differs in {self.fields} ({details}); "
            "pass allow_config_change=True to keep the current configuration and continue from the saved step"
        )


class _StandaloneScheduler:
    """The part of ``braintools.optim.LRScheduler``'s protocol lrmon relies on, for installs without braintools."""

    def __init__(self, base_lr: float | list[float] = 1e-3, last_epoch: int = 0) -> None:
        self.optimizer = None
        self.last_epoch = brainstate.State(last_epoch)
        self.base_lrs = list(base_lr) if isinstance(base_lr, (list, tuple)) else [base_lr]
        self._current_lrs = brainstate.State(list(self.base_lrs))
        self._current_lrs.value = list(self.get_lr())

    @property
    def current_lrs(self) -> brainstate.State:
        """State holding the LR of each group at ``last_epoch`` (what an optimizer applies)."""
        return self._current_lrs

    def get_last_lr(self) -> list[Any]:
        """The LRs at ``last_epoch``, as last computed."""
        return list(self._current_lrs.value)

    def get_lr(self) -> list[Any]:  # pragma: no cover - overridden
        raise NotImplementedError


def _scheduler_base() -> type:
    try:
        from braintools.optim import LRScheduler
    except ImportError:
        return _StandaloneScheduler
    return LRScheduler


class WarmupCosineSchedule(_scheduler_base()):
    r"""Linear warmup from ``warmup_start_lr`` to ``base_lr``, then cosine annealing to ``eta_min``.

    .. math::

       \eta_t = \begin{cases}
         \eta_{ws} + \frac{t}{W}(\eta_{base} - \eta_{ws}) & t < W \\
         \eta_{min} + \tfrac12(\eta_{base} - \eta_{min})\left(1 + \cos\left(\pi\,
           \min\!\left(1, \frac{t - W}{\max(T - W, 1)}\right)\right)\right) & t \ge W
       \end{cases}

    Args:
      base_lr: peak LR reached at the end of warmup; a float, or a list with one value per parameter group.
      warmup_steps: :math:`W`, the number of linear warmup steps (0 allowed).
      total_steps: :math:`T`, the planned number of steps; the LR holds ``eta_min`` after it.
      warmup_start_lr: :math:`\eta_{ws}`, the LR of step 0 when ``warmup_steps > 0``.
      eta_min: :math:`\eta_{min}`, the floor of the cosine.
      last_epoch: the step to start from (to resume).

    ``step()`` and ``get_lr()`` work on the host and inside ``brainstate.transform.jit`` / ``for_loop`` (the step
    lives in the brainstate ``State`` ``last_epoch``); :meth:`lr_at` is the pure, vectorizable form.
    """

    def __init__(
        self,
        base_lr: float | Sequence[float] = 1e-3,
        warmup_steps: int = 1000,
        total_steps: int = 10000,
        warmup_start_lr: float = 0.0,
        eta_min: float = 0.0,
        last_epoch: int = 0,
    ) -> None:
        base_lrs = list(base_lr) if isinstance(base_lr, (list, tuple)) else base_lr
        self._config = CurveConfig(base_lrs, warmup_steps, total_steps, warmup_start_lr, eta_min)
        last_epoch = check_step_count("last_epoch", last_epoch, minimum=0)
        super().__init__(list(self._config.base_lrs), last_epoch)

    # -- configuration ---------------------------------------------------------------------------------------
    @property
    def config(self) -> CurveConfig:
        """The validated configuration (immutable; assign ``base_lrs`` to change the peak)."""
        return self._config

    @property
    def base_lrs(self) -> list[float]:
        """Peak LR of each parameter group. Assigning a new list re-validates and changes the curve."""
        return list(self._config.base_lrs)

    @base_lrs.setter
    def base_lrs(self, values: float | Sequence[float]) -> None:
        values = list(values) if isinstance(values, (list, tuple)) else values
        if hasattr(self, "_config"):
            self._config = dataclasses.replace(self._config, base_lrs=values)
        if hasattr(self, "_current_lrs"):
            self._current_lrs.value = self.get_lr()

    warmup_steps = _config_field("warmup_steps", ":math:`W`, the number of warmup steps (int).")
    total_steps = _config_field("total_steps", ":math:`T`, the planned number of steps (int).")
    warmup_start_lr = _config_field("warmup_start_lr", "LR at step 0 when warmup_steps > 0 (float).")
    eta_min = _config_field("eta_min", "Floor of the cosine, held after ``total_steps`` (float).")

    # -- the curve -------------------------------------------------------------------------------------------
    def lr_at(self, step: Any) -> jnp.ndarray:
        """Pure LR of every group at ``step`` (int or array): shape ``step.shape + (groups,)``; traceable."""
        return self._config.lr_at(step)

    def as_optax(self, group: int = 0) -> Callable[[Any], jnp.ndarray]:
        """An optax schedule ``count -> LR`` for parameter group ``group`` (pure; does not touch ``last_epoch``)."""
        if not 0 <= group < self._config.num_groups:
            raise ValueError(f"group must be in [0, {self._config.num_groups}), got {group}")
        config = self._config
        return lambda count: config.lr_at(count)[..., group]

    def get_lr(self) -> list[jnp.ndarray]:
        """LR of each group at ``last_epoch`` (a list; works inside brainstate transforms)."""
        return list(self._config.lr_per_group_at(self.last_epoch.value))

    def step(self, epoch: int | None = None) -> None:
        """Advance ``last_epoch`` by one, or jump to ``epoch``; refresh ``current_lrs`` (and a bound optimizer's)."""
        if epoch is None:
            self.last_epoch.value = self.last_epoch.value + 1
        else:
            if not isinstance(epoch, jax.Array):
                epoch = check_step_count("epoch", epoch, minimum=0)
            self.last_epoch.value = epoch
        lrs = self.get_lr()
        self._current_lrs.value = lrs
        if self.optimizer is not None:
            for param_group, lr in zip(self.optimizer.param_groups, lrs):
                param_group["lr"].value = lr
            self.optimizer._current_lr.value = lrs[0]

    def __call__(self, count: Any) -> jnp.ndarray:
        """``+lr(count)`` of group 0 (optax), or ``-lr(last_epoch)`` once a braintools optimizer has bound the
        schedule: see "Two protocols, one object" in the module docstring."""
        if self.optimizer is not None:
            return -self._current_lrs.value[0]
        return self._config.lr_at(count)[..., 0]

    # -- state -----------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The step and the full configuration, as JSON-ready plain data (with a schema version).

        Returns:
          ``{"version": SCHEDULE_STATE_VERSION, "class": <class name>, "config": <CurveConfig.to_dict()>,
          "last_epoch": <step>}``: the schedule's part of the monitor's state document, with the same schema.
        """
        return schedule_state_dict(type(self).__name__, self._config, int(self.last_epoch.value))

    def load_state_dict(self, state_dict: Mapping[str, Any], *, allow_config_change: bool = False) -> None:
        """Restore ``last_epoch`` from :meth:`state_dict`'s output.

        Args:
          state_dict: the output of :meth:`state_dict` (e.g. after a JSON round trip).
          allow_config_change: keep this schedule's configuration if the saved one differs, and continue from the
            saved step.

        Raises:
          TypeError: ``state_dict`` is not a mapping.
          ValueError: the document is malformed or of another version (the message names the field).
          ConfigMismatchError: (a ``ValueError``) the saved configuration differs from this schedule's and
            ``allow_config_change`` is false; ``fields`` names the fields.

        Nothing changes when an error is raised.
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"state_dict must be a mapping, got {type(state_dict).__name__}")
        try:
            saved, last_epoch = read_schedule_state(state_dict)
        except SchemaError as error:
            raise ValueError(f"malformed state_dict: {error}") from None
        differing = differing_fields(saved, self._config)
        if differing and not allow_config_change:
            raise ConfigMismatchError(differing, saved, self._config)
        self.step(last_epoch)

    @classmethod
    def from_config(cls, config: CurveConfig, last_epoch: int = 0) -> "WarmupCosineSchedule":
        """A schedule for ``config``."""
        return cls(list(config.base_lrs), config.warmup_steps, config.total_steps, config.warmup_start_lr,
                   config.eta_min, last_epoch)

    def __repr__(self) -> str:
        c = self._config
        return (f"WarmupCosineSchedule(base_lr={list(c.base_lrs)}, warmup_steps={c.warmup_steps}, "
                f"total_steps={c.total_steps}, warmup_start_lr={c.warmup_start_lr}, eta_min={c.eta_min})")
