"""Networks: named populations plus couplings, simulated as one model."""

from .implicit import GapCoupling
from .network import Network

__all__ = ["Network", "GapCoupling"]
