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

import contextlib
import contextvars

import jax

from . import pallas, population, sharded

BACKENDS = ("auto", "xla", "pallas", "sharded")


def check(backend) -> None:
    """ValueError unless ``backend`` is one of :data:`BACKENDS`."""
    if backend not in BACKENDS:
        raise ValueError(f"backend expects one of {BACKENDS}, got {backend!r}")


#: Within :func:`traced_as_xla`: run every loop as ``"xla"`` (after the choice is
#: checked). A context variable, so other threads and tasks keep their own choice.
_AS_XLA = contextvars.ContextVar("jaxneuro_backends_as_xla", default=False)


@contextlib.contextmanager
def traced_as_xla():
    """Within: :func:`choose` still checks (and refuses) as usual but returns
    ``"xla"``. For a program's fingerprint that does not depend on the machine
    (:func:`jaxneuro.sweep`): the backends compute the same results to rounding, but
    ``"auto"`` picks ``"sharded"`` or ``"xla"`` by the number of local devices, and the
    split program pads and slices the population by it throughout."""
    token = _AS_XLA.set(True)
    try:
        yield
    finally:
        _AS_XLA.reset(token)


def choose(backend: str, model, solver, y0, stimuli=()) -> str:
    """``"xla"``, ``"pallas"`` or ``"sharded"`` for ``backend`` (one of
    :data:`BACKENDS`); a ValueError when ``"pallas"`` or ``"sharded"`` is asked for a
    model, solver or stimuli it cannot run. Inside ``jax.shard_map`` (as
    :func:`jaxneuro.sweep` runs each device's share) ``"sharded"`` becomes ``"xla"``:
    the devices are split already."""
    chosen = _choose(backend, model, solver, y0, stimuli)
    if chosen == "sharded" and jax.sharding.get_abstract_mesh().manual_axes:
        # Inside a program already split over the devices (jax.shard_map: jn.sweep
        # runs each device's share of parameter sets so): the population runs on its
        # device in one loop, the same results as split.
        return "xla"
    return "xla" if _AS_XLA.get() else chosen


def _choose(backend, model, solver, y0, stimuli) -> str:
    check(backend)
    if backend == "xla":
        return "xla"
    if backend in ("pallas", "sharded"):
        module = pallas if backend == "pallas" else sharded
        reason = module.unsupported(model, solver, y0, stimuli)
        if reason:
            # (A reason may name the backends that run it already.)
            others = "'xla' or 'sharded'" if module is pallas and not sharded.unsupported(
                model, solver, y0, stimuli) else "'xla'"
            advice = "" if "use backend=" in reason else f"; use backend={others}"
            raise ValueError(f"backend={backend!r}: {reason}{advice}")
        return backend
    platform = jax.default_backend()
    if platform == "gpu" and not pallas.unsupported(model, solver, y0, stimuli):
        return "pallas"
    if (platform == "cpu" and not sharded.unsupported(model, solver, y0, stimuli)
            and sharded.worthwhile(model)):
        return "sharded"
    return "xla"


__all__ = ["BACKENDS", "check", "choose", "pallas", "population", "sharded", "traced_as_xla"]
