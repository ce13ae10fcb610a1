"""Spike sources: populations that emit given spike trains, to drive synapses in a
Network (NEURON's ``VecStim``/``NetStim``, Brian's ``SpikeGeneratorGroup`` and
``PoissonGroup``, BrainPy's ``SpikeTimeGroup`` and ``PoissonGroup``)."""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Sequence
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import saiunit as u

from .. import units
from .._stack import outside_stacklevel
from ..model import AbstractModel
from ..solve.trace import TIME_TOLERANCE
from ..state import State

__all__ = ["SpikeTrains", "poisson_spikes", "warn_identical_trains", "warn_past_their_end"]


class SpikeTrains(AbstractModel):
    """A population of ``n`` spike sources firing at given times: ``spikes`` (ms), shape
    ``(n, capacity)``, each row one source's times in increasing order, padded with
    ``inf`` (the layout of a spiking neuron's ``trace.spikes``; a list of lists of times
    is padded for you). In a :class:`~jaxneuro.Network`, synapses from it deliver each
    spike after their ``delay``, as from any spiking population; its trace's
    ``spikes`` are the given times and ``spike_count`` each source's number of times up
    to the end of the run.

    A source has no membrane: its ``v`` stays at ``v0`` (record it or not), a stimulus
    aimed at it or a synapse or gap junction onto it is refused (a stimulus aimed at
    the whole network passes it by), and it leaves the network's solver to the
    populations that have one. Spike times are static inputs: synapses take no gradient
    through them. See :func:`poisson_spikes` for Poisson trains.

    ``complete_until`` (ms, keyword): the time up to which the trains are all there is
    (:func:`poisson_spikes` sets its ``t1``); a run going past it warns that the sources
    fall silent there. None (the default for given trains): complete for any run."""

    spikes: object = units.param(units.ms, allow_inf=True)
    complete_until: float | None = eqx.field(default=None, static=True, kw_only=True)

    #: No membrane: a Network chooses its solver from its other populations.
    is_source: ClassVar[bool] = True

    def __post_init__(self):
        spikes = self.spikes
        # (A 0-d quantity or array is no row: a flat list of them, [1 * u.ms, 2 * u.ms], is one
        # array of shape (2,), refused below for its shape as a flat list of numbers is.)
        if isinstance(spikes, Sequence) and not isinstance(spikes, str) and spikes and all(
                isinstance(row, (Sequence, np.ndarray, u.Quantity)) and not isinstance(row, str)
                and getattr(row, "ndim", 1) >= 1 for row in spikes):
            width = max(1, max(len(row) for row in spikes))
            padded = np.full((len(spikes), width), np.inf)
            for k, row in enumerate(spikes):  # each row's times in ms (quantities converted)
                padded[k, :len(row)] = units.to_static(row, f"SpikeTrains.spikes[{k}]", units.ms)
            spikes = padded
        self.spikes = spikes
        super().__post_init__()  # converts quantities, refuses NaN
        if self.complete_until is not None:
            until = units.to_static(self.complete_until, "SpikeTrains.complete_until", units.ms)
            if np.ndim(until) != 0 or not np.isfinite(until):
                raise ValueError("SpikeTrains.complete_until expects None or a finite time (ms), "
                                 f"got {self.complete_until!r}")
            self.complete_until = float(until)
        if np.ndim(self.spikes) != 2 or np.shape(self.spikes)[0] < 1 or np.shape(self.spikes)[1] < 1:
            raise ValueError(
                f"SpikeTrains.spikes expects shape (n, capacity) (ms, padded with inf) or a list of lists "
                f"of times, got shape {np.shape(self.spikes)}"
            )
        if units.is_concrete(self.spikes):
            times = np.asarray(self.spikes)
            if np.any(times == -np.inf):
                raise ValueError("SpikeTrains.spikes: -inf is no spike time; pad with +inf")
            with np.errstate(invalid="ignore"):  # inf - inf between padding slots
                falls = np.diff(times, axis=1) < 0
            if np.any(falls):
                row = int(np.nonzero(np.any(falls, axis=1))[0][0])
                raise ValueError(
                    f"SpikeTrains.spikes: the times of source {row} are not in increasing order "
                    "(padding inf last)"
                )

    @property
    def shape(self):
        return (int(np.shape(self.spikes)[0]),)

    @property
    def default_v0(self):
        """``v`` of a source (mV), which no current moves: 0."""
        return 0.0

    @property
    def capacitance(self):
        """No membrane: an infinite capacitance, so that no current moves ``v``."""
        return jnp.full(self.shape, jnp.inf, dtype=jnp.result_type(float))

    def init_state(self, v0):
        f = jnp.result_type(float)
        v = jnp.broadcast_to(jnp.asarray(v0, dtype=f), self.shape)
        spikes = jnp.asarray(self.spikes, dtype=f)
        return State(v=v, gates={}, events={"spikes": spikes, "count": jnp.zeros(self.shape, dtype=f)})

    def vector_field(self, t, state, i_inj):
        del t, i_inj
        return State(v=jnp.zeros_like(state.v), gates={},
                     events=jax.tree.map(jnp.zeros_like, state.events))

    def resolve_events(self, t0, t1, y0, y1, a, b):
        """The spikes so far: each source's count of times up to ``t1``; ``v`` held."""
        del t0, a, b
        # A binary search in each source's sorted times: log2(capacity) comparisons per
        # step, where counting every slot made a step cost the whole buffer (a Brunel
        # drive of 38400 slots per source ran 20x slower than one of 2400, measured once).
        find = functools.partial(jnp.searchsorted, side="right", method="scan_unrolled")
        count = jax.vmap(lambda row: find(row, t1))(y0.events["spikes"]).astype(y0.events["count"].dtype)
        return State(v=y0.v, gates=y1.gates, events={**y0.events, "count": count})

    def observables(self):
        return ("v",)

    def observe(self, name, t, state, i_inj):
        del t, i_inj
        if name != "v":
            raise ValueError(f"SpikeTrains records only 'v' (held at v0) and its spikes, not {name!r}")
        return state.v


@functools.partial(jax.jit, static_argnames=("n", "capacity", "t0", "t1"))
def _poisson_times(key, rate, *, n: int, capacity: int, t0: float, t1: float):
    """:func:`poisson_spikes`' trains, ``(n, capacity)`` (inf in unused slots), and where
    each source's interval after its last slot ends (before ``t1`` if a spike was lost):
    one compiled program (op by op, 21 programs for each new size)."""
    f = jnp.result_type(float)
    rate = jnp.broadcast_to(rate, (n,))
    # One interval more than the slots: if that one still ends before t1, a spike was lost.
    # Each interval from a key of its own (source i, slot k), so that a source's train
    # does not change with t1, capacity or the number of sources: a longer run, or a
    # capacity raised after an overflow, keeps the same input.
    def draw(i, k):
        return jax.random.exponential(jax.random.fold_in(jax.random.fold_in(key, i), k), (), f)

    unit = jax.vmap(lambda i: jax.vmap(lambda k: draw(i, k))(jnp.arange(capacity + 1)))(jnp.arange(n))
    intervals = unit * (1000.0 / jnp.where(rate > 0, rate, 1.0))[:, None]
    # XLA's cumsum adds in a tree, not left to right: in float32 a running sum of
    # 1e5 ms could step back by a rounding (99875.83 then 99875.82), which the trains
    # refuse as out of order. The running maximum undoes that without moving a time by
    # more than the sum's own rounding.
    times = jax.lax.cummax(t0 + jnp.cumsum(intervals, axis=-1), axis=1)
    times = jnp.where((rate > 0)[:, None], times, jnp.inf)
    return jnp.where(times[:, :-1] <= t1, times[:, :-1], jnp.inf), times[:, -1]


def poisson_spikes(rate, t1, *, n=None, t0=0.0, seed=0, capacity=None) -> SpikeTrains:
    """Poisson spike trains from ``t0`` to ``t1`` (ms) at ``rate`` Hz, as a
    :class:`SpikeTrains` population: ``n`` independent sources (default: one per element
    of ``rate``, which may give each its own rate).

    Intervals are exponential with mean ``1000/rate`` ms, drawn from ``seed`` (an integer
    or a JAX PRNG key) in the default float precision: one seed gives other trains in
    float32 than in float64. Source ``i``'s ``k``-th interval has a key of its own, so a
    source's train does not depend on ``t1``, ``capacity`` or ``n`` (a longer run starts
    with the same spikes). ``capacity``: slots per source (default: the mean count plus 8
    standard deviations, at least 8; needed as a number where ``rate`` is traced); a
    train that would need more is a ValueError naming the setting, or under ``jit`` or
    ``vmap`` an error when the program runs (no spike is silently dropped). In float32,
    times late in a long train carry the running sum's rounding (about ``t·6e-8``:
    0.006 ms at 100 s). The trains are complete up to ``t1`` only
    (:attr:`SpikeTrains.complete_until`): a run going past it warns, and two sources of
    one seed, the same trains, warn when a network is built with both."""
    from ..stimuli.noise import prng_key

    t0_ = float(units.to_static(t0, "t0", units.ms))
    t1_ = float(units.to_static(t1, "t1", units.ms))
    if not (math.isfinite(t0_) and math.isfinite(t1_) and t1_ > t0_):
        raise ValueError(f"poisson_spikes: t1 must be a finite time after t0 (ms), got t0={t0_}, t1={t1_}")
    given = rate
    rate = units.to_base(rate, "poisson_spikes.rate", units.Hz)
    units.check_value(rate, "poisson_spikes.rate", "nonnegative", units.Hz)
    if n is None:
        n = int(np.prod(np.shape(rate))) if np.ndim(rate) else 1
    n = units.positive_int(n, "poisson_spikes.n")
    if np.ndim(rate) > 1 or (np.ndim(rate) == 1 and np.shape(rate)[0] != n):
        raise ValueError(f"poisson_spikes: rate expects a scalar or one rate per source ({n}), got shape {np.shape(rate)}")
    if capacity is None:
        # From the rate as given: a Python number stays one under jit (a traced seed
        # alone needs no capacity), where its conversion to an array is traced.
        try:
            highest = float(np.max(units.to_static(given, "poisson_spikes.rate", units.Hz)))
        except ValueError:
            if units.is_concrete(rate):  # not traced: to_static's own message says what is wrong
                raise
            raise ValueError("poisson_spikes: give capacity= when rate is traced (under jit, vmap or grad)") from None
        mean = highest * (t1_ - t0_) / 1000.0
        capacity = max(8, int(math.ceil(mean + 8.0 * math.sqrt(mean) + 1)))
    capacity = units.positive_int(capacity, "poisson_spikes.capacity")
    key = prng_key(seed, "poisson_spikes: seed")
    times, ends = _poisson_times(key, rate, n=n, capacity=capacity, t0=t0_, t1=t1_)
    overflow = (f"poisson_spikes: a train needs more than capacity={capacity} slots by t1={t1_} ms; "
                "raise capacity")
    if units.is_concrete(ends):
        if bool(np.any(np.asarray(ends) <= t1_)):
            raise ValueError(overflow)
    else:  # a traced seed or rate (jit, vmap, grad): checked when the values exist
        times = eqx.error_if(times, jnp.any(ends <= t1_), overflow)
    return SpikeTrains(times, complete_until=t1_)


def _sources(model):
    """``(label, SpikeTrains)`` of ``model``: itself, or a network's source populations."""
    if isinstance(model, SpikeTrains):
        return [("the model", model)]
    populations = getattr(model, "populations", None) or {}
    return [(f"population {name!r}", pop) for name, pop in populations.items() if isinstance(pop, SpikeTrains)]


def warn_past_their_end(model, t1) -> None:
    """Warn where a run to ``t1`` (ms) goes past the end of spike trains drawn for a
    shorter time (:attr:`SpikeTrains.complete_until`): those sources fire nothing
    after it, and their targets lose their drive without any other sign."""
    for label, pop in _sources(model):
        end = pop.complete_until
        if end is not None and float(t1) > end + TIME_TOLERANCE:
            warnings.warn(
                f"simulate: {label} holds spike trains drawn up to {end:g} ms (poisson_spikes(..., t1={end:g})), "
                f"and the run goes on to {float(t1):g} ms: it fires nothing after {end:g} ms; draw its trains "
                "up to the run's end",
                RuntimeWarning, stacklevel=outside_stacklevel(),
            )


def warn_identical_trains(populations) -> None:
    """Warn if two spike-source populations of a network fire at the same times
    (:func:`poisson_spikes` with one seed draws the same trains): inputs meant to be
    independent would be fully correlated."""
    by_shape = {}  # only sources of one shape are compared (their times read then, not before)
    for name, pop in populations.items():
        if not isinstance(pop, SpikeTrains) or not units.is_concrete(pop.spikes):
            continue
        earlier = by_shape.setdefault(np.shape(pop.spikes), [])
        times = np.asarray(pop.spikes) if earlier else None
        same = next((other for other, train in earlier if np.array_equal(np.asarray(train), times)), None)
        # (Silent sources are alike without being correlated.)
        if same is not None and np.any(np.isfinite(times)):
            warnings.warn(
                f"Network: populations {same!r} and {name!r} fire at the same times (poisson_spikes with "
                "one seed draws the same trains): their inputs are fully correlated; give each its own seed "
                "(e.g. seed=1, seed=2), or connect one source to both if that is intended",
                RuntimeWarning, stacklevel=outside_stacklevel(),
            )
        earlier.append((name, pop.spikes))
