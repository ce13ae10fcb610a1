"""Synapses of one kind from one population run as one (jaxneuro.coupling.grouped):
the same voltages, records, spikes, gradients and warnings as each synapse alone, and
NEURON's voltages; a network's program grows little with each such projection."""

import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxneuro as jn


def _lif(n, capacity=32):
    return jn.LIF(n=n, C=0.2, gL=0.01, EL=-60.0, V_th=-50.0, V_reset=-60.0, t_ref=2.0, spike_capacity=capacity)


def _mixed_network(group_synapses=True, only=None):
    """E, I and a Poisson source; from each, synapses of one kind with scalar
    parameters (a kernel state per presynaptic neuron) and with values per connection
    (one per connection), both deliveries, and a class with one member (alone)."""
    src = jn.poisson_spikes(80.0, 60.0, n=10, seed=2)
    prob = lambda p, seed: jn.conn.fixed_prob(p, seed=seed, include_self=False)  # noqa: E731
    syns = [
        jn.ExpSynapse("E", "E", prob(0.3, 1), 0.004, 5.0, 0.0, 1.0, name="EE"),
        jn.ExpSynapse("E", "I", prob(0.4, 2), 0.006, 3.0, 0.0, 0.5, name="EI"),
        # values per connection: g_max, tau, E and delay
        jn.ExpSynapse(("E", [3, 7, 11]), ("I", [0, 1, 2]), jn.conn.one_to_one, jnp.array([0.002, 0.003, 0.004]),
                      jnp.array([2.0, 4.0, 6.0]), jnp.array([0.0, -10.0, 5.0]), jnp.array([0.3, 1.1, 2.0]),
                      name="EI_per_conn"),
        jn.Exp2Synapse("I", "E", prob(0.5, 3), 0.02, 0.5, 8.0, -80.0, 0.8, name="IE"),
        jn.Exp2Synapse("I", "I", prob(0.5, 4), 0.02, 0.5, 8.0, -80.0, 0.8, name="II"),
        jn.ExpCurrentSynapse("input", "E", prob(0.3, 5), 0.05, 2.0, delay=0.2, name="inE"),
        jn.ExpCurrentSynapse("input", "I", prob(0.3, 6), 0.04, 3.0, delay=0.2, name="inI",
                             max_arrivals_per_step=3),  # another setting: runs alone
        jn.ExpCurrentSynapse("input", "I", prob(0.2, 7), -0.02, 1.5, delay=1.0, name="inI_inh",
                             max_arrivals_per_step=3),
        jn.AlphaSynapse("E", "I", prob(0.2, 8), 0.003, 1.5, 0.0, 0.4, name="alpha"),  # alone
        jn.ExpSynapse("E", "I", prob(0.3, 9), 0.005, 2.0, 0.0, 1.2, name="EI_neuron", delivery="neuron"),
        jn.ExpSynapse("E", "E", prob(0.2, 10), 0.003, 2.5, 0.0, 0.7, name="EE_neuron", delivery="neuron"),
    ]
    syns = [s for s in syns if only is None or s.name in only]
    return jn.Network({"E": _lif(12), "I": _lif(6), "input": src}, syns, group_synapses=group_synapses)


def _run(net, t1=60.0, record=("v", "g", "i", "i_syn"), **kw):
    drive = [jn.StepCurrent(jnp.linspace(0.12, 0.2, 12), 2.0, 1e9, target="E"),
             jn.StepCurrent(0.1, 2.0, 1e9, target="I")]
    kw.setdefault("v0", None if "init" in kw else -60.0)
    return jn.simulate(net, t1, dt=0.1, stimuli=drive, record=record, save_every=0.5, **kw)


def test_the_mixed_network_runs_its_synapses_in_groups():
    groups = [tuple(s.name for s in g) for g in _mixed_network().synapse_groups()]
    assert groups == [("EE", "EI", "EI_per_conn"), ("IE", "II"), ("inE",), ("inI", "inI_inh"),
                      ("alpha",), ("EI_neuron", "EE_neuron")]


def test_groups_give_what_each_synapse_gives_alone():
    net = _mixed_network()
    together = _run(net)
    assert "EE+EI+EI_per_conn" in together.final_state.events and "EE" not in together.final_state.events
    alone = _run(_mixed_network(group_synapses=False))
    assert "EE" in alone.final_state.events
    fired = {p: int(np.sum(np.asarray(together[p].spike_count))) for p in ("E", "I")}
    assert fired["E"] >= 10 and fired["I"] >= 3, fired  # the synapses carry spikes
    for pop in ("E", "I"):
        np.testing.assert_allclose(together[pop].v, alone[pop].v, rtol=0, atol=1e-9)
        np.testing.assert_allclose(together[pop].i_syn, alone[pop].i_syn, rtol=0, atol=1e-12)
        np.testing.assert_array_equal(together[pop].spike_count, alone[pop].spike_count)
        np.testing.assert_allclose(np.nan_to_num(together[pop].spikes, posinf=-1.0),
                                   np.nan_to_num(alone[pop].spikes, posinf=-1.0), rtol=0, atol=1e-9)
    for syn in net.synapses:
        out = syn.record_name
        a, b = np.asarray(getattr(together[syn.name], out)), np.asarray(getattr(alone[syn.name], out))
        assert a.shape == (together.t.size, syn.n_connections)
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
        assert np.max(np.abs(a)) > 0  # each synapse's own column, not another's


def test_gradients_through_a_group_are_each_synapses_own():
    # A group mixing a kernel state per presynaptic neuron and one per connection, and
    # a group of the other delivery (fewer synapses than above: compiling the reverse
    # pass of each alone is slow).
    only = ("EE", "EI", "EI_per_conn", "EI_neuron", "EE_neuron")

    def grad(net):
        def loss(p):
            tr = _run(eqx.combine(p, eqx.filter(net, eqx.is_inexact_array, inverse=True)), t1=20.0, record=("v",))
            return jnp.mean(tr["E"].v) + jnp.mean(tr["I"].v)

        return jax.grad(loss)(eqx.filter(net, eqx.is_inexact_array))

    g_together, g_alone = grad(_mixed_network(only=only)), grad(_mixed_network(group_synapses=False, only=only))
    assert len(g_together.couplings) == 5
    for syn_t, syn_a in zip(g_together.couplings, g_alone.couplings):
        for name in syn_t._PARAMS:
            a, b = getattr(syn_t, name), getattr(syn_a, name)
            if a is None:
                continue
            np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-14, err_msg=f"{syn_t.name}.{name}")
    amp = [float(jnp.max(jnp.abs(getattr(s, s._AMPLITUDE)))) for s in g_together.couplings]
    assert min(amp) > 0  # every synapse's amplitude moves the loss


def test_a_grouped_run_continues_as_one_long_run():
    net = _mixed_network()
    whole = _run(net, t1=60.0)
    first = _run(net, t1=30.0)
    second = _run(net, t1=60.0, t0=30.0, init=first.final_state)
    for pop in ("E", "I"):
        np.testing.assert_allclose(second[pop].v[-1], whole[pop].v[-1], rtol=0, atol=1e-9)
    np.testing.assert_allclose(second["EI_per_conn"].g[-1], whole["EI_per_conn"].g[-1], rtol=0, atol=1e-12)


def _burst_group(group_synapses=True):
    """Two synapses from one source: a burst of three spikes within a step on two of
    its rows, read by the first (a row per presynaptic neuron) on both and by the
    second (a row per connection) on one; with a window of 1, two steps late each."""
    rows = [[1.01, 1.02, 1.03], [1.01, 1.02, 1.03], [5.0, np.inf, np.inf]]
    syns = [jn.ExpSynapse("src", "post", jn.conn.explicit([0, 1], [0, 1]), 0.01, 2.0, name="a",
                          max_arrivals_per_step=1),
            # values per connection: a row per connection, one of them the burst's
            jn.ExpSynapse("src", "post", jn.conn.explicit([2, 1], [0, 0]), 0.01, jnp.array([3.0, 3.5]), name="b",
                          max_arrivals_per_step=1)]
    post = jn.Compartment(area=1000.0, n=2, channels=[jn.channels.Leak(g=1e-4, e=-70)])
    return jn.Network({"src": jn.SpikeTrains(rows), "post": post}, syns, group_synapses=group_synapses)


@pytest.mark.parametrize("group_synapses", [True, False])
def test_late_arrivals_are_reported_per_synapse_eagerly_and_under_jit(group_synapses):
    net = _burst_group(group_synapses)
    assert len(net.synapse_groups()) == (1 if group_synapses else 2)
    expected = {"a": 4, "b": 2}  # a: two rows, two steps each; b: one row
    for run in (lambda: jn.simulate(net, 8.0, dt=0.1, v0=-70.0),
                lambda: jax.block_until_ready(jax.jit(lambda n: jn.simulate(n, 8.0, dt=0.1, v0=-70.0)["post"].v)(net))):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            run()
            jax.effects_barrier()
        said = sorted(str(w.message) for w in caught if "max_arrivals_per_step" in str(w.message))
        assert len(said) == 2, said
        for message, (name, n) in zip(said, sorted(expected.items())):
            assert message.startswith(f"synapse {name!r}: {n} time(s) more than max_arrivals_per_step=1"), message


def _projections(all_to_all, group_synapses=True):
    """Three LIF populations, each projecting onto one (3 synapses) or onto all three
    (9 synapses, connection counts differing)."""
    names = ("p0", "p1", "p2")
    pairs = [(a, b) for a in names for b in names] if all_to_all else list(zip(names, names[1:] + names[:1]))
    syns = [jn.ExpCurrentSynapse(a, b, jn.conn.fixed_prob(0.1 + 0.05 * i, seed=i), 0.05, 0.5 + 0.1 * i,
                                 delay=1.0 + 0.1 * i, name=f"{a}_{b}") for i, (a, b) in enumerate(pairs)]
    return jn.Network({name: _lif(40) for name in names}, syns, group_synapses=group_synapses)


def test_a_programs_size_grows_little_with_each_projection_of_a_group():
    """Each projection run alone added its own kernels to the compiled time step
    (a dozen or two each); in a group, its rows are the group's."""
    def kernels(all_to_all):
        run = jax.jit(lambda net: jn.simulate(net, 20.0, dt=0.1, save_every=1.0, record=("v",))["p0"].v)
        return run.lower(_projections(all_to_all)).compile().as_text().count(" fusion(")

    per_projection = (kernels(True) - kernels(False)) / 6
    assert per_projection < 4, per_projection


def test_a_group_name_that_is_taken_is_refused():
    syns = [jn.ExpSynapse("a", "b", jn.conn.all_to_all, 0.001, 2.0, name=n) for n in ("x", "y")]
    with pytest.raises(ValueError, match=r"synapses \['x', 'y'\] run as one .* under 'x\+y'"):
        jn.Network({"a": _lif(2), "b": _lif(2), "x+y": _lif(1)}, syns)


def test_synapses_of_a_users_subclass_run_alone():
    class MySynapse(jn.ExpSynapse):
        pass

    syns = [MySynapse("a", "b", jn.conn.all_to_all, 0.001, 2.0, name=n) for n in ("x", "y")]
    net = jn.Network({"a": _lif(2), "b": _lif(2)}, syns)
    assert [len(g) for g in net.synapse_groups()] == [1, 1]


def test_group_synapses_must_be_a_bool():
    with pytest.raises(ValueError, match="Network.group_synapses expects True or False, got 'yes'"):
        jn.Network({"a": _lif(2)}, [], group_synapses="yes")


def test_a_group_reproduces_neurons_expsyns_and_netcons(neuron_h):
    """Three HH cells, three ExpSynapse projections from the one population (scalar
    parameters; one with a tau, E and delay per connection), run as one group with
    NEURON's delivery: NEURON's voltages and spike times, an ExpSyn and a NetCon per
    connection."""
    h = neuron_h
    dt, t1 = 0.025, 40.0
    projections = [  # (pre, post, g_max µS, tau ms, E mV, delay ms) per connection
        [(0, 1, 0.02, 2.0, 0.0, 1.0)],
        [(0, 2, 0.015, 5.0, 0.0, 2.0), (1, 2, 0.015, 5.0, 0.0, 2.0)],
        [(2, 0, 0.01, 3.0, -80.0, 0.5), (1, 0, 0.004, 1.5, 0.0, 1.5)],
    ]
    amps = (0.25, 0.0, 0.02)
    secs, keep = [], []
    for j, amp in enumerate(amps):
        sec = h.Section(name=f"group_cell{j}")
        sec.L = sec.diam = 20.0
        sec.insert("hh")
        stim = h.IClamp(sec(0.5))
        stim.delay, stim.dur, stim.amp = 2.0, 1e9, amp
        secs.append(sec)
        keep.append(stim)
    watch = [h.NetCon(sec(0.5)._ref_v, None, sec=sec) for sec in secs]
    times = [h.Vector() for _ in secs]
    for nc, tv in zip(watch, times):
        nc.threshold = 0.0
        nc.record(tv)
    for conns in projections:
        for pre, post, g, tau, e, delay in conns:
            syn = h.ExpSyn(secs[post](0.5))
            syn.tau, syn.e = tau, e
            nc = h.NetCon(secs[pre](0.5)._ref_v, syn, sec=secs[pre])
            nc.threshold, nc.delay, nc.weight[0] = 0.0, delay, g
            keep += [syn, nc]
    v_rec = [h.Vector().record(sec(0.5)._ref_v) for sec in secs]
    h.dt = dt
    h.finitialize(-65.0)
    h.continuerun(t1)
    spikes_n = [np.asarray(tv) for tv in times]
    assert all(len(s) >= 1 for s in spikes_n), spikes_n  # cells 1 and 2 fire through the synapses

    def synapse(conns, name):
        pre, post, g, tau, e, delay = (np.array(x) for x in zip(*conns))
        per_conn = len(set(zip(g, tau, e, delay))) > 1
        pick = (lambda x: jnp.asarray(x)) if per_conn else (lambda x: float(x[0]))
        return jn.ExpSynapse("hh", "hh", jn.conn.explicit(pre, post), pick(g), pick(tau), pick(e), pick(delay),
                             delivery="neuron", name=name)

    cells = jn.Compartment(length=20.0, diam=20.0, channels=[jn.channels.HH()], n=3)
    net = jn.Network({"hh": jn.SpikeDetector(cells, threshold=0.0, capacity=16, timing="neuron")},
                     [synapse(c, f"p{k}") for k, c in enumerate(projections)])
    assert [len(g) for g in net.synapse_groups()] == [3]
    tr = jn.simulate(net, t1, dt=dt, v0=-65.0, stimuli=[jn.StepCurrent(jnp.array(amps), 2.0, 1e9, target="hh")])
    for k in range(3):
        got = np.asarray(tr["hh"].spikes[k])
        np.testing.assert_allclose(got[np.isfinite(got)], spikes_n[k], rtol=0, atol=1e-9)
    np.testing.assert_allclose(tr["hh"].v, np.stack([np.asarray(v) for v in v_rec], axis=-1)[:tr.t.size],
                               rtol=0, atol=1e-6)


def _parts_network(whole_rows, per_connection_tau=False):
    """One LIF population of 12 written as two parts (neurons 0-5 and 6-11) joined by
    projections from each part: the pre side a part (``("all", indices)``), or, with
    ``whole_rows``, the same connections from the whole population (a kernel state per
    neuron of the population, the layout before states per part)."""
    a, b = list(range(6)), list(range(6, 12))
    syns = [jn.ExpSynapse(("all", a), ("all", b), jn.conn.fixed_prob(0.5, seed=1), 0.01, 3.0, 0.0, 1.0, name="ab"),
            jn.ExpSynapse(("all", b), ("all", a), jn.conn.fixed_prob(0.5, seed=2), 0.02, 5.0, -80.0, 0.5, name="ba"),
            jn.Exp2Synapse(("all", a), ("all", a), jn.conn.fixed_prob(0.5, seed=3, include_self=False), 0.01,
                           0.5, 4.0, 0.0, 1.5, name="aa")]
    pops = {"all": _lif(12)}
    net = jn.Network(pops, syns)
    if whole_rows:
        net = jn.Network(pops, [type(s)("all", "all", jn.conn.explicit(np.asarray(s.pre_index), np.asarray(s.post_index)),
                                        **{k: getattr(s, k) for k in s._PARAMS}, name=s.name)
                                for s in net.synapses])
    if per_connection_tau:
        n = net.synapses[0].n_connections
        net = eqx.tree_at(lambda m: m.couplings[0].tau, net, jnp.linspace(2.0, 4.0, n))
    return net


def test_a_synapse_from_part_of_a_population_keeps_states_for_that_part():
    """A projection from part of a population (``pre=("all", indices)``) keeps a
    kernel state per neuron of that part, not of the whole population (64 projections
    between eight parts of one population held 8x the states and ran 2.4x slower than
    eight populations); voltages, spikes, records and gradients are those of the same
    connections from the whole population, also once a time constant is given per
    connection (a state per connection then)."""
    net = _parts_network(whole_rows=False)
    assert [s._n_rows() for s in net.synapses] == [6, 6, 6]
    assert [s._n_rows() for s in _parts_network(whole_rows=True).synapses] == [12, 12, 12]
    again = jn.Network(net.populations, net.couplings)  # bound synapses bound anew
    for s, t in zip(net.synapses, again.synapses):
        assert t._n_rows() == 6 and np.array_equal(t.pre_local, s.pre_local)
        assert np.array_equal(t.row_source, s.row_source)
    stim = [jn.StepCurrent(jnp.concatenate([jnp.linspace(0.3, 0.4, 6), jnp.linspace(0.15, 0.3, 6)]), 1.0, 1e9,
                          target="all")]

    def run(net):
        tr = jn.simulate(net, 40.0, stimuli=stim, record=["v", "g"], save_every=0.5)
        return tr["all"].v, tr["all"].spikes, tr["ab"].g, tr["aa"].g, tr.final_state.events

    for per_connection_tau in (False, True):
        got, want = (jax.jit(run)(_parts_network(whole, per_connection_tau)) for whole in (False, True))
        fired = jnp.sum(jnp.isfinite(want[1]), axis=-1)
        assert int(jnp.sum(fired[:6])) >= 5 and int(jnp.sum(fired[6:])) >= 5  # every projection delivers
        for x, y in zip(got[:4], want[:4]):
            np.testing.assert_allclose(x, y, rtol=0, atol=1e-9)
        rows = got[4]["ab+ba"]["g"].shape[0]  # ExpSynapse "ab" and "ba" run as one group
        assert rows == (net.synapses[0].n_connections + 6 if per_connection_tau else 12)

    def loss(net):
        return jnp.mean(jn.simulate(net, 40.0, stimuli=stim, save_every=0.5)["all"].v)

    # The time constants' derivatives (a row's), in forward mode (quicker to compile).
    params = lambda m: (m.couplings[0].tau, m.couplings[2].tau2)  # noqa: E731
    slopes = [jax.jit(jax.jacfwd(lambda p, net=net: loss(eqx.tree_at(params, net, p))))((3.0, 4.0))
              for net in (_parts_network(False), _parts_network(True))]
    assert all(abs(float(d)) > 1e-3 for d in slopes[1])
    np.testing.assert_allclose(slopes[0], slopes[1], rtol=1e-9)
