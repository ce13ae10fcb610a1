"""Network: named populations and the couplings between them, as one model."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .. import units
from .._stack import outside_stacklevel
from ..coupling import grouped
from ..coupling.base import AbstractCoupling
from ..solve.trace import overflowed_of, report_counts, report_overflow, spiking_units
from ..stimuli.targets import population_target
from ..coupling.gap import AbstractGapJunction
from ..coupling.poisson import PoissonInput
from ..coupling.synapse import AbstractSynapse
from ..model import AbstractModel
from ..morphology.cell import Cell
from ..solve.staggered import StaggeredEuler
from ..solve.trace import Trace
from ..state import State
from .implicit import GapCoupling
from .sources import warn_identical_trains


class Network(AbstractModel):
    """Populations (any jaxneuro models) and couplings, simulated as one model.

    ``populations``: a mapping from name to model, e.g. ``{"a": jn.LIF(n=100), "b":
    jn.Compartment(...)}``. ``couplings``: gap junctions and synapses whose ``pre``
    and ``post`` name populations (``"a"``) or some of their compartments (``("a",
    indices)``, flat indices into that population's ``state.v``).

    State layout: ``state.v`` is every population's voltage flattened and concatenated
    in the order of ``populations`` (shape ``(n_total,)``, mV), so one implicit solve
    couples them; ``state.gates[name]`` and ``state.events[name]`` hold each
    population's own gates and event buffers (spikes), and ``state.events[coupling
    name]`` each synapse's kernel states. Synapses of one kind (class, ``delivery``,
    ``max_arrivals_per_step``) reading one population are run as one, their states
    kept together under their names joined by ``+`` (:meth:`synapse_groups`): a step's
    program then grows with the populations, not with every projection between them
    (faster to compile; the same results to rounding). ``group_synapses=False``
    (static) runs each alone. Each population's events are resolved by the population
    itself.

    Simulate with :func:`jaxneuro.simulate`; stimuli target populations by name
    (``jn.StepCurrent(amp, delay, dur, target="a")`` or ``target=("a", indices)``), and
    ``trace["a"]`` is population ``"a"``'s :class:`~jaxneuro.Trace` (``.v``,
    ``.spikes``...), ``trace[name]`` of a synapse its recorded conductance ``g`` (µS,
    one column per connection; a current-based synapse's current ``i``, nA). Record
    names apply to every member that has them; populations also record ``"i_gap"`` and
    ``"i_syn"`` (nA into each compartment). In a network ``"i_inj"`` is all current
    entering a compartment from outside its own membrane: stimuli, gap junctions and
    synapses.

    With gap junctions, the default solver is :class:`~jaxneuro.StaggeredEuler` with
    backward-Euler voltages, treating the junctions implicitly
    (:meth:`voltage_coupling`); ``coupling_tol`` sets the tolerance of that solve, an
    iteration (networks of at most 32 compartments are solved directly, without one; see
    :mod:`jaxneuro.network.implicit`). A junction with no connections is left out of
    both, so it changes nothing; one with connections counts even where its conductance
    is 0 µS (a value, possibly traced, that the choice of solver cannot see). Couplings
    without a ``name`` are called ``"coupling0"``, ``"coupling1"``... by their position.
    """

    populations: dict
    couplings: tuple = ()
    coupling_tol: float | None = eqx.field(default=None, static=True, kw_only=True)
    group_synapses: bool = eqx.field(default=True, static=True, kw_only=True)
    names: tuple = eqx.field(init=False, static=True)
    shapes: tuple = eqx.field(init=False, static=True)

    def __post_init__(self):
        populations, couplings = self.populations, self.couplings
        if not isinstance(populations, Mapping) or not populations:
            raise ValueError("Network.populations expects a non-empty dict of name -> jaxneuro model")
        for name, pop in populations.items():
            if not isinstance(name, str) or not name:
                raise ValueError(f"Network.populations: names must be non-empty strings, got {name!r}")
            if isinstance(pop, Network):
                raise ValueError(f"Network.populations[{name!r}] is a Network; nest populations, not networks")
            if not isinstance(pop, AbstractModel):
                raise ValueError(
                    f"Network.populations[{name!r}] expects a jaxneuro model (e.g. jn.LIF(n=100)), "
                    f"got {type(pop).__name__}"
                )
        if not isinstance(self.group_synapses, (bool, np.bool_)):
            raise ValueError(f"Network.group_synapses expects True or False, got {self.group_synapses!r}")
        tol = self.coupling_tol
        if tol is not None and (isinstance(tol, (bool, np.bool_)) or not isinstance(tol, (int, float, np.floating, np.integer))
                                or not 0.0 < float(tol) < 1.0):
            raise ValueError(
                "Network.coupling_tol expects None (the default: 1e-10 in float64, 1e-5 in float32) or a "
                f"number between 0 and 1 (the gap-junction solve's residual relative to its right-hand side), got {tol!r}"
            )
        if couplings is None or not isinstance(couplings, (AbstractCoupling, Sequence)) or isinstance(couplings, str):
            raise ValueError(
                "Network.couplings expects a coupling or a list of them (synapses, gap junctions), "
                f"or () for none; got {couplings!r}"
            )
        self.names = tuple(populations)
        self.populations = dict(populations)
        warn_identical_trains(self.populations)
        self.shapes = tuple(tuple(populations[n].shape) for n in self.names)
        if isinstance(couplings, AbstractCoupling):
            couplings = (couplings,)
        sizes = [math.prod(s) for s in self.shapes]
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
        where = {n: (int(offsets[i]), int(sizes[i])) for i, n in enumerate(self.names)}

        def locate(side, carries_current=True):
            name, idx = side
            if name not in where:
                raise ValueError(f"coupling side {name!r} is not a population of this network; it has {self.names}")
            off, n = where[name]
            if idx is None:
                return np.arange(off, off + n)
            if any(isinstance(k, tuple) for k in idx):  # locations (section, x) on a cell
                pop = populations[name]
                idx = [_location_index(pop, name, k, carries_current) if isinstance(k, tuple) else k for k in idx]
            idx = np.asarray(idx, dtype=np.int64)
            if idx.size and (idx.min() < -n or idx.max() >= n):
                raise ValueError(
                    f"coupling side ({name!r}, indices): indices must lie in [-{n}, {n}) (negative ones count "
                    f"from the end, as for stimulus targets), got {idx.min()} to {idx.max()}"
                )
            return off + np.where(idx < 0, idx + n, idx)

        locate.n_total = int(offsets[-1])
        bound, seen = [], set()
        for i, c in enumerate(couplings):
            if not isinstance(c, AbstractCoupling):
                raise ValueError(
                    f"Network.couplings[{i}] expects a coupling (e.g. jn.SymmetricGapJunction), "
                    f"got {type(c).__name__}"
                )
            label = c.name if c.name is not None else f"coupling{i}"
            if label in self.names or label in seen:
                raise ValueError(f"Network.couplings[{i}]: name {label!r} is already used; give name=...")
            seen.add(label)
            if c.name is None:
                c = dataclasses.replace(c, name=label)
            if isinstance(c, AbstractGapJunction):
                for side in (c.pre[0], c.post[0]):
                    if getattr(self.populations.get(side), "is_source", False):
                        raise ValueError(
                            f"{type(c).__name__} {label!r}: population {side!r} is a spike source "
                            f"({type(self.populations[side]).__name__}), which has no membrane to couple; "
                            "connect it with a synapse"
                        )
            if isinstance(c, PoissonInput) and getattr(self.populations.get(c.post[0]), "is_source", False):
                raise ValueError(
                    f"PoissonInput {label!r}: post population {c.post[0]!r} is a spike source "
                    f"({type(self.populations[c.post[0]]).__name__}), which has no membrane voltage to raise"
                )
            if isinstance(c, AbstractSynapse):
                if getattr(self.populations.get(c.post[0]), "is_source", False):
                    raise ValueError(
                        f"{type(c).__name__} {label!r}: post population {c.post[0]!r} is a spike source "
                        f"({type(self.populations[c.post[0]]).__name__}), which has no membrane for a synapse's "
                        "current; a source's spike times are given, not driven"
                    )
                pop = self.populations[c.pre[0]] if c.pre[0] in where else None
                # (Its state's layout only: evaluated abstractly, nothing to compile.)
                if pop is not None and "spikes" not in jax.eval_shape(pop.init_state, pop.default_v0).events:
                    raise ValueError(
                        f"{type(c).__name__} {label!r}: pre population {c.pre[0]!r} does not spike "
                        f"({type(pop).__name__}); chemical synapses need a spiking population such as jn.LIF, "
                        f"or one watched for threshold crossings as NEURON's NetCon does: "
                        f"jn.SpikeDetector({type(pop).__name__}(...), threshold=0.0)"
                    )
            # A synapse's pre side only reads voltages (its spikes); every other side
            # carries the coupling's current.
            bound.append(c.bind(lambda side, role=None, c=c: locate(
                side, carries_current=not (isinstance(c, AbstractSynapse) and role == "pre"))))
        self.couplings = tuple(bound)
        for group in self.synapse_groups():
            key = grouped.state_name(group)
            if len(group) > 1 and (key in self.names or key in seen):
                raise ValueError(
                    f"Network: synapses {[s.name for s in group]} run as one and keep their states under "
                    f"{key!r}, which names another population or coupling; rename one of them"
                )

    # --- layout ---------------------------------------------------------------------------
    @property
    def sizes(self):
        return tuple(math.prod(s) for s in self.shapes)

    def _slices(self):
        out, off = {}, 0
        for name, n in zip(self.names, self.sizes):
            out[name] = slice(off, off + n)
            off += n
        return out

    @property
    def shape(self):
        return (sum(self.sizes),)

    @property
    def gap_junctions(self):
        return tuple(c for c in self.couplings if isinstance(c, AbstractGapJunction))

    def _connected_gap_junctions(self):
        """The gap junctions with at least one connection: those that carry current."""
        return tuple(c for c in self.gap_junctions if c.n_connections)

    @property
    def synapses(self):
        return tuple(c for c in self.couplings if isinstance(c, AbstractSynapse))

    @property
    def poisson_inputs(self):
        """The :class:`~jaxneuro.PoissonInput` couplings (drawn step by step)."""
        return tuple(c for c in self.couplings if isinstance(c, PoissonInput))

    def split(self, x):
        """A flat per-compartment array as ``{population: array of its shape}``
        (:meth:`per_population`)."""
        return self.per_population(x)

    def _sub_state(self, state, name, v=None):
        s = self._slices()[name]
        shp = self.shapes[self.names.index(name)]
        v = state.v if v is None else v
        return State(v=v[s].reshape(shp), gates=state.gates.get(name, {}), events=state.events.get(name, {}))

    # --- AbstractModel --------------------------------------------------------------------
    def check_shapes(self) -> None:
        """ValueError naming the coupling and field where the couplings' index arrays
        (filled in when the network was built) are no longer integer indices in range
        (see :meth:`AbstractCoupling.check_indices`), or a per-connection parameter
        (``g``, ``g_max``, ``tau``, ``weight``...) no longer a scalar or one value per
        connection: the check building the network made (:meth:`AbstractCoupling.check_bound`),
        again for couplings edited since (``eqx.tree_at``). The populations' own
        parameters are their own ``check_shapes``' (which :func:`jaxneuro.simulate`
        calls for each, and a cell's for each of its sections)."""
        n = sum(self.sizes)
        for i, c in enumerate(self.couplings):
            label = f"Network.couplings[{i}] ({c.name!r})"
            c.check_indices(n, label)
            try:
                c.check_bound()
            except ValueError as e:
                raise ValueError(f"{label}: {e}") from None

    @property
    def default_v0(self):
        return self.v0_of_populations({})

    def v0_of_populations(self, v0: dict):
        """One initial voltage per compartment (mV, flat, population order) from ``v0``, a
        dict of population name to voltage (a number, a quantity, or one per
        compartment of that population); a population not named starts at its own
        ``default_v0`` (so ``{}`` gives the network's)."""
        unknown = [k for k in v0 if k not in self.names]
        if unknown:
            raise ValueError(f"simulate: v0 names {unknown}, not populations of this network; it has {self.names}")
        parts = []
        for n, shp in zip(self.names, self.shapes):
            if n in v0:
                value = units.to_base(v0[n], f"v0[{n!r}]", units.mV)
                units.check_value(value, f"v0[{n!r}]", None, units.mV)
            else:
                value = self.populations[n].default_v0
            if not units.broadcasts_to(np.shape(value), shp):
                raise ValueError(
                    f"simulate: v0[{n!r}] expects a scalar or one value per compartment of {n!r} (shape {shp}), "
                    f"got shape {np.shape(value)}"
                )
            parts.append(value)
        return self._flat(parts)

    def _flat(self, parts):
        """One flat array (population order) from ``parts``, one value per population,
        each a scalar or of its population's shape. Known values are laid out with
        NumPy and put on the device once (each operation of jax.numpy on a new shape,
        ``jnp.asarray`` included, is a program to compile); traced ones (under jit)
        with JAX."""
        dtype = jnp.result_type(float)
        if all(units.is_concrete(x) for x in parts):
            return jax.device_put(np.concatenate([np.broadcast_to(np.asarray(x, dtype), shp).reshape(-1)
                                                  for x, shp in zip(parts, self.shapes)]))
        return jnp.concatenate([jnp.broadcast_to(jnp.asarray(x, dtype), shp).reshape(-1)
                                for x, shp in zip(parts, self.shapes)])

    @property
    def capacitance(self):
        """Membrane capacitance (nF) of every compartment, flat."""
        parts = []
        for n, shp in zip(self.names, self.shapes):
            pop = self.populations[n]
            c = getattr(pop, "capacitance", None)
            if c is None:
                # Any model linear in the injected current: dv/dt per nA is 1/C.
                st = pop.init_state(pop.default_v0)
                i0 = jnp.zeros(shp, dtype=jnp.result_type(float))
                _, inv_c = jax.jvp(lambda i: pop.vector_field(0.0, st, i).v, (i0,), (jnp.ones_like(i0),))
                c = 1.0 / inv_c
            parts.append(c)
        return self._flat(parts)

    def _internal_couplings(self):
        """``(offset, coupling)`` of each population with a coupling of its own."""
        out = []
        for name in self.names:
            c = self.populations[name].voltage_coupling()
            if c is not None:
                out.append((self._slices()[name].start, c))
        return tuple(out)

    def precomputed(self) -> "Network":
        """This network with each population's :meth:`precomputed` form."""
        pops = {name: pop.precomputed() for name, pop in self.populations.items()}
        if all(pops[n] is self.populations[n] for n in self.names):
            return self
        return eqx.tree_at(lambda net: net.populations, self, pops)

    def default_solver(self):
        if self._connected_gap_junctions() or self._internal_couplings():
            return StaggeredEuler(voltage_update="backward_euler")
        # Spike sources have no membrane: the populations that have one choose.
        solvers = [self.populations[n].default_solver() for n in self.names
                   if not getattr(self.populations[n], "is_source", False)] or [StaggeredEuler()]
        if all(s == solvers[0] for s in solvers):
            return solvers[0]
        return StaggeredEuler()

    def voltage_coupling(self):
        """The implicit solve of the gap junctions together with the populations' own
        couplings (cells' axial currents) (:class:`GapCoupling`), or ``None``."""
        gaps, internal = self._connected_gap_junctions(), self._internal_couplings()
        if not gaps and not internal:
            return None
        return GapCoupling(junctions=gaps, capacitance=self.capacitance, internal=internal, tol=self.coupling_tol)

    def init_state(self, v0):
        v0 = jnp.broadcast_to(jnp.asarray(v0, dtype=jnp.result_type(float)), self.shape)
        vs, gates, events = [], {}, {}
        for name, shp in zip(self.names, self.shapes):
            sub = self.populations[name].init_state(v0[self._slices()[name]].reshape(shp))
            vs.append(jnp.reshape(sub.v, (-1,)))
            if sub.gates:
                gates[name] = sub.gates
            if sub.events:
                events[name] = sub.events
        for group in self.synapse_groups():
            events[grouped.state_name(group)] = grouped.as_one(group).init_events(jnp.result_type(float))
        for c in self.poisson_inputs:
            events[c.name] = c.init_events(jnp.result_type(float))
        return State(v=jnp.concatenate(vs), gates=gates, events=events)

    def state_at_start(self, t0, state):
        """``state`` (from :meth:`init_state`) for a run starting at ``t0`` (ms): each
        synapse passes over the spikes that arrived before it (see
        :meth:`AbstractSynapse.events_at_start`)."""
        if not self.synapses:
            return state
        events = dict(state.events)
        for group in self.synapse_groups():
            key, syn = grouped.state_name(group), grouped.as_one(group)
            events[key] = syn.events_at_start(t0, events[key], self._pre_spikes(syn, state))
        return State(v=state.v, gates=state.gates, events=events)

    def state_continued(self, t0, state):
        """``state`` (a finished run's final state, ``simulate(init=...)``) for a run
        continued from ``t0`` (ms) by this network, whose spike sources may hold other
        trains than the state (a new part of a long run with its own input): each
        source's buffer keeps the state's spikes before ``t0`` (those still in flight are
        delivered as in one long run) and the spikes the continued network gives from
        ``t0`` on. Synapses go on where they stopped. A ValueError if the merged trains
        do not fit the buffer (the source's capacity)."""
        events = dict(state.events)
        for name in self.names:
            pop = self.populations[name]
            if not (getattr(pop, "is_source", False) and name in events):
                continue
            old = events[name]["spikes"]
            merged = self._merged_trains(name, old, jnp.asarray(pop.spikes, dtype=old.dtype), t0, state)
            events[name] = {**events[name], "spikes": merged,
                            "count": jnp.sum(merged <= t0, axis=-1).astype(events[name]["count"].dtype)}
        return State(v=state.v, gates=state.gates, events=events)

    def _merged_trains(self, name, old, new, t0, state):
        """Source ``name``'s trains for a continued run: the state's ``old`` spikes before
        ``t0`` and those its synapses have taken up (the first ``next`` slots of a row,
        which must stay where they are), then ``new``'s from ``t0`` on."""
        capacity = old.shape[-1]
        rows = old.reshape(-1, capacity)
        taken = jnp.zeros(rows.shape[0], dtype=jnp.int32)
        for group in self.synapse_groups():
            syn = grouped.as_one(group)
            if syn.pre[0] != name:
                continue
            nxt = jax.lax.stop_gradient(state.events[grouped.state_name(group)]["next"]).astype(jnp.int32)
            source = syn._buffer_rows()
            if source is not None:  # a pointer per connection (or group row): the furthest of a row's
                nxt = jax.ops.segment_max(nxt, jnp.asarray(source), num_segments=rows.shape[0])
            taken = jnp.maximum(taken, nxt)
        keep = (jnp.arange(capacity) < taken[:, None]) | (rows < t0)
        later = new.reshape(-1, capacity)
        both = jnp.concatenate([jnp.where(keep, rows, jnp.inf), jnp.where(later >= t0, later, jnp.inf)], axis=-1)
        both = jnp.sort(both, axis=-1, stable=True)  # the state's first, ties included
        advice = ("give the sources a larger capacity (poisson_spikes(capacity=...), or pad SpikeTrains "
                  "with inf)")
        if not units.is_concrete(both):  # traced trains: checked when the run executes
            over = jnp.any(jnp.isfinite(both[:, capacity:]))
            both = eqx.error_if(both, over, f"simulate: spike source {name!r}: its spikes before t0 (from init) "
                                            f"and the continued network's from t0 on exceed its capacity; {advice}")
        elif bool(np.any(np.isfinite(np.asarray(both[:, capacity:])))):
            need = int(np.max(np.sum(np.isfinite(np.asarray(both)), axis=-1)))
            raise ValueError(
                f"simulate: spike source {name!r}: its spikes before t0 = {float(t0):g} ms (from init) and the "
                f"continued network's from t0 on need {need} slots per source, its capacity is {capacity}; {advice}"
            )
        return both[:, :capacity].reshape(old.shape)

    def coupling_currents(self, t, state):
        """``(i_gap, i_syn)``: gap and synaptic currents (nA, inward) into every
        compartment, flat."""
        i_gap = jnp.zeros_like(state.v)
        for c in self.gap_junctions:
            i_gap = i_gap + c.current(state.v)
        i_syn = jnp.zeros_like(state.v)
        for group in self.synapse_groups():
            c = grouped.as_one(group)
            i_syn = i_syn + c.current(t, state.v, state.events[grouped.state_name(group)], self._pre_spikes(c, state))
        return i_gap, i_syn

    def synapse_groups(self) -> tuple:
        """The synapses as a time step runs them: those of one kind from one
        population together (:mod:`jaxneuro.coupling.grouped`), each group's kernel
        states in ``state.events`` under :func:`~jaxneuro.coupling.grouped.state_name`."""
        return grouped.groups(self.synapses) if self.group_synapses else tuple((s,) for s in self.synapses)

    def without_spikes(self, state):
        """``state`` with every population's spike buffer empty (``inf``): no arrivals
        for the synapses (the network at rest, :func:`jaxneuro.steady_state`)."""
        events = {name: ({**ev, "spikes": jnp.full_like(ev["spikes"], jnp.inf)} if "spikes" in ev else ev)
                  if name in self.names else ev for name, ev in state.events.items()}
        return State(v=state.v, gates=state.gates, events=events)

    @staticmethod
    def _pre_spikes(synapse, state):
        """The spike buffer of ``synapse``'s presynaptic population, one row per neuron."""
        spikes = state.events[synapse.pre[0]]["spikes"]
        return spikes.reshape((-1, spikes.shape[-1]))

    def vector_field(self, t, state, i_inj):
        i_gap, i_syn = self.coupling_currents(t, state)
        i_total = i_inj + i_gap + i_syn
        dv, dgates, devents = [], {}, {}
        for name in self.names:
            s = self._slices()[name]
            shp = self.shapes[self.names.index(name)]
            d = self.populations[name].vector_field(t, self._sub_state(state, name), i_total[s].reshape(shp))
            dv.append(jnp.reshape(d.v, (-1,)))
            if name in state.gates:
                dgates[name] = d.gates
            if name in state.events:
                devents[name] = jax.tree.map(jnp.zeros_like, state.events[name])
        for key in [grouped.state_name(g) for g in self.synapse_groups()] + [c.name for c in self.poisson_inputs]:
            devents[key] = jax.tree.map(jnp.zeros_like, state.events[key])
        return State(v=jnp.concatenate(dv), gates=dgates, events=devents)

    def independent_gates(self, keys) -> list:
        """``keys`` (gate leaf paths ``(population, ...)``) in batches whose rates do
        not depend on each other's values: the same gate of different populations (a
        population's gates depend on its own voltages and gates alone). The default
        solver linearises each batch with one JVP."""
        batches = {}
        for k in keys:
            batches.setdefault(k[1:], []).append(k)
        return [tuple(b) for b in batches.values()]

    def gate_groups(self):
        """The populations' gates advanced together by the default solver, as leaf
        paths ``(population, gate)``."""
        out = []
        for name in self.names:
            inner = getattr(self.populations[name], "gate_groups", None)
            for group in (inner() if inner is not None else ()):
                out.append(tuple((name,) + path for path in group))
        return tuple(out)

    def resolve_events(self, t0, t1, y0, y1, a, b):
        """Delta synapses' and Poisson inputs' voltage jumps at the step's end first;
        then each population resolves its own events (spikes, resets) on its part of
        the linearised flow; then every other synapse takes up the spikes arriving in
        the step."""
        events = dict(y1.events)
        jumping = [syn for syn in self.synapses if syn.jumps_voltage]
        jump = None
        if jumping or self.poisson_inputs:
            # Voltage jumps (delta synapses) at the step's end, before the populations
            # look for threshold crossings: a jump to threshold fires at t1. An arrival
            # while its neuron is refractory is lost. Arrivals come from the spike
            # buffers at the step's start (a spike of this step arriving in it, with
            # delay < dt, acts at the next step's end).
            open_from = self._input_blocked_until(y0)
            jump = jnp.zeros_like(y1.v)
            for syn in jumping:
                before, spikes = y0.events[syn.name], self._pre_spikes(syn, y0)
                events[syn.name] = syn.advance(t0, t1, before, spikes)
                jump = jump + syn.voltage_jump(t0, t1, before, events[syn.name], spikes, open_from)
            for c in self.poisson_inputs:
                events[c.name], drawn = c.advance_and_jump(t0, t1, y0.events[c.name], open_from)
                jump = jump + drawn
            y1 = State(v=y1.v + jump, gates=y1.gates, events=y1.events)
        v1 = y1.v
        gates = dict(y1.gates)
        for name in self.names:
            pop = self.populations[name]
            if name not in y0.events or not hasattr(pop, "resolve_events"):
                continue
            s = self._slices()[name]
            shp = self.shapes[self.names.index(name)]
            # A neuron whose refractory period ends within the step takes the jumps
            # arriving after it on the flow from its reset; a spike detector times a
            # crossing made by a jump at the step's end, not before the jump.
            kw = {"jump": jump[s].reshape(shp)} if jump is not None and getattr(pop, "resolves_jumps", False) else {}
            out = pop.resolve_events(
                t0, t1, self._sub_state(y0, name), self._sub_state(y1, name),
                a[s].reshape(shp), b[s].reshape(shp), **kw,
            )
            v1 = v1.at[s].set(jnp.reshape(out.v, (-1,)))
            events[name] = out.events
            if name in gates:
                gates[name] = out.gates
        for group in self.synapse_groups():
            syn, key = grouped.as_one(group), grouped.state_name(group)
            if syn.jumps_voltage:
                continue
            spikes = events[syn.pre[0]]["spikes"]
            events[key] = syn.advance(t0, t1, y0.events[key], spikes.reshape((-1, spikes.shape[-1])))
        return State(v=v1, gates=gates, events=events)

    def _input_blocked_until(self, state):
        """Flat over all compartments: the time (ms) up to which each takes no input,
        a spiking neuron's refractory period's end (-inf elsewhere)."""
        parts = []
        for name, shape in zip(self.names, self.shapes):
            ref_end = state.events.get(name, {}).get("ref_end")
            if ref_end is None:
                ref_end = jnp.full(shape, -jnp.inf, dtype=state.v.dtype)
            parts.append(jnp.reshape(ref_end, (-1,)).astype(state.v.dtype))
        return jnp.concatenate(parts)

    # --- stimuli --------------------------------------------------------------------------
    def place_current(self, target, i):
        slices = self._slices()
        if target is None:
            if len(self.names) > 1 and tuple(jnp.shape(i)) == tuple(self.shape):
                # One value per compartment of the whole network: each population its own.
                return jnp.concatenate([jnp.reshape(self.populations[n].place_current(None, i[slices[n]]), (-1,))
                                        for n in self.names])
            parts = []
            for n in self.names:
                try:
                    parts.append(jnp.reshape(self.populations[n].place_current(None, i), (-1,)))
                except ValueError as e:
                    raise ValueError(
                        f"stimulus target=None (the whole network): the current of shape {jnp.shape(i)} does not "
                        f"fit population {n!r} ({e}); give one value for all, one per compartment of the network "
                        f"(shape {tuple(self.shape)}), or aim it at a population (target='{n}')"
                    ) from None
            return jnp.concatenate(parts)
        named = population_target(target)
        if named is None:
            raise ValueError(
                f"stimulus target={target!r}: in a Network a stimulus targets a population by name "
                f"(target='a') or some of its compartments (target=('a', indices)); populations: {self.names}"
            )
        name, idx = named
        if name not in slices:
            raise ValueError(f"stimulus target={target!r}: no population {name!r}; this network has {self.names}")
        if getattr(self.populations[name], "is_source", False):
            raise ValueError(
                f"stimulus target={target!r}: population {name!r} is a spike source "
                f"({type(self.populations[name]).__name__}), which has no membrane for a current; its spike "
                "times are given, not driven"
            )
        try:
            local = jnp.reshape(self.populations[name].place_current(idx, i), (-1,))
        except ValueError as e:  # the population's message knows only the indices
            raise ValueError(f"stimulus target={target!r} in population {name!r}: {e}") from None
        out = jnp.zeros(self.shape, dtype=local.dtype)
        return out.at[slices[name]].set(local)

    def connections(self, name: str):
        """``(pre, post)``: the connections of the coupling ``name`` as NumPy integer
        arrays of compartment indices within its pre and post populations (as
        ``("a", indices)`` counts them; a cell's flat segment index), one entry per
        connection, in the order of its per-connection parameters (``g_max``,
        ``delay``). These are the connections a rule drew in this network (a seeded
        rule's draw depends on the sides too, so calling the rule gives others)."""
        named = {c.name: c for c in self.couplings}
        if name not in named:
            raise ValueError(f"Network.connections: no coupling named {name!r}; the couplings are {tuple(named)}")
        c = named[name]
        slices = self._slices()
        return (np.asarray(c.pre_index, dtype=np.int64) - slices[c.pre[0]].start,
                np.asarray(c.post_index, dtype=np.int64) - slices[c.post[0]].start)

    def per_population(self, flat) -> dict:
        """``{population: values}``: a flat array over all compartments split and shaped
        per population."""
        slices = self._slices()
        return {name: flat[..., slices[name]].reshape(flat.shape[:-1] + tuple(shape))
                for name, shape in zip(self.names, self.shapes)}

    def membrane_area_for(self, target):
        """Membrane area (µm²) of every compartment, flat, as a current density aimed at
        ``target`` is scaled by: each targeted population's own (its segments', its
        neurons'), 1 elsewhere (those compartments get no current). A population
        without an area (a point neuron built without ``area``) is named if targeted."""
        named = population_target(target)
        # A whole-network stimulus passes spike sources by (they have no membrane).
        targeted = ({n for n in self.names if not getattr(self.populations[n], "is_source", False)}
                    if target is None else {named[0]} if named else set())
        parts = []
        for name, shape in zip(self.names, self.shapes):
            pop = self.populations[name]
            if name in targeted:
                try:
                    area = pop.membrane_area
                except ValueError as e:
                    raise ValueError(f"population {name!r}: {e}") from None
                parts.append(jnp.reshape(jnp.broadcast_to(area, shape), (-1,)))
            else:
                parts.append(jnp.ones((math.prod(shape),), dtype=jnp.result_type(float)))
        return jnp.concatenate(parts)

    # --- recording ------------------------------------------------------------------------
    def observables(self):
        names = ["v", "i_gap", "i_syn"]
        for n in self.names:
            names += [x for x in self.populations[n].observables() if x not in names]
        for syn in self.synapses:  # "g" (conductance synapses), "i" (current-based ones)
            if syn.record_name is not None and syn.record_name not in names:
                names.append(syn.record_name)
        return tuple(names)

    def unit_of(self, name):
        """The unit of ``name`` wherever the network records it: ``i_gap``, ``i_syn`` nA,
        a synapse's ``g`` µS, a current-based synapse's ``i`` nA, other names their
        populations' (a channel current is mA/cm² on a compartment). A name whose unit
        differs between populations (``i_cap`` of a LIF, nA, and of a compartment,
        mA/cm²) is a ValueError; ask :meth:`member_unit` for one population's."""
        found = {self.member_unit(member, name) for member in self._members_recording(name)}
        if not found:
            raise ValueError(f"unit_of: {name!r} is not a record name of this Network; it records "
                             f"{self.observables()}")
        if len(found) > 1:
            raise ValueError(f"unit_of: {name!r} has different units in different populations ({sorted(found)}); "
                             "ask member_unit(population, name)")
        return found.pop()

    def member_unit(self, member: str, name: str) -> str:
        """The unit of ``name`` as population (or synapse) ``member`` records it."""
        if name in ("i_gap", "i_syn", "i_inj"):
            return "nA"  # the network's own coupling currents, into each compartment
        if member not in self.names:  # a synapse records its output: g (µS) or a current i (nA)
            syn = next((c for c in self.synapses if c.name == member), None)
            if syn is None or name != syn.record_name:
                raise ValueError(f"member_unit: {member!r} does not record {name!r} in this Network")
            return syn.record_unit
        return self.populations[member].unit_of(name)

    def _members_recording(self, name):
        pops = [n for n in self.names if name in ("i_gap", "i_syn") or name in self.populations[n].observables()]
        return pops + [syn.name for syn in self.synapses if syn.record_name == name]

    def observe(self, name, t, state, i_inj):
        """``{member: value}`` for every population (and synapse) that records ``name``."""
        i_gap, i_syn = self.coupling_currents(t, state)
        i_total = i_inj + i_gap + i_syn
        out = {}
        for pop_name in self.names:
            s = self._slices()[pop_name]
            shp = self.shapes[self.names.index(pop_name)]
            if name == "i_gap":
                out[pop_name] = i_gap[s].reshape(shp)
            elif name == "i_syn":
                out[pop_name] = i_syn[s].reshape(shp)
            elif name in self.populations[pop_name].observables():
                out[pop_name] = self.populations[pop_name].observe(
                    name, t, self._sub_state(state, pop_name), i_total[s].reshape(shp)
                )
        for group in self.synapse_groups():
            syn = grouped.as_one(group)
            if name != syn.record_name:  # "g" (µS), or "i" (nA) of a current-based synapse
                continue
            # Exact delivery: what the currents use, arrivals by t included (a spike
            # arriving at the run's start shows from its first sample). NEURON's
            # delivery: the state at t, each event counted from its delivery
            # midpoint (NEURON's own record is half a step further decayed; see
            # jaxneuro.coupling.synapse).
            spikes = self._pre_spikes(syn, state) if syn.delivery == "exact" else None
            out.update(grouped.member_connections(group, syn.output(t, state.events[grouped.state_name(group)], spikes)))
        return out

    def make_trace(self, ts, values, events, span=None, order=None, counts_span=False):
        """One :class:`~jaxneuro.Trace` per population (and recorded synapse), from
        what ``simulate`` saved; reached as ``trace[name]``. ``span``: the run's
        ``(t0, t1)`` (ms); ``order``: the record names in the order ``record=`` gave
        them (``values`` comes back from ``jit`` sorted), which each part's names
        and plots follow (None: as ``values`` has them); ``counts_span``: whether the
        spike counts are this run's alone (:attr:`Trace.counts_span`)."""
        for group in self.synapse_groups():
            late = (events or {}).get(grouped.state_name(group), {}).get("late")
            if late is not None:
                report_counts(grouped.member_sums(group, late), [_late_arrivals(syn) for syn in group],
                              stacklevel=outside_stacklevel(), at_run_time=True)  # the voltages change
        parts = {}
        n_connections = {s.name: s.n_connections for s in self.synapses}
        for member in list(self.names) + list(n_connections):
            vals = {k: v[member] for k, v in values.items() if member in v}
            ev = (events or {}).get(member, {})
            if member not in self.names and not vals:
                continue
            spikes, count = ev.get("spikes"), ev.get("count")
            names = [k for k in (order or vals) if k in vals]
            columns = None
            if member in n_connections:  # a synapse: a column per connection
                columns = tuple((k, tuple(f"connection {i}" for i in range(n_connections[member]))) for k in names)
            part = Trace(t=ts, values=vals, spikes=spikes, spike_count=count, span=span, counts_span=counts_span,
                         columns=columns,
                         order=tuple(names) if order is not None else None,
                         units=tuple((k, self.member_unit(member, k)) for k in names))
            if part.spikes is not None:
                _report_overflow(member, self.populations[member], part)
            parts[member] = part
        return Trace(t=ts, values={}, parts=parts, span=span)


def _capacity_setting(pop) -> str:
    """The argument that sets ``pop``'s spike buffer length, as a user writes it."""
    name = type(pop).__name__
    return f"{name}(..., capacity=...)" if hasattr(pop, "capacity") else f"{name}(spike_capacity=...)"


def _report_overflow(member, pop, part):
    """Warn if a neuron of population ``member`` fired more spikes than its buffer
    holds: synapses from it miss the rest (see :func:`report_overflow`)."""
    capacity = part.spikes.shape[-1]
    report_overflow(
        overflowed_of(part),
        lambda n: (f"spike buffer overflow in population {member!r}: {n} {spiking_units(pop)} fired more than "
                   f"spike_capacity={capacity} spikes; synapses from it miss the rest, "
                   f"trace[{member!r}].spikes keeps the first {capacity} and .spike_count has the true "
                   f"counts. Raise {_capacity_setting(pop)} to keep them all."),
        stacklevel=outside_stacklevel(),
        at_run_time=True,  # synapses from it miss the spikes: the results change
    )


def _late_arrivals(synapse):
    """The warning, given a count, that ``synapse`` took up spikes a step or more after
    they arrived: more than its ``max_arrivals_per_step`` from one presynaptic neuron
    within a step."""
    name, window = synapse.name, synapse.max_arrivals_per_step
    effect = ("so their jumps came a step or more late, and those that reached a neuron after it had fired "
              "(refractory by their arrival times) were lost" if synapse.jumps_voltage
              else f"so the {'current' if synapse.record_name == 'i' else 'conductance'} was low until then")
    return lambda n: (f"synapse {name!r}: {n} time(s) more than max_arrivals_per_step={window} spikes of one "
                      "presynaptic neuron arrived within a step (spike sources with close times); the rest were "
                      f"taken up in the following step(s) with their true arrival times, {effect}. Raise "
                      f"{type(synapse).__name__}(max_arrivals_per_step=...) to the most spikes of one source within "
                      "a step (for Poisson input at rate nu per source, nu·dt + 5·sqrt(nu·dt) + 3 leaves almost none "
                      "late).")


def _location_index(pop, name, location, carries_current=True):
    """Segment index of ``location = (section, x)`` on a cell or cable population
    (``section`` None: a bare ``x`` on a one-section cable).

    A section's end (x = 1, or a root's x = 0) is NEURON's zero-area node there, which
    jaxneuro's cells do not hold as a state. A coupling's current there (a synapse's
    post side, either side of a gap junction) would pass through the end segment's
    half resistance in NEURON and act on the end segment directly here (0.85 mV off
    NEURON for an ExpSyn at a dendrite's x = 1), so it is refused, naming the end
    segment's centre instead; so is a spike source (a synapse's pre side) at an end
    where children join, whose voltage NEURON averages over the neighbours. A source at
    an end without children reads the end segment's voltage, which is the node's."""
    cell = pop.as_cell() if hasattr(pop, "as_cell") else pop
    where = f"coupling side ({name!r}, {location!r})"
    if not isinstance(cell, Cell):
        raise ValueError(
            f"{where}: locations (section, x) need a cell population (jn.Cell or jn.Cable), "
            f"{name!r} is a {type(pop).__name__}"
        )
    try:
        s, x, index = cell._located(*location)  # what cell.index gives, with the resolved section and x
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None
    if x in (0.0, 1.0):
        neighbours, _ = cell._node_neighbours(*location)
        if carries_current or len(neighbours) > 1:
            section = cell.section_names[s]
            nseg = cell.sections[s].nseg
            inside = (section, 1.0 - 0.5 / nseg if x == 1.0 else 0.5 / nseg)
            what = ("a coupling's current there would act on the end segment, not pass through its half "
                    "resistance as in NEURON" if carries_current else
                    "NEURON reads a voltage there averaged over the segments that join it")
            raise ValueError(
                f"{where}: x = {x:g} of section {section!r} is the section's end, NEURON's zero-area "
                f"node, which jaxneuro's cells do not hold; {what}. Give a location inside the "
                f"section, e.g. {inside!r} (the end segment's centre)"
            )
    return index
