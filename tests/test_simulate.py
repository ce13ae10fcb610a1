"""simulate(): solvers, saving, recording, initialisation, Trace."""

import functools
import math
import os
import subprocess
import sys

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxneuro as jn
from conftest import compiles_to_a_scatter

TAU = 10.0  # ms: cm/g = 1 µF/cm² / 1e-4 S/cm²


def passive(**kw):
    return jn.Compartment(length=100, diam=500, cm=1, channels=[jn.channels.Leak(g=1e-4, e=-70)], **kw)


def exact_step_response(t, amp=1.0, delay=10.0, v0=-70.0):
    """Analytic response of the passive soma from rest to a step of amp nA."""
    r_in = 1.0 / (1e-4 * math.pi * 100 * 500 * 1e-8) * 1e-6  # MΩ
    return np.where(t < delay, v0, v0 + amp * r_in * (1 - np.exp(-(t - delay) / TAU)))


def test_initial_relaxation_is_exponential():
    trace = jn.simulate(passive(), 50.0, dt=0.01, v0=-65)
    exact = -70 + 5 * np.exp(-np.asarray(trace.t) / TAU)
    # Backward Euler: first order in dt.
    assert np.max(np.abs(np.asarray(trace.v) - exact)) < 5e-3


def test_adaptive_diffrax_solver_is_accurate_across_the_step():
    stim = jn.StepCurrent(1.0, 10.0, 100.0)
    trace = jn.simulate(passive(), 60.0, v0=-70, stimuli=[stim], solver=diffrax.Tsit5(),
                        stepsize_controller=diffrax.PIDController(rtol=1e-9, atol=1e-9), save_every=0.5)
    np.testing.assert_allclose(trace.v, exact_step_response(np.asarray(trace.t)), atol=1e-6)


def _passive_soma_100um():
    """A passive soma, L = diam = 100 µm (area 3.14e4 µm²), tau = 10 ms, at rest at -70 mV."""
    return jn.Compartment(length=100, diam=100, channels=[jn.channels.Leak(g=1e-4, e=-70)])


def test_adaptive_steps_do_not_pass_over_a_recorded_current():
    # A 0.2 ms, 5 nA triangle in a DataCurrent: the controller stepped over it (peak 0.0
    # mV); its samples are now times the controller steps to.
    vals = np.zeros(1001)
    vals[503] = 5.0
    stim = jn.DataCurrent(values=jnp.asarray(vals), dt=0.1)
    fine = jn.simulate(_passive_soma_100um(), 60.0, dt=0.0025, v0=-70.0, stimuli=[stim],
                       solver=jn.StaggeredEuler(voltage_update="crank_nicolson"))
    adaptive = jn.simulate(_passive_soma_100um(), 60.0, v0=-70.0, stimuli=[stim], solver=diffrax.Tsit5(),
                           stepsize_controller=diffrax.PIDController(rtol=1e-8, atol=1e-8))
    peak = float(jnp.max(adaptive.v)) + 70.0
    assert peak == pytest.approx(float(jnp.max(fine.v)) + 70.0, rel=2e-3)
    assert peak > 1.5


def test_a_users_clip_controller_keeps_the_stimulus_jumps():
    # ClipStepSizeController(PIDController(...)) got no jump times: a 0.1 ms pulse at an
    # odd time was skipped (peak -70.000 mV).
    stim = jn.StepCurrent(amp=1.0, delay=50.0123, dur=0.1)
    r_in = 1.0 / (1e-4 * math.pi * 100 * 100 * 1e-8) * 1e-6  # MΩ
    exact = -70.0 + r_in * (1.0 - math.exp(-0.1 / TAU))
    for controller in (diffrax.PIDController(rtol=1e-6, atol=1e-6),
                       diffrax.ClipStepSizeController(diffrax.PIDController(rtol=1e-6, atol=1e-6)),
                       diffrax.ClipStepSizeController(diffrax.PIDController(rtol=1e-6, atol=1e-6), step_ts=[25.0])):
        tr = jn.simulate(_passive_soma_100um(), 60.0, v0=-70.0, stimuli=[stim], solver=diffrax.Tsit5(),
                         stepsize_controller=controller, save_every=0.005)
        assert float(jnp.max(tr.v)) == pytest.approx(exact, abs=1e-4)


def test_implicit_diffrax_solver_at_a_constant_step_asks_for_tolerances():
    # It failed inside the root finder with "Type of `other` not understood".
    for controller in (None, diffrax.ConstantStepSize()):
        with pytest.raises(ValueError, match=r"solver: Kvaerno5 is implicit, and at a constant step .* no tolerances"):
            jn.simulate(_passive_soma_100um(), 1.0, solver=diffrax.Kvaerno5(), stepsize_controller=controller)
    tr = jn.simulate(_passive_soma_100um(), 1.0, v0=-65.0,
                     solver=diffrax.Kvaerno5(root_finder=diffrax.VeryChord(rtol=1e-10, atol=1e-10)))
    assert float(tr.v[-1]) == pytest.approx(-70.0 + 5.0 * math.exp(-1.0 / TAU), abs=1e-6)


def test_recursive_checkpoint_adjoint_at_a_constant_step_is_refused():
    # diffrax 0.7 returned exactly 0 for some samples' gradients there.
    with pytest.raises(ValueError, match=r"adjoint: diffrax\.RecursiveCheckpointAdjoint at a constant step"):
        jn.simulate(_passive_soma_100um(), 1.0, adjoint=diffrax.RecursiveCheckpointAdjoint())


def test_an_adjoint_keeps_the_constant_step_grid():
    # With an adjoint the run goes through diffrax.diffeqsolve, whose constant step cut
    # 10.03 ms into 402 equal steps of 0.02495 ms: the HH trace was 0.26 mV off the
    # default run's (steps of 0.025, the last shortened), a gradient with it.
    hh = jn.Compartment(length=20.0, diam=20.0, channels=[jn.channels.HH()])
    step = jn.StepCurrent(0.3, 1.0, 1e9)
    mine = jn.simulate(hh, 10.03, stimuli=[step], save_every=0.5)
    for adjoint in (diffrax.DirectAdjoint(),):
        theirs = jn.simulate(hh, 10.03, stimuli=[step], save_every=0.5, adjoint=adjoint)
        np.testing.assert_allclose(np.asarray(theirs.v), np.asarray(mine.v), rtol=0, atol=1e-9)
        np.testing.assert_array_equal(np.asarray(theirs.t), np.asarray(mine.t))
    assert float(jnp.ptp(mine.v)) > 50.0  # it fired

    def final_v(amp, **kw):
        return jn.simulate(hh, 3.03, stimuli=[jn.StepCurrent(amp, 1.0, 1e9)], **kw).final_state.v

    # Each gradient compiled as one program, not op by op.
    np.testing.assert_allclose(jax.jit(jax.grad(functools.partial(final_v, adjoint=diffrax.DirectAdjoint())))(0.3),
                               jax.jit(jax.grad(final_v))(0.3), rtol=1e-8)


def test_a_float32_end_a_hair_past_the_grid_takes_no_empty_step():
    # t1 = 10.0000001 is 10.0 in float32: the run took a 401st step of length 0, which
    # turned a cable's voltages into NaN (with a warning blaming dt). An end the
    # float32 times cannot tell from a grid time is that grid time; one past it by more
    # than their resolution is reached by a short last step, as in float64.
    with jax.enable_x64(False):
        cable = jn.Cable(length=200.0, diam=2.0, nseg=5, channels=[jn.channels.HH()])
        stim = [jn.StepCurrent(0.3, 1.0, 1e9, target=0.5)]
        on = jn.simulate(cable, 10.0, stimuli=stim)
        for t1, n in ((10.0000001, 401), (10.000001, 401), (10.00001, 402), (1000.00001, 40001)):
            tr = jn.simulate(cable, t1, stimuli=stim)
            assert tr.v.shape == (n, 5) and np.all(np.isfinite(np.asarray(tr.v)))
            assert np.all(np.diff(np.asarray(tr.t)) > 0)
        np.testing.assert_array_equal(jn.simulate(cable, 10.0000001, stimuli=stim).v, on.v)
        assert float(jn.simulate(cable, 10.00001, stimuli=stim).t[-1]) == np.float32(10.00001)


def test_float32_runs_far_from_zero_keep_their_steps_and_adjoints_their_grid():
    # count_steps' rounding slack once grew past a step far from t = 0 in float32 (a
    # 10 ms run at 99990 ms took 399 steps and ended short of t1); with an adjoint, a
    # last step within diffrax's 100-ulp clip of t1 made a cable's state NaN, and the
    # grid step came from float32 times (0.6 mV off the own loop's HH spike at 1000 ms).
    with jax.enable_x64(False):
        assert jn.solve.fixed_step.count_steps(99990.0, 100000.0, 0.025) == 400
        soma = jn.Compartment(area=1000.0, channels=[jn.channels.Leak(g=1e-5, e=-70.0)])
        step = jn.StepCurrent(0.05, 0.0, 1e9)
        near = jn.simulate(soma, 10.0, stimuli=[step], save_every=3.0)
        far = jn.simulate(soma, 100000.0, t0=99990.0, stimuli=[jn.StepCurrent(0.05, 99990.0, 1e9)], save_every=3.0)
        assert float(far.t[-1]) == 100000.0
        np.testing.assert_array_equal(far.final_state.v, near.final_state.v)
        cable = jn.Cable(length=200.0, diam=2.0, nseg=7, channels=[jn.channels.HH()])
        mine = jn.simulate(cable, 10.00003)
        theirs = jn.simulate(cable, 10.00003, adjoint=diffrax.DirectAdjoint())
        np.testing.assert_allclose(theirs.final_state.v, mine.final_state.v, rtol=0, atol=1e-4)
        hh = jn.Compartment(length=20.0, diam=20.0, channels=[jn.channels.HH()])
        kick = [jn.StepCurrent(0.3, 1001.0, 1e9)]
        mine = jn.simulate(hh, 1010.01, t0=1000.0, stimuli=kick)
        theirs = jn.simulate(hh, 1010.01, t0=1000.0, stimuli=kick, adjoint=diffrax.DirectAdjoint())
        assert float(jnp.max(mine.v)) > 20.0  # through a spike
        np.testing.assert_allclose(theirs.v, mine.v, rtol=0, atol=1e-3)
        with pytest.raises(ValueError, match=r"adjoint: diffrax's loop moves a step ending within 100 ulp of t1 "
                                             r"onto t1, which in float32 at t1 = 30010 ms is 0.197 ms"):
            jn.simulate(hh, 30010.0, t0=30000.0, adjoint=diffrax.DirectAdjoint())
        jn.simulate(hh, 2047.0, t0=2046.9, adjoint=diffrax.DirectAdjoint())  # the docstring's bound
        with pytest.raises(ValueError, match="adjoint: diffrax's loop"):
            jn.simulate(hh, 2048.0, t0=2047.0, adjoint=diffrax.DirectAdjoint())


def test_fixed_step_diffrax_solver():
    trace = jn.simulate(passive(), 60.0, dt=0.025, v0=-70, stimuli=[jn.StepCurrent(1.0, 10.0, 100.0)],
                        solver=diffrax.Heun(), save_every=1.0)
    # Heun is second order, but the step across the stimulus onset sees the jump at one
    # stage only: an O(dt) error of about dt/2·I·R/τ ≈ 8 µV that then decays.
    v, exact = np.asarray(trace.v), exact_step_response(np.asarray(trace.t))
    assert np.max(np.abs(v - exact)) < 1e-2
    assert np.max(np.abs(v - exact)[:10]) < 1e-9  # before the jump, exact


def test_crank_nicolson_is_second_order():
    errs = []
    for dt in (0.2, 0.1):
        tr = jn.simulate(passive(), 20.0, dt=dt, v0=-65, solver=jn.StaggeredEuler(voltage_update="crank_nicolson"))
        errs.append(np.max(np.abs(np.asarray(tr.v) - (-70 + 5 * np.exp(-np.asarray(tr.t) / TAU)))))
    assert errs[0] / errs[1] == pytest.approx(4.0, rel=0.05)


@pytest.mark.parametrize("update", ["backward_euler", "crank_nicolson", "exponential"])
def test_each_voltage_update_converges_at_the_order_it_states(update):
    """Observed on an HH compartment firing through its first spikes (halving dt from
    0.05 to 0.025 ms, against dt = 0.4/512): the exponential update's linearised flow
    with gates half a step ahead is second order, as Crank–Nicolson's (order() said 1)."""
    solver = jn.StaggeredEuler(voltage_update=update)
    cell = jn.Compartment(length=20, diam=20, channels=[jn.channels.HH()])
    stim = [jn.StepCurrent(0.05, 0.0, 1e9)]
    ref = np.asarray(jn.simulate(cell, 8.0, dt=0.4 / 512, stimuli=stim, solver=solver, save_every=0.4).v)
    errs = [np.max(np.abs(np.asarray(jn.simulate(cell, 8.0, dt=dt, stimuli=stim, solver=solver,
                                                 save_every=0.4).v) - ref)) for dt in (0.05, 0.025)]
    assert np.log2(errs[0] / errs[1]) == pytest.approx(solver.order(None), abs=0.15)


def test_save_every_and_time_grid():
    trace = jn.simulate(passive(), 10.0, dt=0.025, save_every=0.5, t0=2.0, v0=-65)
    np.testing.assert_allclose(trace.t, np.arange(2.0, 10.0 + 1e-9, 0.5))
    assert trace.v.shape == (17,)
    assert float(trace.v[0]) == -65.0


def test_initialisation_puts_gates_at_steady_state():
    model = jn.Compartment(area=1000, channels=[jn.channels.HH()])
    trace = jn.simulate(model, 0.1, v0=-70, record=("v", "m_hh", "h_hh", "n_hh"))
    ss = jn.channels.HH().steady_state(-70.0, 6.3)
    for g in "mhn":
        assert float(getattr(trace, f"{g}_hh")[0]) == pytest.approx(float(ss[g]), rel=1e-12)


def test_record_names_and_shapes():
    model = jn.Compartment(area=1000, channels=[jn.channels.HH(), jn.channels.Leak(g=1e-5)])
    names = model.observables()
    for expected in ("v", "i_cap", "i_inj", "i_hh", "ina_hh", "ik_hh", "il_hh", "i_pas", "m_hh"):
        assert expected in names
    trace = jn.simulate(model, 5.0, record=names, stimuli=[jn.StepCurrent(0.05, 1, 2)])
    for name in names:
        assert getattr(trace, name).shape == (201,)
    # Kirchhoff: i_cap = injected density - ionic currents.
    i_inj_density = 100 * np.asarray(trace.i_inj) / 1000
    np.testing.assert_allclose(trace.i_cap, i_inj_density - np.asarray(trace.i_hh) - np.asarray(trace.i_pas), atol=1e-12)
    np.testing.assert_allclose(trace.i_hh, np.asarray(trace.ina_hh) + np.asarray(trace.ik_hh) + np.asarray(trace.il_hh), atol=1e-12)
    with pytest.raises(AttributeError, match="recorded"):
        trace.m_hh_missing


def test_population_of_compartments_equals_separate_runs():
    g = jnp.array([1e-4, 2e-4, 4e-4])
    pop = jn.Compartment(area=1000, n=3, channels=[jn.channels.Leak(g=g, e=-70)])
    stim = jn.StepCurrent(0.01, 1.0, 5.0, target=[0, 2])
    trace = jn.simulate(pop, 10.0, stimuli=[stim], v0=-70)
    assert trace.v.shape == (401, 3)
    for k in range(3):
        single = jn.Compartment(area=1000, channels=[jn.channels.Leak(g=g[k], e=-70)])
        amp = 0.01 if k in (0, 2) else 0.0
        ref = jn.simulate(single, 10.0, stimuli=[jn.StepCurrent(amp, 1.0, 5.0)], v0=-70)
        np.testing.assert_allclose(trace.v[:, k], ref.v, atol=1e-12)


def test_population_targets_are_placed_without_a_scatter():
    """Static targets (repeated and negative indices too) sum like a scatter-add, and
    the compiled time loop holds no scatter, so a CPU can run it as one kernel."""
    pop = jn.Compartment(area=1000, n=4, channels=[jn.channels.Leak(g=1e-4, e=-70)])
    placed = pop.place_current((2, -1, 2), jnp.asarray([1.0, 2.0, 4.0]))
    np.testing.assert_array_equal(placed, [0.0, 0.0, 5.0, 2.0])
    g_amp = jax.grad(lambda a: jnp.sum(pop.place_current((2, -1, 2), a) * jnp.arange(4.0)))(jnp.ones(3))
    np.testing.assert_array_equal(g_amp, [2.0, 3.0, 2.0])

    def run(amp):
        stim = jn.StepCurrent(amp, 1.0, 5.0, target=(1, 3))
        return jn.simulate(pop, 3.0, stimuli=[stim], v0=-70).v

    assert not compiles_to_a_scatter(run, 0.01)
    v = run(0.01)
    np.testing.assert_array_equal(v[:, 0], v[:, 2])
    np.testing.assert_array_equal(v[:, 1], v[:, 3])
    assert v[-1, 1] > v[-1, 0] + 1.0


def test_vmap_and_jit_over_simulate():
    def final_v(g):
        model = jn.Compartment(area=1000, channels=[jn.channels.Leak(g=g, e=-70)])
        return jn.simulate(model, 20.0, stimuli=[jn.StepCurrent(0.01, 0, 100)], v0=-70).v[-1]

    gs = jnp.array([1e-4, 2e-4])
    out = jax.jit(jax.vmap(final_v))(gs)
    np.testing.assert_allclose(out, [final_v(gs[0]), final_v(gs[1])], rtol=1e-12)


def test_trace_at_interpolates_and_checks_range():
    trace = jn.simulate(passive(), 10.0, v0=-65)
    mid = trace.at(jnp.array([0.0125, 5.0]))
    np.testing.assert_allclose(mid.v[0], 0.5 * (trace.v[0] + trace.v[1]))
    assert float(mid.v[1]) == pytest.approx(float(trace.v[200]))
    with pytest.raises(ValueError, match="recorded range"):
        trace.at(11.0)
    with pytest.raises(ValueError, match="recorded range"):  # was a NaN result
        trace.at(float("nan"))
    with pytest.raises(Exception, match="recorded range"):  # under jit: at run time
        jax.block_until_ready(jax.jit(lambda t: trace.at(t).v)(jnp.nan))
    assert trace.window(2.0, 3.0).t.shape == (41,)


def test_trace_at_and_window_of_populations_and_vmapped_batches():
    """A population's columns are interpolated at once (they were one Python loop per
    neuron); a batch from jax.vmap(simulate) is read per trace (its
    window used to mix the traces into one flat array)."""
    def run(g):
        return jn.simulate(jn.LIF(gL=g, C=0.25, EL=-70.0, V_th=-50.0, V_reset=-70.0), 30.0,
                           stimuli=[jn.StepCurrent(0.8, 0.0, 1e9)])

    gs = jnp.linspace(0.01, 0.02, 3)
    pop = jn.simulate(jn.LIF(n=3, gL=gs, C=0.25, EL=-70.0, V_th=-50.0, V_reset=-70.0), 30.0,
                      stimuli=[jn.StepCurrent(0.8, 0.0, 1e9)])
    batch = jax.vmap(run)(gs)
    assert batch.t.shape == (3, 1201) and pop.v.shape == (1201, 3)
    times = jnp.array([0.0125, 17.3, 30.0])
    at = pop.at(times)
    for j in range(3):
        np.testing.assert_array_equal(at.v[:, j], jnp.interp(times, pop.t, pop.v[:, j]))
        single = run(gs[j])
        np.testing.assert_allclose(batch.at(times).v[j], single.at(times).v, rtol=0, atol=1e-12)
        np.testing.assert_allclose(batch.window(10.0, 20.0).v[j], single.window(10.0, 20.0).v, rtol=0, atol=1e-12)
        np.testing.assert_array_equal(batch.window(10.0, 20.0).t[j], single.window(10.0, 20.0).t)
    np.testing.assert_allclose(batch.at(17.3).v, at.v[1], rtol=0, atol=1e-12)
    assert batch.window(10.0, 20.0).v.shape == (3, 401)
    skewed = eqx.tree_at(lambda tr: tr.t, batch, batch.t.at[1].add(1.0))
    with pytest.raises(ValueError, match="different time grids"):
        skewed.window(10.0, 20.0)


def test_trace_plot_returns_axes(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    trace = jn.simulate(passive(), 5.0, v0=-65, record=("v", "i_pas"))
    ax = trace.plot("v")
    assert ax.get_xlabel() == "time (ms)" and len(ax.lines) == 1
    ax.figure.savefig(tmp_path / "v.png")
    assert (tmp_path / "v.png").stat().st_size > 1000


def test_trace_plots_of_populations_spikes_and_networks():
    import matplotlib

    matplotlib.use("Agg")
    pop = jn.simulate(jn.Compartment(length=20, diam=20, n=3, channels=[jn.channels.HH()]), 5.0,
                      record=("v", "m_hh"))
    axes = pop.plot("v", "m_hh")  # a voltage and a gate: an axes each, one time axis
    assert len(axes) == 2 and [len(a.lines) for a in axes] == [3, 3]  # a line per neuron
    assert [a.get_ylabel() for a in axes] == ["membrane potential (mV)", "m_hh (dimensionless)"]
    assert axes[0].get_shared_x_axes().joined(axes[0], axes[1])
    one = pop.plot("v", "m_hh", ax=axes[0].figure.add_subplot(3, 1, 3))  # all on the given axes
    assert len(one.lines) == 6 and one.get_ylabel() == "v (mV); m_hh (dimensionless)"
    assert [t.get_text() for t in one.get_legend().get_texts()] == [  # an entry per name and neuron
        f"{name} neuron {i}" for name in ("v", "m_hh") for i in range(3)]
    with pytest.raises(ValueError, match=r"ax: 1 axes given for 2 names"):
        pop.plot("v", "m_hh", ax=[one])
    lif = jn.simulate(jn.LIF(n=3), 50.0, stimuli=[jn.StepCurrent(2.0)], record=())
    raster = lif.plot("spikes")
    x, y = raster.lines[0].get_data()
    assert len(x) == int(np.sum(lif.spike_count)) and set(y) == {0, 1, 2}
    with pytest.raises(ValueError, match=r"recorded no variables .*plot\('spikes'\)"):
        lif.plot()
    net = jn.simulate(jn.Network({"a": jn.LIF(n=2)}), 5.0)
    with pytest.raises(ValueError, match=r"trace\[name\]\.plot\(\)"):
        net.plot()
    assert net["a"].plot("v").get_ylabel() == "membrane potential (mV)"


def test_save_every_must_be_a_multiple_of_dt_for_fixed_steps():
    with pytest.raises(ValueError, match=r"save_every.*multiple of dt"):
        jn.simulate(passive(), 10.0, dt=0.025, save_every=0.03)


def test_last_step_is_shortened_to_end_at_t1():
    """t1 off the dt grid: the final state is at t1 exactly (spike counts up to t1)."""
    lif = jn.LIF(C=1.0, gL=0.1, EL=-70, V_th=-55, V_reset=-75, t_ref=2)
    a = jn.simulate(lif, 30.0, dt=0.1, stimuli=[jn.StepCurrent(2.0)])
    b = jn.simulate(lif, 30.05, dt=0.1, stimuli=[jn.StepCurrent(2.0)])
    # b's last sample is at t1 = 30.05, after the shortened step; the grid before it is a's.
    assert a.t[-1] == pytest.approx(30.0) and b.t[-1] == pytest.approx(30.05) and b.t[-2] == pytest.approx(30.0)
    np.testing.assert_allclose(a.v, b.v[:-1])
    assert float(b.v[-1]) == float(b.final_state.v)


def test_t1_off_the_save_grid_by_rounding_works_with_adaptive_steps():
    tr = jn.simulate(passive(), 61.3, v0=-65, solver=diffrax.Tsit5(),
                     stepsize_controller=diffrax.PIDController(rtol=1e-8, atol=1e-8))
    assert float(tr.t[-1]) == 61.3
    assert float(tr.v[-1]) == pytest.approx(-70 + 5 * math.exp(-61.3 / TAU), abs=1e-6)


_LONG_RUNS = """
def long_runs(jn, np):
    # A LIF neuron firing for 4 s at dt = 0.025 ms: in float32, t1 - t0 near 4 s is off 0.025
    # by up to 2.4e-4 ms (float32's spacing there).
    lif = jn.LIF(n=2, spike_capacity=200)
    spikes = np.asarray(jn.simulate(lif, 4000.0, dt=0.025, stimuli=[jn.StepCurrent(1.6)], record=()).spikes)[0]
    # The same for 300 ms on the fused kernel (Pallas, interpreted on a CPU), which carries
    # the solver's state as the XLA loop does.
    short = [np.asarray(jn.simulate(lif, 300.0, dt=0.025, stimuli=[jn.StepCurrent(1.6)], record=(),
                                    backend=b).spikes)[0, :8] for b in ("xla", "pallas")]
    # A slow membrane (tau = 100 ms) at dt = 0.01 ms: its increments near the end are far
    # below float32's spacing at -70 mV.
    soma = jn.Compartment(length=100, diam=500, channels=[jn.channels.Leak(g=1e-5, e=-70)])
    relax = np.asarray(jn.simulate(soma, 1000.0, dt=0.01, v0=-65).v)[[100, 10000, -1]]
    stim = jn.StepCurrent(-0.02, 100.0, 800.0)
    rin = float(jn.input_resistance(jn.simulate(soma, 1000.0, dt=0.01, v0=-70, stimuli=[stim]), stim))
    return np.concatenate([spikes[np.isfinite(spikes)][-5:], short[0], short[1], relax, [rin]])
"""


def test_float32_long_runs_neither_drift_nor_stall(tmp_path):
    # Single precision (in its own process: JAX's precision is per process; float64 in
    # this one): the step is the grid's dt
    # wherever t1 - t0 equals it to the rounding of t, and the voltage is summed with
    # compensation. Before, the last spike of a 10 s LIF run came 5.3 ms early (of the 4 s run
    # here, 0.4 ms), a
    # membrane with tau = 100 ms stalled 0.038 mV short of its rest and the input
    # resistance read off its trace was 3 % low.
    script = tmp_path / "f32.py"
    script.write_text("import sys\nimport numpy as np\nimport jaxneuro as jn\n" + _LONG_RUNS
                      + "np.save(sys.argv[1], long_runs(jn, np))\n")
    env = dict(os.environ, JAX_ENABLE_X64="0")
    subprocess.run([sys.executable, str(script), str(tmp_path / "f32.npy")], check=True, timeout=300, env=env)
    f32 = np.load(tmp_path / "f32.npy")
    namespace: dict = {}
    exec(_LONG_RUNS, namespace)
    f64 = namespace["long_runs"](jn, np)
    assert f64[4] > 3900.0
    np.testing.assert_allclose(f32[:5], f64[:5], rtol=0, atol=0.02)  # float32 t spacing: 0.001 ms
    np.testing.assert_array_equal(f32[5:13], f32[13:21])  # fused kernel == XLA loop
    np.testing.assert_allclose(f32[5:13], f64[5:13], rtol=0, atol=2e-3)
    np.testing.assert_allclose(f32[21:24], f64[21:24], rtol=0, atol=2e-5)  # ~3 float32 spacings
    assert abs(f64[23] - (-70 + 5 * math.exp(-10))) < 1e-6
    assert f32[24] == pytest.approx(f64[24], rel=1e-5)


def test_a_run_in_two_parts_equals_one_run():
    """trace.final_state continues a run: HH, a LIF population (spike buffers carry on
    filling) and a network with a synapse, in two parts, equal the run in one; with an
    adaptive solver too; an init of another layout is refused."""
    import diffrax

    hh = jn.Compartment(length=20, diam=20, channels=[jn.channels.HH()])
    stim = [jn.StepCurrent(0.2, 5.0, 30.0)]
    whole = jn.simulate(hh, 40.0, stimuli=stim)
    first = jn.simulate(hh, 20.0, stimuli=stim)
    second = jn.simulate(hh, 40.0, t0=20.0, init=first.final_state, stimuli=stim)
    np.testing.assert_allclose(second.v, whole.v[800:], rtol=0, atol=1e-9)
    np.testing.assert_allclose(whole.final_state.gates["m_hh"], second.final_state.gates["m_hh"], rtol=0, atol=1e-12)

    lif = jn.LIF(n=3, spike_capacity=32)
    drive = [jn.StepCurrent(jnp.array([2.0, 3.0, 4.0]))]
    whole = jn.simulate(lif, 100.0, stimuli=drive)
    first = jn.simulate(lif, 50.0, stimuli=drive)
    second = jn.simulate(lif, 100.0, t0=50.0, init=first.final_state, stimuli=drive)
    np.testing.assert_allclose(second.spikes, whole.spikes, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(second.spike_count, whole.spike_count)
    assert float(first.spike_count[2]) < float(second.spike_count[2])

    net = jn.Network({"pre": jn.LIF(n=1), "post": jn.Compartment(area=1000, channels=[jn.channels.Leak(g=1e-4)], n=1)},
                     [jn.ExpSynapse("pre", "post", jn.conn.one_to_one, 0.01, 3.0, 0.0, 1.0)])
    drive = [jn.StepCurrent(3.0, target="pre")]
    whole = jn.simulate(net, 60.0, stimuli=drive)
    first = jn.simulate(net, 30.0, stimuli=drive)
    second = jn.simulate(net, 60.0, t0=30.0, init=first.final_state, stimuli=drive)
    np.testing.assert_allclose(second["post"].v, whole["post"].v[1200:], rtol=0, atol=1e-9)

    pid = dict(solver=diffrax.Tsit5(), stepsize_controller=diffrax.PIDController(rtol=1e-8, atol=1e-8))
    whole = jn.simulate(hh, 40.0, stimuli=stim, save_every=1.0, **pid)
    first = jn.simulate(hh, 20.0, stimuli=stim, save_every=1.0, **pid)
    second = jn.simulate(hh, 40.0, t0=20.0, init=first.final_state, stimuli=stim, save_every=1.0, **pid)
    np.testing.assert_allclose(second.v, whole.v[20:], rtol=0, atol=1e-4)

    with pytest.raises(ValueError, match="give v0 or init"):
        jn.simulate(hh, 1.0, v0=-65.0, init=first.final_state)
    with pytest.raises(ValueError, match="state layout"):
        jn.simulate(lif, 1.0, init=first.final_state)
    with pytest.raises(ValueError, match=r"shape \(3,\) where the model has \(2,\)"):
        jn.simulate(jn.LIF(n=2, spike_capacity=32), 1.0, init=jn.simulate(lif, 1.0).final_state)


def test_init_a_trace_continues_it_from_its_end():
    """init=trace continues that run: t0 defaults to its end (the state and the time
    together, so a forgotten t0= cannot restart it at 0 with its stimuli replayed);
    another t0 is refused naming both; a cut trace is refused; under jit too."""
    hh = jn.Compartment(length=20, diam=20, channels=[jn.channels.HH()])
    stim = [jn.StepCurrent(0.2, 5.0, 30.0)]
    whole = jn.simulate(hh, 40.0, stimuli=stim)
    first = jn.simulate(hh, 20.0, stimuli=stim)
    second = jn.simulate(hh, 40.0, init=first, stimuli=stim)
    assert float(second.t[0]) == 20.0
    np.testing.assert_allclose(second.v, whole.v[800:], rtol=0, atol=1e-9)
    same = jn.simulate(hh, 40.0, t0=20.0, init=first, stimuli=stim)
    np.testing.assert_array_equal(same.v, second.v)
    # A state (not a trace) starts at t0, default 0: here the stimulus replays.
    restarted = jn.simulate(hh, 20.0, init=first.final_state, stimuli=stim)
    assert float(restarted.t[0]) == 0.0
    assert np.max(np.abs(np.asarray(restarted.v) - np.asarray(whole.v[800:]))) > 1.0
    with pytest.raises(ValueError, match=r"t0=0 ms: init is a trace that ended at 20 ms.*init=trace.final_state"):
        jn.simulate(hh, 40.0, t0=0.0, init=first, stimuli=stim)
    with pytest.raises(ValueError, match=r"t1 must be greater than t0.*not its duration.*t0=20"):
        jn.simulate(hh, 10.0, init=first, stimuli=stim)
    with pytest.raises(ValueError, match="cut by at\\(\\) or window\\(\\)"):
        jn.simulate(hh, 40.0, init=first.window(5.0, 10.0), stimuli=stim)

    @jax.jit
    def in_parts(gnabar):
        model = eqx.tree_at(lambda m: m.channels[0].gnabar, hh, gnabar)
        return jn.simulate(model, 40.0, init=jn.simulate(model, 20.0, stimuli=stim), stimuli=stim).v

    np.testing.assert_allclose(in_parts(0.12), whole.v[800:], rtol=0, atol=1e-9)

    net = jn.Network({"pre": jn.LIF(n=1), "post": jn.Compartment(area=1000, channels=[jn.channels.Leak(g=1e-4)], n=1)},
                     [jn.ExpSynapse("pre", "post", jn.conn.one_to_one, 0.01, 3.0, 0.0, 1.0)])
    drive = [jn.StepCurrent(3.0, target="pre")]
    whole = jn.simulate(net, 60.0, stimuli=drive)
    second = jn.simulate(net, 60.0, init=jn.simulate(net, 30.0, stimuli=drive), stimuli=drive)
    np.testing.assert_allclose(second["post"].v, whole["post"].v[1200:], rtol=0, atol=1e-9)


class _CountCompiles:
    """Counts XLA compilations (JAX's compile log) while active: all of them, and
    those of the time loop (``loops``); ``messages`` holds their log lines."""

    def __enter__(self):
        import logging

        self.count, self.loops, self.messages, counter = 0, 0, [], self

        class Handler(logging.Handler):
            def emit(self, record):
                message = record.getMessage()
                counter.count += "Finished XLA compilation" in message
                counter.loops += "Finished XLA compilation" in message and "integrate" in message
                if "Finished XLA compilation" in message:
                    counter.messages.append(message)

        self._log, self._handler = logging.getLogger("jax"), Handler()
        self._saved = (self._log.level, self._log.propagate)
        jax.config.update("jax_log_compiles", True)
        self._log.addHandler(self._handler)
        self._log.setLevel(logging.DEBUG)
        self._log.propagate = False
        return self

    def __exit__(self, *exc):
        jax.config.update("jax_log_compiles", False)
        self._log.removeHandler(self._handler)
        self._log.setLevel(self._saved[0])
        self._log.propagate = self._saved[1]


@pytest.mark.parametrize("kind", ["compartment", "split population", "adaptive"])
def test_the_parts_of_a_long_run_share_one_compiled_loop(kind):
    """t0 and t1 are traced in the compiled loops (only the step, the number of steps
    and of saves are compiled in): every part of a run in equal parts after the first
    compiles nothing, and the parts equal one run. Before, each part compiled its loop
    again (0.5-1 s a part against ~10 ms), and an adaptive run compiled on every call
    (its save function was a new lambda each time)."""
    kw = {}
    if kind == "compartment":
        model = jn.Compartment(length=20, diam=20, channels=[jn.channels.HH()])
    elif kind == "split population":
        model = jn.Compartment(length=20, diam=20, channels=[jn.channels.HH(gnabar=jnp.linspace(0.08, 0.16, 256))])
        kw = {"backend": "sharded"}
    else:
        model = jn.Compartment(length=20, diam=20, channels=[jn.channels.HH()])
        kw = {"solver": diffrax.Tsit5(), "stepsize_controller": diffrax.PIDController(rtol=1e-8, atol=1e-8)}
    stim = [jn.StepCurrent(0.2, 3.0, 100.0)]
    whole = jn.simulate(model, 40.0, stimuli=stim, save_every=0.5, **kw)
    trace, parts, compiles, loops = None, [], [], []
    for t0 in (0.0, 10.0, 20.0, 30.0):
        with _CountCompiles() as counted:
            init = {} if trace is None else {"init": trace.final_state, "t0": t0}
            trace = jn.simulate(model, t0 + 10.0, stimuli=stim, save_every=0.5, **init, **kw)
            trace.v.block_until_ready()
        parts.append(np.asarray(trace.v[:-1]))
        compiles.append(counted.count)
        loops.append(counted.loops)
    assert compiles[2:] == [0, 0], compiles
    # The first continued part neither: a split population's state comes back split
    # over the devices, a placement the compiled loop's key held (it compiled again).
    assert loops[1:] == [0, 0, 0], loops
    if kind != "adaptive":
        assert loops[0] == 1, loops
    joined = np.concatenate(parts + [np.asarray(trace.v[-1:])])
    np.testing.assert_allclose(joined, whole.v, rtol=0, atol=1e-4 if kind == "adaptive" else 1e-9)
    if kind == "adaptive":
        with _CountCompiles() as counted:
            jn.simulate(model, 40.0, stimuli=stim, save_every=0.5, **kw).v.block_until_ready()
        assert counted.count == 0


def test_numbers_set_by_tree_at_do_not_compile_the_run_again():
    """eqx.tree_at(..., 0.03) leaves a Python float where the constructor puts an array;
    the run's filter_jit took it as a compile-time constant, so every new value compiled
    the loop again (0.5-1 s an HH run against ~30 ms). Same values as arrays give."""
    import equinox as eqx

    comp = jn.Compartment(length=20, diam=20, channels=[jn.channels.HH()])
    cab = jn.Cable(length=300, diam=1, nseg=7, channels=[jn.channels.HH()])
    stim = [jn.StepCurrent(0.3, 1.0, 5.0)]
    cases = [
        (comp, lambda m: m.channels[0].gkbar, [0.030, 0.032, 0.034]),
        (cab, lambda m: m.Ra, [50.0, 60, 70.0]),  # an int too
    ]
    for model, where, values in cases:
        stim = [jn.StepCurrent(0.3, 1.0, 5.0, target=None if model is comp else 0.5)]
        jn.simulate(eqx.tree_at(where, model, values[0]), 5.0, stimuli=stim).v.block_until_ready()
        for value in values[1:]:
            edited = eqx.tree_at(where, model, value)
            with _CountCompiles() as counted:
                v = jn.simulate(edited, 5.0, stimuli=stim).v
                v.block_until_ready()
            assert counted.loops == 0, (value, counted.loops)
            # jnp.asarray of a number is weakly typed: another signature to jit, which
            # compiled the run once more.
            with _CountCompiles() as counted:
                as_array = jn.simulate(eqx.tree_at(where, model, jnp.asarray(float(value))), 5.0, stimuli=stim).v
            assert counted.loops == 0, (value, counted.loops)
            np.testing.assert_array_equal(v, as_array)
    # A stimulus's number too.
    stim = [jn.StepCurrent(0.3, 1.0, 5.0)]
    jn.simulate(comp, 5.0, stimuli=[eqx.tree_at(lambda s: s.amp, stim[0], 0.2)]).v.block_until_ready()
    with _CountCompiles() as counted:
        jn.simulate(comp, 5.0, stimuli=[eqx.tree_at(lambda s: s.amp, stim[0], 0.25)]).v.block_until_ready()
    assert counted.loops == 0


def test_record_at_chosen_places_keeps_only_those_columns():
    """record={name: places}: the columns of those places, in that order, equal to the
    full record's; None keeps all; bad places are named."""
    soma = jn.Cable(length=20, diam=20, nseg=1, channels=[jn.channels.HH()], name="soma")
    dend = jn.Cable(length=300, diam=1, nseg=9, channels=[jn.channels.Leak()], name="dend")
    cell = jn.Cell([soma, dend], parents=[None, ("soma", 1.0)])
    stim = [jn.StepCurrent(0.3, 1.0, 5.0, target=("soma", 0.5))]
    full = jn.simulate(cell, 8.0, stimuli=stim, record=("v", "i_cap"))
    places = [("dend", 0.9), ("soma", 0.5), 3, ("dend", 1)]
    chosen = jn.simulate(cell, 8.0, stimuli=stim, record={"v": places, "i_cap": None})
    idx = [cell.index("dend", 0.9), 0, 3, cell.index("dend", 1.0)]
    assert chosen.v.shape == (full.v.shape[0], 4) and chosen.i_cap.shape == full.i_cap.shape
    np.testing.assert_allclose(chosen.v, np.asarray(full.v)[:, idx], rtol=0, atol=1e-12)
    np.testing.assert_allclose(chosen.i_cap, full.i_cap, rtol=0, atol=1e-12)
    pop = jn.LIF(n=5)
    some = jn.simulate(pop, 10.0, stimuli=[jn.StepCurrent(3.0)], record={"v": [4, 0]})
    allv = jn.simulate(pop, 10.0, stimuli=[jn.StepCurrent(3.0)])
    np.testing.assert_allclose(some.v, np.asarray(allv.v)[:, [4, 0]], rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match=r"record=\{'v': ...\}: \('axon', 0.5\): unknown section 'axon'"):
        jn.simulate(cell, 1.0, record={"v": [("axon", 0.5)]})
    with pytest.raises(ValueError, match="is no place on LIF of 5 compartments"):
        jn.simulate(pop, 1.0, record={"v": [7]})
    with pytest.raises(ValueError, match="single compartment"):
        jn.simulate(jn.LIF(), 1.0, record={"v": [0]})
    # A 0-d index array (jnp.argmax's) is one place (it was "len() of unsized object").
    np.testing.assert_allclose(jn.simulate(pop, 10.0, stimuli=[jn.StepCurrent(3.0)], record={"v": jnp.array(4)}).v,
                               np.asarray(allv.v)[:, [4]], rtol=0, atol=1e-12)
    for nothing in ([], (), np.array([], dtype=int)):  # a raw TypeError from indexing with float32 []
        with pytest.raises(ValueError, match=r"record=\{'v': .*\} names no place; give at least one"):
            jn.simulate(pop, 1.0, record={"v": nothing})
    with pytest.raises(ValueError, match="runs in one XLA loop"):
        jn.simulate(pop, 1.0, record={"v": [0]}, backend="sharded")


@pytest.mark.parametrize("kw, times, tol", [
    ({"dt": 0.03}, None, 0.01),
    ({"save_every": 2.0}, [0.0, 2.0, 4.0, 5.0], 0.01),
    ({"save_every": 10.0}, [0.0, 5.0], 0.01),
    ({"dt": 10.0}, [0.0, 5.0], 0.35),  # one backward-Euler step of 5 ms (tau = 10 ms)
])
def test_a_run_off_the_save_grid_records_its_end(kw, times, tol):
    # The trace stopped at the last grid point (4.98 ms for dt = 0.03; only t0 with
    # save_every > t1) though the run reached t1 = 5 ms.
    tr = jn.simulate(passive(), 5.0, v0=-65.0, **kw)
    assert float(tr.t[-1]) == 5.0
    if times is not None:
        np.testing.assert_allclose(tr.t, times)
    assert float(tr.v[-1]) == float(tr.final_state.v)
    assert float(tr.at(5.0).v) == pytest.approx(-70.0 + 5.0 * math.exp(-0.5), abs=tol)
    adaptive = jn.simulate(passive(), 5.0, v0=-65.0, save_every=2.0, solver=diffrax.Tsit5(),
                           stepsize_controller=diffrax.PIDController(rtol=1e-9, atol=1e-9))
    np.testing.assert_allclose(adaptive.t, [0.0, 2.0, 4.0, 5.0])
    assert float(adaptive.v[-1]) == pytest.approx(-70.0 + 5.0 * math.exp(-0.5), abs=1e-7)


def test_summary_runs_keep_the_column_labels_of_cables_and_cells():
    # With summary= the model runs wrapped in a spike detector, and the trace's
    # column labels were None (plots lost their legends).
    cable = jn.Cable(length=500.0, diam=2.0, nseg=5, channels=[jn.channels.HH()])
    record = {"v": None, "m_hh": [0.95, 0.5]}
    full = jn.simulate(cable, 1.0, record=record)
    summed = jn.simulate(cable, 1.0, record=record, summary=jn.SpikeSummary())
    assert full.column_labels("v") == ("x=0.1", "x=0.3", "x=0.5", "x=0.7", "x=0.9")
    assert summed.columns == full.columns
    assert summed.column_labels("m_hh") == ("x=0.9", "x=0.5")
    soma = jn.Cable(length=20.0, diam=20.0, channels=[jn.channels.HH()], name="soma")
    dend = jn.Cable(length=100.0, diam=1.0, nseg=3, channels=[jn.channels.Leak()], name="dend")
    cell = jn.Cell([soma, dend], parents=[None, ("soma", 1.0)])
    tr = jn.simulate(cell, 1.0, record={"v": [("dend", 0.5), ("soma", 0.5)]}, summary=jn.SpikeSummary())
    assert tr.column_labels("v") == ("dend(0.5)", "soma(0.5)")
    # A population's columns are neurons by index, with or without a summary.
    pop = jn.Compartment(length=20.0, diam=20.0, n=3, channels=[jn.channels.HH()])
    assert jn.simulate(pop, 1.0, summary=jn.SpikeSummary()).column_labels("v") is None


def test_cell_traces_label_their_columns_and_plots_use_them():
    # Nothing said which column was which place (record={name: places} included).
    import matplotlib

    matplotlib.use("Agg")
    soma = jn.Cable(length=20.0, diam=20.0, channels=[jn.channels.HH()], name="soma")
    dend = jn.Cable(length=100.0, diam=1.0, nseg=3, channels=[jn.channels.Leak()], name="dend")
    cell = jn.Cell([soma, dend], parents=[None, ("soma", 1.0)])
    assert cell.segment_labels() == ("soma(0.5)", "dend(0.1667)", "dend(0.5)", "dend(0.8333)")
    tr = jn.simulate(cell, 2.0, record={"v": None, "m_hh": [("dend", 0.9), ("soma", 0.5)]})
    assert tr.column_labels("v") == cell.segment_labels()
    assert tr.column_labels("m_hh") == ("dend(0.8333)", "soma(0.5)")
    assert tr.window(0.5, 1.5).column_labels("v") == cell.segment_labels()
    assert tr.at(1.0).column_labels("m_hh") == ("dend(0.8333)", "soma(0.5)")
    ax = tr.plot("v")
    assert [t.get_text() for t in ax.get_legend().get_texts()] == list(cell.segment_labels())
    with pytest.raises(ValueError, match=r"column_labels: 'i_cap' is not recorded"):
        tr.column_labels("i_cap")
    cable = jn.Cable(length=100.0, diam=1.0, nseg=4, channels=[jn.channels.Leak()])
    assert jn.simulate(cable, 1.0).column_labels("v") == ("x=0.125", "x=0.375", "x=0.625", "x=0.875")
    assert jn.simulate(jn.LIF(n=3), 1.0).column_labels("v") is None  # neurons, by index


def test_trace_names_follow_the_record_order_and_a_trace_is_not_one_array():
    # They came back alphabetical from jit (a dict pytree), so the voltage was plotted
    # last; np.asarray(trace) gave a 0-d object array.
    model = jn.Compartment(length=20.0, diam=20.0, channels=[jn.channels.HH()])
    for tr in (jn.simulate(model, 1.0, record=("v", "m_hh", "i_cap")),
               jax.jit(lambda: jn.simulate(model, 1.0, record=("v", "m_hh", "i_cap")))()):
        assert tr.names == ("v", "m_hh", "i_cap")
        assert tr.window(0.2, 0.8).names == ("v", "m_hh", "i_cap")
    with pytest.raises(TypeError, match=r"a Trace holds several arrays \(t, v, m_hh, i_cap\)"):
        np.asarray(tr)


def test_max_steps_is_checked_and_not_ignored_at_a_constant_step():
    # max_steps=10 for a 400-step run was ignored without a word.
    with pytest.raises(ValueError, match=r"max_steps=10: a constant step of 0\.025 ms takes 400 steps"):
        jn.simulate(passive(), 10.0, max_steps=10)
    for bad in (0, -1, 2.5, "x", True):
        with pytest.raises(ValueError, match=r"max_steps expects a positive integer"):
            jn.simulate(passive(), 10.0, max_steps=bad)
    assert jn.simulate(passive(), 10.0, max_steps=400).t.shape == (401,)
    with pytest.raises(RuntimeError, match=r"Tsit5 took more than max_steps=5 steps without reaching t1"):
        jn.simulate(passive(), 10.0, solver=diffrax.Tsit5(), max_steps=5,
                    stepsize_controller=diffrax.PIDController(rtol=1e-10, atol=1e-10),
                    stimuli=[jn.StepCurrent(1.0, 2.0, 5.0)])


def test_a_diverged_run_is_reported():
    # Tsit5 at dt = 0.025 on a membrane with cm = 1e-3 returned NaN traces without a word.
    stiff = jn.Compartment(length=20.0, diam=20.0, cm=1e-3, channels=[jn.channels.HH()])
    with pytest.warns(RuntimeWarning, match=r"simulate: the run diverged \(1 compartment\(s\) .* too long for Tsit5"):
        tr = jn.simulate(stiff, 5.0, solver=diffrax.Tsit5(), stimuli=[jn.StepCurrent(0.1, 1.0, 2.0)])
    assert not np.isfinite(float(tr.v[-1]))
    # The default (implicit) solver is stable there.
    assert np.isfinite(float(jn.simulate(stiff, 5.0, stimuli=[jn.StepCurrent(0.1, 1.0, 2.0)]).v[-1]))

    # Where it does go non-finite, the step is not to blame (it said "too long for
    # StaggeredEuler ... use the default solver", which it was): the arithmetic is.
    class Undefined(jn.channels.AbstractChannel):
        name: str = eqx.field(default="und", static=True, kw_only=True)

        def current(self, v, gates):
            return 1e-4 * jnp.log(v + 62.0)  # NaN below -62 mV

    undefined = jn.Compartment(length=20.0, diam=20.0, channels=[jn.channels.Leak(), Undefined()])
    with pytest.warns(RuntimeWarning, match=r"run went non-finite .* with StaggeredEuler, whose implicit voltage "
                                            r"update is stable at any step: the model's arithmetic gave inf or NaN"):
        tr = jn.simulate(undefined, 20.0, v0=-60.0)
    assert not np.isfinite(float(tr.v[-1]))


def test_record_places_that_read_two_ways_are_refused():
    # As a stimulus's target: a bare 1 on a cable is x = 1 or segment 1, a pair of
    # integers a location or two indices ("(1, 1) is no place" before; [1] is index 1).
    cable = jn.Cable(length=300.0, diam=1.0, nseg=3, channels=[jn.channels.Leak()])
    with pytest.raises(ValueError, match=r"record=\{'v': 1\} is ambiguous .* write 1\.0 .* write \[1\]"):
        jn.simulate(cable, 1.0, record={"v": 1})
    with pytest.raises(ValueError, match=r"\(0, 1\) reads as the location \(section 0, x = 1\) .* write \(0, 1\.0\)"):
        jn.simulate(cable, 1.0, record={"v": [(0, 1)]})
    assert jn.simulate(cable, 1.0, record={"v": [1]}).column_labels("v") == ("x=0.5",)
    assert jn.simulate(cable, 1.0, record={"v": 1.0}).column_labels("v") == ("x=0.8333",)
    pop = jn.Compartment(area=100.0, channels=[jn.channels.Leak(g=jnp.full(3, 1e-4))])
    assert jn.simulate(pop, 1.0, record={"v": 1}).v.shape[-1] == 1


def test_a_state_of_another_layout_is_named_in_the_users_terms():
    # A Cable was called "Cell", a run with summary= "SpikeDetector", and every layout
    # error blamed summary=.
    hh = jn.Compartment(length=20, diam=20, channels=[jn.channels.HH()])
    plain = jn.simulate(hh, 5.0)
    with pytest.raises(ValueError, match=r"init does not have Compartment's state layout.*state of a run without "
                                         r"summary=, which continues only without it"):
        jn.simulate(hh, 10.0, init=plain, summary=jn.SpikeSummary(capacity=16))
    detected = jn.simulate(hh, 5.0, summary=jn.SpikeSummary(capacity=16))
    with pytest.raises(ValueError, match=r"init's arrays do not fit Compartment: .*SpikeSummary\(capacity=\.\.\.\) as "
                                         r"the earlier run's"):
        jn.simulate(hh, 10.0, init=detected, summary=jn.SpikeSummary(capacity=32))
    with pytest.raises(ValueError, match=r"continues only with summary="):
        jn.simulate(hh, 10.0, init=detected)
    leak = jn.Compartment(length=20, diam=20, channels=[jn.channels.Leak()])
    with pytest.raises(ValueError, match=r"state layout: it has gates \['h_hh', 'm_hh', 'n_hh'\] .* and \[\]$"):
        jn.simulate(leak, 10.0, init=plain)
    cable = lambda n: jn.Cable(length=100.0, diam=1.0, nseg=n, channels=[jn.channels.Leak()])  # noqa: E731
    with pytest.raises(ValueError, match=r"init's arrays do not fit Cable: shape \(5,\) where the model has \(7,\)"):
        jn.simulate(cable(7), 2.0, init=jn.simulate(cable(5), 1.0))


def test_a_repeated_run_does_not_place_its_stimuli_again(monkeypatch):
    # Each call placed every stimulus abstractly to check its shape, ~8 ms a stimulus on
    # every call (100 stimuli: 0.38 s a call against 0.014 s); a misfit stimulus is now
    # named where the run's trace fails (tests/test_bad_input.py).
    from jaxneuro.stimuli import base

    calls = []
    inject = jn.StepCurrent.inject
    monkeypatch.setattr(jn.StepCurrent, "inject", lambda self, *a, **k: calls.append(1) or inject(self, *a, **k))
    monkeypatch.setattr(base, "MERGE_FROM", 10**9)  # each stimulus on its own, as given
    pop = jn.Compartment(length=20, diam=20, channels=[jn.channels.HH()], n=8)
    stimuli = [jn.StepCurrent(0.1 * i, 1.0, 5.0, target=[i]) for i in range(8)]
    first = jn.simulate(pop, 3.0, stimuli=stimuli, backend="xla")
    traced = len(calls)
    assert traced >= 8
    again = jn.simulate(pop, 3.0, stimuli=stimuli, backend="xla")
    assert len(calls) == traced
    np.testing.assert_array_equal(first.v, again.v)


def test_a_trace_too_large_for_memory_is_refused_before_the_run():
    # 10⁶ neurons saved every step of 25 s: 10⁶ saves of 10⁶ values, terabytes, which
    # XLA would ask for at once when the run starts (on a CPU the process could be
    # killed instead of an error). Refused up front, naming what to record instead.
    pop = jn.Compartment(length=20.0, diam=20.0, channels=[jn.channels.HH()], n=10**6)
    with pytest.raises(ValueError, match=r"record: the trace would hold 1000001 saves of v \(.* TiB in all\), "
                                         r"more than half of this machine's .*save_every=.*SpikeSummary"):
        jn.simulate(pop, 25_000.0)


def test_the_trace_memory_check_counts_every_name_and_place(monkeypatch):
    from jaxneuro.solve import record_memory

    monkeypatch.setattr(record_memory, "device_memory_bytes", lambda: 4 << 20)  # 4 MiB
    pop = jn.Compartment(length=20.0, diam=20.0, channels=[jn.channels.HH()], n=100)
    itemsize = np.dtype(jnp.result_type(float)).itemsize
    # 2001 saves × 100 neurons: 0.8 MB (float32) per name, 1.6 in float64.
    jn.simulate(pop, 50.0, record=("v",), backend="xla")
    with pytest.raises(ValueError, match=r"saves of v, m_hh, h_hh, n_hh \(v .* MiB, m_hh .* MiB, h_hh .* MiB, n_hh .* MiB, "):
        jn.simulate(pop, 50.0, record=("v", "m_hh", "h_hh", "n_hh"), backend="xla")
    with pytest.raises(ValueError, match="record: the trace would hold"):  # under a jit too, when traced
        jax.jit(lambda: jn.simulate(pop, 50.0, record=("v", "m_hh", "h_hh", "n_hh"), backend="xla").v)()
    # At two places the same names fit.
    jn.simulate(pop, 50.0, record={"v": [0, 1], "m_hh": [0, 1], "h_hh": [0, 1], "n_hh": [0, 1]})
    assert 4 * 2001 * 100 * itemsize > (4 << 20) * record_memory.MAX_SHARE


def test_spike_buffers_and_save_times_too_large_for_memory_are_refused_before_the_run(monkeypatch):
    # The spike-time buffers are part of the state, made before the run: 10⁴ neurons
    # keeping 10⁶ times each asked XLA for 80 GB (its raw out-of-memory error); an
    # adaptive run with 10¹⁰ saves failed making its save times (NumPy's MemoryError).
    from jaxneuro.solve import record_memory

    monkeypatch.setattr(record_memory, "device_memory_bytes", lambda: 4 << 20)  # 4 MiB
    itemsize = np.dtype(jnp.result_type(float)).itemsize
    assert 1000 * 500 * itemsize > (4 << 20) * record_memory.MAX_SHARE >= 1000 * 200 * itemsize
    with pytest.raises(ValueError, match=r"spike-time buffers would take .* MiB \(the model: 1000 × 500 times, .*"
                                         r"LIF\(spike_capacity=\.\.\.\): the counts stay exact"):
        jn.simulate(jn.LIF(n=1000, spike_capacity=500), 1.0)
    jn.simulate(jn.LIF(n=1000, spike_capacity=200), 1.0)
    hh = jn.Compartment(length=20.0, diam=20.0, channels=[jn.channels.HH()], n=1000)
    with pytest.raises(ValueError, match=r"\(population 'hh': 1000 × 500 times.*SpikeSummary\(capacity=\.\.\.\)"):
        jn.simulate(jn.Network({"hh": jn.SpikeDetector(hh, capacity=500)}), 1.0, record=())
    with pytest.raises(ValueError, match=r"the model: 1000 × 500 times.*SpikeSummary\(capacity=\.\.\.\)"):
        jn.simulate(hh, 1.0, record=(), summary=jn.SpikeSummary(capacity=500))
    monkeypatch.setattr(record_memory, "device_memory_bytes", lambda: 64 << 30)  # 64 GiB
    with pytest.raises(ValueError, match=r"record: the trace would hold 10000000001 saves of v"):
        jn.simulate(jn.Compartment(length=20.0, diam=20.0), 1e6, save_every=1e-4, solver=diffrax.Tsit5(),
                    stepsize_controller=diffrax.PIDController(rtol=1e-6, atol=1e-6))


def test_at_keeps_only_the_spikes_fired_by_t():
    # As window() does: at(t) has the spikes up to t, later ones inf and not counted.
    tr = jn.simulate(jn.LIF(), 30, stimuli=[jn.StepCurrent(amp=3, delay=1, dur=25)])
    times = np.asarray(tr.spikes)[np.isfinite(np.asarray(tr.spikes))]
    assert len(times) >= 2 and times[0] > 5.0
    early = tr.at(5.0)
    assert float(early.spike_count) == 0 and np.all(np.isinf(np.asarray(early.spikes)))
    assert float(jn.spike_count(early)) == 0
    mid = float((times[0] + times[1]) / 2)
    one = tr.at(mid)
    assert float(one.spike_count) == 1
    np.testing.assert_array_equal(np.asarray(one.spikes), np.asarray(tr.window(0, mid).spikes))
    # Several times: the spikes fired by the latest.
    assert float(tr.at(jnp.array([5.0, mid])).spike_count) == 1
    assert float(tr.at(30.0).spike_count) == float(tr.spike_count)
    # Under jit too.
    assert float(jax.jit(lambda s: tr.at(s).spike_count)(5.0)) == 0


def test_voltages_no_membrane_reaches_are_warned_of_as_a_unit_mistake():
    # A compartment sized in metres (20e-6 "µm") reached ~1e13 mV without a word.
    tiny = jn.Compartment(length=20e-6, diam=20e-6, channels=[jn.channels.Leak()])
    with pytest.warns(RuntimeWarning, match=r"beyond ±1000 mV .* another unit than jaxneuro's .*lengths in µm"):
        jn.simulate(tiny, 5.0, stimuli=[jn.StepCurrent(0.1, 1.0, 10.0)])
    # A transient: 1 nA for 1 ms into a 0.5 × 0.1 µm compartment peaks at ~15 600 mV
    # (NEURON too) and is back near rest by the end, where the check used to look.
    speck = jn.Compartment(length=0.5, diam=0.1, channels=[jn.channels.HH()])
    with pytest.warns(RuntimeWarning, match=r"1 compartment\(s\) went beyond ±1000 mV during the run \(up to "
                                            r"1\.56e\+04 mV in magnitude, at 1\.025 ms; .*another unit than jaxneuro's"):
        tr = jn.simulate(speck, 6.0, stimuli=[jn.StepCurrent(1.0, 1.0, 1.0)])
    assert abs(float(np.ravel(tr.v)[-1])) < 100.0
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        jn.simulate(jn.Compartment(length=20.0, diam=20.0, channels=[jn.channels.HH()]), 5.0,
                    stimuli=[jn.StepCurrent(0.5, 1.0, 10.0)])


def test_at_takes_a_float32_traces_end_to_rounding():
    # A continued float32 run from 1000.1 to 1000.2 ms ended at 1000.19995 (its times
    # are t0 + k·dt in float32); at(1000.2) was refused (a tolerance of 1e-9 ms, while
    # float32 resolves 6e-5 ms there), though window(1000.1, 1000.2) took it.
    trace = jn.simulate(passive(), 0.1, stimuli=[jn.StepCurrent(1.0)])
    t32 = jnp.asarray([1000.1, 1000.125, 1000.15, 1000.175, 1000.19995], dtype=jnp.float32)
    trace32 = eqx.tree_at(lambda tr: tr.t, trace, t32)
    np.testing.assert_allclose(trace32.at(1000.2).v, trace.v[-1])
    with pytest.raises(ValueError, match="must lie within the recorded range"):
        trace32.at(1000.21)


def test_an_adaptive_solver_out_of_steps_says_why_and_step_to_is_accepted():
    # diffrax's own "maximum number of solver steps was reached", a stack of its text,
    # suggested a larger max_steps; a stiff cable needs another solver instead.
    cable = jn.Cable(length=1000.0, diam=1.0, nseg=20, channels=[jn.channels.HH()])
    stim = [jn.StepCurrent(0.5, 1.0, 100.0, target=0.0)]
    with pytest.raises(RuntimeError, match=r"simulate: Tsit5 took more than max_steps=40 steps without reaching t1: "
                                           r".*stiff system.*leave solver= out"):
        jn.simulate(cable, 5.0, stimuli=stim, solver=diffrax.Tsit5(), max_steps=40,
                    stepsize_controller=diffrax.PIDController(rtol=1e-6, atol=1e-6))
    # diffrax.StepTo steps at its own times (dt0 must be None for it: refused before).
    soma = jn.Compartment(length=20.0, diam=20.0, channels=[jn.channels.HH()])
    step_to = jn.simulate(soma, 5.0, stepsize_controller=diffrax.StepTo(ts=np.linspace(0.0, 5.0, 201)), save_every=0.5)
    constant = jn.simulate(soma, 5.0, save_every=0.5)
    np.testing.assert_allclose(np.asarray(step_to.v), np.asarray(constant.v), rtol=0, atol=1e-9)


def test_float32_runs_continue_from_their_trace_whatever_the_rounding_of_t1():
    # float32 rounds 10.1 up (10.1000004 ms): a Network's synapse time stored at the end
    # counted as "after t0" (a 1e-9 ms tolerance), so init=trace was refused, as was
    # t0=trace.t[-1] with init=trace; the stored times' own rounding is allowed now.
    with jax.enable_x64(False):
        src = jn.SpikeTrains([[1.0, 4.0, 12.0]])
        syn = jn.ExpSynapse("src", "post", jn.conn.all_to_all(), g_max=0.5, tau=2.0, E=0.0, delay=1.5)
        net = jn.Network(populations={"src": src, "post": jn.LIF(n=2)}, couplings=[syn])
        whole = jn.simulate(net, 20.1)
        rest = jn.simulate(net, 20.1, init=jn.simulate(net, 10.1))
        assert float(jnp.max(whole["post"].v)) > -60.0  # the synapse moved it
        np.testing.assert_allclose(rest["post"].v[-1], whole["post"].v[-1], rtol=0, atol=1e-4)
        soma = jn.Compartment(length=20.0, diam=20.0, channels=[jn.channels.HH()])
        first = jn.simulate(soma, 10.1)
        continued = jn.simulate(soma, 20.1, init=first, t0=first.t[-1])
        np.testing.assert_allclose(continued.v[-1], jn.simulate(soma, 20.1).v[-1], rtol=0, atol=1e-4)
        with pytest.raises(ValueError, match="t0=10.2 ms: init is a trace that ended at 10.1 ms"):
            jn.simulate(soma, 20.1, init=first, t0=10.2)


@pytest.mark.parametrize("adjoint", [diffrax.BacksolveAdjoint(), diffrax.ImplicitAdjoint()])
def test_adjoints_diffrax_cannot_run_with_saved_samples_are_refused_by_name(adjoint):
    # diffrax refused them about a SaveAt(subs=...) the caller never wrote.
    soma = jn.Compartment(length=20.0, diam=20.0, channels=[jn.channels.HH()])
    name = type(adjoint).__name__
    with pytest.raises(ValueError, match=rf"adjoint={name}\(\): simulate saves samples along the run, which "
                                         rf"diffrax's {name} does not support; .*DirectAdjoint"):
        jn.simulate(soma, 1.0, adjoint=adjoint)
    with pytest.raises(ValueError, match="adjoint expects a diffrax adjoint instance or None, got 'direct'"):
        jn.simulate(soma, 1.0, adjoint="direct")


def test_a_network_warns_of_a_population_firing_in_consecutive_steps():
    # Warned for a LIF run alone, silent for the same LIF in a Network (same 200 spikes).
    lif = jn.LIF(t_ref=0.0, spike_capacity=1000)
    net = jn.Network(populations={"p": lif, "q": jn.LIF()}, couplings=[])
    with pytest.warns(RuntimeWarning, match=r"population 'p': 1 neuron\(s\) fired in consecutive steps") as record:
        tr = jn.simulate(net, 20.0, stimuli=[jn.StepCurrent(100.0, 0.0, 1e9, target="p")], dt=0.5)
    assert int(tr["p"].spike_count) == 40 and int(tr["q"].spike_count) == 0
    assert not any("population 'q'" in str(w.message) for w in record)


def test_a_first_run_compiles_its_set_up_as_whole_programs():
    """A run of a new shape compiled every eager operation of its set-up as a program of
    its own: an HH compartment's initial gates and the record's implausible-voltage check
    (23 compiles, about half of a first run's time), a new cable's geometry and axial
    conductances (19). Then the time loop and the initial state were a program each;
    now the initial state is made inside the loop's program (fixed_step.Start), plus
    the cable's geometry, conductances and capacitances (one); a network's synapses'
    start in the loop's program too. A network's set-up (its validation,
    connection indices, initial voltages, capacitances and the spike-buffer check after
    the run) compiled 7 eager operations at each new size; now none, nor
    input_resistance's 2. The checks after a run on a CPU (implausible voltages in the
    record, spikes in consecutive steps) are NumPy's, not programs of their own, and
    the save times are sent to the device, not staged by a program. poisson_spikes'
    trains are one program (op by op before)."""
    stim = [jn.StepCurrent(0.2, 1.0, 10.0)]
    jn.simulate(jn.Compartment(length=20.0, diam=20.0, channels=[jn.channels.HH()], n=3), 5.0, stimuli=stim)
    pop = jn.Compartment(length=20.0, diam=20.0, channels=[jn.channels.HH()], n=7)  # a new shape
    with _CountCompiles() as hh:
        jn.simulate(pop, 5.0, stimuli=stim).v.block_until_ready()
    assert hh.count == 1 and hh.loops == 1, hh.messages  # was 23, then 3, then 2

    def cable(nseg):
        return jn.Cable(length=100.0, diam=1.0, nseg=nseg, channels=[jn.channels.HH()])

    at_end = [jn.StepCurrent(0.2, 1.0, 10.0, target=0.0)]
    jn.simulate(cable(3), 5.0, stimuli=at_end)
    with _CountCompiles() as cab:
        jn.simulate(cable(6), 5.0, stimuli=at_end).v.block_until_ready()
    assert cab.count <= 2 and cab.loops == 1, cab.messages  # was 19, then 8, then 4, then 3

    def net(n):
        return jn.Network({"a": jn.LIF(n=n), "b": jn.LIF(n=2)},
                          [jn.ExpSynapse("a", "b", jn.conn.all_to_all(), 0.1, tau=5.0)])

    drive = [jn.StepCurrent(2.0, 1.0, 10.0, target="a")]
    jn.simulate(net(3), 5.0, stimuli=drive)
    with _CountCompiles() as syn:
        jn.simulate(net(6), 5.0, stimuli=drive)["a"].v.block_until_ready()
    assert syn.count == 1 and syn.loops == 1, syn.messages  # was 16, then 12, then 4, then 2

    def passive(n):
        return jn.Compartment(length=20.0, diam=20.0, channels=[jn.channels.Leak()], n=n)

    jn.input_resistance(passive(3))
    with _CountCompiles() as rin:
        jn.input_resistance(passive(6)).block_until_ready()
    assert rin.count <= 1, rin.count  # was 3

    jn.poisson_spikes(20.0, 100.0, n=3)
    with _CountCompiles() as poisson:
        jax.block_until_ready(jn.poisson_spikes(20.0, 100.0, n=5))
    assert poisson.count <= 1, poisson.count  # was 21



def test_the_start_made_inside_the_loop_is_differentiable_and_shared():
    # A fresh run's initial state is made inside the loop's program (fixed_step.Start):
    # its gradient with respect to v0 is the finite differences', under jit the same
    # values, and a scalar v0, an array of them and a continued part share the program.
    m = jn.Compartment(length=20.0, diam=20.0, channels=[jn.channels.HH()], n=3)
    stim = [jn.StepCurrent(0.1, 1.0, 3.0)]
    f = lambda v0: jnp.mean(jn.simulate(m, 5.0, v0=v0, stimuli=stim).v)  # noqa: E731
    v0 = jnp.array([-65.0, -60.0, -70.0])
    g = np.asarray(jax.grad(f)(v0))
    h = 1e-5
    fd = [(float(f(v0.at[i].add(h))) - float(f(v0.at[i].add(-h)))) / (2 * h) for i in range(3)]
    np.testing.assert_allclose(g, fd, rtol=1e-6)
    assert float(jax.jit(f)(v0)) == pytest.approx(float(f(v0)), rel=1e-12)
    first = jn.simulate(m, 5.0, v0=-65.0, stimuli=stim)
    with _CountCompiles() as counted:
        jn.simulate(m, 5.0, v0=np.array([-65.0, -60.0, -70.0]), stimuli=stim)
        jn.simulate(m, 10.0, init=first.final_state, t0=5.0, stimuli=stim)
    assert counted.loops == 0, counted.messages


def test_checks_after_a_run_agree_on_the_host_and_as_compiled_programs():
    """On a CPU the record's implausible-voltage check and the consecutive-spike count
    run in NumPy; elsewhere (a GPU's record stays on the device) as compiled programs.
    Both give the same numbers, NaN samples ignored."""
    import importlib

    sim = importlib.import_module("jaxneuro.solve.simulate")  # (the package exports the function)
    a = jnp.asarray([[-65.0, 3000.0, jnp.nan], [-70.0, -2500.0, 10.0], [-60.0, 0.0, 20.0]])
    b = jnp.asarray([[1.0], [-5000.0], [2.0]])
    host, compiled = sim._record_extremes([a, b]), sim._record_extremes_compiled([a, b])
    np.testing.assert_array_equal(host[0], [3000.0, 5000.0, 60.0])
    np.testing.assert_array_equal(np.asarray(compiled[0]), host[0])
    assert host[1] == int(compiled[1]) == 2  # compartments beyond 2000 mV: a[:, 1] and b
    # A sample that is NaN in a whole population is ignored there as well (the compiled
    # program's maximum across populations gave NaN); NaN in every population stays NaN.
    c = jnp.asarray([[jnp.nan], [jnp.nan], [1.0]])
    d = jnp.asarray([[jnp.nan], [jnp.nan], [jnp.nan]])
    host, compiled = sim._record_extremes([a, c, d]), sim._record_extremes_compiled([a, c, d])
    np.testing.assert_array_equal(host[0], [3000.0, 2500.0, 60.0])
    np.testing.assert_array_equal(np.asarray(compiled[0]), host[0])
    host, compiled = sim._record_extremes([c, d]), sim._record_extremes_compiled([c, d])
    np.testing.assert_array_equal(host[0], [np.nan, np.nan, 1.0])
    np.testing.assert_array_equal(np.asarray(compiled[0]), host[0])
    spikes = jnp.asarray([[1.0, 1.02, 5.0, jnp.inf], [1.0, 2.0, jnp.inf, jnp.inf], [jnp.inf] * 4])
    assert sim._count_fast(spikes, 0.025) == int(sim._count_fast_compiled(spikes, 0.025)) == 1
    assert sim._count_fast(spikes, 1.0) == int(sim._count_fast_compiled(spikes, 1.0)) == 2
    # A record above HOST_CHECK_VALUES is reduced by the compiled program (all cores).
    assert sim._on_cpu([a, b]) and not sim._on_cpu([jnp.zeros(sim.HOST_CHECK_VALUES + 1)])
