"""Couplings between compartments: gap junctions, chemical synapses, connection rules."""

from . import conn
from .base import AbstractCoupling
from .gap import (
    AbstractGapJunction, AsymmetricGapJunction, AsymmetryGapJunction, SymmetricGapJunction,
    SymmetryGapJunction,
)
from .delta import DeltaSynapse
from .poisson import PoissonInput
from .synapse import AbstractSynapse, AlphaSynapse, Exp2Synapse, ExpCurrentSynapse, ExpSynapse

__all__ = [
    "conn", "AbstractCoupling", "AbstractGapJunction", "SymmetricGapJunction",
    "AsymmetricGapJunction", "SymmetryGapJunction", "AsymmetryGapJunction",
    "AbstractSynapse", "ExpSynapse", "AlphaSynapse", "Exp2Synapse", "ExpCurrentSynapse",
    "DeltaSynapse", "PoissonInput",
]
