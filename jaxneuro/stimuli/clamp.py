"""Voltage clamps: NEURON's single-electrode clamp ``SEClamp``, a command voltage applied
through a series resistance, with the command in three levels (:class:`VoltageClamp`)
or from samples (:class:`DataVoltageClamp`)."""

from __future__ import annotations

import abc
import copy
import dataclasses

import equinox as eqx
import jax.numpy as jnp

from .. import units
from .base import AbstractStimulus
from .currents import check_samples, interpolate_samples, warn_samples_finer_than_step
from .targets import Location, is_location_list, location_x, placements

__all__ = ["AbstractVoltageClamp", "VoltageClamp", "DataVoltageClamp"]


class AbstractVoltageClamp(AbstractStimulus):
    """A single-electrode clamp: a command voltage ``vc`` (mV) held through a series
    resistance ``rs`` (MΩ, a field of each subclass), injecting ``(vc - v)/rs`` nA
    while on. Subclasses give :meth:`command`."""

    splittable = False
    unsplittable_because = "its current reads the clamped compartment's voltage"

    #: The run's ``(t0, t1, dt, midpoint of its last step, command time of its first
    #: sample)`` (ms), set by :meth:`check_run` for a run at a constant step (None
    #: otherwise): :meth:`recorded` finds the step that ended at a sample.
    _run: object = eqx.field(default=None, kw_only=True, repr=False)

    def __post_init__(self):
        if self.density:
            raise ValueError(
                f"{type(self).__name__}: density=True does not apply; a clamp's current is set by its "
                "command voltage (mV) and series resistance rs (MΩ)"
            )
        super().__post_init__()
        for location in _locations(self.target):
            if location.x in (0.0, 1.0):
                raise ValueError(_section_end(self, self.target))

    @abc.abstractmethod
    def command(self, t):
        """``(vc, on)`` at time ``t`` (ms): the command voltage (mV) and whether the
        clamp is on."""

    def conductance(self, t):
        """The clamp's conductance ``1/rs`` (µS) at time ``t`` (ms); 0 while it is off."""
        _, on = self.command(t)
        g = 1.0 / jnp.asarray(self.rs)
        return g * on.astype(g.dtype)

    def current(self, t, v):
        """The clamp's current (nA) at time ``t`` (ms) with the clamped compartment at
        ``v`` (mV): ``(vc - v) / rs`` while on, else 0."""
        vc, _ = self.command(t)
        return self.conductance(t) * (vc - v)

    def check_run(self, *, t0, t1, dt, adaptive, continued=False):
        """The clamp with the run's grid (constant steps), which :meth:`recorded` needs
        to find the step that ended at a sample; as it is for adaptive steps. A
        ``continued`` run's first sample ends the earlier run's last step, taken to be
        of the same ``dt``."""
        if adaptive:
            return self
        from ..solve.fixed_step import count_steps

        # The last step ends at t1, shortened where dt does not divide the run: its
        # midpoint, computed here in float64 from the Python numbers.
        last_start = t0 + (count_steps(t0, t1, dt) - 1) * dt
        run = copy.copy(self)
        grid = [t0, t1, dt, last_start + 0.5 * (t1 - last_start), t0 - 0.5 * dt if continued else t0]
        object.__setattr__(run, "_run", jnp.asarray(grid, dtype=jnp.result_type(float)))
        return run

    def step_command_time(self, t):
        """The time (ms) at which the step that ended at ``t`` read the command: its
        midpoint ``t - dt/2`` (NEURON's ``fadvance`` reads stimuli at ``t + dt/2``), the
        last step's own midpoint (shortened where ``dt`` does not divide the run); ``t``
        itself at a fresh run's start (no step has ended there: NEURON's ``finitialize``
        takes the command at ``t0``), and where the run's grid is unknown (adaptive
        steps); at a continued run's start, the earlier run's last step's midpoint
        ``t0 - dt/2`` (the sample ends that step: the same current as the earlier run's
        last sample)."""
        if self._run is None:
            return t
        t0, t1, dt, last_mid, first = (self._run[i] for i in range(5))
        # Samples lie on t0 + k·dt or at t1; a tenth of a step tells them apart at
        # any rounding of t.
        return jnp.where(t <= t0 + 0.1 * dt, first, jnp.where(t >= t1 - 0.1 * dt, last_mid, t - 0.5 * dt))

    def recorded(self, t, model, v):
        """The clamp's current (nA) recorded at the sample at ``t`` (ms), the
        compartments at ``v`` (mV) there: what the step that ended at ``t`` injected,
        ``(vc - v)/rs`` with ``vc`` the command that step read (at its midpoint) and
        ``v`` the voltage at its end, as NEURON's ``SEClamp.i`` (the implicit step's
        clamp current is exactly this). Placed as :meth:`inject`."""
        return self.inject(self.step_command_time(t), model, v)

    def check_placement(self, model):
        """ValueError for a clamp without a place on a cable or cell of several segments
        (it would clamp every segment; in a Network too, a cable or cell population named
        without a place on it), or at a section end (an ``x`` of 0 or 1, however
        written)."""
        for where, member, target in placements(model, self.target):
            n = getattr(member, "n_segments", 1)
            if target is None and n > 1:
                raise ValueError(
                    f"{type(self).__name__}: {where}target={self.target!r} would clamp each of the {n} "
                    "segments of the cable or cell; give a location inside a segment, (section, 0.5) "
                    "(a bare x on a cable), as NEURON's SEClamp sits at one"
                )
            for one in (target if is_location_list(target) else (target,)):
                if location_x(member, one) in (0.0, 1.0):
                    raise ValueError(_section_end(self, target))

    def inject(self, t, model, v):
        """``g·(vc - v)`` placed onto ``model``'s compartments at voltages ``v`` (mV):
        each targeted compartment is clamped at its own voltage (a population's neurons
        each get a clamp), linear in ``v`` so that the default solver's Jacobian holds
        the clamp's conductance exactly."""
        self.check_placement(model)
        vc, _ = self.command(t)
        g = self.conductance(t)
        try:
            g_placed = model.place_current(self.target, g)  # µS per compartment
            placed = model.place_current(self.target, g * vc)
        except ValueError as e:  # name the fields whose shapes do not fit
            shaped = {f.name: tuple(jnp.shape(getattr(self, f.name))) for f in dataclasses.fields(self)
                      if f.name != "target" and not f.name.startswith("_") and jnp.ndim(getattr(self, f.name)) > 0}
            raise ValueError(f"{type(self).__name__} fields of shape {shaped}: {e}") from None
        return placed - g_placed * v


class VoltageClamp(AbstractVoltageClamp):
    """NEURON's ``SEClamp``: a command voltage ``vc`` (mV) applied through the series
    resistance ``rs`` (MΩ), injecting ``i = (vc - v) / rs`` (nA, positive into the cell,
    as NEURON's ``SEClamp.i``) into the targeted compartment at its voltage ``v``.

    ``vc`` steps through three levels, from ``t = 0`` as in NEURON: ``amp1`` for
    ``t < dur1``, ``amp2`` for ``t < dur1 + dur2``, ``amp3`` for ``t < dur1 + dur2 +
    dur3``; after that the clamp is off (no current). Durations in ms (``inf``: hold
    for the rest of the run), levels in mV. A population takes one level per neuron
    (``amp2=jnp.linspace(-80, 40, n)`` runs an activation protocol in one simulation).

    The default solver treats the clamp implicitly, as NEURON does, so a small ``rs``
    (a stiff clamp, ``rs·C`` far below ``dt``) is stable (explicit diffrax solvers at a
    constant step, ``diffrax.Tsit5()``, are not: they need ``dt`` below about
    ``rs·C``, else the voltages blow up to NaN; give them a step-size controller); the voltage then reaches
    ``(g·E + vc/rs) / (g + 1/rs)``, ``rs`` in series with the membrane's conductance
    ``g``. Record the clamp's current with ``record=("i_clamp",)`` (nA, the clamps'
    current alone): at each sample, as NEURON's ``SEClamp.i``, the current the step
    that ended there injected, ``(vc - v)/rs`` with ``vc`` read at that step's
    midpoint and ``v`` at the sample (at a switch of ``vc``, the level before; at a
    run's first sample, the command there). ``i_inj`` sums every injected current,
    evaluated at the sample's own time (there the new level). Levels and
    ``rs`` are differentiable: fit channel densities to recorded clamp currents.

    ``target``: as for other stimuli (``None`` for a single compartment or every
    neuron of a population; indices; a location ``(section, x)`` on a cable or cell).
    On a cable or cell, ``x`` must lie inside a segment (e.g. ``(soma, 0.5)``): a
    section end is NEURON's zero-area node, where the clamp would hold the node, not a
    segment, and this is refused. With constant steps the command is read at each
    step's midpoint, so a level switching at ``dur1`` takes effect in the step that
    contains it, as in NEURON. Backends that split a population (``"sharded"``,
    ``"pallas"``) do not take a clamp; it runs in one XLA loop.
    """

    amp1: object = units.param(units.mV, default=0.0)
    dur1: object = units.param(units.ms, default=0.0, check="nonnegative", allow_inf=True)
    amp2: object = units.param(units.mV, default=0.0)
    dur2: object = units.param(units.ms, default=0.0, check="nonnegative", allow_inf=True)
    amp3: object = units.param(units.mV, default=0.0)
    dur3: object = units.param(units.ms, default=0.0, check="nonnegative", allow_inf=True)
    rs: object = units.param(units.Mohm, default=1.0, check="positive")

    def command(self, t):
        """``(vc, on)`` at time ``t`` (ms): the command voltage (mV) and whether the
        clamp is on (False after ``dur1 + dur2 + dur3``)."""
        end2 = self.dur1 + self.dur2
        vc = jnp.where(t < self.dur1, self.amp1, jnp.where(t < end2, self.amp2, self.amp3))
        return vc, t < end2 + self.dur3

    def breakpoints(self):
        end2 = self.dur1 + self.dur2
        return (self.dur1, end2, end2 + self.dur3)


class DataVoltageClamp(AbstractVoltageClamp):
    """A voltage clamp whose command follows samples: ``values`` (mV) every ``dt`` ms
    from ``t0``, linearly interpolated, held through ``rs`` (MΩ); on from ``t0`` to
    the last sample, off outside (no current). NEURON's ``SEClamp`` with a
    ``Vector.play`` into its ``amp1``: ramps, action-potential clamps, recorded
    command protocols.

    ``values``: shape ``(T,)`` for one command for every targeted compartment, or
    ``(T, ...)`` for one each (``(T, n)`` for each neuron of a population). The
    samples and ``rs`` are differentiable. Treated implicitly by the default solver,
    read at each step's midpoint, targets and recording as :class:`VoltageClamp`: the
    recorded ``i_clamp`` (nA) is ``(vc - v)/rs`` with ``vc`` (mV) the command of the
    step that ended at the sample (at its midpoint, half a step earlier), ``v`` (mV)
    the voltage at the sample and ``rs`` in MΩ: the current that step injected, equal
    to NEURON's ``SEClamp.i`` (and, for a stiff clamp on a ramp, to ``C·dv/dt`` plus
    the membrane's current). The command at the sample's own time would be off by
    ``slope·(dt/2)/rs``, 50 nA for a 4 mV/ms ramp at ``rs`` = 0.001 MΩ; ``i_inj``,
    evaluated at the sample's time, is. With adaptive steps ``i_clamp`` too is taken
    at the sample's time. Voltages and currents agree with NEURON's to rounding:
    tests/test_voltage_clamp.py."""

    values: object = units.param(units.mV)
    dt: object = units.param(units.ms, default=0.025, check="positive")
    t0: object = units.param(units.ms, default=0.0)
    rs: object = units.param(units.Mohm, default=1.0, check="positive")

    def __post_init__(self):
        super().__post_init__()
        check_samples(self, "mV")

    def command(self, t):
        return interpolate_samples(self.values, self.t0, self.dt, t)

    def check_run(self, *, t0, t1, dt, adaptive, continued=False):
        """As a clamp's, and warns where the samples are closer than the run's step
        (see :func:`~jaxneuro.stimuli.currents.warn_samples_finer_than_step`)."""
        warn_samples_finer_than_step(self, dt, adaptive)
        return super().check_run(t0=t0, t1=t1, dt=dt, adaptive=adaptive, continued=continued)

    def breakpoints(self):
        return (self.t0, self.t0 + self.dt * (self.values.shape[0] - 1))

    def sample_times(self):
        return self.t0 + self.dt * jnp.arange(self.values.shape[0])


def _locations(target):
    """The :class:`Location` objects in a normalised ``target`` (a Network's
    ``("name", location)`` included)."""
    if isinstance(target, Location):
        return [target]
    if is_location_list(target):
        return list(target)
    if isinstance(target, tuple) and len(target) == 2 and isinstance(target[0], str):
        return _locations(target[1])
    return []


def _section_end(clamp, target) -> str:
    return (f"{type(clamp).__name__}: target={target!r} is a section end, NEURON's zero-area node, which "
            "this solver does not model as a compartment of its own; clamp inside a segment instead, "
            "e.g. (section, 0.5)")
