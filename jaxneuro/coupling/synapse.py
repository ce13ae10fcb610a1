"""Chemical synapses: conductances opened by presynaptic spikes after a delay.

Each connection carries its own conductance state. A spike of presynaptic neuron ``j``
at time ``t_s`` (found inside the solver step, see
:class:`~jaxneuro.AbstractSpikingNeuron`) arrives at every connection from ``j`` at
``t_s + delay``. At the end of each step the conductances are advanced *exactly* from
``t0`` to ``t1``: the old state decays analytically and each arrival in ``(t0, t1]`` adds
its kernel evaluated at ``t1 − t_arrival``. So the conductance time course is exact at
every step boundary, independent of ``dt``, and linear (differentiable) in ``g_max``.
Presynaptic spike times and ``delay`` take **no gradient** through a synapse (their
derivative is 0): an arrival switches its conductance on at a step boundary, and the
derivative of that discrete choice would leave only the decay term, of the wrong sign
(a later EPSP gave a later voltage that seemed to rise). Within a step the voltage sees the
exact conductance at the step's midpoint, arrivals up to that time included (arrivals
from spikes in the same step, possible only with ``delay < dt``, count from the next
step).

``delivery``: ``"exact"`` (default) switches each conductance on at its arrival time, as
above. NEURON's ``NetCon`` instead delivers an event to the step whose midpoint is the
first at or after its time, where it counts in full from that midpoint (its ``ExpSyn``
sees ``weight`` at once): up to half a step later than the arrival, a difference of up to
about ``dt/tau`` of a PSP (0.64 % of an ``ExpSyn`` PSP with ``tau`` = 3 ms at ``dt`` = 0.025
ms, at the worst position of the arrival within a step). ``delivery="neuron"`` does the same and
reproduces ``ExpSyn`` + ``NetCon`` to rounding; ``"exact"`` converges to the
continuous-time answer as ``dt`` shrinks at the same rate.

Arrivals are read from the presynaptic population's spike buffer (its
``spike_capacity`` slots), costing O(connections × spike_capacity) work per step and no
state beyond the conductances. Spikes beyond the buffer's capacity are not transmitted;
``simulate`` then warns (a RuntimeWarning naming the population: raise its
``spike_capacity``), at once when run eagerly and, under ``jit``, ``grad`` or ``vmap``
(as in :func:`~jaxneuro.fit`), when the compiled program runs.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp

from .. import units
from .base import AbstractCoupling, per_connection


class AbstractSynapse(AbstractCoupling):
    """A conductance synapse ``I_post = g(t)·(E − V_post)`` (nA) per connection.

    ``pre`` must be a spiking population (or some of its neurons); ``post`` any
    compartments. ``pre_local`` (filled in by the network) indexes the connections'
    presynaptic neurons within the ``pre`` population.
    """

    pre_local: object = eqx.field(default=None, kw_only=True)
    delivery: str = eqx.field(default="exact", static=True, kw_only=True)

    def finish_bind(self, pre, post, locate):
        offset = int(locate((self.pre[0], None))[0])
        return eqx.tree_at(lambda c: c.pre_local, self, jnp.asarray(pre - offset, dtype=jnp.int32),
                           is_leaf=lambda x: x is None)

    def check_bound(self):
        cls = type(self).__name__
        n = self.n_connections
        for name in ("g_max", "tau", "E", "delay"):
            per_connection(getattr(self, name), n, f"{cls}.{name}")

    def _check_params(self):
        cls = type(self).__name__
        if self.delivery not in _DELIVERIES:
            raise ValueError(f"{cls}.delivery expects one of {_DELIVERIES}, got {self.delivery!r}")
        self._check_sides()
        units.convert_fields(self)
        for name in ("g_max", "tau", "E", "delay"):
            if jnp.ndim(getattr(self, name)) > 1:
                raise ValueError(f"{cls}.{name} expects a scalar or one value per connection, got shape {jnp.shape(getattr(self, name))}")

    # --- state -----------------------------------------------------------------------
    def state_names(self) -> tuple[str, ...]:  # pragma: no cover - abstract
        raise NotImplementedError

    def init_events(self, dtype):
        n = self.n_connections
        ev = {k: jnp.zeros((n,), dtype=dtype) for k in self.state_names()}
        ev["t"] = jnp.zeros((), dtype=dtype)  # time the state refers to
        if self.delivery == "neuron":
            # Arrivals up to this time have been delivered (step midpoints).
            ev["delivered"] = jnp.full((), -jnp.inf, dtype=dtype)
        return ev

    def conductance(self, t, events, pre_spikes=None):
        """Conductance (µS) of every connection at time ``t`` ≥ the state's time; with
        the ``pre`` population's spike buffer, arrivals after the state's time up to
        ``t`` are included."""
        if pre_spikes is None:
            return self._propagate(events, jnp.maximum(t - events["t"], 0.0))["g"]
        if self.delivery == "neuron":  # arrivals not yet delivered count in full at t
            return self._with_arrivals(events, pre_spikes, events["delivered"], t, t, 0.0)["g"]
        return self.advance(events["t"], t, events, pre_spikes)["g"]

    def current(self, t, v, events, pre_spikes=None):
        """Synaptic current (nA, inward positive) into each compartment of the flat
        voltage ``v``."""
        g = self.conductance(t, events, pre_spikes)
        i = g * (self.E - v[self.post_index])
        return jnp.zeros_like(v).at[self.post_index].add(i)

    def advance(self, t0, t1, events, pre_spikes):
        """The state at ``t1`` from that at ``t0``, with the spikes of ``pre_spikes``
        (the ``pre`` population's buffer, shape ``(n_pre, capacity)``) that arrive in
        the step: with ``delivery="exact"`` those whose arrival ``t_spike + delay`` lies
        in ``(t0, t1]``, each from its arrival on; with ``"neuron"`` those arriving since
        the last step's midpoint up to this one's, each from this step's midpoint."""
        if self.delivery == "neuron":
            t_mid = 0.5 * (t0 + t1)
            out = self._with_arrivals(events, pre_spikes, events["delivered"], t_mid, t1, t1 - t_mid)
            out["delivered"] = jnp.broadcast_to(jnp.asarray(t_mid, dtype=events["t"].dtype), events["t"].shape)
            return out
        return self._with_arrivals(events, pre_spikes, t0, t1, t1, None)

    def _with_arrivals(self, events, pre_spikes, after, until, t, age):
        """The state decayed to ``t``, plus the kernels of the arrivals in ``(after,
        until]``, each ``age`` ms old at ``t`` (None: ``t`` minus its arrival)."""
        decayed = self._propagate(events, jnp.maximum(t - events["t"], 0.0))
        # With one delay and one time constant for all connections, a presynaptic
        # neuron's arrivals are the same for each of its connections: summed once per
        # neuron and then given to its connections, the work per step is
        # O(neurons × capacity + connections) rather than O(connections × capacity).
        per_neuron = jnp.ndim(self.delay) == 0 and jnp.ndim(self.tau) == 0
        rows = pre_spikes if per_neuron else pre_spikes[self.pre_local]
        delay = self.delay if per_neuron else jnp.broadcast_to(self.delay, self.pre_local.shape)[:, None]
        # Arrival times carry no gradient: the step an arrival falls in is chosen by a
        # comparison, so its derivative would hold only "a later arrival has decayed
        # less" and miss "a later arrival switches on later", the larger effect: the
        # gradient of a later voltage in a delay came out with the wrong sign.
        t_arr = jax.lax.stop_gradient(rows + delay)  # (rows, capacity)
        arrived = (t_arr > after) & (t_arr <= until)
        s = jnp.where(arrived, t - t_arr, 0.0) if age is None else jnp.broadcast_to(age, t_arr.shape)
        kick = self._kernels(s)
        out = dict(events)
        w = jnp.broadcast_to(self.g_max, self.pre_local.shape)
        for k in self.state_names():
            summed = jnp.sum(jnp.where(arrived, kick[k], 0.0), axis=-1)
            out[k] = decayed[k] + w * (summed[self.pre_local] if per_neuron else summed)
        out["t"] = jnp.broadcast_to(jnp.asarray(t, dtype=events["t"].dtype), events["t"].shape)
        return out


_DELIVERIES = ("exact", "neuron")


class _ConductanceSynapse(AbstractSynapse):
    """Fields shared by the conductance synapses: ``g_max`` µS, ``tau`` ms, reversal
    potential ``E`` mV and transmission ``delay`` ms."""

    g_max: object = units.param(units.uS, default=None, check="nonnegative")
    tau: object = units.param(units.ms, default=5.0, check="positive")
    E: object = units.param(units.mV, default=0.0)
    delay: object = units.param(units.ms, default=0.0, check="nonnegative")

    def __post_init__(self):
        if self.g_max is None:
            raise ValueError(
                f"{type(self).__name__}.g_max expects a peak conductance in µS (or a saiunit Quantity)"
            )
        self._check_params()


class ExpSynapse(_ConductanceSynapse):
    """Exponential conductance synapse: each spike arriving at ``t_a`` (its time plus
    ``delay``) adds ``g_max·exp(−(t − t_a)/tau)`` (µS) for ``t ≥ t_a``; the current
    into ``post`` is ``g·(E − V_post)`` (nA).

    ``g_max`` µS (or a saiunit conductance), ``tau`` ms, ``E`` reversal potential mV,
    ``delay`` ms; each a scalar or one value per connection. ``pre``, ``post``, ``conn``
    as for :class:`~jaxneuro.SymmetricGapJunction`; ``pre`` must spike. ``delivery``
    (static): ``"exact"`` (default) or ``"neuron"``, NEURON's ``ExpSyn`` + ``NetCon``
    timing to rounding (see :mod:`jaxneuro.coupling.synapse`).
    """


    def state_names(self):
        return ("g",)

    def _propagate(self, ev, s):
        return {"g": ev["g"] * jnp.exp(-s / self.tau)}

    def _kernels(self, s):
        # One reciprocal per row, then a product per slot: a division per slot costs more.
        rate = 1.0 / jnp.broadcast_to(self.tau, s.shape[:1])[:, None]
        return {"g": jnp.exp(-s * rate)}


class AlphaSynapse(_ConductanceSynapse):
    """Alpha-function conductance synapse: each spike arriving at ``t_a`` adds
    ``g_max·(t − t_a)/tau·exp(1 − (t − t_a)/tau)`` (µS), which peaks at ``g_max`` a
    time ``tau`` after arrival; the current into ``post`` is ``g·(E − V_post)`` (nA).
    Parameters as for :class:`ExpSynapse` (with the default ``delivery="exact"`` it
    equals NEURON's ``AlphaSynapse`` point process started at the arrival, to rounding).

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


__all__ = ["AbstractSynapse", "ExpSynapse", "AlphaSynapse"]
