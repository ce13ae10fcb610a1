"""SWC morphologies: sections, d_lambda nseg and voltages as NEURON's Import3d gives them."""

import math
import warnings
from pathlib import Path

import jax
import numpy as np
import pytest

import jaxneuro as jn
from conftest import crossings, run_neuron
from jaxneuro.morphology.swc import d_lambda_nseg, lambda_f, read_swc, swc_sections

DATA = Path(__file__).parent / "data"
FILES = [DATA / "small_cell_3pt.swc", DATA / "small_cell_1pt.swc"]


def _import3d(h, path):
    """Instantiate ``path`` in NEURON; returns {name: section}."""
    h.load_file("import3d.hoc")
    before = {s.name() for s in h.allsec()}
    reader = h.Import3d_SWC_read()
    reader.input(str(path))
    h.Import3d_GUI(reader, False).instantiate(None)
    return {s.name(): s for s in h.allsec() if s.name() not in before}


def _passive(h, s, nseg=None):
    """NEURON section ``s`` as the tests' passive cell: Ra 100 Ω·cm, cm 1 µF/cm², pas
    1e-4 S/cm² at -65 mV, ``nseg`` segments (default: the d_lambda rule, 0.1 λ at
    100 Hz, NEURON's own lambda_f)."""
    s.Ra, s.cm = 100.0, 1.0
    s.nseg = nseg or int((s.L / (0.1 * h.lambda_f(100, sec=s)) + 0.9) / 2) * 2 + 1
    s.insert("pas")
    for seg in s:
        seg.pas.g, seg.pas.e = 1e-4, -65.0


def _step(h, secs, cell, locs, site=("soma[0]", 0.5), amp=0.5):
    """Voltages at ``locs`` ((section, x) pairs) over 30 ms with ``amp`` nA (0.5) into
    ``site`` (soma(0.5)) from 1 to 21 ms: NEURON's (sections ``secs``) and jaxneuro's
    (``cell``; at a section end, NEURON's zero-area node there: ``Cell.voltage_at``)."""
    stim = h.IClamp(secs[site[0]](site[1]))
    stim.amp, stim.delay, stim.dur = amp, 1.0, 20.0
    _, vecs = run_neuron(h, 30.0, refs=[secs[n](x)._ref_v for n, x in locs])
    trace = jn.simulate(cell, 30.0, stimuli=[jn.StepCurrent(amp, 1.0, 20.0, target=site)])
    return np.array(vecs).T, np.stack([np.asarray(cell.voltage_at(trace.v, n, x)) for n, x in locs], axis=1)


def _assert_sections_match(h, path, label=""):
    """swc_sections(path) against Import3d's sections: names, 3-D points (µm, with
    the parent-point copies Import3d adds or leaves out), lengths, parents and
    attachment points, each child's 0 end on its parent."""
    secs = _import3d(h, path)
    try:
        ours = swc_sections(read_swc(path))
        names = [s.name for s in ours]
        assert sorted(names) == sorted(secs), label
        for sec in ours:
            s = secs[sec.name]
            points = np.array([[s.x3d(i), s.y3d(i), s.z3d(i), s.diam3d(i)] for i in range(s.n3d())])
            np.testing.assert_allclose(points, np.column_stack([sec.xyz, sec.diam]), atol=1e-4,
                                       err_msg=f"{label}, {sec.name}")
            assert sec.length == pytest.approx(s.L, abs=1e-4), (label, sec.name)
            assert h.section_orientation(sec=s) == 0.0
            parent = s.parentseg()
            assert (None if sec.parent is None else (names[sec.parent], sec.parent_x)) == (
                None if parent is None else (parent.sec.name(), parent.x)), (label, sec.name)
    finally:
        for s in secs.values():
            h.delete_section(sec=s)


@pytest.mark.parametrize("path", FILES, ids=["three_point_soma", "one_point_soma"])
def test_sections_nseg_areas_and_voltages_match_neuron(neuron_h, path):
    h = neuron_h
    cell = jn.Cell.from_swc(path, Ra=100.0, cm=1.0, channels=[jn.channels.Leak(g=1e-4, e=-65.0)])
    secs = _import3d(h, path)
    try:
        assert sorted(secs) == sorted(cell.section_names)
        area = np.asarray(cell.membrane_area)
        for s in secs.values():
            _passive(h, s)
        for name, sec in zip(cell.section_names, cell.sections):
            s = secs[name]
            assert sec.nseg == s.nseg, name
            assert float(sec.length) == pytest.approx(s.L, rel=1e-12), name
            # NEURON keeps 3-D points in single precision: ~3e-8 relative.
            np.testing.assert_allclose(area[cell.segments(name)], [seg.area() for seg in s], rtol=3e-7)
            # seg.ri(): from the segment's centre to the previous one's (its own half
            # towards 0 and that segment's half towards 1); the first segment's is its
            # half towards 0 alone (to the zero-area node at x = 0).
            left, right = (np.asarray(r) for r in sec.half_resistances())
            np.testing.assert_allclose([seg.ri() for seg in s], np.concatenate([[left[0]], left[1:] + right[:-1]]), rtol=3e-7)
            np.testing.assert_allclose(np.asarray(sec.segment_diameters), [seg.diam for seg in s], rtol=3e-7)
            parent = s.parentseg()
            link = cell.parents[cell.section_index(name)]
            if parent is None:
                assert link is None
            else:
                assert cell.section_names[link[0]] == parent.sec.name()
                assert link[1] == pytest.approx(parent.x)
        soma = secs["soma[0]"]
        assert soma.L == pytest.approx(16.0) and soma(0.5).diam == pytest.approx(16.0)
        assert max(s.nseg for s in secs.values()) > 5  # d_lambda actually splits sections

        v_n, v_j = _step(h, secs, cell, [("soma[0]", 0.5), ("dend[4]", 0.5), ("apic[2]", 0.9), ("axon[0]", 0.5)])
    finally:
        for s in secs.values():
            h.delete_section(sec=s)
    assert np.min(v_n.max(axis=0)) > -40  # 25+ mV deflections everywhere
    # Several children share dend[0]'s and apic[0]'s far ends (a zero-area node in NEURON).
    # 7e-8 mV measured (the areas' and resistances' single-precision 3-D points).
    assert np.max(np.abs(v_j - v_n)) < 1e-6


def test_input_resistance_matches_neurons_impedance(neuron_h):
    # The passive cell's steady deflection per nA at the soma against NEURON's input
    # impedance at 0 Hz, from the same 3-D points.
    h = neuron_h
    cell = jn.Cell.from_swc(FILES[0], Ra=100.0, cm=1.0, channels=[jn.channels.Leak(g=1e-4, e=-65.0)])
    secs = _import3d(h, FILES[0])
    try:
        for s in secs.values():
            _passive(h, s)
        imp = h.Impedance()
        imp.loc(0.5, sec=secs["soma[0]"])
        imp.compute(0, 1)
        r_neuron = imp.input(0.5, sec=secs["soma[0]"])  # MΩ
    finally:
        for s in secs.values():
            h.delete_section(sec=s)
    # 200 ms = 20 membrane time constants: e**-20 of the way to the steady state.
    trace = jn.simulate(cell, 200.0, stimuli=[jn.StepCurrent(0.05, 0.0, 1e9, target=("soma[0]", 0.5))],
                        save_every=200.0)
    r_jaxneuro = (float(trace.v[-1, cell.index("soma[0]", 0.5)]) + 65.0) / 0.05
    assert r_neuron == pytest.approx(91.79, abs=0.005)  # the value the cable notebook quotes
    assert r_jaxneuro == pytest.approx(r_neuron, rel=1e-6)
    # From the model itself, no simulation: the steady state's slope at every segment.
    r_model = jn.input_resistance(cell)
    assert float(r_model[cell.index("soma[0]", 0.5)]) == pytest.approx(r_neuron, rel=1e-6)


def test_soma_outline_as_a_chain_of_points_matches_neuron(neuron_h):
    # Import3d makes one soma section through the outline's points; neurites on its end
    # points join soma(0)/soma(1) starting there with their own diameter, those on inner
    # points join soma(0.5).
    h = neuron_h
    path = DATA / "chain_soma.swc"
    cell = jn.Cell.from_swc(path, Ra=100.0, cm=1.0, channels=[jn.channels.Leak(g=1e-4, e=-65.0)])
    ours = {s.name: s for s in swc_sections(read_swc(path))}
    secs = _import3d(h, path)
    try:
        assert sorted(secs) == sorted(cell.section_names) == sorted(
            ["soma[0]", "axon[0]", "dend[0]", "dend[1]", "apic[0]", "apic[1]", "apic[2]"])
        for name, s in secs.items():
            points = np.array([[s.x3d(i), s.y3d(i), s.z3d(i), s.diam3d(i)] for i in range(s.n3d())])
            np.testing.assert_allclose(points, np.column_stack([ours[name].xyz, ours[name].diam]), atol=1e-6)
            link = cell.parents[cell.section_index(name)]
            parent = s.parentseg()
            assert (None if link is None else (cell.section_names[link[0]], link[1])) == (
                None if parent is None else (parent.sec.name(), parent.x)), name
            _passive(h, s, cell.sections[cell.section_index(name)].nseg)
            np.testing.assert_allclose(np.asarray(cell.membrane_area[cell.segments(name)]),
                                       [seg.area() for seg in s], rtol=3e-7)
        v_n, v_j = _step(h, secs, cell, [(name, 0.5) for name in sorted(secs)])
    finally:
        for s in secs.values():
            h.delete_section(sec=s)
    assert np.min(v_n.max(axis=0)) > -60  # deflections everywhere
    # 1.6e-6 mV measured on a 68 mV deflection: NEURON's single-precision 3-D points.
    assert np.max(np.abs(v_j - v_n)) < 1e-5


def _grow_branch(rng, pts, parent, kind, max_points):
    """Append a random branch of 1 to ``max_points`` points of type ``kind`` to the SWC
    rows ``pts``, from point ``parent``, branching from anywhere a fifth of the time."""
    for _ in range(int(rng.integers(1, max_points + 1))):
        p = pts[parent - 1]
        pts.append([len(pts) + 1, kind, p[2] + float(rng.uniform(-20, 20)), p[3] + float(rng.uniform(-20, 20)),
                    p[4] + float(rng.uniform(-5, 5)), float(rng.uniform(0.3, 1.5)), parent])
        parent = len(pts)
        if rng.random() < 0.2:
            parent = int(rng.integers(1, len(pts) + 1))


def _random_swc(rng, path):
    """A random SWC tree: a soma of 1-5 points (a chain, NeuroMorpho's three points or
    branched) and neurites of types 2-4 leaving it and each other anywhere, some of
    them one point long."""
    pts = [[1, 1, 0.0, 0.0, 0.0, float(rng.uniform(3, 8)), -1]]
    n_soma = int(rng.integers(1, 6))
    shape = rng.choice(["chain", "three", "branched"]) if n_soma >= 3 else "chain"
    if shape == "three":
        r = pts[0][5]
        pts += [[2, 1, 0.0, -r, 0.0, r, 1], [3, 1, 0.0, r, 0.0, r, 1]]
    else:
        for k in range(1, n_soma):
            parent = len(pts) if shape == "chain" or k < 2 else int(rng.integers(1, len(pts) + 1))
            pts.append([len(pts) + 1, 1, 0.0, 4.0 * k, float(rng.uniform(-1, 1)), float(rng.uniform(2, 7)), parent])
    for _ in range(int(rng.integers(2, 7))):
        parent, kind = int(rng.integers(1, len(pts) + 1)), int(rng.choice([2, 3, 4]))
        _grow_branch(rng, pts, parent, kind, max_points=5)
    path.write_text("".join("%d %d %.3f %.3f %.3f %.3f %d\n" % tuple(p) for p in pts))


def _random_neurite_root_swc(rng, path):
    """A random SWC tree whose root is a neurite point (type 2-5): branches of the
    root's type or (a third of them) of types 1-4 leaving it (half of them) and each
    other anywhere, some of them one point long."""
    root_type = int(rng.choice([2, 3, 4, 5]))
    pts = [[1, root_type, 0.0, 0.0, 0.0, float(rng.uniform(0.5, 2)), -1]]
    for _ in range(int(rng.integers(2, 8))):
        parent = 1 if rng.random() < 0.5 else int(rng.integers(1, len(pts) + 1))
        kind = int(rng.choice([1, 2, 3, 4])) if rng.random() < 0.3 else root_type
        _grow_branch(rng, pts, parent, kind, max_points=4)
    path.write_text("".join("%d %d %.3f %.3f %.3f %.3f %d\n" % tuple(p) for p in pts))


# Random trees have sections of one point, which are dropped (as NEURON does) with a warning.
@pytest.mark.filterwarnings("ignore:.*of zero length dropped:RuntimeWarning")
@pytest.mark.parametrize("make", [_random_swc, _random_neurite_root_swc], ids=["soma_root", "neurite_root"])
def test_random_trees_split_into_sections_as_neurons_import3d(neuron_h, tmp_path, capfd, make):
    # Sections, their 3-D points (with the parent-point copies Import3d adds or leaves
    # out), parents and attachment points, for 40 random trees of each kind. (With no
    # soma at the root, branches on it join the root section at x = 0: 34 of those 40
    # came out wrong when every root with several children was a one-point "sphere"
    # section of its own.)
    for seed in range(40):
        path = tmp_path / f"tree{seed}.swc"
        make(np.random.default_rng(seed), path)
        _assert_sections_match(neuron_h, path, f"seed {seed}")
    capfd.readouterr()  # Import3d's notices about the one-point sections it drops


# Root point 1 of type 3 (or 2, 4) at the origin; branches along +x, -x and +y.
_PLUS_X = "2 {t} 20 0 0 1.8 1\n3 {t} 40 0 0 1.6 2\n"
_MINUS_X = "{i} {t} -20 0 0 1.5 1\n{j} {t} -40 0 0 1.5 {i}\n"
_PLUS_Y = "{i} {t} 0 20 0 1 1\n{j} {t} 0 40 0 1 {i}\n"
NEURITE_ROOTS = {
    # name: (SWC text, {section: (parent, x)} as Import3d makes them, root section's L)
    "one_child": ("1 3 0 0 0 2 -1\n" + _PLUS_X.format(t=3), {"dend[0]": None}, 40.0),
    "axon_root": ("1 2 0 0 0 1 -1\n" + _PLUS_X.format(t=2) + _MINUS_X.format(t=2, i=4, j=5),
                  {"axon[0]": None, "axon[1]": ("axon[0]", 0.0)}, 40.0),
    "apic_root": ("1 4 0 0 0 1 -1\n" + _PLUS_X.format(t=4) + _MINUS_X.format(t=4, i=4, j=5),
                  {"apic[0]": None, "apic[1]": ("apic[0]", 0.0)}, 40.0),
    "three_children": ("1 3 0 0 0 2 -1\n" + _PLUS_X.format(t=3) + _MINUS_X.format(t=3, i=4, j=5)
                       + _PLUS_Y.format(t=3, i=6, j=7),
                       {"dend[0]": None, "dend[1]": ("dend[0]", 0.0), "dend[2]": ("dend[0]", 0.0)}, 40.0),
    # The root's section takes in its first child's points whatever their type, and is
    # named after the root's type.
    "first_child_axon": ("1 3 0 0 0 2 -1\n" + _PLUS_X.format(t=2) + _MINUS_X.format(t=3, i=4, j=5),
                         {"dend[0]": None, "dend[1]": ("dend[0]", 0.0)}, 40.0),
    # A last child of another type ends the root section at the root: a one-point root
    # section, which Import3d makes a sphere (a cylinder, L = diam = 4 µm) of the
    # root's type, all children on its x = 0.
    "last_child_axon": ("1 3 0 0 0 2 -1\n" + _PLUS_X.format(t=3) + _MINUS_X.format(t=2, i=4, j=5),
                        {"dend[0]": None, "dend[1]": ("dend[0]", 0.0), "axon[0]": ("dend[0]", 0.0)}, 4.0),
    "last_child_soma": ("1 3 0 0 0 2 -1\n" + _PLUS_X.format(t=3) + _MINUS_X.format(t=1, i=4, j=5),
                        {"dend[0]": None, "dend[1]": ("dend[0]", 0.0), "soma[0]": ("dend[0]", 0.0)}, 4.0),
    # A one-point branch on the root is dropped.
    "one_point_branch": ("1 3 0 0 0 2 -1\n" + _PLUS_X.format(t=3) + "4 3 -20 0 0 1.5 1\n",
                         {"dend[0]": None, "dend[1]": ("dend[0]", 0.0)}, 40.0),
    # The root's first child forks at its own first point.
    "fork_next_to_root": ("1 3 0 0 0 2 -1\n" + _PLUS_X.format(t=3) + "4 3 20 20 0 1.5 2\n5 3 20 40 0 1.5 4\n"
                          + "6 3 -20 0 0 1 1\n7 3 -40 0 0 1 6\n",
                          {"dend[0]": None, "dend[1]": ("dend[0]", 1.0), "dend[2]": ("dend[0]", 1.0),
                           "dend[3]": ("dend[0]", 0.0)}, 20.0),
}


@pytest.mark.parametrize("name", NEURITE_ROOTS)
def test_neurite_roots_split_as_neurons_import3d(neuron_h, tmp_path, capfd, name):
    text, links, root_length = NEURITE_ROOTS[name]
    path = tmp_path / f"{name}.swc"
    path.write_text(text)
    ours = swc_sections(read_swc(path))
    names = [s.name for s in ours]
    assert {s.name: None if s.parent is None else (names[s.parent], s.parent_x) for s in ours} == links
    assert [s.length for s in ours if s.parent is None] == [pytest.approx(root_length)]
    _assert_sections_match(neuron_h, path, name)
    capfd.readouterr()


def test_branching_neurite_root_matches_neuron(neuron_h):
    # A dendrite point as the root, with two branches: Import3d makes it dend[0]'s first
    # point and hangs the other branch on dend[0](0). (A one-point root section, a
    # 4 µm "sphere" with both branches on its x = 0, before: +3.2 % membrane area,
    # section names shifted by one, 1.7 mV off.)
    h = neuron_h
    path = DATA / "dend_root.swc"
    cell = jn.Cell.from_swc(path, Ra=100.0, cm=1.0, channels=[jn.channels.Leak(g=1e-4, e=-65.0)], nseg=5)
    secs = _import3d(h, path)
    try:
        assert sorted(secs) == sorted(cell.section_names) == ["dend[0]", "dend[1]", "dend[2]", "dend[3]"]
        links = {name: None if link is None else (cell.section_names[link[0]], link[1])
                 for name, link in zip(cell.section_names, cell.parents)}
        assert links == {"dend[0]": None, "dend[1]": ("dend[0]", 1.0), "dend[2]": ("dend[0]", 1.0),
                         "dend[3]": ("dend[0]", 0.0)}
        area = np.asarray(cell.membrane_area)
        for name, sec in zip(cell.section_names, cell.sections):
            s = secs[name]
            _passive(h, s, nseg=5)
            parent = s.parentseg()
            assert links[name] == (None if parent is None else (parent.sec.name(), parent.x))
            assert float(sec.length) == pytest.approx(s.L, rel=1e-12), name
            np.testing.assert_allclose(area[cell.segments(name)], [seg.area() for seg in s], rtol=3e-7)
        assert float(secs["dend[0]"].L) == pytest.approx(40.0)
        assert area.sum() == pytest.approx(sum(seg.area() for s in secs.values() for seg in s), rel=1e-7)
        # 0.1 nA near the tip of one fork; the root point (the node at dend[0](0), where
        # dend[3] joins), the fork and the tips.
        v_n, v_j = _step(h, secs, cell, [("dend[1]", 0.9), ("dend[0]", 0.0), ("dend[0]", 0.1), ("dend[0]", 1.0),
                                         ("dend[2]", 0.9), ("dend[3]", 0.1), ("dend[3]", 0.9)],
                         site=("dend[1]", 0.9), amp=0.1)
    finally:
        for s in secs.values():
            h.delete_section(sec=s)
    assert np.min(v_n.max(axis=0)) > -20  # 55 mV deflections everywhere
    # 5e-7 mV measured (single-precision 3-D points); 1.7 mV before.
    assert np.max(np.abs(v_j - v_n)) < 1e-5


def test_both_soma_conventions_give_the_same_cell():
    a, b = (swc_sections(read_swc(p)) for p in FILES)
    assert [s.name for s in a] == [s.name for s in b]
    for sa, sb in zip(a, b):
        np.testing.assert_allclose(sa.xyz, sb.xyz)
        np.testing.assert_allclose(sa.diam, sb.diam)
    soma = a[0]
    assert soma.name == "soma[0]" and soma.length == pytest.approx(16.0) and np.all(soma.diam == 16.0)


def test_d_lambda_rule():
    secs = swc_sections(read_swc(FILES[0]))
    axon = next(s for s in secs if s.name == "axon[0]")
    # A uniform cylinder: λ_f = 1e5·sqrt(d/(4π·f·Ra·cm)).
    uniform = axon._replace(diam=np.full(len(axon.diam), 0.8))
    lam = 1e5 * math.sqrt(0.8 / (4 * math.pi * 100.0 * 100.0 * 1.0))
    assert lambda_f(uniform, 100.0, 100.0, 1.0) == pytest.approx(lam, rel=1e-12)
    nseg = d_lambda_nseg(uniform, 0.1, 100.0, 100.0, 1.0)
    assert nseg == int((axon.length / (0.1 * lam) + 0.9) / 2) * 2 + 1 == 21
    assert nseg % 2 == 1
    coarse = jn.Cell.from_swc(FILES[0], Ra=100.0, d_lambda=0.5)
    fine = jn.Cell.from_swc(FILES[0], Ra=100.0, d_lambda=0.05)
    assert all(c <= f for c, f in zip(coarse.nsegs, fine.nsegs)) and coarse.n_segments < fine.n_segments
    assert all(n % 2 == 1 for n in fine.nsegs)


def test_swc_cell_with_active_soma_and_axon_fires():
    hh = [jn.channels.HH()]
    passive = [jn.channels.Leak(g=1e-4, e=-65.0)]
    cell = jn.Cell.from_swc(FILES[0], Ra=100.0, channels={"soma": hh, "axon": hh, "dend": passive, 4: passive})
    trace = jn.simulate(cell, 15.0, dt=0.05, stimuli=[jn.StepCurrent(0.6, 1.0, 2.0, target=("soma[0]", 0.5))])
    t = np.asarray(trace.t)
    soma = crossings(t, np.asarray(trace.v[:, cell.index("soma[0]", 0.5)]))
    axon_mid = crossings(t, np.asarray(trace.v[:, cell.index("axon[0]", 0.5)]))
    axon_end = crossings(t, np.asarray(trace.v[:, cell.index("axon[0]", 1.0)]))
    assert len(soma) == len(axon_mid) == len(axon_end) == 1
    assert axon_end[0] > axon_mid[0] + 0.2  # the spike travels down the axon
    assert np.max(np.asarray(trace.v[:, cell.segments("dend[4]")])) < 0  # passive dendrites


def test_temperature_reaches_every_section_and_warns_once(neuron_h):
    """``from_swc(temperature=...)``: every section's channels run at it (HH soma and
    axon against NEURON at that ``celsius``), and a channel that keeps its own
    temperature is warned about once for the cell, not once per section (11 here;
    hundreds in a reconstruction)."""
    h = neuron_h
    hh, passive = [jn.channels.HH()], [jn.channels.Leak(g=1e-4, e=-65.0)]
    types = {"soma": hh, "axon": hh, "dend": passive, 4: passive}
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        cell = jn.Cell.from_swc(FILES[0], Ra=100.0, channels=types, temperature=16.3)
        own = jn.Cell.from_swc(FILES[0], Ra=100.0, channels=[jn.channels.INa_Ba2002(T=30.0)], temperature=36.0)
    assert len(own.sections) > 5
    assert len(seen) == 1 and str(seen[0].message).startswith("Cell: temperature=36 °C does not apply to INa_Ba2002")
    assert float(cell.temperature) == pytest.approx(16.3)
    assert [float(s.temperature) for s in own.sections] == [36.0] * len(own.sections)

    secs = _import3d(h, FILES[0])
    celsius = h.celsius
    try:
        for name, s in secs.items():
            _passive(h, s)
            if name.startswith(("soma", "axon")):
                s.uninsert("pas")
                s.insert("hh")
        assert [s.nseg for s in secs.values()] == [cell.sections[cell.section_index(n)].nseg for n in secs]
        h.celsius = 16.3
        v_n, v_j = _step(h, secs, cell, [("soma[0]", 0.5), ("axon[0]", 1.0), ("dend[4]", 0.5)], amp=0.6)
    finally:
        h.celsius = celsius
        for s in secs.values():
            h.delete_section(sec=s)
    t = np.arange(v_n.shape[0]) * 0.025
    spikes = crossings(t, v_n[:, 1])  # the axon's far end
    assert len(spikes) >= 1 and np.min(v_n.max(axis=0)) < -30  # a spike there; passive dendrites
    np.testing.assert_allclose(crossings(t, v_j[:, 1]), spikes, atol=1e-4)
    # 1.1e-5 mV measured (jaxneuro at 6.3 °C instead fires twice, the first 0.3 ms late).
    assert np.max(np.abs(v_j - v_n)) < 1e-3


def test_bad_swc_files(tmp_path):
    def write(text):
        p = tmp_path / "bad.swc"
        p.write_text(text)
        return p

    with pytest.raises(ValueError, match="parent id 7"):
        read_swc(write("1 1 0 0 0 5 -1\n2 3 10 0 0 1 7\n"))
    with pytest.raises(ValueError, match="unique"):
        read_swc(write("1 1 0 0 0 5 -1\n1 3 10 0 0 1 1\n"))
    with pytest.raises(ValueError, match="one root"):
        read_swc(write("1 1 0 0 0 5 -1\n2 3 10 0 0 1 -1\n"))
    with pytest.raises(ValueError, match="7 fields"):
        read_swc(write("1 1 0 0 0 5\n"))
    with pytest.raises(ValueError, match="radius"):
        read_swc(write("1 1 0 0 0 0 -1\n"))
    with pytest.raises(ValueError, match="own parent"):
        read_swc(write("1 1 0 0 0 5 -1\n2 3 10 0 0 1 2\n"))
    with pytest.raises(ValueError, match="not connected"):
        jn.Cell.from_swc(write("1 1 0 0 0 5 -1\n2 3 10 0 0 1 3\n3 3 20 0 0 1 2\n"))
    with pytest.raises(ValueError, match="no entry for SWC type 2"):
        jn.Cell.from_swc(FILES[0], channels={"soma": [], "dend": [], "apic": []})
    with pytest.raises(ValueError, match="d_lambda"):
        jn.Cell.from_swc(FILES[0], d_lambda=0.0)
    # Non-finite coordinates are named with their line (before: a NumPy warning, then
    # "cannot convert float NaN to integer").
    for bad in ("nan", "inf", "1e400"):
        with pytest.raises(ValueError, match=r"bad\.swc:2: point 2 has coordinates .*must be finite"):
            read_swc(write(f"1 1 0 0 0 5 -1\n2 3 {bad} 0 0 1 1\n"))
    with pytest.raises(ValueError, match=r"bad\.swc:1: .*'1\.5' is not a whole number"):
        read_swc(write("1.5 1 0 0 0 5 -1\n"))
    # An infinite radius is named with its line too (before: read, then a divide-by-zero
    # warning and "Cable.diam3d must be finite ... at index 1", with no file or line).
    for bad in ("inf", "1e400"):
        with pytest.raises(ValueError, match=r"bad\.swc:3: point 3 has radius inf; radii must be finite and > 0"):
            read_swc(write(f"1 1 0 0 0 5 -1\n2 3 5 0 0 1 1\n3 3 50 0 0 {bad} 2\n4 3 100 0 0 0.5 3\n"))
    # So is a parent cycle cut off from the root, found after reading (before: "SWC: points
    # [5, 6] ...", naming no file).
    with pytest.raises(ValueError, match=r"bad\.swc: points \[5, 6\] are not connected to the root"):
        jn.Cell.from_swc(write("1 1 0 0 0 5 -1\n2 3 5 0 0 1 1\n3 3 50 0 0 1 2\n4 3 100 0 0 0.5 3\n"
                               "5 3 150 0 0 0.5 6\n6 3 160 0 0 0.5 5\n"))
    # A misspelt channels key, or two keys for one type (before: ignored, or one won).
    with pytest.raises(ValueError, match=r"channels: key 'dendrite' is not an SWC type"):
        jn.Cell.from_swc(FILES[0], channels={"soma": [], "axon": [], "dendrite": [], "apic": []})
    with pytest.raises(ValueError, match=r"channels: keys \[1, 'soma'\] all name SWC type 1"):
        jn.Cell.from_swc(FILES[0], channels={1: [], "soma": [], "axon": [], "dend": [], "apic": []})
    # A valid type the file lacks is fine: one mapping serves many files.
    assert jn.Cell.from_swc(FILES[0], channels={"soma": [], "axon": [], "dend": [], "apic": [], 7: []}).n_segments > 0


def test_ids_written_as_floats_read_as_neuron_reads_them(tmp_path, neuron_h):
    """``1.0 1 0 0 0 5 -1.0``: Import3d reads such ids, types and parents as whole
    numbers, and so does read_swc (before: "invalid literal for int()")."""
    path = tmp_path / "floats.swc"
    path.write_text("1.0 1.0 0 0 0 5 -1.0\n2.0 3.0 0 0 0 1 1.0\n3.0 3.0 10 0 0 1 2.0\n")
    cell = jn.Cell.from_swc(path)
    secs = _import3d(neuron_h, path)
    try:
        assert sorted(secs) == sorted(cell.section_names) == ["dend[0]", "soma[0]"]
        for name, sec in secs.items():
            assert float(cell.sections[cell.section_names.index(name)].length) == pytest.approx(sec.L, rel=1e-6)
    finally:
        for sec in secs.values():
            neuron_h.delete_section(sec=sec)


def test_swc_cell_benchmark_smoke(tmp_path, neuron_h):
    # benchmarks/swc_cell.py on a small random morphology: its own NEURON comparison
    # holds, and it leaves no sections behind in this process's NEURON.
    sections_before = len(list(neuron_h.allsec()))
    import importlib.util
    import json

    path = Path(__file__).parents[1] / "benchmarks" / "swc_cell.py"
    spec = importlib.util.spec_from_file_location("swc_cell", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "swc.json"
    mod.main(["--branches", "3", "--t1", "5", "--json", str(out)])
    result = json.loads(out.read_text())
    assert result["sections"] > 3 and result["3d_gradient3_s"] > 0 and result["cylinders_gradient_s"] > 0
    assert result["max_dv_vs_neuron_mV"] < 1e-5
    assert len(list(neuron_h.allsec())) == sections_before


def test_branch_at_a_neurites_first_point_and_custom_types_match_neuron(neuron_h, tmp_path):
    # A neurite branching at its first point: Import3d gives the branch the parent
    # dend[0](0), which is where dend[0] joins the soma, so the branch joins there too.
    # Types other than 1-4 are named as Import3d names them (dend_5, dend_7).
    path = tmp_path / "prox.swc"
    path.write_text("1 1 0 0 0 5 -1\n2 1 0 -5 0 5 1\n3 1 0 5 0 5 1\n4 3 10 0 0 1 1\n5 3 30 0 0 1 4\n"
                    "6 3 60 0 0 1 5\n7 3 10 20 0 0.8 4\n8 3 10 50 0 0.8 7\n"
                    "9 5 -10 0 0 0.7 1\n10 5 -40 0 0 0.7 9\n11 7 0 0 10 0.6 1\n12 7 0 0 40 0.6 11\n")
    h = neuron_h
    cell = jn.Cell.from_swc(path, Ra=100.0, cm=1.0, channels=[jn.channels.Leak(g=1e-4, e=-65.0)])
    secs = _import3d(h, path)
    try:
        assert sorted(secs) == sorted(cell.section_names)
        assert {"dend_5[0]", "dend_7[0]"} <= set(cell.section_names)
        assert secs["dend[1]"].parentseg().sec.name() == "dend[0]" and secs["dend[1]"].parentseg().x == 0.0
        for s in secs.values():
            _passive(h, s)
        v_n, v_j = _step(h, secs, cell, [("soma[0]", 0.5), ("dend[1]", 0.5), ("dend[0]", 0.5),
                                         ("dend_5[0]", 0.5), ("dend_7[0]", 0.9)])
    finally:
        for s in secs.values():
            h.delete_section(sec=s)
    assert np.min(v_n.max(axis=0)) > -50
    assert np.max(np.abs(v_j - v_n)) < 1e-5  # (0.44 mV at the soma before)


def test_fixed_nseg_per_section_matches_neuron(neuron_h):
    """from_swc(nseg=3): three segments in every section (NEURON's sec.nseg = 3 after
    Import3d), the same voltages as NEURON; nseg and d_lambda together are refused."""
    h = neuron_h
    path = FILES[0]
    cell = jn.Cell.from_swc(path, Ra=100.0, cm=1.0, channels=[jn.channels.Leak(g=1e-4, e=-65.0)], nseg=3)
    assert all(sec.nseg == 3 for sec in cell.sections)
    secs = _import3d(h, path)
    try:
        for s in secs.values():
            _passive(h, s, nseg=3)
        v_n, v_j = _step(h, secs, cell, [("soma[0]", 0.5), ("dend[4]", 0.5), ("apic[2]", 0.9)])
    finally:
        for s in secs.values():
            h.delete_section(sec=s)
    assert np.min(v_n.max(axis=0)) > -40
    assert np.max(np.abs(v_j - v_n)) < 1e-6
    with pytest.raises(ValueError, match="give nseg .* or d_lambda"):
        jn.Cell.from_swc(path, nseg=3, d_lambda=0.1)
    with pytest.raises(ValueError, match="nseg expects a positive integer"):
        jn.Cell.from_swc(path, nseg=0)


def test_a_zero_length_section_is_dropped_with_a_warning(tmp_path):
    # As NEURON's Import3d drops it; it went without a word.
    path = tmp_path / "zerolen.swc"
    path.write_text("1 1 0 0 0 5 -1\n2 3 0 5 0 1 1\n3 3 0 5 0 1 2\n")
    # The warning names the file, as the reader's errors do (it said "SWC:").
    with pytest.warns(RuntimeWarning, match=r"zerolen\.swc: 1 section\(s\) of zero length dropped \(points \[2, 3\]"):
        cell = jn.Cell.from_swc(path)
    assert cell.section_names == ("soma[0]",)


def test_a_file_with_a_byte_order_mark_reads_as_without(tmp_path):
    # Some Windows tools start a UTF-8 file with a byte-order mark (before: "could not
    # convert string to float: '\ufeff1'").
    text = "# a comment\n1 1 0 0 0 5 -1\n2 3 5 0 0 1 1\n3 3 25 0 0 0.5 2\n"
    plain, bom = tmp_path / "plain.swc", tmp_path / "bom.swc"
    plain.write_bytes(text.encode())
    bom.write_bytes(b"\xef\xbb\xbf" + text[len("# a comment\n"):].encode())  # the mark on a point's line
    assert read_swc(bom) == read_swc(plain)
    a, b = jn.Cell.from_swc(plain), jn.Cell.from_swc(bom)
    assert a.section_names == b.section_names == ("soma[0]", "dend[0]")
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_a_zero_radius_is_refused_saying_what_neuron_does(tmp_path):
    # NEURON's Import3d accepts a point of radius 0 (a zero-area point); jaxneuro refuses
    # it, and says so and what to do (before: only "radii must be finite and > 0 µm").
    path = tmp_path / "zero.swc"
    path.write_text("1 1 0 0 0 5 -1\n2 3 5 0 0 0 1\n")
    with pytest.raises(ValueError, match=r"zero\.swc:2: point 2 has radius 0\.0; radii must be finite and > 0 µm; "
                                         r"NEURON's Import3d would accept it as a zero-area point .*fix the "
                                         r"point's radius in the file"):
        jn.Cell.from_swc(path)
    # A negative radius is no zero-area point: the message does not say so.
    path.write_text("1 1 0 0 0 5 -1\n2 3 5 0 0 -1 1\n")
    with pytest.raises(ValueError, match=r"radius -1\.0; radii must be finite and > 0 µm$"):
        read_swc(path)
