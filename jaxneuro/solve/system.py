"""A model together with its stimuli: what diffrax integrates (passed as ``args``)."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp

from ..model import AbstractModel
from ..state import State


class System(eqx.Module):
    """``model`` driven by ``stimuli``. Everything differentiable stays a leaf here,
    so gradients reach channel densities and stimulus amplitudes alike."""

    model: AbstractModel
    stimuli: tuple

    def injected(self, t, v):
        """Total injected current (nA) per compartment at time ``t`` (ms), with the
        compartments at voltages ``v`` (mV; a voltage clamp's current depends on it)."""
        shape = self.model.shape
        total = jnp.zeros(shape, dtype=jnp.result_type(float))
        for stim in self.stimuli:
            total = total + stim.inject(t, self.model, v)
        return total

    def vector_field(self, t, state: State) -> State:
        return self.model.vector_field(t, state, self.injected(t, state.v))

    def local_vector_field(self, t, state: State) -> State:
        """The model's ``local_vector_field`` (without the currents of its
        ``voltage_coupling()``), for models that have one."""
        return self.model.local_vector_field(t, state, self.injected(t, state.v))

    def observe(self, names, t, state: State) -> dict:
        i_inj = self.injected(t, state.v)
        return {name: self.model.observe(name, t, state, i_inj) for name in names}


def vector_field(t, y, system: System):
    """The plain ODE right-hand side, for ``diffrax.ODETerm``."""
    return system.vector_field(t, y)
