"""Adaptive exponential integrate-and-fire neuron (Brette & Gerstner 2005)."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from .. import units
from ..state import State
from .base import AbstractSpikingNeuron


class AdEx(AbstractSpikingNeuron):
    """Adaptive exponential integrate-and-fire neuron (Brette & Gerstner 2005)::

        C·dV/dt = -gL·(V - EL) + gL·Delta_T·exp((V - V_T)/Delta_T) - w + I
        tau_w·dw/dt = a·(V - EL) - w

    When ``V`` reaches ``V_peak`` a spike is recorded at the crossing time (found inside
    the solver step), ``V`` is reset to ``V_reset`` (and held there for ``t_ref``) and
    ``w`` jumps by ``b``. Starts at ``v0`` (default ``EL``) with ``w`` at its steady
    state there, ``a·(v0 - EL)`` (0 at the default ``v0``), as every model's gates
    start (NEURON's ``finitialize``); :func:`jaxneuro.steady_state` and the input
    resistance therefore include the adaptation current.

    Absolute units: ``C`` nF, ``gL`` and ``a`` µS, potentials mV, ``tau_w`` and
    ``t_ref`` ms, ``b`` and ``w`` nA, input nA. Defaults are Brette & Gerstner's
    (2005) Table 1 (C = 281 pF, gL = 30 nS, EL = -70.6 mV, V_T = -50.4 mV,
    Delta_T = 2 mV, a = 4 nS, tau_w = 144 ms, b = 80.5 pA, V_reset = EL). ``V_peak`` is
    where the upswing is cut and counted as a spike (0 mV, as NEST's ``aeif`` models
    and Naud et al. 2008); past ``V_T + 5·Delta_T`` the voltage diverges within a small
    fraction of a millisecond, so the spike time barely depends on it.

    The exponential is evaluated as ``exp(min(x, x_peak))`` continued linearly above
    ``x_peak = (V_peak - V_T)/Delta_T``, and ``w`` is driven by ``min(V, V_peak)``.
    The model's voltage never exceeds ``V_peak`` (it is reset there), so neither
    changes the dynamics; they keep the right-hand side finite where a solver
    evaluates it past the peak (the voltage a step would reach without the reset, or
    a stage of an explicit Runge–Kutta method), so nothing overflows to ``inf`` and
    gradients stay finite.

    ``n`` makes a population (parameters scalar or of shape ``(n,)``);
    ``spike_capacity`` is the number of spike times kept per neuron. Density parameters
    are accepted as saiunit quantities (``C`` in µF/cm², ``gL`` and ``a`` in S/cm², ``b``
    in mA/cm²): they are multiplied by ``area`` (µm²; default 1 cm² when a density is
    given), and stimuli given as current densities are scaled by the same area.

    Cost: the spike time inside a step comes from an 8-point quadrature of the upswing
    (its nodes in closed form: one logarithm each), computed in every step for every
    neuron (a vectorised step cannot skip the ones far from threshold), so a
    population's step costs several times a LIF's or an HH compartment's: in float64
    on a CPU, one loop, about 100 ns per neuron-step at 10⁴ neurons against a LIF's 15
    and an HH compartment's 7.9 (6.7x a LIF's; same run, ``benchmarks/neuron_blocks.py``,
    2026-12-01, RESULTS.md (20)); ``backend="auto"`` splits large populations over the
    cores in cache-sized blocks, where it gains most (1.21x over blocks of 2048 in
    float64, 1.44x in float32).
    """

    C: object = units.param(units.nF, default=0.281, check="positive")
    gL: object = units.param(units.uS, default=0.030, check="positive")
    EL: object = units.param(units.mV, default=-70.6)
    V_T: object = units.param(units.mV, default=-50.4)
    Delta_T: object = units.param(units.mV, default=2.0, check="positive")
    a: object = units.param(units.uS, default=0.004)
    tau_w: object = units.param(units.ms, default=144.0, check="positive")
    b: object = units.param(units.nA, default=0.0805)
    V_reset: object = units.param(units.mV, default=-70.6)
    V_peak: object = units.param(units.mV, default=0.0)
    t_ref: object = units.param(units.ms, default=0.0, check="nonnegative")
    area: object = units.param(units.um2, default=None, check="positive")
    n: int | None = eqx.field(default=None, static=True, kw_only=True, converter=units.as_count)
    spike_capacity: int = eqx.field(default=100, static=True, kw_only=True, converter=units.as_count)
    surrogate: object = eqx.field(default=None, static=True, kw_only=True)
    skip_quiet_steps: bool = eqx.field(default=False, static=True, init=False, repr=False)

    def __post_init__(self):
        self._check_common()
        self._densities_to_absolute({
            "C": (units.uF_per_cm2, "capacitance"),
            "gL": (units.S_per_cm2, "conductance"),
            "a": (units.S_per_cm2, "conductance"),
            "b": (units.mA_per_cm2, "current"),
        })
        super().__post_init__()

    def __check_init__(self):
        self.check_shapes()
        if units.is_concrete(self.V_peak) and units.is_concrete(self.V_T):
            if not np.all(np.asarray(self.V_peak) > np.asarray(self.V_T)):
                raise ValueError(
                    f"AdEx.V_peak must lie above V_T (mV): the spike is cut where the "
                    f"exponential upswing has started; got V_peak={self.V_peak}, V_T={self.V_T}"
                )
        if units.is_concrete(self.V_reset) and units.is_concrete(self.V_peak):
            if not np.all(np.asarray(self.V_reset) < np.asarray(self.V_peak)):
                raise ValueError(
                    f"AdEx.V_reset must lie below V_peak (mV); got V_reset={self.V_reset}, "
                    f"V_peak={self.V_peak}"
                )

    @property
    def default_v0(self):
        """Initial voltage (mV) when ``simulate`` gets no ``v0``: ``EL``."""
        return self.EL

    def threshold(self):
        return self.V_peak

    def reset_voltage(self):
        return self.V_reset

    def refractory_period(self):
        return self.t_ref

    def after_spike(self, gates, spiked):
        return {**gates, "w": gates["w"] + jnp.where(spiked, self.b, 0.0)}

    def upswing_crossing(self, v_start, gates, a, b, v_th, drift):
        """The time to ``V_peak`` with ``w`` and the input frozen over the step,
        integrated in ``y = -exp(-(V - v_start)/Delta_T)``, which moves almost linearly in
        time on the exponential upswing. The frozen flow is convex in ``V``, smallest
        where its slope vanishes: at ``V_T`` for an injected current (the rheobase
        condition), higher under a clamp (slope ``-1/(rs·C)``)."""
        def lowest(slope):
            return self.V_T + self.Delta_T * jnp.log(jnp.maximum(1.0 - slope * self.C / self.gL, 1e-30))

        forward, inverse = self.upswing_coordinate(v_start)
        # exp((v_start - V_T)/Delta_T); v_start above V_peak has crossed already.
        at_start = jnp.exp(jnp.minimum(v_start - self.V_T, self.V_peak - self.V_T) / self.Delta_T)

        def node(y):
            # On the nodes V <= V_peak, so the exponential is unguarded and equals
            # -at_start/y, and dy/dV = -y/Delta_T: one logarithm per node, not a log
            # and two exps.
            v = inverse(y)
            i_membrane = self.leak_current(v) + self.gL * self.Delta_T * at_start / y + gates["w"]
            return v, -y / self.Delta_T, i_membrane

        return self._frozen_crossing_time(v_start, gates, a, b, v_th, forward, inverse, drift, lowest=lowest,
                                          node=node)

    def upswing_coordinate(self, v_ref):
        """``y = -exp(-(V - v_ref)/Delta_T)`` and its inverse, ``v_ref`` the step's
        start: referred to ``V_T``, ``y`` and ``dy/dV`` overflowed in float32 below
        threshold for a small ``Delta_T`` (``exp(88)`` at 17.6 mV below ``V_T`` with
        ``Delta_T = 0.2``), and the quadrature's weights underflowed to 0: NaN. The
        quadrature and the interpolation in ``y`` are the same in any such scale."""
        def forward(v):
            return -jnp.exp(-(v - v_ref) / self.Delta_T)

        def inverse(y):
            return v_ref - self.Delta_T * jnp.log(-y)

        return forward, inverse

    def flow_after_reset(self, y0, gates, a, b):
        return self._flow_at_reset(y0, gates, a, b)

    def display_voltage(self, v, spiked):
        """``V_peak`` at the end of a step with a spike, so spikes show in a trace (a
        saved sample shows it only if the spike was in the step just before it: see
        ``trace.spikes``), otherwise ``v``."""
        return jnp.where(spiked > 0, self.V_peak, v)

    def init_state(self, v0):
        f = jnp.result_type(float)
        v = jnp.broadcast_to(jnp.asarray(v0, dtype=f), self.shape)
        w = jnp.broadcast_to(self.a * (jnp.minimum(v, self.V_peak) - self.EL), self.shape).astype(f)
        return State(v=v, gates={"w": w}, events=self._init_events())

    # --- currents (nA, outward positive) --------------------------------------------
    def leak_current(self, v):
        """Leak current ``gL·(V - EL)``, nA."""
        return self.gL * (v - self.EL)

    def exp_current(self, v):
        """Spike-initiation current ``-gL·Delta_T·exp((V - V_T)/Delta_T)``, nA (inward,
        so negative), with the exponent guarded above ``V_peak`` (see the class doc)."""
        x = (v - self.V_T) / self.Delta_T
        x_peak = (self.V_peak - self.V_T) / self.Delta_T
        e = jnp.exp(jnp.minimum(x, x_peak)) * (1.0 + jnp.maximum(x - x_peak, 0.0))
        return -self.gL * self.Delta_T * e

    def membrane_current(self, v, gates):
        """Total outward current through the membrane (leak, exponential, ``w``), nA."""
        return self.leak_current(v) + self.exp_current(v) + gates["w"]

    def vector_field(self, t, state, i_inj):
        v, w = state.v, state.gates["w"]
        dv = (i_inj - self.membrane_current(v, state.gates)) / self.C
        dw = (self.a * (jnp.minimum(v, self.V_peak) - self.EL) - w) / self.tau_w
        return State(v=dv, gates={"w": dw}, events=self._zero_events(state.events))

    def observables(self):
        return ("v", "w", "i_inj", "i_leak", "i_exp")

    def observe(self, name, t, state, i_inj):
        if name == "v":
            return self.display_voltage(state.v, state.events["spiked"])
        if name == "w":
            return state.gates["w"]
        if name == "i_inj":
            return jnp.broadcast_to(i_inj, self.shape)
        if name == "i_leak":
            return self.leak_current(state.v)
        if name == "i_exp":
            return self.exp_current(state.v)
        raise ValueError(f"unknown record name {name!r}; AdEx records {self.observables()}")
