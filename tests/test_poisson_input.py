"""jn.PoissonInput: Poisson voltage jumps drawn step by step (Brian's PoissonInput,
NEST's poisson_generator into iaf_psc_delta): shot-noise moments (Campbell's theorem),
the same spikes as DeltaSynapse fed the same arrivals on the grid, continued runs,
gradients, vmap over seeds and parameter checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import saiunit as u

import jaxneuro as jn

TAU, DT = 20.0, 0.1


def lif(n, **kw):
    return jn.LIF(n=n, C=1.0, gL=1.0 / TAU, EL=0.0, **{"V_th": jnp.inf, **kw})


def test_shot_noise_moments_follow_campbells_theorem():
    # Passive membranes: mean J·nu·tau, variance J²·nu·tau/2 (8 kHz, 0.2 mV, 20 ms:
    # 32 mV and 3.2 mV²); each target's arrivals are Poisson with mean nu·t1.
    J, nu, n, t1 = 0.2, 8000.0, 200, 500.0
    net = jn.Network({"p": lif(n)}, [jn.PoissonInput("p", nu, J, seed=1, name="ext")])
    tr = jn.simulate(net, t1, dt=DT, v0=0.0, record=("v",))
    v = np.asarray(tr["p"].v)[1000:]  # after 5 tau
    assert v.mean() == pytest.approx(J * nu * 1e-3 * TAU, rel=0.01)
    assert v.var() == pytest.approx(J**2 * nu * 1e-3 * TAU / 2, rel=0.05)
    ev = tr.final_state.events["ext"]
    assert float(ev["step"]) == 5000
    arrivals = np.asarray(ev["arrivals"])
    assert np.all(arrivals == np.round(arrivals)) and arrivals.mean() == pytest.approx(nu * 1e-3 * t1, rel=0.01)
    assert arrivals.var() == pytest.approx(nu * 1e-3 * t1, rel=0.25)  # Poisson: variance = mean


def _brunel_neurons(n):
    return jn.LIF(n=n, C=1.0, gL=1.0 / TAU, EL=0.0, V_th=20.0, V_reset=10.0, t_ref=2.0, V_spike=None, spike_capacity=64)


def test_the_same_spikes_as_a_delta_synapse_fed_the_same_arrivals_on_the_grid():
    # 50 neurons near threshold with refractoriness and recurrent inhibition: the
    # PoissonInput's draws (its `counts`, step by step) as spike trains on the step
    # ends into a DeltaSynapse give the same spikes and voltages; arrivals while a
    # neuron is refractory are lost in both.
    n, t1, J, nu = 50, 100.0, 0.5, 2000.0
    inp = jn.PoissonInput("p", jnp.linspace(1000.0, 3000.0, n), J, seed=7, name="ext")
    inh = jn.DeltaSynapse("p", "p", jn.conn.fixed_indegree(5, seed=0), -1.0, 1.5, name="inh")
    ours = jn.simulate(jn.Network({"p": _brunel_neurons(n)}, [inp, inh]), t1, dt=DT, v0=15.0, record=("v",))

    steps = int(round(t1 / DT))
    bound = jn.Network({"p": _brunel_neurons(n)}, [inp]).poisson_inputs[0]
    counts = np.stack([np.asarray(bound.counts(k * DT, (k + 1) * DT, k)) for k in range(steps)])
    assert counts.sum() > 0.9 * nu * 1e-3 * t1 * n and counts.max() >= 2
    trains = [np.repeat((np.arange(steps) + 1) * DT, counts[:, i].astype(int)) for i in range(n)]
    source = jn.SpikeTrains([list(x) for x in trains])
    ref = jn.simulate(jn.Network({"p": _brunel_neurons(n), "x": source},
                                 [jn.DeltaSynapse("x", "p", jn.conn.one_to_one, J, max_arrivals_per_step=int(counts.max())),
                                  inh]), t1, dt=DT, v0=15.0, record=("v",))
    spikes = np.asarray(ours["p"].spikes)
    assert np.isfinite(spikes).sum() > 80 and not np.any(np.asarray(ours["p"].overflowed))
    np.testing.assert_array_equal(spikes, np.asarray(ref["p"].spikes))
    np.testing.assert_allclose(np.asarray(ours["p"].v), np.asarray(ref["p"].v), rtol=0, atol=1e-12)


def test_a_run_in_two_parts_draws_as_one_run():
    net = jn.Network({"p": _brunel_neurons(20)}, [jn.PoissonInput("p", 3000.0, 0.5, seed=3, name="ext")])
    one = jn.simulate(net, 60.0, dt=DT, v0=15.0, record=("v",))
    first = jn.simulate(net, 30.0, dt=DT, v0=15.0, record=("v",))
    second = jn.simulate(net, 60.0, t0=30.0, dt=DT, init=first, record=("v",))
    # Spike times on the grid, counted from another t0: equal to rounding.
    np.testing.assert_allclose(np.asarray(second["p"].spikes), np.asarray(one["p"].spikes), rtol=0, atol=1e-9)
    assert np.isfinite(np.asarray(one["p"].spikes)).sum() > 20
    np.testing.assert_allclose(np.asarray(second["p"].v)[-1], np.asarray(one["p"].v)[-1], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(np.asarray(second.final_state.events["ext"]["arrivals"]),
                                  np.asarray(one.final_state.events["ext"]["arrivals"]))


def test_weight_gradient_and_vmap_over_seeds():
    # Passive: the voltage is linear in the weight, so d mean(v)/d weight = mean(v)/weight.
    def mean_v(weight, seed):
        net = jn.Network({"p": lif(4)}, [jn.PoissonInput("p", 2000.0, weight, seed=seed)])
        return jnp.mean(jn.simulate(net, 30.0, dt=DT, v0=0.0, record=("v",))["p"].v)

    value, grad = jax.jit(jax.value_and_grad(mean_v))(0.3, 0)
    assert float(value) > 1.0 and float(grad) == pytest.approx(float(value) / 0.3, rel=1e-12)
    # The keys jax.random.key(0), key(1), key(2): the integer seed 0 is key(0) (as the
    # docstring says), so the unbatched run above is the vmapped run's first (no third
    # compilation of the same simulation just for that comparison).
    keys = jax.vmap(jax.random.key)(jnp.arange(3))
    means = jax.jit(jax.vmap(lambda k: mean_v(0.3, k)))(keys)
    assert len(set(np.round(np.asarray(means), 12))) == 3  # independent draws
    assert float(value) == pytest.approx(float(means[0]), rel=1e-12)


def test_parameter_checks():
    with pytest.raises(ValueError, match=r"PoissonInput.weight expects the voltage jump per arrival in mV"):
        jn.PoissonInput("p", 100.0)
    with pytest.raises(ValueError, match=r"'PoissonInput.rate' must be >= 0"):
        jn.PoissonInput("p", -1.0, 0.1)
    with pytest.raises(ValueError, match="expects a voltage"):
        jn.PoissonInput("p", 100.0, 0.1 * u.nA)
    with pytest.raises(ValueError, match=r"PoissonInput.seed expects an integer or one JAX PRNG key"):
        jn.PoissonInput("p", 100.0, 0.1, seed=True)
    assert float(jn.PoissonInput("p", 2 * u.kHz, 0.1).rate) == pytest.approx(2000.0)
    with pytest.raises(ValueError, match=r"PoissonInput.rate expects shape \(\) or \(3,\)"):
        jn.Network({"p": lif(3)}, [jn.PoissonInput("p", jnp.ones(4), 0.1)])
    with pytest.raises(ValueError, match=r"PoissonInput.post expects a population name of the network"):
        jn.PoissonInput(lif(2), 100.0, 0.1)  # the model, not its name: it named "pre"
    import diffrax

    with pytest.raises(ValueError, match=r"solver: Network has events \(.*voltage jumps of delta synapses and "
                                         r"Poisson inputs\), which only the default solver"):
        jn.simulate(jn.Network({"c": jn.Compartment(area=100.0, channels=[jn.channels.HH()])},
                               [jn.PoissonInput("c", 100.0, 0.1)]), 1.0, solver=diffrax.Tsit5())
    with pytest.raises(ValueError, match=r"PoissonInput 'ext': post population 'x' is a spike source"):
        jn.Network({"x": jn.SpikeTrains([[1.0]])}, [jn.PoissonInput("x", 100.0, 0.1, name="ext")])


def test_memory_one_count_per_target_against_every_spike_beforehand():
    # The README's figure: poisson_spikes at 10 kHz keeps >= 10 000 float64 times per
    # source and second (0.8 GB for 10 000 neurons); PoissonInput's state is a step
    # counter (two numbers) and one count per target, whatever the run's length.
    buffer = jn.poisson_spikes(10000.0, 1000.0, n=2, seed=0)
    assert np.asarray(buffer.spikes).nbytes / 2 >= 8e4
    net = jn.Network({"p": lif(2)}, [jn.PoissonInput("p", 10000.0, 0.1, name="ext")])
    state = jn.simulate(net, 1.0, dt=DT, v0=0.0, record=()).final_state
    assert sum(np.asarray(x).nbytes for x in jax.tree.leaves(state.events["ext"])) == (2 + 2) * 8


def test_inputs_are_independent_by_default_and_draws_never_repeat():
    # Two inputs with the default seed drew the same counts (+1 and -1 mV cancelled
    # exactly); the name is folded into the key.
    net = jn.Network({"p": lif(50)}, [jn.PoissonInput("p", 2000.0, 1.0, name="up"),
                                      jn.PoissonInput("p", 2000.0, -1.0, name="down")])
    tr = jn.simulate(net, 20.0, dt=DT, v0=0.0, record=("v",))
    ev = tr.final_state.events
    assert not np.array_equal(np.asarray(ev["up"]["arrivals"]), np.asarray(ev["down"]["arrivals"]))
    assert np.abs(np.asarray(tr["p"].v)).max() > 2.0
    # The step counter wraps into an epoch at 2**20 steps (a float32 counter stopped at
    # 2**24, 1678 s at dt 0.1 ms, and every later step drew the same counts).
    inp = net.poisson_inputs[0]
    last = {"step": jnp.asarray(2.0**20 - 1), "epoch": jnp.asarray(0.0), "arrivals": jnp.zeros(50)}
    after, _ = inp.advance_and_jump(0.0, DT, last, jnp.full(50, -jnp.inf))
    assert (float(after["step"]), float(after["epoch"])) == (0.0, 1.0)
    draws = {(s, e): tuple(np.asarray(inp.counts(0.0, 1.0, s, e))) for s, e in [(0, 0), (0, 1), (1, 0), (5, 3)]}
    assert len(set(draws.values())) == 4


def test_a_negative_rate_under_jit_is_an_error_when_run():
    def final_v(rate):
        net = jn.Network({"p": lif(2)}, [jn.PoissonInput("p", rate, 1.0)])
        return jn.simulate(net, 1.0, dt=DT, v0=0.0, record=("v",))["p"].v[-1]

    assert float(jnp.sum(jax.jit(final_v)(5000.0))) > 0
    # (Infinite or NaN, the draw's loops would never end: an error too.)
    for bad in (-5000.0, jnp.inf, jnp.nan):
        with pytest.raises(Exception, match=r"PoissonInput.rate must be >= 0 \(Hz\) and finite"):
            jax.block_until_ready(jax.jit(final_v)(bad))


def test_counts_are_the_poisson_quantiles_of_their_uniforms():
    # The inversion gives, for each uniform u, the smallest k with P(X <= k) >= u:
    # scipy's quantile function, for every u (float64).
    from scipy import stats

    from jaxneuro.coupling.poisson import INVERSION_MEAN, inverse_cdf

    u = np.random.default_rng(0).uniform(size=20000)
    for mu in (1e-3, 0.5, 1.0, 7.3, 31.9, INVERSION_MEAN):
        k = np.asarray(inverse_cdf(jnp.asarray(u), jnp.full(u.shape, mu)))
        np.testing.assert_array_equal(k, stats.poisson.ppf(u, mu), err_msg=f"mean {mu}")
    assert not np.any(np.asarray(inverse_cdf(jnp.asarray(u), jnp.zeros(u.shape))))
    # The largest uniforms: float32's cumulative sum stops below them (its terms fall
    # under its rounding), where the count stays, rather than running on to where the
    # terms underflow (~40 for mean 1).
    for dtype, top in ((jnp.float32, 1 - 2.0**-24), (jnp.float64, 1 - 2.0**-53)):
        for mu in (1.0, 20.0, INVERSION_MEAN):
            k = float(inverse_cdf(jnp.asarray([top], dtype), jnp.asarray([mu], dtype))[0])
            assert stats.poisson.ppf(1 - 1e-6, mu) <= k <= stats.poisson.ppf(1 - 1e-17, mu), (dtype, mu, k)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_drawn_counts_follow_the_poisson_distribution(dtype):
    # 10^5 draws per mean, one key: Pearson's chi-square against the Poisson
    # probabilities, and mean and variance within 5 standard errors. Means above
    # INVERSION_MEAN are sums of parts, each drawn from its own uniform.
    from scipy import stats

    from jaxneuro.coupling.poisson import poisson_counts

    n = 100_000
    for i, mean in enumerate((0.05, 1.0, 6.5, 40.0, 250.0)):
        x = np.asarray(poisson_counts(jax.random.key(i), jnp.asarray(mean, dtype), shape=(n,),
                                      dtype=jnp.dtype(dtype)))
        assert x.dtype == dtype and np.all(x == np.round(x)) and x.min() >= 0
        assert abs(x.mean() - mean) < 5 * np.sqrt(mean / n), (mean, x.mean())
        assert abs(x.var() - mean) < 5 * mean * np.sqrt(2 / n) + 5 * np.sqrt(mean / n), (mean, x.var())
        values = np.arange(int(stats.poisson.ppf(1e-6, mean)), int(stats.poisson.isf(1e-6, mean)) + 1)
        p = stats.poisson.pmf(values, mean)
        p[0] += stats.poisson.cdf(values[0] - 1, mean)
        p[-1] += stats.poisson.sf(values[-1], mean)
        observed = np.array([np.sum(np.clip(x, values[0], values[-1]) == v) for v in values])
        big = p * n >= 5  # cells expected to hold at least 5, the rest pooled
        obs = np.append(observed[big], observed[~big].sum())
        exp = np.append(p[big], p[~big].sum()) * n
        keep = exp > 0
        assert stats.chisquare(obs[keep], exp[keep] * obs[keep].sum() / exp[keep].sum()).pvalue > 1e-3, mean
    # A mean of zero gives zeros; each target its own mean.
    assert not np.any(np.asarray(poisson_counts(jax.random.key(9), 0.0, shape=(50,), dtype=jnp.dtype(dtype))))
    means = jnp.asarray([0.0, 0.5, 100.0], dtype)
    x = np.asarray(poisson_counts(jax.random.key(10), jnp.broadcast_to(means, (20000, 3)), shape=(20000, 3),
                                  dtype=jnp.dtype(dtype)))
    np.testing.assert_allclose(x.mean(axis=0), [0.0, 0.5, 100.0], atol=0.25, rtol=0.01)


def test_poisson_counts_refuses_a_mean_it_cannot_draw_from():
    from jaxneuro.coupling.poisson import poisson_counts

    key = jax.random.key(0)
    for bad, why in ((-1.0, ">= 0"), (np.nan, "NaN"), (np.inf, "finite")):
        with pytest.raises(ValueError, match=rf"'poisson_counts.mean' must .*{why}"):
            poisson_counts(key, jnp.asarray([0.5, bad]), (2,), jnp.float64)
    with pytest.raises(ValueError, match=r"poisson_counts.dtype expects a floating dtype"):
        poisson_counts(key, 1.0, (2,), jnp.int32)
    assert np.asarray(poisson_counts(key, 1.0, [3], "float32")).dtype == np.float32  # a list shape, a dtype name
