"""VoltageClamp (NEURON's SEClamp): against NEURON run in the same test, the exact
backward-Euler recursion of a clamped passive soma, populations, cables, networks,
gradients and bad input."""

import math

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxneuro as jn
from conftest import run_neuron

SOMA = dict(length=100, diam=500, cm=1)  # seed 001's soma
AREA_CM2 = math.pi * 100 * 500 * 1e-8
G_LEAK_US = 1e-4 * AREA_CM2 * 1e6  # its leak conductance, µS
C_NF = 1.0 * AREA_CM2 * 1e3  # its capacitance, nF


def _passive_soma():
    return jn.Compartment(**SOMA, channels=[jn.channels.Leak(g=1e-4, e=-70)])


def test_clamped_passive_soma_follows_the_backward_euler_recursion_exactly():
    """C·dv/dt = g(E - v) + (vc - v)/rs, stepped by backward Euler (the default solver),
    with vc read at each step's midpoint and the clamp off after the third level."""
    rs, dt = 0.5, 0.025
    clamp = jn.VoltageClamp(amp1=-65, dur1=1.0, amp2=-30, dur2=15.0, amp3=-80, dur3=1.5, rs=rs)
    trace = jn.simulate(_passive_soma(), 20.0, dt=dt, stimuli=[clamp], record=("v", "i_inj"))

    v = [-65.0]
    for k in range(800):
        t_mid = (k + 0.5) * dt
        vc = -65.0 if t_mid < 1.0 else -30.0 if t_mid < 16.0 else -80.0
        G = 1.0 / rs if t_mid < 17.5 else 0.0
        v.append((C_NF / dt * v[-1] + G_LEAK_US * -70.0 + G * vc) / (C_NF / dt + G_LEAK_US + G))
    np.testing.assert_allclose(np.asarray(trace.v), v, rtol=0, atol=1e-11)

    # The recorded current is (vc - v)/rs at the sample, 0 once the clamp is off.
    t = np.asarray(trace.t)
    vc_t = np.where(t < 1.0, -65.0, np.where(t < 16.0, -30.0, -80.0))
    expected = np.where(t < 17.5, (vc_t - np.asarray(v)) / rs, 0.0)
    np.testing.assert_allclose(np.asarray(trace.i_inj), expected, rtol=0, atol=1e-10)
    # Held long enough, the steady state of rs in series with the membrane.
    steady = (G_LEAK_US * -70.0 + (1 / rs) * -30.0) / (G_LEAK_US + 1 / rs)
    assert float(trace.at(15.975).v) == pytest.approx(steady, abs=1e-6)


@pytest.mark.parametrize("rs", [1.0, 0.01])
def test_hh_soma_clamp_matches_neuron_seclamp(neuron_h, rs):
    """An HH soma stepped from -65 to -10 mV and back: voltages and clamp currents as
    NEURON's SEClamp gives them, at NEURON's default rs = 1 MΩ and at a stiff 0.01 MΩ
    (rs·C = 1.3e-4 ms, far below dt)."""
    h = neuron_h
    sec = h.Section(name=f"clamp_soma_{rs}")
    sec.L = sec.diam = 20
    sec.insert("hh")
    clamp_n = h.SEClamp(sec(0.5))
    clamp_n.amp1, clamp_n.dur1, clamp_n.amp2, clamp_n.dur2 = -65, 2, -10, 5
    clamp_n.amp3, clamp_n.dur3, clamp_n.rs = -65, 3, rs
    t_n, (v_n, i_n) = run_neuron(h, 12, refs=(sec(0.5)._ref_v, clamp_n._ref_i))

    model = jn.Compartment(length=20, diam=20, channels=[jn.channels.HH()])
    clamp = jn.VoltageClamp(-65, 2, -10, 5, -65, 3, rs=rs)
    trace = jn.simulate(model, 12, stimuli=[clamp], record=("v", "i_inj", "i_clamp"))
    v, i = np.asarray(trace.v), np.asarray(trace.i_inj)
    assert np.max(np.abs(v - v_n)) < 1e-8
    assert np.max(np.abs(v - v_n)) / np.ptp(v_n) < 1e-9
    # The sodium inward current's peak is in the trace (a real clamp experiment).
    assert np.min(i[(t_n > 2.1) & (t_n < 7)]) < -0.05
    # i_clamp is the current of the step that ended at the sample, as SEClamp.i: at a
    # switch (t = 2, 7, 10 ms) still the step before's level. Equal everywhere.
    switch = np.isin(np.round(t_n, 6), [2.0, 7.0, 10.0])
    assert np.max(np.abs(np.asarray(trace.i_clamp) - i_n)) < 1e-8 / rs
    before = np.array([-65.0, -10.0, -65.0])
    np.testing.assert_allclose(i_n[switch], (before - v_n[switch]) / rs, rtol=1e-12)
    # i_inj is evaluated at the sample's own time: there the new level's current.
    assert np.max(np.abs(i[~switch] - i_n[~switch])) < 1e-8 / rs
    after = np.array([-10.0, -65.0, -65.0])
    np.testing.assert_allclose(i[switch], np.where(t_n[switch] < 9, (after - v[switch]) / rs, 0.0), atol=1e-9)


def test_clamp_inside_a_passive_cable_matches_neuron(neuron_h):
    """A clamp at x = 0.3 of a passive cable: every segment's voltage as NEURON's."""
    h = neuron_h
    sec = h.Section(name="clamp_cable")
    sec.L, sec.diam, sec.nseg, sec.Ra, sec.cm = 500, 2, 11, 100, 1
    sec.insert("pas")
    for seg in sec:
        seg.pas.g, seg.pas.e = 2e-4, -70
    clamp_n = h.SEClamp(sec(0.3))
    clamp_n.amp1, clamp_n.dur1, clamp_n.amp2, clamp_n.dur2, clamp_n.rs = -70, 1, -20, 10, 2.0
    refs = [seg._ref_v for seg in sec]
    t_n, v_n = run_neuron(h, 15, v0=-70, refs=refs)

    cable = jn.Cable(length=500, diam=2, nseg=11, Ra=100, cm=1, channels=[jn.channels.Leak(g=2e-4, e=-70)])
    clamp = jn.VoltageClamp(amp1=-70, dur1=1, amp2=-20, dur2=10, rs=2.0, target=0.3)
    trace = jn.simulate(cable, 15, stimuli=[clamp], v0=-70)
    np.testing.assert_allclose(np.asarray(trace.v), np.stack(v_n, axis=1), rtol=0, atol=1e-9)
    # Held: the clamped segment nears -20 mV (rs = 2 MΩ drops some), and the voltage
    # falls away from it towards both ends.
    held = np.asarray(trace.at(10.9).v)
    k = cable.index(0.3)
    assert -22 < held[k] < -20
    assert np.all(np.diff(held[k:]) < 0) and np.all(np.diff(held[:k + 1]) > 0)


def test_per_neuron_levels_equal_separate_runs():
    """An activation protocol in one population run: each neuron its own level."""
    levels = jnp.array([-60.0, -30.0, 0.0, 30.0])
    pop = jn.Compartment(length=20, diam=20, channels=[jn.channels.HH()], n=4)
    clamp = jn.VoltageClamp(-65, 1, levels, 4, rs=0.1)
    together = jn.simulate(pop, 6, stimuli=[clamp], record=("v", "i_inj"))
    one = jn.Compartment(length=20, diam=20, channels=[jn.channels.HH()])
    for k, level in enumerate(levels):
        alone = jn.simulate(one, 6, stimuli=[jn.VoltageClamp(-65, 1, level, 4, rs=0.1)], record=("v", "i_inj"))
        np.testing.assert_allclose(together.v[:, k], alone.v, rtol=0, atol=1e-12)
        np.testing.assert_allclose(together.i_inj[:, k], alone.i_inj, rtol=0, atol=1e-10)
    # Sodium's reversal lies between 30 and 60 mV: the early current at +30 mV is
    # still inward, smaller than at 0 mV.
    early = np.asarray(together.i_inj)[(np.asarray(together.t) > 1.3) & (np.asarray(together.t) < 1.8)]
    assert early[:, 2].min() < early[:, 3].min() < 0


def test_clamp_on_some_neurons_of_a_population_and_auto_backend():
    pop = jn.Compartment(**SOMA, channels=[jn.channels.Leak(g=1e-4, e=-70)], n=6)
    clamp = jn.VoltageClamp(amp1=-40, dur1=math.inf, rs=0.01, target=[1, 4])
    trace = jn.simulate(pop, 10, stimuli=[clamp], v0=-70)  # backend="auto": one XLA loop
    end = np.asarray(trace.v[-1])
    G = 1 / 0.01
    np.testing.assert_allclose(end[[1, 4]], (G_LEAK_US * -70 + G * -40) / (G_LEAK_US + G), atol=1e-9)
    np.testing.assert_allclose(end[[0, 2, 3, 5]], -70.0, atol=1e-12)
    with pytest.raises(ValueError, match="VoltageClamp"):
        jn.simulate(pop, 1, stimuli=[clamp], backend="sharded")


def test_clamp_in_a_network_holds_its_neuron_against_a_gap_junction():
    """Two passive somata joined by a gap junction; one clamped: the other settles at
    the voltage divider between the junction and its leak."""
    soma = _passive_soma()
    gap_uS = 0.02
    net = jn.Network(
        populations={"a": soma, "b": soma},
        couplings=[jn.SymmetricGapJunction("a", "b", jn.conn.one_to_one, gap_uS)],
    )
    clamp = jn.VoltageClamp(amp1=-20, dur1=math.inf, rs=1e-3, target="a")
    trace = jn.simulate(net, 150, stimuli=[clamp], v0=-70, save_every=5)
    va = float(trace["a"].v[-1])
    vb = float(trace["b"].v[-1])
    assert va == pytest.approx(-20.0, abs=0.01)
    assert vb == pytest.approx((G_LEAK_US * -70 + gap_uS * va) / (G_LEAK_US + gap_uS), abs=1e-4)


def test_gradients_of_the_clamp_current():
    """d(steady v)/d(vc) is the divider (1/rs)/(g + 1/rs); the gradient of an HH clamp
    current w.r.t. gnabar equals a central difference."""
    soma = _passive_soma()

    def held(level, rs):
        return jn.simulate(soma, 20, stimuli=[jn.VoltageClamp(amp1=level, dur1=30, rs=rs)]).v[-1]

    d_level, d_rs = jax.grad(held, argnums=(0, 1))(-40.0, 0.5)
    G = 1 / 0.5
    assert float(d_level) == pytest.approx(G / (G_LEAK_US + G), rel=1e-9)
    # v = (g·E + vc/rs)/(g + 1/rs): dv/drs = -(vc - v)·(1/rs²)/(g + 1/rs) at steady state.
    v = (G_LEAK_US * -70 + G * -40) / (G_LEAK_US + G)
    assert float(d_rs) == pytest.approx(-(-40 - v) * G**2 / (G_LEAK_US + G), rel=1e-6)

    def peak_current(gnabar):
        model = jn.Compartment(length=20, diam=20, channels=[jn.channels.HH(gnabar=gnabar)])
        trace = jn.simulate(model, 3, stimuli=[jn.VoltageClamp(-65, 1, -10, 5, rs=0.05)], record=("i_inj",))
        return jnp.min(trace.i_inj)

    grad = float(jax.grad(peak_current)(0.12))
    eps = 1e-6
    fd = (float(peak_current(0.12 + eps)) - float(peak_current(0.12 - eps))) / (2 * eps)
    assert grad < 0  # more sodium channels: a larger inward current
    assert grad == pytest.approx(fd, rel=1e-5)


def test_adaptive_solver_gives_the_exact_exponentials():
    """With Tsit5 and a PID controller (the command's switches passed as jumps) the
    clamped passive soma follows the exact solution: exponentials towards each level's
    divider voltage with tau = C/(g + 1/rs), then towards rest with C/g."""
    rs = 1.0
    clamp = jn.VoltageClamp(amp1=-65, dur1=1, amp2=-30, dur2=3, rs=rs)
    trace = jn.simulate(_passive_soma(), 8, stimuli=[clamp], save_every=0.5, solver=diffrax.Tsit5(),
                        stepsize_controller=diffrax.PIDController(rtol=1e-10, atol=1e-10))
    G = 1 / rs
    exact, v, t_prev = [], -65.0, 0.0
    for t in np.asarray(trace.t):
        for start, stop, g_clamp, vc in ((0, 1, G, -65.0), (1, 4, G, -30.0), (4, np.inf, 0.0, 0.0)):
            lo, hi = max(t_prev, start), min(t, stop)
            if hi > lo:
                target = (G_LEAK_US * -70 + g_clamp * vc) / (G_LEAK_US + g_clamp)
                v = target + (v - target) * math.exp(-(hi - lo) * (G_LEAK_US + g_clamp) / C_NF)
        exact.append(v)
        t_prev = t
    np.testing.assert_allclose(np.asarray(trace.v), exact, rtol=0, atol=1e-6)


def test_bad_clamp_input_is_refused_with_the_parameter_named():
    cable = jn.Cable(length=500, diam=2, nseg=11, channels=[jn.channels.Leak()])
    with pytest.raises(ValueError, match="section end"):
        jn.VoltageClamp(amp1=-20, dur1=5, target=1.0)
    with pytest.raises(ValueError, match="section end"):
        jn.VoltageClamp(amp1=-20, dur1=5, target=("dend", 0.0))
    with pytest.raises(ValueError, match="target=None would clamp each of the 11 segments"):
        jn.simulate(cable, 1, stimuli=[jn.VoltageClamp(amp1=-20, dur1=5)])
    with pytest.raises(ValueError, match="'VoltageClamp.rs' must be > 0"):
        jn.VoltageClamp(amp1=-20, dur1=5, rs=0.0)
    with pytest.raises(ValueError, match="'VoltageClamp.dur2' must be >= 0"):
        jn.VoltageClamp(amp1=-20, dur1=5, dur2=-1)
    with pytest.raises(ValueError, match="density=True does not apply"):
        jn.VoltageClamp(amp1=-20, dur1=5, density=True)
    with pytest.raises(ValueError, match="amp1"):
        jn.VoltageClamp(amp1=2 * jn.units.nA, dur1=5)
    # A level of the wrong length for a population names the level (before: only "a
    # stimulus amplitude of shape (3,)"); i_clamp without a clamp says where it comes from.
    pop = jn.Compartment(length=20.0, diam=20.0, channels=[jn.channels.Leak()], n=4)
    with pytest.raises(ValueError, match=r"VoltageClamp fields of shape \{'amp2': \(3,\)\}: .*shape \(4,\)"):
        jn.simulate(pop, 1.0, stimuli=[jn.VoltageClamp(amp1=-65, dur1=1, amp2=jnp.zeros(3), dur2=1)])
    with pytest.raises(ValueError, match=r"unknown name\(s\) \['i_clamp'\].*jn\.VoltageClamp or jn\.DataVoltageClamp"):
        jn.simulate(pop, 1.0, stimuli=[jn.StepCurrent(0.1)], record=("v", "i_clamp"))


def test_action_potential_clamp_matches_neuron_vector_play(neuron_h):
    """DataVoltageClamp: an HH soma clamped to a recorded action potential (NEURON's
    SEClamp with Vector.play into amp1, interpolated), with a leak-free twin whose
    current is then the ionic current the spike needs; voltages and currents as
    NEURON's, and the clamp off (no current) after the last sample."""
    h = neuron_h
    model = jn.Compartment(length=20, diam=20, channels=[jn.channels.HH()])
    spike = jn.simulate(model, 6.0, stimuli=[jn.StepCurrent(0.3, 1.0, 0.5)])  # one AP
    command = np.asarray(spike.v)[::2]  # every 0.05 ms
    t_cmd = np.arange(command.size) * 0.05

    sec = h.Section(name="ap_clamp_soma")
    sec.L = sec.diam = 20
    sec.insert("hh")
    clamp_n = h.SEClamp(sec(0.5))
    clamp_n.dur1, clamp_n.rs = t_cmd[-1], 0.5
    vc_vec, t_vec = h.Vector(command), h.Vector(t_cmd)
    vc_vec.play(clamp_n._ref_amp1, t_vec, 1)
    t_n, (v_n, i_n) = run_neuron(h, 8.0, refs=(sec(0.5)._ref_v, clamp_n._ref_i))

    clamp = jn.DataVoltageClamp(command, dt=0.05, rs=0.5)
    trace = jn.simulate(model, 8.0, stimuli=[clamp], record=("v", "i_inj", "i_clamp"))
    v, i = np.asarray(trace.v), np.asarray(trace.i_inj)
    assert np.max(np.abs(v - v_n)) < 1e-8
    # i_clamp is SEClamp.i: (vc - v)/rs with the command of the step that ended at the
    # sample (its midpoint, half a step earlier) and the voltage at its end.
    on = t_n < t_cmd[-1] - 1e-9
    vc_mid = np.interp(t_n - 0.0125, t_cmd, command)
    np.testing.assert_allclose(i_n[on][1:], ((vc_mid - v_n) / 0.5)[on][1:], rtol=0, atol=1e-9)
    np.testing.assert_allclose(trace.i_clamp, i_n, rtol=0, atol=1e-7)
    # i_inj is evaluated at the sample's own time (the command there).
    vc = np.interp(t_n, t_cmd, command)
    np.testing.assert_allclose(i[on], ((vc - v) / 0.5)[on], rtol=0, atol=1e-9)
    np.testing.assert_array_equal(i[t_n > t_cmd[-1] + 1e-9], 0.0)
    np.testing.assert_array_equal(np.asarray(trace.i_clamp)[t_n > t_cmd[-1] + 0.025 + 1e-9], 0.0)
    # The clamp follows the AP: at its peak within 1 mV (rs = 0.5 MΩ in series).
    peak = np.argmax(command)
    assert abs(float(trace.at(t_cmd[peak]).v) - command[peak]) < 1.0


RAMP_T = 0.025 * np.arange(401)  # -80 -> -40 mV over 10 ms: 4 mV/ms
RAMP = -80 + 4.0 * RAMP_T


@pytest.mark.parametrize("rs", [1.0, 0.001])
def test_data_clamp_current_during_a_ramp_is_neurons_seclamp_i(neuron_h, rs):
    """A ramp command into a passive soma (SEClamp with Vector.play into amp1): the
    recorded i_clamp is SEClamp.i at every sample, the first (the command at t = 0,
    which starts off the resting voltage), those of the ramp, the one at its end and
    those after (off). Before, i_clamp paired the command at the sample with the
    voltage there, off by slope·(dt/2)/rs: 52.5 nA instead of 2.5 at rs = 0.001 MΩ."""
    h = neuron_h
    sec = h.Section(name=f"ramp_clamp_soma_{rs}")
    sec.L, sec.diam, sec.cm = SOMA["length"], SOMA["diam"], SOMA["cm"]
    sec.insert("pas")
    sec.g_pas, sec.e_pas = 1e-4, -70
    clamp_n = h.SEClamp(sec(0.5))
    clamp_n.dur1, clamp_n.rs = RAMP_T[-1], rs
    vc_vec, t_vec = h.Vector(RAMP), h.Vector(RAMP_T)
    vc_vec.play(clamp_n._ref_amp1, t_vec, 1)
    t_n, (v_n, i_n) = run_neuron(h, 12.0, v0=-70.0, refs=(sec(0.5)._ref_v, clamp_n._ref_i))

    clamp = jn.DataVoltageClamp(RAMP, dt=0.025, rs=rs)
    trace = jn.simulate(_passive_soma(), 12.0, stimuli=[clamp], v0=-70.0, record=("v", "i_clamp"))
    assert np.max(np.abs(np.asarray(trace.v) - v_n)) < 1e-9
    i = np.asarray(trace.i_clamp)
    assert i_n[0] == pytest.approx(-10.0 / rs)  # (cmd(0) - v0)/rs
    np.testing.assert_allclose(i, i_n, rtol=1e-9, atol=1e-9)
    k = int(np.argmin(np.abs(t_n - 5.0)))
    if rs < 0.01:  # a stiff clamp: the physical C·dv/dt + leak, 2.497 nA
        assert i[k] == pytest.approx(C_NF * 4.0 + G_LEAK_US * (float(trace.v[k]) + 70), abs=2e-3)


def test_data_clamp_current_is_the_implicit_steps_current():
    """Without NEURON: a stiff clamp (rs·C = 1.3e-4 ms ≪ dt) on a ramp into a passive
    soma. The recorded i_clamp is the current the backward-Euler step that ended at the
    sample injected, so the step's charge balance C·Δv/Δt + g(v - E) holds to rounding
    (the last step, shortened to end at t1 = 5.01 ms, too), and it is the physical
    C·dV/dt + g(V - E) of the ramp (slope 4 mV/ms). It is jit-, vmap- and
    grad-friendly."""
    rs, dt = 1e-3, 0.025
    clamp = jn.DataVoltageClamp(RAMP, dt=dt, rs=rs)
    trace = jn.simulate(_passive_soma(), 5.01, dt=dt, stimuli=[clamp], v0=-80.0, record=("v", "i_clamp"))
    t, v, i = np.asarray(trace.t), np.asarray(trace.v), np.asarray(trace.i_clamp)
    assert t[-1] == pytest.approx(5.01) and t[-2] == pytest.approx(5.0)
    balance = C_NF * np.diff(v) / np.diff(t) + G_LEAK_US * (v[1:] + 70)
    np.testing.assert_allclose(i[1:], balance, rtol=1e-7, atol=1e-6)
    # (Not the shortened last step: it reads the command only 0.0175 ms after the step
    # before, so its Δv/Δt is 1.75 times the slope, as NEURON's would be.)
    physical = C_NF * 4.0 + G_LEAK_US * (v + 70)
    settled = (t > 0.1) & (t < 5.0 + 1e-9)
    np.testing.assert_allclose(i[settled], physical[settled], rtol=0, atol=2e-3)
    assert i[0] == 0.0  # the command starts at v0

    @jax.jit
    @jax.vmap
    def mean_current(rs):
        stim = jn.DataVoltageClamp(RAMP, dt=dt, rs=rs)
        return jn.simulate(_passive_soma(), 5.0, stimuli=[stim], v0=-80.0, record=("i_clamp",)).i_clamp[1:].mean()

    rss = jnp.asarray([1e-3, 1e-2])
    np.testing.assert_allclose(mean_current(rss), C_NF * 4.0 + G_LEAK_US * 0.5 * (-10 + 10), atol=0.3)
    grad = jax.grad(lambda r: mean_current(r[None])[0])(jnp.asarray(1e-2))
    assert np.isfinite(float(grad))


def test_data_voltage_clamp_per_neuron_commands_and_gradients():
    """One ramp per neuron; the steady voltage follows each ramp through the divider;
    the gradient w.r.t. a command sample equals a central difference."""
    t = np.arange(201) * 0.05  # 10 ms
    ramps = np.stack([-70 + 3.0 * t, -70 + 1.0 * t], axis=1)
    pop = jn.Compartment(**SOMA, channels=[jn.channels.Leak(g=1e-4, e=-70)], n=2)
    trace = jn.simulate(pop, 12.0, stimuli=[jn.DataVoltageClamp(ramps, dt=0.05, rs=1e-3)], v0=-70.0)
    G = 1e3
    # Following a ramp of slope s (mV/ms) through rs: C·dv/dt = g(E - v) + G(vc - v) is
    # solved by the divider of vc less a lag C·G·s/(g + G)²; backward Euler, with the
    # command read at the step's midpoint, gives the same with vc half a step earlier.
    for k, slope in enumerate((3.0, 1.0)):
        vc = -70 + slope * (8.0 - 0.0125)
        divider = (G_LEAK_US * -70 + G * vc) / (G_LEAK_US + G)
        lag = C_NF * G * slope / (G_LEAK_US + G) ** 2
        assert float(trace.at(8.0).v[k]) == pytest.approx(divider - lag, abs=1e-9)

    soma = _passive_soma()

    def final_v(samples):
        stim = jn.DataVoltageClamp(samples, dt=0.05, rs=0.5)
        return jn.simulate(soma, 10.0, stimuli=[stim]).v[-1]

    samples = jnp.asarray(-65 + 10 * np.sin(t))
    grad = np.asarray(jax.grad(final_v)(samples))
    eps = 1e-6
    bump = np.zeros(201)
    bump[195] = eps
    fd = (float(final_v(samples + bump)) - float(final_v(samples - bump))) / (2 * eps)
    assert grad[195] == pytest.approx(fd, rel=1e-6) and grad[195] > 0
    with pytest.raises(ValueError, match="at least 2 samples"):
        jn.DataVoltageClamp(np.zeros(1))
    with pytest.raises(ValueError, match="section end"):
        jn.DataVoltageClamp(np.zeros(3), target=0.0)


ADEX = dict(C=0.281, gL=0.030, EL=-70.6, V_T=-50.4, Delta_T=2.0, a=0.004, tau_w=144.0, b=0.0805,
            V_reset=-70.6, V_peak=0.0, spike_capacity=64)


def test_clamped_point_neurons_spike_only_where_the_clamp_lets_them():
    """A stiff clamp at -40 mV holds an AdEx neuron (above V_T) where the clamp's current
    balances the membrane's, without spikes; a weaker one (rs = 0.1 MΩ) lets it fire,
    as often at dt = 0.025 ms as at dt = 0.001 ms. The in-step spike estimate must take
    the clamp's current as falling with the voltage (it found 2 and 160 spikes here,
    taking the current at the step start), and the Izhikevich neuron likewise."""
    adex = jn.AdEx(**ADEX)

    def spikes(model, rs, dt, level=-40.0):
        record = ("v", "w") if isinstance(model, jn.AdEx) else ("v",)
        trace = jn.simulate(model, 6.0, dt=dt, stimuli=[jn.VoltageClamp(-70.0, 2.0, level, 10.0, rs=rs)],
                            record=record)
        s = np.asarray(trace.spikes)
        return s[np.isfinite(s)], trace

    held, trace = spikes(adex, 0.01, 0.025)
    assert held.size == 0
    # The held voltage: 100·(-40 - v) = gL(v - EL) - gL·ΔT·exp((v - V_T)/ΔT) + w (the
    # RK4 solution at dt = 2e-5 ms of the same equations gives -39.8946 at 6 ms).
    p, w = ADEX, float(trace.w[-1])
    lo, hi = -41.0, -39.0
    for _ in range(200):
        v = 0.5 * (lo + hi)
        excess = 100 * (-40 - v) - (p["gL"] * (v - p["EL"]) - p["gL"] * p["Delta_T"] * math.exp((v - p["V_T"]) / p["Delta_T"]) + w)
        lo, hi = (v, hi) if excess > 0 else (lo, v)
    assert float(trace.v[-1]) == pytest.approx(v, abs=1e-4)
    assert float(trace.v[-1]) == pytest.approx(-39.8946, abs=1e-3)

    coarse, _ = spikes(adex, 0.1, 0.025)
    fine, _ = spikes(adex, 0.1, 0.001)
    assert fine.size == 16
    assert abs(coarse.size - fine.size) <= 1
    assert coarse[0] == pytest.approx(fine[0], abs=0.02)

    izh = jn.Izhikevich(0.02, 0.2, -65.0, 8.0)
    assert spikes(izh, 0.01, 0.025, level=-20.0)[0].size == 0


def test_clamp_and_current_placement_is_checked_inside_networks_and_for_integer_x():
    """A section end written with an integer x, ("dend", 1), is refused as (dend, 1.0)
    is; in a Network, naming a cable population without a place on it is refused for
    a clamp and for currents in nA, as it is for the cable alone."""
    soma = jn.Cable(length=20, diam=20, nseg=1, channels=[jn.channels.Leak()], name="soma")
    dend = jn.Cable(length=200, diam=1, nseg=5, channels=[jn.channels.Leak()], name="dend")
    cell = jn.Cell([soma, dend], parents=[None, ("soma", 1.0)])
    for target in (("dend", 1), ("dend", 0), ("soma", 1)):
        with pytest.raises(ValueError, match="section end"):
            jn.simulate(cell, 1.0, stimuli=[jn.VoltageClamp(-20, 5, target=target)])
    jn.simulate(cell, 1.0, stimuli=[jn.VoltageClamp(-20, 5, target=("dend", 0.5))])  # inside: fine

    cable = jn.Cable(length=500, diam=2, nseg=11, channels=[jn.channels.Leak()])
    net = jn.Network(populations={"cab": cable, "pt": _passive_soma()})
    for stim in (jn.VoltageClamp(-20, 5, target="cab"), jn.VoltageClamp(-20, 5)):
        with pytest.raises(ValueError, match="population 'cab'.*each of the 11 segments"):
            jn.simulate(net, 1.0, stimuli=[stim])
    for stim in (jn.StepCurrent(0.1, target="cab"), jn.NoiseCurrent(0.0, 0.1, target="cab")):
        with pytest.raises(ValueError, match="population 'cab'.*inject it into each of the 11 segments"):
            jn.simulate(net, 1.0, stimuli=[stim])
    # A place on the cable, or another population: accepted.
    trace = jn.simulate(net, 1.0, stimuli=[jn.VoltageClamp(-20, 5, target=("cab", 0.5)),
                                           jn.StepCurrent(0.1, target="pt"), jn.StepCurrent(0.1, target=("cab", 0.2))])
    assert float(trace["cab"].v[-1, cable.index(0.5)]) > -30


def test_i_clamp_records_the_clamp_current_alone():
    """i_clamp is (vc - v)/rs of the clamps alone; i_inj sums every injected current;
    in a Network i_clamp is split by population; without a clamp the name is unknown."""
    soma = _passive_soma()
    clamp = jn.VoltageClamp(amp1=-50, dur1=math.inf, rs=0.5)
    step = jn.StepCurrent(0.2, 1.0, 3.0)
    trace = jn.simulate(soma, 5.0, stimuli=[clamp, step], record=("v", "i_inj", "i_clamp"))
    v, t = np.asarray(trace.v), np.asarray(trace.t)
    np.testing.assert_allclose(trace.i_clamp, (-50 - v) / 0.5, rtol=0, atol=1e-12)
    on = (t >= 1.0) & (t < 4.0)
    np.testing.assert_allclose(np.asarray(trace.i_inj) - np.asarray(trace.i_clamp), np.where(on, 0.2, 0.0),
                               rtol=0, atol=1e-12)

    net = jn.Network(populations={"a": soma, "b": jn.Compartment(**SOMA, channels=[jn.channels.Leak()], n=2)})
    trace = jn.simulate(net, 2.0, stimuli=[jn.VoltageClamp(-50, 5, rs=0.5, target=("b", [1]))],
                        record=("v", "i_clamp"))
    np.testing.assert_array_equal(trace["a"].i_clamp, 0.0)
    b = np.asarray(trace["b"].v)
    np.testing.assert_allclose(trace["b"].i_clamp[:, 1], (-50 - b[:, 1]) / 0.5, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(trace["b"].i_clamp[:, 0], 0.0)
    with pytest.raises(ValueError, match="unknown name"):
        jn.simulate(soma, 1.0, stimuli=[step], record=("i_clamp",))


@pytest.mark.parametrize("cut", [4.0, 6.0])
def test_a_continued_run_records_the_clamp_current_as_one_run(cut):
    """A run continued with init= at a command switch (6 ms) recorded the new level's
    current at its first sample (-264 nA, where one run and NEURON have +11): that
    sample ends the earlier run's last step, which read the old command."""
    cell = jn.Compartment(length=20, diam=20, channels=[jn.channels.HH()])
    clamp = jn.VoltageClamp(-65.0, 2.0, -10.0, 4.0, -65.0, 3.0, rs=0.2)
    one = jn.simulate(cell, 10.0, stimuli=[clamp], record=("v", "i_clamp"))
    first = jn.simulate(cell, cut, stimuli=[clamp], record=("v", "i_clamp"))
    rest = jn.simulate(cell, 10.0, stimuli=[clamp], record=("v", "i_clamp"), init=first)
    k = round(cut / 0.025)
    np.testing.assert_allclose(np.asarray(rest.v), np.asarray(one.v)[k:], rtol=0, atol=1e-9)
    np.testing.assert_allclose(np.asarray(rest.i_clamp), np.asarray(one.i_clamp)[k:], rtol=0, atol=1e-7)
    assert float(rest.i_clamp[0]) == pytest.approx(float(first.i_clamp[-1]), abs=1e-9)
