"""Integration: ``simulate``, the result ``Trace`` and jaxneuro's diffrax solvers."""

from .simulate import simulate
from .staggered import StaggeredEuler
from .system import System
from .trace import Trace

__all__ = ["simulate", "StaggeredEuler", "System", "Trace"]
