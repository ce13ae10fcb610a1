"""Cables given by 3-D points: frusta areas and axial resistances, as NEURON computes them."""

import math

import equinox as eqx
import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import pytest
import saiunit as u

import jaxneuro as jn
from conftest import run_neuron

# A tapering, bulging section: 3-D points not on the segments' edges, one repeated.
ARC = (0.0, 13.0, 40.0, 40.0, 71.5, 120.0, 160.0)
DIAM3D = (3.0, 2.625, 2.25, 2.25, 2.75, 1.375, 1.0)  # exact in single precision, as NEURON keeps them
LEAK = dict(g=1e-4, e=-65.0)


def tapered(nseg=5, diam3d=DIAM3D, **kw):
    return jn.Cable(arc3d=ARC, diam3d=jnp.asarray(diam3d), Ra=120.0, nseg=nseg,
                    channels=[jn.channels.Leak(**LEAK)], **kw)


def test_constant_diameter_points_are_the_cylinder():
    pts = jn.Cable(arc3d=(0.0, 30.0, 30.0, 75.0, 200.0), diam3d=jnp.full(5, 1.7), Ra=90.0, nseg=7)
    cyl = jn.Cable(length=200.0, diam=1.7, Ra=90.0, nseg=7)
    assert float(pts.length) == pytest.approx(200.0)
    np.testing.assert_allclose(pts.membrane_area, cyl.membrane_area, rtol=1e-12)
    for a, b in zip(pts.half_resistances(), cyl.half_resistances()):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    np.testing.assert_allclose(pts.segment_diameters, 1.7, rtol=1e-12)


def test_one_frustum_by_hand():
    # One segment, one frustum from d1 to d2: lateral area pi/2 (d1 + d2) sqrt(L^2 + (d1 - d2)^2/4);
    # halves meet at the mean diameter, each with resistance 4 Ra (L/2) / (pi d_end d_mid).
    d1, d2, L, Ra = 4.0, 1.0, 50.0, 100.0
    cab = jn.Cable(arc3d=(0.0, L), diam3d=jnp.asarray([d1, d2]), Ra=Ra)
    area = math.pi / 2 * (d1 + d2) * math.sqrt(L**2 + (d1 - d2) ** 2 / 4)
    assert float(cab.membrane_area[0]) == pytest.approx(area, rel=1e-12)
    dm = (d1 + d2) / 2
    left, right = cab.half_resistances()
    assert float(left[0]) == pytest.approx(4 * Ra * (L / 2) / (math.pi * d1 * dm) * 1e-2, rel=1e-12)
    assert float(right[0]) == pytest.approx(4 * Ra * (L / 2) / (math.pi * dm * d2) * 1e-2, rel=1e-12)
    assert float(cab.segment_diameters[0]) == pytest.approx(dm, rel=1e-12)


# The first diameter changes at repeated points, on a segment edge (x = 0.25, nseg 4) and
# inside a segment; NEURON counts the annulus there as membrane.
STEPPED = ((0.0, 20.0, 20.0, 50.0, 50.0, 80.0), (2.0, 2.0, 1.0, 1.0, 1.5, 1.25), 4)


@pytest.mark.parametrize("arc, diam3d, nseg, length", [(ARC, DIAM3D, 5, None), STEPPED + (None,), (ARC, DIAM3D, 5, 250.0)],
                         ids=["tapered", "stepped", "stretched"])
def test_cable_with_3d_points_matches_neuron(neuron_h, arc, diam3d, nseg, length):
    # "stretched": another length scales the points along the path, as setting L does
    # in NEURON (it was refused, and a length set with eqx.tree_at was ignored).
    h = neuron_h
    cab = jn.Cable(arc3d=arc, diam3d=jnp.asarray(diam3d), Ra=120.0, nseg=nseg,
                   channels=[jn.channels.Leak(**LEAK)], length=length)
    sec = h.Section(name="with_points")
    try:
        for a, d in zip(arc, diam3d):  # along x, so arc3d = x
            h.pt3dadd(a, 0.0, 0.0, d, sec=sec)
        if length is not None:
            sec.L = length
            assert sec.arc3d(sec.n3d() - 1) == pytest.approx(length)
        sec.Ra, sec.cm, sec.nseg = 120.0, 1.0, nseg
        sec.insert("pas")
        for seg in sec:
            seg.pas.g, seg.pas.e = LEAK["g"], LEAK["e"]
        np.testing.assert_allclose(cab.membrane_area, [seg.area() for seg in sec], rtol=1e-12)
        np.testing.assert_allclose(cab.segment_diameters, [seg.diam for seg in sec], rtol=1e-12)
        left, right = (np.asarray(r) for r in cab.half_resistances())
        np.testing.assert_allclose([seg.ri() for seg in sec], np.concatenate([[left[0]], left[1:] + right[:-1]]),
                                   rtol=1e-12)
        stim = h.IClamp(sec(0.1))
        stim.amp, stim.delay, stim.dur = 0.05, 1.0, 10.0
        _, vecs = run_neuron(h, 15.0, refs=[sec(x)._ref_v for x in (0.1, 0.5, 0.9)])
        v_n = np.array(vecs).T
    finally:
        h.delete_section(sec=sec)
    trace = jn.simulate(cab, 15.0, stimuli=[jn.StepCurrent(0.05, 1.0, 10.0, target=0.1)])
    v_j = np.asarray(trace.v)[:, [cab.index(x) for x in (0.1, 0.5, 0.9)]]
    assert np.ptp(v_n) > 5.0  # a real deflection
    assert np.max(np.abs(v_j - v_n)) < 1e-9


def test_gradient_in_the_3d_diameters_and_length_matches_finite_differences():
    def v_end(diam3d, length=160.0):
        cab = eqx.tree_at(lambda c: c.length, tapered(nseg=5, diam3d=diam3d), length)
        tr = jn.simulate(cab, 5.0, stimuli=[jn.StepCurrent(0.05, 0.5, 10.0, target=0.1)], save_every=5.0)
        return tr.v[-1, -1]

    d0 = jnp.asarray(DIAM3D)
    g = np.asarray(jax.grad(v_end)(d0))
    assert np.all(np.isfinite(g)) and np.abs(g).max() > 1e-3
    eps = 1e-5
    fd = [(v_end(d0.at[i].add(eps)) - v_end(d0.at[i].add(-eps))) / (2 * eps) for i in range(len(DIAM3D))]
    np.testing.assert_allclose(g, np.asarray(fd), rtol=1e-5, atol=1e-8)
    # The length, a leaf: its gradient was exactly 0 (the points' path length was used).
    g_length = float(jax.grad(lambda L: v_end(d0, L))(160.0))
    fd_length = float((v_end(d0, 160.0 + 1e-3) - v_end(d0, 160.0 - 1e-3)) / 2e-3)
    assert abs(g_length) > 1e-3
    assert g_length == pytest.approx(fd_length, rel=1e-5)


def test_quantities_and_a_given_length():
    a = jn.Cable(arc3d=u.math.asarray(ARC) * u.um, diam3d=u.math.asarray(DIAM3D) * u.um, length=160.0, nseg=3)
    b = jn.Cable(arc3d=ARC, diam3d=jnp.asarray(DIAM3D), nseg=3)
    np.testing.assert_allclose(a.membrane_area, b.membrane_area, rtol=1e-12)
    c = jn.Cable(arc3d=tuple(x + 5.0 for x in ARC), diam3d=jnp.asarray(DIAM3D), nseg=3)  # offset path
    np.testing.assert_allclose(c.membrane_area, b.membrane_area, rtol=1e-12)


@pytest.mark.parametrize("kwargs, match", [
    (dict(arc3d=ARC), "arc3d.*diam3d"),
    (dict(diam3d=jnp.asarray(DIAM3D)), "arc3d.*diam3d"),
    (dict(arc3d=ARC, diam3d=jnp.asarray(DIAM3D), diam=2.0), "diam or diam3d"),
    (dict(arc3d=ARC[:-1], diam3d=jnp.asarray(DIAM3D)), "diam3d.*one diameter per 3-D point"),
    (dict(arc3d=(0.0, 10.0, 5.0), diam3d=jnp.ones(3)), "arc3d.*non-decreasing"),
    (dict(arc3d=(3.0, 3.0), diam3d=jnp.ones(2)), "arc3d.*positive length"),
    (dict(arc3d=(0.0,), diam3d=jnp.ones(1)), "arc3d.*at least two"),
    (dict(arc3d=ARC, diam3d=jnp.asarray(DIAM3D).at[2].set(0.0)), "diam3d.*> 0"),
    (dict(arc3d=u.math.asarray(ARC) * u.ms, diam3d=jnp.asarray(DIAM3D)), "arc3d.*length"),
    (dict(), "length and diam"),
    (dict(length=100.0), "length and diam"),
])
def test_bad_3d_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        jn.Cable(**kwargs)


def _loop_primitives(jaxpr, inside=False, found=None):
    """Names of the primitives evaluated inside time loops (while/scan bodies)."""
    found = set() if found is None else found
    for eqn in jaxpr.eqns:
        if inside:
            found.add(eqn.primitive.name)
        loop = eqn.primitive.name in ("while", "scan")
        for sub in jax.extend.core.jaxprs_in_params(eqn.params):
            _loop_primitives(sub, inside or loop, found)
    return found


def test_geometry_is_computed_once_per_run_not_per_step():
    # The frusta's slant needs a square root: present in the program, absent from its
    # loops (simulate runs the time loop on cable.precomputed()). Also in the gradient,
    # and in steady_state's iterations.
    cab = tapered(nseg=5)
    stim = [jn.StepCurrent(0.05, 0.5, 10.0, target=0.1)]
    forward = jax.make_jaxpr(lambda c: jn.simulate(c, 1.0, stimuli=stim).v)(cab).jaxpr
    backward = jax.make_jaxpr(jax.grad(lambda c: jn.simulate(c, 1.0, stimuli=stim).v.sum()))(cab).jaxpr
    rest = jax.make_jaxpr(lambda c: jn.steady_state(c, 0.01).v)(cab).jaxpr  # Newton iterations
    for jaxpr in (forward, backward, rest):
        assert "sqrt" in _loop_primitives(jaxpr, inside=True)  # the whole program has it
        assert "sqrt" not in _loop_primitives(jaxpr)  # its loops do not


def test_precomputed_cell_keeps_its_geometry_and_checks_it():
    cell = jn.Cell([tapered(nseg=3, name="a"), tapered(nseg=2, name="b")], parents=[None, "a"])
    pre = cell.precomputed()
    assert cell.geometry is None and pre.precomputed() is pre
    np.testing.assert_array_equal(pre.membrane_area, cell.membrane_area)
    np.testing.assert_array_equal(pre.voltage_coupling().g, cell.voltage_coupling().g)
    assert isinstance(tapered().precomputed(), jn.Cell)  # a cable runs as its one-section cell
    with pytest.raises(ValueError, match="Cell.geometry"):
        jn.Cell([tapered(nseg=3)], geometry=pre.geometry)  # 5 segments' geometry for 3


def test_cells_mixing_cylinders_and_3d_sections_keep_each_sections_geometry():
    # 3-D sections are computed together, cylinders one by one: put back in order.
    secs = [tapered(nseg=3, name="a"),
            jn.Cable(length=50.0, diam=jnp.asarray([1.0, 1.5]), Ra=80.0, nseg=2, name="b"),
            jn.Cable(arc3d=STEPPED[0], diam3d=jnp.asarray(STEPPED[1]), Ra=jnp.asarray([90.0, 100.0, 110.0, 120.0]),
                     nseg=4, name="c"),
            jn.Cable(length=30.0, diam=2.0, nseg=1, name="d")]
    cell = jn.Cell(secs, parents=[None, "a", ("a", 0.5), "c"])
    # Equal to rounding: the cell's areas come from one compiled program, each section's
    # from its own, and XLA may contract a multiply-add in one and not the other.
    np.testing.assert_allclose(cell.membrane_area, jnp.concatenate([s.membrane_area for s in secs]), rtol=1e-15)
    left, right = zip(*(s.half_resistances() for s in secs))
    np.testing.assert_allclose(cell.precomputed().geometry.half_resistance, jnp.concatenate(left + right), rtol=1e-15)


@pytest.mark.parametrize("section", [tapered, lambda **kw: jn.Cable(length=160.0, diam=2.0, **kw)],
                         ids=["3d", "cylinder"])
def test_geometry_is_one_computation_however_many_sections(section):
    # Hundreds of SWC sections must not mean hundreds of copies of the frusta (or
    # cylinder) arithmetic for XLA to compile: the program is the same size for 3 or 30
    # sections.
    def size(n_sections):
        secs = [section(nseg=3, name=f"s{i}") for i in range(n_sections)]
        cell = jn.Cell(secs, parents=[None] + [f"s{i - 1}" for i in range(1, n_sections)])
        jaxpr = jax.make_jaxpr(lambda c: c.precomputed().geometry)(cell).jaxpr
        return len(jaxpr.eqns)

    assert size(30) == size(3)
