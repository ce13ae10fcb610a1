"""Spike summaries instead of traces: threshold crossings found inside the time loop.

``simulate(model, t1, record=(), summary=jn.SpikeSummary(threshold=0.0))`` keeps, per
compartment, the times of the first ``capacity`` upward crossings of ``threshold`` (mV)
and how many there were, and stores no voltage trace at all: memory is
``O(n · capacity)`` whatever the duration, which is what a population of a million
neurons needs. The result is in ``trace.spikes`` (ms, padded with ``inf``) and
``trace.spike_count``, as for spiking point neurons; firing rates follow as
``spike_count / duration``.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from .. import units
from .._repr import values_repr
from ..model import AbstractModel
from ..state import State


class SpikeSummary(eqx.Module):
    """What :func:`jaxneuro.simulate` keeps with ``summary=``: upward crossings of
    ``threshold`` (mV, default 0) by each compartment's voltage, their times (ms), the
    first ``capacity`` of them (static, default 16; a power of two suits the GPU
    kernel) and their total count. ``timing`` (static) as for :class:`SpikeDetector`:
    ``"interpolated"`` (default) or ``"neuron"``."""

    threshold: object = units.param(units.mV, default=0.0)
    capacity: int = eqx.field(default=16, static=True, converter=units.as_count)

    __repr__ = values_repr  # threshold=-20.0, not f32[]
    timing: str = eqx.field(default="interpolated", static=True)

    def __post_init__(self):
        units.convert_fields(self)
        _check_capacity(self)
        _check_timing(self)


#: How a detector times a crossing: linearly interpolated within the step, or at the
#: end of the step in which it happened (NEURON's ``NetCon`` with fixed steps).
TIMINGS = ("interpolated", "neuron")

#: What NEURON adds (ms) to the end of the step in which a ``NetCon``'s source crossed
#: its threshold, with fixed steps (its ``teps``): a spike of a step ending at 1.6 ms
#: is recorded at 1.6000000001 ms, so an arrival falling exactly on a step's midpoint
#: (a delay of an odd number of half steps) is delivered in the next step.
NEURON_THRESHOLD_DELAY = 1e-10


def _check_timing(module) -> None:
    if module.timing not in TIMINGS:
        raise ValueError(f"{type(module).__name__}.timing expects one of {TIMINGS}, got {module.timing!r}")


def _check_capacity(module) -> None:
    """ValueError unless ``module.capacity`` (a static buffer length) is a positive int."""
    units.positive_int(module.capacity, f"{type(module).__name__}.capacity")


def _delegated(name: str) -> property:
    """A property reading the wrapped ``model``'s attribute ``name`` (an
    AttributeError where it has none, so ``hasattr`` tells)."""
    return property(lambda self: getattr(self.model, name), doc=f"The wrapped model's ``{name}``.")


def crossed_upward(before, after, threshold):
    """Where a voltage (mV; arrays or NumPy arrays) went from ``before`` to ``after``
    across ``threshold`` upwards: NEURON's ``NetCon`` rule, at or below it, then above
    it (a voltage starting exactly at it and rising counts; one touching it and turning
    back does not). The one rule of spike detection, recorded traces' crossings and the
    analysis' firing checks."""
    return (before <= threshold) & (after > threshold)


class SpikeDetector(AbstractModel):
    """``model`` with a spike detector: the same dynamics, plus event buffers
    (``spikes``, ``count``, ms) of each compartment's upward crossings of ``threshold``
    (mV): steps from a voltage at or below it to one above it, NEURON's ``NetCon``
    rule. They are timed as ``timing`` says (below), and the default solver updates the
    buffers after each step through :meth:`resolve_events`. Built by
    ``simulate(..., summary=...)``. A run starting above the threshold has no crossing
    there (NEURON's ``finitialize`` has its ``NetCon`` fire at the start).

    In a :class:`~jaxneuro.Network` it makes any model a spiking population, so that
    synapses can start from it, as NEURON's ``NetCon`` watches a voltage:
    ``jn.SpikeDetector(hh_cell, threshold=0.0, capacity=64)``, with a synapse from
    ``("cell", [("axon", 0.9)])`` reading the crossings there. The first ``capacity``
    crossings per compartment are kept (and transmitted).

    ``timing`` (static): ``"interpolated"`` (default) times a crossing by linear
    interpolation within its step; ``"neuron"`` at the end of the step in which the
    voltage crossed, plus NEURON's 1e-10 ms (:data:`NEURON_THRESHOLD_DELAY`), as
    NEURON's ``NetCon`` does with fixed steps (its default
    ``cvode.condition_order(1)``): up to a step later, and what reproduces a NEURON
    network's spike times and synaptic events exactly."""

    model: AbstractModel
    threshold: object = units.param(units.mV, default=0.0)
    capacity: int = eqx.field(default=16, static=True, converter=units.as_count)
    timing: str = eqx.field(default="interpolated", static=True)
    #: Update the buffers under a ``lax.cond`` taken only in steps where some
    #: compartment crossed (static). The fused GPU kernel sets it: per block of 128
    #: neurons most steps have no crossing, and skipping the ``capacity``-wide update
    #: cut a million-neuron run's time by 20 % on an H200. In XLA loops over a whole
    #: population nearly every step has one, so there the plain update stays.
    skip_quiet_steps: bool = eqx.field(default=False, static=True)
    #: Crossings held back per compartment before they are written (static; 0: each
    #: written in its step). The fused GPU kernel may set it (``pallas.SPIKE_FLUSH_EVERY``):
    #: a step then puts its crossing times in ``events["pending"]`` (shape
    #: ``(..., pending_slots)``, ``inf`` where empty), with no test across the block of
    #: neurons, and the kernel moves them into the buffer every few steps
    #: (:meth:`flush_pending`). Same spikes and counts. Not a constructor argument: held
    #: crossings are written only by a loop that flushes them.
    pending_slots: int = eqx.field(default=0, static=True, init=False, repr=False)

    def __post_init__(self):
        if not isinstance(self.model, AbstractModel):
            raise ValueError(f"SpikeDetector.model expects a jaxneuro model, got {type(self.model).__name__}")
        units.flag(self.skip_quiet_steps, "SpikeDetector.skip_quiet_steps")
        if jax.eval_shape(self.model.init_state, self.model.default_v0).events:
            raise ValueError(
                f"SpikeDetector: {type(self.model).__name__} records its own spikes already; use it as it is"
            )
        _check_capacity(self)
        _check_timing(self)
        super().__post_init__()

    # The wrapped model's own: its compartments, and its geometry for stimuli, clamps
    # and coupling locations.
    shape = _delegated("shape")
    default_v0 = _delegated("default_v0")
    membrane_area = _delegated("membrane_area")
    capacitance = _delegated("capacitance")
    n_segments = _delegated("n_segments")
    # Its columns' names (a cable's or cell's "section(x)"), which traces keep as labels.
    segment_labels = _delegated("segment_labels")

    def default_solver(self):
        return self.model.default_solver()

    def place_current(self, target, i):
        return self.model.place_current(target, i)

    def precomputed(self):
        inner = self.model.precomputed()
        return self if inner is self.model else eqx.tree_at(lambda d: d.model, self, inner)

    def index(self, *location):
        return self.model.index(*location)

    def as_cell(self):
        """The wrapped cable or cell as a :class:`~jaxneuro.Cell` (for locations)."""
        inner = self.model
        return inner.as_cell() if hasattr(inner, "as_cell") else inner

    def voltage_coupling(self):
        return self.model.voltage_coupling()

    def init_state(self, v0):
        s = self.model.init_state(v0)
        f = s.v.dtype
        events = {
            "spikes": jnp.full(s.v.shape + (self.capacity,), jnp.inf, dtype=f),
            "count": jnp.zeros(s.v.shape, dtype=f),
        }
        return State(v=s.v, gates=s.gates, events=events)

    def vector_field(self, t, state, i_inj):
        d = self.model.vector_field(t, State(v=state.v, gates=state.gates), i_inj)
        return State(v=d.v, gates=d.gates, events=jax.tree.map(jnp.zeros_like, state.events))

    def gate_increments(self, v, gates, dt):
        """The wrapped model's gate increments over ``dt`` (ms) at ``v`` (mV), for the
        default solver (its gates advanced exactly where its channels allow); {} if it
        gives none. (One-off measurements: 1000 HH compartments with a detector ran 1.5x
        faster than from the vector field's JVP; a Network does not forward its
        populations' increments, as in its loop the JVP was faster, 0.092 against 0.13 s
        for benchmarks/syn_network.py.)"""
        inner = getattr(self.model, "gate_increments", None)
        return {} if inner is None else inner(v, gates, dt)

    def gate_groups(self):
        """The wrapped model's gates advanced together by the default solver."""
        inner = getattr(self.model, "gate_groups", None)
        return () if inner is None else inner()

    def observables(self):
        return self.model.observables()

    def observe(self, name, t, state, i_inj):
        return self.model.observe(name, t, State(v=state.v, gates=state.gates), i_inj)

    #: resolve_events takes the voltage jumps of delta synapses (``jump=``).
    resolves_jumps = True

    def resolve_events(self, t0, t1, y0, y1, a, b, jump=None):
        """Record upward crossings of ``threshold`` between ``y0.v`` and ``y1.v``
        (at or below it, then above it).
        ``jump``: voltage jumps (mV, delta synapses) at ``t1``, already in ``y1.v``:
        a crossing they make is timed at ``t1``, and one the voltage made before them
        is interpolated without them."""
        del a, b
        thr = self.threshold
        crossed = crossed_upward(y0.v, y1.v, thr)
        flow_end = y1.v if jump is None else y1.v - jump  # the voltage the step's flow reached

        def crossing_times():
            if self.timing == "neuron":
                return jnp.broadcast_to(t1 + NEURON_THRESHOLD_DELAY, crossed.shape).astype(y1.v.dtype)
            by_flow = flow_end > thr
            rise = jnp.where(crossed & by_flow, flow_end - y0.v, 1.0)
            return jnp.where(by_flow, t0 + (thr - y0.v) / rise * (t1 - t0), t1)

        def record(ev):
            # In the fused kernel (skip_quiet_steps) a compare against an iota, which
            # Pallas lowers; in XLA loops the choice of the platform.
            write = write_by_select if self.skip_quiet_steps else write_spike_times
            return {"spikes": write(ev["spikes"], ev["count"], crossed, crossing_times()),
                    "count": ev["count"] + crossed.astype(ev["count"].dtype)}

        count = y0.events["count"]
        if self.pending_slots:  # held back, in the slot after those already held
            pending = y0.events["pending"]
            events = dict(y0.events, pending=write_by_select(pending, _held(pending, count), crossed, crossing_times()),
                          count=count + crossed.astype(count.dtype))
        elif self.skip_quiet_steps:
            events = jax.lax.cond(any_crossed(crossed), record, lambda ev: ev, y0.events)
        else:
            events = record(y0.events)
        return State(v=y1.v, gates=y1.gates, events=events)

    def hold_back(self, events):
        """``events`` with an empty ``"pending"`` buffer of :attr:`pending_slots`."""
        shape = events["count"].shape + (self.pending_slots,)
        return dict(events, pending=jnp.full(shape, jnp.inf, events["spikes"].dtype))

    def flush_pending(self, events):
        """``events`` with the held-back crossing times written into ``"spikes"`` at
        their slots (after the ``count`` minus held ones already written; none past
        ``capacity``) and ``"pending"`` emptied."""
        pending, count = events["pending"], events["count"]
        written = count - _held(pending, count)
        slots = jnp.arange(pending.shape[-1])
        spikes = events["spikes"]
        for j in range(pending.shape[-1]):
            # Column j by a masked max (Pallas' Triton lowering takes no column slices).
            t = jnp.max(jnp.where(slots == j, pending, -jnp.inf), axis=-1)
            spikes = write_by_select(spikes, written + j, jnp.isfinite(t), t)
        return dict(events, spikes=spikes, pending=jnp.full_like(pending, jnp.inf))


def _held(pending, count):
    """How many crossing times each compartment holds back (the finite ones of
    ``pending``), in ``count``'s dtype."""
    return jnp.sum(jnp.isfinite(pending).astype(count.dtype), axis=-1)


def any_crossed(crossed):
    """Whether any entry of the boolean ``crossed`` is set, as a scalar predicate for
    ``lax.cond``: a max over an int32 cast rather than ``any()``, which Pallas' Triton
    lowering does not take."""
    return jnp.max(crossed.astype(jnp.int32)) > 0


def write_by_select(spikes, count, crossed, t):
    """``spikes`` (shape ``(..., capacity)``, ms) with ``t`` written at slot ``count``
    where ``crossed``; nothing where ``count >= capacity`` (the buffer is full). Every
    slot is selected anew: ``capacity`` values read and written per compartment."""
    slot = (jnp.arange(spikes.shape[-1]) == count[..., None]) & crossed[..., None]
    return jnp.where(slot, t[..., None], spikes)


def write_by_scatter(spikes, count, crossed, t):
    """As :func:`write_by_select`, as a scatter of one value per compartment (the
    others, and a full buffer's, go to an index past the end and are dropped)."""
    capacity = spikes.shape[-1]
    flat = spikes.reshape(-1, capacity)
    col = jnp.where(crossed, count, capacity).astype(jnp.int32).reshape(-1)
    rows = jnp.arange(flat.shape[0])
    t = jnp.broadcast_to(t, crossed.shape).reshape(-1)
    return flat.at[rows, col].set(t.astype(spikes.dtype), mode="drop").reshape(spikes.shape)


def write_spike_times(spikes, count, crossed, t):
    """:func:`write_by_select` on CPUs, :func:`write_by_scatter` elsewhere (chosen when
    the program is lowered). On a GPU the select rewrites every slot in every step (a
    million neurons with 16 slots: 64 MB per step in float32) where the scatter writes
    one value per neuron; on a CPU a scatter would keep XLA from compiling the time
    loop into one kernel (:mod:`jaxneuro.xla_cpu`), and the select is cheap there."""
    return jax.lax.platform_dependent(
        spikes, count, crossed, t, cpu=write_by_select, default=write_by_scatter)
