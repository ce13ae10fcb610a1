"""Hodgkin–Huxley squid axon channels: NEURON's ``hh`` mechanism."""

from __future__ import annotations

import functools
import math
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .. import units
from .base import (
    AbstractAlphaBetaChannel, AbstractChannel, exprel_ratio_of_exp, exprel_series, exprel_series_applies,
)


class HH(AbstractAlphaBetaChannel):
    """NEURON's ``hh`` (hh.mod): sodium, potassium and leak in one mechanism.

    ``ina = gnabar·m³·h·(v - ena)``, ``ik = gkbar·n⁴·(v - ek)``, ``il = gl·(v - el)``;
    densities in mA/cm². Conductances in S/cm² (``gnabar`` 0.12, ``gkbar`` 0.036,
    ``gl`` 0.0003), potentials in mV (``el`` -54.3, NEURON's, resting at -64.974 mV;
    Hodgkin and Huxley's leak is 10.613 mV above a rest of -65, ``el=-54.387``, which
    texts quoting a rest of -64.996 mV and its gates use; ``ena`` 50 and ``ek`` -77 are
    NEURON's default ion reversal potentials). Rates are hh.mod's, scaled by
    ``q10 ** ((T - reference_temperature) / 10)`` with ``q10`` 3 from 6.3 °C at the
    compartment's temperature ``T``. Gates ``m``, ``h``, ``n``: recorded as
    ``"m_hh"``, ``"h_hh"``, ``"n_hh"``.

    ``use_table`` (static, default ``False``): take the gates' steady states and time
    constants from hh.mod's rate table, as NEURON does by default (``usetable_hh = 1``):
    201 points from -100 to 100 mV, linear interpolation, and the end values outside
    that range. It reproduces NEURON's default runs (to 1e-6 mV in the tests; NEURON
    with ``usetable_hh = 0`` is the exact computation, ``use_table=False``). It is for
    parity, not speed: on a CPU the lookups cost more than the exponentials they replace
    (1000 HH compartments: 1.5× slower in float64, 2.5× in float32; benchmarks/RESULTS.md).

    Subclasses: one that overrides :meth:`rates` (hh with other rates) gets steady
    states, time constants, the solver's rates and the derivative all from its
    ``rates`` (the generic alpha/beta forms; HH's faster :meth:`gate_inf_rate` is for
    hh.mod's own rates), and refuses ``use_table=True``; one that overrides
    :meth:`gate_inf_tau` (e.g. ``super().gate_inf_tau(...)`` then a floor on ``tau``)
    gets every path from it, table or not (see :class:`AbstractChannel`).
    """

    gnabar: object = units.param(units.S_per_cm2, default=0.12, check="nonnegative")
    gkbar: object = units.param(units.S_per_cm2, default=0.036, check="nonnegative")
    gl: object = units.param(units.S_per_cm2, default=0.0003, check="nonnegative")
    el: object = units.param(units.mV, default=-54.3)
    ena: object = units.param(units.mV, default=50.0)
    ek: object = units.param(units.mV, default=-77.0)
    q10: object = units.param(None, default=3.0, check="positive")
    reference_temperature: object = units.param(units.celsius, default=6.3)
    name: str = eqx.field(default="hh", static=True, kw_only=True)
    use_table: bool = eqx.field(default=False, static=True)

    gate_names: ClassVar[tuple[str, ...]] = ("m", "h", "n")

    def __check_init__(self):
        if not isinstance(self.use_table, bool):
            raise ValueError(f"HH.use_table expects True or False, got {self.use_table!r}")
        if self.use_table and type(self).rates is not HH.rates:
            raise ValueError(
                f"{type(self).__name__}(use_table=True): the table holds hh.mod's own rates, "
                f"and {type(self).__name__} overrides rates(); use use_table=False (the exact "
                "rates, NEURON's usetable = 0)"
            )

    def rates(self, v):
        """``{gate: (alpha, beta)}`` in 1/ms at ``reference_temperature``."""
        u = -(v + 65.0)
        e10, e20, e80 = _powers(u)
        # Multiplications by constant reciprocals: divisions cost several times more.
        return {
            # 0.1·vtrap(-(v+40), 10), exp(-(v+40)/10) = e10·e^2.5
            "m": (0.1 * exprel_ratio_of_exp(u + 25.0, 10.0, e10 * math.exp(2.5)),
                  4.0 * jnp.exp(u * (1.0 / 18.0))),
            # exp(-(v+35)/10) = e10·e^3
            "h": (0.07 * e20, 1.0 / (e10 * math.exp(3.0) + 1.0)),
            # 0.01·vtrap(-(v+55), 10), exp(-(v+55)/10) = e10·e
            "n": (0.01 * exprel_ratio_of_exp(u + 10.0, 10.0, e10 * math.e), 0.125 * e80),
        }

    def gate_inf_rate(self, v, temperature):
        """``{gate: (steady state, rate in 1/ms)}``, what the default solver advances
        the gates with. The same rates as :meth:`rates`, arranged so that each gate
        takes one division: ``alpha = P/A`` (vtrap) and ``beta`` give
        ``alpha + beta = N/A`` with ``N = P + beta·A``, and one reciprocal ``1/(A·N)``
        yields both ``1/A`` and ``1/N`` (1000 HH compartments: ~15 % faster per step
        than three divisions per gate; benchmarks/RESULTS.md)."""
        phi = self.rate_factor(temperature)
        if self.use_table:
            return {g: (inf, phi / rtau) for g, (inf, rtau) in _table_lookup(v).items()}
        u = _within_range(-(v + 65.0))
        e10, e20, e80 = _powers(u)
        # h: alpha = 0.07·e20, beta = 1/B; alpha + beta = M/B with M = alpha·B + 1.
        alpha_h = 0.07 * e20
        b = e10 * math.exp(3.0) + 1.0
        m = alpha_h * b + 1.0
        r = 1.0 / (b * m)
        inv_m = b * r
        # x_inf = alpha·B/M, as 1 - 1/M where that does not cancel; where B·M overflows
        # (float32 below ~-400 mV), r = 0 gives the limits x_inf = 1, rate = phi·alpha.
        h = (jnp.where(m > 2.0, 1.0 - inv_m, alpha_h * b * inv_m), phi * (alpha_h + m * r))
        return {
            "m": _vtrap_inf_rate(u + 25.0, e10 * math.exp(2.5), 0.1, 4.0 * jnp.exp(u * (1.0 / 18.0)), phi),
            "h": h,
            "n": _vtrap_inf_rate(u + 10.0, e10 * math.e, 0.01, 0.125 * e80, phi),
        }

    def rate_factor(self, temperature):
        return units.q10_factor(self.q10, temperature, self.reference_temperature)

    def gate_inf_tau(self, v, temperature):
        if not self.use_table:
            return super().gate_inf_tau(v, temperature)
        phi = self.rate_factor(temperature)
        return {g: (inf, rtau / phi) for g, (inf, rtau) in _table_lookup(v).items()}

    # With the table, steady state and derivative come from gate_inf_tau, as for any
    # channel (AbstractChannel's defaults), not from alpha and beta.
    def steady_state(self, v, temperature):
        if not self.use_table:
            return super().steady_state(v, temperature)
        return AbstractChannel.steady_state(self, v, temperature)

    def derivative(self, v, gates, temperature):
        if not self.use_table:
            return super().derivative(v, gates, temperature)
        return AbstractChannel.derivative(self, v, gates, temperature)

    def component_currents(self, v, gates):
        """``{"ina", "ik", "il"}`` densities in mA/cm² (NEURON's names)."""
        m, h, n = gates["m"], gates["h"], gates["n"]
        return {
            "ina": self.gnabar * m**3 * h * (v - self.ena),
            "ik": self.gkbar * n**4 * (v - self.ek),
            "il": self.gl * (v - self.el),
        }

    def current(self, v, gates):
        c = self.component_currents(v, gates)
        return c["ina"] + c["ik"] + c["il"]


def _powers(u):
    """``exp(u/10)``, ``exp(u/20)``, ``exp(u/80)``: five of hh.mod's six exponentials
    are powers of ``exp(u/80)`` (``u = -(v + 65)`` mV), so one ``exp`` and three
    multiplications give them (``exp(u/10)`` within 20 ulp from -200 to 150 mV, 11 ulp
    within 40 mV of rest; an ``exp`` or a square root each costs more). The factor 2 keeps XLA from rewriting ``exp(x)·exp(x)`` into
    ``exp(2x)``, which would bring the exponentials back; powers of two scale exactly."""
    e80 = jnp.exp(u * (1.0 / 80.0))
    a = 2.0 * e80
    a2 = a * a
    e20 = a2 * a2 * (1.0 / 16.0)
    return e20 * e20, e20, e80


def _within_range(u):
    """``u = -(v + 65)`` (mV) for the one-division forms: as it is in float64; in a
    dtype of float32's range or less, at most ``6·ln(largest finite)`` (float32: 532,
    i.e. the rates of -597 mV below that). Further down the forms' products overflow
    and gave ``inf·0 = nan`` from ~-610 mV (a float32 run started at -650 mV was nan
    from its first step); there the gates are at their limits (m, n closed, h open)
    within a step either way. A Python-level choice: float64 programs are unchanged."""
    largest = float(jnp.finfo(jnp.result_type(u, float)).max)
    if largest > 1e300:
        return u
    return jnp.minimum(u, 6.0 * math.log(largest))


def _vtrap_inf_rate(x, exp_x, scale, beta, phi):
    """Steady state and rate (1/ms) of a gate with ``alpha = scale·x/(exp(x/10) - 1)``
    (hh.mod's vtrap; ``exp_x`` = ``exp(x/10)``) and ``beta``, with one division:
    ``alpha = P/A``, ``alpha + beta = N/A`` with ``N = P + beta·A`` (no cancellation:
    ``P`` and ``beta·A`` share their sign), and ``r = 1/(A·N)`` gives ``1/A = N·r`` and
    ``1/N = A·r``. Near ``x = 0`` the series of :func:`exprel_ratio_of_exp` stands for
    ``P`` with ``A = 1``. Where ``A·N`` overflows (float32 below ~-400 mV), ``r = 0``
    gives the limits ``x_inf = 0``, ``rate = phi·beta``."""
    z = x * 0.1
    small = exprel_series_applies(z)
    p = jnp.where(small, (10.0 * scale) * exprel_series(z), scale * x)
    a = jnp.where(small, 1.0, exp_x - 1.0)
    n = p + beta * a
    r = 1.0 / (a * n)
    return p * (a * r), phi * (beta + p * (n * r))


# hh.mod: TABLE minf, mtau, hinf, htau, ninf, ntau FROM -100 TO 100 WITH 200.
_TABLE_V0, _TABLE_INTERVALS, _TABLE_DV = -100.0, 200, 1.0


@functools.lru_cache(maxsize=4)
def _table(dtype: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Steady states and ``1/(alpha + beta)`` (ms, before the temperature factor) at
    the table's voltages, from :meth:`HH.rates`; computed once per dtype, eagerly
    even while tracing (the table is a constant)."""
    with jax.ensure_compile_time_eval():
        v = jnp.asarray(_TABLE_V0 + _TABLE_DV * np.arange(_TABLE_INTERVALS + 1), dtype=dtype)
        rates = HH().rates(v)
        return {g: (np.asarray(a / (a + b)), np.asarray(1.0 / (a + b))) for g, (a, b) in rates.items()}


def _table_lookup(v):
    """NEURON's table lookup (nocmodl's ``_n_rates``): linear between grid points, the
    end values outside the grid."""
    v = jnp.asarray(v)
    dtype = jnp.result_type(v, float)
    xi = jnp.clip((v - _TABLE_V0) / _TABLE_DV, 0.0, float(_TABLE_INTERVALS))
    i = jnp.minimum(jnp.floor(xi), _TABLE_INTERVALS - 1).astype(jnp.int32)
    theta = (xi - i).astype(dtype)
    out = {}
    for g, columns in _table(jnp.dtype(dtype).name).items():
        pair = []
        for col in columns:
            col = jnp.asarray(col, dtype=dtype)
            lo = col[i]
            pair.append(lo + theta * (col[i + 1] - lo))
        out[g] = tuple(pair)
    return out
