"""Poisson input drawn step by step: voltage jumps from independent Poisson sources,
with nothing stored ahead (Brian's ``PoissonInput``, NEST's ``poisson_generator`` into
an ``iaf_psc_delta`` neuron; Brunel 2000's external drive).

:func:`~jaxneuro.poisson_spikes` with a :class:`~jaxneuro.DeltaSynapse` draws every
spike of the run before it starts and keeps them in a buffer: at Brunel's external
rates (10-20 kHz per neuron) 10 000 neurons hold 0.8-1.6 GB per second of run in float64,
and a run continued in parts keeps the earlier parts' spikes too. :class:`PoissonInput`
draws, in each step, the number of arrivals per target, Poisson with mean
``rate·dt`` (``rate`` in Hz, ``dt`` in ms: ``rate·dt/1000``), and raises the voltage by ``weight`` per arrival at the step's end, as a
delta synapse whose arrivals lie on the step grid (NEST's generator sends its spikes
on the grid too): the memory is one count per target, whatever the run's length.
"""

from __future__ import annotations

import functools
import zlib
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .. import units
from . import conn as conn_rules
from .base import AbstractCoupling, per_connection, require
from .delta import grid_tolerance

__all__ = ["PoissonInput", "poisson_counts"]


class PoissonInput(AbstractCoupling):
    """Poisson arrivals at ``rate`` Hz into each compartment of ``post``, each raising
    its voltage by ``weight`` mV at the end of the step it falls in (a
    :class:`~jaxneuro.DeltaSynapse` from Poisson sources, drawn as the run goes).

    ``PoissonInput(post, rate, weight, seed=0, name=None)``: ``post`` a population of
    the :class:`~jaxneuro.Network` (or some of its compartments, as a synapse's
    ``post``); ``rate`` Hz (≥ 0; the total over the sources reaching one compartment:
    Brunel's ``C_E·nu_ext``), ``weight`` mV (finite, any sign), each a scalar or one
    value per targeted compartment (saiunit quantities are converted); ``seed`` an
    integer or a JAX PRNG key (``jax.vmap`` over ``jax.random.split(key, n)`` gives
    independent trials).

    In each step ``(t0, t1]`` the number of arrivals at each target is drawn with mean
    ``rate·(t1 - t0)`` by :func:`poisson_counts` from ``key_k``, folded from the seed,
    the input's ``name`` in its network (so that two inputs with one seed, or the
    default seed, are independent; renaming one redraws it) and ``k`` counting the
    steps from the run's start (a run continued from another's final state,
    ``simulate(init=...)``, goes on counting: the same draws as one run), and the
    voltage jumps by ``weight`` times that count at ``t1``, before the neuron looks
    for a threshold crossing; a neuron refractory at ``t1`` loses them, as NEST's
    ``iaf_psc_delta``. The charge is exact and the timing on the grid: arrivals act up
    to a step after their continuous time would be, as for ``DeltaSynapse``. The
    counts drawn so far are in the final state: ``trace.final_state.events[name]["arrivals"]``.

    Needs the default solver (fixed steps). ``weight`` is differentiable (the jumps are
    linear in it); ``rate`` takes no gradient (the counts are integers drawn from it).
    """

    rate: object = units.param(units.Hz, default=None, check="nonnegative")
    weight: object = units.param(units.mV, default=None)
    seed: Any = eqx.field(default=0, kw_only=True)
    impl: str | None = eqx.field(default=None, static=True, kw_only=True)

    #: Moves the voltage by jumps at the steps' ends, like a delta synapse.
    jumps_voltage: ClassVar[bool] = True

    def __init__(self, post, rate=None, weight=None, *, seed=0, impl=None, name=None, pre=None, conn=None,
                 pre_index=None, post_index=None):
        # pre, conn and the indices: as a network binds it, and dataclasses.replace
        # rebuilds it (every field by keyword); pre is post, connected one to one.
        from ..stimuli.noise import _key_data
        from .base import normalise_side

        normalise_side(post, "PoissonInput.post")  # named as given (pre is post)
        self.pre = post if pre is None else pre
        self.post = post
        self.conn = conn_rules.one_to_one if conn is None else conn
        self.pre_index = pre_index
        self.post_index = post_index
        self.name = name
        self.rate = rate
        self.weight = weight
        self.seed, self.impl = _key_data(seed, impl, "PoissonInput.seed")
        require(self, "rate", "the Poisson rate in Hz per targeted compartment (>= 0), or a saiunit Quantity")
        require(self, "weight", "the voltage jump per arrival in mV (Brunel 2000's J), or a saiunit Quantity")
        self._check_sides()
        units.convert_fields(self)
        for field in ("rate", "weight"):
            if jnp.ndim(getattr(self, field)) > 1:
                raise ValueError(f"PoissonInput.{field} expects a scalar or one value per targeted compartment, "
                                 f"got shape {jnp.shape(getattr(self, field))}")

    @property
    def key(self):
        """The JAX PRNG key the counts are drawn from."""
        return jax.random.wrap_key_data(self.seed, impl=self.impl)

    def check_bound(self):
        for field in ("rate", "weight"):
            per_connection(getattr(self, field), self.n_connections, f"PoissonInput.{field}")

    def init_events(self, dtype):
        """The steps taken since the run's start (``step`` below 2**20 plus ``epoch``
        times 2**20: exact as floats, float32 included, for any run) and the arrivals
        drawn per target."""
        zero = jnp.zeros((), dtype=dtype)
        return {"step": zero, "epoch": zero, "arrivals": jnp.zeros(self.post_index.shape, dtype=dtype)}

    def counts(self, t0, t1, step, epoch=0):
        """The arrivals (a float array, one per targeted compartment) in the step from
        ``t0`` to ``t1`` (ms), the run's ``epoch·2**20 + step``-th (0 for its first)."""
        rate = jnp.broadcast_to(jax.lax.stop_gradient(self.rate), self.post_index.shape)
        if not units.is_concrete(rate):  # a traced rate, unchecked when built
            # (Infinite or NaN, the draw's loops would not end.)
            rate = eqx.error_if(rate, jnp.any(~(rate >= 0) | ~jnp.isfinite(rate)),
                                "PoissonInput.rate must be >= 0 (Hz) and finite")
        key = self.key
        for word in (zlib.crc32(str(self.name).encode()), epoch, step):
            key = jax.random.fold_in(key, jnp.asarray(word).astype(jnp.uint32))
        return _poisson_counts(key, rate * 1e-3 * (t1 - t0), shape=tuple(self.post_index.shape),
                               dtype=jnp.result_type(t1))

    def advance_and_jump(self, t0, t1, events, open_from):
        """``(events at t1, jump)``: this step's counts drawn and the jump (mV) of every
        compartment of the flat voltage at ``t1``, zero where a compartment's input is
        blocked at ``t1`` (``open_from``, flat: the end of a neuron's refractory period;
        an end within rounding of ``t1`` counts as blocked, as for ``DeltaSynapse``)."""
        n = self.counts(t0, t1, events["step"], events["epoch"])
        open_ = t1 > open_from[self.post_index] + grid_tolerance(t0, t1)
        jumps = jnp.where(open_, self.weight * n, 0.0)
        jump = jnp.zeros(open_from.shape, dtype=jnp.result_type(jumps, open_from)).at[self.post_index].add(jumps)
        step = events["step"] + 1
        wrap = step >= STEPS_PER_EPOCH
        return {"step": jnp.where(wrap, 0.0, step), "epoch": events["epoch"] + wrap,
                "arrivals": events["arrivals"] + n}, jump


#: Steps counted in ``step`` before ``epoch`` takes them over (exact in float32, whose
#: integers are exact to 2**24: a single float32 counter stopped there, repeating draws).
STEPS_PER_EPOCH = 2**20


#: The largest mean one inversion draws (:func:`poisson_counts`); a larger one is drawn
#: as the sum of equal parts below it (Poisson counts add). Its search takes about
#: ``mean + 6·sqrt(mean)`` iterations at most, and ``exp(-mean)`` stays a normal float32.
INVERSION_MEAN = 32.0


def poisson_counts(key, mean, shape, dtype):
    """Poisson counts with ``mean`` (≥ 0 and finite, broadcast to ``shape``), as floats
    of ``dtype`` (whole numbers), drawn from ``key`` by inversion: one uniform ``u`` per
    count and the smallest ``k`` whose cumulative probability reaches it, summed in
    ``dtype`` from ``exp(-mean)`` (a mean above :data:`INVERSION_MEAN` as the sum of
    counts of equal parts below it, each from a uniform of its own). Where the sum stops
    growing (the tail beyond it below ``dtype``'s rounding, e.g. ``u`` within 6e-8 of 1
    in float32) the search ends there, rather than running on to where the terms
    underflow. The mean takes no gradient.

    A concrete ``mean`` below 0, NaN or infinite is a ValueError (a traced one is the
    caller's to check: :class:`PoissonInput` does). ``shape``: a tuple of ints;
    ``dtype``: a floating dtype.

    Why not ``jax.random.poisson``: it runs two rejection loops (Knuth's and a
    transformed rejection) for every value and picks one, each drawing its uniforms
    inside the loop; slower to run and to compile (``python benchmarks/poisson_draw.py``
    times both in one run; benchmarks/RESULTS.md)."""
    if units.is_concrete(mean):
        units.check_value(np.asarray(mean), "poisson_counts.mean", "nonnegative")
    if not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(f"poisson_counts.dtype expects a floating dtype (float32, float64), got {dtype!r}")
    return _poisson_counts(key, mean, shape=tuple(int(d) for d in shape), dtype=jnp.dtype(dtype))


# One compiled program per shape and dtype when called eagerly (its loops' functions
# are made anew in each call, which JAX would otherwise compile every time).
@functools.partial(jax.jit, static_argnames=("shape", "dtype"))
def _poisson_counts(key, mean, shape, dtype):
    mean = jnp.broadcast_to(jax.lax.stop_gradient(jnp.asarray(mean, dtype)), shape)
    parts = jnp.maximum(jnp.ceil(mean / INVERSION_MEAN), 1.0)
    mu = mean / parts

    def part(carry):
        i, total = carry
        u = jax.random.uniform(jax.random.fold_in(key, i), shape, dtype)
        return i + 1, total + jnp.where(i.astype(dtype) < parts, inverse_cdf(u, mu), 0.0)

    start = (jnp.zeros((), jnp.uint32), jnp.zeros(shape, dtype))
    return jax.lax.while_loop(lambda c: jnp.any(c[0].astype(dtype) < parts), part, start)[1]


def inverse_cdf(u, mu):
    """The smallest count ``k`` (a float of ``u``'s dtype) whose Poisson cumulative
    probability with mean ``mu`` reaches ``u`` (in [0, 1)), summed from ``exp(-mu)``
    upwards; where adding the next term no longer changes the sum (the rest of the tail
    is below the dtype's rounding), the count reached. ``mu`` up to
    :data:`INVERSION_MEAN` (``exp(-mu)`` must not underflow)."""
    def going(k, p, cdf):
        return (u > cdf) & (cdf + p * mu / (k + 1.0) > cdf)

    def step(carry):
        k, p, cdf, go = carry
        k1 = k + 1.0
        p1 = p * mu / k1
        k, p, cdf = jnp.where(go, k1, k), jnp.where(go, p1, p), jnp.where(go, cdf + p1, cdf)
        return k, p, cdf, going(k, p, cdf)

    # (Whether each count goes on is carried, not worked out again by the condition.)
    p0, k0 = jnp.exp(-mu), jnp.zeros_like(u)
    start = (k0, p0, p0, going(k0, p0, p0))
    return jax.lax.while_loop(lambda c: jnp.any(c[3]), step, start)[0]
