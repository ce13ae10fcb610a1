"""jn.NoiseCurrent: Gaussian noise (NEST's noise_generator, NEURON's InGauss), drawn as
a pure function of time, one independent sample per targeted compartment."""

import math

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import saiunit as u

import jaxneuro as jn
from jaxneuro.stimuli.noise import target_shape

DT = 0.025


def passive(n=None, g=1e-3, area=1000.0, e=-70.0):
    """A leak-only compartment (population of ``n``): tau = cm/g (1 ms for g = 1e-3
    S/cm²), R = 1/(g·area·1e-2 µS) MΩ (100 MΩ for 1000 µm²)."""
    return jn.Compartment(area=area, n=n, channels=[jn.channels.Leak(g=g, e=e)])


def test_sample_mean_and_std_and_zero_outside_the_window():
    n, mean, std = 2000, 0.01, 0.02
    delay, dur = 2.0 + DT / 2, 5.0  # edges between the recorded times
    stim = jn.NoiseCurrent(mean, std, delay=delay, dur=dur, seed=1)
    tr = jn.simulate(passive(n), 10.0, stimuli=[stim], record=("i_inj",), v0=-70)
    t, i = np.asarray(tr.t), np.asarray(tr.i_inj)
    inside = (t > delay) & (t < delay + dur)
    x = i[inside]
    assert x.size == 200 * n
    se_mean, se_std = std / math.sqrt(x.size), std / math.sqrt(2 * x.size)
    assert abs(x.mean() - mean) < 5 * se_mean, (x.mean(), se_mean)
    assert abs(x.std() - std) < 5 * se_std, (x.std(), se_std)
    # Gaussian tails: 4th standardised moment 3 (SE sqrt(96/N)).
    kurt = np.mean(((x - x.mean()) / x.std()) ** 4)
    assert abs(kurt - 3.0) < 5 * math.sqrt(24 / x.size), kurt
    outside = i[(t < delay) | (t > delay + dur)]
    assert outside.size == 201 * n and np.all(outside == 0.0)


def test_samples_are_independent_across_neurons_and_intervals_and_held_within_one():
    n, interval = 1000, 4 * DT
    # Interval edges at delay + k·interval, half a step away from the recorded times.
    stim = jn.NoiseCurrent(0.0, 1.0, delay=DT / 2, interval=interval, seed=7)
    tr = jn.simulate(passive(n), 20.0, stimuli=[stim], record=("i_inj",), v0=-70)
    i = np.asarray(tr.i_inj)[1:]  # t = DT, 2·DT, ...: sample k = (j - 1) // 4 at row j - 1
    per_interval = i.reshape(-1, 4, n)  # (intervals, 4 steps, neurons)
    assert per_interval.shape == (200, 4, n)
    np.testing.assert_array_equal(per_interval, np.broadcast_to(per_interval[:, :1], per_interval.shape))
    z = per_interval[:, 0]  # (200 intervals, n neurons), standard normal
    assert len(np.unique(z)) == z.size
    se = 1 / math.sqrt(z.size)
    r_neurons = np.corrcoef(z[:, :-1].ravel(), z[:, 1:].ravel())[0, 1]  # neighbouring neurons
    r_far = np.corrcoef(z[:, : n // 2].ravel(), z[:, n // 2:].ravel())[0, 1]
    r_time = np.corrcoef(z[:-1].ravel(), z[1:].ravel())[0, 1]  # successive intervals
    for r in (r_neurons, r_far, r_time):
        assert abs(r) < 5 * se, (r_neurons, r_far, r_time, se)


def test_membrane_variance_is_that_of_the_backward_euler_recursion():
    # Compartment, default solver: backward Euler for v with the stimulus at each
    # step's midpoint, so at dt = interval one new sample I_k per step and
    #   v_{k+1} = a·v_k + (1 - a)·(E + R·I_k),  a = 1/(1 + dt/tau),
    # whose stationary variance is (R·std)²·(1 - a)²/(1 - a²) = (R·std)²·(1 - a)/(1 + a).
    # dt/tau = 0.1 sets it 5 % below that of the exact flow over each held sample
    # (a = exp(-dt/tau)), which the test tells apart.
    n, mean, std, tau, r_in, e = 4000, 0.2, 0.4, 0.25, 25.0, -70.0
    model = passive(n, g=4e-3)  # tau = 0.25 ms, R = 25 MΩ
    stim = jn.NoiseCurrent(mean, std, interval=DT, seed=3)
    tr = jn.simulate(model, 20.0, stimuli=[stim], v0=e + r_in * mean, save_every=0.5)
    late = np.asarray(tr.window(5.0, 20.0).v)  # stationary long before 5 ms
    assert late.shape == (31, n)
    a = 1.0 / (1.0 + DT / tau)
    var_exact = (r_in * std) ** 2 * (1 - a) / (1 + a)
    a_flow = math.exp(-DT / tau)
    var_flow = (r_in * std) ** 2 * (1 - a_flow) / (1 + a_flow)
    # Each neuron's mean square deviation over time; neurons are independent.
    per_neuron = np.mean((late - (e + r_in * mean)) ** 2, axis=0)
    var, se = per_neuron.mean(), per_neuron.std() / math.sqrt(n)
    assert abs(var - var_exact) < 5 * se, (var, var_exact, se)
    assert abs(var - var_flow) > 5 * se, (var, var_flow, se)
    v_mean = late.mean(axis=0)  # the mean is E + R·mean
    assert abs(v_mean.mean() - (e + r_in * mean)) < 5 * v_mean.std() / math.sqrt(n), v_mean.mean()


def test_same_seed_same_currents_whatever_the_run_length_dt_or_jit():
    model = passive(3)

    def run(t1, seed=0, dt=DT, **kw):
        stim = jn.NoiseCurrent(0.02, 0.05, delay=0.05, interval=0.1, seed=seed)
        return jn.simulate(model, t1, dt=dt, stimuli=[stim], record=("v", "i_inj"), save_every=0.1, v0=-70, **kw)

    a, b, long = run(50.0), run(50.0), run(80.0)
    np.testing.assert_array_equal(a.v, b.v)
    np.testing.assert_array_equal(a.v, long.v[: a.v.shape[0]])
    assert np.std(np.asarray(a.i_inj)) > 0.04
    # Samples are numbered by interval, not by step: the same currents with half the dt.
    np.testing.assert_array_equal(a.i_inj, run(50.0, dt=DT / 2).i_inj)
    jitted = jax.jit(lambda s: jn.simulate(
        model, 50.0, stimuli=[jn.NoiseCurrent(0.02, s, delay=0.05, interval=0.1, seed=0)],
        save_every=0.1, v0=-70).v)(0.05)
    np.testing.assert_allclose(jitted, a.v, rtol=0, atol=1e-12)
    other = run(50.0, seed=1)
    assert np.max(np.abs(np.asarray(other.v) - np.asarray(a.v))) > 1.0

    # vmap over keys: independent trials, each equal to its own run.
    keys = jax.random.split(jax.random.key(42), 4)

    def trial(key):
        return jn.simulate(model, 10.0, stimuli=[jn.NoiseCurrent(0.02, 0.05, seed=key)], v0=-70).v

    batch = jax.vmap(trial)(keys)
    assert batch.shape[0] == 4
    for k in range(4):
        np.testing.assert_allclose(batch[k], trial(keys[k]), rtol=0, atol=1e-12)
        for m in range(k):
            assert np.max(np.abs(np.asarray(batch[k] - batch[m]))) > 1.0
    # A legacy raw key is the same key.
    np.testing.assert_array_equal(
        trial(jax.random.key(9)), trial(jax.random.PRNGKey(9))
    )


def test_gradients_flow_through_mean_and_std():
    model = passive()  # one compartment, R = 100 MΩ, tau = 1 ms

    def late_v(mean, std):
        stim = jn.NoiseCurrent(mean, std, seed=5)
        tr = jn.simulate(model, 30.0, stimuli=[stim], v0=-70, save_every=0.5)
        return jnp.mean(tr.v[20:])  # 10 to 30 ms: the mean has settled

    d_mean, d_std = jax.grad(late_v, argnums=(0, 1))(0.02, 0.1)
    # From v0 = E the mean part is E + R·mean·(1 - a^k) after k steps (a = 1/(1 + dt/tau)):
    # saves at 10, 10.5, ..., 30 ms are steps 400, 420, ..., 1200.
    a = 1.0 / (1.0 + DT / 1.0)
    expected = 100.0 * np.mean(1.0 - a ** np.arange(400, 1201, 20))
    assert float(d_mean) == pytest.approx(expected, rel=1e-9)
    assert expected == pytest.approx(100.0, rel=1e-5)
    h = 1e-6
    fd = (late_v(0.02, 0.1 + h) - late_v(0.02, 0.1 - h)) / (2 * h)
    assert abs(float(d_std)) > 0.1  # not trivially 0
    assert float(d_std) == pytest.approx(float(fd), rel=1e-6)

    # A nonlinear membrane (HH) through eqx.filter_grad on the stimulus: the key's
    # integer data is not differentiated.
    hh = jn.Compartment(length=20, diam=20, channels=[jn.channels.HH()])
    stim = jn.NoiseCurrent(0.0, 0.02, interval=0.1, seed=2)

    def final_v(s):
        return jn.simulate(hh, 10.0, stimuli=[s], save_every=10.0).v[-1]

    grads = eqx.filter_grad(final_v)(stim)
    assert grads.seed is None
    step = 1e-6
    fd_std = (final_v(eqx.tree_at(lambda s: s.std, stim, stim.std + step))
              - final_v(eqx.tree_at(lambda s: s.std, stim, stim.std - step))) / (2 * step)
    assert abs(float(grads.std)) > 1e-3
    assert float(grads.std) == pytest.approx(float(fd_std), rel=1e-5)


def test_targets_indices_location_network_and_densities():
    # Indices: only those neurons, each its own sample.
    tr = jn.simulate(passive(6), 2.0, stimuli=[jn.NoiseCurrent(0.0, 1.0, target=[1, 4], seed=0)],
                     record=("i_inj",), v0=-70)
    i = np.asarray(tr.i_inj)[1:]
    assert np.all(i[:, [0, 2, 3, 5]] == 0.0)
    assert np.all(i[:, [1, 4]] != 0.0) and not np.allclose(i[:, 1], i[:, 4])

    # A location on a cable: one sample into one segment.
    cab = jn.Cable(length=200, diam=2, Ra=100, nseg=5, channels=[jn.channels.Leak(g=1e-4, e=-70)])
    tr = jn.simulate(cab, 2.0, stimuli=[jn.NoiseCurrent(0.0, 1.0, target=0.5, seed=0)], record=("i_inj",))
    i = np.asarray(tr.i_inj)[1:]
    assert np.all(i[:, [0, 1, 3, 4]] == 0.0) and np.all(i[:, 2] != 0.0)
    assert target_shape(cab, jn.NoiseCurrent(target=0.5).target) == ()

    # A branch point: one electrode, its one sample shared among the segments there.
    cell = jn.Cell([jn.Cable(20.0, 20.0, name="soma"), jn.Cable(100.0, 2.0, nseg=2, name="a"),
                    jn.Cable(100.0, 1.0, nseg=2, name="b")], parents=[None, "soma", "soma"])
    tr = jn.simulate(cell, 2.0, stimuli=[jn.NoiseCurrent(0.0, 1.0, target=("soma", 1.0), seed=0)],
                     record=("i_inj",))
    i = np.asarray(tr.i_inj)[1:]
    shared = i[:, np.any(i != 0.0, axis=0)]
    assert shared.shape[1] == 3  # soma's segment, a's and b's first
    ratios = shared / shared[:, :1]
    np.testing.assert_allclose(ratios, np.broadcast_to(ratios[:1], ratios.shape), rtol=1e-10)

    # A Network population by name: one sample per neuron of it, none elsewhere.
    net = jn.Network(populations={"a": passive(3), "b": passive(4)})
    tr = jn.simulate(net, 2.0, stimuli=[jn.NoiseCurrent(0.0, 1.0, target="b", seed=0)], record=("i_inj",))
    assert np.all(np.asarray(tr["a"].i_inj) == 0.0)
    b = np.asarray(tr["b"].i_inj)[1:]
    assert b.shape[1] == 4 and len(np.unique(b[-1])) == 4
    assert target_shape(net, "b") == (4,)
    assert target_shape(net, jn.NoiseCurrent(target=("b", [0, 2])).target) == (2,)
    tr = jn.simulate(net, 2.0, stimuli=[jn.NoiseCurrent(0.0, 1.0, target=("b", [0, 2]), seed=0)],
                     record=("i_inj",))
    b = np.asarray(tr["b"].i_inj)[1:]
    assert np.all(b[:, [1, 3]] == 0.0) and np.all(b[:, [0, 2]] != 0.0)

    # Densities: each compartment's own sample times its area.
    areas = jnp.linspace(500.0, 1200.0, 5)
    pop = jn.Compartment(area=areas, n=5, channels=[jn.channels.Leak(g=1e-4, e=-70)])
    dens = jn.NoiseCurrent(1 * u.uA / u.cm**2, 2 * u.uA / u.cm**2, seed=4)
    assert dens.density and float(dens.mean) == pytest.approx(1e-3)
    plain = jn.NoiseCurrent(1e-3, 2e-3, seed=4)  # the same numbers, read in nA
    a = jn.simulate(pop, 1.0, stimuli=[dens], record=("i_inj",), v0=-70).i_inj
    b = jn.simulate(pop, 1.0, stimuli=[plain], record=("i_inj",), v0=-70).i_inj
    np.testing.assert_allclose(a, b * np.asarray(areas) * 1e-2, rtol=1e-12)
    # On a cable with a density and no target: one sample per segment.
    tr = jn.simulate(cab, 1.0, stimuli=[jn.NoiseCurrent(0.0, 1 * u.uA / u.cm**2, seed=0)], record=("i_inj",))
    assert len(np.unique(np.asarray(tr.i_inj)[-1])) == 5


def test_errors():
    with pytest.raises(ValueError, match="std.*>= 0"):
        jn.NoiseCurrent(0.0, -0.1)
    for bad in (0.0, -1.0):
        with pytest.raises(ValueError, match="interval.*> 0"):
            jn.NoiseCurrent(0.0, 0.1, interval=bad)
    for bad in (1.5, True, "0", jnp.array([1.0]), jax.random.split(jax.random.key(0), 2)):
        with pytest.raises(ValueError, match="seed expects an integer or one JAX PRNG key"):
            jn.NoiseCurrent(0.0, 0.1, seed=bad)
    with pytest.raises(ValueError, match=r"mean of shape \(3,\).*target=\(0, 1\)"):
        jn.simulate(passive(4), 1.0, stimuli=[jn.NoiseCurrent(jnp.zeros(3), 0.1, target=[0, 1])])
    with pytest.raises(ValueError, match="no population 'c'"):
        jn.simulate(jn.Network(populations={"a": passive(2)}), 1.0, stimuli=[jn.NoiseCurrent(0.0, 0.1, target="c")])
    with pytest.raises(ValueError, match=r"stimuli\[1\]: NoiseCurrent draws a new sample every `interval` ms; adaptive"):
        jn.simulate(passive(), 1.0, stimuli=[jn.StepCurrent(0.1), jn.NoiseCurrent(0.0, 0.1)],
                    solver=diffrax.Tsit5(), stepsize_controller=diffrax.PIDController(rtol=1e-6, atol=1e-6))
    with pytest.raises(ValueError, match="backend='sharded'.*NoiseCurrent"):
        jn.simulate(passive(64), 1.0, stimuli=[jn.NoiseCurrent(0.0, 0.1)], backend="sharded")


def test_an_interval_not_a_whole_multiple_of_dt_warns_with_the_size_of_the_error():
    """interval = 1.5·dt holds samples for 1 and 2 steps in turn: the noise power is
    (1 + 4)/2 / 1.5² = 1.111 times that of interval (a tester measured the membrane's
    variance 1.117 times the theory); simulate warns with the factor. Whole multiples
    (to rounding: 0.1 = 4 × 0.025) do not warn."""
    from jaxneuro.stimuli.noise import uneven_interval_factor

    assert uneven_interval_factor(1.5) == pytest.approx(10 / 9)
    assert uneven_interval_factor(4 / 3) == pytest.approx(1.125)  # the worst case
    assert uneven_interval_factor(2.4) == pytest.approx(1 + 1 / 24)  # the worst from 2·dt
    assert uneven_interval_factor(3.0) == 1.0
    with pytest.warns(UserWarning, match=r"interval = 0.0375 ms is not a whole multiple of dt = 0.025 ms.*"
                                         r"1 and 2 steps.*1.11 times"):
        jn.simulate(passive(), 1.0, stimuli=[jn.NoiseCurrent(0.0, 0.1, interval=0.0375)])
    import warnings as _warnings
    with _warnings.catch_warnings():
        _warnings.simplefilter("error")
        for interval, dt in ((0.025, 0.025), (0.1, 0.025), (0.1, 0.0125), (0.3, 0.1)):
            jn.simulate(passive(), 1.0, dt=dt, stimuli=[jn.NoiseCurrent(0.0, 0.1, interval=interval)])

    # The factor is what the solver does: the samples it reads at the steps' midpoints,
    # their charge per 3 steps (2 samples) per unit time, against std²·interval.
    stim = jn.NoiseCurrent(0.0, np.ones(100), interval=0.0375, seed=5)
    i = np.asarray(jax.vmap(stim.current)((np.arange(6000) + 0.5) * DT))  # (steps, 100)
    charge = i.reshape(-1, 3, 100).sum(axis=1) * DT
    assert charge.var() / (3 * DT) / 0.0375 == pytest.approx(10 / 9, rel=0.02)


def test_intervals_shorter_than_dt_shared_seeds_and_coarse_float32_times_are_caught(tmp_path):
    """An interval below dt would skip samples (noise sqrt(dt/interval) too strong: the
    audit measured 5.0 against 3.5 mV at interval = dt/2); two sources with one seed
    draw the same samples (a warning); float32 times too coarse for the intervals
    would reuse samples (refused, in a float32 process)."""
    with pytest.raises(ValueError, match=r"interval = 0.0125 ms is shorter than dt = 0.025 ms.*1.41 times"):
        jn.simulate(passive(), 1.0, stimuli=[jn.NoiseCurrent(0.0, 0.1, interval=0.0125)])
    jn.simulate(passive(), 1.0, stimuli=[jn.NoiseCurrent(0.0, 0.1, interval=0.0125)], dt=0.0125)  # fine
    # A traced interval (jit, vmap) is checked when the run starts (it ran 2.5x too
    # strong in variance, silently).
    def v_end(interval):
        return jn.simulate(passive(), 1.0, stimuli=[jn.NoiseCurrent(0.0, 0.1, interval=interval)]).v[-1]

    with pytest.raises(Exception, match=r"NoiseCurrent.interval is shorter than dt = 0.025 ms"):
        jax.block_until_ready(jax.jit(v_end)(0.0125))
    with pytest.raises(Exception, match=r"NoiseCurrent.interval is shorter than dt"):
        jax.block_until_ready(jax.vmap(v_end)(jnp.array([0.05, 0.0125])))
    np.testing.assert_allclose(jax.vmap(v_end)(jnp.array([0.05, 0.025])), [v_end(0.05), v_end(0.025)], rtol=1e-6)
    with pytest.warns(UserWarning, match=r"stimuli\[0\] and stimuli\[2\] are NoiseCurrents with the same seed"):
        jn.simulate(passive(2), 1.0, stimuli=[jn.NoiseCurrent(0.0, 0.1, target=[0], seed=4), jn.StepCurrent(0.1),
                                             jn.NoiseCurrent(0.0, 0.1, target=[1], seed=4)])
    import warnings as _warnings
    with _warnings.catch_warnings():
        _warnings.simplefilter("error")
        jn.simulate(passive(2), 1.0, stimuli=[jn.NoiseCurrent(0.0, 0.1, target=[0], seed=4),
                                             jn.NoiseCurrent(0.0, 0.1, target=[1], seed=5)])
    script = tmp_path / "f32.py"
    script.write_text(
        "import jaxneuro as jn\n"
        "m = jn.Compartment(area=1000, channels=[jn.channels.Leak(g=1e-3)])\n"
        "jn.simulate(m, 1e5 + 1.0, t0=1e5, stimuli=[jn.NoiseCurrent(0.0, 0.1, seed=1)])\n"
        "try:\n"
        "    jn.simulate(m, 3e5 + 1.0, t0=3e5, stimuli=[jn.NoiseCurrent(0.0, 0.1, seed=1)])\n"
        "except ValueError as e:\n"
        "    print(e)\n"
    )
    import subprocess
    import sys
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "resolved only to 0.0312 ms in float32" in out.stdout and "enable float64" in out.stdout


def test_auto_backend_runs_noise_in_one_xla_loop():
    # Enough neurons for "auto" to split them over the local devices.
    pop = passive(jn.backends.sharded.MIN_PER_DEVICE * max(2, len(jax.local_devices())))
    stim = jn.NoiseCurrent(0.0, 0.1, seed=0)
    y0 = pop.init_state(-70.0)
    solver = pop.default_solver()
    # Control: with a plain step current, this population would be split (2 CPU devices).
    if len(jax.local_devices()) >= 2:
        assert jn.backends.choose("auto", pop, solver, y0, [jn.StepCurrent(0.1)]) == "sharded"
    assert jn.backends.choose("auto", pop, solver, y0, [stim]) == "xla"
    auto = jn.simulate(pop, 2.0, stimuli=[stim], v0=-70)
    xla = jn.simulate(pop, 2.0, stimuli=[stim], v0=-70, backend="xla")
    np.testing.assert_array_equal(auto.v, xla.v)


def test_current_is_the_one_sample_view():
    s = jn.NoiseCurrent(jnp.array([0.0, 1.0]), 0.5, delay=1.0, dur=2.0, interval=0.5, seed=0)
    ts = jnp.array([0.9, 1.0, 1.2, 1.49, 1.5, 2.99, 3.0])
    i = np.asarray(jax.vmap(s.current)(ts))
    assert i.shape == (7, 2)
    assert np.all(i[[0, -1]] == 0.0)
    np.testing.assert_array_equal(i[1], i[2])
    np.testing.assert_array_equal(i[1], i[3])
    assert not np.allclose(i[3], i[4])
    assert s.breakpoints() == (s.delay, s.delay + s.dur)


# --- jn.ou_current: coloured noise made beforehand -----------------------------------

def test_ou_current_is_stationary_with_exponential_autocorrelation():
    mean, std, tau = 0.1, 0.05, 5.0
    ou = jn.ou_current(mean, std, tau, 100.0, shape=(2000,), seed=3)
    x = np.asarray(ou.values)
    assert x.shape == (4001, 2000) and ou.dt == DT and not ou.splittable
    # Stationary from the start: the first and the last samples alike.
    for row in (x[0], x[-1]):
        assert abs(row.mean() - mean) < 5 * std / math.sqrt(2000)
        assert abs(row.std() - std) < 5 * std / math.sqrt(2 * 2000)
    # Autocorrelation exp(-lag/tau): at one tau and at one step.
    d = x - mean
    for lag in (200, 1):
        acf = np.mean(d[:-lag] * d[lag:]) / std**2
        assert acf == pytest.approx(math.exp(-lag * DT / tau), abs=0.02), (lag, acf)
    # Independent processes: neighbouring neurons uncorrelated.
    assert abs(np.mean(d[:, :-1] * d[:, 1:]) / std**2) < 0.02


def test_ou_current_membrane_variance_is_that_of_the_discrete_scheme():
    """A passive population driven by OU noise: the stationary variance of v equals the
    exact one of the recursion the solver runs (backward Euler, the current read at each
    step's midpoint: the mean of two samples), solved as a discrete Lyapunov equation;
    that is within 1 % of the continuous (R·std)²·tau/(tau + tau_m)."""
    std, tau, n = 0.02, 5.0, 2000
    model = passive(n)  # tau_m = 1 ms, R = 100 MΩ
    R, tau_m = 100.0, 1.0
    ou = jn.ou_current(0.0, std, tau, 100.0, shape=(n,), seed=5)
    tr = jn.simulate(model, 100.0, stimuli=[ou], v0=-70.0, save_every=10.0)
    v = np.asarray(tr.v)[3:]  # from 30 ms: the start's transient (1 ms) gone
    measured = v.var(axis=1).mean()

    a, b = math.exp(-DT / tau), 1.0 / (1.0 + DT / tau_m)
    c = std * math.sqrt(1 - a * a)
    A = np.array([[b, (1 - b) * R * (1 + a) / 2], [0.0, a]])
    B = np.array([[(1 - b) * R * c / 2], [c]])
    P = np.zeros((2, 2))
    for _ in range(20000):
        P = A @ P @ A.T + B @ B.T
    exact = P[0, 0]
    continuous = (R * std) ** 2 * tau / (tau + tau_m)
    assert exact == pytest.approx(continuous, rel=0.01)
    se = exact * math.sqrt(2.0 / v.size)  # v's samples 10 ms apart: nearly independent
    assert abs(measured - exact) < 5 * se, (measured, exact, se)


def test_ou_current_seeds_vmap_and_gradients():
    a = jn.ou_current(0.0, 1.0, 2.0, 10.0, shape=(3,), seed=1)
    np.testing.assert_array_equal(a.values, jn.ou_current(0.0, 1.0, 2.0, 10.0, shape=(3,), seed=1).values)
    assert not np.allclose(a.values, jn.ou_current(0.0, 1.0, 2.0, 10.0, shape=(3,), seed=2).values)
    keys = jax.random.split(jax.random.key(0), 4)
    batch = jax.vmap(lambda k: jn.ou_current(0.0, 1.0, 2.0, 10.0, seed=k).values)(keys)
    np.testing.assert_array_equal(batch[2], jn.ou_current(0.0, 1.0, 2.0, 10.0, seed=keys[2]).values)
    assert len({float(b[-1]) for b in batch}) == 4

    model = passive()  # R = 100 MΩ, tau_m = 1 ms

    def final_v(mean, std, tau):
        stim = jn.ou_current(mean, std, tau, 20.0, seed=7)
        return jn.simulate(model, 20.0, stimuli=[stim], v0=-70.0).v[-1]

    d_mean, d_std, d_tau = jax.grad(final_v, argnums=(0, 1, 2))(0.05, 0.02, 3.0)
    # Linear in the mean: R·(1 - b^800) with b = 1/(1 + dt/tau_m), all but R.
    assert float(d_mean) == pytest.approx(100.0 * (1 - (1 / (1 + DT)) ** 800), rel=1e-9)
    eps = 1e-6
    for grad, args in ((d_std, lambda e: (0.05, 0.02 + e, 3.0)), (d_tau, lambda e: (0.05, 0.02, 3.0 + e))):
        fd = (float(final_v(*args(eps))) - float(final_v(*args(-eps)))) / (2 * eps)
        assert float(grad) == pytest.approx(fd, rel=1e-5)


def test_ou_current_densities_and_bad_input():
    density = jn.ou_current(0.1 * u.uA / u.cm**2, 0.05 * u.uA / u.cm**2, 2.0, 5.0, seed=1)
    plain = jn.ou_current(1e-4, 5e-5, 2.0, 5.0, seed=1)
    assert density.density and not plain.density
    np.testing.assert_allclose(density.values, plain.values, rtol=1e-12)  # mA/cm²
    with pytest.raises(ValueError, match="'ou_current.tau' must be > 0"):
        jn.ou_current(0.0, 1.0, 0.0, 10.0)
    with pytest.raises(ValueError, match="'ou_current.std' must be >= 0"):
        jn.ou_current(0.0, -1.0, 1.0, 10.0)
    with pytest.raises(ValueError, match=r"must be scalars or fit shape=\(4,\)"):
        jn.ou_current(jnp.zeros(3), 1.0, 1.0, 10.0, shape=(4,))
    with pytest.raises(ValueError, match="t1 must be greater than t0"):
        jn.ou_current(0.0, 1.0, 1.0, 0.0)
    with pytest.raises(ValueError, match="ou_current: seed expects an integer"):
        jn.ou_current(0.0, 1.0, 1.0, 10.0, seed=1.5)
    with pytest.raises(ValueError, match="ou_current.tau"):
        jn.ou_current(0.0, 1.0, 1.0 * u.mV, 10.0)
    # A plain number beside a density would be read as mA/cm² (std 0.5 was 500 µA/cm²,
    # 500x the mean), where plain amplitudes are nA: refused as the stimuli refuse it.
    for mean, std in ((1 * u.uA / u.cm**2, 0.5), (1.0, 0.5 * u.uA / u.cm**2)):
        with pytest.raises(ValueError, match=r"ou_current: \['(std|mean)'\] given as plain numbers beside a current density"):
            jn.ou_current(mean, std, 5.0, 10.0)
    assert jn.ou_current(0.0, 0.5 * u.uA / u.cm**2, 5.0, 10.0).density  # a plain 0 is unambiguous


def test_recorded_samples_on_interval_edges_are_the_intervals_they_start():
    """With interval == dt the recorded times lie on interval edges: each records the
    sample of the interval it starts (the one the next step gets), never by rounding
    the one before (22 of 400 samples repeated their predecessor)."""
    model = jn.Compartment(area=1000, channels=[jn.channels.Leak(g=1e-3)], n=3)
    stim = jn.NoiseCurrent(std=0.05, seed=1)
    trace = jn.simulate(model, 10.0, dt=DT, stimuli=[stim], record=("i_inj",))
    i = np.asarray(trace.i_inj)
    assert not np.any(np.all(i[1:] == i[:-1], axis=1))
    k = np.arange(i.shape[0])
    expected = np.stack([np.asarray(stim.sample((kk + 0.5) * DT, (3,))) for kk in k])
    np.testing.assert_allclose(i, expected, rtol=1e-12, atol=0)


def test_seeds_of_2_to_the_32_or_more_are_not_cut_to_32_bits():
    # Without 64-bit mode JAX keeps a seed's low 32 bits: seed 2**32 drew seed 0's
    # numbers, 7 + 2**32 seed 7's. They now make the key 64-bit mode makes: the
    # seed's high and low words.
    from jaxneuro.stimuli.noise import _key_data

    with jax.enable_x64(True):
        wide64 = np.asarray(_key_data(7 + 2**32, None)[0])
    with jax.enable_x64(False):
        np.testing.assert_array_equal(np.asarray(_key_data(7 + 2**32, None)[0]), wide64)
        np.testing.assert_array_equal(wide64, [1, 7])
        a = jn.poisson_spikes(50.0, 200.0, n=3, seed=7)
        b = jn.poisson_spikes(50.0, 200.0, n=3, seed=7 + 2**32)
        assert not np.array_equal(np.asarray(a), np.asarray(b))
        with pytest.raises(ValueError, match=r"seed expects an integer .*\(out of range: seeds from -2\*\*63"):
            jn.poisson_spikes(50.0, 200.0, n=3, seed=2**64)
    # Negative seeds too: -5 drew 4294967291's numbers, -2**32 seed 0's.
    for seed in (-5, -(2**32), -(2**31) - 1):
        with jax.enable_x64(True):
            want = np.asarray(_key_data(seed, None)[0])
        with jax.enable_x64(False):
            np.testing.assert_array_equal(np.asarray(_key_data(seed, None)[0]), want)
    np.testing.assert_array_equal(want, [0xFFFFFFFF, 0x7FFFFFFF])
