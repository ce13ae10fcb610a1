"""Gap junctions against NEURON: HH compartments coupled by symmetric and asymmetric
junctions, NEURON's side built with its ``LinearMechanism`` (the junctions' conductance
matrix added to the current balance equations and solved with them at every step, as
jaxneuro solves them implicitly). NEURON has no gap-junction mechanism of its own
without compiling one; ``LinearMechanism`` is built in, and with it a junction need
not be symmetric."""

import importlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import jaxneuro as jn
from conftest import crossings, env_with_xla_flags, run_neuron
from jaxneuro.network import implicit

DT = 0.025
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def bench(monkeypatch):
    """benchmarks/gap_neuron.py: its networks and their NEURON (LinearMechanism) form."""
    monkeypatch.syspath_prepend(os.path.join(ROOT, "benchmarks"))
    return importlib.import_module("gap_neuron")


@pytest.fixture
def neuron_net(neuron_h, bench):
    """:func:`_neuron_network` with NEURON's ``h``."""
    return lambda *args: _neuron_network(neuron_h, bench, *args)


def _neuron_network(h, gap_neuron, sizes, gnabar, into, stimuli, t1):
    """NEURON's voltages (time × cell) of benchmarks/gap_neuron.py's LinearMechanism
    network (:func:`neuron_gap_network`: sizes µm, gnabar S/cm², ``into`` µS with
    ``into[i, j]`` from cell ``j`` into cell ``i``, stimuli cell -> (amp nA, delay ms, dur
    ms)), from -65 mV to ``t1`` ms."""
    with gap_neuron.neuron_gap_network(h, sizes, gnabar, into, stimuli) as secs:
        _, vecs = run_neuron(h, t1, dt=DT, refs=[s(0.5)._ref_v for s in secs])
    return np.stack(vecs, axis=1)


def test_three_cells_of_different_sizes_match_neuron_and_the_direction_matters(neuron_net):
    # a -- b symmetric, b -> c stronger than c -> b; only a is stimulated, so b and c
    # fire through the junctions alone.
    sizes, gnabar = (20.0, 30.0, 15.0), (0.12, 0.10, 0.14)
    g_ab, g_bc, g_cb = 0.004, 0.006, 0.002  # µS
    into = np.array([[0.0, g_ab, 0.0], [g_ab, 0.0, g_cb], [0.0, g_bc, 0.0]])
    v_n = neuron_net(sizes, gnabar, into, {0: (0.3, 5.0, 30.0)}, 40.0)

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


@pytest.mark.parametrize("n", [40, 120], ids=["dense_solve", "gmres"])
def test_a_population_with_random_junctions_matches_neuron(neuron_net, bench, n):
    # benchmarks/gap_neuron.py's network: a ring of symmetric junctions and random
    # asymmetric ones, every fifth cell stimulated. 40 cells take the dense solve, 120
    # GMRES.
    assert (n <= implicit.DENSE_MAX_GMRES) == (n == 40)
    net = bench.network(n)
    amp = net["amp"]
    v_n = neuron_net([20.0] * n, net["gnabar"], net["into"], bench.stimuli_of(net), 30.0)

    pop = jn.Compartment(length=20.0, diam=20.0, channels=[jn.channels.HH(gnabar=net["gnabar"])], n=n)
    model = jn.Network({"e": pop}, [
        jn.SymmetricGapJunction("e", "e", jn.conn.explicit(*net["ring"]), bench.G_RING),
        jn.AsymmetricGapJunction("e", "e", jn.conn.explicit(net["pre"], net["post"]), net["g_asym"])])
    tr = jn.simulate(model, 30.0, dt=DT, stimuli=[jn.StepCurrent(amp, bench.DELAY, 1e9, target="e")])
    v_j = np.asarray(tr["e"].v)
    fired = ((v_n[:-1] < 0) & (v_n[1:] >= 0)).any(axis=0)
    assert np.sum(fired & (amp == 0)) >= n // 2  # driven through the junctions alone
    # ~1e-9 mV measured (both solves).
    assert np.max(np.abs(v_j - v_n)) < 1e-6


def test_gap_neuron_benchmark_smoke(tmp_path):
    """benchmarks/gap_neuron.py end to end on a small network: times, the comparisons
    with NEURON and between the dense solve and GMRES within their tolerances, the JSON."""
    pytest.importorskip("neuron")
    out = tmp_path / "gap.json"
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "gap_neuron.py"), "--n", "40",
                           "--t1", "10", "--json", str(out)], capture_output=True, text=True, timeout=300,
                          env=env_with_xla_flags())
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(out.read_text())
    assert r["n"] == 40 and r["junctions"] > 40 and r["jaxneuro_s"] > 0 and r["neuron_s"] > 0
    assert r["vs_neuron_max_dv_mV"] < 1e-6 and r["spiking_neurons"] > 5
    assert r["jaxneuro_gmres_s"] > 0 and r["dense_vs_gmres_max_dv_mV"] < 1e-6
    bad = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "gap_neuron.py"), "--n", "1"],
                         capture_output=True, text=True, timeout=120, env=env_with_xla_flags())
    assert bad.returncode == 2 and "--n expects at least 2 neurons" in bad.stderr
