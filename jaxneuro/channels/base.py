"""The channel interface: gate states, their steady state and kinetics, a current."""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array

from .. import units


class AbstractChannel(eqx.Module):
    """A membrane mechanism inserted into a compartment (NEURON's density mechanism).

    Parameters are fields declared with :func:`jaxneuro.units.param`; ``name`` (static)
    keys its gates and current in a compartment: gate ``m`` of a channel named ``hh``
    is the state ``"m_hh"``; its current is recorded as ``"i_hh"``.

    A subclass names ``gate_names`` and gives either :meth:`gate_inf_tau` (so the
    default solver updates each gate exactly by exponential Euler, as NEURON's
    ``cnexp``) or both :meth:`steady_state` and :meth:`derivative`; and :meth:`current`,
    a density in mA/cm² (outward positive). ``temperature`` (°C) is the compartment's;
    channels with their own temperature parameter (the Bazhenov 2002 family) use theirs.
    """

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


def exprel_ratio(x, y):
    """``x / (exp(x / y) - 1)``, finite (→ ``y``) and smooth at ``x = 0``.

    NEURON's ``vtrap``. The double ``where`` keeps gradients finite at the removable
    singularity.
    """
    small = jnp.abs(x / y) < 1e-6
    x_safe = jnp.where(small, y, x)
    regular = x_safe / jnp.expm1(x_safe / y)
    series = y * (1.0 - x / y / 2.0)
    return jnp.where(small, series, regular)
