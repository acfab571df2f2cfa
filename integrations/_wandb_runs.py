"""Continuing one W&B run across attempts: the ``wandb.init`` arguments, the steps an earlier attempt already
holds, and the state artifact's download (see :mod:`lrmon.integrations.wandb`, "One run across attempts")."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from lrmon._optional import optional_import
from lrmon.integrations._wandb_durable import last_logged_step
from lrmon.sinks import RunInfo
from lrmon.state import StateError, check_artifact_type, wandb_run_dirs

__all__ = ["continuation_kwargs", "held_upto", "download_state_artifact", "continue_run_kwargs", "wandb_module"]


def wandb_module() -> Any:
    """``import wandb``, or an ``ImportError`` naming the ``[wandb]`` extra."""
    return optional_import("wandb", needed_by="lrmon.integrations.wandb", extra="wandb")


def continuation_kwargs(info: RunInfo, given_id: str | None, *, rewind: bool) -> dict[str, Any]:
    """The ``wandb.init`` arguments that continue the run the resumed state names (none on a fresh run);
    ``StateError`` when the sink was given another run than that one."""
    previous_id = info.previous.get("wandb_run_id")
    if previous_id is None:
        return {}
    if given_id is not None and given_id != previous_id:
        raise StateError(f"the state names W&B run {previous_id!r}, but this WandbSink's run is {given_id!r} "
                         "(continue it with wandb.init(**continue_run_kwargs(state)))")
    if rewind:
        return {"id": previous_id, "resume_from": f"{previous_id}?_step={info.start_step}"}
    return {"id": previous_id, "resume": "allow"}


def held_upto(run: Any) -> int:
    """The last train step the run already holds: offline, the last ``_step`` in the earlier attempts'
    directories of this run id; online, the run's step before this attempt (-1 if none)."""
    if not run.offline:
        return run.step - 1 if run.resumed else -1
    current = Path(run.settings.sync_dir).resolve()
    earlier = [d for d in wandb_run_dirs(current.parent, run.id) if d.resolve() != current]
    held = last_logged_step(earlier)
    return -1 if held is None else held


def download_state_artifact(reference: str, run: Any = None) -> Path:
    """Download a state artifact logged by :class:`WandbSink` and return its directory (for ``resume_from``).

    ``reference`` is W&B's ``entity/project/lrmon-state-<run id>:<alias>`` (``latest`` or ``step-N``). With ``run``
    (or an active ``wandb.run``) this is ``run.use_artifact(reference).download()``, which also records the lineage;
    otherwise ``wandb.Api().artifact(reference).download()``. Both need W&B online; offline runs resume from
    ``WandbSink.artifact_dir`` instead. Any failure, or an artifact of another type, raises ``StateError``.
    """
    try:
        wandb = wandb_module()
        run = run if run is not None else wandb.run
        artifact = run.use_artifact(reference) if run is not None else wandb.Api().artifact(reference)
        check_artifact_type(artifact.type, source=reference)
        return Path(artifact.download())
    except StateError:
        raise
    except Exception as error:  # noqa: BLE001 - offline, no key, no network, no such artifact: all say the same
        raise StateError(f"cannot download the W&B artifact ({type(error).__name__}: {error})", reference) from error


def continue_run_kwargs(source: Any) -> dict[str, Any]:
    """The ``wandb.init`` arguments that continue the W&B run a monitor state names, for a run you make yourself::

        run = wandb.init(project=..., **continue_run_kwargs("runs/exp1/state"))
        monitor = LRMonitor(schedule, [WandbSink(run)], resume_from="runs/exp1/state", resume_step=step)

    ``source`` is anything ``resume_from=`` accepts that holds a state (a path, a ``MonitorState`` or its dict).
    Returns ``{"id", "resume": "allow"}`` plus the project and entity when the state names them; ``StateError``
    when the state names no W&B run.
    """
    from lrmon.state import MonitorState, read_state, state_from_dict

    state = source if isinstance(source, MonitorState) else (
        state_from_dict(source) if isinstance(source, Mapping) else read_state(source))
    runs = [entry for entry in state.trackers.values() if isinstance(entry, Mapping) and entry.get("wandb_run_id")]
    if not runs:
        raise StateError("the state names no W&B run", str(source) if not isinstance(source, Mapping) else "<dict>")
    entry = runs[0]
    kwargs = {"id": entry["wandb_run_id"], "resume": "allow"}
    kwargs.update({key: entry[f"wandb_{key}"] for key in ("project", "entity") if entry.get(f"wandb_{key}")})
    return kwargs
