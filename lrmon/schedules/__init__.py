"""Learning-rate curves beyond warmup + cosine, under the one protocol the monitor reads (:mod:`._protocol`).

* :mod:`lrmon.schedules.optax`: optax's schedule constructors, by optax's names and signatures, returning optax
  schedules (callables) that also carry their phases and events;
* :mod:`lrmon.schedules.braintools`: the curve of each braintools scheduler, read from its public attributes.
"""

from lrmon.schedules._protocol import CURVE_KEY, Curve, curve_from_dict, curve_names, register

__all__ = ["Curve", "CURVE_KEY", "curve_from_dict", "curve_names", "register"]
