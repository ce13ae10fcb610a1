"""Trace and State as Python objects: membership, iteration, indexing, printing, host copies."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxneuro as jn


@pytest.fixture(scope="module")
def trace():
    return jn.simulate(jn.LIF(), 100.0, stimuli=[jn.StepCurrent(2.0, 0.0, 100.0)], record=("v", "i_inj"))


@pytest.fixture(scope="module")
def net_trace():
    return jn.simulate(jn.Network({"a": jn.LIF(), "b": jn.LIF(n=2)}, []), 1.0)


def test_in_asks_for_a_recorded_name_or_a_part(trace, net_trace):
    """`"v" in trace` used to fall back to trace[0] and raise a KeyError about it."""
    assert "v" in trace and "i_inj" in trace
    assert "w" not in trace and "t" not in trace and 0 not in trace and "a" not in trace
    assert "a" in net_trace and "b" in net_trace
    assert "c" not in net_trace and "v" not in net_trace and 0 not in net_trace


def test_iteration_is_a_clear_type_error(trace, net_trace):
    """list(trace) used to raise KeyError 'trace[0]: ...'."""
    with pytest.raises(TypeError, match=r"a Trace is not iterable: .*trace\.names, \('v', 'i_inj'\).*trace\.t"):
        list(trace)
    with pytest.raises(TypeError, match=r"a Trace is not iterable: .*trace\[population\].*\('a', 'b'\)"):
        for _ in net_trace:
            pass


def test_network_trace_unit_points_to_its_populations(net_trace):
    """It used to say "'v' is not recorded; this trace has ()"."""
    with pytest.raises(ValueError, match=r"unit: .*Network.*trace\[population\]\.unit\('v'\).*\('a', 'b'\)"):
        net_trace.unit("v")
    with pytest.raises(ValueError, match=r"column_labels: .*trace\[population\]"):
        net_trace.column_labels("v")
    assert net_trace["a"].unit("v") == "mV"
    with pytest.raises(ValueError, match=r"unit: 'w' is not recorded; this trace has \('v', 'i_inj'\)"):
        jn.simulate(jn.LIF(), 1.0, record=("v", "i_inj")).unit("w")


def test_slicing_a_trace_is_a_clear_error(trace, net_trace):
    """trace[1:3] used to raise a raw "unhashable type: 'slice'"."""
    with pytest.raises(TypeError, match=r"trace\[1:3\]: a Trace is indexed by name.*"
                                        r"trace\.window\(start, stop\).*trace\.v\[1:3\]"):
        trace[1:3]
    with pytest.raises(TypeError, match=r"trace\[:5\]: .*\('a', 'b'\).*trace\['a'\]\.v\[:5\]"):
        net_trace[:5]
    with pytest.raises(TypeError, match=r"trace\[\[1, 2\]\]: a Trace is indexed by name"):
        trace[[1, 2]]
    with pytest.raises(KeyError, match=r"trace\[0\]: .*trace\.v\[0\]"):
        trace[0]
    assert net_trace["b"].v.shape[-1] == 2  # names still index a Network's trace


def test_isi_of_a_host_copy_is_silent_and_unchanged(trace):
    """jax.device_get(trace) holds NumPy arrays: isi warned 'invalid value encountered in
    subtract' (inf - inf between the padding)."""
    host = jax.device_get(trace)
    assert isinstance(host.spikes, np.ndarray)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = jn.isi(host)
        count, rate = jn.spike_count(host), jn.firing_rate(host, 10.0, 90.0)
    np.testing.assert_array_equal(out, jn.isi(trace))
    assert np.sum(np.isfinite(out)) == int(trace.spike_count) - 1 > 2
    assert float(count) == float(jn.spike_count(trace)) and float(rate) == float(jn.firing_rate(trace, 10.0, 90.0))


def test_state_prints_its_values():
    """A State on its own (jn.steady_state's result) printed v=f32[], gates={'m_hh': f32[], ...}."""
    ss = jn.steady_state(jn.Compartment(length=20, diam=20, channels=[jn.channels.HH()]))
    text = repr(ss)
    assert f"v={float(ss.v)}" in text and f"'m_hh': {float(ss.gates['m_hh'])}" in text and "[]" not in text
    # A host copy (NumPy arrays) prints its numbers as the device one does.
    assert repr(jax.device_get(ss)) == text
    # Large arrays keep their summary.
    state = jn.State(v=jnp.array([-65.0, -70.5]), gates={"m": jnp.array(0.25)}, events={"big": jnp.zeros(100)})
    assert repr(state) == "State(v=[-65.0, -70.5], gates={'m': 0.25}, events={'big': f64[100]})"


def test_at_and_window_compile_one_program_each_at_a_new_size():
    # Eagerly, every jnp operation of Trace.at and window compiled a program of its own
    # at each new size (24 and 23 here, ~1 s and ~0.7 s); now their cores are one
    # program each (plus at's conversion of t), with the same results.
    from test_simulate import _CountCompiles

    drive = [jn.StepCurrent(2.0, 1.0, 1e9)]
    jn.simulate(jn.LIF(n=2, spike_capacity=8), 20.0, stimuli=drive, save_every=0.5).window(5.0, 15.0).at(7.3)
    tr = jn.simulate(jn.LIF(n=11, spike_capacity=8), 20.0, stimuli=drive, save_every=0.5)
    with _CountCompiles() as at:
        a = tr.at(jnp.asarray([2.3, 7.7]))
    with _CountCompiles() as window:
        w = tr.window(5.0, 15.0)
    assert at.count <= 2 and window.count <= 2, (at.messages, window.messages)
    v, t = np.asarray(tr.v), np.asarray(tr.t)
    np.testing.assert_allclose(np.asarray(a.v), np.stack([np.interp([2.3, 7.7], t, v[:, i]) for i in range(11)], axis=1),
                               rtol=1e-12)
    keep = (t >= 5.0) & (t <= 15.0)
    np.testing.assert_array_equal(np.asarray(w.t), t[keep])
    np.testing.assert_array_equal(np.asarray(w.v), v[keep])
    spikes = np.asarray(tr.spikes)
    inside = (spikes >= 5.0) & (spikes <= 15.0)
    np.testing.assert_array_equal(np.asarray(w.spike_count), inside.sum(axis=1))
    np.testing.assert_array_equal(np.asarray(a.spike_count), (spikes <= 7.7).sum(axis=1))
    assert inside.sum() > 0
