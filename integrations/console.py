"""``ConsoleSink``: a terminal progress bar of the run (step, LR, phase, your metrics) with events as lines.

The bar is a ``tqdm`` bar (``pip install 'lrmon[console]'``; imported when the sink opens, not before) written to
``sys.stderr`` unless ``file`` says otherwise. Its total is the schedule's ``total_steps``; past the end the count
goes on (``overrun``). The monitor hands sinks records in batches; the bar shows the last step of the latest batch.
The first values are drawn at once; after that tqdm redraws at most once per ``min_interval`` seconds, whatever the
step rate (its ``mininterval``: the newest values are drawn at the next chance and at :meth:`ConsoleSink.close`).
Each schedule event is printed as one line above the bar (``tqdm.write``), e.g.::

    [lrmon] cosine_start at step 100 (lr 0.001)
    train:  45%|████▌     | 450/1000 [00:02<00:02, 201.3step/s, lr=8.12e-04, phase=cosine, loss=0.4213]
"""

from __future__ import annotations

import sys
from typing import IO, Any, Sequence

from lrmon._optional import optional_import
from lrmon.sinks import Event, RunInfo, ScalarBatch, Sink
from lrmon.curve import PHASES
from lrmon.tags import PHASE_TAG

__all__ = ["ConsoleSink"]


def _format_number(value: float) -> str:
    if value != value or value in (float("inf"), float("-inf")):
        return str(value)
    if value == 0 or 1e-3 <= abs(value) < 1e4:
        return f"{value:.4g}"
    return f"{value:.3e}"


class ConsoleSink(Sink):
    """A tqdm progress bar of step, LR, phase and metrics; schedule events printed as lines above it.

    Args:
      file: where the bar and the event lines go (default ``sys.stderr``, looked up when the sink opens).
      metrics: the metric tags shown on the bar, in order (default: every metric the run logs, in the order they
        first appear).
      min_interval: the bar is redrawn at most once per this many seconds.
      desc: the bar's label.
      leave: keep the finished bar on screen after :meth:`close`.
      events: print schedule events (as ``[lrmon] <detail>`` lines).
    """

    def __init__(
        self,
        file: IO[str] | None = None,
        *,
        metrics: Sequence[str] | None = None,
        min_interval: float = 0.25,
        desc: str = "train",
        leave: bool = True,
        events: bool = True,
    ) -> None:
        if not min_interval >= 0:
            raise ValueError(f"min_interval must be >= 0 seconds, got {min_interval!r}")
        self._file = file
        self._metrics = None if metrics is None else tuple(metrics)
        self._min_interval = float(min_interval)
        self._desc = desc
        self._leave = leave
        self._print_events = events
        self._tqdm: Any = None
        self._bar: Any = None
        self._out: IO[str] | None = None
        self._lr_tags: tuple[str, ...] = ("lr",)
        self._phases: tuple[str, ...] = PHASES
        self._seen_metrics: list[str] = []
        self._values: dict[str, float] = {}

    @property
    def name(self) -> str:
        return "ConsoleSink"

    # -- Sink interface --------------------------------------------------------------------------------------
    def open(self, info: RunInfo) -> None:
        """Create the bar."""
        self._tqdm = optional_import("tqdm", needed_by="lrmon.integrations.console.ConsoleSink", extra="console")
        self._lr_tags = tuple(info.lr_tags) or ("lr",)
        self._phases = tuple(info.phases)
        total = info.config.get("total_steps")
        self._out = self._file if self._file is not None else sys.stderr
        self._bar = self._tqdm.tqdm(
            total=int(total) if isinstance(total, int) else None,
            initial=int(info.start_step),
            desc=self._desc,
            unit="step",
            file=self._out,
            leave=self._leave,
            dynamic_ncols=True,
            mininterval=self._min_interval,
            miniters=1,  # throttled in time only
        )

    def write_scalars(self, batch: ScalarBatch) -> None:
        """Take the newest value of each tag and advance the bar (tqdm redraws it when ``min_interval`` has passed)."""
        first = not self._values
        written = {tag: series for tag, series in batch.items() if len(series.steps)}
        if not written:
            return
        for tag, series in written.items():
            self._values[tag] = float(series.values[-1])
            if tag not in self._lr_tags and tag != PHASE_TAG and tag not in self._seen_metrics:
                self._seen_metrics.append(tag)
        bar = self._bar
        bar.set_postfix_str(self.postfix(), refresh=False)
        done = max(int(series.steps[-1]) for series in written.values()) + 1  # steps completed once it was recorded
        if bar.total is not None and done > bar.total:
            bar.total = done  # past total_steps: keep counting (the overrun event says so)
        bar.update(max(0, done - bar.n))
        if first:
            bar.refresh()

    def write_events(self, events: Sequence[Event]) -> None:
        """Print each event as a line above the bar (tqdm redraws the bar below it, with the newest values)."""
        if self._print_events:
            for event in events:
                self._tqdm.tqdm.write(f"[lrmon] {event.detail}", file=self._out)

    def flush(self) -> None:
        """Draw the newest values if ``min_interval`` has passed since the last redraw."""
        self._bar.update(0)

    def close(self) -> None:
        """Draw the final values and close the bar."""
        self._bar.close()

    # -- helpers ---------------------------------------------------------------------------------------------
    def postfix(self) -> str:
        """The text drawn after the bar: ``lr=..., phase=..., <metric>=...`` from the newest values."""
        parts = []
        lrs = [self._values[tag] for tag in self._lr_tags if tag in self._values]
        if lrs:
            parts.append("lr=" + "/".join(f"{lr:.3e}" for lr in lrs))
        if PHASE_TAG in self._values:
            phase = int(self._values[PHASE_TAG])
            parts.append(f"phase={self._phases[phase] if 0 <= phase < len(self._phases) else phase}")
        names = self._metrics if self._metrics is not None else self._seen_metrics
        parts += [f"{name}={_format_number(self._values[name])}" for name in names if name in self._values]
        return ", ".join(parts)
