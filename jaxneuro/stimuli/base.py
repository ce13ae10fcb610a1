"""The stimulus interface: a current in nA (or a density) and a target."""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, ClassVar

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import saiunit as u

from .. import units
from .._repr import values_repr
from .targets import normalise_target, placements

__all__ = ["AbstractStimulus"]


class AbstractStimulus(eqx.Module):
    """A current injected into a model. Subclasses implement :meth:`current` (nA).

    Amplitudes may also be given as current-density quantities (e.g. ``2 *
    u.uA / u.cm**2``); they are then kept in mA/cm² and scaled by the target model's
    ``membrane_area`` when injected (``density`` is then True).
    """

    __repr__ = values_repr  # parameter values, not only their shapes

    target: Any = eqx.field(default=None, static=True, kw_only=True)
    density: bool = eqx.field(default=False, static=True, kw_only=True)

    #: Whether the backends that split a population into slices (``"sharded"``,
    #: ``"pallas"``) may cut this stimulus per neuron: its current a function of time
    #: alone, the same for a neuron whichever slice it is in. Stimuli that read the
    #: voltage or draw random numbers per neuron say False; populations driven by them
    #: run in one XLA loop.
    splittable: ClassVar[bool] = True
    #: Why not, where ``splittable`` is False (the backends' refusal says it).
    unsplittable_because: ClassVar[str | None] = None
    #: Whether :meth:`current` is elementwise in the parameters (each a scalar or one
    #: value per targeted compartment), so that several such stimuli of one class, each
    #: at one place, are one stimulus at all their places (:func:`merge_alike`).
    mergeable: ClassVar[bool] = False

    def __post_init__(self):
        units.flag(self.density, f"{type(self).__name__}.density")
        self.target = normalise_target(self.target)
        amps = [f for f in dataclasses.fields(self) if f.metadata.get("unit") is units.nA]
        dens = [f.name for f in amps if units.is_quantity_of(getattr(self, f.name), units.mA_per_cm2)]
        currents = [f.name for f in amps if units.is_quantity_of(getattr(self, f.name), units.nA)]
        if self.density and currents:
            raise ValueError(
                f"{type(self).__name__}: density=True reads amplitudes as current densities (mA/cm²), "
                f"but {currents} are given as currents; drop density=True, or give densities "
                "(e.g. 2 * u.uA / u.cm**2)"
            )
        if dens:
            if len(dens) != len([f for f in amps if isinstance(units.as_quantity(getattr(self, f.name)), u.Quantity)]):
                raise ValueError(
                    f"{type(self).__name__}: give every amplitude as a current or every one as a "
                    f"current density, not a mix ({dens} are densities)"
                )
            # A plain number beside densities would be read as mA/cm², not as nA as plain
            # amplitudes are elsewhere: ambiguous unless it is 0.
            plain = [f.name for f in amps if f.name not in dens and getattr(self, f.name) is not None
                     and units.is_concrete(getattr(self, f.name))
                     and np.any(np.asarray(getattr(self, f.name)) != 0)]
            if plain:
                raise ValueError(
                    f"{type(self).__name__}: {plain} given as plain numbers beside current densities "
                    f"({dens}); plain amplitudes are nA elsewhere, so give these as densities too "
                    "(e.g. 0.5 * u.uA / u.cm**2)"
                )
            self.density = True
            for name in dens:
                value = units.to_base(getattr(self, name), f"{type(self).__name__}.{name}", units.mA_per_cm2)
                object.__setattr__(self, name, value)
        units.convert_fields(self)

    @abc.abstractmethod
    def current(self, t):
        """Injected current in nA at time ``t`` (ms); positive depolarises."""

    def breakpoints(self) -> tuple:
        """Times (ms) where the waveform jumps, for adaptive step-size controllers."""
        return ()

    def sample_times(self):
        """Times (ms) an adaptive controller must step to, or None: a sampled waveform's
        samples, so that no step passes over one (the error estimate of a step cannot
        see a feature that lies wholly inside it)."""
        return None

    def current_on(self, t, model):
        """The current at ``t`` in nA for every compartment of ``model`` (no target):
        :meth:`current`, with densities scaled by ``model``'s membrane area."""
        i = self.current(t)
        if self.density:
            i = i * area_for(model, None) * units.DENSITY_TO_ABSOLUTE["current"]
        return i

    def check_run(self, *, t0: float, t1: float, dt: float, adaptive: bool, continued: bool = False):
        """ValueError if this stimulus cannot drive a run from ``t0`` to ``t1`` (ms) with
        step ``dt`` (the initial one when ``adaptive``), continuing an earlier run's
        final state where ``continued``; :func:`~jaxneuro.simulate` asks before it
        starts and runs the stimulus returned (the same, or one that checks a traced
        value at run time, or knows the run's grid). Any run, by default."""
        return self

    def check_placement(self, model):
        """ValueError for a current in nA without a target on a cable or cell of several
        segments (in a Network too, a cable or cell population named without a place on
        it): it would go into every segment in full, a total that grows with ``nseg``
        (NEURON has no such stimulus; its IClamp sits at a location)."""
        for where, member, target in placements(model, self.target):
            n = getattr(member, "n_segments", 1)
            if target is None and not self.density and n > 1:
                raise ValueError(
                    f"{type(self).__name__}: {where}target={self.target!r} with an amplitude in nA would "
                    f"inject it into each of the {n} segments of the cable or cell, a total that grows "
                    "with nseg; give a location, (section, x) or a bare x on a cable (NEURON's "
                    "IClamp), or a current density (e.g. 2 * u.uA / u.cm**2), which every segment gets "
                    "in proportion to its area"
                )

    def parameter_shapes(self) -> str:
        """``"amp (), delay (2, 2)"``: the shapes of this stimulus's array parameters,
        for messages about a current that does not fit its target (whose shape comes from
        them all)."""
        shapes = [f"{f.name} {tuple(np.shape(getattr(self, f.name)))}" for f in dataclasses.fields(self)
                  if not f.metadata.get("static") and not f.name.startswith("_")
                  and hasattr(getattr(self, f.name), "shape")]
        return ", ".join(shapes)

    def inject(self, t, model, v):
        """The current at ``t`` (nA) placed onto ``model``'s compartments, whose voltages
        are ``v`` (mV; unused here, read by a voltage clamp). A density is placed first
        and then scaled by the area of each compartment it reaches, so a density at a
        location or index gets that compartment's area."""
        self.check_placement(model)
        placed = model.place_current(self.target, self.current(t))
        if self.density:
            placed = placed * area_for(model, self.target) * units.DENSITY_TO_ABSOLUTE["current"]
        return placed


def area_for(model, target):
    """The membrane area (µm², per compartment) a current density aimed at ``target``
    on ``model`` is scaled by: the model's own, or in a Network each targeted
    population's (:meth:`Network.membrane_area_for`)."""
    for_target = getattr(model, "membrane_area_for", None)
    return model.membrane_area if for_target is None else for_target(target)


#: Stimuli of one mergeable class, each at one place, that :func:`merge_alike` joins:
#: from this many on (fewer run as given, one to one as before).
MERGE_FROM = 4


def merge_alike(stimuli, model) -> tuple:
    """``stimuli`` with those of one :attr:`~AbstractStimulus.mergeable` class (and
    ``density`` setting), each with scalar parameters at one place (a location, or one
    compartment index), joined into one stimulus: the same currents, but one placement
    in the step instead of one per stimulus (400 step currents into a 1000-section cell
    compiled for 42 s, one with 400 amplitudes for 1.5 s; on 1000 HH neurons 1.3 s a
    call against 0.025 s). On a cable or cell the joined stimulus has a parameter per
    place and the places as its target; on a population of ``n`` neurons, each
    targeted once, it has a parameter per neuron and no target (the others' amplitudes
    0), the form the split backends cut per slice; so is one such stimulus at several
    distinct indices of a population (:func:`_spread_over_population`). Groups of
    fewer than :data:`MERGE_FROM`, other stimuli and a Network's (whose places name
    populations) are left as they are; the order of the sum of the currents changes,
    by rounding only."""
    from .targets import Location

    if hasattr(model, "make_trace"):  # a Network
        return tuple(stimuli)
    shape = tuple(model.shape)
    inner = getattr(model, "model", model)  # a spike detector's model (summary=)
    on_cell = hasattr(type(inner), "locator") or hasattr(type(inner), "as_cell")
    groups: dict = {}
    places, merged, dropped = {}, {}, set()
    for k, s in enumerate(stimuli):
        # One place: a location or an index, alone or as a list of one ([i]).
        place = s.target[0] if isinstance(s.target, tuple) and len(s.target) == 1 else s.target
        one_place = (isinstance(place, Location) and on_cell) or (
            isinstance(place, int) and not isinstance(place, bool) and len(shape) == 1
            and -shape[0] <= place < shape[0])  # (one out of range keeps its own error)
        params = [f.name for f in dataclasses.fields(s) if not f.metadata.get("static")]
        if type(s).mergeable and one_place and all(np.ndim(getattr(s, p)) == 0 for p in params):
            # (Locations and indices apart: one target list holds one kind.)
            groups.setdefault((type(s), s.density, isinstance(place, Location), tuple(params)), []).append(k)
            places[k] = place
        elif type(s).mergeable and not on_cell and len(shape) == 1:
            spread = _spread_over_population(s, params, shape[0])
            if spread is not None:
                merged[k] = spread
    for (cls, _, _, params), members in groups.items():
        if len(members) < MERGE_FROM:
            continue
        group = [stimuli[k] for k in members]
        if on_cell:
            target = tuple(places[k] for k in members)
        else:
            neurons = [places[k] % shape[0] for k in members]
            if len(set(neurons)) < len(neurons):
                continue  # a neuron targeted twice: its currents add, not one parameter each
            target = None
        values = {p: jnp.stack([jnp.asarray(getattr(s, p)) for s in group]) for p in params}  # one per place
        if target is None:
            values = _per_neuron(group[0], values, np.asarray(neurons), shape[0])
        merged[members[0]] = _with_values(group[0], values, target)
        dropped.update(members[1:])
    return tuple(merged.get(k, s) for k, s in enumerate(stimuli) if k not in dropped)


def _spread_over_population(s, params, n: int):
    """A stimulus at several distinct indices of a population of ``n`` with scalar or
    per-place parameters (the README's ``target=indices`` with one amplitude per place)
    as one with a parameter per neuron and no target, the others' amplitudes 0: the
    form the split backends and the GPU kernel cut per slice (they refuse per-place
    parameters, so ``backend="auto"`` ran it in one loop). ``None`` where it does not
    apply (an index repeated: its currents add; out of range: the stimulus's own
    error)."""
    target = s.target
    if not (isinstance(target, tuple) and len(target) > 1 and all(
            isinstance(i, (int, np.integer)) and not isinstance(i, (bool, np.bool_)) and -n <= i < n
            for i in target)):
        return None
    neurons = np.asarray(target) % n
    k = len(neurons)
    if len(set(neurons.tolist())) < k or not all(np.ndim(getattr(s, p)) == 0 or np.shape(getattr(s, p)) == (k,)
                                                 for p in params):
        return None
    values = {p: jnp.broadcast_to(jnp.asarray(getattr(s, p)), (k,)) for p in params}
    return _with_values(s, _per_neuron(s, values, neurons, n), None)


def _with_values(s, values: dict, target):
    """``s`` with the parameters ``values`` (``{name: array}``) and ``target``."""
    names = list(values)
    out = eqx.tree_at(lambda x: [getattr(x, p) for p in names], s, [values[p] for p in names])
    object.__setattr__(out, "target", target)  # static: not a leaf tree_at replaces
    return out


def _per_neuron(first, values: dict, neurons, n: int) -> dict:
    """``values`` (``{parameter: one value per place}``, the places ``neurons`` of a
    population of ``n``) as one value per neuron: theirs there; elsewhere the first
    place's, with the amplitudes (``first``'s parameters in nA) 0, so that the others
    get no current."""
    fields = {f.name: f for f in dataclasses.fields(first)}
    # A gather with fixed indices (place k, or the filler after the places), not a
    # scatter: XLA's CPU backend runs a scatter as a loop of its own.
    index = np.full(n, len(neurons))
    index[np.asarray(neurons)] = np.arange(len(neurons))
    out = {}
    for p, given in values.items():
        rest = jnp.zeros_like(given[0]) if fields[p].metadata.get("unit") is units.nA else given[0]
        out[p] = jnp.concatenate([given, rest[None]])[index]
    return out
