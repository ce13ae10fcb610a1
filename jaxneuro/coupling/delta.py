"""Delta (voltage-jump) synapses: each presynaptic spike moves the postsynaptic voltage
by a fixed amount at once (Brunel 2000's ``J``, NEST's ``iaf_psc_delta`` and
``static_synapse`` weights in mV, Brian's ``on_pre="v += w"``).

A jump is a charge delivered in an instant, which no step of a current can carry
exactly: a current over the step depends on the step's length, and a pulse narrower
than the step is rounded into it. So the jump is applied to the voltage itself, at the
end of the step in which the spike arrives (NEST's rule: its arrivals lie on the grid,
and a spike in the step ``(t0, t1]`` is added to ``V`` at ``t1``), before the neurons
look for threshold crossings: a jump that lifts the voltage to threshold or above fires
the neuron at ``t1``, and it is then reset (the record shows the reset, as NEST's),
where NEST too spikes at the end of that step. The timing is therefore on the grid: an
arrival at ``t_a`` acts at the first step end at or after it (on average half a step
later; ``dt`` = 0.1 ms, NEST's and Brunel's, adds 0.05 ms to ``delay`` on average), and
the charge is exact: ``weight`` mV in full, whatever the step. An arrival within
rounding of a step's end counts as on it (:func:`grid_tolerance`), so a spike fired by
a jump (on the grid) with a delay of whole steps arrives exactly that many steps later,
as NEST's integer delays: a recurrent network with such delays reproduces a NumPy
implementation of NEST's ``iaf_psc_delta`` update spike for spike in float64
(``tests/test_delta_synapse.py``). A :class:`~jaxneuro.SpikeDetector` times a crossing
made by a jump at the jump, not before it.

A neuron held at reset (refractory) at the step's end loses the jumps that arrive in
that step, as NEST's ``iaf_psc_delta`` does by default (and as in the step where a
refractory period ends, whose voltage starts from the reset then): a clamped voltage
takes no input. Compartments of cables and cells take the jump in the compartment the
synapse targets, the charge ``weight · C`` spreading along the cable from there.

Arrivals are read from the presynaptic spike buffer with the same pointers as the
other synapses (:class:`~jaxneuro.coupling.synapse.AbstractSynapse`), so
``max_arrivals_per_step`` and the overflow and late-arrival warnings hold alike; with
``delay < dt`` an arrival from a spike of the same step acts at the end of the next
step (the spike is found in the step, after the jumps are applied).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .. import units
from .base import require
from .synapse import AbstractSynapse

__all__ = ["DeltaSynapse", "grid_tolerance"]


class DeltaSynapse(AbstractSynapse):
    """Delta (voltage-jump) synapse: each spike arriving at ``t_a`` (its time plus
    ``delay``) raises the postsynaptic voltage by ``weight`` mV at once, at the end of
    the step containing ``t_a`` (see :mod:`jaxneuro.coupling.delta`); a negative
    ``weight`` inhibits. Brunel (2000)'s model is a LIF population with these synapses
    (``weight`` = ``J``, ``−g·J`` inhibitory, ``delay`` = ``D``).

    ``DeltaSynapse(pre, post, conn, weight, delay=0.0)``: ``weight`` mV (or a saiunit
    voltage; finite, any sign), ``delay`` ms (≥ 0), each a scalar or one value per
    connection. ``pre``, ``post``, ``conn`` and ``max_arrivals_per_step`` as for
    :class:`~jaxneuro.ExpSynapse`; ``delivery`` must be ``"exact"`` (NEURON's
    ``NetCon`` timing belongs to its synapse mechanisms, and NEURON has no voltage-jump
    synapse to match). ``weight`` is differentiable (a jump moves the voltage by
    exactly ``weight``); spike times and ``delay`` take no gradient, as for every
    synapse, and a spike fired by a jump lies at a step's end, so its time does not move
    with ``weight`` either.

    **Cost.** With ``event_driven=True`` (static, the default), one ``delay`` (a
    scalar) and at least 8 connections per presynaptic neuron, a step's jumps are
    gathered from the connections of the neurons whose spikes arrive in it (as NEST
    and NEURON deliver events: the work grows with spikes × fan-out), in forms for up
    to 1/256, 1/64 and 1/16 of the presynaptic neurons; in steps where more have
    arrivals (synchronous volleys), with per-connection delays, or with
    ``event_driven=False``, from every connection (the work grows with the
    connections). Both give the same jumps (``benchmarks/delta_network.py`` times
    both). Under ``jax.vmap`` the choice between the forms is made per member, so every
    form is computed in every step: set ``event_driven=False`` for vmapped networks.

    It records nothing of its own: its jumps show in the postsynaptic ``v``, and
    ``i_syn`` (a current) leaves them out. Converting: a jump ``J`` mV on a neuron of
    capacitance ``C`` nF is the charge ``J·C`` pC; a current-based synapse with a time
    constant far below the membrane's (:class:`~jaxneuro.ExpCurrentSynapse`, ``weight =
    J·C/tau``) approaches it, within a step.
    """

    # Its event-driven delivery's tables index the whole presynaptic population.
    _ROWS_OF_SIDE = False

    _PARAMS = ("weight", "delay")
    _TIME_CONSTANTS = ()
    _AMPLITUDE = "weight"
    _OUTPUT = None
    #: Delta synapses change the voltage at the step's end instead of driving a current.
    jumps_voltage = True

    weight: object = units.param(units.mV, default=None)
    delay: object = units.param(units.ms, default=0.0, check="nonnegative")
    event_driven: bool = eqx.field(default=True, static=True, kw_only=True)
    #: Each presynaptic neuron's connections (indices, padded with the number of
    #: connections), filled in by the network for one shared delay: see :meth:`voltage_jump`.
    out_conn: object = eqx.field(default=None, kw_only=True)
    #: How many presynaptic neurons with arrivals in a step each event-driven form of
    #: :meth:`voltage_jump` takes (static, set with ``out_conn``).
    sparse_tiers: tuple = eqx.field(default=(), static=True, kw_only=True)

    def __post_init__(self):
        require(self, "weight", "the postsynaptic voltage's jump at each arrival in mV (positive excitatory, "
                                "negative inhibitory; Brunel 2000's J), or a saiunit Quantity")
        if self.delivery != "exact":
            raise ValueError(
                f"DeltaSynapse.delivery expects 'exact' (the jump acts at the end of the step its spike arrives "
                f"in), got {self.delivery!r}: NEURON's NetCon timing belongs to its synapse mechanisms, and NEURON "
                "has no voltage-jump synapse to match"
            )
        if not isinstance(self.event_driven, (bool, np.bool_)):
            raise ValueError(f"DeltaSynapse.event_driven expects True or False, got {self.event_driven!r}")
        self._check_params()

    def finish_bind(self, pre, post, locate):
        """As :class:`~jaxneuro.coupling.synapse.AbstractSynapse`'s, plus, for one
        shared delay, each presynaptic neuron's outgoing connections (``out_conn``)
        and the sizes of the event-driven forms of :meth:`voltage_jump`."""
        bound = super().finish_bind(pre, post, locate)
        if not (self.event_driven and bound._per_neuron()):
            return bound
        # From the NumPy indices: the bound copy's are JAX arrays (traced under jit).
        table, tiers = _outgoing(np.asarray(pre) - int(locate((self.pre[0], None))[0]), bound.pre_size)
        if not tiers:
            return bound
        bound = eqx.tree_at(lambda c: c.out_conn, bound, jnp.asarray(table), is_leaf=lambda x: x is None)
        object.__setattr__(bound, "sparse_tiers", tiers)
        return bound

    def index_bounds(self, n_total: int) -> dict:
        bounds = super().index_bounds(n_total)
        if self.out_conn is not None:
            bounds["out_conn"] = self.n_connections + 1
        return bounds

    def state_names(self):
        return ()

    def _propagate(self, ev, s):
        return {}

    def _kernels(self, s):
        return {}

    @property
    def record_name(self):
        """None: a delta synapse records nothing of its own (its jumps are in ``v``)."""
        return None

    @property
    def record_unit(self):
        return None

    def output(self, t, events, pre_spikes=None):
        raise TypeError(
            "DeltaSynapse has no conductance or current to record: its jumps act on the postsynaptic "
            "voltage at the steps' ends (record 'v')"
        )

    conductance = output

    def current(self, t, v, events, pre_spikes=None):
        """No current (nA): zeros like ``v``. The jumps are applied to the voltage
        (:meth:`voltage_jump`)."""
        return jnp.zeros_like(v)

    def advance(self, t0, t1, events, pre_spikes):
        """The state at ``t1`` from that at ``t0``: the arrivals up to ``t1`` taken
        up, those within rounding after it included (:func:`grid_tolerance`)."""
        return self._with_arrivals(events, pre_spikes, t1 + grid_tolerance(t0, t1), t1, None)

    def voltage_jump(self, t0, t1, before, after, pre_spikes, open_from):
        """The jump (mV) of every compartment of the flat voltage at the step's end
        ``t1``: ``weight`` for each arrival taken up from the state ``before`` to
        ``after`` (:meth:`advance`, from the ``pre`` population's spike buffer
        ``pre_spikes``) that comes later than its compartment's ``open_from`` (ms,
        flat: the end of a neuron's refractory period, -inf where input is never
        blocked), an arrival within rounding of that end counting as on it (lost)."""
        arrival = self._arrival_reader(before, pre_spikes)
        taken = jax.lax.stop_gradient(after["next"] - before["next"])
        blocked_until = open_from + grid_tolerance(t0, t1)
        n_flat = open_from.shape[0]
        m = self.max_arrivals_per_step

        def dense(_):
            # Per connection, the arrivals taken up that come after its post's blocked
            # time: each slot's arrival per row (-inf where not taken), read once per
            # connection, and one scatter of the weighted counts.
            counts = jnp.zeros(self.post_index.shape, dtype=open_from.dtype)
            for i in range(m):
                t_arr = jnp.where(i < taken, arrival(i), -jnp.inf)
                if self._per_neuron():
                    t_arr = t_arr[self.pre_local]
                counts = counts + (t_arr > blocked_until[self.post_index])
            jumps = self.weight * counts
            return jnp.zeros(open_from.shape, dtype=jumps.dtype).at[self.post_index].add(jumps)

        if not (self.sparse_tiers and self._per_neuron()):
            # (The event-driven table lists each presynaptic neuron's connections, for
            # one shared delay; a delay set per connection since, eqx.tree_at, takes
            # arrivals per connection.)
            return dense(None)

        # Event-driven: only the connections of the presynaptic neurons with arrivals
        # in the step (at most k of them; the work is k times the largest out-degree,
        # against every connection for the dense form, which takes over where more
        # neurons have arrivals). Padding rows and connections point one past the end.
        n_pre, n_conn = taken.shape[0], self.n_connections

        def sparse(k):
            def jumps(_):
                rows = jnp.nonzero(taken > 0, size=k, fill_value=n_pre)[0]
                real = rows < n_pre
                rows = jnp.minimum(rows, n_pre - 1)
                conns = jnp.where(real[:, None], self.out_conn[rows], n_conn)  # (k, largest out-degree)
                kept = conns < n_conn
                conns = jnp.minimum(conns, n_conn - 1)
                to = jnp.where(kept, self.post_index[conns], n_flat)  # n_flat: dropped by the scatter
                ends = blocked_until[jnp.minimum(to, n_flat - 1)]
                counts = sum((jnp.where(i < taken[rows], arrival(i)[rows], -jnp.inf)[:, None] > ends)
                             for i in range(m)).astype(open_from.dtype)
                w = jnp.broadcast_to(self.weight, (n_conn,))[conns] * counts
                return jnp.zeros(open_from.shape, dtype=w.dtype).at[to].add(w, mode="drop")
            return jumps

        active = jnp.sum(taken > 0)
        which = sum((active > k).astype(jnp.int32) for k in self.sparse_tiers)
        return jax.lax.switch(which, [sparse(k) for k in self.sparse_tiers] + [dense], None)


#: The event-driven forms of :meth:`DeltaSynapse.voltage_jump` take up to
#: ``n_pre / d`` presynaptic neurons with arrivals in a step, for each ``d``.
EVENT_DRIVEN_FRACTIONS = (256, 64, 16)


def _outgoing(pre_local, n_pre: int):
    """``(table, tiers)``: row ``j`` of ``table`` lists presynaptic neuron ``j``'s
    connections (indices into the connections, padded with their number), and
    ``tiers`` the numbers of neurons with arrivals in a step (``n_pre/256``, ``/64``,
    ``/16``) for which taking only their connections is worth it: at most a quarter of
    the dense form's work (every connection). ``(None, ())`` where none is (fewer than
    8 connections per presynaptic neuron) or the largest out-degree is over 4 times the
    mean (the table, padded to it, would be mostly padding)."""
    n_conn = pre_local.shape[0]
    if n_conn == 0 or n_pre == 0:
        return None, ()
    if n_conn < 8 * n_pre:  # few connections per neuron: the dense form's work is ~ the neurons'
        return None, ()
    degree = np.bincount(pre_local, minlength=n_pre)
    widest = int(degree.max())
    if n_pre * widest > 4 * n_conn:  # the padded table would hold mostly padding
        return None, ()
    tiers = tuple(sorted({k for k in (-(-n_pre // d) for d in EVENT_DRIVEN_FRACTIONS) if 4 * k * widest <= n_conn}))
    if not tiers:
        return None, ()
    order = np.argsort(pre_local, kind="stable")
    first = np.concatenate([[0], np.cumsum(degree)[:-1]])
    rank = np.arange(n_conn) - first[pre_local[order]]
    table = np.full((n_pre, widest), n_conn, dtype=np.int32)
    table[pre_local[order], rank] = order
    return table, tiers


#: Arrivals within this many units of rounding (of the time's float type, relative to
#: the time) after a step's end count as on it.
GRID_TOLERANCE_ULPS = 8


def grid_tolerance(t0, t1):
    """How far (ms) past the step's end ``t1`` an arrival still counts as on it: a few
    units of rounding of ``t1`` (at most a quarter of the step). A spike fired by a
    jump lies on the grid, and so, with a delay that is a whole number of steps, does
    its arrival, but ``t_spike + delay`` and the grid's ``t0 + k·dt`` are rounded
    apart: compared exactly, some of them fell a step late (5-30 % in a tester's runs,
    float64 too; tests/test_delta_synapse.py now asserts none does), and a run continued from another (whose grid is rounded from its own
    ``t0``) delivered them in other steps than the run in one part."""
    dtype = jnp.result_type(t1)
    ulps = GRID_TOLERANCE_ULPS * jnp.finfo(dtype).eps * jnp.maximum(jnp.abs(t1), 1.0)
    return jnp.minimum(ulps, 0.25 * (t1 - t0))
