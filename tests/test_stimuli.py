"""Stimulus waveforms (nA) and their differentiable amplitudes."""

import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import saiunit as u

import jaxneuro as jn


def test_step_is_on_for_delay_to_delay_plus_dur():
    s = jn.StepCurrent(0.5, 10.0, 5.0)
    ts = jnp.array([9.999, 10.0, 12.0, 14.999, 15.0])
    np.testing.assert_array_equal(jax.vmap(s.current)(ts), [0, 0.5, 0.5, 0.5, 0])
    assert float(jn.StepCurrent(1.0).current(1e6)) == 1.0  # default dur: forever


def test_ramp_sine_and_data_waveforms():
    r = jn.Ramp(amp_start=0.0, amp_stop=1.0, delay=10.0, dur=10.0)
    np.testing.assert_allclose(jax.vmap(r.current)(jnp.array([5.0, 10.0, 15.0, 20.0])), [0, 0, 0.5, 0])
    s = jn.Sine(amp=2.0, freq=100.0, delay=0.0, dur=100.0, offset=0.1)  # 100 Hz: period 10 ms
    np.testing.assert_allclose(jax.vmap(s.current)(jnp.array([0.0, 2.5, 5.0, 7.5])), [0.1, 2.1, 0.1, -1.9], atol=1e-12)
    d = jn.DataCurrent(values=jnp.array([0.0, 1.0, 3.0]), dt=2.0, t0=1.0)
    np.testing.assert_allclose(jax.vmap(d.current)(jnp.array([0.5, 1.0, 2.0, 4.0, 5.0, 5.5])), [0, 0, 0.5, 2.0, 3.0, 0])


def test_sine_drives_the_passive_membrane_as_a_low_pass_filter():
    # Amplitude of the membrane response to a sine: I·R / sqrt(1 + (ωτ)²).
    model = jn.Compartment(length=100, diam=500, channels=[jn.channels.Leak(g=1e-4, e=-70)])
    f_hz, tau = 20.0, 10.0
    trace = jn.simulate(model, 500.0, dt=0.01, v0=-70, stimuli=[jn.Sine(amp=1.0, freq=f_hz)], save_every=0.1)
    late = np.asarray(trace.window(300, 500).v)
    r_in = 1.0 / (1e-4 * math.pi * 100 * 500 * 1e-8) * 1e-6
    expected = r_in / math.sqrt(1 + (2 * math.pi * f_hz / 1000 * tau) ** 2)
    assert (late.max() - late.min()) / 2 == pytest.approx(expected, rel=2e-3)


def test_data_current_reproduces_a_step():
    model = jn.Compartment(area=1000, channels=[jn.channels.Leak(g=1e-4)])
    values = np.zeros(2001)
    values[400:1200] = 0.01
    t_grid = np.arange(2001) * 0.025
    # A step expressed as data, sampled on the simulation grid (edges ramp over one sample).
    data = jn.DataCurrent(values=values, dt=0.025)
    a = jn.simulate(model, 50.0, stimuli=[data], v0=-70)
    b = jn.simulate(model, 50.0, stimuli=[jn.StepCurrent(0.01, t_grid[400], t_grid[1200] - t_grid[400])], v0=-70)
    assert np.max(np.abs(np.asarray(a.v) - np.asarray(b.v))) < 0.05


def test_samples_closer_than_the_step_are_warned_of():
    """A recording sampled faster than dt is read once per step: a spacing given in
    seconds (2.5e-5) put the whole recording into the first step, silently."""
    model = jn.Compartment(area=1000, channels=[jn.channels.Leak(g=1e-4)])
    seconds = jn.DataCurrent(values=np.full(4000, 0.01), dt=2.5e-5)
    with pytest.warns(UserWarning, match=r"DataCurrent\.dt = 2\.5e-05 ms: its samples are closer than the run's "
                                         r"step dt = 0\.025 ms, .* 99\.9 % of them are never read") as record:
        jn.simulate(model, 1.0, stimuli=[seconds])
    assert record[0].filename == __file__  # the user's line, not jaxneuro's
    clamp = jn.DataVoltageClamp(values=np.full(11, -60.0), dt=0.01)
    with pytest.warns(UserWarning, match=r"DataVoltageClamp\.dt = 0\.01 ms: .* 60 % of them are never read"):
        jn.simulate(model, 0.1, stimuli=[clamp])
    with warnings.catch_warnings():  # samples on the step, or coarser, or an adaptive run: no warning
        warnings.simplefilter("error")
        jn.simulate(model, 1.0, stimuli=[jn.DataCurrent(values=np.zeros(41), dt=0.025)])
        jn.simulate(model, 1.0, dt=0.01, stimuli=[jn.DataCurrent(values=np.zeros(41), dt=0.025)])


def test_amplitudes_are_differentiable():
    model = jn.Compartment(length=100, diam=500, channels=[jn.channels.Leak(g=1e-4, e=-70)])

    def final_v(amp):
        return jn.simulate(model, 100.0, stimuli=[jn.StepCurrent(amp, 0.0, 200.0)], v0=-70).v[-1]

    r_in = 1.0 / (1e-4 * math.pi * 100 * 500 * 1e-8) * 1e-6
    assert float(jax.grad(final_v)(0.5)) == pytest.approx(r_in * (1 - math.exp(-10)), rel=1e-3)


def test_density_stimuli_at_a_location_or_segment_and_no_plain_numbers_beside_densities():
    import saiunit as u

    # A density at a location or segment of a cable is that density times the area of
    # the segment it lands in (was a shape error about an amplitude the user never gave).
    cab = jn.Cable(length=200, diam=2, Ra=100, cm=1, nseg=4, channels=[jn.channels.Leak(g=1e-4, e=-70)])
    per_segment = float(np.pi * 2 * 50 * 1e-8 * 1e-3 * 1e6)  # 1 µA/cm² on 50 µm × 2 µm, in nA
    for target in (0.6, [2]):
        tr = jn.simulate(cab, 1.0, stimuli=[jn.StepCurrent(amp=1 * u.uA / u.cm**2, target=target)], record=("i_inj",))
        np.testing.assert_allclose(tr.i_inj[-1], [0.0, 0.0, per_segment, 0.0], rtol=1e-12)
    cell = jn.Cell([jn.Cable(20.0, 20.0, name="soma"), jn.Cable(200.0, 2.0, nseg=4, name="d")], parents=[None, "soma"])
    tr = jn.simulate(cell, 1.0, stimuli=[jn.StepCurrent(amp=1 * u.uA / u.cm**2, target=("d", 0.6))], record=("i_inj",))
    np.testing.assert_allclose(tr.i_inj[-1], [0.0, 0.0, 0.0, per_segment, 0.0], rtol=1e-12)
    # On a population with an area per neuron, split over the devices too (each part
    # sees its own neurons' areas).
    pop = jn.Compartment(area=jnp.linspace(500.0, 1200.0, 8), n=8, channels=[jn.channels.Leak(g=1e-4, e=-70)])
    stim = jn.StepCurrent(amp=1 * u.uA / u.cm**2, target=(1, 5))
    expected = np.zeros(8)
    expected[[1, 5]] = np.linspace(500.0, 1200.0, 8)[[1, 5]] * 1e-8 * 1e-3 * 1e6
    for backend in ("xla", "sharded"):
        tr = jn.simulate(pop, 1.0, stimuli=[stim], record=("i_inj",), backend=backend)
        np.testing.assert_allclose(tr.i_inj[-1], expected, rtol=1e-12)
    # A plain number beside a density would be read as mA/cm² (157 nA for "0.1" here):
    # refused, as a current beside a density already was; a plain 0 is fine.
    with pytest.raises(ValueError, match=r"\['amp_start'\] given as plain numbers beside current densities"):
        jn.Ramp(amp_start=0.1, amp_stop=2 * u.uA / u.cm**2, delay=0.0, dur=1.0)
    with pytest.raises(ValueError, match=r"\['offset'\] given as plain numbers"):
        jn.Sine(amp=2 * u.uA / u.cm**2, freq=10.0, offset=0.5)
    assert jn.Ramp(amp_start=0.0, amp_stop=2 * u.uA / u.cm**2, delay=0.0, dur=1.0).density


def test_a_pair_of_integers_is_two_indices_on_a_population_only():
    """On a cable, (0, 1) put the current into segments 0 and 1, each the full amount;
    a NEURON user means sec(1) by it. Now refused there; on a population it stays two
    indices."""
    cab = jn.Cable(300.0, 1.0, nseg=3, channels=[jn.channels.Leak(g=1e-4, e=-65.0)])
    with pytest.raises(ValueError, match=r"ambiguous on a cable or cell.*target=\(0, 1.0\).*target=\[0, 1\]"):
        jn.simulate(cab, 0.05, stimuli=[jn.StepCurrent(0.1, target=(0, 1))])
    at_end = jn.simulate(cab, 0.05, stimuli=[jn.StepCurrent(0.1, target=(0, 1.0))], record="i_inj").i_inj[-1]
    np.testing.assert_allclose(at_end, [0.0, 0.0, 0.1])
    pop = jn.Compartment(length=10.0, diam=10.0, n=3)
    both = jn.simulate(pop, 0.05, stimuli=[jn.StepCurrent(0.1, target=(0, 1))], record="i_inj").i_inj[-1]
    np.testing.assert_allclose(both, [0.1, 0.1, 0.0])


def test_a_current_without_target_on_a_cable_is_refused_unless_a_density():
    """target=None put the full amplitude into every segment, so the response grew
    with nseg. A density is spread by area, as before."""
    def cable(nseg):
        return jn.Cable(300.0, 1.0, nseg=nseg, channels=[jn.channels.Leak(g=1e-4, e=-65.0)])

    with pytest.raises(ValueError, match=r"StepCurrent: target=None .* each of the 3 segments of the cable or cell"):
        jn.simulate(cable(3), 1.0, stimuli=[jn.StepCurrent(0.1)])
    with pytest.raises(ValueError, match=r"each of the 3 segments"):
        jn.input_resistance(cable(3), jn.StepCurrent(0.1, 0.0, 10.0))
    # One segment, a location, or a density: as before.
    jn.simulate(cable(1), 1.0, stimuli=[jn.StepCurrent(0.1)])
    uniform = [jn.simulate(cable(n), 5.0, stimuli=[jn.StepCurrent(1 * u.uA / u.cm**2)]).v[-1] for n in (3, 9)]
    np.testing.assert_allclose(uniform[0][1], uniform[1][4], rtol=1e-12)  # the middle: independent of nseg


def test_data_current_per_neuron_waveforms_equal_separate_runs():
    """values of shape (T, n): one waveform per neuron, each the run with its own 1-D
    recording; interpolation between samples is linear, zero outside; the samples are
    differentiable, and such a population runs in one XLA loop (not split)."""
    t = np.arange(401) * 0.025
    values = np.stack([np.sin(t), 0.5 * np.cos(2 * t), np.full_like(t, 0.2)], axis=1) * 0.05
    model = jn.Compartment(area=1000, channels=[jn.channels.Leak(g=1e-4)], n=3)
    per_neuron = jn.DataCurrent(values, dt=0.025, t0=1.0)
    assert not per_neuron.splittable and jn.DataCurrent(values[:, 0]).splittable
    np.testing.assert_allclose(per_neuron.current(1.0 + 0.0125 + 0.025 * 7),
                               0.5 * (values[7] + values[8]), rtol=0, atol=1e-15)
    np.testing.assert_array_equal(per_neuron.current(0.99), 0.0)
    np.testing.assert_array_equal(per_neuron.current(11.01), 0.0)
    together = jn.simulate(model, 14.0, stimuli=[per_neuron], record=("v", "i_inj"))
    one = jn.Compartment(area=1000, channels=[jn.channels.Leak(g=1e-4)])
    for k in range(3):
        alone = jn.simulate(one, 14.0, stimuli=[jn.DataCurrent(values[:, k], dt=0.025, t0=1.0)])
        np.testing.assert_allclose(together.v[:, k], alone.v, rtol=0, atol=1e-12)
    assert jn.backends.choose("auto", model.precomputed(), jn.StaggeredEuler(),
                              model.init_state(-65.0), [per_neuron]) == "xla"

    # Targeted: one waveform per index; the gradient of a neuron's final voltage is
    # non-zero only for its own samples.
    targeted = jn.DataCurrent(values[:, :2], dt=0.025, t0=1.0, target=[0, 2])

    def final_v(samples):
        stim = jn.DataCurrent(samples, dt=0.025, t0=1.0, target=[0, 2])
        return jn.simulate(model, 14.0, stimuli=[stim]).v[-1, 2]

    g = np.asarray(jax.grad(final_v)(jnp.asarray(values[:, :2])))
    assert np.all(g[:, 0] == 0) and np.all(g[:, 1] > 0)
    v = np.asarray(jn.simulate(model, 14.0, stimuli=[targeted], v0=-70.0).v)
    np.testing.assert_allclose(v[:, 1], -70.0, atol=1e-12)  # untargeted neuron at rest
    with pytest.raises(ValueError, match="does not fit target"):
        jn.simulate(model, 1.0, stimuli=[jn.DataCurrent(values, target=[0, 2])])
    with pytest.raises(ValueError, match="at least 2 samples along its first axis"):
        jn.DataCurrent(np.zeros((1, 3)))


def test_a_stimulus_at_several_locations_is_one_current_per_location():
    """target=[(sec, x), ...]: each location gets its own current (a list of amplitudes,
    or one for all), the same as one stimulus per location; as coupling sides take
    locations, so do stimulus targets, in a Network too; a noise source draws one
    sample per location, a clamp refuses a section end among them."""
    soma = jn.Cable(length=20, diam=20, nseg=1, channels=[jn.channels.Leak()], name="soma")
    dend = jn.Cable(length=300, diam=1, nseg=9, channels=[jn.channels.Leak()], name="dend")
    cell = jn.Cell([soma, dend], parents=[None, ("soma", 1.0)])
    sites = [("soma", 0.5), ("dend", 0.7)]
    both = jn.simulate(cell, 5.0, stimuli=[jn.StepCurrent(jnp.array([0.05, 0.02]), 1.0, 3.0, target=sites)],
                       record=("v", "i_inj"))
    each = jn.simulate(cell, 5.0, stimuli=[jn.StepCurrent(0.05, 1.0, 3.0, target=sites[0]),
                                           jn.StepCurrent(0.02, 1.0, 3.0, target=sites[1])], record=("v", "i_inj"))
    np.testing.assert_allclose(both.v, each.v, rtol=0, atol=1e-12)
    np.testing.assert_allclose(both.i_inj, each.i_inj, rtol=0, atol=1e-15)
    assert float(both.i_inj[100, cell.index("dend", 0.7)]) == pytest.approx(0.02)

    net = jn.Network({"c": cell})
    in_net = jn.simulate(net, 5.0, stimuli=[jn.StepCurrent(jnp.array([0.05, 0.02]), 1.0, 3.0, target=("c", sites))])
    np.testing.assert_allclose(in_net["c"].v, both.v, rtol=0, atol=1e-12)

    noise = jn.simulate(cell, 2.0, stimuli=[jn.NoiseCurrent(0.0, 0.01, target=sites, seed=1)], record=("i_inj",))
    i = np.asarray(noise.i_inj)[:, [cell.index(*sites[0]), cell.index(*sites[1])]]
    assert np.all(i[:, 0] != i[:, 1])  # independent samples
    with pytest.raises(ValueError, match="section end"):
        jn.VoltageClamp(-20.0, 5.0, target=[("dend", 0.5), ("dend", 1.0)])
    with pytest.raises(ValueError, match="does not fit target"):
        jn.simulate(cell, 1.0, stimuli=[jn.StepCurrent(jnp.ones(3), target=sites)])


def test_many_stimuli_at_one_place_each_run_as_one_with_the_same_currents(monkeypatch):
    # 400 separate step currents (NEURON's IClamp per cell, ported as it is) compiled and
    # ran one placement each: 42 s to compile into a 1000-section cell, 1.3 s a call on
    # 1000 HH neurons. They are joined (per place, or per neuron on a population).
    from jaxneuro.stimuli import base

    pop = jn.Compartment(length=20.0, diam=20.0, channels=[jn.channels.HH()], n=40)
    stims = ([jn.StepCurrent(0.1 + 0.01 * i, 1.0 + 0.1 * i, 3.0 + 0.2 * i, target=i) for i in range(0, 30, 2)]
             + [jn.Sine(0.05 + 0.01 * i, 40.0 + i, target=-i) for i in range(1, 6)]
             + [jn.StepCurrent(0.2, 2.0, 1.0, target=3), jn.StepCurrent(0.3, 0.5, 2.0)])
    joined = base.merge_alike(tuple(stims), pop)
    assert len(joined) == 3 and joined[0].target is None and joined[0].amp.shape == (40,)
    assert len(base.merge_alike(tuple(jn.StepCurrent(0.1, target=[i]) for i in range(5)), pop)) == 1  # [i] too
    secs = [jn.Cable(length=10.0, diam=1.0, nseg=2, channels=[jn.channels.HH()], name=f"s{i}") for i in range(12)]
    cell = jn.Cell(secs, parents=[None] + [f"s{i}" for i in range(11)])
    on_cell = [jn.StepCurrent(0.02 * (i % 5), 0.5, 3.0, target=(f"s{i}", (0.5, 1.0, 0.0)[i % 3])) for i in range(12)]
    assert len(base.merge_alike(tuple(on_cell), cell)) == 1
    runs = [(pop, stims, "xla"), (pop, stims, "sharded"), (cell, on_cell, "auto")]
    together = [np.asarray(jn.simulate(m, 8.0, stimuli=s, backend=b).v) for m, s, b in runs]
    monkeypatch.setattr(base, "MERGE_FROM", 10**9)
    for (m, s, b), v in zip(runs, together):
        np.testing.assert_allclose(v, jn.simulate(m, 8.0, stimuli=s, backend=b).v, rtol=0, atol=1e-10)
    monkeypatch.undo()
    # A neuron targeted twice keeps its stimuli apart (their currents add); a bad place
    # among many is still named by its position in the list.
    mixed = [jn.StepCurrent(0.1, 1.0, 2.0, target=t) for t in ([0], ("s1", 0.5), [5], ("s2", 0.9), [7])]
    assert len(base.merge_alike(tuple(mixed), cell)) == 5  # indices and locations kept apart (it crashed)
    jn.simulate(cell, 2.0, stimuli=mixed + mixed)
    twice = [jn.StepCurrent(0.1, 1.0, 2.0, target=i % 3) for i in range(6)]
    assert len(base.merge_alike(tuple(twice), pop)) == 6
    bad = on_cell[:7] + [jn.StepCurrent(0.1, 1.0, 2.0, target=("nope", 0.5))] + on_cell[7:]
    with pytest.raises(ValueError, match=r"stimuli\[7\].*nope"):
        jn.simulate(cell, 2.0, stimuli=bad)
    with pytest.raises(ValueError, match=r"stimuli\[4\]"):
        jn.simulate(pop, 2.0, stimuli=[jn.StepCurrent(0.1, target=i) for i in range(4)] + [jn.StepCurrent(0.1, target=40)])


def test_a_pulse_shorter_than_the_step_is_warned_of():
    # 1 nA for 0.2 ms into 1257 µm² (no leak to speak of) is 15.9 mV; at dt = 1 ms the
    # step's midpoint falls outside [0.1, 0.3) (nothing) or inside [0.4, 0.6) (a whole
    # step: 79.6 mV), as NEURON's IClamp does: warned of, with the factor.
    comp = jn.Compartment(length=20, diam=20, channels=[jn.channels.Leak(g=1e-12, e=-65.0)])
    exact = 1.0e-9 * 0.2e-3 / (1e-6 * np.pi * 20 * 20 * 1e-8) * 1e3  # charge (C) / capacitance (F), in mV
    assert exact == pytest.approx(15.92, abs=0.01)
    for delay, dv in [(0.1, 0.0), (0.4, 5 * exact)]:
        with pytest.warns(UserWarning, match=r"StepCurrent.dur = 0.2 ms is shorter than the step dt = 1 ms: .*"
                                             r"missed .* or counted for a whole step \(5 times its charge\)"):
            tr = jn.simulate(comp, 3.0, dt=1.0, v0=-65.0, stimuli=[jn.StepCurrent(1.0, delay, 0.2)])
        assert float(np.ravel(tr.v)[-1]) + 65.0 == pytest.approx(dv, abs=1e-6)
    import warnings

    with warnings.catch_warnings():  # a pulse of whole steps: no warning
        warnings.simplefilter("error")
        tr = jn.simulate(comp, 3.0, dt=0.02, v0=-65.0, stimuli=[jn.StepCurrent(1.0, 0.1, 0.2)])
    assert float(np.ravel(tr.v)[-1]) + 65.0 == pytest.approx(exact, rel=1e-6)


def test_per_compartment_timing_and_targets_found_by_review():
    import diffrax

    pop = jn.Compartment(length=20.0, diam=20.0, channels=[jn.channels.Leak(g=1e-4, e=-65.0)], n=3)
    adaptive = dict(solver=diffrax.Tsit5(), stepsize_controller=diffrax.PIDController(rtol=1e-7, atol=1e-7))
    # Adaptive steps with one dur per neuron: "truth value of an array is ambiguous".
    per = jn.simulate(pop, 6.0, stimuli=[jn.StepCurrent(0.1, 1.0, np.array([1.0, 2.0, 3.0]))], **adaptive)
    for k, dur in enumerate((1.0, 2.0, 3.0)):
        one = jn.simulate(pop, 6.0, stimuli=[jn.StepCurrent(0.1, 1.0, dur)], **adaptive)
        np.testing.assert_allclose(np.asarray(per.v)[-1, k], np.asarray(one.v)[-1, k], rtol=0, atol=1e-6)
    # A NoiseCurrent numbers its samples from one delay by one interval: arrays failed in the run.
    for name in ("delay", "interval"):
        with pytest.raises(ValueError, match=rf"NoiseCurrent\.{name} expects one time \(ms\) for all compartments"):
            jn.NoiseCurrent(0.0, 0.1, seed=1, **{name: np.array([0.025, 0.05, 0.1])})
    # An empty index array names nothing ("zero-size array to reduction operation" in the run).
    with pytest.raises(ValueError, match=r"stimulus target array\(\[\], dtype=int64\) names no compartment"):
        jn.StepCurrent(0.1, 0.0, 1.0, target=np.flatnonzero(np.zeros(3, bool)))
    # Aimed at a whole network, one value per compartment of the network (it was read
    # against the first population's shape, with advice that could not be followed).
    net = jn.Network({"a": pop, "b": jn.Compartment(length=20.0, diam=20.0, channels=[jn.channels.Leak()], n=2)})
    amps = np.arange(5) * 0.01
    whole = jn.simulate(net, 3.0, stimuli=[jn.StepCurrent(amps, 0.5, 2.0)])
    parts = jn.simulate(net, 3.0, stimuli=[jn.StepCurrent(amps[:3], 0.5, 2.0, target="a"),
                                           jn.StepCurrent(amps[3:], 0.5, 2.0, target="b")])
    for name in ("a", "b"):
        np.testing.assert_array_equal(whole[name].v, parts[name].v)
    with pytest.raises(ValueError, match=r"target=None \(the whole network\): the current of shape \(4,\) does not "
                                         r"fit population 'a'.*one per compartment of the network \(shape \(5,\)\)"):
        jn.simulate(net, 3.0, stimuli=[jn.StepCurrent(np.ones(4), 0.5, 2.0)])
