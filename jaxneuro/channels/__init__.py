"""Ion channels (NEURON density mechanisms) as Equinox modules.

Currents are densities in mA/cm², conductances in S/cm², potentials in mV.
"""

from .base import AbstractChannel, exprel_ratio
from .leak import Leak
from .hh import HH

__all__ = ["AbstractChannel", "exprel_ratio", "Leak", "HH"]

# BrainPy-family channels (Bazhenov 2002 and companions) are added below.
