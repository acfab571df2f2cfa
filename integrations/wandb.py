"""``WandbSink``: lrmon's records in a Weights & Biases run (readers beside it: :mod:`._wandb_read`).

What the run gets:

* one history row per train step, logged with ``step=t`` so that wandb's ``_step`` is the train step:
  ``{"lr": ..., "loss": ..., "lrmon/phase": ..., "trainer/step": t}`` (``trainer/step`` is also defined as the
  x-axis metric). On a run you made yourself, or when the sink is shared by several producers (the clu adapter:
  rows come out of step order), rows are logged without ``step=`` and ``trainer/step`` is the axis. On a run the
  sink made, a batch's rows go to wandb-core in one hand-off (:mod:`lrmon.integrations._wandb_rows`: ~5x less CPU
  a row than ``run.log``, here and in wandb-core, same records); on yours, through ``run.log``;
* each event in the row of its step, ``"lrmon/event/<kind>": 1``, and ``run.summary["lrmon/events/<kind>"] =
  step``; at close, a table ``lrmon/events`` (step, kind, the LR of each group, detail);
* the configuration as ``run.config["lrmon"]``;
* an "LR vs loss" chart: at close, a table ``lrmon/lr_loss`` (trainer/step, LR tags, loss) and a native
  ``wandb.plot.line_series`` panel ``lrmon/lr_vs_loss`` of the LR(s) and the loss over ``trainer/step``, built from
  the rows this sink saw, thinned to at most ``chart_points`` steps (every k-th step, k doubling as needed).
  Offline a custom Vega chart cannot be defined, so this is what the run carries; both are on one y-axis (switch
  the panel to log scale when LR and loss differ by orders of magnitude);
* the same data as a picture: at close, a ``wandb.Image`` ``lrmon/lr_vs_loss_figure`` (in the final row), the figure
  ``lrmon plot`` draws: LR and loss in panels with their own y scales, phases shaded, a line at each event, loss
  against LR, from the rows this sink saw. Drawing it costs ~0.5-0.9 s on a 2-core CPU, so it is drawn once, at
  close, not at each ``save_state`` (W&B's default panels already show each key on its own axis while the run
  goes). Without matplotlib it is skipped, with one warning;
* ``save_state``: an artifact ``lrmon-state-<run id>`` of type ``lr-schedule-state`` holding ``lrmon_state.json``
  and the marker ``lrmon_artifact.json``, with aliases ``latest`` and ``step-<step>`` and metadata
  ``{**config, "step": step}``; the same files are kept in ``<run dir>/lrmon-artifact/`` (offline runs cannot
  ``use_artifact``; resume from that directory).

``WandbSink(**init_kwargs)`` creates its own run in ``open()`` (offline by default, isolated settings, ``dir``
explicit) and finishes it in ``close()``, then waits until wandb-core has written the run's exit record (``finish``
can return before that). ``WandbSink(run)`` uses a run you made and never finishes it. Any wandb error propagates
from the sink method (a dead wandb-core raises ``ConnectionResetError`` at once; nothing here waits on it without a
timeout); the monitor then disables the sink with one warning.

**Durability.** ``run.log`` returning does not mean the row is on disk: wandb-core buffers it. ``flush()`` commits
the pending row and waits until wandb-core has written every record so far to the run's ``.wandb`` file
(:mod:`lrmon.integrations._wandb_durable`), so a state names only steps whose rows survive a SIGKILL. A flush that
cannot be confirmed within ``flush_timeout`` raises: the sink is disabled and stores no newer state.

**One run across attempts.** When the monitor resumes from a state that names this sink's run, the sink reopens
that run id (``resume="allow"``; the artifact collection ``lrmon-state-<id>`` and its ``latest`` alias stay the
same) and never logs again a step the run already holds: offline, the last ``_step`` in the earlier attempts'
directories of that id (each attempt writes a directory ``offline-run-<time>-<id>``; ``wandb sync`` of them all,
wandb >= 0.31, uploads them in start order as one run); online, the run's step. With ``rewind=True`` (online only,
W&B's ``resume_from="<id>?_step=N"``, not testable offline here) the run is instead truncated at the resume step
and re-logged from there. For a run you make yourself, :func:`continue_run_kwargs` gives the ``wandb.init``
arguments that continue the state's run.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from lrmon.sinks import Event, RunInfo, ScalarBatch, Sink, iter_rows
from lrmon.state import LOCAL_ARTIFACT_DIR, STATE_FILE_NAME, copy_state_file
from lrmon.tags import EVENT_ROW_PREFIX, EVENT_TEXT_PREFIX
from lrmon.integrations._figure import RunFigure
from lrmon.integrations._wandb_charts import FIGURE_KEY, final_row
from lrmon.integrations._wandb_durable import commit_and_wait
from lrmon.integrations._wandb_rows import HistoryRows
from lrmon.integrations._wandb_runs import (
    continuation_kwargs, continue_run_kwargs, download_state_artifact, held_upto, wandb_module,
)
from lrmon.integrations._wandb_read import (
    STEP_METRIC, inspect_records, read_offline_run, read_wandb_run, wait_for_exit_record,
)

__all__ = [
    "WandbSink", "download_state_artifact", "read_offline_run", "read_wandb_run", "inspect_records", "STEP_METRIC",
    "DEFAULT_DIR", "LOCAL_ARTIFACT_DIR", "default_settings", "FIGURE_KEY", "continue_run_kwargs",
]

#: Where runs the sink creates go unless ``dir=`` says otherwise.
DEFAULT_DIR = "./wandb-runs"

_DEFAULT_SETTINGS: dict[str, Any] = {
    "console": "off",
    "silent": True,
    "x_disable_stats": True,
    "x_disable_meta": True,
    "x_save_requirements": False,
    "x_transaction_log_flush_interval": 1.0,
}


def default_settings(**overrides: Any) -> Any:
    """``wandb.Settings`` isolating a run the sink creates: no console capture, stats, metadata or requirements."""
    return wandb_module().Settings(**{**_DEFAULT_SETTINGS, **overrides})


class WandbSink(Sink):
    """lrmon records to a W&B run (see the module docstring for what the run gets).

    Args:
        run: an existing run to log into (not finished by the sink). Without it, ``open()`` calls
            ``wandb.init(dir=dir, mode="offline", reinit="create_new", settings=<isolated>, **init_kwargs)``;
            ``mode``/``reinit``/``settings`` in ``init_kwargs`` override those defaults (``settings`` may be a dict,
            merged over the defaults).
        dir: the directory for a run the sink creates (``wandb`` reads ``WANDB_DIR`` once per process, so it is
            always passed explicitly).
        loss_key: the metric drawn beside the LR(s) in the LR-vs-loss chart and figure.
        chart_points: at most this many steps in that chart's table and in the figure.
        finish_timeout: seconds ``close()`` waits, after ``run.finish()``, for the run's exit record.
        flush_timeout: seconds ``flush()`` waits for wandb-core to confirm that the rows are written.
        rewind: on resume, truncate the run at the resume step (online W&B only) instead of skipping the steps it
            already holds.

    The constructor does no I/O and does not import wandb.
    """

    def __init__(
        self, run: Any = None, *, dir: str | os.PathLike[str] = DEFAULT_DIR, loss_key: str = "loss",
        chart_points: int = 2000, finish_timeout: float = 60.0, flush_timeout: float = 60.0, rewind: bool = False,
        **init_kwargs: Any,
    ) -> None:
        if run is not None and init_kwargs:
            raise TypeError(f"WandbSink: pass either run or wandb.init arguments, not both ({sorted(init_kwargs)})")
        self._run = run
        self._owns_run = run is None
        self._dir = Path(dir)
        self._init_kwargs = init_kwargs
        self._figure = RunFigure(loss_key, chart_points)
        self._finish_timeout = finish_timeout
        self._flush_timeout = flush_timeout
        self._rewind = rewind
        self._skip_upto = -1  # the run already holds the rows and events of steps <= this (an earlier attempt)
        self._log_steps = False  # log with step=t (an own run fed in step order); else trainer/step only
        self._opened = False
        self._config: dict[str, Any] = {}
        self._defined: set[str] = set()
        self._rows: HistoryRows | None = None  # set by open()

    # -- properties ------------------------------------------------------------------------------------------
    @property
    def run(self) -> Any:
        """The wandb run (``None`` before ``open()``)."""
        return self._run if self._opened else None

    @property
    def artifact_dir(self) -> Path | None:
        """``<run dir>/lrmon-artifact``: the latest state artifact's files (``resume_from=`` accepts it).

        Known once the monitor opened the sink; before that (e.g. in a fresh process) it raises ``RuntimeError``:
        resume from the W&B directory ``dir`` instead, where lrmon finds the newest state of any attempt.
        """
        if not self._opened:
            raise RuntimeError(f"WandbSink.artifact_dir is known only once the sink is open; to resume, pass "
                               f"resume_from={str(self._dir)!r} (the W&B dir: lrmon finds the newest state in it)")
        run_dir = self.run_dir
        return None if run_dir is None else run_dir / LOCAL_ARTIFACT_DIR

    @property
    def run_dir(self) -> Path | None:
        """The run's directory (``run.settings.sync_dir``; wandb may move a run whose ``dir`` is unwritable)."""
        run = self.run
        return None if run is None else Path(run.settings.sync_dir)

    # -- Sink interface --------------------------------------------------------------------------------------
    def open(self, info: RunInfo) -> None:
        """Create the run (unless given) and define ``trainer/step`` as the x-axis."""
        self._opened = True
        self._figure.open(info)
        self._config = dict(info.config)
        if self._run is None:
            wandb = wandb_module()
            kwargs = dict(self._init_kwargs)
            settings = kwargs.pop("settings", None)
            if settings is None or isinstance(settings, Mapping):
                settings = default_settings(**(settings or {}))
            kwargs.setdefault("mode", "offline")
            kwargs.setdefault("reinit", "create_new")
            kwargs.update(continuation_kwargs(info, kwargs.get("id"), rewind=self._rewind))
            self._dir.mkdir(parents=True, exist_ok=True)
            self._run = wandb.init(dir=str(self._dir), settings=settings, **kwargs)
        else:
            continuation_kwargs(info, self._run.id, rewind=self._rewind)  # refuses a state that names another run
        self._log_steps = self._owns_run and info.in_step_order
        self._rows = HistoryRows(self._run, batched=self._owns_run, at_steps=self._log_steps)
        # an earlier attempt of this run id (resumed, or restarted from scratch with the same id=) wrote these
        held = held_upto(self._run) if self._log_steps and not self._rewind else -1
        self._skip_upto = max(info.start_step - 1, held)
        self._run.define_metric(STEP_METRIC)
        if self._owns_run:
            self._run.define_metric("*", step_metric=STEP_METRIC)

    def write_config(self, config: Mapping[str, Any]) -> None:
        """``run.config["lrmon"] = config`` (changes allowed: a resumed run may rewrite it)."""
        self._config = dict(config)
        self._figure.set_config(config)
        self._run.config.update({"lrmon": dict(config)}, allow_val_change=True)

    def write_scalars(self, batch: ScalarBatch) -> None:
        """One history row per step, with ``trainer/step`` (the whole batch in one hand-off to wandb-core, see
        :mod:`lrmon.integrations._wandb_rows`)."""
        self._define(batch.keys())
        self._rows.log_at([(row, step) for step, row in iter_rows(batch) if step > self._skip_upto])
        self._figure.add_scalars(batch)

    def write_events(self, events: Sequence[Event]) -> None:
        """Per event: ``lrmon/event/<kind> = 1`` in the row of its step (unless an earlier attempt wrote that row)
        and ``summary["lrmon/events/<kind>"] = step``."""
        self._define(EVENT_ROW_PREFIX + event.kind for event in events)
        self._rows.log_at([({EVENT_ROW_PREFIX + e.kind: 1}, e.step) for e in events if e.step > self._skip_upto])
        for event in events:
            self._run.summary[EVENT_TEXT_PREFIX + event.kind] = event.step
        self._figure.add_events(events)

    def write_text(self, step: int, tag: str, text: str) -> None:
        """Log free text as a string value under ``tag`` at ``step`` (used by the clu adapter)."""
        self._define([tag])
        self._run.log({tag: text, STEP_METRIC: step})

    def save_state(self, path: Path, step: int) -> None:
        """Log ``path`` as artifact ``lrmon-state-<run id>`` (aliases ``latest``, ``step-<step>``).

        The artifact holds ``lrmon_state.json`` and the marker ``lrmon_artifact.json`` (``lrmon.state``). The same
        two files are first kept, each replaced atomically, in ``<run dir>/lrmon-artifact/`` (:attr:`artifact_dir`):
        offline, ``run.use_artifact`` is refused, so that directory is what ``resume_from=`` reads (online, the
        artifact's ``download()`` directory holds the same files).
        """
        if getattr(self._run, "disabled", False):
            return
        from lrmon.state import ARTIFACT_MARKER_NAME, ARTIFACT_TYPE, write_artifact_marker

        wandb = wandb_module()
        local = Path(self._run.settings.sync_dir) / LOCAL_ARTIFACT_DIR
        local.mkdir(exist_ok=True)
        copy_state_file(path, local / STATE_FILE_NAME)
        write_artifact_marker(local)
        metadata = {**self._config, "step": int(step)}
        artifact = wandb.Artifact(name=f"lrmon-state-{self._run.id}", type=ARTIFACT_TYPE, metadata=metadata)
        artifact.add_file(str(local / STATE_FILE_NAME), name=STATE_FILE_NAME)  # copied to staging now
        artifact.add_file(str(local / ARTIFACT_MARKER_NAME), name=ARTIFACT_MARKER_NAME)
        self._run.log_artifact(artifact, aliases=["latest", f"step-{int(step)}"])

    def identity(self) -> dict[str, Any]:
        """Run id, project, entity and run directory (empty before ``open()``)."""
        run = self.run
        if run is None:
            return {}
        return {
            "wandb_run_id": run.id,
            "wandb_project": run.project,
            "wandb_entity": run.entity,
            "wandb_run_dir": str(run.settings.sync_dir),
        }

    def flush(self) -> None:
        """Commit the pending row and wait until wandb-core has written every record so far to the ``.wandb``
        file; raises if that is not confirmed within ``flush_timeout`` or the run cannot be used any more."""
        if getattr(self._run, "disabled", False):
            return
        if not commit_and_wait(self._run, self._flush_timeout, commit=self._rows.pending):
            raise TimeoutError(f"WandbSink: wandb-core did not confirm within {self._flush_timeout:g} s that the "
                               "rows are written (disk full or wandb-core stuck)")
        self._rows.pending = False

    def close(self) -> None:
        """Log the events table, the LR-vs-loss chart and figure; finish an own run and wait for its exit record."""
        run = self._run
        final = final_row(self._figure, self._run.id)
        if final:
            run.log({**final, STEP_METRIC: self._figure.last_step if self._figure.last_step is not None else 0})
        if self._owns_run:
            run_dir = Path(run.settings.sync_dir)
            run.finish()
            if not getattr(run, "disabled", False):  # mode="disabled" writes no .wandb file
                wait_for_exit_record(run_dir, self._finish_timeout)

    # -- helpers ---------------------------------------------------------------------------------------------
    def _define(self, tags: Any) -> None:
        """On a user's run, give each new lrmon tag ``trainer/step`` as x-axis (own runs use ``*``)."""
        if self._owns_run:
            return
        for tag in tags:
            if tag not in self._defined and tag != STEP_METRIC:
                self._run.define_metric(tag, step_metric=STEP_METRIC)
                self._defined.add(tag)
