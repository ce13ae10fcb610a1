"""Hodgkin–Huxley squid axon channels: NEURON's ``hh`` mechanism."""

from __future__ import annotations

import math
from typing import ClassVar

import equinox as eqx
import jax.numpy as jnp

from .. import units
from .base import AbstractAlphaBetaChannel, exprel_ratio_of_exp


class HH(AbstractAlphaBetaChannel):
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
        # Five of hh.mod's six exponentials are powers of one, exp(-(v + 65)/10):
        # computing it once (and square roots of it) halves the cost of a step.
        u = -(v + 65.0)
        e10 = jnp.exp(u / 10.0)
        e20 = jnp.sqrt(e10)
        e80 = jnp.sqrt(jnp.sqrt(e20))
        return {
            # 0.1·vtrap(-(v+40), 10), exp(-(v+40)/10) = e10·e^2.5
            "m": (0.1 * exprel_ratio_of_exp(u + 25.0, 10.0, e10 * math.exp(2.5)),
                  4.0 * jnp.exp(u / 18.0)),
            # exp(-(v+35)/10) = e10·e^3
            "h": (0.07 * e20, 1.0 / (e10 * math.exp(3.0) + 1.0)),
            # 0.01·vtrap(-(v+55), 10), exp(-(v+55)/10) = e10·e
            "n": (0.01 * exprel_ratio_of_exp(u + 10.0, 10.0, e10 * math.e), 0.125 * e80),
        }

    def rate_factor(self, temperature):
        return units.q10_factor(self.q10, temperature, self.reference_temperature)

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
