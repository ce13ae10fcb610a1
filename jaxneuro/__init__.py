"""jaxneuro: differentiable neuron simulation in JAX.

Units throughout: ms, mV, nA, µS, nF, MΩ, µm, °C; channel densities in S/cm² and
mA/cm², ``cm`` in µF/cm², axial ``Ra`` in Ω·cm. Any parameter also accepts a
``saiunit`` Quantity. See :mod:`jaxneuro.units`.
"""

from . import analysis, channels, units
from .analysis import (
    fi_curve, firing_rate, input_resistance, isi, membrane_time_constant, spike_count, spike_times, steady_state,
)
from .coupling import (
    AlphaSynapse, AsymmetricGapJunction, AsymmetryGapJunction, ExpSynapse, SymmetricGapJunction,
    SymmetryGapJunction, conn,
)
from .model import AbstractModel
from .morphology import Cable, Cell, Compartment
from .network import Network
from .neurons import LIF, AbstractSpikingNeuron, AdEx, Izhikevich, surrogate
from .solve import StaggeredEuler, System, Trace, simulate
from .solve.summary import SpikeSummary
from .state import State
from .stimuli import AbstractStimulus, DataCurrent, Ramp, Sine, StepCurrent
from . import fit  # noqa: E402  (a callable module: jn.fit(loss, model, params=...))
from .fit import losses  # noqa: E402
from .sweep import sweep  # noqa: E402  (jn.sweep(fn, grid, batch_size=..., out=...))

__version__ = "0.1.0"

__all__ = [
    "fit", "losses",
    "analysis", "channels", "units", "surrogate",
    "steady_state", "input_resistance", "membrane_time_constant",
    "spike_times", "isi", "spike_count", "firing_rate", "fi_curve",
    "AbstractModel", "Cable", "Cell", "Compartment", "State", "LIF", "AbstractSpikingNeuron", "AdEx", "Izhikevich",
    "simulate", "StaggeredEuler", "System", "Trace", "SpikeSummary", "sweep",
    "AbstractStimulus", "StepCurrent", "Ramp", "Sine", "DataCurrent",
    "conn", "Network", "SymmetricGapJunction", "AsymmetricGapJunction",
    "SymmetryGapJunction", "AsymmetryGapJunction", "ExpSynapse", "AlphaSynapse",
]
