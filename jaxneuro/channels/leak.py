"""Passive leak: NEURON's ``pas``."""

from __future__ import annotations

import equinox as eqx

from .. import units
from .base import AbstractChannel


class Leak(AbstractChannel):
    """NEURON's ``pas``: ``i = g·(v - e)``.

    ``g``: conductance density, S/cm² (NEURON default 0.001); ``e``: reversal
    potential, mV (default -70). ``name`` defaults to ``"pas"``, so its current is
    recorded as ``"i_pas"`` as in NEURON.
    """

    g: object = units.param(units.S_per_cm2, default=0.001, check="nonnegative")
    e: object = units.param(units.mV, default=-70.0)
    name: str = eqx.field(default="pas", static=True, kw_only=True)

    def steady_state(self, v, temperature):
        return {}

    def derivative(self, v, gates, temperature):
        return {}

    def current(self, v, gates):
        return self.g * (v - self.e)
