"""jn.fit and jn.losses: the design card's fitting cases, transforms, multi-start,
non-finite handling, checkpoints, and the losses against closed forms."""

import importlib.util
import json
import math
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import saiunit as u

import jaxneuro as jn

ROOT = Path(__file__).resolve().parents[1]


def seed000_neuron(**kw):
    # Seed 000's control neuron: dendrify's leakyIF without threshold, Rin = 1/gL = 50 MΩ.
    return jn.LIF(**{"C": 250 * u.pF, "gL": 20 * u.nS, "EL": -70 * u.mV, "V_th": math.inf, **kw})


def lif_rate(gL, I, C=1.0, EL=-70.0, V_th=-55.0, V_reset=-75.0, t_ref=2.0):
    """Closed-form LIF firing rate (Hz) for a constant current I (nA)."""
    v_inf = EL + I / gL
    return 1000.0 / (t_ref + C / gL * np.log((v_inf - V_reset) / (v_inf - V_th)))


# --- the design card's cases --------------------------------------------------------


def test_seed000_fit_gl_to_a_simulated_input_resistance():
    stim = jn.StepCurrent(-20 * u.pA, 5.0, 150.0)

    def loss(model):
        trace = jn.simulate(model, 160.0, dt=0.1, stimuli=[stim])
        return jn.losses.input_resistance(trace, 62.5 * u.Mohm, stim)

    neuron = seed000_neuron()
    result = jn.fit(loss, neuron, params=lambda m: m.gL, steps=40)
    assert result.names == ("gL",)
    assert result.param_history["gL"][0] == pytest.approx(0.02)  # Rin 50 MΩ at the start
    assert 1.0 / float(result.model.gL) == pytest.approx(62.5, rel=0.005)  # analytic Rin
    trace = jn.simulate(result.model, 160.0, dt=0.1, stimuli=[stim])
    assert float(jn.input_resistance(trace, stim)) == pytest.approx(62.5, rel=0.005)
    assert result.loss_history.shape == (41,)
    assert result.best_loss <= result.loss_history[-1]
    assert float(loss(result.best_model)) == pytest.approx(result.best_loss, rel=1e-9)


def hh_cell(gnabar=0.12, gkbar=0.036):
    return jn.Compartment(length=20, diam=20, channels=[jn.channels.HH(gnabar=gnabar, gkbar=gkbar)])


def test_hh_fit_gnabar_gkbar_to_spike_times():
    stim = jn.StepCurrent(0.1, 2.0, 100.0)

    def spikes(model):
        return jn.spike_times(jn.simulate(model, 40.0, dt=0.05, stimuli=[stim]), 0.0, capacity=6)

    target = spikes(hh_cell(0.12, 0.036))
    start = hh_cell(0.09, 0.05)
    n_target = int(jn.spike_count(target))
    assert n_target == 3 and int(jn.spike_count(spikes(start))) != n_target  # a wrong start

    result = jn.fit(lambda m: jn.losses.spike_times(spikes(m), target), start,
                    params=lambda m: (m.channels[0].gnabar, m.channels[0].gkbar), steps=60)
    assert result.names == ("channels[0].gnabar", "channels[0].gkbar")
    fitted = np.asarray(spikes(result.model))
    assert int(np.sum(np.isfinite(fitted))) == n_target
    np.testing.assert_array_less(np.abs(fitted[:n_target] - np.asarray(target)[:n_target]), 0.1)


def test_lif_population_fits_each_neuron_to_its_own_rate():
    I = 3.0
    targets = np.array([60.0, 70.0, 80.0, 90.0])
    pop = jn.LIF(n=4, gL=jnp.full(4, 0.1), spike_capacity=40)

    def loss(model):
        trace = jn.simulate(model, 120.0, dt=0.1, stimuli=[jn.StepCurrent(I)], save_every=10.0)
        return jn.losses.firing_rate(trace, targets)

    result = jn.fit(loss, pop, params=lambda m: m.gL, steps=40)
    np.testing.assert_allclose(lif_rate(np.asarray(result.model.gL), I), targets, rtol=5e-3)


def test_firing_rate_count_method_uses_the_surrogate_spike_count():
    targets = np.array([50.0, 80.0])  # 5 and 8 spikes in 100 ms

    def loss(model):
        trace = jn.simulate(model, 100.0, dt=0.1, stimuli=[jn.StepCurrent(3.0)], save_every=10.0)
        return jn.losses.firing_rate(trace, targets, method="count")

    smooth = jn.LIF(n=2, gL=jnp.full(2, 0.1), spike_capacity=40, surrogate=jn.surrogate.Sigmoid(width=2.0))
    result = jn.fit(loss, smooth, params=lambda m: m.gL, steps=40)
    # Both fire too fast at gL = 0.1 (about 95 Hz): the surrogate gradient raises gL.
    assert np.all(result.param_history["gL"][1] > 0.1)
    assert result.best_loss == 0.0  # exact counts: 5 and 8 spikes


@pytest.mark.parametrize("save_every", [10.0, 30.0])
def test_firing_rate_count_is_over_the_whole_run(save_every):
    """The whole run's spike count over the run's length: with saves every 30 ms the
    last sample is at 90 of 100 ms, and dividing by the samples' span read 55.6 Hz for
    5 spikes."""
    trace = jn.simulate(jn.LIF(), 100.0, dt=0.1, stimuli=[jn.StepCurrent(2.0)], save_every=save_every)
    assert int(trace.spike_count) == 5 and trace.span == (0.0, 100.0)
    assert float(jn.losses.firing_rate(trace, 50.0, method="count")) == pytest.approx(0.0, abs=1e-20)
    assert float(jn.losses.firing_rate(trace, 55.0, method="count")) > 0.0


def cell(g_soma, g_dend):
    soma = jn.Cable(20.0, 20.0, Ra=100.0, nseg=1, channels=[jn.channels.Leak(g=g_soma, e=-65.0)], name="soma")
    dend = jn.Cable(600.0, 1.0, Ra=200.0, nseg=6, channels=[jn.channels.Leak(g=g_dend, e=-65.0)], name="dend")
    return jn.Cell([soma, dend], parents=[None, ("soma", 1.0)])


def test_cell_fits_per_section_densities_to_a_voltage_trace():
    stim = jn.StepCurrent(0.02, 1.0, 20.0, target=("soma", 0.5))

    def sim(model):
        return jn.simulate(model, 30.0, dt=0.1, stimuli=[stim], v0=-65.0, save_every=1.0)

    target = sim(cell(3e-4, 5e-5))  # hidden densities, S/cm²
    result = jn.fit(lambda m: jn.losses.voltage(sim(m), target), cell(1e-4, 1e-4),
                    params=lambda m: (m.sections[0].channels[0].g, m.sections[1].channels[0].g),
                    optimizer=optax.adam(0.1), steps=150)
    assert result.names == ("sections[0].channels[0].g", "sections[1].channels[0].g")
    assert float(result.model.sections[0].channels[0].g) == pytest.approx(3e-4, rel=5e-3)
    assert float(result.model.sections[1].channels[0].g) == pytest.approx(5e-5, rel=5e-3)


def test_a_fit_compiles_one_program_for_its_steps_and_its_final_loss():
    """The loss after the last update comes from the steps' own program (its update
    discarded): a forward program of its own was compiled for it besides (~0.3 s for a
    small model). The final loss is the loss at the fitted values all the same."""
    from test_simulate import _CountCompiles

    def loss(m):
        tr = jn.simulate(m, 20.0, stimuli=[jn.StepCurrent(2.0, 1.0, 1e9)], save_every=1.0)
        return (jnp.mean(tr.v) + 62.0) ** 2

    model = jn.LIF(n=3, gL=jnp.full(3, 0.1))
    with _CountCompiles() as counted:
        result = jn.fit(loss, model, params=lambda m: m.gL, steps=3, optimizer=optax.adam(1e-3))
    programs = [m for m in counted.messages if "one_step" in m or "evaluate" in m]
    assert len(programs) == 1 and "one_step" in programs[0], programs
    assert len(result.loss_history) == 4
    np.testing.assert_allclose(result.loss_history[-1], float(loss(result.model)), rtol=1e-12)


def test_optimizers_with_extra_arguments_get_value_and_value_fn():
    # optax.lbfgs's line search calls the loss itself; one parameter, a few steps.
    result = jn.fit(lambda m: jn.losses.input_resistance(m, 62.5), seed000_neuron(),
                    params=lambda m: m.gL, optimizer=optax.lbfgs(), steps=8)
    assert 1.0 / float(result.model.gL) == pytest.approx(62.5, rel=1e-6)


# --- multi-start --------------------------------------------------------------------


def rin_loss(model):
    return jn.losses.input_resistance(model, 62.5)  # steady-state Rin: no simulation


def test_n_starts_run_in_parallel_and_equal_separate_fits():
    neuron = seed000_neuron()
    init = jnp.array([0.01, 0.02, 0.04])
    result = jn.fit(rin_loss, neuron, params=lambda m: m.gL, init=init, steps=40)
    assert result.n_starts == 3
    assert result.loss_history.shape == (41, 3)
    assert result.param_history["gL"].shape == (41, 3)
    np.testing.assert_allclose(result.param_history["gL"][0], np.asarray(init), rtol=1e-14)
    np.testing.assert_allclose(1.0 / result.params["gL"], 62.5, rtol=5e-3)
    for i in range(3):
        alone = jn.fit(rin_loss, seed000_neuron(gL=float(init[i])), params=lambda m: m.gL, steps=40)
        np.testing.assert_allclose(result.start(i).param_history["gL"], alone.param_history["gL"], rtol=1e-9)
        np.testing.assert_allclose(result.start(i).loss_history, alone.loss_history, rtol=1e-6, atol=1e-15)
    table = result.summary()
    assert len(table.splitlines()) == 2 + 3 and "gL" in table
    assert result.best_loss == pytest.approx(float(np.min(result.loss_history)))


def test_n_starts_sampled_with_a_key_lie_within_bounds():
    bounds = jn.fit.Bounded(10 * u.nS, 30 * u.nS)  # converted to µS: 0.01 .. 0.03
    result = jn.fit(rin_loss, seed000_neuron(), params=lambda m: m.gL, n_starts=8,
                    key=jax.random.key(0), transforms=bounds, steps=25)
    start = result.param_history["gL"][0]
    assert np.all((start > 0.01) & (start < 0.03)) and len(np.unique(start)) == 8
    hist = result.param_history["gL"]
    assert np.all((hist >= 0.01) & (hist <= 0.03))
    with pytest.raises(ValueError, match="key"):
        jn.fit(rin_loss, seed000_neuron(), params=lambda m: m.gL, n_starts=2)
    # An integer seed, as every other random input takes (it was JAX's raw TypeError).
    seeded = jn.fit(rin_loss, seed000_neuron(), params=lambda m: m.gL, n_starts=8, key=0, transforms=bounds, steps=1)
    keyed = jn.fit(rin_loss, seed000_neuron(), params=lambda m: m.gL, n_starts=8, key=jax.random.key(0),
                   transforms=bounds, steps=1)
    np.testing.assert_array_equal(seeded.param_history["gL"][0], keyed.param_history["gL"][0])
    with pytest.raises(ValueError, match=r"fit: key expects an integer or one JAX PRNG key"):
        jn.fit(rin_loss, seed000_neuron(), params=lambda m: m.gL, n_starts=2, key=jax.random.split(jax.random.key(0)))
    # A key that samples nothing was silently unused.
    with pytest.raises(ValueError, match="key samples the starts of n_starts= without init=; init gives the starts"):
        jn.fit(rin_loss, seed000_neuron(), params=lambda m: m.gL, init=[0.015, 0.025], key=1, steps=1)
    with pytest.raises(ValueError, match="give n_starts= too"):
        jn.fit(rin_loss, seed000_neuron(), params=lambda m: m.gL, key=1, steps=1)


# --- transforms ---------------------------------------------------------------------


def test_bounded_keeps_the_parameter_in_bounds_when_the_optimum_is_outside():
    # Rin = 62.5 MΩ needs gL = 0.016 µS, below the lower bound.
    result = jn.fit(rin_loss, seed000_neuron(), params=lambda m: m.gL,
                    transforms={"gL": jn.fit.Bounded(0.017, 0.03)}, steps=100)
    hist = result.param_history["gL"]
    assert np.all((hist >= 0.017) & (hist <= 0.03))
    # It approaches the bound (the sigmoid flattens there, so slowly) and never crosses it.
    assert np.all(np.diff(hist) < 0) and float(result.model.gL) == pytest.approx(0.017, rel=0.03)


def test_positive_keeps_a_conductance_positive():
    # The loss pulls gL towards -0.01; the default transform for a nonnegative gL keeps it > 0.
    result = jn.fit(lambda m: (m.gL + 0.01) ** 2, seed000_neuron(), params=lambda m: m.gL, steps=50)
    hist = result.param_history["gL"]
    assert np.all(hist > 0) and np.all(np.diff(hist) < 0)
    # Identity lets it go negative (and the fit says it left gL's declared range).
    with pytest.warns(RuntimeWarning, match="'gL' ended at -0.01"):
        result = jn.fit(lambda m: (m.gL + 0.01) ** 2, seed000_neuron(), params=lambda m: m.gL,
                        transforms=jn.fit.Identity(), optimizer=optax.sgd(0.4), steps=50)
    assert float(result.model.gL) == pytest.approx(-0.01, abs=1e-6)


def test_transforms_round_trip_and_reject_starts_outside_their_domain():
    x = jnp.array([0.011, 0.02, 0.029])
    for tf in (jn.fit.Identity(), jn.fit.Positive(), jn.fit.Bounded(0.01, 0.03)):
        np.testing.assert_allclose(tf.forward(tf.inverse(x)), x, rtol=1e-12)
    with pytest.raises(ValueError, match=r"gL.*outside the interval \[0.03, 0.05\] of its Bounded"):
        jn.fit(rin_loss, seed000_neuron(), params=lambda m: m.gL, transforms=jn.fit.Bounded(0.03, 0.05))
    # On a bound (a saturated sigmoid: a fit's result in float32 when the optimum lies
    # past it) it starts a rounding step inside: u finite, the value back to rounding.
    tf = jn.fit.Bounded(0.095, 0.12)
    for u_far in (-60.0, 60.0):
        edge = tf.forward(jnp.asarray(u_far))  # saturated: exactly a bound
        assert float(edge) in (0.095, 0.12)
        u_edge = tf.inverse(edge)
        assert np.isfinite(float(u_edge)) and float(tf.forward(u_edge)) == pytest.approx(float(edge), rel=1e-12)
    on_bound = eqx.tree_at(lambda m: m.gL, seed000_neuron(), tf.forward(jnp.asarray(60.0)))
    again = jn.fit(rin_loss, on_bound, params=lambda m: m.gL, transforms=tf, steps=2)  # was a ValueError
    assert 0.095 <= float(again.model.gL) <= 0.12
    with pytest.raises(ValueError, match="t_ref.*Positive"):
        jn.fit(rin_loss, seed000_neuron(t_ref=0.0), params=lambda m: m.t_ref)
    with pytest.raises(ValueError, match="lo < hi"):
        jn.fit.Bounded(1.0, 0.5)


def test_default_transforms_follow_the_parameters_metadata():
    model = hh_cell()
    sel = jn.fit.Selection(model, lambda m: (m.channels[0].gnabar, m.channels[0].el, m.cm))
    assert sel.names == ("channels[0].gnabar", "channels[0].el", "cm")
    kinds = [type(t).__name__ for t in sel.transforms(None)]
    assert kinds == ["Positive", "Identity", "Positive"]


def test_bad_selections_and_options_are_rejected():
    neuron = seed000_neuron()
    with pytest.raises(ValueError, match="not a parameter leaf"):
        jn.fit(rin_loss, neuron, params=lambda m: m.spike_capacity)
    with pytest.raises(ValueError, match="unknown parameter name.*gL"):
        jn.fit(rin_loss, neuron, params=lambda m: m.gL, transforms={"g": jn.fit.Positive()})
    with pytest.raises(ValueError, match="init"):
        jn.fit(rin_loss, neuron, params=lambda m: m.gL, init=jnp.ones((2, 3)))
    with pytest.raises(ValueError, match="on_nonfinite"):
        jn.fit(rin_loss, neuron, params=lambda m: m.gL, on_nonfinite="ignore")
    with pytest.raises(ValueError, match="checkpoint"):
        jn.fit(rin_loss, neuron, params=lambda m: m.gL, resume=True)
    # A property, static fields and None, and an optimizer given as transforms: named
    # (they read "_Marker" TypeErrors, "selected no parameter", "expected 1 transforms, got 2").
    with pytest.raises(ValueError, match=r"selector failed on the model .* not values computed from them"):
        jn.fit(rin_loss, neuron, params=lambda m: m.tau_m)
    for static in (lambda m: m.n, lambda m: m.surrogate):
        with pytest.raises(ValueError, match=r"selected no parameter of the model \(it returned None\): static fields"):
            jn.fit(rin_loss, neuron, params=static)
    with pytest.raises(ValueError, match=r"transforms expects jn.fit transforms .* got an optax optimizer"):
        jn.fit(rin_loss, neuron, params=lambda m: m.gL, transforms=optax.adam(0.1))


# --- non-finite losses and gradients -------------------------------------------------


def test_nonfinite_loss_stops_the_fit_and_is_never_applied():
    # sqrt(gL - 0.015) falls as gL falls, until gL crosses 0.015 and the loss is NaN.
    loss = lambda m: jnp.sqrt(m.gL - 0.015)
    with pytest.warns(RuntimeWarning, match=r"step \d+: non-finite loss at gL="):
        result = jn.fit(loss, seed000_neuron(), params=lambda m: m.gL, steps=50)
    hist = result.param_history["gL"]
    first_bad = int(np.argmax(hist < 0.015))
    assert first_bad > 0 and result.stopped
    assert [(e.step, e.what, e.names) for e in result.nonfinite] == [(first_bad, "loss", ("gL",))]
    assert len(result.loss_history) == first_bad + 1 and np.all(np.isfinite(result.loss_history[:-1]))
    assert np.all(np.isfinite(hist))
    assert float(result.model.gL) == hist[first_bad]  # the NaN step's update was not applied
    assert float(result.best_model.gL) == hist[first_bad - 1]


def test_nonfinite_gradient_names_the_parameter():
    # d/dEL sqrt(|EL + 70|) at EL = -70 is not finite; the loss is.
    loss = lambda m: jnp.sqrt(jnp.abs(m.EL + 70.0)) + (m.gL - 0.03) ** 2
    with pytest.raises(FloatingPointError, match=r"step 0: non-finite gradient with respect to EL"):
        jn.fit(loss, seed000_neuron(), params=lambda m: (m.gL, m.EL), on_nonfinite="raise")
    with pytest.warns(RuntimeWarning, match="EL"):
        result = jn.fit(loss, seed000_neuron(), params=lambda m: (m.gL, m.EL), steps=5)
    (event,) = result.nonfinite
    assert (event.step, event.what, event.names) == (0, "gradient", ("EL",))
    assert float(event.values["EL"]) == -70.0


def test_skip_freezes_the_failing_start_while_the_others_go_on():
    # NaN below gL = 0.01 (sqrt of a negative times 0); minimum at gL = 0.03.
    loss = lambda m: jnp.log(m.gL / 0.03) ** 2 + 0.0 * jnp.sqrt(m.gL - 0.01)
    with pytest.warns(RuntimeWarning, match=r"start 1"):
        result = jn.fit(loss, seed000_neuron(), params=lambda m: m.gL, init=jnp.array([0.02, 0.009]),
                        on_nonfinite="skip", steps=30)
    assert not result.stopped
    assert {e.start for e in result.nonfinite} == {1}
    assert [e.step for e in result.nonfinite] == list(range(31))  # its loss after the last step too
    frozen = result.param_history["gL"][:, 1]
    assert np.all(frozen == frozen[0]) and frozen[0] == pytest.approx(0.009, rel=1e-14)
    assert result.params["gL"][0] == pytest.approx(0.03, rel=1e-3)


# --- checkpoints ----------------------------------------------------------------------


def two_param_loss(model):
    rest = jn.steady_state(model).v
    return jn.losses.input_resistance(model, 62.5) + ((rest + 65.0) / 5.0) ** 2


def test_checkpoint_and_resume_equal_an_uninterrupted_fit(tmp_path):
    params = lambda m: (m.gL, m.EL)
    full = jn.fit(two_param_loss, seed000_neuron(), params=params, steps=12)
    path = tmp_path / "ckpt"
    first = jn.fit(two_param_loss, seed000_neuron(), params=params, steps=5, checkpoint=path, checkpoint_every=2)
    assert json.loads((path / "state.json").read_text())["step"] == 5
    assert first.steps == 5
    resumed = jn.fit(two_param_loss, seed000_neuron(), params=params, steps=12, checkpoint=path, resume=True)
    np.testing.assert_array_equal(resumed.loss_history, full.loss_history)
    for name in ("gL", "EL"):
        np.testing.assert_array_equal(resumed.param_history[name], full.param_history[name])
    assert float(resumed.model.gL) == float(full.model.gL) and float(resumed.model.EL) == float(full.model.EL)
    with pytest.raises(ValueError, match="different fit"):
        jn.fit(two_param_loss, seed000_neuron(), params=lambda m: m.gL, steps=12, checkpoint=path, resume=True)
    # Another on_nonfinite would treat the checkpoint's stopped starts otherwise.
    with pytest.raises(ValueError, match="different fit: its on_nonfinite is 'stop', this fit's is 'skip'"):
        jn.fit(two_param_loss, seed000_neuron(), params=params, steps=12, checkpoint=path, resume=True,
               on_nonfinite="skip")


def test_a_killed_fit_resumes_from_its_last_checkpoint(tmp_path):
    def kill_at_step_7(step, loss):
        if step == 7:
            raise KeyboardInterrupt

    params = lambda m: (m.gL, m.EL)
    path = tmp_path / "ckpt"
    with pytest.warns(RuntimeWarning, match="interrupted at step 7"):
        partial = jn.fit(two_param_loss, seed000_neuron(), params=params, steps=10, checkpoint=path,
                         checkpoint_every=3, callback=kill_at_step_7)
    assert partial.stopped and partial.steps == 7  # the steps completed are returned
    assert json.loads((path / "state.json").read_text())["step"] == 6
    seen = []
    resumed = jn.fit(two_param_loss, seed000_neuron(), params=params, steps=10, checkpoint=path, resume=True,
                     callback=lambda step, loss: seen.append(step))
    assert seen == [6, 7, 8, 9]
    full = jn.fit(two_param_loss, seed000_neuron(), params=params, steps=10)
    np.testing.assert_array_equal(resumed.loss_history, full.loss_history)
    np.testing.assert_array_equal(resumed.param_history["gL"], full.param_history["gL"])
    np.testing.assert_array_equal(partial.loss_history, full.loss_history[:8])


def test_a_checkpoint_survives_a_kill_while_writing_and_refuses_other_transforms_or_optimizers(tmp_path):
    from jaxneuro.fit import checkpoint as ckpt

    params = lambda m: (m.gL, m.EL)
    path = tmp_path / "ckpt"
    jn.fit(two_param_loss, seed000_neuron(), params=params, steps=4, checkpoint=path)
    # Killed while writing step 6: its state file (and a half-written temporary) are
    # there, state.json is not yet replaced; the checkpoint is still step 4's, whole.
    saved = json.loads((path / "state.json").read_text())
    (path / "state-6.eqx").write_bytes((path / saved["state_file"]).read_bytes()[:-8])
    (path / "state.json.tmp").write_text("{")
    assert ckpt.exists(path)
    resumed = jn.fit(two_param_loss, seed000_neuron(), params=params, steps=8, checkpoint=path, resume=True)
    full = jn.fit(two_param_loss, seed000_neuron(), params=params, steps=8)
    np.testing.assert_array_equal(resumed.loss_history, full.loss_history)
    assert sorted(f.name for f in path.glob("state-*.eqx")) == ["state-8.eqx"]  # older states removed
    with pytest.raises(ValueError, match="transforms"):
        jn.fit(two_param_loss, seed000_neuron(), params=params, steps=9, checkpoint=path, resume=True,
               transforms={"gL": jn.fit.Bounded(0.001, 0.1)})
    with pytest.raises(ValueError, match="different fit.*optimizer"):
        jn.fit(two_param_loss, seed000_neuron(), params=params, steps=9, checkpoint=path, resume=True,
               optimizer=optax.sgd(0.1, momentum=0.9, nesterov=True))


def test_a_damaged_checkpoint_is_refused_not_overwritten(tmp_path):
    """(before: resume=True took a damaged checkpoint for none, started from step 0 and
    overwrote it; a state file that did not read blamed the optimiser, also for a
    checkpoint written in float32.)"""
    params = lambda m: (m.gL, m.EL)
    path = tmp_path / "ckpt"
    jn.fit(two_param_loss, seed000_neuron(), params=params, steps=4, checkpoint=path)
    doc = (path / "state.json").read_text()
    state = path / json.loads(doc)["state_file"]
    saved = state.read_bytes()

    def resume():
        return jn.fit(two_param_loss, seed000_neuron(), params=params, steps=8, checkpoint=path, resume=True)

    (path / "state.json").write_text(doc[:20])
    with pytest.raises(ValueError, match=r"state\.json cannot be read .*JSONDecodeError.*delete the folder"):
        resume()
    assert (path / "state.json").read_text() == doc[:20]  # left as it was
    (path / "state.json").write_text(doc)
    state.unlink()
    with pytest.raises(ValueError, match=r"names state-4\.eqx, which is missing"):
        resume()
    state.write_bytes(saved[:10])
    with pytest.raises(ValueError, match=r"state-4\.eqx cannot be read as this fit's optimiser state \(damaged"):
        resume()
    state.write_bytes(saved)
    assert resume().steps == 8
    # A float32 checkpoint resumed in float64 names the precision, not the optimiser.
    f32 = tmp_path / "f32"
    with jax.enable_x64(False):
        jn.fit(lambda m: jn.losses.input_resistance(m, 62.5), seed000_neuron(), params=lambda m: m.gL, steps=2,
               checkpoint=f32)
    with pytest.raises(ValueError, match=r"another precision \(its losses are float32, this fit's are float64"):
        jn.fit(lambda m: jn.losses.input_resistance(m, 62.5), seed000_neuron(), params=lambda m: m.gL, steps=4,
               checkpoint=f32, resume=True)
    # So does resume=False, which refuses to overwrite it (before: "another model (its
    # leaves differ at C, EL, gL ...)", the same model in the other precision).
    with pytest.raises(ValueError, match=r"holds 2 step\(s\) of a different fit: it was written in another precision "
                                         r"\(its losses are float32, this fit's are float64: jax_enable_x64"):
        jn.fit(lambda m: jn.losses.input_resistance(m, 62.5), seed000_neuron(), params=lambda m: m.gL, steps=4,
               checkpoint=f32)


def test_identity_parameters_step_in_their_own_unit():
    """README: Adam's first step is 0.05 in the unit of an Identity parameter (AdEx's
    ``a``: 0.004 µS moves by 0.05, twelve times its value) and about 5 % for a
    Positive one."""
    def loss(m):
        tr = jn.simulate(m, 60.0, stimuli=[jn.StepCurrent(0.8, 5.0, 1e9)], save_every=1.0)
        return jnp.mean(tr.v)

    r = jn.fit(loss, jn.AdEx(), params=lambda m: m.a, steps=1)
    assert abs(r.param_history["a"][1] - r.param_history["a"][0]) == pytest.approx(0.05, rel=1e-6)
    assert r.param_history["a"][0] == pytest.approx(0.004)
    r = jn.fit(loss, jn.AdEx(), params=lambda m: m.a, steps=1, transforms=jn.fit.Positive())
    assert abs(math.log(r.param_history["a"][1] / r.param_history["a"][0])) == pytest.approx(0.05, rel=1e-6)


def test_the_loss_after_the_last_update_is_checked():
    # sqrt(gL - 0.015) decreases with gL: the sixth update takes gL below 0.015, and the
    # loss there is NaN. It is reported (warned, or raised), not silently returned.
    loss = lambda m: jnp.sqrt(m.gL - 0.015)
    with pytest.warns(RuntimeWarning, match="after the last update"):
        result = jn.fit(loss, seed000_neuron(), params=lambda m: m.gL, steps=6)
    assert np.isnan(result.loss_history[-1])
    assert [(e.step, e.what) for e in result.nonfinite] == [(6, "loss")]
    assert result.best_step == 5 and np.isfinite(result.best_loss)
    with pytest.raises(FloatingPointError, match="after the last update"):
        jn.fit(loss, seed000_neuron(), params=lambda m: m.gL, steps=6, on_nonfinite="raise")


def test_init_by_name_scalar_losses_and_zero_targets():
    loss = lambda m: (m.gL - 0.03) ** 2 + (m.C - 0.2) ** 2
    r = jn.fit(loss, seed000_neuron(), params=lambda m: (m.gL, m.C),
               init={"C": jnp.array([0.2, 0.3]), "gL": jnp.array([0.01, 0.02])}, steps=0)
    np.testing.assert_allclose(r.param_history["gL"][0], [0.01, 0.02], rtol=1e-12)  # via exp(log)
    np.testing.assert_allclose(r.param_history["C"][0], [0.2, 0.3], rtol=1e-12)
    with pytest.raises(ValueError, match="init given as a dict expects the keys"):
        jn.fit(loss, seed000_neuron(), params=lambda m: (m.gL, m.C), init={"gL": jnp.ones(2)}, steps=0)
    with pytest.raises(ValueError, match="returning a scalar, got shape \\(2,\\)"):
        jn.fit(lambda m: jnp.stack([m.gL, m.EL]), seed000_neuron(), params=lambda m: m.gL, steps=1)
    with pytest.raises(ValueError, match="checkpoint_every expects a positive integer"):
        jn.fit(loss, seed000_neuron(), params=lambda m: m.gL, checkpoint="x", checkpoint_every=True)
    with pytest.raises(ValueError, match="target must be non-zero"):
        jn.losses.firing_rate(jnp.array([10.0, jnp.inf]), 0.0, 0.0, 100.0)


# --- losses -------------------------------------------------------------------------


def test_van_rossum_matches_the_filtered_trains_integral_and_has_finite_gradients():
    tau = 5.0
    a = jnp.array([3.0, 11.0, 20.0, jnp.inf, jnp.inf])
    b = jnp.array([4.0, 18.5, jnp.inf])
    dt = 0.001
    t = np.arange(0.5 * dt, 200.0, dt)  # midpoints: the jumps at spike times fall on cell edges

    def filtered(s):
        s = np.asarray(s)[np.isfinite(s)]
        return sum(np.where(t >= si, np.exp(-(t - si) / tau), 0.0) for si in s)

    numeric = np.sum((filtered(a) - filtered(b)) ** 2) * dt / tau
    assert float(jn.losses.van_rossum(a, b, tau)) == pytest.approx(numeric, rel=1e-6)
    grad = np.asarray(jax.grad(jn.losses.van_rossum)(a, b, tau))
    assert np.all(np.isfinite(grad)) and np.all(grad[3:] == 0) and np.all(grad[:3] != 0)
    assert float(jn.losses.van_rossum(a, a, tau)) == 0.0


def test_spike_time_loss_matches_common_spikes_and_penalises_the_count():
    a = jnp.array([[3.0, 11.0, 20.0, jnp.inf], [5.0, jnp.inf, jnp.inf, jnp.inf]])
    b = jnp.array([[4.0, 10.0, jnp.inf], [5.5, 9.0, 14.0]])
    value = jn.losses.spike_times(a, b, count_weight=2.0)
    expected = ((1.0 + 1.0) / 2 + 2.0 * 1**2 + 0.25 + 2.0 * 2**2) / 2
    assert float(value) == pytest.approx(expected)
    grad = np.asarray(jax.grad(lambda x: jn.losses.spike_times(x, b))(a))
    np.testing.assert_array_equal(grad, [[-0.5, 0.5, 0, 0], [-0.5, 0, 0, 0]])


def test_spike_rate_and_voltage_and_summary_losses():
    regular = jnp.array([4.0, 14.0, 24.0, 34.0, jnp.inf])
    assert float(jn.losses.spike_rate(regular, 0.0, 40.0)) == pytest.approx(100.0)
    assert float(jn.losses.spike_rate(regular, 20.0, 40.0)) == pytest.approx(100.0)
    assert float(jn.losses.spike_rate(regular, 30.0, 50.0)) == pytest.approx(50.0)  # one spike: n / window
    # Passive LIF charging: v(t) = EL + I/gL (1 - exp(-t/tau)), 10 ms time constant.
    neuron = jn.LIF(C=1.0, gL=0.1, EL=-70.0, V_th=math.inf)
    trace = jn.simulate(neuron, 50.0, dt=0.1, stimuli=[jn.StepCurrent(1.0)])
    exact = -70.0 + 10.0 * (1.0 - np.exp(-np.asarray(trace.t) / 10.0))
    assert float(jn.losses.voltage(trace, exact)) < 1e-20
    shifted = exact + np.where(np.asarray(trace.t) >= 25.0, 2.0, 0.0)
    assert float(jn.losses.voltage(trace, shifted, windows=[(0.0, 20.0)])) < 1e-20
    assert float(jn.losses.voltage(trace, shifted, windows=(30.0, 50.0))) == pytest.approx(4.0)
    stats = jn.losses.summary_statistics(trace, window=(0.0, 50.0))
    assert float(stats["rest_v"]) == -70.0 and int(stats["spike_count"]) == 0
    assert float(stats["max_v"]) == pytest.approx(exact[-1])
    assert float(stats["mean_v"]) == pytest.approx(np.mean(exact))
    loss = jn.losses.summary(trace, {"mean_v": float(np.mean(exact)) + 1.0, "rest_v": -70.0}, scales={"mean_v": 0.5})
    assert float(loss) == pytest.approx(4.0)


def test_fit_is_a_callable_module_and_losses_are_exported():
    assert callable(jn.fit) and jn.fit.losses is jn.losses
    assert jn.fit.fit(rin_loss, seed000_neuron(), params=lambda m: m.gL, steps=0).steps == 0


def test_progress_bar_when_asked(capsys):
    jn.fit(rin_loss, seed000_neuron(), params=lambda m: m.gL, steps=3, progress=True)
    assert "fit" in capsys.readouterr().err
    jn.fit(rin_loss, seed000_neuron(), params=lambda m: m.gL, steps=3)  # not a terminal: no bar
    assert capsys.readouterr().err == ""


def test_grad_cost_benchmark_smoke():
    spec = importlib.util.spec_from_file_location("grad_cost", ROOT / "benchmarks" / "grad_cost.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    row = mod.measure("forward", t1=2.0, save_every=1.0, repeats=1)
    assert row["mode"] == "forward" and row["saves"] == 3 and -70.0 < row["value"] < -40.0 and row["seconds"] > 0


def test_nan_spike_targets_under_jit_and_a_fit_that_never_moves_are_reported():
    """A NaN spike time reaching a spike-train loss under jit (where it cannot be
    refused) makes the loss NaN, which the fit reports and stops on; it read as "no
    spike", a finite loss with a zero gradient, and the fit returned its start
    silently. A fit whose parameters never move (a spike count without a surrogate:
    zero gradient everywhere) warns."""
    import warnings

    lif = jn.LIF(spike_capacity=4)

    def spikes(m):
        return jn.simulate(m, 40.0, dt=0.1, stimuli=[jn.StepCurrent(2.0)], record=()).spikes

    assert np.isnan(jax.jit(lambda s: jn.losses.spike_times(s, jnp.array([jnp.nan])))(spikes(lif)))
    assert np.isnan(jax.jit(lambda s: jn.losses.van_rossum(s, jnp.array([jnp.nan]), 5.0))(spikes(lif)))
    with pytest.warns(RuntimeWarning, match=r"fit stopped: step 0: non-finite loss"):
        r = jn.fit(lambda m: jn.losses.spike_times(spikes(m), jnp.array([jnp.nan])), lif, params=lambda m: m.gL,
                   steps=3)
    assert r.stopped
    with pytest.warns(RuntimeWarning, match=r"fit: no parameter changed in 3 step\(s\)"):
        jn.fit(lambda m: (jn.spike_count(jn.simulate(m, 40.0, dt=0.1, stimuli=[jn.StepCurrent(2.0)], record=()))
                          - 1.0) ** 2, lif, params=lambda m: m.gL, steps=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a fit that moves says nothing
        jn.fit(lambda m: jn.losses.spike_times(spikes(m), jnp.array([20.0, jnp.inf, jnp.inf, jnp.inf])), lif,
               params=lambda m: m.gL, steps=2)


def test_resume_refuses_a_checkpoint_started_from_another_model_or_start(tmp_path):
    """A resume from another starting model (an unfitted leaf, or the fitted one's start)
    or other init values reported the old fit's history and best_loss for this one."""
    params = lambda m: (m.gL, m.EL)
    path = tmp_path / "ckpt"
    jn.fit(two_param_loss, seed000_neuron(), params=params, steps=4, checkpoint=path)
    with pytest.raises(ValueError, match=r"started from another model \(its leaves differ at C\).*resume=False"):
        jn.fit(two_param_loss, seed000_neuron(C=100 * u.pF), params=params, steps=8, checkpoint=path, resume=True)
    with pytest.raises(ValueError, match=r"another model \(its leaves differ at gL\)"):
        jn.fit(two_param_loss, seed000_neuron(gL=25 * u.nS), params=params, steps=8, checkpoint=path, resume=True)
    # The same model resumes, and equals an uninterrupted fit.
    resumed = jn.fit(two_param_loss, seed000_neuron(), params=params, steps=8, checkpoint=path, resume=True)
    np.testing.assert_array_equal(resumed.loss_history,
                                  jn.fit(two_param_loss, seed000_neuron(), params=params, steps=8).loss_history)
    # Several starts: other init values are refused, naming the parameter.
    path2 = tmp_path / "multi"
    jn.fit(two_param_loss, seed000_neuron(), params=params, steps=2, init={"gL": [0.02, 0.03], "EL": [-70.0, -60.0]},
           checkpoint=path2)
    with pytest.raises(ValueError, match=r"other start values .*differ at \['EL'\]"):
        jn.fit(two_param_loss, seed000_neuron(), params=params, steps=4, init={"gL": [0.02, 0.03], "EL": [-70.0, -65.0]},
               checkpoint=path2, resume=True)


def test_resume_refuses_other_injected_hyperparameters_and_schedule_constants(tmp_path):
    """inject_hyperparams keeps its learning rate in the state (not update's closure),
    and a lambda schedule keeps its rates in its code: both were resumed silently."""
    path = tmp_path / "ckpt"
    jn.fit(two_param_loss, seed000_neuron(), params=lambda m: m.gL, steps=2, checkpoint=path,
           optimizer=optax.inject_hyperparams(optax.adam)(learning_rate=0.05))
    with pytest.raises(ValueError, match=r"another optimizer .*first difference: learning_rate is 0\.05 there, 0\.2 here"):
        jn.fit(two_param_loss, seed000_neuron(), params=lambda m: m.gL, steps=4, checkpoint=path, resume=True,
               optimizer=optax.inject_hyperparams(optax.adam)(learning_rate=0.2))
    path2 = tmp_path / "sched"
    jn.fit(two_param_loss, seed000_neuron(), params=lambda m: m.gL, steps=2, checkpoint=path2,
           optimizer=optax.adam(lambda c: 0.05 * 0.9 ** c))
    with pytest.raises(ValueError, match=r"another optimizer .*learning_rate is 0\.9 there, 0\.5 here"):
        jn.fit(two_param_loss, seed000_neuron(), params=lambda m: m.gL, steps=4, checkpoint=path2, resume=True,
               optimizer=optax.adam(lambda c: 0.05 * 0.5 ** c))


def test_a_final_loss_far_above_the_best_warns():
    """Adam's steps stay near its learning rate at a minimum: started 1e-3 mV from the
    optimum of an Identity parameter, it steps 0.05 mV past it and ends far above its
    best, which FitResult.model silently held."""
    import warnings

    loss = lambda m: (m.EL + 70.001) ** 2
    with pytest.warns(RuntimeWarning, match=r"final loss .* above the best seen, 1e-06 at step 0.*best_model") as rec:
        r = jn.fit(loss, seed000_neuron(), params=lambda m: m.EL, steps=5)
    assert r.best_step == 0 and r.best_loss == pytest.approx(1e-6)
    assert r.loss_history[-1] > 1e-5  # 0.05 mV steps, past the optimum and back
    assert any(f"{r.loss_history[-1]:.6g}" in str(w.message) for w in rec)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a fit ending at (or near) its best says nothing
        jn.fit(loss, seed000_neuron(), params=lambda m: m.EL, steps=5, optimizer=optax.sgd(0.5))


def test_a_parameter_whose_gradient_is_always_zero_is_named_when_others_move():
    """V_reset of a LIF that never spikes: the loss does not depend on it; only a fit in
    which no parameter moved used to warn."""
    with pytest.warns(RuntimeWarning, match=r"gradient with respect to 'V_reset' was exactly zero at every one of the 3"):
        r = jn.fit(two_param_loss, seed000_neuron(), params=lambda m: (m.gL, m.V_reset), steps=3)
    assert np.all(r.param_history["V_reset"] == -75.0) and r.param_history["gL"][-1] != r.param_history["gL"][0]


def test_summary_scales_with_an_unknown_name_and_relative_error_with_quantities():
    trace = jn.simulate(jn.LIF(), 200.0, dt=0.1, stimuli=[jn.StepCurrent(2.0)])
    with pytest.raises(ValueError, match=r"summary: scales names \['rte'\], not in targets; targets: \['rate'\]"):
        jn.losses.summary(trace, {"rate": 60.0}, scales={"rte": 10.0})
    assert float(jn.losses.relative_error(50.0, 62.5 * u.Mohm)) == pytest.approx(0.04)
    assert float(jn.losses.relative_error(50.0 * u.Mohm, 0.0625 * u.Gohm)) == pytest.approx(0.04)
    with pytest.raises(ValueError, match="relative_error"):
        jn.losses.relative_error(50.0 * u.Mohm, 62.5 * u.mV)


def test_a_fit_ending_outside_a_parameters_declared_range_warns():
    # Identity lets gL (declared >= 0) go negative; the fit returned gL = -1192.87 with
    # no word, a model its class refuses to build. The default (Positive) keeps it.
    import warnings

    lif = jn.LIF(C=0.25, gL=0.02, EL=-70.0, V_th=math.inf)

    def loss(m):  # pulls gL down hard: minimised at gL -> -inf
        return 100.0 * m.gL

    with pytest.warns(RuntimeWarning, match=r"'gL' ended at -\d.*outside its declared range \(>= 0\).*Positive"):
        res = jn.fit(loss, lif, params=lambda m: m.gL, transforms=jn.fit.Identity(),
                     optimizer=optax.sgd(1.0), steps=3)
    assert float(res.model.gL) < 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = jn.fit(loss, lif, params=lambda m: m.gL, optimizer=optax.sgd(1.0), steps=3)
    assert float(res.model.gL) > 0


# --- the result as a pytree; each fit traced afresh -------------------------------------------


def test_fit_result_is_a_pytree_that_equinox_serialisation_restores(tmp_path):
    import pickle

    loss = lambda m: jnp.log(m.gL / 0.03) ** 2 + 0.0 * jnp.sqrt(m.gL - 0.01)  # NaN below 0.01
    with pytest.warns(RuntimeWarning, match="start 1"):
        fitted = jn.fit(loss, seed000_neuron(), params=lambda m: m.gL, init=[0.02, 0.009], steps=6)
    leaves = jax.tree_util.tree_leaves(fitted)
    assert any(leaf is fitted.param_history["gL"] for leaf in leaves)
    assert any(leaf is fitted.model.gL for leaf in leaves) and any(leaf is fitted.best_model.gL for leaf in leaves)

    path = tmp_path / "result.eqx"
    eqx.tree_serialise_leaves(path, fitted)  # a plain dataclass wrote 0 bytes
    assert path.stat().st_size > 0
    with pytest.warns(RuntimeWarning, match="start 1"):  # a template of the same shape
        like = jn.fit(loss, seed000_neuron(), params=lambda m: m.gL, init=[0.05, 0.008], steps=6)
    back = eqx.tree_deserialise_leaves(path, like)
    assert float(back.model.gL) == float(fitted.model.gL) != float(like.model.gL)
    assert float(back.best_model.gL) == float(fitted.best_model.gL)
    np.testing.assert_array_equal(back.loss_history, fitted.loss_history)
    np.testing.assert_array_equal(back.param_history["gL"], fitted.param_history["gL"])
    assert (back.best_loss, back.best_step, back.best_start) == (fitted.best_loss, fitted.best_step, 0)
    assert [e.values["gL"] for e in back.nonfinite] == [pytest.approx(0.009)]
    assert back.start(1).stopped and not back.start(0).stopped
    assert back.summary() == fitted.summary()
    # Pickle, including start(i), which rebuilds models through the selection.
    again = pickle.loads(pickle.dumps(fitted))
    assert again.start(0).summary() == fitted.start(0).summary()
    np.testing.assert_array_equal(again.param_history["gL"], fitted.param_history["gL"])


def test_a_second_fit_sees_the_target_as_it_is_now():
    # A compiled loss keeps the values it was traced with: a fit reusing the last
    # fit's program after `target = ...`, or after the target array was changed in
    # place, would fit the old target.
    target = 62.5
    resistances = np.array([62.5])

    def loss(model):
        return jn.losses.input_resistance(model, target)

    def loss_of_array(model):
        return jn.losses.input_resistance(model, resistances[0])

    a = jn.fit(loss, seed000_neuron(), params=lambda m: m.gL, steps=60)
    target = 40.0
    b = jn.fit(loss, seed000_neuron(), params=lambda m: m.gL, steps=60)
    assert 1 / float(a.best_model.gL) == pytest.approx(62.5, rel=1e-3)
    assert 1 / float(b.best_model.gL) == pytest.approx(40.0, rel=1e-3)
    jn.fit(loss_of_array, seed000_neuron(), params=lambda m: m.gL, steps=5)
    resistances[0] = 40.0
    c = jn.fit(loss_of_array, seed000_neuron(), params=lambda m: m.gL, steps=60)
    assert 1 / float(c.best_model.gL) == pytest.approx(40.0, rel=1e-3)
