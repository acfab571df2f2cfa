"""Wait until wandb-core has written a run's rows to its ``.wandb`` file; read back the last logged ``_step``.

wandb 0.31 has no flush request. What :func:`commit_and_wait` relies on (wandb 0.31.0 source, the Go code of
wandb-core from the PyPI sdist, ``core/``):

* order: ``internal/stream/stream.go`` ``Stream.Start``: every record goes handler -> ``Writer.Do`` -> flow
  control -> sender, one goroutine each, in order. ``Writer.process`` (``writer.go``) writes every non-request
  record, then passes every work item on, requests included, offline too. ``handler.go``
  ``handleRequestSampledHistory`` forwards the request and ``sender.go`` ``sendRequestSampledHistory`` answers
  it, so its answer (``interface.deliver_request_sampled_history``) arrives after the writer wrote every record
  sent before it;
* bytes: ``Writer.write`` only fills a 32 KiB block buffer (``pkg/leveldb/record.go``: ``singleWriter.Write``
  calls ``writeBlock`` when the block is full; ``Writer.Flush`` is called only by the ticker of
  ``x_transaction_log_flush_interval``, default 15 s, by flow control and at the end). When wandb-core dies (it
  exits when the Python process does: "server: parent process exited"), the buffer is lost. Blocks sit at file
  offsets that are multiples of 32 KiB, so a record longer than the space left in the current block,
  ``32768 - size % 32768`` bytes with ``size`` read after the first answer, makes ``writeBlock`` hand every
  earlier record to the OS. That record is an empty ``FilesRecord`` (a no-op in ``sender.go`` ``sendFiles``)
  whose ``uuid`` field holds the padding: up to 32 KiB in the file per call;
* commit: a ``PartialHistoryRequest`` with ``action.flush`` and no items (``handler.go``
  ``handlePartialHistorySync`` / ``flushPartialHistory``) writes the pending row, if any, without a spurious
  row (``run.log({}, commit=True)`` adds ``_timestamp``, so it always writes a row). The step still advances by
  one when nothing was pending: a later ``log(step=k)`` needs ``k >= run.step``. Pass ``commit=False`` when rows
  are logged without ``step=`` (nothing is ever pending).

wandb-core never fsyncs; with ``fsync=True`` this process ``os.fsync``s the file (durable against a power loss
too, not only against SIGKILL). A dead wandb-core raises ``ConnectionResetError`` (also from the next
``run.log``); a stuck one makes the call return ``False`` after ``timeout``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

__all__ = ["commit_and_wait", "last_logged_step", "BLOCK_SIZE"]

#: ``blockSize`` of wandb-core's ``pkg/leveldb/record.go``.
BLOCK_SIZE = 32 * 1024
_PAD_PREFIX = "lrmon-durable-pad:"


def _barrier(interface: Any, deadline: float) -> bool:
    """``deliver_request_sampled_history`` and wait for the answer; ``False`` when ``deadline`` passes first."""
    from wandb.sdk.mailbox.mailbox_handle import HandleAbandonedError

    handle = interface.deliver_request_sampled_history()
    try:
        handle.wait_or(timeout=max(0.0, deadline - time.monotonic()))
    except TimeoutError:
        return False
    except HandleAbandonedError as error:  # the connection to wandb-core closed under the request
        raise ConnectionResetError(f"wandb-core went away: {error}") from error
    return True


def commit_and_wait(run: Any, timeout: float, *, commit: bool = True, fsync: bool = True) -> bool:
    """Commit the pending row (``commit``), then block until every record sent so far is in the ``.wandb`` file.

    ``True``: those records survive a SIGKILL of this process (and of wandb-core) from now on. ``False``:
    ``timeout`` seconds passed first (wandb-core alive but behind or stuck). Raises ``ConnectionResetError``
    (or ``BrokenPipeError``) when wandb-core is dead, ``RuntimeError`` for a finished run or one without a
    transaction log (``mode="disabled"``, ``x_skip_transaction_log``).
    """
    from wandb.proto import wandb_internal_pb2 as pb

    deadline = time.monotonic() + timeout
    interface = getattr(run, "_interface", None)
    if interface is None or getattr(run, "_is_finished", False) or getattr(run, "disabled", False):
        raise RuntimeError("commit_and_wait: the run is finished or disabled")
    if getattr(run.settings, "x_skip_transaction_log", False):
        raise RuntimeError("commit_and_wait: the run writes no transaction log (x_skip_transaction_log)")
    path = Path(run.settings.sync_file)
    if commit:
        request = pb.PartialHistoryRequest()
        request.action.flush = True
        interface._publish_partial_history(request)  # InterfaceShared: _make_request + _publish
    if not _barrier(interface, deadline):  # everything sent so far is in the writer's block buffer
        return False
    pad = BLOCK_SIZE - path.stat().st_size % BLOCK_SIZE  # >= the space left in the buffered block
    record = pb.Record()
    record.files.SetInParent()
    record.uuid = _PAD_PREFIX + "0" * max(0, pad - len(_PAD_PREFIX))
    interface._publish(record)
    if not _barrier(interface, deadline):  # the padding was written: the block before it reached the OS
        return False
    if fsync:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return True


def last_logged_step(run_files: list[Path]) -> int | None:
    """The largest ``_step`` of the history rows in ``run_files`` (``.wandb`` files or their run directories).

    Read with ``wandb leet inspect --json`` (:func:`lrmon.integrations.wandb.inspect_records`). A file cut short
    by a SIGKILL is read up to its last complete record. ``None`` when no file holds a row.
    """
    from lrmon.integrations.wandb import inspect_records  # imported here: lrmon's package import is slow (jax)

    steps = [
        int(record["history"]["item"]["_step"])
        for path in run_files
        for record in inspect_records(path)
        if record.get("type") == "history" and "_step" in record.get("history", {}).get("item", {})
    ]
    return max(steps, default=None)
