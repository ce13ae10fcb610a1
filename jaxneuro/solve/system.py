"""A model together with its stimuli: what diffrax integrates (passed as ``args``)."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp

from ..model import AbstractModel
from ..state import State
from ..stimuli.clamp import AbstractVoltageClamp


class System(eqx.Module):
    """``model`` driven by ``stimuli``. Everything differentiable stays a leaf here,
    so gradients reach channel densities and stimulus amplitudes alike."""

    model: AbstractModel
    stimuli: tuple
    #: ``((name, indices), ...)``: recorded names kept at some compartments only
    #: (static; ``simulate(record={name: places})``).
    selected: tuple = eqx.field(default=(), static=True)

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
        out = {}
        for name in names:
            if name == CLAMP_CURRENT and name not in self.model.observables():
                out[name] = self.clamp_current(t, state.v)
            else:
                out[name] = self.model.observe(name, t, state, i_inj)
        for name, idx in self.selected:
            out[name] = out[name][..., jnp.asarray(idx)]
        return out

    def clamp_current(self, t, v):
        """The voltage clamps' current (nA) into each compartment at the sample at time
        ``t`` (ms), the compartments at ``v`` (mV): ``record=("i_clamp",)``, what the
        step that ended at ``t`` injected (:meth:`AbstractVoltageClamp.recorded`). Split
        by population for a Network."""
        total = jnp.zeros(self.model.shape, dtype=jnp.result_type(float))
        for stim in self.stimuli:
            if isinstance(stim, AbstractVoltageClamp):
                total = total + stim.recorded(t, self.model, v)
        per_population = getattr(self.model, "per_population", None)
        return total if per_population is None else per_population(total)


#: The record name of the voltage clamps' current (nA), offered when a clamp is given.
CLAMP_CURRENT = "i_clamp"


def stimulus_observables(model, stimuli) -> tuple[str, ...]:
    """Record names the ``stimuli`` add to ``model``'s own: ``"i_clamp"`` with a voltage
    clamp (its current alone, where ``i_inj`` sums every injected current)."""
    if any(isinstance(s, AbstractVoltageClamp) for s in stimuli) and CLAMP_CURRENT not in model.observables():
        return (CLAMP_CURRENT,)
    return ()


def vector_field(t, y, system: System):
    """The plain ODE right-hand side, for ``diffrax.ODETerm``."""
    return system.vector_field(t, y)
