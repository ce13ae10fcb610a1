"""Hodgkin–Huxley squid axon channels: NEURON's ``hh`` mechanism."""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax.numpy as jnp

from .. import units
from .base import AbstractChannel, exprel_ratio


class HH(AbstractChannel):
    """NEURON's ``hh`` (hh.mod): sodium, potassium and leak in one mechanism.

    ``ina = gnabar·m³·h·(v - ena)``, ``ik = gkbar·n⁴·(v - ek)``, ``il = gl·(v - el)``;
    densities in mA/cm². Conductances in S/cm² (``gnabar`` 0.12, ``gkbar`` 0.036,
    ``gl`` 0.0003), potentials in mV (``el`` -54.3; ``ena`` 50 and ``ek`` -77 are
    NEURON's default ion reversal potentials). Rates are hh.mod's, scaled by
    ``q10 ** ((T - reference_temperature) / 10)`` with ``q10`` 3 from 6.3 °C at the
    compartment's temperature ``T``. Gates ``m``, ``h``, ``n``: recorded as
    ``"m_hh"``, ``"h_hh"``, ``"n_hh"``.
    """

    gnabar: object = units.param(units.S_per_cm2, default=0.12, check="nonnegative")
    gkbar: object = units.param(units.S_per_cm2, default=0.036, check="nonnegative")
    gl: object = units.param(units.S_per_cm2, default=0.0003, check="nonnegative")
    el: object = units.param(units.mV, default=-54.3)
    ena: object = units.param(units.mV, default=50.0)
    ek: object = units.param(units.mV, default=-77.0)
    q10: object = units.param(None, default=3.0, check="positive")
    reference_temperature: object = units.param(units.celsius, default=6.3)
    name: str = eqx.field(default="hh", static=True)

    gate_names: ClassVar[tuple[str, ...]] = ("m", "h", "n")

    def rates(self, v):
        """``{gate: (alpha, beta)}`` in 1/ms at ``reference_temperature``."""
        return {
            "m": (0.1 * exprel_ratio(-(v + 40.0), 10.0), 4.0 * jnp.exp(-(v + 65.0) / 18.0)),
            "h": (0.07 * jnp.exp(-(v + 65.0) / 20.0), 1.0 / (jnp.exp(-(v + 35.0) / 10.0) + 1.0)),
            "n": (0.01 * exprel_ratio(-(v + 55.0), 10.0), 0.125 * jnp.exp(-(v + 65.0) / 80.0)),
        }

    def gate_inf_tau(self, v, temperature):
        q = units.q10_factor(self.q10, temperature, self.reference_temperature)
        return {g: (a / (a + b), 1.0 / (q * (a + b))) for g, (a, b) in self.rates(v).items()}

    def component_currents(self, v, gates):
        """``{"ina", "ik", "il"}`` densities in mA/cm² (NEURON's names)."""
        m, h, n = gates["m"], gates["h"], gates["n"]
        return {
            "ina": self.gnabar * m**3 * h * (v - self.ena),
            "ik": self.gkbar * n**4 * (v - self.ek),
            "il": self.gl * (v - self.el),
        }

    def current(self, v, gates):
        c = self.component_currents(v, gates)
        return c["ina"] + c["ik"] + c["il"]
