"""The history rows of a ``WandbSink``: at which wandb step each goes (:meth:`HistoryRows.log_at`), and how they
reach wandb-core: many per hand-off, what ``run.log(row, step=...)`` sends, at a fraction of its cost.

wandb-core takes one row per record: wandb 0.31's protocol (``wandb/proto/wandb_internal.proto``) has no record
holding several rows, only ``PartialHistoryRequest`` (a row's items, its optional step, an optional flush) and
``HistoryRecord`` (a finished row; wandb-core then adds neither ``_step`` nor ``_runtime``, so rows sent that way
read back differently). What costs is the way ``run.log`` sends each row: its per-call wrappers, an OpenTelemetry
histogram of the encode time, and a hand-off to wandb's asyncio thread that waits until that one record is on the
socket. Measured on a 2-core machine, 2048 rows of 4 floats: ``run.log`` ~420 µs of Python CPU and ~280 µs of
wandb-core CPU a row; the same records sent together, below, ~50 and ~90 (wandb-core also reads fewer, larger
socket chunks).

:class:`HistoryRows` builds each row's ``PartialHistoryRequest`` as ``Run._partial_history_callback`` and
``InterfaceBase.publish_partial_history`` do (wandb's own ``history_dict_to_json`` and ``set_history_value``, the
run's ``x_history_value_encoding``, ``_timestamp``, the run's ``_local_step`` bookkeeping from ``Run._log``), and
sends them all in one call on wandb's asyncio thread, in order, each exactly as ``InterfaceSock._publish`` does
(``ServerRequest.record_publish``, ``ServiceClient.publish``, which waits on the socket's flow control). The rows
read back identical (``wandb leet inspect``). Those are wandb internals: they are used only with wandb 0.31.x,
after checking that every one is there, for a run the sink created (not shared, not attached from another
process, no TensorBoard syncing); otherwise, and for a run that has finished, every row goes through ``run.log``.
The first row always does, so that wandb records its own telemetry for ``log(step=...)`` as before.
"""

from __future__ import annotations

import inspect
import os
import time
from typing import Any, Mapping, Sequence

from lrmon.integrations._wandb_read import STEP_METRIC

__all__ = ["HistoryRows"]

#: wandb releases whose internals :class:`HistoryRows` was checked against.
CHECKED_VERSIONS = ("0.31.",)


class HistoryRows:
    """The history rows of a :class:`~lrmon.integrations.wandb.WandbSink`'s run.

    Args:
      run: the wandb run.
      batched: send the rows of one call together (only where :func:`_batch_support` finds the internals it
        needs; else ``run.log`` per row).
      at_steps: :meth:`log_at` logs with wandb's ``step=`` (an own run fed in step order).
    """

    def __init__(self, run: Any, *, batched: bool, at_steps: bool) -> None:
        self._run = run
        self._codec = _batch_support(run) if batched else None
        self._logged = False  # run.log has logged one row (wandb's own per-call telemetry is recorded)
        self._at_steps = at_steps
        self.pending = False  # a row was logged with step= and not committed yet (the owner resets it at a commit)
        self._last_step = -1  # the step of the last row logged with step= (wandb accepts that step or a later one)

    @property
    def batched(self) -> bool:
        """Whether rows go to wandb-core several per hand-off."""
        return self._codec is not None

    def log_at(self, rows: Sequence[tuple[Mapping[str, Any], int]]) -> None:
        """Log each ``(row, step)`` with ``trainer/step = step``: with ``at_steps``, at wandb's step ``step``
        (merged with what that step already has; a row out of step order is skipped once its step is committed:
        the summary and the events table keep events), else without ``step=``."""
        if not self._at_steps:
            self.log([({**row, STEP_METRIC: step}, None) for row, step in rows])
            return
        kept = []
        for row, step in rows:
            if step > self._last_step or (step == self._last_step and self.pending):
                kept.append(({**row, STEP_METRIC: step}, step))
                self.pending, self._last_step = True, step
        self.log(kept)

    def log(self, rows: Sequence[tuple[Mapping[str, Any], int | None]]) -> None:
        """Log ``rows`` in order, each as ``run.log(data, step=step)`` would (``step=None``: without); raises what
        ``run.log`` would (e.g. ``ConnectionResetError``: wandb-core died)."""
        rows = list(rows)
        one_by_one = self._codec is None or getattr(self._run, "_is_finished", True)  # finished: run.log raises
        first = len(rows) if one_by_one else (0 if self._logged else 1)  # the first row ever: run.log
        for data, step in rows[:first]:
            self._run.log(dict(data), step=step)
            self._logged = True
        if rows[first:]:
            self._codec.send(self._run, rows[first:])


class _Codec:
    """The wandb internals :class:`HistoryRows` uses, resolved once."""

    def __init__(self, run: Any) -> None:
        from wandb.proto import wandb_internal_pb2, wandb_server_pb2
        from wandb.sdk import wandb_settings
        from wandb.sdk.data_types.utils import history_dict_to_json
        from wandb.sdk.interface.history_value import set_history_value

        self.partial_history = wandb_internal_pb2.PartialHistoryRequest
        self.server_request = wandb_server_pb2.ServerRequest
        self.to_json, self.set_value = history_dict_to_json, set_history_value
        encoding = run._settings.x_history_value_encoding.split(",")
        self.json_form = wandb_settings.HISTORY_VALUE_ENCODING_JSON in encoding
        self.typed_form = wandb_settings.HISTORY_VALUE_ENCODING_TYPED in encoding

    def send(self, run: Any, rows: Sequence[tuple[Mapping[str, Any], int | None]]) -> None:
        interface = run._interface
        requests = [self._server_request(run, interface, data, step) for data, step in rows]
        client = interface._client

        async def publish_all() -> None:
            for request in requests:
                await client.publish(request)

        interface._asyncer.run(publish_all)

    def _server_request(self, run: Any, interface: Any, data: Mapping[str, Any], step: int | None) -> Any:
        """One row's record, as ``publish_partial_history`` and ``InterfaceSock._publish`` build it; then the run's
        ``_local_step`` moves as ``Run._log`` moves it."""
        row = self.to_json(run, dict(data), step=run._local_step, ignore_copy_err=True)
        row.pop("_step", None)
        if "_timestamp" not in row:
            row["_timestamp"] = time.time()
        partial = self.partial_history()
        for key, value in row.items():
            item = partial.item.add()
            item.key = key
            self.set_value(item, value, json_form=self.json_form, typed_form=self.typed_form)
        if step is None:
            run._local_step += 1
        else:
            partial.step.num = step
            run._local_step = max(run._local_step, step)
        record = interface._make_request(partial_history=partial)
        interface._assign(record)
        request = self.server_request()
        request.record_publish.CopyFrom(record)
        return request


def _batch_support(run: Any) -> _Codec | None:
    """The codec if ``run`` can take batched rows (wandb 0.31.x, every internal there, a plain local run)."""
    try:
        import wandb
        from wandb.sdk.interface.interface_sock import InterfaceSock
        from wandb.sdk.lib.asyncio_manager import AsyncioManager

        interface = getattr(run, "_interface", None)
        usable = (
            wandb.__version__.startswith(CHECKED_VERSIONS)
            and isinstance(interface, InterfaceSock)
            and isinstance(getattr(interface, "_asyncer", None), AsyncioManager)
            and inspect.iscoroutinefunction(getattr(getattr(interface, "_client", None), "publish", None))
            and callable(getattr(interface, "_make_request", None)) and callable(getattr(interface, "_assign", None))
            and type(getattr(run, "_local_step", None)) is int
            and getattr(run, "_init_pid", None) == os.getpid() and getattr(run, "_is_attached", True) is False
            and getattr(run._settings, "_shared", True) is False
            and not wandb.patched["tensorboard"]
        )
        return _Codec(run) if usable else None
    except (ImportError, AttributeError, TypeError, KeyError):
        return None
