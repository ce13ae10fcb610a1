"""Units: plain numbers in base units, saiunit quantities converted, wrong dimensions named."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import saiunit as u

import jaxneuro as jn
from jaxneuro import units


def test_seed000_absolute_quantities_convert_to_base_units():
    # pF -> nF, nS -> µS, pA -> nA, mV, ms.
    assert float(units.to_base(250 * u.pF, "C", units.nF)) == pytest.approx(0.25)
    assert float(units.to_base(20 * u.nS, "gL", units.uS)) == pytest.approx(0.02)
    assert float(units.to_base(-20 * u.pA, "amp", units.nA)) == pytest.approx(-0.02)
    assert float(units.to_base(-70 * u.mV, "EL", units.mV)) == pytest.approx(-70.0)
    assert float(units.to_base(0.5 * u.second, "t", units.ms)) == pytest.approx(500.0)
    neuron = jn.LIF(C=250 * u.pF, gL=20 * u.nS, EL=-70 * u.mV)
    assert float(neuron.C) == pytest.approx(0.25) and float(neuron.gL) == pytest.approx(0.02)
    assert float(neuron.tau_m) == pytest.approx(12.5)  # ms
    step = jn.StepCurrent(-20 * u.pA, 50 * u.ms, 500 * u.ms)
    assert (float(step.amp), float(step.delay), float(step.dur)) == pytest.approx((-0.02, 50.0, 500.0))


def test_seed002_density_quantities_convert_to_base_units():
    assert float(units.to_base(1 * u.uF / u.cm**2, "cm", units.uF_per_cm2)) == pytest.approx(1.0)
    assert float(units.to_base(0.1 * u.mS / u.cm**2, "g", units.S_per_cm2)) == pytest.approx(1e-4)
    assert float(units.to_base(2 * u.uA / u.cm**2, "i", units.mA_per_cm2)) == pytest.approx(2e-3)
    leak = jn.channels.Leak(g=0.1 * u.mS / u.cm**2, e=-70 * u.mV)
    assert float(leak.g) == pytest.approx(1e-4)
    comp = jn.Compartment(length=100 * u.um, diam=0.5 * u.mm, cm=1 * u.uF / u.cm**2, channels=[leak])
    assert float(comp.diam) == pytest.approx(500.0)
    assert float(comp.surface_area) == pytest.approx(math.pi * 100 * 500)
    # Seed 002's LIF written with densities gives the closed-form ISI.
    lif = jn.LIF(C=1 * u.uF / u.cm**2, gL=0.1 * u.mS / u.cm**2, EL=-70 * u.mV,
                 V_th=-55 * u.mV, V_reset=-75 * u.mV, t_ref=2 * u.ms)
    trace = jn.simulate(lif, 100.0, dt=0.1, stimuli=[jn.StepCurrent(2 * u.uA / u.cm**2)])
    isi = np.diff(np.asarray(trace.spikes)[:4])
    expected = 1 / 0.1 * math.log((-50 + 75) / (-50 + 55)) + 2
    np.testing.assert_allclose(isi, expected, rtol=1e-9)


def test_plain_numbers_are_read_in_the_documented_unit():
    assert float(jn.channels.HH(gnabar=0.2).gnabar) == 0.2
    assert float(jn.Compartment(area=1000.0).area) == 1000.0


@pytest.mark.parametrize(
    "make, name, expected, given",
    [
        (lambda: jn.channels.Leak(g=1 * u.mV), "Leak.g", "conductance density", "voltage"),
        (lambda: jn.Compartment(length=1 * u.ms, diam=10), "Compartment.length", "length", "time"),
        (lambda: jn.Compartment(area=100, cm=1 * u.pF), "Compartment.cm", "specific capacitance", "capacitance"),
        (lambda: jn.LIF(C=1 * u.nS), "LIF.C", "capacitance", "conductance"),
        (lambda: jn.StepCurrent(amp=1 * u.mV), "StepCurrent.amp", "current", "voltage"),
        (lambda: jn.StepCurrent(amp=1.0, delay=3 * u.mV), "StepCurrent.delay", "time", "voltage"),
    ],
)
def test_wrong_dimension_names_parameter_expected_and_given(make, name, expected, given):
    with pytest.raises(ValueError) as err:
        make()
    msg = str(err.value)
    assert name in msg and expected in msg and given in msg


def test_temperature_accepts_kelvin_quantity():
    comp = jn.Compartment(area=100, temperature=(273.15 + 16.3) * u.kelvin)
    assert float(comp.temperature) == pytest.approx(16.3)
    with pytest.raises(ValueError, match="temperature"):
        jn.Compartment(area=100, temperature=3 * u.mV)


def test_numpy_float64_parameters_follow_float32_quietly_without_x64():
    """A NumPy float64 (e.g. a value from an np.linspace grid) becomes float32 when JAX
    runs in float32, the accelerators' default, without a truncation warning; under x64
    it stays float64, and an explicit float32 stays float32."""
    import warnings

    import jax
    import jax.numpy as jnp
    import numpy as np

    with jax.enable_x64(False), warnings.catch_warnings():
        warnings.simplefilter("error")
        hh = jn.channels.HH(gnabar=np.float64(0.1), gl=np.linspace(1e-4, 3e-4, 3))
        assert hh.gnabar.dtype == jnp.float32 and hh.gl.dtype == jnp.float32
        np.testing.assert_allclose(hh.gl, [1e-4, 2e-4, 3e-4], rtol=1e-6)
    assert jn.channels.HH(gnabar=np.float64(0.1)).gnabar.dtype == jnp.float64
    assert jn.channels.HH(gnabar=np.float32(0.1)).gnabar.dtype == jnp.float32


def test_times_with_units_keep_the_grid_and_densities_do_not_mix_with_absolutes():
    soma = jn.Compartment(length=20, diam=20, channels=[jn.channels.HH()])
    # Static times from quantities stay float64 (not JAX's default precision): the
    # grid ends at t1, and save_every is a whole multiple of dt.
    assert jn.simulate(soma, 50, dt=0.025 * u.ms).t.shape == jn.simulate(soma, 50, dt=0.025).t.shape == (2001,)
    tr = jn.simulate(soma, 10, dt=25 * u.us, save_every=1 * u.ms)
    assert tr.t.shape == (11,) and float(tr.t[-1]) == 10.0
    with pytest.raises(ValueError, match=r"\['C'\] are given per area .* \['gL'\] as absolute"):
        jn.LIF(C=1 * u.uF / u.cm**2, gL=20 * u.nS)
    with pytest.raises(ValueError, match=r"\['gL'\] are given per area .* \['C'\]"):
        jn.LIF(gL=0.1 * u.mS / u.cm**2)  # the default C is absolute (1 nF)
    both = jn.LIF(C=1 * u.uF / u.cm**2, gL=0.1 * u.mS / u.cm**2)
    assert float(both.tau_m) == pytest.approx(10.0)
    scaled = jn.LIF(C=1 * u.uF / u.cm**2, gL=20 * u.nS, area=2e4)  # an area: densities scale to it
    assert float(scaled.C) == pytest.approx(0.2) and float(scaled.gL) == pytest.approx(0.02)
    with pytest.raises(ValueError, match=r"density=True .* \['amp'\] are given as currents"):
        jn.StepCurrent(amp=1 * u.nA, density=True)


def test_temperatures_lists_of_quantities_and_the_fit_signature():
    import inspect

    with pytest.raises(ValueError, match="absolute zero"):
        jn.Compartment(length=20, diam=20, temperature=-300)
    with pytest.raises(ValueError, match="expects an area"):
        jn.Compartment(area=5 * u.mV)
    np.testing.assert_allclose(units.to_base([0 * u.pA, 2 * u.nA], "amps", units.nA), [0.0, 2.0])
    assert list(inspect.signature(jn.fit).parameters)[:3] == ["loss", "model", "params"]
    assert "on_nonfinite" in jn.fit.__doc__


def test_strings_are_not_numbers():
    # jnp.asarray parses "1": StepCurrent(amp="1") used to inject 1 nA.
    for make, name in ((lambda: jn.StepCurrent(amp="1"), "amp"), (lambda: jn.LIF(gL="0.1"), "gL"),
                       (lambda: jn.Compartment(length=b"20", diam=20), "length")):
        with pytest.raises(ValueError, match=rf"{name}.* expects a number in .*, got"):
            make()


def test_models_print_their_parameter_values():
    hh = jn.Compartment(length=20, diam=20, channels=[jn.channels.HH(gnabar=[0.1, 0.12])], n=2)
    text = repr(hh)
    assert "length=20.0" in text and "gnabar=[0.1, 0.12]" in text and "gkbar=0.036" in text
    assert repr(jn.StepCurrent(0.1, 10, 100)) == "StepCurrent(amp=0.1, delay=10.0, dur=100.0)"
    # A population's long parameter arrays stay shapes (and traced values too).
    assert "gL=f64[1000]" in repr(jn.LIF(n=1000, gL=jnp.linspace(0.1, 0.2, 1000)))
    seen = []
    jax.jit(lambda a: seen.append(repr(jn.StepCurrent(a))) or a)(1.0)
    assert seen == ["StepCurrent(amp=weak_f64[], delay=f64[], dur=f64[])"]
    # Thousands of 3-D points, or of a cell's column labels, flooded a notebook (46k
    # characters): the arrays show their shapes, the static tuples are left out.
    cable = jn.Cable(arc3d=tuple(np.linspace(0.0, 500.0, 2000)), diam3d=np.full(2000, 2.0), nseg=5)
    assert "diam3d=f64[2000]" in repr(cable) and len(repr(cable)) < 1000
    trace = jn.simulate(jn.Cable(length=100.0, diam=1.0, nseg=400), 0.1)
    assert len(trace.column_labels("v")) == 400 and "x=" not in repr(trace) and len(repr(trace)) < 1000


def test_lists_of_quantities_are_one_quantity_array_everywhere():
    # Lists of densities were refused ("expects a current") or crashed (LIF gL: raw
    # TypeError); lists of quantities failed in Cable.diam3d, SpikeTrains rows and fit's
    # init, where the quantity arrays worked.
    d = u.uA / u.cm**2
    np.testing.assert_allclose(jn.StepCurrent(amp=[1 * d, 2 * d]).amp, jn.StepCurrent(amp=np.array([1.0, 2.0]) * d).amp)
    assert jn.StepCurrent(amp=[1 * d, 2 * d]).density
    np.testing.assert_allclose(jn.NoiseCurrent(mean=[1 * d, 2 * d]).mean, [1e-3, 2e-3])
    lif = jn.LIF(n=2, gL=[0.1 * u.mS / u.cm**2, 0.2 * u.mS / u.cm**2], C=1 * u.uF / u.cm**2)
    np.testing.assert_allclose(lif.gL, [100.0, 200.0])  # per 1 cm², µS
    a = jn.Cable(arc3d=[0 * u.um, 0.1 * u.mm], diam3d=[1 * u.um, 2 * u.um], channels=[jn.channels.Leak()])
    b = jn.Cable(arc3d=[0.0, 100.0], diam3d=[1.0, 2.0], channels=[jn.channels.Leak()])
    np.testing.assert_allclose(a.membrane_area, b.membrane_area, rtol=1e-12)
    trains = jn.SpikeTrains([[0.01 * u.second, 0.02 * u.second], np.array([5.0]) * u.ms])
    np.testing.assert_array_equal(trains.spikes, [[10.0, 20.0], [5.0, np.inf]])
    fitted = jn.fit(lambda m: (m.gL - 0.02) ** 2, jn.LIF(), params=lambda m: m.gL, steps=1,
                    init=[15 * u.nS, 25 * u.nS])
    assert fitted.n_starts == 2
    np.testing.assert_allclose(fitted.param_history["gL"][0], [0.015, 0.025])  # the starts, in µS


def test_summary_loss_targets_and_scales_take_units_of_the_variable():
    # A channel current's target in mA/cm² was refused as "expects dimensionless";
    # scales as quantities raised a raw TypeError.
    soma = jn.Compartment(length=20.0, diam=20.0, channels=[jn.channels.HH()])
    tr = jn.simulate(soma, 20.0, stimuli=[jn.StepCurrent(0.1, 5.0, 10.0)], record=("v", "ina_hh"))
    plain = jn.losses.summary(tr, {"mean_v": -0.01}, variable="ina_hh")
    assert float(jn.losses.summary(tr, {"mean_v": -0.01 * u.mA / u.cm**2}, variable="ina_hh")) == float(plain)
    assert float(jn.losses.summary(tr, {"mean_v": -10.0 * u.uA / u.cm**2}, variable="ina_hh")) == pytest.approx(float(plain))
    by_mv = jn.losses.summary(tr, {"mean_v": -60.0}, scales={"mean_v": 10.0})
    assert float(jn.losses.summary(tr, {"mean_v": -60.0 * u.mV}, scales={"mean_v": 10.0 * u.mV})) == float(by_mv)
    assert float(jn.losses.summary(tr, {"mean_v": -60.0}, scales={"mean_v": 0.01 * u.volt})) == pytest.approx(float(by_mv))
    with pytest.raises(ValueError, match=r"scales\['mean_v'\]"):
        jn.losses.summary(tr, {"mean_v": -60.0}, scales={"mean_v": 10.0 * u.nA})
    with pytest.raises(ValueError, match=r"parameter \"targets\['mean_v'\]\" expects a current density"):
        jn.losses.summary(tr, {"mean_v": 1.0 * u.kilogram}, variable="ina_hh")


def test_losses_read_targets_of_other_variables_in_the_unit_the_trace_recorded():
    # summary took a target (or scale) of any dimension for a variable other than v, read
    # as a number in its own dimension's base unit (0.4 mA/cm² for i_inj in nA, 1 mV as a
    # scale for it); voltage refused every quantity for such a variable ("expects a
    # dimensionless quantity"), a pA target for i_inj in nA too.
    soma = jn.Compartment(length=100, diam=500, channels=[jn.channels.Leak(g=1e-4, e=-70)])
    tr = jn.simulate(soma, 20.0, stimuli=[jn.StepCurrent(0.4, 0, 20)], record=("v", "i_pas", "i_inj"))
    assert (tr.unit("i_pas"), tr.unit("i_inj")) == ("mA/cm²", "nA")
    mean_pas = float(np.mean(np.asarray(tr.i_pas)))
    by_number = jn.losses.summary(tr, {"mean_v": 0.5}, scales={"mean_v": 2.0}, variable="i_inj")
    assert float(jn.losses.summary(tr, {"mean_v": 500 * u.pA}, scales={"mean_v": 2 * u.nA},
                                   variable="i_inj")) == pytest.approx(float(by_number), rel=1e-12)
    assert float(jn.losses.summary(tr, {"mean_v": mean_pas * 1000 * u.uA / u.cm**2}, variable="i_pas")) < 1e-20
    for variable, target, scale, name, expected in (
            ("i_pas", mean_pas * u.nA, None, "targets", "current density"),
            ("i_pas", mean_pas * u.mV, None, "targets", "current density"),
            ("i_inj", 0.4 * u.mA / u.cm**2, None, "targets", "current"),
            ("i_inj", 0.5, 1 * u.mV, "scales", "current")):
        scales = None if scale is None else {"mean_v": scale}
        with pytest.raises(ValueError, match=rf"parameter \"{name}\['mean_v'\]\" expects an? {expected} \["):
            jn.losses.summary(tr, {"mean_v": target}, scales=scales, variable=variable)
    # voltage: the variable's own unit, converted; another dimension named.
    i_pas, i_inj = np.asarray(tr.i_pas), np.asarray(tr.i_inj)
    assert float(jn.losses.voltage(tr, i_pas * 1000 * u.uA / u.cm**2, variable="i_pas")) < 1e-20
    assert float(jn.losses.voltage(tr, i_inj * 1000 * u.pA, variable="i_inj")) < 1e-20
    with pytest.raises(ValueError, match=r"parameter 'target' expects a current \[A\] quantity .* read in nA"):
        jn.losses.voltage(tr, i_inj * u.mV, variable="i_inj")


def test_bounded_compares_its_bounds_in_one_unit():
    # The bounds' bare numbers were compared: 10 nS < 0.03 µS refused, 0.03 µS > 25 nS taken.
    jn.fit.Bounded(10 * u.nS, 0.03 * u.uS)
    jn.fit.Bounded(300 * u.kelvin, 40.0)  # 26.85 °C < 40 °C (plain temperatures are in °C)
    with pytest.raises(ValueError, match=r"lo < hi, got lo=0.03 uS, hi=25 nS \(in one unit: lo=0.03, hi=0.025\)"):
        jn.fit.Bounded(0.03 * u.uS, 25 * u.nS)
    with pytest.raises(ValueError, match=r"lo < hi, got lo=0.05, hi=30 nS"):  # a plain bound is in µS
        jn.fit.Bounded(0.05, 30 * u.nS)
    with pytest.raises(ValueError, match=r"Bounded expects lo and hi of one dimension, got lo=10 nS \(conductance"):
        jn.fit.Bounded(10 * u.nS, 1 * u.ms)


def test_surrogate_widths_and_count_weight_take_quantities_and_numpy_numbers():
    # FastSigmoid(width=2 mV), Sigmoid(time_scale=1 ms) and np.float32 widths were refused;
    # spike_times(count_weight=1 ms²) raised saiunit's raw UnitMismatchError.
    assert jn.surrogate.FastSigmoid(width=2 * u.mV) == jn.surrogate.FastSigmoid(width=2.0)
    assert jn.surrogate.Sigmoid(time_scale=0.002 * u.second).time_scale == pytest.approx(2.0)
    assert jn.surrogate.FastSigmoid(width=np.float32(2.0)).width == 2.0
    assert type(jn.surrogate.Sigmoid(width=np.float32(2.0)).width) is float  # a static field, hashed
    with pytest.raises(ValueError, match=r"'FastSigmoid.width' expects a voltage .* got 2 ms"):
        jn.surrogate.FastSigmoid(width=2 * u.ms)
    with pytest.raises(ValueError, match=r"Sigmoid.time_scale expects a finite number > 0 \(ms\)"):
        jn.surrogate.Sigmoid(time_scale=-1 * u.ms)
    spikes, target = np.array([10.0, 20.0, np.inf]), np.array([11.0, np.inf, np.inf])
    plain = float(jn.losses.spike_times(spikes, target, count_weight=2.0))
    assert float(jn.losses.spike_times(spikes, target, count_weight=2e-6 * u.second**2)) == pytest.approx(plain)
    with pytest.raises(ValueError, match=r"'spike_times: count_weight' expects a time squared .* read in ms²"):
        jn.losses.spike_times(spikes, target, count_weight=1 * u.mV)
    with pytest.raises(ValueError, match=r"count_weight expects a number >= 0"):
        jn.losses.spike_times(spikes, target, count_weight=np.float32(-1.0))


def test_lists_mixing_numbers_and_quantities_in_static_parameters():
    # Converted by units.to_static, these were refused ("expects numbers in ms"), as
    # to_base's parameters took them; poisson_spikes said its rate was traced.
    np.testing.assert_array_equal(units.to_static([1.0, 0.002 * u.second], "t", units.ms), [1.0, 2.0])
    np.testing.assert_array_equal(jn.SpikeTrains([[1.0, 0.002 * u.second], [0.003 * u.second]]).spikes,
                                  [[1.0, 2.0], [3.0, np.inf]])
    spikes = np.array([[5.0, 15.0, 25.0], [5.0, 15.0, 25.0]])
    np.testing.assert_allclose(jn.firing_rate(spikes, [0 * u.ms, 10.0], 30.0), [100.0, 100.0])
    assert float(jn.Cable(arc3d=[0.0, 0.05 * u.mm, 100.0], diam3d=[2, 2, 2], nseg=1).length) == 100.0
    mixed = jn.poisson_spikes([10.0, 0.02 * u.kHz], 100.0, seed=0)
    np.testing.assert_array_equal(mixed.spikes, jn.poisson_spikes([10.0, 20.0], 100.0, seed=0).spikes)
    with pytest.raises(ValueError, match=r"'SpikeTrains.spikes\[0\]' expects a time \[s\] quantity .* got 2 mV"):
        jn.SpikeTrains([[1.0, 2 * u.mV]])
    with pytest.raises(ValueError, match=r"'poisson_spikes.rate' expects a frequency"):
        jn.poisson_spikes([10.0, 2 * u.ms], 100.0)


def test_quantities_where_none_fit_are_errors_naming_the_parameter():
    # A flat list of quantities gave "TypeError: len() of a 0-d Quantity", d_lambda in µm
    # saiunit's TypeError.
    from pathlib import Path

    with pytest.raises(ValueError, match=r"SpikeTrains.spikes expects shape \(n, capacity\).* got shape \(2,\)"):
        jn.SpikeTrains([1 * u.ms, 2 * u.ms])
    path = Path(__file__).parent / "data" / "small_cell_3pt.swc"
    with pytest.raises(ValueError, match=r"cell_from_swc: d_lambda expects one dimensionless number > 0"):
        jn.Cell.from_swc(path, d_lambda=0.1 * u.um)
    assert jn.Cell.from_swc(path, d_lambda=u.Quantity(0.02)).nsegs == jn.Cell.from_swc(path, d_lambda=0.02).nsegs


def test_a_quantity_set_after_construction_is_named():
    # eqx.tree_at(..., 20 * u.nS) left an unconverted quantity in the model; runs failed
    # deep inside with saiunit's UnitMismatchError.
    import equinox as eqx

    lif = eqx.tree_at(lambda m: m.gL, jn.LIF(), 20 * u.nS)
    with pytest.raises(ValueError, match=r"simulate: model\.gL holds the saiunit quantity 20 nS, set after the object was made"):
        jn.simulate(lif, 5.0)
    with pytest.raises(ValueError, match=r"steady_state: model\.gL holds the saiunit quantity"):
        jn.input_resistance(lif)
    stim = eqx.tree_at(lambda s: s.amp, jn.StepCurrent(0.1), 100 * u.pA)
    with pytest.raises(ValueError, match=r"simulate: stimuli\[0\]\.amp holds the saiunit quantity"):
        jn.simulate(jn.LIF(), 5.0, stimuli=[stim])


def test_a_unit_written_as_text_is_refused_where_the_field_is_declared():
    # param("S/cm^2") read plain numbers and then refused every quantity as "expects a
    # dimensionless [1] quantity (a plain number is read in S/cm^2)".
    from jaxneuro import units

    for bad in ("S/cm^2", "mV", 1.0):
        with pytest.raises(TypeError, match=r"units.param expects a saiunit unit .*got "):
            units.param(bad, default=0.01)
    assert units.param(units.S_per_cm2, default=0.01).metadata["unit"] is units.S_per_cm2
    assert units.param(None).metadata["unit"] is None and units.param(units.celsius).metadata["unit"] is units.celsius
