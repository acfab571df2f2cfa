"""The synthetic regression problem and small MLP that ``optax_loop``, ``compiled_loop`` and ``clu_loop`` share.

Not an example itself: the examples import it (``from synthetic import ...``), which works because a script's own
folder is on ``sys.path`` when it runs as ``python examples/<name>.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np

if TYPE_CHECKING:
    from lrmon.integrations.wandb import WandbSink

DIM, HIDDEN, BATCH = 16, 64, 128


def make_data(n: int = 4096, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic regression problem: targets of a random teacher network plus a little noise.

    Made with NumPy: eager JAX random calls would each compile a small XLA program first.
    """
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, DIM)).astype(np.float32)
    teacher_in, teacher_out = rng.normal(size=(DIM, 16)) / np.sqrt(DIM), rng.normal(size=16) / 4.0
    y = np.tanh(x @ teacher_in) @ teacher_out + 0.05 * rng.normal(size=n)
    return x, y.astype(np.float32)


def init_params(seed: int = 1) -> dict[str, np.ndarray]:
    """The MLP's initial parameters (float32): a ``DIM -> HIDDEN`` tanh layer and a linear scalar output."""
    rng = np.random.default_rng(seed)
    return {"w1": (rng.normal(size=(DIM, HIDDEN)) / np.sqrt(DIM)).astype(np.float32),
            "b1": np.zeros(HIDDEN, np.float32),
            "w2": (rng.normal(size=HIDDEN) / np.sqrt(HIDDEN)).astype(np.float32), "b2": np.zeros((), np.float32)}


def predict(params: dict[str, jax.Array], x: jax.Array) -> jax.Array:
    """The MLP's output for a batch of inputs ``x`` (shape ``(n, DIM)`` -> ``(n,)``)."""
    return jnp.tanh(x @ params["w1"] + params["b1"]) @ params["w2"] + params["b2"]


def mse(params: dict[str, jax.Array], x: jax.Array, y: jax.Array) -> jax.Array:
    """The mean squared error of the MLP's predictions on ``(x, y)``."""
    return jnp.mean((predict(params, x) - y) ** 2)


def batch_of(step: jax.Array | int, n: int, size: int = BATCH) -> jax.Array:
    """The indices of step ``step``'s minibatch: ``size`` draws from ``range(n)``, a function of the step alone."""
    return jax.random.randint(jax.random.fold_in(jax.random.PRNGKey(2), step), (size,), 0, n)


def print_results(tb_dir: Path, wandb_sink: WandbSink | None, plot_out: Path) -> None:
    """Say where a run's records are: the TensorBoard logdir, the offline W&B run (if any), the plot command."""
    print(f"TensorBoard logdir: {tb_dir}\n"
          f"  open it:  tensorboard --logdir {tb_dir}  (Custom Scalars: one chart per quantity; Images: the LR-vs-loss figure)")
    if wandb_sink is not None:
        print(f"W&B offline run:    {wandb_sink.run_dir}\n  upload it: wandb sync {wandb_sink.run_dir}")
    print(f"plot it:  lrmon plot {tb_dir} --out {plot_out}")
