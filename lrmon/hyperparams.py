"""The hyperparameters an optax optimizer applied, read from its state: for ``optax.inject_hyperparams``.

``optax.inject_hyperparams(optax.adamw)(learning_rate=..., weight_decay=schedule, b1=...)`` evaluates each
scheduled hyperparameter at the update's count and stores the values it applied in the state's ``hyperparams``.
:func:`injected_hyperparams` gathers them as metrics, so the value logged at step ``t`` is the value the update of
step ``t`` applied::

    updates, opt_state = tx.update(grads, opt_state, params)
    monitor.step(loss=loss, **injected_hyperparams(opt_state))             # host loop
    buffer = monitor.graph_record(buffer, step, **injected_hyperparams(opt_state))   # inside lax.scan

It reads references only (no device transfer) and works under ``jit`` and in a scan body. ``learning_rate`` is
left out by default: the monitor logs the LR itself, from the schedule.

**Gradient accumulation** (``optax.MultiSteps(tx, every_k_schedule=k)``): the inner optimizer, its count and its
schedules advance once per *optimizer* step (every ``k`` micro-steps). Log on that axis: call ``monitor.step`` once
per applied update (``LRMonitor(..., step_axis="optimizer")`` records that in the run configuration); the
hyperparameters are found inside ``MultiStepsState.inner_opt_state``.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax

__all__ = ["injected_hyperparams", "optimizer_hyperparams", "HYPERPARAM_PREFIX"]

#: A braintools optimizer's public hyperparameters: attribute -> metric names (``betas`` gives ``b1`` and ``b2``).
_BRAINTOOLS_HYPERPARAMS = {"momentum": ("momentum",), "weight_decay": ("weight_decay",), "betas": ("b1", "b2"),
                           "eps": ("eps",)}

#: Prefix of the metric names :func:`injected_hyperparams` returns: ``hparams/weight_decay``.
HYPERPARAM_PREFIX = "hparams/"


def _is_injected(node: Any) -> bool:
    return hasattr(node, "hyperparams") and hasattr(node, "inner_state") and isinstance(node.hyperparams, dict)


def injected_hyperparams(opt_state: Any, *, skip: Sequence[str] = ("learning_rate",)) -> dict[str, Any]:
    """The scalar hyperparameters of every ``inject_hyperparams`` state inside ``opt_state``, as metrics.

    Args:
      opt_state: an optax state (any pytree: chains, ``multi_transform``, ``MultiSteps`` states are searched).
      skip: hyperparameter names left out (default: ``learning_rate``, which the monitor logs itself).

    Returns:
      ``{"hparams/<name>": value}``; when several injected states are found (e.g. ``multi_transform``), each
      name is prefixed with the state's path: ``hparams/<path>/<name>``. Values are the state's own arrays.

    Raises:
      ValueError: ``opt_state`` holds no ``inject_hyperparams`` state.
    """
    found = _find(opt_state, ())
    if not found:
        raise ValueError("opt_state holds no optax.inject_hyperparams state: wrap the optimizer with "
                         "optax.inject_hyperparams(optax.adamw)(learning_rate=..., weight_decay=...)")
    metrics: dict[str, Any] = {}
    for path, hyperparams in found:
        where = "/".join(path) + "/" if len(found) > 1 and path else ""
        for name, value in hyperparams.items():
            if name not in skip and getattr(value, "size", 1) == 1:
                metrics[f"{HYPERPARAM_PREFIX}{where}{name}"] = value
    return metrics


def optimizer_hyperparams(optimizer: Any) -> dict[str, float]:
    """A braintools optimizer's momentum, weight decay, betas and eps, where it has them, as metrics.

    braintools optimizers hold these as plain numbers (they are not scheduled), so this reads public attributes
    once: ``monitor.step(loss=l, **hparams)`` with ``hparams = optimizer_hyperparams(opt)`` taken before the loop.

    Returns:
      ``{"hparams/momentum": ..., "hparams/weight_decay": ..., "hparams/b1": ..., "hparams/b2": ...,
      "hparams/eps": ...}``, each key only where the optimizer has the attribute.
    """
    metrics: dict[str, float] = {}
    for attribute, names in _BRAINTOOLS_HYPERPARAMS.items():
        value = getattr(optimizer, attribute, None)
        if value is None or isinstance(value, bool):
            continue
        values = tuple(value) if isinstance(value, (tuple, list)) else (value,)
        metrics.update({f"{HYPERPARAM_PREFIX}{name}": float(v) for name, v in zip(names, values)})
    return metrics


def _find(tree: Any, path: tuple[str, ...]) -> list[tuple[tuple[str, ...], dict[str, Any]]]:
    """``(path, hyperparams)`` of each injected state in ``tree``, outermost first."""
    found = []
    leaves, _ = jax.tree_util.tree_flatten_with_path(tree, is_leaf=_is_injected)
    for key_path, leaf in leaves:
        if _is_injected(leaf):
            here = path + tuple(_key_name(key) for key in key_path)
            found.append((here, leaf.hyperparams))
            found += _find(leaf.inner_state, here)
    return found


def _key_name(key: Any) -> str:
    for attribute in ("name", "key", "idx"):
        if hasattr(key, attribute):
            return str(getattr(key, attribute))
    return str(key)
