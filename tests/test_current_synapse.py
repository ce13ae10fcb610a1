"""Current-based exponential synapses (Brian's CUBA, NEST's iaf_psc_exp): PSPs against
the closed form, linearity, inhibition, per-connection weights and delays, what a
network records, parameter checks and gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import saiunit as u

import jaxneuro as jn

# A passive LIF (no threshold) in absolute units: tau_m = C/gL = 10 ms, R = 1/gL = 40 MΩ.
C, GL, EL = 0.25, 0.025, -65.0
TAU_M, R = C / GL, 1.0 / GL


def psp(s, w, tau_s, tau_m=TAU_M, r=R):
    """The closed-form PSP (mV above rest) ``s`` ms after one arrival of ``w`` nA."""
    s = np.asarray(s)
    shape = w * r * tau_s / (tau_m - tau_s) * (np.exp(-s / tau_m) - np.exp(-s / tau_s))
    return np.where(s >= 0, shape, 0.0)


def passive_lif(n=1):
    return jn.LIF(n=n, C=C, gL=GL, EL=EL, V_th=jnp.inf)


def one_arrival(w, tau_s=2.0, delay=1.0, t_spike=5.0, post=None, **kw):
    """A spike source firing once at ``t_spike`` onto one post through a current synapse."""
    post = passive_lif() if post is None else post
    syn = jn.ExpCurrentSynapse("src", "post", jn.conn.one_to_one, w, tau_s, delay, name="e", **kw)
    return jn.Network({"src": jn.SpikeTrains([[t_spike]]), "post": post}, [syn])


def test_psp_of_a_passive_lif_matches_the_closed_form_to_second_order():
    w, tau_s = 0.5, 2.0
    t_a = 6.0  # spike at 5 ms + delay 1 ms
    errors = []
    for dt in (0.05, 0.025):
        tr = jn.simulate(one_arrival(w, tau_s), 40.0, dt=dt, record=("v", "i", "i_syn"))
        t = np.asarray(tr.t)
        exact = EL + psp(t - t_a, w, tau_s)
        errors.append(np.max(np.abs(np.asarray(tr["post"].v[:, 0]) - exact)))
        # The current itself is exact at every sample: w·exp(-(t - t_a)/tau) from t_a on.
        i_exact = np.where(t >= t_a, w * np.exp(-(t - t_a) / tau_s), 0.0)
        np.testing.assert_allclose(np.asarray(tr["e"].i[:, 0]), i_exact, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(np.asarray(tr["post"].i_syn[:, 0]), i_exact, rtol=1e-12, atol=1e-15)
    peak = psp(np.linspace(0, 40, 40001), w, tau_s).max()
    assert peak == pytest.approx(2.674961, rel=1e-5)  # 0.5 nA · 40 MΩ · 2/8 · (...) mV
    # The LIF's exact voltage update with the current at each step's midpoint: the
    # midpoint rule's error, 1.04e-5 mV at dt = 0.025 ms (4e-6 of the peak), second order.
    assert errors[1] < 1e-5 * peak
    assert errors[0] / errors[1] == pytest.approx(4.0, rel=0.05)
    # Nothing before the arrival.
    tr = jn.simulate(one_arrival(w, tau_s), 6.0, record=("v",))
    np.testing.assert_allclose(np.asarray(tr["post"].v), EL, atol=1e-12)


def test_psp_of_a_passive_compartment_with_backward_euler():
    # 1000 µm², 1 µF/cm², 1e-4 S/cm²: C = 0.01 nF, gL = 1e-3 µS, tau_m = 10 ms, R = 1000 MΩ.
    comp = jn.Compartment(area=1000.0, channels=[jn.channels.Leak(g=1e-4, e=-70.0)])
    w, tau_s = 0.002, 3.0
    tr = jn.simulate(one_arrival(w, tau_s, post=comp), 40.0, v0={"post": -70.0}, record=("v",))
    t = np.asarray(tr.t)
    exact = -70.0 + psp(t - 6.0, w, tau_s, tau_m=10.0, r=1000.0)
    peak = float(np.max(exact + 70.0))
    assert peak == pytest.approx(0.358146, rel=1e-5)  # 2 mV · 3/7 · (e^(-0.516) − e^(-1.720)), 5.16 ms after t_a
    # Backward Euler (the compartment's default, first order): 0.094 % of the peak.
    np.testing.assert_allclose(np.asarray(tr["post"].v), exact, atol=1.5e-3 * peak)


def test_linear_in_weight_and_negative_weight_inhibits():
    def depolarisation(w):
        tr = jn.simulate(one_arrival(w), 30.0, record=("v",))
        return np.asarray(tr["post"].v[:, 0]) - EL

    base = depolarisation(0.3)
    assert base.max() > 1.0
    np.testing.assert_allclose(depolarisation(0.9), 3.0 * base, rtol=1e-12, atol=1e-12)
    inhibited = depolarisation(-0.3)
    np.testing.assert_allclose(inhibited, -base, rtol=1e-12, atol=1e-12)
    assert inhibited.min() == pytest.approx(-psp(np.linspace(0, 24, 24001), 0.3, 2.0).max(), rel=1e-4)


def test_per_connection_weights_and_delays_superpose():
    # Two sources (spikes at 2 and 4 ms; the second fires twice) onto three passive
    # LIFs, all to all, one weight, delay and tau... per connection.
    times = [[2.0, np.inf], [4.0, 9.0]]
    weights = jnp.array([0.4, -0.2, 0.1, 0.3, 0.5, -0.6])
    delays = jnp.array([0.5, 1.0, 1.5, 2.0, 2.5, 3.0])
    taus = jnp.array([2.0, 3.0, 4.0, 5.0, 1.5, 2.5])
    syn = jn.ExpCurrentSynapse("src", "post", jn.conn.all_to_all(), weights, taus, delays, name="s")
    net = jn.Network({"src": jn.SpikeTrains(times), "post": passive_lif(3)}, [syn])
    tr = jn.simulate(net, 30.0, record=("v", "i"))
    t = np.asarray(tr.t)
    pre, post = np.repeat([0, 1], 3), np.tile([0, 1, 2], 2)
    v_exact = np.full((t.size, 3), EL)
    i_exact = np.zeros((t.size, 6))
    for c in range(6):
        for t_s in times[pre[c]]:
            if np.isfinite(t_s):
                t_a = t_s + float(delays[c])
                v_exact[:, post[c]] += psp(t - t_a, float(weights[c]), float(taus[c]))
                i_exact[:, c] += np.where(t >= t_a, float(weights[c]) * np.exp(-(t - t_a) / float(taus[c])), 0.0)
    np.testing.assert_allclose(np.asarray(tr["s"].i), i_exact, rtol=1e-12, atol=1e-14)
    assert tr["s"].i.shape == (t.size, 6)
    # The midpoint rule's error, of order (dt/tau)²/24 of a PSP: 2.9e-5 mV here.
    np.testing.assert_allclose(np.asarray(tr["post"].v), v_exact, atol=5e-5)
    assert np.ptp(v_exact, axis=0).min() > 0.5


def test_shared_delay_per_neuron_equals_per_connection():
    # One delay and tau: kernels per presynaptic neuron, scaled per connection.
    times = [[1.0, 3.0, 3.01], [2.0, np.inf, np.inf]]
    conn = jn.conn.fixed_indegree(1, seed=2)

    def run(delay):
        syn = jn.ExpCurrentSynapse("src", "post", conn, jnp.array([0.3, -0.1, 0.2, 0.4]), 3.0, delay, name="s")
        return jn.simulate(jn.Network({"src": jn.SpikeTrains(times), "post": passive_lif(4)}, [syn]), 20.0,
                           record=("v", "i"))

    shared, each = run(0.75), run(jnp.full(4, 0.75))
    np.testing.assert_allclose(shared["s"].i, each["s"].i, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(shared["post"].v, each["post"].v, atol=1e-12)
    # Each connection's current: its weight times the sum of its source's kernels.
    net = jn.Network({"src": jn.SpikeTrains(times), "post": passive_lif(4)},
                     [jn.ExpCurrentSynapse("src", "post", conn, 1.0, 3.0, 0.75, name="s")])
    pre = np.asarray(net.couplings[0].pre_index)  # global: the sources come first
    t = np.asarray(shared.t)[:, None]
    kernels = sum(np.where(t >= np.asarray(times)[pre, j] + 0.75, np.exp(-(t - np.asarray(times)[pre, j] - 0.75) / 3.0), 0.0)
                  for j in range(3))
    np.testing.assert_allclose(shared["s"].i, np.array([0.3, -0.1, 0.2, 0.4]) * kernels, rtol=1e-12, atol=1e-15)


def test_records_a_current_not_a_conductance():
    net = jn.Network({"src": jn.SpikeTrains([[1.0]]), "post": passive_lif(2)},
                     [jn.ExpCurrentSynapse("src", "post", jn.conn.all_to_all(), 0.2, 2.0, name="cur"),
                      jn.ExpSynapse("src", "post", jn.conn.all_to_all(), 0.001, 2.0, 0.0, name="cond")])
    assert "i" in net.observables() and "g" in net.observables()
    assert net.unit_of("i") == "nA" and net.unit_of("g") == "µS"
    assert net.member_unit("cur", "i") == "nA" and net.member_unit("cond", "g") == "µS"
    with pytest.raises(ValueError, match="'cur' does not record 'g'"):
        net.member_unit("cur", "g")
    tr = jn.simulate(net, 5.0, record=("g", "i"))
    assert tr["cur"].names == ("i",) and tr["cond"].names == ("g",)
    assert tr["cur"].unit("i") == "nA" and tr["cond"].unit("g") == "µS"
    assert float(tr["cur"].i.max()) == pytest.approx(0.2, rel=1e-12)
    with pytest.raises(TypeError, match="current-based: it has no conductance"):
        net.couplings[0].conductance(0.0, {})
    # Only the conductance synapse records g, only the current synapse i.
    tr = jn.simulate(net, 5.0, record=("g",))
    assert "cur" not in tr.parts


def test_parameter_checks():
    with pytest.raises(ValueError, match=r"'ExpCurrentSynapse.tau' must be > 0 \(in ms\)"):
        jn.ExpCurrentSynapse("a", "b", jn.conn.one_to_one, 0.1, 0.0)
    with pytest.raises(ValueError, match=r"'ExpCurrentSynapse.tau' must be > 0"):
        jn.ExpCurrentSynapse("a", "b", jn.conn.one_to_one, 0.1, jnp.array([1.0, -2.0]))
    with pytest.raises(ValueError, match="ExpCurrentSynapse.tau expects the current's decay time constant in ms"):
        jn.ExpCurrentSynapse("a", "b", jn.conn.one_to_one, 0.1)
    with pytest.raises(ValueError, match="ExpCurrentSynapse.weight expects the current's jump at each arrival in nA"):
        jn.ExpCurrentSynapse("a", "b", jn.conn.one_to_one, tau=2.0)
    with pytest.raises(ValueError, match=r"'ExpCurrentSynapse.weight' must be finite \(in nA\)"):
        jn.ExpCurrentSynapse("a", "b", jn.conn.one_to_one, np.inf, 2.0)
    with pytest.raises(ValueError, match=r"'ExpCurrentSynapse.weight' must not be NaN"):
        jn.ExpCurrentSynapse("a", "b", jn.conn.one_to_one, jnp.array([0.1, np.nan]), 2.0)
    with pytest.raises(ValueError, match=r"'ExpCurrentSynapse.delay' must be >= 0"):
        jn.ExpCurrentSynapse("a", "b", jn.conn.one_to_one, 0.1, 2.0, -1.0)
    with pytest.raises(ValueError, match="expects a current"):
        jn.ExpCurrentSynapse("a", "b", jn.conn.one_to_one, 1.0 * u.nS, 2.0)
    # Quantities are converted: 500 pA is 0.5 nA, 2000 µs is 2 ms.
    syn = jn.ExpCurrentSynapse("a", "b", jn.conn.one_to_one, 500.0 * u.pA, 2000.0 * u.us)
    assert float(syn.weight) == pytest.approx(0.5) and float(syn.tau) == pytest.approx(2.0)
    # One weight per connection, or a scalar.
    with pytest.raises(ValueError, match=r"ExpCurrentSynapse.weight expects shape \(\) or \(2,\)"):
        jn.Network({"src": jn.SpikeTrains([[1.0], [2.0]]), "post": passive_lif(2)},
                   [jn.ExpCurrentSynapse("src", "post", jn.conn.one_to_one, jnp.ones(3), 2.0)])
    with pytest.raises(ValueError, match="pre population 'post' does not spike"):
        jn.Network({"post": jn.Compartment(area=100.0)}, [jn.ExpCurrentSynapse("post", "post", jn.conn.one_to_one, 0.1, 2.0)])


def test_gradients_in_weight_and_tau_match_finite_differences():
    def v_late(w, tau_s):
        tr = jn.simulate(one_arrival(w, tau_s), 15.0, record=("v",), save_every=0.5)
        return jnp.sum(tr["post"].v[:, 0] - EL)

    f = jax.jit(jax.value_and_grad(v_late, argnums=(0, 1)))
    val, (g_w, g_tau) = f(0.5, 2.0)
    h = 1e-6
    fd_w = (f(0.5 + h, 2.0)[0] - f(0.5 - h, 2.0)[0]) / (2 * h)
    fd_tau = (f(0.5, 2.0 + h)[0] - f(0.5, 2.0 - h)[0]) / (2 * h)
    assert float(val) > 10.0
    assert float(g_w) == pytest.approx(float(fd_w), rel=1e-6)
    assert float(g_w) == pytest.approx(float(val) / 0.5, rel=1e-10)  # linear in the weight
    assert float(g_tau) > 0.0  # a slower decay delivers more charge
    assert float(g_tau) == pytest.approx(float(fd_tau), rel=1e-6)
    # Against the closed form: d/dtau of the summed PSPs at the saved times.
    t = np.arange(0.0, 15.0 + 1e-9, 0.5)
    closed = lambda tau: np.sum(psp(t - 6.0, 0.5, tau))  # noqa: E731
    assert float(g_tau) == pytest.approx((closed(2.0 + 1e-6) - closed(2.0 - 1e-6)) / 2e-6, rel=1e-4)


def test_driven_by_a_spiking_population_with_neuron_delivery():
    # A LIF that spikes once drives a passive LIF; NEURON's delivery counts each event
    # from the midpoint of its step, so the current is that of an arrival up to half a
    # step later: equal to the exact one shifted by that lag.
    pre = jn.LIF(n=1)
    def run(delivery):
        net = jn.Network({"pre": pre, "post": passive_lif()},
                         [jn.ExpCurrentSynapse("pre", "post", jn.conn.one_to_one, 0.5, 2.0, 1.0, name="e",
                                               delivery=delivery)])
        return jn.simulate(net, 20.0, stimuli=[jn.StepCurrent(20.0, 2.0, 1.0, target="pre")], record=("v", "i"))

    exact, neuron = run("exact"), run("neuron")
    t_s = float(exact["pre"].spikes[0, 0])
    assert np.isfinite(t_s) and np.isinf(float(exact["pre"].spikes[0, 1]))
    t = np.asarray(exact.t)
    t_a = t_s + 1.0
    np.testing.assert_allclose(np.asarray(exact["e"].i[:, 0]), np.where(t >= t_a, 0.5 * np.exp(-(t - t_a) / 2.0), 0.0),
                               rtol=1e-12, atol=1e-15)
    k = np.searchsorted(t, t_a)  # the step (t[k-1], t[k]] holding the arrival
    t_mid = 0.5 * (t[k - 1] + t[k]) if t_a <= 0.5 * (t[k - 1] + t[k]) else 0.5 * (t[k] + t[k + 1])
    later = np.where(t >= t_mid, 0.5 * np.exp(-(t - t_mid) / 2.0), 0.0)
    np.testing.assert_allclose(np.asarray(neuron["e"].i[:, 0]), later, rtol=1e-12, atol=1e-15)
    v_e, v_n = np.asarray(exact["post"].v[:, 0]), np.asarray(neuron["post"].v[:, 0])
    # An arrival inside a step counts from its midpoint there: at most half a step's
    # charge early or late, w·dt/(2C) = 0.025 mV.
    np.testing.assert_allclose(v_e, EL + psp(t - t_a, 0.5, 2.0), atol=0.5 * 0.5 * 0.025 / C)
    assert np.max(np.abs(v_n - v_e)) < 0.02 * (v_e.max() - EL)


@pytest.mark.parametrize("tau_s", [0.025, 0.1, 0.5])
def test_each_arrival_delivers_its_exact_charge_wherever_it_lands_in_a_step(tau_s):
    """The step sees the current averaged over it: with the midpoint's value a PSP's
    size depended on the arrival's place in the step (tau = dt = 0.1 ms: 0.8-1.6x;
    0.025 ms: 0.55x at a step's start). Long after the arrival the voltage is the
    closed form's to a small fraction, at every offset."""
    w, dt = 0.5, 0.1
    for offset in (0.0, 0.01, 0.049, 0.051, 0.09):
        t_a = 6.0 + offset
        tr = jn.simulate(one_arrival(w, tau_s, t_spike=5.0 + offset), 20.0, dt=dt, record=("v",))
        t = np.asarray(tr.t)
        late = t > t_a + 5 * tau_s + 2 * dt
        deflection = np.asarray(tr["post"].v[:, 0])[late] - EL
        np.testing.assert_allclose(deflection, psp(t[late] - t_a, w, tau_s), rtol=5e-3)  # dt/tau_m = 1 %


def test_recorded_currents_count_an_arrival_at_the_runs_start():
    """At a sample (the state's own time) the step mean's limit is the current there,
    an arrival exactly at the run's start counted in full from its first sample."""
    net = jn.Network({"src": jn.SpikeTrains([[0.0, 0.5]]), "post": passive_lif()},
                     [jn.ExpCurrentSynapse("src", "post", jn.conn.one_to_one, 0.3, 2.0, name="e")])
    tr = jn.simulate(net, 1.0, record=("i", "i_syn"))
    t = np.asarray(tr.t)
    exact = 0.3 * np.exp(-t / 2.0) + np.where(t >= 0.5, 0.3 * np.exp(-(t - 0.5) / 2.0), 0.0)
    np.testing.assert_allclose(np.asarray(tr["post"].i_syn[:, 0]), exact, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(np.asarray(tr["e"].i[:, 0]), exact, rtol=1e-12, atol=1e-15)
