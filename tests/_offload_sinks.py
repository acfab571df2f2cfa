"""Sinks for the ProcessSink tests: they run in the sink process, so they record to files the test reads."""

from __future__ import annotations

import json
import time
from pathlib import Path

from lrmon.sinks import Sink


class JsonlSink(Sink):
    """Appends every scalar row and event to a JSON-lines file; optionally slow, optionally failing."""

    def __init__(self, path: Path, *, seconds_per_batch: float = 0.0, fail_on_batch: int | None = None) -> None:
        self.path = Path(path)
        self.seconds_per_batch = seconds_per_batch
        self.fail_on_batch = fail_on_batch
        self.batches = 0

    def write_scalars(self, batch):
        self.batches += 1
        if self.fail_on_batch == self.batches:
            raise OSError("simulated tracker failure")
        time.sleep(self.seconds_per_batch)
        with open(self.path, "a") as file:
            for tag, series in batch.items():
                for step, value in zip(series.steps.tolist(), series.values.tolist()):
                    file.write(json.dumps({"tag": tag, "step": step, "value": value}) + "\n")

    def write_events(self, events):
        with open(self.path, "a") as file:
            for event in events:
                file.write(json.dumps({"event": event.kind, "step": event.step, "detail": event.detail}) + "\n")

    def save_state(self, path, step):
        with open(self.path, "a") as file:
            file.write(json.dumps({"state_step": step, "bytes": len(Path(path).read_bytes())}) + "\n")


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines()]
