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


def test_alpha_beta_derivative_is_the_inf_tau_relaxation():
    hh = jn.channels.HH()
    v = jnp.asarray(VOLTAGES)
    gates = {"m": jnp.full(v.shape, 0.3), "h": jnp.full(v.shape, 0.6), "n": jnp.full(v.shape, 0.4)}
    d = hh.derivative(v, gates, 16.3)
    for g, (inf, tau) in hh.gate_inf_tau(v, 16.3).items():
        np.testing.assert_allclose(d[g], (inf - gates[g]) / tau, rtol=1e-12, atol=1e-15)
