"""Input resistance, steady state and membrane time constant against closed forms."""

import math
import os
import subprocess
import sys
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import saiunit as u

import jaxneuro as jn

G_PAS, AREA_UM2 = 1e-4, math.pi * 100 * 500  # seed 001's soma
R_IN = 1.0 / (G_PAS * AREA_UM2 * 1e-8) * 1e-6  # MΩ
TAU = 1.0 / G_PAS * 1e-3  # ms: cm / g with cm = 1 µF/cm²


def soma(g=G_PAS):
    return jn.Compartment(length=100, diam=500, cm=1, channels=[jn.channels.Leak(g=g, e=-70)])


@pytest.mark.parametrize("factor, expected", [(1.0, 50.0), (1.2, 41.6667), (0.8, 62.5)])
def test_seed000_input_resistance_three_ways(factor, expected):
    """dendrify's leaky neurons: 250 pF, 20 nS, scaled by 1.2 and 0.8; -20 pA step."""
    neuron = jn.LIF(C=250 * u.pF * factor, gL=20 * u.nS * factor, EL=-70 * u.mV, V_th=math.inf)
    stim = jn.StepCurrent(-20 * u.pA, 50 * u.ms, 500 * u.ms)
    trace = jn.simulate(neuron, 650.0, dt=0.1, stimuli=[stim])
    assert float(jn.input_resistance(trace, stim)) == pytest.approx(expected, rel=0.01)
    assert float(jn.input_resistance(trace, stim, method="end")) == pytest.approx(expected, rel=0.01)
    # Steady-state method on the model: exactly 1/gL.
    assert float(jn.input_resistance(neuron)) == pytest.approx(1e3 / (20 * factor), rel=1e-9)


def test_input_resistance_of_passive_soma():
    stim = jn.StepCurrent(0.5, 20.0, 150.0)
    trace = jn.simulate(soma(), 200.0, v0=-70, stimuli=[stim])
    # 150 ms is 15 τ: the deflection is within e^-15 of its asymptote, plus O(dt) error.
    assert float(jn.input_resistance(trace, stim)) == pytest.approx(R_IN, rel=1e-4)
    assert float(jn.input_resistance(soma())) == pytest.approx(R_IN, rel=1e-10)
    assert float(jn.input_resistance(soma(), stim)) == pytest.approx(R_IN, rel=1e-10)


def test_a_neuron_without_leak_has_infinite_input_resistance_and_time_constant():
    # LIF(gL=0) is a perfect integrator (accepted: gL >= 0); its steady state's slope is
    # 0, and the solve divided by 1 there instead: -1 MΩ and -1 ms, with a warning that
    # the fixed point was unstable.
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert float(jn.input_resistance(jn.LIF(gL=0.0))) == np.inf
        assert float(jn.membrane_time_constant(jn.LIF(gL=0.0))) == np.inf
    assert float(jn.input_resistance(jn.LIF(gL=1e-9))) == pytest.approx(1e9)
    with pytest.raises(Exception, match="did not converge"):
        jn.steady_state(jn.LIF(gL=0.0), 0.5)  # a constant current has no fixed point


def test_a_models_input_resistance_takes_a_step_of_any_duration():
    """For a model only the step's amplitude and target enter (a steady state), so the
    default endless step is fine (before: "stimulus.dur must be finite"); a trace's
    measurement still needs the step's end."""
    model = jn.Compartment(length=100, diam=500, channels=[jn.channels.Leak(g=1e-4, e=-70)])
    endless = float(jn.input_resistance(model, jn.StepCurrent(1.0)))
    assert endless == float(jn.input_resistance(model, jn.StepCurrent(1.0, 0.0, 5.0)))
    assert endless == pytest.approx(1.0 / (1e-4 * math.pi * 100 * 500 * 1e-8) * 1e-6, rel=1e-9)
    trace = jn.simulate(model, 20.0, stimuli=[jn.StepCurrent(1.0, 5.0)])
    with pytest.raises(ValueError, match="stimulus.dur must be finite"):
        jn.input_resistance(trace, jn.StepCurrent(1.0, 5.0))


def test_trace_methods_need_the_step_onset_in_the_trace():
    """The baseline is the sample at or before the onset: a trace starting later (a
    window of it) has none, and its first sample, mid-step, was read as the baseline."""
    stim = jn.StepCurrent(0.5, 20.0, 150.0)
    trace = jn.simulate(soma(), 200.0, v0=-70, stimuli=[stim])
    for late in (trace.window(21.0, 200.0), trace.window(150.0, 200.0)):
        for measure in (jn.input_resistance, jn.membrane_time_constant):
            with pytest.raises(ValueError, match=r"stimulus onset .* at t=20.0 ms lies outside the trace \[(21|150)"):
                measure(late, stim)
    # From the onset's own sample on, the same numbers.
    on = trace.window(20.0, 200.0)
    assert float(jn.input_resistance(on, stim)) == float(jn.input_resistance(trace, stim))


def test_input_resistance_of_hh_is_the_slope_resistance():
    cell = jn.Compartment(length=20, diam=20, channels=[jn.channels.HH()])
    r_slope = float(jn.input_resistance(cell))
    # Central difference of the steady-state voltage against current.
    di = 1e-4
    fd = (float(jn.steady_state(cell, di).v) - float(jn.steady_state(cell, -di).v)) / (2 * di)
    assert r_slope == pytest.approx(fd, rel=1e-6)
    assert r_slope > 0


def test_steady_state_of_leak_and_hh():
    rest = jn.steady_state(soma(), 1.0)
    assert float(rest.v) == pytest.approx(-70 + 1.0 * R_IN, abs=1e-9)
    hh = jn.Compartment(length=20, diam=20, channels=[jn.channels.HH()])
    state = jn.steady_state(hh)
    # At the fixed point the total membrane current vanishes.
    dvdt = hh.vector_field(0.0, state, 0.0).v
    assert abs(float(dvdt)) < 1e-9
    assert float(state.v) == pytest.approx(-65.0, abs=0.05)  # HH's designed rest
    m_inf = jn.channels.HH().steady_state(state.v, 6.3)["m"]
    assert float(state.gates["m_hh"]) == pytest.approx(float(m_inf), rel=1e-12)


# --- models whose compartments are coupled --------------------------------------------


def passive_cable(g=1e-4):
    return jn.Cable(length=1000.0, diam=2.0, Ra=100.0, nseg=51, channels=[jn.channels.Leak(g=g, e=-65.0)])


def test_steady_state_of_a_cable_solves_the_coupled_system():
    # Current into the middle segment: the steady state of the coupled segments, equal
    # to where a long simulation ends (1000 ms = 100 time constants), not each
    # segment on its own (which would put the whole deflection on one segment).
    cab = passive_cable()
    stim = jn.StepCurrent(0.1, 0.0, 1e9, target=0.5)
    rest = jn.steady_state(cab, cab.place_current(0.5, 0.1))
    end = jn.simulate(cab, 1000.0, dt=0.1, v0=-65.0, save_every=1000.0, stimuli=[stim]).v[-1]
    np.testing.assert_allclose(rest.v, end, atol=1e-9)
    assert float(rest.v[25] - rest.v[0]) > 1.0  # the deflection spreads and decays
    # Input resistance at every segment (alone), and the chord with the stimulus's
    # target: transfer resistances to every segment.
    r_in = jn.input_resistance(cab)
    assert r_in.shape == (51,)
    assert float(r_in[25]) == pytest.approx((float(end[25]) + 65.0) / 0.1, rel=1e-9)
    np.testing.assert_allclose(jn.input_resistance(cab, stim), (np.asarray(end) + 65.0) / 0.1, rtol=1e-9)
    assert float(r_in[0]) > float(r_in[25])  # a sealed end is higher than the middle


def test_input_resistance_of_gap_coupled_neurons_is_the_closed_form():
    # Two leaky neurons (gL) joined by a gap junction g: the conductance matrix is
    # [[gL + g, -g], [-g, gL + g]], so R_in = (gL + g)/(gL (gL + 2g)), the transfer
    # resistance g/(gL (gL + 2g)).
    gl, g = 0.02, 0.01  # µS
    pop = jn.LIF(n=2, C=0.25, gL=gl, EL=-70.0, V_th=math.inf)
    net = jn.Network({"e": pop}, [jn.SymmetricGapJunction("e", "e", jn.conn.explicit([0], [1]), g)])
    r_in, r_transfer = (gl + g) / (gl * (gl + 2 * g)), g / (gl * (gl + 2 * g))  # MΩ
    np.testing.assert_allclose(jn.input_resistance(net), [r_in, r_in], rtol=1e-8)
    chord = jn.input_resistance(net, jn.StepCurrent(-0.05, 0.0, 10.0, target=("e", 0)))
    np.testing.assert_allclose(chord, [r_in, r_transfer], rtol=1e-8)
    # Asymmetric (g0 into post, g1 into pre; solved by GMRES): the conductance
    # matrix [[gL + g1, -g1], [-g0, gL + g0]] gives R_00 = (gL + g0)/det, R_11 =
    # (gL + g1)/det and the transfer to 1 from 0 g0/det.
    g0, g1 = 0.01, 0.03
    asym = jn.Network({"e": pop}, [jn.AsymmetricGapJunction("e", "e", jn.conn.explicit([0], [1]), jnp.array([g0, g1]))])
    det = (gl + g1) * (gl + g0) - g0 * g1
    np.testing.assert_allclose(jn.input_resistance(asym), [(gl + g0) / det, (gl + g1) / det], rtol=1e-8)
    chord = jn.input_resistance(asym, jn.StepCurrent(-0.05, 0.0, 10.0, target=("e", 0)))
    np.testing.assert_allclose(chord, [(gl + g0) / det, g0 / det], rtol=1e-8)


def test_steady_state_of_an_hh_cable_is_the_hh_rest_and_has_gradients():
    # Uniform HH cable: every segment at the single compartment's rest. Its input
    # resistance is differentiable in the leak (central differences).
    hh = jn.Cable(length=300.0, diam=2.0, Ra=100.0, nseg=9, channels=[jn.channels.HH()])
    rest = jn.steady_state(hh)
    single = jn.steady_state(jn.Compartment(length=20, diam=20, channels=[jn.channels.HH()]))
    np.testing.assert_allclose(rest.v, float(single.v), atol=1e-9)

    def r_mid(g):
        return jn.input_resistance(passive_cable(g))[25]

    g, h = 1e-4, 1e-8
    fd = (float(r_mid(g + h)) - float(r_mid(g - h))) / (2 * h)
    assert float(jax.grad(r_mid)(g)) == pytest.approx(fd, rel=1e-6)
    assert fd < 0
    with pytest.raises(ValueError, match="membrane_time_constant.*coupled"):
        jn.membrane_time_constant(hh)


def test_steady_state_converges_to_tolerance_and_reports_failure():
    # Converged: the residual dv/dt at the result is rounding (a 1000-µm HH cable,
    # current into one end, far from the uniform rest).
    cab = jn.Cable(length=1000.0, diam=2.0, Ra=100.0, nseg=51, channels=[jn.channels.HH()])
    i_inj = cab.place_current(0.0, 0.05)
    rest = jn.steady_state(cab, i_inj)
    residual = cab.precomputed().vector_field(0.0, cab.init_state(rest.v), i_inj).v
    assert float(rest.v[0] - rest.v[-1]) > 1.0
    assert float(jnp.max(jnp.abs(residual))) < 1e-9  # mV/ms
    # No conductance at all (dv/dt = I/C never vanishes): refused before iterating.
    # Not converged: an HH compartment far from rest given one iteration. Raised at run
    # time, under jit and vmap too; throw=False returns the last iterate instead.
    bare = jn.Compartment(length=20, diam=20, channels=[])
    hh = jn.Compartment(length=20, diam=20, channels=[jn.channels.HH()])
    with pytest.raises(ValueError, match="steady_state: this Compartment has no membrane channels"):
        jn.steady_state(bare, 0.1)
    with pytest.raises(ValueError, match="has no membrane channels"):
        jn.input_resistance(jn.Cable(length=100.0, diam=1.0, nseg=3).as_cell())
    with pytest.raises(RuntimeError, match="steady_state: the Newton iterations did not converge"):
        jn.steady_state(hh, 0.0, v_guess=0.0, max_iterations=1)
    with pytest.raises(RuntimeError, match="max_iterations=1"):
        jax.jit(lambda i: jn.steady_state(hh, i, v_guess=0.0, max_iterations=1).v)(0.0)
    with pytest.raises(RuntimeError, match="did not converge"):
        jax.vmap(lambda i: jn.steady_state(hh, i, v_guess=0.0, max_iterations=1).v)(jnp.array([0.0, 0.1]))
    assert np.all(np.isfinite(jax.vmap(lambda i: jn.steady_state(hh, i, v_guess=0.0, max_iterations=1,
                                                                  throw=False).v)(jnp.array([0.0, 0.1]))))
    last = jn.steady_state(hh, 0.0, v_guess=0.0, max_iterations=1, throw=False).v
    assert float(last) == pytest.approx(-jn.analysis.MAX_NEWTON_STEP, abs=1e-9)  # one capped step
    # Enough iterations from there: the same rest as from the default guess.
    assert float(jn.steady_state(hh, 0.0, v_guess=0.0).v) == pytest.approx(float(jn.steady_state(hh).v), abs=1e-9)
    with pytest.raises(ValueError, match="max_iterations expects a positive int"):
        jn.steady_state(hh, max_iterations=0)
    with pytest.raises(ValueError, match="throw expects True or False"):
        jn.steady_state(hh, throw="yes")


def test_steady_state_gradient_is_one_solve_at_the_fixed_point():
    # Implicit differentiation: the gradient program holds no loop over iterations
    # (a pass back through them would need one; the forward iterations are a
    # while loop, which reverse mode could not go through at all), and it matches
    # central differences of the converged rest in the leak and in i_inj.
    def rest(g, i):
        cell = jn.Cable(length=500.0, diam=2.0, Ra=100.0, nseg=21, channels=[jn.channels.HH(gl=g)])
        return jn.steady_state(cell, cell.place_current(0.0, i)).v[10]

    g, i, h = 3e-4, 0.02, 1e-7
    dg, di = jax.grad(rest, argnums=(0, 1))(g, i)
    assert float(dg) == pytest.approx((float(rest(g + h, i)) - float(rest(g - h, i))) / (2 * h), rel=1e-6)
    assert float(di) == pytest.approx((float(rest(g, i + 1e-6)) - float(rest(g, i - 1e-6))) / 2e-6, rel=1e-6)
    assert float(di) > 0
    jaxpr = str(jax.make_jaxpr(jax.grad(rest))(g, i))
    assert "while" in str(jax.make_jaxpr(rest)(g, i))
    assert jaxpr.count("while[") == 1  # the forward iterations only


_STEADY_STATES = """
def steady_states(jn, np):
    cab = jn.Cable(length=1000.0, diam=2.0, Ra=100.0, nseg=21, channels=[jn.channels.HH()])
    pop = jn.Compartment(length=20, diam=20, channels=[jn.channels.HH()], n=10)
    gap = jn.SymmetricGapJunction("e", "e", jn.conn.explicit(np.arange(9), np.arange(1, 10)), 0.01)
    net = jn.Network({"e": pop}, [gap])
    i_net = np.zeros(10)
    i_net[0] = 0.3
    v = [jn.steady_state(cab, cab.place_current(0.5, 0.1)).v, jn.steady_state(net, i_net).v,
         jn.input_resistance(cab)]
    return np.concatenate([np.asarray(x, dtype=np.float64).ravel() for x in v])
"""


_FLOAT32_SCRIPT = """
import sys
import numpy as np
import jaxneuro as jn
stub_swc, swc = sys.argv[2], sys.argv[3]
out = {"steady_states": steady_states(jn, np)}
# A stiff cell (test_float32_steady_state_of_a_stiff_cell_converges_at_rounding).
cell = jn.Cell.from_swc(stub_swc, Ra=100., channels=[jn.channels.Leak(g=1e-4, e=-65.)])
out["stub"] = float(jn.input_resistance(cell)[cell.index('soma[0]', 0.5)])
# Finely cut cables and cells (test_float32_steady_states_of_finely_cut_cables_and_cells).
cab = lambda n: jn.Cable(length=500, diam=4, nseg=n, channels=[jn.channels.Leak(g=1e-4, e=-65)])
fine = [float(jn.input_resistance(cab(n))[0]) for n in (301, 1001)]
fine.append(float(np.ravel(jn.input_resistance(cab(1001), jn.StepCurrent(0.1, target=[0])))[0]))
cell = jn.Cell.from_swc(swc, channels=[jn.channels.Leak(g=1e-4, e=-65)], nseg=20)
k = cell.index('soma[0]', 0.5)
fine.append(float(jn.input_resistance(cell)[k]))
fine += [float(x) for x in jn.steady_state(cell, cell.place_current(('soma[0]', 0.5), 0.01)).v]
out["finely_cut"] = np.array(fine)
np.savez(sys.argv[1], **out)
"""


@pytest.fixture(scope="module")
def float32_results(tmp_path_factory):
    """The float32 side of the float32 tests below, one process for all of them (JAX's
    precision is per process; each process start and import is seconds)."""
    tmp = tmp_path_factory.mktemp("float32")
    stub = tmp / "stub.swc"
    stub.write_text(_STUB_SWC)
    script = tmp / "f32.py"
    script.write_text(_STEADY_STATES + _FLOAT32_SCRIPT)
    env = dict(os.environ, JAX_ENABLE_X64="0", JAX_PLATFORMS="cpu")
    run = subprocess.run([sys.executable, str(script), str(tmp / "f32.npz"), str(stub), str(SWC)],
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    with np.load(tmp / "f32.npz") as f:
        return dict(f, stub_swc=stub)


def test_float32_steady_states_converge(float32_results):
    """In float32 (its own process: JAX's precision is per process) the Newton
    iterations reach their tolerance (no error) on an HH cable and a gap-coupled HH
    chain, within 1e-4 mV (and 1e-4 relative for input resistances) of float64 (this
    process)."""
    f32 = float32_results["steady_states"]
    namespace: dict = {}
    exec(_STEADY_STATES, namespace)
    f64 = namespace["steady_states"](jn, np)
    n_v = 21 + 10
    np.testing.assert_allclose(f32[:n_v], f64[:n_v], rtol=0, atol=1e-4)
    np.testing.assert_allclose(f32[n_v:], f64[n_v:], rtol=1e-4)
    assert f64[10] - f64[0] > 1.0  # current into the middle: not the uniform rest


def test_membrane_time_constant_from_trace_and_model():
    stim = jn.StepCurrent(0.5, 20.0, 150.0)
    trace = jn.simulate(soma(), 200.0, dt=0.01, v0=-70, stimuli=[stim])
    # Backward Euler has an O(dt) lag; at dt = 0.01 ms it is ≈ dt/2.
    assert float(jn.membrane_time_constant(trace, stim)) == pytest.approx(TAU, abs=0.02)
    assert float(jn.membrane_time_constant(soma())) == pytest.approx(TAU, rel=1e-9)


def test_analysis_is_differentiable():
    def rin(g):
        return jn.input_resistance(soma(g))

    g = 2e-4
    assert float(jax.grad(rin)(g)) == pytest.approx(-float(rin(g)) / g, rel=1e-8)


def test_analysis_rejects_bad_input():
    trace = jn.simulate(soma(), 50.0)
    with pytest.raises(ValueError, match="StepCurrent"):
        jn.input_resistance(trace, jn.Ramp(0.0, 1.0, 0.0, 10.0))
    with pytest.raises(ValueError, match="amp"):
        jn.input_resistance(trace, jn.StepCurrent(0.0, 5.0, 10.0))
    with pytest.raises(ValueError, match="outside the trace"):
        jn.input_resistance(trace, jn.StepCurrent(1.0, 40.0, 20.0))
    with pytest.raises(ValueError, match="method"):
        jn.input_resistance(trace, jn.StepCurrent(1.0, 5.0, 10.0), method="slope")
    with pytest.raises(ValueError, match=r"i_inj expects .*\(51,\)"):
        jn.steady_state(passive_cable(), np.ones(3))


def test_input_resistances_of_a_coupled_model_are_solved_in_bounded_batches(monkeypatch):
    # One solve per compartment, never more than SOLVE_BATCH_VALUES voltages at once
    # (here 8 solves of the 51-segment cable at a time): the same values as all at
    # once, and no intermediate of 51 × 51.
    cab = passive_cable()
    every = jn.input_resistance(cab)
    monkeypatch.setattr(jn.analysis, "SOLVE_BATCH_VALUES", 8 * 51)
    batched = jn.input_resistance(cab)
    np.testing.assert_allclose(batched, every, rtol=1e-12)
    jaxpr = str(jax.make_jaxpr(jn.input_resistance)(cab))
    assert "f64[8,51]" in jaxpr and "f64[51,51]" not in jaxpr


def _lif_spike_times(amp, t1):
    """A default jn.LIF (C 1 nF, gL 0.1 µS: tau 10 ms, R 10 MΩ; EL -70, V_th -55,
    V_reset -75 mV, t_ref 2 ms) from EL under a constant amp nA: its spike times before
    t1 ms in closed form."""
    tau, drive = 10.0, 10.0 * amp  # R·I, mV
    first = tau * math.log(drive / (drive - 15.0))
    period = 2.0 + tau * math.log((drive + 5.0) / (drive - 15.0))
    return [first + k * period for k in range(int((t1 - first) / period) + 1) if first + k * period < t1]


def test_fi_curve_counts_every_spike_of_a_fast_spiking_neuron():
    # 30 and 40 nA: about 110 and 120 spikes in 300 ms, more than LIF's 100 spike slots:
    # the model's spike buffer is raised to capacity for the run, and a capacity too
    # small for the spikes is an error at run time, not a rate cut short.
    amps = np.array([30.0, 40.0])
    expected = [len(_lif_spike_times(a, 300.0)) / 0.3 for a in amps]
    assert min(expected) * 0.3 > 100
    np.testing.assert_allclose(jn.fi_curve(jn.LIF(), amps, dur=300.0, dt=0.1), expected, atol=4.0)
    with pytest.raises(RuntimeError, match="more spikes than capacity=50"):
        jn.fi_curve(jn.LIF(), amps, dur=300.0, dt=0.1, capacity=50)
    # A network: its populations' compartments in order, each its own spikes.
    net = jn.Network({"a": jn.LIF(n=2), "b": jn.Compartment(length=20, diam=20, channels=[jn.channels.HH()])})
    rates = np.asarray(jn.fi_curve(net, np.array([20.0]), dur=100.0, dt=0.1, target="a"))
    assert rates.shape == (1, 3)
    np.testing.assert_allclose(rates[0, :2], len(_lif_spike_times(20.0, 100.0)) * 10.0)
    assert rates[0, 2] == 0.0  # no current into b
    with pytest.raises(ValueError, match=r"window expects \(start, stop\)"):
        jn.fi_curve(jn.LIF(), amps, window=50.0)
    np.testing.assert_allclose(jn.fi_curve(jn.LIF(), amps[:1], dur=100.0, dt=0.1, window=(50 * u.ms, 100 * u.ms)),
                               [sum(50.0 <= t < 100.0 for t in _lif_spike_times(amps[0], 100.0)) * 20.0])


def test_fi_curve_of_a_population_without_own_spikes_needs_no_trace():
    # The crossings are found inside the loop (summary), not in a trace saved at every
    # step (400 HH neurons x 10 amplitudes for 500 ms took 2.3 GB): the same rates as
    # from that trace.
    pop = jn.Compartment(length=20.0, diam=20.0, channels=[jn.channels.HH(gnabar=jnp.array([0.08, 0.12, 0.16]))], n=3)
    amps = np.array([0.05, 0.2, 0.4])
    rates = np.asarray(jn.fi_curve(pop, amps, delay=5.0, dur=60.0, window=(10.0, 65.0)))
    expected = []
    for a in amps:
        tr = jn.simulate(pop, 65.0, stimuli=[jn.StepCurrent(a, 5.0, 60.0)])
        expected.append(jn.firing_rate(jn.spike_times(tr, 0.0, capacity=100), 10.0, 65.0))
    np.testing.assert_array_equal(rates, np.asarray(expected))
    assert rates[0, 0] == 0.0 and rates[2, 1:].min() > 50.0


def test_spike_times_of_a_trace_with_its_own_spikes_and_windows():
    trace = jn.simulate(jn.LIF(), 100.0, dt=0.1, stimuli=[jn.StepCurrent(2.0)])
    expected = _lif_spike_times(2.0, 100.0)
    np.testing.assert_allclose(np.asarray(trace.spikes)[: len(expected)], expected, atol=1e-9)
    assert jn.spike_times(trace).shape == (100,)
    assert jn.spike_times(trace, capacity=150).shape == (150,)
    with pytest.warns(RuntimeWarning, match="more than capacity=3"):
        first = jn.spike_times(trace, capacity=3)
    np.testing.assert_allclose(first, expected[:3], atol=1e-9)
    with pytest.raises(ValueError, match="own spike times"):
        jn.spike_times(trace, -40.0)
    # A window keeps the spikes inside it (in order, first) and counts them.
    part = trace.window(50.0, 100.0)
    inside = [t for t in expected if 50.0 <= t <= 100.0]
    assert int(jn.spike_count(jn.spike_times(part))) == len(inside) == int(part.spike_count)
    np.testing.assert_allclose(np.asarray(part.spikes)[: len(inside)], inside, atol=1e-9)
    assert part.t[0] >= 50.0
    assert float(jn.firing_rate(trace.spikes, 50 * u.ms, 100 * u.ms)) == pytest.approx(
        sum(50.0 <= t < 100.0 for t in expected) / 0.05)
    np.testing.assert_allclose(  # one window per neuron
        jn.firing_rate(jnp.stack([trace.spikes, trace.spikes]), jnp.array([0.0, 50.0]), jnp.array([50.0, 100.0])),
        [sum(t < 50.0 for t in expected) / 0.05, sum(50.0 <= t < 100.0 for t in expected) / 0.05])
    with pytest.raises(ValueError, match="stop must be >= start"):
        trace.window(5.0, 2.0)
    # A full buffer: a window before its last kept spike holds all of its spikes (it was
    # marked overflowed, and spike_times warned of lost spikes); one past it does not.
    import warnings

    with pytest.warns(RuntimeWarning, match="overflow"):
        full = jn.simulate(jn.LIF(spike_capacity=3), 100.0, dt=0.1, stimuli=[jn.StepCurrent(2.0)])
    early = full.window(0.0, float(full.spikes[-1]) - 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_allclose(jn.spike_times(early)[:2], expected[:2], atol=1e-9)
    assert int(early.spike_count) == 2 and not bool(early.overflowed)
    at_last = full.window(0.0, float(full.spikes[-1]))  # ending at the last kept spike: complete too
    assert int(at_last.spike_count) == 3 and not bool(at_last.overflowed)
    late = full.window(0.0, 100.0)
    assert bool(late.overflowed) and int(late.spike_count) == len(expected)
    assert float(trace.at(50 * u.ms).v) == pytest.approx(float(trace.at(50.0).v))
    with pytest.raises(RuntimeError, match="recorded range"):
        jax.jit(lambda tr, t: tr.at(t).v)(trace, 300.0)
    # Crossings need two samples; capacity is an integer.
    with pytest.raises(ValueError, match="1 sample"):
        jn.spike_times(jn.Trace(t=jnp.zeros(1), values={"v": jnp.zeros(1)}))
    hh = jn.simulate(jn.Compartment(length=20, diam=20, channels=[jn.channels.HH()]), 50.0,
                     stimuli=[jn.StepCurrent(0.1, 5.0)])
    assert jn.spike_times(hh, capacity=np.int64(3)).shape == (3,)
    with pytest.raises(ValueError, match="capacity expects a positive integer"):
        jn.spike_times(hh, capacity=True)
    with pytest.raises(ValueError, match="spike_times\\(trace\\[name\\]\\)"):
        jn.spike_times(jn.simulate(jn.Network({"a": jn.LIF(n=2)}), 5.0))


def test_step_measurements_take_the_sample_before_an_onset_between_samples():
    # A passive soma at rest, a step starting between two saved samples: the baseline
    # is the resting voltage, not a value interpolated across the onset; a density
    # amplitude is refused (the resistance divides by a current in nA), and so is a
    # stimulus given to membrane_time_constant(model).
    stim = jn.StepCurrent(-0.1, 10.05, 200.0)
    trace = jn.simulate(soma(), 250.0, dt=0.01, v0=-70.0, stimuli=[stim], save_every=0.1)
    assert float(jn.input_resistance(trace, stim, method="end")) == pytest.approx(R_IN * (1 - math.exp(-200 / TAU)), rel=2e-3)
    on_grid = jn.StepCurrent(-0.1, 10.0, 200.0)
    ref = jn.simulate(soma(), 250.0, dt=0.01, v0=-70.0, stimuli=[on_grid], save_every=0.1)
    assert float(jn.input_resistance(trace, stim)) == pytest.approx(float(jn.input_resistance(ref, on_grid)), rel=1e-4)
    density = jn.StepCurrent(-1 * u.uA / u.cm**2, 10.0, 200.0)
    with pytest.raises(ValueError, match="current density"):
        jn.input_resistance(trace, density)
    with pytest.raises(ValueError, match="current density"):
        jn.input_resistance(soma(), density)
    with pytest.raises(ValueError, match="takes no stimulus"):
        jn.membrane_time_constant(soma(), stim)


def test_windows_keep_samples_a_rounding_error_outside_their_bounds():
    # Save times are t0 + k·save_every: 0.1 + 0.025·8 = 0.30000000000000004, which a
    # window ending at 0.3 dropped (8 samples of 9), and with it the peak that
    # input_resistance's deflection method needs (2 % low here).
    soma = jn.Compartment(length=100, diam=500, cm=1, channels=[jn.channels.Leak(g=1e-4, e=-70)])
    stim = jn.StepCurrent(1.0, 1.1, 1.2)
    trace = jn.simulate(soma, 5.0, stimuli=[stim], v0=-70)
    assert trace.window(0.1, 0.3).t.shape == (9,)
    assert trace.window(1.1, 2.3).t.shape == (49,)
    coarse = jn.simulate(soma, 3.0, dt=0.3, v0=-70)
    np.testing.assert_allclose(coarse.window(0.9, 1.8).t, [0.9, 1.2, 1.5, 1.8])
    with pytest.warns(RuntimeWarning, match="had not settled"):  # (a 1.2 ms step of a 10 ms membrane)
        assert float(jn.input_resistance(trace, stim)) == pytest.approx(
            float(jn.input_resistance(trace, stim, method="end")), rel=1e-12)
    # A loss window too: 1 mV off at t = 0.3 only, one of its 9 samples.
    target = np.asarray(trace.v).copy()
    target[12] += 1.0
    assert float(jn.losses.voltage(trace, target, windows=(0.1, 0.3))) == pytest.approx(1.0 / 9.0)


def test_spike_analyses_take_a_trace_and_refuse_a_voltage_trace():
    """isi, spike_count and firing_rate read a Trace's own spikes (they raised JAX's
    TypeError); a voltage array passed as spike times is refused (firing_rate(trace.v)
    returned a plausible rate, counting millivolts in [0, 100) as spike times)."""
    with pytest.warns(RuntimeWarning, match="overflow"):
        trace = jn.simulate(jn.LIF(spike_capacity=4), 100.0, stimuli=[jn.StepCurrent(2.0)])
    assert int(trace.spike_count) > 4  # the buffer overflowed: the count is the true one
    with pytest.warns(RuntimeWarning, match=r"isi: 1 neuron\(s\) fired more spikes than the trace keeps"):
        np.testing.assert_array_equal(jn.isi(trace), jn.isi(trace.spikes))
    assert float(jn.spike_count(trace)) == float(trace.spike_count)
    assert int(jn.spike_count(trace.spikes)) == 4
    np.testing.assert_array_equal(jn.firing_rate(trace, 0.0, 30.0), jn.firing_rate(trace.spikes, 0.0, 30.0))
    assert float(jn.firing_rate(trace, 0.0, 30.0)) > 0
    for f in (jn.isi, jn.spike_count, lambda s: jn.firing_rate(s, 0.0, 100.0)):
        with pytest.raises(ValueError, match=r"spikes expects spike times in ms, ascending .*a voltage trace"):
            f(trace.v)
    # The message says what is wrong (it broke off at "that is not").
    with pytest.raises(ValueError, match=r"got an array of shape \(2,\) with NaN at index \(1,\)"):
        jn.spike_count(jnp.array([1.0, jnp.nan]))
    with pytest.raises(ValueError, match=r"shape \(2, 3\) with a time below the one before it at index \(0, 2\)"):
        jn.isi(jnp.array([[1.0, 3.0, 2.0], [1.0, 2.0, 3.0]]))
    passive = jn.simulate(soma(), 5.0)
    with pytest.raises(ValueError, match=r"firing_rate: this trace has no spike events .* jn.spike_times"):
        jn.firing_rate(passive, 0.0, 5.0)
    # Its trace.spikes (None) given to a loss: named, with the ways to get spikes (it
    # was "expects a number in ms ... got None").
    for loss in (lambda s: jn.losses.spike_times(s, jnp.array([1.0])),
                 lambda s: jn.losses.van_rossum(s, jnp.array([1.0]), 5.0)):
        with pytest.raises(ValueError, match=r"spikes is None, as trace.spikes is for a run without spike events.*"
                                             r"jn.spike_times\(trace, threshold\).*summary=jn.SpikeSummary"):
            loss(passive.spikes)
    # Under jit the values are unknown: no check, the same numbers.
    rate = jax.jit(lambda s: jn.firing_rate(s, 0.0, 30.0))(trace.spikes)
    assert float(rate) == float(jn.firing_rate(trace.spikes, 0.0, 30.0))


def test_nan_in_traces_and_arguments_is_reported():
    from jaxneuro.solve.trace import Trace

    v = np.full(101, -65.0)
    v[30] = v[60] = 20.0
    t = 0.1 * jnp.arange(101)
    clean = np.asarray(jn.spike_times(Trace(t=t, values={"v": jnp.asarray(v)}), capacity=3))
    np.testing.assert_allclose(clean[:2], [2.9 + 0.1 * 65 / 85, 5.9 + 0.1 * 65 / 85])
    blown = v.copy()
    blown[50:] = np.nan  # a run that blew up at 5 ms: its later spike is not counted, and that is said
    with pytest.warns(RuntimeWarning, match=r"spike_times: the trace holds NaN from t = 5 ms in 1 of 1"):
        lost = np.asarray(jn.spike_times(Trace(t=t, values={"v": jnp.asarray(blown)}), capacity=3))
    assert np.isfinite(lost).sum() == 1
    with pytest.raises(ValueError, match=r"spike_times: threshold expects a voltage \(mV\), got NaN"):
        jn.spike_times(Trace(t=t, values={"v": jnp.asarray(v)}), threshold=math.nan)
    with pytest.raises(ValueError, match=r"isi: spikes expects padded spike times .* got a scalar"):
        jn.isi(5.0)
    hh = jn.Compartment(length=20.0, diam=20.0, channels=[jn.channels.HH()])
    for bad in (math.nan, math.inf):
        with pytest.raises(ValueError, match=r"fi_curve: amps expects finite currents \(nA\)"):
            jn.fi_curve(hh, [0.1, bad], dur=20.0)
    step = jn.StepCurrent(0.1, 10.0, 0.01)  # shorter than one sample: tau would be 0/0
    with pytest.warns(UserWarning, match="shorter than the step"):
        short = jn.simulate(soma(), 30.0, stimuli=[step])
    with pytest.raises(ValueError, match=r"membrane_time_constant: the step .* spans 0 sample\(s\)"):
        jn.membrane_time_constant(short, step)


def test_firing_rate_window_must_be_finite_and_ordered():
    spikes = jnp.array([1.0, 2.0, jnp.inf])
    assert float(jn.firing_rate(spikes, 0.0, 10.0)) == 200.0
    for start, stop in ((0.0, math.inf), (-math.inf, 10.0), (5.0, 5.0), (0.0, math.nan)):
        with pytest.raises(ValueError, match=r"firing_rate: start and stop expect finite times \(ms\) with stop > start"):
            jn.firing_rate(spikes, start, stop)


def test_input_resistance_warns_where_the_baseline_is_still_moving():
    """A run started away from rest (v0 -65 mV, leak reversal -70 mV, tau 10 ms) with
    the step at 5 ms: the drift adds to the deflection, and that is said; at 150 ms,
    at rest, the value is 1/(g·area) and nothing is said."""
    import warnings as _warnings

    cell = jn.Compartment(length=20.0, diam=20.0, channels=[jn.channels.Leak(g=1e-4, e=-70.0)])
    expected = 1.0 / (1e-4 * math.pi * 20.0 * 20.0 * 1e-2)  # MΩ
    early = jn.StepCurrent(-0.005, 5.0, 150.0)
    with pytest.warns(RuntimeWarning, match=r"input_resistance: the voltage was still changing at the step's onset"):
        off = float(jn.input_resistance(jn.simulate(cell, 160.0, dt=0.025, stimuli=[early]), early))
    assert abs(off - expected) > 0.1 * expected
    with pytest.warns(RuntimeWarning, match=r"membrane_time_constant: the voltage was still changing"):
        jn.membrane_time_constant(jn.simulate(cell, 160.0, dt=0.025, stimuli=[early]), early)
    late = jn.StepCurrent(-0.005, 150.0, 150.0)
    with _warnings.catch_warnings():
        _warnings.simplefilter("error")
        rested = jn.simulate(cell, 310.0, dt=0.025, stimuli=[late])
        at_rest = float(jn.input_resistance(rested, late))
        jn.membrane_time_constant(rested, late)
    assert at_rest == pytest.approx(expected, rel=1e-4)


def test_firing_rate_of_an_overflowed_buffer_is_unknown_not_low():
    """A LIF keeping 10 spike times fires 27 in 500 ms (closed form): its rate over the
    whole run is 54 Hz from the run's own count (it was NaN, and before that 20 Hz,
    silently under jit and vmap); over a window past the last kept spike it is
    unknown, NaN, with a warning when eager; a window ending by the last kept spike is
    still exact."""
    import warnings

    lif = jn.LIF(spike_capacity=10)

    def run(amp):
        return jn.simulate(lif, 500.0, stimuli=[jn.StepCurrent(amp, 0.0, 1e4)])

    with pytest.warns(RuntimeWarning, match="spike buffer overflow"):
        tr = run(2.0)
    assert float(tr.spike_count) == 27 and bool(tr.overflowed)
    with pytest.warns(RuntimeWarning, match=r"firing_rate: 1 neuron\(s\) fired more spikes .* unknown \(NaN\)"):
        assert np.isnan(jn.firing_rate(tr, 0.0, 499.0))
    last = float(tr.spikes[-1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert float(jn.firing_rate(tr, 0.0, last)) == pytest.approx(9 / last * 1000.0)  # the 10th is at `last`
        assert float(jn.firing_rate(tr, *tr.span)) == 54.0
        rates = jax.jit(jax.vmap(lambda a: jn.firing_rate(run(a), 0.0, 500.0)))(jnp.array([0.5, 2.0]))
    np.testing.assert_array_equal(rates, [0.0, 54.0])  # 0.5 nA stays below threshold
    rates = jax.jit(jax.vmap(lambda a: jn.firing_rate(run(a), 0.0, 499.0)))(jnp.array([0.5, 2.0]))
    assert float(rates[0]) == 0.0 and np.isnan(rates[1])
    assert float(jax.jit(lambda a: jn.firing_rate(run(a), 0.0, 500.0))(2.0)) == 54.0  # jit alone too
    with pytest.warns(RuntimeWarning, match=r"spike_times: 1 neuron\(s\) fired more .* pads them .* unknown, not absent"):
        jn.spike_times(tr, capacity=30)
    # Also at the default capacity (the buffer) and for isi: silent before, so after a
    # jitted simulate (which cannot warn) the cut train went unnoticed end to end.
    jitted = jax.jit(run)(2.0)
    with pytest.warns(RuntimeWarning, match=r"spike_times: 1 neuron\(s\) fired more spikes than the trace keeps \(10 each"):
        cut = jn.spike_times(jitted)
    np.testing.assert_array_equal(cut, tr.spikes)
    with pytest.warns(RuntimeWarning, match=r"isi: 1 neuron\(s\) fired more .* after the last kept spike"):
        jn.isi(jitted)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        jn.spike_times(jax.jit(run)(0.5))
        jn.isi(jax.jit(run)(0.5))
    assert np.isnan(jax.jit(lambda a, b: jn.firing_rate(jnp.array([1.0, jnp.inf]), a, b))(5.0, 2.0))
    with pytest.raises(ValueError, match=r"firing_rate: start expects a time \(ms\) or one per neuron \(shape \(2,\)\)"):
        jn.firing_rate(jnp.ones((2, 5)), jnp.zeros(3), 10.0)


def test_a_continued_runs_rate_is_not_taken_from_the_carried_count():
    """A run continued with init= carries its spike counts on from the earlier run: its
    whole-span rate counted both parts over one (190 Hz for 100, silently, once the
    buffer had overflowed), and the count loss was 0 at twice the true rate."""
    import warnings

    lif = jn.LIF(spike_capacity=10)
    drive = [jn.StepCurrent(3.0, 0.0, 1e4)]
    with pytest.warns(RuntimeWarning, match="overflow"):
        first = jn.simulate(lif, 100.0, stimuli=drive)
        second = jn.simulate(lif, 200.0, stimuli=drive, init=first)
    assert first.counts_span and not second.counts_span and not first.window(0.0, 50.0).counts_span
    assert float(second.spike_count) == 19 and bool(second.overflowed)
    with pytest.warns(RuntimeWarning, match=r"firing_rate: 1 neuron\(s\) fired more spikes .* unknown \(NaN\)"):
        assert np.isnan(jn.firing_rate(second, *second.span))
    with pytest.raises(ValueError, match=r"method='count'.* continues an earlier run \(init=\)"):
        jn.losses.firing_rate(second, 100.0, method="count")
    roomy = jn.LIF(spike_capacity=64)  # without overflow: the kept spikes, this part's 10
    part = jn.simulate(roomy, 200.0, stimuli=drive, init=jn.simulate(roomy, 100.0, stimuli=drive))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert float(jn.firing_rate(part, *part.span)) == 100.0
    net = jn.Network({"a": lif})
    assert jn.simulate(net, 5.0)["a"].counts_span and not jn.simulate(net, 10.0, init=jn.simulate(net, 5.0))["a"].counts_span


def test_fi_curve_under_jit_and_its_fixed_times():
    """fi_curve's delay, dur and window set the run: fixed numbers, also under jit (a
    float() of them failed there); a negative or per-neuron delay is refused."""
    lif = jn.LIF()
    amps = jnp.array([2.0, 3.0])
    np.testing.assert_array_equal(jax.jit(lambda a: jn.fi_curve(lif, a, dur=100.0))(amps),
                                  jn.fi_curve(lif, amps, dur=100.0))
    with pytest.raises(ValueError, match=r"fi_curve: delay expects a finite time >= 0 ms .*got -5"):
        jn.fi_curve(lif, amps, delay=-5.0, dur=100.0)
    with pytest.raises(ValueError, match=r"fi_curve: delay expects one time \(ms\) for every neuron, got shape \(3,\)"):
        jn.fi_curve(jn.LIF(n=3), amps, delay=np.zeros(3), dur=100.0)
    with pytest.raises(ValueError, match=r"fi_curve: dur expects a fixed time"):
        jax.jit(lambda d: jn.fi_curve(lif, amps, dur=d))(100.0)


def test_input_resistance_warns_of_firing_and_of_an_unstable_fixed_point():
    """A step that makes an HH soma fire gives no input resistance (1044 MΩ against
    68 at rest): warned. An Izhikevich neuron started at -55 mV finds the unstable fixed
    point at -50 mV (R_in -1.25 MΩ): warned; from v_guess=-70 its rest, where
    R_in = 1 / (b - 0.08 v - 5) = 1.25 MΩ and C·R_in 1.25 ms (C = 1)."""
    soma = jn.Compartment(length=20.0, diam=20.0, channels=[jn.channels.HH()])
    step = jn.StepCurrent(0.1, 20.0, 100.0)
    tr = jn.simulate(soma, 130.0, v0=-65.0, stimuli=[step])
    with pytest.warns(RuntimeWarning, match=r"the step makes 1 compartment\(s\) fire"):
        jn.input_resistance(tr, step)
    with pytest.warns(RuntimeWarning, match=r"the step makes 1 compartment\(s\) fire"):
        jn.membrane_time_constant(tr, step)
    izh = jn.Izhikevich(V_init=-55.0)
    with pytest.warns(RuntimeWarning, match=r"negative \(-1.25 MΩ\).*unstable fixed point.*v_guess"):
        assert float(jn.input_resistance(izh)) == pytest.approx(-1.25)
    assert float(jn.input_resistance(izh, v_guess=-70.0)) == pytest.approx(1.25, rel=1e-9)
    assert float(jn.membrane_time_constant(izh, v_guess=-70.0)) == pytest.approx(1.25, rel=1e-9)
    with pytest.raises(ValueError, match=r"v_guess applies to a model's steady state"):
        jn.input_resistance(tr, step, v_guess=-70.0)


def test_a_step_too_short_to_settle_is_warned_of():
    """A passive membrane (R = 50 MΩ, τ = 12.5 ms) stepped for 2τ reaches 1 - e⁻² of its
    settled deflection: R_in read 43.23 MΩ and τ 9.89 ms without a word. The warning
    gives the missing share, e⁻² = 13.5 %; a step of 8τ is not warned of, nor one that
    makes the cell fire (warned of as that)."""
    lif = jn.LIF(C=0.25, gL=0.02, EL=-70.0, V_th=np.inf)
    short = jn.StepCurrent(0.1, 10.0, 25.0)
    tr = jn.simulate(lif, 40.0, stimuli=[short])
    with pytest.warns(RuntimeWarning, match=r"had not settled .* ~13\.5 % of its settled value is missing"):
        assert float(jn.input_resistance(tr, short)) == pytest.approx(50.0 * (1 - np.exp(-2.0)), rel=2e-3)
    with pytest.warns(RuntimeWarning, match=r"membrane_time_constant: the response had not settled"):
        jn.membrane_time_constant(tr, short)
    long = jn.StepCurrent(0.1, 10.0, 100.0)
    tr = jn.simulate(lif, 115.0, stimuli=[long])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert float(jn.input_resistance(tr, long)) == pytest.approx(50.0, rel=1e-3)
        assert float(jn.membrane_time_constant(tr, long)) == pytest.approx(12.5, rel=2e-3)
    soma = jn.Compartment(length=20.0, diam=20.0, channels=[jn.channels.HH()])
    step = jn.StepCurrent(0.1, 20.0, 100.0)
    tr = jn.simulate(soma, 130.0, v0=-65.0, stimuli=[step])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        jn.input_resistance(tr, step)
    assert [str(w.message)[:40] for w in caught] == ["input_resistance: the step makes 1 compa"]


_STUB_SWC = """\
1 1 0 0 0 7 -1
2 3 7 0 0 1.2 1
3 3 50 0 0 1.0 2
4 3 -7 0 0 1.2 1
5 3 -50 0 0 1.0 4
6 3 0 7 0 1.0 1
7 3 0 9 0 1.0 6
8 4 0 0 7 2.0 1
9 4 0 0 100 1.5 8
10 4 20 0 200 1.0 9
11 4 -20 0 200 1.0 9
12 2 0 -7 0 0.5 1
13 2 0 -400 0 0.5 12
"""


def test_float32_steady_state_of_a_stiff_cell_converges_at_rounding(float32_results):
    """A passive cell (one-point soma, five neurites, one a 2 µm stub) whose rest is
    the guess: in float32 the Newton steps stall at rounding (7.6e-4 mV) above
    eps**0.75·|v| (4.2e-4 mV), and it was reported as not converging; stalled steps
    within sqrt(eps) now count as converged. The soma's input resistance equals
    float64's (207.1093 MΩ, NEURON's Impedance) to float32 precision."""
    cell = jn.Cell.from_swc(float32_results["stub_swc"], Ra=100.0, channels=[jn.channels.Leak(g=1e-4, e=-65.0)])
    r64 = float(jn.input_resistance(cell)[cell.index("soma[0]", 0.5)])
    assert r64 == pytest.approx(207.1093, rel=1e-6)
    assert float(float32_results["stub"]) == pytest.approx(r64, rel=1e-4)


SWC = Path(__file__).parent / "data" / "small_cell_3pt.swc"


def test_float32_steady_states_of_finely_cut_cables_and_cells(float32_results):
    """float32 steady states of cells whose axial conductances dwarf their membranes'
    (before: a 500 µm cable cut into 1001 segments had an input resistance 436× too
    large and Newton did not converge with a current; 301 segments -8 %; the SWC test
    cell at 20 segments per section +5.6 % at the soma, its voltage under 0.01 nA
    2.6e-3 mV off, above the documented 4e-4 mV). The Hines elimination without a C/dt
    term now builds its pivots from the segments' own conductances, and Newton iterates
    on voltages relative to their mean."""
    got = float32_results["finely_cut"]
    cab = lambda n: jn.Cable(length=500, diam=4, nseg=n, channels=[jn.channels.Leak(g=1e-4, e=-65)])
    want = [float(jn.input_resistance(cab(n))[0]) for n in (301, 1001)]
    want.append(float(np.ravel(jn.input_resistance(cab(1001), jn.StepCurrent(0.1, target=[0])))[0]))
    cell = jn.Cell.from_swc(SWC, channels=[jn.channels.Leak(g=1e-4, e=-65)], nseg=20)
    want.append(float(jn.input_resistance(cell)[cell.index("soma[0]", 0.5)]))
    assert want[0] == pytest.approx(163.799, abs=1e-3) and want[1] == pytest.approx(163.816, abs=1e-3)
    np.testing.assert_allclose(got[:4], want, rtol=2e-5)
    v64 = np.asarray(jn.steady_state(cell, cell.place_current(("soma[0]", 0.5), 0.01)).v)
    assert np.max(np.abs(got[4:] - v64)) < 4e-4  # the documented float32 tolerance


def test_active_soma_input_resistance_and_time_constant_as_neuron(neuron_h):
    """The docstrings' HH soma (20 µm × 20 µm, 6.3 °C, -10 pA from 100 to 300 ms): its
    voltage equals NEURON's, so the numbers read from it are NEURON's too: the largest
    deflection (the resonance's undershoot) 128.75 MΩ, the deflection at the step's end
    71.96 MΩ, the 63 % charging time 0.675 ms; from the model, the slope resistance
    67.95 MΩ and C·R_in 0.854 ms, which is not that charging time in an active cell."""
    from conftest import run_neuron

    h = neuron_h
    sec = h.Section(name="rin_tau_soma")
    sec.L = sec.diam = 20.0
    sec.insert("hh")
    clamp = h.IClamp(sec(0.5))
    clamp.delay, clamp.dur, clamp.amp = 100.0, 200.0, -0.01
    _, (v_n,) = run_neuron(h, 320.0, refs=[sec(0.5)._ref_v])
    soma = jn.Compartment(length=20.0, diam=20.0, channels=[jn.channels.HH()])
    stim = jn.StepCurrent(-0.01, 100.0, 200.0)
    tr = jn.simulate(soma, 320.0, stimuli=[stim], v0=-65.0)
    np.testing.assert_allclose(tr.v, v_n[: tr.t.size], rtol=0, atol=1e-6)
    assert float(jn.input_resistance(tr, stim)) == pytest.approx(128.754, abs=1e-3)
    assert float(jn.input_resistance(tr, stim, method="end")) == pytest.approx(71.9615, abs=1e-3)
    assert float(jn.membrane_time_constant(tr, stim)) == pytest.approx(0.675, abs=1e-3)
    assert float(np.ravel(jn.input_resistance(soma))[0]) == pytest.approx(67.951, abs=1e-3)
    assert float(np.ravel(jn.membrane_time_constant(soma))[0]) == pytest.approx(0.854, abs=1e-3)


def test_steady_state_is_one_compiled_program():
    # Run op by op, a cell's first steady state compiled some 60 small programs (3-4 s
    # for 18 sections): now one, whose repeat compiles nothing.
    from test_simulate import _CountCompiles

    channels = lambda i: [jn.channels.HH() if i == 0 else jn.channels.Leak()]  # noqa: E731
    secs = [jn.Cable(length=50.0, diam=1.0, nseg=3, channels=channels(i), name=f"s{i}") for i in range(6)]
    cell = jn.Cell(secs, parents=[None] + [f"s{(i - 1) // 2}" for i in range(1, 6)])
    cell.precomputed()  # (its own, eager, compiles: not the steady state's)
    with _CountCompiles() as first:
        v = jn.steady_state(cell).v
    assert first.count <= 3, first.count  # was 44
    with _CountCompiles() as again:
        assert np.array_equal(jn.steady_state(cell).v, v)
    assert again.count == 0
    dvdt = cell.vector_field(0.0, cell.init_state(v), jnp.zeros_like(v)).v
    assert float(jnp.max(jnp.abs(dvdt))) < 1e-9  # a fixed point
    # A number set with eqx.tree_at is made an array, as simulate does: a new value
    # reuses the program (each value compiled it again, 1.2 s an input_resistance).
    import equinox as eqx

    edited = eqx.tree_at(lambda c: c.sections[1].channels[0].g, cell, 2e-4)
    edited.precomputed()
    with _CountCompiles() as new_value:
        v2 = jn.steady_state(edited).v
    assert new_value.count == 0, new_value.count
    assert not np.array_equal(v2, v)



def test_spike_analysis_compiles_one_program_per_call_at_a_new_size():
    # Op by op, each jax.numpy operation on a new shape compiled a program of its own
    # (firing_rate over a trace's span 15, isi 4, fi_curve 30 with its loop, ou_current
    # 17, losses.spike_rate 12: ~30-60 ms each with XLA's optimisations, a notebook's
    # first call's wait). Their arithmetic is now one compiled program per call; the
    # values are NumPy's.
    from test_simulate import _CountCompiles

    drive = [jn.StepCurrent(4.0, 1.0, 1e9)]
    jn.simulate(jn.LIF(n=2, spike_capacity=8), 50.0, stimuli=drive)
    with pytest.warns(RuntimeWarning, match="overflow"):
        tr = jn.simulate(jn.LIF(C=jnp.linspace(0.1, 2.0, 13), n=13, spike_capacity=6), 50.0, stimuli=drive)
    spikes, count = np.asarray(tr.spikes), np.asarray(tr.spike_count)
    assert np.any(count > 6) and np.any(count <= 6)  # overflowed buffers and complete ones
    counted = {}

    def once(name, call):
        with _CountCompiles() as c:
            out = call()
        counted[name] = (c.count, c.loops)
        return np.asarray(out)

    whole = once("firing_rate, whole span", lambda: jn.firing_rate(tr, *tr.span))
    np.testing.assert_allclose(whole, count / 0.05, rtol=1e-12)
    with pytest.warns(RuntimeWarning, match="rate is unknown"):
        part = once("firing_rate, a window", lambda: jn.firing_rate(tr, 5.0, 20.0))
    last = np.max(np.where(np.isfinite(spikes), spikes, -np.inf), axis=1)
    known = np.sum((spikes >= 5.0) & (spikes < 20.0), axis=1) / 0.015
    np.testing.assert_allclose(part, np.where((count > 6) & (last < 20.0), np.nan, known), rtol=1e-12)
    with pytest.warns(RuntimeWarning, match="intervals after the last kept spike"):
        intervals = once("isi", lambda: jn.isi(tr))
    with np.errstate(invalid="ignore"):
        d = np.diff(spikes, axis=1)
    np.testing.assert_array_equal(intervals, np.where(np.isfinite(d), d, np.inf))
    np.testing.assert_array_equal(once("spike_count", lambda: jn.spike_count(spikes)), np.isfinite(spikes).sum(1))
    with pytest.warns(RuntimeWarning, match="more than capacity=4"):
        first = once("spike_times, fewer", lambda: jn.spike_times(tr, capacity=4))
    np.testing.assert_array_equal(first, spikes[:, :4])
    smooth = once("losses.spike_rate", lambda: jn.losses.spike_rate(spikes, 5.0, 40.0))
    inside = np.isfinite(spikes) & (spikes >= 5.0) & (spikes < 40.0)
    n = inside.sum(1)
    span = np.where(inside, spikes, -np.inf).max(1) - np.where(inside, spikes, np.inf).min(1)
    np.testing.assert_allclose(smooth, np.where(n >= 2, 1000.0 * (n - 1) / np.where(n >= 2, span, 1.0),
                                                1000.0 * n / 35.0), rtol=1e-12)
    noise = once("ou_current", lambda: jn.ou_current(0.1, 0.05, 5.0, 30.0, shape=(7,)).values)
    assert noise.shape == (1201, 7) and np.all(np.isfinite(noise))
    rates = once("fi_curve", lambda: jn.fi_curve(jn.LIF(n=3), [0.5, 1.0, 2.0], dur=50.0))
    assert rates.shape == (3, 3) and np.all(np.diff(rates[:, 0]) >= 0) and rates[-1, 0] > 0
    # At most one program each, besides one-offs of the process and the time loop.
    limits = {"ou_current": 3, "losses.spike_rate": 2, "fi_curve": 4}
    over = {k: v for k, v in counted.items() if v[0] - v[1] > limits.get(k, 1) - (k == "fi_curve")}
    assert not over, counted
    assert counted["fi_curve"][1] == 1



def test_step_analysis_of_a_trace_compiles_one_program_per_call():
    # input_resistance and membrane_time_constant of a trace ran op by op: 9 and 24
    # programs at each new trace size. Now one each, with the values NumPy gives.
    from test_simulate import _CountCompiles

    soma = lambda n: jn.Compartment(length=20.0, diam=20.0, channels=[jn.channels.Leak(g=1e-4, e=-65.0)], n=n)  # noqa: E731
    stim = jn.StepCurrent(-0.01 * np.arange(1, 6), 20.0, 60.0)
    jn.input_resistance(jn.simulate(soma(2), 100.0, stimuli=[jn.StepCurrent(-0.01, 20.0, 60.0)]),
                        jn.StepCurrent(-0.01, 20.0, 60.0))
    tr = jn.simulate(soma(5), 100.0, stimuli=[stim], save_every=0.1)
    t, v = np.asarray(tr.t), np.asarray(tr.v)
    k0, k1 = np.searchsorted(t, 20.0 + 1e-9) - 1, np.searchsorted(t, 80.0 + 1e-9) - 1
    during = (t >= 20.0) & (t <= 80.0)
    counted = {}
    for method in ("deflection", "end"):
        with _CountCompiles() as c:
            r = np.asarray(jn.input_resistance(tr, stim, method=method))
        counted[method] = c.messages
        amp = -0.01 * np.arange(1, 6)
        expected = ((v[k1] - v[k0]) / amp if method == "end"
                    else (np.max(np.where(during[:, None], -v, -np.inf), axis=0) + v[k0]) / -amp)
        np.testing.assert_allclose(r, expected, rtol=1e-12)
    with _CountCompiles() as c:
        tau = np.asarray(jn.membrane_time_constant(tr, stim))
    counted["tau"] = c.messages
    frac = (v - v[k0]) / (v[k1] - v[k0])
    for j in range(5):
        b = np.nonzero(during & (frac[:, j] >= 1 - np.exp(-1)))[0][0]
        w = (1 - np.exp(-1) - frac[b - 1, j]) / (frac[b, j] - frac[b - 1, j])
        assert tau[j] == pytest.approx(t[b - 1] + w * (t[b] - t[b - 1]) - 20.0, rel=1e-12)
    # A passive membrane, tau_m = cm/g = 10 ms, stepped for 6 tau_m: 63.2 % of the deflection
    # at the step's end is reached at -tau_m·ln(1 - (1 - 1/e)(1 - e^-6)).
    assert np.allclose(tau, -10.0 * np.log(1 - (1 - np.exp(-1)) * (1 - np.exp(-6))), rtol=3e-3)
    assert all(len(m) <= 1 for m in counted.values()), counted


def _small_soma(g=1e-4):
    return jn.Compartment(length=20.0, diam=20.0, channels=[jn.channels.Leak(g=g, e=-65.0)])


def test_batched_traces_give_one_input_resistance_and_time_constant_per_member():
    """A trace from jax.vmap over simulate (t of shape (batch, T)) crashed
    input_resistance and membrane_time_constant with "TypeError: Only scalar arrays can
    be converted to Python scalars"; each member now gets its own value, as analysing
    inside the vmap gives it (790.379 MΩ and 9.8965 ms for this passive soma)."""
    amps = jnp.array([-0.01, -0.02])
    step = lambda a: jn.StepCurrent(amp=a, delay=20.0, dur=50.0)  # noqa: E731
    run = lambda a: jn.simulate(_small_soma(), 80.0, stimuli=[step(a)])  # noqa: E731
    batch = jax.vmap(run)(amps)
    inside = jax.vmap(lambda a: jn.input_resistance(run(a), step(a)))(amps)
    rin = jn.input_resistance(batch, step(amps))
    assert rin.shape == (2,)
    np.testing.assert_allclose(rin, inside, rtol=1e-12)
    np.testing.assert_allclose(rin, [790.3793, 790.3793], rtol=1e-6)
    # One step for all: member 1 got twice its current, so twice the "resistance".
    np.testing.assert_allclose(jn.input_resistance(batch, step(-0.01)), [790.3793, 1580.7585], rtol=1e-6)
    tau = jn.membrane_time_constant(batch, step(amps))
    np.testing.assert_allclose(tau, jax.vmap(lambda a: jn.membrane_time_constant(run(a), step(a)))(amps),
                               rtol=1e-12)
    np.testing.assert_allclose(tau, [9.8965, 9.8965], rtol=1e-4)
    # Under jit (values unknown: each member vmapped) and through grad.
    np.testing.assert_allclose(jax.jit(lambda tr, a: jn.input_resistance(tr, step(a)))(batch, amps), inside,
                               rtol=1e-12)
    g = jax.grad(lambda a: jnp.sum(jn.input_resistance(jax.vmap(run)(a), step(a), method="end")))(amps)
    np.testing.assert_allclose(g, 0.0, atol=1e-6)  # passive: R does not depend on the amplitude
    # Two batch axes, and a cable's segments: batch + columns.
    grid = jax.vmap(jax.vmap(run))(jnp.array([[-0.01, -0.02], [-0.03, -0.04]]))
    np.testing.assert_allclose(jn.input_resistance(grid, step(jnp.array([[-0.01, -0.02], [-0.03, -0.04]]))),
                               np.full((2, 2), 790.3793), rtol=1e-6)
    cable = jn.Cable(100.0, 2.0, nseg=3, channels=[jn.channels.Leak(g=1e-4, e=-65.0)])
    cstep = lambda a: jn.StepCurrent(amp=a, delay=20.0, dur=50.0, target=[0])  # noqa: E731
    ctr = jax.vmap(lambda a: jn.simulate(cable, 80.0, stimuli=[cstep(a)]))(amps)
    crin = jn.input_resistance(ctr, cstep(amps), method="end")
    assert crin.shape == (2, 3)
    np.testing.assert_allclose(
        crin, jax.vmap(lambda a: jn.input_resistance(jn.simulate(cable, 80.0, stimuli=[cstep(a)]), cstep(a),
                                                     method="end"))(amps), rtol=1e-12)


def test_batched_traces_keep_the_checks_and_warnings_of_one_trace():
    amps = jnp.array([-0.01, 0.1])
    step = lambda a: jn.StepCurrent(amp=a, delay=20.0, dur=50.0)  # noqa: E731
    hh = jn.Compartment(length=20.0, diam=20.0, channels=[jn.channels.HH()])
    batch = jax.vmap(lambda a: jn.simulate(hh, 80.0, stimuli=[step(a)]))(amps)
    with pytest.warns(RuntimeWarning, match=r"input_resistance: the step makes 1 compartment\(s\) fire"):
        jn.input_resistance(batch, step(amps))
    with pytest.raises(ValueError, match=r"the end of the stimulus at t=100.0 ms lies outside the trace \[0.0, 80.0\]"):
        jn.input_resistance(batch, jn.StepCurrent(amp=amps, delay=20.0, dur=80.0))
    with pytest.raises(ValueError, match=r"input_resistance: stimulus.amp has shape \(3,\); for this batch of traces "
                                         r"\(batch shape \(2,\), compartments \(\)\)"):
        jn.input_resistance(batch, step(jnp.array([-0.01, -0.02, -0.03])))
    # Two members of two neurons: an amp of shape (2,) could be either's.
    pop = jax.vmap(lambda a: jn.simulate(jn.LIF(n=2), 80.0, stimuli=[step(a)]))(amps)
    with pytest.raises(ValueError, match=r"stimulus.amp of shape \(2,\) could be one value per member .* or one per "
                                         r"compartment .*call input_resistance inside the\s+jax.vmap"):
        jn.input_resistance(pop, step(amps))


def test_membrane_time_constant_warns_when_sampled_too_coarsely():
    """A 1 ms membrane (cm/g = 1/1e-3) read 1.47 ms at save_every=2 and 3.18 ms at 5,
    without a word: linear interpolation across so few samples places the 63.2 %
    crossing late. Fewer than MIN_SAMPLES_PER_TAU samples per time constant now warn,
    naming the interval, the estimate and a save_every to use."""
    import warnings

    soma = _small_soma(g=1e-3)
    step = jn.StepCurrent(amp=-0.01, delay=20.0, dur=30.0)
    tau = lambda se: jn.membrane_time_constant(jn.simulate(soma, 60.0, stimuli=[step], save_every=se), step)  # noqa: E731
    with pytest.warns(RuntimeWarning, match=r"sampled every 2 ms, too coarse for the estimated time constant 1.468 ms"
                                            r" \(fewer than 2 samples per time constant.*save_every <= 0.367 ms"):
        assert float(tau(2.0)) == pytest.approx(1.4678, abs=1e-4)
    with pytest.warns(RuntimeWarning, match=r"sampled every 5 ms, too coarse for the estimated time constant 3.183 ms"):
        tau(5.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # fine sampling: no warning
        assert float(tau(None)) == pytest.approx(1.0125, abs=1e-4)
        assert float(tau(0.25)) == pytest.approx(1.0140, abs=1e-4)
