"""Injected currents as Equinox modules: their amplitudes are differentiable leaves.

Every stimulus gives ``current(t)`` in nA and a ``target``: ``None`` for every
compartment of the model (one compartment, or each neuron of a population), an
index / sequence of indices into a population (an index listed twice gets the current
twice), or a location on a cable or cell: ``(section, x)`` with a float ``x`` in [0, 1]
(a bare ``x`` on a one-section cable), kept as a :class:`Location`, or a list of
locations, each with its own current (amplitudes one per location, or one for all).
On a population
an integer ``i`` or a pair ``(i, j)`` are indices; on a cable or cell of several
segments they are refused as ambiguous (``1`` and ``(section, 1)`` read like
locations): write ``x`` as a float, ``1.0`` or ``(section, 1.0)``, or segment indices
as a list, ``[i]`` or ``[i, j]``.
"""

from .base import AbstractStimulus
from .clamp import AbstractVoltageClamp, DataVoltageClamp, VoltageClamp
from .currents import DataCurrent, Ramp, Sine, StepCurrent
from .noise import NoiseCurrent, ou_current
from .targets import IndexPair, Location

__all__ = ["AbstractStimulus", "StepCurrent", "Ramp", "Sine", "DataCurrent", "VoltageClamp", "DataVoltageClamp", "AbstractVoltageClamp", "NoiseCurrent", "ou_current", "Location", "IndexPair"]
