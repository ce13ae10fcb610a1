"""Injected currents as Equinox modules: their amplitudes are differentiable leaves.

Every stimulus gives ``current(t)`` in nA and a ``target``: ``None`` for every
compartment of the model (one compartment, or each neuron of a population), an
index / sequence of indices into a population (an index listed twice gets the current
twice), or a location on a cable or cell: ``(section, x)`` with a float ``x`` in [0, 1]
(a bare ``x`` on a one-section cable), kept as a :class:`Location`. On a population
an integer ``i`` or a pair ``(i, j)`` are indices; on a cable or cell of several
segments they are refused as ambiguous (``1`` and ``(section, 1)`` read like
locations): write ``x`` as a float, ``1.0`` or ``(section, 1.0)``, or segment indices
as a list, ``[i]`` or ``[i, j]``.
"""

from __future__ import annotations

import abc
import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import saiunit as u

from . import units
from ._repr import values_repr

__all__ = ["AbstractStimulus", "StepCurrent", "Ramp", "Sine", "DataCurrent", "Location"]


@dataclasses.dataclass(frozen=True)
class Location:
    """A place on a cable or cell, as a stimulus target: ``section`` (a name or an
    index; None for the one section of a cable) and ``x`` in [0, 1].

    Targets are static configuration, compared when JAX looks up a compiled program;
    a location is its own type so that it never equals segment indices (``(1, 0.0)``
    and ``(1, 0)`` are equal tuples, and ``1.0 == 1``)."""

    section: str | int | None
    x: float

    def __repr__(self):
        return repr(self.x) if self.section is None else repr((self.section, self.x))


class IndexPair(tuple):
    """A target written as a tuple of two integers: two indices into a population,
    but on a cable or cell ambiguous with a location ``(section, x)`` whose ``x`` was
    written as an integer, so those refuse it. Unequal to the same indices written as a
    list (compiled programs are looked up by target)."""

    def __eq__(self, other):
        return type(other) is IndexPair and tuple.__eq__(self, other)

    def __ne__(self, other):
        return not self == other

    def __hash__(self):
        return hash(("IndexPair", tuple(self)))


def _normalise_target(target):
    if target is None or isinstance(target, (str, Location)):
        return target
    if isinstance(target, (bool, np.bool_)):  # not the index 1
        raise ValueError(f"stimulus target expects None, indices, a location or a population name, got {target!r}")
    if isinstance(target, (int, np.integer)):
        return int(target)
    if isinstance(target, (float, np.floating)):
        return Location(None, float(target))  # a location x along a one-section cable
    if (isinstance(target, tuple) and len(target) == 2 and isinstance(target[1], (float, np.floating))
            and isinstance(target[0], (str, int, np.integer)) and not isinstance(target[0], bool)):
        # a location (section, x) on a cable or cell
        return Location(target[0] if isinstance(target[0], str) else int(target[0]), float(target[1]))
    if isinstance(target, tuple) and len(target) == 2 and isinstance(target[0], str):
        return (target[0], _normalise_target(target[1]))
    if (isinstance(target, tuple) and len(target) == 2
            and all(isinstance(k, (int, np.integer)) and not isinstance(k, bool) for k in target)):
        return IndexPair(int(k) for k in target)
    if isinstance(target, (Sequence, np.ndarray)) or hasattr(target, "__array__"):
        arr = np.asarray(target)
        if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(
                f"stimulus target expects None, an index or a 1-D sequence of integer "
                f"indices, got {target!r}"
            )
        return tuple(int(i) for i in arr)
    raise ValueError(
        f"stimulus target expects None, an index or a sequence of indices, got {target!r}"
    )


class AbstractStimulus(eqx.Module):
    """A current injected into a model. Subclasses implement :meth:`current` (nA).

    Amplitudes may also be given as current-density quantities (e.g. ``2 *
    u.uA / u.cm**2``); they are then kept in mA/cm² and scaled by the target model's
    ``membrane_area`` when injected (``density`` is then True).
    """

    __repr__ = values_repr  # parameter values, not only their shapes

    target: Any = eqx.field(default=None, static=True, kw_only=True)
    density: bool = eqx.field(default=False, static=True, kw_only=True)

    def __post_init__(self):
        self.target = _normalise_target(self.target)
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
            if len(dens) != len([f for f in amps if isinstance(getattr(self, f.name), u.Quantity)]):
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

    def current_on(self, t, model):
        """The current at ``t`` in nA for every compartment of ``model`` (no target):
        :meth:`current`, with densities scaled by ``model``'s membrane area."""
        i = self.current(t)
        if self.density:
            i = i * model.membrane_area * units.DENSITY_TO_ABSOLUTE["current"]
        return i

    def check_placement(self, model):
        """ValueError for a current in nA without a target on a cable or cell of several
        segments: it would go into every segment in full, a total that grows with
        ``nseg`` (NEURON has no such stimulus; its IClamp sits at a location)."""
        n = getattr(model, "n_segments", 1)
        if self.target is None and not self.density and n > 1:
            raise ValueError(
                f"{type(self).__name__}: target=None with an amplitude in nA would inject it into each "
                f"of the {n} segments of the cable or cell, a total that grows with nseg; give "
                "a location, target=(section, x) or a bare x on a cable (NEURON's IClamp), or a current "
                "density (e.g. 2 * u.uA / u.cm**2), which every segment gets in proportion to its area"
            )

    def inject(self, t, model):
        """The current at ``t`` (nA) placed onto ``model``'s compartments. A density is
        placed first and then scaled by the area of each compartment it reaches, so a
        density at a location or index gets that compartment's area."""
        self.check_placement(model)
        placed = model.place_current(self.target, self.current(t))
        if self.density:
            placed = placed * model.membrane_area * units.DENSITY_TO_ABSOLUTE["current"]
        return placed


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

    def breakpoints(self):
        return (self.delay, self.delay + self.dur)


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
    linearly interpolated between samples and zero outside the recording."""

    values: object = units.param(units.nA)
    dt: object = units.param(units.ms, default=0.025, check="positive")
    t0: object = units.param(units.ms, default=0.0)

    def __post_init__(self):
        super().__post_init__()
        if np.ndim(self.values) != 1 or np.shape(self.values)[0] < 2:
            raise ValueError(
                f"DataCurrent.values expects a 1-D array of at least 2 samples (nA), got "
                f"shape {np.shape(self.values)}"
            )

    def current(self, t):
        n = self.values.shape[0]
        grid = self.t0 + self.dt * jnp.arange(n)
        inside = (t >= self.t0) & (t <= grid[-1])
        return jnp.where(inside, jnp.interp(t, grid, self.values), 0.0)

    def breakpoints(self):
        return (self.t0, self.t0 + self.dt * (self.values.shape[0] - 1))
