r"""``LRMonitor``: steps the schedule once per train step and logs the LR, the phase and the events exactly.

Step convention: the record for train step :math:`t` (:math:`t = 0, 1, \dots`) carries :math:`\eta_t`, the LR the
optimizer applied at step :math:`t` — never the next step's. Call :meth:`LRMonitor.step` once per train step,
after that step's update.

Two paths share one record pipeline:

* host path (a Python loop around a jitted step): :meth:`LRMonitor.step` appends the step and the metric
  references (device arrays are not read) to a buffer; every ``flush_every`` logged steps, just after each event
  step and at each state save, the buffer's gathering on the device is launched and handed to the courier
  (:mod:`lrmon.courier`), whose thread copies it to the host in one transfer and writes it to the sinks in one
  batch: the training thread waits neither for the device nor for a tracker.
* in-graph path (``lax.scan``, ``brainstate.transform.for_loop``, a brainstate-jitted step):
  :meth:`LRMonitor.graph_step` (brainstate) or :meth:`graph_record` (functional) write rows into a device ring
  buffer that leaves the graph through one ``jax.debug.callback`` per ``graph_capacity`` logged steps.

The LR at step :math:`t` is known on the host from the configuration, so events need no device work: each of
``warmup_start``, ``warmup_end``, ``cosine_start``, ``end``, ``overrun`` is emitted once, at its step.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import threading
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import brainstate
import jax
import jax.numpy as jnp
import numpy as np

from lrmon.tags import PHASE_TAG, RESERVED_PREFIX, lr_tags
from lrmon._validation import check_step_count
from lrmon.curve import CurveConfig
from lrmon.courier import Courier
from lrmon.dispatch import SinkSet
from lrmon.fetch import PendingScalars
from lrmon.graph import GraphBuffer, check_consecutive, empty_buffer, record
from lrmon.schedule import ConfigMismatchError
from lrmon.saving import StateSaver, sink_keys
from lrmon.state import MAX_STEP, MonitorState, StateError, read_state, state_from_dict, state_to_dict
from lrmon.schedule_source import curve_config_of, current_step_of, drives_an_optimizer
from lrmon.sinks import Event, RunInfo, Series, Sink

#: A flush's rows once read: ``(steps, lrs [n, groups], {metric: (steps, values)})``.
_Values = tuple[np.ndarray, np.ndarray, Mapping[str, tuple[np.ndarray, np.ndarray]]]

__all__ = ["LRMonitor", "PHASE_TAG"]

#: ``resume_from="wandb-artifact:entity/project/lrmon-state-<run id>:latest"`` downloads that artifact (online).
WANDB_ARTIFACT_PREFIX = "wandb-artifact:"

#: Seconds ``close()`` waits for the sinks to finish what is queued before giving up on them.
_CLOSE_TIMEOUT_S = 300.0
#: Device scalars fetched per compiled stacking call. The call takes one argument per scalar and compiles once per
#: size; compiling it grows faster than linearly with that size (4096 arguments: ~9 s, 16384: >2 min on a 2-core
#: CPU), so a large ``flush_every`` is fetched in chunks of this many.
_FETCH_CHUNK = 256


class LRMonitor:
    """Owns a warmup + cosine schedule, steps it once per train step, and logs it to sinks.

    Args:
      schedule: an ``lrmon.WarmupCosineSchedule`` or a ``braintools.optim.WarmupCosineSchedule``. Training starts
        at the schedule's ``last_epoch``.
      sinks: where records go (``lrmon.MemorySink``, ``lrmon.integrations.tensorboard.TensorBoardSink``, ...).
      log_every: LR scalars (and metrics) are recorded at steps with ``t % log_every == 0``; events always at their
        exact step.
      flush_every: logged steps buffered on the host before one batched fetch and write.
      graph_capacity: rows of the in-graph ring buffer (one host callback per this many logged steps).
      save_every: also save the state every this many steps (it is always saved at :meth:`close`).
      state_dir: directory of the local state file ``lrmon_state.json`` (default: a private temporary directory,
        removed at :meth:`close`; every sink also stores the state with its tracker: W&B artifact, TensorBoard
        logdir).
      resume_from: a state file, a state directory, a TensorBoard logdir, a W&B run directory or root directory
        (the newest valid state artifact copy in it), a W&B artifact directory, a W&B artifact reference
        ``"wandb-artifact:entity/project/lrmon-state-<run id>:latest"`` (downloaded; needs W&B online), a
        :class:`~lrmon.state.MonitorState`, or the dict of :meth:`state_dict` (e.g. restored by orbax). The run
        continues at ``resume_step``: events at earlier steps are not emitted again, a ``resume`` event marks the
        step, and sinks continue there (TensorBoard purges what the interrupted run wrote from there on; W&B
        continues the same run and skips the steps it already holds).
      resume_step: the step the model was restored at (e.g. ``int(opt_state.count)``), before or after the saved
        step; default: the saved step. The LR and the events are a function of the configuration and the step, so
        any step resumes exactly.
      allow_config_change: resume even if the saved schedule configuration differs from ``schedule``'s (the
        schedule keeps its own configuration); otherwise :class:`~lrmon.ConfigMismatchError` names the fields.

    A schedule at ``last_epoch=N`` with no ``resume_from`` starts at step ``N`` and emits no event of an earlier
    step. State saves run off the training thread (:mod:`lrmon.saving`: the resume invariant); a tracker or disk
    fault never stops training, and :meth:`close` never raises because of one.

    Records are written only on JAX process 0; other processes keep counting steps and do no tracker I/O.
    """

    def __init__(
        self,
        schedule: Any,
        sinks: Sequence[Sink] = (),
        *,
        log_every: int = 1,
        flush_every: int = 256,
        graph_capacity: int = 1024,
        save_every: int | None = None,
        state_dir: str | os.PathLike[str] | None = None,
        resume_from: str | os.PathLike[str] | MonitorState | Mapping[str, Any] | None = None,
        resume_step: int | None = None,
        allow_config_change: bool = False,
    ) -> None:
        self.schedule = schedule
        self.config: CurveConfig = curve_config_of(schedule)
        self.log_every = check_step_count("log_every", log_every, minimum=1)
        self.flush_every = check_step_count("flush_every", flush_every, minimum=1)
        self.graph_capacity = check_step_count("graph_capacity", graph_capacity, minimum=1)
        self._sinks = SinkSet(sinks)
        self._courier = Courier(self._sinks)
        self._writes = jax.process_index() == 0
        # With several processes, device values are read on the training thread: their computations span the
        # processes, and a read on another thread, at another point in each process, deadlocks XLA's CPU runtime.
        self._multi_process = jax.process_count() > 1
        groups = self.config.num_groups
        self.lr_tags: tuple[str, ...] = lr_tags(groups)
        self._lr_of_steps = jax.jit(self.config.lr_at)

        self._step = current_step_of(schedule)  # index of the next train step
        self._start_step = self._step
        self._ingested_upto = self._step  # rows at steps below this were already written (drops duplicates)
        self._last_logged_step: int | None = None
        self._emission_log: list[tuple[str, int]] = []
        self._events_below = self._step  # every event at a step below this was emitted, or is before the run
        self._last_save_step = self._step  # the save cadence counts from here
        self._saved_step: int | None = None  # step of the last save handed to the saver
        self._pending_steps: list[int] = []
        self._pending_metrics: list[Mapping[str, Any]] = []
        self._pending_lrs: list[Any] = []
        self._metric_names: frozenset[str] = frozenset()
        self._lock = threading.RLock()
        self._graph_names: tuple[str, ...] | None = None
        self._graph_state: brainstate.State | None = None
        self._closed = False
        self._entered = False
        self._misuse: str | None = None  # a misuse seen while draining the in-graph buffer, raised once written
        self.save_every = None if save_every is None else check_step_count("save_every", save_every, minimum=1)
        if resume_step is not None and resume_from is None:
            raise ValueError("resume_step needs resume_from (the state to resume); to start a fresh run at step N, "
                             "build the schedule with last_epoch=N")
        previous = self._restore(resume_from, resume_step, allow_config_change) if resume_from is not None else None
        self._saver = StateSaver(self._courier, list(sinks), None if state_dir is None else Path(state_dir),
                                 previous.trackers if previous is not None else None)
        self._flush_at = self._next_flush_step()
        self._open_sinks(resumed=previous is not None)
        if previous is not None:
            self._emit([(self._step, "resume")], detail_suffix=self._resume_note)

    # -- public properties -----------------------------------------------------------------------------------
    @property
    def step_count(self) -> int:
        """Train steps completed so far (the index of the next train step)."""
        return self._step

    @property
    def emitted_events(self) -> dict[str, int]:
        """Events emitted so far: kind -> step."""
        return dict(self._emission_log)

    @property
    def sinks(self) -> list[Sink]:
        """The sinks still enabled (a sink that raised is disabled)."""
        return list(self._sinks.active)

    # -- host path -------------------------------------------------------------------------------------------
    def step(self, **metrics: Any) -> None:
        """Record train step ``t`` (just finished) with its metrics, then advance to ``t + 1``.

        Metric values are scalars: Python numbers, or 0-d / one-element device arrays (read in batches, never here).
        """
        if self._closed:
            self._refuse_closed("step")
        t = self._step
        driven = drives_an_optimizer(self.schedule)
        if t % self.log_every == 0:
            if metrics.keys() != self._metric_names:
                self._check_metrics(metrics)
            self._pending_steps.append(t)
            self._pending_metrics.append(metrics)
            if driven:
                self._pending_lrs.append(self.schedule.current_lrs.value)
        if driven:
            self._step_driven_schedule(t)
        self._step = t + 1
        if self._step >= self._flush_at:
            self._write_due()

    def flush(self) -> None:
        """Write every buffered record and due event to the sinks now, and make the sinks flush (durable)."""
        if self._closed:
            self._refuse_closed("flush")
        self._write_due()
        if self._writes:  # sinks are opened, written, flushed and closed on process 0 only
            self._courier.call("flush")
            self._courier.wait()
        self._raise_misuse()

    def _write_due(self) -> None:
        """Send buffered records, due events and a due state save to the courier (the sinks' own flush is not
        called)."""
        # The in-graph buffer is fetched before taking the lock: with several devices (or on GPU) dispatch is
        # asynchronous, and the computation producing the buffer may be waiting for this lock in a host callback.
        self._drain_graph_state()
        with self._lock:
            pending = self._launch_pending()
            if pending is not None:
                self._ingest(pending.steps, pending.result)
            self._emit_due_events(self._step)
            self._save_if_due()
            self._flush_at = self._next_flush_step()

    def close(self) -> None:
        """Flush everything, save the state, then close every sink. Safe to call twice.

        After ``close()`` the monitor refuses to record (``RuntimeError``): its sinks are finished.
        """
        if self._closed:
            return
        try:
            self._save_state()
        finally:
            self._closed = True
            if self._writes:
                self._courier.call("close")
                if not self._courier.stop(timeout=_CLOSE_TIMEOUT_S):
                    warnings.warn(f"lrmon: the sinks did not finish within {_CLOSE_TIMEOUT_S:g} s of close(); "
                                  "giving up on them (training is not affected)", RuntimeWarning, stacklevel=2)
            self._saver.close()
        self._raise_misuse()

    def __enter__(self) -> "LRMonitor":
        if self._closed:
            self._refuse_closed("with")
        if self._entered:
            raise RuntimeError("LRMonitor: already inside a `with monitor:` block; the inner block's exit would "
                               "close the monitor under the outer one. Enter it once.")
        self._entered = True
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def _refuse_closed(self, verb: str) -> None:
        what = "`with monitor:`" if verb == "with" else f"monitor.{verb}()"
        raise RuntimeError(
            f"LRMonitor: {what} after close(): the monitor is closed and its sinks are finished, so these records "
            "would be lost. Create a new LRMonitor (resume_from= its state to continue the run)."
        )

    def _raise_misuse(self) -> None:
        """Raise, once, a misuse found while draining the in-graph buffer (its records were written first)."""
        misuse, self._misuse = self._misuse, None
        if misuse is not None:
            raise RuntimeError(misuse)

    # -- in-graph path ---------------------------------------------------------------------------------------
    def graph_buffer(self, metric_names: Sequence[str] = ()) -> GraphBuffer:
        """An empty device buffer for :meth:`graph_record`, with room for the LRs and ``metric_names``."""
        names = tuple(metric_names)
        self._check_metrics(dict.fromkeys(names, 0.0))
        self._graph_names = names
        return empty_buffer(self.graph_capacity, self.config.num_groups + len(names))

    def graph_record(self, buffer: GraphBuffer, step: Any, **metrics: Any) -> GraphBuffer:
        """Record train step ``step`` inside compiled code (e.g. the body of ``lax.scan``): pure, returns the buffer.

        The LR is the curve's value at ``step`` (what an optax optimizer with this schedule applies at count
        ``step``). After the loop, hand the final buffer to :meth:`graph_drain`.
        """
        return self._record_row(buffer, step, self.config.lr_at(step), metrics)

    def graph_drain(self, buffer: GraphBuffer) -> None:
        """Send the rows left in ``buffer`` to the sinks and advance the step count past its last step."""
        if self._closed:
            self._refuse_closed("graph_drain")
        self._drain(buffer)
        self._raise_misuse()

    def _drain(self, buffer: GraphBuffer) -> None:
        steps, rows, count, last_step, skipped_to = jax.device_get(tuple(buffer))
        if np.ndim(count):  # per-device copies stacked by pmap: identical (replicated carry), keep the first
            first = (0,) * np.ndim(count)
            steps, rows, count, last_step, skipped_to = (
                steps[first], rows[first], count[first], last_step[first], skipped_to[first])
        self._receive(steps, rows, count, last_step)
        if skipped_to >= 0 and self._misuse is None:
            self._misuse = (
                f"LRMonitor.graph_step(): the schedule reached step {int(skipped_to)} without the step before it being "
                "recorded: something else stepped the schedule. graph_step() steps it once per train step; do not "
                "also call schedule.step() yourself. The records made so far were written."
            )

    def record_many(self, steps: Any, **metrics: Any) -> None:
        """Record many finished train steps at once, e.g. the per-step outputs of a ``lax.scan``.

        ``steps`` (the step of each row: optax's count before the update) and each metric are 1-d arrays of one
        length; device arrays are read once. The LR is the compiled curve at each step, as with optax. This is
        the cheapest way to log a compiled loop (no callback inside it): return the rows as scan outputs and hand
        them over after the loop. The step count advances past the last step.
        """
        if self._closed:
            self._refuse_closed("record_many")
        steps = np.asarray(jax.device_get(steps), np.int64).reshape(-1)
        values = {name: np.asarray(v, np.float64).reshape(-1) for name, v in jax.device_get(metrics).items()}
        for name, column in values.items():
            if column.shape != steps.shape:
                raise ValueError(f"metric {name!r} has {column.size} values for {steps.size} steps")
        self._check_metrics(dict.fromkeys(values, 0.0))
        if not steps.size:
            return
        if np.any(np.diff(steps) <= 0):
            raise ValueError("steps must be strictly increasing")
        last_step = int(steps[-1])
        logged = steps % self.log_every == 0
        steps = steps[logged]
        size = 1 << max(len(steps) - 1, 0).bit_length()  # a power of 2: few shapes, few compiles
        lrs = np.asarray(self._lr_of_steps(_padded(steps, size)), np.float64)[: len(steps)]
        self._write_due()  # what the host path buffered comes first
        with self._lock:
            self._step = max(self._step, last_step + 1)
            metrics = {name: (steps, column[logged]) for name, column in values.items()}
            self._ingest(steps, lambda: (steps, lrs, metrics))
            self._emit_due_events(self._step)
            self._save_if_due()

    def init_graph_state(self, metric_names: Sequence[str] = ()) -> None:
        """Create (outside any transform) the brainstate ``State`` that :meth:`graph_step` writes to."""
        buffer = self.graph_buffer(metric_names)._replace(last_step=jnp.full((), self._step - 1, jnp.int32))
        self._graph_state = brainstate.State(buffer)

    def graph_step(self, **metrics: Any) -> None:
        """The brainstate form of :meth:`graph_record`: call once per train step inside ``brainstate.transform``
        code that uses the schedule; records the LR the schedule holds (what the optimizer applied), then steps
        the schedule. Call :meth:`init_graph_state` with the metric names first; :meth:`flush` / :meth:`close`
        send what is left in the buffer.
        """
        if self._graph_state is None:
            raise ValueError("call monitor.init_graph_state(metric_names) before using graph_step inside a transform")
        step = self.schedule.last_epoch.value
        lrs = jnp.stack([jnp.asarray(lr, jnp.float32) for lr in self.schedule.current_lrs.value])
        buffer = check_consecutive(self._graph_state.value, step)
        self._graph_state.value = self._record_row(buffer, step, lrs, metrics)
        self.schedule.step()

    # -- internals -------------------------------------------------------------------------------------------
    def _record_row(self, buffer: GraphBuffer, step: Any, lrs: jax.Array, metrics: Mapping[str, Any]) -> GraphBuffer:
        names = self._graph_names
        if names is None or set(metrics) != set(names):
            raise ValueError(f"metrics must be exactly the names the buffer was made for: {names}, got {sorted(metrics)}")
        values = [jnp.reshape(jnp.asarray(metrics[name], jnp.float32), ()) for name in names]
        row = jnp.concatenate([jnp.reshape(lrs, (-1,)).astype(jnp.float32), jnp.stack(values) if values else
                               jnp.zeros((0,), jnp.float32)])
        return record(buffer, step, row, self.log_every, self._receive_safely)

    def _drain_graph_state(self) -> None:
        if self._graph_state is None:
            return
        buffer = self._graph_state.value
        self._graph_state.value = empty_buffer(*buffer.rows.shape)._replace(last_step=buffer.last_step)
        self._drain(buffer)

    def _receive_safely(self, steps: np.ndarray, rows: np.ndarray, count: np.ndarray, last_step: np.ndarray) -> None:
        """Host end of the in-graph callback: never lets an exception into the compiled step."""
        try:
            if self._closed:
                raise RuntimeError(f"{int(count)} rows arrived after close() and were dropped (close the monitor "
                                   "after the compiled loop has finished)")
            self._receive(steps, rows, count, last_step)
        except Exception as error:  # noqa: BLE001
            import warnings

            warnings.warn(f"lrmon: in-graph records could not be written: {error!r}", RuntimeWarning, stacklevel=1)

    def _receive(self, steps: np.ndarray, rows: np.ndarray, count: Any, last_step: Any) -> None:
        count = int(count)
        groups = self.config.num_groups
        steps = np.asarray(steps[:count], np.int64)
        rows = np.asarray(rows[:count], np.float64)
        metrics = {name: (steps, rows[:, groups + i]) for i, name in enumerate(self._graph_names or ())}
        with self._lock:
            self._step = max(self._step, int(last_step) + 1)
            self._ingest(steps, lambda: (steps, rows[:, :groups], metrics))
            self._emit_due_events(self._step)
            self._save_if_due()

    def _launch_pending(self) -> "_PendingBatch | None":
        if not self._pending_steps:
            return None
        steps = np.asarray(self._pending_steps, np.int64)
        rows, applied = self._pending_metrics, self._pending_lrs
        self._pending_steps, self._pending_metrics, self._pending_lrs = [], [], []
        chunk = min(self.flush_every, _FETCH_CHUNK)
        if applied:
            lrs = [PendingScalars([lr[g] for lr in applied], chunk) for g in range(self.config.num_groups)]
        else:
            lrs = self._lr_of_steps(_padded(steps, self.flush_every))  # one shape: compiled once
        if all(row.keys() == rows[0].keys() for row in rows):  # the usual case: the same metrics every step
            columns = {name: (steps, [row[name] for row in rows]) for name in rows[0]}
        else:
            lists: dict[str, tuple[list[int], list[Any]]] = {}
            for step, row in zip(steps.tolist(), rows):
                for name, value in row.items():
                    lists.setdefault(name, ([], []))[0].append(step)
                    lists[name][1].append(value)
            columns = {name: (np.asarray(s, np.int64), values) for name, (s, values) in lists.items()}
        metrics = {name: (metric_steps, PendingScalars(values, chunk))
                   for name, (metric_steps, values) in columns.items()}
        return _PendingBatch(steps, lrs, metrics)

    def _ingest(self, steps: np.ndarray, values: Callable[[], _Values]) -> None:
        """Send rows to the sinks, dropping steps already written; ``steps`` increase, and ``values()`` gives
        ``(steps, lrs [n, groups], {metric: (steps, values)})``. It is called once, on the courier's thread: the
        training thread waits neither for the device nor for a tracker."""
        kept = steps[steps >= self._ingested_upto]
        if not kept.size:
            return
        self._ingested_upto = int(kept[-1]) + 1
        self._last_logged_step = int(kept[-1])
        if self._multi_process:  # every process reads its values at the same point, in program order
            resolved = values()
            values = lambda: resolved  # noqa: E731
        else:
            values = functools.cache(values)
        # in step order: an event follows the rows of its step and comes before the rows of later steps
        cuts = [step for step in self.config.event_steps().values() if self._events_below <= step < kept[-1]]
        for low, high in _step_ranges(kept, cuts):
            if self._writes:
                self._courier.write_scalars(low, functools.partial(self._rows, values, low, high))
            self._emit_due_events(high + 1)

    def _rows(self, values: Callable[[], _Values], low: int, high: int) -> dict[str, Series]:
        """The rows at steps ``low..high`` as a batch: LRs, phase and metrics."""
        steps, lrs, metrics = values()
        keep = (steps >= low) & (steps <= high)
        batch: dict[str, Series] = {tag: Series(steps[keep], lrs[keep, g]) for g, tag in enumerate(self.lr_tags)}
        batch[PHASE_TAG] = Series(steps[keep], self.config.phase_at(steps[keep]).astype(np.float64))
        for name, (metric_steps, metric_values) in metrics.items():
            inside = (metric_steps >= low) & (metric_steps <= high)
            batch[name] = Series(metric_steps[inside], np.asarray(metric_values, np.float64)[inside])
        return batch

    def _emit_due_events(self, completed: int) -> None:
        """Emit the schedule events at steps below ``completed`` not emitted yet (each once: steps only advance)."""
        if completed <= self._events_below:
            return
        self._emit(sorted((step, kind) for kind, step in self.config.event_steps().items()
                          if self._events_below <= step < completed))
        self._events_below = completed

    def _emit(self, due: Sequence[tuple[int, str]], detail_suffix: str = "") -> None:
        if not due:
            return
        lrs = self.config.exact_lr_at([step for step, _ in due])  # NumPy: this may run in a host callback
        events = [Event(step, kind, tuple(lrs[i].tolist()), _describe(kind, step, lrs[i]) + detail_suffix)
                  for i, (step, kind) in enumerate(due)]
        for event in events:
            self._emission_log.append((event.kind, event.step))
        if self._writes:
            self._courier.call("write_events", events)

    def _next_flush_step(self) -> int:
        """The step count at which the host path flushes next: after ``flush_every`` logged steps, an event, or
        when a state save is due."""
        first = max(self._step, self._events_below)
        upcoming = [step + 1 for step in self.config.event_steps().values() if step >= first]
        if self.save_every is not None:
            upcoming.append(self._next_save_step())
        return min([self._step + self.flush_every * self.log_every] + upcoming)

    # -- state -----------------------------------------------------------------------------------------------
    def save_state(self) -> Path | None:
        """Flush, then save the state (local file, and every sink's tracker) and wait for it; returns the local
        file's path (``None`` if it could not be written anywhere, and on processes other than 0).

        The periodic saves of ``save_every`` do not wait: they run off the training thread.
        """
        if self._closed:
            self._refuse_closed("save_state")
        self._save_state()
        self._courier.wait()
        self._raise_misuse()
        last = self._saver.last
        return last[1] if self._writes and last is not None and last[0] == self._step else None

    def state_dict(self) -> dict[str, Any]:
        """Save the state now (:meth:`save_state`, which waits) and return it as the JSON-ready dict a state file
        holds (without its checksum), on every process.

        Store it with the model's checkpoint (e.g. orbax, :mod:`lrmon.integrations.orbax`) and pass it back as
        ``resume_from=``: since the save waited until every tracker held every record below this step (or was
        marked failed in ``trackers``), a resume at the checkpoint's step leaves no gap in any tracker.
        """
        self.save_state()
        with self._lock:
            return state_to_dict(self._snapshot())

    def _save_state(self) -> None:
        self._write_due()  # drains the in-graph buffer before taking the lock (see _write_due)
        self._sync_schedule()
        with self._lock:
            if self._saved_step != self._step:
                self._save_flushed_state()

    def _save_due(self) -> bool:
        return self.save_every is not None and self._step >= self._next_save_step()

    def _save_if_due(self) -> None:
        """Save at the multiple of ``save_every`` just reached, even when the records arrived past it (a compiled
        loop's buffer): the state of a step is a function of the step, and the sinks hold every record below it."""
        if self._save_due():
            assert self.save_every is not None
            self._save_flushed_state(self._step // self.save_every * self.save_every)

    def _next_save_step(self) -> int:
        assert self.save_every is not None
        return (self._last_save_step // self.save_every + 1) * self.save_every

    def _sync_schedule(self) -> None:
        """Bring a schedule the monitor does not step every train step (optax: pure) to the monitor's step.

        Done at :meth:`save_state` and :meth:`close` (on the training thread: it runs JAX ops), not per step.
        """
        if not drives_an_optimizer(self.schedule) and self._graph_state is None:
            self.schedule.step(self._step)

    def _save_flushed_state(self, step: int | None = None) -> None:
        """Hand the state of ``step`` (default: now) to the saver; it runs on the courier, after the records sent
        so far, which include every record below ``step``."""
        step = self._step if step is None else step
        self._last_save_step = self._saved_step = step
        if self._writes:
            self._saver.save(self._snapshot(step))

    def _snapshot(self, step: int | None = None) -> MonitorState:
        step = self._step if step is None else step
        last = self._last_logged_step
        return MonitorState(
            schedule_class=type(self.schedule).__name__,
            config=self.config,
            step=step,
            emitted_events=tuple((kind, at) for kind, at in self._emission_log if at < step),
            last_logged_step=None if last is None or step == 0 else min(last, step - 1),
            trackers=self._saver.trackers,
            monitor_config={"log_every": self.log_every, "save_every": self.save_every},
        )

    def _restore(self, source: Any, resume_step: int | None, allow_config_change: bool) -> MonitorState:
        """Continue from a saved state at ``resume_step`` (default: its step); returns the state.

        Nothing changes if the state cannot be read or does not match (``StateError``, ``ConfigMismatchError``).
        """
        if isinstance(source, str) and source.startswith(WANDB_ARTIFACT_PREFIX):
            from lrmon.integrations.wandb import download_state_artifact  # imports wandb: only when asked for

            source = download_state_artifact(source[len(WANDB_ARTIFACT_PREFIX):])
        if isinstance(source, MonitorState):
            state, origin = source, "a MonitorState"
        elif isinstance(source, Mapping):
            state, origin = state_from_dict(source, source="the state dict"), "a state dict"
        else:
            state, origin = read_state(source), os.fspath(source)
        differing = state.config.differing_fields(self.config)
        if differing and not allow_config_change:
            raise ConfigMismatchError(differing, state.config, self.config)
        step = state.step if resume_step is None else resume_step
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or not 0 <= step <= MAX_STEP:
            raise StateError(f"resume_step must be an integer in [0, {MAX_STEP}] (steps the schedule can "
                             f"evaluate), got {step!r}", origin)
        step = int(step)
        self.schedule.step(step)
        self._step = self._start_step = self._ingested_upto = self._last_save_step = self._events_below = step
        self._last_logged_step = None if state.last_logged_step is None else min(state.last_logged_step, step - 1)
        self._emission_log = [(kind, at) for kind, at in state.emitted_events if at < step]
        changed = f"; configuration changed in {differing}" if differing else ""
        saved = f" (state saved at step {state.step})" if step != state.step else ""
        self._resume_note = f", resumed from {origin}{saved}{changed}"
        return state

    def _step_driven_schedule(self, t: int) -> None:
        value = self.schedule.last_epoch.value
        if isinstance(value, int) and value != t:
            raise RuntimeError(
                f"the schedule is at step {value} but the monitor expected {t}: the monitor steps the schedule; "
                "do not also call schedule.step() yourself"
            )
        self.schedule.step()

    def _check_metrics(self, metrics: Mapping[str, Any]) -> None:
        for name, value in metrics.items():
            if name in self.lr_tags or name.startswith(RESERVED_PREFIX):
                raise ValueError(f"metric name {name!r} is reserved by lrmon (LR tags {self.lr_tags}, 'lrmon/...')")
            if isinstance(value, (str, bytes)) or value is None or int(np.prod(np.shape(value))) != 1:
                raise TypeError(f"metric {name!r} must be a scalar number or a one-element array, got {value!r:.80}")
        self._metric_names = frozenset(metrics)

    def _open_sinks(self, *, resumed: bool) -> None:
        if not self._writes:
            return
        config = {"schedule": type(self.schedule).__name__, **self.config.to_dict(), "log_every": self.log_every}
        info = RunInfo(self._start_step, config, self.lr_tags, resumed=resumed, write=True)
        sinks = list(self._sinks.active)
        for sink, key in zip(sinks, sink_keys(sinks)):  # each sink learns what it held in the resumed state
            self._sinks.call_one(sink, "open", dataclasses.replace(info, previous=self._saver.trackers.get(key, {})))
        self._sinks.call("write_config", config)
        self._saver.note_identities()


def _step_ranges(steps: np.ndarray, cuts: Sequence[int]) -> list[tuple[int, int]]:
    """``(first, last)`` step of each run of ``steps`` (increasing) cut right after each of ``cuts``; none empty."""
    ends = np.searchsorted(steps, sorted(set(cuts)), side="right")
    bounds = [0, *[int(end) for end in ends], len(steps)]
    return [(int(steps[a]), int(steps[b - 1])) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def _padded(steps: np.ndarray, size: int) -> np.ndarray:
    """``steps`` as int32 padded with zeros to ``size``, so the compiled curve sees few distinct shapes."""
    padded = np.zeros((size,), np.int32)
    padded[: len(steps)] = steps
    return padded


def _describe(kind: str, step: int, lrs: np.ndarray) -> str:
    lr_text = ", ".join(f"{lr:.6g}" for lr in lrs.tolist())
    return f"{kind} at step {step} (lr {lr_text})"


class _PendingBatch:
    """A flush's records whose device values are still being gathered."""

    def __init__(self, steps: np.ndarray, lrs: Any, metrics: Mapping[str, tuple[np.ndarray, PendingScalars]]) -> None:
        self.steps, self._lrs, self._metrics = steps, lrs, metrics

    def result(self) -> tuple[np.ndarray, np.ndarray, dict[str, tuple[np.ndarray, np.ndarray]]]:
        """``(steps, lrs [n, groups], {metric: (steps, values)})``, waiting for the device if needed."""
        n = len(self.steps)
        if isinstance(self._lrs, list):  # LRs the schedule held for a braintools optimizer
            lrs = np.stack([pending.result() for pending in self._lrs], axis=1)
        else:  # the compiled curve at these steps
            lrs = np.asarray(self._lrs, np.float64)[:n]
        return self.steps, lrs, {name: (steps, pending.result()) for name, (steps, pending) in self._metrics.items()}
