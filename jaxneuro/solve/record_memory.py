"""Whether a run's recorded trace can fit in memory, asked before the run starts.

A trace holds every recorded variable at every save; a population of 10⁶ neurons
recording ``v`` every step of a second is 40 000 × 10⁶ float32 values, 160 GB. XLA
asks for the whole buffer when the run starts, so a trace that cannot fit fails then
(out of memory on a GPU; on a CPU the process may be killed instead, taking the rest
of a notebook's work with it). :func:`check` refuses such a run up front and says what
to record instead.
"""

from __future__ import annotations

import math
import os

import jax
import numpy as np

from .summary import SpikeDetector

#: A trace is refused when it would take more than this share of the memory: the
#: loop's buffers and the trace made from them briefly hold it twice.
MAX_SHARE = 0.5


def device_memory_bytes() -> int | None:
    """Memory (bytes) of the default backend's local devices together: the GPUs' or
    TPUs' memory limit, or the machine's physical memory for the CPU; None where it is
    not known."""
    devices = jax.local_devices()
    if devices[0].platform == "cpu":
        try:
            return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
        except (AttributeError, ValueError, OSError):  # not a POSIX system
            return None
    total = 0
    for d in devices:
        try:
            stats = d.memory_stats()
        except Exception:  # backends without memory statistics
            return None
        if not stats or "bytes_limit" not in stats:
            return None
        total += int(stats["bytes_limit"])
    return total


def _size(n: float) -> str:
    """``n`` bytes in the largest binary unit that keeps it at least 1."""
    for power, unit in ((40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")):
        if n >= 2**power:
            return f"{n / 2**power:.3g} {unit}"
    return f"{n:.0f} bytes"


def check(observe, names, y0, n_save: int, selected: dict, *, pad_factor: float = 1.0,
          memory: int | None = None) -> None:
    """ValueError if recording ``names`` at ``n_save`` saves would take more than
    :data:`MAX_SHARE` of ``memory`` (bytes; default :func:`device_memory_bytes`).
    ``observe()`` gives one save's values (called, abstractly, only where a cheap upper
    bound does not already rule the case out); ``selected``: the names recorded at
    chosen places, with their indices; ``pad_factor``: how much larger the backend's
    buffers are than the trace (the GPU kernel pads the saves to a power of two)."""
    if not names:
        return
    memory = device_memory_bytes() if memory is None else memory
    if memory is None:
        return
    itemsize = np.dtype(y0.v.dtype).itemsize
    # No recorded variable holds more values than the model has compartments.
    bound = sum(len(selected[name]) if name in selected else y0.v.size for name in names)
    limit = MAX_SHARE * memory
    if n_save * bound * itemsize * pad_factor <= limit:
        return
    one_save = jax.eval_shape(observe)
    sizes = {name: sum(math.prod(leaf.shape) * np.dtype(leaf.dtype).itemsize for leaf in jax.tree.leaves(value))
             for name, value in one_save.items()}
    need = n_save * sum(sizes.values()) * pad_factor
    if need <= limit:
        return
    per_name = "".join(f"{name} {_size(n_save * sizes[name] * pad_factor)}, " for name in names) if len(names) > 1 else ""
    raise ValueError(
        f"record: the trace would hold {n_save} saves of {', '.join(names)} ({per_name}{_size(need)} in all), "
        f"more than half of this machine's {_size(memory)} of {jax.local_devices()[0].platform.upper()} memory, "
        "which the run would need at once. Save less often (save_every=...), record fewer variables or "
        "places (record={'v': [...]}), run in parts (init=trace), or record nothing and keep spike times only "
        "(record=(), summary=jn.SpikeSummary(...))"
    )


def spike_buffers(model, label: str = "the model") -> list[tuple[str, str, int, int]]:
    """``(what, setting, compartments, capacity)`` for each spike-time buffer the run's
    state will hold: a spiking population's (``spike_capacity``), a spike detector's
    (``SpikeSummary(capacity=...)``), a Network's populations' each; from the models'
    settings, before any state is made."""
    populations = getattr(model, "populations", None)
    if isinstance(populations, dict):
        return [b for name, pop in populations.items() for b in spike_buffers(pop, f"population {name!r}")]
    n = math.prod(getattr(model, "shape", ()))
    capacity = getattr(model, "spike_capacity", None)
    if isinstance(capacity, int):
        return [(label, f"{type(model).__name__}(spike_capacity=...)", n, capacity)]
    if isinstance(model, SpikeDetector):
        return [(label, "SpikeSummary(capacity=...)", n, model.capacity)]
    return []


def check_spike_buffers(model, *, memory: int | None = None) -> None:
    """ValueError if the spike-time buffers of ``model`` (:func:`spike_buffers`) would
    take more than :data:`MAX_SHARE` of ``memory`` (bytes; default
    :func:`device_memory_bytes`): they are part of the run's state, made before the run
    and carried through it (10⁴ neurons keeping 10⁶ spike times each asked XLA for 80
    GB, and failed with its out-of-memory error)."""
    buffers = spike_buffers(model)
    itemsize = np.dtype(jax.numpy.result_type(float)).itemsize
    need = sum(n * capacity for _, _, n, capacity in buffers) * itemsize
    if not need:
        return
    memory = device_memory_bytes() if memory is None else memory
    if memory is None or need <= MAX_SHARE * memory:
        return
    parts = ", ".join(f"{what}: {n} × {capacity} times, {_size(n * capacity * itemsize)}" for what, _, n, capacity in buffers)
    settings = sorted({setting for _, setting, _, _ in buffers})
    raise ValueError(
        f"the run's spike-time buffers would take {_size(need)} ({parts}), more than half of this machine's "
        f"{_size(memory)} of {jax.local_devices()[0].platform.upper()} memory. Keep fewer spike times per "
        f"neuron ({' or '.join(settings)}: the counts stay exact beyond it), or simulate fewer neurons at once"
    )
