"""Surrogate gradients make spike counts trainable without changing them."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxneuro as jn


def counts(gL, surrogate, n=3, t1=200.0):
    pop = jn.LIF(n=n, gL=gL, surrogate=surrogate)
    return jn.simulate(pop, t1, dt=0.1, stimuli=[jn.StepCurrent(2.0)]).spike_count


def test_forward_counts_are_unchanged():
    gL = jnp.array([0.05, 0.1, 0.2])
    exact = counts(gL, None)
    for s in (jn.surrogate.Sigmoid(1.0), jn.surrogate.FastSigmoid(0.5)):
        np.testing.assert_array_equal(counts(gL, s), exact)
    assert int(exact[2]) == 0 and int(exact[0]) > int(exact[1]) > 0


def test_count_gradient_is_zero_without_and_informative_with_a_surrogate():
    gL = jnp.array([0.09, 0.1, 0.12])
    no_grad = jax.grad(lambda g: jnp.sum(counts(g, None)))(gL)
    np.testing.assert_array_equal(no_grad, 0.0)
    grad = jax.grad(lambda g: jnp.sum(counts(g, jn.surrogate.FastSigmoid(1.0))))(gL)
    # More leak, fewer spikes, for every neuron.
    assert np.all(np.isfinite(np.asarray(grad)))
    assert np.all(np.asarray(grad) < 0)


def test_silent_neuron_below_threshold_gets_a_gradient_towards_firing():
    """gL = 0.14: V∞ = -55.7 mV, just below V_th = -55: zero spikes, but the surrogate
    says lowering gL would add spikes."""
    grad = jax.grad(lambda g: jnp.sum(counts(g, jn.surrogate.FastSigmoid(1.0), n=1)))(jnp.array([0.14]))
    assert float(grad[0]) < 0


def test_count_gradient_does_not_depend_on_the_step():
    """Each step's surrogate is weighted by dt/time_scale: halving dt leaves the
    gradient within 3 % (it converges), where the per-step sum doubled it
    (time_scale = dt gives that sum)."""
    def grad(dt, time_scale=1.0):
        def count(amp):
            m = jn.LIF(surrogate=jn.surrogate.Sigmoid(1.0, time_scale=time_scale))
            return jn.simulate(m, 200.0, dt=dt, stimuli=[jn.StepCurrent(amp)], save_every=10.0).spike_count
        return float(jax.grad(count)(2.5))

    coarse, fine = grad(0.1), grad(0.05)
    assert coarse > 0 and abs(fine / coarse - 1) < 0.03
    assert grad(0.1, time_scale=0.5) == pytest.approx(2 * coarse, rel=1e-9)


def test_fit_rates_with_surrogate():
    """Each neuron of a population reaches its own target spike count."""
    target = jnp.array([8.0, 12.0])
    surrogate = jn.surrogate.FastSigmoid(1.0)

    def loss(log_gL):
        return jnp.sum((counts(jnp.exp(log_gL), surrogate, n=2, t1=200.0) - target) ** 2)

    params = jnp.log(jnp.array([0.1, 0.1]))
    opt = optax.adam(0.02)
    state = opt.init(params)
    step = jax.jit(lambda p, s: (lambda l, g: (l, *opt.update(g, s, p)))(*jax.value_and_grad(loss)(p)))
    for _ in range(60):
        l, updates, state = step(params, state)
        params = optax.apply_updates(params, updates)
        if l == 0:
            break
    np.testing.assert_array_equal(counts(jnp.exp(params), None, n=2), target)


def test_bad_surrogate():
    with pytest.raises(ValueError, match=r"LIF\.surrogate"):
        jn.LIF(surrogate="sigmoid")
    with pytest.raises(ValueError, match=r"width"):
        jn.surrogate.Sigmoid(width=0.0)
    for bad in (0.0, -1.0, float("inf"), True, "1"):
        with pytest.raises(ValueError, match=r"FastSigmoid\.time_scale expects a finite number > 0 \(ms\)"):
            jn.surrogate.FastSigmoid(time_scale=bad)


def test_a_surrogate_gradient_is_a_learning_signal_not_the_counts_slope():
    """README: for a LIF over 200 ms at 0.5 nA the surrogate gives 2250 spikes/nA, where
    the count rises by 50 spikes/nA (right sign, 45x the size)."""
    lif = jn.LIF(C=0.25, gL=0.0125, V_th=-55.0, V_reset=-65.0, spike_capacity=60,
                 surrogate=jn.surrogate.FastSigmoid())

    def count(amp):
        return jn.simulate(lif, 200.0, stimuli=[jn.StepCurrent(amp=amp, delay=0.0, dur=300.0)]).spike_count

    amps = np.linspace(0.3, 0.7, 9)
    slope = np.polyfit(amps, [float(count(a)) for a in amps], 1)[0]
    assert slope == pytest.approx(50.0, abs=0.5)
    assert float(jax.grad(count)(0.5)) == pytest.approx(2250.0, rel=0.01)


def test_rates_over_the_whole_run_take_the_counts_surrogate_gradient():
    """jn.firing_rate over a trace's whole span, fi_curve counted from 0 and the count
    loss with the span's start and stop all carry the surrogate's derivative of
    trace.spike_count (they were 0); a window inside the run stays 0 (a count); the
    values do not change."""
    neuron = jn.LIF(C=0.25, gL=0.02, surrogate=jn.surrogate.FastSigmoid())

    def trace(amp):
        return jn.simulate(neuron, 200.0, stimuli=[jn.StepCurrent(amp, 0.0, 200.0)])

    count_grad = float(jax.grad(lambda a: trace(a).spike_count)(0.5))
    assert count_grad > 100.0
    rate = lambda a: jn.firing_rate(trace(a), 0.0, 200.0)  # noqa: E731
    assert float(rate(0.5)) == pytest.approx(float(trace(0.5).spike_count) * 5.0)
    np.testing.assert_allclose(float(jax.grad(rate)(0.5)), count_grad * 5.0, rtol=1e-12)
    # Under jit as well (the span's numbers became tracers there, and the gradient 0).
    np.testing.assert_allclose(float(jax.jit(jax.grad(rate))(0.5)), count_grad * 5.0, rtol=1e-12)
    assert float(jax.grad(lambda a: jn.firing_rate(trace(a), 50.0, 200.0))(0.5)) == 0.0
    fi = lambda a: jn.fi_curve(neuron, jnp.array([a]), dur=200.0)[0]  # noqa: E731
    assert float(fi(0.5)) == float(rate(0.5))
    np.testing.assert_allclose(float(jax.grad(fi)(0.5)), count_grad * 5.0, rtol=1e-9)
    loss = lambda a: jn.losses.firing_rate(trace(a), 100.0, 0.0, 200.0, method="count")  # noqa: E731
    np.testing.assert_allclose(float(jax.grad(loss)(0.5)),
                               float(jax.grad(lambda a: jn.losses.firing_rate(trace(a), 100.0, method="count"))(0.5)))
    with pytest.raises(ValueError, match=r"whole run \(0.0, 200.0\).*method='isi'"):
        jn.losses.firing_rate(trace(0.5), 100.0, 50.0, 200.0, method="count")
