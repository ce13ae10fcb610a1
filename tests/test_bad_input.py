"""Bad input raises a ValueError that names the parameter and what was expected."""

import math

import jax.numpy as jnp
import pytest

import jaxneuro as jn


def soma(**kw):
    args = dict(length=100, diam=500, cm=1, channels=[jn.channels.Leak()])
    args.update(kw)
    return jn.Compartment(**args)


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        ({"cm": 0.0}, r"cm.*> 0"),
        ({"cm": -1.0}, r"cm.*> 0"),
        ({"length": 0.0}, r"length.*> 0"),
        ({"length": -5.0}, r"length.*> 0"),
        ({"diam": 0.0}, r"diam.*> 0"),
        ({"diam": -1.0}, r"diam.*> 0"),
        ({"cm": math.nan}, r"cm.*NaN|cm.*finite"),
    ],
)
def test_compartment_geometry_and_capacitance(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        soma(**kwargs)


@pytest.mark.parametrize("area", [0.0, -100.0])
def test_compartment_area(area):
    with pytest.raises(ValueError, match=r"area.*> 0"):
        jn.Compartment(area=area, channels=[jn.channels.Leak()])


def test_nan_in_channel_parameter():
    with pytest.raises(ValueError, match=r"Leak\.g.*NaN|Leak\.g.*finite"):
        jn.channels.Leak(g=math.nan)
    with pytest.raises(ValueError, match=r"HH\.gnabar"):
        jn.channels.HH(gnabar=jnp.array([0.12, jnp.nan]))


def test_negative_capacitance_of_point_neuron():
    with pytest.raises(ValueError, match=r"LIF\.C.*> 0"):
        jn.LIF(C=-1.0)


@pytest.mark.parametrize("dt", [0.0, -0.025])
def test_dt(dt):
    with pytest.raises(ValueError, match=r"dt must be > 0"):
        jn.simulate(soma(), 10.0, dt=dt)


@pytest.mark.parametrize("t1", [0.0, -1.0])
def test_t1_not_after_t0(t1):
    with pytest.raises(ValueError, match=r"t1 must be greater than t0"):
        jn.simulate(soma(), t1)


def test_unknown_record_name_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"record.*'i_na'.*i_pas"):
        jn.simulate(soma(), 1.0, record=("v", "i_na"))


def test_stimulus_with_negative_duration():
    with pytest.raises(ValueError, match=r"StepCurrent\.dur.*>= 0"):
        jn.StepCurrent(1.0, 10.0, -5.0)


def test_wrong_dimension():
    import saiunit as u

    with pytest.raises(ValueError, match=r"StepCurrent\.amp.*current.*"):
        jn.StepCurrent(1.0 * u.mV)


def test_a_root_marked_minus_one_is_explained():
    secs = [jn.Cable(length=10, diam=1, channels=[jn.channels.Leak()]) for _ in range(3)]
    with pytest.raises(ValueError, match=r"parents\[0\]: -1 is no section; a root's parent is None"):
        jn.Cell(secs, parents=[-1, 0, 0])


def test_a_location_outside_the_section_is_named_once():
    cable = jn.Cable(length=10, diam=1, nseg=3, channels=[jn.channels.Leak()])
    with pytest.raises(ValueError, match=r"^stimulus target=1.5: location: x must lie in \[0, 1\], got 1.5\b"):
        jn.simulate(cable, 1.0, stimuli=[jn.StepCurrent(0.1, target=1.5)])


def test_booleans_are_not_counts():
    # bool is an int to Python: n=True built a model of shape (True,) that failed later
    # with a bare TypeError, spike_capacity=True a one-slot buffer.
    with pytest.raises(ValueError, match=r"LIF\.n expects a positive integer, got True"):
        jn.LIF(n=True)
    with pytest.raises(ValueError, match=r"AdEx\.spike_capacity expects a positive integer, got True"):
        jn.AdEx(n=2, spike_capacity=True)
    with pytest.raises(ValueError, match=r"Compartment\.n expects a positive integer, got True"):
        soma(n=True)


def test_record_and_stimuli_of_the_wrong_kind_are_named():
    with pytest.raises(ValueError, match=r"record expects variable names .* got None"):
        jn.simulate(soma(), 1.0, record=None)
    with pytest.raises(ValueError, match=r"record expects variable names .* got \('v', 3\)"):
        jn.simulate(soma(), 1.0, record=("v", 3))
    with pytest.raises(ValueError, match=r"stimuli expects a stimulus or a list of them .* got int"):
        jn.simulate(soma(), 1.0, stimuli=5)
    with pytest.raises(ValueError, match=r"record=\{'v': \.\.\.\}: a place expects a location .* got True"):
        jn.simulate(soma(n=3), 1.0, record={"v": [True]})


def test_sweep_folders_of_the_wrong_kind_are_named(tmp_path):
    f = tmp_path / "a_file"
    f.write_text("")
    with pytest.raises(ValueError, match=r"sweep: out expects a folder .* got the file"):
        jn.sweep(lambda p: p["x"], {"x": jnp.ones(3)}, out=f)
    with pytest.raises(ValueError, match=r"sweep: load=False keeps the results only in out=, which is not given"):
        jn.sweep(lambda p: p["x"], {"x": jnp.ones(3)}, load=False)
    with pytest.raises(ValueError, match=r"load: .* holds no sweep \(no manifest.json\)"):
        jn.sweep.load(tmp_path / "nothing", lambda p: p["x"], {"x": jnp.ones(3)})


def test_times_too_coarse_for_the_step_are_refused():
    # In float32 from t ≈ 131 s (float64: far later) the time grid repeated values and a
    # stimulus onset moved by a step, silently.
    with pytest.raises(ValueError, match=r"t0/t1: times up to 1e\+16 ms are resolved only to .* too coarse for steps"):
        jn.simulate(soma(), 1e16 + 100.0, t0=1e16)


@pytest.mark.parametrize("cls", [jn.LIF, jn.AdEx, jn.Izhikevich])
def test_point_neuron_area_of_the_wrong_shape_is_named(cls):
    # AdEx and Izhikevich took it, then failed in simulate with a JAX broadcasting
    # error (or, with densities, blamed C or b, which area had scaled).
    import saiunit as u

    for kw in ({}, {"C": 1 * u.uF / u.cm**2}):
        with pytest.raises(ValueError, match=rf"{cls.__name__}\.area expects a scalar or an array of shape \(2,\)"):
            cls(n=2, area=[1e4, 2e4, 3e4], **kw)


def test_an_array_parameter_error_quotes_the_offending_entry():
    # It quoted the first entry, a valid one, for a negative entry further on.
    with pytest.raises(ValueError, match=r"'Leak\.g' must be >= 0 .* \(e\.g\. -0\.5 at index 1\)"):
        jn.channels.Leak(g=jnp.array([1e-4, -0.5, 1e-4]))
