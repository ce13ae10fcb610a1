"""Networks with multicompartment cells: the cells' axial coupling stays implicit, and
gap junctions onto dendritic locations equal the same circuit built as one cell."""

import math

import numpy as np
import pytest

import jaxneuro as jn

RA = 100.0


def dendritic_cell():
    hh = jn.channels.HH()
    soma = jn.Cable(20.0, 20.0, Ra=RA, nseg=1, channels=[hh], name="soma")
    dend = jn.Cable(400.0, 1.0, Ra=RA, nseg=20, channels=[jn.channels.Leak(g=1e-4, e=-65.0)], name="dend")
    return soma, dend


def test_network_of_one_cell_equals_the_cell():
    soma, dend = dendritic_cell()
    cell = jn.Cell([soma, dend], parents=[None, ("soma", 1.0)])
    stim = jn.StepCurrent(0.3, 1.0, 3.0, target=("soma", 0.5))
    alone = jn.simulate(cell, 20.0, stimuli=[stim])
    net = jn.Network({"c": cell}, [])
    inside = jn.simulate(net, 20.0, stimuli=[jn.StepCurrent(0.3, 1.0, 3.0, target=("c", [cell.index("soma", 0.5)]))])
    np.testing.assert_allclose(inside["c"].v, alone.v, atol=1e-9)


@pytest.mark.parametrize("dt,tree_solve", [(0.025, "hines"), (0.1, "hines"), (0.1, "paths")])
def test_gap_onto_a_dendrite_equals_an_axial_branch(dt, tree_solve):
    """A passive compartment joined by a gap junction g to a thin dendrite's segment is
    the same circuit as a one-segment branch whose half-segment resistance is 1/g. The
    gap is 100x the small compartment's leak, and the dendrite is stiff: all of it
    must be solved implicitly to agree at dt = 0.1."""
    soma, dend = dendritic_cell()
    cell = jn.Cell([soma, dend], parents=[None, ("soma", 1.0)])
    length, diam = 10.0, 2.0  # the small compartment
    g_leak = 1e-4 * math.pi * length * diam * 1e-2  # µS
    g_gap = 100 * g_leak
    small = jn.Compartment(length=length, diam=diam, channels=[jn.channels.Leak(g=1e-4, e=-65.0)])
    x = 0.725  # inside segment 14 of 20
    k = cell.index("dend", x)
    net = jn.Network({"cell": cell, "small": small},
                     [jn.SymmetricGapJunction(("cell", ("dend", x)), "small", jn.conn.one_to_one, g_gap)])
    assert int(net.couplings[0].pre_index[0]) == k  # the location resolves to its segment
    stimuli = [jn.StepCurrent(0.3, 1.0, 3.0, target=("cell", [cell.index("soma", 0.5)])),
               jn.StepCurrent(0.02, 8.0, 5.0, target="small")]
    solver = jn.StaggeredEuler(tree_solve=tree_solve)
    got = jn.simulate(net, 25.0, dt=dt, stimuli=stimuli, solver=solver)

    # The same circuit as one cell: the branch's half-segment resistance is 1/g_gap.
    ra_branch = (1.0 / g_gap) / (1e-2 * (length / 2) / (math.pi * diam**2 / 4))  # Ω·cm (Ω·cm·µm/µm² = 1e-2 MΩ)
    branch = jn.Cable(length, diam, Ra=ra_branch, nseg=1, channels=[jn.channels.Leak(g=1e-4, e=-65.0)], name="small")
    whole = jn.Cell([soma, dend, branch], parents=[None, ("soma", 1.0), ("dend", x)])
    ref = jn.simulate(whole, 25.0, dt=dt, solver=solver,
                      stimuli=[jn.StepCurrent(0.3, 1.0, 3.0, target=("soma", 0.5)),
                               jn.StepCurrent(0.02, 8.0, 5.0, target=("small", 0.5))])
    np.testing.assert_allclose(got["cell"].v, np.asarray(ref.v)[:, :21], atol=1e-6)
    np.testing.assert_allclose(np.asarray(got["small"].v), np.asarray(ref.v)[:, 21], atol=1e-6)
    assert float(np.max(got["cell"].v)) > 0  # the soma spiked: the run is not trivial


def test_locations_need_a_cell():
    with pytest.raises(ValueError, match=r"locations \(section, x\) need a cell"):
        jn.Network({"a": jn.LIF(n=3), "b": jn.LIF(n=3)},
                   [jn.SymmetricGapJunction(("a", ("dend", 0.5)), "b", jn.conn.one_to_one, 0.01)])


def test_couplings_at_a_section_end_are_refused_where_neuron_has_a_node():
    """A section's end is NEURON's zero-area node, which the cells do not hold. A
    synapse or gap junction there would act on the end segment (an ExpSyn at a
    dendrite's x = 1 was 0.85 mV off NEURON), so those sides are refused, naming the end
    segment's centre; a spike source at an end without children reads the end segment's
    voltage, which is the node's, and is allowed; one at an end where children join is
    refused."""
    soma, dend = dendritic_cell()
    cell = jn.Cell([soma, dend], parents=[None, ("soma", 1.0)])
    small = jn.Compartment(length=10.0, diam=2.0, channels=[jn.channels.Leak(g=1e-4, e=-65.0)])
    node = r"section's end, NEURON's zero-area node.*e\.g\. \('dend', 0\.975\)"
    with pytest.raises(ValueError, match=r"coupling side \('cell', \('dend', 1\.0\)\): x = 1 of section 'dend' is the " + node):
        jn.Network({"cell": cell, "small": small},
                   [jn.SymmetricGapJunction(("cell", ("dend", 1.0)), "small", jn.conn.one_to_one, 0.01)])
    src = jn.SpikeTrains([[1.0]])
    with pytest.raises(ValueError, match=node):
        jn.Network({"src": src, "cell": cell},
                   [jn.ExpSynapse("src", ("cell", ("dend", 1.0)), jn.conn.all_to_all(), 0.01, 2.0)])
    with pytest.raises(ValueError, match=r"x = 0 of section 'soma'.*e\.g\. \('soma', 0\.5\)"):
        jn.Network({"src": src, "cell": cell},
                   [jn.ExpSynapse("src", ("cell", ("soma", 0.0)), jn.conn.all_to_all(), 0.01, 2.0)])
    inside = jn.Network({"src": src, "cell": cell},
                        [jn.ExpSynapse("src", ("cell", ("dend", 0.975)), jn.conn.all_to_all(), 0.01, 2.0)])
    assert int(inside.couplings[0].post_index[0]) == 1 + cell.index("dend", 0.975)  # after the source
    # Spike sources: a childless end is the end segment; an end where children join is not.
    watched = jn.SpikeDetector(cell, threshold=0.0)
    ok = jn.Network({"cell": watched, "small": small},
                    [jn.ExpSynapse(("cell", [("dend", 1.0)]), "small", jn.conn.all_to_all(), 0.01, 2.0)])
    assert int(ok.couplings[0].pre_index[0]) == cell.index("dend", 1.0)
    with pytest.raises(ValueError, match=r"x = 1 of section 'soma'.*averaged over the segments"):
        jn.Network({"cell": watched, "small": small},
                   [jn.ExpSynapse(("cell", [("soma", 1.0)]), "small", jn.conn.all_to_all(), 0.01, 2.0)])


def test_a_whole_number_x_after_a_section_name_is_a_location_as_for_stimuli():
    """``("dend", 1)`` names no indices, so couplings take it as x = 1.0, as stimulus
    targets do (before: refused with a message that did not say why); two integers
    stay indices."""
    soma, dend = dendritic_cell()
    cell = jn.Cell([soma, dend], parents=[None, ("soma", 1.0)])
    watched = jn.SpikeDetector(cell, threshold=0.0)
    small = jn.Compartment(length=10.0, diam=2.0, channels=[jn.channels.Leak(g=1e-4, e=-65.0)])
    whole, as_float = (jn.Network({"cell": watched, "small": small},
                                  [jn.ExpSynapse(("cell", side), "small", jn.conn.all_to_all(), 0.01, 2.0)])
                       for side in ([("dend", 1)], [("dend", 1.0)]))
    assert int(whole.couplings[0].pre_index[0]) == int(as_float.couplings[0].pre_index[0]) == cell.index("dend", 1.0)
    with pytest.raises(ValueError, match=r"coupling side \('cell', \('dend', 0\.0\)\): .*section's end"):
        jn.Network({"cell": cell, "small": small},
                   [jn.SymmetricGapJunction(("cell", ("dend", 0)), "small", jn.conn.one_to_one, 0.01)])
    pair = jn.Network({"cell": cell, "small": small},
                      [jn.SymmetricGapJunction(("cell", (3, 4)), "small", jn.conn.all_to_all(), 0.01)])
    np.testing.assert_array_equal(np.asarray(pair.couplings[0].pre_index), [3, 4])


def test_many_cells_as_one_cell_of_several_roots_equal_separate_cells():
    """Cells side by side in one jn.Cell (each root's parent None) run as one model,
    compiled once for all: each equals its own simulation."""
    def sections(tag, gnabar):
        hh = [jn.channels.HH(gnabar=gnabar)]
        return [jn.Cable(length=20, diam=20, nseg=1, channels=hh, name=f"soma{tag}"),
                jn.Cable(length=200, diam=2, nseg=5, channels=[jn.channels.Leak(g=1e-4, e=-65.0)], name=f"dend{tag}")]

    a, b = sections("A", 0.12), sections("B", 0.10)
    forest = jn.Cell(a + b, parents=[None, ("somaA", 1.0), None, ("somaB", 1.0)])
    stim = [jn.StepCurrent(0.3, 1.0, 8.0, target=("somaA", 0.5)), jn.StepCurrent(0.2, 2.0, 8.0, target=("somaB", 0.5))]
    both = np.asarray(jn.simulate(forest, 12.0, stimuli=stim).v)
    for secs, s, soma in ((a, stim[0], "somaA"), (b, stim[1], "somaB")):
        cell = jn.Cell(secs, parents=[None, (soma, 1.0)])
        alone = np.asarray(jn.simulate(cell, 12.0, stimuli=[s]).v)
        cols = np.concatenate([forest.segments(name) for name in cell.section_names])
        own = np.concatenate([cell.segments(name) for name in cell.section_names])
        assert len(own) == 6
        np.testing.assert_allclose(both[:, cols], alone[:, own], rtol=0, atol=1e-9)
        assert alone[:, own[0]].max() > 0  # the soma fires
