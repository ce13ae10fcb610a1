"""LIF: seed 002's ISI table, in-step spikes, buffers, and differentiable spike times."""

import math
import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import saiunit as u

import jaxneuro as jn

CS = np.array([0.5, 1.0, 1.5, 2.0])
GLS = np.array([0.05, 0.1, 0.12, 0.14])
C_GRID, GL_GRID = (x.ravel() for x in np.meshgrid(CS, GLS, indexing="ij"))


def closed_form_isi(C, gL, I=2.0, EL=-70.0, V_th=-55.0, V_reset=-75.0, t_ref=2.0):
    v_inf = EL + I / gL
    if v_inf <= V_th:
        return math.inf
    return C / gL * math.log((v_inf - V_reset) / (v_inf - V_th)) + t_ref


def table_isis(pop, stim, dt):
    trace = jn.simulate(pop, 200.0, dt=dt, stimuli=[stim])
    isis = np.asarray(jn.isi(trace.spikes))
    out = []
    for row in isis:
        finite = row[np.isfinite(row)]
        out.append(float(np.mean(finite)) if finite.size else math.inf)
    return np.array(out), trace


@pytest.mark.parametrize("dt", [0.1, 0.025])
def test_seed002_isi_table_with_floats(dt):
    pop = jn.LIF(n=C_GRID.size, C=jnp.asarray(C_GRID), gL=jnp.asarray(GL_GRID))
    got, trace = table_isis(pop, jn.StepCurrent(2.0), dt)
    for k in range(C_GRID.size):
        expected = closed_form_isi(C_GRID[k], GL_GRID[k])
        if math.isinf(expected):  # V∞ below threshold: silent
            assert int(trace.spike_count[k]) == 0
        else:
            assert got[k] == pytest.approx(expected, rel=0.005), (C_GRID[k], GL_GRID[k])
    # gL = 0.14 gives V∞ = -55.7 mV < V_th: that row of the table is silent.
    assert sum(math.isinf(closed_form_isi(c, g)) for c, g in zip(C_GRID, GL_GRID)) == 4


@pytest.mark.parametrize("dt", [0.1, 0.025])
def test_seed002_isi_table_with_density_quantities(dt):
    pop = jn.LIF(
        n=C_GRID.size,
        C=jnp.asarray(C_GRID) * u.uF / u.cm**2,
        gL=jnp.asarray(GL_GRID) * u.mS / u.cm**2,
        EL=-70 * u.mV, V_th=-55 * u.mV, V_reset=-75 * u.mV, V_spike=20 * u.mV, t_ref=2 * u.ms,
    )
    got, _ = table_isis(pop, jn.StepCurrent(2 * u.uA / u.cm**2), dt)
    for k in range(C_GRID.size):
        expected = closed_form_isi(C_GRID[k], GL_GRID[k])
        if math.isfinite(expected):
            assert got[k] == pytest.approx(expected, rel=0.005)
        else:
            assert math.isinf(got[k])


def test_spike_times_are_exact_beyond_dt():
    """With the exact linear flow and in-step crossing the spike times do not depend
    on dt, and equal the closed form from V0 = EL."""
    lif = jn.LIF()
    first = 10 * math.log(20 / 5)  # τ ln((V∞ - EL)/(V∞ - V_th)), V∞ = -50
    isi = closed_form_isi(1.0, 0.1)
    expected = first + isi * np.arange(4)  # the fifth would come at 86 ms
    for dt in (0.1, 0.025, 0.3):
        spikes = np.asarray(jn.simulate(lif, 80.0, dt=dt, stimuli=[jn.StepCurrent(2.0)]).spikes)
        np.testing.assert_allclose(spikes[:4], expected, atol=1e-9)
        assert np.isinf(spikes[4])


def test_spike_times_under_a_varying_input_converge_at_second_order():
    # README: exact under a constant input, second order in dt under a varying one.
    # Reference: the same LIF between spikes integrated by SciPy at tight tolerances.
    from scipy.integrate import solve_ivp
    from scipy.optimize import brentq

    lif = jn.LIF()
    C, gL, EL, V_th, V_reset, t_ref = (float(getattr(lif, k)) for k in ("C", "gL", "EL", "V_th", "V_reset", "t_ref"))
    offset, amp, period = 2.3, 1.0, 7.0

    def dvdt(t, v):
        return (-gL * (v - EL) + offset + amp * np.sin(2 * np.pi * t / period)) / C

    spikes, t, v = [], 0.0, EL
    while True:
        sol = solve_ivp(dvdt, (t, 40.0), [v], rtol=1e-12, atol=1e-12, method="DOP853", dense_output=True)
        grid = np.linspace(t, 40.0, int((40.0 - t) * 2000) + 2)
        above = np.flatnonzero(sol.sol(grid)[0] >= V_th)
        if above.size == 0:
            break
        t = brentq(lambda x: sol.sol(x)[0] - V_th, grid[above[0] - 1], grid[above[0]], xtol=1e-14)
        spikes.append(t)
        t, v = t + t_ref, V_reset
    assert len(spikes) == 3
    errors = []
    for dt in (0.1, 0.025):
        tr = jn.simulate(lif, 40.0, dt=dt, stimuli=[jn.Sine(amp=amp, freq=1000.0 / period, offset=offset)])
        s = np.asarray(tr.spikes).ravel()
        errors.append(np.max(np.abs(s[np.isfinite(s)] - spikes)))
    assert errors[0] < 5e-4
    assert errors[0] / errors[1] > 10.0  # 16 at second order over two halvings of dt


def test_a_start_above_threshold_spikes_at_once():
    # v0 = -50 (V_th -55) spiked at t0, v0 = -54.99 without input did not: it decayed
    # below threshold by the first step's end, and the spike needed the end above.
    for model, v0 in ((jn.LIF(), -50.0), (jn.LIF(), -54.99), (jn.AdEx(), 10.0), (jn.Izhikevich(), 40.0)):
        for dt in (0.1, 1.0):
            spikes = np.asarray(jn.simulate(model, 5.0, dt=dt, v0=v0).spikes).ravel()
            np.testing.assert_array_equal(spikes[np.isfinite(spikes)], [0.0])
    # Just below threshold, no input: no spike.
    assert np.all(np.isinf(np.asarray(jn.simulate(jn.LIF(), 5.0, v0=-55.01).spikes)))


def test_spike_buffer_shapes_padding_and_overflow():
    pop = jn.LIF(n=3, gL=jnp.array([0.05, 0.1, 0.2]), spike_capacity=4)
    with pytest.warns(RuntimeWarning, match=r"overflow.*Raise LIF\(spike_capacity=\.\.\.\)"):
        trace = jn.simulate(pop, 100.0, stimuli=[jn.StepCurrent(2.0)])
    # A compartment's buffer is its summary's (the warning named a spike_capacity
    # that compartments do not take).
    hh = jn.Compartment(length=20.0, diam=20.0, channels=[jn.channels.HH()])
    with pytest.warns(RuntimeWarning, match=r"overflow.*Raise summary=jn\.SpikeSummary\(capacity=\.\.\.\)"):
        counted = jn.simulate(hh, 60.0, stimuli=[jn.StepCurrent(0.3, 1.0, 100.0)], record=(),
                              summary=jn.SpikeSummary(capacity=1))
    assert int(counted.spike_count) >= 2 and counted.spikes.shape == (1,)
    # Under jit, trace.overflowed tells (and the counts stay exact).
    def count(amp):
        trace = jn.simulate(jn.LIF(spike_capacity=4), 100.0, stimuli=[jn.StepCurrent(amp)])
        return trace.spike_count, trace.overflowed

    counts, overflowed = jax.jit(jax.vmap(count))(jnp.array([2.0, 3.0, 0.0]))
    np.testing.assert_array_equal(overflowed, [True, True, False])
    assert float(counts[0]) > 4
    assert trace.spikes.shape == (3, 4)
    assert bool(trace.overflowed[0]) and not bool(trace.overflowed[2])
    assert int(trace.spike_count[0]) > 4  # the true count is kept
    assert np.all(np.isinf(np.asarray(trace.spikes[2])))  # silent neuron: all inf
    single = jn.simulate(jn.LIF(spike_capacity=7), 10.0)
    assert single.spikes.shape == (7,)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        jn.simulate(jn.LIF(spike_capacity=50), 100.0, stimuli=[jn.StepCurrent(2.0)])


def test_v_spike_is_shown_and_reset_held_for_t_ref():
    trace = jn.simulate(jn.LIF(), 40.0, dt=0.1, stimuli=[jn.StepCurrent(2.0)])
    t, v = np.asarray(trace.t), np.asarray(trace.v)
    first = float(trace.spikes[0])
    after = np.argmax(t >= first)
    assert v[after] == 20.0  # the seed's V_spike marker
    held = (t > first + 0.15) & (t < first + 2.0 - 1e-9)
    np.testing.assert_allclose(v[held], -75.0)
    assert v[np.argmax(t > first + 2.2)] > -75.0


def test_i_cap_is_zero_while_held_and_balances_the_currents_otherwise():
    # It read i_inj - i_leak (2.5 nA) while the voltage was held at V_reset.
    trace = jn.simulate(jn.LIF(), 40.0, dt=0.1, stimuli=[jn.StepCurrent(2.0)], record=("v", "i_cap", "i_leak", "i_inj"))
    t, i_cap = np.asarray(trace.t), np.asarray(trace.i_cap)
    first = float(trace.spikes[0])
    held = (t > first + 1e-9) & (t < first + 2.0 - 1e-9)
    assert held.sum() >= 15 and np.all(i_cap[held] == 0.0)
    free = t < first - 1e-9
    np.testing.assert_allclose(i_cap[free], np.asarray(trace.i_inj)[free] - np.asarray(trace.i_leak)[free], rtol=1e-12)
    assert np.all(i_cap[free & (t > 0.05)] > 0.0)  # charging towards threshold


def test_population_broadcasts_scalars_and_matches_single_neurons():
    gLs = jnp.array([0.08, 0.1])
    pop = jn.simulate(jn.LIF(n=2, gL=gLs), 50.0, stimuli=[jn.StepCurrent(2.0)])
    for k in range(2):
        one = jn.simulate(jn.LIF(gL=float(gLs[k])), 50.0, stimuli=[jn.StepCurrent(2.0)])
        np.testing.assert_allclose(pop.spikes[k], one.spikes)


def first_spike(model, amp=2.0, t1=60.0, dt=0.1):
    trace = jn.simulate(model, t1, dt=dt, stimuli=[jn.StepCurrent(amp)])
    return trace.spikes[..., 0]


def test_first_spike_time_gradient_matches_analytic():
    def analytic(C, gL, I=2.0):
        v_inf = -70.0 + I / gL
        return C / gL * jnp.log((v_inf + 70.0) / (v_inf + 55.0))

    lif = jn.LIF(C=1.2, gL=0.09)
    grads = jax.grad(lambda m: first_spike(m))(lif)
    dC, dgL = jax.grad(analytic, argnums=(0, 1))(1.2, 0.09)
    assert float(grads.C) == pytest.approx(float(dC), rel=0.01)
    assert float(grads.gL) == pytest.approx(float(dgL), rel=0.01)
    d_amp = jax.grad(lambda a: first_spike(lif, amp=a))(2.0)
    assert float(d_amp) == pytest.approx(float(jax.grad(analytic, argnums=2)(1.2, 0.09, 2.0)), rel=0.01)


@pytest.mark.parametrize("amp", [1.4999, 1.5, 1.5001, 1.51])
def test_gradients_stay_finite_at_threshold(amp):
    """Rheobase is gL·(V_th - EL) = 1.5 nA: just below, at and just above it the
    gradients of spike-time and voltage losses are finite (no NaN)."""
    lif = jn.LIF()

    def loss(a):
        trace = jn.simulate(lif, 100.0, dt=0.1, stimuli=[jn.StepCurrent(a)])
        t_first = jnp.where(jnp.isfinite(trace.spikes[0]), trace.spikes[0], 100.0)
        return t_first + jnp.mean(trace.v)

    g = jax.grad(loss)(amp)
    assert np.isfinite(float(g))


def test_gradient_of_a_leaky_integrator_without_threshold():
    """V_th = inf (seed 000's leaky neuron): Rin = 1/gL, and its gradient -1/gL² has no NaN."""
    stim = jn.StepCurrent(-0.02, 50.0, 500.0)

    def rin(gL):
        neuron = jn.LIF(C=0.25, gL=gL, EL=-70.0, V_th=math.inf)
        return jn.input_resistance(jn.simulate(neuron, 600.0, dt=0.1, stimuli=[stim]), stim)

    assert float(jax.grad(rin)(0.02)) == pytest.approx(-1 / 0.02**2, rel=1e-3)


def test_a_spiking_population_runs_without_recording_voltages():
    trace = jn.simulate(jn.LIF(n=4), 50.0, stimuli=[jn.StepCurrent(2.0)], record=())
    assert trace.names == () and trace.spikes.shape == (4, 100)
    np.testing.assert_array_equal(trace.spike_count, 2)


def test_reset_above_threshold_and_population_shapes_are_refused():
    with pytest.raises(ValueError, match="V_reset must lie below V_th"):
        jn.LIF(V_reset=-50.0, V_th=-55.0)
    with pytest.raises(ValueError, match=r"LIF.C expects a scalar or an array of shape \(3,\)"):
        jn.LIF(n=3, C=np.ones(4))


def test_point_neurons_take_their_parameters_positionally():
    """LIF(C, gL, EL, V_th, V_reset, V_spike, t_ref), AdEx(C, gL, EL, V_T, ...) and
    Izhikevich(a, b, c, d, ...) as the design writes them; n, spike_capacity and
    surrogate are keyword-only (they came first: LIF(1.0, 0.1, ...) was read as n=1.0)."""
    lif = jn.LIF(2.0, 0.2, -65.0, -50.0, -70.0, 10.0, 1.0)
    assert (float(lif.C), float(lif.gL), float(lif.EL), float(lif.V_th), float(lif.V_reset),
            float(lif.V_spike), float(lif.t_ref)) == (2.0, 0.2, -65.0, -50.0, -70.0, 10.0, 1.0)
    adex = jn.AdEx(0.2, 0.01, -70.0, -50.0)
    assert (float(adex.C), float(adex.gL), float(adex.EL), float(adex.V_T)) == (0.2, 0.01, -70.0, -50.0)
    izh = jn.Izhikevich(0.02, 0.25, -60.0, 6.0)
    assert (float(izh.a), float(izh.b), float(izh.c), float(izh.d)) == (0.02, 0.25, -60.0, 6.0)
    with pytest.raises(TypeError):
        jn.LIF(1.0, 0.1, -70.0, -55.0, -75.0, 20.0, 2.0, None, 3)  # n is not positional
    assert jn.LIF(n=3).shape == (3,)


def test_firing_in_consecutive_steps_warns_that_spikes_may_be_lost():
    # A step holds one spike per neuron: a LIF without refractory period at 100 nA (ISI
    # 0.201 ms, 497 spikes in 100 ms) kept 200 at dt = 0.5 without a word.
    import warnings

    lif = jn.LIF(n=2, t_ref=0.0, spike_capacity=512)
    stim = [jn.StepCurrent(jnp.array([100.0, 2.0]), 0.0, 1e9)]
    with pytest.warns(RuntimeWarning, match=r"1 neuron\(s\) fired in consecutive steps .*dt = 0.5 ms"):
        coarse = jn.simulate(lif, 100.0, dt=0.5, stimuli=stim, record=())
    assert float(coarse.spike_count[0]) == 200
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fine = jn.simulate(lif, 100.0, dt=0.1, stimuli=stim, record=())
    assert float(fine.spike_count[0]) == 497  # 100 ms / (τ ln(V∞/(V∞ - 20 mV)) = 0.201 ms)


def test_v_spike_none_shows_the_reset_value():
    # The docstring offered V_spike=None; the constructor refused it ("expects a number").
    drive = [jn.StepCurrent(3.0)]
    shown = jn.simulate(jn.LIF(), 50.0, stimuli=drive)
    plain = jn.simulate(jn.LIF(V_spike=None), 50.0, stimuli=drive)
    spiked = np.asarray(shown.v) == 20.0
    assert spiked.sum() == int(shown.spike_count) > 0
    np.testing.assert_array_equal(np.asarray(plain.v)[spiked], -75.0)
    np.testing.assert_array_equal(np.asarray(plain.v)[~spiked], np.asarray(shown.v)[~spiked])
    with pytest.raises(ValueError, match=r"parameter 'LIF.C' expects a number \(in nF\), got None"):
        jn.LIF(C=None)


def test_a_mean_voltage_gradient_misses_the_resets_as_the_readme_says():
    """README: a loss on a spiking neuron's voltage trace misses the resets' moves (each
    sample jumps by V_th - V_reset as a spike time passes it), while each sample's own
    derivative is right. Pinned so that the README changes with it."""
    def run(amp):
        model = jn.LIF(n=1, C=0.25, gL=0.025, EL=-65.0, V_th=-60.0, V_reset=-70.0, t_ref=0.0)
        return jn.simulate(model, 30.0, dt=0.005, stimuli=[jn.StepCurrent(amp, 2.0, 30.0)], record=("v",))

    a, h = 0.2, 0.002
    assert float(run(a - h).spike_count[0]) == float(run(a + h).spike_count[0]) == 2.0
    mean_v = lambda x: jnp.mean(run(x).v)  # noqa: E731
    last_v = lambda x: run(x).v[-1, 0]  # noqa: E731
    fd_mean = (mean_v(a + h) - mean_v(a - h)) / (2 * h)
    fd_last = (last_v(a + h) - last_v(a - h)) / (2 * h)
    assert float(jax.grad(mean_v)(a)) > 0 > float(fd_mean)  # +66 against -23.5 mV/nA
    assert float(jax.grad(last_v)(a)) == pytest.approx(float(fd_last), rel=2e-3)  # 181.7 against 181.9


def test_refractory_periods_ending_on_a_step_end_keep_their_gradient():
    # A spike on the grid (a start above threshold, a delta synapse's jump) plus a
    # t_ref of whole steps (the default 2 ms at dt 0.025) ends the period exactly at a
    # step's end; held at the reset outright, the next spike time had no derivative
    # in t_ref (0 against finite differences of 1.0 and 1.76).
    stim = jn.StepCurrent(2.0, 0.0, 40.0)

    def after_a_start_above_threshold(t_ref):
        lif = eqx.tree_at(lambda n: n.t_ref, jn.LIF(), jnp.asarray(t_ref))
        return jn.simulate(lif, 30.0, stimuli=[stim], v0=-50.0).spikes[1]

    src = jn.SpikeTrains([[2.0, 5.0, 9.0]])

    def after_a_jump(t_ref):
        lif = eqx.tree_at(lambda n: n.t_ref, jn.LIF(V_th=-60.0), jnp.asarray(t_ref))
        net = jn.Network({"src": src, "e": lif}, [jn.DeltaSynapse("src", "e", jn.conn.one_to_one(), weight=6.0)])
        return jn.simulate(net, 25.0, stimuli=[jn.StepCurrent(1.2, 1.0, 30.0, target="e")])["e"].spikes.reshape(-1)[1]

    for f, first in ((after_a_start_above_threshold, 0.0), (after_a_jump, 5.0)):
        value_and_grad = jax.jit(jax.value_and_grad(f))
        t2, grad = value_and_grad(2.0)
        h = 1e-6
        fd = (value_and_grad(2.0 + h)[0] - value_and_grad(2.0 - h)[0]) / (2 * h)
        assert float(t2) > first + 2.0 and abs(float(fd)) > 0.5
        assert float(grad) == pytest.approx(float(fd), rel=1e-5)
