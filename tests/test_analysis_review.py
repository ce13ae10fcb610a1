"""Step measurements with per-compartment step timing or a step between samples, and
spike times of a trace at one time."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxneuro as jn

# jn.LIF's defaults: R = 1/gL = 10 MΩ, tau = C/gL = 10 ms.
R_LIF, TAU_LIF = 10.0, 10.0


@pytest.fixture(scope="module")
def lif3():
    return jn.LIF(n=3)


@pytest.mark.parametrize("timing", [
    {"delay": jnp.array([10.0, 20.0, 30.0]), "dur": 100.0},
    {"delay": 10.0, "dur": jnp.array([100.0, 105.0, 110.0])},
])
def test_a_step_timed_per_neuron_is_measured_per_neuron(lif3, timing):
    """One delay or dur per neuron (simulate takes it): the same numbers eagerly, with
    the checks run per neuron, as under jit; a step of >= 10 tau settles to within
    e^-10 of R = 10 MΩ, and tau reads 10 ms."""
    step = jn.StepCurrent(amp=0.05, **timing)
    tr = jn.simulate(lif3, 140.0, stimuli=[step])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = np.asarray(jn.input_resistance(tr, step))
        r_end = np.asarray(jn.input_resistance(tr, step, method="end"))
        tau = np.asarray(jn.membrane_time_constant(tr, step))
    np.testing.assert_allclose(r, R_LIF, rtol=1e-4)
    np.testing.assert_allclose(r_end, R_LIF, rtol=1e-4)
    np.testing.assert_allclose(tau, TAU_LIF, rtol=1e-3)
    np.testing.assert_allclose(jax.jit(lambda tr: jn.input_resistance(tr, step))(tr), r, rtol=1e-12)
    np.testing.assert_allclose(jax.jit(lambda tr: jn.membrane_time_constant(tr, step))(tr), tau, rtol=1e-12)


def test_the_warnings_judge_each_neuron_at_its_own_step(lif3):
    """Neuron 2's step (10 ms = one tau) ends unsettled, neuron 1's starts at 5 ms while
    it still relaxes from v0 = -65 mV, and neuron 0 fires: each warned of, for that
    neuron alone."""
    step = jn.StepCurrent(amp=jnp.array([5.0, 0.05, 0.05]), delay=jnp.array([100.0, 5.0, 100.0]),
                          dur=jnp.array([100.0, 100.0, 10.0]))
    tr = jn.simulate(lif3, 210.0, stimuli=[step], v0=-65.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        jn.input_resistance(tr, step)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 2, messages  # firing silences the (meaningless) settling check
    assert "the voltage was still changing at the step's onset" in messages[0] and "at 5 ms" in messages[0]
    assert "the step makes 1 compartment(s) fire" in messages[1]
    assert "between 100 and 200 ms in compartment 0" in messages[1]
    quiet = jn.StepCurrent(amp=0.05, delay=jnp.array([100.0, 100.0, 100.0]), dur=jnp.array([100.0, 100.0, 10.0]))
    tr = jn.simulate(lif3, 210.0, stimuli=[quiet])
    with pytest.warns(RuntimeWarning, match=r"had not settled by the step's end in 1 compartment\(s\)"):
        jn.input_resistance(tr, quiet)


def test_a_step_timing_not_matching_the_neurons_is_refused(lif3):
    tr = jn.simulate(lif3, 50.0)
    step = jn.StepCurrent(amp=0.05, delay=jnp.array([10.0, 20.0]), dur=20.0)
    with pytest.raises(ValueError, match=r"input_resistance: stimulus.delay has shape \(2,\); for this trace "
                                         r"\(compartments of shape \(3,\)\) give one time \(ms\)"):
        jn.input_resistance(tr, step)


def passive_soma():
    return jn.Compartment(length=100, diam=500, cm=1, channels=[jn.channels.Leak(g=1e-4, e=-70)])


@pytest.mark.parametrize("method", ["deflection", "end"])
def test_a_step_between_samples_is_refused_or_nan(method):
    """Sampled every 1 ms, a 0.5 ms step at 100.2 ms has no sample: a ValueError naming
    the step, as membrane_time_constant gives; under jit NaN (was -inf or 0 MΩ)."""
    step = jn.StepCurrent(amp=1.0, delay=100.2, dur=0.5)
    tr = jn.simulate(passive_soma(), 110.0, stimuli=[step], v0=-70.0, save_every=1.0)
    with pytest.raises(ValueError, match=r"input_resistance: the step \(100.2 ms for 0.5 ms\) spans 0 sample\(s\) "
                                         r"of the trace; the response needs at least 1: record more often"):
        jn.input_resistance(tr, step, method=method)
    assert np.isnan(float(jax.jit(lambda tr: jn.input_resistance(tr, step, method=method))(tr)))


def test_a_per_neuron_step_between_samples_names_the_neuron(lif3):
    """Only neuron 2's step falls between samples: the error names it; under jit its
    value alone is NaN; membrane_time_constant, which needs 2 samples, likewise."""
    step = jn.StepCurrent(amp=0.05, delay=jnp.array([10.0, 10.0, 10.2]), dur=jnp.array([100.0, 100.0, 0.5]))
    tr = jn.simulate(lif3, 120.0, stimuli=[step], save_every=1.0)
    with pytest.raises(ValueError, match=r"the step \(10.2 ms for 0.5 ms in compartment 2\) spans 0 sample\(s\)"):
        jn.input_resistance(tr, step)
    with pytest.raises(ValueError, match=r"membrane_time_constant: the step \(10.2 ms for 0.5 ms in compartment 2\) "
                                         r"spans 0 sample\(s\) of the trace; the charging curve needs at least 2"):
        jn.membrane_time_constant(tr, step)
    r = np.asarray(jax.jit(lambda tr: jn.input_resistance(tr, step))(tr))
    np.testing.assert_allclose(r[:2], R_LIF, rtol=1e-4)
    assert np.isnan(r[2])
    tau = np.asarray(jax.jit(lambda tr: jn.membrane_time_constant(tr, step))(tr))
    assert np.all(np.isfinite(tau[:2])) and np.isnan(tau[2])


def test_spike_times_of_a_trace_at_one_time_needs_two_samples():
    hh = jn.Compartment(length=20, diam=20, channels=[jn.channels.HH()])
    tr = jn.simulate(hh, 5.0)
    for cut in (tr.at(2.0), tr.window(2.0, 2.0)):
        with pytest.raises(ValueError, match=r"spike_times: the trace has 1 sample\(s\).*; threshold crossings "
                                             r"need at least 2"):
            jn.spike_times(cut)
    with pytest.raises(ValueError, match=r"a trace at one time, from trace.at\(t\), has no time axis"):
        jn.spike_times(tr.at(2.0))
