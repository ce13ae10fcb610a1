"""Gap junctions against NEURON: HH compartments coupled by symmetric and asymmetric
junctions, NEURON's side built with its ``LinearMechanism`` (the junctions' conductance
matrix added to the current balance equations and solved with them at every step, as
jaxneuro solves them implicitly). NEURON has no gap-junction mechanism of its own
without compiling one; ``LinearMechanism`` is built in, and with it a junction need
not be symmetric."""

import jax
import numpy as np
import pytest

import jaxneuro as jn
from conftest import crossings, run_neuron
from jaxneuro.network import implicit

DT = 0.025


def _neuron_network(h, sizes, gnabar, into, stimuli, t1):
    """NEURON's voltages (time × cell) of one-segment HH sections (L = diam =
    ``sizes`` µm, ``gnabar`` S/cm²) joined by ``into`` (a matrix of µS: ``into[i, j]``
    is the conductance through which cell ``j`` drives current into cell ``i``), with
    ``stimuli`` (cell -> (amp nA, delay ms, dur ms)), from -65 mV to ``t1`` ms."""
    n = len(sizes)
    secs = []
    for i in range(n):
        s = h.Section(name=f"gap_cell{i}")
        s.L = s.diam = sizes[i]
        s.insert("hh")
        s(0.5).hh.gnabar = gnabar[i]
        secs.append(s)
    # Each row is cell i's current balance, in mA/cm² of its own membrane (outward
    # positive): g (µS) · ΔV (mV) = nA, · 1e-6 / area (cm²) -> S/cm² · mV.
    area = np.array([s(0.5).area() * 1e-8 for s in secs])
    laplacian = np.diag(into.sum(axis=1)) - into
    g = h.Matrix(n, n)
    for r, c in zip(*np.nonzero(laplacian)):
        g.setval(int(r), int(c), laplacian[r, c] * 1e-6 / area[r])
    c, y, b = h.Matrix(n, n, 2), h.Vector(n), h.Vector(n)
    sl = h.SectionList()
    for s in secs:
        sl.append(sec=s)
    lm = h.LinearMechanism(c, g, y, b, sl, h.Vector([0.5] * n))
    clamps = []
    for i, (amp, delay, dur) in stimuli.items():
        clamp = h.IClamp(secs[i](0.5))
        clamp.amp, clamp.delay, clamp.dur = amp, delay, dur
        clamps.append(clamp)
    try:
        _, vecs = run_neuron(h, t1, dt=DT, refs=[s(0.5)._ref_v for s in secs])
    finally:
        del lm  # before its sections: it is not told when they go
        for s in secs:
            h.delete_section(sec=s)
    return np.stack(vecs, axis=1)


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


def test_three_cells_of_different_sizes_match_neuron_and_the_direction_matters(neuron_h, x64):
    # a -- b symmetric, b -> c stronger than c -> b; only a is stimulated, so b and c
    # fire through the junctions alone.
    sizes, gnabar = (20.0, 30.0, 15.0), (0.12, 0.10, 0.14)
    g_ab, g_bc, g_cb = 0.004, 0.006, 0.002  # µS
    into = np.array([[0.0, g_ab, 0.0], [g_ab, 0.0, g_cb], [0.0, g_bc, 0.0]])
    v_n = _neuron_network(neuron_h, sizes, gnabar, into, {0: (0.3, 5.0, 30.0)}, 40.0)

    def jaxneuro_v(g_asym):
        cells = {k: jn.Compartment(length=d, diam=d, channels=[jn.channels.HH(gnabar=g)])
                 for k, d, g in zip("abc", sizes, gnabar)}
        net = jn.Network(cells, [jn.SymmetricGapJunction("a", "b", jn.conn.one_to_one, g_ab),
                                 jn.AsymmetricGapJunction("b", "c", jn.conn.one_to_one, np.array(g_asym))])
        tr = jn.simulate(net, 40.0, dt=DT, stimuli=[jn.StepCurrent(0.3, 5.0, 30.0, target="a")])
        return np.stack([np.asarray(tr[k].v).reshape(-1) for k in "abc"], axis=1)

    v_j = jaxneuro_v([g_bc, g_cb])  # [into post c, into pre b]
    t = np.arange(v_n.shape[0]) * DT
    assert all(len(crossings(t, v_n[:, i])) >= 1 for i in range(3))  # every cell fires
    # 2.5e-10 mV measured: the same scheme as NEURON's, to rounding.
    assert np.max(np.abs(v_j - v_n)) < 1e-6
    # The junction's two directions swapped: c is driven through the weaker one.
    assert np.max(np.abs(jaxneuro_v([g_cb, g_bc])[:, 2] - v_n[:, 2])) > 10.0


@pytest.mark.parametrize("n", [12, 40], ids=["dense_solve", "gmres"])
def test_a_population_with_random_junctions_matches_neuron(neuron_h, x64, n):
    # A ring of symmetric junctions and random asymmetric ones; every fifth cell
    # stimulated. 12 cells take the dense solve, 40 the iterative one.
    assert (n <= implicit.DENSE_MAX) == (n == 12)
    rng = np.random.default_rng(3)
    gnabar = rng.uniform(0.08, 0.16, n)
    amp = np.where(np.arange(n) % 5 == 0, 0.25, 0.0)
    ring_pre, ring_post = np.arange(n), (np.arange(n) + 1) % n
    g_ring = 0.002
    pre, post = rng.integers(0, n, 2 * n), rng.integers(0, n, 2 * n)
    pre, post = pre[pre != post], post[pre != post]
    g_asym = rng.uniform(0.0005, 0.004, (len(pre), 2))  # [into post, into pre] µS
    into = np.zeros((n, n))
    for i, j in zip(ring_pre, ring_post):
        into[i, j] += g_ring
        into[j, i] += g_ring
    for i, j, (g_fwd, g_back) in zip(pre, post, g_asym):
        into[j, i] += g_fwd
        into[i, j] += g_back
    stimulated = {int(i): (amp[i], 2.0, 1e9) for i in np.nonzero(amp)[0]}
    v_n = _neuron_network(neuron_h, [20.0] * n, gnabar, into, stimulated, 30.0)

    pop = jn.Compartment(length=20.0, diam=20.0, channels=[jn.channels.HH(gnabar=gnabar)], n=n)
    net = jn.Network({"e": pop}, [jn.SymmetricGapJunction("e", "e", jn.conn.explicit(ring_pre, ring_post), g_ring),
                                  jn.AsymmetricGapJunction("e", "e", jn.conn.explicit(pre, post), g_asym)])
    tr = jn.simulate(net, 30.0, dt=DT, stimuli=[jn.StepCurrent(amp, 2.0, 1e9, target="e")])
    v_j = np.asarray(tr["e"].v)
    fired = ((v_n[:-1] < 0) & (v_n[1:] >= 0)).any(axis=0)
    assert np.sum(fired & (amp == 0)) >= n // 2  # driven through the junctions alone
    # 1.8e-10 (dense) and 9.6e-10 mV (GMRES) measured.
    assert np.max(np.abs(v_j - v_n)) < 1e-6
