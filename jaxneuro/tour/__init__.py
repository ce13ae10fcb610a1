"""``jaxneuro tour``: every seed scenario, computed against expected values."""

from .runner import run_tour
from .scenarios import SCENARIOS, Check

__all__ = ["run_tour", "SCENARIOS", "Check"]
