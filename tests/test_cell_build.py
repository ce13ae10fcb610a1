"""Building a Cell stays linear in its sections (counted work, no timing)."""

from unittest import mock

import jax.numpy as jnp
import numpy as np
import pytest

import jaxneuro as jn
from jaxneuro.morphology.cable import Cable
from jaxneuro.morphology.cell import _layout, _resolve_link


def _binary_tree(n, by_name):
    """A soma and ``n`` dendrites of 3 segments: 4 on the soma, then two per dendrite."""
    secs = [jn.Cable(20.0, 20.0, name="soma")] + [jn.Cable(50.0, 1.0, nseg=3, name=f"d{i}") for i in range(n)]
    if by_name:
        parents = [None] + [("soma", 1.0) if i < 4 else (f"d{(i - 4) // 2}", 1.0) for i in range(n)]
    else:
        parents = [None] + [(0, 1.0) if i < 4 else ((i - 4) // 2 + 1, 1.0) for i in range(n)]
    return secs, parents


def _write_swc(path, depth):
    """A binary tree of ``depth`` levels, 3 points per branch, on a one-point soma:
    ``2**(depth+1) - 1`` sections."""
    rng = np.random.default_rng(0)
    lines, nid, stack = ["1 1 0 0 0 8 -1"], 1, [(1, np.zeros(3), depth)]
    while stack:
        parent, pos, d = stack.pop()
        if d == 0:
            continue
        for _ in range(2):
            p, pp = parent, pos.copy()
            for _ in range(3):
                nid += 1
                pp = pp + rng.normal(0, 10, 3) + [10, 0, 0]
                lines.append(f"{nid} 3 {pp[0]:.2f} {pp[1]:.2f} {pp[2]:.2f} 0.5 {p}")
                p = nid
            stack.append((p, pp, d - 1))
    path.write_text("\n".join(lines) + "\n")
    return path


def _cable_reads(build):
    """Attribute reads on Cable objects while ``build()`` runs. A scan over all the
    sections for each section (a name lookup, or a call of a method of the cell, which
    equinox binds by flattening the whole cell) reads every section's fields once per
    section: the count then grows with the square of the sections."""
    reads = [0]
    own = Cable.__getattribute__

    def counted(self, name):
        reads[0] += 1
        return own(self, name)

    with mock.patch.object(Cable, "__getattribute__", counted):
        build()
    return reads[0]


@pytest.mark.parametrize("by_name", [True, False])
def test_cell_construction_linear_in_sections(by_name):
    # Before: ~1000 reads per section at 1000 sections (2000 sections took 20 s to build);
    # now ~11 per section at any size. 4x the sections must cost about 4x the reads, not 16x.
    reads = {}
    for n in (100, 400):
        secs, parents = _binary_tree(n, by_name)
        reads[n] = _cable_reads(lambda: jn.Cell(secs, parents=parents))
    assert reads[400] < 5 * reads[100], reads


def test_from_swc_linear_in_sections(tmp_path):
    reads, sizes = {}, {}
    for depth in (5, 7):  # 63 and 255 sections
        path = _write_swc(tmp_path / f"tree{depth}.swc", depth)
        cells = []
        reads[depth] = _cable_reads(lambda: cells.append(jn.Cell.from_swc(path)))
        sizes[depth] = len(cells[0].sections)
    assert sizes == {5: 63, 7: 255}
    assert reads[7] < 5 * reads[5], reads


def test_layout_resolves_x0_chains():
    # _layout resolves a child at x = 0 from its parent's already resolved link (walking up
    # the tree for each section was quadratic along a chain of x = 0 links): the same
    # circuit as with every link walked up first, here for a chain of x = 0 links with
    # branches off it at x = 0, 0.5 and 1.
    secs = [jn.Cable(20.0, 20.0, name="soma")] + [jn.Cable(50.0, 1.0, nseg=3, name=f"c{i}") for i in range(12)]
    parents = [None, ("soma", 0.5), ("c0", 0.0), ("c1", 0.0), ("c2", 1.0), ("c3", 0.0), ("c2", 0.0),
               ("c5", 0.5), ("c6", 0.0), ("c7", 0.0), ("soma", 0.0), ("c9", 0.0), ("c8", 0.0)]
    cell = jn.Cell(secs, parents=parents)
    walked = tuple(None if link is None else _resolve_link(cell.parents, *link) for link in cell.parents)
    assert walked != cell.parents
    ours, reference = _layout(cell.nsegs, cell.parents), _layout(cell.nsegs, walked)
    for name in ("offsets", "parent", "own", "partner", "segment_nodes"):
        np.testing.assert_array_equal(getattr(ours, name), getattr(reference, name), err_msg=name)
    assert ours.ends == reference.ends == {(3, 1.0): [4, 5], (0, 0.0): [10, 11]}


class _CountedTuple(tuple):
    """A tuple counting its item reads."""

    reads = 0

    def __getitem__(self, k):
        type(self).reads += 1
        return super().__getitem__(k)


def test_layout_linear_along_x0_chains():
    # Each section of a chain joined at its parent's x = 0 joins where the chain's first
    # joins the root: resolving that by walking up for each section read the chain's
    # links once per section (quadratic). Nodes of the new nseg values are not cached yet.
    reads = {}
    for n in (50, 200):
        parents = _CountedTuple([None] + [(k, 0.0) for k in range(n - 1)])
        _CountedTuple.reads = 0
        lay = _layout((7,) * n, parents)
        reads[n] = _CountedTuple.reads
        assert lay.ends == {(0, 0.0): list(range(1, n))}
    assert reads[200] < 5 * reads[50], reads


def _chain(n):
    """A soma and ``n`` dendrites of 2 segments, each on the previous one's end."""
    secs = [jn.Cable(20.0, 20.0, name="soma")] + [jn.Cable(20.0, 1.0, nseg=2, name=f"d{i}") for i in range(n)]
    return jn.Cell(secs, parents=[None, ("soma", 1.0)] + [(f"d{i}", 1.0) for i in range(n - 1)])


def test_recording_and_stimulating_at_every_section_stay_linear():
    # A place of record={name: [...]} bound a method of the cell per place (hasattr and
    # cell.index: equinox flattens the whole cell to bind one), and looked its names up
    # again: recording at every section of a 1000-section cell took 10-27 s a call. A
    # stimulus at many locations was one scatter per location in the step (300
    # sections: 28 s to compile). Counted as reads of the sections' fields.
    from jaxneuro.solve.simulate import recorded_indices

    reads = {}
    for n in (50, 200):
        cell = _chain(n)
        places = [(f"d{i}", 0.5) for i in range(n)]
        reads[n] = _cable_reads(lambda: recorded_indices(cell, "v", places))
        stim = jn.StepCurrent(jnp.ones(n), 0.0, 1.0, target=places)
        reads[n] += _cable_reads(lambda: stim.check_placement(cell) or cell.place_current(stim.target, stim.amp))
    assert reads[200] < 5 * reads[50], reads


def test_a_stimulus_at_many_locations_is_the_sum_of_one_at_each():
    # Locations inside sections and at section ends, where NEURON's zero-area node
    # shares the current with the children's first segments (by the conductances of the
    # half segments): the same currents as one stimulus per location.
    cell = _chain(6)
    places = [("soma", 0.5), ("d0", 1.0), ("d2", 0.3), ("d5", 1.0), ("soma", 1.0), ("d3", 0.0), ("d1", 0.75)]
    amps = jnp.asarray([0.1, -0.2, 0.3, 0.05, 0.4, 0.7, -0.15])
    together = cell.place_current(jn.StepCurrent(amps, 0.0, 1.0, target=places).target, amps)
    one_each = sum(cell.place_current(jn.StepCurrent(float(a), 0.0, 1.0, target=p).target, a)
                   for p, a in zip(places, amps))
    np.testing.assert_allclose(together, one_each, rtol=1e-14, atol=1e-16)
    assert float(jnp.sum(together)) == pytest.approx(float(jnp.sum(amps)))  # no current lost at the nodes
    # The end of d0 joins d1: its current is split between d0's last and d1's first segment.
    d0_end, d1_first = cell.index("d0", 0.75), cell.segments("d1")[0]
    alone = cell.place_current(jn.StepCurrent(1.0, 0.0, 1.0, target=("d0", 1.0)).target, 1.0)
    assert float(alone[d0_end]) == pytest.approx(0.5) and float(alone[d1_first]) == pytest.approx(0.5)
    rec = jn.simulate(cell, 1.0, record={"v": places}).v
    full = jn.simulate(cell, 1.0).v
    np.testing.assert_array_equal(rec, full[:, [cell.index(*p) for p in places]])


def test_a_cells_layout_of_known_values_equals_the_traced_one():
    # Known per-section values are laid out on the host (jnp.stack of one operand per
    # section was compiled for each new count); under jit the same values.
    import jax

    secs = [jn.Cable(10.0 + i, 1.0 + 0.1 * i, nseg=1 + i % 3, Ra=100.0 + i, channels=[jn.channels.HH(gnabar=0.1 + 0.01 * i)],
                     name=f"s{i}") for i in range(7)]
    cell = jn.Cell(secs, parents=[None] + [(f"s{i}", 1.0) for i in range(6)])
    eager = cell.precomputed()
    traced = jax.jit(lambda c: c.precomputed())(cell)
    for a, b in zip(jax.tree.leaves(eager), jax.tree.leaves(traced)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-15)
