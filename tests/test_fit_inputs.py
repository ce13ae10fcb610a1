"""jn.fit and jn.losses given unusual inputs: quantities, NaN targets, wrong shapes,
interrupted fits, a checkpoint of another optimiser, starts that stop."""

import json
import re
import math
import subprocess
import sys
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import saiunit as u

import jaxneuro as jn
from jaxneuro.fit import checkpoint as ckpt
from jaxneuro.fit import loop


def seed000_neuron(**kw):
    # dendrify's leakyIF without threshold: Rin = 1/gL = 50 MΩ.
    return jn.LIF(**{"C": 250 * u.pF, "gL": 20 * u.nS, "EL": -70 * u.mV, "V_th": math.inf, **kw})


def rin_loss(model):
    return jn.losses.input_resistance(model, 62.5)


@pytest.fixture(scope="module")
def spiking():
    """A LIF trace with 5 spikes (about 7, 17, 28, 38, 49 ms) and a population of 4."""
    trace = jn.simulate(jn.LIF(), 50.0, dt=0.1, stimuli=[jn.StepCurrent(3.0)])
    pop = jn.simulate(jn.LIF(n=4), 50.0, dt=0.1, stimuli=[jn.StepCurrent(3.0)])
    return trace, pop


# --- init as quantities ---------------------------------------------------------------


def test_init_quantities_are_converted_to_the_parameters_unit():
    neuron = seed000_neuron()  # gL in µS
    for init in (jnp.array([15.0, 25.0]) * u.nS, {"gL": jnp.array([15.0, 25.0]) * u.nS}):
        r = jn.fit(rin_loss, neuron, params=lambda m: m.gL, init=init, steps=0)
        np.testing.assert_allclose(r.param_history["gL"][0], [0.015, 0.025], rtol=1e-12)
    r = jn.fit(rin_loss, neuron, params=lambda m: (m.gL, m.C),
               init=(jnp.array([15.0, 25.0]) * u.nS, jnp.array([0.2, 0.3])), steps=0)
    np.testing.assert_allclose(r.param_history["C"][0], [0.2, 0.3], rtol=1e-12)  # plain: in nF
    with pytest.raises(ValueError, match=r"init\['gL'\].*conductance.*mV"):
        jn.fit(rin_loss, neuron, params=lambda m: m.gL, init=jnp.array([15.0, 25.0]) * u.mV, steps=0)


# --- interrupted fits -----------------------------------------------------------------


def test_an_interrupted_fit_returns_the_steps_completed():
    def interrupt_at_5(step, loss):
        if step == 5:
            raise KeyboardInterrupt

    full = jn.fit(rin_loss, seed000_neuron(), params=lambda m: m.gL, steps=10)
    with pytest.warns(RuntimeWarning, match="interrupted at step 5"):
        r = jn.fit(rin_loss, seed000_neuron(), params=lambda m: m.gL, steps=10, callback=interrupt_at_5)
    assert r.stopped and r.steps == 5
    np.testing.assert_array_equal(r.loss_history, full.loss_history[:6])
    np.testing.assert_array_equal(r.param_history["gL"], full.param_history["gL"][:6])
    assert float(r.model.gL) == full.param_history["gL"][5]


def test_an_error_during_a_fit_carries_the_partial_result():
    def fail_at_3(step, loss):
        if step == 3:
            raise RuntimeError("log server down")

    with pytest.raises(RuntimeError, match="log server down") as info:
        jn.fit(rin_loss, seed000_neuron(), params=lambda m: m.gL, steps=10, callback=fail_at_3)
    partial = info.value.partial_result
    assert partial.steps == 3 and partial.stopped and len(partial.param_history["gL"]) == 4
    assert any("partial_result" in note for note in info.value.__notes__)
    # An error before any step completed: nothing to attach.
    with pytest.raises(ValueError, match="returning a scalar") as info:
        jn.fit(lambda m: jnp.stack([m.gL, m.C]), seed000_neuron(), params=lambda m: m.gL, steps=3)
    assert info.value.partial_result is None
    assert any("partial_result is None" in note for note in info.value.__notes__)
    # on_nonfinite="raise" keeps the steps up to the non-finite one.
    with pytest.raises(FloatingPointError) as info:
        jn.fit(lambda m: jnp.sqrt(m.gL - 0.015), seed000_neuron(), params=lambda m: m.gL, steps=50,
               on_nonfinite="raise")
    partial = info.value.partial_result
    assert np.isnan(partial.loss_history[-1]) and np.all(np.isfinite(partial.loss_history[:-1]))


def test_a_partial_result_keeps_only_whole_steps():
    # Interrupted between the appends of step 2: its loss is there, its values are not.
    sel = jn.fit.Selection(seed000_neuron(), lambda m: m.gL)
    losses = [np.float64(3.0), np.float64(2.0), np.float64(1.0)]
    hist = {"gL": [np.float64(0.02), np.float64(0.019)]}
    r = loop._partial_result(seed000_neuron(), sel, losses, hist, None, [], set())
    assert r.steps == 1 and len(r.param_history["gL"]) == 2 and r.stopped
    assert loop._partial_result(seed000_neuron(), sel, [], {"gL": []}, None, [], set()) is None


# --- checkpoints of another optimiser -------------------------------------------------


def test_resume_refuses_a_checkpoint_of_another_optimizer(tmp_path):
    path = tmp_path / "ckpt"
    fit = lambda steps, opt, **kw: jn.fit(rin_loss, seed000_neuron(), params=lambda m: m.gL, steps=steps,
                                          optimizer=opt, **kw)
    fit(5, optax.adam(0.05), checkpoint=path)
    with pytest.raises(ValueError, match=r"different fit.*optimizer.*step_size is -0.05 there, -0.5 here"):
        fit(10, optax.adam(0.5), checkpoint=path, resume=True)
    for other in (optax.sgd(0.05), optax.adamw(0.05), optax.adam(0.05, b1=0.5)):
        with pytest.raises(ValueError, match="different fit.*optimizer"):
            fit(10, other, checkpoint=path, resume=True)
    with warnings.catch_warnings():  # (its final loss above its best: not what this checks)
        warnings.filterwarnings("ignore", "fit: the final loss", RuntimeWarning)
        resumed = fit(10, optax.adam(0.05), checkpoint=path, resume=True)  # a fresh but equal optimiser
        full = fit(10, optax.adam(0.05))
    np.testing.assert_array_equal(resumed.loss_history, full.loss_history)
    np.testing.assert_array_equal(resumed.param_history["gL"], full.param_history["gL"])


def test_the_optimizer_description_is_the_same_in_another_process():
    code = ("import json, optax; from jaxneuro.fit.checkpoint import describe_optimizer; "
            "print(json.dumps(describe_optimizer(optax.adam(optax.exponential_decay(0.05, 10, 0.5)).update)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    here = ckpt.describe_optimizer(optax.adam(optax.exponential_decay(0.05, 10, 0.5)).update)
    assert json.loads(out) == json.loads(json.dumps(here))
    other = ckpt.describe_optimizer(optax.adam(optax.exponential_decay(0.05, 10, 0.8)).update)
    assert json.loads(json.dumps(other)) != json.loads(out)


# --- one start stopping ---------------------------------------------------------------


def test_stop_stops_only_the_failing_start():
    # NaN below gL = 0.01; minimum at gL = 0.03. Start 1 begins in the NaN region.
    loss = lambda m: jnp.log(m.gL / 0.03) ** 2 + 0.0 * jnp.sqrt(m.gL - 0.01)
    with pytest.warns(RuntimeWarning, match=r"start 1.*that start stops there \(the other starts go on\)") as rec:
        r = jn.fit(loss, seed000_neuron(), params=lambda m: m.gL, init=jnp.array([0.02, 0.009]), steps=30)
    assert len([w for w in rec if "start 1" in str(w.message)]) == 1
    assert not r.stopped and r.steps == 30
    assert [(e.step, e.start) for e in r.nonfinite] == [(0, 1)]  # nothing more from start 1
    frozen = r.param_history["gL"][:, 1]
    assert np.all(frozen == frozen[0]) and frozen[0] == pytest.approx(0.009, rel=1e-14)
    assert r.params["gL"][0] == pytest.approx(0.03, rel=1e-3)
    assert r.start(1).stopped and not r.start(0).stopped
    assert float(r.best_model.gL) == pytest.approx(0.03, rel=1e-3) and r.best_start == 0
    # When every start has stopped, the fit ends there.
    with pytest.warns(RuntimeWarning, match="every start has now stopped"):
        r = jn.fit(loss, seed000_neuron(), params=lambda m: m.gL, init=jnp.array([0.009, 0.008]), steps=30)
    assert r.stopped and r.steps == 0 and {e.start for e in r.nonfinite} == {0, 1}


# --- losses: NaN targets ----------------------------------------------------------------


def test_nan_targets_are_rejected_naming_the_target(spiking):
    trace, pop = spiking
    spikes = np.asarray(trace.spikes[:5])
    with_nan = spikes.copy()
    with_nan[1] = np.nan
    for loss in (jn.losses.spike_times, lambda a, b: jn.losses.van_rossum(a, b, 5.0)):
        with pytest.raises(ValueError, match="target holds 1 value.*NaN.*index \\(1,\\)"):
            loss(trace.spikes, with_nan)
        assert np.isfinite(float(loss(trace.spikes, np.append(spikes, np.inf))))  # inf: padding
    with pytest.raises(ValueError, match="input_resistance: target holds"):
        jn.losses.input_resistance(seed000_neuron(), np.nan)
    with pytest.raises(ValueError, match="firing_rate: target holds"):
        jn.losses.firing_rate(pop, [90.0, np.nan, 90.0, 90.0])
    with pytest.raises(ValueError, match="relative_error: target holds"):
        jn.losses.relative_error(1.0, np.inf)
    with pytest.raises(ValueError, match=r"summary: targets\['mean_v'\] holds"):
        jn.losses.summary(trace, {"mean_v": np.nan})
    target_v = np.asarray(trace.v).copy()
    target_v[100] = np.nan
    with pytest.raises(ValueError, match=r"voltage: target holds 1 value.*index \(100,\)"):
        jn.losses.voltage(trace, target_v)
    # Inside jn.fit (traced): the target is blamed, not the parameter.
    sim = lambda m: jn.simulate(m, 50.0, dt=0.1, stimuli=[jn.StepCurrent(3.0)])
    with pytest.raises(ValueError, match="voltage: target holds"):
        jn.fit(lambda m: jn.losses.voltage(sim(m), target_v), jn.LIF(gL=0.12), params=lambda m: m.gL, steps=2)
    # A traced target is not checked (its values are unknown): the loss is NaN.
    assert np.isnan(float(jax.jit(lambda t: jn.losses.voltage(trace, t))(target_v)))


# --- losses: shapes, time constants, units --------------------------------------------


def test_targets_that_would_enlarge_the_prediction_are_rejected(spiking):
    trace, pop = spiking
    with pytest.raises(ValueError, match=r"input_resistance: target of shape \(3,\) .* shape \(\)"):
        jn.losses.input_resistance(seed000_neuron(), [62.5, 80.0, 100.0])
    trains = jnp.tile(trace.spikes[:5], (3, 1))
    with pytest.raises(ValueError, match=r"spike_times: target of shape \(3, 5\) .* shape \(100,\)"):
        jn.losses.spike_times(trace.spikes, trains)
    with pytest.raises(ValueError, match=r"firing_rate: target of shape \(3,\) .* shape \(4,\)"):
        jn.losses.firing_rate(pop, [50.0, 60.0, 70.0])
    with pytest.raises(ValueError, match=r"summary: targets\['mean_v'\] of shape \(2,\)"):
        jn.losses.summary(trace, {"mean_v": [-60.0, -61.0]})
    # One target for all neurons, or one per neuron, still work.
    # (Equal to rounding: the mean over a broadcast target may sum in another order.)
    assert float(jn.losses.firing_rate(pop, 95.0)) == pytest.approx(float(jn.losses.firing_rate(pop, [95.0] * 4)),
                                                                    rel=1e-12)
    assert float(jn.losses.spike_times(pop.spikes, trace.spikes[:5])) < 1e-20  # one train for all
    assert float(jn.losses.input_resistance(seed000_neuron(), [50.0])) == pytest.approx(0.0, abs=1e-20)


def test_van_rossum_tau_must_be_positive_and_finite(spiking):
    trace, _ = spiking
    for tau in (0.0, -5.0, math.inf, -1 * u.ms):
        with pytest.raises(ValueError, match="van_rossum: tau expects a positive, finite time constant in ms"):
            jn.losses.van_rossum(trace.spikes, trace.spikes[:3], tau)
    assert float(jn.losses.van_rossum(trace.spikes, trace.spikes[:3], 5 * u.ms)) == float(
        jn.losses.van_rossum(trace.spikes, trace.spikes[:3], 5.0))


def test_losses_take_quantities_of_the_right_dimension(spiking):
    trace, _ = spiking
    spikes = np.asarray(trace.spikes[:5])
    shifted = spikes + 1.0
    L = jn.losses
    assert float(L.spike_times(trace.spikes, shifted / 1000 * u.second)) == pytest.approx(
        float(L.spike_times(trace.spikes, shifted)), rel=1e-12)
    assert float(L.van_rossum(trace.spikes, shifted * u.ms, 5.0)) == float(L.van_rossum(trace.spikes, shifted, 5.0))
    v = np.asarray(trace.v)
    assert float(L.voltage(trace, (v + 1.0) / 1000 * u.volt)) == pytest.approx(1.0, rel=1e-9)
    assert float(L.voltage(trace, (v + 1.0) * u.mV, windows=(0.01 * u.second, 0.02 * u.second))) == float(
        L.voltage(trace, v + 1.0, windows=(10.0, 20.0)))
    assert float(L.voltage(trace, v + 1.0, windows=[(0 * u.ms, 10 * u.ms), (20 * u.ms, 30 * u.ms)])) == float(
        L.voltage(trace, v + 1.0, windows=[(0.0, 10.0), (20.0, 30.0)]))
    assert float(L.spike_rate(trace.spikes, 0.0 * u.second, 0.05 * u.second)) == float(
        L.spike_rate(trace.spikes, 0.0, 50.0))
    assert float(L.firing_rate(trace.spikes, 95.0 * u.Hz, 0 * u.ms, 50 * u.ms)) == float(
        L.firing_rate(trace.spikes, 95.0, 0.0, 50.0))
    stats = L.summary_statistics(trace, window=(0.0 * u.second, 0.02 * u.second))
    assert float(stats["mean_v"]) == float(L.summary_statistics(trace, window=(0.0, 20.0))["mean_v"])
    assert float(L.summary(trace, {"mean_v": -0.060 * u.volt, "rate": 0.1 * u.kHz})) == pytest.approx(
        float(L.summary(trace, {"mean_v": -60.0, "rate": 100.0})), rel=1e-12)
    for call, name in [(lambda: L.spike_times(trace.spikes, spikes * u.mV), "spike_times: target"),
                       (lambda: L.voltage(trace, v * u.ms), "target"),
                       (lambda: L.voltage(trace, v, windows=(0 * u.mV, 10 * u.mV)), "windows"),
                       (lambda: L.spike_rate(trace.spikes, 0 * u.mV, 50.0), "start"),
                       (lambda: L.firing_rate(trace.spikes, 95.0, 0.0, 50 * u.mV), "stop"),
                       (lambda: L.summary(trace, {"mean_v": -60 * u.ms}), "targets['mean_v']"),
                       (lambda: L.summary_statistics(trace, window=(0 * u.nA, 1 * u.nA)), "window")]:
        with pytest.raises(ValueError, match=re.escape(f"parameter {name!r} expects a")):
            call()


# --- fit's arguments --------------------------------------------------------------------


def test_fit_names_a_model_that_is_not_a_module_and_a_loss_that_is_not_a_number(spiking):
    trace, _ = spiking
    with pytest.raises(ValueError, match="model expects an Equinox module.*'lif'"):
        jn.fit(lambda m: 0.0, "lif", params=lambda m: m.gL, steps=1)
    with pytest.raises(ValueError, match="loss expects a function returning a scalar.*got 'abc'"):
        jn.fit(lambda m: "abc", seed000_neuron(), params=lambda m: m.gL, steps=1)
    with pytest.raises(ValueError, match="loss expects a function returning a scalar.*got a Trace"):
        jn.fit(lambda m: jn.simulate(m, 5.0), seed000_neuron(), params=lambda m: m.gL, steps=1)


def test_a_complex_integer_or_boolean_loss_is_refused():
    # (before: a complex loss ran to the end, its history complex and its imaginary part
    # dropped with only JAX's ComplexWarning; an integer or boolean loss ran with no gradient.)
    neuron = seed000_neuron()
    with pytest.raises(ValueError, match=r"loss expects a function returning a real scalar, got a complex value "
                                         r"\(complex128\).*imaginary part"):
        jn.fit(lambda m: rin_loss(m) + 0j, neuron, params=lambda m: m.gL, steps=1, progress=False)
    for bad, kind in [(lambda m: 3, r"an integer value \(int64\)"), (lambda m: m.gL > 0, r"a boolean value \(bool\)")]:
        with pytest.raises(ValueError, match=rf"loss expects a function returning a real floating-point scalar, "
                                             rf"got {kind}, which has no gradient"):
            jn.fit(bad, neuron, params=lambda m: m.gL, steps=1, progress=False)
    with pytest.raises(ValueError, match=r"got a complex value"):  # steps=0 evaluates the loss only
        jn.fit(lambda m: rin_loss(m) + 0j, neuron, params=lambda m: m.gL, steps=0, progress=False)


def test_a_checkpoint_path_that_is_a_file_is_refused_and_left_alone(tmp_path):
    # (before: FileExistsError: [Errno 17] File exists, naming neither checkpoint nor a folder.)
    file = tmp_path / "notes.txt"
    file.write_text("keep me")
    for path, where in [(file, "is a file"), (file / "sub", "its parent .* is a file")]:
        with pytest.raises(ValueError, match=rf"checkpoint expects a folder path .*notes.txt.*{where}"):
            jn.fit(rin_loss, seed000_neuron(), params=lambda m: m.gL, steps=1, checkpoint=path, progress=False)
    assert file.read_text() == "keep me" and sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_a_parameter_selected_with_the_whole_model_says_params_selected_it():
    # (before: "parameter 'V_th' must start finite, got inf", about a parameter never chosen.)
    neuron = seed000_neuron()  # V_th = inf
    with pytest.raises(ValueError, match=r"parameter 'V_th' must start finite, got inf; 'V_th' was selected by "
                                         r"params, which returned the whole model: selecting a module \(or the "
                                         r"whole model\) selects every parameter in it\. Select only the "
                                         r"parameters to fit, e\.g\. params=lambda m: \(m\.C, m\.gL\)"):
        jn.fit(rin_loss, neuron, params=lambda m: m, steps=1, progress=False)
    with pytest.raises(ValueError, match=r"^parameter 'V_th' must start finite, got inf$"):  # chosen: no note
        jn.fit(rin_loss, neuron, params=lambda m: m.V_th, steps=1, progress=False)


def test_reversed_windows_negative_count_weights_empty_targets_and_no_starts_are_refused(spiking):
    """(before: a rate of 0 in a reversed window, a negative loss for a wrong spike
    count, 0.0 for no targets, a TypeError from inside the jitted step for zero starts.)"""
    spikes = jnp.array([[1.0, 5.0, jnp.inf]])
    with pytest.raises(ValueError, match=r"firing_rate expects stop > start \(ms\), got start=100.0, stop=0.0"):
        jn.losses.firing_rate(spikes, 10.0, 100.0, 0.0)
    with pytest.raises(ValueError, match=r"firing_rate expects stop > start"):
        jn.losses.firing_rate(spiking[0], 10.0, start=60.0, stop=20.0)
    with pytest.raises(ValueError, match=r"spike_times: count_weight expects a number >= 0"):
        jn.losses.spike_times(spikes, spikes, count_weight=-1.0)
    with pytest.raises(ValueError, match=r"summary: targets is empty"):
        jn.losses.summary(spiking[0], {})
    neuron = jn.LIF(V_th=math.inf)
    with pytest.raises(ValueError, match=r"init\['gL'\] holds no starting values \(shape \(0,\)\)"):
        jn.fit(lambda m: jn.losses.input_resistance(m, 62.5), neuron, params=lambda m: m.gL,
               init=jnp.zeros((0,)), steps=2)


def test_an_uphill_fit_warns_and_a_static_field_is_named():
    # optax.adam(-0.05) climbed the loss 0.040 -> 0.268 in ten steps without a word.
    with pytest.warns(RuntimeWarning, match=r"fit: the loss rose at every step, from .* moved uphill .* check its "
                                             r"learning rate"):
        result = jn.fit(rin_loss, seed000_neuron(), params=lambda m: m.gL, optimizer=optax.adam(-0.05), steps=6)
    assert result.best_step == 0 and float(result.loss_history[-1]) > float(result.loss_history[0])
    import warnings
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")  # downhill: no uphill warning
        jn.fit(rin_loss, seed000_neuron(), params=lambda m: m.gL, optimizer=optax.adam(0.05), steps=6)
        # Started at the optimum (loss 0 to rounding), Adam wanders off it: no uphill alarm
        # either (a final loss far above the best may still say to take best_model).
        jn.fit(rin_loss, seed000_neuron(gL=16 * u.nS), params=lambda m: m.gL, steps=6)
    assert not [w for w in rec if "rose at every step" in str(w.message)]
    # The value alone ("params selected 100") did not say which field.
    with pytest.raises(ValueError, match=r"params selected 100 \(the static field spike_capacity\), which is not"):
        jn.fit(rin_loss, seed000_neuron(spike_capacity=100), params=lambda m: m.spike_capacity, steps=2)
    # A static field of several numbers was shown by its first ("params selected 0.0").
    cable = jn.Cable(arc3d=(0.0, 50.0, 100.0), diam3d=np.array([3.0, 2.0, 1.0]), nseg=3,
                     channels=[jn.channels.Leak()], name="ap")
    with pytest.raises(ValueError, match=r"params selected \(0\.0, 50\.0, 100\.0\) \(the static field "
                                         r"sections\[0\]\.arc3d\), which is not"):
        jn.fit(lambda c: jn.losses.input_resistance(c, 100.0).sum(), jn.Cell([cable]),
               params=lambda c: c.sections[0].arc3d, steps=1)
    with pytest.raises(ValueError, match=r"params selected \(0\.0, 50\.0, 100\.0\) \(the static field "):
        jn.fit(lambda c: jn.losses.input_resistance(c, 100.0).sum(), jn.Cell([cable]),
               params=lambda c: (c.sections[0].Ra, c.sections[0].arc3d), steps=1)


@pytest.mark.parametrize("init", [[0.015, 0.025], (0.015, 0.025), [15, 25] * u.nS, np.array([0.015, 0.025]),
                                  [15 * u.nS, 25 * u.nS]])
def test_fit_init_as_a_plain_list_of_starts(init):
    # A list or tuple of plain numbers is one parameter's starts, as an array or a quantity is.
    neuron = jn.LIF(C=0.25, gL=0.02, V_th=np.inf)
    r = jn.fit(lambda m: jn.losses.input_resistance(m, 62.5), neuron, params=lambda m: m.gL, init=init,
               steps=1, progress=False)
    assert r.n_starts == 2
    np.testing.assert_allclose(r.initial_params["gL"], [0.015, 0.025], rtol=1e-6)


@pytest.mark.filterwarnings("ignore:fit. the gradient with respect to 'C'")
def test_fit_init_lists_per_parameter_and_bad_lists():
    neuron = jn.LIF(C=0.25, gL=0.02, V_th=np.inf)
    loss = lambda m: jn.losses.input_resistance(m, 62.5)  # noqa: E731
    two = lambda m: (m.gL, m.C)  # noqa: E731
    r = jn.fit(loss, neuron, params=two, init=([0.015, 0.025], [0.2, 0.3]), steps=1, progress=False)
    assert r.n_starts == 2
    np.testing.assert_allclose(r.initial_params["C"], [0.2, 0.3], rtol=1e-6)
    for bad, why in [([0.01, [0.02, 0.03]], "ragged"), (["a", "b"], "holds 'a'"), ([True, False], "holds True"),
                     ([15 * u.nS, 0.025], "holds Quantity")]:
        with pytest.raises(ValueError, match=rf"init\['gL'\] expects the starting values as numbers.*{why}"):
            jn.fit(loss, neuron, params=lambda m: m.gL, init=bad, steps=1, progress=False)


def test_spike_losses_refuse_an_overflowed_trace_also_under_jit_and_in_fit():
    # A LIF firing 11 spikes into a buffer of 5: the losses read 5, and under jit
    # (jn.fit) simulate cannot warn. Given the Trace, they refuse: at once when eager,
    # when the program runs under jit.
    import equinox as eqx

    def run(m):
        return jn.simulate(m, 200.0, dt=0.1, stimuli=[jn.StepCurrent(2.0)], save_every=10.0)

    small = jn.LIF(spike_capacity=5)
    target = run(jn.LIF(spike_capacity=20)).spikes
    with pytest.warns(RuntimeWarning, match="spike buffer overflow"):
        eager = run(small)
    # Read from the truncated array, the same trains seem to differ by their count
    # alone (6 missing spikes: 36 ms² of count penalty where the loss is 0), and the
    # rate from intervals past the 5th spike is 0 Hz (a loss of 1.0 for 50 Hz).
    assert float(eager.spike_count) == 11
    assert float(jn.losses.spike_times(eager.spikes, target)) == pytest.approx(36.0)
    assert float(jn.losses.firing_rate(eager.spikes, 50.0, 100.0, 200.0)) == pytest.approx(1.0)
    for loss in (lambda tr: jn.losses.spike_times(tr, target), lambda tr: jn.losses.van_rossum(tr, target, 5.0),
                 lambda tr: jn.losses.firing_rate(tr, 50.0, 100.0, 200.0)):
        with pytest.raises(ValueError, match=r"spikes: the trace's spike buffer overflowed in 1 neuron\(s\): "
                                             r"trace.spikes keeps the first 5 .*raise the model's spike_capacity"):
            loss(eager)
    # The whole run's count is exact: method="count" needs no spike times.
    assert float(eager.spike_count) > 5
    assert float(jn.losses.firing_rate(eager, 5.0 * float(eager.spike_count), method="count")) == 0.0
    with pytest.raises(Exception, match="spike buffer overflowed"):
        jax.block_until_ready(eqx.filter_jit(lambda m: jn.losses.spike_times(run(m), target))(small))
    with pytest.raises(Exception, match="spike buffer overflowed"):
        jn.fit(lambda m: jn.losses.spike_times(run(m), target), small, params=lambda m: m.gL, steps=2)
    # Enough room: the same numbers as from the arrays.
    big = run(jn.LIF(spike_capacity=20))
    assert float(jn.losses.spike_times(big, target)) == float(jn.losses.spike_times(big.spikes, target)) == 0.0
    fitted = jn.fit(lambda m: jn.losses.spike_times(run(m), target), jn.LIF(spike_capacity=20, gL=0.11),
                    params=lambda m: m.gL, steps=2)
    assert np.isfinite(fitted.best_loss)
