"""NEURON's fixed-step scheme as a diffrax solver."""

from __future__ import annotations

import functools
import math

from collections.abc import Callable
from typing import ClassVar

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
from diffrax import AbstractTerm, LocalLinearInterpolation, RESULTS

from ..state import State, gate_leaves
from .exponential import exp as polynomial_exp
from .hines import check_tree_solve

_VOLTAGE_UPDATES = ("backward_euler", "crank_nicolson", "exponential")


class StaggeredEuler(diffrax.AbstractSolver):
    """NEURON's default scheme: implicit voltage, exponential-Euler gates, staggered.

    Per step from ``t0`` to ``t1 = t0 + dt``, with stimuli taken at the midpoint
    ``t0 + dt/2`` as NEURON's ``fadvance`` does:

    1. the voltage: the membrane current and its slope are evaluated at ``v(t0)``,
       giving the linearised ``dv/dt = a + b·v``, which is advanced by
       ``voltage_update``: ``"backward_euler"`` (NEURON's default),
       ``"crank_nicolson"`` (NEURON's ``secondorder = 2``) or ``"exponential"`` (exact
       for linear dynamics such as a LIF neuron between spikes);
    2. every gate then advances by exponential Euler using the *new* voltage, which is
       exact for ``dx/dt = (x_inf - x)/tau`` (NEURON's ``cnexp``), so gates live half a
       step ahead of the voltage, as in NEURON;
    3. models with events (spiking point neurons) then find threshold crossings inside
       the step on the same linearised flow and apply reset and refractoriness.

    The solver needs only the vector field and forward-mode derivatives of it, so it
    works with any model whose state is a :class:`~jaxneuro.State` and whose
    compartments are independent. Use it with a constant step size.

    ``tree_solve`` chooses how cells and cables solve their axial coupling (step 1):
    ``"hines"`` (default) node by node as NEURON does, but from the leaves to the
    tree's centre with different branches' nodes taking turns, quick to compile and the
    faster on a CPU; ``"paths"`` path by path side by side, the same voltages to
    rounding in fewer sequential steps (~2√n instead of 2n), which on a CPU ran a
    1000-compartment HH cell and a 1000-segment cable 1.15× slower than ``"hines"``,
    batches of 10 and 100 such cells under ``vmap`` 1.8× and 1.5× slower, and compiles
    longer (benchmarks/RESULTS.md, ``benchmarks/cells.py``). Its fewer steps are meant
    for devices where each step of a loop costs a launch (GPUs; not measured yet). See
    :meth:`TreeCoupling.solve`.
    """

    voltage_update: str = eqx.field(default="backward_euler", static=True)
    tree_solve: str = eqx.field(default="hines", static=True)

    term_structure: ClassVar = AbstractTerm
    interpolation_cls: ClassVar[Callable[..., LocalLinearInterpolation]] = LocalLinearInterpolation

    def __check_init__(self):
        if self.voltage_update not in _VOLTAGE_UPDATES:
            raise ValueError(
                f"StaggeredEuler.voltage_update expects one of {_VOLTAGE_UPDATES}, got {self.voltage_update!r}"
            )
        check_tree_solve(self.tree_solve, "StaggeredEuler.tree_solve")

    def order(self, terms):
        # Measured (tests/test_simulate.py): backward Euler 1; Crank–Nicolson and the
        # exponential update 2, the gates staggered half a step ahead in both.
        return 1 if self.voltage_update == "backward_euler" else 2

    def init(self, terms, t0, t1, y0, args):
        """The solver's state below float64 (None in float64, which needs neither):
        the step size of the grid, taken from the first step (near ``t0``, where it is
        exact), and the rounding compensation of the voltage (see :meth:`step`)."""
        dtype = jnp.result_type(y0.v)
        if not _compensated(dtype):
            return None
        return jnp.asarray(t1 - t0, dtype), jnp.zeros_like(y0.v)

    def step(self, terms, t0, t1, y0: State, args, solver_state, made_jump):
        """One step from ``t0`` to ``t1``. Two precautions for single precision, where
        times far from 0 are coarse (float32 spacing is 0.001 ms at 10 s) and a
        voltage near -65 mV moves only by multiples of 3.8e-6 mV:

        - the step's length is the grid's ``dt`` (from :meth:`init`) wherever
          ``t1 - t0`` equals it to the rounding of ``t``: that difference alone would be
          0.0244 or 0.0254 ms for a 0.025 ms step at 10 s, a bias that adds up over a
          run (spike times at 10 s were 5 ms early);
        - the voltage is advanced with compensated (Kahan) summation, the increment lost
          to rounding being carried to the next step: otherwise increments below half
          the voltage's spacing are lost, and a slow membrane stalls short of its
          steady state (0.04 mV for tau = 100 ms at dt = 0.01 ms, a bias in input
          resistances and rheobases).

        Float64 needs neither (its state from :meth:`init` is None).
        """
        del made_jump
        raw = t1 - t0
        if solver_state is None:
            dt_grid, carry = None, None
            dt = raw
        else:
            dt_grid, carry = solver_state
            dtype = jnp.result_type(raw)
            tol = 4.0 * jnp.finfo(dtype).eps * jnp.maximum(jnp.abs(t0), jnp.abs(t1))
            dt = jnp.where(jnp.abs(raw - dt_grid) <= tol, dt_grid.astype(dtype), raw)
        t_mid = t0 + 0.5 * dt

        def advance(v, dv):
            """``v + dv``, compensated when ``carry`` holds the last step's rounding."""
            if carry is None:
                return v + dv, None
            y = dv - carry
            total = v + y
            return total, (total - v) - y

        def f(v, gates):
            return terms.vf(t_mid, State(v=v, gates=gates, events=y0.events), args)

        # 1. Voltage. Compartments are independent, so one JVP along v gives the
        #    Jacobian's diagonal b; then dv/dt = a + b·v near v(t0).
        #    Conservative couplings (axial, symmetric gaps) have zero row sums and drop
        #    out of this JVP; the model's voltage_coupling() supplies them instead.
        #    The gates are held fixed by closing over them: zero tangents passed as
        #    arrays would be multiplied through every current (compilers keep x·0).
        #    Models that give their right-hand side without the coupling's A·v
        #    (local_vector_field: cells) are solved for the new voltage itself,
        #    (1/h - b - A) v_h = f_local + (1/h - b)·v0 (the usual system for
        #    dv = v_h - v0 moved by v0), so A·v0 is never evaluated. Models with events
        #    keep the full right-hand side, which their event times use.
        model = getattr(args, "model", None)
        coupling = model.voltage_coupling() if hasattr(model, "voltage_coupling") else None
        local = (coupling is not None and not y0.events and self.voltage_update != "exponential"
                 and getattr(model, "local_vector_field", None) is not None
                 and hasattr(args, "local_vector_field"))
        if local:
            def f_v(v):
                return args.local_vector_field(t_mid, State(v=v, gates=y0.gates, events=y0.events)).v
        else:
            def f_v(v):
                return f(v, y0.gates).v
        rhs_v, b = jax.jvp(f_v, (y0.v,), (jnp.ones_like(y0.v),))
        if self.voltage_update == "exponential":
            if coupling is not None:
                raise ValueError(
                    "StaggeredEuler(voltage_update='exponential') needs independent "
                    "compartments; use 'backward_euler' or 'crank_nicolson' for coupled ones"
                )
            v1, lost = advance(y0.v, rhs_v * expm1_ratio(b, dt))
        else:
            h = dt if self.voltage_update == "backward_euler" else 0.5 * dt
            if local:
                # Solved relative to a mean voltage vm (exact: A·1 = 0, so
                # (1/h - b - A)(v_h - vm) = f_local + (1/h - b)·(v0 - vm)): float32
                # then rounds relative to the spread of voltages, not to |v| ~ 65 mV
                # (tests/test_cable.py's 1000-segment cell, 100 ms: 0.003 mV from
                # float64, against 0.04 without the shift; it asserts < 0.01 mV).
                # The mean of a few compartments, summed slice by slice: under jax.vmap a
                # sum over all compartments is a reduction XLA's CPU backend runs as a
                # kernel of its own, which kept the time loop from compiling into one (a
                # 300-segment cell vmapped over 16 values ran 1.5-1.7x a single run per
                # member).
                d = 1.0 / h - b
                vm = _mean_of_some(y0.v)
                v_h = coupling.solve(d, rhs_v + d * (y0.v - vm), self.tree_solve) + vm
                v1 = v_h if self.voltage_update == "backward_euler" else 2.0 * v_h - y0.v
                lost = None if carry is None else jnp.zeros_like(carry)
            else:
                if coupling is None:
                    dv = h * rhs_v / (1.0 - h * b)
                else:
                    dv = coupling.solve(1.0 / h - b, rhs_v, self.tree_solve)
                v1, lost = advance(y0.v, dv if self.voltage_update == "backward_euler" else 2.0 * dv)

        # 2. Gates at the new voltage, each advanced exactly for dx/dt = (x_inf - x)/tau.
        #    Models whose channels give x_inf and 1/tau (gate_increments) advance those
        #    gates themselves, with as few divisions as the channel's formulas allow.
        #    Gates advanced from the derivative whose rates depend on each other (the
        #    model's gate_groups: a channel's derivative() gates, such as a kinetic
        #    scheme's states or a calcium pool and the gates it drives) take one
        #    linearly implicit Euler step together, as NEURON's derivimplicit and
        #    sparse (KINETIC) do; any other gate exponential Euler on its rate
        #    linearised along itself (one JVP per gate).
        exact = gate_leaves(model.gate_increments(v1, y0.gates, dt)) if hasattr(model, "gate_increments") else {}
        start = gate_leaves(y0.gates)
        structure = jax.tree.structure(y0.gates)

        def nested(leaves):  # the gates' dict of these leaves
            return jax.tree.unflatten(structure, [leaves[k] for k in start])

        def rates(changed):  # the rates of the gates `changed` names, the others at their start
            d = gate_leaves(f(v1, nested({**start, **changed})).gates)
            return tuple(d[k] for k in changed)

        gates1 = {k: start[k] + d for k, d in exact.items()}
        # (Asked only where some gate is left: it evaluates the channels' kinetics once
        # more while tracing, which showed in an HH population's compile time.)
        left = any(k not in exact for k in start)
        groups = model.gate_groups() if left and hasattr(model, "gate_groups") else ()
        for group in groups:
            if any(k in exact or k not in start for k in group) or len({jnp.shape(start[k]) for k in group}) > 1:
                continue
            gates1.update(_linearly_implicit_euler(group, start, rates, dt))
        # Gates whose rates do not depend on each other's values (a network's
        # populations') share one JVP: its tangents are then each gate's own
        # derivative, as separate JVPs give them, and the vector field is traced once
        # per batch, not once per population and gate.
        rest = [k for k in start if k not in gates1]
        batches = model.independent_gates(rest) if rest and hasattr(model, "independent_gates") else [(k,) for k in rest]
        for batch in batches:
            xs = tuple(start[k] for k in batch)
            rate, c = jax.jvp(lambda *xs, batch=batch: rates(dict(zip(batch, xs))), xs,
                              tuple(jnp.ones_like(x) for x in xs))
            for k, x, r, ck in zip(batch, xs, rate, c):
                gates1[k] = x + r * exp_minus_one_ratio(ck, dt)
        y1 = State(v=v1, gates=nested(gates1), events=y0.events)

        # 3. Events (threshold, reset, refractory) on the linearised voltage flow.
        if y0.events and hasattr(model, "resolve_events"):
            a = rhs_v - b * y0.v
            y1 = model.resolve_events(t0, t1, y0, y1, a, b)
            if lost is not None:  # a reset or a held voltage owes nothing to the sum
                lost = jnp.where(y1.v == v1, lost, 0.0)
        state = None if solver_state is None else (dt_grid, lost)
        return y1, None, dict(y0=y0, y1=y1), state, RESULTS.successful

    def func(self, terms, t0, y0, args):
        return terms.vf(t0, y0, args)


class OnGrid(StaggeredEuler):
    """:class:`StaggeredEuler` stepped by ``diffrax.diffeqsolve`` on jaxneuro's grid
    (``simulate`` with an adjoint): its grid step is ``grid_dt`` (ms) exactly, as
    jaxneuro's own loop gives it, not the first step's length from the float times
    (far from 0 in float32, 0.0234 or 0.0313 ms for 0.025: the runs parted by 0.2 mV)."""

    grid_dt: float = eqx.field(default=0.025, static=True, kw_only=True)

    def init(self, terms, t0, t1, y0, args):
        return super().init(terms, 0.0, self.grid_dt, y0, args)


def _linearly_implicit_euler(group, start, rates, dt) -> dict:
    """``{gate: value at t0 + dt}`` for the gates ``group`` (leaf paths of one shape)
    taking one linearly implicit Euler step together: ``x1 = x0 + (I - dt·J)⁻¹·dt·r``,
    ``r`` their rates at the step's start and ``J`` the Jacobian of those rates in
    these gates (one JVP per gate: a column), per element; where ``J`` is diagonal
    there (no gate's rate depends on another), each gate by exponential Euler, as a
    gate of its own. For a kinetic scheme's
    states (``dx/dt = Q(v)·x``, columns of ``Q`` summing to 0) this conserves their sum
    exactly and keeps them nonnegative (``I - dt·Q`` is an M-matrix); it is stable
    at any step and first order, NEURON's backward Euler (``derivimplicit``, and
    ``sparse`` for ``KINETIC`` blocks). The systems are solved by Gaussian elimination
    with partial pivoting unrolled over the gates and vectorised over elements (a
    batched LAPACK solve was 19× slower, one-off). Backward Euler damps fast
    oscillations between gates (stable, but a coupling of 50/ms at dt = 0.025 ms left
    1e-83 of an amplitude of 7e-3 after 10 ms): use a diffrax solver for such kinetics."""
    x0 = tuple(start[k] for k in group)
    n = len(group)
    columns = []
    for j in range(n):
        def along_j(xj, j=j):
            return rates({k: (xj if i == j else x0[i]) for i, k in enumerate(group)})

        r, column = jax.jvp(along_j, (x0[j],), (jnp.ones_like(x0[j]),))
        columns.append(column)
    independent = functools.reduce(jnp.logical_and, [columns[j][i] == 0 for i in range(n) for j in range(n) if i != j])
    # a[i][j] = (I - dt·J)[i, j], b = dt·r; where the gates are independent, the
    # identity (the step is not used there, and a pivot of 0 from a gate growing at
    # 1/dt would turn its gradient into NaN).
    a = [[jnp.where(independent, float(i == j), float(i == j) - dt * columns[j][i]) for j in range(n)] for i in range(n)]
    b = [dt * r[i] for i in range(n)]
    for p in range(n):
        # Partial pivoting, per element: the row with the largest entry in column p
        # moves up (a gate whose own rate nears +1/dt leaves a pivot near 0).
        for i in range(p + 1, n):
            swap = jnp.abs(a[i][p]) > jnp.abs(a[p][p])
            for j in range(p, n):
                a[p][j], a[i][j] = jnp.where(swap, a[i][j], a[p][j]), jnp.where(swap, a[p][j], a[i][j])
            b[p], b[i] = jnp.where(swap, b[i], b[p]), jnp.where(swap, b[p], b[i])
        inv = 1.0 / a[p][p]
        for i in range(p + 1, n):
            m = a[i][p] * inv
            for j in range(p + 1, n):
                a[i][j] = a[i][j] - m * a[p][j]
            b[i] = b[i] - m * b[p]
    step = [None] * n
    for i in reversed(range(n)):
        acc = b[i]
        for j in range(i + 1, n):
            acc = acc - a[i][j] * step[j]
        step[i] = acc / a[i][i]
    # Where no rate depends on another gate (the Jacobian diagonal: gates of the
    # first-order form written as a derivative), each gate by exponential Euler
    # instead: exact at the step's voltage, NEURON's cnexp. (The choice is by exact
    # zeros: a coupling of any size steps the whole channel by backward Euler, as a
    # NEURON mechanism is either cnexp or derivimplicit.)
    return {k: x0[i] + jnp.where(independent, r[i] * exp_minus_one_ratio(columns[i][i], dt), step[i])
            for i, k in enumerate(group)}


def _compensated(dtype) -> bool:
    """Whether steps in ``dtype`` take the grid's ``dt`` and sum voltages with
    compensation: below float64."""
    return jnp.finfo(dtype).bits < 64


#: The largest growth exponent one step may take (``e**50``), in the exponential updates
#: of the voltage and of the gates: only a blowing-up flow (a spike upswing, or a gate
#: with a negative rate from nonsensical parameters) gets there, and the cap keeps
#: results and gradients finite instead of ``inf``/NaN.
MAX_GROWTH_PER_STEP = 50.0


def expm1_ratio(b, dt):
    """``(exp(b·dt) - 1) / b``, → ``dt`` as ``b`` → 0, with finite gradients.

    Growth within one step is capped at ``e**MAX_GROWTH_PER_STEP``. In float64 this is
    :func:`exp_minus_one_ratio` with the polynomial ``exp`` (within ~20 units of
    rounding of ``expm1``'s): XLA's float64 ``expm1``, copied into each fused kernel
    that reads a point neuron's event flows, made a LIF population's step 3x slower
    (35 against 11 ns per neuron-step, 1000 neurons on a CPU core). Other precisions
    keep ``expm1``, already cheap there."""
    if jnp.result_type(b, dt) == jnp.float64:
        return exp_minus_one_ratio(b, dt, exp=polynomial_exp)
    small = jnp.abs(b * dt) < 1e-8
    b_safe = jnp.where(small, 1.0, b)
    growth = jnp.minimum(b_safe * dt, MAX_GROWTH_PER_STEP)
    return jnp.where(small, dt * (1.0 + 0.5 * b * dt), jnp.expm1(growth) / b_safe)


def exp_minus_one_ratio(b, dt, exp=jnp.exp):
    """``(exp(b·dt) - 1) / b`` as NEURON's ``cnexp`` computes it (``exp``, not
    ``expm1``, which costs XLA twice as much), with a series where ``|b·dt|`` is small.

    ``exp(z) - 1`` loses ``eps / |z|`` relative to the rounding of ``exp(z)`` near 1, and
    a constant rate (a point neuron's adaptation, ``tau_w`` = 144 ms at ``dt`` = 0.025:
    ``z`` = -1.7e-4) rounds the same way at every step, so the error adds up instead of
    averaging out: in float32 it was up to 7e-4 of each increment, and an adapting AdEx's
    60th spike came 0.085 ms from float64's. Below ``|z|`` = 0.5 (float32; 0.05 in
    float64) the series to ``z**7/8!`` is used instead (truncation under a unit of
    rounding there); above it the subtraction loses at most ``eps/(2|z|)``, about one
    unit. Growth is capped as in :func:`expm1_ratio`. ``exp``: the exponential used."""
    z = b * dt
    cut = 0.05 if jnp.finfo(jnp.result_type(z)).bits >= 64 else 0.5
    small = jnp.abs(z) < cut
    b_safe = jnp.where(small, 1.0, b)
    growth = jnp.minimum(b_safe * dt, MAX_GROWTH_PER_STEP)
    series = 1.0 / 40320.0
    for k in range(7, 0, -1):  # Horner: sum of z**k / (k + 1)!
        series = series * z + 1.0 / math.factorial(k)
    return jnp.where(small, dt * series, (exp(growth) - 1.0) / b_safe)


def linear_flow(v_start, a, b, s):
    """Solution after time ``s`` of ``dv/dt = a + b·v`` from ``v_start``."""
    return v_start + (a + b * v_start) * expm1_ratio(b, s)


def linear_crossing_time(v_start, a, b, v_target):
    """Time for ``dv/dt = a + b·v`` to go from ``v_start`` to ``v_target``.

    ``inf`` where the flow never gets there; differentiable (no NaN) everywhere.
    For ``b`` ≠ 0 the solution is ``ln((v_target + a/b) / (v_start + a/b)) / b``.
    """
    # An infinite target (a threshold of inf: never fires) is never reached; swap in
    # a finite stand-in so no inf enters the arithmetic, whose gradients would be NaN.
    reachable = jnp.isfinite(v_target)
    v_target = jnp.where(reachable, v_target, v_start + 1.0)
    small = jnp.abs(b) < 1e-12
    b_safe = jnp.where(small, 1.0, b)
    v_inf = -a / b_safe  # fixed point
    num = v_target - v_inf
    den = v_start - v_inf
    ratio = num / jnp.where(den == 0, 1.0, den)
    ok = (ratio > 0) & (den != 0)
    t_exp = jnp.log(jnp.where(ok, ratio, 1.0)) / b_safe
    t_exp = jnp.where(ok & (t_exp >= 0), t_exp, jnp.inf)
    a_safe = jnp.where(a == 0, 1.0, a)
    t_lin = (v_target - v_start) / a_safe
    t_lin = jnp.where((a != 0) & (t_lin >= 0), t_lin, jnp.inf)
    return jnp.where(reachable, jnp.where(small, t_lin, t_exp), jnp.inf)


#: How many compartments, evenly spread, :func:`_mean_of_some` averages.
_SHIFT_SAMPLES = 8


def _mean_of_some(v):
    """The mean voltage (mV) of up to :data:`_SHIFT_SAMPLES` compartments spread evenly
    over the last axis, shape ``(..., 1)``: a sum of slices, not a reduction."""
    n = v.shape[-1]
    picks = sorted({round(i * (n - 1) / max(_SHIFT_SAMPLES - 1, 1)) for i in range(min(n, _SHIFT_SAMPLES))})
    total = v[..., picks[0]:picks[0] + 1]
    for i in picks[1:]:
        total = total + v[..., i:i + 1]
    return total / len(picks)

