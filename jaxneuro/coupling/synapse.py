"""Chemical synapses: conductances opened by presynaptic spikes after a delay, and
current-based synapses (:class:`ExpCurrentSynapse`) whose kernels are currents. What
follows says conductance and ``g_max``; for a current-based synapse read its current
(nA, recorded as ``i``) and ``weight``.

Each connection has its own conductance; connections that share one delay and time
constant share their presynaptic neuron's kernel state, scaled by their ``g_max`` (the
state is then per neuron, not per connection). A spike of presynaptic neuron ``j``
at time ``t_s`` (found inside the solver step, see
:class:`~jaxneuro.AbstractSpikingNeuron`) arrives at every connection from ``j`` at
``t_s + delay``. At the end of each step the conductances are advanced *exactly* from
``t0`` to ``t1``: the old state decays analytically and each arrival in ``(t0, t1]`` adds
its kernel evaluated at ``t1 − t_arrival``. So the conductance time course is exact at
every step boundary, independent of ``dt``, and linear (differentiable) in ``g_max``.
Presynaptic spike times and ``delay`` take **no gradient** through a synapse (it is
taken as 0, though the response moves with them): an arrival switches its conductance
on at a step boundary, and the derivative of that discrete choice would leave only the
decay term, of the wrong sign (a later EPSP gave a later voltage that seemed to rise). Within a step the voltage sees the
exact conductance at the step's midpoint, arrivals up to that time included (arrivals
from spikes in the same step, possible only with ``delay < dt``, count from the next
step), as NEURON's current is evaluated. The midpoint stands for the whole step, so a
conductance decaying within a step (``tau`` near ``dt`` or below) gives each PSP a size
that depends on where in the step its spike arrives: unbiased over many arrivals, but
one PSP with ``tau`` = 0.1 ms (NEURON's default) came out 5 % large at ``dt`` = 0.025 ms
and 0.79-1.58x at ``dt`` = 0.1 ms, against under 0.5 % for ``tau`` = 1 ms at 0.025 ms.
Keep ``dt`` several times below the shortest ``tau``. (:class:`ExpCurrentSynapse`,
whose current does not depend on the voltage, gives each step its mean current instead:
every arrival's exact charge.)

``delivery``: ``"exact"`` (default) switches each conductance on at its arrival time, as
above. NEURON's ``NetCon`` instead delivers an event to the step whose midpoint is the
first at or after its time, where it counts in full from that midpoint (its ``ExpSyn``
sees ``weight`` at once): up to half a step later than the arrival, a difference of up to
about ``dt/tau`` of a PSP (0.64-0.75 % of an ``ExpSyn`` PSP with ``tau`` = 3 ms at ``dt`` =
0.025 ms, 0.83 % being ``dt/tau``, depending on the membrane, at the worst position of the
arrival within a step). ``delivery="neuron"`` does the same and
reproduces ``ExpSyn`` + ``NetCon`` voltages and spike times to rounding; ``"exact"``
converges to the continuous-time answer as ``dt`` shrinks at the same rate. A recorded
``g`` with ``"neuron"`` is the conductance at the step's end, each event counted from
its delivery midpoint; NEURON records its ``ExpSyn``'s ``g`` half a step further decayed
(each time constant's part by ``exp(-dt / (2 tau))``: 0.6 % less for ``tau`` = 2 ms at
``dt`` = 0.025 ms; an ``Exp2Syn``'s rise shows half a step later there). The currents
that move the voltage are the same.

Arrivals are read from the presynaptic population's spike buffer (its
``spike_capacity`` slots), from each row's first spike not yet taken up: a pointer per
presynaptic neuron (per connection where delays or time constants differ) and
``max_arrivals_per_step`` slots per step, so the work per step does not grow with the
buffer's capacity. Spikes beyond the buffer's capacity are not transmitted;
``simulate`` then warns (a RuntimeWarning naming the population: raise its
``spike_capacity``), at once when run eagerly and, under ``jit``, ``grad`` or ``vmap``
(as in :func:`~jaxneuro.fit`), when the compiled program runs.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .. import units
from .base import AbstractCoupling, per_connection, require


class AbstractSynapse(AbstractCoupling):
    """A synapse driven by presynaptic spikes: each connection's output is its
    amplitude (the field ``_AMPLITUDE`` names) times a sum of kernels, one per spike
    arrival, advanced exactly as the module docstring says. By default the output is a
    conductance ``g`` (µS, amplitude ``g_max``) and the current ``I_post = g(t)·(E −
    V_post)`` (nA); a current-based synapse (:class:`ExpCurrentSynapse`) sets
    ``_AMPLITUDE``, ``_OUTPUT`` and :meth:`current` to deliver its output as a current.

    ``pre`` must be a spiking population (or some of its neurons); ``post`` any
    compartments. ``pre_local`` (filled in by the network) indexes the connections'
    presynaptic neurons within the ``pre`` population. ``row_source`` is None but in
    the synapse a network makes of several of one kind from one population to run
    them as one (:mod:`jaxneuro.coupling.grouped`), and in a synapse from some of a
    population's neurons (``pre=("a", indices)``) with one delay and time constant:
    there ``row_source`` gives each kernel state's row of the spike buffer and
    ``pre_local`` each connection's row. Such a synapse keeps a kernel state per
    neuron of its ``pre`` side, not of the whole population: a network written as one
    population in parts, a projection from part to part, then runs its synapses as one
    group over the parts' states (eight parts and 64 projections: 1.2× faster than
    eight populations; with a state per neuron of the population, 8× as many, it was
    2.4× slower).

    ``max_arrivals_per_step`` (static, default 2): spikes of one presynaptic neuron
    taken up per step. Spiking neurons never need more (see :meth:`_with_arrivals`);
    raise it for spike sources with several times within one step (``simulate``
    warns when a step had more, which were then taken up a step or two late).
    """

    #: The parameters given per connection (a scalar or one value each), and which of
    #: them are time constants (ms).
    _PARAMS = ("g_max", "tau", "E", "delay")
    _TIME_CONSTANTS = ("tau",)
    #: The parameter that scales each connection's kernels (its weight), and the name
    #: and unit of the output: the kernel state that holds it and the record name
    #: (``simulate(record=...)``, one column per connection) a Network stores it under.
    _AMPLITUDE = "g_max"
    _OUTPUT = ("g", "µS")
    #: Whether the synapse moves the voltage by jumps at the steps' ends
    #: (:class:`~jaxneuro.DeltaSynapse`) instead of by a current.
    jumps_voltage = False

    pre_local: object = eqx.field(default=None, kw_only=True)
    row_source: object = eqx.field(default=None, kw_only=True)
    delivery: str = eqx.field(default="exact", static=True, kw_only=True)
    max_arrivals_per_step: int = eqx.field(default=2, static=True, kw_only=True, converter=units.as_count)
    pre_size: int | None = eqx.field(default=None, static=True, kw_only=True)
    #: Set when bound: ``row_source`` holds the neurons of the ``pre`` side (a part of
    #: its population), one kernel state each (static).
    rows_of_side: bool = eqx.field(default=False, static=True, init=False, repr=False)
    #: Whether a synapse from part of a population keeps states for that part alone
    #: (DeltaSynapse's event-driven delivery indexes its whole population).
    _ROWS_OF_SIDE = True

    def finish_bind(self, pre, post, locate):
        whole = locate((self.pre[0], None))
        local = np.asarray(pre - int(whole[0]), dtype=np.int32)
        side = np.asarray(locate(self.pre, "pre")) - int(whole[0])
        # (Decided afresh: a synapse bound before, taken into another network, is bound anew.)
        rows_of_side = bool(self._ROWS_OF_SIDE and side.size < whole.size and self._one_delay_and_time_constant())
        if rows_of_side:
            # Rows for the side's neurons only; a connection's row is its neuron's
            # place in the side (the first, were a neuron listed twice: the same spikes).
            order = np.argsort(side, kind="stable")
            rows = (order[np.searchsorted(side[order], local)].astype(np.int32), side.astype(np.int32))
        else:
            rows = (local, None)
        # Put on the device as they are (jnp.asarray: a program per shape).
        bound = eqx.tree_at(lambda c: (c.pre_local, c.row_source), self,
                            tuple(None if x is None else jax.device_put(x) for x in rows), is_leaf=lambda x: x is None)
        object.__setattr__(bound, "pre_size", int(whole.size))
        object.__setattr__(bound, "rows_of_side", rows_of_side)
        return bound

    def index_bounds(self, n_total: int) -> dict:
        bounds = {**super().index_bounds(n_total), "pre_local": self.pre_size}
        if self.row_source is not None:
            bounds["row_source"] = self.pre_size
            if self.rows_of_side:
                bounds["pre_local"] = int(self.row_source.shape[0])
        return bounds

    def check_bound(self):
        cls = type(self).__name__
        n = self.n_connections
        for name in self._PARAMS:
            per_connection(getattr(self, name), n, f"{cls}.{name}")

    def _check_params(self):
        cls = type(self).__name__
        if self.delivery not in _DELIVERIES:
            raise ValueError(f"{cls}.delivery expects one of {_DELIVERIES}, got {self.delivery!r}")
        units.positive_int(self.max_arrivals_per_step,
                           f"{cls}.max_arrivals_per_step (spikes of one presynaptic neuron taken up per step)")
        self._check_sides()
        units.convert_fields(self)
        for name in self._PARAMS:
            if jnp.ndim(getattr(self, name)) > 1:
                raise ValueError(f"{cls}.{name} expects a scalar or one value per connection, got shape {jnp.shape(getattr(self, name))}")

    # --- state -----------------------------------------------------------------------
    def state_names(self) -> tuple[str, ...]:  # pragma: no cover - abstract
        raise NotImplementedError

    def init_events(self, dtype):
        # The state is kept per row of the spike buffer read: per presynaptic neuron
        # where all connections share one delay and time constant (their kernels are
        # then the same, and a connection's conductance is g_max times its neuron's:
        # a step's work is per neuron, not per connection), else per connection.
        # Kernel states are for a unit g_max.
        rows = self._n_rows()
        ev = {k: jnp.zeros((rows,), dtype=dtype) for k in self.state_names()}
        ev["t"] = jnp.zeros((), dtype=dtype)  # time the state refers to
        # Per row: the first slot not yet taken up, and the steps that left arrivals
        # for the next.
        ev["next"] = jnp.zeros((rows,), dtype=dtype)
        ev["late"] = jnp.zeros((rows,), dtype=dtype)
        return ev

    def events_at_start(self, t0, events, pre_spikes):
        """``events`` for a run starting at ``t0`` (ms) with the ``pre`` population's
        spike buffer ``pre_spikes``: spikes arriving before ``t0`` are passed over (they
        arrived before the run; NEURON refuses events in the past), and one arriving at
        ``t0`` is delivered in the first step (with ``delivery="exact"`` it counts from
        ``t0`` on), as NEURON delivers an event due at its start. A run continued from
        another's final state (``simulate(init=...)``) takes up where that one stopped
        instead."""
        t_arr = jax.lax.stop_gradient(self._rows(pre_spikes) + self._row_delay()[:, None])
        return {**events, "next": jnp.sum(t_arr < t0, axis=-1).astype(events["next"].dtype)}

    def _one_delay_and_time_constant(self) -> bool:
        """Whether the delay and every time constant are one value for all connections."""
        return jnp.ndim(self.delay) == 0 and all(jnp.ndim(getattr(self, k)) == 0 for k in self._TIME_CONSTANTS)

    def _per_neuron(self) -> bool:
        """One delay and one time constant: a presynaptic neuron's arrivals are the same
        for each of its connections, so they are taken up once per neuron."""
        return self.row_source is None and self._one_delay_and_time_constant()

    def _side_rows_per_connection(self) -> bool:
        """A synapse bound with a row per neuron of its ``pre`` side that has since
        been given a delay or time constant per connection: a row per connection."""
        return self.rows_of_side and not self._one_delay_and_time_constant()

    def _buffer_rows(self):
        """Per row, the row of the spike buffer it reads; None where row ``i`` reads
        row ``i`` (one row per presynaptic neuron)."""
        if self._side_rows_per_connection():
            return self.row_source[self.pre_local]
        if self.row_source is not None:
            return self.row_source
        return None if self._per_neuron() else self.pre_local

    def _connection_rows(self):
        """Per connection, the row whose kernel state it scales; None where connection
        ``i`` is row ``i``."""
        if self._side_rows_per_connection():
            return None
        return self.pre_local if self.row_source is not None or self._per_neuron() else None

    def _rows(self, pre_spikes):
        rows = self._buffer_rows()
        return pre_spikes if rows is None else pre_spikes[rows]

    def _n_rows(self) -> int:
        """Rows of the spike buffer read, each with its kernel state: presynaptic
        neurons (:meth:`_per_neuron`), connections, or those of a merged group."""
        if self.row_source is not None and not self._side_rows_per_connection():
            return int(self.row_source.shape[0])
        return self.pre_size if self._per_neuron() else self.n_connections

    def _row_delay(self):
        return jnp.broadcast_to(self.delay, (self._n_rows(),))

    def _per_connection(self, unit, t):
        """Each connection's value of the per-row ``unit`` (at time ``t``)."""
        rows = self._connection_rows()
        return unit if rows is None else _materialised(unit, t)[rows]

    @property
    def record_name(self) -> str:
        """The name a Network records this synapse's output under: ``"g"`` for a
        conductance, ``"i"`` for a current-based synapse's current."""
        return self._OUTPUT[0]

    @property
    def record_unit(self) -> str:
        """The unit of the recorded output: ``"µS"``, or ``"nA"`` for a current."""
        return self._OUTPUT[1]

    def output(self, t, events, pre_spikes=None):
        """Every connection's output (in :attr:`record_unit`: a conductance in µS, or a
        current in nA for a current-based synapse) at time ``t`` ≥ the state's time;
        with the ``pre`` population's spike buffer, arrivals after the state's time up
        to ``t`` are included."""
        key = self.record_name
        if pre_spikes is None:
            unit = self._propagate(events, jnp.maximum(t - events["t"], 0.0))[key]
        elif self.delivery == "neuron":  # arrivals not yet delivered count in full at t
            unit = self._with_arrivals(events, pre_spikes, _before_tie(t), t, 0.0)[key]
        else:
            unit = self.advance(events["t"], t, events, pre_spikes)[key]
        return getattr(self, self._AMPLITUDE) * self._per_connection(unit, t)

    def conductance(self, t, events, pre_spikes=None):
        """Conductance (µS) of every connection at time ``t`` ≥ the state's time; with
        the ``pre`` population's spike buffer, arrivals after the state's time up to
        ``t`` are included."""
        return self.output(t, events, pre_spikes)

    def current(self, t, v, events, pre_spikes=None):
        """Synaptic current (nA, inward positive) into each compartment of the flat
        voltage ``v``."""
        g = self.conductance(t, events, pre_spikes)
        # Conductances summed per compartment first (they do not depend on v), then
        # the driving force per compartment: the solver's derivative along v is then
        # elementwise, not another pass over the connections.
        g_total = jnp.zeros_like(v).at[self.post_index].add(g)
        if jnp.ndim(self.E) == 0:
            return g_total * (self.E - v)
        return jnp.zeros_like(v).at[self.post_index].add(g * self.E) - g_total * v

    def advance(self, t0, t1, events, pre_spikes):
        """The state at ``t1`` from that at ``t0``, with the spikes of ``pre_spikes``
        (the ``pre`` population's buffer, shape ``(n_pre, capacity)``) that arrive in
        the step: with ``delivery="exact"`` those whose arrival ``t_spike + delay`` lies
        in ``(t0, t1]``, each from its arrival on; with ``"neuron"`` those arriving since
        the last step's midpoint up to this one's, each from this step's midpoint."""
        if self.delivery == "neuron":
            t_mid = 0.5 * (t0 + t1)
            return self._with_arrivals(events, pre_spikes, _before_tie(t_mid), t1, t1 - t_mid)
        return self._with_arrivals(events, pre_spikes, t1, t1, None)

    def _arrival_reader(self, events, pre_spikes):
        """``arrival(i)``: each row's arrival time (ms) at its slot ``events["next"] +
        i`` of the spike buffer ``pre_spikes`` (inf past the end), one 1-D gather per
        slot read. Arrival times carry no gradient: the step an arrival falls in is
        chosen by a comparison, so its derivative would hold only "a later arrival has
        decayed less" and miss "a later arrival switches on later", the larger effect:
        the gradient of a later voltage in a delay came out with the wrong sign."""
        spikes = jax.lax.stop_gradient(pre_spikes)
        first = jax.lax.stop_gradient(events["next"]).astype(jnp.int32)
        delay = jax.lax.stop_gradient(self._row_delay())
        capacity = spikes.shape[-1]
        # Rows' starts in the flattened buffer (per connection: its neuron's row).
        rows = self._buffer_rows()
        row_start = (jnp.arange(spikes.shape[0]) if rows is None else rows) * capacity
        flat = spikes.reshape(-1)

        def arrival(i):
            slot = first + i
            t_spike = flat[row_start + jnp.minimum(slot, capacity - 1)]
            return jnp.where(slot < capacity, t_spike + delay, jnp.inf)

        return arrival

    def _with_arrivals(self, events, pre_spikes, until, t, age):
        """The state decayed to ``t``, plus the kernels of the spikes not yet taken up
        that arrive by ``until``, each ``age`` ms old at ``t`` (None: ``t`` minus its
        arrival).

        Each row of the buffer (presynaptic neuron or connection) is read from its
        first slot not yet taken up (``events["next"]``; rows hold times in increasing
        order), ``max_arrivals_per_step`` slots of it, so the work per step does not
        grow with the buffer's capacity. A spiking neuron fires at most once per step:
        with constant steps at most two of its spikes arrive within one step (three
        would lie within less than a step of each other), and the default of 2 takes
        up every arrival in its step. More (spike sources with close times) are taken
        up in the following steps, with their true age, so conductances are exact again
        from then on; ``events["late"]`` counts, per row, the steps that left arrivals for
        the next (``simulate`` warns)."""
        decayed = self._propagate(events, jnp.maximum(t - events["t"], 0.0))
        arrival = self._arrival_reader(events, pre_spikes)
        zeros = jnp.zeros_like(jax.lax.stop_gradient(self._row_delay()))
        summed = {k: zeros for k in self.state_names()}
        taken = zeros
        for i in range(self.max_arrivals_per_step):
            t_arr = arrival(i)
            arrived = t_arr <= until
            s = jnp.where(arrived, t - t_arr, 0.0) if age is None else jnp.broadcast_to(age, t_arr.shape)
            kick = self._kernels(s[:, None])
            for k in summed:
                summed[k] = summed[k] + jnp.where(arrived, kick[k][:, 0], 0.0)
            taken = taken + arrived
        out = dict(events)
        for k in self.state_names():
            out[k] = decayed[k] + summed[k]
        out["next"] = events["next"] + taken
        out["late"] = events["late"] + (arrival(self.max_arrivals_per_step) <= until)
        out["t"] = jnp.broadcast_to(jnp.asarray(t, dtype=events["t"].dtype), events["t"].shape)
        return out


def _materialised(x, t):
    """``x``, computed as an array of its own before it is read elsewhere. XLA's CPU
    compiler otherwise fuses the computation of a presynaptic neuron's kernel
    (exponentials) into the gather that reads it once per connection, so it ran once
    per connection: ~20x the work at 20 synapses per neuron (4000 LIF neurons, 80 000
    synapses, 200 ms: 5.8 s). A conditional's result is never fused into its users
    (an optimization barrier is removed before fusion); ``t`` (finite) picks its branch."""
    return jax.lax.cond(jnp.isfinite(t), lambda x: x, jnp.zeros_like, x)


_DELIVERIES = ("exact", "neuron")

#: With ``delivery="neuron"`` below float64, arrivals within this many units of rounding
#: (of the time's float type) below a step's midpoint count as on it, and wait for the
#: next step.
NEURON_TIE_ULPS = 4


def _before_tie(t_mid):
    """The latest arrival time (ms) delivered at a step's midpoint ``t_mid`` with
    ``delivery="neuron"``. In float64, ``t_mid`` itself: NEURON delivers the events up to
    and including a step's midpoint (a spike source's arrival exactly on it counts in that
    step; NEURON's midpoint is its clock summed half step by half step, which for a
    ``dt`` that is not a power of two drifts from ``k·dt + dt/2`` by a few units of
    rounding either way, so there an exact tie may fall in NEURON's next step), and a detected spike carries NEURON's 1e-10 ms threshold delay
    (``SpikeDetector(timing="neuron")``), which puts an arrival after a delay of an odd
    number of half steps just past the midpoint, into the next step. Below float64 that
    offset is under the times' resolution, so the tie is broken here, within a few units
    of rounding below the midpoint: such detected spikes, and spike sources' arrivals on
    a midpoint, wait for the next step."""
    dtype = jnp.result_type(t_mid)
    if jnp.finfo(dtype).bits >= 64:
        return t_mid
    return t_mid - NEURON_TIE_ULPS * jnp.finfo(dtype).eps * jnp.abs(t_mid)


class _ConductanceSynapse(AbstractSynapse):
    """Fields shared by the conductance synapses: ``g_max`` µS, ``tau`` ms (default
    0.1, NEURON's ``ExpSyn`` and ``AlphaSynapse``'s), reversal potential ``E`` mV
    (default 0) and transmission ``delay`` ms."""

    g_max: object = units.param(units.uS, default=None, check="nonnegative")
    # NEURON's default, so that a ported ExpSyn or AlphaSynapse relying on it is the same.
    tau: object = units.param(units.ms, default=0.1, check="positive")
    E: object = units.param(units.mV, default=0.0)
    delay: object = units.param(units.ms, default=0.0, check="nonnegative")

    def __post_init__(self):
        _require_g_max(self)
        self._check_params()


def _exp_decay(x, s, tau):
    """``x`` decayed exponentially with time constant ``tau`` (ms) over ``s`` ms."""
    return x * jnp.exp(-s / tau)


def _exp_kernel(s, tau):
    """A unit exponential kernel ``exp(−s/tau)`` at ages ``s`` (ms, shape ``(rows,
    slots)``), ``tau`` a scalar or one per row."""
    # One reciprocal per row, then a product per slot: a division per slot costs more.
    rate = 1.0 / jnp.broadcast_to(tau, s.shape[:1])[:, None]
    return jnp.exp(-s * rate)


def _require_g_max(synapse) -> None:
    require(synapse, "g_max", "a peak conductance in µS (or a saiunit Quantity)")


class ExpSynapse(_ConductanceSynapse):
    """Exponential conductance synapse: each spike arriving at ``t_a`` (its time plus
    ``delay``) adds ``g_max·exp(−(t − t_a)/tau)`` (µS) for ``t ≥ t_a``; the current
    into ``post`` is ``g·(E − V_post)`` (nA).

    ``g_max`` µS (or a saiunit conductance), ``tau`` ms (default 0.1, NEURON's ``ExpSyn``
    default: give yours), ``E`` reversal potential mV (default 0), ``delay`` ms; each a
    scalar or one value per connection. ``pre``, ``post``, ``conn``
    as for :class:`~jaxneuro.SymmetricGapJunction`; ``pre`` must spike. ``delivery``
    (static): ``"exact"`` (default) or ``"neuron"``, NEURON's ``ExpSyn`` + ``NetCon``
    timing to rounding (see :mod:`jaxneuro.coupling.synapse`).
    """


    def state_names(self):
        return ("g",)

    def _propagate(self, ev, s):
        return {"g": _exp_decay(ev["g"], s, self.tau)}

    def _kernels(self, s):
        return {"g": _exp_kernel(s, self.tau)}


class AlphaSynapse(_ConductanceSynapse):
    """Alpha-function conductance synapse: each spike arriving at ``t_a`` adds
    ``g_max·(t − t_a)/tau·exp(1 − (t − t_a)/tau)`` (µS), which peaks at ``g_max`` a
    time ``tau`` after arrival; the current into ``post`` is ``g·(E − V_post)`` (nA).
    Parameters as for :class:`ExpSynapse` (with the default ``delivery="exact"`` it
    equals NEURON's ``AlphaSynapse`` point process started at the arrival, to rounding,
    for ``10·tau`` after it: NEURON's sets its conductance to 0 from then on, where
    this one decays on from ``10·e⁻⁹ ≈ 1.2e-3`` of ``g_max``).

    Internally ``da/dt = −a/tau`` and ``dg/dt = −g/tau + (e/tau)·a``, each spike adding
    ``g_max`` to ``a``; both are advanced exactly.
    """


    def state_names(self):
        return ("a", "g")

    def _propagate(self, ev, s):
        decay = jnp.exp(-s / self.tau)
        return {"a": ev["a"] * decay, "g": (ev["g"] + math.e * ev["a"] * s / self.tau) * decay}

    def _kernels(self, s):
        rate = 1.0 / jnp.broadcast_to(self.tau, s.shape[:1])[:, None]  # per row, as ExpSynapse's
        decay = jnp.exp(-s * rate)
        return {"a": decay, "g": math.e * s * rate * decay}


class Exp2Synapse(AbstractSynapse):
    """Double-exponential conductance synapse, NEURON's ``Exp2Syn``: each spike arriving
    at ``t_a`` adds ``g_max·f·(exp(−s/tau2) − exp(−s/tau1))`` (µS), ``s = t − t_a ≥ 0``,
    rising with ``tau1`` and decaying with ``tau2`` (ms, ``tau1 < tau2``); ``f`` makes its
    peak ``g_max``, reached ``tau1·tau2/(tau2 − tau1)·ln(tau2/tau1)`` after the arrival.
    The current into ``post`` is ``g·(E − V_post)`` (nA).

    ``Exp2Synapse(pre, post, conn, g_max, tau1=0.1, tau2=10.0, E=0.0, delay=0.0)``,
    NEURON's defaults; each parameter a scalar or one value per connection, ``delivery``
    as for :class:`ExpSynapse` (``"neuron"``: ``Exp2Syn`` + ``NetCon`` to rounding).
    ``tau1 ≥ tau2`` is refused (NEURON silently moves ``tau1`` to ``0.9999·tau2``; for
    equal time constants use :class:`AlphaSynapse`).

    Internally NEURON's two states: ``a`` (its ``A``, decaying with ``tau1``) and the
    conductance ``g = B − A`` (``B`` decaying with ``tau2``), each spike adding ``f·g_max``
    to ``A`` and ``B``; both are advanced exactly.
    """

    _PARAMS = ("g_max", "tau1", "tau2", "E", "delay")
    _TIME_CONSTANTS = ("tau1", "tau2")

    g_max: object = units.param(units.uS, default=None, check="nonnegative")
    tau1: object = units.param(units.ms, default=0.1, check="positive")
    tau2: object = units.param(units.ms, default=10.0, check="positive")
    E: object = units.param(units.mV, default=0.0)
    delay: object = units.param(units.ms, default=0.0, check="nonnegative")

    def __post_init__(self):
        _require_g_max(self)
        self._check_params()
        if units.is_concrete(self.tau1) and units.is_concrete(self.tau2) and not bool(
                jnp.all(jnp.asarray(self.tau1) < jnp.asarray(self.tau2))):
            raise ValueError(
                f"Exp2Synapse: tau1 (rise) expects to be shorter than tau2 (decay), got tau1={self.tau1}, "
                f"tau2={self.tau2} ms; for equal time constants use jn.AlphaSynapse"
            )

    def state_names(self):
        return ("a", "g")

    def _propagate(self, ev, s):
        d1, d2 = jnp.exp(-s / self.tau1), jnp.exp(-s / self.tau2)
        return {"a": ev["a"] * d1, "g": (ev["g"] + ev["a"]) * d2 - ev["a"] * d1}

    def _kernels(self, s):
        rows = s.shape[:1]
        tau1 = jnp.broadcast_to(self.tau1, rows)[:, None]
        tau2 = jnp.broadcast_to(self.tau2, rows)[:, None]
        # The peak's time and the factor that scales it to 1, as Exp2Syn's INITIAL.
        t_peak = tau1 * tau2 / (tau2 - tau1) * jnp.log(tau2 / tau1)
        f = 1.0 / (jnp.exp(-t_peak / tau2) - jnp.exp(-t_peak / tau1))
        d1, d2 = jnp.exp(-s / tau1), jnp.exp(-s / tau2)
        return {"a": f * d1, "g": f * (d2 - d1)}


class ExpCurrentSynapse(AbstractSynapse):
    """Current-based exponential synapse (Brian's CUBA synapses, NEST's
    ``iaf_psc_exp``): each spike arriving at ``t_a`` (its time plus ``delay``) adds the
    current ``weight·exp(−(t − t_a)/tau)`` (nA) into ``post`` for ``t ≥ t_a``,
    whatever the postsynaptic voltage. A positive ``weight`` depolarises (inward
    positive, as the other synapses' currents), a negative one inhibits.

    ``ExpCurrentSynapse(pre, post, conn, weight, tau, delay=0.0)``: ``weight`` nA (or a
    saiunit current; the current's jump at each arrival, any sign, finite), ``tau`` ms
    (decay time constant, > 0; required: NEST's default is 2 ms, Brian's CUBA example
    5 ms excitatory and 10 ms inhibitory), ``delay`` ms (≥ 0); each a scalar or one value
    per connection. ``pre``, ``post``, ``conn``, ``delivery`` and
    ``max_arrivals_per_step`` as for :class:`ExpSynapse`; the kernels are advanced
    exactly in the same way, and the default solver sees each step's mean current
    (:meth:`step_mean`: with ``delivery="exact"``, every arrival delivers its exact
    charge, also where ``tau`` is near ``dt`` or below; its slope in ``v`` is 0). ``weight`` and ``tau`` are differentiable;
    spike times and ``delay`` take no gradient, as for every synapse.

    Converting: a NEST weight in pA is ``weight = w/1000`` nA (same ``tau_syn``); a
    Brian CUBA jump ``we`` in mV of ``dv/dt = (ge + gi − (v − El))/taum`` is ``weight =
    C·we/taum`` nA on a neuron of capacitance ``C`` nF (``jn.LIF(C=C, gL=C/taum)``).

    In a Network it records ``"i"``: each connection's current (nA, one column per
    connection, ``trace[name].i``); it has no conductance ``g`` (:meth:`conductance` is
    an error). The populations' ``"i_syn"`` (nA into each compartment) includes it.
    """

    _PARAMS = ("weight", "tau", "delay")
    _TIME_CONSTANTS = ("tau",)
    _AMPLITUDE = "weight"
    _OUTPUT = ("i", "nA")

    weight: object = units.param(units.nA, default=None)
    tau: object = units.param(units.ms, default=None, check="positive")
    delay: object = units.param(units.ms, default=0.0, check="nonnegative")

    def __post_init__(self):
        require(self, "weight", "the current's jump at each arrival in nA (positive depolarising, negative "
                              "inhibitory), or a saiunit Quantity")
        require(self, "tau", "the current's decay time constant in ms (> 0; NEST's iaf_psc_exp default is "
                           "2 ms), or a saiunit Quantity")
        self._check_params()

    def state_names(self):
        return ("i",)

    def _propagate(self, ev, s):
        return {"i": _exp_decay(ev["i"], s, self.tau)}

    def _kernels(self, s):
        return {"i": _exp_kernel(s, self.tau)}

    def conductance(self, t, events, pre_spikes=None):
        raise TypeError(
            "ExpCurrentSynapse is current-based: it has no conductance. Its current per connection "
            "(nA) is .output(t, events, pre_spikes), recorded in a Network as 'i'"
        )

    def current(self, t, v, events, pre_spikes=None):
        """Synaptic current (nA, inward positive) into each compartment of the flat
        voltage ``v``: the connections' currents summed per compartment, independent
        of ``v``. Within a step (``t`` past the state's time ``t0``: the default solver
        asks at the step's midpoint) with ``delivery="exact"``, each connection's
        current averaged over the step ``[t0, 2·t − t0]`` (:meth:`step_mean`), so each
        arrival delivers its exact charge wherever in the step it lands; at the state's
        own time (a recorded ``i_syn``), the current there."""
        return jnp.zeros_like(v).at[self.post_index].add(self.step_mean(t, events, pre_spikes))

    def step_mean(self, t, events, pre_spikes=None):
        """Each connection's current (nA) averaged over the step from the state's time
        ``t0`` to ``2·t − t0`` (``t`` its midpoint), arrivals in it included from their
        arrival on: the decaying current gives ``i0·tau·(1 − exp(−h/tau))/h`` and an
        arrival ``s`` ms before the step's end ``tau·(1 − exp(−s/tau))/h`` (``h`` the
        step). The current at ``t`` where the step is empty (``t`` the state's time:
        the limits of those means, the state and the arrivals at ``t`` counted in full),
        the spike buffer not given or ``delivery="neuron"`` (NEURON's: every event
        counts in full from a step's midpoint). A current independent of ``v`` enters the voltage only through its
        charge over the step; its value at the midpoint made a PSP's size depend on
        where in the step its spike arrived (0.55-1.45x at ``tau`` = 0.025 ms, ``dt`` =
        0.1 ms; ±10 % at 0.5 ms)."""
        if pre_spikes is None or self.delivery == "neuron":
            return self.output(t, events, pre_spikes)
        t0 = events["t"]
        h = 2.0 * (t - t0)
        within = h > 0
        h_safe = jnp.where(within, h, 1.0)
        tau = jnp.broadcast_to(self.tau, events["i"].shape)
        # The arrivals of the step alone (the state set to 0), at its end: N - sum of
        # exp(-s/tau) over them is the sum of (1 - exp(-s/tau)). With h = 0 that sum
        # is the arrivals' kernels at t, and the state's factor 1: output(t) itself,
        # without a second pass over the spike buffer.
        fresh = self._with_arrivals({**events, "i": jnp.zeros_like(events["i"])}, pre_spikes, t0 + h, t0 + h, None)
        arrived = fresh["next"] - events["next"]
        decay = jnp.where(within, -jnp.expm1(-h / tau) * tau / h_safe, 1.0)
        unit = events["i"] * decay + jnp.where(within, (arrived - fresh["i"]) * tau / h_safe, fresh["i"])
        return self.weight * self._per_connection(unit, t)


__all__ = ["AbstractSynapse", "ExpSynapse", "AlphaSynapse", "Exp2Synapse", "ExpCurrentSynapse"]
