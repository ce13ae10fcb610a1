"""Input resistance, steady state and membrane time constant against closed forms."""

import math

import jax
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
