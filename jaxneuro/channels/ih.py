"""Hyperpolarization-activated cation (h) channels, as BrainPy has them.

``Ih_HM1992``: formulas and defaults from BrainPy's ``brainpy/_src/dyn/channels/
hyperpolarization_activated.py``. Units follow jaxneuro: mV, ms, conductance densities
in S/cm² (BrainPy's 10 mS/cm² is 0.01 S/cm²), current densities in mA/cm², outward
positive.
"""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax.numpy as jnp

from .. import units
from .base import AbstractChannel

__all__ = ["Ih_HM1992"]


class Ih_HM1992(AbstractChannel):
    r"""Hyperpolarization-activated cation current of Huguenard & McCormick (1992), BrainPy's ``Ih_HM1992``.

    .. math::

        I_h &= g_{max}\, p\, (V - E) \\
        \frac{dp}{dt} &= \phi \frac{p_\infty - p}{\tau_p} \\
        p_\infty &= \frac{1}{1 + \exp((V + 75)/5.5)}, \quad
        \tau_p = \frac{1}{\exp(-0.086 V - 14.59) + \exp(0.0701 V - 1.87)}

    ``V`` in mV, ``tau`` in ms; :meth:`gate_inf_tau` returns the effective time
    constant ``tau_p / phi``. BrainPy's docs write :math:`I_h = g_{max} p` (no driving
    force); its code multiplies by the driving force, as here. The kinetics have no
    voltage shift and no temperature parameter: ``phi`` is fixed and the compartment's
    temperature is not used (a compartment, cable or cell given one explicitly warns).

    Parameters (BrainPy's defaults; its mS/cm² are given here in S/cm²; a saiunit
    quantity such as ``10 * u.mS / u.cm**2`` is converted automatically):

    - ``g_max``: maximal conductance density, S/cm² (default 0.01 = 10 mS/cm²).
    - ``E``: reversal potential, mV (default 43, BrainPy's value; note that Huguenard
      & McCormick (1992) give -43 mV for I_h, so pass ``E=-43.0`` to follow the paper).
    - ``phi``: temperature factor, dimensionless (default 1).

    Gate ``p`` is recorded as ``"p_Ih_HM1992"``; :meth:`current` is a density in
    mA/cm², outward positive (BrainPy returns ``g·(E - V)``, inward positive).

    Reference: Huguenard JR, McCormick DA (1992) Simulation of the currents involved in
    rhythmic oscillations in thalamic relay neurons. J Neurophysiol 68:1373–1383.
    """

    g_max: object = units.param(units.S_per_cm2, default=0.01, check="nonnegative")
    E: object = units.param(units.mV, default=43.0)
    phi: object = units.param(None, default=1.0, check="positive")
    name: str = eqx.field(default="Ih_HM1992", static=True, kw_only=True)

    gate_names: ClassVar[tuple[str, ...]] = ("p",)

    def p_inf(self, v):
        return 1.0 / (1.0 + jnp.exp((v + 75.0) / 5.5))

    def p_tau(self, v):
        """BrainPy's ``tau_p`` (ms), before ``phi``."""
        return 1.0 / (jnp.exp(-0.086 * v - 14.59) + jnp.exp(0.0701 * v - 1.87))

    def fixed_speed(self):
        return "phi"

    def gate_inf_tau(self, v, temperature):
        return {"p": (self.p_inf(v), self.p_tau(v) / self.phi)}

    def current(self, v, gates):
        return self.g_max * gates["p"] * (v - self.E)
