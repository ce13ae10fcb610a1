"""jaxneuro: differentiable neuron simulation in JAX.

Units throughout: ms, mV, nA, µS, nF, MΩ, µm, °C; channel densities in S/cm² and
mA/cm², ``cm`` in µF/cm², axial ``Ra`` in Ω·cm. Any parameter also accepts a
``saiunit`` Quantity. See :mod:`jaxneuro.units`.

Importing jaxneuro lets XLA compile small CPU time loops into single kernels (1.3-2.9×
faster for a thousand compartments in one measurement: benchmarks/RESULTS.md) and makes each CPU core a JAX device,
over which populations of independent neurons are split; see :mod:`jaxneuro.xla_cpu`.
"""

from . import xla_cpu

xla_cpu.apply()  # before JAX first uses the CPU; see jaxneuro/xla_cpu.py

from . import analysis, channels, units  # noqa: E402
from .analysis import (  # noqa: E402
    fi_curve, firing_rate, input_resistance, isi, membrane_time_constant, spike_count, spike_times, steady_state,
)
from .coupling import (  # noqa: E402
    AlphaSynapse, AsymmetricGapJunction, AsymmetryGapJunction, DeltaSynapse, Exp2Synapse, ExpCurrentSynapse,
    ExpSynapse, PoissonInput, SymmetricGapJunction, SymmetryGapJunction, conn,
)
from .model import AbstractModel  # noqa: E402
from .morphology import Cable, Cell, Compartment  # noqa: E402
from .network import Network, SpikeTrains, poisson_spikes  # noqa: E402
from .neurons import LIF, AbstractSpikingNeuron, AdEx, Izhikevich, surrogate  # noqa: E402
from .solve import StaggeredEuler, System, Trace, simulate  # noqa: E402
from .solve.summary import SpikeDetector, SpikeSummary  # noqa: E402
from .state import State  # noqa: E402
from .stimuli import AbstractStimulus, DataCurrent, Ramp, Sine, StepCurrent  # noqa: E402
from .stimuli import DataVoltageClamp, VoltageClamp  # noqa: E402
from .stimuli import NoiseCurrent, ou_current  # noqa: E402
from . import fit  # noqa: E402  (a callable module: jn.fit(loss, model, params=...))
from .fit import losses  # noqa: E402
from . import sweep  # noqa: E402  (a callable module: jn.sweep(fn, grid, batch_size=..., out=...))
from . import plot  # noqa: E402  (matplotlib, optional, is imported only when something is drawn)

__version__ = "0.1.0"

__all__ = [
    "fit", "losses", "plot",
    "analysis", "channels", "units", "surrogate",
    "steady_state", "input_resistance", "membrane_time_constant",
    "spike_times", "isi", "spike_count", "firing_rate", "fi_curve",
    "AbstractModel", "Cable", "Cell", "Compartment", "State", "LIF", "AbstractSpikingNeuron", "AdEx", "Izhikevich",
    "simulate", "StaggeredEuler", "System", "Trace", "SpikeSummary", "SpikeDetector", "sweep",
    "AbstractStimulus", "StepCurrent", "Ramp", "Sine", "DataCurrent", "VoltageClamp", "DataVoltageClamp", "NoiseCurrent", "ou_current",
    "conn", "Network", "SpikeTrains", "poisson_spikes", "SymmetricGapJunction", "AsymmetricGapJunction",
    "SymmetryGapJunction", "AsymmetryGapJunction", "ExpSynapse", "AlphaSynapse", "Exp2Synapse",
    "ExpCurrentSynapse", "DeltaSynapse", "PoissonInput",
]
