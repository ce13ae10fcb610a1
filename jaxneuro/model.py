"""The interface every simulated model (compartment, point neuron, cable...) provides."""

from __future__ import annotations

import abc

import equinox as eqx
from jaxtyping import Array

from .state import State
from . import units


class AbstractModel(eqx.Module):
    """What :func:`jaxneuro.simulate` needs from a model.

    A model maps ``(t, state, i_inj)`` to the time derivative of its :class:`State`;
    ``i_inj`` is the injected current in nA, one value per compartment (the shape of
    ``state.v``). Subclasses convert their :func:`units.param` fields in
    ``__post_init__`` via :func:`units.convert_fields`.
    """

    def __post_init__(self):
        units.convert_fields(self)

    @property
    @abc.abstractmethod
    def shape(self) -> tuple[int, ...]:
        """Shape of ``state.v``: ``()`` for one compartment, ``(n,)`` for n of them."""

    @property
    def default_v0(self) -> float:
        """Initial voltage (mV) when ``simulate`` gets no ``v0``; NEURON's -65 mV."""
        return -65.0

    def default_solver(self):
        """The solver ``simulate`` uses when given none: NEURON's staggered scheme."""
        from .solve.staggered import StaggeredEuler

        return StaggeredEuler()

    @abc.abstractmethod
    def init_state(self, v0) -> State:
        """State at ``v0`` (mV) with every gate at its steady state, as NEURON's
        ``finitialize(v0)``."""

    @abc.abstractmethod
    def vector_field(self, t, state: State, i_inj) -> State:
        """``d state / dt`` (mV/ms for ``v``) with ``i_inj`` nA injected."""

    @abc.abstractmethod
    def observables(self) -> tuple[str, ...]:
        """Names ``simulate(record=...)`` accepts for this model."""

    @abc.abstractmethod
    def observe(self, name: str, t, state: State, i_inj) -> Array:
        """The value of observable ``name`` at time ``t``."""
