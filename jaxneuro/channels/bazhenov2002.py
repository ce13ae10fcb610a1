"""Bazhenov et al. (2002) sodium and delayed-rectifier potassium channels, as BrainPy has them.

Formulas and defaults are BrainPy's ``INa_Ba2002`` (``brainpy/_src/dyn/channels/
sodium_compatible.py``) and ``IKDR_Ba2002`` (``brainpy/_src/dyn/channels/
potassium_compatible.py``). Units follow jaxneuro: mV, ms, conductance densities in
S/cm² (BrainPy writes mS/cm²: its ``g_max = 90`` is ``0.09`` here), current densities
in mA/cm², outward positive (BrainPy returns ``g·(E - V)``, inward positive; ours is
``g·(V - E)``, the same current with NEURON's sign).

Reference: Bazhenov M, Timofeev I, Steriade M, Sejnowski TJ (2002) Model of
thalamocortical slow-wave sleep oscillations and transitions to activated states.
J Neurosci 22:8691–8704.
"""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax.numpy as jnp

from .. import units
from .base import AbstractAlphaBetaChannel, exprel_ratio

__all__ = ["INa_Ba2002", "IKDR_Ba2002"]


class INa_Ba2002(AbstractAlphaBetaChannel):
    r"""Sodium current of Bazhenov et al. (2002), BrainPy's ``INa_Ba2002``.

    .. math::

        I_{Na} &= g_{max}\, p^3 q\, (V - E) \\
        \frac{dp}{dt} &= \phi\,(\alpha_p (1-p) - \beta_p p), \quad
        \frac{dq}{dt} = \phi\,(\alpha_q (1-q) - \beta_q q) \\
        \alpha_p &= \frac{0.32\,(V - V_{sh} - 13)}{1 - \exp(-(V - V_{sh} - 13)/4)}, \quad
        \beta_p = \frac{-0.28\,(V - V_{sh} - 40)}{1 - \exp((V - V_{sh} - 40)/5)} \\
        \alpha_q &= 0.128 \exp(-(V - V_{sh} - 17)/18), \quad
        \beta_q = \frac{4}{1 + \exp(-(V - V_{sh} - 40)/5)}

    with :math:`\phi = 3^{(T - 36)/10}`. Rates in 1/ms, ``V`` in mV. BrainPy's docs page
    writes ``h`` in the ``dq/dt`` equation where ``q`` is meant and omits the driving
    force; its code uses ``q`` and multiplies by ``(E - V)`` (inward positive, µA/cm²
    with its mS/cm²), this module by ``(V - E)`` (outward positive, mA/cm²): BrainPy's
    ``current(V)`` is ``-1000`` times :meth:`current` here (at ``V = 0``, ``p = 0.5``,
    ``q = 0.8``: 450 there, -0.45 here).
    The removable singularities of ``alpha_p`` (at ``V = V_sh + 13``) and ``beta_p``
    (at ``V = V_sh + 40``) are evaluated with :func:`exprel_ratio`, so values and
    gradients stay finite there.

    Parameters (BrainPy's defaults; its mS/cm² are given here in S/cm²; a saiunit
    quantity such as ``90 * u.mS / u.cm**2`` is converted automatically):

    - ``g_max``: maximal conductance density, S/cm² (default 0.09 = 90 mS/cm²).
    - ``E``: sodium reversal potential, mV (default 50).
    - ``T``: temperature, °C (default 36). This channel uses its own ``T``, not the
      compartment's temperature (a compartment, cable or cell given another
      ``temperature`` explicitly warns: pass ``T=`` here too).
    - ``V_sh``: voltage shift, mV (default -50).

    Gates ``p`` and ``q`` are recorded as ``"p_INa_Ba2002"`` and ``"q_INa_Ba2002"``;
    :meth:`current` is a density in mA/cm², outward positive.
    """

    g_max: object = units.param(units.S_per_cm2, default=0.09, check="nonnegative")
    E: object = units.param(units.mV, default=50.0)
    T: object = units.param(units.celsius, default=36.0)
    V_sh: object = units.param(units.mV, default=-50.0)
    name: str = eqx.field(default="INa_Ba2002", static=True, kw_only=True)

    gate_names: ClassVar[tuple[str, ...]] = ("p", "q")

    @property
    def phi(self):
        """Temperature factor ``3 ** ((T - 36) / 10)`` (dimensionless)."""
        return 3.0 ** ((self.T - 36.0) / 10.0)

    def rates(self, v):
        """``{gate: (alpha, beta)}`` in 1/ms, before the temperature factor."""
        x = v - self.V_sh
        return {
            # 0.32·t/(1 - exp(-t/4)) = 0.32·(-t)/(exp(-t/4) - 1), t = V - V_sh - 13
            "p": (0.32 * exprel_ratio(-(x - 13.0), 4.0),
                  # -0.28·t/(1 - exp(t/5)) = 0.28·t/(exp(t/5) - 1), t = V - V_sh - 40
                  0.28 * exprel_ratio(x - 40.0, 5.0)),
            "q": (0.128 * jnp.exp(-(x - 17.0) / 18.0),
                  4.0 / (1.0 + jnp.exp(-(x - 40.0) / 5.0))),
        }

    def rate_factor(self, temperature):
        return self.phi

    def own_temperature(self):
        return self.T

    def current(self, v, gates):
        return self.g_max * gates["p"] ** 3 * gates["q"] * (v - self.E)


class IKDR_Ba2002(AbstractAlphaBetaChannel):
    r"""Delayed-rectifier potassium current of Bazhenov et al. (2002), BrainPy's ``IKDR_Ba2002``.

    .. math::

        I_{K} &= g_{max}\, p^4 (V - E) \\
        \frac{dp}{dt} &= \phi\,(\alpha_p (1-p) - \beta_p p) \\
        \alpha_p &= \frac{0.032\,(V - V_{sh} - 15)}{1 - \exp(-(V - V_{sh} - 15)/5)}, \quad
        \beta_p = 0.5 \exp(-(V - V_{sh} - 10)/40)

    with :math:`\phi = T_{base}^{(T - 36)/10}` unless ``phi`` is given (BrainPy's rule).
    Rates in 1/ms, ``V`` in mV. BrainPy's docs write :math:`\phi = 3^{(T-36)/10}` (its
    default ``T_base``) and omit the driving force, which its code takes as ``(E - V)``
    (inward positive, µA/cm²: ``-1000`` times :meth:`current` here). The
    removable singularity of ``alpha_p`` at ``V = V_sh + 15`` is evaluated with
    :func:`exprel_ratio` (finite value and gradient).

    Parameters (BrainPy's defaults; its mS/cm² are given here in S/cm²; a saiunit
    quantity such as ``10 * u.mS / u.cm**2`` is converted automatically):

    - ``g_max``: maximal conductance density, S/cm² (default 0.01 = 10 mS/cm²).
    - ``E``: potassium reversal potential, mV (default -90).
    - ``V_sh``: voltage shift, mV (default -50).
    - ``T``: temperature, °C (default 36); the channel uses its own ``T``, not the
      compartment's temperature (a compartment, cable or cell given another
      ``temperature`` explicitly warns: pass ``T=`` here too).
    - ``T_base``: Q10-like base of the temperature factor, dimensionless (default 3).
    - ``phi``: temperature factor, dimensionless (default ``None``: computed from ``T``
      and ``T_base``); when given it overrides them, as in BrainPy.

    Gate ``p`` is recorded as ``"p_IKDR_Ba2002"``; :meth:`current` is a density in
    mA/cm², outward positive.
    """

    g_max: object = units.param(units.S_per_cm2, default=0.01, check="nonnegative")
    E: object = units.param(units.mV, default=-90.0)
    V_sh: object = units.param(units.mV, default=-50.0)
    T: object = units.param(units.celsius, default=36.0)
    T_base: object = units.param(None, default=3.0, check="positive")
    phi: object = units.param(None, default=None, check="positive")
    name: str = eqx.field(default="IKDR_Ba2002", static=True, kw_only=True)

    gate_names: ClassVar[tuple[str, ...]] = ("p",)

    def temperature_factor(self):
        """``phi`` if given, else ``T_base ** ((T - 36) / 10)`` (dimensionless)."""
        if self.phi is not None:
            return self.phi
        return self.T_base ** ((self.T - 36.0) / 10.0)

    def rates(self, v):
        """``{"p": (alpha, beta)}`` in 1/ms, before the temperature factor."""
        x = v - self.V_sh
        # 0.032·t/(1 - exp(-t/5)) = 0.032·(-t)/(exp(-t/5) - 1), t = V - V_sh - 15
        alpha = 0.032 * exprel_ratio(-(x - 15.0), 5.0)
        beta = 0.5 * jnp.exp(-(x - 10.0) / 40.0)
        return {"p": (alpha, beta)}

    def rate_factor(self, temperature):
        return self.temperature_factor()

    def own_temperature(self):
        """``T`` (°C); none where ``phi`` is given, which sets the kinetics' speed
        regardless of any temperature."""
        return self.T if self.phi is None else None

    def fixed_speed(self):
        return None if self.phi is None else "phi"

    def current(self, v, gates):
        return self.g_max * gates["p"] ** 4 * (v - self.E)
