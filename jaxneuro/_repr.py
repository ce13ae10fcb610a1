"""How models, channels, stimuli and couplings print: with their parameter values."""

from __future__ import annotations

import equinox as eqx
import jax
import numpy as np

#: Arrays of at most this many values print in full; larger ones as dtype[shape].
SHOWN_VALUES = 8


class _Value:
    """A small array written as its numbers, each the shortest decimal that reads back
    in the array's own precision (float32 0.12, not 0.11999999731779099)."""

    def __init__(self, value: np.ndarray):
        if value.ndim == 0:
            self.text = str(value)
        elif value.ndim == 1:
            self.text = "[" + ", ".join(str(v) for v in value) + "]"
        else:
            self.text = np.array2string(value, separator=", ")

    def __repr__(self):
        return self.text


def _shown(x):
    # NumPy arrays too: a host copy (jax.device_get) prints as the device one does.
    if (isinstance(x, (jax.Array, np.ndarray)) and not isinstance(x, jax.core.Tracer)
            and x.size <= SHOWN_VALUES):
        return _Value(np.asarray(x))
    return x


def values_repr(module) -> str:
    """Equinox's layout of ``module`` with small arrays written as numbers
    (``length=20.0`` instead of ``length=f64[]``); populations' long parameter arrays
    stay ``f64[1000]``."""
    return eqx.tree_pformat(jax.tree.map(_shown, module))

