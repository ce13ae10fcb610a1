"""Ion channels (NEURON density mechanisms) as Equinox modules.

Currents are densities in mA/cm², conductances in S/cm², potentials in mV.
"""

from .base import AbstractAlphaBetaChannel, AbstractChannel, exprel_ratio, exprel_ratio_of_exp
from .leak import Leak
from .hh import HH

__all__ = ["AbstractChannel", "AbstractAlphaBetaChannel", "exprel_ratio", "exprel_ratio_of_exp", "Leak", "HH"]

# BrainPy-family channels (Bazhenov 2002 and companions) are added below.
from .bazhenov2002 import INa_Ba2002, IKDR_Ba2002
from .calcium import ICaT_HM1992
from .potassium import IKNI_Ya1989
from .ih import Ih_HM1992

__all__ += ["INa_Ba2002", "IKDR_Ba2002", "ICaT_HM1992", "IKNI_Ya1989", "Ih_HM1992"]
