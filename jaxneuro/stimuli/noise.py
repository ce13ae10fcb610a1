"""A Gaussian noise current (NEST's ``noise_generator``, NEURON's ModelDB ``InGauss``):
a new normal sample every ``interval`` ms, drawn as a pure function of time."""

from __future__ import annotations

import functools
import math
import operator
import warnings
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import saiunit as u

from .. import units
from .._stack import outside_stacklevel
from .base import area_for
from .currents import DataCurrent, _Windowed, _within
from .targets import IndexPair, Location, is_location_list, population_target

__all__ = ["NoiseCurrent", "ou_current", "prng_key", "target_shape"]

# The largest interval number drawn: exactly representable in float32 and below 2**32
# (fold_in's range). Past it (about 30 h of 0.025 ms intervals) the last sample is held.
_LAST_INTERVAL = float(2**32 - 2**8)
# A time within this fraction of an interval before its start is taken to be at it.
_EDGE = 1e-6


class NoiseCurrent(_Windowed):
    """A Gaussian noise current: ``mean + std·z_k`` nA from ``delay`` for ``dur`` ms
    (``delay <= t < delay + dur``, zero outside, as :class:`StepCurrent`), with ``z_k``
    standard normal and a new, independent sample for each interval ``delay +
    k·interval <= t < delay + (k+1)·interval`` (NEST's ``noise_generator``, NEURON's
    ModelDB ``InGauss``).

    ``mean``, ``std``: nA (``std >= 0``), or both current densities (e.g. ``0.1 *
    u.uA / u.cm**2``), scaled by the membrane area of each compartment they reach, as
    for the other stimuli; scalars, or arrays that broadcast to the targeted
    compartments (below). Both are differentiable: the current is ``mean + std·z``
    with ``z`` fixed by the seed (the reparameterisation), so ``jax.grad`` gives
    pathwise gradients of a trial. ``delay``, ``dur``, ``interval``: ms (``interval >
    0``, default 0.025, NEURON's default ``dt``).

    ``std`` is the standard deviation of the samples, not a white-noise intensity:
    held for ``interval`` ms, a sample's effect on the membrane grows with
    ``interval``, and the variance of the membrane potential with ``std²·interval``
    for intervals short against the membrane time constant. For white noise of
    intensity ``sigma`` (nA·ms^½; the current's autocorrelation ``sigma²·δ(t)``) take
    ``std = sigma / sqrt(interval)``; its effect then does not depend on ``interval``.

    ``seed``: an integer, or a JAX PRNG key (``jax.random.key(0)``, or a legacy
    ``jax.random.PRNGKey(0)``), so that ``jax.vmap`` over ``jax.random.split(key, n)``
    gives ``n`` independent trials. After construction ``seed`` holds the key's data
    (an integer array: a leaf that ``eqx.filter_grad`` and ``eqx.filter_jit`` treat
    as data, never differentiated) and :attr:`key` the key. Sample ``k`` is
    ``jax.random.normal(jax.random.fold_in(key, k), shape)``: a pure function of
    ``t``, with no stored arrays, so any duration runs under ``jit``, ``vmap`` and
    ``grad``, and the same seed gives the same currents whatever the run's length, its
    ``dt`` (samples are numbered by interval, not by step) and whether it is compiled;
    float32 and float64 runs draw different samples (JAX draws them in the run's
    precision). Two NoiseCurrents with one seed draw the same samples; give each its own seed.
    ``impl``: the PRNG implementation an integer seed uses (default JAX's,
    ``"threefry2x32"``); a key brings its own.

    Independence: one independent sample per targeted compartment. ``target=None``:
    one per compartment of the model (each neuron of a population; each segment of a
    cable or cell, which needs a density there); indices ``[i, j, k]``: one per
    index; one index or a location on a cable or cell: one sample, a single electrode
    (at a branch point that one current is shared among the neighbouring segments as
    for :class:`StepCurrent`); in a :class:`~jaxneuro.Network`, a population's name: one
    per compartment of that population. See :func:`target_shape`. :meth:`inject`
    (what ``simulate`` calls) draws that many; :meth:`current` is the one-sample view,
    a sample of the broadcast shape of ``mean`` and ``std``.

    Timing: the default solver reads stimuli at each step's midpoint, as NEURON does,
    so with ``interval == dt`` (and ``delay`` on the step grid) every step gets a new
    sample, as ``InGauss`` does; with ``interval = m·dt`` each sample is held for ``m``
    steps. A recorded ``i_inj`` is read at the sample times themselves, which for
    ``interval == dt`` lie on interval boundaries: a time within 10⁻⁶ of an interval
    before an interval's start counts as that interval's (in float32, where ``t`` is
    coarser, the value there may belong to either neighbour). Solvers whose stages sit at
    the ends of a step (``diffrax.Heun``, ``diffrax.Tsit5``...) meet the same boundary
    inside each step: prefer the default solver. ``simulate`` refuses adaptive step
    sizes (a controller would step over samples or redraw them as it retries steps),
    an ``interval`` below ``dt`` (samples between two steps' midpoints would be
    skipped, the noise ``sqrt(dt/interval)`` too strong), and, in float32, runs whose
    times are too coarse to tell the steps apart (from 2¹⁷ ms ≈ 131 s at 0.025 ms, as
    for every run). An ``interval = (m + f)·dt`` that is not a whole multiple of ``dt``
    (``0 < f < 1``) holds samples for ``m`` or ``m + 1`` steps in turn (a fraction ``f``
    of them ``m + 1``): the mean current is the same, but the noise's power, and the
    membrane's variance for intervals short against its time constant, are
    ``(m² + (2m + 1)·f) / (m + f)²`` times those of samples held exactly ``interval``:
    1.111 at ``interval = 1.5·dt`` (measured: 1.117), at most 1.125 (at ``4/3·dt``)
    between ``dt`` and ``2·dt``, at most ``1 + 1/(4m(m + 1))`` beyond (4.2 % from
    ``2·dt``, 2.1 % from ``3·dt``); ``simulate`` warns. Two NoiseCurrents of one run with the same seed draw the
    same samples; ``simulate`` warns.

    Densities on a cable or cell with ``target=None`` give each segment an independent
    sample of ``std × its area``: the total current over a stretch of membrane then
    varies less the finer the segments (its variance falls as ``1/nseg``), so such
    results depend on ``nseg``; for noise that converges as segments shrink, scale
    ``std`` with ``sqrt(nseg)`` or inject at locations.

    Gradients: for a fixed seed they are pathwise, exact for the trial. Where a result
    changes by spikes appearing and disappearing (a noise-driven firing rate), the
    pathwise gradient misses that: it is near 0, of either sign (the frozen noise pins
    each spike to the fluctuation that caused it); use a surrogate
    (``surrogate=jn.surrogate.Sigmoid()`` on the neuron) with
    ``jn.losses.firing_rate(..., method="count")``, and several seeds.

    Populations driven by noise run in one XLA loop: the ``"pallas"`` and
    ``"sharded"`` backends, which cut a population into slices, refuse it (each slice
    would draw the samples of neurons numbered from 0 again) and ``backend="auto"``
    uses XLA.
    """

    mergeable = False  # its samples are drawn per targeted compartment from its seed

    mean: object = units.param(units.nA, default=0.0)
    std: object = units.param(units.nA, default=0.0, check="nonnegative")
    delay: object = units.param(units.ms, default=0.0)
    dur: object = units.param(units.ms, default=math.inf, check="nonnegative", allow_inf=True)
    interval: object = units.param(units.ms, default=0.025, check="positive")
    seed: Any = 0
    impl: str | None = eqx.field(default=None, static=True, kw_only=True)

    #: Samples are drawn per neuron: see :attr:`AbstractStimulus.splittable`.
    splittable: ClassVar[bool] = False
    unsplittable_because: ClassVar[str] = "it draws its random numbers per neuron, from one key for the population"

    def check_run(self, *, t0, t1, dt, adaptive, continued=False):
        """Refuses adaptive step sizes (a controller would step over samples and redraw
        them as it retries steps), an ``interval`` shorter than ``dt`` (the solver reads
        one sample per step: the others would be skipped and the noise
        ``sqrt(dt/interval)`` times too strong). (Times too coarse in the run's precision
        to tell the steps apart, float32 from 2¹⁷ ms ≈ 131 s at 0.025 ms, ``simulate``
        refuses for every run.)"""
        name = type(self).__name__
        if adaptive:
            raise ValueError(
                f"{name} draws a new sample every `interval` ms; adaptive step sizes would step over "
                "samples and redraw them as steps are retried: use a constant step (leave "
                "stepsize_controller at its default)"
            )
        why = ("the solver reads one sample per step, so the others would be skipped and the noise "
               "would be sqrt(dt/interval) times too strong; take interval >= dt (a whole multiple of dt "
               "holds each sample for whole steps)")
        if not units.is_concrete(self.interval):
            # A traced interval (under jit or vmap): checked when the run starts.
            short = jnp.any(self.interval < dt * (1 - 1e-9))
            checked = eqx.error_if(self.interval, short, f"{name}.interval is shorter than dt = {dt:.6g} ms: {why}")
            return eqx.tree_at(lambda s: s.interval, self, checked)
        interval = float(np.min(np.asarray(self.interval)))
        if interval < dt * (1 - 1e-9):
            raise ValueError(
                f"{name}.interval = {interval:.6g} ms is shorter than dt = {dt:.6g} ms: {why} "
                f"(here {math.sqrt(dt / interval):.3g} times)"
            )
        warn_uneven_interval(name, np.asarray(self.interval), dt)
        return self

    def __post_init__(self):
        data, impl = _key_data(self.seed, self.impl)
        self.seed, self.impl = data, impl
        super().__post_init__()
        for name in ("delay", "interval"):
            # The samples are numbered by interval from delay, one numbering for all
            # compartments (an array here failed inside the run, in JAX's fold_in).
            if np.size(getattr(self, name)) != 1:
                raise ValueError(
                    f"NoiseCurrent.{name} expects one time (ms) for all compartments (its samples are numbered "
                    f"by interval from delay, one numbering for all), got shape {np.shape(getattr(self, name))}; "
                    "for compartments with their own timing use one NoiseCurrent each (dur may be one per "
                    "compartment)"
                )

    @property
    def key(self):
        """The JAX PRNG key the samples are drawn from."""
        return jax.random.wrap_key_data(self.seed, impl=self.impl)

    def sample(self, t, shape=None):
        """The current (nA, or mA/cm² for densities) at time ``t`` (ms) for ``shape``
        independent compartments (default: the broadcast shape of ``mean`` and
        ``std``); see :func:`target_shape`."""
        shape = self._fitted_shape(shape)
        dtype = jnp.result_type(self.mean, self.std, float)
        t = jnp.asarray(t)
        # A time on an interval's edge (a recorded sample) belongs to the interval it
        # starts, not by rounding to either: the solver's midpoints lie far from edges.
        k = jnp.clip(jnp.floor((t - self.delay) / self.interval + _EDGE), 0.0, _LAST_INTERVAL)
        z = jax.random.normal(jax.random.fold_in(self.key, k.astype(jnp.uint32)), shape, dtype)
        return _within(t, self.delay, self.dur, self.mean + self.std * z)

    def current(self, t):
        """The one-sample view: the current in nA at ``t`` (ms) for one compartment
        per element of ``mean`` and ``std`` (broadcast). :meth:`inject` draws one
        sample per targeted compartment instead."""
        return self.sample(t)

    def inject(self, t, model, v):
        """One independent sample per compartment that the target names (see
        :func:`target_shape`), placed by ``model`` as any current; densities are scaled
        by the area of the compartments they reach."""
        del v
        self.check_placement(model)
        i = self.sample(t, target_shape(model, self.target))
        if self.target is None:
            # Every compartment its own sample (in a Network, of every population).
            placed = jnp.broadcast_to(i, tuple(model.shape))
        else:
            placed = model.place_current(self.target, i)
        if self.density:
            placed = placed * area_for(model, self.target) * units.DENSITY_TO_ABSOLUTE["current"]
        return placed

    def _fitted_shape(self, shape):
        """``shape`` (a tuple), or a ValueError if ``mean`` and ``std`` do not
        broadcast to it; ``None``: their broadcast shape."""
        own = (np.shape(self.mean), np.shape(self.std))
        try:
            both = np.broadcast_shapes(*own)
            fits = shape is None or np.broadcast_shapes(both, tuple(shape)) == tuple(shape)
        except ValueError:
            both, fits = None, False
        if both is None or not fits:
            raise ValueError(
                f"NoiseCurrent: mean of shape {own[0]} and std of shape {own[1]} do not fit "
                f"target={self.target!r}, which draws one sample per targeted compartment "
                f"(shape {tuple(shape) if shape is not None else '?'}); give scalars or one value "
                "per targeted compartment"
            )
        return both if shape is None else tuple(shape)


def target_shape(model, target) -> tuple[int, ...]:
    """The natural shape of ``target`` (normalised, as a stimulus holds it) on ``model``:
    the shape of the currents ``model.place_current(target, i)`` takes one per
    targeted compartment, so that a stimulus drawing that many samples gives each its
    own. ``None``: ``model.shape`` (a Network's: all its compartments, flat); one index
    or a :class:`Location`: ``()`` (one electrode, even where the model shares its
    current among the segments at a branch point); indices: one per index; in a
    Network, a population's name: that population's shape, ``(name, sub)``: ``sub``'s
    shape on that population. Targets that the model refuses get ``()``; its
    ``place_current`` then says why."""
    from ..network import Network  # not at import time: the network imports stimuli

    if target is None:
        return tuple(model.shape)
    if isinstance(model, Network):
        named = population_target(target)
        if named is None:
            return ()
        name, sub = named
        if name not in model.populations:
            raise ValueError(f"stimulus target={target!r}: no population {name!r}; this network has {model.names}")
        return target_shape(model.populations[name], sub)
    if isinstance(target, (Location, float, int, np.integer)):
        return ()
    if is_location_list(target):
        return (len(target),)
    if isinstance(target, (tuple, IndexPair)) and all(
            isinstance(k, (int, np.integer)) and not isinstance(k, bool) for k in target):
        return (len(target),)
    return ()


def prng_key(seed, name: str):
    """The JAX PRNG key ``seed`` names (an integer or a key), or a ValueError naming
    ``name``: for functions that draw their samples at once."""
    data, impl = _key_data(seed, None, name)
    return jax.random.wrap_key_data(data, impl=impl)


def _key_data(seed, impl, name="NoiseCurrent.seed"):
    """``(data, impl)`` of the PRNG key ``seed`` names: an integer (made into
    ``jax.random.key(seed)``), a typed key of shape ``()``, or a legacy raw key
    (``jax.random.PRNGKey``: uint32 of shape ``(2,)``); ``impl`` is kept for the key
    data of a module being rebuilt (as ``dataclasses.replace`` does)."""
    def refuse(why=""):
        raise ValueError(
            f"{name} expects an integer or one JAX PRNG key (jax.random.key(0)), got "
            f"{seed!r}{why}; for several independent trials, jax.vmap over jax.random.split(key, n)"
        )

    if isinstance(seed, (bool, np.bool_)):
        refuse()
    if impl is not None:
        try:
            jax.random.key(0, impl=impl)
        except (ValueError, TypeError, KeyError) as e:
            raise ValueError(
                f"{name.rsplit('.', 1)[0]}.impl expects None (JAX's default) or a PRNG implementation name such "
                f"as 'threefry2x32' or 'rbg', got {impl!r} ({e})"
            ) from None
    if isinstance(seed, (int, np.integer)):
        if not 0 <= seed < 2**32 and not jax.config.jax_enable_x64:
            return _wide_seed_key_data(int(seed), impl, refuse)
        try:
            key = jax.random.key(int(seed), impl=impl)
        except (OverflowError, ValueError, TypeError):
            refuse(" (out of range)")
        return jax.random.key_data(key), jax.random.key_impl(key)
    if not isinstance(seed, (jax.Array, np.ndarray)):
        refuse(f" ({type(seed).__name__})")
    dtype = seed.dtype
    if jnp.issubdtype(dtype, jax.dtypes.prng_key):
        if seed.shape != ():
            refuse(f" (an array of keys of shape {seed.shape})")
        return jax.random.key_data(seed), jax.random.key_impl(seed)
    if not jnp.issubdtype(dtype, jnp.integer) or jnp.issubdtype(dtype, jnp.bool_):
        refuse(f" (dtype {dtype})")
    if seed.shape == ():  # a (possibly traced) integer seed
        key = jax.random.key(seed, impl=impl)
        return jax.random.key_data(key), jax.random.key_impl(key)
    if dtype == jnp.uint32 and seed.ndim == 1:  # a raw key, or the data of one being rebuilt
        expected = jax.random.key_data(jax.random.key(0, impl=impl)).shape
        if seed.shape != expected:
            refuse(f" (a key's data has shape {expected})")
        return jnp.asarray(seed), impl
    refuse(f" (an integer array of shape {seed.shape})")


def _wide_seed_key_data(seed: int, impl, refuse):
    """The key data of an integer seed outside ``[0, 2**32)`` without JAX's 64-bit
    mode, as ``jax.random.key`` makes it with 64-bit mode: the high and low 32 bits of
    the seed as a 64-bit integer. Without 64-bit mode JAX keeps only the low bits
    (``seed % 2**32``), so seed 2**32 drew the same numbers as seed 0, and -5 those of
    4294967291, without a word."""
    if not -(2**63) <= seed < 2**63:
        refuse(" (out of range: seeds from -2**63 to 2**63 - 1)")
    seed &= 2**64 - 1  # two's complement, as a 64-bit seed holds a negative one
    key0 = jax.random.key(0, impl=impl)
    if jax.random.key_data(key0).shape != (2,):  # not threefry's two words
        refuse(" (a seed outside [0, 2**32) needs jax_enable_x64 with this PRNG implementation; or pass "
               "jax.random.key(...))")
    data = np.array([seed >> 32, seed & 0xFFFFFFFF], dtype=np.uint32)
    return jnp.asarray(data), jax.random.key_impl(key0)


def ou_current(mean, std, tau, t1, *, dt=0.025, shape=(), seed=0, t0=0.0, target=None) -> DataCurrent:
    """Coloured noise made beforehand: an Ornstein–Uhlenbeck current with mean ``mean``,
    stationary standard deviation ``std`` (nA, or both current densities) and
    correlation time ``tau`` (ms), sampled every ``dt`` ms from ``t0`` to ``t1``, as a
    :class:`DataCurrent` (linear between samples).

    ``shape``: one independent process per element, the targeted compartments' shape
    (``(n,)`` for each neuron of a population of ``n`` with ``target=None``; ``()``,
    the default, for one waveform every target shares). Each sample follows the exact
    update ``x_{k+1} = mean + a·(x_k - mean) + std·sqrt(1 - a²)·ξ_k``, ``a =
    exp(-dt/tau)``, from a stationary start (``x_0 = mean + std·ξ``), so the
    autocorrelation is ``std²·exp(-|Δt|/tau)`` at every ``dt``; a ``dt`` well below
    ``tau`` keeps the linear interpolation's smoothing small. ``seed``: an integer or a
    JAX PRNG key (``jax.vmap`` over keys gives independent trials). Called inside a
    function being differentiated, gradients reach ``mean``, ``std`` and ``tau``
    (pathwise, for the trial the seed fixes). The samples are stored: ``(t1 - t0)/dt
    + 1`` per process (4001 × 1000 neurons, 100 ms at 0.025 ms, are 32 MB in float64);
    for white noise of any length without storage use :class:`NoiseCurrent`. A
    population driven by one process per neuron (``shape=(n,)``) runs in one XLA loop:
    the backends that split a population over cores or run it as one Pallas kernel take
    a single waveform only (``backend="auto"`` chooses the loop)."""
    t0_, t1_ = (float(units.to_static(x, name, units.ms)) for x, name in ((t0, "t0"), (t1, "t1")))
    dt_ = float(units.to_static(dt, "dt", units.ms))
    if not dt_ > 0 or not np.isfinite(dt_):
        raise ValueError(f"ou_current: dt expects a finite time > 0 ms, got {dt_}")
    if not t1_ > t0_:
        raise ValueError(f"ou_current: t1 must be greater than t0 (ms), got t0={t0_}, t1={t1_}")
    mean, std = units.as_quantity(mean), units.as_quantity(std)
    density = units.is_quantity_of(mean, units.mA_per_cm2) or units.is_quantity_of(std, units.mA_per_cm2)
    if density:
        # As the stimuli's own rule: a plain number beside a density would be read as
        # mA/cm², where plain amplitudes are nA; ambiguous unless it is 0.
        plain = [name for name, x in (("mean", mean), ("std", std))
                 if not isinstance(x, u.Quantity) and units.is_concrete(x)
                 and np.any(np.asarray(x) != 0)]
        if plain:
            raise ValueError(
                f"ou_current: {plain} given as plain numbers beside a current density; plain "
                "amplitudes are nA elsewhere, so give both as densities (e.g. 0.5 * u.uA / u.cm**2) "
                "or both as currents"
            )
    unit = units.mA_per_cm2 if density else units.nA
    mean = units.to_base(mean, "ou_current.mean", unit)
    std = units.to_base(std, "ou_current.std", unit)
    tau = units.to_base(tau, "ou_current.tau", units.ms)
    units.check_value(std, "ou_current.std", "nonnegative", unit)
    units.check_value(mean, "ou_current.mean", None, unit)
    units.check_value(tau, "ou_current.tau", "positive", units.ms)
    shape_given = shape
    try:
        shape = tuple(operator.index(k) for k in shape)
    except TypeError:
        shape = None
    if shape is None or any(k < 0 for k in shape):
        raise ValueError(f"ou_current: shape expects a tuple of non-negative integers, e.g. (n,), got {shape_given!r}")
    try:
        fits = np.broadcast_shapes(np.shape(mean), np.shape(std), np.shape(tau), shape) == shape
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(
            f"ou_current: mean {np.shape(mean)}, std {np.shape(std)} and tau {np.shape(tau)} must be "
            f"scalars or fit shape={shape}"
        )
    key = prng_key(seed, "ou_current: seed")
    n_samples = int(math.ceil((t1_ - t0_) / dt_ - 1e-9)) + 1
    dtype = jnp.result_type(mean, std, tau, float)
    values = _ou_values(key, mean, std, tau, dt=dt_, n_samples=n_samples, shape=shape, dtype=dtype)
    return DataCurrent(values, dt=dt_, t0=t0_, target=target, density=density)


@functools.partial(jax.jit, static_argnames=("dt", "n_samples", "shape", "dtype"))
def _ou_values(key, mean, std, tau, *, dt: float, n_samples: int, shape: tuple, dtype):
    """:func:`ou_current`'s ``n_samples`` values of ``shape`` at step ``dt`` (ms), one
    compiled program (op by op, each new size compiled 16 small programs)."""
    xi = jax.random.normal(key, (n_samples,) + shape, dtype)
    a = jnp.exp(-dt / tau)
    kick = std * jnp.sqrt(-jnp.expm1(-2.0 * dt / tau))  # std·sqrt(1 - a²), exact for small dt/tau

    def advance(x, z):
        x = mean + a * (x - mean) + kick * z
        return x, x

    x0 = jnp.broadcast_to(mean + std * xi[0], shape)
    _, rest = jax.lax.scan(advance, x0, xi[1:])
    return jnp.concatenate([x0[None], rest], axis=0)


def uneven_interval_factor(steps):
    """The noise power (and short-interval membrane variance) of samples held for ``m``
    or ``m + 1`` steps in turn, ``steps = interval/dt = m + f``, relative to samples held
    exactly ``interval``: ``(m² + (2m + 1)·f) / (m + f)²``, 1 for a whole number."""
    m = np.floor(steps)
    f = steps - m
    return (m**2 + (2 * m + 1) * f) / steps**2


def warn_uneven_interval(name, interval, dt) -> None:
    """Warn if a (concrete) ``interval`` is not a whole multiple of ``dt``: samples are
    then held for uneven numbers of steps, and the noise is stronger than its ``std``
    and ``interval`` say (up to 12.5 %, :func:`uneven_interval_factor`)."""
    steps = np.asarray(interval, dtype=float).ravel() / dt
    uneven = np.abs(steps - np.round(steps)) > 1e-6 * np.maximum(steps, 1.0)
    if not np.any(uneven):
        return
    worst = float(steps[uneven][np.argmax(uneven_interval_factor(steps[uneven]))])
    warnings.warn(
        f"{name}.interval = {worst * dt:.6g} ms is not a whole multiple of dt = {dt:.6g} ms: the solver "
        f"holds samples for {int(worst)} and {int(worst) + 1} steps in turn, which makes the noise's power "
        f"(the membrane's variance) {uneven_interval_factor(worst):.3g} times that of samples held "
        f"{worst * dt:.6g} ms; take a whole multiple of dt ({round(worst) * dt:.6g} ms here) or a dt that "
        "divides the interval",
        stacklevel=outside_stacklevel(),
    )


def warn_shared_seeds(stimuli) -> None:
    """Warn if two noise stimuli of one run draw from the same key: their samples are
    the same numbers (identical currents where their shapes agree), rarely what two
    noise sources are meant to be."""
    seen = {}
    for i, s in enumerate(stimuli):
        if not isinstance(s, NoiseCurrent) or not units.is_concrete(s.seed):
            continue
        key = (s.impl, tuple(np.asarray(s.seed).ravel().tolist()))
        if key in seen:
            warnings.warn(
                f"stimuli[{seen[key]}] and stimuli[{i}] are NoiseCurrents with the same seed: they draw "
                "the same samples (identical currents, fully correlated inputs); give each its own seed "
                "(e.g. seed=1, seed=2, or keys from jax.random.split) unless that is intended",
                stacklevel=outside_stacklevel(),
            )
        else:
            seen[key] = i
