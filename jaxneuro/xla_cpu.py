"""The one XLA setting jaxneuro applies when imported: CPU time loops as single kernels.

XLA's CPU backend runs each operation of a loop body as a separate kernel and splits
every kernel of more than a few thousand values over its threads. A simulation step of a
few thousand compartments is a handful of such kernels, so hand-offs between threads
and kernel launches dominate: on two cores a 1000-neuron HH population ran 2.7-2.9×
(float32) and a 1000-compartment HH cell 1.3-1.4× slower than as one kernel
(``benchmarks/run.py`` measures both in the same run). XLA compiles a loop whose body touches fewer bytes than
``xla_cpu_small_while_loop_byte_threshold`` (1 kB by default) into one kernel instead.
Importing jaxneuro raises that limit to :data:`SMALL_LOOP_BYTES` by adding it to the
``XLA_FLAGS`` environment variable, which XLA reads when JAX first uses the CPU, so:

- it takes effect only if jaxneuro is imported before the first computation of the
  process (importing ``jax`` or changing ``jax.config`` first is fine);
- a value already named in ``XLA_FLAGS`` is kept: set
  ``--xla_backend_extra_options=xla_cpu_small_while_loop_byte_threshold=1024`` to keep
  XLA's default;
- the limit is a trade-off, measured on two cores: 4 MiB is what the backward pass of
  a 1000-compartment float64 cell needs to become one kernel (its gradient 1.3x faster
  than at 1 MiB); loops a little below the limit lose their threads, so float32
  populations of 1.5-3·10⁴ HH compartments ran about 1.3x slower than at 1 MiB (float64
  ones and populations of 10⁵ and up were unaffected). Name the key in ``XLA_FLAGS``
  to choose another value (e.g. ``=1048576`` for large float32 populations on a CPU with
  many cores); GPUs and TPUs ignore the setting.
"""

from __future__ import annotations

import os
import re

SMALL_LOOP_BYTES = 4 << 20
"""Loops whose body touches at most this many bytes (4 MiB) run as one kernel."""

THRESHOLD_KEY = "xla_cpu_small_while_loop_byte_threshold"
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


def apply() -> None:
    """Add the small-loop limit to ``os.environ["XLA_FLAGS"]`` (see the module doc)."""
    os.environ["XLA_FLAGS"] = with_small_loop_threshold(os.environ.get("XLA_FLAGS", ""))
