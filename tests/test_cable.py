"""Cables against cable theory; the Hines solve; gradients; bad input."""

import contextlib
import io
import math
import os
import subprocess
import sys

import diffrax
import equinox as eqx
import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import pytest

import jaxneuro as jn
from jaxneuro.solve import hines
from jaxneuro.solve.hines import TreeCoupling

# Seed 002's cable: a uniform passive cable, current injected at its middle.
G_L, E_L, RA, DIAM, LENGTH = 1e-4, -65.0, 100.0, 2.0, 1000.0  # S/cm², mV, Ω·cm, µm, µm
AMP = 0.1  # nA


def seed002_cable(nseg=101, **kw):
    return jn.Cable(length=LENGTH, diam=DIAM, Ra=RA, nseg=nseg,
                    channels=[jn.channels.Leak(g=G_L, e=E_L)], **kw)


def test_seed002_steady_state_is_the_finite_sealed_cable_cosh_profile():
    cable = seed002_cable()
    trace = jn.simulate(cable, 150.0, dt=0.1, v0=E_L, save_every=1.0,
                        stimuli=[jn.StepCurrent(AMP, 0.0, 1e9, target=0.5)])
    assert trace.v.shape == (151, 101)
    # λ = sqrt(Rm·d/(4·Ra)); sealed ends: V(x) = I·r_a·λ/2 · cosh((L/2 - |x - L/2|)/λ) / sinh(L/(2λ)).
    rm = 1.0 / G_L  # Ω·cm²
    lam = math.sqrt(rm * DIAM * 1e-4 / (4 * RA)) * 1e4  # µm
    r_a = RA * 1e-2 / (math.pi * DIAM**2 / 4)  # MΩ/µm
    x = cable.centres * LENGTH
    expected = AMP * r_a * lam / 2 * np.cosh((LENGTH / 2 - np.abs(x - LENGTH / 2)) / lam) / np.sinh(LENGTH / (2 * lam))
    deflection = np.asarray(trace.v[-1]) - E_L
    assert np.max(np.abs(deflection - expected)) < 0.005 * expected.max()
    assert int(np.argmax(deflection)) == cable.index(0.5) == 50
    np.testing.assert_allclose(deflection, deflection[::-1], atol=1e-9)  # symmetric


def test_seed002_time_course():
    cable = seed002_cable(nseg=51)
    trace = jn.simulate(cable, 100.0, dt=0.025, v0=E_L, save_every=0.5,
                        stimuli=[jn.StepCurrent(AMP, 10.0, 40.0, target=0.5)])
    v = np.asarray(trace.v) - E_L
    t = np.asarray(trace.t)
    mid, end = cable.index(0.5), cable.index(1.0)
    # Axial currents move charge but create none: the area-weighted mean voltage charges
    # exactly as one compartment of the whole cable, τ = cm/g = 10 ms.
    area = np.asarray(cable.membrane_area)
    mean = v @ area / area.sum()
    i_density = AMP / area.sum() * 100.0  # mA/cm²
    on = (t >= 10) & (t <= 50)
    expected = i_density / G_L * (1 - np.exp(-(t[on] - 10) / 10.0))  # mV
    assert np.max(np.abs(mean[on] - expected)) < 2e-3 * expected.max()
    # The middle responds first and most; the far end later and less; all rise together
    # as the seed observes, and everything relaxes back to rest after the step.
    assert np.all(np.diff(v[on, mid]) > 0) and np.all(np.diff(v[on, end]) >= 0)
    rm_d_ra = math.sqrt(1.0 / G_L * DIAM * 1e-4 / (4 * RA)) * 1e4  # λ, µm
    assert v[on, mid][-1] / v[on, end][-1] == pytest.approx(math.cosh(LENGTH / 2 / rm_d_ra), rel=0.02)
    early = np.searchsorted(t, 12.0)
    assert v[early, mid] / v[on, mid][-1] > 2 * v[early, end] / v[on, end][-1]
    assert np.max(np.abs(v[-1])) < 0.01 * v[on, mid][-1]


def test_uniform_density_current_charges_every_segment_as_one_compartment():
    cable = seed002_cable(nseg=11)
    amp = 2e-3  # mA/cm² = 2 µA/cm², seed 002's density
    import saiunit as u
    stim = jn.StepCurrent(amp * u.mA / u.cm**2, 0.0, 1e9)
    trace = jn.simulate(cable, 30.0, dt=0.01, v0=E_L, stimuli=[stim], save_every=1.0)
    expected = amp / G_L * (1 - np.exp(-np.asarray(trace.t) / 10.0))
    np.testing.assert_allclose(np.asarray(trace.v) - E_L, np.repeat(expected[:, None], 11, 1), atol=2e-3 * amp / G_L)


@pytest.mark.parametrize("dt", [0.025, 0.1])
def test_stiff_cable_is_stable(dt):
    # 400 segments of 0.5 µm: the axial rate g/C is ~1e4/ms, far beyond 1/dt.
    cable = jn.Cable(length=200.0, diam=1.0, Ra=100.0, nseg=400, channels=[jn.channels.HH()])
    trace = jn.simulate(cable, 20.0, dt=dt, stimuli=[jn.StepCurrent(0.2, 1.0, 2.0, target=0.0)], save_every=0.5)
    v = np.asarray(trace.v)
    assert np.all(np.isfinite(v)) and v.max() < 60 and v.min() > -90
    # The spike starts at x = 0 and reaches the far end; then everything repolarises.
    assert v[:, 0].max() > 20 and v[:, -1].max() > 20
    assert np.argmax(v[:, 0]) <= np.argmax(v[:, -1])
    assert np.all(v[-1] < -60)


def test_cable_with_tsit5_matches_the_default_solver():
    cable = seed002_cable(nseg=21)
    stim = [jn.StepCurrent(AMP, 1.0, 1e9, target=0.25)]
    ref = jn.simulate(cable, 20.0, dt=0.005, v0=E_L, stimuli=stim, save_every=1.0)
    tsit = jn.simulate(cable, 20.0, dt=0.01, v0=E_L, stimuli=stim, save_every=1.0, solver=diffrax.Tsit5(),
                       stepsize_controller=diffrax.PIDController(rtol=1e-8, atol=1e-8))
    assert np.max(np.abs(np.asarray(tsit.v) - np.asarray(ref.v))) < 0.01


def _random_tree(rng, n):
    parent = [-1] + [int(rng.integers(max(0, i - 4), i)) for i in range(1, n)]
    parent[n // 2] = -1  # a second root: forests work too
    return tuple(parent)


def _dense(parent, g, c):
    n = len(parent)
    a = np.zeros((n, n))
    for i, p in enumerate(parent):
        if p >= 0:
            a[i, p] += g[i] / c[i]
            a[i, i] -= g[i] / c[i]
            a[p, i] += g[i] / c[p]
            a[p, p] -= g[i] / c[p]
    return a


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hines_solve_equals_a_dense_solve_on_random_trees(seed):
    rng = np.random.default_rng(seed)
    n = 40
    parent = _random_tree(rng, n)
    g, c = rng.uniform(0.1, 5.0, n), rng.uniform(0.2, 2.0, n)
    coupling = TreeCoupling(g=jnp.asarray(g), capacitance=jnp.asarray(c), parent=parent)
    a = _dense(parent, g, c)
    np.testing.assert_allclose(a.sum(axis=1), 0.0, atol=1e-12)  # conservative
    d, rhs, v = rng.uniform(0.5, 3.0, n), rng.normal(size=n), rng.normal(size=n)
    np.testing.assert_allclose(coupling.apply(jnp.asarray(v)), a @ v, atol=1e-12)
    np.testing.assert_allclose(coupling.solve(jnp.asarray(d), jnp.asarray(rhs)),
                               np.linalg.solve(np.diag(d) - a, rhs), rtol=1e-10, atol=1e-12)

    # Gradients (implicit, through the transpose system) equal those of a dense solve.
    def loss_hines(d, rhs, g, c):
        return jnp.sum(jnp.sin(TreeCoupling(g=g, capacitance=c, parent=parent).solve(d, rhs)))

    p, i = np.array(parent), np.arange(n)
    m = p >= 0

    def loss_dense(d, rhs, g, c):
        a = jnp.zeros((n, n))
        a = a.at[i[m], p[m]].add(g[m] / c[m]).at[i[m], i[m]].add(-g[m] / c[m])
        a = a.at[p[m], i[m]].add(g[m] / c[p[m]]).at[p[m], p[m]].add(-g[m] / c[p[m]])
        return jnp.sum(jnp.sin(jnp.linalg.solve(jnp.diag(d) - a, rhs)))

    args = tuple(jnp.asarray(x) for x in (d, rhs, g, c))
    for k, (gh, gd) in enumerate(zip(jax.grad(loss_hines, argnums=(0, 1, 2, 3))(*args),
                                     jax.grad(loss_dense, argnums=(0, 1, 2, 3))(*args))):
        np.testing.assert_allclose(gh, gd, rtol=1e-9, atol=1e-12, err_msg=f"argument {k}")

    # Forward mode (every argument moving, or the conductances alone) and second order.
    tangents = tuple(jnp.asarray(rng.normal(size=n)) for _ in range(4))
    for moving in ((0, 1, 2, 3), (2,)):
        t = tuple(tangents[k] if k in moving else jnp.zeros(n) for k in range(4))
        np.testing.assert_allclose(jax.jvp(loss_hines, args, t)[1], jax.jvp(loss_dense, args, t)[1],
                                   rtol=1e-9, err_msg=f"tangents of arguments {moving}")
    hvp = [jax.jvp(jax.grad(loss), (args[0],), (tangents[0],))[1]
           for loss in (lambda d: loss_hines(d, *args[1:]), lambda d: loss_dense(d, *args[1:]))]
    np.testing.assert_allclose(*hvp, rtol=1e-8, atol=1e-12)


def _elimination_height(plan):
    """The longest chain of dependent steps of the Hines solve's elimination (its
    root's height), checking on the way that every node comes after its children."""
    n = plan.centre_parent.size
    height, done = np.zeros(n, dtype=int), np.zeros(n, dtype=bool)
    for k in plan.centre_order:
        assert not done[k]
        done[k] = True
        p = plan.centre_parent[k]
        if p != k:
            assert not done[p], f"node {p} eliminated before its child {k}"
            height[p] = max(height[p], height[k] + 1)
    assert done.all()
    return height.max()


def test_hines_solve_hangs_each_tree_from_its_centre():
    """The elimination runs from the leaves to the tree's centre, so its chain of
    dependent steps (a division each) is as short as the tree allows: half an
    unbranched cable (NEURON's order, from the root end, waits on every node), the
    middle of a branched cell's longest path. Same edges and conductances, turned round
    where needed; a zero-area node can be the centre; solves equal a dense solve."""
    chain = hines._plan(tuple([-1] + list(range(100))), None)
    assert _elimination_height(chain) == 50  # 101 nodes: 100 from the old root
    # tree1k's cell: 10 branches of 100 segments, branch points as zero-area nodes.
    sections = [jn.Cable(100.0, 1.0, Ra=100.0, nseg=100, name=f"b{i}") for i in range(10)]
    cell = jn.Cell(sections, parents=[None, 0, 0, 1, 1, 2, 2, 3, 3, 4])
    coupling = cell.voltage_coupling()
    plan = coupling._plan()
    # Its longest path, b7-b3-b1-b2-b5 (b1 and b2 start at b0's end), has 500
    # compartments and 4 zero-area nodes: 252 steps from its middle, where the root
    # end (b0's start) is 403 steps above b7's tip.
    assert _elimination_height(plan) == 252
    for p in (chain, plan):
        n = p.centre_parent.size
        old = {frozenset((k, int(p.parent[k]))): k for k in range(n) if not p.is_root[k]}
        new = {frozenset((k, int(p.centre_parent[k]))): int(p.centre_edge[k])
               for k in range(n) if p.centre_parent[k] != k}
        assert new == old  # each edge kept, with the node that holds its conductance
        assert all(p.is_root[p.centre_edge[k]] for k in range(n) if p.centre_parent[k] == k)

    # Two chains of ten compartments meeting at a zero-area node, the centre.
    parent = (-1,) + tuple(range(9)) + (9, 10) + tuple(range(11, 20))
    segment_nodes = tuple(k for k in range(21) if k != 10)
    rng = np.random.default_rng(8)
    g, c = rng.uniform(0.1, 5.0, 21), rng.uniform(0.2, 2.0, 20)
    coupling = TreeCoupling(g=jnp.asarray(g), capacitance=jnp.asarray(c), parent=parent, segment_nodes=segment_nodes)
    plan = coupling._plan()
    assert plan.perm[plan.centre_order[-1]] == 10 and _elimination_height(plan) == 10
    lap = np.zeros((21, 21))
    for k, p in enumerate(parent):
        if p >= 0:
            lap[k, k] += g[k]; lap[p, p] += g[k]; lap[k, p] -= g[k]; lap[p, k] -= g[k]
    s = list(segment_nodes)
    schur = lap[np.ix_(s, s)] - np.outer(lap[s, 10], lap[10, s]) / lap[10, 10]
    d, rhs = rng.uniform(0.5, 3.0, 20), rng.normal(size=20)
    want = np.linalg.solve(np.diag(d) + schur / c[:, None], rhs)
    for method in ("hines", "paths", hines.STEADY):
        got = jax.jit(TreeCoupling.solve, static_argnums=3)(coupling, jnp.asarray(d), jnp.asarray(rhs), method)
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12, err_msg=method)


def _all_eqns(jaxpr):
    """Every equation of ``jaxpr`` and of the jaxprs nested in its equations' params."""
    for eqn in jaxpr.eqns:
        yield eqn
        for value in eqn.params.values():
            for sub in value if isinstance(value, (tuple, list)) else (value,):
                sub = getattr(sub, "jaxpr", sub)
                if hasattr(sub, "eqns"):
                    yield from _all_eqns(sub)


def _tree_scans(jaxpr, n):
    """Number of ``scan``s of length ``n`` (a Hines elimination or back substitution
    over ``n`` nodes) anywhere in ``jaxpr``."""
    return sum(eqn.primitive.name == "scan" and eqn.params["length"] == n for eqn in _all_eqns(jaxpr))


def test_a_policy_keeping_the_tree_solution_spares_the_backward_pass_the_forward_solve():
    """The fixed-step loop checkpoints every step with a policy that keeps each tree
    solve's solution (TREE_SOLUTION): its derivative needs nothing else, so the
    backward pass runs only the transpose solve (two node scans fewer than a backward
    pass that recomputes everything). Same gradient either way."""
    rng = np.random.default_rng(3)
    n = 30
    parent = _random_tree(rng, n)
    coupling = TreeCoupling(g=jnp.asarray(rng.uniform(0.1, 5.0, n)), capacitance=jnp.asarray(rng.uniform(0.2, 2.0, n)),
                            parent=parent)
    rhs = jnp.asarray(rng.normal(size=n))

    def loss(d):
        return jnp.sum(jnp.sin(coupling.solve(jnp.exp(d), rhs)))

    keep = jax.checkpoint(loss, policy=jax.checkpoint_policies.save_only_these_names(hines.TREE_SOLUTION))
    redo = jax.checkpoint(loss)
    d = jnp.asarray(rng.uniform(0.5, 3.0, n))
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        jax.ad_checkpoint.print_saved_residuals(keep, d)
    assert f"named '{hines.TREE_SOLUTION}'" in printed.getvalue()
    np.testing.assert_allclose(jax.grad(keep)(d), jax.grad(redo)(d), rtol=1e-13)

    def backward_scans(f):
        _, backward = jax.vjp(f, d)
        return _tree_scans(jax.make_jaxpr(backward)(1.0).jaxpr, n)

    assert backward_scans(keep) == backward_scans(redo) - 2


@pytest.mark.parametrize("save_every", [0.025, 0.25])
def test_simulate_backward_pass_does_not_redo_the_forward_tree_solve(monkeypatch, save_every):
    """simulate's per-step checkpoint keeps the tree solutions: its backward pass has
    fewer tree solves than with a policy that keeps nothing (one step per save, and
    ten steps per save, where the stretch between saves is recomputed first)."""
    from jaxneuro.solve import fixed_step

    def backward_scans(nseg):
        # A new size for each policy: integrate is compiled once per model structure.
        sections = [jn.Cable(100.0, 2.0, Ra=100.0, nseg=nseg, channels=[jn.channels.HH(gnabar=0.12)], name=f"s{k}")
                    for k in range(3)]
        cell = jn.Cell(sections, parents=[None, ("s0", 1.0), ("s0", 1.0)])

        def loss(gnabar):
            c = eqx.tree_at(lambda c: c.sections[1].channels[0].gnabar, cell, gnabar)
            tr = jn.simulate(c, 0.5, dt=0.025, stimuli=[jn.StepCurrent(0.1, 0.0, 1.0, target=("s0", 0.0))],
                             save_every=save_every)
            return jnp.mean(tr.v)

        # Traced, not run: the forward pass (the same under either policy) is in the
        # jaxpr too, so the counts differ by the backward passes' difference.
        jaxpr = jax.make_jaxpr(lambda x: jax.vjp(loss, x)[1](1.0))(0.12).jaxpr
        return _tree_scans(jaxpr, cell.voltage_coupling().size)

    kept = backward_scans(5)
    monkeypatch.setattr(fixed_step, "_KEEP_TREE_SOLUTIONS", jax.checkpoint_policies.nothing_saveable)
    assert kept < backward_scans(6)


def test_hines_solve_builds_no_dense_matrix():
    n = 64
    parent = tuple([-1] + list(range(n - 1)))
    coupling = TreeCoupling(g=jnp.ones(n), capacitance=jnp.ones(n), parent=parent)
    jaxpr = jax.make_jaxpr(jax.grad(lambda d: coupling.solve(d, jnp.ones(n)).sum()))(jnp.ones(n))

    shapes = [getattr(var.aval, "shape", ()) for eqn in _all_eqns(jaxpr.jaxpr) for var in eqn.outvars]
    assert max(int(np.prod(s)) for s in shapes) <= 4 * n


def _small_cell():
    soma = jn.Cable(20.0, 20.0, Ra=100.0, nseg=1, channels=[jn.channels.HH()], name="soma")
    dend = jn.Cable(200.0, 2.0, Ra=150.0, nseg=5, channels=[jn.channels.Leak(g=2e-4, e=-65.0)], name="dend")
    tuft = jn.Cable(100.0, 1.0, Ra=150.0, nseg=3,
                    channels=[jn.channels.Leak(g=1e-4, e=-65.0), jn.channels.HH(gnabar=0.05, gkbar=0.02)],
                    name="tuft")
    return jn.Cell([soma, dend, tuft], parents=[None, ("soma", 1.0), ("dend", 1.0)])


def test_gradients_match_central_differences():
    cell = _small_cell()
    stim = [jn.StepCurrent(0.05, 1.0, 20.0, target=("tuft", 0.9))]
    where = {
        "soma gnabar": lambda c: c.sections[0].channels[0].gnabar,
        "dend g_pas": lambda c: c.sections[1].channels[0].g,
        "tuft gkbar": lambda c: c.sections[2].channels[1].gkbar,
        "dend Ra": lambda c: c.sections[1].Ra,
        "soma Ra": lambda c: c.sections[0].Ra,
    }
    tip = cell.index("tuft", 1.0)

    def loss(values):
        model = eqx.tree_at(lambda c: [f(c) for f in where.values()], cell, list(values))
        trace = jn.simulate(model, 8.0, dt=0.05, stimuli=stim, save_every=0.5)
        return jnp.mean(trace.v[:, tip]) + jnp.mean(trace.v[:, 0])

    x0 = jnp.array([float(f(cell)) for f in where.values()])
    grad = np.asarray(jax.jit(jax.grad(loss))(x0))
    loss_j = jax.jit(loss)
    for k, name in enumerate(where):
        h = 1e-4 * float(x0[k])
        e = jnp.zeros_like(x0).at[k].set(h)
        fd = (float(loss_j(x0 + e)) - float(loss_j(x0 - e))) / (2 * h)
        assert abs(fd) > 1e-6, name
        assert grad[k] == pytest.approx(fd, rel=1e-4), name


def _loop_equations(jaxpr, inside=False):
    """How many equations time loops (while/scan bodies) hold, nested ones included."""
    count = 0
    for eqn in jaxpr.eqns:
        count += inside
        loop = eqn.primitive.name in ("while", "scan")
        for sub in jax.extend.core.jaxprs_in_params(eqn.params):
            count += _loop_equations(sub, inside or loop)
    return count


def test_a_cells_time_loop_does_not_grow_with_its_sections():
    # Per-section cm and channel parameters are laid out over the segments once per
    # run (Cell.precomputed), not at every step: otherwise the loop, and the gradient's
    # backward loop with one cotangent per section and parameter, grow with the
    # number of sections (a 540-section SWC cell's gradient compiled for minutes).
    def loops(n_sections):
        secs = [jn.Cable(100.0, 1.0 + 0.1 * i, Ra=100.0, nseg=2, cm=1.0 + 0.01 * i,
                         channels=[jn.channels.HH(gnabar=0.12 + 0.001 * i)], name=f"s{i}")
                for i in range(n_sections)]
        cell = jn.Cell(secs, parents=[None] + [(f"s{i // 2}", 1.0) for i in range(n_sections - 1)])
        stim = [jn.StepCurrent(0.1, 0.5, 10.0, target=("s0", 0.5))]
        run = lambda c: jnp.mean(jn.simulate(c, 1.0, stimuli=stim).v)
        forward = jax.make_jaxpr(run)(cell).jaxpr
        backward = jax.make_jaxpr(eqx.filter_grad(run))(cell).jaxpr
        return _loop_equations(forward, inside=False), _loop_equations(backward, inside=False)

    # (From 8 segments on: the step averages the voltage of up to 8 of them, slice by
    # slice, solving relative to it.)
    assert loops(31) == loops(4)


def test_precomputed_cell_keeps_its_membrane_parameters_and_checks_them():
    cell = _small_cell()
    pre = cell.precomputed()
    assert cell.segment_membrane is None and pre.precomputed() is pre
    np.testing.assert_array_equal(pre.capacitance, cell.capacitance)
    np.testing.assert_array_equal(pre.ionic_current(cell.init_state(-60.0)), cell.ionic_current(cell.init_state(-60.0)))
    # HH on the soma and the tuft, a leak on the dendrite and the tuft: each once.
    assert [ch.name for ch in pre.segment_membrane.channels] == ["hh", "pas"]
    np.testing.assert_array_equal(pre.segment_membrane.channels[0].gnabar, [0.12, 0.05, 0.05, 0.05])
    with pytest.raises(ValueError, match="Cell.segment_membrane"):
        jn.Cell(cell.sections[:2], parents=[None, "soma"], segment_membrane=pre.segment_membrane)
    # The axial coupling too, checked against the tree.
    np.testing.assert_array_equal(pre.coupling.g, cell.voltage_coupling().g)
    assert pre.voltage_coupling() is pre.coupling
    with pytest.raises(ValueError, match="Cell.coupling"):
        jn.Cell(cell.sections[:2], parents=[None, "soma"], coupling=pre.coupling)


def test_axial_conductances_are_computed_once_per_run(monkeypatch):
    # Computed inside the loop, their derivatives pass through the gathers from the half
    # segments at every step of a gradient (a 1000-segment HH cell's gradient in Ra was
    # 1.4x slower): simulate and its gradient compute them once, in precomputed().
    from jaxneuro.morphology import cell as cell_module

    calls = []
    for name in ("_geometry_and_coupling", "_axial_conductance"):  # (together, or alone)
        monkeypatch.setattr(cell_module, name, lambda *a, _f=getattr(cell_module, name): calls.append(1) or _f(*a))
    cell = _small_cell()
    stim = [jn.StepCurrent(0.05, 1.0, 20.0, target=("tuft", 0.9))]
    run = lambda ra: jnp.mean(jn.simulate(eqx.tree_at(lambda c: c.sections[1].Ra, cell, ra), 2.0, dt=0.05,
                                          stimuli=stim).v)
    jax.make_jaxpr(jax.grad(run))(150.0)
    assert len(calls) == 1


class _CellWithoutLocalField(jn.Cell):
    """A cell whose solver step takes the full right-hand side (axial currents
    included) and solves for the voltage increment, as for models without
    ``local_vector_field``."""

    local_vector_field = None


@pytest.mark.parametrize("voltage_update", ["backward_euler", "crank_nicolson"])
def test_cell_solved_for_the_new_voltage_equals_the_increment_form(voltage_update, monkeypatch):
    """Cells are stepped without evaluating their axial currents A·v (the new voltage
    solved for directly, relative to the mean voltage): the same voltages and
    gradients as the increment form, dv from (1/h - b - A) dv = f + A·v0."""
    traced = []
    local = jn.Cell.local_vector_field
    monkeypatch.setattr(jn.Cell, "local_vector_field", lambda self, *a: traced.append(1) or local(self, *a))
    cell = _small_cell()
    other = _CellWithoutLocalField(cell.sections, parents=[None, ("soma", 1.0), ("dend", 1.0)])
    np.testing.assert_array_equal(other.vector_field(0.0, other.init_state(-65.0), jnp.zeros(9)).v,
                                  cell.vector_field(0.0, cell.init_state(-65.0), jnp.zeros(9)).v)
    stim = [jn.StepCurrent(0.3, 1.0, 20.0, target=("soma", 0.5))]
    solver = jn.StaggeredEuler(voltage_update=voltage_update)

    def run(model, gnabar=0.12):
        model = eqx.tree_at(lambda c: c.sections[0].channels[0].gnabar, model, gnabar)
        return jn.simulate(model, 25.0, dt=0.025, stimuli=stim, solver=solver, save_every=0.25).v

    v = run(cell)
    assert traced  # the solver took the cell's local right-hand side
    del traced[:]
    v_increment = run(other)
    assert not traced
    assert float(v.max()) > 20.0  # the soma spikes: both forms go through upswings
    np.testing.assert_allclose(v, v_increment, rtol=0, atol=1e-9)
    grads = [jax.grad(lambda g, m=m: jnp.mean(run(m, g)[:, -1]))(0.12) for m in (cell, other)]
    assert abs(float(grads[0])) > 1e-3
    assert float(grads[0]) == pytest.approx(float(grads[1]), rel=1e-8)


_TREE_RUN = """
def tree_voltages(jn, np):
    parents = [-1, 0, 0, 1, 1, 2, 2, 3, 3, 4]
    secs = [jn.Cable(length=1000.0, diam=2.0, Ra=100.0, nseg=100, channels=[jn.channels.HH(gnabar=0.10 + 0.004 * i)],
                     name=f"b{i}") for i in range(10)]
    cell = jn.Cell(secs, parents=[None if p < 0 else p for p in parents])
    tr = jn.simulate(cell, 100.0, dt=0.025, stimuli=[jn.StepCurrent(0.2, 10.0, 1e9, target=("b0", 0.0))],
                     save_every=0.25)
    return np.asarray(tr.v, dtype=np.float64)


def fine_cables(jn, np):
    # Segments of 0.2 and 0.1 µm: axial conductances 1e4-1e5 times C/dt.
    out = []
    for length, diam, ra, nseg in [(20.0, 2.0, 35.4, 101), (100.0, 1.0, 100.0, 1001)]:
        c = jn.Cable(length=length, diam=diam, Ra=ra, nseg=nseg, channels=[jn.channels.Leak(g=1e-4, e=-65.0)])
        tr = jn.simulate(c, 40.0, dt=0.025, stimuli=[jn.StepCurrent(0.01, 1.0, 1e9, target=0.0)], save_every=1.0)
        out.append(np.asarray(tr.v, dtype=np.float64)[:, 0])
    return np.stack(out)
"""


def test_float32_cell_is_close_to_float64(tmp_path):
    """A 1000-segment HH cell (10 branches, the tip spiking) in float32 stays within
    0.01 mV of float64 over 100 ms: the new voltage is solved relative to the mean
    voltage of 8 segments spread over the cell, so float32 rounds relative to the spread of voltages (solved relative to
    0 mV instead, this cell was 0.039 mV off). Cables of 0.1-0.2 µm segments stay
    within 1e-3 mV: their pivots are built from the own terms (with the full diagonal,
    0.25 and 0.085 mV off). float32 in its own process (JAX's precision is per
    process), float64 in this one."""
    script = tmp_path / "f32.py"
    script.write_text("import sys\nimport numpy as np\nimport jaxneuro as jn\n" + _TREE_RUN
                      + "np.savez(sys.argv[1], tree=tree_voltages(jn, np), fine=fine_cables(jn, np))\n")
    env = dict(os.environ, JAX_ENABLE_X64="0")
    subprocess.run([sys.executable, str(script), str(tmp_path / "f32.npz")], check=True, timeout=300, env=env)
    namespace: dict = {}
    exec(_TREE_RUN, namespace)
    f32 = np.load(tmp_path / "f32.npz")
    tree, fine = namespace["tree_voltages"](jn, np), namespace["fine_cables"](jn, np)
    assert tree[:, -1].max() > 20.0  # the tip spikes
    assert np.max(np.abs(f32["tree"] - tree)) < 0.01
    assert np.all(fine[:, -1] - fine[:, 0] > 30.0)  # deflections of 47 and 32 mV
    assert np.max(np.abs(f32["fine"] - fine)) < 1e-3


def test_per_segment_parameters():
    # A channel density given per segment equals separate one-segment-wide regions.
    g = jnp.array([1e-4, 2e-4, 4e-4])
    cable = jn.Cable(90.0, jnp.array([2.0, 1.5, 1.0]), nseg=3, channels=[jn.channels.Leak(g=g, e=-65.0)])
    trace = jn.simulate(cable, 400.0, dt=0.5, v0=-65.0, stimuli=[jn.StepCurrent(0.01, 0.0, 1e9, target=0.5)])
    # Steady state: the injected current leaves through the membrane.
    v = np.asarray(trace.v[-1]) + 65.0
    area = np.asarray(cable.membrane_area)
    np.testing.assert_allclose(area, math.pi * np.array([2.0, 1.5, 1.0]) * 30.0)
    assert float(np.sum(np.asarray(g) * v * area) * 1e-2) == pytest.approx(0.01, rel=1e-4)


def test_bad_input_is_rejected():
    leak = [jn.channels.Leak()]
    with pytest.raises(ValueError, match="nseg"):
        jn.Cable(100.0, 1.0, nseg=0)
    with pytest.raises(ValueError, match="Ra"):
        jn.Cable(100.0, 1.0, Ra=-35.4)
    with pytest.raises(ValueError, match="diam"):
        jn.Cable(100.0, jnp.ones(4), nseg=3)
    with pytest.raises(ValueError, match="length"):
        jn.Cable(0.0, 1.0)
    with pytest.raises(ValueError, match="shape"):
        jn.Cable(100.0, 1.0, nseg=3, channels=[jn.channels.Leak(g=jnp.ones(2) * 1e-4)])
    cable = jn.Cable(100.0, 1.0, nseg=3, channels=leak, name="a")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        cable.index(1.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        jn.simulate(cable, 1.0, stimuli=[jn.StepCurrent(0.1, target=-0.1)])
    with pytest.raises(ValueError, match="unknown section"):
        jn.simulate(cable, 1.0, stimuli=[jn.StepCurrent(0.1, target=("b", 0.5))])
    b = jn.Cable(100.0, 1.0, nseg=3, channels=leak, name="b")
    with pytest.raises(ValueError, match="parents"):
        jn.Cell([cable, b])
    with pytest.raises(ValueError, match="before"):
        jn.Cell([cable, b], parents=[("b", 1.0), None])
    with pytest.raises(ValueError, match="unknown section"):
        jn.Cell([cable, b], parents=[None, ("c", 1.0)])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        jn.Cell([cable, b], parents=[None, ("a", 2.0)])
    with pytest.raises(ValueError, match="unique"):
        jn.Cell([cable, cable], parents=[None, 0])
    with pytest.raises(ValueError, match="location"):
        jn.simulate(jn.Compartment(area=100.0), 1.0, stimuli=[jn.StepCurrent(0.1, target=0.5)])


def test_zero_area_nodes_are_eliminated_exactly():
    """A tree with zero-area junction nodes (NEURON's section ends where several
    children meet) and compartments numbered in any order: ``apply`` is the Schur
    complement of the node Laplacian onto the compartments, ``solve`` its system."""
    rng = np.random.default_rng(3)
    # nodes: 0-9 a chain; 10 = junction J1 on node 9; 11-15 and 16-20 two chains off
    # J1; 21 = junction J2 on node 5; 22-24 and 25-27 two chains off J2.
    parent = [-1] + list(range(9)) + [9, 10] + list(range(11, 15)) + [10] + list(range(16, 20))
    parent += [5, 21, 22, 23, 21, 25, 26]
    n_nodes = len(parent)
    zero = [10, 21]
    compartments = [k for k in range(n_nodes) if k not in zero]
    segment_nodes = tuple(int(k) for k in rng.permutation(compartments))
    n = len(segment_nodes)
    g, c = rng.uniform(0.1, 5.0, n_nodes), rng.uniform(0.2, 2.0, n)
    coupling = TreeCoupling(g=jnp.asarray(g), capacitance=jnp.asarray(c), parent=tuple(parent),
                            segment_nodes=segment_nodes)
    lap = np.zeros((n_nodes, n_nodes))  # L v: current out of each node, nA
    for k, p in enumerate(parent):
        if p >= 0:
            lap[k, k] += g[k]; lap[p, p] += g[k]; lap[k, p] -= g[k]; lap[p, k] -= g[k]
    s, z = list(segment_nodes), zero
    schur = lap[np.ix_(s, s)] - lap[np.ix_(s, z)] @ np.linalg.solve(lap[np.ix_(z, z)], lap[np.ix_(z, s)])
    a = -schur / c[:, None]
    v, d, rhs = rng.normal(size=n), rng.uniform(0.5, 3.0, n), rng.normal(size=n)
    np.testing.assert_allclose(jax.jit(lambda v: coupling.apply(v))(jnp.asarray(v)), a @ v, atol=1e-12)
    np.testing.assert_allclose(jax.jit(lambda d, rhs: coupling.solve(d, rhs))(jnp.asarray(d), jnp.asarray(rhs)),
                               np.linalg.solve(np.diag(d) - a, rhs), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("n,spread,roots", [(60, 1, 1), (300, 4, 2), (700, 1, 3), (400, 60, 1)])
def test_path_partitioned_solve_equals_a_dense_solve(n, spread, roots):
    """``method="paths"``: long chains (spread 1) are cut into segments, bushy trees
    (spread 60: many branch points) leave many junctions; forests; a batch axis."""
    rng = np.random.default_rng(n)
    parent = [-1] + [int(rng.integers(max(0, i - spread), i)) for i in range(1, n)]
    for r in range(1, roots):
        parent[r * n // roots] = -1
    parent = tuple(parent)
    g, c = rng.uniform(0.1, 5.0, n), rng.uniform(0.2, 2.0, n)
    coupling = TreeCoupling(g=jnp.asarray(g), capacitance=jnp.asarray(c), parent=parent)
    a = _dense(parent, g, c)
    d, rhs = rng.uniform(0.01, 3.0, (2, n)), rng.normal(size=(2, n))
    solve = jax.jit(lambda d, rhs, method: coupling.solve(d, rhs, method), static_argnums=2)  # as simulate runs it
    got = solve(jnp.asarray(d), jnp.asarray(rhs), "paths")
    want = [np.linalg.solve(np.diag(d[k]) - a, rhs[k]) for k in range(2)]
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got, solve(jnp.asarray(d), jnp.asarray(rhs), "hines"), rtol=1e-11, atol=1e-13)
    part = hines._partition(parent, None)
    rows, paths = part.layout.shape
    assert rows <= max(8, round(np.sqrt(n)))  # no path longer than its segment
    # Every node is computed once: on a path row or as a junction.
    assert (part.layout < n).sum() + part.junctions.size == n


def test_path_partitioned_solve_of_isolated_nodes_and_pairs():
    """Trees with nothing to cut into paths: isolated nodes (every node a root: no
    path at all, so "paths" falls back to the Hines order) and root-child pairs (one
    node per path). Both against a dense solve."""
    rng = np.random.default_rng(5)
    for parent in [(-1,) * 7, (-1, 0, -1, 2, -1, 4)]:
        n = len(parent)
        g, c = rng.uniform(0.1, 5.0, n), rng.uniform(0.2, 2.0, n)
        coupling = TreeCoupling(g=jnp.asarray(g), capacitance=jnp.asarray(c), parent=parent)
        d, rhs = rng.uniform(0.01, 3.0, n), rng.normal(size=n)
        want = np.linalg.solve(np.diag(d) - _dense(parent, g, c), rhs)
        assert (hines._partition(parent, None) is None) == all(p < 0 for p in parent)
        for method in ("hines", "paths"):
            got = jax.jit(TreeCoupling.solve, static_argnums=3)(coupling, jnp.asarray(d), jnp.asarray(rhs), method)
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


def test_path_partitioned_solve_with_zero_area_nodes_and_its_gradients():
    """A cell's zero-area junction nodes (NEURON's section ends) and implicit gradients
    through the transpose solve, both with ``method="paths"``, against the node-by-node
    solve (itself tested against dense algebra above)."""
    sections = [jn.Cable(100.0, 2.0, Ra=100.0, nseg=n, name=f"s{k}") for k, n in enumerate([30, 25, 40, 20, 35])]
    cell = jn.Cell(sections, parents=[None, ("s0", 1.0), ("s0", 1.0), ("s1", 1.0), ("s1", 0.5)])
    coupling = cell.voltage_coupling()
    assert coupling.size > cell.n_segments  # it has zero-area nodes
    rng = np.random.default_rng(7)
    d, rhs = jnp.asarray(rng.uniform(10.0, 40.0, cell.n_segments)), jnp.asarray(rng.normal(size=cell.n_segments))
    # (Each under jit, as simulate runs it: op by op, the scans took ~4x as long.)
    solve = jax.jit(lambda d, rhs, method: coupling.solve(d, rhs, method), static_argnums=2)
    np.testing.assert_allclose(solve(d, rhs, "paths"), solve(d, rhs, "hines"), rtol=1e-11, atol=1e-13)

    def loss(d, rhs, g, method):
        c = eqx.tree_at(lambda c: c.g, coupling, g)
        return jnp.sum(jnp.sin(c.solve(d, rhs, method)))

    grad = jax.jit(jax.grad(loss, argnums=(0, 1, 2)), static_argnums=3)
    grads = [grad(d, rhs, coupling.g, m) for m in ("paths", "hines")]
    for gp, gh in zip(*grads):
        np.testing.assert_allclose(gp, gh, rtol=1e-9, atol=1e-12)
    tangent = jax.jit(lambda x, method: jax.jvp(lambda x: solve(x, rhs, method), (x,), (jnp.ones_like(x),))[1],
                      static_argnums=1)
    np.testing.assert_allclose(tangent(d, "paths"), tangent(d, "hines"), rtol=1e-9, atol=1e-12)


def test_tree_solve_rejects_unknown_methods():
    with pytest.raises(ValueError, match="tree_solve expects one of"):
        jn.StaggeredEuler(tree_solve="dense")
    coupling = seed002_cable(nseg=5).voltage_coupling()
    with pytest.raises(ValueError, match=r"method expects one of \('hines', 'paths', 'steady'\)"):
        coupling.solve(jnp.ones(5), jnp.ones(5), "dense")
    with pytest.raises(ValueError, match=r"tree_solve expects one of \('hines', 'paths'\), got 'steady'"):
        jn.StaggeredEuler(tree_solve="steady")  # the steady-state solve is not the time step's
    # The steady-state order solves the same system (its pivots are built another way).
    for d in (jnp.full(5, 1e-3), jnp.full(5, 40.0)):
        np.testing.assert_allclose(coupling.solve(d, jnp.arange(5.0), "steady"),
                                   coupling.solve(d, jnp.arange(5.0)), rtol=1e-12)


def test_adjacent_zero_area_nodes_are_refused():
    coupling = TreeCoupling(g=jnp.ones(4), capacitance=jnp.ones(2), parent=(-1, 0, 1, 2), segment_nodes=(0, 3))
    with pytest.raises(ValueError, match="zero-area nodes must neighbour compartments only"):
        coupling.apply(jnp.zeros(2))


def test_cable_voltage_at_an_end_takes_the_injected_current():
    """Cable.voltage_at(v, 1.0, i_inj): NEURON's end node with a current injected there
    (it returned the end segment's voltage, 0.8 mV off NEURON's sec(1).v for 0.1 nA),
    as the cell's voltage_at gives it; without a current, the end segment's."""
    cab = jn.Cable(length=200.0, diam=1.0, nseg=5, channels=[jn.channels.Leak()])
    v = jnp.linspace(-70.0, -60.0, 5)
    cell = cab.as_cell()
    np.testing.assert_allclose(cab.voltage_at(v, 1.0, 0.1), cell.voltage_at(v, 0, 1.0, 0.1), rtol=0, atol=1e-12)
    assert float(cab.voltage_at(v, 1.0)) == float(v[-1])
    # The node lies half a segment beyond the end segment's centre: v_end + i·r_half.
    r_half = float(cab.half_resistances()[1][-1])  # MΩ
    np.testing.assert_allclose(cab.voltage_at(v, 1.0, 0.1), v[-1] + 0.1 * r_half, rtol=1e-12)


def test_a_cells_precomputation_is_kept_while_the_cell_lives():
    # A 1000-section cell spent 0.7 s of every eager simulate call on it.
    import gc

    from jaxneuro import model as model_module

    secs = [jn.Cable(length=50.0, diam=1.0, nseg=2, channels=[jn.channels.HH()], name=f"s{i}") for i in range(5)]
    cell = jn.Cell(secs, parents=[None, "s0", "s1", "s1", "s3"])
    first = cell.precomputed()
    assert cell.precomputed() is first
    cable = secs[0]
    assert cable.precomputed() is cable.precomputed()
    # An edited cell is another object, computed anew, and its runs follow the edit.
    thicker = eqx.tree_at(lambda c: c.sections[2].diam, cell, 2.0)
    assert thicker.precomputed() is not first
    stim = [jn.StepCurrent(0.2, 1.0, 5.0, target=("s4", 0.5))]
    a, b = jn.simulate(cell, 5.0, stimuli=stim), jn.simulate(thicker, 5.0, stimuli=stim)
    assert float(np.max(np.abs(np.asarray(a.v) - np.asarray(b.v)))) > 1e-3
    np.testing.assert_array_equal(np.asarray(jn.simulate(cell, 5.0, stimuli=stim).v), np.asarray(a.v))
    # Under jit the cell holds tracers: nothing of them is kept.
    before = dict(model_module._PRECOMPUTED)
    traced = jax.jit(lambda c: jn.simulate(c, 5.0, stimuli=stim).v)(cell)
    np.testing.assert_allclose(np.asarray(traced), np.asarray(a.v), rtol=0, atol=1e-9)
    assert set(model_module._PRECOMPUTED) == set(before)
    assert all(not isinstance(x, jax.core.Tracer) for _, out in model_module._PRECOMPUTED.values()
               for x in jax.tree.leaves(out))
    # Nor of a concrete cell closed over by a jitted function (a loss), computed inside
    # its trace: the next eager run of the cell failed with UnexpectedTracerError.
    fresh = eqx.tree_at(lambda c: c.sections[1].diam, cell, jnp.asarray(1.5))

    @jax.jit
    def loss(amp):
        return jn.simulate(fresh, 5.0, stimuli=[jn.StepCurrent(amp, 1.0, 5.0, target=("s4", 0.5))]).v[-1, 0]

    inside = float(loss(0.2))
    assert float(jn.simulate(fresh, 5.0, stimuli=stim).v[-1, 0]) == pytest.approx(inside, abs=1e-9)
    assert np.isfinite(float(jax.grad(loss)(0.2)))
    # A cell that is gone leaves the cache.
    key = next(k for k in model_module._PRECOMPUTED if k[0] == id(thicker))
    del thicker, b
    gc.collect()
    assert key not in model_module._PRECOMPUTED
    # Many live models: the oldest are let go, so the cache stays bounded.
    many = [eqx.tree_at(lambda c: c.sections[0].diam, cell, 1.0 + 0.1 * i) for i in range(model_module._CACHE_SIZE + 3)]
    for m in many:
        m.precomputed()
    assert len(model_module._PRECOMPUTED) == model_module._CACHE_SIZE
    assert {k[0] for k in model_module._PRECOMPUTED} == {id(m) for m in many[-model_module._CACHE_SIZE:]}
    assert many[-1].precomputed() is many[-1].precomputed()
