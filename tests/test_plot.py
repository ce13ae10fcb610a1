"""Trace.plot: axis labels with units, legends, traces at one time; what a cut trace prints."""

import matplotlib
import matplotlib.colors
import matplotlib.pyplot as plt
import numpy as np
import pytest

import jaxneuro as jn
from jaxneuro.plot import MAX_LEGEND_COLUMNS

matplotlib.use("Agg")


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def ylabels(trace, *names):
    return [ax.get_ylabel() for ax in np.atleast_1d(trace.plot(*names))]


def legend(ax):
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_axis_labels_give_each_variable_the_unit_its_model_records_it_in():
    # Only v and four absolute currents had a unit; a channel current is a density on a
    # compartment but nA on a point neuron, so the unit comes from the recording model.
    hh = jn.channels.HH()
    soma = jn.Compartment(length=20.0, diam=20.0, channels=[hh])
    tr = jn.simulate(soma, 1.0, record=("v", "i_cap", "ina_hh", "m_hh", "i_inj"))
    assert ylabels(tr) == ["membrane potential (mV)", "capacitive current (mA/cm²)", "ina_hh (mA/cm²)",
                           "m_hh (dimensionless)", "injected current (nA)"]
    assert (tr.unit("m_hh"), soma.unit_of("i_hh")) == ("1", "mA/cm²")
    # Several names on one axes: each unit once, after its names.
    ax = tr.plot("v", "m_hh", "ina_hh", ax=plt.figure().add_subplot())
    assert ax.get_ylabel() == "v (mV); m_hh (dimensionless); ina_hh (mA/cm²)"
    gates = jn.simulate(soma, 1.0, record=("m_hh", "h_hh")).plot("m_hh", "h_hh", ax=plt.figure().add_subplot())
    assert gates.get_ylabel() == "m_hh, h_hh (dimensionless)"
    # Point neurons: absolute currents (AdEx's w and Izhikevich's u too).
    lif = jn.simulate(jn.LIF(), 1.0, record=("i_leak", "i_cap"))
    assert ylabels(lif) == ["i_leak (nA)", "capacitive current (nA)"]
    assert ylabels(jn.simulate(jn.AdEx(), 1.0, record=("w", "i_exp"))) == ["w (nA)", "i_exp (nA)"]
    assert ylabels(jn.simulate(jn.Izhikevich(), 1.0, record=("u",))) == ["u (nA)"]
    cable = jn.Cable(length=100.0, diam=1.0, nseg=3, channels=[hh])
    assert ylabels(jn.simulate(cable, 1.0, record=("i_hh", "n_hh"))) == ["i_hh (mA/cm²)", "n_hh (dimensionless)"]
    with pytest.raises(ValueError, match=r"unit_of: 'w' is not a record name of LIF"):
        jn.LIF().unit_of("w")


def test_network_parts_are_labelled_in_their_populations_units():
    net = jn.Network(
        {"a": jn.LIF(n=2), "b": jn.Compartment(length=20.0, diam=20.0, channels=[jn.channels.HH()])},
        couplings=[jn.ExpSynapse(pre="a", post="b", conn=jn.conn.all_to_all(), g_max=0.05, E=0.0, tau=5.0,
                                 name="ab")])
    tr = jn.simulate(net, 2.0, record=("v", "i_syn", "i_cap", "g"))
    assert ylabels(tr["a"]) == ["membrane potential (mV)", "synaptic current (nA)", "capacitive current (nA)"]
    assert ylabels(tr["b"]) == ["membrane potential (mV)", "synaptic current (nA)", "capacitive current (mA/cm²)"]
    assert ylabels(tr["ab"]) == ["g (µS)"]
    assert net.unit_of("i_syn") == "nA" and net.member_unit("b", "i_cap") == "mA/cm²"
    with pytest.raises(ValueError, match=r"'i_cap' has different units in different populations"):
        net.unit_of("i_cap")


def test_network_parts_follow_the_record_order():
    # They came back sorted from jit: i_syn was plotted above the voltage.
    net = jn.Network({"a": jn.LIF(n=2)})
    tr = jn.simulate(net, 1.0, record=("v", "i_syn"))
    assert tr["a"].names == ("v", "i_syn") and tr["a"].window(0.2, 0.8).names == ("v", "i_syn")
    assert ylabels(tr["a"]) == ["membrane potential (mV)", "synaptic current (nA)"]


def test_a_trace_at_one_time_is_plotted_against_its_segments_or_neurons():
    # matplotlib raised "x and y must have same first dimension" for a cable or population.
    cable = jn.Cable(length=100.0, diam=1.0, nseg=3, channels=[jn.channels.HH()])
    ax = jn.simulate(cable, 2.0).at(1.0).plot("v")
    x, y = ax.lines[0].get_data()
    assert list(x) == [0, 1, 2] and len(y) == 3 and ax.lines[0].get_marker() == "o"
    assert ax.get_xlabel() == "segment" and ax.get_title() == "t = 1 ms"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["x=0.1667", "x=0.5", "x=0.8333"]
    assert ax.get_ylabel() == "membrane potential (mV)"
    pop = jn.simulate(jn.LIF(n=4), 2.0, record=("v", "i_leak")).at(1.0)
    axes = pop.plot()
    assert [a.get_xlabel() for a in axes] == ["", "neuron"] and len(axes[1].lines[0].get_xdata()) == 4
    one = jn.simulate(jn.LIF(), 2.0).at(1.0).plot("v")  # a single neuron: one point at t
    assert list(one.lines[0].get_xdata()) == [1.0] and one.get_xlabel() == "time (ms)"


def test_population_lines_have_legend_entries_and_label_names_each():
    # Neurons got no legend entries, and label= named only the first line.
    tr = jn.simulate(jn.LIF(n=3), 2.0)
    assert legend(tr.plot("v")) == ["neuron 0", "neuron 1", "neuron 2"]
    assert legend(tr.plot("v", label="ctrl")) == ["ctrl[0]", "ctrl[1]", "ctrl[2]"]
    assert legend(tr.plot("v", label=["slow", "mid", "fast"])) == ["slow", "mid", "fast"]
    with pytest.raises(ValueError, match=r"label: .* does not name 'v''s 3 line\(s\); give a str or a sequence of 3"):
        tr.plot("v", label=["slow", "fast"])
    cable = jn.Cable(length=100.0, diam=1.0, nseg=2, channels=[jn.channels.Leak()])
    assert legend(jn.simulate(cable, 1.0).plot("v", label="ctrl")) == ["ctrl x=0.25", "ctrl x=0.75"]
    # Past MAX_LEGEND_COLUMNS lines, one entry names them all, drawn in one colour.
    many = jn.simulate(jn.LIF(n=MAX_LEGEND_COLUMNS + 1), 1.0).plot("v", label="ctrl")
    assert legend(many) == ["ctrl"]
    assert len({matplotlib.colors.to_hex(line.get_color()) for line in many.lines}) == 1


def test_a_cut_trace_prints_its_values():
    # trace.at(t) printed values={'v': f32[]}, hiding the number.
    tr = jn.simulate(jn.LIF(), 2.0).at(1.0)
    text = repr(tr)
    assert f"values={{'v': {np.asarray(tr.v)}}}" in text and "t=1.0" in text
    # A spike summary's threshold too (it printed threshold=f32[]).
    assert repr(jn.SpikeSummary(threshold=-20.0)) == "SpikeSummary(threshold=-20.0)"


def test_many_segments_are_coloured_by_section_or_along_a_colormap():
    """A cell of 22 segments was drawn in the 10-colour cycle with no legend: the soma
    shared its colour with dend(0.4524) and dend(0.9286). Now each section has one
    colour and an entry; columns that are not a cell's sections follow a colormap, the
    first and last named."""
    cell = jn.Cell([jn.Cable(20, 20, nseg=1, channels=[jn.channels.HH()], name="soma"),
                    jn.Cable(500, 2, nseg=21, channels=[jn.channels.Leak(g=1e-4, e=-65)], name="dend")],
                   parents=[None, ("soma", 1.0)])
    tr = jn.simulate(cell, 2.0)
    ax = tr.plot("v")
    assert legend(ax) == ["soma", "dend (21 segments)"]
    colours = [matplotlib.colors.to_hex(line.get_color()) for line in ax.lines]
    assert len(colours) == 22 and len(set(colours[1:])) == 1 and colours[0] != colours[1]
    # A single cable's segments, and a population's neurons: a colormap, ends named.
    cable = jn.simulate(jn.Cable(100.0, 1.0, nseg=MAX_LEGEND_COLUMNS + 1, channels=[jn.channels.Leak()]), 1.0)
    labels = cable.column_labels("v")
    ax = cable.plot("v")
    assert legend(ax) == [labels[0], labels[-1]]
    assert len({matplotlib.colors.to_hex(line.get_color()) for line in ax.lines}) == MAX_LEGEND_COLUMNS + 1
    ax = jn.simulate(jn.LIF(n=MAX_LEGEND_COLUMNS + 1), 1.0).plot("v")
    assert legend(ax) == ["neuron 0", f"neuron {MAX_LEGEND_COLUMNS}"]
    assert matplotlib.colors.to_hex(ax.lines[0].get_color()) == matplotlib.colors.to_hex(
        matplotlib.colormaps["viridis"](0.0))
    # A colour of one's own is kept.
    ax = tr.plot("v", color="k")
    assert {matplotlib.colors.to_hex(line.get_color()) for line in ax.lines} == {"#000000"}


def test_a_synapse_s_lines_are_named_as_its_connections():
    # A synapse's g has one column per connection, but its lines were "neuron 0".."neuron 5"
    # (2 sources x 3 neurons, so there was no neuron 3..5 anywhere).
    net = jn.Network({"src": jn.SpikeTrains([[0.5, 1.5], [1.0]]), "lif": jn.LIF(n=3)},
                     [jn.ExpSynapse("src", "lif", jn.conn.all_to_all(), 0.5, 5.0, 0.0, name="syn")])
    tr = jn.simulate(net, 2.0, record=("v", "g"))
    assert tr["syn"].g.shape[1] == 6
    assert legend(tr["syn"].plot("g")) == [f"connection {k}" for k in range(6)]
    assert legend(tr["syn"].plot("g", label="ctrl")) == [f"ctrl connection {k}" for k in range(6)]
    ticks = [t.get_text() for t in tr["syn"].at(1.0).plot("g").get_xticklabels()]
    assert ticks == [f"connection {k}" for k in range(6)]
    # A population's columns stay neurons.
    assert legend(tr["lif"].plot("v")) == ["neuron 0", "neuron 1", "neuron 2"]
    # Past MAX_LEGEND_COLUMNS: a colormap, the first and last connections named.
    n = 2 * (MAX_LEGEND_COLUMNS // 2 + 1)
    wide = jn.Network({"src": jn.SpikeTrains([[0.5], [1.0]]), "lif": jn.LIF(n=n // 2)},
                      [jn.ExpSynapse("src", "lif", jn.conn.all_to_all(), 0.5, 5.0, 0.0, name="syn")])
    assert legend(jn.simulate(wide, 1.0, record=("v", "g"))["syn"].plot("g")) == ["connection 0", f"connection {n - 1}"]


def test_a_trace_at_one_time_draws_markers_not_joined_by_lines():
    # trace.at(t).plot() joined its points with a line: across independent neurons, and
    # in a cell from the dendrite's tip on to the axon on the soma's other side.
    cell = jn.Cell([jn.Cable(20, 20, nseg=1, name="soma"), jn.Cable(200, 2, nseg=3, name="dend"),
                    jn.Cable(300, 1, nseg=3, name="axon")], parents=[None, ("soma", 1.0), ("soma", 0.0)])
    at = jn.simulate(cell, 1.0).at(0.5)
    line = at.plot("v").lines[0]
    assert line.get_linestyle() == "None" and line.get_marker() == "o" and len(line.get_xdata()) == 7
    pop = jn.Trace(t=np.arange(3.0), values={"v": np.zeros((3, 4))}).at(1.0)
    assert [line.get_linestyle() for line in pop.plot("v").lines] == ["None"]
    # A line style of one's own is kept (either spelling).
    assert at.plot("v", linestyle="--").lines[0].get_linestyle() == "--"
    assert at.plot("v", ls=":").lines[0].get_linestyle() == ":"


def test_a_continued_run_s_raster_draws_its_own_span_only():
    # A continued run's spike buffers carry the earlier part's spikes: its raster drew
    # them too (from 3.6 ms for a part covering 50-100 ms), out of line with its
    # voltage plot.
    lif = jn.LIF(n=3, t_ref=2.0)
    stimuli = [jn.StepCurrent(amp=np.array([2.0, 3.0, 5.0]), delay=0.0, dur=1e9)]
    first = jn.simulate(lif, 50.0, stimuli=stimuli)
    second = jn.simulate(lif, 100.0, stimuli=stimuli, init=first)
    spikes = np.asarray(second.spikes)
    assert np.sum(spikes < 50.0) > 0  # the data keeps the earlier part's spikes
    x, y = second.plot("spikes").lines[0].get_data()
    own = np.isfinite(spikes) & (spikes >= 50.0) & (spikes <= 100.0)
    np.testing.assert_array_equal(np.sort(x), np.sort(spikes[own]))
    assert sorted(y) == sorted(np.nonzero(own)[0])
    assert second.plot("spikes").get_xlim() == second.plot("v").get_xlim()
    assert np.sum(np.asarray(second.spikes) < 50.0) == np.sum(spikes < 50.0)  # unchanged by plotting
    # A run from rest draws all of its spikes, as before.
    x, _ = first.plot("spikes").lines[0].get_data()
    assert len(x) == int(np.sum(np.isfinite(np.asarray(first.spikes))))


def test_jn_plot_is_reachable_after_import_jaxneuro_and_needs_no_matplotlib():
    # jn.plot was an AttributeError until something imported jaxneuro.plot. It needs no
    # matplotlib until something is drawn (matplotlib is optional).
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['matplotlib'] = None  # as if matplotlib were not installed\n"
        "import jaxneuro as jn\n"
        "assert jn.plot is sys.modules['jaxneuro.plot'] and callable(jn.plot.plot_trace)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
