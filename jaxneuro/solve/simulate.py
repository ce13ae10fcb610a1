"""``simulate``: one call from a model and stimuli to a :class:`Trace`."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import warnings
from collections.abc import Sequence

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import saiunit as u

from .. import backends, units
from .._stack import outside_stacklevel
from ..model import AbstractModel, CurrentShapeError, record_units
from ..stimuli import AbstractStimulus
from ..stimuli.base import merge_alike
from ..stimuli.noise import warn_shared_seeds
from ..network.sources import warn_past_their_end
from . import fixed_step, record_memory
from .fixed_step import steps_per_save
from .staggered import OnGrid, StaggeredEuler
from .summary import SpikeDetector, SpikeSummary
from .system import System, stimulus_observables, vector_field
from .trace import NoFinalState, Trace, overflowed_of, report_overflow, spiking_units, time_slack
from ..state import State


def _time(value, name) -> float:
    """A static time in ms (plain float): shapes of the output depend on it."""
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        arr = value  # stay on the host: under jit, jnp.asarray would give a tracer
    elif isinstance(value, u.Quantity):
        arr = units.to_static(value, name, units.ms)  # float64: not JAX's default precision
    else:
        arr = units.to_base(value, name, units.ms)
    if not units.is_concrete(arr):
        # The step and save counts are array shapes, so they are fixed when compiling.
        raise ValueError(
            f"{name} must be a concrete time in ms (it fixes the number of steps), got a traced "
            f"value {value!r}. Under jax.jit, call jn.simulate outside it, or make {name} a static "
            f"argument of it (static_argnums/static_argnames); under jax.vmap (or grad), {name} cannot be "
            f"mapped over: simulate each value in a Python loop, and vmap over what may be traced "
            f"(model parameters, stimuli, v0) instead. Eager runs in parts with the same "
            f"duration and dt already share one compiled loop.")
    if np.ndim(arr) != 0:
        raise ValueError(f"{name} expects a concrete scalar time in ms, got {value!r}")
    out = float(arr)
    if not math.isfinite(out):
        raise ValueError(f"{name} must be a finite time in ms, got {out}")
    return out


def simulate(
    model: AbstractModel,
    t1,
    *,
    dt=0.025,
    stimuli: Sequence[AbstractStimulus] | AbstractStimulus = (),
    record: Sequence[str] | str | dict = ("v",),
    save_every=None,
    solver: diffrax.AbstractSolver | None = None,
    v0=None,
    t0=None,
    init: State | Trace | None = None,
    stepsize_controller: diffrax.AbstractStepSizeController | None = None,
    max_steps: int | None = None,
    adjoint: diffrax.AbstractAdjoint | None = None,
    backend: str = "auto",
    summary: SpikeSummary | None = None,
    grad_checkpoints: str = "saves",
) -> Trace:
    """Simulate ``model`` from ``t0`` to ``t1`` (ms) and return a :class:`Trace`.

    ``record`` may also be a dict ``{name: places}`` keeping ``name`` at some
    compartments only (``None``: all): locations ``(section, x)`` on a cable or cell (a
    bare ``x`` on a cable) or indices (a population's neurons, a cell's segments), e.g.
    ``record={"v": [("soma", 0.5), ("dend", 0.9)], "ina_hh": None}``; its columns are
    then those places, in that order, and memory only theirs (one XLA loop). A place
    is a segment: ``(sec, 1.0)`` keeps the end segment, not NEURON's ``sec(1).v`` at its
    zero-area node (up to ~1 mV apart where sections join or a current is injected;
    ``cell.voltage_at(trace.v, sec, 1.0, i_inj)`` gives NEURON's from the neighbours).

    ``dt``: step in ms (the initial step for adaptive controllers). ``stimuli``:
    injected currents. ``record``: names to store (``model.observables()`` lists them;
    with a voltage clamp also ``"i_clamp"``, its current alone in nA;
    default ``("v",)``), every ``save_every`` ms (default every ``dt``): at ``t0 +
    k·save_every`` up to ``t1``, and at ``t1`` itself where ``t1 - t0`` is not a whole
    multiple of ``save_every`` (the last interval is then shorter: the run ends at
    ``t1``, its last step shortened to reach it where ``dt`` does not divide the run);
    only these are kept in memory. ``v0``: initial voltage in mV
    (default ``model.default_v0``, -65 mV for compartments, as NEURON's
    ``finitialize``), a number or one per compartment; for a Network also a dict of
    population name to voltage (others start at their own default); gates start at
    their steady state at ``v0``. ``init``: the whole
    state to start from instead: an earlier run's :class:`Trace`, which continues that
    run (its ``final_state`` from its ``t1``, which is then this run's ``t0``; a long run
    in parts, or one continued under other stimuli; spike buffers carry on filling), or a
    :class:`~jaxneuro.State` shaped as the model's (e.g. ``trace.final_state``, a steady
    state to start experiments from), which starts at ``t0``. ``t0``: the start in ms;
    default the end of ``init`` where that is a trace, else 0. Every trace holds its
    ``final_state``, the state at ``t1``. Runs of equal duration, step and saves share
    one compiled loop (``t0`` and ``t1`` are not compiled in), so a long run in parts
    compiles once.

    ``solver``: default :class:`StaggeredEuler` (NEURON's scheme) with a constant step;
    any diffrax solver may be given instead, e.g. ``diffrax.Tsit5()``, optionally with
    ``stepsize_controller=diffrax.PIDController(rtol=..., atol=...)`` for adaptive
    steps (stimulus on/off times are then passed to the controller as jumps, and a
    recorded waveform's samples as times to step to). ``max_steps``: the most steps an
    adaptive run may take (default ``max(16·(t1 - t0)/dt, 4096)``; reaching it is an
    error); a constant step takes ``ceil((t1 - t0)/dt)`` steps, and a ``max_steps``
    below that is refused.
    With a constant step size (the default) the time loop is a checkpointed
    ``lax.scan`` over the solver's steps, and ``save_every`` must be a whole multiple
    of ``dt``; gradients then keep the saved states and recompute the steps between
    saves, so memory grows with the number of saves, not of steps (save less often
    to differentiate long runs); forward and reverse mode both work there (diffrax's
    Runge–Kutta solvers run their stages as a bounded loop in it, ``scan_kind="bounded"``,
    unless given another ``scan_kind``). ``adjoint``: a diffrax adjoint; given one, the
    solve goes through ``diffrax.diffeqsolve`` instead (as it always does for adaptive
    step sizes, where the default is recursive checkpointing, which reverse mode
    needs; for forward mode, ``jax.jvp``/``jax.jacfwd``, pass
    ``adjoint=diffrax.ForwardMode()``; ``diffrax.DirectAdjoint()`` for both;
    ``BacksolveAdjoint`` and ``ImplicitAdjoint`` are refused, as diffrax supports
    neither with samples saved along the run), at a constant step on the same grid
    of steps, except a last step shorter than diffrax's rounding onto ``t1`` (a step
    ending within 100 ulp of it), which joins the step before (in float32 at
    ``t1`` = 2000 ms, a last step under 0.013 ms); in float32 that is refused where the
    rounding spans more than half a step: from ``t1`` = 2048 ms on at ``dt`` = 0.025 ms.

    ``grad_checkpoints``: what reverse-mode gradients through the constant-step loop keep.
    ``"saves"`` (default) keeps the state at each save and recomputes the steps in
    between (about one extra forward pass; memory grows with the number of saves).
    ``"steps"`` keeps every step's state: no recomputation (gradients 1-8 % faster on two cores, 3 % slower on one
    for a 1000-compartment cell saved every 10 steps), but memory of ``steps × state size``
    (e.g. 128 MB for 4000 steps of 1000 HH compartments in float64), times the batch
    size under ``vmap``; a spiking model's state includes its spike-time buffers
    (``spike_capacity`` per neuron), so spiking networks are better served by
    ``"saves"`` (100 HH neurons, capacity 200, 40 000 steps: 7.8 GiB against 0.7, one
    measurement).

    ``backend``: ``"auto"`` (default), ``"xla"``, ``"pallas"`` or ``"sharded"``, for
    the fixed-step loop. ``"pallas"`` fuses the whole time loop of a population of
    independent compartments into one GPU kernel (interpret mode on a CPU; see
    :mod:`jaxneuro.backends.pallas`); ``"sharded"`` splits such a population over the
    local devices, each running the XLA loop on its slice (on a CPU, each core is a
    device: :mod:`jaxneuro.backends.sharded`); ``"auto"`` uses the kernel on a GPU and
    the split on a CPU with several cores when the model qualifies, else one XLA loop
    (also for a model put on one device with ``jax.device_put``: it runs there).
    With adaptive steps or an ``adjoint``, diffrax runs one XLA loop: ``"auto"`` and
    ``"xla"`` apply, ``"pallas"`` and ``"sharded"`` are refused.

    ``summary``: a :class:`~jaxneuro.SpikeSummary`; the trace then also holds each
    compartment's threshold-crossing times and counts (``trace.spikes``,
    ``trace.spike_count``), so that large populations can run with ``record=()``
    (no trace at all).
    """
    import jaxneuro

    units.refuse_class(model, AbstractModel, "simulate expects a model instance", jaxneuro, "jn")
    if not isinstance(model, AbstractModel):
        raise ValueError(f"simulate: model expects a jaxneuro model, got {type(model).__name__}")
    units.refuse_quantities(model, "simulate: model")
    units.check_edited(model, "simulate: model")
    model = units.numbers_as_arrays(model)  # a number set by eqx.tree_at: not compiled in
    init, t0 = _continued_from(init, t0)
    counts_span = init is None  # a continued run's spike counts carry on from the earlier run
    t0 = _time(t0, "t0")
    t1 = _time(t1, "t1")
    dt = _time(dt, "dt")
    if dt <= 0:
        raise ValueError(f"dt must be > 0 ms, got {dt}")
    if t1 <= t0:
        raise ValueError(f"t1 must be greater than t0 (ms; t1 is when the run ends, not its duration), got t0={t0}, "
                         f"t1={t1}")
    _check_time_resolution(t0, t1, dt)
    save_every = dt if save_every is None else _time(save_every, "save_every")
    if save_every <= 0:
        raise ValueError(f"save_every must be > 0 ms, got {save_every}")
    if grad_checkpoints not in ("saves", "steps"):
        raise ValueError(f"grad_checkpoints expects 'saves' or 'steps', got {grad_checkpoints!r}")

    # What stays fixed during the run (a cell's geometry), computed once, outside the loop.
    shown = type(model).__name__  # in messages: the user's model, not the run's form of it
    model = model.precomputed()
    if isinstance(stimuli, AbstractStimulus):
        stimuli = (stimuli,)
    try:
        stimuli = tuple(stimuli)
    except TypeError:
        raise ValueError(
            f"stimuli expects a stimulus or a list of them (e.g. [jn.StepCurrent(...)]), got {type(stimuli).__name__}"
        ) from None
    for i, s in enumerate(stimuli):
        units.refuse_class(s, AbstractStimulus, f"stimuli[{i}] expects a stimulus instance", jaxneuro, "jn")
        if not isinstance(s, AbstractStimulus):
            raise ValueError(
                f"stimuli[{i}] expects a jaxneuro stimulus (e.g. jn.StepCurrent), got {type(s).__name__}"
            )
        units.refuse_quantities(s, f"simulate: stimuli[{i}]")
        units.check_edited(s, f"simulate: stimuli[{i}]")
    stimuli = tuple(units.numbers_as_arrays(s) for s in stimuli)

    where = {}
    if isinstance(record, dict):
        where = {name: places for name, places in record.items() if places is not None}
    if isinstance(record, str):
        record = (record,)
    try:
        names = tuple(record)
    except TypeError:
        names = (None,)
    if not all(isinstance(r, str) for r in names):
        raise ValueError(
            "record expects variable names (a name, a list of names, or a dict of name -> places, "
            f"e.g. record=('v',) or record={{'v': [('dend', 0.5)]}}), got {record!r}"
        )
    record = names
    def own_spikes():  # spiking point neurons keep spike times of their own
        return bool(jax.eval_shape(model.init_state, model.default_v0).events)

    if not record and summary is None and not own_spikes():
        raise ValueError("record must name at least one variable, e.g. record=('v',), or give summary=")
    if summary is not None:
        if not isinstance(summary, SpikeSummary):
            raise ValueError(f"summary expects a jn.SpikeSummary, got {type(summary).__name__}")
        if own_spikes():
            raise ValueError(f"summary: {type(model).__name__} records its own spikes already; leave summary=None")
        model = SpikeDetector(model, threshold=summary.threshold, capacity=summary.capacity, timing=summary.timing)
    record_memory.check_spike_buffers(model)  # before the state that holds them is made
    known = tuple(model.observables()) + stimulus_observables(model, stimuli)
    unknown = [r for r in record if r not in known]
    if unknown:
        hint = ("; i_clamp is the current of a jn.VoltageClamp or jn.DataVoltageClamp among the stimuli"
                if "i_clamp" in unknown else "")
        raise ValueError(f"record: unknown name(s) {unknown}; this model records {known}{hint}")

    # A Network's synapses pass over earlier spikes (state_at_start) in a fresh run.
    with_start = bool(getattr(model, "synapses", ()))
    float_type = jnp.result_type(float)
    if init is not None:
        if v0 is not None:
            raise ValueError("simulate: give v0 or init (a whole state), not both")
        y0 = _initial_state(model, init, shown, summary)
        _check_state_time(model, y0, t0)
        if hasattr(model, "state_continued"):  # a Network's spike sources are the model's
            y0 = model.state_continued(t0, y0)
        start = y0 if _staging() else fixed_step.Start(
            given=y0, v0=_on_host(np.zeros(tuple(model.shape), float_type)),
            t0=_on_host(np.asarray(t0, float_type)), fresh=_on_host(np.asarray(False)), with_start=with_start)
    elif _staging():
        # Inside a user's jit the run is one program anyway, where the zeros a
        # fixed_step.Start holds would be constants (of a whole state's size).
        y0 = start = _init_state(model, _checked_v0(model, v0), t0 if with_start else None)
    else:
        # Made inside the run's compiled loop (fixed steps; see fixed_step.Start): here
        # only its shapes, for the checks below.
        # (Its placeholder state, zeros, is made where the loop takes it.)
        start = fixed_step.Start(given=None, v0=_checked_v0(model, v0), t0=_on_host(np.asarray(t0, float_type)),
                                 fresh=_on_host(np.asarray(True)), with_start=with_start)
        y0 = jax.eval_shape(start.made, model)
    # Each stimulus as it runs: the same, or one that checks a traced value at run time.
    adaptive = stepsize_controller is not None and not isinstance(stepsize_controller, diffrax.ConstantStepSize)
    checked = []
    for i, s in enumerate(stimuli):
        try:
            checked.append(s.check_run(t0=t0, t1=t1, dt=dt, adaptive=adaptive, continued=init is not None))
        except ValueError as e:
            raise ValueError(f"stimuli[{i}]: {e}") from None
    stimuli = tuple(checked)
    # A current that does not fit its target, or a target the model does not have, is
    # found when the loop is traced; the stimulus at fault is then named (see
    # _stimulus_named: probing each one up front cost ~8 ms per stimulus on every call).
    stimulus_named = functools.partial(_stimulus_named, stimuli, t0, model, y0.v)
    selected = tuple((name, recorded_indices(model, name, places)) for name, places in where.items())
    # Many step currents (sines, ramps) at one place each run as one stimulus at all
    # their places (after the checks above, which name each as the user gave it).
    run_stimuli = stimuli if adaptive else merge_alike(stimuli, model)
    system = System(model=model, stimuli=run_stimuli, selected=selected)

    def initial_state():  # the start's values (a fresh run's made here, only where needed)
        if init is not None or not isinstance(start, fixed_step.Start):
            return y0
        return _init_state(model, start.v0, start.t0 if with_start else None)

    def diagnose():  # why a run failed, where the start tells (the solver as finally chosen)
        return "" if isinstance(solver, StaggeredEuler) else _nonfinite_start(system, t0, initial_state(), solver)
    if selected and backend == "auto":
        backend = "xla"  # the split backends number compartments per slice

    n_save = int(math.floor((t1 - t0) / save_every + 1e-9)) + 1
    float_dtype = np.dtype(jnp.result_type(float))

    def save_times():
        # Clipped: rounding may put the last save a hair past t1. Computed on the host,
        # in JAX's float dtype, so that inside a jit the times are a constant (not a
        # kernel to compile); after the trace's size is checked (10¹⁰ saves were a
        # MemoryError here). jax.device_put, as jnp.asarray compiles a program per shape.
        return jax.device_put(np.minimum(float_dtype.type(t0) + float_dtype.type(save_every)
                                      * np.arange(n_save, dtype=float_dtype), float_dtype.type(t1)))

    # Where save_every does not divide the run, t1 is saved too (after a shorter
    # interval): the run reaches it, and a trace ending short of it cut its end off.
    ends_off_grid = (t1 - t0) - (n_save - 1) * save_every > max(1e-6 * save_every,
                                                                 time_slack(t1, float_dtype))
    n_steps = fixed_step.count_steps(t0, t1, dt)

    _check_solver(solver, stepsize_controller)
    if solver is None:
        solver = model.default_solver()
    elif y0.events and not isinstance(solver, StaggeredEuler):
        if summary is not None:
            raise ValueError(
                f"solver: summary= detects spikes inside each step of the default solver "
                f"(jn.StaggeredEuler); it cannot with {type(solver).__name__}: record 'v' and "
                "use jn.spike_times(trace) instead"
            )
        raise ValueError(
            f"solver: {type(model).__name__} has events (spikes and resets, or voltage jumps of delta synapses "
            f"and Poisson inputs), which only the default solver (jn.StaggeredEuler) handles at its steps; "
            f"got {type(solver).__name__}"
        )
    warn_shared_seeds(stimuli)
    warn_past_their_end(model, t1)
    if stepsize_controller is None:
        stepsize_controller = diffrax.ConstantStepSize()
    else:
        stepsize_controller = _stepping_to_stimuli(stepsize_controller, stimuli)
    adaptive = not isinstance(stepsize_controller, diffrax.ConstantStepSize)
    if not adaptive:
        _check_implicit_tolerances(solver)
    if max_steps is None:
        max_steps = max(16 * n_steps, 4096) if adaptive else n_steps + 1
    elif isinstance(max_steps, (bool, np.bool_)) or not isinstance(max_steps, (int, np.integer)) or max_steps < 1:
        raise ValueError(f"max_steps expects a positive integer (steps) or None, got {max_steps!r}")
    elif not adaptive and max_steps < n_steps:
        raise ValueError(
            f"max_steps={max_steps}: a constant step of {dt} ms takes {n_steps} steps from t0={t0} to t1={t1} ms; "
            "give max_steps >= that (or leave it None), or a longer dt"
        )

    _check_adjoint(adjoint)
    term = diffrax.ODETerm(vector_field)
    if isinstance(stepsize_controller, diffrax.ConstantStepSize) and adjoint is None:
        # Fixed steps: our own loop (exact grid, two-level checkpointed gradients).
        k = steps_per_save(save_every, dt)
        if isinstance(start, fixed_step.Start) and start.given is None:  # a fresh run's: zeros in its place
            start = dataclasses.replace(start, given=jax.tree.map(lambda x: _on_host(np.zeros(x.shape, x.dtype)), y0))
        solver = _stages_as_bounded_loop(solver)
        # A backend's refusal of a stimulus that fits no backend (a wrong-length
        # amplitude, whose fix is not another backend) gives the stimulus's own error,
        # as the XLA loop does; probed only when the choice fails.
        with stimulus_named():
            chosen = backends.choose(backend, model, solver, start, run_stimuli)
        integrate = {
            "xla": fixed_step.integrate,
            "pallas": backends.pallas.integrate,
            "sharded": backends.sharded.integrate,
        }[chosen]
        if selected and integrate is not fixed_step.integrate:
            raise ValueError(
                f"backend={backend!r}: recording at chosen places (record={{name: places}}) runs in one XLA "
                "loop; use backend='xla' or 'auto'"
            )
        # (The GPU kernel's record buffers have a power of two of saves.)
        padded = 2 ** math.ceil(math.log2(n_save)) / n_save if integrate is backends.pallas.integrate else 1.0
        record_memory.check(lambda: system.observe(record, t0, fixed_step.start_state(start, model)), record, y0,
                            n_save + ends_off_grid, dict(selected), pad_factor=padded)
        ts = save_times()
        with stimulus_named():
            saved, y_final = integrate(
                solver, term, start, system, t0=t0, t1=t1, dt=dt, save_every_steps=k, n_save=n_save,
                record=record, grad_checkpoints=grad_checkpoints,
            )
        values, events = saved, (y_final.events if y0.events else None)
        if ends_off_grid:
            last = system.observe(record, t1, y_final)
            # (A Network's records are dicts over its populations.)
            values = jax.tree.map(lambda x, y: jnp.concatenate([x, jnp.asarray(y, x.dtype)[None]]), values,
                                  {k: last[k] for k in values})
    else:
        backends.check(backend)
        if backend in ("pallas", "sharded"):
            with stimulus_named():  # (a stimulus that fits no backend: its own error, as above)
                raise ValueError(
                    f"backend={backend!r} runs the constant-step loop; with adaptive steps or an adjoint, "
                    "diffrax integrates in one XLA loop: use backend='auto' or 'xla'"
                )
        if grad_checkpoints != "saves":
            raise ValueError(
                f"grad_checkpoints={grad_checkpoints!r} applies to the constant-step loop; with adaptive "
                "steps or an adjoint, choose diffrax's adjoint (e.g. "
                "diffrax.RecursiveCheckpointAdjoint(checkpoints=...)) instead"
            )
        if isinstance(adjoint, diffrax.RecursiveCheckpointAdjoint) and isinstance(
                stepsize_controller, diffrax.ConstantStepSize):
            # diffrax 0.7's recursive checkpointing returns exactly 0 for some samples
            # saved on step ends (5 of 201 in an HH run; a whole-trace loss 0.2-4 % off).
            raise ValueError(
                "adjoint: diffrax.RecursiveCheckpointAdjoint at a constant step drops the gradients of "
                "some samples that fall on step ends (diffrax 0.7); leave adjoint at None (jaxneuro's "
                "own constant-step loop checkpoints the same way, see grad_checkpoints), or use "
                "diffrax.DirectAdjoint() or an adaptive stepsize_controller"
            )
        y0 = initial_state()  # (diffrax's loop takes the values)
        record_memory.check(lambda: system.observe(record, t0, y0), record, y0, n_save + ends_off_grid, dict(selected))
        ts = save_times()
        save_ts = jnp.append(ts, t1) if ends_off_grid else ts
        observe = diffrax.SubSaveAt(ts=save_ts, fn=_Observe(tuple(record)))
        saveat = diffrax.SaveAt(subs=[observe, diffrax.SubSaveAt(t1=True)])
        kwargs = {} if adjoint is None else {"adjoint": adjoint}
        t0_, t1_ = fixed_step.make_span(t0, t1)  # traced: runs in parts share the program
        stepper = solver
        if isinstance(stepsize_controller, diffrax.ConstantStepSize):
            # diffrax's constant step cuts the span into equal steps (T/ceil(T/dt)):
            # steps of dt, the last one shortened, as jaxneuro's own loop (and NEURON)
            # take them, keep stimulus onsets and saves on the grid. diffrax moves a
            # step ending within 100 ulp of t1 onto t1 (and then takes one of length
            # 0, NaN for a cable): a last step that short joins the one before.
            clip = 101 * float(np.spacing(float_dtype.type(abs(t1))))
            if clip > 0.5 * dt:
                raise ValueError(
                    f"adjoint: diffrax's loop moves a step ending within 100 ulp of t1 onto t1, which in "
                    f"{float_dtype.name} at t1 = {t1:g} ms is {clip:.3g} ms, more than half the step dt = {dt:g} "
                    "ms: its last steps would be merged into one. Leave adjoint at None (jaxneuro's own loop, "
                    "where forward and reverse mode both work), run in float64 "
                    "(jax.config.update('jax_enable_x64', True)), or end the run nearer t = 0"
                )
            n_grid = fixed_step.count_steps(t0, t1, dt, slack=max(clip, time_slack(t1, float_dtype)))
            grid = jnp.minimum(t0_ + dt * jnp.arange(n_grid, dtype=t0_.dtype), t1_)
            stepsize_controller = diffrax.StepTo(ts=jnp.append(grid, t1_))
            if type(solver) is StaggeredEuler:  # its grid step exact, as the own loop's
                stepper = OnGrid(voltage_update=solver.voltage_update, tree_solve=solver.tree_solve,
                                grid_dt=fixed_step.make_grid(t0, t1, dt, 1, 1).first_dt)
        with stimulus_named(), _steps_explained(solver, max_steps, diagnose), _forward_mode_explained(adjoint):
            sol = diffrax.diffeqsolve(
                term,
                stepper,
                t0=t0_,
                t1=t1_,
                dt0=None if isinstance(stepsize_controller, diffrax.StepTo) else dt,  # its steps are its ts
                y0=y0,
                args=system,
                saveat=saveat,
                stepsize_controller=stepsize_controller,
                max_steps=max_steps,
                **kwargs,
            )
        values, y_final = sol.ys
        y_final = jax.tree.map(lambda x: x[0], y_final)  # the t1 save
        events = y_final.events if y0.events else None
    if ends_off_grid:
        ts = jnp.append(ts, jnp.asarray(t1, ts.dtype))
    _warn_if_diverged(y_final.v, solver, dt, diagnose, recorded=(ts, dict(values).get("v")))
    make_trace = getattr(model, "make_trace", None)
    if make_trace is not None:  # models made of parts (a Network) split the trace
        trace = make_trace(ts, dict(values), events, span=(t0, t1), order=tuple(record), counts_span=counts_span)
        if not adaptive:  # each spiking population's, as for one run alone
            for name in getattr(model, "names", ()):
                part = trace[name]
                if part.spikes is not None:
                    _warn_firing_every_step(part.spikes, dt, model.populations[name], name)
        return eqx.tree_at(lambda tr: tr.final_state, trace, y_final, is_leaf=lambda x: x is None)
    columns = _column_labels(model, record, dict(selected))
    recorded_units = record_units(model, record)  # for plot labels: the model says each name's unit
    if not y0.events:
        return Trace(t=ts, values=dict(values), final_state=y_final, span=(t0, t1), columns=columns,
                     order=tuple(record), units=recorded_units)
    spikes, count = events["spikes"], events["count"]
    trace = Trace(t=ts, values=dict(values), spikes=spikes, spike_count=count, final_state=y_final, span=(t0, t1),
                  columns=columns, order=tuple(record), units=recorded_units, counts_span=counts_span)
    setting = ("summary=jn.SpikeSummary(capacity=...)" if isinstance(model, SpikeDetector)
               else f"{type(model).__name__}(spike_capacity=...)")
    capacity = spikes.shape[-1]
    # Under jit (or vmap) only trace.overflowed tells: the counts stay exact, and a
    # run-time report would keep simulate from being lowered for another platform.
    if units.is_concrete(count):
        report_overflow(
            overflowed_of(trace),
            lambda n: (f"spike buffer overflow: {n} {spiking_units(model)} fired more than {capacity} spikes; "
                       f"trace.spikes keeps the first {capacity}, trace.spike_count has the true counts. Raise "
                       f"{setting} to keep them all."),
            stacklevel=outside_stacklevel(),
            at_run_time=False,
        )
    if not adaptive:
        _warn_firing_every_step(spikes, dt, model)
    return trace


def _count_fast(spikes, dt):
    """Neurons with spikes at most ``dt`` apart: on the host where the buffer is in host
    memory (a CPU's; no program to compile for each new buffer shape), else where it is
    (one compiled program per buffer shape, not three small ones)."""
    if _on_cpu([spikes]):
        with np.errstate(invalid="ignore"):  # inf - inf between the buffer's unused slots
            return int(_fast_count(np.asarray(spikes), dt, np))
    return _count_fast_compiled(spikes, dt)


def _fast_count(spikes, dt, xp):
    """:func:`_count_fast`'s count with ``xp`` (``numpy`` or ``jax.numpy``)."""
    return xp.sum(xp.any(xp.diff(spikes, axis=-1) <= dt * (1.0 + 1e-6), axis=-1))


_count_fast_compiled = jax.jit(functools.partial(_fast_count, xp=jnp))


#: Values (all arrays together) up to which a check after a run on a CPU reduces them
#: with NumPy (one core, a few ms) instead of a compiled program (~0.1 s to compile at
#: each new shape); larger records are reduced by the program, on all cores.
HOST_CHECK_VALUES = 1 << 22


def _on_cpu(arrays) -> bool:
    """Whether ``arrays`` (JAX arrays) lie in a CPU's memory, where NumPy reads them
    without a copy, and hold at most :data:`HOST_CHECK_VALUES` values: small reductions
    of them are then done on the host, where JAX would compile a program for each new
    shape."""
    return (sum(a.size for a in arrays) <= HOST_CHECK_VALUES
            and all(d.platform == "cpu" for a in arrays for d in a.devices()))


def _warn_firing_every_step(spikes, dt: float, model, population: str | None = None) -> None:
    """Warn where known spike times of a point neuron come at most ``dt`` apart: a step
    holds one spike per neuron, so a neuron firing in consecutive steps may have been
    driven faster and lost the rest, silently (a LIF without refractory period at 100
    nA fires 497 spikes in 100 ms; at dt = 0.5 it kept 200). ``population``: its name
    in a Network."""
    from ..neurons.base import AbstractSpikingNeuron  # (neurons import the solvers)

    if not isinstance(model, AbstractSpikingNeuron):  # a detector's crossings of sampled voltages
        return
    if not units.is_concrete(spikes):
        return
    fast = _count_fast(spikes, dt)
    if not int(fast):
        return
    where = "" if population is None else f"population {population!r}: "
    warnings.warn(
        f"{where}{int(fast)} {spiking_units(model)} fired in consecutive steps (spikes at most dt = {dt:g} ms apart): a "
        f"step holds at most one spike per neuron, so one driven to fire faster (t_ref < dt) loses the others; "
        "take dt below its shortest interspike interval",
        RuntimeWarning, stacklevel=outside_stacklevel())


def _check_adjoint(adjoint) -> None:
    """A ValueError for an ``adjoint`` that cannot run simulate's solve, before diffrax
    raises its own about a ``SaveAt`` the caller never wrote: simulate saves samples
    along the run and the final state (``SaveAt(subs=...)``), which diffrax's
    BacksolveAdjoint does not support and ImplicitAdjoint (a steady state's) does not
    either (it takes ``SaveAt(t1=True)`` alone)."""
    if adjoint is not None and not isinstance(adjoint, diffrax.AbstractAdjoint):
        raise ValueError(f"adjoint expects a diffrax adjoint instance or None, got {adjoint!r}")
    if isinstance(adjoint, (diffrax.BacksolveAdjoint, diffrax.ImplicitAdjoint)):
        raise ValueError(
            f"adjoint={type(adjoint).__name__}(): simulate saves samples along the run, which diffrax's "
            f"{type(adjoint).__name__} does not support; leave adjoint at None (the constant-step loop's own "
            "checkpointed gradients, or recursive checkpointing with adaptive steps), or pass "
            "diffrax.DirectAdjoint() (both modes) or diffrax.ForwardMode() (jax.jvp, jax.jacfwd)"
        )


def _check_solver(solver, controller) -> None:
    """ValueError for a ``solver`` that is not a diffrax solver instance, and for an
    adaptive ``controller`` with a solver that has no error estimate (the default)."""
    if isinstance(solver, type) and issubclass(solver, diffrax.AbstractSolver):
        raise ValueError(f"solver expects a solver instance, got the class {solver.__name__}: pass "
                         f"solver={solver.__name__}()")
    if solver is not None and not isinstance(solver, diffrax.AbstractSolver):
        raise ValueError(f"solver expects a diffrax solver instance (e.g. diffrax.Tsit5(), jn.StaggeredEuler()), "
                         f"got {solver!r}")
    adaptive = isinstance(controller, diffrax.AbstractAdaptiveStepSizeController)
    if adaptive and (solver is None or isinstance(solver, StaggeredEuler)):
        raise ValueError(
            f"stepsize_controller: {type(controller).__name__} adapts the step from the solver's error "
            "estimate, and the default solver (jn.StaggeredEuler, NEURON's scheme) has none: it runs at a "
            "constant dt. Pass an embedded Runge-Kutta solver with it, e.g. solver=diffrax.Tsit5(), or leave "
            "stepsize_controller out"
        )


def _stages_as_bounded_loop(solver):
    """A diffrax Runge–Kutta ``solver`` with its default ``scan_kind`` (None: its stages
    in a checkpointed loop, which forward mode cannot differentiate and which failed
    in reverse mode inside the split backend's ``shard_map``) with ``"bounded"``
    instead, for jaxneuro's constant-step loop, which checkpoints each step itself, so
    that both modes work. Any other solver, or a ``scan_kind`` the user chose, is
    returned as it is."""
    if isinstance(solver, diffrax.AbstractRungeKutta) and solver.scan_kind is None:
        return eqx.tree_at(lambda s: s.scan_kind, solver, "bounded", is_leaf=lambda x: x is None)
    return solver


def _staging() -> bool:
    """Whether this runs inside a trace that builds a program (``jit``,
    ``eval_shape``), where a jax.numpy operation is recorded rather than run."""
    return isinstance(jnp.asarray(0.0), jax.core.Tracer)


def _on_host(x: np.ndarray) -> jax.Array:
    """A NumPy array sent to the default device (``jnp.asarray`` of a new shape would
    compile a program)."""
    return jax.device_put(x)


def _checked_v0(model, v0):
    """``v0`` (mV; default the model's) checked, one value per compartment in JAX's
    float dtype, so that a scalar and an array of voltages give the run the same
    arguments."""
    if isinstance(v0, dict):
        if not hasattr(model, "v0_of_populations"):
            raise ValueError(
                f"simulate: v0 as a dict (population name: voltage) is for a Network; {type(model).__name__} "
                "takes a number in mV or one per compartment"
            )
        v0 = model.v0_of_populations(v0)
    v0 = model.default_v0 if v0 is None else units.to_base(v0, "v0", units.mV)
    units.check_value(v0, "v0", None, units.mV)
    if not units.broadcasts_to(np.shape(v0), model.shape):
        raise ValueError(
            f"simulate: v0 expects a scalar or one value per compartment (shape {tuple(model.shape)}), "
            f"got shape {np.shape(v0)}"
        )
    dtype = jnp.result_type(float)
    if units.is_concrete(v0):
        return _on_host(np.broadcast_to(np.asarray(v0, dtype), tuple(model.shape)))
    return jnp.broadcast_to(jnp.asarray(v0, dtype), tuple(model.shape))


#: :func:`fixed_step.model_start` as one compiled program (op by op, each operation on a
#: new shape compiled a program of its own: 17 for an HH compartment's gates), where a
#: fresh run's start is needed outside its loop (diffrax's loop, a failed run's
#: diagnosis, a run inside a user's jit).
_init_state = eqx.filter_jit(fixed_step.model_start)


#: Final voltages beyond this (mV, either sign) are warned of as a unit mistake.
IMPLAUSIBLE_VOLTAGE = 1000.0


def _nonfinite_start(system, t0, y0, solver) -> str:
    """For a diffrax solver, which integrates the vector field itself: a sentence naming
    the states whose rate of change is not finite at the start (a gate whose
    ``gate_inf_tau`` gives ``tau = 0``, which only the default solver takes as an
    instantaneous gate; a parameter that is not finite), or ``""`` (none, the default
    solver, or a state only known under ``jit``)."""
    if isinstance(solver, StaggeredEuler) or not all(units.is_concrete(x) for x in jax.tree.leaves(y0)):
        return ""
    try:
        rates = vector_field(t0, y0, system)
    except Exception:  # a diagnosis only: the run's own error says what failed
        return ""
    bad = [name for name, x in [("v", rates.v), *sorted(rates.gates.items())]
           if not np.all(np.isfinite(np.asarray(x)))]
    if not bad:
        return ""
    gates = [name for name in bad if name != "v"]
    why = (" (e.g. a gate whose kinetics give tau = 0, which only the default solver advances, as an "
           "instantaneous gate; other solvers need tau > 0)") if gates else ""
    return (f" The rate of change of {', '.join(repr(b) for b in bad)} is not finite at the start{why}.")


def _warn_if_diverged(v_final, solver, dt, diagnose=lambda: "", recorded=(None, None)) -> None:
    """A RuntimeWarning where the final voltages are not finite (when they are known:
    not under ``jit``): an explicit solver at a step too long for a stiff membrane
    returned NaN/inf traces without a word; or where they, or the recorded voltages
    ``recorded = (t, v)`` (v None where not recorded), are finite but beyond
    :data:`IMPLAUSIBLE_VOLTAGE` (a compartment sized in metres instead of µm reached
    2.4e13 mV silently; 1 nA for 1 ms into a 0.5 × 0.1 µm compartment peaked at 15 585
    mV and was back at rest by the end). ``diagnose()`` adds what is known of the cause
    (:func:`_nonfinite_start`)."""
    if not units.is_concrete(v_final):
        return
    bad = ~np.isfinite(np.asarray(v_final))
    if np.any(bad):
        cause = diagnose()
        if cause:
            message = f"simulate: the run diverged ({int(np.sum(bad))} compartment(s) end with non-finite voltages).{cause}"
        elif isinstance(solver, StaggeredEuler):  # implicit: no step is too long for it
            message = (
                f"simulate: the run went non-finite ({int(np.sum(bad))} compartment(s) end with non-finite "
                f"voltages) with {type(solver).__name__}, whose implicit voltage update is stable at any step: "
                "the model's arithmetic gave inf or NaN (an overflow: in float32 an exponential past exp(88), "
                "try float64, jax.config.update('jax_enable_x64', True); or a function outside its domain), or "
                "a parameter is out of range; record the voltage to see where it happened")
        else:
            message = (
                f"simulate: the run diverged ({int(np.sum(bad))} compartment(s) end with non-finite voltages): "
                f"the step dt = {dt} ms is too long for {type(solver).__name__} on this model (an explicit "
                "solver on a stiff membrane), or a parameter is non-finite; use the default solver, a shorter "
                "dt or an adaptive stepsize_controller")
        warnings.warn(message, RuntimeWarning, stacklevel=outside_stacklevel())
        return
    v = np.abs(np.asarray(v_final))
    t_rec, v_rec = recorded
    if np.any(v > IMPLAUSIBLE_VOLTAGE):
        where = (f"{int(np.sum(v > IMPLAUSIBLE_VOLTAGE))} compartment(s) end beyond ±{IMPLAUSIBLE_VOLTAGE:g} mV "
                 f"(up to {float(np.max(v)):.3g} mV in magnitude)")
    elif (arrays := [x for x in jax.tree.leaves(v_rec) if units.is_concrete(x) and jnp.size(x)]):
        per_sample, n_over = _record_extremes(arrays)
        if not int(n_over):
            return
        per_sample = np.asarray(per_sample)
        at = float(np.asarray(t_rec).reshape(-1)[int(np.nanargmax(per_sample))])
        where = (f"{int(n_over)} compartment(s) went beyond ±{IMPLAUSIBLE_VOLTAGE:g} mV during the run (up "
                 f"to {float(np.nanmax(per_sample)):.3g} mV in magnitude, at {at:g} ms; the record shows it)")
    else:
        return
    warnings.warn(
        f"simulate: {where}, which no membrane reaches: most likely a number in another unit than jaxneuro's "
        "(lengths in µm, currents in nA, conductances in S/cm² or µS, capacitances in µF/cm² or nF); a saiunit "
        "quantity (e.g. 20 * u.um) converts it",
        RuntimeWarning, stacklevel=outside_stacklevel())


def _record_extremes(arrays):
    """Of recorded voltages (arrays with a leading time axis, a network's populations
    side by side): the largest magnitude at each sample, and how many compartments pass
    :data:`IMPLAUSIBLE_VOLTAGE`, NaN ignored. Reduced on the host where the record is in
    host memory (:func:`_on_cpu`), else where it is (a GPU's record is not copied to the
    host), in one compiled program (op by op, six per new shape)."""
    if not _on_cpu(arrays):
        return _record_extremes_compiled(arrays)
    # fmax/fmin: NaN ignored (nanmax's, without its warning); |x| as max(x, -x) of the
    # reductions, without an array of magnitudes.
    def magnitude(m, axis):
        return np.fmax(np.fmax.reduce(m, axis=axis), -np.fmin.reduce(m, axis=axis))

    columns = [np.asarray(a).reshape(a.shape[0], -1) for a in arrays]
    per_sample = np.fmax.reduce(np.stack([magnitude(m, 1) for m in columns]), axis=0)
    n_over = sum(int(np.sum(magnitude(m, 0) > IMPLAUSIBLE_VOLTAGE)) for m in columns)
    return per_sample, n_over


@jax.jit
def _record_extremes_compiled(arrays):
    magnitudes = [jnp.abs(a).reshape(a.shape[0], -1) for a in arrays]
    # fmax across populations, as on the host: a population whose sample is all NaN
    # (nanmax's NaN) leaves the others' maximum standing.
    per_sample = functools.reduce(jnp.fmax, [jnp.nanmax(m, axis=1) for m in magnitudes])
    n_over = sum(jnp.sum(jnp.nanmax(m, axis=0) > IMPLAUSIBLE_VOLTAGE) for m in magnitudes)
    return per_sample, n_over


def _check_implicit_tolerances(solver) -> None:
    """ValueError for a diffrax implicit solver at a constant step whose root finder
    takes its tolerances from an adaptive controller (diffrax's default): there is none
    (it failed deep inside the root finder with "Type of `other` not understood")."""
    if not isinstance(solver, diffrax.AbstractImplicitSolver):
        return
    from diffrax._root_finder import use_stepsize_tol  # diffrax's marker for "the controller's"

    root = solver.root_finder
    if any(getattr(root, attr, None) is use_stepsize_tol for attr in ("rtol", "atol", "norm")):
        raise ValueError(
            f"solver: {type(solver).__name__} is implicit, and at a constant step (the default, or "
            "ConstantStepSize) its root finder has no tolerances: they come from an adaptive controller. Pass "
            "stepsize_controller=diffrax.PIDController(rtol=..., atol=...), or give the root finder its own, "
            f"e.g. diffrax.{type(solver).__name__}(root_finder=diffrax.VeryChord(rtol=1e-8, atol=1e-8, "
            "norm=optimistix.max_norm))"
        )


@contextlib.contextmanager
def _stimulus_named(stimuli, t0, model, v):
    """Where the run fails with a ValueError, each stimulus is placed abstractly: one
    whose current does not fit its target (or whose target the model does not have) is
    named, ``stimuli[i]`` with its parameters' shapes, instead of the error from inside
    the time loop. Other errors pass as they are."""
    try:
        yield
    except ValueError as error:
        for i, s in enumerate(stimuli):
            try:
                jax.eval_shape(lambda v, s=s: s.inject(t0, model, v), v)  # (v: an array or its shape)
            except CurrentShapeError as e:
                raise ValueError(f"stimuli[{i}]: {e} ({type(s).__name__}'s parameters: {s.parameter_shapes()})") \
                    from error
            except ValueError as e:
                raise ValueError(f"stimuli[{i}]: {e}") from error
        raise


@contextlib.contextmanager
def _forward_mode_explained(adjoint):
    """JAX's "can't apply forward-mode autodiff (jvp) to a custom_vjp function", met when
    ``jax.jvp``/``jax.jacfwd`` reach ``diffrax.diffeqsolve`` with a reverse-mode adjoint
    (the default, recursive checkpointing), as a TypeError naming the ``adjoint`` that
    supports forward mode."""
    try:
        yield
    except TypeError as error:
        if "forward-mode" not in str(error) or "custom_vjp" not in str(error):
            raise
        used = "the default, diffrax.RecursiveCheckpointAdjoint()" if adjoint is None else type(adjoint).__name__
        raise TypeError(
            f"simulate: forward-mode differentiation (jax.jvp, jax.jacfwd) through a diffrax solve (adaptive steps "
            f"or an adjoint) needs adjoint=diffrax.ForwardMode(); the adjoint used ({used}) supports reverse mode "
            "(jax.grad, jax.jacrev) only. For both modes (e.g. jax.hessian) pass adjoint=diffrax.DirectAdjoint() "
            "(memory grows with max_steps), or use a constant step with the default solver, whose loop supports both"
        ) from error


@contextlib.contextmanager
def _steps_explained(solver, max_steps: int, diagnose=lambda: ""):
    """diffrax's "maximum number of solver steps was reached" (a stack of its own text)
    as a RuntimeError saying why it happens here and what to do: raising ``max_steps``
    is rarely the cure. ``diagnose()`` names a cause found at the start
    (:func:`_nonfinite_start`)."""
    try:
        yield
    except RuntimeError as error:
        if "maximum number of solver steps" not in str(error):
            raise
        cause = diagnose()
        if cause:
            raise RuntimeError(
                f"simulate: {type(solver).__name__} took more than max_steps={max_steps} steps without reaching "
                f"t1: the adaptive controller kept rejecting steps.{cause}"
            ) from None
        raise RuntimeError(
            f"simulate: {type(solver).__name__} took more than max_steps={max_steps} steps without reaching t1: "
            "the adaptive controller kept shrinking the step, which an explicit solver must do on a stiff "
            "system (a cable's or cell's axial coupling, strong gap junctions, fast channels), and any solver "
            "with tolerances tighter than the precision resolves (float32: rtol below ~1e-6). Use the default "
            "solver (leave solver= out: jn.StaggeredEuler, implicit in the voltage, NEURON's scheme), an implicit "
            "diffrax solver (diffrax.Kvaerno5(); dense Jacobians, so costly beyond a few dozen compartments), or "
            "looser tolerances; a larger max_steps helps only where it was set below what the run needs"
        ) from None


class _Observe(eqx.Module):
    """``args.observe(record, t, y)`` as diffrax's save function: equal for equal
    ``record``, so ``diffeqsolve``'s compiled program is reused (a fresh lambda per call
    compiled an adaptive run again on every ``simulate``)."""

    record: tuple = eqx.field(static=True)

    def __call__(self, t, y, args):
        return args.observe(self.record, t, y)


def _stepping_to_stimuli(controller, stimuli):
    """An adaptive ``controller`` that steps to the stimuli's jumps (onsets, offsets) and
    samples (a recorded waveform's), merged with any a ``ClipStepSizeController`` of the
    user's already has; a constant step as it is. A step that passed over a short pulse
    or a recorded feature would never see it: its error estimate is made from the
    vector field at the step's own stages."""
    if not isinstance(controller, diffrax.AbstractAdaptiveStepSizeController):
        return controller
    def finite(b):  # known times: the finite ones (an endless step has no offset); one per neuron too
        if not units.is_concrete(b):
            return jnp.ravel(jnp.asarray(b))
        b = np.ravel(np.asarray(b, dtype=float))
        return jnp.asarray(b[np.isfinite(b)])

    jumps = [x for s in stimuli for b in s.breakpoints() if (x := finite(b)).size]
    steps = [jnp.ravel(jnp.asarray(x)) for s in stimuli if (x := s.sample_times()) is not None]
    if not jumps and not steps:
        return controller
    clip = {}
    if isinstance(controller, diffrax.ClipStepSizeController):
        clip = {"store_rejected_steps": controller.store_rejected_steps,
                "_callback_on_reject": controller.callback_on_reject}
        steps += [] if controller.step_ts is None else [controller.step_ts]
        jumps += [] if controller.jump_ts is None else [controller.jump_ts]
        controller = controller.controller
    return diffrax.ClipStepSizeController(
        controller,
        step_ts=jnp.concatenate(steps) if steps else None,
        jump_ts=jnp.concatenate(jumps) if jumps else None,
        **clip,
    )


def _initial_state(model, init, shown: str, summary) -> State:
    """``init`` as the run's first state: a ValueError unless it has the model's state
    layout (its gates, event buffers and their shapes), cast to the model's dtypes.
    ``shown``: the model's name in messages (the user's class, not the run's wrapping
    of it); ``summary``: the run's SpikeSummary, if any."""
    if not isinstance(init, State):
        raise ValueError(f"simulate: init expects a jn.State (e.g. trace.final_state), got {type(init).__name__}")
    expected = jax.eval_shape(model.init_state, model.default_v0)
    got_tree, want_tree = jax.tree.structure(init), jax.tree.structure(expected)
    if got_tree != want_tree:
        why = ""
        if summary is not None and not init.events and set(init.gates) == set(expected.gates):
            why = ("; it is the state of a run without summary=, which continues only without it (spike "
                   "detection starts with a run from v0)")
        elif summary is None and init.events and not expected.events:
            why = "; a final_state of a run with summary= continues only with summary="
        raise ValueError(
            f"simulate: init does not have {shown}'s state layout: it has gates "
            f"{_keys(init.gates)} and events {_keys(init.events)}, the model {_keys(expected.gates)} and "
            f"{_keys(expected.events)}{why}"
        )
    shapes = [(np.shape(a), b.shape) for a, b in zip(jax.tree.leaves(init), jax.tree.leaves(expected))]
    wrong = [(a, b) for a, b in shapes if tuple(a) != tuple(b)]
    if wrong:
        hint = ("SpikeSummary(capacity=...) as the earlier run's?" if summary is not None else
                "another population size, spike capacity or number of segments?")
        raise ValueError(
            f"simulate: init's arrays do not fit {shown}: shape {wrong[0][0]} where the model "
            f"has {wrong[0][1]} ({hint})"
        )
    if units.is_concrete(init.v) and not np.all(np.isfinite(np.asarray(init.v))):
        bad = int(np.sum(~np.isfinite(np.asarray(init.v))))
        raise ValueError(
            f"simulate: init holds non-finite voltages ({bad} compartment(s)): the final state of a run that "
            "diverged? Continue from a finite state, or start again from v0"
        )
    return jax.tree.map(lambda a, b: jnp.asarray(a, dtype=b.dtype), init, expected)


def _continued_from(init, t0):
    """``(state, t0)`` for ``init`` and ``t0`` as given: a trace continues from its end
    (``t0`` defaults to it, and another ``t0`` is refused), a state or nothing starts at
    ``t0`` (default 0)."""
    if isinstance(init, NoFinalState):
        raise ValueError(
            "simulate: init is the final_state of a trace cut by at() or window(), which has none (a run's "
            "state is at its end); continue from the whole run's trace.final_state"
        )
    if not isinstance(init, Trace):
        return init, 0.0 if t0 is None else t0
    if init.span is None or isinstance(init.final_state, NoFinalState):
        raise ValueError(
            "simulate: init is a trace cut by at() or window(), which has no state to continue from (a run's "
            "state is at its end); continue from the whole run's trace"
        )
    end = float(init.span[1])
    if t0 is not None:
        given = _time(t0, "t0")
        # t0 may come from the trace's own times, rounded to their dtype (trace.t[-1]).
        if abs(given - end) > _rounding_slack(end, [x.dtype for x in (t0, init.t) if hasattr(x, "dtype")]):
            raise ValueError(
                f"t0={given:g} ms: init is a trace that ended at {end:g} ms, and it continues from there; leave t0 "
                f"out (or pass t0={end:g}), or pass init=trace.final_state to start its state at t0={given:g}"
            )
    return init.final_state, end


def _rounding_slack(time: float, dtypes) -> float:
    """How far (ms) two readings of the run time ``time`` may differ and be the same:
    1e-9 relative (at least 1e-9 ms), or the rounding of times stored in any of
    ``dtypes`` (:func:`~jaxneuro.solve.trace.time_slack`) where that is more."""
    return max([1e-9 * max(1.0, abs(time))] + [time_slack(time, d) for d in dtypes])


def _check_state_time(model, state, t0: float) -> None:
    """A ValueError where ``state`` (``init``) holds times after ``t0``: spikes it has
    recorded or its synapses' own time, i.e. a state from later in the run (forgetting
    ``t0=`` when continuing left a LIF refractory and silent for the run's first 34 ms).
    Spike sources' trains are inputs, not records, and are left out. Checked where the
    values are known."""
    sources = {name for name in getattr(model, "names", ())
               if getattr(model.populations[name], "is_source", False)}
    times = []

    def collect(events, top=True):
        for key, value in events.items():
            if top and key in sources:
                continue
            if isinstance(value, dict):
                collect(value, top=False)
            elif key == "spikes" or (key == "t" and not top):
                times.append(value)

    collect(state.events or {})
    known = [np.asarray(x) for x in times if units.is_concrete(x)]
    finite = [x[np.isfinite(x)] for x in known]
    latest = max((float(x.max()) for x in finite if x.size), default=-math.inf)
    # Stored times are rounded to their dtype (float32 10.1 is 10.1000004 ms).
    if latest > t0 + _rounding_slack(max(abs(t0), abs(latest)), [x.dtype for x in known]):
        raise ValueError(
            f"simulate: init is the state of a run that had reached t = {latest:g} ms (its recorded spikes or "
            f"synapse times), but t0 = {t0:g} ms; a continued run starts where the last one ended: "
            "pass init=trace (the earlier run's), which continues from its end"
        )


def _keys(tree) -> list:
    return sorted(tree) if isinstance(tree, dict) else tree


def _check_time_resolution(t0: float, t1: float, dt: float) -> None:
    """A ValueError where the run's times are resolved to dt/2 or coarser in the
    default float type (float32 from 2**17 ms ≈ 131 s at dt = 0.025 ms): step midpoints,
    where stimuli are read, would merge, and the time grid repeats values."""
    dtype = jnp.result_type(float)
    latest = max(abs(t0), abs(t1))
    resolution = float(np.spacing(np.asarray(latest, dtype=dtype)))
    if resolution >= dt / 2:
        raise ValueError(
            f"t0/t1: times up to {latest:g} ms are resolved only to {resolution:.3g} ms in "
            f"{np.dtype(dtype).name}, too coarse for steps of dt = {dt:g} ms (the time grid would repeat "
            "values and stimuli move by steps); start the run nearer t = 0 or enable float64 "
            "(jax.config.update('jax_enable_x64', True))"
        )


def _column_labels(model, record, selected: dict) -> tuple | None:
    """``((name, labels), ...)`` for a cable's or cell's recorded variables: what each
    column is (``Cell.segment_labels``), for the places ``selected[name]`` holds where
    given; None for other models."""
    labels_of = getattr(model, "segment_labels", None)
    if labels_of is None or hasattr(model, "make_trace"):
        return None
    every = labels_of()
    return tuple((name, tuple(every[i] for i in selected[name]) if name in selected else every) for name in record)


def recorded_indices(model, name, places) -> tuple[int, ...]:
    """Compartment indices (static) of ``places``, where ``record={name: places}`` keeps
    ``name``: locations ``(section, x)`` (a bare ``x`` on a cable) on a cable or cell,
    or indices into a population or a cell's segments; a ValueError naming ``name``
    otherwise."""
    from ..stimuli.targets import Location, is_location, normalise_target, refuse_traced

    refuse_traced(places, f"record={{{name!r}: ...}}: a place", current=False)

    if hasattr(model, "make_trace"):
        raise ValueError(
            f"record={{{name!r}: ...}}: places are not taken for a Network (its traces are split by "
            "population); record the name for every compartment"
        )
    shape = tuple(model.shape)
    if len(shape) != 1:
        raise ValueError(
            f"record={{{name!r}: ...}}: {type(model).__name__} has a single compartment; record {name!r} "
            "without places"
        )
    if (hasattr(places, "shape") and np.ndim(places) == 0
            and np.issubdtype(np.asarray(places).dtype, np.integer)):
        places = int(places)  # a 0-d index array (jnp.argmax's), read as that index
    cell = model.as_cell() if hasattr(model, "as_cell") else model
    # Looked up on the class, once: equinox binds an instance's method (hasattr too) by
    # flattening the whole cell, which made recording at every section of a
    # 1000-section cell take 10 s (its locations are looked up once too: locator).
    locates = hasattr(type(cell), "locator")
    locate = type(cell).locator(cell) if locates else None
    if (isinstance(places, (int, np.integer)) and not isinstance(places, bool) and places in (0, 1)
            and locates):
        # As a stimulus's target=1: x = 1 or segment 1.
        raise ValueError(
            f"record={{{name!r}: {int(places)}}} is ambiguous on a cable or cell: for the location x = {int(places)} "
            f"write {float(places)} (or (section, {float(places)})); for segment index {int(places)} write "
            f"[{int(places)}]"
        )
    if isinstance(places, (str, int, np.integer)) or is_location(places):
        places = [places]  # one place
    if len(places) == 0:
        raise ValueError(
            f"record={{{name!r}: {places!r}}} names no place; give at least one, or leave {name!r} out of "
            f"record (record={{{name!r}: None}} records it everywhere)"
        )
    out = []
    for place in places:
        if (isinstance(place, tuple) and len(place) == 2 and locates
                and all(isinstance(p, (int, np.integer)) and not isinstance(p, bool) for p in place)):
            raise ValueError(
                f"record={{{name!r}: ...}}: {place!r} reads as the location (section {place[0]}, x = {place[1]}) "
                f"and as two indices: write ({place[0]}, {float(place[1])}) for the location, or the indices as "
                "separate places"
            )
        try:
            target = normalise_target(place)
        except ValueError:
            raise ValueError(
                f"record={{{name!r}: ...}}: a place expects a location (section, x), a bare x on a "
                f"cable, or a compartment index, got {place!r}"
            ) from None
        if isinstance(target, tuple) and len(target) == 2 and isinstance(target[0], str) and isinstance(target[1], int):
            target = Location(target[0], float(target[1]))  # (section, 1): x = 1, as stimuli read it
        if isinstance(target, Location):
            if not locates:
                raise ValueError(
                    f"record={{{name!r}: ...}}: {place!r} is a location, which needs a jn.Cable or jn.Cell"
                )
            try:
                out.append(locate(target.section, target.x)[2])
            except ValueError as e:
                raise ValueError(f"record={{{name!r}: ...}}: {place!r}: {e}") from None
        elif isinstance(target, int) and not isinstance(target, bool) and -shape[0] <= target < shape[0]:
            out.append(target % shape[0])
        else:
            raise ValueError(
                f"record={{{name!r}: ...}}: {place!r} is no place on {type(model).__name__} of {shape[0]} "
                "compartments; give locations (section, x) or indices"
            )
    return tuple(out)
