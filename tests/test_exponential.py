"""The solver's float64 exponential (jaxneuro.solve.exponential) against NumPy's."""

import re

import jax
import jax.numpy as jnp
import numpy as np

from jaxneuro.morphology import membrane
from jaxneuro.solve.exponential import exp

EPS = np.finfo(np.float64).eps


def test_float64_exp_is_within_one_eps_of_numpy_over_the_normal_range():
    rng = np.random.default_rng(0)
    x = np.concatenate([
        np.linspace(-708.04, 709.78, 400_001),  # every binade of the result
        np.linspace(-1.0, 1.0, 100_001),  # within one range-reduction interval
        rng.uniform(-60.0, 50.0, 200_000),  # the gates' -dt·rate
        -np.abs(rng.standard_normal(10_000)) * 1e-6,  # near 1: small steps
    ])
    got = np.asarray(jax.jit(exp)(jnp.asarray(x)))
    ref = np.exp(x)
    rel = np.abs(got - ref) / ref
    assert rel.max() <= EPS, rel.max() / EPS
    assert np.mean(got == ref) > 0.85  # mostly the correctly rounded value itself


def test_float64_exp_limits_and_special_values():
    x = jnp.asarray([0.0, -708.04, -708.06, -745.0, -1e300, -np.inf, 709.78, 709.79, 1e300, np.inf, np.nan])
    got = np.asarray(exp(x))
    assert got[0] == 1.0
    np.testing.assert_allclose(got[1], np.exp(-708.04), rtol=EPS)
    # below ~2.5e-308 (about the smallest normal float64): 0, never garbage or negative
    np.testing.assert_array_equal(got[2:6], 0.0)
    np.testing.assert_allclose(got[6], np.exp(709.78), rtol=EPS)
    assert np.all(np.isposinf(got[7:10]))
    assert np.isnan(got[10])


def test_exp_derivatives_are_exp_and_other_dtypes_use_jnp_exp():
    for x in (-3.7, 0.0, 1.3):
        np.testing.assert_allclose(jax.grad(exp)(x), np.exp(x), rtol=EPS)
        np.testing.assert_allclose(jax.grad(jax.grad(exp))(x), np.exp(x), rtol=EPS)
    xs = jnp.linspace(-5.0, 5.0, 11)
    np.testing.assert_allclose(jax.vmap(jax.grad(exp))(xs), np.exp(np.asarray(xs)), rtol=EPS)
    x32 = jnp.linspace(-20.0, 20.0, 1001, dtype=jnp.float32)
    assert exp(x32).dtype == jnp.float32
    np.testing.assert_array_equal(exp(x32), jnp.exp(x32))


def test_hh_gate_increments_equal_cnexp_with_numpy_exp():
    import jaxneuro as jn

    hh = jn.channels.HH()
    v = jnp.linspace(-90.0, 40.0, 27)
    gates = {f"{g}_hh": jnp.full(v.shape, x0) for g, x0 in (("m", 0.05), ("h", 0.6), ("n", 0.32))}
    dt = 0.025
    got = membrane.gate_increments(hh, v, gates, dt, 6.3)
    for g, (inf, rate) in hh.gate_inf_rate(v, 6.3).items():
        ref = (np.asarray(inf) - np.asarray(gates[f"{g}_hh"])) * -np.expm1(-dt * np.asarray(rate))
        np.testing.assert_allclose(got[f"{g}_hh"], ref, rtol=1e-12, atol=1e-17)


def test_float64_expm1_ratio_is_expm1_to_rounding_without_xlas_expm1():
    """The point neurons' event flows use (exp(b·dt) - 1)/b: in float64 through the
    polynomial exp (XLA's expm1 there made a LIF population's step 3x slower), within
    ~20 eps of expm1's value over the range a step sees, its derivatives too."""
    from jaxneuro.solve.staggered import MAX_GROWTH_PER_STEP, expm1_ratio

    rng = np.random.default_rng(1)
    z = np.concatenate([np.linspace(-60.0, MAX_GROWTH_PER_STEP, 200_001), rng.uniform(-0.1, 0.1, 100_000),
                        np.array([0.0, 1e-300, -1e-12, 0.049999, 0.05, -0.05])])
    dt = 0.025
    b = z / dt
    got = np.asarray(jax.jit(expm1_ratio)(jnp.asarray(b), dt))
    ref = np.where(z == 0, dt, np.expm1(z) / np.where(b == 0, 1.0, b))
    assert np.max(np.abs(got - ref) / ref) < 20 * EPS
    below_cap = z < MAX_GROWTH_PER_STEP  # (where the growth is capped its derivative is the cap's)
    zz, bb = z[below_cap][::50], b[below_cap][::50]
    d_b = np.asarray(jax.vmap(jax.grad(expm1_ratio), (0, None))(jnp.asarray(bb), dt))
    d_ref = np.where(np.abs(zz) < 1e-6, dt * dt / 2, (dt * np.exp(zz) * bb - np.expm1(zz)) / np.where(bb == 0, 1.0, bb) ** 2)
    np.testing.assert_allclose(d_b, d_ref, rtol=1e-9, atol=1e-18)
    def primitives(x):
        return set(re.findall(r"= ([a-z_0-9]+)", str(jax.make_jaxpr(expm1_ratio)(x, dt))))

    assert not primitives(jnp.ones(3)) & {"exp", "expm1"}  # the polynomial
    assert "expm1" in primitives(jnp.ones(3, jnp.float32))
