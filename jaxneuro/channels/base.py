"""The channel interface: gate states, their steady state and kinetics, a current."""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array

from .. import units
from .._repr import values_repr


class AbstractChannel(eqx.Module):
    """A membrane mechanism inserted into a compartment (NEURON's density mechanism).

    Parameters are fields declared with :func:`jaxneuro.units.param`; ``name`` (static)
    keys its gates and current in a compartment: gate ``m`` of a channel named ``hh``
    is the state ``"m_hh"``; its current is recorded as ``"i_hh"``.

    A subclass names ``gate_names`` and gives either :meth:`gate_inf_tau` (so the
    default solver updates each gate exactly by exponential Euler, as NEURON's
    ``cnexp``, from :meth:`gate_inf_rate`) or both :meth:`steady_state` and
    :meth:`derivative` (or subclasses :class:`AbstractAlphaBetaChannel` and gives opening
    and closing rates); optionally a faster :meth:`gate_inf_rate`; and :meth:`current`,
    a density in mA/cm² (outward positive). ``temperature`` (°C) is the compartment's;
    channels with their own temperature parameter (the Bazhenov 2002 family) use theirs.
    """

    __repr__ = values_repr  # parameter values, not only their shapes

    name: eqx.AbstractVar[str]
    gate_names: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self):
        units.convert_fields(self)

    def gate_inf_tau(self, v, temperature) -> dict[str, tuple[Array, Array]]:
        """``{gate: (steady state, time constant in ms)}`` at voltage ``v`` (mV)."""
        raise NotImplementedError(
            f"{type(self).__name__} defines neither gate_inf_tau nor steady_state/derivative"
        )

    def steady_state(self, v, temperature) -> dict[str, Array]:
        """``{gate: value}`` at steady state for a clamped voltage ``v`` (mV)."""
        return {g: inf for g, (inf, _) in self.gate_inf_tau(v, temperature).items()}

    def gate_inf_rate(self, v, temperature) -> dict[str, tuple[Array, Array]] | None:
        """``{gate: (steady state, rate 1/tau in 1/ms)}`` at voltage ``v`` (mV), which
        the default solver uses to advance each gate exactly over a step (NEURON's
        ``cnexp``); ``None`` for a channel whose kinetics are not of that form (it
        defines its own :meth:`derivative`), whose gates the solver then advances from
        the derivative. The default takes ``1/tau`` from :meth:`gate_inf_tau`; a
        subclass may give a cheaper formula (one division per gate:
        :class:`jaxneuro.channels.HH`)."""
        cls = type(self)
        if cls.derivative is not AbstractChannel.derivative or cls.gate_inf_tau is AbstractChannel.gate_inf_tau:
            return None
        return {g: (inf, 1.0 / tau) for g, (inf, tau) in self.gate_inf_tau(v, temperature).items()}

    def derivative(self, v, gates: dict[str, Array], temperature) -> dict[str, Array]:
        """``{gate: d gate / dt}`` (1/ms)."""
        return {
            g: (inf - gates[g]) / tau
            for g, (inf, tau) in self.gate_inf_tau(v, temperature).items()
        }

    def current(self, v, gates: dict[str, Array]) -> Array:
        """Current density in mA/cm² (outward positive) at ``v`` (mV)."""
        raise NotImplementedError

    def component_currents(self, v, gates: dict[str, Array]) -> dict[str, Array]:
        """Named parts of :meth:`current` (e.g. ``ina``, ``ik``), mA/cm²; may be empty."""
        return {}


class AbstractAlphaBetaChannel(AbstractChannel):
    """A channel whose gates follow ``dx/dt = phi·(alpha(v)·(1 - x) - beta(v)·x)``.

    A subclass gives :meth:`rates` (``{gate: (alpha, beta)}`` in 1/ms) and
    :meth:`rate_factor` (the dimensionless temperature factor ``phi``). The derivative
    is written as ``phi·alpha - phi·(alpha + beta)·x``, free of divisions, because the
    default solver evaluates it (and its slope in ``x``) every step.
    """

    def rates(self, v) -> dict[str, tuple[Array, Array]]:
        """``{gate: (alpha, beta)}`` in 1/ms at voltage ``v`` (mV), before ``phi``."""
        raise NotImplementedError

    def rate_factor(self, temperature):
        """Temperature factor ``phi`` multiplying both rates (dimensionless)."""
        raise NotImplementedError

    def gate_inf_tau(self, v, temperature):
        phi = self.rate_factor(temperature)
        out = {}
        for g, (a, b) in self.rates(v).items():
            s = a + b
            out[g] = (a / s, 1.0 / (phi * s))
        return out

    def steady_state(self, v, temperature):
        return {g: a / (a + b) for g, (a, b) in self.rates(v).items()}

    def gate_inf_rate(self, v, temperature):
        if type(self).derivative is not AbstractAlphaBetaChannel.derivative:
            return None
        phi = self.rate_factor(temperature)
        out = {}
        for g, (a, b) in self.rates(v).items():
            s = a + b
            # alpha = beta = 0 (no kinetics at this voltage): the gate stays where it is.
            out[g] = (a / jnp.where(s == 0, 1.0, s), phi * s)
        return out

    def derivative(self, v, gates, temperature):
        phi = self.rate_factor(temperature)
        return {g: phi * a - phi * (a + b) * gates[g] for g, (a, b) in self.rates(v).items()}


def exprel_ratio(x, y):
    """``x / (exp(x / y) - 1)``, finite (→ ``y``) and smooth at ``x = 0``.

    NEURON's ``vtrap``. Computed with ``exp`` and a series near ``x = 0`` (see
    :func:`exprel_ratio_of_exp`): ``expm1`` costs XLA's CPU code twice an ``exp``.
    """
    return exprel_ratio_of_exp(x, y, jnp.exp(x * (1.0 / y)))


def exprel_ratio_of_exp(x, y, exp_x_over_y):
    """``x / (exp(x / y) - 1)`` given ``exp(x / y)`` already computed (shared between
    rates to save exponentials), finite and smooth at ``x = 0``.

    Near ``x = 0`` the subtraction ``exp(x/y) - 1`` cancels, so for ``|x/y| < 1e-2`` the
    series ``y·(1 - z/2 + z²/12 - z⁴/720)``, ``z = x/y``, is used (truncation error
    below 1e-16 relative); outside it the cancellation costs at most ``100·eps``
    relative."""
    # Multiplications by constant reciprocals: divisions cost several times more.
    z = x * (1.0 / y)
    small = exprel_series_applies(z)
    denom = jnp.where(small, 1.0, exp_x_over_y - 1.0)
    return jnp.where(small, y * exprel_series(z), x / denom)


def exprel_series_applies(z):
    """Where :func:`exprel_series` stands for ``z / (exp(z) - 1)``: ``|z| < 1e-2``."""
    return jnp.abs(z) < 1e-2


def exprel_series(z):
    """``z / (exp(z) - 1)`` near ``z = 0``: ``1 - z/2 + z²/12 - z⁴/720`` (truncation
    error below 1e-16 relative where :func:`exprel_series_applies`)."""
    z2 = z * z
    return 1.0 - 0.5 * z + z2 * (1.0 / 12.0) - z2 * z2 * (1.0 / 720.0)
