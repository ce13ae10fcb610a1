"""The fixed-step time loop: any diffrax solver's ``step`` on a constant grid.

``simulate`` uses this loop (rather than ``diffrax.diffeqsolve``) whenever the step
size is constant. Reasons:

- saving is exact: the grid is ``t0 + k·dt`` (no accumulated rounding), and saves
  fall on grid points, so no interpolation is needed;
- gradients use checkpointing: the states at the save points are kept (they are
  what the trace holds anyway), each stretch between saves is recomputed in blocks
  of about ``sqrt(k)`` steps during the backward pass, and within a block one step's
  intermediates at a time, so memory stays ``O(n_saves + sqrt(steps per save))``
  states. Each step also keeps its tree solve's solution (cells, cables), all the
  solve's derivative needs, so the backward pass runs only the transpose solve.
  (It also sidesteps
  a loss of gradient contributions that ``RecursiveCheckpointAdjoint`` shows in
  diffrax 0.7 when a ``SaveAt(ts=...)`` point coincides with a step end at one of
  its checkpoints.)
- it is a plain ``lax.scan``, cheaper per step than a general adaptive loop.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp

from .hines import TREE_SOLUTION
from .trace import time_slack


_SAVE_TREE_SOLUTIONS = jax.checkpoint_policies.save_only_these_names(TREE_SOLUTION)


def _KEEP_TREE_SOLUTIONS(*args, **params):
    """The tree solutions saved, nothing else. JAX calls a policy as
    ``policy(prim, *avals, **params)``, and a primitive with a parameter named
    ``prim`` (diffrax's Runge-Kutta stages under jacrev(jacfwd)) made JAX's own policy
    fail with "got multiple values for argument 'prim'"; such a parameter is dropped
    here (only ``name`` matters to the policy)."""
    params.pop("prim", None)
    return _SAVE_TREE_SOLUTIONS(*args, **params)

# Stretches between saves up to this many steps run as one loop, without blocks.
_UNBLOCKED = 64
# Stretches up to this many steps are written out, not looped: XLA's CPU code for a
# two-step loop made a 1000-compartment cell's gradient 20-30 % slower than one or
# three steps per save did (measured).
_UNROLLED = 2


def steps_per_save(save_every: float, dt: float) -> int:
    """``save_every / dt`` as an integer, or a ValueError when it is not one."""
    ratio = save_every / dt
    k = round(ratio)
    if k < 1 or abs(ratio - k) > 1e-9 * max(1.0, ratio):
        raise ValueError(
            f"save_every expects a whole multiple of dt for a fixed-step solver "
            f"(dt={dt} ms), got {save_every} ms; use save_every={max(k, 1) * dt:g} or an adaptive "
            "stepsize_controller"
        )
    return k


class Grid(NamedTuple):
    """A constant-step run's layout, compiled into its program (Python numbers). The
    run's start and end times are not part of it: they are traced (:func:`make_span`), so
    the parts of a long run, or runs shifted in time, share one compiled loop."""

    dt: float
    n_steps: int
    first_dt: float
    save_every_steps: int
    n_save: int


def count_steps(t0: float, t1: float, dt: float, slack: float | None = None) -> int:
    """Steps of ``dt`` from ``t0`` to ``t1`` (ms), the last one shortened (or, by
    less than half a step, lengthened) to end at ``t1``: ``ceil((t1 - t0)/dt)``, a
    hair over a whole number not counted: less than the times' resolution at ``t1`` in
    JAX's float dtype (4 ulp; in float32 the run's times round to the grid there, and
    a last step of length 0 gave a cable NaNs), and never half a step or more (far
    from 0 float32's resolution is coarser than a step). ``slack``: that hair (ms), if
    not :func:`~jaxneuro.solve.trace.time_slack` at ``t1``."""
    if slack is None:
        slack = time_slack(t1, jnp.result_type(float))
    hair = min(max(1e-9, slack / dt), 0.5)
    return int(math.ceil((t1 - t0) / dt - hair))


def make_grid(t0: float, t1: float, dt: float, save_every_steps: int, n_save: int) -> Grid:
    """The :class:`Grid` of a run from ``t0`` to ``t1`` (ms): :func:`count_steps` steps,
    the last one shortened to end at ``t1``."""
    n_steps = count_steps(t0, t1, dt)
    # The first step's length as the grid's dt unless the run is shorter (t0 + dt - t0
    # would carry t0's rounding into the key, and one program per t0).
    first_dt = float(dt) if t1 - t0 >= dt else float(t1 - t0)
    return Grid(float(dt), n_steps, first_dt, int(save_every_steps), int(n_save))


def make_span(t0: float, t1: float) -> tuple[jax.Array, jax.Array]:
    """``(t0, t1)`` as the two scalar arrays the compiled loops take (ms, JAX's float
    dtype). Two scalars, not one array: XLA's CPU compiler makes a kernel of its own
    (several ms of compile time each) for every slice of an array it cannot fold."""
    dtype = jnp.result_type(float)
    return jnp.asarray(t0, dtype), jnp.asarray(t1, dtype)


class Start(eqx.Module):
    """A run's initial state, settled inside its compiled loop: ``given`` (a state:
    a continued run's) where ``fresh`` is False, else the model's own start,
    ``model.init_state(v0)`` (``v0`` mV, one value per compartment), with
    ``with_start`` a Network's ``state_at_start(t0, ...)`` too (``t0`` ms). A fresh
    run passes zeros as ``given``, a continued one zeros as ``v0``: both have the same
    arguments, so the parts of a run share one program, and the fresh start is not a
    program of its own (each program costs a first run its compile, however little it
    computes; tests/test_simulate.py counts them). Settled by :func:`start_state`."""

    given: object
    v0: jax.Array
    t0: jax.Array
    fresh: jax.Array  # a boolean scalar: traced, so that both kinds share the program
    with_start: bool = eqx.field(static=True)

    def made(self, model):
        """The model's own start from ``v0`` (and ``t0``)."""
        return model_start(model, self.v0, self.t0 if self.with_start else None)

    def state(self, model):
        return jax.tree.map(lambda a, b: jnp.where(self.fresh, a, b), self.made(model), self.given)


def model_start(model, v0, t0=None):
    """``model.init_state(v0)`` (``v0`` mV); with ``t0`` (ms), a Network's
    ``state_at_start`` from there too (its synapses pass over earlier spikes)."""
    y0 = model.init_state(v0)
    return y0 if t0 is None else model.state_at_start(t0, y0)


def start_state(y0, model):
    """``y0`` (a state), or the state a :class:`Start` settles on for ``model``."""
    return y0.state(model) if isinstance(y0, Start) else y0


def init_solver(solver, term, y0, args, t0_, t1_, grid: Grid):
    """``solver.init`` for the first step. :class:`~jaxneuro.StaggeredEuler` reads only
    the step's length (its grid dt), which it gets exactly from the Python numbers:
    from traced times far from 0 float32 would round it (0.0244 ms for 0.025 at 10 s).
    Other solvers (first-same-as-last stages) get the step's real times."""
    from .staggered import StaggeredEuler

    if isinstance(solver, StaggeredEuler):
        return solver.init(term, 0.0, grid.first_dt, y0, args)
    return solver.init(term, t0_, jnp.minimum(t0_ + grid.dt, t1_), y0, args)


def integrate(solver: diffrax.AbstractSolver, term, y0, args, *, t0: float, t1: float, dt: float,
              save_every_steps: int, n_save: int, record: tuple[str, ...], grad_checkpoints: str = "saves",
              save_block_bytes: int | None = None):
    """Advance ``y0`` (a state, or a :class:`Start`) from ``t0`` to ``t1`` with steps ``dt`` (the last one shortened to
    end at ``t1``). Returns ``(saved, y_final)`` where ``saved`` stacks
    ``args.observe(record, t, y)`` at ``t0 + j·save_every_steps·dt`` for ``j < n_save``.

    ``grad_checkpoints``: what reverse mode keeps. ``"saves"`` (default): the states at the
    saves; the steps between are recomputed (about one extra forward pass), memory
    ``O(n_save + sqrt(steps per save))`` states (with one or two steps per save, every
    step's state: nothing is recomputed). ``"steps"``: every step's state, so
    nothing is recomputed but one step's intermediates; memory ``O(steps)`` states.

    ``save_block_bytes``: if given, each saved record whose buffer would exceed this
    many bytes is collected in blocks of columns (its last axis) of at most that size
    and joined after the loop; the values are the same. (The sharded backend uses it on
    CPUs: XLA splits a larger buffer's initialisation over its threads, after which the
    loop may run on one of them and devices running side by side can end up waiting on
    each other; see :mod:`jaxneuro.backends.sharded`.)

    Compiled once per model structure, :class:`Grid` (step, number of steps and saves)
    and ``record`` (:func:`integrate_span`, ``eqx.filter_jit``): repeated ``simulate``
    calls that differ only in parameter values, or in ``t0`` and ``t1`` at the same
    duration (a long run in parts), reuse the compiled loop."""
    return integrate_span(solver, term, y0, args, make_span(t0, t1),
                          grid=make_grid(t0, t1, dt, save_every_steps, n_save),
                          record=record, grad_checkpoints=grad_checkpoints, save_block_bytes=save_block_bytes)


@eqx.filter_jit
def integrate_span(solver: diffrax.AbstractSolver, term, y0, args, span, *, grid: Grid, record: tuple[str, ...],
                   grad_checkpoints: str = "saves", save_block_bytes: int | None = None):
    """:func:`integrate` with the run's start and end as ``span``, a pair of scalars
    (traced, :func:`make_span`), and its static layout as a :class:`Grid`; ``y0`` a
    state or a :class:`Start`."""
    y0 = start_state(y0, args.model)

    def observe(t, y):
        return args.observe(record, t, y)

    n_steps, n_save = grid.n_steps, grid.n_save
    dtype = jnp.result_type(float)
    # Opaque to XLA: called inside a user's jit the span is a constant, which XLA would
    # fold into the step's times (another rounding of t0 + k·dt than with the traced span
    # of an eager call). What is computed outside the loop (the initial state, rate
    # constants) is compiled with the user's program there and may still round an ulp
    # apart from an eager call's; a spiking run can carry that on (float64 HH: ~1e-12 mV).
    t0_, t1_ = jax.lax.optimization_barrier(tuple(jnp.asarray(t, dtype) for t in span))
    dt_ = jnp.asarray(grid.dt, dtype)
    solver_state = init_solver(solver, term, y0, args, t0_, t1_, grid)

    # Each step is checkpointed too: the backward pass keeps only the states of the
    # stretch it is in and recomputes one step's intermediates at a time (measured:
    # 5-10 % faster gradients for 10³ compartments, a quarter less compile time).
    # It keeps tree solves' solutions (TREE_SOLUTION): their derivatives need nothing
    # else from the solve, which is then not redone.
    @functools.partial(jax.checkpoint, prevent_cse=False, policy=_KEEP_TREE_SOLUTIONS)
    def one_step(k, carry):
        y, state = carry
        ta = t0_ + k * dt_
        # The last step ends at t1 (count_steps may lengthen it by a hair).
        tb = jnp.where(k == n_steps - 1, t1_, jnp.minimum(t0_ + (k + 1) * dt_, t1_))
        y, _, _, state, _ = solver.step(term, ta, tb, y, args, state, False)
        return y, state

    def run_steps(carry, first, count):
        """``count`` (static) steps from global step ``first``; long stretches are
        checkpointed in blocks of about ``sqrt(count)`` steps."""
        if count == 0:
            return carry
        if count <= _UNBLOCKED or grad_checkpoints == "steps":
            # Short stretch: one loop (its backward pass keeps ``count`` states, few).
            if count <= _UNROLLED:
                for i in range(count):
                    carry = one_step(first + i, carry)
                return carry
            return jax.lax.fori_loop(0, count, lambda i, c: one_step(first + i, c), carry)
        block = max(1, int(math.isqrt(count)))
        n_blocks, rest = divmod(count, block)

        # prevent_cse=False: the scan around it already keeps XLA from merging the
        # recomputation with the forward pass, and the barrier costs compile time.
        @functools.partial(jax.checkpoint, prevent_cse=False)
        def run_block(carry, start):
            # Static trip counts: fori_loop then lowers to a scan, which reverse-mode
            # differentiation needs.
            return jax.lax.fori_loop(0, block, lambda i, c: one_step(start + i, c), carry), None

        starts = first + block * jnp.arange(n_blocks)
        carry, _ = jax.lax.scan(run_block, carry, starts)
        if rest:
            start = first + block * n_blocks
            carry = jax.lax.fori_loop(0, rest, lambda i, c: one_step(start + i, c), carry)
        return carry

    k = grid.save_every_steps

    def interval(carry, _):
        # The save's index is counted in the carry, not scanned over an iota: that
        # would be an array made before the loop, a kernel of its own to compile.
        y, state, j = carry
        y, state = run_steps((y, state), j * k, k)
        return (y, state, j + 1), split_columns(observe(t0_ + (j + 1) * k * dt_, y))

    def split_columns(saved):
        if save_block_bytes is None:
            return saved
        return {name: _column_blocks(x, n_save - 1, save_block_bytes) for name, x in saved.items()}

    if grad_checkpoints not in ("saves", "steps"):
        raise ValueError(f"grad_checkpoints expects 'saves' or 'steps', got {grad_checkpoints!r}")
    if save_block_bytes is not None and (isinstance(save_block_bytes, bool) or not isinstance(save_block_bytes, int)
                                         or save_block_bytes < 1):
        raise ValueError(f"save_block_bytes expects None or a positive int (bytes), got {save_block_bytes!r}")
    if grad_checkpoints == "saves" and k > _UNROLLED:
        # (One or two steps per save: the steps' own checkpoints keep no more than their
        # inputs, at most two states per save, and their tree solutions; a second
        # checkpoint around them would make the backward pass compute those again.)
        interval = functools.partial(jax.checkpoint, prevent_cse=False)(interval)

    first = observe(t0_, y0)
    carry = (y0, solver_state)
    if n_save > 1:
        (y, state, _), rest = jax.lax.scan(interval, (*carry, jnp.asarray(0, jnp.result_type(int))), None,
                                           length=n_save - 1)
        carry = (y, state)
        rest = {name: jnp.concatenate(x, axis=-1) if isinstance(x, tuple) else x for name, x in rest.items()}
        saved = jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), first, rest)
    else:
        saved = jax.tree.map(lambda a: a[None], first)
    # Steps after the last save (t1 not on the save grid): needed for the final state.
    done = (n_save - 1) * k
    carry = run_steps(carry, done, n_steps - done)
    return saved, carry[0]


# At most this many blocks per record, else none: each block is an output of the loop,
# and XLA's compile time grew faster than their number (2000 HH neurons x 1600 ms saved
# every step, ~1000 blocks per core: 22 s to compile against 1.7 s whole), and joining
# large blocks after the loop cost more than it saved (8 blocks of that run: 1.05 s a
# run against 0.50 s whole; measured on two cores).
_MAX_BLOCKS = 8


def _column_blocks(x, rows: int, max_bytes: int):
    """``x`` (one save's value) as a tuple of column blocks (slices of its last axis)
    whose stacked buffers of ``rows`` saves hold at most ``max_bytes`` each; ``x``
    itself when it fits, has no axis to cut, a single column is already larger, or it
    would take more than ``_MAX_BLOCKS`` blocks."""
    if x.ndim == 0:
        return x
    column_bytes = rows * x.dtype.itemsize * math.prod(x.shape[:-1])
    per_block = max_bytes // column_bytes if column_bytes else x.shape[-1]
    if per_block >= x.shape[-1] or per_block < 1:
        return x
    if -(-x.shape[-1] // per_block) > _MAX_BLOCKS:
        return x
    return tuple(x[..., i:i + per_block] for i in range(0, x.shape[-1], per_block))
