"""Point neurons with a threshold and reset: the in-step spike machinery they share."""

from __future__ import annotations

import abc
import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import saiunit as u

from .. import units
from ..model import AbstractModel, population_shape
from ..solve.staggered import StaggeredEuler, linear_crossing_time, linear_flow
from ..solve.summary import any_crossed, write_by_select, write_spike_times
from ..state import State


class AbstractSpikingNeuron(AbstractModel):
    """A point neuron in absolute units (nF, µS, mV, ms, nA) whose spikes are events.

    Each solver step advances the voltage on its linearised flow ``dv/dt = a + b·v``
    (exact for a LIF neuron); when it crosses :meth:`threshold` the crossing time is
    found on that same flow (so it is accurate beyond ``dt`` and differentiable), the
    voltage is reset, held for the refractory period ``t_ref`` and then integrated on
    for the rest of the step. At most one spike per neuron per step: a neuron driven to
    fire faster (interspike intervals under ``dt``, possible only with ``t_ref`` < dt)
    loses the extra spikes; take ``dt`` below its shortest interval.

    Spike times go to a buffer of ``spike_capacity`` slots per neuron, padded with
    ``inf``; ``simulate`` warns of an overflow when run eagerly or under ``grad``
    (under ``jit``, ``trace.overflowed`` tells; ``trace.spike_count`` stays exact).
    ``surrogate`` (``None`` or e.g.
    ``jn.surrogate.Sigmoid(width=1.0)``, static) makes spike *counts* differentiable by
    a surrogate gradient (see :mod:`jaxneuro.neurons.surrogate`). ``n``: population size (parameters may
    then carry a leading axis of size ``n``; scalars broadcast).
    """

    n: eqx.AbstractVar[int | None]
    spike_capacity: eqx.AbstractVar[int]
    surrogate: eqx.AbstractVar[object]
    #: Set (static, not an argument) only in the fused GPU kernel's view of a
    #: population: spike times are then written by a select under a per-block
    #: ``lax.cond`` taken in steps with a spike, as ``SpikeDetector`` does; XLA loops
    #: scatter them on GPUs and select on CPUs (``solve.summary.write_spike_times``).
    skip_quiet_steps: eqx.AbstractVar[bool]

    # --- what a subclass provides ---------------------------------------------------
    @abc.abstractmethod
    def threshold(self):
        """Voltage (mV) whose upward crossing is a spike."""

    @abc.abstractmethod
    def reset_voltage(self):
        """Voltage (mV) after a spike."""

    @property
    def capacitance(self):
        """Membrane capacitance, nF (every point neuron has a ``C``)."""
        return self.C

    def refractory_period(self):
        """Time (ms) the voltage is held at reset after a spike."""
        return 0.0

    def after_spike(self, gates: dict, spiked) -> dict:
        """Gate-like states after a spike (e.g. adaptation ``w += b``)."""
        return gates

    def display_voltage(self, v, spiked):
        """The voltage reported by ``record=("v",)``: ``v`` unless overridden."""
        return v

    def upswing_crossing(self, v_start, gates: dict, a, b, v_th, drift):
        """``(time, mean drift)`` on a model-specific estimate of the upswing within the
        step, or ``None`` (the default) to use only the step's flow linearised in ``v``,
        which is exact for linear dynamics but underestimates a convex upswing
        (exponential, quadratic) and would find the spike up to a step late. ``time``
        (ms) is from ``v_start`` to ``v_th`` (``inf`` where the estimate does not get
        there; where given, the spike is the earlier of the two estimates); ``mean
        drift`` is ``{gate: d gate/dt}`` averaged over time along that upswing, from
        ``drift(v)`` (the gates' drift at voltage ``v``, gates frozen at the step
        start), which the gates move by on the upswing (see :meth:`resolve_events`)."""
        return None

    def _injected_flow(self, v_start, gates, a, b):
        """``(drive, slope)``: the injected ``I/C`` at ``v_start`` and its slope in
        ``v`` (1/ms), recovered from the step's linear flow ``a + b·v`` less the
        membrane's own part. The slope is 0 for injected currents and ``-1/(rs·C)``
        under a voltage clamp, whose current falls as the voltage rises."""
        c = self.capacitance
        i_m, di_m = jax.jvp(lambda v: self.membrane_current(v, gates), (v_start,), (jnp.ones_like(v_start),))
        return a + b * v_start + i_m / c, b + di_m / c

    def _frozen_crossing_time(self, v_start, gates, a, b, v_th, coordinate, inverse, drift, order=8,
                              lowest=None, node=None):
        """``∫ dv / F(v)`` from ``v_start`` to ``v_th`` for the flow with gates and
        input frozen at the step start, ``F = I(v)/C - membrane_current(v, gates)/C``
        (the injected ``I/C``, linear in ``v`` under a clamp, from
        :meth:`_injected_flow`), by ``order``-point Gauss–Legendre in ``y =
        coordinate(v)`` (increasing, with ``inverse`` its inverse), chosen so ``dy/dt``
        is nearly constant on the upswing. ``inf`` where ``F`` is not positive at every
        node.

        ``lowest(slope)``, where given, is the voltage where a convex ``F`` is smallest
        for the injected slope: below it ``F`` falls (the leak, or a clamp's current,
        shrinking as ``v`` rises), above it the upswing takes over. The nodes crowd
        where the upswing is slow, so ``F`` must also be positive there (else a fixed
        point lies below the threshold: a clamp holding the neuron above ``V_T``), and
        the time is at least the distance to it over ``F(v_start)``, the fastest ``F``
        gets below it (a clamp's fast approach, which the nodes skip), which costs less
        than splitting the integral there.

        ``node(y)``, where given, returns ``(v, dy/dv, membrane_current(v, gates))`` at
        a node ``y`` in closed form, for a model whose coordinate makes them cheaper
        than ``inverse``, its derivative and the current taken one by one (AdEx's
        exponentials are ``-y`` and ``-1/y``: one logarithm per node instead of a
        logarithm and two exponentials).

        Returns ``(time, mean drift)``: also the gates' drift (``drift(v)``, a dict
        ``{gate: d gate/dt}``) averaged over time along the same path, the nodes
        weighted by the time spent near them."""
        c = self.capacitance
        drive, slope = self._injected_flow(v_start, gates, a, b)
        v_end = jnp.broadcast_to(v_th, jnp.shape(v_start))

        def flow(v, i_membrane=None):
            if i_membrane is None:
                i_membrane = self.membrane_current(v, gates)
            return drive + slope * (v - v_start) - i_membrane / c

        if node is None:
            def node(y):
                v = inverse(y)
                dy = jax.jvp(coordinate, (v,), (jnp.ones_like(v),))[1]
                return v, dy, self.membrane_current(v, gates)

        y0, y1 = coordinate(v_start), coordinate(v_end)
        ok = y1 > y0
        total = jnp.zeros_like(y0)
        drift_total = {k: jnp.zeros_like(y0) for k in gates}
        # Node by node with the nodes and weights as Python floats: arrays of them would
        # be constants captured by the fused GPU kernel, which Pallas refuses.
        for x, w in zip(*np.polynomial.legendre.leggauss(order)):
            vs, dy, i_membrane = node(y0 + (y1 - y0) * (0.5 * (float(x) + 1.0)))
            rate = dy * flow(vs, i_membrane)
            ok = ok & (rate > 0)
            weight = float(w) / jnp.where(rate > 0, rate, 1.0)
            total = total + weight
            drift_total = {k: drift_total[k] + weight * x for k, x in drift(vs).items()}
        t = 0.5 * (y1 - y0) * total
        if lowest is None:
            return jnp.where(ok, t, jnp.inf), _mean(drift_total, total, ok)
        # F falls from v_start to its minimum at v_split: no time below the distance over
        # F(v_start), which bounds a clamp's fast approach that the nodes skip.
        v_split = jnp.clip(lowest(slope), v_start, v_end)
        f_start = a + b * v_start  # = flow(v_start), the step's own flow there
        bound = (v_split - v_start) / jnp.where(f_start > 0, f_start, 1.0)
        ok = ok & (flow(v_split) > 0) & (f_start > 0)
        return jnp.where(ok, jnp.maximum(t, bound), jnp.inf), _mean(drift_total, total, ok)

    def flow_after_reset(self, y0: State, gates: dict, a, b):
        """``(a, b)`` of the linearised flow ``dv/dt = a + b·v`` on which the voltage
        moves for the rest of a step after a reset. Default: the step's own flow, exact
        for linear subthreshold dynamics (LIF). Nonlinear models, whose flow linearised
        near the peak says nothing about the voltage after reset, return
        :meth:`_flow_at_reset` instead."""
        return a, b

    def _flow_at_reset(self, y0: State, gates: dict, a, b):
        """The flow re-linearised at the reset voltage with the after-spike ``gates``,
        for models with ``C·dv/dt = I - membrane_current(v, gates)``: the injected
        ``I/C`` and its slope in ``v`` (a clamp's) are recovered from the step's flow at
        ``v(t0)`` (:meth:`_injected_flow`)."""
        c = self.capacitance
        v_r = jnp.broadcast_to(self.reset_voltage(), jnp.shape(y0.v))
        drive, slope = self._injected_flow(y0.v, y0.gates, a, b)  # I/C at v(t0), d(I/C)/dv
        i_r, di_r = jax.jvp(lambda v: self.membrane_current(v, gates), (v_r,), (jnp.ones_like(v_r),))
        b_r = slope - di_r / c
        return drive + slope * (v_r - y0.v) - i_r / c - b_r * v_r, b_r

    # --- shared machinery -----------------------------------------------------------
    def unit_of(self, name):
        """A point neuron records in absolute units: ``v`` in mV, every other name
        (``i_inj``, ``i_leak``, ``i_cap``, AdEx's ``w``, Izhikevich's ``u``) a current in
        nA. A subclass recording something else overrides this."""
        if name not in self.observables():
            raise ValueError(f"unit_of: {name!r} is not a record name of {type(self).__name__}; "
                             f"it records {self.observables()}")
        return "mV" if name == "v" else "nA"

    @property
    def shape(self):
        return population_shape(self, self.n)

    def default_solver(self):
        return StaggeredEuler(voltage_update="exponential")

    def _init_events(self):
        f = jnp.result_type(float)
        shape = self.shape
        return {
            "spikes": jnp.full(shape + (self.spike_capacity,), jnp.inf, dtype=f),
            "count": jnp.zeros(shape, dtype=f),
            "ref_end": jnp.full(shape, -jnp.inf, dtype=f),
            "spiked": jnp.zeros(shape, dtype=f),
        }

    @property
    def membrane_area(self):
        """Membrane area in µm² that density stimuli are scaled by (``area``)."""
        area = getattr(self, "area", None)
        if area is None:
            raise ValueError(
                f"{type(self).__name__}: a stimulus given as a current density needs the "
                "neuron's membrane area; give area=... (µm²) or density parameters"
            )
        return area

    def _densities_to_absolute(self, fields: dict):
        """Convert the named fields given as per-area quantities to absolute values
        using ``self.area`` (default 1 cm² when any density is given)."""
        given = [name for name, (unit, _) in fields.items() if units.is_quantity_of(getattr(self, name), unit)]
        if not given:
            return
        if self.area is None:
            # Densities per a default 1 cm² next to absolute values (a default C of 1 nF,
            # or a gL in nS) would make a membrane of nonsense time constants.
            absolute = [name for name in fields if name not in given and _nonzero(getattr(self, name))]
            if absolute:
                cls = type(self).__name__
                raise ValueError(
                    f"{cls}: {given} are given per area (densities) but {absolute} as absolute values "
                    f"(given or the defaults), and no area=...; give all of {list(fields)} that are not 0 "
                    f"as densities (then per 1 cm²), or {cls}(area=...) in µm² to scale the densities"
                )
            self.area = 1e8  # 1 cm² in µm²
        area = units.to_base(self.area, f"{type(self).__name__}.area", units.um2)
        for name in given:
            unit, kind = fields[name]
            value = units.density_times_area(getattr(self, name), f"{type(self).__name__}.{name}", unit, kind, area)
            object.__setattr__(self, name, value)

    def check_shapes(self):
        """The constructor's shape check of every parameter (:meth:`_check_population`),
        run again by ``simulate`` on a model edited with ``eqx.tree_at``."""
        names = [f.name for f in dataclasses.fields(self) if "unit" in f.metadata and f.name != "area"]
        self._check_population(("area", *names))

    def _check_population(self, names):
        """ValueError naming the first of ``names`` whose value does not broadcast to
        the population shape ``(n,)`` (``area`` first: density parameters were scaled by
        it, so a wrong ``area`` shows in them too)."""
        if self.n is None:
            shapes = {name: jnp.shape(getattr(self, name)) for name in names if getattr(self, name) is not None}
            try:
                jnp.broadcast_shapes(*shapes.values())
            except ValueError:
                given = ", ".join(f"{k} {s}" for k, s in shapes.items() if s)
                raise ValueError(
                    f"{type(self).__name__}: parameters of shapes {given} do not broadcast together; for a "
                    "population give n=... and each parameter as a scalar or of shape (n,)"
                ) from None
            return
        for name in names:
            value = getattr(self, name)
            shape = jnp.shape(value) if value is not None else ()
            try:
                ok = jnp.broadcast_shapes(shape, (self.n,)) == (self.n,)
            except ValueError:
                ok = False
            if not ok:
                raise ValueError(
                    f"{type(self).__name__}.{name} expects a scalar or an array of shape "
                    f"({self.n},) for a population of n={self.n}; got shape {shape}"
                )

    def _check_common(self):
        cls = type(self).__name__
        if self.n is not None:
            units.positive_int(self.n, f"{cls}.n")
        units.positive_int(self.spike_capacity, f"{cls}.spike_capacity")
        self._check_surrogate()

    #: resolve_events takes the voltage jumps of delta synapses (``jump=``).
    resolves_jumps = True

    def resolve_events(self, t0, t1, y0: State, y1: State, a, b, jump=None) -> State:
        """Spikes, resets and refractoriness in the step from ``t0`` to ``t1`` (ms), on
        the linearised voltage flow ``dv/dt = a + b·v``. ``jump``: voltage jumps (mV,
        delta synapses) already in ``y1.v``, which a neuron whose refractory period ends
        within the step takes on its flow from the reset instead (they are the
        arrivals after its end)."""
        v_th = self.threshold()
        v_reset = self.reset_voltage()
        t_ref = self.refractory_period()
        ev = y0.events
        ref_end = ev["ref_end"]
        # Where the free step starts: at t0, or where a refractory period ends mid-step.
        held = ref_end >= t1
        ends_mid = (ref_end > t0) & ~held
        t_start = jnp.where(ends_mid, ref_end, t0)
        v_start = jnp.where(ends_mid, v_reset, y0.v)
        v_resumed = linear_flow(v_reset, a, b, t1 - jnp.where(ends_mid, ref_end, t0))
        if jump is not None:
            v_resumed = v_resumed + jump
        v_free = jnp.where(ends_mid, v_resumed, y1.v)
        v_free = jnp.where(held, _held_at_reset(v_reset, a, b, ref_end, t1), v_free)

        # A start at or above threshold (v0 given so) spikes there, wherever the step
        # ends (one at -54.99 mV decaying below -55 by the step's end did not).
        above = v_start >= v_th
        crossed = ~held & ((v_free >= v_th) | above)
        s = linear_crossing_time(v_start, a, b, v_th)
        elapsed = t1 - t_start

        def drift(v):
            return self.vector_field(t1, State(v=v, gates=y0.gates, events=y0.events), 0.0).gates

        up = self.upswing_crossing(v_start, y0.gates, a, b, v_th, drift)
        drift_up = None
        if up is not None:
            s_up, drift_up = up
            s = jnp.minimum(s, s_up)
            crossed = ~held & ((v_free >= v_th) | (s <= elapsed) | above)
            weight = self._upswing_weight(s_up, elapsed)
            v_free = jnp.where(held, v_free, self._towards_upswing(v_free, v_start, v_th, s_up, elapsed, weight))
        s = jnp.where(above, 0.0, s)
        t_spike = t_start + jnp.clip(s, 0.0, elapsed)
        new_ref_end = jnp.where(crossed, t_spike + t_ref, ref_end)
        rest = jnp.where(crossed & (new_ref_end < t1), t1 - new_ref_end, 0.0)
        gates = self._gates_after_spike(t1, y1, crossed, t1 - t_spike, v_reset)
        if drift_up:
            # The solver advanced the gates at the step's end voltage; on the upswing
            # they move at its drift instead: up to the spike where there is one, and
            # weighed in as the voltage is (_towards_upswing) in the steps before it.
            # Continuous in the spike's place in the step, so later spike times are
            # smooth in the parameters (an adapting AdEx's gradient was off by up to
            # 2x from the 4th spike on with the end voltage alone).
            at_end = drift(y1.v)
            span = jnp.where(crossed, t_spike - t_start, jnp.where(held, 0.0, weight * elapsed))
            gates = {k: g + (drift_up[k] - at_end[k]) * span for k, g in gates.items()}
        a_r, b_r = self.flow_after_reset(y0, gates, a, b)
        v_after = jnp.where(new_ref_end >= t1, _held_at_reset(v_reset, a_r, b_r, new_ref_end, t1),
                            linear_flow(v_reset, a_r, b_r, rest))
        v1 = jnp.where(crossed, v_after, v_free)

        if self.skip_quiet_steps:
            spikes = jax.lax.cond(any_crossed(crossed),
                                  lambda s: write_by_select(s, ev["count"], crossed, t_spike),
                                  lambda s: s, ev["spikes"])
        else:
            spikes = write_spike_times(ev["spikes"], ev["count"], crossed, t_spike)
        events = {
            "spikes": spikes,
            "count": ev["count"] + self._spike_indicator(crossed, held, v_free, v_th, t1 - t0),
            "ref_end": new_ref_end,
            "spiked": crossed.astype(ev["spiked"].dtype),
        }
        return State(v=v1, gates=gates, events=events)

    @staticmethod
    def _upswing_weight(s_up, elapsed):
        """How much of the upswing estimate a step takes (:meth:`_towards_upswing`):
        0 where it reaches the threshold two steps or more from the step's start
        (``s_up`` ms, ``elapsed`` ms of free flow in this step), 1 at one step."""
        finite = jnp.isfinite(s_up) & (s_up > elapsed)
        s_safe = jnp.where(finite, s_up, 2.0 * elapsed + 1.0)
        return jnp.where(finite, jnp.clip(2.0 - s_safe / jnp.maximum(elapsed, 1e-30), 0.0, 1.0), 0.0)

    def _towards_upswing(self, v_free, v_start, v_th, s_up, elapsed, weight):
        """The voltage carried to the next step where no spike is found in this one:
        ``v_free`` (the step's linearised flow), raised towards the upswing estimate's
        voltage at the step's end where that estimate reaches ``v_th`` within two
        steps (``s_up`` ms from ``v_start``; ``elapsed`` ms of free flow in this step).

        The two disagree on a convex upswing: where the estimate reaches ``v_th`` just
        after the step's end, the linearised flow may carry a voltage far below it
        (-35 mV against AdEx's ``V_peak`` of 0), so a parameter change that moved the
        estimate across the step's end moved the spike by up to 0.85·dt. The estimate's
        voltage at the step's end is interpolated in its coordinate
        (:meth:`upswing_coordinate`, nearly linear in time there) and weighed in from
        ``s_up`` = 2 steps (weight 0) to 1 step (weight 1), where it is ``v_th``, so
        spike times are continuous in the parameters."""
        coordinate = self.upswing_coordinate(v_start)
        if coordinate is None:
            return v_free
        forward, inverse = coordinate
        taken = weight > 0  # only where s_up is finite and within two steps (_upswing_weight)
        s_safe = jnp.where(taken, s_up, 2.0 * elapsed + 1.0)
        y_start, y_th = forward(v_start), forward(jnp.broadcast_to(v_th, jnp.shape(v_start)))
        v_est = inverse(y_start + (y_th - y_start) * jnp.clip(elapsed / s_safe, 0.0, 1.0))
        return jnp.where(taken, v_free + weight * jnp.maximum(v_est - v_free, 0.0), v_free)

    def upswing_coordinate(self, v_ref):
        """``(coordinate, inverse)``: functions of the voltage in which the upswing of
        :meth:`upswing_crossing` moves nearly linearly in time (its scale may depend on
        ``v_ref``, the step's start voltage, mV), or None (default, with no upswing
        estimate)."""
        return None

    def _gates_after_spike(self, t1, y1: State, crossed, after, v_reset) -> dict:
        """The gates at ``t1`` after :meth:`after_spike`'s jumps. The solver advanced
        them over the whole step at the free voltage; from the spike on (``after`` ms)
        the voltage is at the reset instead, so their drift changes by the vector field
        at the reset minus that at the free voltage, taken over ``after`` (first order).
        That also gives them their dependence on the spike time, which gradients of
        later spike times need (the Izhikevich model's ``u``: 11 % off without)."""
        gates = self.after_spike(y1.gates, crossed)
        if not gates:
            return gates
        v_reset = jnp.broadcast_to(v_reset, y1.v.shape).astype(y1.v.dtype)
        drift_free = self.vector_field(t1, y1, 0.0).gates
        drift_reset = self.vector_field(t1, State(v=v_reset, gates=gates, events=y1.events), 0.0).gates
        return {k: jnp.where(crossed, g + (drift_reset[k] - drift_free[k]) * after, g) for k, g in gates.items()}

    def _spike_indicator(self, crossed, held, v_free, v_th, dt):
        """This step's spike (0/1); with a surrogate, differentiable in ``v_free``
        (weighted by the step's length ``dt``, ms)."""
        spiked = crossed.astype(jnp.result_type(float))
        if self.surrogate is None:
            return spiked
        # inf thresholds (never fire) stay out of the arithmetic.
        x = jnp.where(jnp.isfinite(v_th), v_free - jnp.where(jnp.isfinite(v_th), v_th, 0.0), -1e6)
        return jnp.where(held, spiked, self.surrogate.straight_through(spiked, x, dt))

    def _check_surrogate(self):
        from .surrogate import AbstractSurrogate

        if self.surrogate is not None and not isinstance(self.surrogate, AbstractSurrogate):
            raise ValueError(
                f"{type(self).__name__}.surrogate expects None or a jn.surrogate.Sigmoid / "
                f"FastSigmoid, got {type(self.surrogate).__name__}"
            )

    def _zero_events(self, events):
        return jax.tree.map(jnp.zeros_like, events)


def _mean(totals: dict, total, ok) -> dict:
    """``totals / total`` where ``ok``, else 0 (no upswing to average over)."""
    return {k: jnp.where(ok, x / jnp.where(ok, total, 1.0), 0.0) for k, x in totals.items()}


def _nonzero(value) -> bool:
    """True unless ``value`` is None or known to be 0 (traced values count as non-zero)."""
    if value is None:
        return False
    if isinstance(value, u.Quantity):
        value = value.mantissa
    return not units.is_concrete(value) or bool(np.any(np.asarray(value) != 0))


def _held_at_reset(v_reset, a, b, ref_end, t1):
    """``v_reset`` (mV), the voltage of a neuron refractory to the step's end ``t1``
    (``ref_end >= t1``, ms), with the derivative in ``ref_end`` of the flow
    ``dv/dt = a + b·v`` it takes from there where the period ends exactly at ``t1``.
    Such ties are common: spikes at step ends (delta synapse jumps, starts above
    threshold) and periods of whole steps (2 ms at dt 0.025); held outright, they
    carried no derivative in ``t_ref`` (0 where finite differences gave 1.76)."""
    # Zero (a constant) but at the tie: ref_end may be -inf (never fired), and the
    # unselected branch of the caller's where would then send 0·inf = nan backwards.
    return v_reset + (a + b * v_reset) * jnp.where(ref_end == t1, t1 - ref_end, 0.0)
