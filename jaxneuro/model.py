"""The interface every simulated model (compartment, point neuron, cable...) provides."""

from __future__ import annotations

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from .gather import sum_into
from .state import State
from .stimuli import Location
from . import units
from ._repr import values_repr
from ._static_cache import keep_while_alive, recall, remember


def cached_per_model(method):
    """``method`` (a model's ``precomputed``) computed once per model object while the
    object lives, for concrete models: models are immutable, and a 1000-section cell's
    precomputation took 0.7 s of every eager ``simulate`` call. Models holding tracers
    (inside ``jit``, ``grad``, ``vmap``) are computed each time, as their values differ,
    and so is a concrete model's whose computation ran inside a trace (closed over by a
    jitted function). At most ``_CACHE_SIZE`` models are remembered."""

    def cached(self):
        if any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves(self)):
            return method(self)
        key = (id(self), method.__qualname__, bool(jax.config.jax_enable_x64))  # (its dtypes follow x64)
        hit = recall(_PRECOMPUTED, key, self, _MISSING)
        if hit is not _MISSING:
            return hit
        out = method(self)
        if any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves(out)):
            # A concrete model used inside the user's jit (closed over): computed there,
            # its result holds that trace's values, which must not outlive it.
            return out
        keep_while_alive(_PRECOMPUTED, key, self, out, _CACHE_SIZE)
        return out

    cached.__name__, cached.__qualname__, cached.__doc__ = method.__name__, method.__qualname__, method.__doc__
    return cached


_CACHE_SIZE = 8
# (id(model), method) -> (weak reference to the model, its precomputed form): a cache,
# which holds nothing a result depends on beyond the immutable model itself.
_PRECOMPUTED: dict = {}
# A model's record names and state names (AbstractModel.unit_of) by its tree structure,
# which fixes them (its values do not): working them out took 4 ms a compartment, more
# than a compiled run of it, and 0.1 s a 500-section cell, at every simulate.
_RECORD_NAMES: dict = {}
_RECORD_NAMES_SIZE = 64

_MISSING = object()

# Populations up to this size place targeted stimuli by gathers (a static table with
# one entry per compartment) rather than a scatter-add.
_GATHER_PLACEMENT_MAX = 1 << 17


class AbstractModel(eqx.Module):
    """What :func:`jaxneuro.simulate` needs from a model.

    A model maps ``(t, state, i_inj)`` to the time derivative of its :class:`State`;
    ``i_inj`` is the injected current in nA, one value per compartment (the shape of
    ``state.v``). Subclasses convert their :func:`units.param` fields in
    ``__post_init__`` via :func:`units.convert_fields`.
    """

    __repr__ = values_repr  # parameter values, not only their shapes

    def __post_init__(self):
        units.convert_fields(self)

    @property
    @abc.abstractmethod
    def shape(self) -> tuple[int, ...]:
        """Shape of ``state.v``: ``()`` for one compartment, ``(n,)`` for n of them."""

    @property
    def default_v0(self) -> float:
        """Initial voltage (mV) when ``simulate`` gets no ``v0``: here NEURON's -65 mV
        (compartments, cables, cells); models with a rest of their own override it."""
        return -65.0

    def default_solver(self):
        """The solver ``simulate`` uses when given none: NEURON's staggered scheme."""
        from .solve.staggered import StaggeredEuler

        return StaggeredEuler()

    def check_shapes(self) -> None:
        """Raise a ValueError naming the parameter whose shape does not fit this model
        (e.g. a length-2 ``gL`` on ``LIF(n=3)``), as the constructor does. Parameters
        set after the model was made (``eqx.tree_at``) skip the constructor, so
        :func:`jaxneuro.simulate` calls this (through :func:`units.check_edited`, once
        per model object). The default checks nothing."""

    def precomputed(self) -> "AbstractModel":
        """This model with what stays fixed during a run (a cell's membrane areas and
        axial resistances) computed once: :func:`~jaxneuro.simulate` calls it before its
        time loop, so that the loop does not recompute it at every step (in the gradient's
        recomputed steps too). The default is the model itself."""
        return self

    def place_current(self, target, i):
        """Spread a stimulus current ``i`` (nA) onto the compartments named by
        ``target`` (``None``: all; an index or tuple of indices into a population).
        Models with locations (cables, cells) override this."""
        shape = self.shape
        if target is None:
            return broadcast_current(i, shape, target)
        if (isinstance(target, (float, Location))
                or (isinstance(target, tuple) and any(isinstance(x, (float, Location)) for x in target))):
            raise ValueError(
                f"stimulus target={target!r} is a location x along a section; that needs a "
                "jn.Cable or jn.Cell"
            )
        if not shape:
            raise ValueError(
                f"stimulus target={target!r} indexes a population, but {type(self).__name__} "
                "is a single compartment; use target=None"
            )
        if isinstance(target, str) or (isinstance(target, tuple) and target and isinstance(target[0], str)):
            raise ValueError(
                f"stimulus target={target!r} names a population; that needs a jn.Network"
            )
        concrete = units.is_concrete(target)
        idx = np.asarray(target) if concrete else target
        if concrete and (idx.min() < -shape[0] or idx.max() >= shape[0]):
            raise ValueError(f"stimulus target={target!r} out of range for {shape[0]} compartments")
        if concrete and len(shape) == 1 and shape[0] <= _GATHER_PLACEMENT_MAX:
            # Static targets: gathers, so that a CPU time loop can be one kernel (a
            # scatter-add keeps it out; see jaxneuro/xla_cpu.py). The table has one
            # entry per compartment, so very large populations keep the scatter.
            seg = np.atleast_1d(idx).reshape(-1) % shape[0]
            return sum_into(broadcast_current(i, seg.shape, target), seg, shape[0])
        i = broadcast_current(i, jnp.shape(idx), target)
        return jnp.zeros(shape, dtype=jnp.result_type(i)).at[idx].add(i)

    def voltage_coupling(self):
        """Linear coupling between compartments' voltages (axial or gap currents) that
        the default solver treats implicitly, or ``None`` when compartments are
        independent. The returned object provides ``solve(diag, rhs)``, solving
        ``(diag(diag) - A) x = rhs`` where ``A`` is the coupling's Jacobian of
        ``dv/dt`` (1/ms), in O(n) for trees.

        A model may also give ``local_vector_field(t, state, i_inj)``: its
        :meth:`vector_field` without the coupling's ``A v``, for a coupling whose rows
        sum to zero (currents between compartments, as a cell's axial ones). The
        default solver then solves for the new voltage directly and never evaluates
        ``A v`` (cells do this; models with events do not use it)."""
        return None

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

    def unit_of(self, name: str) -> str:
        """The unit of record name ``name`` as labels write it: ``"mV"``, ``"nA"``,
        ``"mA/cm²"``, ``"µS"``; ``"1"`` for a dimensionless one (a gate).

        The default is a membrane's (compartments, cables, cells): ``v`` in mV, the
        absolute currents of :data:`COMMON_UNITS` (``i_inj``, ``i_clamp``...) in nA, ODE
        states besides ``v`` (channel gates) dimensionless, and every other observable
        (``i_cap``, channel currents ``i_hh``, ``ina_hh``) a density in mA/cm². A model
        wrapping another (``model`` field, as :class:`~jaxneuro.SpikeDetector`) records
        the wrapped model's names in its units. Point neurons and networks override
        this; a model whose states are not dimensionless should too."""
        if name in COMMON_UNITS:
            return COMMON_UNITS[name]
        inner = getattr(self, "model", None)
        if isinstance(inner, AbstractModel):
            return inner.unit_of(name)
        observables, gates = self._record_and_state_names()
        if name not in observables:
            raise ValueError(f"unit_of: {name!r} is not a record name of {type(self).__name__}; "
                             f"it records {observables}")
        return DIMENSIONLESS if name in gates else MEMBRANE_DENSITY

    def _record_and_state_names(self):
        """``(observables, names of the ODE states besides v)``; the state's shapes
        alone tell its names (no arrays are computed). Remembered per tree structure."""
        leaves, structure = jax.tree.flatten(self)
        # (Names are static fields; one kept as a leaf, a str, is in the key too.)
        key = (structure, tuple(x for x in leaves if isinstance(x, str)))
        try:
            hit = _RECORD_NAMES.get(key)
        except TypeError:  # a static field that cannot be hashed: not remembered
            key = hit = None
        if hit is not None:
            return hit
        gates = jax.eval_shape(lambda: self.init_state(self.default_v0)).gates
        out = tuple(self.observables()), frozenset(gates)
        if key is not None:
            remember(_RECORD_NAMES, key, out, _RECORD_NAMES_SIZE)
        return out


#: The unit :meth:`AbstractModel.unit_of` gives a dimensionless record (a gate).
DIMENSIONLESS = "1"
#: A membrane current density's unit (channel currents, ``i_cap`` of compartments).
MEMBRANE_DENSITY = "mA/cm²"
#: Record names whose unit is the same in every model: the voltage, and currents into
#: a compartment (injected, clamp, gap junction, synaptic) in nA.
COMMON_UNITS = {"v": "mV", "i_inj": "nA", "i_clamp": "nA", "i_gap": "nA", "i_syn": "nA"}


def record_units(model, names) -> tuple:
    """``((name, unit), ...)`` for the record ``names`` of ``model``
    (:meth:`AbstractModel.unit_of`), as :class:`~jaxneuro.Trace` keeps them; names the
    model does not know (a stimulus's, as ``i_clamp``) take :data:`COMMON_UNITS` or
    are left out."""
    out = []
    for name in names:
        try:
            out.append((name, model.unit_of(name)))
        except (ValueError, AttributeError):  # not the model's own name, or not an AbstractModel
            if name in COMMON_UNITS:
                out.append((name, COMMON_UNITS[name]))
    return tuple(out)


class CurrentShapeError(ValueError):
    """A stimulus current whose shape does not fit the compartments it targets."""


def broadcast_current(i, shape, target):
    """A stimulus current ``i`` (nA) broadcast to the ``shape`` of the compartments its
    ``target`` names, or a :class:`CurrentShapeError` saying what fits."""
    try:
        return jnp.broadcast_to(jnp.asarray(i), shape)
    except (ValueError, TypeError):
        raise CurrentShapeError(
            f"stimulus current of shape {jnp.shape(i)} does not fit target={target!r}, which names "
            f"compartments of shape {tuple(shape)}: give its parameters as scalars or one value per "
            "targeted compartment"
        ) from None


def population_shape(module, n: int | None) -> tuple[int, ...]:
    """``(n,)`` for a population of ``n``; else the broadcast shape of the module's
    array leaves (``()`` for scalars)."""
    if n is not None:
        return (n,)
    leaves = [x for x in jax.tree_util.tree_leaves(module) if hasattr(x, "shape")]
    return jnp.broadcast_shapes(*[x.shape for x in leaves]) if leaves else ()
