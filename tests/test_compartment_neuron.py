"""Single compartments against NEURON run in the same test."""

import math

import numpy as np
import pytest

import jaxneuro as jn
from conftest import crossings, run_neuron


def _soma(h, name, L, diam, mech):
    sec = h.Section(name=name)
    sec.L, sec.diam, sec.cm = L, diam, 1.0
    sec.insert(mech)
    return sec


def test_seed001_whole_trace_matches_neuron(neuron_h):
    h = neuron_h
    soma = _soma(h, "seed001_soma_test", 100, 500, "pas")
    soma(0.5).pas.g = 1e-4
    stim = h.IClamp(soma(0.5))
    stim.amp, stim.delay, stim.dur = 1, 100, 100
    t_n, (v_n, ipas_n, icap_n) = run_neuron(
        h, 250, v0=-65, refs=(soma(0.5)._ref_v, soma(0.5)._ref_i_pas, soma(0.5)._ref_i_cap)
    )

    model = jn.Compartment(length=100, diam=500, cm=1, channels=[jn.channels.Leak(g=1e-4, e=-70)])
    trace = jn.simulate(model, 250, stimuli=[jn.StepCurrent(amp=1, delay=100, dur=100)], v0=-65,
                        record=("v", "i_pas", "i_cap"))
    assert trace.v.shape == t_n.shape == (10001,)
    np.testing.assert_allclose(trace.t, t_n, atol=1e-9)
    assert np.max(np.abs(np.asarray(trace.v) - v_n)) < 0.05  # the bound; in fact ~1e-13
    assert np.max(np.abs(np.asarray(trace.v) - v_n)) < 1e-9

    # Tutorial's plateau (~-63.65 mV) and the analytic one, e + I/(g·area).
    analytic = -70 + 1.0 / (1e-4 * math.pi * 100 * 500 * 1e-8) * 1e-6
    plateau = float(trace.at(199.9).v)
    assert plateau == pytest.approx(-63.65, abs=0.02)
    assert plateau == pytest.approx(analytic, abs=1e-3)

    # NEURON records i_pas of the previous voltage and i_cap as cm·Δv/Δt over the last
    # step; ours are instantaneous, so they agree to within one step's change.
    assert np.max(np.abs(np.asarray(trace.i_pas) - ipas_n)) < 2e-6
    # Exactly: NEURON's sample k + 1 is ours at k (the Compartment docstring says so).
    assert np.max(np.abs(np.asarray(trace.i_pas)[:-1] - ipas_n[1:])) < 1e-15
    away = (np.abs(t_n - 100) > 0.1) & (np.abs(t_n - 200) > 0.1) & (t_n > 0.1)
    assert np.max(np.abs(np.asarray(trace.i_cap)[away] - icap_n[away])) < 2e-6
    # At the plateau all current flows through the membrane resistance.
    assert float(trace.at(199.9).i_cap) == pytest.approx(0.0, abs=1e-7)
    assert float(trace.at(199.9).i_pas) == pytest.approx(1e-4 * (analytic + 70), rel=1e-3)


def _neuron_hh_soma(h, name, amp, **settings):
    """A 20 × 20 µm HH soma in NEURON with an IClamp of ``amp`` nA from 5 to 45 ms, run
    for 50 ms with NEURON's globals ``settings`` (e.g. ``celsius``) set for the run only:
    ``(t, v)``."""
    old = {k: getattr(h, k) for k in settings}
    for k, value in settings.items():
        setattr(h, k, value)
    try:
        sec = _soma(h, name, 20, 20, "hh")
        stim = h.IClamp(sec(0.5))
        stim.amp, stim.delay, stim.dur = amp, 5, 40
        t_n, (v_n,) = run_neuron(h, 50, refs=(sec(0.5)._ref_v,))
    finally:
        for k, value in old.items():
            setattr(h, k, value)
    return t_n, v_n


@pytest.mark.parametrize("update", ["backward_euler", "crank_nicolson"])
def test_hh_spike_train_matches_neuron(neuron_h, update):
    t_n, v_n = _neuron_hh_soma(neuron_h, f"hh_{update}", 0.1, secondorder=2 if update == "crank_nicolson" else 0)
    model = jn.Compartment(length=20, diam=20, channels=[jn.channels.HH()])
    trace = jn.simulate(model, 50, stimuli=[jn.StepCurrent(0.1, 5, 40)],
                        solver=jn.StaggeredEuler(voltage_update=update))
    spikes_n = crossings(t_n, v_n)
    spikes_j = np.asarray(jn.spike_times(trace, 0.0, capacity=len(spikes_n)))
    assert len(spikes_n) == 3
    np.testing.assert_allclose(spikes_j, spikes_n, atol=1e-9)
    assert np.max(np.abs(np.asarray(trace.v) - v_n)) < 1e-8  # 3e-10 / 2e-10 mV measured


@pytest.mark.parametrize("celsius", [16.0, 30.0])
def test_hh_at_other_temperatures_matches_neuron(neuron_h, celsius):
    # hh.mod's q10 = 3 from 6.3 °C, with exact rates (usetable_hh = 0): the same spike
    # train (at 30 °C the rates are 10x faster and the spikes brief).
    _, v_n = _neuron_hh_soma(neuron_h, f"hh_celsius_{celsius:g}", 0.3, celsius=celsius)
    model = jn.Compartment(length=20, diam=20, channels=[jn.channels.HH()], temperature=celsius)
    trace = jn.simulate(model, 50, stimuli=[jn.StepCurrent(0.3, 5, 40)])
    assert np.ptp(v_n) > 50.0  # it fires
    assert np.max(np.abs(np.asarray(trace.v) - v_n)) < 1e-7


def test_recorded_gates_are_neurons(neuron_h):
    """Recorded gates are NEURON's samples: m_hh at sample k already advanced with v at k
    (the README says so; Jaxley's are one sample later)."""
    h = neuron_h
    sec = _soma(h, "gates_soma", 20, 20, "hh")
    stim = h.IClamp(sec(0.5))
    stim.amp, stim.delay, stim.dur = 0.1, 1, 10
    _, (v_n, m_n, n_n) = run_neuron(h, 10, refs=(sec(0.5)._ref_v, sec(0.5)._ref_m_hh, sec(0.5)._ref_n_hh))
    model = jn.Compartment(length=20, diam=20, channels=[jn.channels.HH()])
    trace = jn.simulate(model, 10, stimuli=[jn.StepCurrent(0.1, 1, 10)], record=("v", "m_hh", "n_hh"))
    assert np.ptp(m_n) > 0.5  # a spike
    np.testing.assert_allclose(trace.m_hh, m_n, rtol=0, atol=1e-10)
    np.testing.assert_allclose(trace.n_hh, n_n, rtol=0, atol=1e-10)


def test_recorded_currents_are_neurons_one_sample_later(neuron_h):
    """README: recorded currents are evaluated at each sample time from the state there;
    NEURON records a step's currents at the step's end. So jaxneuro's ``i_inj``,
    ``ina_hh`` and ``ik_hh`` at sample k are NEURON's ``IClamp.i``, ``ina`` and ``ik``
    at sample k + 1, and the currents balance the membrane's."""
    h = neuron_h
    sec = _soma(h, "recorded_currents_soma", 20, 20, "hh")
    stim = h.IClamp(sec(0.5))
    stim.amp, stim.delay, stim.dur = 0.2, 2.0, 5.0
    _, (v_n, i_n, ina_n, ik_n) = run_neuron(
        h, 15, refs=(sec(0.5)._ref_v, stim._ref_i, sec(0.5)._ref_ina, sec(0.5)._ref_ik))
    model = jn.Compartment(length=20, diam=20, channels=[jn.channels.HH()])
    tr = jn.simulate(model, 15, stimuli=[jn.StepCurrent(0.2, 2.0, 5.0)],
                     record=("v", "i_inj", "ina_hh", "ik_hh", "i_hh", "i_cap"))
    got = {k: np.asarray(getattr(tr, k)) for k in ("v", "i_inj", "ina_hh", "ik_hh", "i_hh", "i_cap")}
    assert np.max(np.abs(got["v"] - v_n)) < 1e-9
    assert np.max(np.abs(got["i_inj"][:-1] - i_n[1:])) < 1e-12
    assert np.max(np.abs(got["i_inj"] - i_n)) == pytest.approx(0.2)  # not at the same sample
    for ours, theirs in (("ina_hh", ina_n), ("ik_hh", ik_n)):
        assert np.max(np.abs(got[ours][:-1] - theirs[1:])) < 1e-9
    assert np.max(np.abs(got["ina_hh"])) > 0.1  # a spike is in it
    area_cm2 = math.pi * 20 * 20 * 1e-8
    balance = (got["i_cap"] + got["i_hh"]) * area_cm2 * 1e6 - got["i_inj"]  # nA
    assert np.max(np.abs(balance)) < 1e-10
