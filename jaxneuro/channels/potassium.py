"""Potassium channels, as BrainPy has them.

``IKNI_Ya1989``: formulas and defaults from BrainPy's ``brainpy/_src/dyn/channels/
potassium_compatible.py`` (identical in ``potassium.py``). Units follow jaxneuro: mV,
ms, conductance densities in S/cm² (BrainPy's 0.004 mS/cm² is 4e-6 S/cm²), current
densities in mA/cm², outward positive.
"""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax.numpy as jnp

from .. import units
from .base import AbstractChannel

__all__ = ["IKNI_Ya1989"]


class IKNI_Ya1989(AbstractChannel):
    r"""Slow non-inactivating (M-type) potassium current of Yamada et al. (1989), BrainPy's ``IKNI_Ya1989``.

    .. math::

        I_M &= g_{max}\, p\, (V - E) \\
        \frac{dp}{dt} &= \phi_p \frac{p_\infty - p}{\tau_p} \\
        p_\infty &= \frac{1}{1 + \exp(-(V - V_{sh} + 35)/10)}, \quad
        \tau_p = \frac{\tau_{max}}{3.3 \exp((V - V_{sh} + 35)/20) + \exp(-(V - V_{sh} + 35)/20)}

    ``V`` in mV, ``tau`` in ms; :meth:`gate_inf_tau` returns the effective time
    constant ``tau_p / phi_p``. BrainPy's docs write ``dp/dt`` without ``phi_p``; its
    code multiplies by ``phi_p`` (default 1, so the two agree by default). BrainPy's
    constructor also accepts a ``phi_q`` that no equation uses; it is left out here.
    There is no temperature parameter: ``phi_p`` is fixed and the compartment's
    temperature is not used (a compartment, cable or cell given one explicitly warns).

    Parameters (BrainPy's defaults; its mS/cm² are given here in S/cm²; a saiunit
    quantity such as ``0.004 * u.mS / u.cm**2`` is converted automatically):

    - ``g_max``: maximal conductance density, S/cm² (default 4e-6 = 0.004 mS/cm²).
    - ``E``: potassium reversal potential, mV (default -90).
    - ``phi_p``: temperature factor, dimensionless (default 1).
    - ``tau_max``: time-constant scale, ms (default 4000 = 4 s).
    - ``V_sh``: voltage shift, mV (default 0).

    Gate ``p`` is recorded as ``"p_IKNI_Ya1989"``; :meth:`current` is a density in
    mA/cm², outward positive (BrainPy returns ``g·(E - V)``, inward positive).

    Reference: Yamada WM, Koch C, Adams PR (1989) Multiple channels and calcium
    dynamics. In: Methods in Neuronal Modeling, pp. 97–133.
    """

    g_max: object = units.param(units.S_per_cm2, default=4e-6, check="nonnegative")
    E: object = units.param(units.mV, default=-90.0)
    phi_p: object = units.param(None, default=1.0, check="positive")
    tau_max: object = units.param(units.ms, default=4000.0, check="positive")
    V_sh: object = units.param(units.mV, default=0.0)
    name: str = eqx.field(default="IKNI_Ya1989", static=True, kw_only=True)

    gate_names: ClassVar[tuple[str, ...]] = ("p",)

    def p_inf(self, v):
        return 1.0 / (1.0 + jnp.exp(-(v - self.V_sh + 35.0) / 10.0))

    def p_tau(self, v):
        """BrainPy's ``tau_p`` (ms), before ``phi_p``."""
        x = v - self.V_sh + 35.0
        return self.tau_max / (3.3 * jnp.exp(x / 20.0) + jnp.exp(-x / 20.0))

    def gate_inf_tau(self, v, temperature):
        return {"p": (self.p_inf(v), self.p_tau(v) / self.phi_p)}

    def fixed_speed(self):
        return "phi_p"

    def current(self, v, gates):
        return self.g_max * gates["p"] * (v - self.E)
