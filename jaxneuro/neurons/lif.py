"""Leaky integrate-and-fire neuron."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from .. import units
from ..state import State
from .base import AbstractSpikingNeuron


class LIF(AbstractSpikingNeuron):
    """Leaky integrate-and-fire: ``C·dV/dt = -gL·(V - EL) + I``.

    Absolute units: ``C`` nF, ``gL`` µS, potentials mV, ``t_ref`` ms, input nA (so
    ``tau_m = C/gL`` is in ms). When ``V`` crosses ``V_th`` a spike is recorded at the
    crossing time (found exactly inside the step), ``V`` is reset to ``V_reset`` and
    held there for ``t_ref``. ``V_spike`` is the value a recorded ``v`` shows at the end
    of a step in which the neuron spiked, as in seed 002's figure (it does not enter
    the dynamics: currents recorded at that sample, ``i_syn`` say, are those of the
    true voltage, not ``g·(E - V_spike)``); ``None`` shows the reset value. Only saved samples show it: with
    ``save_every`` longer than ``dt`` a spike in an earlier step of the interval is
    not drawn (its time is in ``trace.spikes`` all the same). ``V_th=inf`` gives a passive leaky
    integrator (seed 000's ``leakyIF`` without threshold).

    Defaults are seed 002's (C = 1, gL = 0.1, EL = -70, V_th = -55, V_reset = -75,
    V_spike = 20, t_ref = 2). ``n`` makes a population; ``spike_capacity`` is the number
    of spike times kept per neuron. Starts at ``EL`` unless ``v0`` is given.

    Density parameters are accepted as saiunit quantities (``C`` in µF/cm², ``gL`` in
    mS/cm²): they are multiplied by ``area`` (µm²; default 1 cm² = 1e8 µm² when a
    density is given), and a stimulus amplitude given as a current density (µA/cm²) is
    scaled by the same area, so seed 002's ``C = 1 µF/cm², gL = 0.1 mS/cm², I = 2
    µA/cm²`` gives its ISIs unchanged.

    From BrainPy's ``LIF`` (``tau·dV/dt = -(V - V_rest) + R·I``): ``EL = V_rest``,
    ``V_th = V_th`` (its ``V_threshold`` in some versions), ``V_reset = V_reset``,
    ``t_ref = tau_ref``, ``gL = 1/R`` (R in MΩ gives µS) and ``C = tau/R`` (ms/MΩ = nF).
    """

    C: object = units.param(units.nF, default=1.0, check="positive")
    gL: object = units.param(units.uS, default=0.1, check="nonnegative")
    EL: object = units.param(units.mV, default=-70.0)
    V_th: object = units.param(units.mV, default=-55.0, allow_inf=True)
    V_reset: object = units.param(units.mV, default=-75.0)
    V_spike: object = units.param(units.mV, default=20.0, optional=True)  # None: show the reset
    t_ref: object = units.param(units.ms, default=2.0, check="nonnegative")
    area: object = units.param(units.um2, default=None, check="positive")
    n: int | None = eqx.field(default=None, static=True, kw_only=True, converter=units.as_count)
    spike_capacity: int = eqx.field(default=100, static=True, kw_only=True, converter=units.as_count)
    surrogate: object = eqx.field(default=None, static=True, kw_only=True)
    skip_quiet_steps: bool = eqx.field(default=False, static=True, init=False, repr=False)

    def __post_init__(self):
        self._check_common()
        self._densities_to_absolute(
            {"C": (units.uF_per_cm2, "capacitance"), "gL": (units.S_per_cm2, "conductance")}
        )
        super().__post_init__()

    def __check_init__(self):
        self.check_shapes()
        if units.is_concrete(self.V_reset) and units.is_concrete(self.V_th):
            if not np.all(np.asarray(self.V_reset) < np.asarray(self.V_th)):
                raise ValueError(
                    f"LIF.V_reset must lie below V_th (mV), or the neuron fires again as soon as "
                    f"its refractory period ends; got V_reset={self.V_reset}, V_th={self.V_th}"
                )

    @property
    def tau_m(self):
        """Membrane time constant C/gL, ms."""
        return self.C / self.gL

    @property
    def default_v0(self):
        """Initial voltage (mV) when ``simulate`` gets no ``v0``: ``EL``."""
        return self.EL

    def threshold(self):
        return self.V_th

    def reset_voltage(self):
        return self.V_reset

    def refractory_period(self):
        return self.t_ref

    def display_voltage(self, v, spiked):
        if self.V_spike is None:
            return v
        return jnp.where(spiked > 0, self.V_spike, v)

    def init_state(self, v0):
        v = jnp.broadcast_to(jnp.asarray(v0, dtype=jnp.result_type(float)), self.shape)
        return State(v=v, gates={}, events=self._init_events())

    def leak_current(self, v):
        """Leak current, nA (outward positive)."""
        return self.gL * (v - self.EL)

    def vector_field(self, t, state, i_inj):
        dv = (i_inj - self.leak_current(state.v)) / self.C
        return State(v=dv, gates={}, events=self._zero_events(state.events))

    def observables(self):
        return ("v", "i_inj", "i_leak", "i_cap")

    def observe(self, name, t, state, i_inj):
        if name == "v":
            return self.display_voltage(state.v, state.events["spiked"])
        if name == "i_inj":
            return jnp.broadcast_to(i_inj, self.shape)
        if name == "i_leak":
            return self.leak_current(state.v)
        if name == "i_cap":
            # C·dv/dt: zero while the voltage is held at V_reset (refractory).
            held = state.events["ref_end"] > t
            return jnp.where(held, 0.0, i_inj - self.leak_current(state.v))
        raise ValueError(f"unknown record name {name!r}; LIF records {self.observables()}")

