"""``WandbSink``: lrmon's records in a Weights & Biases run, and ``read_offline_run`` to read an offline run back.

What the run gets:

* one history row per train step, logged with ``step=t`` so that wandb's ``_step`` is the train step:
  ``{"lr": ..., "loss": ..., "lrmon/phase": ..., "trainer/step": t}`` (``trainer/step`` is also defined as the
  x-axis metric). On a run you made yourself, or when the sink is shared by several producers (the clu adapter:
  rows come out of step order), rows are logged without ``step=`` and ``trainer/step`` is the axis;
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

When ``info.write`` is false (processes other than 0) the sink does nothing: no ``wandb.init``, no I/O.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

from lrmon.tags import EVENT_ROW_PREFIX, EVENT_TEXT_PREFIX
from lrmon._optional import optional_import
from lrmon.sinks import Event, RunInfo, ScalarBatch, Sink, iter_rows

from lrmon.state import (
    LOCAL_ARTIFACT_DIR, STATE_FILE_NAME, StateError, check_artifact_type, copy_state_file, wandb_run_dirs,
)
from lrmon.integrations._figure import RunFigure
from lrmon.integrations._wandb_durable import commit_and_wait, last_logged_step
from lrmon.integrations._process import WriteGate

__all__ = [
    "WandbSink", "download_state_artifact", "read_offline_run", "inspect_records", "STEP_METRIC", "DEFAULT_DIR", "LOCAL_ARTIFACT_DIR",
    "default_settings", "FIGURE_KEY", "continue_run_kwargs",
]

#: The x-axis metric of every row the sink logs.
STEP_METRIC = "trainer/step"
#: Where runs the sink creates go unless ``dir=`` says otherwise.
DEFAULT_DIR = "./wandb-runs"
#: Key of the LR-vs-loss figure (a ``wandb.Image``) in the final row.
FIGURE_KEY = "lrmon/lr_vs_loss_figure"

_DEFAULT_SETTINGS: dict[str, Any] = {
    "console": "off",
    "silent": True,
    "x_disable_stats": True,
    "x_disable_meta": True,
    "x_save_requirements": False,
    "x_transaction_log_flush_interval": 1.0,
}


def _wandb() -> Any:
    """The real ``wandb`` package (never this module), imported on first use."""
    return optional_import("wandb", needed_by="lrmon.integrations.wandb", extra="wandb")


def default_settings(**overrides: Any) -> Any:
    """``wandb.Settings`` isolating a run the sink creates: no console capture, stats, metadata or requirements."""
    return _wandb().Settings(**{**_DEFAULT_SETTINGS, **overrides})


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
        self._pending = False  # a row was logged with step= and not committed yet
        self._last_step = -1  # the step of the last row logged with step= (wandb accepts that step or a later one)
        self._log_steps = False  # log with step=t (an own run fed in step order); else trainer/step only
        self._gate = WriteGate(self.name)
        self._config: dict[str, Any] = {}
        self._defined: set[str] = set()

    # -- properties ------------------------------------------------------------------------------------------
    @property
    def run(self) -> Any:
        """The wandb run (``None`` before ``open()`` or when this process does not write)."""
        return self._run if self._gate.info is not None and self._gate.info.write else None

    @property
    def artifact_dir(self) -> Path | None:
        """``<run dir>/lrmon-artifact``: the latest state artifact's files (``resume_from=`` accepts it).

        Known once the monitor opened the sink; before that (e.g. in a fresh process) it raises ``RuntimeError``:
        resume from the W&B directory ``dir`` instead, where lrmon finds the newest state of any attempt.
        """
        if self._gate.info is None:
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
        if not self._gate.open(info):
            return
        self._figure.open(info)
        self._config = dict(info.config)
        if self._run is None:
            wandb = _wandb()
            kwargs = dict(self._init_kwargs)
            settings = kwargs.pop("settings", None)
            if settings is None or isinstance(settings, Mapping):
                settings = default_settings(**(settings or {}))
            kwargs.setdefault("mode", "offline")
            kwargs.setdefault("reinit", "create_new")
            kwargs.update(self._continuation(info, kwargs.get("id")))
            self._dir.mkdir(parents=True, exist_ok=True)
            self._run = wandb.init(dir=str(self._dir), settings=settings, **kwargs)
        else:
            self._continuation(info, self._run.id)  # refuses a state that names another run
        self._log_steps = self._owns_run and info.in_step_order
        # an earlier attempt of this run id (resumed, or restarted from scratch with the same id=) wrote these
        self._skip_upto = info.start_step - 1 if self._rewind else max(info.start_step - 1, self._held_upto())
        self._run.define_metric(STEP_METRIC)
        if self._owns_run:
            self._run.define_metric("*", step_metric=STEP_METRIC)

    def write_config(self, config: Mapping[str, Any]) -> None:
        """``run.config["lrmon"] = config`` (changes allowed: a resumed run may rewrite it)."""
        if not self._gate.check():
            return
        self._config = dict(config)
        self._figure.set_config(config)
        self._run.config.update({"lrmon": dict(config)}, allow_val_change=True)

    def write_scalars(self, batch: ScalarBatch) -> None:
        """One ``run.log`` row per step, with ``trainer/step`` and without ``step=``."""
        if not self._gate.check():
            return
        self._define(batch.keys())
        for step, row in iter_rows(batch):
            if step > self._skip_upto:
                self._log(row, step)
        self._figure.add_scalars(batch)

    def write_events(self, events: Sequence[Event]) -> None:
        """Per event: ``lrmon/event/<kind> = 1`` in the row of its step (unless an earlier attempt wrote that row)
        and ``summary["lrmon/events/<kind>"] = step``."""
        if not self._gate.check():
            return
        self._define(EVENT_ROW_PREFIX + event.kind for event in events)
        for event in events:
            if event.step > self._skip_upto:
                self._log({EVENT_ROW_PREFIX + event.kind: 1}, event.step)
            self._run.summary[EVENT_TEXT_PREFIX + event.kind] = event.step
        self._figure.add_events(events)

    def write_text(self, step: int, tag: str, text: str) -> None:
        """Log free text as a string value under ``tag`` at ``step`` (used by the clu adapter)."""
        if not self._gate.check():
            return
        self._define([tag])
        self._run.log({tag: text, STEP_METRIC: step})

    def save_state(self, path: Path, step: int) -> None:
        """Log ``path`` as artifact ``lrmon-state-<run id>`` (aliases ``latest``, ``step-<step>``).

        The artifact holds ``lrmon_state.json`` and the marker ``lrmon_artifact.json`` (``lrmon.state``). The same
        two files are first kept, each replaced atomically, in ``<run dir>/lrmon-artifact/`` (:attr:`artifact_dir`):
        offline, ``run.use_artifact`` is refused, so that directory is what ``resume_from=`` reads (online, the
        artifact's ``download()`` directory holds the same files).
        """
        if not self._gate.check() or getattr(self._run, "disabled", False):
            return
        from lrmon.state import ARTIFACT_MARKER_NAME, ARTIFACT_TYPE, write_artifact_marker

        wandb = _wandb()
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
        """Run id, project, entity and run directory (empty when this process does not write)."""
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
        if not self._gate.check() or getattr(self._run, "disabled", False):
            return
        if not commit_and_wait(self._run, self._flush_timeout, commit=self._pending):
            raise TimeoutError(f"WandbSink: wandb-core did not confirm within {self._flush_timeout:g} s that the "
                               "rows are written (disk full or wandb-core stuck)")
        self._pending = False

    def close(self) -> None:
        """Log the events table, the LR-vs-loss chart and figure; finish an own run and wait for its exit record."""
        if self._gate.info is None or not self._gate.check():
            self._gate.closed = True
            return
        self._gate.closed = True
        run = self._run
        final = self._final_row()
        if final:
            run.log({**final, STEP_METRIC: self._figure.last_step if self._figure.last_step is not None else 0})
        if self._owns_run:
            run_dir = Path(run.settings.sync_dir)
            run.finish()
            if not getattr(run, "disabled", False):  # mode="disabled" writes no .wandb file
                _wait_for_exit_record(run_dir, self._finish_timeout)

    # -- helpers ---------------------------------------------------------------------------------------------
    def _log(self, row: Mapping[str, Any], step: int) -> None:
        """Log ``row`` at train step ``step``: as wandb's step on an own run fed in step order (merged with what
        that step already has), else with ``trainer/step`` only."""
        if self._log_steps:
            if step < self._last_step or (step == self._last_step and not self._pending):
                return  # out of the promised order: that row is committed (the summary and the table keep events)
            self._run.log({**row, STEP_METRIC: step}, step=step)
            self._pending, self._last_step = True, step
        else:
            self._run.log({**row, STEP_METRIC: step})

    def _continuation(self, info: RunInfo, given_id: str | None) -> dict[str, Any]:
        """The ``wandb.init`` arguments that continue the run the resumed state names (none on a fresh run);
        ``StateError`` when the sink was given another run than that one."""
        previous_id = info.previous.get("wandb_run_id")
        if previous_id is None:
            return {}
        if given_id is not None and given_id != previous_id:
            raise StateError(f"the state names W&B run {previous_id!r}, but this WandbSink's run is {given_id!r} "
                             "(continue it with wandb.init(**continue_run_kwargs(state)))")
        if self._rewind:
            return {"id": previous_id, "resume_from": f"{previous_id}?_step={info.start_step}"}
        return {"id": previous_id, "resume": "allow"}

    def _held_upto(self) -> int:
        """The last train step the run already holds: offline, the last ``_step`` in the earlier attempts'
        directories of this run id; online, the run's step before this attempt (-1 if none)."""
        run = self._run
        if not self._log_steps:
            return -1  # rows carry trainer/step only: wandb's own steps say nothing about train steps
        if not run.offline:
            return run.step - 1 if run.resumed else -1
        current = Path(run.settings.sync_dir).resolve()
        earlier = [d for d in wandb_run_dirs(current.parent, run.id) if d.resolve() != current]
        held = last_logged_step(earlier)
        return -1 if held is None else held

    def _define(self, tags: Any) -> None:
        """On a user's run, give each new lrmon tag ``trainer/step`` as x-axis (own runs use ``*``)."""
        if self._owns_run:
            return
        for tag in tags:
            if tag not in self._defined and tag != STEP_METRIC:
                self._run.define_metric(tag, step_metric=STEP_METRIC)
                self._defined.add(tag)

    def _final_row(self) -> dict[str, Any]:
        """The close row: events table, LR-vs-loss table, line-series panel and figure (those that have data)."""
        wandb = _wandb()
        row: dict[str, Any] = {}
        lr_tags, loss_key, events = self._figure.lr_tags, self._figure.loss_tag, self._figure.events
        if events:
            columns = ["step", "kind", *lr_tags, "detail"]
            data = [[event.step, event.kind, *_pad(event.lrs, len(lr_tags)), event.detail] for event in events]
            row["lrmon/events"] = wandb.Table(columns=columns, data=data)
        keys = [*lr_tags, loss_key]
        points = {step: values for step, values in self._figure.points.points.items()
                  if any(key in values for key in keys)}
        if points:
            steps = sorted(points)
            row["lrmon/lr_loss"] = wandb.Table(
                columns=[STEP_METRIC, *keys],
                data=[[step, *(points[step].get(key) for key in keys)] for step in steps],
            )
            series_keys = [key for key in keys if any(key in points[step] for step in steps)]
            xs = [[step for step in steps if key in points[step]] for key in series_keys]
            ys = [[points[step][key] for step in steps if key in points[step]] for key in series_keys]
            row["lrmon/lr_vs_loss"] = wandb.plot.line_series(
                xs=xs, ys=ys, keys=series_keys, title="LR vs loss", xname=STEP_METRIC
            )
        png = self._figure.png(f"W&B run {self._run.id}")
        if png is not None:
            from PIL import Image  # matplotlib's own dependency: present whenever a figure was drawn

            row[FIGURE_KEY] = wandb.Image(Image.open(io.BytesIO(png)), caption="LR vs loss")
        return row


def download_state_artifact(reference: str, run: Any = None) -> Path:
    """Download a state artifact logged by :class:`WandbSink` and return its directory (for ``resume_from``).

    ``reference`` is W&B's ``entity/project/lrmon-state-<run id>:<alias>`` (``latest`` or ``step-N``). With ``run``
    (or an active ``wandb.run``) this is ``run.use_artifact(reference).download()``, which also records the lineage;
    otherwise ``wandb.Api().artifact(reference).download()``. Both need W&B online; offline runs resume from
    ``WandbSink.artifact_dir`` instead. Any failure, or an artifact of another type, raises ``StateError``.
    """
    try:
        wandb = _wandb()
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


def _pad(values: Sequence[float], length: int) -> list[float | None]:
    return [float(v) for v in values[:length]] + [None] * max(0, length - len(values))


# -- reading an offline run back ------------------------------------------------------------------------------
def _find_wandb_file(run_dir: Path) -> Path:
    if run_dir.is_file() and run_dir.suffix == ".wandb":
        return run_dir
    files = sorted(run_dir.glob("run-*.wandb"))
    if len(files) != 1:
        raise FileNotFoundError(f"expected one run-*.wandb file in {run_dir}, found {len(files)}")
    return files[0]


def _inspect(run_dir: Path, *flags: str, timeout: float = 60.0) -> str:
    """Output of ``wandb leet inspect <flags> <run_dir>``.

    Runs the ``wandb-core leet inspect`` binary that the ``wandb leet inspect`` command wraps (same arguments, no
    Python start-up: ~40 ms instead of ~1 s); falls back to ``python -m wandb leet inspect``. The working directory
    is a temporary one (the tool may leave a debug log there), so the run's path is made absolute first.
    """
    wandb_file = _find_wandb_file(run_dir).resolve()
    commands = []
    try:
        from wandb.util import get_core_path

        commands.append([get_core_path(), "leet", "inspect", "--no-observability", *flags,
                         "--run-file", str(wandb_file), str(wandb_file.parent.parent)])
    except Exception:  # noqa: BLE001 - fall back to the CLI
        pass
    commands.append([sys.executable, "-m", "wandb", "leet", "inspect", *flags, str(wandb_file)])
    errors = []
    with tempfile.TemporaryDirectory(prefix="lrmon-leet-") as cwd:
        for command in commands:
            try:
                result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                                        stdin=subprocess.DEVNULL)
            except (OSError, subprocess.TimeoutExpired) as error:
                errors.append(f"{command[0]}: {error}")
                continue
            if result.returncode == 0:
                return result.stdout
            errors.append(f"{command[0]} exited {result.returncode}: {result.stderr.strip()[-500:]}")
    raise RuntimeError(f"wandb leet inspect failed for {wandb_file}: " + "; ".join(errors))


def inspect_records(run_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The records of an offline run's ``.wandb`` log, as ``wandb leet inspect --json`` prints them."""
    output = _inspect(Path(run_dir), "--json")
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def read_offline_run(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a (finished or running) offline run back with wandb's own ``leet inspect``.

    Returns ``{"run_id", "project", "entity", "state", "exit_code", "history", "config", "summary", "metrics",
    "artifacts", "tables"}``: ``history`` is the list of logged rows in order (each with wandb's ``_step``,
    ``_runtime``, ``_timestamp``); ``config`` and ``summary`` are the merged values; ``metrics`` the
    ``define_metric`` records; ``artifacts`` one dict per ``log_artifact`` (``name``, ``type``, ``aliases``,
    ``metadata`` decoded, ``files`` with each entry's ``path``, ``local_path`` and ``size``); ``tables`` maps each
    summary key holding a table to ``{"columns", "data"}`` read from the run's files. Values come back through
    JSON (``1.0`` reads as ``1``): compare numbers approximately.
    """
    run_dir = Path(run_dir)
    records = inspect_records(run_dir)
    summary_info = json.loads(_inspect(run_dir, "--summary", "--json"))
    history: list[dict[str, Any]] = []
    metrics: list[dict[str, Any]] = []
    artifacts: list[dict[str, Any]] = []
    exit_code = None
    for record in records:
        kind = record.get("type")
        if kind == "history":
            history.append(record["history"].get("item", {}))
        elif kind == "metric":
            metrics.append(record["metric"])
        elif kind == "artifact":
            artifact = record["artifact"]
            metadata = artifact.get("metadata") or "{}"
            artifacts.append({
                "name": artifact.get("name"),
                "type": artifact.get("type"),
                "aliases": list(artifact.get("aliases", [])),
                "metadata": json.loads(metadata) if isinstance(metadata, str) else metadata,
                "files": [
                    {"path": entry.get("path"), "local_path": entry.get("local_path"), "size": int(entry.get("size", 0))}
                    for entry in artifact.get("manifest", {}).get("contents", [])
                ],
            })
        elif kind == "exit":
            exit_code = record["exit"].get("exit_code", 0)
    summary = summary_info.get("summary", {})
    wandb_file = _find_wandb_file(run_dir)
    tables = {}
    for key, value in summary.items():
        if isinstance(value, dict) and value.get("_type") == "table-file" and value.get("path"):
            table_path = wandb_file.parent / "files" / value["path"]
            if table_path.is_file():
                table = json.loads(table_path.read_text())
                tables[key] = {"columns": table.get("columns", []), "data": table.get("data", [])}
    return {
        "run_id": summary_info.get("run_id"),
        "project": summary_info.get("project"),
        "entity": summary_info.get("entity"),
        "state": summary_info.get("state"),
        "exit_code": exit_code,
        "history": history,
        "config": summary_info.get("config", {}),
        "summary": summary,
        "metrics": metrics,
        "artifacts": artifacts,
        "tables": tables,
    }


def _wait_for_exit_record(run_dir: Path, timeout: float) -> None:
    """Wait until the run's ``.wandb`` log holds its exit record (``run.finish()`` may return before that)."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        try:
            if json.loads(_inspect(run_dir, "--summary", "--json")).get("exit_code") is not None:
                return
        except (FileNotFoundError, RuntimeError, json.JSONDecodeError):
            pass
        if time.monotonic() >= deadline:
            raise TimeoutError(f"wandb run in {run_dir}: no exit record after {timeout:g} s (run.finish() incomplete)")
        time.sleep(delay)
        delay = min(delay * 2, 0.5)
