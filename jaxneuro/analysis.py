"""Measurements on traces and models: input resistance, steady state, time constant.

Input resistance, steady states, time constants, spike times and inter-spike
intervals are differentiable (``jax.grad`` works through them), so they double as
building blocks for fitting losses; spike counts and rates are whole numbers of
spikes, with zero gradient unless a neuron's ``surrogate`` gives ``trace.spike_count``
one. Results are in mV, MΩ, ms and Hz (rates).
"""

from __future__ import annotations

import dataclasses
import functools
import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from . import units
from ._stack import outside_stacklevel
from .model import AbstractModel
from .solve import hines
from .solve.summary import SpikeSummary, crossed_upward
from .solve.trace import TIME_TOLERANCE, Trace, check_inside, overflowed_counts, overflowed_of, report_overflow, within
from .state import State, gate_leaves
from .stimuli import StepCurrent

__all__ = [
    "steady_state", "input_resistance", "membrane_time_constant",
    "spike_times", "isi", "spike_count", "firing_rate", "fi_curve",
]


#: The largest voltage change (mV) one Newton iteration of :func:`steady_state` takes:
#: far from the fixed point, the linearisation of exponential gate kinetics overshoots.
MAX_NEWTON_STEP = 20.0


def steady_state(model: AbstractModel, i_inj=0.0, *, v_guess=None, max_iterations: int = 50,
                 throw: bool = True) -> State:
    """The resting state of ``model`` with a constant ``i_inj`` nA injected (a scalar
    into every compartment, or one value per compartment, e.g. from
    ``model.place_current(target, amp)``).

    Solves ``dv/dt = 0`` with every gate at its steady state for that voltage, by
    damped Newton iterations (steps capped at :data:`MAX_NEWTON_STEP`, 20 mV) from
    ``v_guess`` (mV, default ``model.default_v0``), until every compartment's last step
    is below ``eps**0.75`` relative to its voltage (``eps`` of the dtype: 1.2e-10 mV at
    -65 mV in float64, 4e-4 mV in float32). Compartments coupled to each other (a
    cable's or cell's axial currents, gap junctions in a network) are solved together:
    each iteration solves the coupled linear system through the model's
    ``voltage_coupling()`` (Hines elimination for trees), so a passive cell's steady
    state takes one iteration (and a second to confirm it).

    The gates are held at their channels' ``steady_state(v)``, which must be the
    equilibrium there: with ``throw=True`` a gate that still drifts at the result (a
    calcium pool whose ``steady_state`` gives NEURON's ``INITIAL`` value ``cai0``, not
    its rest) is a ValueError naming it.

    If the iterations have not converged after ``max_iterations``, ``throw=True``
    (default) raises an error at run time, also under ``jit`` and ``vmap`` (an
    ``EquinoxRuntimeError`` naming this function; under ``vmap``, if any member of the
    batch failed); ``throw=False`` returns the last iterate unchecked (for sweeps where
    one failure should not stop the others: check ``model.vector_field`` at the result).

    Differentiable w.r.t. model parameters and ``i_inj`` by the implicit function
    theorem: a derivative costs one linear solve at the fixed point, not a pass back
    through the iterations. Finds one fixed point, which need not be stable (a neuron
    that fires repetitively at ``i_inj`` has an unstable one): for a model with
    several, choose ``v_guess`` near the one wanted. Spiking models with a reset have
    no useful fixed point above threshold.
    """
    if not isinstance(model, AbstractModel):
        raise ValueError(f"steady_state: model expects a jaxneuro model (a compartment, cable, cell, neuron or "
                         f"network), got {type(model).__name__}")
    units.refuse_quantities(model, "steady_state: model")
    max_iterations = units.positive_int(max_iterations, "steady_state: max_iterations")
    throw = units.flag(throw, "steady_state: throw")
    _check_membrane(model)
    i_inj = units.to_base(i_inj, "i_inj", units.nA)
    units.check_value(i_inj, "steady_state: i_inj", None, units.nA)
    model = units.numbers_as_arrays(model)  # a number set by eqx.tree_at: not compiled in
    model = model.precomputed()  # a cell's geometry once, not at every iteration
    v = model.default_v0 if v_guess is None else units.to_base(v_guess, "v_guess", units.mV)
    units.check_value(v, "steady_state: v_guess", None, units.mV)
    v = jnp.asarray(v, dtype=jnp.result_type(float))
    # Both are broadcast to the model's shape in the compiled program (eagerly, each
    # new shape compiled a program); here only checked.
    for label, x in (("v_guess", v), ("i_inj", i_inj)):
        if not units.broadcasts_to(np.shape(x), model.shape):
            raise ValueError(
                f"steady_state: {label} expects a scalar or one value per compartment (shape {model.shape}), "
                f"got shape {np.shape(x)}"
            )
    v, state, restless = _steady_state_compiled(model, i_inj, v, max_iterations, throw)
    _check_below_threshold(model, v, throw)
    if throw:
        state = _check_gates_at_rest(state, restless)
    return state


def _increments_to_rest(model, state) -> dict:
    """``{gate path: inf - x}`` for the gates the model advances from ``(inf, rate)``
    (:meth:`gate_increments` over an infinite step; a Network's per population)."""
    if hasattr(model, "gate_increments"):
        return gate_leaves(model.gate_increments(state.v, state.gates, jnp.inf))
    populations = getattr(model, "populations", None)
    if populations is None:
        return {}
    v = model.per_population(state.v)  # a Network: each population's voltages in its shape
    out = {}
    for name, gates in state.gates.items():
        if hasattr(populations[name], "gate_increments"):
            increments = populations[name].gate_increments(v[name], gates, jnp.inf)
            out.update({(name, *k): d for k, d in gate_leaves(increments).items()})
    return out


def _check_gates_at_rest(state, restless):
    """A ValueError naming the gates ``restless`` flags, which drift at the fixed
    point (for traced values an ``EquinoxRuntimeError`` at run time)."""
    why = ("their channel's steady_state(v) is not the equilibrium of its kinetics at that voltage "
           "(e.g. an initial value, as NEURON's INITIAL cai = cai0): jn.steady_state holds every gate at "
           "steady_state(v), so its result is a fixed point only where that is the equilibrium. Return "
           "the equilibrium from steady_state, or run the model to rest with jn.simulate; throw=False "
           "returns the voltage found with those gates")
    flags = list(restless.values())
    if not all(units.is_concrete(f) for f in flags):
        anywhere = functools.reduce(jnp.logical_or, [jnp.any(f) for f in flags], jnp.array(False))
        return eqx.error_if(state, anywhere, "steady_state: gates are not at rest at the fixed point: " + why)
    drifting = [".".join(map(str, path)) for path, f in restless.items() if np.any(np.asarray(f))]
    if drifting:
        raise ValueError(f"steady_state: gate(s) {drifting} are not at rest at the fixed point: {why}")
    return state


def _restless_gates(model, state, i_inj) -> dict:
    """``{gate path: bool array}``: where a gate drifts at ``state``: its rate ``r``
    exceeds ``sqrt(eps)`` of the relaxation ``c·x`` its own rate ``c = dr/dx`` gives
    (a gate with ``tau = 0`` has a rate of 0/0 there: not flagged). Every gate, those
    with ``gate_inf_tau`` too: a class may override ``steady_state`` with a start
    value. Gates the model advances from ``(inf, rate)`` are judged by their step to
    rest (:func:`_increments_to_rest`), the others by one JVP per gate leaf."""
    start = gate_leaves(state.gates)
    if not start:
        return {}
    structure = jax.tree.structure(state.gates)
    tol = float(jnp.finfo(state.v.dtype).eps) ** 0.5
    tiny = float(jnp.finfo(state.v.dtype).tiny)
    restless = {}
    # Gates with (inf, rate) kinetics: their step to the end of an infinite one is
    # inf - x, from the solver's own increments at once (a JVP per gate leaf added a
    # fifth to a gap network's steady-state gradient's compile time).
    for k, d in _increments_to_rest(model, state).items():
        x = start[k]
        restless[k] = jnp.isfinite(d) & (jnp.abs(d) > tol * jnp.maximum(jnp.maximum(jnp.abs(x), jnp.abs(x + d)), tiny))
    for k, x in start.items():
        if k in restless:
            continue

        def rate(x, k=k):
            gates = jax.tree.unflatten(structure, [x if j == k else start[j] for j in start])
            moved = _resting(model, State(v=state.v, gates=gates, events=state.events))
            return gate_leaves(model.vector_field(0.0, moved, i_inj).gates)[k]

        r, c = jax.jvp(rate, (x,), (jnp.ones_like(x),))
        restless[k] = jnp.isfinite(r) & (jnp.abs(r) > tol * jnp.maximum(jnp.abs(c * x), tiny))
    return restless


def _check_below_threshold(model, v, throw) -> None:
    """A ValueError (with ``throw``, for concrete values) where a spiking model's
    fixed point lies at or above its threshold: it fires there and never settles (a
    LIF at 10 nA gave 30 mV, 85 mV above V_th, without a word)."""
    threshold = getattr(model, "threshold", None)
    if not throw or threshold is None or not callable(threshold):
        return
    v_th = threshold()
    if not (units.is_concrete(v) and units.is_concrete(v_th)):
        return
    v = np.atleast_1d(np.asarray(v))
    v_th = np.broadcast_to(np.asarray(v_th), v.shape)
    above = v >= v_th
    if np.any(above):
        first = tuple(int(i) for i in np.argwhere(above)[0])
        raise ValueError(
            f"steady_state: {type(model).__name__}'s fixed point {float(v[first]):.6g} mV lies at or above its "
            f"threshold {float(v_th[first]):.6g} mV ({int(np.sum(above))} neuron(s), e.g. index {first}): under "
            "this input it fires and never settles, so it has no steady state (throw=False returns the fixed point)"
        )


def _check_membrane(model) -> None:
    """A ValueError for a compartment, cable or cell with no membrane channels: with no
    conductance across its membrane it has no resting voltage (an injected current
    charges it without end), and its input resistance is infinite."""
    sections = getattr(model, "sections", None)
    if sections is not None:
        bare = all(not sec.channels for sec in sections)
    else:
        bare = hasattr(model, "channels") and not model.channels
    if bare:
        raise ValueError(
            f"steady_state: this {type(model).__name__} has no membrane channels, so no conductance "
            "across its membrane: it has no resting voltage, and its input resistance is infinite; "
            "add one, e.g. channels=[jn.channels.Leak()]"
        )


@eqx.filter_jit  # one compiled program for repeated calls on models of one structure
def _steady_voltage(model, i_inj, v, max_iterations, throw):
    """The voltage of :func:`steady_state` (``model`` precomputed, ``i_inj`` and the
    guess ``v`` of the model's shape)."""
    coupling = model.voltage_coupling()
    rtol = float(jnp.finfo(v.dtype).eps) ** 0.75
    loose = float(jnp.finfo(v.dtype).eps) ** 0.5

    def solve_jacobian(slope, y):
        """``x`` with ``J·x = y``, ``J = diag(slope) + A`` the Jacobian of ``dv/dt``
        (``A`` the coupling, whose rows sum to zero, so that ``slope`` is the
        Jacobian applied to a vector of ones)."""
        if coupling is None:
            # A zero slope (a LIF without leak: a perfect integrator) has no finite
            # response: the limit from the stable side (slope -> 0-), so an input
            # resistance of +inf. Linear in y: custom_root transposes it.
            inverse = jnp.where(slope == 0, -jnp.inf, 1.0 / jnp.where(slope == 0, 1.0, slope))
            return y * inverse
        return coupling.solve(-slope, -y, hines.STEADY)  # (diag(-slope) - A)·x = -y

    # Cells and cables iterate on w = v - c (c: one voltage for all segments), with the
    # axial part of dv/dt as A·w (A·1 = 0): in float32 the differences between
    # neighbouring segments' voltages, taken from voltages near -65 mV, were rounded to
    # their 8e-6 mV, and a finely cut cell's steady state came out 0.01 mV off.
    split = coupling is not None and getattr(model, "local_vector_field", None) is not None
    offset = jax.lax.stop_gradient(jnp.mean(v)) if split else jnp.zeros((), v.dtype)

    def newton(dvdt, v0):
        def iterate(carry):
            k, v, _, last = carry
            f, slope = jax.jvp(dvdt, (v,), (jnp.ones_like(v),))
            step = jnp.clip(solve_jacobian(slope, -f), -MAX_NEWTON_STEP, MAX_NEWTON_STEP)
            if coupling is None:  # independent compartments: none where dv/dt is 0 already (0/0 at slope 0)
                step = jnp.where(f == 0, 0.0, step)
            v = v + step
            scale = jnp.maximum(jnp.abs(v + offset), 1.0)
            largest = jnp.max(jnp.abs(step))
            # NaN steps compare False: an iteration that broke down never converges.
            done = jnp.all(jnp.abs(step) <= rtol * scale)
            # At rounding's level (float32, a stiff cell) the steps stop shrinking short
            # of rtol: steps no longer halving, within sqrt(eps) of v, are converged.
            stalled = (largest >= 0.5 * last) & jnp.all(jnp.abs(step) <= loose * scale)
            return k + 1, v, done | stalled, largest

        _, v, done, _ = jax.lax.while_loop(
            lambda carry: (carry[0] < max_iterations) & ~carry[2], iterate,
            (0, v0, jnp.array(False), jnp.asarray(jnp.inf, v0.dtype)))
        # As a float: custom_root's derivative rule gives boolean outputs bool tangents,
        # which JAX rejects.
        return v, done.astype(v.dtype)

    def tangent_solve(linearised, y):
        return solve_jacobian(linearised(jnp.ones_like(y)), y)

    if split:
        def dvdt(w):
            local = model.local_vector_field(0.0, model.init_state(offset + w), i_inj).v
            return local + coupling.apply(w)

        w, converged = jax.lax.custom_root(dvdt, v - offset, newton, tangent_solve, has_aux=True)
        v = offset + w
    else:
        v, converged = jax.lax.custom_root(_voltage_derivative(model, i_inj), v, newton, tangent_solve,
                                           has_aux=True)
    if throw:
        v = eqx.error_if(
            v, converged == 0,
            f"steady_state: the Newton iterations did not converge in max_iterations={max_iterations} "
            "(the model may have no fixed point near v_guess at this i_inj; try another v_guess, more "
            "max_iterations, or throw=False to get the last iterate)",
        )
    return v


@eqx.filter_jit
def _steady_state_compiled(model, i_inj, v, max_iterations, throw):
    """``(v, state, restless)``: :func:`_steady_voltage`, the state there and (with
    ``throw``) :func:`_restless_gates`, as one compiled
    program (``max_iterations`` and ``throw`` static): run op by op, the first call
    compiled some 60 small programs (3-4 s for an 18-section cell)."""
    v = jnp.broadcast_to(v, model.shape)
    i_inj = jnp.broadcast_to(i_inj, model.shape)
    v = _steady_voltage(model, i_inj, v, max_iterations, throw)
    state = model.init_state(v)
    return v, state, _restless_gates(model, state, i_inj) if throw else {}


def _voltage_derivative(model, i_inj):
    """``dv/dt`` (mV/ms) as a function of ``v`` with the gates at their steady state."""
    return lambda v: model.vector_field(0.0, _resting(model, model.init_state(v)), i_inj).v


def _resting(model, state):
    """``state`` without the spike arrivals it holds (a Network's spike sources' trains:
    one at t = 0 counted in the synapses' conductance), which are input, not rest: a
    synapse's conductance held at an arrival's peak gave a LIF's "rest" 6 mV above it."""
    quiet = getattr(model, "without_spikes", None)
    return state if quiet is None else quiet(state)


#: How many voltages (compartments × solves) ``input_resistance(model)`` of a coupled
#: model solves for at once: 2**22, 32 MiB in float64.
SOLVE_BATCH_VALUES = 1 << 22


def _input_resistances(model, v_guess=None, batch_values=SOLVE_BATCH_VALUES):
    """``dV_k/dI_k`` (MΩ) at the steady state for current into compartment ``k`` alone,
    for every ``k``, of a model whose compartments are coupled: the diagonal of
    ``(-J)⁻¹·S`` with ``J`` the Jacobian of ``dv/dt`` and ``S`` that of the injected
    current (1/C), one solve per compartment (O(n²) for a tree of n segments; for a
    large gap-coupled network, pass a stimulus to get one location); ``model``
    precomputed."""
    zero = jnp.zeros(model.shape, dtype=jnp.result_type(float))
    v = steady_state(model, zero, v_guess=v_guess).v
    coupling = model.voltage_coupling()
    _, slope = jax.jvp(_voltage_derivative(model, zero), (v,), (jnp.ones_like(v),))
    _, per_na = jax.jvp(lambda i: _voltage_derivative(model, i)(v), (zero,), (jnp.ones_like(zero),))
    n = v.size

    def response(k):
        unit = jnp.zeros(n, v.dtype).at[k].set(1.0)
        return coupling.solve(-slope, per_na * unit, hines.STEADY)[k]

    # Solves side by side hold one voltage vector each: in batches of at most
    # SOLVE_BATCH_VALUES values, so that a network of 10⁵ compartments does not ask for
    # 10¹⁰ at once (80 GB in float64).
    return jax.lax.map(response, jnp.arange(n), batch_size=max(1, min(n, batch_values // n)))


_input_resistances_compiled = eqx.filter_jit(_input_resistances)


def _step_stimulus(stimulus, name="stimulus", *, amp_matters=True, timed=True) -> StepCurrent:
    if not isinstance(stimulus, StepCurrent):
        raise ValueError(
            f"{name} expects a jn.StepCurrent (the step that produced the trace, or the step to "
            f"apply to the model), got {type(stimulus).__name__}"
        )
    if amp_matters and stimulus.density:
        raise ValueError(
            f"{name}.amp is a current density (mA/cm²); an input resistance divides by the injected "
            "current, so give the step's amplitude in nA (the density times the membrane area)"
        )
    if units.is_concrete(stimulus.amp) and np.any(np.asarray(stimulus.amp) == 0):
        raise ValueError(f"{name}.amp must be non-zero to measure a response (nA)")
    if timed and units.is_concrete(stimulus.dur) and not np.all(np.isfinite(np.asarray(stimulus.dur))):
        raise ValueError(f"{name}.dur must be finite to measure a response (ms)")
    return stimulus


def _sample_at_or_before(t_samples, v, t):
    """``v`` (samples along its first axis, at times ``t_samples``) at the last sample
    at or before ``t`` (ms; one, or one per compartment): the value before a step that
    starts between samples, not one interpolated across its onset."""
    idx = jnp.clip(jnp.searchsorted(t_samples, jnp.asarray(t) + TIME_TOLERANCE, side="right") - 1, 0, v.shape[0] - 1)
    if idx.ndim and v.ndim > 1 and units.broadcasts_to(idx.shape, v.shape[1:]):  # one time per compartment
        return jnp.take_along_axis(v, jnp.broadcast_to(idx, v.shape[1:])[None], axis=0)[0]
    return v[idx]


def _check_step_shape(trace: Trace, step, what: str, variable: str) -> None:
    """The step's ``delay`` and ``dur`` must be one time for every compartment of the
    trace, or one per compartment (the trace's columns)."""
    cols = tuple(np.shape(getattr(trace, variable))[1:])
    for name in ("delay", "dur"):
        x = getattr(step, name)
        if np.size(x) != 1 and not units.broadcasts_to(np.shape(x), cols):
            raise ValueError(
                f"{what}: stimulus.{name} has shape {np.shape(x)}; for this trace (compartments of shape {cols}) "
                f"give one time (ms) for all compartments or one per compartment (shape {cols})"
            )


def _per_column(x, cols) -> np.ndarray:
    """A known step field (a scalar, or one value per compartment) as one value for
    each of the trace's compartments ``cols``, flattened: the host-side checks judge
    each compartment against its own step."""
    x = np.asarray(x, dtype=float)
    return np.broadcast_to(x.reshape(()) if x.size == 1 else x, tuple(cols)).reshape(-1)


def _step_text(start, dur, j) -> str:
    """The step as messages name it, ``100.2 ms for 0.5 ms``, from its onsets and
    durations per compartment (:func:`_per_column`): compartment ``j``'s, named where
    the timing differs between compartments."""
    text = f"{float(start[j]):g} ms for {float(dur[j]):g} ms"
    return text + (f" in compartment {j}" if np.ptp(start) or np.ptp(dur) else "")


def _samples_in_step(trace: Trace, step, v, xp=jnp):
    """How many samples of the trace lie after the step's baseline sample (the last at
    or before its onset) and at or before its end, per compartment: those that carry
    the response. ``xp``: ``numpy`` where the times are known (no program compiled for
    each new trace length), else ``jax.numpy``."""
    t = xp.asarray(trace.t).reshape((-1,) + (1,) * (np.ndim(v) - 1))
    delay, dur = xp.asarray(step.delay), xp.asarray(step.dur)
    start, end = delay + TIME_TOLERANCE, delay + dur + TIME_TOLERANCE
    return xp.broadcast_to(xp.sum((t > start) & (t <= end), axis=0), np.shape(v)[1:])


def _check_step_sampled(trace: Trace, step, v, what: str, needed: int, purpose: str):
    """The step must span at least ``needed`` samples of the trace in every compartment
    (:func:`_samples_in_step`): where the times are known, fewer is a ValueError naming
    the step, and None is returned. Under ``jit`` (times traced) the check cannot run:
    the mask of the compartments that pass is returned, for :func:`_nan_unless`."""
    if all(units.is_concrete(x) for x in (trace.t, step.delay, step.dur)):
        inside = np.asarray(_samples_in_step(trace, step, v, xp=np)).reshape(-1)
        if inside.size and inside.min() < needed:
            j = int(np.argmin(inside))
            cols = np.shape(v)[1:]
            step_text = _step_text(_per_column(step.delay, cols), _per_column(step.dur, cols), j)
            raise ValueError(
                f"{what}: the step ({step_text}) spans {int(inside[j])} sample(s) of the trace; {purpose} needs "
                f"at least {needed}: record more often (save_every) or give a longer step"
            )
        return None
    return _samples_in_step(trace, step, v) >= needed


def _nan_unless(sampled, result):
    """``result``, NaN where ``sampled`` (from :func:`_check_step_sampled`, under
    ``jit``) is False: no finite number comes from a step the samples miss."""
    return result if sampled is None else jnp.where(sampled, result, jnp.nan)


def _in_range(trace: Trace, t, what):
    if not (units.is_concrete(trace.t) and units.is_concrete(t)):  # under jit: checked when concrete
        return
    times = np.asarray(trace.t)  # (indexing the JAX array compiled a program per trace length)
    lo, hi = float(times[0]), float(times[-1])
    t = np.asarray(t)
    outside = t[(t < lo - TIME_TOLERANCE) | (t > hi + TIME_TOLERANCE)]
    if outside.size:
        raise ValueError(f"{what} at t={float(outside.flat[0])} ms lies outside the trace [{lo}, {hi}] ms")


def _step_in_range(trace: Trace, step):
    """The step's onset and end must be sampled: the baseline is the sample at or
    before the onset (a trace starting later has none: its first sample would already
    carry the response)."""
    _in_range(trace, step.delay, "the stimulus onset (the baseline is read at or before it)")
    _in_range(trace, step.delay + step.dur, "the end of the stimulus")


def _each_member(fn, trace: Trace, step, what: str, variable: str):
    """``fn(member, step)`` for every member of a batch of traces (from ``jax.vmap``
    over ``simulate``: ``t`` of shape ``(batch..., T)``), shaped ``batch + (result of
    one)``. A field of ``step`` (``amp``, ``delay``, ``dur``) whose leading axes are
    the batch's holds one value per member (the vmapped step); any other is every
    member's.

    Members on one time grid with one step timing (the usual sweep), where the values
    are known, are measured together as columns of one trace, so that the range checks
    and warnings of a single trace apply; otherwise (under ``jit`` or ``grad``, or
    per-member timing) ``fn`` is vmapped over them."""
    t = trace.t
    batch = tuple(t.shape[:-1])
    nb = len(batch)
    cols = tuple(getattr(trace, variable).shape[nb + 1:])

    def fits(shape):
        try:
            return np.broadcast_shapes(tuple(shape), cols) == cols
        except ValueError:
            return False

    per_member = {}
    for name in ("amp", "delay", "dur"):
        shape = np.shape(getattr(step, name))
        mine = shape[:nb] == batch and fits(shape[nb:])
        if mine and fits(shape):
            raise ValueError(
                f"{what}: stimulus.{name} of shape {shape} could be one value per member of this batch of traces "
                f"(batch shape {batch}) or one per compartment (shape {cols}); call {what} inside the "
                f"jax.vmap, with the simulation: jax.vmap(lambda a: jn.{what}(jn.simulate(...), step(a)))(amps)"
            )
        if not mine and not fits(shape):
            raise ValueError(
                f"{what}: stimulus.{name} has shape {shape}; for this batch of traces (batch shape {batch}, "
                f"compartments {cols}) give one value for all members (a scalar or shape {cols}) or one per "
                f"member (shape {batch} + ...), as the vmapped simulation had it"
            )
        per_member[name] = mine
    known = all(units.is_concrete(x) for x in (t, step.amp, step.delay, step.dur))
    if known and not per_member["delay"] and not per_member["dur"]:
        grid = np.asarray(t).reshape(-1, t.shape[-1])
        if np.all(grid == grid[0]):
            # One grid: the members are columns after the time axis, (T, batch..., cols...).
            move = lambda x: jnp.moveaxis(x, tuple(range(nb)), tuple(range(1, nb + 1)))  # noqa: E731

            def widen(x, mine):
                x = jnp.asarray(x)
                if mine:  # (batch..., own...) -> (batch..., 1..., own...), against (batch..., cols...)
                    x = x.reshape(batch + (1,) * (len(cols) - (x.ndim - nb)) + x.shape[nb:])
                return x if x.ndim == 0 else jnp.broadcast_to(x, batch + cols)

            columns = Trace(t=jnp.asarray(t).reshape(-1, t.shape[-1])[0],
                            values={k: move(x) for k, x in trace.values.items()},
                            spikes=trace.spikes, spike_count=trace.spike_count)
            return fn(columns, _with_timing(step, *(widen(getattr(step, k), per_member[k]) for k in per_member)))
    flat = lambda x, n=nb: jnp.reshape(x, (-1,) + jnp.shape(x)[n:])  # noqa: E731
    members = Trace(t=flat(t), values={k: flat(x) for k, x in trace.values.items()},
                    spikes=None if trace.spikes is None else flat(trace.spikes),
                    spike_count=None if trace.spike_count is None else flat(trace.spike_count))
    fields = [flat(getattr(step, k)) if mine else getattr(step, k) for k, mine in per_member.items()]
    out = jax.vmap(lambda member, *f: fn(member, _with_timing(step, *f)),
                   in_axes=(0,) + tuple(0 if mine else None for mine in per_member.values()))(members, *fields)
    return out.reshape(batch + out.shape[1:])


def _with_timing(step, amp, delay, dur):
    """``step`` with these ``amp``, ``delay`` and ``dur`` (already in nA and ms: not
    converted or checked again)."""
    return eqx.tree_at(lambda s: (s.amp, s.delay, s.dur), step, (amp, delay, dur))


def input_resistance(source, stimulus: StepCurrent | None = None, *, method: str | None = None, variable="v",
                     v_guess=None):
    """Input resistance in MΩ.

    From a trace, ``input_resistance(trace, step)`` with the :class:`StepCurrent`
    ``step`` that produced it:

    - ``method="deflection"`` (default; seed 000's ΔV/I): the largest deflection from
      the baseline during the step (the minimum for a negative current, maximum for a
      positive one) divided by ``step.amp``; the baseline is ``v`` at the last sample
      at or before the step onset.
    - ``method="end"``: the deflection at the last sample at or before the end of the
      step, divided by ``step.amp``.

    A batch of traces (from ``jax.vmap`` over ``simulate``: ``t`` of shape ``(batch...,
    T)``) gives one value per member, shape ``batch + (compartments...)``; the step may
    be the vmapped one (``amp``, ``delay`` or ``dur`` with the batch's leading axes) or
    one for all members (as ``membrane_time_constant``).

    ``variable``: the name of the trace's record read as the response (default
    ``"v"``, mV).

    The step's ``delay`` and ``dur`` (ms) may be one per compartment (shape of the
    trace's compartments); each compartment is then read, and checked, over its own
    step. The trace must hold at least one sample after the step's baseline sample and
    at or before its end (``save_every`` finer than the step): else a ValueError naming
    the step; under ``jit``, where the times are not known until the program runs, the
    result is NaN in the compartments whose step no sample falls in.

    The step's amplitude must be a current (nA), not a current density. Where the
    voltage of a known trace is still moving at the onset (a run not started at rest),
    the baseline is not the resting voltage, and where the step makes a compartment
    fire (its voltage crosses 0 mV, or the trace's own spike events fall in the step),
    the response is not a membrane's, and where the response is still far from settled
    at the step's end (more than :data:`UNSETTLED_FRACTION` of it missing, judged as an
    exponential approach from its rise over the step's second half) the deflection is
    too small: a RuntimeWarning says so in each case. In an
    active membrane the largest deflection may be a resonance's overshoot rather than
    the settled response (an HH soma: 128.8 MΩ at the undershoot of a -10 pA step,
    72.0 MΩ at its end, as NEURON gives them); ``method="end"`` reads the latter.

    From a model, ``input_resistance(model)`` with ``method="steady_state"`` (the
    default for models): ``dV/dI`` of the steady state at ``I = 0`` for current into
    each compartment alone (with gates at their steady state, so it is the slope
    resistance of an active membrane; for a cable or cell, the input resistance at
    every segment, as NEURON's ``Impedance.input`` at 0 Hz gives it for passive
    membranes (for active ones NEURON's ``Impedance`` differs from its own small DC
    steps, which this is the limit of: within 1e-5 of a ±1 pA chord's 25.9595 MΩ
    at the soma of an HH cell); one linear solve per
    segment, done in batches of :data:`SOLVE_BATCH_VALUES` voltages, so the time grows
    as the square of the compartments where they are coupled: 0.9 s for 1000
    gap-coupled neurons, 8.4 s for 4000 on two CPU cores; for a network of very many,
    prefer a stimulus at the one location wanted, one solve).
    Given a ``stimulus``, the chord ``(V_ss(amp) - V_ss(0)) / amp`` with the
    current placed at the stimulus's ``target``, in every compartment: at the target
    that is the input resistance, elsewhere the transfer resistance (as the trace
    methods give for a trace of every segment). The steady state is searched from
    ``v_guess`` (mV, default the model's ``default_v0``; see :func:`steady_state`). A
    negative result means the fixed point found is unstable, not a resting state (an
    Izhikevich neuron started at -55 mV finds the one at -50 mV; it rests at -70):
    where the values are known a RuntimeWarning says so; give a ``v_guess`` near rest.
    """
    if isinstance(source, AbstractModel):
        method = method or "steady_state"
        if method != "steady_state":
            raise ValueError(f"input_resistance(model): method must be 'steady_state', got {method!r}")
        source = source.precomputed()  # once for all the steady states below
        if stimulus is not None:
            amp = _step_stimulus(stimulus, timed=False).amp  # a steady state: the step's timing does not enter
            stimulus.check_placement(source)
            i_inj = source.place_current(stimulus.target, amp)
            rest = steady_state(source, 0.0, v_guess=v_guess).v
            r = (steady_state(source, i_inj, v_guess=rest).v - rest) / amp
        elif source.voltage_coupling() is not None:
            r = _input_resistances_compiled(source, v_guess, SOLVE_BATCH_VALUES)  # (static: read per call)
        else:
            # Made on the host (jnp.zeros compiles a program for each new shape).
            zero, one = (jax.device_put(np.full(source.shape, x, dtype=jnp.result_type(float))) for x in (0.0, 1.0))
            _, r = jax.jvp(lambda i: steady_state(source, i, v_guess=v_guess).v, (zero,), (one,))
        _warn_unstable(source, r, v_guess)
        return r
    if v_guess is not None:
        raise ValueError("input_resistance: v_guess applies to a model's steady state, not to a trace")
    if not isinstance(source, Trace):
        raise ValueError(f"input_resistance expects a Trace or a model, got {type(source).__name__}")
    method = method or "deflection"
    if method not in ("deflection", "end"):
        raise ValueError(f"input_resistance(trace): method must be 'deflection' or 'end', got {method!r}")
    step = _step_stimulus(stimulus)
    if source.t.ndim > 1:
        return _each_member(lambda tr, st: input_resistance(tr, st, method=method, variable=variable),
                            source, step, "input_resistance", variable)
    _check_step_shape(source, step, "input_resistance", variable)
    _step_in_range(source, step)
    v = getattr(source, variable)
    sampled = _check_step_sampled(source, step, v, "input_resistance", 1, "the response")
    r = _nan_unless(sampled, _step_resistance(source.t, v, step.delay, step.dur, step.amp, method=method))
    known = units.is_concrete(r) and units.is_concrete(step.amp)  # (then multiplied on the host)
    deflection = np.asarray(r) * np.asarray(step.amp) if known else r * step.amp
    _warn_drifting_baseline(source, step, v, deflection, "input_resistance")
    if not _warn_firing(source, step, v, "input_resistance"):  # a spike is no charging curve
        _warn_unsettled(source, step, v, "input_resistance")
    return r


@functools.partial(jax.jit, static_argnames="method")
def _step_resistance(t, v, delay, dur, amp, *, method):
    """:func:`input_resistance` of a trace's samples ``v`` at times ``t`` (ms) for a
    step of ``amp`` (nA) from ``delay`` for ``dur`` (ms), by ``method``: one compiled
    program (op by op, a dozen at each new trace size)."""
    baseline = _sample_at_or_before(t, v, delay)
    if method == "end":
        return (_sample_at_or_before(t, v, delay + dur) - baseline) / amp
    during = within(t.reshape((-1,) + (1,) * (v.ndim - 1)), delay, delay + dur)
    sign = jnp.sign(amp)
    peak = jnp.max(jnp.where(during, sign * v, -jnp.inf), axis=0)
    return (peak - sign * baseline) / jnp.abs(amp)


def _warn_unstable(model, r, v_guess):
    """Warn where a model's known input resistance is negative: the steady state found
    is an unstable fixed point, not where the model rests."""
    if not units.is_concrete(r):
        return
    bad = np.asarray(r) < 0
    if np.any(bad):
        v = np.asarray(steady_state(model, 0.0, v_guess=v_guess).v)
        warnings.warn(
            f"input_resistance: negative ({float(np.min(np.asarray(r))):.4g} MΩ) in {int(bad.sum())} "
            f"compartment(s): the steady state found (v = {float(v.reshape(-1)[np.argmax(bad.reshape(-1))]):.4g} mV) "
            "is an unstable fixed point, not the model's rest; give v_guess=... near the resting voltage",
            RuntimeWarning, stacklevel=outside_stacklevel())


#: Voltage (mV) whose upward crossing during a step counts as the cell firing, for
#: the warnings of :func:`input_resistance` and :func:`membrane_time_constant`.
FIRING_THRESHOLD = 0.0


def _warn_firing(trace: Trace, step, v, what):
    """Warn where a known trace shows firing during the step (each compartment's
    own, where the timing is one per compartment): a spike's deflection is not the
    membrane's response to the current. Whether it warned."""
    if not all(units.is_concrete(x) for x in (trace.t, v, step.delay, step.dur)):
        return False
    t = np.asarray(trace.t)
    if t.ndim != 1:
        return False
    cols = np.shape(v)[1:]
    lo = _per_column(step.delay, cols)
    hi = lo + _per_column(step.dur, cols)
    during = (t[:, None] >= lo - TIME_TOLERANCE) & (t[:, None] <= hi + TIME_TOLERANCE)  # (T, compartments)
    vv = np.asarray(v).reshape(t.size, -1)
    fired = np.any(during[:-1] & during[1:] & crossed_upward(vv[:-1], vv[1:], FIRING_THRESHOLD), axis=0)
    if trace.spikes is not None and units.is_concrete(trace.spikes):
        sp = np.asarray(trace.spikes).reshape(-1, np.shape(trace.spikes)[-1])
        if sp.shape[0] == lo.size:  # a row of spikes per compartment: each against its own step
            fired = fired | np.any((sp >= lo[:, None]) & (sp <= hi[:, None]), axis=-1)
        else:
            fired = fired | np.any((sp >= lo.min()) & (sp <= hi.max()))
    if np.any(fired):
        j = int(np.argmax(np.broadcast_to(fired, lo.shape)))
        when = f"between {lo[j]:g} and {hi[j]:g} ms"
        if np.ptp(lo) or np.ptp(hi):  # each compartment's own step: name the first that fired
            when += f" in compartment {j}"
        warnings.warn(
            f"{what}: the step makes {int(np.sum(fired))} compartment(s) fire (a voltage crossing "
            f"{FIRING_THRESHOLD:g} mV, or a spike event, {when}), so the deflection is "
            "not the membrane's response; use a smaller, subthreshold step, or the model: "
            f"{what}(model)", RuntimeWarning, stacklevel=outside_stacklevel())
    return bool(np.any(fired))


def _last_sample_at_or_before(t: np.ndarray, time):
    """Index of the last of the known sample times ``t`` (ms) at or before ``time`` (to
    :data:`TIME_TOLERANCE`; -1 if none), for each of the ``time``s: the host-side twin
    of :func:`_sample_at_or_before`, for the warnings."""
    return np.searchsorted(t, np.asarray(time) + TIME_TOLERANCE, side="right") - 1


def _warn_drifting_baseline(trace: Trace, step, v, deflection, what):
    """Warn where a known trace's voltage was still moving at the step's onset: the
    baseline (the sample at the onset) then is not the resting voltage, and the drift
    over the step adds to the deflection (a gap-coupled pair stepped 5 ms after
    starting away from rest read 759 MΩ for 390). Judged from the two samples before
    the onset, against 5 % of the deflection, per compartment (at its own onset)."""
    if not all(units.is_concrete(x) for x in (trace.t, v, step.delay, step.dur, deflection)):
        return
    t = np.asarray(trace.t)
    if t.ndim != 1:
        return
    cols = np.shape(v)[1:]
    start, dur = _per_column(step.delay, cols), _per_column(step.dur, cols)
    k = _last_sample_at_or_before(t, start)
    has_two = k >= 1
    k = np.maximum(k, 1)
    vv = np.asarray(v).reshape(t.size, -1)
    columns = np.arange(vv.shape[1])
    slope = np.where(has_two, (vv[k, columns] - vv[k - 1, columns]) / (t[k] - t[k - 1]), 0.0)  # mV/ms
    drift = (np.abs(slope) * np.minimum(dur, t[-1] - start)).reshape(cols)
    if np.any(drift > 0.05 * np.abs(np.asarray(deflection)) + 1e-9):
        j = int(np.argmax(np.abs(slope)))
        warnings.warn(
            f"{what}: the voltage was still changing at the step's onset ({float(np.abs(slope[j])):.3g} "
            f"mV/ms at {start[j]:g} ms), so the baseline there is not the resting voltage and the drift "
            "adds to the deflection; start the step later or the run at rest (v0 = jn.steady_state(model).v)",
            RuntimeWarning, stacklevel=outside_stacklevel())


#: The share of its settled value a step's response may still lack at the step's end
#: before :func:`input_resistance` and :func:`membrane_time_constant` warn.
UNSETTLED_FRACTION = 0.05


def _warn_unsettled(trace: Trace, step, v, what):
    """Warn where a known trace's response was still far from settled at the step's
    end: the deflection then underestimates the input resistance, and the 63 % point of
    an unfinished charging curve comes early (a passive membrane stepped for one time
    constant read 63 % of its resistance and half its time constant). Judged as an
    exponential approach would be: with deflections ``d(T/2)`` and ``d(T)`` at half and
    all of the step, ``q = d(T)/d(T/2) - 1`` is ``exp(-T/2τ)`` and the share still
    missing at the end ``q²``; a response that sags (``q <= 0``) is not judged, nor one
    whose step spans too few samples. Per compartment, over its own step."""
    if not all(units.is_concrete(x) for x in (trace.t, v, step.delay, step.dur)):
        return
    t = np.asarray(trace.t)
    if t.ndim != 1:
        return
    cols = np.shape(v)[1:]
    start = _per_column(step.delay, cols)
    end = np.minimum(start + _per_column(step.dur, cols), t[-1])
    k0, kh, k1 = (_last_sample_at_or_before(t, time) for time in (start, start + (end - start) / 2, end))
    judged = (k0 >= 0) & (k0 < kh) & (kh < k1)  # enough samples in the step to judge
    k0, kh, k1 = (np.where(judged, k, 0) for k in (k0, kh, k1))
    vv = np.asarray(v).reshape(t.size, -1)
    columns = np.arange(vv.shape[1])
    d_half, d_end = vv[kh, columns] - vv[k0, columns], vv[k1, columns] - vv[k0, columns]
    with np.errstate(divide="ignore", invalid="ignore"):
        # (t[kh] - t[k0]) / (t[k1] - t[k0]) is 1/2 only on a fine grid: q as for those times.
        share = np.where(judged, (t[kh] - t[k0]) / np.where(judged, t[k1] - t[k0], 1.0), 1.0)
        q = np.where(judged & (np.abs(d_half) > 1e-9) & (np.sign(d_half) == np.sign(d_end)),
                     d_end / d_half - 1.0, 0.0)
        missing = np.where(q > 0, q ** (1.0 / share), 0.0)
    bad = missing > UNSETTLED_FRACTION
    if np.any(bad):
        worst = float(np.max(missing))
        warnings.warn(
            f"{what}: the response had not settled by the step's end in {int(bad.sum())} compartment(s) (it "
            f"still rose by {100 * float(np.max(np.where(bad, q / (1 + q), 0))):.3g} % of its deflection over the step's "
            f"second half; as an exponential, ~{100 * worst:.3g} % of its settled value is missing), so the "
            "deflection is too small and its time course too short; give a longer step (at least 3 time "
            f"constants), or use the model: {what}(model)", RuntimeWarning, stacklevel=outside_stacklevel())


def membrane_time_constant(source, stimulus: StepCurrent | None = None, *, variable="v", v_guess=None):
    """Membrane time constant in ms.

    From a trace and the :class:`StepCurrent` that produced it: the time after the
    onset at which the response first reaches ``1 - 1/e`` (63.2%) of its deflection
    at the end of the step, linearly interpolated between samples (with the warnings
    of :func:`input_resistance` where the baseline drifts or the step makes the cell
    fire or has not settled by the step's end; for a batch of traces, one per member, as
    :func:`input_resistance`; where
    the trace is sampled fewer than :data:`MIN_SAMPLES_PER_TAU` times per time constant,
    a RuntimeWarning: the interpolated crossing comes late; where the step spans fewer
    than 2 samples after its baseline sample, a ValueError, or under ``jit``, where the
    times are not known, NaN in those compartments). From a model
    (independent compartments): ``C · R_in`` with the steady-state input resistance (``v_guess`` as there). For a passive membrane the two agree; for
    an active one ``C · R_in`` is the slope resistance's time constant, not the
    charging time a step shows (an HH soma: 0.854 ms against 0.675 ms from a trace, in
    jaxneuro as in NEURON). ``variable``: the trace's record read as the voltage, as
    for :func:`input_resistance`.
    """
    if isinstance(source, AbstractModel):
        if stimulus is not None:
            raise ValueError(
                "membrane_time_constant(model) takes no stimulus (it is C·R_in at rest); "
                "to measure from a step, simulate it: membrane_time_constant(trace, stimulus)"
            )
        if source.voltage_coupling() is not None:
            # C·R_in of one segment is not a time constant of coupled segments.
            raise ValueError(
                f"membrane_time_constant(model) expects independent compartments; {type(source).__name__}'s "
                "are coupled: measure it from a trace, membrane_time_constant(trace, stimulus)"
            )
        if not hasattr(source, "capacitance"):
            raise ValueError(f"membrane_time_constant: {type(source).__name__} has no capacitance")
        return source.capacitance * input_resistance(source, v_guess=v_guess)
    if v_guess is not None:
        raise ValueError("membrane_time_constant: v_guess applies to a model's steady state, not to a trace")
    if not isinstance(source, Trace):
        raise ValueError(f"membrane_time_constant expects a Trace or a model, got {type(source).__name__}")
    step = _step_stimulus(stimulus, amp_matters=False)  # a ratio of deflections
    if source.t.ndim > 1:
        return _each_member(lambda tr, st: membrane_time_constant(tr, st, variable=variable),
                            source, step, "membrane_time_constant", variable)
    _check_step_shape(source, step, "membrane_time_constant", variable)
    _step_in_range(source, step)
    v = getattr(source, variable)
    sampled = _check_step_sampled(source, step, v, "membrane_time_constant", 2, "the charging curve")
    tau, deflection = _time_to_63_percent(source.t, v, step.delay, step.dur)
    _warn_drifting_baseline(source, step, v, deflection, "membrane_time_constant")
    if not _warn_firing(source, step, v, "membrane_time_constant"):
        _warn_unsettled(source, step, v, "membrane_time_constant")
    tau = _nan_unless(sampled, tau)
    _warn_coarse(source, step, tau)
    return tau


@jax.jit
def _time_to_63_percent(t, v, delay, dur):
    """:func:`membrane_time_constant` of a trace's samples ``v`` at times ``t`` (ms)
    for a step from ``delay`` for ``dur`` (ms), and the deflection at the step's end:
    one compiled program (op by op, two dozen at each new trace size)."""
    baseline = _sample_at_or_before(t, v, delay)
    final = _sample_at_or_before(t, v, delay + dur)
    frac = (v - baseline) / (final - baseline)  # 0 at onset, 1 at the end
    target = 1.0 - np.exp(-1.0)
    during = within(t.reshape((-1,) + (1,) * (v.ndim - 1)), delay, delay + dur)
    reached = during & (frac >= target)
    # First sample at or past 63.2%, and the one before it, for interpolation.
    idx = jnp.argmax(reached, axis=0)
    prev = jnp.maximum(idx - 1, 0)
    take = lambda x, i: jnp.take_along_axis(x, jnp.expand_dims(i, 0), axis=0)[0]  # noqa: E731
    t_b, t_a = t[idx], t[prev]
    f_b, f_a = take(frac, idx), take(frac, prev)
    w = jnp.where(f_b != f_a, (target - f_a) / jnp.where(f_b != f_a, f_b - f_a, 1.0), 0.0)
    return t_a + w * (t_b - t_a) - delay, final - baseline


#: The fewest samples per time constant :func:`membrane_time_constant` reads a
#: trace's charging curve from without a warning: linear interpolation of
#: ``1 - exp(-t/tau)`` between samples ``h`` apart can be off by ``(h/tau)²/8``, 3 % at
#: 2 samples per time constant; a 1 ms membrane read 1.47 ms at 1 sample per 2 ms.
MIN_SAMPLES_PER_TAU = 2


def _warn_coarse(trace: Trace, step, tau):
    """Warn where a known time constant spans fewer than :data:`MIN_SAMPLES_PER_TAU`
    sampling intervals of the trace over the step: interpolated across so few samples
    the crossing of 63.2% is misplaced (too late), silently."""
    if not all(units.is_concrete(x) for x in (trace.t, tau, step.delay, step.dur)):
        return
    t = np.asarray(trace.t)
    start = float(np.min(np.asarray(step.delay)))
    stop = float(np.max(np.asarray(step.delay) + np.asarray(step.dur)))
    k = max(int(np.searchsorted(t, start + TIME_TOLERANCE, side="right")) - 1, 0)
    h = float(np.max(np.diff(t[k:np.searchsorted(t, stop + TIME_TOLERANCE, side="right")]), initial=0.0))
    tau = np.asarray(tau)
    coarse = np.isfinite(tau) & (tau < MIN_SAMPLES_PER_TAU * h)
    if np.any(coarse):
        shortest = float(np.min(tau[coarse]))
        warnings.warn(
            f"membrane_time_constant: the trace is sampled every {h:g} ms, too coarse for the estimated time "
            f"constant {shortest:.4g} ms (fewer than {MIN_SAMPLES_PER_TAU} samples per time constant, in "
            f"{int(np.sum(coarse))} compartment(s)): interpolating between samples this far apart overestimates "
            f"it; simulate with save_every <= {shortest / (2 * MIN_SAMPLES_PER_TAU):.3g} ms (a multiple of dt), "
            "or save every step (save_every=None)",
            RuntimeWarning, stacklevel=outside_stacklevel())


DEFAULT_SPIKE_CAPACITY = 100
"""Spike times :func:`spike_times` keeps per neuron from threshold crossings unless told."""


def spike_times(source, threshold=None, *, capacity: int | None = None, variable="v"):
    """Spike times in ms, the first ``capacity`` per neuron, padded with ``inf``.

    From a trace that holds spike times of its own (``trace.spikes``: a spiking point
    neuron's in-step spikes, or a ``simulate(..., summary=...)`` run's threshold
    crossings) and ``threshold=None``, those; ``capacity`` then defaults to the
    trace's buffer. Otherwise spikes are the upward crossings of ``threshold`` (mV,
    default 0) by the recorded ``variable`` (from a sample at or below it to one
    above it, NEURON's ``NetCon`` rule), their times linearly interpolated
    between samples, so they are differentiable w.r.t. model parameters; ``capacity``
    defaults to :data:`DEFAULT_SPIKE_CAPACITY`. A neuron with more spikes than
    ``capacity`` keeps its first ones, with a warning where the trace's values are
    known (not under ``jit``). Shape ``(capacity,)`` for one compartment,
    ``(n, capacity)`` for ``n``. For a Network, take one population's trace:
    ``spike_times(trace["a"])``.
    """
    if not isinstance(source, Trace):
        raise ValueError(f"spike_times expects a Trace, got {type(source).__name__}")
    if capacity is not None:
        capacity = units.positive_int(capacity, "spike_times: capacity")
    if source.parts is not None:
        raise ValueError(
            f"spike_times: a Network's trace holds one trace per population; use "
            f"spike_times(trace[name]) with a name among {tuple(source.parts)}"
        )
    if source.spikes is not None and variable == "v":
        if threshold is not None:
            raise ValueError(
                "spike_times: this trace holds the model's own spike times (trace.spikes), detected "
                "in the solver step; threshold applies to crossings of a recorded variable. Leave "
                "threshold=None, or simulate with summary=jn.SpikeSummary(threshold=...) to detect "
                "at another threshold"
            )
        have = source.spikes.shape[-1]
        if capacity is None or capacity >= have:  # fewer: _first warns of what it drops
            padded = "" if capacity is None or capacity == have else f"; capacity={capacity} pads them with inf after the {have}th"
            _warn_overflowed(source, "spike_times", f"these are their first {have}{padded}, their later spikes are "
                             "unknown, not absent")
        return _first(source.spikes, have if capacity is None else capacity)
    _refuse_batch(source, "spike_times")
    v = getattr(source, variable)
    # A trace at one time (trace.at(t), t a scalar) has no time axis: one sample.
    samples = np.shape(source.t)[0] if np.ndim(source.t) else 1
    if samples < 2:
        at_one_time = "" if np.ndim(source.t) else " (a trace at one time, from trace.at(t), has no time axis)"
        raise ValueError(
            f"spike_times: the trace has {samples} sample(s){at_one_time}; threshold crossings need at least 2"
        )
    threshold = units.to_base(0.0 if threshold is None else threshold, "threshold", units.mV)
    if units.is_concrete(threshold) and np.isnan(np.asarray(threshold)).any():
        raise ValueError("spike_times: threshold expects a voltage (mV), got NaN")
    if units.is_concrete(v):
        _warn_nan(source.t, v, "spike_times")
    capacity = DEFAULT_SPIKE_CAPACITY if capacity is None else capacity
    # One extra slot tells whether a neuron had more crossings than capacity.
    return _first(_all_crossings(source.t, v, threshold, capacity + 1), capacity)


def refuse_batch(trace: Trace, what: str, reads: str, advice: str) -> None:
    """ValueError for a batch of traces (from ``jax.vmap`` over ``simulate``: ``t`` of
    shape ``(batch..., T)``) given to ``what``, which ``reads`` one run's time axis
    (not the first here); ``advice`` says what to do (it may use ``{nested}``, the
    note on several batch axes)."""
    shape = np.shape(trace.t)
    if len(shape) <= 1:
        return
    batch = shape[:-1]
    size = f"size {batch[0]}" if len(batch) == 1 else f"shape {batch}"
    nested = "" if len(batch) == 1 else f" (one jax.vmap per batch axis, {len(batch)} here)"
    raise ValueError(
        f"{what}: this trace has a leading batch axis of {size} (trace.t has shape {shape}: runs from "
        f"jax.vmap over jn.simulate), and {reads}; {advice.format(nested=nested)}"
    )


def _refuse_batch(trace: Trace, what: str) -> None:
    """:func:`refuse_batch` for the threshold crossings of ``what``: found per member,
    under ``jax.vmap`` too."""
    how = ("map it over the batch too" if what == "spike_times"
           else "it has no spike events of its own: pass its spike times, found per member")
    refuse_batch(trace, what, "threshold crossings are read one run at a time",
                 f"{how}: jax.vmap(jn.spike_times)(trace), or jax.vmap(lambda tr: jn.spike_times(tr, threshold))"
                 "(trace){nested}, or call it inside the vmapped function, with the simulation")


def _warn_overflowed(trace: Trace, what: str, consequence: str) -> None:
    """Warn where a known trace's spike buffer overflowed (``trace.overflowed``): the
    spike times it holds are then a neuron's first ones only. ``simulate`` warns of it
    too, but not under ``jit``, so this is where a user of a jitted run hears of it."""
    if not units.is_concrete(trace.spike_count):  # (not known before the program runs)
        return
    report_overflow(
        overflowed_of(trace),
        lambda n: (f"{what}: {n} neuron(s) fired more spikes than the trace keeps ({trace.spikes.shape[-1]} each; "
                   f"trace.spike_count has the true counts): {consequence}. Simulate with a larger spike_capacity "
                   "(or SpikeSummary(capacity=...))"),
        stacklevel=outside_stacklevel(),
        at_run_time=False,
    )


def _warn_nan(t, v, what):
    """Warn where a known trace holds NaN (a run that blew up): no crossing is counted
    next to a NaN sample, so spikes and rates would stop short without a word."""
    bad = np.isnan(np.asarray(v).reshape(np.shape(v)[0], -1))
    if bad.any():
        rows = np.nonzero(bad.any(axis=1))[0]
        warnings.warn(
            f"{what}: the trace holds NaN from t = {float(np.asarray(t)[rows[0]]):g} ms in "
            f"{int(bad.any(axis=0).sum())} of {bad.shape[1]} compartment(s); no crossing next to a "
            "NaN sample is counted",
            RuntimeWarning, stacklevel=outside_stacklevel())


@functools.partial(jax.jit, static_argnames="capacity")
def _all_crossings(t, v, threshold, capacity):
    """Crossings of every column of ``v``, shape ``v.shape[1:] + (capacity,)``; one
    compiled program rather than many small operations when called eagerly."""
    flat = v.reshape(v.shape[0], -1)
    out = jax.vmap(lambda x: _crossings(t, x, threshold, capacity), in_axes=1)(flat)
    return out.reshape(v.shape[1:] + (capacity,))


def _first(spikes, capacity):
    """The first ``capacity`` spike times (inf-padded), warning when finite ones are
    dropped and the values are known."""
    if capacity < spikes.shape[-1] and units.is_concrete(spikes):
        dropped = np.sum(np.isfinite(np.asarray(spikes)[..., capacity:]), axis=-1)
        if np.any(dropped):
            warnings.warn(
                f"spike_times: {int(np.sum(dropped > 0))} neuron(s) have more than capacity={capacity} "
                "spikes; their first ones are kept. Pass a larger capacity to keep them all.",
                RuntimeWarning,
                stacklevel=outside_stacklevel(),
            )
    return _resized(spikes, capacity)


@functools.partial(jax.jit, static_argnames="capacity")
def _resized(spikes, capacity):
    """``spikes``' first ``capacity`` entries along the last axis, padded with inf:
    compiled, so that a call on known values (or under ``vmap`` outside ``jit``, where
    each operation runs as a program of its own) is one program per shape."""
    have = spikes.shape[-1]
    if capacity >= have:
        pad = [(0, 0)] * (spikes.ndim - 1) + [(0, capacity - have)]
        return jnp.pad(spikes, pad, constant_values=jnp.inf)
    return spikes[..., :capacity]


def _crossings(t, v, threshold, capacity):
    below, above = v[:-1], v[1:]
    crossed = crossed_upward(below, above, threshold)
    # The k-th crossing is where the running count first reaches k: a search in the
    # cumulative sum (1.4x faster on a CPU than jnp.nonzero(size=...), same indices).
    # A loop, not unrolled: the unrolled search is the larger program to compile, a
    # first call's wait, for a search that is a small share of the work.
    seen = jnp.cumsum(crossed, dtype=jnp.int32)
    idx = jnp.searchsorted(seen, jnp.arange(1, capacity + 1, dtype=jnp.int32), side="left", method="scan")
    valid = jnp.arange(capacity) < seen[-1]
    idx = jnp.where(valid, idx, 0)
    v0, v1 = below[idx], above[idx]
    dv = jnp.where(v1 != v0, v1 - v0, 1.0)
    times = t[idx] + (threshold - v0) / dv * (t[idx + 1] - t[idx])
    return jnp.where(valid, times, jnp.inf)


def as_spike_times(spikes, what: str, arg: str = "spikes"):
    """Padded spike times (ms) from ``spikes`` (the argument ``arg`` of ``what``):
    such an array (or saiunit times), or a Trace with spike events (``trace.spikes``).
    Known values must be ascending along the last axis with ``inf`` after the last
    spike, as :func:`spike_times` gives them: a voltage trace passed by mistake is
    refused, not read as spike times."""
    if isinstance(spikes, Trace):
        if spikes.spikes is None and spikes.parts is not None:
            raise ValueError(
                f"{what}: a Network's trace holds one trace per population; pass one, trace[name], "
                f"with a name among {tuple(spikes.parts)}"
            )
        if spikes.spikes is None:
            _refuse_batch(spikes, what)
            raise ValueError(
                f"{what}: this trace has no spike events of its own; pass jn.spike_times(trace, threshold) "
                "(upward crossings of a recorded voltage)"
            )
        # A JAX array also for a host copy (jax.device_get): NumPy would warn at the
        # inf - inf between padding entries (isi).
        return jnp.asarray(spikes.spikes)
    if spikes is None:  # trace.spikes of a run without spike events
        raise ValueError(
            f"{what}: {arg} is None, as trace.spikes is for a run without spike events (a compartment, cable "
            "or cell); pass jn.spike_times(trace, threshold) (upward crossings of a recorded voltage), or run "
            "with summary=jn.SpikeSummary(...) or a jn.SpikeDetector model"
        )
    spikes = jnp.asarray(units.to_base(spikes, f"{what}: {arg}", units.ms))
    if units.is_concrete(spikes) and spikes.ndim:
        s = np.asarray(spikes)
        with np.errstate(invalid="ignore"):  # inf - inf between padding entries
            descending = np.diff(s, axis=-1) < 0
        if np.any(np.isnan(s)) or np.any(descending):
            fault = (f"NaN at index {tuple(int(i) for i in np.argwhere(np.isnan(s))[0])}" if np.any(np.isnan(s))
                     else f"a time below the one before it at index "
                          f"{tuple(int(i) for i in np.argwhere(descending)[0] + ((0,) * (s.ndim - 1) + (1,)))}")
            raise ValueError(
                f"{what}: {arg} expects spike times in ms, ascending along the last axis and padded with "
                f"inf (as jn.spike_times or trace.spikes give them), shape (capacity,) or (n, capacity); got "
                f"an array of shape {s.shape} with {fault} (a voltage trace? use jn.spike_times(trace) first)"
            )
    return spikes


def isi(spikes):
    """Inter-spike intervals (ms) from padded spike times (or a Trace with spike
    events): ``(..., capacity - 1)``, ``inf`` where either spike is missing."""
    if isinstance(spikes, Trace) and spikes.spikes is not None:
        _warn_overflowed(spikes, "isi", "their intervals after the last kept spike are unknown (inf)")
    spikes = as_spike_times(spikes, "isi")
    if jnp.ndim(spikes) == 0:
        raise ValueError("isi: spikes expects padded spike times of shape (capacity,) or (n, capacity), got a scalar")
    return _intervals(spikes)


@jax.jit
def _intervals(spikes):
    """:func:`isi`'s arithmetic as one compiled program (see :func:`_resized`)."""
    d = spikes[..., 1:] - spikes[..., :-1]
    return jnp.where(jnp.isfinite(d), d, jnp.inf)


def spike_count(spikes):
    """Number of (finite) spike times per neuron. For a Trace with spike events:
    ``trace.spike_count``, the true count even where the buffer overflowed (a float
    holding whole numbers, differentiable with a neuron's ``surrogate``)."""
    if isinstance(spikes, Trace) and spikes.spikes is not None:
        return spikes.spike_count
    return _finite_count(as_spike_times(spikes, "spike_count"))


@jax.jit
def _finite_count(spikes):
    return jnp.sum(jnp.isfinite(spikes), axis=-1)


def firing_rate(spikes, start, stop):
    """Mean firing rate in Hz of the spikes with ``start <= t < stop`` (ms or saiunit
    times; scalars, or one per neuron); ``spikes``: padded spike times or a Trace with
    spike events.

    A Trace whose spike buffer overflowed (a neuron fired more spikes than it keeps:
    ``trace.overflowed``) knows that neuron's rate over its whole ``span`` (from
    ``trace.spike_count``, which counts every spike) and in windows that end by its
    last kept spike; elsewhere the rate is NaN, not a count cut short, with a
    RuntimeWarning where the values are known. A window reaching outside a Trace's
    ``span`` is refused (the rate would be diluted by time not simulated). With
    traced times (arguments of a jitted or vmapped function), where ``stop <= start``
    cannot be refused, the rate is NaN.

    Gradients: a count is piecewise constant, so its derivative is zero, except over a
    Trace's whole ``span`` (``firing_rate(trace, *trace.span)``), where the rate takes
    the derivative of ``trace.spike_count``: a neuron's ``surrogate=`` gradient (the
    value is unchanged). For a rate differentiable through spike times in any window,
    use ``jn.losses.firing_rate(..., method="isi")``."""
    # Fixed times (numbers, also under jit, where converting them makes tracers):
    # checked here, and the whole span told apart.
    fixed = [None if isinstance(x, jax.core.Tracer) else units.to_static(x, name, units.ms)
             for x, name in ((start, "start"), (stop, "stop"))]
    fixed = None if fixed[0] is None or fixed[1] is None else fixed
    start = units.to_base(start, "start", units.ms)
    stop = units.to_base(stop, "stop", units.ms)
    if fixed is not None and not (all(np.all(np.isfinite(x)) for x in fixed) and _later(fixed[1], fixed[0])):
        raise ValueError(
            f"firing_rate: start and stop expect finite times (ms) with stop > start, got "
            f"start={fixed[0]}, stop={fixed[1]}"
        )
    trace = spikes if isinstance(spikes, Trace) else None
    if trace is not None and fixed is not None and (
            trace.span is not None or (units.is_concrete(trace.t) and np.ndim(trace.t) == 1)):
        with jax.ensure_compile_time_eval():  # (under jit too: fixed numbers against a static span)
            check_inside(trace, *fixed, "firing_rate")
    spikes = as_spike_times(spikes, "firing_rate")
    per_neuron = spikes.shape[:-1]
    for name, x in (("start", start), ("stop", stop)):
        try:
            np.broadcast_shapes(np.shape(x), per_neuron)
        except ValueError:
            raise ValueError(
                f"firing_rate: {name} expects a time (ms) or one per neuron (shape {per_neuron}), "
                f"got shape {np.shape(x)}"
            ) from None
    whole = trace is not None and fixed is not None and is_whole_span(trace, *fixed)
    count = None if trace is None else trace.spike_count
    rate, unknown = _rate_in_window(spikes, start, stop, count, whole=whole)
    if unknown is not None and units.is_concrete(unknown) and np.any(np.asarray(unknown)):
        warnings.warn(
            f"firing_rate: {int(np.sum(np.asarray(unknown)))} neuron(s) fired more spikes than their "
            f"buffer keeps ({spikes.shape[-1]}), and the window goes past the last one kept: their rate "
            "is unknown (NaN). Simulate with a larger spike_capacity (or SpikeSummary(capacity=...))",
            RuntimeWarning, stacklevel=outside_stacklevel())
    return rate


@functools.partial(jax.jit, static_argnames="whole")
def _rate_in_window(spikes, start, stop, count, *, whole):
    """:func:`firing_rate`'s arithmetic as one compiled program (see :func:`_resized`):
    the rate (Hz) of ``spikes`` in ``[start, stop)`` and, given a trace's spike
    ``count`` (per neuron), where that rate is unknown (None without ``count``)."""
    inside = (spikes >= start[..., None]) & (spikes < stop[..., None])
    rate = jnp.sum(inside, axis=-1) / ((stop - start) / 1000.0)
    unknown = None
    if count is not None:
        overflowed = overflowed_counts(count, spikes.shape[-1])
    if whole:
        # The run's own count holds the spikes a full buffer could not keep.
        rate = jnp.where(overflowed, count / ((stop - start) / 1000.0), rate)
        rate = with_count_derivative(rate, count, stop - start)
    rate = jnp.where(stop > start, rate, jnp.nan)
    if count is not None and not whole:
        # Spikes past a full buffer come after its last kept one: a window ending by
        # then is complete, a later one is missing them.
        last = jnp.max(jnp.where(jnp.isfinite(spikes), spikes, -jnp.inf), axis=-1)
        unknown = overflowed & (stop > last)
        rate = jnp.where(unknown, jnp.nan, rate)
    return rate, unknown


def _later(stop, start) -> bool:
    """``stop > start`` everywhere, or True where their shapes do not broadcast (named
    by the shape check that follows)."""
    try:
        return bool(np.all(stop > start))
    except ValueError:
        return True


def with_count_derivative(rate, count, duration):
    """``rate`` (Hz) with the derivative of ``count`` (spikes over ``duration`` ms):
    straight through, the value unchanged. A count from spike times has derivative
    zero; a neuron's own ``spike_count`` carries its ``surrogate=`` gradient."""
    count = jnp.asarray(count)
    return rate + (count - jax.lax.stop_gradient(count)) / (jnp.asarray(duration) / 1000.0)


def is_whole_span(trace, start, stop) -> bool:
    """Whether ``[start, stop)`` is ``trace``'s whole run (fixed times; a trace whose
    per-neuron spike count counts that run's spikes: not a continued run's)."""
    if trace.span is None or trace.spike_count is None or trace.parts is not None or not trace.counts_span:
        return False
    if not (units.is_concrete(start) and units.is_concrete(stop)):
        return False
    lo, hi = trace.span
    tolerance = 1e-9 * max(1.0, abs(lo), abs(hi))
    return bool(np.all(np.abs(np.asarray(start) - lo) <= tolerance) and np.all(np.abs(np.asarray(stop) - hi) <= tolerance))


def _fixed_time(value, name) -> float:
    """``value`` (ms or a saiunit time) as a Python float: one fixed time, not traced."""
    if isinstance(value, jax.core.Tracer):
        raise ValueError(
            f"fi_curve: {name} expects a fixed time (ms): it sets the run's length, so it cannot be a traced "
            "value (an argument of a jitted, vmapped or differentiated function); pass a number"
        )
    arr = units.to_static(value, f"fi_curve: {name}", units.ms)
    if arr.ndim:
        raise ValueError(f"fi_curve: {name} expects one time (ms) for every neuron, got shape {arr.shape}")
    return float(arr)


def fi_curve(model: AbstractModel, amps, *, delay=0.0, dur=500.0, window=None, dt=0.025,
             threshold=0.0, v0=None, capacity: int = 500, target=None):
    """Firing rate (Hz) against step amplitude: the f-I curve.

    Each amplitude in ``amps`` (nA) is a :class:`StepCurrent` from ``delay`` for
    ``dur`` ms into ``target`` (as the stimulus's: default every compartment of a
    population; a cable or cell of several segments needs a location such as
    ``("soma", 0.5)``; in a Network a population name). The rate counts spikes in ``window = (start, stop)`` (ms; default the
    whole step; skip the onset to get the steady rate). The amplitudes run in
    parallel with ``jax.vmap``, each a run of :func:`~jaxneuro.simulate` with step
    ``dt`` (ms) from ``v0`` (mV; default the model's ``default_v0``). Spikes are the
    model's own events for spiking
    neurons (a neuron's ``spike_capacity`` is raised to ``capacity`` for the run),
    else upward crossings of ``threshold`` (mV). ``capacity`` is the most spikes a
    compartment may fire before ``stop``: more is an error at run time, not a rate
    cut short. Returns an array shaped ``amps.shape + model.shape`` (a Network: its
    populations' compartments in order).

    Gradients: rates are counts, whose derivative is zero, except for a spiking point
    neuron with a ``surrogate=`` counted over the whole run (``delay`` 0, no
    ``window``), which gives them its surrogate gradient (see :func:`firing_rate`).
    """
    from .solve.simulate import simulate

    capacity = units.positive_int(capacity, "fi_curve: capacity")
    amps = jnp.asarray(units.to_base(amps, "amps", units.nA), dtype=jnp.result_type(float))
    if units.is_concrete(amps) and not np.all(np.isfinite(np.asarray(amps))):
        raise ValueError(f"fi_curve: amps expects finite currents (nA), got {np.asarray(amps)}")
    # The run's length and the counting window are fixed numbers (they shape the
    # simulation), also when fi_curve is called under jit.
    delay, dur = _fixed_time(delay, "delay"), _fixed_time(dur, "dur")
    if not np.isfinite(delay) or delay < 0:
        raise ValueError(f"fi_curve: delay expects a finite time >= 0 ms (the run starts at 0), got {delay}")
    if not np.isfinite(dur) or dur <= 0:
        raise ValueError(f"fi_curve: dur expects a finite duration > 0 ms, got {dur}")
    if window is None:
        start, stop = delay, delay + dur
    else:
        if not (isinstance(window, (tuple, list)) and len(window) == 2):
            raise ValueError(f"fi_curve: window expects (start, stop) in ms, got {window!r}")
        start, stop = _fixed_time(window[0], "window[0]"), _fixed_time(window[1], "window[1]")
        if not (np.isfinite(start) and np.isfinite(stop) and stop > start):
            raise ValueError(f"fi_curve: window expects finite (start, stop) with stop > start (ms), got {window}")
    if start < delay or stop > delay + dur:
        raise ValueError(f"fi_curve: window {window} must lie within the step [{delay:g}, {delay + dur:g}] ms")
    spike_capacity = getattr(model, "spike_capacity", None)
    if isinstance(spike_capacity, int) and spike_capacity < capacity:
        # A spiking point neuron keeps spike_capacity spike times: room for capacity.
        model = dataclasses.replace(model, spike_capacity=capacity)
    populations = getattr(model, "names", None) if hasattr(model, "make_trace") else None
    try:  # fi_curve makes the stimulus: name its own argument, not a stimuli[0] the user never gave
        StepCurrent(0.0, delay, dur, target=target).check_placement(model)
    except ValueError as error:
        raise ValueError(f"fi_curve: target={target!r}: {error}".replace(
            "StepCurrent: target=None with", "a step current with")) from None

    own = bool(jax.eval_shape(model.init_state, model.default_v0).events)
    # No voltage trace where none is needed: spiking point neurons keep their own spike
    # times, and a model without them gets its threshold crossings found inside the loop
    # (the same interpolated times as from a trace saved at every step, in O(capacity)
    # memory, not O(steps): 400 HH neurons x 10 amplitudes for 500 ms took 2.3 GB).
    # A Network's populations that do not spike on their own need their voltages.
    if populations is not None:
        kw = {}
    elif own:
        kw = {"record": ()}
    else:
        kw = {"record": (), "summary": SpikeSummary(threshold=threshold, capacity=capacity + 1)}
    # The whole run's window: the neuron's count, and its surrogate's derivative.
    whole_count = own and populations is None and start == 0.0

    def rate(amp):
        trace = simulate(model, stop, dt=dt, stimuli=[StepCurrent(amp, delay, dur, target=target)], v0=v0, **kw)
        return _fi_rates(trace, populations, threshold, capacity, start, stop, whole_count, model.shape)
    flat = amps.reshape(-1)
    return jax.vmap(rate)(flat).reshape(amps.shape + model.shape)


@eqx.filter_jit
def _fi_rates(trace, populations, threshold, capacity, start, stop, whole_count, shape):
    """:func:`fi_curve`'s rates (Hz, ``shape``) from one run's ``trace``, as one
    compiled program: under ``vmap`` outside ``jit`` each operation would otherwise
    run (and first compile) as a program of its own."""
    parts = [trace] if populations is None else [trace[name] for name in populations]
    out, overflowed = [], jnp.array(False)
    for part in parts:
        # Spike times with one slot more than capacity: finite where a neuron had more.
        own = part.spikes is not None
        sp = spike_times(part, None if own else threshold, capacity=capacity + 1)
        out.append(sp.reshape(-1, capacity + 1))
        if own:
            overflowed = overflowed | jnp.any(part.overflowed)
    spikes = jnp.concatenate(out).reshape(shape + (capacity + 1,))
    too_many = overflowed | jnp.any(jnp.isfinite(spikes[..., capacity]))
    # The check carries a scalar, not the rates: a population split over devices
    # would otherwise be gathered onto one for it (XLA warns of a rematerialization).
    checked = eqx.error_if(
        jnp.zeros((), spikes.dtype), too_many,
        f"fi_curve: a neuron fired more spikes than capacity={capacity} (or its population's "
        "spike_capacity) holds, so its rate would be too low; pass a larger capacity",
    )
    rates = firing_rate(spikes[..., :capacity], start, stop) + checked
    if whole_count:
        rates = with_count_derivative(rates, trace.spike_count, stop)
    return rates
