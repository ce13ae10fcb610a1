"""Leak and HH against their defining formulas (hh.mod) at several voltages."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxneuro as jn

VOLTAGES = np.array([-100.0, -80.0, -65.0, -55.0, -40.0, -35.0, -20.0, 0.0, 30.0])


def vtrap(x, y):
    return np.where(np.abs(x / y) < 1e-6, y * (1 - x / y / 2), x / np.expm1(np.where(x == 0, 1, x) / y))


def hh_reference(v, celsius):
    """hh.mod's rates() transcribed in NumPy: (inf, tau) of m, h, n."""
    q10 = 3 ** ((celsius - 6.3) / 10)
    out = {}
    a, b = 0.1 * vtrap(-(v + 40), 10), 4 * np.exp(-(v + 65) / 18)
    out["m"] = (a / (a + b), 1 / (q10 * (a + b)))
    a, b = 0.07 * np.exp(-(v + 65) / 20), 1 / (np.exp(-(v + 35) / 10) + 1)
    out["h"] = (a / (a + b), 1 / (q10 * (a + b)))
    a, b = 0.01 * vtrap(-(v + 55), 10), 0.125 * np.exp(-(v + 65) / 80)
    out["n"] = (a / (a + b), 1 / (q10 * (a + b)))
    return out


@pytest.mark.parametrize("celsius", [6.3, 16.3, 37.0])
def test_hh_inf_and_tau_match_hh_mod(celsius):
    got = jn.channels.HH().gate_inf_tau(jnp.asarray(VOLTAGES), celsius)
    ref = hh_reference(VOLTAGES, celsius)
    for g in "mhn":
        np.testing.assert_allclose(got[g][0], ref[g][0], rtol=1e-12)
        np.testing.assert_allclose(got[g][1], ref[g][1], rtol=1e-12)


def test_hh_q10_scales_tau_by_three_per_ten_degrees():
    hh = jn.channels.HH()
    tau_cold = hh.gate_inf_tau(-50.0, 6.3)["n"][1]
    tau_warm = hh.gate_inf_tau(-50.0, 16.3)["n"][1]
    assert float(tau_cold / tau_warm) == pytest.approx(3.0, rel=1e-12)


def test_hh_current_formula_and_defaults():
    hh = jn.channels.HH()
    assert [float(x) for x in (hh.gnabar, hh.gkbar, hh.gl, hh.el, hh.ena, hh.ek)] == [0.12, 0.036, 0.0003, -54.3, 50.0, -77.0]
    v, m, h, n = -30.0, 0.3, 0.4, 0.5
    expected = 0.12 * m**3 * h * (v - 50) + 0.036 * n**4 * (v + 77) + 0.0003 * (v + 54.3)
    assert float(hh.current(v, {"m": m, "h": h, "n": n})) == pytest.approx(expected, rel=1e-12)
    parts = hh.component_currents(v, {"m": m, "h": h, "n": n})
    assert float(parts["ik"]) == pytest.approx(0.036 * n**4 * (v + 77), rel=1e-12)


def test_hh_rates_are_smooth_at_the_vtrap_singularities():
    hh = jn.channels.HH()
    for v_sing, gate in ((-40.0, "m"), (-55.0, "n")):
        d = jax.grad(lambda v: hh.gate_inf_tau(v, 6.3)[gate][0])(v_sing)
        fd = (hh.gate_inf_tau(v_sing + 1e-5, 6.3)[gate][0] - hh.gate_inf_tau(v_sing - 1e-5, 6.3)[gate][0]) / 2e-5
        assert np.isfinite(d) and float(d) == pytest.approx(float(fd), rel=1e-5)


def test_seed002_resting_gates():
    gates = jn.channels.HH().steady_state(-65.0, 6.3)
    # Seed 002 prints m = 0.05296, h = 0.5960, n = 0.3177 at its resting potential.
    assert float(gates["m"]) == pytest.approx(0.0529, abs=2e-4)
    assert float(gates["h"]) == pytest.approx(0.596, abs=5e-4)
    assert float(gates["n"]) == pytest.approx(0.3177, abs=2e-4)


def test_resting_voltages_of_neurons_and_hodgkin_huxleys_leak():
    # As the HH docstring says: NEURON's el = -54.3 rests at -64.974 mV, Hodgkin and
    # Huxley's -54.387 at -64.996 (seed 002's printed rest).
    for el, rest in ((-54.3, -64.974), (-54.387, -64.996)):
        soma = jn.Compartment(length=20.0, diam=20.0, channels=[jn.channels.HH(el=el)])
        assert float(jn.steady_state(soma).v) == pytest.approx(rest, abs=5e-4)


def test_leak_is_neurons_pas():
    leak = jn.channels.Leak()
    assert (float(leak.g), float(leak.e), leak.name) == (0.001, -70.0, "pas")
    assert float(jn.channels.Leak(g=2e-4, e=-60).current(-50.0, {})) == pytest.approx(2e-4 * 10)
    assert leak.steady_state(-50.0, 6.3) == {}


def test_hh_shared_exponential_rates_match_hh_mod_near_the_singularities():
    # The rates share exp(-(v+65)/10); near vtrap's singularities (v = -40, -55 mV)
    # a series replaces the cancelling difference. Dense voltages across both.
    v = np.concatenate([np.linspace(-120, 60, 2001), -40 + np.logspace(-9, 0, 50),
                        -40 - np.logspace(-9, 0, 50), -55 + np.logspace(-9, 0, 50), [-40.0, -55.0]])
    got = jn.channels.HH().gate_inf_tau(jnp.asarray(v), 6.3)
    ref = hh_reference(v, 6.3)
    for g in "mhn":
        np.testing.assert_allclose(got[g][0], ref[g][0], rtol=1e-12, atol=1e-300)
        np.testing.assert_allclose(got[g][1], ref[g][1], rtol=1e-12)


def test_exprel_ratio_is_accurate_with_finite_gradients_at_the_singularity():
    """vtrap against NumPy's expm1 (accurate near 0) and its analytic derivative
    d/dx [x / (e^z - 1)] = (e^z - 1 - z e^z) / (e^z - 1)², z = x/y (limit -1/2 at 0)."""
    xs = np.concatenate([np.linspace(-30, 30, 601), np.logspace(-12, 0, 40), -np.logspace(-12, 0, 40), [0.0]])
    y = 10.0
    z = xs / y
    em1 = np.expm1(z)
    with np.errstate(invalid="ignore", divide="ignore"):
        ref = np.where(xs == 0, y, xs / em1)
        dref = np.where(np.abs(z) < 1e-5, -0.5 + z / 6.0, (em1 - z * np.exp(z)) / em1**2)
    x = jnp.asarray(xs)
    for f in (lambda x: jn.channels.exprel_ratio(x, y),
              lambda x: jn.channels.exprel_ratio_of_exp(x, y, jnp.exp(x / y))):
        np.testing.assert_allclose(f(x), ref, rtol=1e-13)
        grad = jax.vmap(jax.grad(f))(x)
        assert np.all(np.isfinite(grad))
        np.testing.assert_allclose(grad, dref, rtol=1e-6, atol=1e-9)


def test_float32_rates_and_their_derivatives_near_the_removable_singularities():
    """In float32, hh's vtrap rates (m at -40 mV, n at -55 mV) and their derivatives
    against float64 at the same voltages: the series window is wider in float32, where
    a window of |x/y| < 1e-2 left alpha_m's derivative 1.4 % off just outside it and
    the gates' rate constants' derivatives up to 15 %."""
    v = np.concatenate([np.linspace(-46.0, -34.0, 2401), np.linspace(-61.0, -49.0, 2401)]).astype(np.float32)

    def curves(hh, v):
        fns = {f"{what} {g}": (lambda v, g=g, k=k, f=f: f(v)[g][k])
               for g in ("m", "n")
               for what, f, k in (("alpha", hh.rates, 0), ("inf", lambda v: hh.gate_inf_rate(v, 6.3), 0),
                                  ("rate", lambda v: hh.gate_inf_rate(v, 6.3), 1))}
        return {name: [np.asarray(jax.vmap(h)(v)) for h in (f, jax.grad(f))] for name, f in fns.items()}

    ref = curves(jn.channels.HH(), jnp.asarray(v, dtype=jnp.float64))
    with jax.enable_x64(False):
        got = curves(jn.channels.HH(), jnp.asarray(v))
    for name, (value, slope) in ref.items():
        value32, slope32 = got[name]
        assert value32.dtype == slope32.dtype == np.float32, name
        np.testing.assert_allclose(value32, value, rtol=1e-5, err_msg=name)
        np.testing.assert_allclose(slope32, slope, rtol=1e-4, atol=1e-4 * np.abs(slope).max(), err_msg=name)


def test_alpha_beta_derivative_is_the_inf_tau_relaxation():
    hh = jn.channels.HH()
    v = jnp.asarray(VOLTAGES)
    gates = {"m": jnp.full(v.shape, 0.3), "h": jnp.full(v.shape, 0.6), "n": jnp.full(v.shape, 0.4)}
    d = hh.derivative(v, gates, 16.3)
    for g, (inf, tau) in hh.gate_inf_tau(v, 16.3).items():
        np.testing.assert_allclose(d[g], (inf - gates[g]) / tau, rtol=1e-12, atol=1e-15)


# The solver advances gates from gate_inf_rate (steady state, 1/tau); HH computes it with
# one division per gate, the other channels from gate_inf_tau or their rates.
INF_RATE_VOLTAGES = np.concatenate([VOLTAGES, [-150.0, -55.0 + 1e-4, -40.0 - 1e-4, -40.0, 60.0, 120.0]])


@pytest.mark.parametrize("celsius", [6.3, 37.0])
def test_hh_inf_rate_matches_hh_mod(celsius):
    got = jn.channels.HH().gate_inf_rate(jnp.asarray(INF_RATE_VOLTAGES), celsius)
    ref = hh_reference(INF_RATE_VOLTAGES, celsius)
    for g in "mhn":
        np.testing.assert_allclose(got[g][0], ref[g][0], rtol=2e-14, atol=1e-300)
        np.testing.assert_allclose(got[g][1], 1.0 / ref[g][1], rtol=2e-14)
    # The rate table's values, as NEURON's usetable_hh = 1 gives them.
    table = jn.channels.HH(use_table=True)
    for g, (inf, tau) in table.gate_inf_tau(jnp.asarray(VOLTAGES), celsius).items():
        np.testing.assert_allclose(table.gate_inf_rate(jnp.asarray(VOLTAGES), celsius)[g][1], 1.0 / tau, rtol=1e-14)


def test_hh_inf_rate_is_finite_with_the_right_limits_far_from_rest_in_float32():
    # Below ~-610 mV the one-division forms gave inf·0 = nan in float32 (exp(x/10) and
    # the products overflowing), and a float32 run started there was nan from its
    # first step. Below -597 mV float32 now takes the rates of -597 mV.
    hyper = [-1000.0, -900.0, -700.0, -620.0, -600.0, -590.0, -450.0, -300.0]
    v = jnp.asarray(hyper + [80.0, 300.0], jnp.float32)
    got = jn.channels.HH().gate_inf_rate(v, 6.3)
    k = len(hyper)
    for g in "mhn":
        assert got[g][0].dtype == jnp.float32
        assert np.all(np.isfinite(got[g][0])) and np.all(np.isfinite(got[g][1])), g
    # Hyperpolarised: m and n closed, h open (their exact limits).
    np.testing.assert_allclose(np.asarray(got["m"][0][:k]), 0.0, atol=1e-12)
    np.testing.assert_allclose(np.asarray(got["n"][0][:k]), 0.0, atol=1e-6)
    np.testing.assert_allclose(np.asarray(got["h"][0][:k]), 1.0, rtol=1e-6)
    # The rates are hh.mod's (alpha + beta) to float32 rounding of exponentials of
    # arguments up to ~50, down to -597 mV; below, those of -597 mV.
    ref = hh_reference(np.asarray(v, np.float64), 6.3)
    at_bound = hh_reference(np.asarray([-(65.0 + 6.0 * np.log(np.finfo(np.float32).max))]), 6.3)
    for g in "mhn":
        rate = np.asarray(got[g][1], np.float64)
        np.testing.assert_allclose(rate[5:], 1.0 / ref[g][1][5:], rtol=3e-5)
        np.testing.assert_allclose(rate[:5], 1.0 / at_bound[g][1][0], rtol=3e-5)
        np.testing.assert_allclose(np.asarray(got[g][0][k:]), ref[g][0][k:], rtol=1e-5, atol=1e-12)
    with jax.enable_x64(False):  # a run started far below: finite, relaxing towards rest
        soma = jn.Compartment(length=20.0, diam=20.0, channels=[jn.channels.HH()])
        v_run = np.asarray(jn.simulate(soma, 1.0, v0=-1000.0).v)
        assert np.all(np.isfinite(v_run)) and np.all(np.diff(v_run) > 0)


def test_gate_inf_rate_of_other_channels():
    v = jnp.asarray(VOLTAGES)
    ih = jn.channels.Ih_HM1992()
    for g, (inf, tau) in ih.gate_inf_tau(v, 36.0).items():
        got_inf, got_rate = ih.gate_inf_rate(v, 36.0)[g]
        np.testing.assert_allclose(got_inf, inf, rtol=1e-15)
        np.testing.assert_allclose(got_rate, 1.0 / tau, rtol=1e-15)
    na = jn.channels.INa_Ba2002()
    for g, (inf, tau) in na.gate_inf_tau(v, 36.0).items():
        got_inf, got_rate = na.gate_inf_rate(v, 36.0)[g]
        np.testing.assert_allclose(got_inf, inf, rtol=1e-14)
        np.testing.assert_allclose(got_rate, 1.0 / tau, rtol=1e-14)
    assert jn.channels.Leak().gate_inf_rate(v, 6.3) is None  # defines its own derivative


class _HHByDerivative(jn.channels.HH):
    """HH whose gates the solver must advance from the derivative (one JVP)."""

    def gate_inf_rate(self, v, temperature):
        return None


@pytest.mark.parametrize("shape", ["compartments", "cell"])
def test_exact_gate_update_equals_the_linearised_one(shape):
    # Two routes to NEURON's cnexp: the channel's steady state and rate, or the JVP of
    # the vector field; the same voltages to rounding, spikes included.
    def model(ch):
        if shape == "compartments":
            return jn.Compartment(length=20.0, diam=20.0, channels=[ch], n=3)
        secs = [jn.Cable(length=200.0, diam=1.0, nseg=5, channels=[ch], name="a"),
                jn.Cable(length=100.0, diam=0.5, nseg=3, channels=[jn.channels.Leak()], name="b")]
        return jn.Cell(secs, parents=[None, 0])

    g = jnp.asarray([0.1, 0.12, 0.14]) if shape == "compartments" else 0.12
    stim = [jn.StepCurrent(0.3 if shape == "compartments" else 0.1, 2.0, 1e9, target=None if shape == "compartments" else ("a", 0.0))]
    a = jn.simulate(model(jn.channels.HH(gnabar=g)), 30.0, dt=0.025, stimuli=stim, save_every=0.25, record=("v", "h_hh"))
    b = jn.simulate(model(_HHByDerivative(gnabar=g)), 30.0, dt=0.025, stimuli=stim, save_every=0.25, record=("v", "h_hh"))
    assert float(jnp.max(a.v)) > 20.0  # it spikes
    np.testing.assert_allclose(np.asarray(a.v), np.asarray(b.v), rtol=0, atol=1e-9)
    np.testing.assert_allclose(np.asarray(a.h_hh), np.asarray(b.h_hh), rtol=0, atol=1e-12)


def test_hh_powers_of_one_exponential_are_accurate():
    # exp(u/10), exp(u/20), exp(u/80) from one exp and multiplications, against
    # extended-precision exponentials (the claim in hh._powers' docstring).
    from jaxneuro.channels.hh import _powers

    v = np.linspace(-200.0, 150.0, 20001)
    u = -(v + 65.0)
    got = [np.asarray(x) for x in _powers(jnp.asarray(u))]
    eps = np.finfo(np.float64).eps
    near_rest = np.abs(v + 65.0) < 40.0
    for g, d, bound in zip(got, (10, 20, 80), (20, 10, 3)):
        ref = np.exp(u.astype(np.longdouble) / d)
        rel = np.abs(g - ref) / ref
        assert float(np.max(rel)) < bound * eps, d
    ref10 = np.exp(u[near_rest].astype(np.longdouble) / 10)
    assert float(np.max(np.abs(got[0][near_rest] - ref10) / ref10)) < 11 * eps
