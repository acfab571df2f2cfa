"""The monitor's state inside the model's orbax checkpoint, so that model and monitor always restore at one step.

Checkpointers save on their own cadence (every N steps, at the first step, on a preemption signal), rarely when
the monitor saves. Storing ``monitor.state_dict()`` as one more item of the same ``CheckpointManager`` step makes
the two atomic: orbax writes the step to ``<step>.orbax-checkpoint-tmp`` and renames it when every item is
committed, so a killed save never becomes ``latest_step()`` and a restored step always has both::

    import orbax.checkpoint as ocp
    from lrmon.integrations import orbax as lrmon_orbax

    manager.save(step, args=ocp.args.Composite(train=ocp.args.StandardSave(train_state),
                                               lrmon=lrmon_orbax.save_args(monitor)))
    ...
    step = manager.latest_step()
    restored = manager.restore(step, args=ocp.args.Composite(train=ocp.args.StandardRestore(abstract_state),
                                                             lrmon=lrmon_orbax.restore_args()))
    monitor = lrmon.LRMonitor(schedule, sinks, resume_from=restored[lrmon_orbax.ITEM], resume_step=step)

The item is JSON (orbax's ``JsonSave``/``JsonRestore``): the state document, validated on restore by lrmon's
strict reader (no pickle). ``monitor.state_dict()`` flushes the monitor's records and returns the state on every
process, as orbax's multi-process saves expect.
"""

from __future__ import annotations

from typing import Any

from lrmon._optional import optional_import
__all__ = ["ITEM", "save_args", "restore_args"]

#: The item name the examples and the README use for the monitor's state in a ``Composite`` checkpoint.
ITEM = "lrmon"


def _ocp() -> Any:
    return optional_import("orbax.checkpoint", needed_by="lrmon.integrations.orbax", extra="orbax")


def save_args(monitor: Any) -> Any:
    """``ocp.args.JsonSave`` of the monitor's state now (its step is the number of train steps done)."""
    return _ocp().args.JsonSave(monitor.state_dict())


def restore_args() -> Any:
    """``ocp.args.JsonRestore()``: the restored item is the state dict, for ``LRMonitor(resume_from=...)``."""
    return _ocp().args.JsonRestore()
