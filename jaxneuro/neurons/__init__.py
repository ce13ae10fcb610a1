"""Point neurons with threshold, reset and refractoriness (absolute units)."""

from . import surrogate
from .base import AbstractSpikingNeuron
from .adex import AdEx
from .izhikevich import Izhikevich
from .lif import LIF

__all__ = ["surrogate", "AbstractSpikingNeuron", "LIF", "AdEx", "Izhikevich"]
