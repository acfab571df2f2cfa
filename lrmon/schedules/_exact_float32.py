"""Exact float32 arithmetic for the braintools curves (:mod:`lrmon.schedules.braintools`).

braintools computes with Python floats (float64) and rounds to float32 where the value meets a JAX array or the
optimizer. These helpers reproduce that rounding in ``jax.numpy`` float32: double-float32 (Dekker) products,
powers by squaring in double-float32, and correctly rounded divisions by constants, each rounded to float32 once.
With NumPy they are the plain float64 operations.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Sequence

import jax.numpy as jnp
import numpy as np


def _split32(value: Any) -> tuple[Any, Any]:
    """Veltkamp's split of float32 ``value`` into two 12-bit halves (their products are exact in float32)."""
    scaled = value * np.float32(4097.0)
    high = scaled - (scaled - value)
    return high, value - high


def _mul2(a_hi: Any, a_lo: Any, b_hi: Any, b_lo: Any) -> tuple[Any, Any]:
    """The product of two double-float32 numbers ``hi + lo`` (Dekker), as a normalised ``(hi, lo)``."""
    product = a_hi * b_hi
    a1, a2 = _split32(a_hi)
    b1, b2 = _split32(b_hi)
    error = ((a1 * b1 - product) + a1 * b2 + a2 * b1) + a2 * b2
    error = error + (a_hi * b_lo + a_lo * b_hi)
    high = product + error
    return high, error - (high - product)


def _double32(value: float) -> tuple[np.float32, np.float32]:
    """A float64 as the sum of two float32s."""
    high = np.float32(value)
    return high, np.float32(value - float(high))


@functools.lru_cache(maxsize=256)
def _squarings(base: float) -> tuple[tuple[tuple[np.float32, np.float32], ...], float | None]:
    """``base ** 2**b`` (float64, as double-float32 pairs) for the bits ``b`` an int32 exponent can have, until the
    value saturates; and the saturated value (``0.0`` or ``inf``: each higher bit gives it) or ``None``."""
    pairs = []
    power = base
    for _ in range(31):
        if power == 1.0:
            return tuple(pairs), None
        if power == 0.0 or not math.isfinite(float(np.float32(power))):
            return tuple(pairs), (0.0 if power == 0.0 else math.inf)
        pairs.append(_double32(power))
        power = power * power
    return tuple(pairs), None


def _scaled_pow(xp: Any, coefficients: Sequence[float], base: float, exponent: Any) -> Any:
    """``coefficients[g] * base ** exponent`` for an integer array ``exponent >= 0``: shape ``exponent.shape + (G,)``.

    This is braintools' Python-float ``base_lr * gamma ** t``. NumPy: float64 (Python's ``float ** int`` is C
    ``pow``, as ``np.power``). ``jax.numpy``: the product over the set bits ``b`` of the exponent of ``base ** 2**b``
    in double-float32 arithmetic (about 48 bits), rounded to float32 once: braintools' float64 value rounded to
    float32, bitwise above ~1e-28 (where the low halves become subnormal).
    """
    if xp is np:
        return np.asarray(coefficients) * np.power(base, exponent.astype(np.float64))[..., None]
    pairs, saturated = _squarings(float(base))
    high = jnp.ones(exponent.shape, jnp.float32)
    low = jnp.zeros(exponent.shape, jnp.float32)
    for bit, (factor_hi, factor_lo) in enumerate(pairs):
        new_high, new_low = _mul2(high, low, factor_hi, factor_lo)
        selected = (exponent >> bit) & 1 == 1
        high, low = jnp.where(selected, new_high, high), jnp.where(selected, new_low, low)
    if saturated is not None:
        beyond = exponent >= 2 ** len(pairs)
        high, low = jnp.where(beyond, high * saturated, high), jnp.where(beyond, 0.0, low)
    split = [_double32(c) for c in coefficients]
    coefficient_hi = jnp.asarray([h for h, _ in split], jnp.float32)
    coefficient_lo = jnp.asarray([lo for _, lo in split], jnp.float32)
    result_hi, result_lo = _mul2(high[..., None], low[..., None], coefficient_hi, coefficient_lo)
    return result_hi + result_lo


def _divide(xp: Any, numerator: Any, denominator: float, offset: float = 0.0) -> Any:
    """``(numerator - offset) / denominator`` for an array numerator (integer, or float32 with ``offset == 0``) and
    constants ``offset`` and ``denominator``.

    ``jax.numpy``: the difference and the product by the reciprocal in double-float32 arithmetic, rounded once: the
    correctly rounded float32 quotient, i.e. braintools' float64 arithmetic rounded to float32 (and what its scalar
    float32 division gives), where XLA's vectorised float32 division may be an ulp off.
    """
    if xp is np:
        return (numerator - offset) / denominator if offset else numerator / denominator
    inverse_hi, inverse_lo = _double32(1.0 / denominator)
    if jnp.issubdtype(numerator.dtype, jnp.integer):
        high = numerator.astype(jnp.float32)
        low = (numerator - high.astype(numerator.dtype)).astype(jnp.float32)
    else:
        high, low = numerator, jnp.zeros_like(numerator)
    if offset:
        offset_hi, offset_lo = _double32(-offset)
        total = high + offset_hi  # Knuth's two-sum of high and -offset_hi
        virtual = total - high
        error = (high - (total - virtual)) + (offset_hi - virtual) + (low + offset_lo)
        high = total + error
        low = error - (high - total)
    result_hi, result_lo = _mul2(high, low, inverse_hi, inverse_lo)
    return result_hi + result_lo
