"""Point neurons with threshold, reset and refractoriness (absolute units)."""

from .base import AbstractSpikingNeuron
from .lif import LIF

__all__ = ["AbstractSpikingNeuron", "LIF"]
