"""Current waveforms: NEURON's IClamp (:class:`StepCurrent`), ramps, sines and
recorded currents."""

from __future__ import annotations

import math
import warnings

import jax.numpy as jnp
import numpy as np

from .. import units
from .._stack import outside_stacklevel
from .base import AbstractStimulus

__all__ = ["StepCurrent", "Ramp", "Sine", "DataCurrent", "check_samples", "interpolate_samples"]


def _within(t, delay, dur, value):
    """``value`` for ``delay <= t < delay + dur`` (NEURON's IClamp), 0 outside.

    A product with the window's 0/1 rather than ``jnp.where``: Pallas' Triton lowering
    types a select between a traced scalar and a constant as its boolean predicate, so
    the fused GPU kernel could not take a stimulus amplitude it differentiates. Values
    here are finite, so the product is the same number."""
    value = jnp.asarray(value)
    return value * ((t >= delay) & (t < delay + dur)).astype(value.dtype)


class _Windowed(AbstractStimulus):
    # Subclasses declare ``delay`` and ``dur`` (ms) themselves, after their amplitude,
    # so that positional order reads as NEURON's IClamp: (amp, delay, dur).

    mergeable = True  # elementwise waveforms of their parameters

    def breakpoints(self):
        return (self.delay, self.delay + self.dur)

    def check_run(self, *, t0, t1, dt, adaptive, continued=False):
        """Warns of a window (``dur``) shorter than a constant step ``dt``: the default
        solver takes the current at each step's midpoint (as NEURON does), so such a
        pulse is missed where no midpoint falls in it, or counted for the whole step,
        ``dt/dur`` times its charge (a 0.2 ms pulse at dt = 1 ms: no change or 79.6 mV
        for an exact 15.9 mV)."""
        if not adaptive and units.is_concrete(self.dur):
            dur = np.asarray(self.dur)
            short = (dur > 0) & (dur < dt * (1 - 1e-9))
            if np.any(short):
                name = type(self).__name__
                shortest = float(np.min(dur[short]))
                warnings.warn(
                    f"{name}.dur = {shortest:.6g} ms is shorter than the step dt = {dt:.6g} ms: the current is taken "
                    "at each step's midpoint, so the pulse is either missed (no midpoint inside it) or counted for "
                    f"a whole step ({dt / shortest:.3g} times its charge); with dt <= dur the charge delivered is "
                    "within dt/dur of the pulse's (10 % at dt = dur/10)",
                    stacklevel=outside_stacklevel(),
                )
        return self


class StepCurrent(_Windowed):
    """NEURON's ``IClamp``: ``amp`` nA from ``delay`` for ``dur`` ms (``delay <= t <
    delay + dur``).

    ``amp`` is differentiable; ``delay`` and ``dur`` are not usefully so: with the
    default solver the current is taken at each step's midpoint, as NEURON does, so the
    onset moves in whole steps and a gradient in ``delay`` is 0."""

    amp: object = units.param(units.nA, default=0.0)
    delay: object = units.param(units.ms, default=0.0)
    dur: object = units.param(units.ms, default=math.inf, check="nonnegative", allow_inf=True)

    def current(self, t):
        return _within(t, self.delay, self.dur, self.amp)


class Ramp(_Windowed):
    """A current rising linearly from ``amp_start`` to ``amp_stop`` (nA) between
    ``delay`` and ``delay + dur`` (ms); zero outside."""

    amp_start: object = units.param(units.nA, default=0.0)
    amp_stop: object = units.param(units.nA, default=0.0)
    delay: object = units.param(units.ms, default=0.0)
    dur: object = units.param(units.ms, default=0.0, check="nonnegative")

    def current(self, t):
        frac = (t - self.delay) / jnp.where(self.dur > 0, self.dur, 1.0)
        i = self.amp_start + (self.amp_stop - self.amp_start) * frac
        return _within(t, self.delay, self.dur, i)


class Sine(_Windowed):
    """``offset + amp·sin(2π·freq·(t - delay) + phase)`` nA between ``delay`` and
    ``delay + dur`` (ms), zero outside; ``freq`` in Hz, ``phase`` in radians."""

    amp: object = units.param(units.nA, default=0.0)
    freq: object = units.param(units.Hz, default=10.0, check="nonnegative")
    delay: object = units.param(units.ms, default=0.0)
    dur: object = units.param(units.ms, default=math.inf, check="nonnegative", allow_inf=True)
    phase: object = units.param(None, default=0.0)
    offset: object = units.param(units.nA, default=0.0)

    def current(self, t):
        # freq is in Hz and t in ms: 2π·f·t/1000.
        i = self.offset + self.amp * jnp.sin(2 * jnp.pi * self.freq * (t - self.delay) / 1000.0 + self.phase)
        return _within(t, self.delay, self.dur, i)


class DataCurrent(AbstractStimulus):
    """A recorded current: ``values`` (nA) sampled every ``dt`` ms from ``t0``,
    linearly interpolated between samples and zero outside the recording.

    ``values`` has the samples along its first axis: shape ``(T,)`` for one waveform
    for every targeted compartment, or ``(T, ...)`` for one waveform each, the trailing
    shape fitting the target (``(T, n)`` for a population of ``n`` with
    ``target=None``, ``(T, k)`` for ``k`` indices), e.g. a recorded current per neuron
    or noise made beforehand (:func:`ou_current`). Every sample is differentiable.
    Populations with per-compartment waveforms run in one XLA loop (the backends that
    split a population into slices take a single waveform only)."""

    values: object = units.param(units.nA)
    dt: object = units.param(units.ms, default=0.025, check="positive")
    t0: object = units.param(units.ms, default=0.0)

    def __post_init__(self):
        super().__post_init__()
        check_samples(self, "nA")

    @property
    def splittable(self) -> bool:
        """One waveform for every target can be cut with a population; one per
        compartment (values of shape ``(T, ...)``) is not cut along its second axis."""
        return np.ndim(self.values) == 1

    unsplittable_because = "its values hold a waveform per compartment, shape (T, ...)"

    def current(self, t):
        value, inside = interpolate_samples(self.values, self.t0, self.dt, t)
        return jnp.where(inside, value, 0.0)

    def check_run(self, *, t0, t1, dt, adaptive, continued=False):
        """Warns where the samples are closer than the run's step (see
        :func:`warn_samples_finer_than_step`); any run is accepted."""
        del t0, t1, continued
        warn_samples_finer_than_step(self, dt, adaptive)
        return self

    def breakpoints(self):
        return (self.t0, self.t0 + self.dt * (self.values.shape[0] - 1))

    def sample_times(self):
        return self.t0 + self.dt * jnp.arange(self.values.shape[0])


def check_samples(stimulus, unit: str) -> None:
    """ValueError unless ``stimulus.values`` holds at least 2 samples along its first
    axis (in ``unit``)."""
    if np.ndim(stimulus.values) < 1 or np.shape(stimulus.values)[0] < 2:
        raise ValueError(
            f"{type(stimulus).__name__}.values expects an array of at least 2 samples along its first "
            f"axis ({unit}; shape (T,) or (T, ...)), got shape {np.shape(stimulus.values)}"
        )


def warn_samples_finer_than_step(stimulus, dt, adaptive) -> None:
    """A warning if ``stimulus.dt`` (its samples' spacing, ms) is shorter than a
    constant step ``dt``: the solver reads the interpolated samples once per step, so
    most are never read and faster changes alias (a recording's spacing given in
    seconds, 2.5e-5, put the whole recording into the run's first step)."""
    if adaptive or not units.is_concrete(stimulus.dt):
        return
    spacing = float(stimulus.dt)
    if spacing < dt * (1 - 1e-9):
        name = type(stimulus).__name__
        warnings.warn(
            f"{name}.dt = {spacing:.6g} ms: its samples are closer than the run's step dt = {dt:.6g} ms, "
            f"which reads them once per step, so {100 * (1 - spacing / dt):.3g} % of them are never read "
            f"(and faster changes alias); run with dt <= {spacing:.6g} ms, or average the samples down to "
            "the step first (and check the samples' spacing is in ms)",
            stacklevel=outside_stacklevel(),
        )


def interpolate_samples(values, t0, dt, t):
    """``(value, inside)``: ``values`` (samples along the first axis, every ``dt`` ms from
    ``t0``) linearly interpolated at time ``t``, and whether ``t`` lies within the
    recording. The grid is uniform, so the sample index is arithmetic (no search, as
    ``jnp.interp`` does)."""
    n = values.shape[0]
    x = (t - t0) / dt
    k = jnp.clip(jnp.floor(x), 0, n - 2)
    frac = x - k
    k = k.astype(jnp.int32)
    value = values[k] + (values[k + 1] - values[k]) * frac
    inside = (t >= t0) & (t <= t0 + dt * (n - 1))
    return value, inside
