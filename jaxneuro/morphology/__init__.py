"""Morphology: compartments (and, later, cables and branched cells)."""

from .cable import Cable
from .cell import Cell
from .compartment import Compartment

__all__ = ["Cable", "Cell", "Compartment"]
