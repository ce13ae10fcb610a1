"""HH compartments: f-I curve with a type II onset, differentiable spike times."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxneuro as jn

AREA_CM2 = math.pi * 20 * 20 * 1e-8


def hh_cell(gnabar=0.12):
    return jn.Compartment(length=20, diam=20, channels=[jn.channels.HH(gnabar=gnabar)])


def density_to_nA(i_uA_per_cm2):
    return np.asarray(i_uA_per_cm2) * AREA_CM2 * 1e3


def test_fi_curve_has_an_abrupt_type_ii_onset():
    """HH at 6.3 °C jumps from silence to ~50 Hz repetitive firing (Hopf onset),
    whereas a LIF neuron's rate rises continuously from zero."""
    steps = np.linspace(5.8, 6.6, 9)  # µA/cm²
    rates = np.asarray(jn.fi_curve(hh_cell(), density_to_nA(steps), dur=300, window=(100, 300)))
    silent, firing = rates == 0, rates > 0
    assert silent[0] and firing[-1]
    onset = int(np.argmax(firing))
    assert np.all(silent[:onset]) and np.all(firing[onset:])
    assert rates[onset] >= 40.0  # no low-rate branch
    # LIF for contrast: rheobase 1.5 nA, and the rate just above it is low.
    lif_rates = np.asarray(jn.fi_curve(jn.LIF(t_ref=0.0), np.array([1.49, 1.52, 1.6]), dur=1000.0, dt=0.1))
    assert lif_rates[0] == 0 and 0 < lif_rates[1] < 25 and lif_rates[2] > lif_rates[1]


def test_fi_curve_of_a_cell_at_one_location():
    # Current into the soma of a soma + passive dendrite cell: the soma fires, the
    # dendrite's far end only follows passively (fewer crossings of 0 mV).
    soma = jn.Cable(20.0, 20.0, nseg=1, channels=[jn.channels.HH()], name="soma")
    dend = jn.Cable(300.0, 1.0, nseg=5, channels=[jn.channels.Leak(g=1e-4, e=-65.0)], name="dend")
    cell = jn.Cell([soma, dend], parents=[None, "soma"])
    rates = np.asarray(jn.fi_curve(cell, np.array([0.0, 0.5]), dur=100.0, target=("soma", 0.5)))
    assert rates.shape == (2, 6)
    assert rates[0, 0] == 0 and rates[1, 0] > 20.0 and rates[1, 5] < rates[1, 0]
    # Without a target the current (nA) would go into every segment in full, a total
    # that grows with nseg: refused on a cell, naming fi_curve's own argument (it said
    # "stimuli[0]: StepCurrent: target=None", a stimulus the user never gave).
    with pytest.raises(ValueError, match=r"^fi_curve: target=None: a step current with an amplitude in nA .* "
                                         r"each of the 6 segments"):
        jn.fi_curve(cell, np.array([0.5]), dur=100.0)


def first_spike_time(gnabar, amp=0.1, dt=0.025):
    trace = jn.simulate(hh_cell(gnabar), 20.0, dt=dt, stimuli=[jn.StepCurrent(amp, 1.0, 30.0)])
    return jn.spike_times(trace, 0.0, capacity=4)[0]


def test_first_spike_time_gradient_matches_finite_difference():
    g = 0.12
    t = float(first_spike_time(g))
    assert 1.0 < t < 20.0
    grad = float(jax.grad(first_spike_time)(g))
    h = 1e-5
    fd = (float(first_spike_time(g + h)) - float(first_spike_time(g - h))) / (2 * h)
    assert grad < 0  # more sodium, earlier spike
    assert grad == pytest.approx(fd, rel=0.01)
    # and w.r.t. the stimulus amplitude
    d_amp = float(jax.grad(lambda a: first_spike_time(g, amp=a))(0.1))
    fd_amp = (float(first_spike_time(g, 0.1 + 1e-6)) - float(first_spike_time(g, 0.1 - 1e-6))) / 2e-6
    assert d_amp == pytest.approx(fd_amp, rel=0.01)


def test_gradient_is_finite_when_the_neuron_just_fails_to_fire():
    """Below threshold there is no spike: the loss falls back to a voltage term, and
    the gradient is finite, not NaN."""

    def loss(amp):
        trace = jn.simulate(hh_cell(), 20.0, stimuli=[jn.StepCurrent(amp, 1.0, 0.5)])
        t = jn.spike_times(trace, 0.0, capacity=2)[0]
        return jnp.where(jnp.isfinite(t), t, 0.0) + jnp.max(trace.v)

    for amp in (0.02, 0.2):  # a brief pulse: sub- and suprathreshold
        assert np.isfinite(float(jax.grad(loss)(amp)))
