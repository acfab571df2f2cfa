r"""``LRMonitor``: steps the schedule once per train step and logs the LR, the phase and the events exactly.

The record for train step :math:`t` carries :math:`\eta_t`, the LR the optimizer applied at step :math:`t`. The
monitor is a facade over one record pipeline, data flowing one way::

    step() / record_many() / scan() / for_loop() / graph_*()  ->  Bookkeeping (what is new, what is due)
        -> HostBuffer / GraphRecorder (rows, their values still on the device)
        -> Delivery (rows of a step range, then its events, in step order) -> Courier (one thread) -> sinks

Host path: :meth:`LRMonitor.step` keeps references (nothing is read from the device); every ``flush_every``
logged steps, after each event step and at each save the rows go to the courier, whose thread reads them in one
transfer and writes them in one batch. In-graph path: :meth:`graph_record` / :meth:`graph_step` fill a device ring
buffer that leaves the graph through one ``jax.debug.callback`` per ``graph_capacity`` logged steps;
:meth:`record_many`, :meth:`scan` and :meth:`for_loop` take a compiled loop's per-step outputs after it. A
schedule's planned events are a function of the step (no device work; the curve's ``events``,
:mod:`lrmon.schedules`), each emitted once; a plateau's cuts are observed (:mod:`lrmon.plateau`).
"""

from __future__ import annotations

import os
import threading
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import jax
import numpy as np

from lrmon._validation import check_metrics, check_step_count
from lrmon.bookkeeping import Bookkeeping
from lrmon.chunked_for_loop import ChunkedForLoop, ForLoopBody
from lrmon.chunked_scan import Body, ChunkedScan, chunk_rows
from lrmon.courier import Courier
from lrmon.delivery import Delivery, Values
from lrmon.dispatch import SinkSet
from lrmon.graph import GraphBuffer
from lrmon.graph_recorder import GraphRecorder
from lrmon.host_buffer import HostBuffer, curve_at, outputs_as_rows
from lrmon.resuming import load_resume
from lrmon.saving import StateSaver
from lrmon.plateau import CUT_PREFIX, PlateauObserver
from lrmon.schedule_source import Role, curve_of, step_driven_schedule, stepped_elsewhere
from lrmon.schedules._protocol import Curve
from lrmon.sinks import RunInfo, Sink
from lrmon.state import MonitorState, state_to_dict
from lrmon.tags import lr_tags

__all__ = ["LRMonitor"]

#: Seconds ``close()`` waits for the sinks to finish what is queued before giving up on them.
_CLOSE_TIMEOUT_S = 300.0
#: What one ``step()`` counts (``LRMonitor(step_axis=...)``).
_STEP_AXES = ("train", "optimizer")


class LRMonitor:
    """Owns a schedule, steps it once per train step, and logs its LR, phase and events to sinks.

    Args:
      schedule: an ``lrmon.WarmupCosineSchedule``; a schedule of :mod:`lrmon.schedules.optax` (optax's
        constructors, with phases and events); a plain optax schedule function (LR only: no phases or events);
        or a ``braintools.optim`` scheduler (:mod:`lrmon.schedules.braintools` lists them; the monitor steps it,
        except ``ReduceLROnPlateau``, which you step with your metric and whose cuts the monitor observes:
        :mod:`lrmon.plateau`). Training starts at a braintools scheduler's ``last_epoch``, else at 0.
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
      group_names: one name per parameter group: the LRs are then logged as ``lr/<name>`` (default ``lr`` for one
        group, ``lr/pg<i>`` for several).
      step_axis: what one :meth:`step` is, recorded in the run configuration: ``"train"`` (a train step), or
        ``"optimizer"`` (an applied update, e.g. under ``optax.MultiSteps`` gradient accumulation, where the
        schedule advances once per ``k`` micro-steps: call :meth:`step` once per update).

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
        group_names: Sequence[str] | None = None,
        step_axis: str = "train",
    ) -> None:
        if step_axis not in _STEP_AXES:
            raise ValueError(f"step_axis must be one of {_STEP_AXES}, got {step_axis!r}")
        self.schedule = schedule
        self.config: Curve = curve_of(schedule)
        self._role = Role(schedule)
        self.log_every = check_step_count("log_every", log_every, minimum=1)
        self.flush_every = check_step_count("flush_every", flush_every, minimum=1)
        self.graph_capacity = check_step_count("graph_capacity", graph_capacity, minimum=1)
        self.save_every = None if save_every is None else check_step_count("save_every", save_every, minimum=1)
        if resume_step is not None and resume_from is None:
            raise ValueError("resume_step needs resume_from (the state to resume); to start a fresh run at step N, "
                             "build the schedule with last_epoch=N")
        resumed = None if resume_from is None else load_resume(resume_from, resume_step, self.config,
                                                               allow_config_change)
        if resumed is not None:
            self._role.move_to(resumed.step)
        self.lr_tags: tuple[str, ...] = lr_tags(self.config.num_groups, group_names)
        self._books = Bookkeeping(
            self.config, self._role.start_step() if resumed is None else resumed.step,
            flush_every=self.flush_every, log_every=self.log_every, save_every=self.save_every,
            last_logged_step=None if resumed is None else resumed.last_logged_step,
            emitted=() if resumed is None else resumed.state.emitted_events)
        self._sinks = SinkSet(sinks)
        self._courier = Courier(self._sinks)
        self._writes = jax.process_index() == 0
        self._delivery = Delivery(self.config, self.lr_tags, self._books, self._courier, writes=self._writes,
                                  read_at_once=jax.process_count() > 1)
        self._lr_of_steps = jax.jit(self.config.lr_at)
        self._host = HostBuffer(self.flush_every, self.config.num_groups, self._lr_of_steps, self._check_metrics)
        self._recorder = GraphRecorder(self.graph_capacity, self.config.num_groups, self.log_every,
                                       lambda names: self._check_metrics(dict.fromkeys(names, 0.0)), self._take)
        self._scans: dict[Body, ChunkedScan] = {}
        self._loops: dict[tuple[ForLoopBody, bool], ChunkedForLoop] = {}
        self._lock = threading.RLock()  # host callbacks of compiled code arrive on other threads
        self._closed = self._entered = False
        self._saver = StateSaver(self._courier, list(sinks), None if state_dir is None else Path(state_dir),
                                 None if resumed is None else resumed.state.trackers)
        if self._writes:  # sinks are opened, written, flushed and closed on process 0 only
            config = {"schedule": type(schedule).__name__, **self.config.to_dict(), "log_every": self.log_every,
                      **({} if step_axis == "train" else {"step_axis": step_axis})}
            self._saver.open_sinks(RunInfo(self._books.start_step, config, self.lr_tags, resumed=resumed is not None,
                                           phases=tuple(self.config.phases)))
        self._plateau = None if not self._role.observed else PlateauObserver(schedule, sum(
            kind.startswith(CUT_PREFIX) for kind, _ in self._books.emission_log))
        if self._plateau is not None and resumed is not None and resumed.state.schedule_state is not None:
            self._plateau.restore(resumed.state.schedule_state)
        if resumed is not None:
            marker = [(resumed.step, "resume")]
            self._books.note_sent(marker)
            self._delivery.emit(marker, detail_suffix=resumed.note)

    # -- public properties -----------------------------------------------------------------------------------
    @property
    def step_count(self) -> int:
        """Train steps completed so far (the index of the next train step)."""
        return self._books.step

    @property
    def emitted_events(self) -> dict[str, int]:
        """Events emitted so far: kind -> step."""
        return dict(self._books.emission_log)

    @property
    def sinks(self) -> list[Sink]:
        """The sinks still enabled (a sink that raised is disabled)."""
        return list(self._sinks.active)

    # -- recording -------------------------------------------------------------------------------------------
    def step(self, **metrics: Any) -> None:
        """Record train step ``t`` (just finished) with its metrics, then advance to ``t + 1``.

        Metric values are scalars: Python numbers, or 0-d / one-element device arrays (read in batches, never here).
        """
        if self._closed:
            self._refuse_closed("step")
        books = self._books
        t = books.step
        if self._plateau is not None or self._role.drives():
            return self._step_held(t, metrics)
        if t % self.log_every == 0:  # the curve's LR at t: computed at the flush, for all rows at once
            self._host.append(t, metrics, None)
        books.step = t + 1
        if books.step >= books.flush_at:
            self._write_due()

    def _step_held(self, t: int, metrics: Mapping[str, Any]) -> None:
        """:meth:`step` for a schedule that holds its LR (braintools): record it, step it or observe its cut."""
        if t % self.log_every == 0:
            self._host.append(t, metrics, self.schedule.current_lrs.value)
        if self._plateau is None:
            step_driven_schedule(self.schedule, t)
            cut = None
        else:
            cut = self._plateau.check()
        self._books.step = t + 1
        if cut is not None:
            self._send_cut(t, cut)
        elif self._books.flush_due():
            self._write_due()

    def record_many(self, steps: Any, **metrics: Any) -> None:
        """Record many finished train steps at once, e.g. the per-step outputs of a ``lax.scan``.

        ``steps`` (the step of each row: optax's count before the update) and each metric are 1-d arrays of one
        length; device arrays are read once. The LR is the compiled curve at each step, as with optax. This is
        the cheapest way to log a compiled loop (no callback inside it): return the rows as scan outputs and hand
        them over after the loop. The step count advances past the last step.
        """
        if self._closed:
            self._refuse_closed("record_many")
        rows = outputs_as_rows(steps, metrics, self.log_every, self._check_metrics)
        if rows is None:
            return
        logged, columns, last_step = rows
        lrs = np.asarray(curve_at(logged, self._lr_of_steps), np.float64)[: len(logged)]
        self._write_due()  # what the host path buffered comes first
        self._take(logged, lambda: (logged, lrs, columns), last_step)

    def scan(self, body: Body, carry: Any, xs: Any = None, *, length: int | None = None, chunk: int = 1024) -> Any:
        """``lax.scan(body, carry, xs, length)``, logged, with no callback or branch in the per-step body.

        ``body(carry, x) -> (carry, {metric: scalar})`` is one train step; its step is the monitor's next one
        (the first is :attr:`step_count`) and its LR the curve's there, as optax applies it at that count. The
        steps run as compiled chunks of ``chunk`` steps (:mod:`lrmon.chunked_scan`): each chunk's metrics leave
        as scan outputs after it, read on the courier's thread while the next chunk runs. Returns the final carry.

        Raises:
          TypeError: the schedule is stepped by the monitor (a braintools optimizer's: use :meth:`for_loop`), or
            ``body`` returns no metrics mapping.
        """
        if self._closed:
            self._refuse_closed("scan")
        if self._role.drives() or self._plateau is not None:
            raise TypeError("monitor.scan logs the curve at each step (optax's protocol); this schedule is "
                            "stepped for a braintools optimizer: use monitor.for_loop (brainstate), or "
                            "monitor.graph_step inside brainstate.transform.for_loop")
        runner = self._scans.get(body)
        if runner is None:
            runner = self._scans[body] = ChunkedScan(body)
        carry = runner.run(carry, xs, length, chunk, self._books.step, self._take_chunk)
        self._raise_misuse()
        return carry

    def for_loop(self, body: ForLoopBody, *xs: Any, length: int | None = None, chunk: int = 1024) -> None:
        """``brainstate.transform.for_loop(body, *xs, length=length)``, logged, with no callback or branch in the
        per-step body: the brainstate counterpart of :meth:`scan`.

        ``body(*x) -> {metric: scalar}`` is one train step on brainstate ``State``s (``x``: the step's slices of
        ``xs``; no argument without ``xs``). With a schedule a braintools optimizer reads (``lr=schedule``), the
        monitor records after ``body`` the LR the schedule held (the one the optimizer applied) and steps it, once
        per step: the body must not step it. Otherwise each row's LR is the curve at the monitor's step. The steps
        run as compiled chunks of ``chunk`` steps (:mod:`lrmon.chunked_for_loop`); with a stepped schedule the
        call returns once the last chunk has finished (its step is checked).

        Raises:
          TypeError: the schedule is a ``ReduceLROnPlateau`` (its cuts are observed on the host: use
            :meth:`step`), or ``body`` returns no metrics mapping.
          RuntimeError: something else stepped the schedule during the loop (the records were written first).
        """
        if self._closed:
            self._refuse_closed("for_loop")
        if self._plateau is not None:
            raise TypeError("monitor.for_loop cannot observe a ReduceLROnPlateau's cuts inside compiled code: "
                            "step it with your metric in a Python loop and call monitor.step()")
        stepped = self._role.drives()
        runner = self._loops.get((body, stepped))
        if runner is None:
            runner = self._loops[body, stepped] = ChunkedForLoop(body, self.schedule if stepped else None)
        at = runner.run(xs, length, chunk, self._books.step, self._take_chunk)
        self._raise_misuse()
        if at is not None and at != self._books.step:
            found = f"the schedule is at step {at} after the loop, the monitor expected {self._books.step}"
            raise RuntimeError(stepped_elsewhere("for_loop", found) + ". The records made so far were written.")

    def graph_buffer(self, metric_names: Sequence[str] = ()) -> GraphBuffer:
        """An empty device buffer for :meth:`graph_record`, with room for the LRs and ``metric_names`` (part of
        the buffer's static structure: a compiled function decodes its rows with the names it was traced with)."""
        return self._recorder.buffer(metric_names)

    def graph_record(self, buffer: GraphBuffer, step: Any, **metrics: Any) -> GraphBuffer:
        """Record train step ``step`` inside compiled code (e.g. the body of ``lax.scan``): pure, returns the buffer.

        The LR is the curve's value at ``step`` (what an optax optimizer with this schedule applies at count
        ``step``). After the loop, hand the final buffer to :meth:`graph_drain`.
        """
        return self._recorder.record(buffer, step, self.config.lr_at(step), metrics)

    def graph_drain(self, buffer: GraphBuffer) -> None:
        """Send the rows left in ``buffer`` to the sinks and advance the step count past its last step."""
        if self._closed:
            self._refuse_closed("graph_drain")
        self._recorder.drain(buffer)
        self._raise_misuse()

    def init_graph_state(self, metric_names: Sequence[str] = ()) -> None:
        """Create (outside any transform) the brainstate ``State`` that :meth:`graph_step` writes to."""
        self._recorder.init_state(metric_names, self._books.step)

    def graph_step(self, **metrics: Any) -> None:
        """The brainstate form of :meth:`graph_record`: call once per train step inside ``brainstate.transform``
        code that uses the schedule; records the LR the schedule holds (what the optimizer applied), then steps
        the schedule. Call :meth:`init_graph_state` with the metric names first; :meth:`flush` / :meth:`close`
        send what is left in the buffer.
        """
        self._recorder.step_state(self.schedule, metrics)

    # -- flushing, saving, closing ---------------------------------------------------------------------------
    def flush(self) -> None:
        """Write every buffered record and due event to the sinks now, and make the sinks flush (durable)."""
        if self._closed:
            self._refuse_closed("flush")
        self._write_due()
        if self._writes:  # sinks are opened, written, flushed and closed on process 0 only
            self._courier.call(Sink.flush)
            self._courier.wait()
        self._raise_misuse()

    def save_state(self) -> Path | None:
        """Flush, then save the state (local file, and every sink's tracker) and wait for it; returns the local
        file's path (``None`` if it could not be written anywhere, and on processes other than 0).

        The periodic saves of ``save_every`` do not wait: they run off the training thread.
        """
        if self._closed:
            self._refuse_closed("save_state")
        self._save_now()
        self._courier.wait()
        self._raise_misuse()
        last = self._saver.last
        return last[1] if self._writes and last is not None and last[0] == self._books.step else None

    def state_dict(self) -> dict[str, Any]:
        """Save the state now (:meth:`save_state`, which waits) and return it as the JSON-ready dict a state file
        holds (without its checksum), on every process.

        Store it with the model's checkpoint (e.g. orbax, :mod:`lrmon.integrations.orbax`) and pass it back as
        ``resume_from=``: since the save waited until every tracker held every record below this step (or was
        marked failed in ``trackers``), a resume at the checkpoint's step leaves no gap in any tracker.
        """
        self.save_state()
        with self._lock:
            return state_to_dict(self._state_at(self._books.step))

    def close(self) -> None:
        """Flush everything, save the state, then close every sink. Safe to call twice.

        After ``close()`` the monitor refuses to record (``RuntimeError``): its sinks are finished.
        """
        if self._closed:
            return
        try:
            self._save_now()
        finally:
            self._closed = self._recorder.closed = True
            if self._writes:
                self._courier.call(Sink.close)
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

    # -- the pipeline ----------------------------------------------------------------------------------------
    def _write_due(self) -> None:
        """Hand the buffered rows, due events and a due save to the courier (the sinks' own flush is not called)."""
        # The in-graph buffer is fetched before taking the lock: with several devices (or on GPU) dispatch is
        # asynchronous, and the computation producing the buffer may be waiting for this lock in a host callback.
        self._recorder.drain_state()
        with self._lock:
            pending = self._host.take()
            if pending is not None:
                self._delivery.deliver(pending.steps, pending.values)
            self._send_due()
            self._books.plan_next_flush()

    def _take_chunk(self, first: int, count: int, metrics: Mapping[str, Any], held_lrs: Any = None) -> None:
        """A finished chunk of :meth:`scan` or :meth:`for_loop`: steps ``first..first+count-1``, metrics (and the
        LRs a stepped schedule held) still on the device."""
        logged, values = chunk_rows(first, count, metrics, self.log_every, self._lr_of_steps, self._check_metrics,
                                    held_lrs)
        self._write_due()  # what the host path buffered comes first
        self._take(logged, values, first + count - 1)

    def _take(self, steps: np.ndarray, values: Callable[[], Values], last_step: int) -> None:
        """Rows that arrived with the step count past them (a compiled loop's)."""
        with self._lock:
            self._books.step = max(self._books.step, last_step + 1)
            self._delivery.deliver(steps, values)
            self._send_due()

    def _send_due(self) -> None:
        """The tail of every path (lock held): the events due, then a due save, after the rows sent so far."""
        self._delivery.events_upto(self._books.step)
        step = self._books.take_due_save()
        if step is not None:
            self._store(step)

    def _store(self, step: int) -> None:
        """Hand the state of ``step`` to the saver (it stores it once the sinks hold every record below it)."""
        if self._writes:
            self._saver.save(self._state_at(step))

    def _send_cut(self, t: int, cut: Any) -> None:
        """An observed cut at step ``t``: the rows up to ``t`` first, then its event."""
        self._write_due()
        with self._lock:
            self._books.note_sent([(t, cut.kind)])
            self._delivery.send_events([(t, cut.kind, cut.new, cut.describe(t))])

    def _state_at(self, step: int) -> MonitorState:
        schedule_state = None if self._plateau is None else self._plateau.state()
        return self._books.state_at(step, type(self.schedule).__name__, self._saver.trackers, schedule_state)

    def _save_now(self) -> None:
        """Save the state of the current step (unless saved already), after everything buffered."""
        self._write_due()
        if not self._role.drives() and self._recorder.state is None:
            self._role.move_to(self._books.step)  # bring a pure warmup + cosine schedule to the step
        with self._lock:
            if self._books.saved_step != self._books.step:
                self._books.note_saved(self._books.step)
                self._store(self._books.step)

    # -- helpers ---------------------------------------------------------------------------------------------
    def _check_metrics(self, metrics: Mapping[str, Any]) -> None:
        check_metrics(metrics, self.lr_tags)

    def _refuse_closed(self, verb: str) -> None:
        what = "`with monitor:`" if verb == "with" else f"monitor.{verb}()"
        raise RuntimeError(
            f"LRMonitor: {what} after close(): the monitor is closed and its sinks are finished, so these records "
            "would be lost. Create a new LRMonitor (resume_from= its state to continue the run)."
        )

    def _raise_misuse(self) -> None:
        """Raise, once, a misuse found while draining the in-graph buffer (its records were written first)."""
        misuse = self._recorder.take_misuse()
        if misuse is not None:
            raise RuntimeError(misuse)
