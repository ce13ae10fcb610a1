"""A single isopotential compartment: NEURON's one-segment section."""

from __future__ import annotations

import math

import equinox as eqx
import jax.numpy as jnp

from .. import units
from ..channels.base import AbstractChannel
from ..model import AbstractModel, population_shape
from ..state import State
from . import membrane
from .membrane import MA_PER_UF_TO_MV_PER_MS, NA_PER_UM2_TO_MA_PER_CM2  # noqa: F401 (re-exported)


class Compartment(AbstractModel):
    """An isopotential patch of membrane (a one-segment NEURON section).

    Geometry: ``length`` and ``diam`` in µm (a cylinder; its area is π·length·diam,
    the lateral surface, as NEURON computes it, without end caps), or an explicit
    ``area`` in µm². ``cm``: specific capacitance, µF/cm² (default 1). ``channels``: a
    sequence of :class:`~jaxneuro.channels.AbstractChannel`, each with a unique
    ``name``. ``temperature``: °C (default 6.3, NEURON's ``celsius``), used by channels
    with q10 scaling such as ``HH``; a temperature given explicitly (6.3 included) that
    differs from the own ``T`` of a channel that keeps one (the Bazhenov 2002 family,
    ``ICaT_HM1992``) warns, as it does not apply to that channel. ``n``: make a
    population of ``n`` independent compartments (any parameter may then carry a
    leading axis of size ``n``; scalars broadcast).

    Without ``n``, array-valued parameters make a population as well, of their
    broadcast shape (a population is any model whose parameters carry a leading axis):
    ``Compartment(length=20, diam=20, channels=[HH(gnabar=jnp.array([0.08, 0.12, 0.16]))])``
    is three compartments, one per ``gnabar`` (S/cm²; each value in its parameter's
    unit, as a scalar would be), and ``trace.v`` has shape ``(T, 3)``. Give ``n=3`` as
    well to have the size checked: a parameter of another length is then a ValueError.

    Seed 001's soma::

        jn.Compartment(length=100, diam=500, cm=1, channels=[jn.channels.Leak(g=1e-4, e=-70)])

    Record names: ``"v"`` (mV), ``"i_cap"`` (mA/cm²), ``"i_inj"`` (nA), ``"i_<channel>"``
    (mA/cm², e.g. ``"i_pas"``), component currents such as ``"ina_hh"``, and gate states
    such as ``"m_hh"``. Every recorded value is that of the state at the sample's time:
    currents are the membrane's at that voltage and those gates (``i_cap`` is
    ``cm·dv/dt`` there). NEURON's sample at time ``t`` holds the currents it computed
    for the step that ended at ``t``, from the state one step earlier, so its ``_ref_ina`` and
    ``_ref_i_pas`` equal these one sample later (compared at the same time they differ
    by one step's change, most around a spike); voltages and gates are the same in both.
    ``i_cap`` is not NEURON's: NEURON's ``_ref_i_cap`` is the step's difference
    quotient ``cm·(v(t) - v(t - dt))/dt``, which differs from the instantaneous
    ``cm·dv/dt`` by up to a third of its peak during an HH spike at dt = 0.025 ms; take
    it from the recorded voltages to compare with NEURON.
    """

    length: object = units.param(units.um, default=None, check="positive")
    diam: object = units.param(units.um, default=None, check="positive")
    area: object = units.param(units.um2, default=None, check="positive")
    cm: object = units.param(units.uF_per_cm2, default=1.0, check="positive")
    channels: tuple[AbstractChannel, ...] = ()
    temperature: object = units.param(units.celsius, default=membrane.TEMPERATURE_NOT_GIVEN)
    n: int | None = eqx.field(default=None, static=True, converter=units.as_count)

    def __post_init__(self):
        self.channels = membrane.check_channels("Compartment", self.channels)
        has_cyl = self.length is not None or self.diam is not None
        if self.area is not None and has_cyl:
            raise ValueError("Compartment: give either area or length and diam, not both")
        if self.area is None and (self.length is None or self.diam is None):
            raise ValueError(
                "Compartment: geometry missing; give length and diam (µm) or area (µm²)"
            )
        if self.n is not None:
            units.positive_int(self.n, "Compartment.n")
        temperature_given = membrane.temperature_given(self.temperature)
        super().__post_init__()
        self.check_shapes()
        if temperature_given:
            membrane.warn_own_temperatures("Compartment", self.channels, self.temperature)

    def check_shapes(self):
        """ValueError naming a parameter (own or a channel's) whose shape does not fit
        the population (``n``), as the constructor checks."""
        own = {k: getattr(self, k) for k in ("length", "diam", "area", "cm", "temperature")}
        membrane.check_parameter_shapes("Compartment", self.channels, own, self.n)

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
        return self.cm * self.surface_area * membrane.UF_PER_CM2_UM2_TO_NF

    @property
    def shape(self):
        return population_shape(self, self.n)

    # --- dynamics -------------------------------------------------------------------
    def init_state(self, v0):
        v = jnp.broadcast_to(jnp.asarray(v0, dtype=jnp.result_type(float)), self.shape)
        gates = {}
        for ch in self.channels:
            for key, value in membrane.steady_gates(ch, v, self.temperature).items():
                gates[key] = jnp.broadcast_to(value, self.shape)
        return State(v=v, gates=gates, events={})

    def ionic_current(self, state):
        """Total channel current density, mA/cm² (outward positive)."""
        return membrane.ionic_current(self.channels, state.v, state.gates)

    def vector_field(self, t, state, i_inj):
        i_density = i_inj * (NA_PER_UM2_TO_MA_PER_CM2 / self.surface_area)
        dv = membrane.dv_dt(i_density, self.ionic_current(state), self.cm)
        dgates = {}
        for ch in self.channels:
            dgates.update(membrane.gate_derivatives(ch, state.v, state.gates, self.temperature))
        return State(v=dv, gates=dgates)

    def gate_increments(self, v, gates, dt):
        """``{gate: change over dt}`` (``dt`` in ms, ``v`` in mV held fixed) for the
        gates of channels with first-order kinetics (:meth:`AbstractChannel.gate_inf_rate`),
        advanced exactly as NEURON's ``cnexp`` does; the default solver uses it and
        advances any other gates from :meth:`vector_field`."""
        out = {}
        for ch in self.channels:
            out.update(membrane.gate_increments(ch, v, gates, dt, self.temperature) or {})
        return out

    def gate_groups(self):
        """The gates the default solver advances together
        (:func:`~jaxneuro.morphology.membrane.coupled_gate_groups`)."""
        return membrane.coupled_gate_groups(self.channels, [self.temperature] * len(self.channels))

    # --- recording ------------------------------------------------------------------
    def observables(self):
        return ("v", "i_cap", "i_inj") + membrane.channel_observables(self.channels)

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
            value = membrane.observe_channel(ch, name, state.v, state.gates)
            if value is not None:
                return value
        raise ValueError(f"unknown record name {name!r}; this model records {self.observables()}")
