"""Delta (voltage-jump) synapses (Brunel 2000, NEST's iaf_psc_delta): the jump against
the closed form, on point neurons and compartments, threshold and refractoriness, an
exact event-driven reference for Poisson-driven LIF neurons (NEST's rule with
continuous arrival times), a recurrent network against NEURON's IntFire1 cells and
against NEST's update rule, shot-noise moments (Campbell's theorem), delays, bursts,
continued runs, gradients and parameter checks."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import saiunit as u

import jaxneuro as jn

C, GL, EL = 0.25, 0.025, -65.0  # tau_m = 10 ms
TAU_M = C / GL


def passive_lif(n=1, c=C):
    return jn.LIF(n=n, C=c, gL=c / TAU_M, EL=EL, V_th=jnp.inf)


def one_source(trains, post, weight=0.5, delay=1.0, **kw):
    syn = jn.DeltaSynapse("src", "post", jn.conn.one_to_one, weight, delay, name="d", **kw)
    return jn.Network({"src": jn.SpikeTrains(trains), "post": post}, [syn])


@pytest.mark.parametrize("t_spike", [5.0, 5.01])
def test_jump_at_the_steps_end_then_the_membranes_decay(t_spike):
    # Arrival at 6.0 (a step's end) or 6.01 (inside the step ending at 6.025): the
    # voltage jumps by the weight at that step's end and decays with tau_m from there,
    # exactly (the LIF's exponential update), whatever the capacitance.
    t_jump = 6.0 if t_spike == 5.0 else 6.025
    for c in (C, 1.0):
        tr = jn.simulate(one_source([[t_spike]], passive_lif(c=c)), 20.0, dt=0.025, record=("v", "i_syn"))
        t = np.asarray(tr.t)
        exact = np.where(t >= t_jump - 1e-9, 0.5 * np.exp(-(t - t_jump) / TAU_M), 0.0)
        np.testing.assert_allclose(np.asarray(tr["post"].v[:, 0]) - EL, exact, rtol=0, atol=1e-12)
        # No current: the jump is not a current, and the synapse records nothing.
        np.testing.assert_array_equal(np.asarray(tr["post"].i_syn), 0.0)
        assert "d" not in tr.parts


def test_jump_on_a_compartment_with_backward_euler():
    # 1000 µm², leak 1e-4 S/cm²: tau_m = 10 ms. The jump lands in full at 6.0, then each
    # backward Euler step divides the depolarisation by 1 + dt/tau_m.
    comp = jn.Compartment(area=1000.0, channels=[jn.channels.Leak(g=1e-4, e=-70.0)])
    tr = jn.simulate(one_source([[5.0]], comp, weight=-2.0), 10.0, v0={"post": -70.0}, dt=0.025, record=("v",))
    t, v = np.asarray(tr.t), np.asarray(tr["post"].v).reshape(-1) + 70.0
    k = np.round((t - 6.0) / 0.025)
    exact = np.where(k >= 0, -2.0 / (1.0 + 0.025 / 10.0) ** np.maximum(k, 0), 0.0)
    np.testing.assert_allclose(v, exact, rtol=1e-10, atol=1e-12)


def test_a_jump_to_threshold_fires_at_the_steps_end_and_a_refractory_neuron_loses_jumps():
    # Brunel's neuron: rest 0, threshold 20, reset 10, refractory 2.01 ms. From 19.9 mV a
    # 0.5 mV jump at 6.0 fires at 6.0 and resets; the arrivals at 7.0 and 8.005 fall in
    # the refractory period (to 8.01) and are lost; the one at 8.02, in the step where
    # the period ends, lands on the voltage's flow from the reset.
    tau = 1000.0  # a slow membrane keeps the voltage near 19.9 mV until the first jump
    lif = jn.LIF(n=1, C=C, gL=C / tau, EL=0.0, V_th=20.0, V_reset=10.0, t_ref=2.01, V_spike=None)
    arrivals = [6.0, 7.0, 8.005, 8.02]
    tr = jn.simulate(one_source([[a - 1.0 for a in arrivals]], lif), 9.0, dt=0.025, v0={"post": 19.9}, record=("v",))
    spikes = np.asarray(tr["post"].spikes[0])
    np.testing.assert_allclose(spikes[np.isfinite(spikes)], [6.0], atol=1e-12)
    t, v = np.asarray(tr.t), np.asarray(tr["post"].v[:, 0])
    before = 19.9 * np.exp(-6.0 / tau)
    assert 19.5 < before < 20.0 and before + 0.5 >= 20.0
    at = lambda s: v[int(round(s / 0.025))]  # noqa: E731
    assert at(6.0) == pytest.approx(10.0, abs=1e-12)  # reset shown at the spike's sample
    np.testing.assert_allclose(v[(t > 6.0) & (t <= 8.0 + 1e-9)], 10.0, atol=1e-12)  # held; 7.0 lost
    after = 10.0 * np.exp(-(8.025 - 8.01) / tau) + 0.5  # 8.005 lost, 8.02 taken
    assert at(8.025) == pytest.approx(after, abs=1e-12)
    assert at(9.0) == pytest.approx(after * np.exp(-0.975 / tau), abs=1e-12)


def _event_driven_lif(arrivals, J, tau, theta, v_reset, t_ref, t1):
    """Exact reference: a LIF at rest 0 mV moved only by jumps ``J`` at the ``arrivals``
    (continuous times), firing where a jump reaches ``theta``, refractory for ``t_ref``
    ms (arrivals then lost). Returns its spike times."""
    v, t_prev, ref_end, spikes = 0.0, 0.0, -np.inf, []
    for t in arrivals[arrivals <= t1]:
        if t <= ref_end:
            continue
        start = max(t_prev, ref_end) if ref_end > t_prev else t_prev
        v = (v_reset if ref_end > t_prev else v) * np.exp(-(t - start) / tau) + J
        t_prev = t
        if v >= theta:
            spikes.append(t)
            v, ref_end = v_reset, t + t_ref
            t_prev = ref_end
    return np.array(spikes)


def test_poisson_driven_lifs_fire_as_an_exact_event_driven_reference():
    # Brunel 2000's neuron (tau 20 ms, theta 20, reset 10, 2 ms refractory) driven by
    # Poisson jumps of 0.2 mV at 5 kHz (mean input 20 mV = theta, sd 2 mV): the
    # fluctuation-driven regime. Each LIF against the exact event-driven solution of its
    # own arrivals. The grid moves each jump to the end of its step (on average dt/2
    # later), so a spike there comes up to one step later, and a near-threshold
    # decision can flip, after which the two trains part for a while: 169 of 189 spikes
    # match at dt = 0.025 ms, 185 at 0.005 ms (over 500 ms: 298, 321 and at 0.001 ms all
    # 326 of 326), the counts equal.
    n, t1, J = 40, 300.0, 0.2
    src = jn.poisson_spikes(5000.0, t1, n=n, seed=7)
    trains = np.asarray(src.spikes)
    refs = [_event_driven_lif(row[np.isfinite(row)], J, 20.0, 20.0, 10.0, 2.0, t1) for row in trains]
    n_ref = sum(r.size for r in refs)
    assert n_ref > 150  # ~16 Hz per neuron
    for dt, share in ((0.025, 0.85), (0.005, 0.97)):
        lif = jn.LIF(n=n, C=0.2, gL=0.01, EL=0.0, V_th=20.0, V_reset=10.0, t_ref=2.0, spike_capacity=64)
        net = jn.Network({"src": src, "post": lif},
                         [jn.DeltaSynapse("src", "post", jn.conn.one_to_one, J, max_arrivals_per_step=8)])
        ours = np.asarray(jn.simulate(net, t1, dt=dt, v0={"post": 0.0}, record=())["post"].spikes)
        matched = total = 0
        for ref, row in zip(refs, ours):
            mine = row[np.isfinite(row)]
            total += mine.size
            # A spike of ours 0..dt after a reference spike (the step end after its arrival).
            gaps = mine[None, :] - ref[:, None]
            matched += int(np.sum(np.any((gaps >= -1e-9) & (gaps <= dt + 1e-9), axis=1)))
        assert abs(total - n_ref) <= 0.01 * n_ref
        assert matched >= share * n_ref


def test_shot_noise_moments_follow_campbells_theorem():
    # A passive LIF (tau 10 ms) under Poisson jumps J at rate nu: mean J·nu·tau above
    # rest, variance J²·nu·tau/2. 300 neurons sampled at 5 times 30 ms apart.
    n, nu, J = 300, 2.0, 0.4  # nu per ms
    src = jn.poisson_spikes(nu * 1000.0, 200.0, n=n, seed=3)
    net = jn.Network({"src": src, "post": passive_lif(n)},
                     [jn.DeltaSynapse("src", "post", jn.conn.one_to_one, J, max_arrivals_per_step=8)])
    tr = jn.simulate(net, 200.0, dt=0.1, record=("v",), save_every=30.0)
    x = np.asarray(tr["post"].v)[2:7] - EL  # 60, 90, ..., 180 ms
    mean, var = J * nu * TAU_M, J**2 * nu * TAU_M / 2
    assert x.size == 1500
    # Standard errors: sd/sqrt(N) = 0.023 mV for the mean 8 mV; ~4 % for the variance.
    assert x.mean() == pytest.approx(mean, abs=4 * np.sqrt(var / x.size))
    assert x.var() == pytest.approx(var, rel=0.15)


def test_delays_a_same_step_spike_and_a_burst_beyond_max_arrivals_lose_nothing():
    # A LIF fires; delay 0 makes its spike arrive in its own step, which acts at the next
    # step's end; delay 1 ms at the end of the step containing t_s + 1.
    pre = jn.LIF(n=1, C=C, gL=GL, EL=EL, V_th=-60.0, V_reset=-70.0, t_ref=50.0)
    def net(delay):
        return jn.Network({"pre": pre, "post": passive_lif()},
                          [jn.DeltaSynapse("pre", "post", jn.conn.one_to_one, 1.0, delay)])
    stim = jn.StepCurrent(amp=0.3, delay=1.0, dur=40.0, target="pre")
    dt = 0.025
    for delay in (0.0, 1.0):
        tr = jn.simulate(net(delay), 20.0, dt=dt, stimuli=[stim], v0={"pre": EL, "post": EL}, record=("v",))
        t_s = float(tr["pre"].spikes[0, 0])
        step_end = np.ceil((t_s + delay) / dt - 1e-9) * dt + (dt if delay == 0.0 else 0.0)
        t, v = np.asarray(tr.t), np.asarray(tr["post"].v[:, 0]) - EL
        first = t[np.argmax(v > 0)]
        assert first == pytest.approx(step_end, abs=1e-9)
        assert v[np.argmax(v > 0)] == pytest.approx(1.0, abs=1e-12)
    # Five spikes of one source within a step, two taken up per step: the last ones act
    # a step or two late (a warning says so), and all five jumps arrive.
    with pytest.warns(RuntimeWarning, match=r"max_arrivals_per_step=2 .* so their jumps came a step or more late, "
                                            r"and those that reached a neuron after it had fired .* were lost.*"
                                            r"nu·dt \+ 5·sqrt\(nu·dt\) \+ 3"):
        tr = jn.simulate(one_source([[5.001, 5.002, 5.003, 5.004, 5.005]], passive_lif(), weight=0.1, delay=0.0),
                         5.2, dt=0.025, record=("v",))
    v = np.asarray(tr["post"].v[:, 0]) - EL
    # Two jumps at 5.025, two at 5.05, one at 5.075; seen at 5.2.
    late = 0.2 * np.exp(-0.175 / TAU_M) + 0.2 * np.exp(-0.15 / TAU_M) + 0.1 * np.exp(-0.125 / TAU_M)
    assert v[-1] == pytest.approx(late, abs=1e-12)


def test_a_run_in_two_parts_equals_one_run():
    src = jn.poisson_spikes(3000.0, 40.0, n=20, seed=1)
    lif = jn.LIF(n=20, C=0.2, gL=0.01, EL=0.0, V_th=20.0, V_reset=10.0, t_ref=2.0)
    net = jn.Network({"src": src, "post": lif},
                     [jn.DeltaSynapse("src", "post", jn.conn.one_to_one, 0.5, 1.5, max_arrivals_per_step=4)])
    one = jn.simulate(net, 40.0, dt=0.1, v0={"post": 15.0}, record=("v",))
    first = jn.simulate(net, 20.0, dt=0.1, v0={"post": 15.0}, record=("v",))
    second = jn.simulate(net, 40.0, init=first, dt=0.1, record=("v",))
    np.testing.assert_allclose(np.asarray(second["post"].v[-1]), np.asarray(one["post"].v[-1]), atol=1e-10)
    np.testing.assert_array_equal(np.asarray(second["post"].spike_count), np.asarray(one["post"].spike_count))
    assert int(np.sum(np.asarray(one["post"].spike_count))) > 10


def test_gradients_of_the_weight_and_of_the_membrane():
    # Passive: the depolarisation is linear in the weight; and the jump does not depend
    # on C (only the decay does, through tau_m = C/gL).
    def mean_v(weight, c):
        lif = jn.LIF(n=1, C=c, gL=GL, EL=EL, V_th=jnp.inf)
        tr = jn.simulate(one_source([[2.0, 4.0, 9.0]], lif, weight=weight), 15.0, dt=0.025, record=("v",))
        return jnp.mean(tr["post"].v[:, 0] - EL)

    f = jax.jit(jax.value_and_grad(mean_v, argnums=(0, 1)))
    val, (g_w, g_c) = f(0.5, C)
    assert float(val) > 0.3
    assert float(g_w) == pytest.approx(float(val) / 0.5, rel=1e-10)
    h = 1e-6
    fd_c = (f(0.5, C + h)[0] - f(0.5, C - h)[0]) / (2 * h)
    assert float(g_c) == pytest.approx(float(fd_c), rel=1e-6)
    # Closed form: each jump 0.5 decaying with C/gL from its arrival (3.0, 5.0, 10.0).
    t = np.arange(0.0, 15.0 + 1e-9, 0.025)
    closed = lambda c: np.mean(sum(np.where(t >= a - 1e-9, 0.5 * np.exp(-(t - a) * GL / c), 0.0)  # noqa: E731
                                   for a in (3.0, 5.0, 10.0)))
    assert float(val) == pytest.approx(closed(C), rel=1e-10)
    assert float(g_c) == pytest.approx((closed(C + h) - closed(C - h)) / (2 * h), rel=1e-5)


def test_per_connection_weights_and_vmap():
    # Two sources onto one neuron, weights +1 and -0.25: the jumps add.
    net = jn.Network({"src": jn.SpikeTrains([[2.0], [4.0]]), "post": passive_lif()},
                     [jn.DeltaSynapse("src", ("post", [0, 0]), jn.conn.one_to_one, jnp.array([1.0, -0.25]))])
    tr = jn.simulate(net, 5.0, dt=0.025, record=("v",))
    expected = 1.0 * np.exp(-3.0 / TAU_M) - 0.25 * np.exp(-1.0 / TAU_M)
    assert float(tr["post"].v[-1, 0]) - EL == pytest.approx(expected, abs=1e-12)

    def last(w):
        syn = jn.DeltaSynapse("src", "post", jn.conn.one_to_one, w, 1.0)
        tr = jn.simulate(jn.Network({"src": jn.SpikeTrains([[1.0]]), "post": passive_lif()}, [syn]), 3.0,
                         record=("v",))
        return tr["post"].v[-1, 0] - EL

    out = jax.vmap(last)(jnp.array([0.5, -1.0, 2.0]))
    np.testing.assert_allclose(np.asarray(out), np.array([0.5, -1.0, 2.0]) * np.exp(-1.0 / TAU_M), atol=1e-12)


def test_parameter_checks():
    with pytest.raises(ValueError, match="DeltaSynapse.weight expects the postsynaptic voltage's jump"):
        jn.DeltaSynapse("a", "b", jn.conn.one_to_one)
    with pytest.raises(ValueError, match=r"DeltaSynapse.delivery expects 'exact'"):
        jn.DeltaSynapse("a", "b", jn.conn.one_to_one, 0.1, delivery="neuron")
    with pytest.raises(ValueError, match=r"'DeltaSynapse.weight' must be finite \(in mV\)"):
        jn.DeltaSynapse("a", "b", jn.conn.one_to_one, np.inf)
    with pytest.raises(ValueError, match=r"'DeltaSynapse.delay' must be >= 0"):
        jn.DeltaSynapse("a", "b", jn.conn.one_to_one, 0.1, -1.0)
    with pytest.raises(ValueError, match="expects a voltage"):
        jn.DeltaSynapse("a", "b", jn.conn.one_to_one, 0.1 * u.nA)
    with pytest.raises(ValueError, match=r"DeltaSynapse.event_driven expects True or False, got 'yes'"):
        jn.DeltaSynapse("a", "b", jn.conn.one_to_one, 0.1, event_driven="yes")
    syn = jn.DeltaSynapse("a", "b", jn.conn.one_to_one, 0.1 * u.mV, 1500.0 * u.us)
    assert float(syn.weight) == pytest.approx(0.1) and float(syn.delay) == pytest.approx(1.5)
    with pytest.raises(ValueError, match=r"DeltaSynapse.weight expects shape \(\) or \(2,\)"):
        one_source([[1.0], [2.0]], passive_lif(2), weight=jnp.ones(3))
    with pytest.raises(TypeError, match="DeltaSynapse has no conductance or current to record"):
        syn.output(0.0, {})
    net = one_source([[1.0]], passive_lif())
    with pytest.raises(ValueError, match="record"):
        jn.simulate(net, 2.0, record=("g",))


def test_brunel_network_fires_at_the_mean_field_rate():
    # Brunel (2000), model A scaled down: N_E = 400, N_I = 100, C_E = 40, C_I = 10
    # (fixed in-degree), J = 0.2 mV, g = 5, eta = 2, D = 1.5 ms, theta 20, reset 10,
    # tau 20 ms, refractory 2 ms; each neuron driven by Poisson jumps J at C_E·nu_ext.
    # The Siegert (diffusion) mean-field rate solves nu = phi(mu(nu), sigma(nu)); it
    # holds for small jumps (J/theta = 1 %; larger jumps fire below it).
    from scipy import integrate, optimize, special

    NE, NI, CE, CI = 400, 100, 40, 10
    J, g, eta, D, theta, Vr, tau, tref = 0.2, 5.0, 2.0, 1.5, 20.0, 10.0, 20.0, 2.0
    nu_ext = eta * theta / (J * CE * tau) * 1000.0  # Hz

    def rate(mu, sigma):
        integral, _ = integrate.quad(lambda x: special.erfcx(-x), (Vr - mu) / sigma, (theta - mu) / sigma)
        return 1000.0 / (tref + tau * np.sqrt(np.pi) * integral)

    def self_consistent(nu):
        mu = J * tau * 1e-3 * (CE * nu_ext + nu * (CE - g * CI))
        sigma = J * np.sqrt(tau * 1e-3 * (CE * nu_ext + nu * (CE + g * g * CI)))
        return rate(mu, sigma) - nu

    nu_mf = optimize.brentq(self_consistent, 1.0, 500.0)
    assert nu_mf == pytest.approx(89.20, abs=0.01)

    t1 = 250.0
    lif = lambda n: jn.LIF(n=n, C=0.25, gL=0.25 / tau, EL=0.0, V_th=theta, V_reset=Vr,  # noqa: E731
                           t_ref=tref, V_spike=None, spike_capacity=48)
    syns = [jn.DeltaSynapse(pre, post, jn.conn.fixed_indegree(k, seed=s), w, D)
            for s, (pre, post, k, w) in enumerate([("E", "E", CE, J), ("E", "I", CE, J),
                                                   ("I", "E", CI, -g * J), ("I", "I", CI, -g * J)])]
    syns += [jn.DeltaSynapse(f"ext_{p}", p, jn.conn.one_to_one, J, max_arrivals_per_step=12) for p in "EI"]
    net = jn.Network({"E": lif(NE), "I": lif(NI),
                      "ext_E": jn.poisson_spikes(CE * nu_ext, t1, n=NE, seed=5),
                      "ext_I": jn.poisson_spikes(CE * nu_ext, t1, n=NI, seed=6)}, syns)
    rng = np.random.default_rng(0)
    v0 = {"E": rng.uniform(Vr, theta, NE), "I": rng.uniform(Vr, theta, NI)}
    tr = jn.simulate(net, t1, dt=0.1, v0=v0, record=())
    spikes = np.asarray(tr["E"].spikes)
    counts = np.sum((spikes > 100.0) & np.isfinite(spikes), axis=1)
    assert np.all(np.asarray(tr["E"].spike_count) < 48)  # nothing lost to the buffer
    nu = counts.sum() / NE / 0.15
    assert nu == pytest.approx(nu_mf, rel=0.03)  # 88.7 Hz


@pytest.mark.parametrize("delay", [0.1, 0.3, 1.2, 1.5])
def test_a_whole_number_of_steps_of_delay_from_a_jump_fired_spike_is_exact(delay):
    # A neuron fired by a jump spikes on the grid; with a delay of m steps its arrival
    # is on the grid too, and acts exactly m steps later (NEST's integer delays).
    # Compared without tolerance, t_spike + delay rounded past the grid's t0 + k·dt
    # for 5-30 % of the spikes (in float64 too), acting a step late.
    dt = 0.1
    ks = np.arange(5, 400, 3)
    lif = lambda: jn.LIF(n=1, C=0.25, gL=0.0125, EL=0.0, V_th=20.0, V_reset=10.0, t_ref=0.2,  # noqa: E731
                         V_spike=None, spike_capacity=160)
    post = jn.LIF(n=1, C=0.25, gL=0.0125, EL=0.0, V_th=jnp.inf)
    net = jn.Network({"s": jn.SpikeTrains([list(ks * dt)]), "pre": lif(), "post": post},
                     [jn.DeltaSynapse("s", "pre", jn.conn.one_to_one, 25.0),
                      jn.DeltaSynapse("pre", "post", jn.conn.one_to_one, 0.5, delay)])
    tr = jn.simulate(net, ks[-1] * dt + 5.0, dt=dt, v0={"pre": 0.0, "post": 0.0}, record=("v",))
    pre = np.asarray(tr["pre"].spikes[0])
    pre = pre[np.isfinite(pre)]
    np.testing.assert_allclose(pre, ks * dt, atol=1e-9)  # each source spike fires pre at once
    v = np.asarray(tr["post"].v[:, 0])
    jumps = np.asarray(tr.t)[1:][np.diff(v) > 0.3]
    np.testing.assert_allclose(jumps, ks * dt + delay, atol=1e-9)


def test_a_continued_run_delivers_on_grid_arrivals_in_the_same_steps():
    # Arrivals in flight across the parts' boundary, on the grid (a jump-fired spike plus
    # 1.5 ms) and off it: the continued run's grid is rounded from its own t0, and an
    # exact comparison put some jumps a step apart from the run in one part.
    lif = lambda: jn.LIF(n=1, C=0.25, gL=0.0125, EL=0.0, V_th=20.0, V_reset=10.0, t_ref=2.0, V_spike=None)  # noqa: E731
    net = jn.Network({"s": jn.SpikeTrains([[99.53, 99.6, 99.91, 100.03]]), "pre": lif(), "post": lif()},
                     [jn.DeltaSynapse("s", "pre", jn.conn.one_to_one, 25.0),
                      jn.DeltaSynapse("s", "post", jn.conn.one_to_one, 1.0, 1.5),
                      jn.DeltaSynapse("pre", "post", jn.conn.one_to_one, 2.0, 1.5)])
    one = jn.simulate(net, 105.0, dt=0.1, record=("v",))
    second = jn.simulate(net, 105.0, init=jn.simulate(net, 100.0, dt=0.1, record=("v",)), dt=0.1, record=("v",))
    v_one, v_two = np.asarray(one["post"].v[-51:, 0]), np.asarray(second["post"].v[:, 0])
    np.testing.assert_allclose(v_two, v_one, atol=1e-9)
    # pre fires at 99.6 and 100.0 (99.91's step end; 99.6 + 2 ms refractory: 100.03 lost);
    # post: 1 at 101.1 (99.53 + 1.5 on the grid step 101.1), 1 + 2 at 101.1, 1 at 101.5 ...
    t = np.asarray(one.t)[-51:]
    at = lambda s: v_one[int(np.argmin(np.abs(t - s)))]  # noqa: E731
    assert at(101.1) - at(101.0) * np.exp(-0.1 / 20.0) == pytest.approx(4.0, abs=1e-9)


def test_a_spike_detector_times_a_crossing_made_by_a_jump_at_the_jump():
    # An 80 mV jump at 5.0 lifts an HH compartment over 0 mV: the spike is at 5.0, not
    # interpolated across the jump (4.9953), and its synapses deliver from 5.0.
    hh = jn.SpikeDetector(jn.Compartment(length=20, diam=20, channels=[jn.channels.HH()]), threshold=0.0, capacity=8)
    net = jn.Network({"s": jn.SpikeTrains([[5.0]]), "hh": hh, "p": passive_lif()},
                     [jn.DeltaSynapse("s", "hh", jn.conn.one_to_one, 80.0),
                      jn.DeltaSynapse("hh", "p", jn.conn.one_to_one, 1.0, 1.0)])
    tr = jn.simulate(net, 8.0, dt=0.025, record=("v",))
    spikes = np.asarray(tr["hh"].spikes).reshape(-1)
    assert spikes[0] == pytest.approx(5.0, abs=1e-12) and np.isinf(spikes[1])
    v = np.asarray(tr["p"].v[:, 0]) - EL
    assert np.asarray(tr.t)[np.argmax(v > 0.5)] == pytest.approx(6.0, abs=1e-9)
    # A crossing by the flow itself is still interpolated (a step current, no jump).
    plain = jn.simulate(hh, 8.0, dt=0.025, stimuli=[jn.StepCurrent(0.5, 1.0, 5.0)], record=())
    t_flow = float(np.asarray(plain.spikes).reshape(-1)[0])
    assert 1.0 < t_flow < 8.0 and abs(t_flow / 0.025 - round(t_flow / 0.025)) > 1e-3


def test_a_recurrent_network_matches_a_clock_driven_reference_with_nests_rules_spike_for_spike():
    # 100 LIF neurons (80 E, 20 I), 10 inputs each with its own weight and a delay of
    # 5-20 whole steps, Poisson drive per neuron. Reference: NEST's iaf_psc_delta update
    # in NumPy (V <- exp(-dt/tau)·V + the jumps due in the step unless refractory;
    # spike and reset where V >= theta; refractory for t_ref/dt steps; a spike at step n
    # arrives at step n + delay/dt; a drive arrival at t in the step ending at ceil(t/dt)).
    rng = np.random.default_rng(1)
    N, NE, CE, CI = 100, 80, 8, 2
    J, g, theta, Vr, tau, tref, dt, t1 = 0.5, 5.0, 20.0, 10.0, 20.0, 2.0, 0.1, 300.0
    pre, post, w, steps = [], [], [], []
    for i in range(N):
        for p, sign in [(p, 1.0) for p in rng.choice(NE, CE, replace=False)] + \
                       [(p, -g) for p in NE + rng.choice(N - NE, CI, replace=False)]:
            pre.append(p), post.append(i), w.append(sign * J * rng.uniform(0.8, 1.2)), steps.append(rng.integers(5, 21))
    pre, post, w, steps = map(np.array, (pre, post, w, steps))
    nu_ext = 2.0 * theta / (J * tau)  # per ms: eta = 2
    drive = [np.cumsum(rng.exponential(1 / nu_ext, int(nu_ext * t1 * 1.3) + 50)) for _ in range(N)]
    drive = [d[d < t1] for d in drive]
    v0 = rng.uniform(Vr, theta, N)

    n_steps = int(round(t1 / dt))
    due = np.zeros((n_steps + 30, N))
    for i, d in enumerate(drive):
        np.add.at(due[:, i], np.ceil(d / dt).astype(int), J)
    v, held, ref = v0.copy(), np.zeros(N, int), [[] for _ in range(N)]
    for n in range(1, n_steps + 1):
        free = held == 0
        v = np.where(free, np.exp(-dt / tau) * v + due[n], v)
        held = np.where(free, 0, held - 1)
        fired = np.nonzero(v >= theta)[0]
        for i in fired:
            ref[i].append(n * dt)
        v[fired], held[fired] = Vr, int(round(tref / dt))
        out = np.isin(pre, fired)
        np.add.at(due, (n + steps[out], post[out]), w[out])

    lif = jn.LIF(n=N, C=0.25, gL=0.25 / tau, EL=0.0, V_th=theta, V_reset=Vr, t_ref=tref, V_spike=None,
                 spike_capacity=64)
    net = jn.Network({"p": lif, "x": jn.SpikeTrains([list(d) for d in drive])},
                     [jn.DeltaSynapse("p", "p", jn.conn.explicit(pre, post), jnp.asarray(w), jnp.asarray(steps * dt)),
                      jn.DeltaSynapse("x", "p", jn.conn.one_to_one, J, max_arrivals_per_step=12)])
    ours = np.asarray(jn.simulate(net, t1, dt=dt, v0={"p": v0}, record=())["p"].spikes)
    assert sum(len(r) for r in ref) > 2000  # ~95 Hz
    for i in range(N):
        np.testing.assert_allclose(ours[i][np.isfinite(ours[i])], ref[i], atol=1e-9, err_msg=f"neuron {i}")


def test_a_recurrent_network_matches_neurons_intfire1_spike_for_spike(neuron_h):
    # NEURON's IntFire1 is a LIF with delta inputs, event-driven: m decays with tau,
    # jumps by each weight, fires when m > 1, and ignores inputs for `refrac`, then
    # restarts from 0. With every arrival on the step grid, jaxneuro's LIF + DeltaSynapse
    # fires at the same times. 60 cells, 6 recurrent inputs each (delays 10-30 steps,
    # an even number), excitatory drive on even steps and inhibitory on odd ones: no
    # step sees arrivals of both signs, where NEURON's one-at-a-time order and a step's
    # sum could disagree on whether a neuron fires. refrac 2.05 ms ends inside a step.
    h = neuron_h
    rng = np.random.default_rng(3)
    N, K, tau, refrac, dt, t1 = 60, 6, 10.0, 2.05, 0.1, 300.0
    pre = np.concatenate([rng.choice(N, K, replace=False) for _ in range(N)])
    post = np.repeat(np.arange(N), K)
    w, steps = rng.uniform(0.05, 0.15, N * K), 2 * rng.integers(5, 16, N * K)

    def on_grid(rate, parity):
        k = np.nonzero(rng.random(int(t1 / dt)) < rate * dt)[0]
        return k[(k % 2 == parity) & (k > 0)] * dt

    exc, inh = [on_grid(0.6, 0) for _ in range(N)], [on_grid(0.3, 1) for _ in range(N)]
    w_exc, w_inh, m0 = 0.3, -0.25, rng.uniform(0.0, 0.9, N)

    cells = [h.IntFire1() for _ in range(N)]
    for c in cells:
        c.tau, c.refrac = tau, refrac
    recurrent = [h.NetCon(cells[a], cells[b]) for a, b in zip(pre, post)]
    for nc, ww, s in zip(recurrent, w, steps):
        nc.weight[0], nc.delay = ww, s * dt
    spike_vectors = [h.Vector() for _ in cells]
    recorders = [h.NetCon(c, None) for c in cells]
    for nc, vec in zip(recorders, spike_vectors):
        nc.record(vec)
    drive = [(h.NetCon(None, c), times, ww) for c, e, i in zip(cells, exc, inh) for times, ww in ((e, w_exc), (i, w_inh))]

    def start():
        for c, m in zip(cells, m0):
            c.m = m
        for nc, times, ww in drive:
            nc.weight[0] = ww
            for t in times:
                nc.event(float(t))

    handler = h.FInitializeHandler(start)
    h.dt = dt
    h.finitialize(-65.0)
    h.continuerun(t1)
    ref = [np.array(vec) for vec in spike_vectors]
    m_end = np.array([c.M() for c in cells])
    del handler  # NEURON would otherwise call it at later tests' finitialize

    lif = jn.LIF(n=N, C=1.0, gL=1.0 / tau, EL=0.0, V_th=1.0, V_reset=0.0, t_ref=refrac, V_spike=None,
                 spike_capacity=128)
    net = jn.Network({"p": lif, "e": jn.SpikeTrains([list(x) for x in exc]), "i": jn.SpikeTrains([list(x) for x in inh])},
                     [jn.DeltaSynapse("p", "p", jn.conn.explicit(pre, post), jnp.asarray(w), jnp.asarray(steps * dt)),
                      jn.DeltaSynapse("e", "p", jn.conn.one_to_one, w_exc, name="de"),
                      jn.DeltaSynapse("i", "p", jn.conn.one_to_one, w_inh, name="di")])
    tr = jn.simulate(net, t1, dt=dt, v0={"p": m0}, record=("v",))
    ours = np.asarray(tr["p"].spikes)
    assert sum(len(r) for r in ref) > 500  # ~35 Hz
    for i in range(N):
        np.testing.assert_allclose(ours[i][np.isfinite(ours[i])], ref[i], atol=1e-9, err_msg=f"cell {i}")
    # At the end, cells past their refractory period hold NEURON's decayed m.
    free = np.array([len(r) == 0 or r[-1] < t1 - refrac for r in ref])
    assert free.sum() > N // 2
    np.testing.assert_allclose(np.asarray(tr["p"].v[-1])[free], m_end[free], rtol=0, atol=1e-10)


def test_event_driven_delivery_equals_the_dense_form_in_quiet_and_synchronous_steps():
    # With one delay, a step's jumps come from the connections of the neurons with
    # arrivals only (when few have: tiers of n_pre/256, /64, /16), else from every
    # connection. 400 neurons, 40 inputs each; a weak random drive (a few spikes per
    # step: the event-driven forms) and, at 20 ms, a volley that fires over 100 at once
    # (the dense form): the same spikes and voltages as the dense form throughout.
    n, k, t1 = 400, 40, 40.0
    rng = np.random.default_rng(2)
    w = jnp.asarray(rng.uniform(-0.6, 0.5, n * k))
    def recurrent(event_driven):
        return jn.DeltaSynapse("p", "p", jn.conn.fixed_indegree(k, seed=3), w, 1.0, event_driven=event_driven)

    drive = [sorted(np.concatenate([rng.uniform(0.0, t1, 40), [20.0]])) for _ in range(n)]
    lif = jn.LIF(n=n, C=0.25, gL=0.25 / 20.0, EL=0.0, V_th=20.0, V_reset=10.0, t_ref=2.0, V_spike=None,
                 spike_capacity=64)
    net, dense = (jn.Network({"p": lif, "x": jn.SpikeTrains(drive)},
                             [recurrent(e), jn.DeltaSynapse("x", "p", jn.conn.one_to_one, jnp.where(jnp.arange(n) < 360, 15.0, 4.0),
                                                            max_arrivals_per_step=4)])
                  for e in (True, False))
    assert net.synapses[0].sparse_tiers == (2, 7, 25) and net.synapses[0].out_conn.shape[0] == n
    assert dense.synapses[0].sparse_tiers == () and dense.synapses[0].out_conn is None
    v0 = {"p": jnp.asarray(rng.uniform(10.0, 19.0, n))}

    @eqx.filter_jit
    @eqx.filter_value_and_grad(has_aux=True)
    def run(m):
        tr = jn.simulate(m, t1, dt=0.1, v0=v0, record=("v",))
        return jnp.sum(tr["p"].v[-1]), (tr["p"].spikes, tr["p"].v)

    ((_, (s_ev, v_ev)), g_ev), ((_, (s_dense, v_dense)), g_dense) = run(net), run(dense)
    s_ev, s_dense = np.asarray(s_ev), np.asarray(s_dense)
    fired = np.isfinite(s_dense)
    per_step = np.bincount(np.round(s_dense[fired] / 0.1).astype(int))
    assert per_step.max() > 100 and 0 < np.median(per_step[per_step > 0]) <= 25  # both forms taken
    np.testing.assert_array_equal(s_ev, s_dense)
    np.testing.assert_allclose(np.asarray(v_ev), np.asarray(v_dense), rtol=0, atol=1e-12)
    # Gradients of the weights (of the final voltages' sum) through both forms agree too.
    np.testing.assert_allclose(np.asarray(g_ev.synapses[0].weight), np.asarray(g_dense.synapses[0].weight),
                               rtol=1e-10, atol=1e-12)
    assert np.abs(np.asarray(g_dense.synapses[0].weight)).max() > 0.1


def test_a_delay_set_per_connection_after_the_network_is_built_is_delivered_per_connection():
    """The event-driven table lists each presynaptic neuron's connections for one
    shared delay; a delay set per connection with eqx.tree_at afterwards was read
    through it (rows of connections taken for neurons): jumps on the wrong
    compartments, 81 mV off the same network built with those delays."""
    n = 20
    stim = [jn.StepCurrent(jnp.linspace(1.5, 3.0, n), target="a")]

    def net(delay):
        return jn.Network({"a": jn.LIF(n=n), "b": jn.LIF(n=n)},
                          [jn.DeltaSynapse("a", "b", jn.conn.all_to_all, 0.5, delay)])

    built = net(1.0)
    assert built.synapses[0].sparse_tiers  # the event-driven form, for one delay
    delays = jnp.linspace(0.5, 3.0, n * n)
    edited = eqx.tree_at(lambda m: m.synapses[0].delay, built, delays)
    v_edited, v_direct = (np.asarray(jn.simulate(m, 30.0, stimuli=stim)["b"].v) for m in (edited, net(delays)))
    assert np.any(np.diff(v_direct, axis=0) > 0.4)  # jumps arrived
    np.testing.assert_allclose(v_edited, v_direct, rtol=0, atol=1e-12)
