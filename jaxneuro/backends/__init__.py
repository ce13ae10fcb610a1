"""Execution backends for ``simulate``'s fixed-step loop.

``backend="xla"``: the loop as ``lax.scan`` over the solver's step (any model, any
hardware, differentiable in forward and reverse mode). ``backend="pallas"``: the whole
time loop fused into one Pallas kernel for populations of independent compartments or
point neurons (:mod:`jaxneuro.backends.pallas`); on the CPU it runs in Pallas'
interpret mode (for testing, not speed). ``backend="auto"`` (the default) picks
``"pallas"`` on a GPU when the model qualifies and ``"xla"`` otherwise.
"""

from __future__ import annotations

import jax

from . import pallas

BACKENDS = ("auto", "xla", "pallas")


def choose(backend: str, model, solver, y0, stimuli=()) -> str:
    """``"xla"`` or ``"pallas"`` for ``backend`` (one of :data:`BACKENDS`); a
    ValueError when ``"pallas"`` is asked for a model, solver or stimuli it cannot run."""
    if backend not in BACKENDS:
        raise ValueError(f"backend expects one of {BACKENDS}, got {backend!r}")
    if backend == "xla":
        return "xla"
    reason = pallas.unsupported(model, solver, y0, stimuli)
    if backend == "pallas":
        if reason:
            raise ValueError(f"backend='pallas': {reason}; use backend='xla'")
        return "pallas"
    on_gpu = jax.default_backend() == "gpu"
    return "pallas" if on_gpu and not reason else "xla"


__all__ = ["BACKENDS", "choose", "pallas"]
