"""Execution backends for ``simulate``'s fixed-step loop.

``backend="xla"``: the loop as ``lax.scan`` over the solver's step (any model, any
hardware, differentiable in forward and reverse mode). ``backend="pallas"``: the whole
time loop fused into one Pallas kernel for populations of independent compartments or
point neurons (:mod:`jaxneuro.backends.pallas`); on the CPU it runs in Pallas'
interpret mode (for testing, not speed). ``backend="sharded"``: such a population split
over the local devices, each running the XLA loop on its slice
(:mod:`jaxneuro.backends.sharded`); on a CPU jaxneuro makes each core a device.
``backend="auto"`` (the default) picks ``"pallas"`` on a GPU when the model qualifies,
``"sharded"`` on a CPU with several devices for populations of at least
``sharded.MIN_PER_DEVICE`` neurons per device, and ``"xla"`` otherwise.
"""

from __future__ import annotations

import jax

from . import pallas, population, sharded

BACKENDS = ("auto", "xla", "pallas", "sharded")


def check(backend) -> None:
    """ValueError unless ``backend`` is one of :data:`BACKENDS`."""
    if backend not in BACKENDS:
        raise ValueError(f"backend expects one of {BACKENDS}, got {backend!r}")


def choose(backend: str, model, solver, y0, stimuli=()) -> str:
    """``"xla"``, ``"pallas"`` or ``"sharded"`` for ``backend`` (one of
    :data:`BACKENDS`); a ValueError when ``"pallas"`` or ``"sharded"`` is asked for a
    model, solver or stimuli it cannot run."""
    check(backend)
    if backend == "xla":
        return "xla"
    if backend in ("pallas", "sharded"):
        module = pallas if backend == "pallas" else sharded
        reason = module.unsupported(model, solver, y0, stimuli)
        if reason:
            raise ValueError(f"backend={backend!r}: {reason}; use backend='xla'")
        return backend
    platform = jax.default_backend()
    if platform == "gpu" and not pallas.unsupported(model, solver, y0, stimuli):
        return "pallas"
    if (platform == "cpu" and not sharded.unsupported(model, solver, y0, stimuli)
            and sharded.worthwhile(model)):
        return "sharded"
    return "xla"


__all__ = ["BACKENDS", "check", "choose", "pallas", "population", "sharded"]
