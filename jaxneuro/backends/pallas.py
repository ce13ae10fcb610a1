"""The whole fixed-step time loop of an uncoupled population in one Pallas kernel.

Each kernel program takes a block of ``block`` neurons (compartments), loads their
state and parameters once, runs every time step with the state held in registers,
and writes only the recorded values (every ``save_every``) and the final state. The
step is the XLA path's own: the kernel calls ``solver.step`` (jaxneuro's
:class:`~jaxneuro.StaggeredEuler`) on the block's slice of the model, so both
backends compute the same arithmetic, and results agree to rounding.

Requirements (else ``simulate(backend="pallas")`` raises a ValueError and
``backend="auto"`` uses XLA): the model is a population, ``shape == (n,)``, of
independent compartments (``voltage_coupling()`` is None; no cables, cells or gap
junctions), the solver is ``StaggeredEuler`` with a constant step, every array
parameter is either per neuron (leading axis ``n``) or a scalar, no channel looks
its rates up in a table (``HH(use_table=True)``: gathers, which the kernel does not
lower), and a targeted stimulus has one waveform for all its targets (it is spread
as per-neuron weights; amplitudes may also be per neuron with ``target=None``).

Gradients: values come from the kernel and derivatives from the XLA loop
(``jax.custom_jvp``: the XLA loop's JVP gives the tangents, and reverse mode
linearises and transposes it, computing the XLA forward pass for its residuals).
Forward mode (``jax.jvp``, ``jax.jacfwd``), reverse mode and second derivatives
(``jax.hessian``) all work (this form, which replaced a ``custom_vjp`` after the last
GPU run, is tested in interpret mode and lowered for CUDA in reverse mode by the tests;
not yet run on a GPU).

On a CPU the kernel runs in Pallas' interpret mode (a correctness check, not a fast
path). On a GPU it is lowered through Triton; outputs are padded to powers of two
(``block`` neurons by a power-of-two number of saves; spike-time buffers to a
power-of-two length) and sliced afterwards. In float32 the step's exponentials are the
GPU's native ``exp2`` (:data:`NATIVE_EXP`). Last tested on an NVIDIA H200 with jax
0.11.2 on 2026-11-30, before the gradients took their ``custom_jvp`` form (above) and
before later changes to the step functions: all of tests/test_pallas.py and
tests/test_native_exp.py (HH populations, spiking point neurons — LIF, AdEx,
Izhikevich — and spike summaries of any capacity against the XLA loop, gradients, every
channel's lowering) passed there with the real kernel (benchmarks/RESULTS.md); the
current code has run in interpret mode only.
JAX 0.11 deprecates Pallas' Triton backend and warns at each lowering; the kernel will
need a port to Mosaic GPU before that backend is removed.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp

from .. import units
from ..solve.summary import SpikeDetector, any_crossed
from . import native_exp, population

#: Neurons per kernel program on a GPU.
DEFAULT_BLOCK = 128
#: Warps per kernel program on a GPU (None: one neuron per thread, ``block // 32``).
#: Two warps for 128 neurons give each thread two neurons whose independent
#: arithmetic overlaps: a million HH neurons ran 6-7 % faster than with one neuron per
#: thread on an H200 (``benchmarks/gpu_kernel.py``).
DEFAULT_WARPS = 2
#: In float32, the kernel's step computes each ``exp(x)`` as ``exp2(x · log₂ e)``,
#: the GPU's native instruction (:mod:`jaxneuro.backends.native_exp`): float32
#: rounding differs from the XLA loop's ``exp`` by a few ulp, and a million HH neurons
#: run 6-7 % faster on an H200. False: CUDA's accurate ``expf``. float64 kernels
#: always use ``exp``.
NATIVE_EXP = True
#: With a spike summary (``summary=``), the kernel writes crossing times into the
#: spike buffer every this many steps (1: in the step, under a ``cond`` on whether any
#: neuron of the block crossed, a test across the block in every step). From 2 on, a
#: step holds its crossings back in registers (``SpikeDetector.pending_slots``: at most
#: one per two steps can occur, so ``ceil(k/2)`` slots) and the block is tested only
#: when they are written. Same spikes and counts either way (tests/test_pallas.py).
SPIKE_FLUSH_EVERY = 1


def settings() -> dict:
    """:data:`NATIVE_EXP` and :data:`SPIKE_FLUSH_EVERY` as the static arguments the
    compiled kernel is keyed on, read when a run starts: read inside the compiled
    function, a change after the first run never reached the kernel."""
    where = "jaxneuro.backends.pallas."
    return {"use_native_exp": units.flag(NATIVE_EXP, where + "NATIVE_EXP"),
            "spike_flush_every": units.positive_int(SPIKE_FLUSH_EVERY, where + "SPIKE_FLUSH_EVERY")}


def unsupported(model, solver, y0, stimuli=()) -> str | None:
    """Why the fused kernel cannot run this model, solver and stimuli, or None if it
    can."""
    from ..solve.staggered import StaggeredEuler
    from ..solve.system import System

    reason = population.problem(model, stimuli)
    if reason:
        return reason
    if not isinstance(solver, StaggeredEuler):
        return f"needs the default solver jn.StaggeredEuler, got {type(solver).__name__}"
    if any(getattr(ch, "use_table", False) for ch in getattr(model, "channels", ())):
        return "does not look up rate tables (a channel has use_table=True)"
    system = System(model=model, stimuli=tuple(stimuli))
    n = int(model.shape[0])
    for (path, leaf), per_neuron in zip(jax.tree_util.tree_leaves_with_path(system),
                                        population.per_neuron_mask(system, n)):
        if not per_neuron and jnp.ndim(leaf) > 0:
            where = jax.tree_util.keystr(path).lstrip(".")
            stim = _stimulus_at(system, path)
            if stim is not None and stim.sample_times() is not None:
                # A waveform's samples, looked up by time: neither per-neuron nor a
                # scalar, whatever their number (a length check read them as a
                # per-neuron parameter of the wrong length).
                return (f"does not take a recorded waveform's samples ({where}: {type(stim).__name__}'s "
                        f"{jnp.shape(leaf)[0]} values, looked up by time) in the GPU kernel; use backend='xla' "
                        "or 'sharded', which run it")
            if jnp.ndim(leaf) == 1 and jnp.shape(leaf)[0] != n:  # perhaps meant per neuron, wrong length
                return (f"takes per-neuron parameters (shape ({n},)) and scalars only; {where} has shape "
                        f"{jnp.shape(leaf)}: if it is meant per neuron, the population has {n}")
            return f"takes per-neuron parameters (shape ({n},)) and scalars only, not {where} of shape {jnp.shape(leaf)}"
    return None


def _stimulus_at(system, path):
    """The stimulus of ``system`` whose leaf lies at ``path`` (from
    ``tree_leaves_with_path(system)``), or None for a leaf outside the stimuli."""
    if path[:1] != (jax.tree_util.GetAttrKey("stimuli"),):
        return None
    return system.stimuli[path[1].idx]


def _next_pow2(x: int) -> int:
    return 1 << max(0, int(x - 1).bit_length())


#: Static fields holding a spike buffer's length (SpikeDetector, spiking neurons).
_CAPACITY_FIELDS = ("capacity", "spike_capacity")


def _pad_spike_buffers(y0):
    """``(capacity, y0)`` with the spike-time buffer ``y0.events["spikes"]`` (last axis
    ``capacity``) padded with ``inf`` to a power-of-two length; ``(None, y0)`` when the
    state has no spike buffer."""
    spikes = (y0.events or {}).get("spikes")
    if spikes is None:
        return None, y0
    capacity = spikes.shape[-1]
    pad = _next_pow2(capacity) - capacity
    spikes = jnp.pad(spikes, [(0, 0)] * (spikes.ndim - 1) + [(0, pad)], constant_values=jnp.inf)
    return capacity, type(y0)(v=y0.v, gates=y0.gates, events=dict(y0.events, spikes=spikes))


def integrate(solver, term, y0, system, *, record, t0: float, t1: float, dt: float,
              save_every_steps: int, n_save: int, interpret: bool | None = None,
              block: int | None = None, grad_checkpoints: str = "saves"):
    """As :func:`jaxneuro.solve.fixed_step.integrate` (returns ``(saved, y_final)``,
    ``saved[name]`` of shape ``(n_save, n)``), run as one fused kernel. ``record``:
    the names to save. ``interpret``: default True unless on a GPU. ``grad_checkpoints``:
    for the XLA loop that reverse mode runs (see ``fixed_step.integrate``)."""
    from ..solve import fixed_step

    return integrate_span(solver, term, y0, system, fixed_step.make_span(t0, t1),
                          grid=fixed_step.make_grid(t0, t1, dt, save_every_steps, n_save), record=record,
                          interpret=interpret, block=block, grad_checkpoints=grad_checkpoints, **settings())


# Jitted (the grid, names and settings here are static; t0 and t1 traced): called
# eagerly, as simulate(backend="auto") outside jit does, it compiled its program again
# on every call.
@eqx.filter_jit
def integrate_span(solver, term, y0, system, span, *, grid, record, interpret: bool | None = None,
                   block: int | None = None, grad_checkpoints: str = "saves", use_native_exp: bool = True,
                   spike_flush_every: int = 1):
    """:func:`integrate` with the run's start and end as a pair of scalars (traced) and
    its static layout as a :class:`jaxneuro.solve.fixed_step.Grid`; ``use_native_exp`` and
    ``spike_flush_every`` as :func:`settings` gives them."""
    from ..solve import fixed_step

    y0 = fixed_step.start_state(y0, system.model)  # (settled in this program)

    if interpret is None:
        interpret = jax.default_backend() != "gpu"
    system = population.spread_targets(system)

    def fused(system, y0, span):
        return _fused(solver, term, y0, system, record, span, grid, interpret=interpret, block=block,
                      use_native_exp=use_native_exp, spike_flush_every=spike_flush_every)

    def xla(system, y0, span):
        return fixed_step.integrate_span(solver, term, y0, system, span, grid=grid, record=record,
                                         grad_checkpoints=grad_checkpoints)

    # Values from the kernel; derivatives from the XLA loop's JVP, which reverse mode
    # linearises and transposes as it would the XLA loop itself (the XLA forward pass
    # is computed there too, for its residuals). Both modes work, to any order: the
    # rule's value is run itself, so differentiating the rule again comes back here
    # rather than to the kernel, which has no derivative of its own. (Everything traced
    # is an argument: a custom_jvp closing over the traced span failed under second
    # derivatives.)
    @jax.custom_jvp
    def run(system, y0, span):
        return fused(system, y0, span)

    @run.defjvp
    def run_jvp(primals, tangents):
        _, tangents_out = jax.jvp(xla, primals, tangents)
        return run(*primals), tangents_out

    return run(system, y0, span)


def _fused(solver, term, y0, system, record, span, grid, *, interpret, block, use_native_exp, spike_flush_every):
    from jax.experimental import pallas as pl
    from ..solve import fixed_step
    from jax.experimental.pallas import triton as pl_triton

    n = int(system.model.shape[0])
    if block is None:
        block = DEFAULT_BLOCK if not interpret else min(DEFAULT_BLOCK, _next_pow2(n))
    num_warps = min(DEFAULT_WARPS or block // 32, max(1, block // 32))
    n_pad = block * math.ceil(n / block)
    n_blocks = n_pad // block
    n_steps, n_save, k = grid.n_steps, grid.n_save, grid.save_every_steps
    n_save_pad = _next_pow2(n_save)
    dtype = jnp.result_type(float)

    # The block's view: static population sizes n -> block; leaves stay full size.
    sys_block = population.with_population(system, n, block, skip_quiet_steps=True)
    # Triton lowers only power-of-two shapes: spike buffers get a power-of-two length
    # inside the kernel (the same first spikes, the extra slots dropped afterwards).
    sys_block = population.map_static_fields(
        sys_block, lambda name, v: _next_pow2(v) if name in _CAPACITY_FIELDS and isinstance(v, int) else v)
    capacity, y0 = _pad_spike_buffers(y0)
    flush_every = spike_flush_every if isinstance(sys_block.model, SpikeDetector) else 1
    if flush_every > 1:
        slots = -(-flush_every // 2)  # upward crossings are at least two steps apart
        sys_block = population.map_static_fields(sys_block, lambda name, v: slots if name == "pending_slots" else v)
    leaves, treedef = jax.tree.flatten((sys_block, y0))
    inputs, specs, kinds = [], [], []
    for leaf, per_neuron in zip(leaves, population.per_neuron_mask((system, y0), n)):
        x = jnp.asarray(leaf)
        if per_neuron:
            x = population.pad_neurons(x, n_pad)
            rest = x.shape[1:]
            specs.append(pl.BlockSpec((block,) + rest, lambda i, r=len(rest): (i,) + (0,) * r))
            kinds.append("population")
        elif x.ndim == 0:
            x = x.reshape(1)
            specs.append(pl.BlockSpec((1,), lambda i: (0,)))
            kinds.append("scalar")
        else:
            raise ValueError(
                f"backend='pallas': a parameter of shape {x.shape} is neither per neuron "
                f"(leading axis {n}) nor a scalar; use backend='xla'"
            )
        inputs.append(x)
    # The run's start and end, last: traced, so runs of one grid share the kernel.
    for t in (span[0], span[1]):
        inputs.append(jnp.asarray(t, dtype).reshape(1))
        specs.append(pl.BlockSpec((1,), lambda i: (0,)))
        kinds.append("scalar")

    y_leaves, y_treedef = jax.tree.flatten(y0)
    out_shapes, out_specs = [], []
    for _ in record:
        out_shapes.append(jax.ShapeDtypeStruct((n_save_pad, n_pad), dtype))
        out_specs.append(pl.BlockSpec((n_save_pad, block), lambda i: (0, i)))
    for leaf in y_leaves:
        rest = leaf.shape[1:]
        out_shapes.append(jax.ShapeDtypeStruct((n_pad,) + rest, leaf.dtype))
        out_specs.append(pl.BlockSpec((block,) + rest, lambda i, r=len(rest): (i,) + (0,) * r))
    n_in, n_rec = len(inputs), len(record)

    def kernel(*refs):
        in_refs, rec_refs, final_refs = refs[:n_in], refs[n_in:n_in + n_rec], refs[n_in + n_rec:]
        vals = [r[...] if kind == "population" else r[...][0] for r, kind in zip(in_refs, kinds)]
        sys_b, y = jax.tree.unflatten(treedef, vals[:-2])
        t0_, t1_ = vals[-2:]
        dt_ = jnp.asarray(grid.dt, dtype)

        def store(j, t, y):
            obs = sys_b.observe(record, t, y)
            for name, r in zip(record, rec_refs):
                r[pl.ds(j, 1), :] = jnp.broadcast_to(obs[name], (block,)).astype(dtype)[None, :]

        def advance(ta, tb, y, state):
            y, _, _, state, _ = solver.step(term, ta, tb, y, sys_b, state, False)
            return y, state

        if use_native_exp and dtype == jnp.float32:
            advance = native_exp.with_native_exp(advance)

        def flush(y):
            """``y`` with its held-back crossings written, if any neuron has one."""
            held = any_crossed(jnp.isfinite(y.events["pending"]))
            events = jax.lax.cond(held, lambda ev: sys_b.model.flush_pending(ev), lambda ev: ev, y.events)
            return type(y)(v=y.v, gates=y.gates, events=events)

        def one_step(s, carry):
            ta = t0_ + s * dt_
            tb = jnp.where(s == n_steps - 1, t1_, jnp.minimum(t0_ + (s + 1) * dt_, t1_))  # as fixed_step's
            y, state = advance(ta, tb, *carry)
            if flush_every > 1:
                y = jax.lax.cond(jax.lax.rem(s + 1, flush_every) == 0, flush, lambda y: y, y)
            return y, state

        def interval(j, carry):
            carry = jax.lax.fori_loop(0, k, lambda i, c: one_step(j * k + i, c), carry)
            store(j + 1, t0_ + (j + 1) * k * dt_, carry[0])
            return carry

        if n_rec:
            store(0, t0_, y)
        # The solver's own state (the grid's step, a rounding compensation) as the XLA
        # loop carries it (solve.fixed_step.integrate).
        if flush_every > 1:
            y = type(y)(v=y.v, gates=y.gates, events=sys_b.model.hold_back(y.events))
        carry = (y, fixed_step.init_solver(solver, term, y, sys_b, t0_, t1_, grid))
        carry = jax.lax.fori_loop(0, n_save - 1, interval, carry)
        y, _ = jax.lax.fori_loop((n_save - 1) * k, n_steps, one_step, carry)
        if flush_every > 1:
            y = flush(y)
            y = type(y)(v=y.v, gates=y.gates, events={k_: x for k_, x in y.events.items() if k_ != "pending"})
        for r, leaf in zip(final_refs, jax.tree.leaves(y)):
            r[...] = leaf

    outs = pl.pallas_call(
        kernel,
        out_shape=tuple(out_shapes),
        grid=(n_blocks,),
        in_specs=specs,
        out_specs=tuple(out_specs),
        interpret=interpret,
        name="jaxneuro_fused_population",
        # Triton (DEFAULT_WARPS per program); ignored when interpreting.
        compiler_params=None if interpret else pl_triton.CompilerParams(num_warps=num_warps, num_stages=1),
    )(*inputs)
    saved = {name: outs[i][:n_save, :n] for i, name in enumerate(record)}
    y_final = jax.tree.unflatten(y_treedef, [o[:n] for o in outs[n_rec:]])
    if capacity is not None:
        events = dict(y_final.events, spikes=y_final.events["spikes"][..., :capacity])
        y_final = type(y_final)(v=y_final.v, gates=y_final.gates, events=events)
    return saved, y_final
