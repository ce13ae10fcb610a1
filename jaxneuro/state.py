"""The state every model integrates: membrane voltage plus named gate-like states."""

from __future__ import annotations

import equinox as eqx
import jax
from jaxtyping import Array

from ._repr import values_repr


class State(eqx.Module):
    """Model state at one time.

    ``v``: membrane voltage in mV, shape ``()`` for one compartment or ``(n,)`` for a
    population or a cable's segments. ``gates``: every other ODE state by name (NEURON
    style, ``"m_hh"``, ``"w"``), each of the same shape as ``v``. The default solver
    advances ``v`` implicitly and each entry of ``gates`` by exponential Euler, which is
    exact for the usual ``dx/dt = (x_inf - x) / tau`` form. ``events``: bookkeeping that
    is not integrated but changed at events (spike buffers, refractory end times);
    float arrays whose time derivative is zero, so any ODE solver carries them along.
    """

    v: Array
    gates: dict[str, Array]
    events: dict[str, Array] = eqx.field(default_factory=dict)

    # Small arrays print as their numbers (v=-64.97), not f32[]: a State is printed on
    # its own (jn.steady_state's result) as well as inside a Trace.
    __repr__ = values_repr


def gate_leaves(gates: dict) -> dict:
    """``{path: array}`` of a (possibly nested: a network's, per population) dict of
    gates, ``path`` the tuple of its keys."""
    return {tuple(k.key for k in path): x for path, x in jax.tree_util.tree_flatten_with_path(gates)[0]}
