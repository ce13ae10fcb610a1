"""Building a Cell stays linear in its sections (counted work, no timing)."""

from unittest import mock

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
