#!/usr/bin/env python
"""What ``lrmon.LRMonitor`` costs the tiny training loops, against the same loops without logging.

Run ``python benchmarks/loops.py [--quick] [--rounds N] [--only KEY,...]``; the last line is the JSON.

``tiny_loop``       a jitted 64x64 matmul + tanh update with optax SGD on the lrmon schedule, in a Python loop;
                    ``monitor.step(loss=loss)`` every step into a ``MemorySink`` (log_every=1).
``tiny_scan``       the same step as the body of ``lax.scan``; ``monitor.graph_record`` every step (ring buffer
                    in the carry, one host callback per ``graph_capacity`` steps).
``tiny_for_loop``   the same update in ``brainstate.transform.for_loop`` with a braintools SGD bound to the
                    schedule; bare steps the schedule itself, monitored calls ``monitor.graph_step(loss=...)``.
``tiny_for_loop_chunked`` ``monitor.for_loop``: the same brainstate update in compiled chunks of ``scan_block`` steps;
                    the monitor records the LR the schedule holds and steps it inside the loop, and the loss
                    and that LR leave as per-step outputs (no callback or branch in the body).
``tiny_scan_outputs`` the same scan, the body returning (count, loss) as per-step outputs that
                    ``monitor.record_many`` takes after each compiled block: no callback inside the loop.
``tiny_scan_chunked`` ``monitor.scan``: the same scan in compiled chunks of ``scan_block`` steps, the loss a
                    per-step output read on the courier's thread while the next chunk runs.
``tiny_loop_floor`` the physical floor of the host path on the same loop: the loss kept by reference
                    (``list.append``) and, every 256 steps (``lrmon.host_buffer.FETCH_CHUNK``), read in one stacked device call
                    (``lrmon.fetch.PendingScalars``, what the monitor's flush does) and freed in bulk.
``trivial_call``    a trivial jitted call (``x + 1``) in a Python loop, with ``monitor.step(loss=y)`` after each;
                    ``monitor_step_us`` is the monitor's own cost per step over it (the median difference).
``naive_loop``      the tiny Python-loop step with a ``jax.debug.callback`` per step writing (step, lr, loss) to a
                    ``MemorySink`` -- what users write themselves (baseline, not a goal).
``naive_scan``      the same callback inside the ``lax.scan`` body.
``host_read_loop``  the Lightning / Hugging Face style on the tiny loop: ``float(loss)`` and a tensorboardX
                    ``add_scalar`` of the loss and the LR per step (baseline, not a goal).
"""

from __future__ import annotations

import sys
from typing import Any, Callable

import numpy as np

import _harness
from _harness import Run, Suite, Variant
from _steps import (LOOP_FULL, LOOP_QUICK, LoopBare, LoopMonitor, block_until_ready, monitor, schedule, tiny_arrays,
                    tiny_problem)


def _naive_writer(sink: Any) -> Callable[..., None]:
    from lrmon.sinks import Series

    def write(step, lr, loss) -> None:
        steps = np.asarray([step], np.int64)
        sink.write_scalars({"lr": Series(steps, np.asarray([lr], np.float64)),
                            "loss": Series(steps, np.asarray([loss], np.float64))})

    return write


class _MemorySinkMixin:
    """A variant writing into ``self.sink``, a MemorySink, cleared before each block."""

    def _new_sink(self) -> Any:
        from lrmon import MemorySink

        self.sink = MemorySink()
        return self.sink

    def trim(self) -> None:
        self.sink.clear()


class LoopFloor(LoopBare):
    """The floor: each step's loss appended to a list; every ``FETCH_CHUNK`` steps (the monitor's stacked read of a
    default flush) one stacked read, then freed."""

    def run(self, n: int) -> None:
        from lrmon.fetch import PendingScalars
        from lrmon.host_buffer import FETCH_CHUNK

        step, w, opt_state, held = self.step, self.w, self.opt_state, []
        for _ in range(n):
            w, opt_state, loss = step(w, opt_state)
            held.append(loss)
            if len(held) == FETCH_CHUNK:
                PendingScalars(held, FETCH_CHUNK).result()
                held = []
        block_until_ready((w, loss))
        self.w, self.opt_state = w, opt_state


class CallBare(Variant):
    """A trivial jitted call (``x + 1``) in a Python loop."""

    def __init__(self) -> None:
        import jax
        import jax.numpy as jnp

        self.call, self.x = jax.jit(lambda x: x + 1.0), jnp.zeros((), jnp.float32)

    def run(self, n: int) -> None:
        call, x = self.call, self.x
        for _ in range(n):
            x = self._after(call(x))
        block_until_ready(x)
        self.x = x

    def _after(self, x):
        return x


class CallMonitor(_MemorySinkMixin, CallBare):
    """The trivial call with ``monitor.step(loss=y)`` after each."""

    def __init__(self, tmp: str) -> None:
        super().__init__()
        self.monitor = monitor(schedule(), [self._new_sink()], tmp)
        self._step = self.monitor.step

    def _after(self, x):
        self._step(loss=x)
        return x

    def close(self) -> None:
        self.monitor.close()


def monitor_step_us(run: Run) -> dict[str, Any]:
    """The monitor's own cost per ``step()`` (flushes included): median monitored minus median bare trivial call."""
    monitored, bare = run.median("call_monitor"), run.median("call_bare")
    return {"monitor_step_us": round((monitored - bare) * 1e6, 3), "trivial_call_us": round(bare * 1e6, 3)}


class LoopNaive(_MemorySinkMixin, LoopBare):
    """The tiny loop with a ``jax.debug.callback`` per step that writes (step, lr, loss) to a MemorySink."""

    warm_cap = 16

    def __init__(self) -> None:
        import jax

        super().__init__()
        step, count_of, _, _ = tiny_problem(self.schedule)
        lr_of, write = self.schedule, _naive_writer(self._new_sink())

        def logged_step(w, opt_state):
            count = count_of(opt_state)
            w, opt_state, loss = step(w, opt_state)
            jax.debug.callback(write, count, lr_of(count), loss)
            return w, opt_state, loss

        self.step = jax.jit(logged_step)


class LoopHostRead(LoopBare):
    """What the Lightning / Hugging Face callbacks do: a host read of the loss (``float(loss)``) and a tracker call
    per step (tensorboardX ``add_scalar`` of the loss and of the LR, the LR taken on the host)."""

    def __init__(self, tmp: str) -> None:
        from tensorboardX import SummaryWriter

        super().__init__()
        self.writer = SummaryWriter(tmp + "/hf-style", flush_secs=3600)
        self.t = 0

    def run(self, n: int) -> None:
        step, w, opt_state, add = self.step, self.w, self.opt_state, self.writer.add_scalar
        lrs = self.schedule.config.exact_lr_at(np.arange(self.t, self.t + n))[:, 0].tolist()
        for i in range(n):
            w, opt_state, loss = step(w, opt_state)
            add("loss", float(loss), self.t + i)
            add("lr", lrs[i], self.t + i)
        self.t += n
        block_until_ready((w, loss))
        self.w, self.opt_state = w, opt_state

    def close(self) -> None:
        self.writer.close()


class ScanBare(Variant):
    """The tiny step as a ``lax.scan`` body; one jitted call per block."""

    def __init__(self, block: int) -> None:
        import jax

        self.schedule = schedule()
        self.block = block
        self.step, self.count_of, w, opt_state = tiny_problem(self.schedule)
        step = self.step
        self.carry = self._initial_carry(w, opt_state)

        def body(carry, _):
            return self._body(step, carry), None

        self.call = jax.jit(lambda carry: jax.lax.scan(body, carry, None, length=block)[0])

    def _initial_carry(self, w, opt_state):
        import jax.numpy as jnp

        return (w, opt_state, jnp.zeros((), jnp.float32))

    def _body(self, step, carry):
        # the loss is carried out (as a training loop would use it), so XLA does not drop its computation
        w, opt_state, _ = carry
        return step(w, opt_state)

    def warm_up(self, block: int, steps: int) -> None:
        self.run(block)

    def run(self, n: int) -> None:
        assert n % self.block == 0, (n, self.block)
        carry = self.carry
        for _ in range(n // self.block):
            carry = self.call(carry)
        block_until_ready(carry)
        self.carry = carry


class ScanMonitor(_MemorySinkMixin, ScanBare):
    """``monitor.graph_record(buffer, count, loss=loss)`` every step of the scan body."""

    def __init__(self, block: int, tmp: str) -> None:
        self.monitor = monitor(schedule(), [self._new_sink()], tmp)
        super().__init__(block)

    def _initial_carry(self, w, opt_state):
        return (w, opt_state, self.monitor.graph_buffer(["loss"]))

    def _body(self, step, carry):
        w, opt_state, buffer = carry
        count = self.count_of(opt_state)
        w, opt_state, loss = step(w, opt_state)
        return (w, opt_state, self.monitor.graph_record(buffer, count, loss=loss))

    def close(self) -> None:
        import jax

        jax.effects_barrier()
        self.monitor.graph_drain(self.carry[2])
        self.monitor.close()


class ScanOutputs(_MemorySinkMixin, ScanBare):
    """The scan body returns (count, loss) as per-step outputs; ``monitor.record_many`` takes them after each
    compiled block (no callback inside the loop)."""

    def __init__(self, block: int, tmp: str) -> None:
        import jax

        self.monitor = monitor(schedule(), [self._new_sink()], tmp)
        super().__init__(block)

        def body(carry, _):
            w, opt_state, _ = carry
            count = self.count_of(opt_state)
            w, opt_state, loss = self.step(w, opt_state)
            return (w, opt_state, loss), (count, loss)

        self.call = jax.jit(lambda carry: jax.lax.scan(body, carry, None, length=block))

    def run(self, n: int) -> None:
        assert n % self.block == 0, (n, self.block)
        carry = self.carry
        for _ in range(n // self.block):
            carry, (counts, losses) = self.call(carry)
            self.monitor.record_many(counts, loss=losses)
        block_until_ready(carry)
        self.carry = carry

    def close(self) -> None:
        self.monitor.close()


class ScanChunked(_MemorySinkMixin, ScanBare):
    """``monitor.scan(body, carry, length=block, chunk=block)``: the body returns the loss as a per-step output;
    no callback and no branch inside the loop."""

    def __init__(self, block: int, tmp: str) -> None:
        self.monitor = monitor(schedule(), [self._new_sink()], tmp)
        super().__init__(block)

        def body(carry, _):
            carry = self._body(self.step, carry)
            return carry, {"loss": carry[2]}

        self.body = body

    def warm_up(self, block: int, steps: int) -> None:
        self.run(block)

    def run(self, n: int) -> None:
        self.carry = self.monitor.scan(self.body, self.carry, length=n, chunk=self.block)
        block_until_ready(self.carry)

    def close(self) -> None:
        self.monitor.close()


class ScanNaive(_MemorySinkMixin, ScanBare):
    """A ``jax.debug.callback`` per scan iteration into a MemorySink."""

    def __init__(self, block: int) -> None:
        self.write = _naive_writer(self._new_sink())
        super().__init__(block)

    def _body(self, step, carry):
        import jax

        w, opt_state, _ = carry
        count = self.count_of(opt_state)
        w, opt_state, loss = step(w, opt_state)
        jax.debug.callback(self.write, count, self.schedule(count), loss)
        return (w, opt_state, loss)

    def run(self, n: int) -> None:
        import jax

        super().run(n)
        jax.effects_barrier()


class ForLoopBare(Variant):
    """The tiny update in ``brainstate.transform.for_loop``: braintools SGD bound to the schedule (brainstate style).

    Bare steps the schedule itself (``schedule.step()``); monitored calls ``monitor.graph_step(loss=...)``, which
    records the LR the schedule holds and then steps it.
    """

    def __init__(self, block: int) -> None:
        import brainstate
        import braintools
        import jax.numpy as jnp

        self.block = block
        self.schedule = schedule()
        w0, x = tiny_arrays()
        self.weight = brainstate.ParamState(w0)
        self.optimizer = braintools.optim.SGD(lr=self.schedule)
        self.optimizer.register_trainable_weights({"w": self.weight})
        self._setup_logging()

        def train_step(i):
            h = jnp.tanh(self.weight.value @ x)
            self.optimizer.update({"w": h})
            loss = jnp.mean(h * h)
            self._log(loss)
            return loss

        self.train_step = train_step
        steps = jnp.arange(block)
        # one compiled program per block (a bare for_loop call traces and compiles again every time)
        self.call = brainstate.transform.jit(lambda: brainstate.transform.for_loop(train_step, steps))

    def _setup_logging(self) -> None:
        pass

    def _log(self, loss) -> None:
        self.schedule.step()

    def warm_up(self, block: int, steps: int) -> None:
        # brainstate compiles twice: its first call turns Python ints into arrays
        self.run(block)
        self.run(block)

    def run(self, n: int) -> None:
        assert n % self.block == 0, (n, self.block)
        for _ in range(n // self.block):
            losses = self.call()
        block_until_ready((losses, self.weight.value))


class ForLoopMonitor(_MemorySinkMixin, ForLoopBare):
    def __init__(self, block: int, tmp: str) -> None:
        self.tmp = tmp
        super().__init__(block)

    def _setup_logging(self) -> None:
        self.monitor = monitor(self.schedule, [self._new_sink()], self.tmp)
        self.monitor.init_graph_state(["loss"])

    def _log(self, loss) -> None:
        self.monitor.graph_step(loss=loss)

    def close(self) -> None:
        self.monitor.close()


class ForLoopChunked(_MemorySinkMixin, ForLoopBare):
    """``monitor.for_loop(body, length=n, chunk=block)``: the monitor records the LR the schedule holds and steps it
    inside the loop; the loss and that LR leave as per-step outputs (no callback and no branch in the body)."""

    def __init__(self, block: int, tmp: str) -> None:
        self.tmp = tmp
        super().__init__(block)
        self.body = lambda: {"loss": self.train_step(0)}

    def _setup_logging(self) -> None:
        self.monitor = monitor(self.schedule, [self._new_sink()], self.tmp)

    def _log(self, loss) -> None:
        pass  # the monitor steps the schedule

    def run(self, n: int) -> None:
        self.monitor.for_loop(self.body, length=n, chunk=self.block)
        block_until_ready(self.weight.value)

    def close(self) -> None:
        self.monitor.close()


def variants(run: Run) -> _harness.Factories:
    cfg, tmp = run.cfg, run.tmp
    scan, naive = cfg["scan_block"], cfg["naive_block"]
    return {
        "loop_bare": (LoopBare, cfg["tiny_block"]),
        "loop_monitor": (lambda: LoopMonitor(tmp), cfg["tiny_block"]),
        "loop_floor": (LoopFloor, cfg["tiny_block"]),
        "call_bare": (CallBare, cfg["call_block"]),
        "call_monitor": (lambda: CallMonitor(tmp), cfg["call_block"]),
        "loop_naive": (LoopNaive, naive),
        "loop_host_read": (lambda: LoopHostRead(tmp), naive),
        "scan_bare": (lambda: ScanBare(scan), scan),
        "scan_monitor": (lambda: ScanMonitor(scan, tmp), scan),
        "scan_outputs": (lambda: ScanOutputs(scan, tmp), scan),
        "scan_chunked": (lambda: ScanChunked(scan, tmp), scan),
        "scan_naive": (lambda: ScanNaive(naive * 2), naive * 2),
        "for_loop_bare": (lambda: ForLoopBare(scan), scan),
        "for_loop_monitor": (lambda: ForLoopMonitor(scan, tmp), scan),
        "for_loop_chunked": (lambda: ForLoopChunked(scan, tmp), scan),
    }


SUITE = Suite(
    full=dict(LOOP_FULL, scan_block=4096, naive_block=256, call_block=8192),
    quick=dict(LOOP_QUICK, scan_block=128, naive_block=16, call_block=256),
    pairs={
        "tiny_loop": ("loop_monitor", "loop_bare"),
        "tiny_loop_floor": ("loop_floor", "loop_bare"),
        "trivial_call": ("call_monitor", "call_bare"),
        "tiny_scan": ("scan_monitor", "scan_bare"),
        "tiny_scan_outputs": ("scan_outputs", "scan_bare"),
        "tiny_scan_chunked": ("scan_chunked", "scan_bare"),
        "tiny_for_loop": ("for_loop_monitor", "for_loop_bare"),
        "tiny_for_loop_chunked": ("for_loop_chunked", "for_loop_bare"),
        "naive_loop": ("loop_naive", "loop_bare"),
        "host_read_loop": ("loop_host_read", "loop_bare"),
        "naive_scan": ("scan_naive", "scan_bare"),
    },
    goals={"tiny_loop": 1.05, "tiny_scan": 1.05, "tiny_scan_outputs": 1.03, "tiny_scan_chunked": 1.05,
           "tiny_for_loop": 1.05, "tiny_for_loop_chunked": 1.05, "monitor_step_us": 0.8},
    variants=variants,
    measures={"monitor_step_us": monitor_step_us},
    needs={"monitor_step_us": "trivial_call"},
)

if __name__ == "__main__":
    sys.exit(_harness.main([SUITE], "lrmon loops benchmark"))
