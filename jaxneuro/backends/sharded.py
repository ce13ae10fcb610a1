"""An uncoupled population split over the local devices, each running its own loop.

The neurons (compartments) of a population are independent, so ``n`` of them can be
split into ``D`` slices of ``n / D`` that never exchange a value: each device runs the
ordinary XLA time loop (:func:`jaxneuro.solve.fixed_step.integrate`) on its slice
(``jax.shard_map`` over a one-axis mesh of ``jax.local_devices()``), and the slices'
traces are joined at the end. On a CPU, jaxneuro makes each usable core a device
(:mod:`jaxneuro.xla_cpu`), so a population runs on all cores: XLA's CPU compiler runs
one time loop on one core, and cutting a step's work into per-thread pieces costs more
than it gains for a few thousand compartments (``benchmarks/RESULTS.md``). Split
against one loop on two cores (HH, 100 ms, saves every 0.25 ms; ``benchmarks/cores.py``,
same run): 8 neurons 1.4× faster, 32 1.4×, 10³ 2.0×, 10⁴ 2.0×, 3·10⁴ 2.0× in float64 (2.2×
in float32), 10⁵ 1.5× (float32). A CPU device's slice of more than two blocks of
:data:`NEURON_BLOCK` neurons runs block after block (``lax.map`` of the time loop), each
block's step in the CPU's caches: at 10⁵ neurons in float32, HH 1.6×, LIF 1.4× and AdEx
1.9× faster than the slice as one loop with blocks of 2048 (two cores, 20 ms, 2026-11-30),
and blocks of 512 are 1.02-1.38× faster again than 2048 (10⁴ neurons, 100 ms, float32 and
float64, ``benchmarks/neuron_blocks.py``, 2026-12-01).

Requirements are those of the fused GPU kernel that concern the population (see
:func:`unsupported`): a population of shape ``(n,)`` with independent compartments,
not a Network, targeted stimuli with one waveform; any solver with a constant step, and
rate tables, are fine. The arithmetic is the XLA path's own, so results are equal to
rounding: XLA's CPU code for a slice may round a multiply-add differently from its code
for the whole population (it fuses some into one instruction, depending on the shape),
which is ~1e-14 mV per step in float64; over a spiking run that can move a spike by a
fraction of a microsecond, and float32 by more (30 000 HH neurons, 100 ms: up to a few
mV at spike upswings, as between float32 and float64). Targeted stimuli become
per-neuron weights, also equal to rounding.
Reverse and forward-mode gradients go through ``shard_map`` (the backward pass is split
the same way; with the Pallas kernel on each GPU, as on that backend, the derivatives
come from the XLA loop). Under ``vmap`` every device takes its slice of neurons for the whole
batch.

``simulate(backend="auto")`` uses it on a CPU with more than one device when the
population has at least :data:`MIN_PER_DEVICE` neurons per device; ``backend="sharded"``
asks for it on any platform: on several GPUs each runs the fused Pallas kernel on its
share when the model qualifies (else the XLA loop). ``"auto"`` keeps a GPU population
on one GPU (the kernel), since how many neurons make splitting pay there has not been
measured. A population put on one device (``jax.device_put``, which commits its arrays
there), or run under ``jax.default_device``, stays there: ``"auto"`` runs it in one XLA
loop on that device, and ``"sharded"`` refuses it (a split program would have to move
it). With several processes (``jax.distributed``), each process splits its own
populations over its own devices, never across processes (tested with two processes
of four CPU devices each in tests/test_sweep.py).
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..xla_cpu import VECTOR_BITS
from . import population

#: On CPUs, each device's saved records are collected in buffers of at most this many
#: bytes (256 KiB). XLA's CPU compiler splits the initialisation of a larger buffer
#: (from 512 KiB) over its thread pool, and the loop after it may then continue on a
#: pool thread, where the other devices' loops can queue behind it: on two cores a
#: 1000-neuron split population ran both halves one after the other in about a third of
#: the runs (twice the time), and not once with smaller buffers (benchmarks/RESULTS.md).
SAVE_BLOCK_BYTES = 256 << 10

#: On CPUs, a device's slice of more than this many neurons runs block after block of
#: this many (each the whole time loop, ``lax.map`` over blocks), not all at once: a
#: step's values for a block stay in the CPU's caches, where a whole slice's go through
#: memory at every operation of the step (and a block's loop stays under XLA's
#: small-loop limit, :mod:`jaxneuro.xla_cpu`, one kernel). Measured on two cores (20 ms,
#: save_every 1 ms, 2026-11-30): 10⁵ neurons split over both, float32: HH 0.16 against
#: 0.25 s, LIF 0.23 against 0.32, AdEx 1.6 against 3.0; 3.3·10⁴ HH in float64 0.12
#: against 0.18 s (blocks of 2048). Blocks of 512 against 2048 (``benchmarks/neuron_blocks.py``,
#: same run, 10⁴ neurons, 100 ms, 2026-12-01): float64 LIF 1.02×, AdEx 1.18×,
#: Izhikevich 1.17×, HH 1.04× faster; float32 1.10×, 1.38×, 1.11×, 1.06× (AdEx most: its
#: step's many fused kernels fit the caches only in small blocks); 256 was as 512.
NEURON_BLOCK = 512

#: Neurons per device below which ``backend="auto"`` keeps one loop: splitting a small
#: population saves less than the devices' hand-offs cost. Two cores, HH, 100 ms, under
#: ``jit``, medians of 15 (2026-11-30): split against one loop 0.64-0.74x the time at 32
#: neurons (one loop of 32 is itself slow), 1.1x at 48 and 64 in float64, 1.3-1.7x at
#: 64 in float32, 0.55-0.63x from 96 on in both; 16 per device let 32-64 neurons split.
MIN_PER_DEVICE = 48


def unsupported(model, solver, y0, stimuli=(), devices=None) -> str | None:
    """Why a population cannot be split over ``devices`` (default: the local
    devices), or None if it can."""
    del solver
    reason = population.problem(model, stimuli)
    if reason:
        return reason
    n_dev = len(jax.local_devices() if devices is None else devices)
    if n_dev < 2:
        return f"needs more than one device, found {n_dev}"
    chosen = jax.config.jax_default_device
    if devices is None and chosen is not None:
        return (f"splits the population over all {n_dev} local devices, but jax.default_device({chosen}) asks for "
                "one; use backend='xla' (or 'auto') to run there")
    pinned = committed_device(model, stimuli, y0)
    if pinned is not None:
        return (f"splits the population over all {n_dev} local devices, but the model, stimuli or initial state "
                f"were put on one device ({pinned}, as jax.device_put does), which JAX then keeps them on; "
                "use backend='xla' (or 'auto') to run there, or leave them uncommitted (no device_put) to split")
    return None


def committed_device(*trees):
    """The device that a concrete array in ``trees`` was committed to (``jax.device_put``
    onto one device, or computed from such arrays), or None. JAX runs a committed array
    only on its own device, so a program split over several devices refuses it
    (arrays already split over several, e.g. a split run's final state, are gathered
    by :func:`integrate` instead)."""
    for x in jax.tree.leaves(trees):
        if (isinstance(x, jax.Array) and not isinstance(x, jax.core.Tracer) and x.committed
                and len(x.sharding.device_set) == 1):
            return next(iter(x.sharding.device_set))
    return None


def worthwhile(model, devices=None) -> bool:
    """Whether ``backend="auto"`` should split ``model`` (a supported population):
    at least :data:`MIN_PER_DEVICE` neurons per device."""
    n_dev = len(jax.local_devices() if devices is None else devices)
    return int(model.shape[0]) >= MIN_PER_DEVICE * n_dev


def neuron_blocks(count: int) -> int:
    """How many blocks of at most :data:`NEURON_BLOCK` neurons a CPU device's loop over
    ``count`` neurons runs, one after the other (equal blocks, each padded to whole
    vector registers): 1, one loop over all, up to twice the block."""
    return math.ceil(count / NEURON_BLOCK) if count > 2 * NEURON_BLOCK else 1


def block_layout(count: int, dtype) -> tuple[int, int]:
    """``(blocks, neurons per block)`` for a CPU device's loop over ``count`` neurons
    (already whole vectors of ``dtype``): :func:`neuron_blocks` equal blocks, each
    padded to whole vector registers. Equal, not of :data:`NEURON_BLOCK` each: 1025
    neurons as 3 × 344 (float64), not 3 × 512, a third of the work padding (2050 HH
    neurons on two cores ran 1.33× the time of 2048)."""
    n_blocks = neuron_blocks(count)
    if n_blocks == 1:
        return 1, count
    return n_blocks, _whole_vectors(math.ceil(count / n_blocks), dtype)


def _whole_vectors(count: int, dtype) -> int:
    """``count`` rounded up to whole vector registers of ``dtype`` (512-bit, the width
    jaxneuro asks XLA's CPU code for, :data:`jaxneuro.xla_cpu.VECTOR_BITS`). XLA's CPU
    loops do the remainder that fills no register one value at a time, at about the
    cost of a whole register, so each device's slice gets a few padding neurons
    instead (measurements in benchmarks/RESULTS.md, item 14)."""
    lanes = max(1, VECTOR_BITS // (8 * jnp.dtype(dtype).itemsize))
    return -(-count // lanes) * lanes


def integrate(solver, term, y0, system, *, record, t0: float, t1: float, dt: float,
              save_every_steps: int, n_save: int, grad_checkpoints: str = "saves", devices=None,
              loop: str | None = None):
    """As :func:`jaxneuro.solve.fixed_step.integrate` (returns ``(saved, y_final)``,
    ``saved[name]`` of shape ``(n_save, n)``), with the population split over
    ``devices`` (default ``jax.local_devices()``). A population that does not divide
    evenly is padded with copies of its last neuron, which are dropped afterwards; so is
    each CPU device's slice, to whole vector registers (:func:`_whole_vectors`).

    ``loop``: what each device runs on its slice, ``"xla"`` (the XLA loop) or
    ``"pallas"`` (the fused kernel, :mod:`jaxneuro.backends.pallas`); default the
    kernel on GPUs when the model qualifies for it (several GPUs: each runs the kernel
    on its share of the neurons), else the XLA loop."""
    from ..solve import fixed_step
    from . import pallas

    devices = jax.local_devices() if devices is None else list(devices)
    if not devices:
        raise ValueError("devices expects at least one device, got none")
    if loop is None:
        on_gpu = devices[0].platform == "gpu"
        loop = "pallas" if on_gpu and not pallas.unsupported(system.model, solver, y0, system.stimuli) else "xla"
    if loop not in ("xla", "pallas"):
        raise ValueError(f"loop expects 'xla' or 'pallas', got {loop!r}")
    # A continued run's state comes back split over the devices: placed as a fresh
    # run's is (on one device), both share the compiled program (the key holds the
    # inputs' placement; the split is made inside either way).
    y0 = jax.tree.map(_on_one_device, y0)
    # The kernel's settings, read now (static: a change reaches the next run).
    kernel = tuple(sorted(pallas.settings().items())) if loop == "pallas" else ()
    return _integrate(solver, term, y0, system, fixed_step.make_span(t0, t1),
                      grid=fixed_step.make_grid(t0, t1, dt, save_every_steps, n_save), record=record,
                      grad_checkpoints=grad_checkpoints, devices=tuple(devices), loop=loop, kernel=kernel)


def _on_one_device(x):
    """``x`` as a fresh (uncommitted) array on the default device where it is a concrete
    array spread over several: through the host, as JAX's device_put commits it to the
    device named (which the split program's devices then conflict with)."""
    if (isinstance(x, jax.Array) and not isinstance(x, jax.core.Tracer) and len(x.sharding.device_set) > 1
            and x.is_fully_addressable):  # (across hosts it stays as it is: compiled again, not gathered)
        return jnp.asarray(np.asarray(x))
    return x


# Jitted (the grid, names and devices here are static; t0 and t1 traced): called
# eagerly, as simulate(backend="auto") outside jit does, it compiled its program again
# on every call.
@eqx.filter_jit
def _integrate(solver, term, y0, system, span, *, grid, record, grad_checkpoints, devices, loop, kernel=()):
    from ..solve import fixed_step
    from . import pallas

    y0 = fixed_step.start_state(y0, system.model)  # (settled in this program)
    on_cpu = devices[0].platform == "cpu"
    inner = fixed_step.integrate_span if loop == "xla" else pallas.integrate_span
    n_dev = len(devices)
    n = int(system.model.shape[0])
    per_device = math.ceil(n / n_dev)
    n_pad = per_device * n_dev
    # What each device's loop runs on: its slice, on CPUs padded to whole vector
    # registers inside the device (so the outputs stay evenly split, with no exchange
    # between devices to drop the padding).
    per_loop = _whole_vectors(per_device, jnp.result_type(y0.v)) if on_cpu and loop == "xla" else per_device
    n_blocks = 1
    if on_cpu and loop == "xla":
        n_blocks, per_loop = block_layout(per_loop, jnp.result_type(y0.v))
    mesh = jax.sharding.Mesh(np.asarray(devices), ("neurons",))
    split, whole = jax.sharding.PartitionSpec("neurons"), jax.sharding.PartitionSpec()

    system = population.spread_targets(system)
    # Each device's view: static population sizes n -> per_device; its leaves are the
    # device's slices. Spike buffers are updated in every step, as in any XLA loop (the
    # kernel, when it runs, takes its own block view of this one).
    sys_slice = population.with_population(system, n, per_loop, skip_quiet_steps=False)
    leaves, treedef = jax.tree.flatten((sys_slice, y0))
    mask = population.per_neuron_mask((system, y0), n)
    inputs, in_specs = [], []
    for leaf, per_neuron in zip(leaves, mask):
        x = jnp.asarray(leaf)
        if per_neuron:
            x = population.pad_neurons(x, n_pad)
            in_specs.append(split)
        else:  # scalars and other shared values: every device gets all of it
            in_specs.append(whole)
        inputs.append(x)

    def run_loop(span, leaves):
        sys_d, y_d = jax.tree.unflatten(treedef, leaves)
        options = {"save_block_bytes": SAVE_BLOCK_BYTES} if loop == "xla" and on_cpu else dict(kernel)
        saved, y_final = inner(solver, term, y_d, sys_d, span, grid=grid, record=record,
                               grad_checkpoints=grad_checkpoints, **options)
        saved = {k: x if x.ndim >= 2 else jnp.broadcast_to(x[:, None], (x.shape[0], per_loop))
                 for k, x in saved.items()}
        return saved, y_final

    def run_blocks(span, leaves):
        # Per-neuron leaves as (n_blocks, NEURON_BLOCK, ...), mapped over; the rest shared.
        blocked = [x.reshape((n_blocks, per_loop) + x.shape[1:]) if m else None for x, m in zip(leaves, mask)]

        def one(block):
            return run_loop(span, [b if m else x for x, b, m in zip(leaves, block, mask)])

        saved, y_final = jax.lax.map(one, blocked)
        saved = {k: jnp.moveaxis(x, 0, 1).reshape((x.shape[1], n_blocks * per_loop) + x.shape[3:])
                 for k, x in saved.items()}
        return saved, jax.tree.map(lambda x: x.reshape((n_blocks * per_loop,) + x.shape[2:]), y_final)

    def run(span, *leaves):
        leaves = [population.pad_neurons(x, n_blocks * per_loop) if m else x for x, m in zip(leaves, mask)]
        saved, y_final = (run_blocks if n_blocks > 1 else run_loop)(span, leaves)
        # (A value shared by all neurons, shape (n_save,), was saved per neuron above,
        # as the population's other records are.)
        saved = {k: x[:, :per_device] for k, x in saved.items()}
        return saved, jax.tree.map(lambda x: x[:per_device], y_final)

    saved_specs = {name: jax.sharding.PartitionSpec(None, "neurons") for name in record}
    y_specs = jax.tree.map(lambda _: split, y0)
    # check_vma=False: the loop's carries start as device-invariant zeros (e.g. empty
    # spike buffers) and become per-device values, which the check would reject.
    saved, y_final = jax.shard_map(run, mesh=mesh, in_specs=(whole, *in_specs),
                                   out_specs=(saved_specs, y_specs), check_vma=False)(span, *inputs)
    if n_pad != n:
        saved = {name: x[:, :n] for name, x in saved.items()}
        y_final = jax.tree.map(lambda x: x[:n], y_final)
    return saved, y_final
