"""The train steps the benchmarks time, and their bare Python loops (no logging).

A monitored variant runs the same step function as its bare one; the Python loops share one compiled step.
"""

from __future__ import annotations

import math
import tempfile
from typing import Any, Callable

import numpy as np

from _harness import Variant

TOTAL_STEPS = 10_000_000  # schedule length: long enough that no variant runs past it
WARMUP_STEPS = 1_000
LOOP_FULL = dict(tiny_block=2048)  # the bare tiny loop's block, shared by the suites that compare against it
LOOP_QUICK = dict(tiny_block=64)


def block_until_ready(tree: Any) -> None:
    import jax

    jax.block_until_ready(tree)


def schedule(lr: float = 0.05):
    from lrmon import WarmupCosineSchedule

    return WarmupCosineSchedule(lr, WARMUP_STEPS, TOTAL_STEPS)


def monitor(schedule: Any, sinks: list[Any], tmp: str) -> Any:
    """An ``LRMonitor`` logging every step; its state files go under the run's temporary directory ``tmp``."""
    from lrmon import LRMonitor

    return LRMonitor(schedule, sinks, log_every=1, state_dir=tempfile.mkdtemp(prefix="state-", dir=tmp))


def tiny_arrays():
    """The tiny problem's weight and input (NumPy RNG: no compile per shape)."""
    import jax.numpy as jnp

    rng = np.random.default_rng(0)
    return (jnp.asarray(rng.normal(size=(64, 64)).astype(np.float32) * 0.1),
            jnp.asarray(rng.normal(size=(64, 64)).astype(np.float32) * 0.1))


def tiny_problem(schedule: Any):
    """A 64x64 matmul + tanh update with optax SGD on ``schedule``: ``step(w, opt_state) -> (w, opt_state, loss)``."""
    import jax.numpy as jnp
    import optax

    tx = optax.sgd(schedule)
    w0, x = tiny_arrays()

    def step(w, opt_state):
        h = jnp.tanh(w @ x)
        updates, opt_state = tx.update(h, opt_state, w)  # the update uses the schedule's LR at optax's count
        return optax.apply_updates(w, updates), opt_state, jnp.mean(h * h)

    def count_of(opt_state):
        return optax.tree_utils.tree_get(opt_state, "count")

    return step, count_of, w0, tx.init(w0)


_SHARED: dict[str, Any] = {}


def _shared_jit(key: str, make: Callable[[], tuple[Callable[..., Any], Any]]) -> tuple[Callable[..., Any], Any]:
    """One jitted step (and its initial state) per key, shared by a bare variant and its monitored ones: they run
    the same executable, and it compiles once."""
    import jax

    if key not in _SHARED:
        step, initial = make()
        _SHARED[key] = (jax.jit(step), initial)
    return _SHARED[key]


def _tiny_loop_step() -> tuple[Callable[..., Any], Any]:
    """The tiny step for the Python loops. Its optax SGD reads its own ``WarmupCosineSchedule``; each monitor gets
    another instance with the same configuration (the curve is a pure function of the step and the configuration,
    so the logged LR is the applied one)."""
    def make():
        step, _, w, opt_state = tiny_problem(schedule())
        return step, (w, opt_state)

    return _shared_jit("tiny", make)


class LoopBare(Variant):
    """The tiny step in a Python loop."""

    def __init__(self) -> None:
        self.schedule = schedule()
        self.step, (self.w, self.opt_state) = _tiny_loop_step()

    def run(self, n: int) -> None:
        step, w, opt_state = self.step, self.w, self.opt_state
        for _ in range(n):
            w, opt_state, loss = step(w, opt_state)
        block_until_ready((w, loss))
        self.w, self.opt_state = w, opt_state


class LoopMonitor(LoopBare):
    """The tiny loop with ``monitor.step(loss=loss)`` every step into ``sinks`` (default: a MemorySink)."""

    def __init__(self, tmp: str, sinks: list[Any] | None = None) -> None:
        from lrmon import MemorySink

        super().__init__()
        self.sink = MemorySink()
        self.monitor = monitor(self.schedule, [self.sink] if sinks is None else sinks, tmp)

    def run(self, n: int) -> None:
        step, w, opt_state, monitor_step = self.step, self.w, self.opt_state, self.monitor.step
        for _ in range(n):
            w, opt_state, loss = step(w, opt_state)
            monitor_step(loss=loss)
        block_until_ready((w, loss))
        self.w, self.opt_state = w, opt_state

    def trim(self) -> None:
        self.sink.clear()

    def close(self) -> None:
        self.monitor.close()


def _mlp_problem(hidden: int) -> tuple[Callable[..., Any], Any]:
    import jax
    import jax.numpy as jnp
    import optax

    tx = optax.sgd(schedule(0.01))
    rng = np.random.default_rng(2)
    sizes = [784, hidden, hidden, 10]
    params = [(jnp.asarray(rng.normal(size=(a, b)).astype(np.float32) / math.sqrt(a)), jnp.zeros((b,), jnp.float32))
              for a, b in zip(sizes[:-1], sizes[1:])]
    xs = jnp.asarray(rng.normal(size=(4, 128, 784)).astype(np.float32))
    ys = jnp.asarray(rng.integers(0, 10, size=(4, 128)).astype(np.int32))

    def loss_fn(params, x, y):
        for w, b in params[:-1]:
            x = jax.nn.relu(x @ w + b)
        w, b = params[-1]
        return optax.softmax_cross_entropy_with_integer_labels(x @ w + b, y).mean()

    def step(params, opt_state, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return step, (tx, params, xs, ys)


class MlpBare(Variant):
    """An MLP 784-512-512-10 (batch 128, 4 synthetic batches) trained with optax SGD on the lrmon schedule."""

    warm_cap = 16

    def __init__(self, hidden: int = 512) -> None:
        import jax.numpy as jnp

        self.schedule = schedule(0.01)
        self.step, (tx, params, self.xs, self.ys) = _shared_jit(f"mlp{hidden}", lambda: _mlp_problem(hidden))
        self.params = [(jnp.array(w), jnp.array(b)) for w, b in params]
        self.opt_state = tx.init(self.params)
        self.i = 0

    def _after_step(self, loss) -> None:
        pass

    def run(self, n: int) -> None:
        step, params, opt_state, after = self.step, self.params, self.opt_state, self._after_step
        xs, ys = self.xs, self.ys
        i = self.i
        for _ in range(n):
            params, opt_state, loss = step(params, opt_state, xs[i % 4], ys[i % 4])
            after(loss)
            i += 1
        block_until_ready((params, loss))
        self.params, self.opt_state, self.i = params, opt_state, i
