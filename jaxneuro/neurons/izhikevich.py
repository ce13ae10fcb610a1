"""Izhikevich's simple model (2003; the 2007 book's dimensional form)."""

from __future__ import annotations

import math

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from .. import units
from ..state import State
from .base import AbstractSpikingNeuron

# Roots of 0.04·v² + 5·v + 140: the 2003 model is k·(v - V_r)·(v - V_t) with k = 0.04.
_ROOT_LOW = -62.5 - math.sqrt(62.5**2 - 3500.0)  # -82.6556 mV
_ROOT_HIGH = -62.5 + math.sqrt(62.5**2 - 3500.0)  # -42.3444 mV

_PER_MS = units.ms**-1
_UNITS_S_PER_CM2_MV = units.S_per_cm2 / units.mV


class Izhikevich(AbstractSpikingNeuron):
    """Izhikevich's simple spiking model, in the dimensional form of his 2007 book::

        C·dv/dt = k·(v - V_r)·(v - V_t) - u + I
        du/dt = a·(b·(v - V_u) - u)

    and when ``v`` reaches ``V_peak`` a spike is recorded at the crossing time (found
    inside the solver step), ``v`` is reset to ``c`` and ``u`` jumps by ``d``.

    Units: ``C`` nF, ``k`` µS/mV, voltages mV, ``a`` 1/ms, ``b`` µS, ``u``, ``d`` and the
    input ``I`` nA. The defaults are the 2003 paper's model (Izhikevich, IEEE TNN 14:1569)
    read with 1 unit of current = 1 nA on C = 1 nF: ``k = 0.04`` µS/mV and ``V_r``,
    ``V_t`` the roots of ``0.04·v² + 5·v + 140`` (-82.656 and -42.344 mV), so
    ``dv/dt = 0.04·v² + 5·v + 140 - u + I`` exactly, with ``V_u = 0``
    (``du/dt = a·(b·v - u)``), ``V_peak = 30`` mV and a regular-spiking cell (a = 0.02,
    b = 0.2, c = -65, d = 8). A 10 nA step is then the paper's ``I = 10``. A different
    ``C`` scales the whole right-hand side, as in the book (``C·dv/dt = ...``).
    Starts at ``v0`` (default ``V_init`` = -65 mV) with ``u = b·(v0 - V_u)``.

    :meth:`classic` builds the 2003 form from ``a, b, c, d``; :meth:`book` the 2007
    form (``V_u = V_r``, start at ``V_r``), e.g. the book's regular-spiking cell
    ``Izhikevich.book(C=0.1, k=0.0007, V_r=-60, V_t=-40, a=0.03, b=-0.002, c=-50,
    d=0.1, V_peak=35)`` (100 pF, 0.7 nS/mV, -2 nS, 100 pA).

    These are the continuous equations, the spike found inside the step: spike counts
    converge to a fine-step solution as ``dt`` shrinks, not to the 2003 paper's
    published code, which advances ``v`` by two forward-Euler steps of 0.5 ms and
    ``u`` by one of 1 ms each millisecond and resets at the step's end; that coarse
    scheme fires differently, e.g. over 1 s at ``I = 10``: regular spiking 20 spikes
    there against 23 here, fast spiking 63 against 136 (137 as ``dt`` shrinks),
    chattering 43 against 87 (``dt`` = 0.025 ms; tests/test_adex_izhikevich.py). To
    reproduce the paper's figures spike for spike, run his scheme.

    ``u`` is driven by ``min(v, V_peak)``: ``v`` never exceeds ``V_peak`` in the model
    (it is reset there), so this changes nothing but keeps ``u`` sane where a solver
    evaluates the right-hand side past the peak (the voltage a step would reach
    without the reset).

    ``n`` makes a population (parameters scalar or of shape ``(n,)``);
    ``spike_capacity`` is the number of spike times kept per neuron. Density parameters
    are accepted as saiunit quantities (``C`` in µF/cm², ``k`` in S/cm²/mV, ``b`` in
    S/cm², ``d`` in mA/cm²): they are multiplied by ``area`` (µm²; default 1 cm² when a
    density is given), and stimuli given as current densities are scaled by the same
    area.
    """

    a: object = units.param(_PER_MS, default=0.02)  # negative in Izhikevich 2004's inhibition-induced cells
    b: object = units.param(units.uS, default=0.2)
    c: object = units.param(units.mV, default=-65.0)
    d: object = units.param(units.nA, default=8.0)
    C: object = units.param(units.nF, default=1.0, check="positive")
    V_peak: object = units.param(units.mV, default=30.0)
    k: object = units.param(units.uS / units.mV, default=0.04, check="positive")
    V_r: object = units.param(units.mV, default=_ROOT_LOW)
    V_t: object = units.param(units.mV, default=_ROOT_HIGH)
    V_u: object = units.param(units.mV, default=0.0)
    V_init: object = units.param(units.mV, default=-65.0)
    area: object = units.param(units.um2, default=None, check="positive")
    n: int | None = eqx.field(default=None, static=True, kw_only=True, converter=units.as_count)
    spike_capacity: int = eqx.field(default=100, static=True, kw_only=True, converter=units.as_count)
    surrogate: object = eqx.field(default=None, static=True, kw_only=True)
    skip_quiet_steps: bool = eqx.field(default=False, static=True, init=False, repr=False)

    def __post_init__(self):
        self._check_common()
        self._densities_to_absolute({
            "C": (units.uF_per_cm2, "capacitance"),
            "k": (_UNITS_S_PER_CM2_MV, "conductance"),
            "b": (units.S_per_cm2, "conductance"),
            "d": (units.mA_per_cm2, "current"),
        })
        super().__post_init__()

    def __check_init__(self):
        self.check_shapes()
        if all(units.is_concrete(x) for x in (self.c, self.V_peak, self.V_t, self.V_r)):
            # (k·(v - V_r)·(v - V_t) is symmetric in the two, but V_t is where the
            # upswing runs away: V_peak, the upswing's crossing time and book's V_u read it so.)
            if not np.all(np.asarray(self.V_r) <= np.asarray(self.V_t)):
                raise ValueError(
                    f"Izhikevich.V_r (the resting root, mV) must lie below V_t (the threshold root); "
                    f"got V_r={self.V_r}, V_t={self.V_t}: swapped?"
                )
            if not np.all(np.asarray(self.V_peak) > np.asarray(self.V_t)):
                raise ValueError(
                    f"Izhikevich.V_peak must lie above V_t (mV), where the upswing "
                    f"runs away; got V_peak={self.V_peak}, V_t={self.V_t}"
                )
            if not np.all(np.asarray(self.c) < np.asarray(self.V_peak)):
                raise ValueError(
                    f"Izhikevich.c (the reset voltage) must lie below V_peak (mV); got "
                    f"c={self.c}, V_peak={self.V_peak}"
                )

    @classmethod
    def classic(cls, a=0.02, b=0.2, c=-65.0, d=8.0, **kwargs):
        """The 2003 model ``dv/dt = 0.04·v² + 5·v + 140 - u + I``, ``du/dt = a·(b·v - u)``
        with the paper's ``a, b, c, d`` and ``I`` in nA (C = 1 nF)."""
        return cls(a=a, b=b, c=c, d=d, **kwargs)

    @classmethod
    def book(cls, C, k, V_r, V_t, a, b, c, d, V_peak, **kwargs):
        """The 2007 book's form ``C·dv/dt = k·(v - V_r)·(v - V_t) - u + I``,
        ``du/dt = a·(b·(v - V_r) - u)``, starting at rest ``V_r``. Plain numbers are read
        in nF, µS/mV, mV, 1/ms, µS, mV, nA, mV (pass saiunit quantities to use the
        book's pF, nS/mV, nS and pA directly)."""
        return cls(a=a, b=b, c=c, d=d, C=C, V_peak=V_peak, k=k, V_r=V_r, V_t=V_t,
                   V_u=V_r, V_init=V_r, **kwargs)

    @property
    def default_v0(self):
        """Initial voltage (mV) when ``simulate`` gets no ``v0``: ``V_init``."""
        return self.V_init

    def threshold(self):
        return self.V_peak

    def reset_voltage(self):
        return self.c

    def after_spike(self, gates, spiked):
        return {**gates, "u": gates["u"] + jnp.where(spiked, self.d, 0.0)}

    def flow_after_reset(self, y0, gates, a, b):
        return self._flow_at_reset(y0, gates, a, b)

    def upswing_crossing(self, v_start, gates, a, b, v_th, drift):
        """The time to ``V_peak`` with ``u`` and the input frozen over the step (the
        quadratic upswing integrated by quadrature); the frozen flow is a convex
        parabola in ``v``, smallest where its slope vanishes."""
        def lowest(slope):
            return 0.5 * (self.V_r + self.V_t) - slope * self.C / (2.0 * self.k)

        return self._frozen_crossing_time(v_start, gates, a, b, v_th, lambda v: v, lambda v: v, drift, lowest=lowest)

    def upswing_coordinate(self, v_ref):
        # The quadratic upswing: the voltage itself (as its quadrature takes it).
        return (lambda v: v), (lambda v: v)

    def display_voltage(self, v, spiked):
        """``V_peak`` at the end of a step with a spike, as the 2003 paper plots spikes
        (a saved sample shows it only if the spike was in the step just before it: see
        ``trace.spikes``), otherwise ``v``."""
        return jnp.where(spiked > 0, self.V_peak, v)

    def init_state(self, v0):
        f = jnp.result_type(float)
        v = jnp.broadcast_to(jnp.asarray(v0, dtype=f), self.shape)
        u = jnp.broadcast_to(self.b * (v - self.V_u), self.shape).astype(f)
        return State(v=v, gates={"u": u}, events=self._init_events())

    def membrane_current(self, v, gates):
        """Outward membrane current ``u - k·(v - V_r)·(v - V_t)``, nA."""
        return gates["u"] - self.k * (v - self.V_r) * (v - self.V_t)

    def vector_field(self, t, state, i_inj):
        v, u = state.v, state.gates["u"]
        dv = (i_inj - self.membrane_current(v, state.gates)) / self.C
        du = self.a * (self.b * (jnp.minimum(v, self.V_peak) - self.V_u) - u)
        return State(v=dv, gates={"u": du}, events=self._zero_events(state.events))

    def observables(self):
        return ("v", "u", "i_inj")

    def observe(self, name, t, state, i_inj):
        if name == "v":
            return self.display_voltage(state.v, state.events["spiked"])
        if name == "u":
            return state.gates["u"]
        if name == "i_inj":
            return jnp.broadcast_to(i_inj, self.shape)
        raise ValueError(f"unknown record name {name!r}; Izhikevich records {self.observables()}")
