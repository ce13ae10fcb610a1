"""A cell's temperature is its sections': editing, differentiating or fitting
``cell.sections[i].temperature`` takes effect, sections at different temperatures each
run at their own, and ``cell.temperature`` reads their common one."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import saiunit as u

import jaxneuro as jn

PARENTS = [None, ("soma", 1.0)]
STIM = [jn.StepCurrent(0.3, 1.0, 5.0, target=("soma", 0.5))]


def _sections(temperature=6.3):
    return [jn.Cable(20.0, 20.0, nseg=1, channels=[jn.channels.HH()], name="soma", temperature=temperature),
            jn.Cable(200.0, 2.0, nseg=5, channels=[jn.channels.HH()], name="dend", temperature=temperature)]


def _cell(temperature=6.3):
    return jn.Cell(_sections(temperature), parents=PARENTS)


def _v(cell, t1=20.0):
    return np.asarray(jn.simulate(cell, t1, stimuli=STIM).v)


def _at(cell, temperatures):
    """``cell`` with its sections' temperatures edited (°C, one per section)."""
    return eqx.tree_at(lambda c: [s.temperature for s in c.sections], cell, list(temperatures))


def test_editing_the_sections_temperatures_is_building_the_cell_there():
    warm = _at(_cell(), [30.0, 30.0])
    assert float(warm.temperature) == 30.0
    v = _v(warm)
    np.testing.assert_array_equal(v, _v(_cell(30.0)))
    np.testing.assert_array_equal(v, _v(jn.Cell(_sections(), parents=PARENTS, temperature=30.0)))
    np.testing.assert_array_equal(v, _v(warm.precomputed()))
    # Jitted, the loop compiles with the rest of the program, where XLA may round a
    # multiply-add differently (ulps: 7e-15 mV in float64).
    jitted = np.asarray(eqx.filter_jit(lambda c: jn.simulate(c, 20.0, stimuli=STIM).v)(warm))
    np.testing.assert_allclose(v, jitted, rtol=0, atol=1e-12 if v.dtype == np.float64 else 1e-4)
    assert np.max(v) < -50.0 < 0.0 < np.max(_v(_cell()))  # HH's rates tripled per 10 °C: no spike at 30 °C


def test_gradient_in_each_section_temperature_matches_finite_differences():
    cell = _cell(10.0)

    def loss(temperatures):
        return jnp.mean(jn.simulate(_at(cell, temperatures), 10.0, stimuli=STIM).v)

    t = jnp.array([10.0, 10.0])
    g = np.asarray(jax.grad(lambda x: loss([x[0], x[1]]))(t))
    h = 1e-3
    for k in range(2):
        e = np.eye(2)[k] * h
        fd = (loss(list(t + e)) - loss(list(t - e))) / (2 * h)
        assert abs(g[k]) > 1e-3, k  # each section's temperature acts
        np.testing.assert_allclose(g[k], fd, rtol=1e-5, err_msg=f"section {k}")
    # The whole cell warmed: the sum of the sections' derivatives.
    fd_all = (loss(list(t + h)) - loss(list(t - h))) / (2 * h)
    np.testing.assert_allclose(g.sum(), fd_all, rtol=1e-5)


def test_sections_at_different_temperatures_each_run_at_their_own():
    # Two unconnected sections (two roots): each is a cable simulated alone at its temperature.
    a = jn.Cable(20.0, 20.0, nseg=1, channels=[jn.channels.HH()], name="a", temperature=30.0)
    b = jn.Cable(200.0, 2.0, nseg=5, channels=[jn.channels.HH()], name="b", temperature=6.3)
    cell = jn.Cell([a, b], parents=[None, None])
    stims = [jn.StepCurrent(0.3, 1.0, 5.0, target=("a", 0.5)), jn.StepCurrent(0.05, 1.0, 5.0, target=("b", 0.5))]
    v = np.asarray(jn.simulate(cell, 20.0, stimuli=stims).v)
    va = np.asarray(jn.simulate(a, 20.0, stimuli=[jn.StepCurrent(0.3, 1.0, 5.0, target=0.5)]).v)
    vb = np.asarray(jn.simulate(b, 20.0, stimuli=[jn.StepCurrent(0.05, 1.0, 5.0, target=0.5)]).v)
    assert np.max(np.abs(v[:, :1] - va)) < 1e-9 and np.max(np.abs(v[:, 1:] - vb)) < 1e-9
    assert np.max(vb) > 0.0 > np.max(va)  # b spikes at 6.3 °C, a does not at 30 °C
    # A cell built with mixed temperatures is the same as one edited to them.
    built = jn.Cell(_sections(), parents=PARENTS)
    mixed = jn.Cell([_sections()[0], _sections(30.0)[1]], parents=PARENTS)
    np.testing.assert_array_equal(_v(mixed), _v(_at(built, [6.3, 30.0])))
    assert not np.array_equal(_v(mixed), _v(built)) and not np.array_equal(_v(mixed), _v(_cell(30.0)))


def test_precomputed_temperatures_stay_scalars_for_a_uniform_cell():
    # Unedited cells keep one scalar temperature (as before), so their kinetics are unchanged.
    temps = _cell().precomputed().segment_membrane.temperatures
    assert len(temps) == 1 and np.ndim(temps[0]) == 0 and float(temps[0]) == 6.3
    temps = _at(_cell(), [6.3, 30.0]).precomputed().segment_membrane.temperatures
    np.testing.assert_array_equal(temps[0], [6.3] + [30.0] * 5)
    # A channel only on sections that share a temperature gets it as a scalar.
    secs = _sections()
    secs[1] = jn.Cable(200.0, 2.0, nseg=5, channels=[jn.channels.Leak()], name="dend", temperature=30.0)
    temps = jn.Cell(secs, parents=PARENTS).precomputed().segment_membrane.temperatures
    assert [np.ndim(t) for t in temps] == [0, 0] and [float(t) for t in temps] == [6.3, 30.0]


def test_cell_temperature_reads_the_sections_and_is_refused_where_they_differ():
    assert float(_cell(16.3).temperature) == 16.3
    cell = jn.Cell(_sections(), parents=PARENTS, temperature=300.0 * u.kelvin)
    assert [float(s.temperature) for s in cell.sections] == pytest.approx([26.85, 26.85])
    with pytest.raises(ValueError, match=r"different temperatures \{'soma': 6.3, 'dend': 30.0\}"):
        _at(_cell(), [6.3, 30.0]).temperature
    # Not one leaf: editing it names the sections' temperatures instead.
    with pytest.raises(ValueError, match=r"s.temperature for s in c.sections"):
        eqx.tree_at(lambda c: c.temperature, _cell(), 30.0)
    with pytest.raises(ValueError, match="traced"):
        eqx.filter_jit(lambda c: c.temperature)(_cell())
    with pytest.raises(ValueError, match="scalar"):
        jn.Cell(_sections(), parents=PARENTS, temperature=[6.3, 30.0])
    # One section: the cell's temperature is its section's, and may be edited as such.
    one = jn.Cell(_sections()[:1])
    warm = eqx.tree_at(lambda c: c.temperature, one, 30.0)
    assert float(warm.sections[0].temperature) == 30.0
    np.testing.assert_array_equal(_v(warm), _v(jn.Cell(_sections(30.0)[:1])))


def test_fit_moves_a_section_temperature():
    target_cell = _at(_cell(), [6.3, 12.0])
    rec = {"v": [("soma", 0.5), ("dend", 0.9)]}
    target = jn.simulate(target_cell, 10.0, stimuli=STIM, record=rec).v

    def loss(c):
        return jn.losses.voltage(jn.simulate(c, 10.0, stimuli=STIM, record=rec), target)

    start = _at(_cell(), [6.3, 9.0])
    res = jn.fit(loss, start, params=lambda c: c.sections[1].temperature, optimizer=optax.adam(0.5),
                 steps=4, progress=False)
    history = np.asarray(res.param_history["sections[1].temperature"])
    assert history[-1] > history[0] + 1.0  # towards 12 °C
    assert res.loss_history[-1] < res.loss_history[0]


def test_warmed_cell_matches_neuron_at_that_celsius(neuron_h):
    # NEURON has one global celsius: compare a cell whose sections were all edited to it.
    h = neuron_h
    celsius = 20.0
    soma, dend = h.Section(name="soma_temp"), h.Section(name="dend_temp")
    for sec, (L, d, n) in ((soma, (20.0, 20.0, 1)), (dend, (200.0, 2.0, 5))):
        sec.L, sec.diam, sec.nseg, sec.Ra, sec.cm = L, d, n, 35.4, 1.0
        sec.insert("hh")
    dend.connect(soma(1.0), 0)
    stim = h.IClamp(soma(0.5))
    stim.amp, stim.delay, stim.dur = 0.3, 1.0, 5.0
    refs = [soma(0.5)._ref_v] + [dend(x)._ref_v for x in (np.arange(5) + 0.5) / 5]
    saved = h.celsius
    try:
        h.secondorder, h.celsius, h.dt = 0, celsius, 0.025
        vecs = [h.Vector().record(r) for r in refs]
        h.finitialize(-65.0)
        while h.t < 20.0 - 0.0125:
            h.fadvance()
    finally:
        h.celsius = saved
    v_n = np.array([np.array(v) for v in vecs]).T
    v_j = _v(_at(_cell(), [celsius, celsius]))
    assert np.max(v_n) > 0.0  # a spike at 20 °C
    assert np.max(np.abs(v_j - v_n)) < 1e-6


def test_a_plain_temperature_that_looks_like_kelvin_warns():
    """temperature=279.45 (6.3 °C in kelvin) ran HH at 279.45 °C, where the cell cannot
    fire (0 spikes for 2), without a word; a quantity in kelvin is converted."""
    import warnings

    hh = [jn.channels.HH()]
    match = (r"temperature=279.45 °C is above 100 °C; a plain number is read in °C. If kelvin was meant, give a "
             r"quantity: temperature=279.45 \* u.kelvin \(= 6.3 °C")
    with pytest.warns(RuntimeWarning, match="Cell: " + match):
        cell = jn.Cell(_sections(), parents=PARENTS, temperature=279.45)
    assert float(cell.temperature) == pytest.approx(279.45)
    with pytest.warns(RuntimeWarning, match="Cable: " + match):
        jn.Cable(20.0, 20.0, nseg=1, channels=hh, temperature=279.45)
    with pytest.warns(RuntimeWarning, match="Compartment: " + match):
        jn.Compartment(length=20.0, diam=20.0, channels=hh, temperature=279.45)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cell = jn.Cell(_sections(), parents=PARENTS, temperature=279.45 * u.kelvin)
        assert float(cell.temperature) == pytest.approx(6.3)
        jn.Cable(20.0, 20.0, nseg=1, channels=hh, temperature=37.0)
        jn.Compartment(length=20.0, diam=20.0, channels=hh, temperature=310.15 * u.kelvin)
