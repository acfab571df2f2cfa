"""Wait until wandb-core has written a run's rows to its ``.wandb`` file; read back the last logged ``_step``.

wandb 0.31 has no flush request. What :func:`commit_and_wait` relies on (wandb 0.31.0: wandb-core's Go source
in the PyPI sdist, ``core/``; the SDK under ``wandb/sdk/``):

* order: ``internal/stream/stream.go`` ``Stream.Start`` chains handler -> ``Writer.Do`` -> flow control ->
  sender, in order. ``writer.go`` ``Writer.process`` writes each non-request record, then passes every item on,
  requests too, offline too (0.28 dropped them offline). ``handler.go`` ``handleRequestSampledHistory``
  forwards, ``sender.go`` ``sendRequestSampledHistory`` answers: the answer to the SDK's
  ``interface.deliver_request_sampled_history()`` comes after the writer wrote every record sent before it;
* bytes: ``Writer.write`` only fills a 32 KiB block buffer (``pkg/leveldb/record.go``); ``Writer.Flush`` runs
  on the ``x_transaction_log_flush_interval`` ticker (15 s by default), in flow control and at the end. wandb-core
  exits when the Python process dies ("server: parent process exited") and the buffer is lost. Blocks start at
  file offsets that are multiples of 32 KiB, so a record longer than ``32768 - size % 32768`` (``size`` read
  after that answer) makes ``singleWriter.Write`` call ``writeBlock``: every earlier record reaches the OS. That
  record is an empty ``FilesRecord`` (``sender.go`` ``sendFiles``: nothing to do) whose ``uuid`` is the padding,
  up to 32 KiB of file per call; a second answer says it was written;
* commit: a ``PartialHistoryRequest`` with ``action.flush`` and no items (``handler.go``
  ``handlePartialHistorySync``, ``flushPartialHistory``) writes the pending row if there is one and no other
  (``run.log({}, commit=True)`` adds ``_timestamp``: a spurious row). With nothing pending the step still
  advances by one: a later ``log(step=k)`` needs ``k >= run.step``. Rows logged without ``step=`` are never
  pending: pass ``commit=False``.

wandb-core never fsyncs; ``fsync=True`` fsyncs the file from here (power loss, not only SIGKILL).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

__all__ = ["commit_and_wait", "last_logged_step", "BLOCK_SIZE"]

BLOCK_SIZE, _PAD_PREFIX = 32 * 1024, "lrmon-durable-pad:"  # blockSize in wandb-core's pkg/leveldb/record.go


def _barrier(interface: Any, deadline: float) -> bool:
    """``deliver_request_sampled_history()`` and wait for its answer; ``False`` if ``deadline`` comes first."""
    from wandb.sdk.mailbox.mailbox_handle import HandleAbandonedError

    try:
        interface.deliver_request_sampled_history().wait_or(timeout=max(0.0, deadline - time.monotonic()))
    except TimeoutError:
        return False
    except HandleAbandonedError as error:  # the connection closed under the request
        raise ConnectionResetError(f"wandb-core went away ({error!r})") from error
    return True


def _sync(interface: Any, path: Path, deadline: float, commit: bool, fsync: bool) -> bool:
    from wandb.proto import wandb_internal_pb2 as pb

    if commit:
        request = pb.PartialHistoryRequest()
        request.action.flush = True
        interface._publish_partial_history(request)  # InterfaceShared: _make_request + _publish
    if not _barrier(interface, deadline):  # all records sent so far are in the writer's block buffer
        return False
    record = pb.Record()
    record.files.SetInParent()
    pad = BLOCK_SIZE - path.stat().st_size % BLOCK_SIZE  # >= the room left in the buffered block
    record.uuid = _PAD_PREFIX + "0" * max(0, pad - len(_PAD_PREFIX))
    interface._publish(record)
    if not _barrier(interface, deadline):  # the padding is written, so the block before it went to the OS
        return False
    if fsync:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return True


def commit_and_wait(run: Any, timeout: float, *, commit: bool = True, fsync: bool = True) -> bool:
    """Commit the pending row (``commit``), then block until every record sent so far is in the ``.wandb`` file.

    ``True``: those records survive a SIGKILL of this process (and of wandb-core) from now on. ``False``: not
    done within ``timeout`` s (wandb-core alive but stuck; a send blocked on a full socket is left to a daemon
    thread). Raises ``ConnectionResetError`` (or ``BrokenPipeError``) when wandb-core is dead, ``RuntimeError``
    for a finished or disabled run or one without a transaction log (``x_skip_transaction_log``).
    """
    deadline = time.monotonic() + timeout
    interface = getattr(run, "_interface", None)
    if interface is None or getattr(run, "_is_finished", False) or getattr(run, "disabled", False):
        raise RuntimeError("commit_and_wait: the run is finished or disabled")
    if getattr(run.settings, "x_skip_transaction_log", False):
        raise RuntimeError("commit_and_wait: the run writes no transaction log (x_skip_transaction_log)")
    path, box = Path(run.settings.sync_file), {}

    def work() -> None:
        try:
            box["ok"] = _sync(interface, path, deadline, commit, fsync)
        except BaseException as error:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = error

    worker = threading.Thread(target=work, name="lrmon-wandb-durable", daemon=True)
    worker.start()
    worker.join(max(0.0, deadline - time.monotonic()))
    if "error" in box:
        raise box["error"]
    return bool(box.get("ok", False))


def last_logged_step(run_files: list[Path]) -> int | None:
    """The largest ``_step`` of the history rows in ``run_files`` (``.wandb`` files or their run directories).

    Read with ``wandb leet inspect --json`` (:func:`lrmon.integrations.wandb.inspect_records`); a file cut short
    by a SIGKILL is read up to its last complete record (exit code 0); a directory without a ``.wandb`` file (an
    attempt killed before wandb-core made it) holds nothing. ``None`` when no file holds a row.
    """
    from lrmon.integrations._wandb_read import inspect_records  # here: importing lrmon (jax) takes seconds

    paths = [Path(p) for p in run_files if Path(p).is_file() or any(Path(p).glob("run-*.wandb"))]
    items = [r["history"].get("item", {}) for p in paths for r in inspect_records(p) if r.get("type") == "history"]
    return max((int(item["_step"]) for item in items if "_step" in item), default=None)
