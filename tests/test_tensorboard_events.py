"""The event file under TensorBoardSink (integrations/_tensorboard_events.py): tensorboardX's EventsWriter, read
back record by record with tensorboard's own EventFileLoader; flush fsyncs what it wrote; descriptors released."""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

import pytest

from lrmon.integrations.tensorboard import TensorBoardSink

from _trackers import CONFIG, batches, call_with_timeout, run_info


def records(path: Path) -> list:
    """Every Event in one event file, in file order (tensorboard's loader checks each record's CRCs)."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    return list(EventFileLoader(str(path)).Load())


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def test_own_file_name_and_purge_marker_before_any_record(tmp_path: Path) -> None:
    sink = TensorBoardSink(tmp_path)
    sink.open(run_info(start_step=150))
    sink.write_scalars(batches(CONFIG, 150, 160)[0])
    sink.flush()
    (path,) = tmp_path.glob("events.out.tfevents.*")
    assert path == sink.event_file
    host = re.escape(socket.gethostname())
    assert re.fullmatch(rf"events\.out\.tfevents\.\d{{10}}\.{host}\.\d{{20}}\.{os.getpid()}\.\d+\.lrmon", path.name)
    first, version, start, layout, *rows = records(path)
    assert first.file_version == version.file_version == "brain.Event:2" and version.step == 150
    assert start.step == 150 and start.session_log.status == start.session_log.START
    assert layout.step == 150 and layout.summary.value[0].tag == "custom_scalars__config__"
    assert [row.step for row in rows] == list(range(150, 160))
    assert {value.tag for value in rows[0].summary.value} == {"lr", "lrmon/phase", "loss"}
    sink.close()


def test_flush_fsyncs_everything_written_before_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sink = TensorBoardSink(tmp_path)
    sink.open(run_info())
    synced: list[int] = []  # the event file's size at each fsync of it
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        stat = os.fstat(fd)
        if (stat.st_dev, stat.st_ino) == (event.st_dev, event.st_ino):
            synced.append(stat.st_size)
        real_fsync(fd)

    event = os.stat(sink.event_file)
    monkeypatch.setattr(os, "fsync", fsync)
    sink.write_scalars(batches(CONFIG, 0, 64)[0])
    assert synced == []  # a write alone does not sync
    sink.flush()
    assert synced == [os.path.getsize(sink.event_file)]  # flushed to the OS, then synced, all of it
    assert len([r for r in records(sink.event_file) if r.HasField("summary")]) == 1 + 64  # the layout + 64 rows
    sink.close()


def test_close_releases_every_descriptor_and_is_idempotent(tmp_path: Path) -> None:
    before = open_fds()
    sink = TensorBoardSink(tmp_path)
    sink.open(run_info())
    sink.write_scalars(batches(CONFIG, 0, 64)[0])
    assert open_fds() - before  # the EventsWriter's file (and the sink's unlink watch)
    sink.close()
    sink.close()
    assert open_fds() - before == set()


def test_users_writer_file_removed_raises_and_disk_less_writer_gets_nothing(tmp_path: Path) -> None:
    from tensorboardX import SummaryWriter

    writer = SummaryWriter(str(tmp_path / "user"))
    sink = TensorBoardSink(writer)
    sink.open(run_info())
    assert sink.event_file is not None and sink.event_file.parent == tmp_path / "user"
    os.unlink(sink.event_file)
    finished, _, error = call_with_timeout(lambda: sink.write_scalars(batches(CONFIG, 0, 64)[0]), 10)
    assert finished and isinstance(error, FileNotFoundError)
    with pytest.raises(FileNotFoundError):
        sink.close()
    writer.close()

    quiet = SummaryWriter(str(tmp_path / "quiet"), write_to_disk=False)
    sink = TensorBoardSink(quiet)
    sink.open(run_info())
    sink.write_scalars(batches(CONFIG, 0, 64)[0])
    sink.flush()
    sink.close()
    assert sink.event_file is None and not (tmp_path / "quiet").exists()
