"""Calcium channels, as BrainPy has them.

``ICaT_HM1992``: formulas and defaults from BrainPy's ``brainpy/_src/dyn/channels/
calcium.py``. Units follow jaxneuro: mV, ms, conductance densities in S/cm² (BrainPy's
mS/cm² defaults are converted: 2 mS/cm² is 0.002 S/cm²), current densities in mA/cm²,
outward positive.
"""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax.numpy as jnp

from .. import units
from .base import AbstractChannel

__all__ = ["ICaT_HM1992"]


class ICaT_HM1992(AbstractChannel):
    r"""Low-threshold T-type calcium current of Huguenard & McCormick (1992), BrainPy's ``ICaT_HM1992``.

    .. math::

        I_{CaT} &= g_{max}\, p^2 q\, (V - E) \\
        \frac{dp}{dt} &= \phi_p \frac{p_\infty - p}{\tau_p}, \quad
        \frac{dq}{dt} = \phi_q \frac{q_\infty - q}{\tau_q} \\
        p_\infty &= \frac{1}{1 + \exp(-(V + 59 - V_{sh})/6.2)}, \quad
        \tau_p = 0.612 + \frac{1}{\exp(-(V + 132 - V_{sh})/16.7) + \exp((V + 16.8 - V_{sh})/18.2)} \\
        q_\infty &= \frac{1}{1 + \exp((V + 83 - V_{sh})/4)}, \quad
        \tau_q = \begin{cases}
            \exp((V + 467 - V_{sh})/66.6) & V < -80 + V_{sh} \\
            \exp(-(V + 22 - V_{sh})/10.5) + 28 & V \ge -80 + V_{sh}
        \end{cases}

    with :math:`\phi_p = T_{base,p}^{(T-24)/10}` and :math:`\phi_q = T_{base,q}^{(T-24)/10}`
    unless ``phi_p`` / ``phi_q`` are given (BrainPy's rule). ``V`` in mV, ``tau`` in ms;
    :meth:`gate_inf_tau` returns the effective time constants ``tau_p / phi_p`` and
    ``tau_q / phi_q``. Note the sign of the shift: ``V_sh`` enters as ``V - V_sh``
    inside ``V + 59 - V_sh`` etc., exactly as BrainPy writes it. ``tau_q`` is
    discontinuous at ``V = -80 + V_sh`` (about 334 ms below, 279 ms above with the
    defaults), as in BrainPy and the original paper.

    Reversal potential: BrainPy takes :math:`E_{Ca}` from the calcium ion model the
    channel is attached to. Here it is a fixed parameter ``E`` whose default, 120 mV,
    is that of BrainPy's ``CalciumFixed`` ion; there is no calcium concentration
    dynamics in this channel.

    Parameters (BrainPy's defaults; its mS/cm² are given here in S/cm²; a saiunit
    quantity such as ``2 * u.mS / u.cm**2`` is converted automatically):

    - ``g_max``: maximal conductance density, S/cm² (default 0.002 = 2 mS/cm²).
    - ``E``: calcium reversal potential, mV (default 120, BrainPy's ``CalciumFixed``).
    - ``V_sh``: voltage shift, mV (default -3).
    - ``T``: temperature, °C (default 36); the channel uses its own ``T``, not the
      compartment's temperature (a compartment, cable or cell given another
      ``temperature`` explicitly warns: pass ``T=`` here too).
    - ``T_base_p``, ``T_base_q``: bases of the temperature factors, dimensionless
      (defaults 3.55 and 3).
    - ``phi_p``, ``phi_q``: temperature factors, dimensionless (default ``None``:
      computed from ``T``); when given they override the computed ones, as in BrainPy.

    Gates ``p`` and ``q`` are recorded as ``"p_ICaT_HM1992"`` and ``"q_ICaT_HM1992"``;
    :meth:`current` is a density in mA/cm², outward positive (BrainPy returns
    ``g·(E - V)``, inward positive).

    Reference: Huguenard JR, McCormick DA (1992) Simulation of the currents involved in
    rhythmic oscillations in thalamic relay neurons. J Neurophysiol 68:1373–1383.
    """

    g_max: object = units.param(units.S_per_cm2, default=0.002, check="nonnegative")
    E: object = units.param(units.mV, default=120.0)
    V_sh: object = units.param(units.mV, default=-3.0)
    T: object = units.param(units.celsius, default=36.0)
    T_base_p: object = units.param(None, default=3.55, check="positive")
    T_base_q: object = units.param(None, default=3.0, check="positive")
    phi_p: object = units.param(None, default=None, check="positive")
    phi_q: object = units.param(None, default=None, check="positive")
    name: str = eqx.field(default="ICaT_HM1992", static=True, kw_only=True)

    gate_names: ClassVar[tuple[str, ...]] = ("p", "q")

    def own_temperature(self):
        """``T`` (°C); none where both ``phi_p`` and ``phi_q`` are given, which set the
        kinetics' speed regardless of any temperature."""
        return self.T if self.phi_p is None or self.phi_q is None else None

    def fixed_speed(self):
        return None if self.phi_p is None or self.phi_q is None else "phi_p and phi_q"

    def temperature_factors(self):
        """``(phi_p, phi_q)``: given values, else ``T_base ** ((T - 24) / 10)``."""
        phi_p = self.T_base_p ** ((self.T - 24.0) / 10.0) if self.phi_p is None else self.phi_p
        phi_q = self.T_base_q ** ((self.T - 24.0) / 10.0) if self.phi_q is None else self.phi_q
        return phi_p, phi_q

    def p_inf(self, v):
        return 1.0 / (1.0 + jnp.exp(-(v + 59.0 - self.V_sh) / 6.2))

    def p_tau(self, v):
        """BrainPy's ``tau_p`` (ms), before the temperature factor."""
        return 1.0 / (jnp.exp(-(v + 132.0 - self.V_sh) / 16.7)
                      + jnp.exp((v + 16.8 - self.V_sh) / 18.2)) + 0.612

    def q_inf(self, v):
        return 1.0 / (1.0 + jnp.exp((v + 83.0 - self.V_sh) / 4.0))

    def q_tau(self, v):
        """BrainPy's ``tau_q`` (ms), before the temperature factor."""
        return jnp.where(v >= -80.0 + self.V_sh,
                         jnp.exp(-(v + 22.0 - self.V_sh) / 10.5) + 28.0,
                         jnp.exp((v + 467.0 - self.V_sh) / 66.6))

    def gate_inf_tau(self, v, temperature):
        phi_p, phi_q = self.temperature_factors()
        return {
            "p": (self.p_inf(v), self.p_tau(v) / phi_p),
            "q": (self.q_inf(v), self.q_tau(v) / phi_q),
        }

    def current(self, v, gates):
        return self.g_max * gates["p"] ** 2 * gates["q"] * (v - self.E)
