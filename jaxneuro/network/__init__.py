"""Networks: named populations plus couplings, simulated as one model."""

from .implicit import GapCoupling
from .network import Network
from .sources import SpikeTrains, poisson_spikes

__all__ = ["Network", "GapCoupling", "SpikeTrains", "poisson_spikes"]
