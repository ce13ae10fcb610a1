"""Morphology: compartments (and, later, cables and branched cells)."""

from .compartment import Compartment

__all__ = ["Compartment"]
