"""A single isopotential compartment: NEURON's one-segment section."""

from __future__ import annotations

import math
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp

from .. import units
from ..channels.base import AbstractChannel
from ..model import AbstractModel
from ..state import State

# 1 nA / 1 µm² = 100 mA/cm²: converts an injected current to a membrane current density.
NA_PER_UM2_TO_MA_PER_CM2 = 100.0
# (mA/cm²) / (µF/cm²) = 1000 mV/ms.
MA_PER_UF_TO_MV_PER_MS = 1000.0


class Compartment(AbstractModel):
    """An isopotential patch of membrane (a one-segment NEURON section).

    Geometry: ``length`` and ``diam`` in µm (a cylinder; its area is π·length·diam,
    the lateral surface, as NEURON computes it, without end caps), or an explicit
    ``area`` in µm². ``cm``: specific capacitance, µF/cm² (default 1). ``channels``: a
    sequence of :class:`~jaxneuro.channels.AbstractChannel`, each with a unique
    ``name``. ``temperature``: °C (default 6.3, NEURON's ``celsius``), used by channels
    with q10 scaling such as ``HH``. ``n``: make a population of ``n`` independent
    compartments (any parameter may then carry a leading axis of size ``n``; scalars
    broadcast).

    Seed 001's soma::

        jn.Compartment(length=100, diam=500, cm=1, channels=[jn.channels.Leak(g=1e-4, e=-70)])

    Record names: ``"v"`` (mV), ``"i_cap"`` (mA/cm²), ``"i_inj"`` (nA), ``"i_<channel>"``
    (mA/cm², e.g. ``"i_pas"``), component currents such as ``"ina_hh"``, and gate states
    such as ``"m_hh"``.
    """

    length: object = units.param(units.um, default=None, check="positive")
    diam: object = units.param(units.um, default=None, check="positive")
    area: object = units.param(units.um2, default=None, check="positive")
    cm: object = units.param(units.uF_per_cm2, default=1.0, check="positive")
    channels: tuple[AbstractChannel, ...] = ()
    temperature: object = units.param(units.celsius, default=6.3)
    n: int | None = eqx.field(default=None, static=True)

    def __post_init__(self):
        if isinstance(self.channels, AbstractChannel):
            self.channels = (self.channels,)
        if not isinstance(self.channels, Sequence):
            raise ValueError(
                f"Compartment.channels expects a sequence of channels, got {type(self.channels).__name__}"
            )
        self.channels = tuple(self.channels)
        for i, ch in enumerate(self.channels):
            if not isinstance(ch, AbstractChannel):
                raise ValueError(
                    f"Compartment.channels[{i}] expects a jaxneuro channel "
                    f"(e.g. jn.channels.Leak), got {type(ch).__name__}"
                )
        names = [ch.name for ch in self.channels]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(
                f"Compartment.channels: channel names must be unique, {dup} appear more "
                "than once; give one of them another name=..."
            )
        has_cyl = self.length is not None or self.diam is not None
        if self.area is not None and has_cyl:
            raise ValueError("Compartment: give either area or length and diam, not both")
        if self.area is None and (self.length is None or self.diam is None):
            raise ValueError(
                "Compartment: geometry missing; give length and diam (µm) or area (µm²)"
            )
        if self.n is not None and (not isinstance(self.n, int) or self.n < 1):
            raise ValueError(f"Compartment.n expects a positive integer, got {self.n!r}")
        super().__post_init__()

    # --- geometry -------------------------------------------------------------------
    @property
    def surface_area(self):
        """Membrane area in µm²."""
        if self.area is not None:
            return self.area
        return math.pi * self.length * self.diam

    @property
    def membrane_area(self):
        """Membrane area in µm² (density stimuli are scaled by it)."""
        return self.surface_area

    @property
    def capacitance(self):
        """Total membrane capacitance in nF (cm·area)."""
        return self.cm * self.surface_area * 1e-5  # µF/cm² · µm² = 1e-8 µF = 1e-5 nF

    @property
    def shape(self):
        if self.n is not None:
            return (self.n,)
        leaves = [x for x in jax.tree_util.tree_leaves(self) if hasattr(x, "shape")]
        return jnp.broadcast_shapes(*[x.shape for x in leaves]) if leaves else ()

    # --- dynamics -------------------------------------------------------------------
    def _gate_key(self, ch, gate):
        return f"{gate}_{ch.name}"

    def _gates_of(self, ch, gates):
        return {g: gates[self._gate_key(ch, g)] for g in ch.gate_names}

    def init_state(self, v0):
        v = jnp.broadcast_to(jnp.asarray(v0, dtype=jnp.result_type(float)), self.shape)
        gates = {}
        for ch in self.channels:
            for g, value in ch.steady_state(v, self.temperature).items():
                gates[self._gate_key(ch, g)] = jnp.broadcast_to(value, self.shape)
        return State(v=v, gates=gates, events={})

    def ionic_current(self, state):
        """Total channel current density, mA/cm² (outward positive)."""
        total = jnp.zeros_like(state.v)
        for ch in self.channels:
            total = total + ch.current(state.v, self._gates_of(ch, state.gates))
        return total

    def vector_field(self, t, state, i_inj):
        i_density = NA_PER_UM2_TO_MA_PER_CM2 * i_inj / self.surface_area
        dv = MA_PER_UF_TO_MV_PER_MS * (i_density - self.ionic_current(state)) / self.cm
        dgates = {}
        for ch in self.channels:
            d = ch.derivative(state.v, self._gates_of(ch, state.gates), self.temperature)
            for g, value in d.items():
                dgates[self._gate_key(ch, g)] = value
        return State(v=dv, gates=dgates)

    # --- recording ------------------------------------------------------------------
    def observables(self):
        names = ["v", "i_cap", "i_inj"]
        for ch in self.channels:
            names.append(f"i_{ch.name}")
            names += [f"{c}_{ch.name}" for c in _component_names(ch)]
            names += [self._gate_key(ch, g) for g in ch.gate_names]
        return tuple(names)

    def observe(self, name, t, state, i_inj):
        if name == "v":
            return state.v
        if name == "i_inj":
            return jnp.broadcast_to(i_inj, self.shape)
        if name == "i_cap":
            # cm·dv/dt: what flows onto the membrane capacitance, mA/cm².
            return self.cm * self.vector_field(t, state, i_inj).v / MA_PER_UF_TO_MV_PER_MS
        if name in state.gates:
            return state.gates[name]
        for ch in self.channels:
            gates = self._gates_of(ch, state.gates)
            if name == f"i_{ch.name}":
                return ch.current(state.v, gates)
            for c, value in ch.component_currents(state.v, gates).items():
                if name == f"{c}_{ch.name}":
                    return value
        raise ValueError(f"unknown record name {name!r}; this model records {self.observables()}")


def _component_names(ch):
    # Component names do not depend on the voltage; evaluate once at a dummy state.
    dummy = {g: 0.5 for g in ch.gate_names}
    return tuple(ch.component_currents(0.0, dummy))
