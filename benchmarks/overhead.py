#!/usr/bin/env python
"""What ``lrmon.LRMonitor`` costs a training loop: every benchmark, interleaved, in one run.

Run ``python benchmarks/overhead.py`` (about 2 minutes on a 2-core CPU machine) or ``--quick`` (tiny blocks, two
rounds, no in-process tracker variants: ~30 s, mostly imports, compiles and starting and stopping the trackers; for
the smoke test, the numbers are then not meaningful). ``--only KEY,...`` measures some keys; ``--rounds N``.
No timing is asserted here; the last line of the output is one JSON object with the ratios (monitored / bare
per-step time, medians over rounds) and the one-off measurements.

What each key measures is documented where it is measured, and each of these runs alone too:

* ``benchmarks/loops.py``: ``tiny_loop``, ``tiny_scan``, ``tiny_scan_outputs``, ``tiny_for_loop``, ``naive_loop``,
  ``naive_scan``;
* ``benchmarks/trackers.py``: ``tiny_full``, ``realistic_full``, ``tiny_full_inprocess``,
  ``realistic_full_inprocess`` and the tracker rows' cost;
* ``benchmarks/preview.py``: ``preview_1m_s``;
* ``benchmarks/memory.py``: ``rss_growth_mb_1m``;
* ``benchmarks/_harness.py``: how the rounds are timed, ``min_ratios`` and ``cpu_ratios``.
"""

from __future__ import annotations

import sys

import _harness
import loops
import memory
import preview
import trackers

SUITES = [loops.SUITE, trackers.SUITE, preview.SUITE, memory.SUITE]

if __name__ == "__main__":
    sys.exit(_harness.main(SUITES, "lrmon overhead benchmark"))
