"""The XLA settings jaxneuro applies when imported: CPU time loops as single kernels,
each CPU core a device, and 512-bit vector code where the CPU has it.

**Small loops as one kernel.** XLA's CPU backend runs each operation of a loop body as a separate kernel and splits
every kernel of more than a few thousand values over its threads. A simulation step of a
few thousand compartments is a handful of such kernels, so hand-offs between threads
and kernel launches dominate: on two cores a 1000-neuron HH population ran 2.7-2.9×
(float32) and a 1000-compartment HH cell 1.3-1.4× slower than as one kernel
(``benchmarks/run.py`` measures both in the same run). XLA compiles a loop whose body touches fewer bytes than
``xla_cpu_small_while_loop_byte_threshold`` (1 kB by default) into one kernel instead.
Importing jaxneuro raises that limit to :data:`SMALL_LOOP_BYTES`.

**One device per core.** A loop compiled as one kernel runs on one core. Populations of
independent neurons use the others by splitting over devices
(:mod:`jaxneuro.backends.sharded`), and XLA's CPU backend has one device unless
``--xla_force_host_platform_device_count`` asks for more; importing jaxneuro sets it to
the number of cores this process may use (``os.sched_getaffinity``), if that is more
than one. ``jax.devices()`` then lists that many CPU devices; arrays are placed on the
first unless sharded, and computations that are not sharded run as before (one
1000-neuron HH population on two cores: 1.8-2.0× faster split, same run of
``benchmarks/run.py``; unchanged otherwise).
:func:`jaxneuro.sweep` splits its chunks over them too.

**512-bit vectors.** XLA's CPU compiler, like LLVM's, prefers 256-bit vector code even
on CPUs with AVX-512. A simulation step is long stretches of independent arithmetic on
every compartment (exponentials, divisions), which runs faster in full-width registers:
importing jaxneuro sets ``--xla_cpu_prefer_vector_width`` to :data:`VECTOR_BITS`
(measured on an AVX-512 Xeon, same process, one core: 1000 HH compartments 24 % faster
in float32, 7 % in float64; a 1000-compartment cell and its gradient unchanged within
±2 %; compiling that gradient in float32 took ~15 % longer). CPUs without AVX-512 are
unaffected; name the flag (e.g. ``--xla_cpu_prefer_vector_width=256``) to keep XLA's
choice, e.g. on older AVX-512 CPUs that lower their clock for 512-bit code.

All settings go into the ``XLA_FLAGS`` environment variable, which XLA reads when
JAX first uses the CPU, so:

- they take effect only if jaxneuro is imported before the first computation of the
  process (importing ``jax`` or changing ``jax.config`` first is fine);
- a value already named in ``XLA_FLAGS`` is kept: set
  ``--xla_backend_extra_options=xla_cpu_small_while_loop_byte_threshold=1024`` to keep
  XLA's default loops, ``--xla_force_host_platform_device_count=1`` for one CPU device;
- the loop limit is a trade-off, measured on two cores: 4 MiB is what the backward pass of
  a 1000-compartment float64 cell needs to become one kernel (its gradient 1.3x faster
  than at 1 MiB). 16 MiB (each setting in a process of its own, medians of 5,
  2026-11-30) made a 30 000-compartment HH cell 1.2x faster and a 300-compartment cell
  under ``jax.vmap`` over 64 values 1.4x faster (1.0-1.1x a single run per member,
  against 1.5-1.6x; over 16 values both limits give one kernel), but compiling took
  5-7 % longer across the test suite's models, a cost every first call pays, so the
  limit stays at 4 MiB. Against 1 MiB, float32 populations of 1.5-3·10⁴ neurons ran
  1.5-1.7x faster (each core's share of a split population,
  :mod:`jaxneuro.backends.sharded`, is one loop; before populations were split, such
  loops had lost XLA's threads under the limit and ran 1.3x slower). Loops above the
  limit run kernel by kernel, with XLA's threads. Name the key in ``XLA_FLAGS`` to
  choose another value (``=16777216`` for large cells or wide ``vmap`` batches of cells,
  ``=1048576`` on a CPU with many cores, where a very large cell may gain more from
  XLA's threads than it loses to their hand-offs: not measured); GPUs and TPUs ignore
  these settings.
"""

from __future__ import annotations

import os
import re
import warnings

SMALL_LOOP_BYTES = 4 << 20
"""Loops whose body touches at most this many bytes (4 MiB) run as one kernel."""

VECTOR_BITS = 512
"""The vector width (bits) jaxneuro asks XLA's CPU compiler to prefer."""

THRESHOLD_KEY = "xla_cpu_small_while_loop_byte_threshold"
VECTOR_WIDTH_FLAG = "--xla_cpu_prefer_vector_width"
DEVICE_COUNT_FLAG = "--xla_force_host_platform_device_count"
_EXTRA = "--xla_backend_extra_options="


def with_small_loop_threshold(flags: str, nbytes: int = SMALL_LOOP_BYTES) -> str:
    """``flags`` (an ``XLA_FLAGS`` string) with the small-loop limit set to ``nbytes``,
    unless it already names one. Other backend extra options are kept."""
    if not isinstance(nbytes, int) or nbytes < 0:
        raise ValueError(f"nbytes expects a non-negative int (bytes), got {nbytes!r}")
    if THRESHOLD_KEY in flags:
        return flags
    entry = f"{THRESHOLD_KEY}={nbytes}"
    match = re.search(re.escape(_EXTRA) + r"(\S*)", flags)
    if match is None:
        return f"{flags} {_EXTRA}{entry}".strip()
    value = f"{match.group(1)},{entry}" if match.group(1) else entry
    return flags[: match.start(1)] + value + flags[match.end(1):]


def with_cpu_devices(flags: str, count: int) -> str:
    """``flags`` (an ``XLA_FLAGS`` string) asking for ``count`` CPU devices, unless it
    already names a count or ``count`` is 1."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"count expects a positive int (CPU devices), got {count!r}")
    if DEVICE_COUNT_FLAG in flags or count == 1:
        return flags
    return f"{flags} {DEVICE_COUNT_FLAG}={count}".strip()


def with_vector_width(flags: str, bits: int = VECTOR_BITS) -> str:
    """``flags`` (an ``XLA_FLAGS`` string) asking XLA's CPU compiler to prefer vector
    code ``bits`` wide (128, 256 or 512), unless it already names a width."""
    if bits not in (128, 256, 512):
        raise ValueError(f"bits expects 128, 256 or 512 (vector width), got {bits!r}")
    if VECTOR_WIDTH_FLAG in flags:
        return flags
    return f"{flags} {VECTOR_WIDTH_FLAG}={bits}".strip()


def usable_cores() -> int:
    """How many cores this process may run on (its CPU affinity where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def apply() -> None:
    """Add the small-loop limit, one CPU device per usable core and the vector width to
    ``os.environ["XLA_FLAGS"]`` (see the module doc)."""
    flags = with_small_loop_threshold(os.environ.get("XLA_FLAGS", ""))
    flags = with_cpu_devices(flags, usable_cores())
    flags = with_vector_width(flags)
    if _backends_started() and flags != os.environ.get("XLA_FLAGS", ""):
        warnings.warn(
            "jaxneuro was imported after JAX had started its backends, so its XLA settings "
            "(one CPU device per core, time loops as single kernels, 512-bit vectors) do not "
            "apply in this process: simulations run correctly but slower. Import jaxneuro "
            "before the first JAX computation.",
            RuntimeWarning,
            stacklevel=3,
        )
    os.environ["XLA_FLAGS"] = flags


def _backends_started() -> bool:
    """Whether JAX has created its backends (after which XLA_FLAGS is not read again)."""
    try:
        from jax._src import xla_bridge
    except ImportError:  # pragma: no cover - JAX's internals moved
        return False
    return bool(getattr(xla_bridge, "_backends", None))
