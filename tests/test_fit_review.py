"""jn.losses and jn.fit at their edges: per-neuron time constants and windows, windows
that are refused, Bounded starts near a bound, and updates that overflow."""

import json
import math
import re
import warnings

import jax.numpy as jnp
import numpy as np
import optax
import pytest
import saiunit as u

import jaxneuro as jn

inf = jnp.inf


def closed_form_van_rossum(a, b, tau):
    """½ (Σ e^{-|aᵢ-aⱼ|/τ} + Σ e^{-|bᵢ-bⱼ|/τ} - 2 Σ e^{-|aᵢ-bⱼ|/τ}) for two plain lists."""
    k = lambda x, y: sum(math.exp(-abs(p - q) / tau) for p in x for q in y)
    return 0.5 * (k(a, a) + k(b, b) - 2.0 * k(a, b))


# --- van_rossum: one tau per neuron ----------------------------------------------------


@pytest.mark.parametrize("capacity", [2, 3])
def test_van_rossum_takes_one_tau_per_neuron(capacity):
    # (before: tau aligned with the spike axis: 1.1048 for capacity 2, a broadcasting
    # error for capacity 3.)
    pad = [inf] * (capacity - 2)
    a = jnp.array([[10.0, 20.0] + pad, [10.0, 20.0] + pad])
    b = jnp.array([[12.0, inf] + pad, [12.0, inf] + pad])
    expected = np.mean([closed_form_van_rossum([10.0, 20.0], [12.0], t) for t in (5.0, 50.0)])
    assert expected == pytest.approx(0.63446, abs=1e-4)
    got = jn.losses.van_rossum(a, b, jnp.array([5.0, 50.0]))
    assert float(got) == pytest.approx(expected, rel=1e-12)
    assert float(jn.losses.van_rossum(a, b, [5.0, 50.0] * u.ms)) == pytest.approx(expected, rel=1e-12)
    # One tau for all still works, as a scalar or a 0-d array.
    one = np.mean([closed_form_van_rossum([10.0, 20.0], [12.0], 5.0)] * 2)
    assert float(jn.losses.van_rossum(a, b, jnp.asarray(5.0))) == pytest.approx(one, rel=1e-12)


def test_van_rossum_refuses_a_tau_that_fits_neither_one_nor_one_per_neuron():
    a = jnp.array([[10.0, 20.0, inf], [10.0, 20.0, inf]])  # 2 neurons, capacity 3
    with pytest.raises(ValueError, match=r"^van_rossum: tau expects one time constant \(ms\) for all neurons or "
                                         r"one per neuron \(shape \(2,\)\), got shape \(3,\); give a scalar"):
        jn.losses.van_rossum(a, a, jnp.array([5.0, 10.0, 50.0]))


# --- spike_rate / firing_rate: one window per neuron, windows checked -----------------


def test_spike_rate_takes_one_start_and_stop_per_neuron():
    # (before: start aligned with the spike axis: [50, 50] Hz, no error.)
    sp = jnp.array([[10.0, 30.0], [10.0, 30.0]])
    np.testing.assert_allclose(jn.losses.spike_rate(sp, jnp.array([0.0, 20.0]), 100.0), [50.0, 12.5])
    # Neuron 0: ISI 20 ms in [0, 40); neuron 1: one spike in [0, 25) ms.
    np.testing.assert_allclose(jn.losses.spike_rate(sp, 0.0, [40.0, 25.0]), [50.0, 40.0])
    # firing_rate's "isi" method reads the same windows.
    assert float(jn.losses.firing_rate(sp, [50.0, 12.5], [0.0, 20.0], 100.0)) == pytest.approx(0.0, abs=1e-20)
    # Three neurons, capacity 2: the old alignment raised a raw broadcasting error.
    sp3 = jnp.array([[10.0, 30.0], [10.0, 30.0], [10.0, inf]])
    np.testing.assert_allclose(jn.losses.spike_rate(sp3, jnp.array([0.0, 20.0, 0.0]), 100.0), [50.0, 12.5, 10.0])


def test_spike_rate_refuses_a_start_that_fits_neither_one_nor_one_per_neuron():
    sp = jnp.array([[10.0, 30.0, inf], [10.0, 30.0, inf]])
    with pytest.raises(ValueError, match=r"^spike_rate: start expects one time \(ms\) for all neurons or one per "
                                         r"neuron \(shape \(2,\)\), got shape \(3,\)"):
        jn.losses.spike_rate(sp, jnp.array([0.0, 20.0, 40.0]), 100.0)
    with pytest.raises(ValueError, match=r"^firing_rate: stop expects one time \(ms\) for all neurons"):
        jn.losses.firing_rate(sp, 10.0, 0.0, jnp.array([50.0, 60.0, 70.0]))


def test_spike_rate_refuses_a_reversed_or_empty_window_as_firing_rate_does():
    # (before: -0.0 Hz and NaN, silently.)
    sp = jnp.array([10.0, 20.0, 30.0, 40.0, inf])
    with pytest.raises(ValueError, match=r"^spike_rate expects stop > start \(ms\), got start=50.0, stop=0.0; "
                                         r"give a window \[start, stop\) that ends after it begins$"):
        jn.losses.spike_rate(sp, 50.0, 0.0)
    with pytest.raises(ValueError, match=r"^spike_rate expects stop > start \(ms\), got start=20.0, stop=20.0"):
        jn.losses.spike_rate(sp, 20.0, 20.0)
    with pytest.raises(ValueError, match=r"^spike_rate expects stop > start \(ms\), got start=\[ 0. 50.\], "
                                         r"stop=\[100.  40.\]"):
        jn.losses.spike_rate(jnp.stack([sp, sp]), jnp.array([0.0, 50.0]), jnp.array([100.0, 40.0]))
    with pytest.raises(ValueError, match=r"^spike_rate expects stop > start \(ms\), got start=20.0, stop=10.0"):
        jn.losses.spike_rate(sp, 20 * u.ms, 0.01 * u.second)
    # firing_rate's check is the same one, now for one window per neuron as well.
    with pytest.raises(ValueError, match=r"^firing_rate expects stop > start \(ms\), got start=\[ 0. 50.\]"):
        jn.losses.firing_rate(jnp.stack([sp, sp]), 10.0, jnp.array([0.0, 50.0]), 40.0)
    assert float(jn.losses.spike_rate(sp, 0.0, 100.0)) == pytest.approx(100.0)


# --- summary_statistics: one window -------------------------------------------------


@pytest.fixture(scope="module")
def lif_trace():
    return jn.simulate(jn.LIF(), 100.0, stimuli=[jn.StepCurrent(20.0, 0.0, 100.0)])


def test_summary_statistics_refuses_several_windows_clearly(lif_trace):
    # (before: IndexError for [(10, 40)], TypeError for [(10, 40), (60, 90)].)
    for window in ([(10.0, 40.0)], [(10.0, 40.0), (60.0, 90.0)]):
        with pytest.raises(ValueError, match=r"^summary_statistics: window expects one \(start, stop\) pair in ms, "
                                             r"got \[\(10.0, 40.0\).*; for several windows compute the statistics "
                                             r"per window"):
            jn.losses.summary_statistics(lif_trace, window=window)
        with pytest.raises(ValueError, match=r"^summary_statistics: window expects one \(start, stop\) pair"):
            jn.losses.summary(lif_trace, {"rate": 300.0}, window=window)
    # One pair works, as numbers or quantities.
    spikes = np.asarray(lif_trace.spikes)
    n = int(np.sum((spikes >= 10.0) & (spikes < 40.0)))
    for window in ((10.0, 40.0), (10 * u.ms, 40 * u.ms)):
        stats = jn.losses.summary_statistics(lif_trace, window=window)
        assert int(stats["spike_count"]) == n >= 2
        assert float(stats["rate"]) == pytest.approx(float(jn.losses.spike_rate(lif_trace.spikes, 10.0, 40.0)))


# --- Bounded.inverse: only a start on a bound is moved ------------------------------


def test_bounded_inverse_keeps_starts_near_a_bound():
    bounded = jn.fit.Bounded(0.0, 1.0)
    # (before: within eps·(hi - lo) of lo, moved to lo + eps·(hi - lo): 2.2e-16 in float64,
    # 1.19e-7 for a float32 start.)
    for x in (1e-20, 1e-300):
        assert float(bounded.forward(bounded.inverse(jnp.float64(x)))) == pytest.approx(x, rel=1e-12, abs=0)
    for x in (1e-9, 1e-12):
        back = bounded.forward(bounded.inverse(jnp.float32(x)))
        assert back.dtype == jnp.float32 and float(back) == pytest.approx(x, rel=1e-5, abs=0)
    # On a bound, a start moves a rounding step inside it, as documented (u finite).
    for dtype in (jnp.float32, jnp.float64):
        eps = float(jnp.finfo(dtype).eps)
        lo_u, hi_u = bounded.inverse(jnp.asarray(0.0, dtype)), bounded.inverse(jnp.asarray(1.0, dtype))
        assert np.isfinite(float(lo_u)) and np.isfinite(float(hi_u))
        assert float(bounded.forward(lo_u)) == pytest.approx(eps, rel=1e-5, abs=0)
        assert float(bounded.forward(hi_u)) == pytest.approx(1.0 - eps, abs=eps / 4)
    # Through jn.fit: the fit starts where the model is.
    model = jn.LIF(V_reset=-80.0 + 1e-14)
    result = jn.fit(lambda m: (m.V_reset + 79.0) ** 2, model, params=lambda m: m.V_reset,
                    transforms=jn.fit.Bounded(-80.0, 20.0), steps=0, progress=False)
    assert float(result.initial_params["V_reset"]) + 80.0 == pytest.approx(float(model.V_reset) + 80.0, rel=1e-6, abs=0)


# --- an update that overflows is not applied ----------------------------------------


def overflowing_loss(m):
    # Finite loss (6.25e302) and gradient (-5e301) at V_reset = -75 mV; sgd(1e7) then
    # steps to 5e308, beyond float64.
    return 1e300 * (m.V_reset + 50.0) ** 2


@pytest.mark.filterwarnings("ignore:fit. no parameter changed:RuntimeWarning")  # start 1 sits at its optimum
def test_an_update_that_overflows_is_not_applied():
    # (before: applied, result.model.V_reset was inf and the next step reported a
    # non-finite loss.)
    with pytest.warns(RuntimeWarning, match=r"fit stopped: step 0: the optimizer's update made V_reset non-finite "
                                            r"\(loss and gradient were finite\) from V_reset=-75; lower the learning "
                                            r"rate; that update was not applied"):
        result = jn.fit(overflowing_loss, jn.LIF(), params=lambda m: m.V_reset, optimizer=optax.sgd(1e7), steps=3,
                        progress=False)
    assert result.stopped and float(result.model.V_reset) == -75.0
    (event,) = result.nonfinite
    assert (event.step, event.start, event.what, event.names) == (0, None, "update", ("V_reset",))
    with pytest.raises(FloatingPointError, match=r"^step 0: the optimizer's update made V_reset non-finite"):
        jn.fit(overflowing_loss, jn.LIF(), params=lambda m: m.V_reset, optimizer=optax.sgd(1e7), steps=3,
               progress=False, on_nonfinite="raise")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        skipped = jn.fit(overflowing_loss, jn.LIF(), params=lambda m: m.V_reset, optimizer=optax.sgd(1e7), steps=3,
                         progress=False, on_nonfinite="skip")
    assert [e.what for e in skipped.nonfinite] == ["update"] * 3 and float(skipped.model.V_reset) == -75.0
    # Several starts: only the overflowing one stops (at -50 mV the gradient is 0).
    with pytest.warns(RuntimeWarning, match=r"step 0 \(start 0\): the optimizer's update made V_reset non-finite"):
        multi = jn.fit(overflowing_loss, jn.LIF(), params=lambda m: m.V_reset, optimizer=optax.sgd(1e7), steps=2,
                       init=[-75.0, -50.0], progress=False)
    assert [(e.start, e.what) for e in multi.nonfinite] == [(0, "update")]
    assert np.all(np.isfinite(np.asarray(multi.param_history["V_reset"])))


def test_an_update_that_overflows_in_the_transform_is_not_applied():
    # Positive: u = log(gL) + 2000 is finite, gL = exp(u) is not. (before: gL = inf was
    # applied, and the next step's loss was -inf.)
    with pytest.warns(RuntimeWarning, match=r"the optimizer's update made gL non-finite"):
        result = jn.fit(lambda m: -1e5 * m.gL, jn.LIF(gL=20 * u.nS), params=lambda m: m.gL, optimizer=optax.sgd(1.0),
                        steps=2, progress=False)
    assert [e.what for e in result.nonfinite] == ["update"]
    assert float(result.model.gL) == pytest.approx(0.02)


# --- resume=False and a checkpoint already in the folder ----------------------------


def c_loss(m):
    return (m.C - 0.2) ** 2


def c_fit(path, steps, C=0.3, **kw):
    # Eager (jit=False): a few steps of a one-line loss, no compilation.
    return jn.fit(c_loss, jn.LIF(C=C), params=lambda m: m.C, steps=steps, checkpoint=path, progress=False,
                  **{"jit": False, **kw})


def test_resume_false_refuses_another_fits_checkpoint_and_warns_before_restarting_its_own(tmp_path):
    # (before: any fit with resume=False overwrote the folder's checkpoint at its first
    # save, without a word; the other fit's 3 steps were gone.)
    path = tmp_path / "ckpt"
    c_fit(path, 3)
    saved = (path / "state.json").read_text()
    advice = (r"resume=False would start afresh and overwrite it, losing them\. Give another checkpoint path, or "
              r"delete the folder .*ckpt' to discard it; or, to continue that fit, .* and resume=True$")
    with pytest.raises(ValueError, match=r"^checkpoint .*ckpt holds 3 step\(s\) of a different fit: it was started "
                                         r"from another model \(its leaves differ at C\)\. " + advice):
        c_fit(path, 1, C=0.9)
    with pytest.raises(ValueError, match=r"^checkpoint .*ckpt holds 3 step\(s\) of a different fit: its names is "
                                         r"\['C'\], this fit's is \['C', 'gL'\]\. " + advice):
        jn.fit(lambda m: c_loss(m) + m.gL, jn.LIF(C=0.3), params=lambda m: (m.C, m.gL), steps=1, checkpoint=path,
               jit=False, progress=False)
    with pytest.raises(ValueError, match=r"^checkpoint .*ckpt holds 3 step\(s\) of a different fit: it was written "
                                         r"with another optimizer"):
        c_fit(path, 1, optimizer=optax.sgd(0.1))
    assert (path / "state.json").read_text() == saved  # left as it was
    # The same fit started over (a notebook cell run again): it goes on, and says so.
    with pytest.warns(RuntimeWarning, match=r"^fit: checkpoint .*ckpt holds 3 step\(s\) of this same fit; "
                                            r"resume=False starts it over, and its first save replaces them\. "
                                            r"Pass resume=True"):
        again = c_fit(path, 1)
    assert again.steps == 1 and json.loads((path / "state.json").read_text())["step"] == 1
    # resume=True continues it, with no such warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert c_fit(path, 2, resume=True).steps == 2


@pytest.mark.parametrize("flag", ["resume", "jit"])
@pytest.mark.parametrize("bad", ["False", "no", 0, None])
def test_fit_resume_and_jit_are_true_or_false_not_truthy(tmp_path, flag, bad):
    # (before: resume="False" resumed (and was refused with advice to pass resume=False);
    # jit="False" compiled.)
    with pytest.raises(ValueError, match=rf"^fit: {flag} expects True or False, got {re.escape(repr(bad))}$"):
        c_fit(tmp_path / "ckpt", 1, **{flag: bad})
    assert not (tmp_path / "ckpt").exists()  # refused before anything was written


@pytest.mark.parametrize("spread", [0.0, -1.0, math.nan, math.inf, 1.0, 0.5, True, "3"])
def test_positive_spread_is_checked_when_the_transform_is_made(spread):
    # (before: accepted; a fit with n_starts then blamed the parameter, "parameter 'C'
    # must start finite, got [0. inf inf inf]", or sampled identical starts for 1.)
    hint = r" \(spread=1 would sample every start at the model's value" if spread == 1 and spread is not True else ""
    with pytest.raises(ValueError, match=r"^Positive\.spread expects a finite number > 1 \(the factor within which "
                                         rf"starts are sampled log-uniformly .*\), got {re.escape(repr(spread))}{hint}"):
        jn.fit.Positive(spread=spread)
    assert jn.fit.Positive(spread=1.5).spread == 1.5 and jn.fit.Positive(2).spread == 2


@pytest.mark.parametrize("lo,hi", [(True, 2.0), ("0", "1"), (None, 1.0), (0.0, b"1")])
def test_bounded_refuses_bools_strings_and_none_as_bounds(lo, hi):
    # (before: Bounded(True, 2.0) and Bounded("0", "1") were made, and a parameter with
    # no unit (no with_unit conversion) was fitted in [1, 2] and [0, 1].)
    name = "lo" if isinstance(lo, (bool, str, type(None))) else "hi"
    bad = lo if name == "lo" else hi
    kind = {bool: "a bool", str: "a string", bytes: "a string", type(None): "None"}[type(bad)]
    with pytest.raises(ValueError, match=rf"^Bounded expects numbers \(or saiunit quantities\) lo < hi, got "
                                         rf"lo={re.escape(repr(lo))}, hi={re.escape(repr(hi))}: Bounded\.{name} is "
                                         rf"{kind}, not a number in the parameter's base unit$"):
        jn.fit.Bounded(lo, hi)
