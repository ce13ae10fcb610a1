"""The state every model integrates: membrane voltage plus named gate-like states."""

from __future__ import annotations

import equinox as eqx
from jaxtyping import Array


class State(eqx.Module):
    """Model state at one time.

    ``v``: membrane voltage in mV, shape ``()`` for one compartment or ``(n,)`` for a
    population or a cable's segments. ``gates``: every other ODE state by name (NEURON
    style, ``"m_hh"``, ``"w"``), each of the same shape as ``v``. The default solver
    advances ``v`` implicitly and each entry of ``gates`` by exponential Euler, which is
    exact for the usual ``dx/dt = (x_inf - x) / tau`` form.
    """

    v: Array
    gates: dict[str, Array]
