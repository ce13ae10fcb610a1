"""Spike sources (jn.SpikeTrains, jn.poisson_spikes) driving synapses in a Network:
against NEURON's NetStim, the analytic conductance, Poisson statistics and bad input."""

import math

import jax
import jax.numpy as jnp
import warnings

import numpy as np
import pytest

import jaxneuro as jn
import saiunit as u


def passive(n=1):
    return jn.Compartment(area=1000, channels=[jn.channels.Leak(g=1e-4, e=-70.0)], n=n)


def test_regular_train_matches_neuron_netstim_into_expsyn(neuron_h):
    """A source firing at 2, 5, 8, 11 ms through an ExpSynapse (delivery="neuron") onto
    seed 001's soma: NEURON's NetStim (start 2, interval 3, number 4) with a NetCon into
    an ExpSyn gives the same voltages to rounding."""
    h = neuron_h
    g_max, tau, e_syn, delay = 0.01, 3.0, 0.0, 1.3
    soma = h.Section(name="netstim_soma")
    soma.L, soma.diam, soma.cm = 100, 500, 1
    soma.insert("pas")
    soma(0.5).pas.g, soma(0.5).pas.e = 1e-4, -70.0
    syn = h.ExpSyn(soma(0.5))
    syn.tau, syn.e = tau, e_syn
    stim = h.NetStim()
    stim.start, stim.interval, stim.number, stim.noise = 2, 3, 4, 0
    nc = h.NetCon(stim, syn)
    nc.delay, nc.weight[0] = delay, g_max
    v_rec = h.Vector().record(soma(0.5)._ref_v)
    h.dt = 0.025
    h.finitialize(-70.0)
    h.continuerun(25.0)
    v_n = np.asarray(v_rec)

    post = jn.Compartment(length=100, diam=500, channels=[jn.channels.Leak(g=1e-4, e=-70.0)], n=1)
    net = jn.Network({"input": jn.SpikeTrains([[2.0, 5.0, 8.0, 11.0]]), "post": post},
                     [jn.ExpSynapse("input", "post", jn.conn.one_to_one, g_max, tau, e_syn, delay,
                                    delivery="neuron")])
    trace = jn.simulate(net, 25.0, v0=-70.0)
    v = np.asarray(trace["post"].v[:, 0])
    assert v.shape == v_n.shape and np.ptp(v_n) > 1.0  # real PSPs
    assert np.max(np.abs(v - v_n)) < 1e-9
    np.testing.assert_array_equal(trace["input"].spikes, [[2.0, 5.0, 8.0, 11.0]])
    assert float(trace["input"].spike_count[0]) == 4


def test_arrivals_on_a_step_midpoint_count_in_that_step_as_in_neuron(neuron_h):
    """NEURON delivers the events up to and including a step's midpoint. With a dyadic
    step (0.125 ms) the midpoints are exact in both simulators: a source's spikes at
    2.0625 and 4.5 ms with a delay of 1.5 ms arrive on the midpoints 3.5625 and 6.0625
    and count in those steps (before: one step later, 0.05 mV off)."""
    h = neuron_h
    dt, t1, g_max, tau, delay = 0.125, 12.0, 0.01, 1.0, 1.5
    soma = h.Section(name="midpoint_soma")
    soma.L, soma.diam, soma.cm = 100, 500, 1
    soma.insert("pas")
    soma(0.5).pas.g, soma(0.5).pas.e = 1e-4, -70.0
    syn = h.ExpSyn(soma(0.5))
    syn.tau, syn.e = tau, 0.0
    stim = h.NetStim()
    stim.start, stim.interval, stim.number, stim.noise = 2.0625, 2.4375, 2, 0
    nc = h.NetCon(stim, syn)
    nc.delay, nc.weight[0] = delay, g_max
    v_rec = h.Vector().record(soma(0.5)._ref_v)
    h.dt = dt
    h.finitialize(-70.0)
    h.continuerun(t1)
    v_n = np.asarray(v_rec)

    post = jn.Compartment(length=100, diam=500, channels=[jn.channels.Leak(g=1e-4, e=-70.0)], n=1)
    net = jn.Network({"input": jn.SpikeTrains([[2.0625, 4.5]]), "post": post},
                     [jn.ExpSynapse("input", "post", jn.conn.one_to_one, g_max, tau, 0.0, delay,
                                    delivery="neuron")])
    v = np.asarray(jn.simulate(net, t1, dt=dt, v0=-70.0)["post"].v[:, 0])
    assert v.shape == v_n.shape and np.ptp(v_n) > 0.5
    onset = int(round((3.5625 + 0.5 * dt) / dt))  # the first sample after the arrival's step
    assert v_n[onset] > -69.99 and v_n[onset - 1] == pytest.approx(-70.0, abs=1e-12)
    assert np.max(np.abs(v - v_n)) < 1e-9


def test_conductance_is_the_sum_of_kernels_and_sources_leave_the_solver_alone():
    """With exact delivery the recorded conductance is sum_k g_max·exp(-(t - t_k - d)/tau)
    at every step; a LIF population beside a source keeps its own (exponential) solver,
    so its spikes are those it fires alone; v of the source stays at v0."""
    times = [[1.0, 1.7, 6.0], [3.3]]
    g_max, tau, delay = 0.01, 2.0, 0.5
    net = jn.Network({"src": jn.SpikeTrains(times), "post": passive(2)},
                     [jn.ExpSynapse("src", "post", jn.conn.one_to_one, g_max, tau, 0.0, delay, name="s")])
    trace = jn.simulate(net, 10.0, v0=-70.0, record=("v", "g"), stimuli=[jn.StepCurrent(0.01)])
    t = np.asarray(trace.t)
    g = np.asarray(trace["s"].g)
    for k, row in enumerate(times):
        expected = sum(g_max * np.exp(-(t - s - delay) / tau) * (t >= s + delay) for s in row)
        np.testing.assert_allclose(g[:, k], expected, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(trace["src"].v, -70.0)  # no membrane: v0, the network's step moves nothing

    lif = jn.LIF(n=2, spike_capacity=16)
    drive = [jn.StepCurrent(3.0, target="lif")]
    with_source = jn.Network({"lif": lif, "src": jn.SpikeTrains(times)})
    assert with_source.default_solver() == lif.default_solver()
    alone = jn.simulate(jn.Network({"lif": lif}), 50.0, stimuli=drive)
    together = jn.simulate(with_source, 50.0, stimuli=drive)
    # (backward Euler, which a mixed solver choice gave, is 0.05 ms off here)
    np.testing.assert_allclose(together["lif"].spikes, alone["lif"].spikes, rtol=0, atol=1e-9)


def test_poisson_trains_have_poisson_statistics():
    rate, t1, n = 20.0, 2000.0, 1000
    src = jn.poisson_spikes(rate, t1, n=n, seed=3)
    s = np.asarray(src.spikes)
    counts = np.isfinite(s).sum(axis=1)
    expected = rate * t1 / 1000
    assert abs(counts.mean() - expected) < 5 * math.sqrt(expected / n)
    assert counts.var() == pytest.approx(expected, rel=0.15)  # Poisson: variance = mean
    with np.errstate(invalid="ignore"):  # inf - inf in the padding
        isi = np.diff(s, axis=1)
    isi = isi[np.isfinite(isi)]
    assert np.std(isi) / np.mean(isi) == pytest.approx(1.0, abs=0.03)  # exponential intervals
    assert np.nanmax(np.where(np.isfinite(s), s, np.nan)) <= t1 and np.nanmin(s) >= 0
    # Reproducible; per-source rates; rate 0 never fires; keys for vmap.
    np.testing.assert_array_equal(jn.poisson_spikes(rate, t1, n=n, seed=3).spikes, s)
    per_source = np.asarray(jn.poisson_spikes(np.array([0.0, 5.0, 50.0]), 1000.0, seed=1).spikes)
    c = np.isfinite(per_source).sum(axis=1)
    assert c[0] == 0 and c[1] < c[2]
    batch = jax.vmap(lambda k: jn.poisson_spikes(rate, 100.0, n=2, seed=k, capacity=20).spikes)(
        jax.random.split(jax.random.key(0), 3))
    assert batch.shape == (3, 2, 20) and not np.array_equal(batch[0], batch[1])
    # t0 shifts the trains.
    later = np.asarray(jn.poisson_spikes(rate, t1 + 500.0, n=n, seed=3, t0=500.0).spikes)
    np.testing.assert_allclose(later[np.isfinite(later)], s[np.isfinite(s)] + 500.0, rtol=1e-12)
    # A source's train does not change with t1, capacity or the number of sources (each
    # interval has a key of its own; one draw of shape (n, capacity) gave other trains).
    longer = np.asarray(jn.poisson_spikes(rate, 2 * t1, n=n + 5, seed=3, capacity=200).spikes)
    first = longer[:n, : s.shape[1]]
    np.testing.assert_array_equal(np.where(first <= t1, first, np.inf), s)


def test_a_sources_spike_count_is_its_times_up_to_each_step_end():
    """Counted by a binary search per source (a sum over every slot made each step cost
    the whole buffer): times on a step's end count in that step, equal times each, and
    the inf padding never; the count at every step equals a sum over the slots."""
    times = [[0.5, 0.5, 1.0, 2.05, 7.0], [3.0], []]
    src = jn.SpikeTrains(times)
    state = src.init_state(0.0)
    for t1 in (0.25, 0.5, 0.75, 1.0, 2.05, 2.075, 6.999, 7.0, 50.0):
        got = np.asarray(src.resolve_events(t1 - 0.025, t1, state, state, 0.0, 0.0).events["count"])
        padded = np.asarray(src.spikes)
        np.testing.assert_array_equal(got, np.sum(padded <= t1, axis=-1))
    trace = jn.simulate(jn.Network({"src": src, "p": passive(3)}), 10.0)
    np.testing.assert_array_equal(trace["src"].spike_count, [5, 1, 0])


def test_poisson_trains_under_jit():
    # A constant rate with a traced seed needs no capacity (it demanded one, calling
    # the rate traced), and a train overflowing its capacity under jit or vmap is an
    # error when it runs (it was cut off silently: 20 of 83 spikes at 100 Hz for 1 s).
    def draw(seed, capacity=None):
        return jn.poisson_spikes(20.0, 500.0, n=3, seed=seed, capacity=capacity).spikes

    np.testing.assert_array_equal(jax.jit(draw)(4), draw(4))
    with pytest.raises(Exception, match="more than capacity=3 slots"):
        jax.block_until_ready(jax.jit(lambda s: draw(s, 3))(4))
    with pytest.raises(Exception, match="more than capacity=3 slots"):
        jax.block_until_ready(jax.vmap(lambda s: draw(s, 3))(jnp.arange(2)))
    with pytest.raises(ValueError, match="give capacity= when rate is traced"):
        jax.jit(lambda r: jn.poisson_spikes(r, 500.0, n=3).spikes)(20.0)


def test_long_float32_poisson_trains_stay_in_order():
    # XLA's float32 cumsum adds in a tree: a running sum of 10^5 ms stepped back by a
    # rounding (99875.83 then 99875.82) and SpikeTrains refused its own trains.
    with jax.enable_x64(False):
        src = jn.poisson_spikes(200.0, 100_000.0, n=2, seed=0)
        s = np.asarray(src.spikes)
        reference = np.cumsum(np.diff(s[:, :1000], axis=1, prepend=0.0).astype(np.float64), axis=1)
    assert s.dtype == np.float32
    with np.errstate(invalid="ignore"):
        assert np.all(np.diff(s, axis=1)[np.isfinite(s[:, 1:])] >= 0)
    assert abs(np.isfinite(s).sum() / 2 - 20_000) < 5 * math.sqrt(20_000)
    np.testing.assert_allclose(s[:, :1000], reference, rtol=1e-5)


def test_bad_spike_sources_are_refused_with_the_parameter_named():
    with pytest.raises(ValueError, match="source 0 are not in increasing order"):
        jn.SpikeTrains([[3.0, 1.0]])
    with pytest.raises(ValueError, match="expects shape \\(n, capacity\\)"):
        jn.SpikeTrains(np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="must not be NaN"):
        jn.SpikeTrains([[1.0, np.nan]])
    with pytest.raises(ValueError, match="more than capacity=4 slots"):
        jn.poisson_spikes(100.0, 1000.0, n=2, capacity=4)
    with pytest.raises(ValueError, match="'poisson_spikes.rate' must be >= 0"):
        jn.poisson_spikes(-1.0, 100.0)
    with pytest.raises(ValueError, match=r"parameter 't1' expects a fixed number in ms .* got a traced value"):
        jax.jit(lambda t1: jn.poisson_spikes(10.0, t1, n=2, capacity=8).spikes)(100.0)
    with pytest.raises(ValueError, match="one rate per source"):
        jn.poisson_spikes(np.ones(3), 100.0, n=2)
    with pytest.raises(ValueError, match="spike source.*no membrane"):
        jn.Network({"src": jn.SpikeTrains([[1.0]]), "p": passive()},
                   [jn.SymmetricGapJunction("src", "p", jn.conn.one_to_one, 0.01)])
    # A stimulus or synapse aimed at a source did nothing, silently.
    net = jn.Network({"src": jn.SpikeTrains([[1.0]]), "p": passive()})
    for target in ("src", ("src", [0])):
        with pytest.raises(ValueError, match=r"stimulus target=.*population 'src' is a spike source \(SpikeTrains\)"):
            jn.simulate(net, 2.0, stimuli=[jn.StepCurrent(5.0, 0.0, 2.0, target=target)])
    with pytest.raises(ValueError, match=r"ExpSynapse 's': post population 'src' is a spike source \(SpikeTrains\)"):
        jn.Network({"src": jn.SpikeTrains([[1.0]]), "p": jn.LIF()},
                   [jn.ExpSynapse("p", "src", jn.conn.one_to_one, 0.01, name="s")])
    # Aimed at the whole network, a current passes the source by.
    whole = jn.simulate(net, 2.0, stimuli=[jn.StepCurrent(0.1, 0.0, 2.0)])
    alone = jn.simulate(passive(), 2.0, stimuli=[jn.StepCurrent(0.1, 0.0, 2.0)])
    np.testing.assert_allclose(np.asarray(whole["p"].v), np.asarray(alone.v), rtol=1e-12)
    assert np.all(np.asarray(whole["src"].v) == 0.0)
    # So does a current density (it raised AttributeError: the source has no area).
    density = jn.StepCurrent(0.01 * u.mA / u.cm**2, 0.0, 2.0)
    whole = jn.simulate(net, 2.0, stimuli=[density])
    alone = jn.simulate(passive(), 2.0, stimuli=[density])
    np.testing.assert_allclose(np.asarray(whole["p"].v), np.asarray(alone.v), rtol=1e-12)
    assert np.ptp(np.asarray(alone.v)) > 0.1


def test_a_networks_rest_leaves_its_sources_spikes_out():
    # A source spike at t = 0 was counted in the synapse's conductance, held there: the
    # LIF's "rest" -63.6 mV and input resistance 9.09 MΩ (EL -70 mV, 1/gL 10 MΩ).
    for times in ([[0.0]], [[5.0]], [[0.0], [0.0]]):
        syn = jn.ExpSynapse("src", "post", jn.conn.all_to_all, 0.01, 2.0, 0.0, name="s")
        net = jn.Network({"src": jn.SpikeTrains(times), "post": jn.LIF(gL=0.1, EL=-70.0)}, [syn])
        state = jn.steady_state(net)
        assert float(state.v[-1]) == pytest.approx(-70.0, abs=1e-9)
        assert float(jn.input_resistance(net)[-1]) == pytest.approx(10.0, rel=1e-9)
        # The state keeps the trains: a run from it still gets the arrival at 0.
        run = jn.simulate(net, 2.0, init=state)
        assert (float(run["post"].v[-1]) > -69.5) == (times[0][0] == 0.0)


def _burst_net(times, window=None, delay=0.5, tau=2.0, g_max=0.01, delivery="exact"):
    kw = {} if window is None else {"max_arrivals_per_step": window}
    syn = jn.ExpSynapse("src", "post", jn.conn.one_to_one, g_max, tau, 0.0, delay, name="s", delivery=delivery, **kw)
    return jn.Network({"src": jn.SpikeTrains(times), "post": passive(len(times))}, [syn])


def _expected_g(t, rows, g_max=0.01, tau=2.0, delay=0.5, t0=0.0):
    """Exact delivery from a run starting at t0: arrivals before then are not
    delivered, one at t0 counts from t0 on."""
    return np.stack([sum(g_max * np.exp(-(t - s - delay) / tau) * (t >= s + delay) for s in row if s + delay >= t0)
                     for row in rows], axis=-1)


@pytest.mark.parametrize("t0", [0.0, 2.0])
def test_an_arrival_at_the_start_of_a_run_is_delivered(t0):
    """A spike arriving exactly at t0 counts from t0 on, as NEURON delivers an event due
    at its start (it used to be passed over with the ones that arrived before the run);
    earlier arrivals are still passed over."""
    dt = 0.025
    rows = [[t0 - 0.5], [t0 - 0.5 - dt, t0 + 1.0]]  # arrival at t0; one before t0, one later
    tr = jn.simulate(_burst_net(rows), t0 + 5.0, t0=t0, dt=dt, v0=-70.0, record=("g",))
    t = np.asarray(tr.t)
    expected = _expected_g(t, rows, t0=t0)
    assert expected[0, 0] == 0.01 and expected[0, 1] == 0.0
    np.testing.assert_allclose(tr["s"].g, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("t0", [0.0, 50.0])
def test_neuron_delivery_passes_over_arrivals_before_a_fresh_run(t0):
    """delivery="neuron" on a fresh run from t0: arrivals before t0 are passed over, as
    with "exact" (NEURON refuses events in the past); they were all delivered in the
    first steps, a burst of 24 events' conductance at t0 = 50. Each later arrival (on
    the grid here) counts from the next step's midpoint, one at t0 included."""
    dt, tau, g_max, delay = 0.025, 2.0, 0.01, 1.0
    spikes = np.arange(1.0, 100.0, 2.0)
    net = _burst_net([list(spikes)], delay=delay, delivery="neuron")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no late-arrival warning either
        tr = jn.simulate(net, 100.0, t0=t0, dt=dt, v0=-70.0, record=("g",))
    t = np.asarray(tr.t)
    delivered = spikes + delay + dt / 2
    delivered = delivered[spikes + delay >= t0]
    expected = np.sum(g_max * np.exp(-(t[:, None] - delivered) / tau) * (t[:, None] >= delivered), axis=1)
    np.testing.assert_allclose(np.asarray(tr["s"].g)[:, 0], expected, rtol=0, atol=1e-12)
    assert expected[: int(round(1.0 / dt))].max() <= g_max  # no burst at the start


def test_synapses_take_up_a_few_slots_per_step_and_catch_up_on_bursts():
    """Synapses read each presynaptic row from its first spike not yet taken up,
    max_arrivals_per_step slots per step. Five spikes of one source within one step:
    with a window of 5 every step's conductance is exact; with the default 2 the rest
    are taken up in the next two steps with their true ages (exact again from then on)
    and simulate warns; spikes that arrived before the run are passed over."""
    dt = 0.1
    rows = [[1.01, 1.02, 1.03, 1.04, 1.05, 4.0], [-30.0, -20.0, -10.0, -5.0, -1.0, 2.0]]
    kw = dict(dt=dt, v0=-70.0, record=("g",), save_every=dt)
    wide = jn.simulate(_burst_net(rows, window=5), 8.0, **kw)
    t = np.asarray(wide.t)
    expected = _expected_g(t, rows)
    np.testing.assert_allclose(wide["s"].g, expected, rtol=0, atol=1e-12)
    # Five arrivals over three steps: the first two in their step, then two, then one.
    with pytest.warns(RuntimeWarning, match=r"synapse 's': 2 time\(s\) more than max_arrivals_per_step=2"):
        narrow = jn.simulate(_burst_net(rows), 8.0, **kw)
    g = np.asarray(narrow["s"].g)
    first = int(np.argmax(t >= 1.01 + 0.5 - 1e-9))  # the step the burst arrives in
    # At the burst's step the state holds two; the record (what the next step's current
    # uses) adds two more, so one of five is missing; exact from the next sample on.
    np.testing.assert_allclose(g[first, 0], 0.8 * expected[first, 0], rtol=0.01)
    np.testing.assert_allclose(g[first + 1:], expected[first + 1:], rtol=0, atol=1e-12)
    np.testing.assert_allclose(g[:, 1], expected[:, 1], rtol=0, atol=1e-12)  # pre-run spikes: none late
    # The same with NEURON's timing, arrivals counted in full from a step's midpoint.
    with pytest.warns(RuntimeWarning, match="max_arrivals_per_step=2"):
        jn.simulate(_burst_net(rows, delivery="neuron"), 8.0, **kw)


def test_spike_buffer_capacity_does_not_change_synaptic_results():
    """The synapses read a few slots per step, wherever the buffer's end is: a LIF
    network with 16 or 256 slots per neuron gives the same voltages."""
    def run(capacity):
        lif = jn.LIF(n=12, C=0.2, gL=0.01, EL=-60.0, V_th=-50.0, V_reset=-60.0, t_ref=2.0,
                     spike_capacity=capacity)
        net = jn.Network({"e": lif}, [jn.ExpSynapse("e", "e", jn.conn.fixed_prob(0.3, seed=1, include_self=False),
                                                    0.004, 5.0, 0.0, 1.0)])
        return jn.simulate(net, 40.0, dt=0.1, v0=np.linspace(-60.0, -51.0, 12),
                           stimuli=[jn.StepCurrent(0.25, target="e")])

    small, large = run(16), run(256)
    assert 5 <= int(np.max(small["e"].spike_count)) < 16  # several spikes, none past the 16 slots
    np.testing.assert_array_equal(small["e"].v, large["e"].v)


def test_max_arrivals_per_step_must_be_a_positive_int():
    for bad in (0, -1, 1.5, True, np.int64(0)):
        with pytest.raises(ValueError, match=r"max_arrivals_per_step \(spikes .*\) expects a positive integer"):
            jn.ExpSynapse("a", "b", jn.conn.one_to_one, 0.01, max_arrivals_per_step=bad)
    # A NumPy integer, or a 0-d integer array (jnp.sum of a mask), is a count (it was refused).
    for good in (np.int64(3), jnp.asarray(3), np.array(3)):
        syn = jn.ExpSynapse("a", "b", jn.conn.one_to_one, 0.01, max_arrivals_per_step=good)
        assert syn.max_arrivals_per_step == 3 and type(syn.max_arrivals_per_step) is int
    assert type(jn.LIF(n=jnp.sum(jnp.asarray([True, True, False]))).n) is int


def test_a_continued_run_takes_the_networks_new_spike_trains():
    # A source's times are part of the state, so new trains given for the next part of
    # a run were ignored (the continued run delivered none of them). Now the state's
    # spikes before t0 stay (one still in flight at t0 arrives, as in one run) and the
    # new trains' from t0 on are added.
    lif = jn.LIF(n=1)
    inf = np.inf

    def net(trains):
        return jn.Network(populations={"src": jn.SpikeTrains(trains), "lif": lif},
                          couplings=[jn.ExpSynapse("src", "lif", jn.conn.all_to_all(), g_max=0.5, tau=3.0, delay=1.0)])

    first = jn.simulate(net([[5.0, 8.0, 19.5, inf, inf, inf]]), 20.0)  # 19.5 arrives at 20.5
    second = jn.simulate(net([[25.0, 27.0, 29.0, inf, inf, inf]]), 40.0, t0=20.0, init=first.final_state)
    whole = jn.simulate(net([[5.0, 8.0, 19.5, 25.0, 27.0, 29.0]]), 40.0)
    n = len(first.t)
    np.testing.assert_allclose(second["lif"].v, whole["lif"].v[n - 1:], rtol=0, atol=1e-9)
    assert float(np.max(second["lif"].v)) > -50.0  # the new inputs arrived
    # The same trains again: the same as one run.
    trains = [[5.0, 18.5, 19.5, 30.0, inf, inf]]
    more = jn.simulate(net(trains), 40.0, t0=20.0, init=jn.simulate(net(trains), 20.0).final_state)
    np.testing.assert_allclose(more["lif"].v, jn.simulate(net(trains), 40.0)["lif"].v[n - 1:], rtol=0, atol=1e-9)
    with pytest.raises(ValueError, match=r"spike source 'src': .* need 7 slots per source, its capacity is 6"):
        jn.simulate(net([[20.0, 21.0, 22.0, 23.0, inf, inf]]), 40.0, t0=20.0, init=first.final_state)


def test_a_continued_run_must_start_where_the_state_ended():
    # Forgetting t0= (default 0) left a LIF refractory until 34 ms, silent, without a word.
    lif = jn.LIF()
    first = jn.simulate(lif, 40.0, stimuli=[jn.StepCurrent(3.0)])
    assert np.isfinite(np.asarray(first.spikes)).sum() >= 1
    with pytest.raises(ValueError, match=r"init is the state of a run that had reached t = .* but t0 = 0 ms.*pass init=trace"):
        jn.simulate(lif, 40.0, stimuli=[jn.StepCurrent(3.0)], init=first.final_state)
    jn.simulate(lif, 80.0, t0=40.0, stimuli=[jn.StepCurrent(3.0)], init=first.final_state)
    jn.simulate(lif, 80.0, stimuli=[jn.StepCurrent(3.0)], init=first)


def test_a_cut_trace_has_no_final_state_to_continue_from():
    # Its final_state was None, so init=trace.window(...).final_state silently started
    # from rest (init=None is the default).
    tr = jn.simulate(jn.LIF(), 20.0, stimuli=[jn.StepCurrent(1.0)])
    for cut in (tr.window(0.0, 10.0), tr.at(jnp.array([5.0]))):
        assert "cut trace" in repr(cut.final_state)
        with pytest.raises(ValueError, match=r"init is the final_state of a trace cut by at\(\) or window\(\)"):
            jn.simulate(jn.LIF(), 30.0, t0=20.0, init=cut.final_state)
    # A cut trace still passes through jit (an empty pytree in place of the state).
    np.testing.assert_allclose(jax.jit(lambda tr: tr.at(jnp.array([5.0])))(tr).v, tr.at(jnp.array([5.0])).v)


def test_a_continued_run_with_new_trains_and_per_connection_delays():
    # Each connection reads its source's row from its own slot: the slots the state's
    # spikes hold stay where they are.
    inf = np.inf
    lif = jn.LIF(n=2)

    def net(trains):
        return jn.Network(populations={"src": jn.SpikeTrains(trains), "lif": lif},
                          couplings=[jn.ExpSynapse("src", "lif", jn.conn.all_to_all(), g_max=0.5, tau=3.0,
                                                   delay=jnp.array([0.5, 1.5, 2.5, 3.0]))])

    first = jn.simulate(net([[5.0, 18.0, 19.0, inf, inf], [7.0, 19.9, inf, inf, inf]]), 20.0)
    second = jn.simulate(net([[22.0, 25.0, inf, inf, inf], [21.0, inf, inf, inf, inf]]), 40.0, t0=20.0,
                         init=first.final_state)
    whole = jn.simulate(net([[5.0, 18.0, 19.0, 22.0, 25.0], [7.0, 19.9, 21.0, inf, inf]]), 40.0)
    np.testing.assert_allclose(second["lif"].v, whole["lif"].v[len(first.t) - 1:], rtol=0, atol=1e-9)


def test_a_continued_run_refuses_a_non_finite_state():
    # It ran, and the warning at the end blamed the step size.
    first = jn.simulate(jn.LIF(), 5.0)
    state = first.final_state
    bad = jn.State(v=jnp.full_like(state.v, jnp.nan), gates=state.gates, events=state.events)
    with pytest.raises(ValueError, match=r"init holds non-finite voltages \(1 compartment\(s\)\)"):
        jn.simulate(jn.LIF(), 10.0, t0=5.0, init=bad)


def test_trains_drawn_for_less_than_the_run_and_sources_alike_warn():
    """Poisson trains drawn up to t1 = 100 ms in a 300 ms run fall silent at 100 ms
    (the target then loses its drive; the run's rate read 14 Hz for 50); two
    poisson_spikes populations of one seed fire at the same times (fully correlated
    inputs). Both were silent; both now warn, naming the populations, and runs within
    the trains' time, given trains and sources of their own seeds do not."""
    lif = jn.LIF(n=2)

    def net(**sources):
        return jn.Network({**sources, "lif": lif}, [
            jn.ExpSynapse(name, "lif", jn.conn.all_to_all(), 0.01, 2.0, 0.0, 1.0, name=f"{name}_lif")
            for name in sources])

    drive = jn.poisson_spikes(50.0, 100.0, n=3, seed=1)
    assert drive.complete_until == 100.0
    with pytest.warns(RuntimeWarning, match=r"population 'in' holds spike trains drawn up to 100 ms .* goes on "
                                             r"to 300 ms: it fires nothing after 100 ms"):
        jn.simulate(net(**{"in": drive}), 300.0, record=())
    with pytest.warns(RuntimeWarning, match=r"the model holds spike trains drawn up to 100 ms"):
        jn.simulate(drive, 150.0, record=())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        jn.simulate(net(**{"in": drive}), 100.0, record=())
        jn.simulate(net(**{"in": jn.SpikeTrains([[5.0, 10.0]])}), 300.0, record=())  # given trains: complete
        net(a=jn.poisson_spikes(20.0, 100.0, n=3, seed=1), b=jn.poisson_spikes(20.0, 100.0, n=3, seed=2))
    # Continued past the trains' end: the state's sources are the network's.
    first = jn.simulate(net(**{"in": drive}), 100.0, record=())
    with pytest.warns(RuntimeWarning, match="drawn up to 100 ms"):
        jn.simulate(net(**{"in": drive}), 200.0, t0=100.0, init=first.final_state, record=())
    with pytest.warns(RuntimeWarning, match=r"populations 'a' and 'b' fire at the same times .* give each its own seed"):
        net(a=jn.poisson_spikes(20.0, 100.0, n=3), b=jn.poisson_spikes(20.0, 100.0, n=3))
    with pytest.raises(ValueError, match=r"SpikeTrains.complete_until expects None or a finite time"):
        jn.SpikeTrains([[1.0]], complete_until=np.inf)
