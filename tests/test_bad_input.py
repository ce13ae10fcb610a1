"""Bad input raises a ValueError that names the parameter and what was expected."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
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


@pytest.mark.parametrize("name", ["t0", "t1", "dt"])
def test_a_traced_time_inside_the_users_jit_says_what_to_do(name):
    # The step count is a shape; a traced time cannot fix it. The message says so and names
    # the two ways out rather than only "expects a concrete scalar".
    times = {"t0": 0.0, "t1": 5.0, "dt": 0.025}

    def run(value):
        kw = {**times, name: value}
        return jn.simulate(soma(), kw.pop("t1"), **kw).v

    with pytest.raises(ValueError, match=rf"{name} must be a concrete time in ms .*static_argnames"):
        jax.jit(run)(times[name])


def test_a_traced_place_inside_the_users_jit_is_named():
    # A traced stimulus target or record place raised JAX's TracerArrayConversionError,
    # naming neither the parameter nor what to do.
    cab = jn.Cable(length=100, diam=1, nseg=5, channels=[jn.channels.HH()])
    runs = {
        r"stimulus target must be concrete .*static_argnames.*amplitude per compartment":
            lambda i: jn.simulate(cab, 2, stimuli=[jn.StepCurrent(0.1, 0, 1, target=[i])]).v,
        r"stimulus target must be concrete":
            lambda x: jn.simulate(cab, 2, stimuli=[jn.StepCurrent(0.1, 0, 1, target=x)]).v,
        r"record=\{'v': ...\}: a place must be concrete .*static_argnames\)(?!, or)":
            lambda x: jn.simulate(cab, 2, record={"v": [x]}).v,
    }
    for (pattern, run), arg in zip(runs.items(), (2, 0.3, 0.3)):
        with pytest.raises(ValueError, match=pattern):
            jax.jit(run)(arg)


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


def test_a_section_as_its_own_parent_is_named_so():
    secs = [jn.Cable(length=10, diam=1, name=n, channels=[jn.channels.Leak()]) for n in ("soma", "b")]
    with pytest.raises(ValueError, match=r"parents\[1\]: section 'b' cannot be its own parent"):
        jn.Cell(secs, parents=[None, "b"])
    with pytest.raises(ValueError, match=r"parents\[0\]: parent section 'b' must come before its child"):
        jn.Cell(secs, parents=["b", None])
    # NEURON's child.connect(parent(x), 1): the child's other end, told how to port it.
    with pytest.raises(ValueError, match=r"parents\[1\] = \('soma', 1\.0, 1\): a child joins .* built reversed"):
        jn.Cell(secs, parents=[None, ("soma", 1.0, 1)])


def test_a_location_outside_the_section_is_named_once():
    cable = jn.Cable(length=10, diam=1, nseg=3, channels=[jn.channels.Leak()])
    with pytest.raises(ValueError, match=r"^stimuli\[0\]: stimulus target=1.5: location: x must lie in \[0, 1\], got 1.5\b"):
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


def test_numpy_integers_are_counts():
    # n=np.sum(mask) was refused ("expects a positive integer, got np.int64(2)") where
    # Cable's nseg took it; the models keep Python ints (static fields, jit keys).
    n = np.sum(np.array([True, True, False]))
    for model in (jn.LIF(n=n, spike_capacity=np.int64(7)), jn.AdEx(n=n), jn.Izhikevich(n=n), soma(n=np.int32(2))):
        assert model.shape == (2,) and type(model.n) is int
    assert type(jn.LIF(spike_capacity=np.int64(7)).spike_capacity) is int
    assert type(jn.SpikeSummary(capacity=np.int64(4)).capacity) is int
    with pytest.raises(ValueError, match=r"LIF\.n expects a positive integer, got np\.int64\(0\)|LIF\.n expects a positive integer, got 0"):
        jn.LIF(n=np.int64(0))


def test_complex_and_boolean_arrays_are_not_numbers():
    # As arrays they were converted without a word: the imaginary part dropped, True
    # read as 1 S/cm²; as Python scalars they were refused.
    with pytest.raises(ValueError, match=r"'Leak\.g' expects real numbers in S/cm², got an array of complex numbers"):
        jn.channels.Leak(g=np.array(1e-4 + 1e-4j))
    with pytest.raises(ValueError, match=r"'Leak\.g' expects real numbers in S/cm², got an array of booleans"):
        jn.channels.Leak(g=np.array([True]))
    with pytest.raises(ValueError, match=r"'Leak\.g' expects real numbers .* booleans"):
        jn.channels.Leak(g=[True, False])
    with pytest.raises(ValueError, match=r"'StepCurrent\.amp' expects real numbers in nA, got an array of complex"):
        jn.StepCurrent(amp=np.array(1 + 5j), delay=0.0, dur=1.0)
    with pytest.raises(ValueError, match=r"'v0' expects real numbers in mV, got an array of complex"):
        jn.simulate(jn.LIF(), 1.0, v0=np.array(-65 + 3j))
    with pytest.raises(ValueError, match=r"expects real numbers in ms, got an array of booleans"):
        jn.isi(np.array([True, True]))
    np.testing.assert_allclose(np.asarray(jn.channels.Leak(g=np.array([1e-4, 2e-4], np.float32)).g), [1e-4, 2e-4])


def test_values_set_after_construction_are_checked_as_the_constructor_checks_them():
    # eqx.tree_at skips the constructor: True ran as 1 S/cm², a negative refractory
    # period shortened every interval by 4 ms, V_th below V_reset fired every 2 ms, and
    # NaN or a zero capacitance ran into NaN traces, all without a word.
    cell = soma()
    leak = lambda m: m.channels[0].g  # noqa: E731
    with pytest.raises(ValueError, match=r"'simulate: model\.channels\[0\]\.g' expects a number in S/cm², got True"):
        jn.simulate(eqx.tree_at(leak, cell, True), 1.0)
    with pytest.raises(ValueError, match=r"'simulate: model\.channels\[0\]\.g' must not be NaN"):
        jn.simulate(eqx.tree_at(leak, cell, float("nan")), 1.0)
    with pytest.raises(ValueError, match=r"'simulate: model\.cm' must be > 0 \(in µF/cm²\); got 0\.0"):
        jn.simulate(eqx.tree_at(lambda m: m.cm, cell, 0.0), 1.0)
    with pytest.raises(ValueError, match=r"'simulate: model\.channels\[0\]\.g' holds a list, set after"):
        jn.simulate(eqx.tree_at(leak, cell, [1e-4]), 1.0)
    with pytest.raises(ValueError, match=r"'simulate: model\.t_ref' must be >= 0 \(in ms\); got -2\.0"):
        jn.simulate(eqx.tree_at(lambda m: m.t_ref, jn.LIF(), -2.0), 10.0)
    with pytest.raises(ValueError, match=r"LIF\.V_reset must lie below V_th"):
        jn.simulate(eqx.tree_at(lambda m: m.V_th, jn.LIF(), -80.0), 10.0)
    with pytest.raises(ValueError, match=r"'simulate: stimuli\[0\]\.amp' expects a number in nA, got True"):
        jn.simulate(cell, 1.0, stimuli=[eqx.tree_at(lambda s: s.amp, jn.StepCurrent(0.1, 0.0, 1.0), True)])
    # Inside the user's jit too (there the converted value was traced: its range went
    # unchecked), and a refused object is checked again at the next call.
    bad = eqx.tree_at(lambda m: m.t_ref, jn.LIF(), -2.0)
    for _ in range(2):
        with pytest.raises(ValueError, match=r"'simulate: model\.t_ref' must be >= 0 \(in ms\); got -2\.0"):
            jax.jit(lambda: jn.simulate(bad, 10.0).v)()
    with pytest.raises(ValueError, match=r"'simulate: model\.channels\[0\]\.g' must be >= 0 \(in S/cm²\); got -0\.01\n"):
        jax.jit(lambda: jn.simulate(eqx.tree_at(leak, cell, -0.01), 1.0).v)()
    # Arrays too (the README's advice for reusing the compiled run): a negative diameter
    # as jnp.asarray(-20.0) ran with a negative area (the step's voltage moved the wrong
    # way), V_th below V_reset fired every 2 ms without input.
    with pytest.raises(ValueError, match=r"'simulate: model\.diam' must be > 0 \(in µm\); got -20\.0"):
        jn.simulate(eqx.tree_at(lambda m: m.diam, cell, jnp.asarray(-20.0)), 1.0)
    with pytest.raises(ValueError, match=r"simulate: model \(edited after it was made.*LIF\.V_reset must lie below"):
        jn.simulate(eqx.tree_at(lambda m: m.V_th, jn.LIF(), np.asarray(-90.0)), 10.0)
    with pytest.raises(ValueError, match=r"'simulate: stimuli\[0\]\.amp' must not be NaN"):
        jn.simulate(cell, 1.0, stimuli=[eqx.tree_at(lambda s: s.amp, jn.StepCurrent(0.1, 0.0, 1.0), jnp.asarray(np.nan))])
    # A valid number set the same way runs, as the constructor would have made it.
    edited = jn.simulate(eqx.tree_at(leak, cell, 2e-4), 5.0).v
    made = jn.simulate(soma(channels=[jn.channels.Leak(g=2e-4)]), 5.0).v
    np.testing.assert_array_equal(np.asarray(edited), np.asarray(made))


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


@pytest.mark.parametrize("make, message", [
    (lambda: jn.LIF(C=None), r"parameter 'LIF\.C' expects a number \(in nF\), got None"),
    (lambda: jn.StepCurrent(amp=1.0, delay=None), r"parameter 'StepCurrent\.delay' expects a number \(in ms\), got None"),
    (lambda: jn.channels.HH(gnabar=None), r"parameter 'HH\.gnabar' expects a number"),
])
def test_none_for_a_parameter_with_a_value_is_refused_by_name(make, message):
    # None passed construction and failed in simulate with a raw TypeError naming nothing.
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize("make, message", [
    (lambda: jn.conn.all_to_all(include_self="False"), r"all_to_all: include_self expects True or False, got 'False'"),
    (lambda: jn.conn.fixed_prob(0.5, include_self="no"), r"fixed_prob: include_self expects True or False"),
    (lambda: jn.StepCurrent(amp=1.0, density="yes"), r"StepCurrent\.density expects True or False"),
    (lambda: jn.SpikeDetector(jn.Compartment(length=20.0, diam=20.0, channels=[jn.channels.HH()]),
                              skip_quiet_steps="x"), r"SpikeDetector\.skip_quiet_steps expects True or False"),
])
def test_flags_are_true_or_false_not_truthy(make, message):
    # A string 'False' was read as True.
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize("bad", [math.nan, math.inf, -300.0])
def test_cell_temperature_is_checked_as_the_sections_are(bad):
    # Cable refused these; Cell passed them on to every section (NaN voltages from step 2).
    sec = jn.Cable(length=20.0, diam=20.0, channels=[jn.channels.HH()], name="soma")
    with pytest.raises(ValueError, match=r"'Cell\.temperature' must"):
        jn.Cell([sec], parents=[None], temperature=bad)


@pytest.mark.parametrize("kw", [{"coupling_tol": 0.0}, {"coupling_tol": -1.0}, {"coupling_tol": math.nan},
                                {"coupling_tol": 1000.0}, {"coupling_tol": "x"}, {"couplings": None}])
def test_network_coupling_tol_and_couplings_are_checked(kw):
    # coupling_tol=0 gave NaN voltages, -1/NaN/1000 stopped the gap solve at its first iterate.
    name = "coupling_tol" if "coupling_tol" in kw else "couplings"
    with pytest.raises(ValueError, match=rf"Network\.{name} expects"):
        jn.Network(populations={"a": jn.LIF(n=2)}, **kw)


def test_rate_and_window_outside_the_simulated_span_are_refused():
    # A 100 ms run's rate over (0, 1000) ms came out 10x too low; window() clipped silently.
    tr = jn.simulate(jn.LIF(n=2), 100.0, stimuli=[jn.StepCurrent(amp=jnp.array([2.0, 3.0]))], record=())
    assert jn.firing_rate(tr, 0.0, 100.0).tolist() == [50.0, 90.0]
    for start, stop in ((0.0, 1000.0), (-100.0, 100.0)):
        with pytest.raises(ValueError, match=r"firing_rate: the window .* reaches outside the simulated span, \[0\.0, 100\.0\]"):
            jn.firing_rate(tr, start, stop)
    with pytest.raises(ValueError, match=r"Trace\.window: the window \[-10\.0, 500\.0\] ms reaches outside"):
        tr.window(-10.0, 500.0)
    assert float(tr.window(20.0, 40.0).spike_count[1]) == float(jn.firing_rate(tr, 20.0, 40.0)[1]) * 0.02


def test_analysis_of_a_network_trace_points_to_its_populations():
    # The message advised jn.spike_times(trace, threshold), which refuses a Network's trace too.
    net = jn.Network(populations={"a": jn.LIF(n=2)})
    tr = jn.simulate(net, 10.0)
    for fn in (lambda: jn.firing_rate(tr, 0.0, 10.0), lambda: jn.isi(tr), lambda: jn.spike_count(tr)):
        with pytest.raises(ValueError, match=r"a Network's trace holds one trace per population; pass one, trace\[name\]"):
            fn()


def test_plotting_a_batch_of_traces_asks_for_one_member():
    # It drew one three-point line per time sample (the batch axis taken for time).
    import jax
    import matplotlib

    matplotlib.use("Agg")
    batch = jax.vmap(lambda amp: jn.simulate(jn.LIF(), 10.0, stimuli=[jn.StepCurrent(amp)]))(jnp.array([1.0, 2.0]))
    with pytest.raises(ValueError, match=r"this trace is a batch .* t of shape \(2, 401\)"):
        batch.plot("v")
    ax = jax.tree.map(lambda x: x[1], batch).plot("v")
    assert len(ax.lines) == 1


def test_steady_state_of_a_spiking_neuron_above_threshold_is_refused():
    # A LIF at 10 nA came out at 30 mV, 85 mV above its threshold, without a word.
    with pytest.raises(ValueError, match=r"steady_state: LIF's fixed point 30 mV lies at or above its threshold -55 mV"):
        jn.steady_state(jn.LIF(), i_inj=10.0)
    assert float(jn.steady_state(jn.LIF(), i_inj=10.0, throw=False).v) == pytest.approx(30.0, abs=1e-9)
    assert float(jn.steady_state(jn.LIF(), i_inj=0.1).v) == pytest.approx(-69.0, abs=1e-9)


@pytest.mark.parametrize("kw, name", [({"i_inj": math.nan}, "i_inj"), ({"v_guess": math.nan}, "v_guess")])
def test_steady_state_nan_inputs_are_named(kw, name):
    # They were reported as Newton iterations that did not converge.
    with pytest.raises(ValueError, match=rf"'steady_state: {name}' must not be NaN"):
        jn.steady_state(jn.LIF(), **kw)


def test_noise_current_impl_is_named_for_its_own_mistake():
    # NoiseCurrent(impl='x') was reported as a bad seed.
    with pytest.raises(ValueError, match=r"NoiseCurrent\.impl expects None .* got 'x'"):
        jn.NoiseCurrent(mean=0.0, std=1.0, impl="x")


def test_indexing_a_trace_by_a_recorded_name_points_to_the_attribute():
    tr = jn.simulate(jn.LIF(), 5.0)
    with pytest.raises(KeyError, match=r"the recorded 'v' is trace\.v"):
        tr["v"]


@pytest.mark.parametrize("make, message", [
    (lambda: jn.conn.fixed_prob("x"), r"fixed_prob: p expects a probability in \[0, 1\] \(a fixed real number.*got 'x'"),
    (lambda: jn.conn.fixed_prob(0.5, seed=1.5), r"fixed_prob: seed expects a non-negative integer"),
    (lambda: jn.fit.Bounded("a", 1.0), r"Bounded expects numbers .* lo='a'"),
    (lambda: jn.LIF(C=[1.0, 2.0, 3.0], gL=[0.1, 0.2]), r"LIF: parameters of shapes C \(3,\), gL \(2,\) do not broadcast"),
])
def test_raw_errors_now_name_the_parameter(make, message):
    # NumPy's or JAX's own messages, naming nothing (LIF: at simulate).
    with pytest.raises(ValueError, match=message):
        make()


def test_fit_callback_must_be_callable():
    with pytest.raises(ValueError, match=r"fit: callback expects None or a function"):
        jn.fit(lambda m: (m.gL - 0.05) ** 2, jn.LIF(), params=lambda m: m.gL, steps=1, callback="x")


def test_a_gate_recorded_where_its_channel_is_absent_is_nan():
    # It read 0.0 there, so a mean over the segments was silently wrong.
    soma = jn.Cable(length=20.0, diam=20.0, channels=[jn.channels.HH()], name="soma")
    dend = jn.Cable(length=100.0, diam=1.0, nseg=3, channels=[jn.channels.Leak()], name="dend")
    cell = jn.Cell([soma, dend], parents=[None, ("soma", 1.0)])
    tr = jn.simulate(cell, 1.0, record=("m_hh", "i_hh", "v"))
    m, i = np.asarray(tr.m_hh), np.asarray(tr.i_hh)
    assert np.all(np.isfinite(m[:, 0])) and np.all(np.isnan(m[:, 1:]))
    assert np.all(i[:, 1:] == 0.0) and np.all(np.isfinite(i[:, 0]))


def test_plot_and_steady_state_name_what_they_expected():
    # Raw Python errors: "attribute name must be string", "'str' object has no
    # attribute 'plot'", "'NoneType' object has no attribute 'precomputed'".
    import matplotlib

    matplotlib.use("Agg")
    tr = jn.simulate(jn.LIF(), 5.0)
    with pytest.raises(ValueError, match=r"trace\.plot: names expects recorded variable names \(str\)"):
        tr.plot(3)
    with pytest.raises(ValueError, match=r"trace\.plot: 'w' is not recorded; this trace has \('v',\) and 'spikes'"):
        tr.plot("w")
    with pytest.raises(ValueError, match=r"trace\.plot: ax expects a matplotlib Axes"):
        tr.plot("v", ax="x")
    with pytest.raises(ValueError, match=r"steady_state: model expects a jaxneuro model"):
        jn.steady_state(None)


def test_a_stimulus_that_does_not_fit_names_its_parameters():
    # A 2-D delay was reported as "stimulus amplitude of shape (2, 2)", from inside the
    # time loop; now before it, with the stimulus's place and its parameters' shapes.
    soma = jn.Compartment(length=20.0, diam=20.0, channels=[jn.channels.Leak()])
    with pytest.raises(ValueError, match=r"^stimuli\[1\]: stimulus current of shape \(2, 2\) does not fit "
                                         r"target=None.*\(StepCurrent's parameters: amp \(\), delay \(2, 2\), dur \(\)\)$"):
        jn.simulate(soma, 1.0, stimuli=[jn.StepCurrent(0.1), jn.StepCurrent(0.1, np.ones((2, 2)), 1.0)])


def test_ou_current_and_voltage_at_name_bad_shapes():
    with pytest.raises(ValueError, match=r"ou_current: shape expects a tuple of non-negative integers.*got \(-1,\)"):
        jn.ou_current(0.0, 0.1, 5.0, 10.0, shape=(-1,))
    with pytest.raises(ValueError, match=r"ou_current: shape expects .* got 5$"):
        jn.ou_current(0.0, 0.1, 5.0, 10.0, shape=5)
    # trace.i_inj (every segment's current) in place of the node's current was a raw
    # broadcasting error.
    cell = jn.Cell([jn.Cable(length=100.0, diam=1.0, nseg=5, channels=[jn.channels.Leak()], name="a")],
                   parents=[None])
    tr = jn.simulate(cell, 1.0, stimuli=[jn.StepCurrent(0.1, target=("a", 0.5))], record=("v", "i_inj"))
    with pytest.raises(ValueError, match=r"voltage_at: i_inj expects .*\(shape \(41,\)\), got shape \(41, 5\); "
                                         r"trace\.i_inj holds every segment's current"):
        cell.voltage_at(tr.v, "a", 1.0, tr.i_inj)
    v_end = cell.voltage_at(tr.v, "a", 1.0, jnp.zeros(41))
    np.testing.assert_array_equal(np.asarray(v_end), np.asarray(cell.voltage_at(tr.v, "a", 1.0)))


def test_solver_mistakes_are_named():
    # A string, a class and an adaptive controller with the default solver gave
    # AttributeError, TypeError and diffrax's RuntimeError.
    import diffrax

    soma = jn.Compartment(length=20.0, diam=20.0, channels=[jn.channels.Leak()])
    with pytest.raises(ValueError, match=r"solver expects a diffrax solver instance .* got 'euler'"):
        jn.simulate(soma, 1.0, solver="euler")
    with pytest.raises(ValueError, match=r"solver expects a solver instance, got the class Tsit5: pass solver=Tsit5\(\)"):
        jn.simulate(soma, 1.0, solver=diffrax.Tsit5)
    with pytest.raises(ValueError, match=r"stepsize_controller: PIDController .* default solver .* has none.*"
                                         r"solver=diffrax\.Tsit5\(\)"):
        jn.simulate(soma, 1.0, stepsize_controller=diffrax.PIDController(rtol=1e-6, atol=1e-6))
    with pytest.raises(ValueError, match=r"stepsize_controller: PIDController"):
        jn.simulate(soma, 1.0, solver=jn.StaggeredEuler(), stepsize_controller=diffrax.PIDController(rtol=1e-6, atol=1e-6))


def test_channel_parameters_go_by_position_and_a_name_must_be_a_string():
    # Leak(1e-4) made name=1e-4 and kept the default g (10x larger), silently.
    assert float(jn.channels.Leak(1e-4).g) == 1e-4 and jn.channels.Leak(1e-4).name == "pas"
    assert float(jn.channels.Leak(1e-4, -65.0).e) == -65.0
    assert float(jn.channels.HH(0.2).gnabar) == 0.2 and float(jn.channels.HH(0.2, 0.04).gkbar) == 0.04
    assert jn.channels.INa_Ba2002(name="na").name == "na"
    with pytest.raises(ValueError, match=r"Leak\.name expects a non-empty string .* got 3; give parameters by keyword"):
        jn.channels.Leak(name=3)


@pytest.mark.parametrize("reserved", ["cap", "inj", "clamp", "gap", "syn"])
def test_a_channel_named_as_a_membrane_record_name_is_refused(reserved):
    # Leak(name="cap") was accepted: observables() listed "i_cap" twice and recording
    # "i_cap" gave the capacitive current, the leak's current could not be recorded
    # (likewise "inj" and i_inj; "clamp", "gap" and "syn" hide i_clamp, i_gap, i_syn).
    leak = jn.channels.Leak(g=1e-3, e=-70.0, name=reserved)
    pattern = (rf"Compartment\.channels\[1\] \(Leak '{reserved}'\): its current would be recorded as "
               rf"'i_{reserved}', the record name of .*reserved")
    with pytest.raises(ValueError, match=pattern):
        jn.Compartment(length=20.0, diam=20.0, channels=[jn.channels.HH(), leak])
    with pytest.raises(ValueError, match=rf"Cable\.channels\[0\] \(Leak '{reserved}'\): .* 'i_{reserved}'"):
        jn.Cable(length=100.0, diam=1.0, channels=[leak])
    # Another name records as usual.
    ok = jn.Compartment(length=20.0, diam=20.0, channels=[jn.channels.Leak(g=1e-3, e=-70.0, name=f"{reserved}_l")])
    tr = jn.simulate(ok, 1.0, v0=-60.0, record=("i_cap", f"i_{reserved}_l"))
    assert float(getattr(tr, f"i_{reserved}_l")[0]) == pytest.approx(1e-3 * 10.0)
    assert float(tr.i_cap[0]) == pytest.approx(-1e-3 * 10.0)


def test_channels_whose_record_names_collide_are_refused():
    # Two channels whose gates map to one state name ("m_a_b": gate "m" of channel "a_b"
    # and gate "m_a" of channel "b") would share one state.
    from typing import ClassVar

    class Gated(jn.channels.AbstractChannel):
        g: object = jn.units.param(jn.units.S_per_cm2, default=1e-3)
        name: str = eqx.field(default="gated", static=True, kw_only=True)
        gate_names: ClassVar[tuple[str, ...]] = ("m",)

        def gate_inf_tau(self, v, temperature):
            return {"m": (0.5 + 0.0 * v, 1.0 + 0.0 * v)}

        def current(self, v, gates):
            return self.g * gates["m"] * v

    class GatedMA(Gated):
        gate_names: ClassVar[tuple[str, ...]] = ("m_a",)

        def gate_inf_tau(self, v, temperature):
            return {"m_a": (0.5 + 0.0 * v, 1.0 + 0.0 * v)}

        def current(self, v, gates):
            return self.g * gates["m_a"] * v

    with pytest.raises(ValueError, match=r"Compartment\.channels\[1\] \(GatedMA 'b'\): its gate 'm_a' would be "
                                         r"recorded as 'm_a_b', the record name of the gate 'm' of "
                                         r"Compartment\.channels\[0\] \(Gated 'a_b'\)"):
        jn.Compartment(length=20.0, diam=20.0, channels=[Gated(name="a_b"), GatedMA(name="b")])
    # In different sections of one cell too: the cell records both.
    s0 = jn.Cable(length=10.0, diam=1.0, channels=[Gated(name="a_b")], name="s0")
    s1 = jn.Cable(length=10.0, diam=1.0, channels=[GatedMA(name="b")], name="s1")
    with pytest.raises(ValueError, match=r"Cell: section 's1' \(GatedMA 'b'\): its gate 'm_a' .* 'm_a_b'.*"
                                         r"Cell: section 's0' \(Gated 'a_b'\)"):
        jn.Cell([s0, s1], parents=[None, "s0"])


def test_array_parameters_without_n_make_a_population_as_documented():
    # The Compartment docstring described leading axes only with n=; an array-valued
    # parameter without n= makes a population of its shape (as DESIGN.md's "any module
    # whose parameter leaves carry a leading axis"), which the docstring now says.
    doc = " ".join(jn.Compartment.__doc__.split())
    assert "Without ``n``, array-valued parameters make a population as well" in doc
    comp = jn.Compartment(length=20, diam=20, channels=[jn.channels.HH(gnabar=jnp.array([0.08, 0.12, 0.16]))])
    assert comp.shape == (3,)
    assert jn.simulate(comp, 1.0).v.shape == (41, 3)
    with pytest.raises(ValueError, match=r"gnabar has shape \(3,\); with n=2"):
        jn.Compartment(length=20, diam=20, n=2, channels=[jn.channels.HH(gnabar=jnp.array([0.08, 0.12, 0.16]))])


# --- black-box findings (bb_api): shapes set by eqx.tree_at, classes, list locations, NEURON names ---

@pytest.mark.parametrize("cls, field", [(jn.LIF, "gL"), (jn.AdEx, "tau_w"), (jn.Izhikevich, "k")])
def test_simulate_checks_population_shape_set_by_tree_at(cls, field):
    # The constructor refuses a length-2 parameter on n=3; set by eqx.tree_at it reached
    # the run and failed there with JAX's "incompatible shapes for broadcasting".
    model = cls(n=3)
    edited = eqx.tree_at(lambda m: getattr(m, field), model, jnp.full((2,), getattr(model, field)))
    with pytest.raises(ValueError, match=rf"simulate: model.*{cls.__name__}\.{field} expects a scalar or an array "
                                         r"of shape \(3,\).*n=3; got shape \(2,\)"):
        jn.simulate(edited, 1.0)
    if cls is jn.LIF:  # (one model's runs suffice: each compiles, AdEx's for seconds)
        # The right shape still runs, and so does the unedited model (checked once per object).
        ok = eqx.tree_at(lambda m: getattr(m, field), model, jnp.full((3,), getattr(model, field)))
        assert jn.simulate(ok, 1.0).v.shape[-1] == 3
        assert jn.simulate(model, 1.0).v.shape[-1] == 3


def test_simulate_checks_population_shape_in_a_network():
    net = jn.Network(populations={"a": jn.LIF(n=3), "b": jn.LIF(n=2)})
    edited = eqx.tree_at(lambda m: m.populations["a"].gL, net, jnp.array([0.01, 0.02]))
    with pytest.raises(ValueError, match=r"simulate: model\.populations\['a'\].*LIF\.gL expects .*shape \(3,\)"):
        jn.simulate(edited, 1.0)


def test_simulate_checks_a_compartment_populations_shapes_set_by_tree_at():
    pop = jn.Compartment(length=20.0, diam=20.0, channels=[jn.channels.HH()], n=3)
    edited = eqx.tree_at(lambda m: m.channels[0].gnabar, pop, jnp.array([0.1, 0.12]))
    with pytest.raises(ValueError, match=r"simulate: model \(edited after it was made.*gnabar.*\(2,\)"):
        jn.simulate(edited, 1.0)
    with pytest.raises(ValueError, match=r"gnabar.*\(2,\)"):  # the constructor's own message
        jn.Compartment(length=20.0, diam=20.0, channels=[jn.channels.HH(gnabar=jnp.array([0.1, 0.12]))], n=3)


_EDITED = r"simulate: model{} \(edited after it was made, e\.g\. by eqx\.tree_at\): "


def test_simulate_checks_cable_and_cell_shapes_set_by_tree_at():
    # Cable had no check_shapes: a wrong-length channel parameter or diam set by
    # eqx.tree_at failed in the run with JAX's broadcasting errors naming no field, and a
    # (1,) Leak.g on nseg=4 (which the constructor refuses) was broadcast silently.
    # Each is refused before anything compiles, with the constructor's message.
    cable = jn.Cable(length=100.0, diam=2.0, nseg=4, channels=[jn.channels.Leak()], name="c")
    per_segment = r"expects a scalar or one value per segment \(shape \(4,\)\), got shape "
    for edit, value, field, shape in [
        (lambda c: c.channels[0].g, jnp.full(3, 1e-3), r"Cable\.channels: parameter pas\.g ", r"\(3,\)"),
        (lambda c: c.channels[0].g, jnp.full(1, 2e-3), r"Cable\.channels: parameter pas\.g ", r"\(1,\)"),
        (lambda c: c.channels[0].e, jnp.full((4, 1), -70.0), r"Cable\.channels: parameter pas\.e ", r"\(4, 1\)"),
        (lambda c: c.diam, jnp.full(3, 2.0), r"Cable\.diam ", r"\(3,\)"),
        (lambda c: c.Ra, jnp.full(2, 100.0), r"Cable\.Ra ", r"\(2,\)"),
    ]:
        with pytest.raises(ValueError, match=_EDITED.format("") + field + per_segment + shape):
            jn.simulate(eqx.tree_at(edit, cable, value), 1.0)
    with pytest.raises(ValueError, match=_EDITED.format("") + r"Cable\.length expects a scalar, got shape \(2,\)"):
        jn.simulate(eqx.tree_at(lambda c: c.length, cable, jnp.full(2, 100.0)), 1.0)
    points = jn.Cable(arc3d=[0.0, 50.0, 100.0], diam3d=[2.0, 2.0, 2.0], nseg=2, channels=[jn.channels.Leak()])
    with pytest.raises(ValueError, match=_EDITED.format("") + r"Cable\.diam3d expects one diameter per 3-D point "
                                                               r"\(shape \(3,\)\), got shape \(2,\)"):
        jn.simulate(eqx.tree_at(lambda c: c.diam3d, points, jnp.full(2, 2.0)), 1.0)
    # A cell's sections are checked too, the message naming the section (the cell of
    # test_a_gate_recorded_where_its_channel_is_absent_is_nan: its run is compiled already).
    soma = jn.Cable(length=20.0, diam=20.0, channels=[jn.channels.HH()], name="soma")
    dend = jn.Cable(length=100.0, diam=1.0, nseg=3, channels=[jn.channels.Leak()], name="dend")
    cell = jn.Cell([soma, dend], parents=[None, ("soma", 1.0)])
    with pytest.raises(ValueError, match=_EDITED.format(r"\.sections\[1\]") + r"Cable\.channels: parameter pas\.g "
                                         r"expects a scalar or one value per segment \(shape \(3,\)\), got shape \(2,\)"):
        jn.simulate(eqx.tree_at(lambda c: c.sections[1].channels[0].g, cell, jnp.full(2, 1e-3)), 1.0)
    # Valid values set the same way pass: one per segment (checked without a run, which
    # would compile for the new shapes), and a new value of the same shape runs.
    per_segment_ok = eqx.tree_at(lambda c: (c.channels[0].g, c.diam), cable,
                                 (jnp.full(4, 2e-3), jnp.array([2.0, 2.0, 1.0, 1.0])))
    assert per_segment_ok.check_shapes() is None
    ok = eqx.tree_at(lambda c: c.sections[1].channels[0].g, cell, jnp.asarray(2e-4))
    assert jn.simulate(ok, 1.0, record=("m_hh", "i_hh", "v")).v.shape[-1] == 4


def test_simulate_checks_per_connection_shapes_set_by_tree_at():
    # Network.check_shapes checked the couplings' index arrays only: a per-connection g,
    # g_max or tau of the wrong length set by eqx.tree_at failed in the run with JAX's
    # broadcasting errors. Now the check building the network made (check_bound) runs
    # again, before anything compiles, naming the coupling and the field.
    lif = jn.LIF(n=3)
    gap = jn.Network(populations={"a": lif},
                     couplings=[jn.SymmetricGapJunction("a", "a", jn.conn.explicit([0, 1], [1, 2]), g=0.01)])
    syn = jn.Network(populations={"s": jn.SpikeTrains([[1.0]]), "a": lif},
                     couplings=[jn.ExpSynapse("s", "a", jn.conn.all_to_all(), g_max=0.01, name="exc"),
                                jn.DeltaSynapse("s", "a", jn.conn.all_to_all(), weight=0.5),
                                jn.PoissonInput("a", rate=10.0, weight=0.1)])
    for net, edit, value, where, field, want, got in [
        (gap, lambda n: n.couplings[0].g, jnp.full(3, 0.01), r"0\] \('coupling0'\)", r"SymmetricGapJunction\.g",
         r"\(\) or \(2,\)", r"\(3,\)"),
        (syn, lambda n: n.couplings[0].g_max, jnp.full(2, 0.01), r"0\] \('exc'\)", r"ExpSynapse\.g_max",
         r"\(\) or \(3,\)", r"\(2,\)"),
        (syn, lambda n: n.couplings[0].tau, jnp.full(2, 1.0), r"0\] \('exc'\)", r"ExpSynapse\.tau",
         r"\(\) or \(3,\)", r"\(2,\)"),
        (syn, lambda n: n.couplings[0].g_max, jnp.full((3, 1), 0.01), r"0\] \('exc'\)", r"ExpSynapse\.g_max",
         r"\(\) or \(3,\)", r"\(3, 1\)"),
        (syn, lambda n: n.couplings[1].weight, jnp.full(2, 0.5), r"1\] \('coupling1'\)", r"DeltaSynapse\.weight",
         r"\(\) or \(3,\)", r"\(2,\)"),
        (syn, lambda n: n.couplings[2].rate, jnp.full(2, 10.0), r"2\] \('coupling2'\)", r"PoissonInput\.rate",
         r"\(\) or \(3,\)", r"\(2,\)"),
    ]:
        with pytest.raises(ValueError, match=_EDITED.format("") + r"Network\.couplings\[" + where + ": " + field
                                             + r" expects shape " + want + r" \(one value per connection, \d connections\), "
                                             r"got " + got):
            jn.simulate(eqx.tree_at(edit, net, value), 1.0)


def test_simulate_names_a_class_given_for_an_instance():
    with pytest.raises(ValueError, match=r"simulate expects a model instance, got the class LIF; call it: jn\.LIF\(\.\.\.\)"):
        jn.simulate(jn.LIF, 10)
    with pytest.raises(ValueError, match=r"stimuli\[0\] expects a stimulus instance, got the class StepCurrent; "
                                         r"call it: jn\.StepCurrent\(\.\.\.\)"):
        jn.simulate(jn.LIF(), 10, stimuli=[jn.StepCurrent])


def test_target_location_written_as_a_list_suggests_a_tuple():
    cell = jn.Cell([jn.Cable(length=20, diam=20, name="soma"), jn.Cable(length=100, diam=1, nseg=4, name="dend")],
                   parents=[None, ("soma", 1.0)])
    for target in (["dend", 0.9], [["dend", 0.9], ("soma", 0.5)]):
        with pytest.raises(ValueError, match=r"location written as a list.*tuple \(section, x\), e\.g\. \('dend', 0\.9\)"):
            jn.simulate(cell, 1, stimuli=[jn.StepCurrent(amp=0.1, delay=0, dur=1, target=target)])
    # Other wrong targets name the location form too.
    with pytest.raises(ValueError, match=r"a location \(section, x\) as a tuple"):
        jn.simulate(cell, 1, stimuli=[jn.StepCurrent(amp=0.1, delay=0, dur=1, target=[0.5, "x", 2])])


def test_a_wrong_part_of_a_stimulus_target_names_the_whole_target():
    # As record= names the whole place (before: "..., got True", not the tuple given).
    with pytest.raises(ValueError, match=r"^stimulus target expects None, .* got \('dend', True\)$"):
        jn.StepCurrent(amp=0.1, delay=0, dur=1, target=("dend", True))
    with pytest.raises(ValueError, match=r"a population's name; got \('dend', \[\[0, 1\]\]\)$"):
        jn.StepCurrent(amp=0.1, delay=0, dur=1, target=("dend", [[0, 1]]))
    with pytest.raises(ValueError, match=r"^stimulus target \['dend', 0\.9\] in \('pop', \['dend', 0\.9\]\) "
                                         r"looks like a location written as a list"):
        jn.StepCurrent(amp=0.1, delay=0, dur=1, target=("pop", ["dend", 0.9]))


def test_a_location_x_as_a_length_is_refused_and_a_0d_array_is_a_number():
    """x written as a length (("dend", 50 * u.um), "50 µm along") raised saiunit's own
    TypeError naming neither the stimulus nor x; a 0-d array x was refused as "not a
    location (section, x) as a tuple". Now the first is a ValueError saying what x is,
    and the second is the number it holds (indices too)."""
    import saiunit as u

    cell = jn.Cell([jn.Cable(length=20, diam=20, name="soma"), jn.Cable(length=100, diam=1, nseg=4, name="dend")],
                   parents=[None, ("soma", 1.0)])
    for target in (("dend", 50 * u.um), 0.5 * u.um, [("dend", 0.5), ("soma", 2 * u.um)]):
        with pytest.raises(ValueError, match=r"a location's x is a plain number in \[0, 1\], the fraction of the "
                                             r"section's length .* x = d / L"):
            jn.StepCurrent(amp=0.1, delay=0, dur=1, target=target)
    with pytest.raises(ValueError, match=r"fi_curve: target=.*a location's x is a plain number"):
        jn.fi_curve(cell, [0.1], dur=5.0, target=("dend", 50 * u.um))
    as_array = jn.StepCurrent(amp=0.1, delay=0, dur=1, target=("dend", jnp.asarray(0.75)))
    assert as_array.target == jn.StepCurrent(amp=0.1, delay=0, dur=1, target=("dend", 0.75)).target
    assert jn.StepCurrent(amp=0.1, delay=0, dur=1, target=[np.int64(1), jnp.asarray(2)]).target == (1, 2)


def test_a_channel_class_given_for_an_instance_is_named():
    with pytest.raises(ValueError, match=r"Compartment\.channels\[0\] expects a channel instance, got the class HH; "
                                         r"call it: jn\.channels\.HH\(\.\.\.\)"):
        jn.Compartment(length=20.0, diam=20.0, channels=[jn.channels.HH])


def test_simulates_warnings_point_at_the_callers_line():
    # (A wrapper around simulate, to hint NEURON's argument names, made every warning
    # point into simulate.py instead; the hint was dropped.)
    import warnings

    tiny = jn.Compartment(length=20e-6, diam=20e-6, channels=[jn.channels.Leak()])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        jn.simulate(tiny, 5.0, stimuli=[jn.StepCurrent(0.1, 1.0, 10.0)])
        jn.simulate(jn.LIF(spike_capacity=1), 50.0, stimuli=[jn.StepCurrent(3.0)])
    assert len(caught) == 2 and all(w.filename == __file__ for w in caught), [(w.filename, str(w.message)[:60]) for w in caught]


def test_warnings_of_fits_analyses_and_networks_point_at_the_callers_line():
    # Fixed stack levels pointed into jaxneuro where calls went through a wrapper
    # (jn.fit's: jaxneuro/_callable.py) or a helper; the first frame outside jaxneuro is
    # the user's line, however deep the call.
    import warnings

    lif = jn.LIF(spike_capacity=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        jn.fit(lambda m: (m.C - 0.2) ** 2, jn.LIF(C=0.3), lambda m: m.C, optimizer=optax.sgd(-0.1), steps=3)
        trace = jn.simulate(lif, 50.0, stimuli=[jn.StepCurrent(3.0)])
        jn.firing_rate(trace, 0.0, 49.0)
        jn.simulate(jn.Network({"a": lif}), 50.0, stimuli=[jn.StepCurrent(3.0, target="a")])
    messages = [str(w.message)[:40] for w in caught]
    assert any(m.startswith("fit: the loss rose") for m in messages), messages
    assert any(m.startswith("firing_rate:") for m in messages), messages
    assert any("in population 'a'" in str(w.message) for w in caught), messages
    assert all(w.filename == __file__ for w in caught), [(w.filename, m) for w, m in zip(caught, messages)]
