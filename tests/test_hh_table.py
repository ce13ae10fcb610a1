"""HH with NEURON's rate table (``use_table=True``) against NEURON's default runs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxneuro as jn
from conftest import run_neuron


def neuron_hh_trace(h, celsius, use_table, t1=60.0):
    h.usetable_hh = 1 if use_table else 0
    h.celsius = celsius
    try:
        soma = h.Section(name="soma_table")
        soma.L = soma.diam = 20.0
        soma.insert("hh")
        stim = h.IClamp(soma(0.5))
        stim.delay, stim.dur, stim.amp = 5.0, 1e9, 0.1
        t, (v,) = run_neuron(h, t1, refs=[soma(0.5)._ref_v])
    finally:
        h.usetable_hh = 0
        h.celsius = 6.3
    return t, v


def jaxneuro_hh_trace(celsius, use_table, t1=60.0):
    cell = jn.Compartment(length=20.0, diam=20.0, temperature=celsius,
                          channels=[jn.channels.HH(use_table=use_table)])
    tr = jn.simulate(cell, t1, dt=0.025, stimuli=[jn.StepCurrent(0.1, 5.0, 1e9)], save_every=0.025)
    return np.asarray(tr.t), np.asarray(tr.v)


@pytest.mark.parametrize("celsius", [6.3, 16.3])
def test_table_matches_neuron_with_usetable(neuron_h, celsius):
    t_n, v_n = neuron_hh_trace(neuron_h, celsius, use_table=True)
    t_j, v_j = jaxneuro_hh_trace(celsius, use_table=True)
    np.testing.assert_allclose(t_j, t_n[: len(t_j)], atol=1e-9)
    assert np.max(v_n) > 20.0  # it spikes
    np.testing.assert_allclose(v_j, v_n[: len(v_j)], atol=1e-6)


def test_table_differs_from_exact_rates_as_in_neuron(neuron_h):
    """The table is an approximation: jaxneuro's table-vs-exact difference is NEURON's."""
    _, v_table = jaxneuro_hh_trace(6.3, use_table=True)
    _, v_exact = jaxneuro_hh_trace(6.3, use_table=False)
    _, n_table = neuron_hh_trace(neuron_h, 6.3, use_table=True)
    _, n_exact = neuron_hh_trace(neuron_h, 6.3, use_table=False)
    ours = v_table - v_exact
    theirs = n_table[: len(ours)] - n_exact[: len(ours)]
    assert np.max(np.abs(ours)) == pytest.approx(19.2, abs=0.1)  # README: 19 mV after 55 ms of firing
    np.testing.assert_allclose(ours, theirs, atol=1e-6)


def test_table_difference_in_one_spike_and_after_40_ms_of_firing():
    """README's sizes of the table-vs-exact difference: one spike (a 0.3 nA, 1 ms
    pulse) differs by 0.14 mV, its peak by under 0.006 mV, nearer threshold by more; 40 ms of repetitive
    firing (0.1 nA from 5 to 45 ms) by 13 mV at the upswings."""
    def runs(stim, t1):
        return [np.asarray(jn.simulate(jn.Compartment(length=20.0, diam=20.0, channels=[jn.channels.HH(use_table=u)]),
                                       t1, stimuli=[stim]).v) for u in (False, True)]

    exact, table = runs(jn.StepCurrent(0.3, 1.0, 1.0), 20.0)
    assert exact.max() > 40.0  # one spike
    assert np.max(np.abs(table - exact)) == pytest.approx(0.1416, abs=5e-4)
    assert abs(table.max() - exact.max()) < 0.006
    # Nearer threshold the spike's timing is more sensitive to the rates: 0.7 mV at
    # 0.15 nA, 3.8 mV at 0.1 nA (still one spike each; README).
    for amp, diff in ((0.15, 0.7056), (0.1, 3.8206)):
        exact, table = runs(jn.StepCurrent(amp, 1.0, 1.0), 20.0)
        assert min(exact.max(), table.max()) > 30.0 and np.sum((exact[:-1] < 0.0) & (exact[1:] >= 0.0)) == 1
        assert np.max(np.abs(table - exact)) == pytest.approx(diff, abs=5e-4)
    exact, table = runs(jn.StepCurrent(0.1, 5.0, 40.0), 50.0)
    assert np.max(np.abs(table - exact)) == pytest.approx(12.98, abs=0.01)


def test_table_lookup_is_linear_between_grid_points_and_clamped_outside():
    hh_t, hh_x = jn.channels.HH(use_table=True), jn.channels.HH()
    grid = jnp.array([-100.0, -65.0, -40.0, 0.0, 100.0])
    for g, (inf, tau) in hh_t.gate_inf_tau(grid, 6.3).items():
        ref_inf, ref_tau = hh_x.gate_inf_tau(grid, 6.3)[g]
        np.testing.assert_allclose(inf, ref_inf, rtol=1e-12)
        np.testing.assert_allclose(tau, ref_tau, rtol=1e-12)
    mid = hh_t.gate_inf_tau(jnp.array([-64.5]), 6.3)["m"][0]
    ends = hh_x.gate_inf_tau(jnp.array([-65.0, -64.0]), 6.3)["m"][0]
    np.testing.assert_allclose(mid, 0.5 * (ends[0] + ends[1]), rtol=1e-12)
    outside = hh_t.gate_inf_tau(jnp.array([-150.0, 150.0]), 6.3)["n"][0]
    np.testing.assert_allclose(outside, hh_x.gate_inf_tau(jnp.array([-100.0, 100.0]), 6.3)["n"][0], rtol=1e-12)
    # Differentiable in v (the slope of the segment) and finite everywhere.
    d = jax.grad(lambda v: hh_t.gate_inf_tau(v, 6.3)["m"][0])(-64.5)
    np.testing.assert_allclose(d, ends[1] - ends[0], rtol=1e-9)


def test_use_table_must_be_a_bool():
    with pytest.raises(ValueError, match="HH.use_table expects True or False"):
        jn.channels.HH(use_table="yes")
