"""Network composition, stimulus targets, per-population traces, connection rules."""

import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import saiunit as u

import jaxneuro as jn


def soma(n=None):
    return jn.Compartment(length=20, diam=20, n=n, channels=[jn.channels.HH()])


# --- connection rules -------------------------------------------------------------------
def test_one_to_one_and_all_to_all():
    pre, post = jn.conn.one_to_one()(4, 4)
    np.testing.assert_array_equal(pre, np.arange(4))
    np.testing.assert_array_equal(post, np.arange(4))
    pre, post = jn.conn.all_to_all()(3, 3, same=True)
    assert len(pre) == 9 and np.sum(pre == post) == 3
    pre, post = jn.conn.all_to_all(include_self=False)(3, 3, same=True)
    assert len(pre) == 6 and not np.any(pre == post)
    pre, post = jn.conn.all_to_all(include_self=False)(3, 3, same=False)  # different populations
    assert len(pre) == 9
    with pytest.raises(ValueError, match="same size"):
        jn.conn.one_to_one()(3, 4)


@pytest.mark.parametrize("rule", [jn.conn.all_to_all(include_self=False),
                                  jn.conn.fixed_prob(0.5, seed=0, include_self=False),
                                  jn.conn.fixed_indegree(4, seed=0, include_self=False)])
def test_include_self_false_drops_self_connections_of_overlapping_sides(rule):
    # Only identical sides lost their i -> i: subsets sharing neurons, or the same
    # neurons in another order, kept them (6 of 58 and 10 of 100 with all_to_all).
    def connections(pre, post):
        syn = jn.ExpSynapse(pre=pre, post=post, conn=rule, g_max=0.001, tau=5.0, name="s")
        s = jn.Network({"a": jn.LIF(n=10)}, [syn]).couplings[0]
        return np.asarray(s.pre_index), np.asarray(s.post_index)

    full = {(i, j) for i in range(10) for j in range(10)}
    for pre, post, allowed in [("a", "a", full),
                               (("a", list(range(8))), ("a", list(range(2, 10))),
                                {(i, j) for i in range(8) for j in range(2, 10)}),
                               (("a", list(range(10))), ("a", list(range(9, -1, -1))), full)]:
        pi, po = connections(pre, post)
        pairs = set(zip(pi.tolist(), po.tolist()))
        assert not np.any(pi == po) and pairs <= {p for p in allowed if p[0] != p[1]}
        if isinstance(rule, type(jn.conn.all_to_all())):
            assert pairs == {p for p in allowed if p[0] != p[1]}  # every other pair is kept


def test_fixed_prob_statistics_and_reproducibility():
    n, p = 2000, 0.01
    pre, post = jn.conn.fixed_prob(p, seed=7)(n, n)
    m = len(pre)
    # Binomial(n², p): mean 40000, sd ≈ 199.
    assert abs(m - p * n * n) < 5 * np.sqrt(p * (1 - p) * n * n)
    assert len(set(zip(pre.tolist(), post.tolist()))) == m  # no duplicate pairs
    assert pre.min() >= 0 and pre.max() < n and post.min() >= 0 and post.max() < n
    # Out-degree ~ Binomial(n, p).
    deg = np.bincount(pre, minlength=n)
    assert deg.var() == pytest.approx(n * p * (1 - p), rel=0.15)
    again = jn.conn.fixed_prob(p, seed=7)(n, n)
    np.testing.assert_array_equal(again[0], pre)
    assert not np.array_equal(jn.conn.fixed_prob(p, seed=8)(n, n)[1][:100], post[:100])
    pre, post = jn.conn.fixed_prob(0.3, seed=1, include_self=False)(50, 50, same=True)
    assert not np.any(pre == post)
    assert len(jn.conn.fixed_prob(1.0)(5, 7)[0]) == 35 and len(jn.conn.fixed_prob(0.0)(5, 7)[0]) == 0
    with pytest.raises(ValueError, match="probability"):
        jn.conn.fixed_prob(1.5)
    # A 0-d array is a number (it was refused as "expects a probability in [0, 1]").
    np.testing.assert_array_equal(jn.conn.fixed_prob(jnp.asarray(0.3), seed=1)(50, 50)[0],
                                  jn.conn.fixed_prob(0.3, seed=1)(50, 50)[0])
    with pytest.raises(ValueError, match=r"p expects a probability in \[0, 1\] \(a fixed real number"):
        jn.conn.fixed_prob(np.array([0.1, 0.2]))


@pytest.mark.parametrize("rule", [jn.conn.fixed_prob(0.1), jn.conn.fixed_indegree(8, seed=3)],
                         ids=["fixed_prob", "fixed_indegree"])
def test_one_seed_draws_independent_projections_between_different_sides(rule):
    """In a network a seeded rule draws from its seed and the coupling's sides: with
    one random stream, I→E (20 pre) was exactly E→E's first 20 rows and two
    projections from one source onto populations of one size were the same
    connections, correlating what should be independent. One rule between the same
    sides (AMPA and NMDA onto the same connections) still draws the same, a network
    built again draws the same, and calling the rule draws from the seed alone."""
    def build():
        net = jn.Network({"E": jn.LIF(n=80), "I": jn.LIF(n=20), "A": jn.LIF(n=30), "B": jn.LIF(n=30)}, [
            jn.ExpSynapse("E", "E", rule, 0.01, 2.0, 0.0, 1.0, name="EE"),
            jn.ExpSynapse("I", "E", rule, 0.01, 2.0, -80.0, 1.0, name="IE"),
            jn.ExpSynapse("E", "E", rule, 0.01, 50.0, 0.0, 1.0, name="EE_slow"),
            jn.ExpSynapse("E", "A", rule, 0.01, 2.0, 0.0, 1.0, name="EA"),
            jn.ExpSynapse("E", "B", rule, 0.01, 2.0, 0.0, 1.0, name="EB"),
        ])
        offsets = dict(zip(net.names, np.cumsum([0, *net.sizes])))
        pairs = {c.name: {(int(p) - offsets[c.pre[0]], int(q) - offsets[c.post[0]])
                          for p, q in zip(np.asarray(c.pre_index), np.asarray(c.post_index))}
                 for c in net.couplings}
        for name, drawn in pairs.items():  # the network's own account of them, in connection order
            pre, post = net.connections(name)
            assert set(zip(pre.tolist(), post.tolist())) == drawn and len(pre) == len(drawn)
        return pairs

    pairs = build()
    first_rows = {pq for pq in pairs["EE"] if pq[0] < 20}
    # Independent draws share about a tenth (fixed_prob) or 8/20 (fixed_indegree) of these.
    assert len(pairs["IE"] & first_rows) < 0.6 * len(pairs["IE"])
    assert len(pairs["EA"] & pairs["EB"]) < 0.6 * len(pairs["EA"])
    assert pairs["EE_slow"] == pairs["EE"]
    assert build() == pairs
    pre, post = rule(80, 80)  # the rule called: its seed's draw, as before
    np.testing.assert_array_equal(pre, rule(80, 80)[0])
    assert set(zip(pre.tolist(), post.tolist())) != pairs["EE"]
    with pytest.raises(ValueError, match=r"Network.connections: no coupling named 'EI'; the couplings are \('EE',\)"):
        jn.Network({"E": jn.LIF(n=3)}, [jn.ExpSynapse("E", "E", jn.conn.all_to_all(), 0.01, 2.0, 0.0, 1.0,
                                                      name="EE")]).connections("EI")


def test_fixed_prob_costs_memory_in_connections_not_n_squared():
    n = 100_000
    start = time.perf_counter()
    pre, post = jn.conn.fixed_prob(1e-4, seed=0, include_self=False)(n, n, same=True)
    assert time.perf_counter() - start < 5.0  # 1e10 pairs would not fit in that time
    assert abs(len(pre) - 1e6) < 5e3


def _indegree_rows(pre, post, n_post, k):
    """The pre of each post (one row per post), checking the layout: post-major, k each."""
    np.testing.assert_array_equal(post, np.repeat(np.arange(n_post), k))
    return pre.reshape(n_post, k)


def test_fixed_indegree_gives_each_post_exactly_k_distinct_pre():
    n_pre, n_post, k = 300, 500, 40
    pre, post = jn.conn.fixed_indegree(k, seed=5)(n_pre, n_post)
    rows = _indegree_rows(pre, post, n_post, k)
    assert np.all(np.diff(rows, axis=1) > 0)  # distinct (ascending within each post)
    assert rows.min() >= 0 and rows.max() < n_pre
    again = jn.conn.fixed_indegree(k, seed=5)(n_pre, n_post)
    np.testing.assert_array_equal(again[0], pre)
    other = jn.conn.fixed_indegree(k, seed=6)(n_pre, n_post)[0].reshape(n_post, k)
    assert np.mean(np.any(other != rows, axis=1)) > 0.99  # different seeds, different draws
    # k of all pre (dense: the k smallest of a uniform key) and all of them.
    rows = _indegree_rows(*jn.conn.fixed_indegree(250, seed=1)(n_pre, 20), 20, 250)
    assert np.all(np.diff(rows, axis=1) > 0) and rows.max() < n_pre
    pre, post = jn.conn.fixed_indegree(n_pre)(n_pre, 3)
    np.testing.assert_array_equal(pre, np.tile(np.arange(n_pre), 3))
    assert len(jn.conn.fixed_indegree(0)(5, 7)[0]) == 0 and len(jn.conn.fixed_indegree(3)(5, 0)[0]) == 0
    with pytest.raises(ValueError, match=r"fixed_indegree: k=6 exceeds the 5 pre compartments \(5 on the pre side\)"):
        jn.conn.fixed_indegree(6)(5, 4)


@pytest.mark.parametrize("k", [20, 150])  # drawn with replacement, first k distinct / k smallest keys
def test_fixed_indegree_is_uniform(k):
    # Pre i is among a post's k with probability p = k/n_pre, independently per post:
    # out-degrees Binomial(n_post, p). Their normalised squared deviations sum to about
    # n_pre (chi-square-like, sd ≈ sqrt(2·n_pre) = 20).
    n_pre, n_post = 200, 4000
    pre, _ = jn.conn.fixed_indegree(k, seed=11)(n_pre, n_post)
    p = k / n_pre
    deg = np.bincount(pre, minlength=n_pre)
    assert deg.sum() == n_post * k
    stat = np.sum((deg - n_post * p) ** 2) / (n_post * p * (1 - p))
    assert abs(stat - n_pre) < 5 * np.sqrt(2 * n_pre), stat


@pytest.mark.parametrize("k, include_self", [(2, True), (3, True), (2, False), (3, False)])
def test_fixed_indegree_draws_every_subset_equally_often(k, include_self):
    # 5 pre onto 6000 posts (the same 5 repeated: post j is pre j % 5 when same): each
    # post's set is one of C(5, k) (C(4, k) without itself), equally likely.
    from itertools import combinations
    from math import comb

    n, n_post = 5, 6000
    if include_self:
        pre, post = jn.conn.fixed_indegree(k, seed=3)(n, n_post)
    else:  # through a Network: posts 0..4 of one population, repeated 1200 times
        net = jn.Network({"a": jn.LIF(n=n)}, [jn.ExpCurrentSynapse(
            "a", ("a", np.tile(np.arange(n), n_post // n)), jn.conn.fixed_indegree(k, seed=3, include_self=False),
            0.1, 2.0)])
        syn = net.couplings[0]
        pre, post = np.asarray(syn.pre_index), np.repeat(np.arange(n_post), k)
        target = np.asarray(syn.post_index).reshape(n_post, k)[:, 0]
        assert not np.any(pre.reshape(n_post, k) == target[:, None])  # never itself
    rows = _indegree_rows(pre, post, n_post, k)
    counts = {}
    for j, r in enumerate(map(tuple, rows)):  # without self: each post's subsets of the others
        key = r if include_self else (int(target[j]), r)
        counts[key] = counts.get(key, 0) + 1
    if include_self:
        assert set(counts) == set(combinations(range(n), k))
    else:
        assert set(counts) == {(j, c) for j in range(n) for c in combinations(sorted(set(range(n)) - {j}), k)}
    m = comb(n, k) if include_self else n * comb(n - 1, k)
    assert len(counts) == m
    expected = n_post / m
    chi2 = sum((c - expected) ** 2 / expected for c in counts.values())
    assert chi2 < m - 1 + 6 * np.sqrt(2 * (m - 1)), (chi2, m)  # chi-square with m - 1 df, < 6 sd above


def test_fixed_indegree_include_self_keeps_exactly_k():
    rows = _indegree_rows(*jn.conn.fixed_indegree(9, seed=0, include_self=False)(10, 10, same=True), 10, 9)
    assert not np.any(rows == np.arange(10)[:, None])  # all but itself
    rows = _indegree_rows(*jn.conn.fixed_indegree(3, seed=0, include_self=False)(10, 10, same=False), 10, 3)
    with pytest.raises(ValueError, match=r"k=10 exceeds the 9 pre compartments other than the post itself"):
        jn.conn.fixed_indegree(10, include_self=False)(10, 10, same=True)
    # Sides that overlap without being the same list: the network gives the rule both
    # sides' compartments, so every post still receives exactly k, none from itself
    # (dropping self-pairs after the draw left k - 1 to some posts).
    for pre_side, post_side in [(("a", list(range(8))), ("a", list(range(2, 10)))),
                                ("a", ("a", list(range(9, -1, -1))))]:
        for k in (3, 7):
            net = jn.Network({"a": jn.LIF(n=10)}, [jn.ExpCurrentSynapse(
                pre_side, post_side, jn.conn.fixed_indegree(k, seed=1, include_self=False), 0.1, 2.0)])
            syn = net.couplings[0]
            pi, po = np.asarray(syn.pre_index), np.asarray(syn.post_index)
            assert not np.any(pi == po)
            posts, degree = np.unique(po, return_counts=True)
            np.testing.assert_array_equal(posts, sorted(set(post_side[1])))
            assert np.all(degree == k)
            assert len(set(zip(pi.tolist(), po.tolist()))) == len(pi)  # distinct pre per post
    with pytest.raises(ValueError, match=r"k=8 exceeds the 7 pre compartments other than the post itself \(8 on"):
        jn.Network({"a": jn.LIF(n=10)}, [jn.ExpCurrentSynapse(
            ("a", list(range(8))), ("a", list(range(2, 10))), jn.conn.fixed_indegree(8, include_self=False), 0.1, 2.0)])
    # With include_self (the default) a post may draw itself.
    rows = _indegree_rows(*jn.conn.fixed_indegree(10)(10, 10, same=True), 10, 10)
    assert np.all(rows == np.arange(10))


def test_fixed_indegree_uniform_where_sides_overlap_in_part():
    # Pre 0..199, posts 100..299 twenty times each: posts 100..199 draw from the 199
    # others, posts 200..299 from all 200 (rows of two sizes, drawn together).
    pre_glob, post_glob = np.arange(200), np.tile(np.arange(100, 300), 20)
    k = 20
    pi, po = jn.conn.connect(jn.conn.fixed_indegree(k, seed=4, include_self=False), pre_glob, post_glob)
    assert np.all(np.bincount(po, minlength=post_glob.size) == k)
    g_pre, g_post = pre_glob[pi], post_glob[po]
    assert not np.any(g_pre == g_post)
    for sel, n_avail in ((g_post < 200, 199), (g_post >= 200, 200)):
        p = k / n_avail
        # Pre i ≥ 100 is never drawn by the 20 posts that are itself.
        posts = np.where((np.arange(200) >= 100) & (n_avail == 199), 2000 - 20, 2000)
        expected = posts * p
        deg = np.bincount(g_pre[sel], minlength=200)
        stat = np.sum((deg - expected) ** 2 / (expected * (1 - p)))
        assert abs(stat - 200) < 5 * np.sqrt(2 * 200), stat


def test_fixed_indegree_costs_time_in_connections_not_n_squared():
    # Brunel-sized: 10^4 x 10^4 with k = 1000 is 10^7 connections (~1.2 s here).
    n, k = 10_000, 1000
    start = time.perf_counter()
    pre, post = jn.conn.fixed_indegree(k, seed=0, include_self=False)(n, n, same=True)
    assert time.perf_counter() - start < 10.0
    assert pre.shape == (n * k,) and not np.any(pre == post)
    deg = np.bincount(post, minlength=n)
    assert np.all(deg == k)


def test_fixed_indegree_arguments_equality_and_repr():
    rule = jn.conn.fixed_indegree(5, seed=2)
    assert repr(rule) == "fixed_indegree(k=5, seed=2, include_self=True)"
    assert rule == jn.conn.fixed_indegree(5.0, seed=2) and hash(rule) == hash(jn.conn.fixed_indegree(5, seed=2))
    assert rule != jn.conn.fixed_indegree(5, seed=3) and rule != jn.conn.fixed_indegree(4, seed=2)
    assert rule != jn.conn.fixed_indegree(5, seed=2, include_self=False)
    assert rule != jn.conn.fixed_prob(0.5, seed=2)
    assert jn.conn.fixed_indegree(5, seed=None) != jn.conn.fixed_indegree(5, seed=None)  # each its own draw
    for bad in (-1, 1.5, "3", True, np.array([1, 2]), np.inf):
        with pytest.raises(ValueError, match="fixed_indegree: k expects a non-negative whole number"):
            jn.conn.fixed_indegree(bad)
    with pytest.raises(ValueError, match="fixed_indegree: seed expects a non-negative integer"):
        jn.conn.fixed_indegree(3, seed=-1)
    with pytest.raises(ValueError, match="fixed_indegree: include_self expects True or False"):
        jn.conn.fixed_indegree(3, include_self=0)
    assert jn.conn.fixed_indegree(np.int64(3))(4, 2)[0].shape == (6,)


def test_explicit_and_callable_rules():
    net = jn.Network({"a": jn.LIF(n=3), "b": jn.LIF(n=2)},
                     [jn.SymmetricGapJunction("a", "b", ([0, 2], [1, 1]), 0.1),
                      jn.SymmetricGapJunction("a", "b", jn.conn.explicit([1], [0]), 0.1),
                      jn.SymmetricGapJunction("a", "a", lambda n_pre, n_post: ([0], [2]), 0.1),
                      jn.SymmetricGapJunction("b", "b", jn.conn.all_to_all, 0.1)])  # factory, uncalled
    idx = [(np.asarray(c.pre_index).tolist(), np.asarray(c.post_index).tolist()) for c in net.couplings]
    assert idx[0] == ([0, 2], [4, 4])  # global flat indices: "b" starts at 3
    assert idx[1] == ([1], [3])
    assert idx[2] == ([0], [2])
    assert len(idx[3][0]) == 4
    with pytest.raises(ValueError, match=r"lie in \[0, 2\)"):
        jn.Network({"a": jn.LIF(n=3), "b": jn.LIF(n=2)}, [jn.SymmetricGapJunction("a", "b", ([0], [5]), 0.1)])
    # Two (pre, post) pairs in a tuple were read as (pre_ids, post_ids): 0→2 and 1→0
    # for the connections 0→1 and 2→0, silently; the same pairs in a list are refused.
    with pytest.raises(ValueError, match=r"conn=\(\(0, 1\), \(2, 0\)\) is ambiguous: the connections 0→1 and 2→0, "
                                         r"or pre_ids \(0, 1\) with post_ids \(2, 0\) \(0→2 and 1→0\)\?"):
        jn.ExpSynapse("a", "b", ((0, 1), (2, 0)), 0.01)
    with pytest.raises(ValueError, match=r"for a list of \(pre, post\) pairs: jn\.conn\.explicit\(\*zip\(\*pairs\)\)"):
        jn.ExpSynapse("a", "b", [(0, 1), (2, 0)], 0.01)
    pairs = [(0, 1), (2, 0)]
    assert jn.conn.resolve(jn.conn.explicit(*zip(*pairs)), 3, 3, False)[1].tolist() == [1, 0]


# --- composition ------------------------------------------------------------------------
def test_uncoupled_network_equals_separate_simulations():
    a, b = jn.LIF(n=3, EL=-65.0), soma(2)
    net = jn.Network(populations={"a": a, "b": b})
    stims_net = [jn.StepCurrent(2.5, 5.0, 20.0, target="a"), jn.StepCurrent(0.3, 2.0, 10.0, target=("b", [1]))]
    solver = jn.StaggeredEuler()
    tr = jn.simulate(net, 30.0, stimuli=stims_net, solver=solver)
    ta = jn.simulate(a, 30.0, stimuli=[jn.StepCurrent(2.5, 5.0, 20.0)], solver=solver)
    tb = jn.simulate(b, 30.0, stimuli=[jn.StepCurrent(0.3, 2.0, 10.0, target=[1])], v0=-65.0, solver=solver)
    np.testing.assert_allclose(tr["a"].v, ta.v, rtol=0, atol=1e-12)
    np.testing.assert_allclose(tr["a"].spikes, ta.spikes, rtol=0, atol=1e-12)
    np.testing.assert_allclose(tr["b"].v, tb.v, rtol=0, atol=1e-12)
    assert np.isfinite(tr["a"].spikes).sum() >= 3 and tr["b"].v[:, 1].max() > 0  # both fire
    assert tr["b"].v[:, 0].max() < -60
    assert tr["b"].spikes is None


def test_populations_gates_are_linearised_together_not_one_by_one(monkeypatch):
    """The default solver linearises the gates it advances from the vector field (a
    network's HH populations') with one JVP per gate shared by all populations, whose
    gates do not depend on each other: the network's vector field is traced as often
    for three populations as for one (it was traced once more per population and
    gate, which made a network's compile time grow with the square of its
    populations), and each population's voltages are its own."""
    def hh(gnabar, n):
        return jn.Compartment(length=20.0, diam=20.0, n=n, channels=[jn.channels.HH(gnabar=gnabar)])

    pops = {"a": hh(0.12, 2), "b": hh(0.1, 3), "c": hh(0.14, 1)}
    drive = {"a": 0.1, "b": 0.3, "c": 0.2}
    calls = []
    traced = jn.Network.vector_field

    def counted(self, t, state, i_inj):
        calls.append(1)
        return traced(self, t, state, i_inj)

    def traces(names):
        net = jn.Network({k: pops[k] for k in names})
        stimuli = [jn.StepCurrent(drive[k], 1.0, 1e9, target=k) for k in names]
        del calls[:]
        with monkeypatch.context() as m:
            m.setattr(jn.Network, "vector_field", counted)
            jax.make_jaxpr(lambda net: jn.simulate(net, 1.0, stimuli=stimuli)["a"].v)(net)
        return len(calls)

    assert traces(["a", "b", "c"]) == traces(["a"])
    together = jn.simulate(jn.Network(pops), 20.0, stimuli=[jn.StepCurrent(drive[k], 1.0, 1e9, target=k) for k in pops])
    for k, pop in pops.items():
        alone = jn.simulate(jn.Network({k: pop}), 20.0, stimuli=[jn.StepCurrent(drive[k], 1.0, 1e9, target=k)])
        np.testing.assert_array_equal(together[k].v, alone[k].v)
        assert float(jnp.max(alone[k].v)) > 0  # each fires


def test_v0_per_population_by_name():
    # v0={"a": ..., "b": ...} was refused ("expects a number in mV"); a flat array in
    # population order worked but was documented nowhere.
    a, b = jn.LIF(n=3, EL=-65.0), soma(2)
    net = jn.Network(populations={"a": a, "b": b})
    tr = jn.simulate(net, 1.0, v0={"b": [-60.0, -50.0]}, dt=0.025)
    np.testing.assert_array_equal(tr["a"].v[0], np.full(3, float(a.default_v0)))  # its own default
    np.testing.assert_array_equal(tr["b"].v[0], [-60.0, -50.0])
    flat = jn.simulate(net, 1.0, v0=np.array([-70.0, -70.0, -70.0, -60.0, -50.0]), dt=0.025)
    by_name = jn.simulate(net, 1.0, v0={"a": -70.0, "b": [-60.0, -50.0]}, dt=0.025)
    np.testing.assert_array_equal(by_name["b"].v, flat["b"].v)
    np.testing.assert_array_equal(by_name["a"].v, flat["a"].v)
    with pytest.raises(ValueError, match=r"v0 names \['c'\], not populations of this network"):
        jn.simulate(net, 1.0, v0={"c": -60.0})
    with pytest.raises(ValueError, match=r"v0\['b'\] expects a scalar or one value per compartment of 'b' \(shape \(2,\)\)"):
        jn.simulate(net, 1.0, v0={"b": [-60.0, -50.0, -40.0]})
    with pytest.raises(ValueError, match=r"v0\['b'\].*voltage|v0\['b'\].*mV"):
        jn.simulate(net, 1.0, v0={"b": 2.0 * u.nA})
    with pytest.raises(ValueError, match="v0 as a dict .* is for a Network"):
        jn.simulate(a, 1.0, v0={"a": -60.0})


def test_t1_off_the_step_grid_samples_every_population_there():
    # A Network's records are dicts over populations: the sample added at t1 raised
    # AttributeError ('dict' object has no attribute 'dtype').
    a, b = jn.LIF(n=3, EL=-65.0), soma(2)
    net = jn.Network(populations={"a": a, "b": b})
    solver = jn.StaggeredEuler()
    tr = jn.simulate(net, 12.01, stimuli=[jn.StepCurrent(2.5, 5.0, 20.0, target="a")], solver=solver)
    ta = jn.simulate(a, 12.01, stimuli=[jn.StepCurrent(2.5, 5.0, 20.0)], solver=solver)
    tb = jn.simulate(b, 12.01, v0=-65.0, solver=solver)
    assert float(tr.t[-1]) == pytest.approx(12.01) and float(tr.t[-2]) == pytest.approx(12.0)
    np.testing.assert_allclose(tr["a"].v, ta.v, rtol=0, atol=1e-12)
    np.testing.assert_allclose(tr["b"].v, tb.v, rtol=0, atol=1e-12)
    assert np.isfinite(tr["a"].spikes).sum() >= 1


def test_default_solver_and_gates_layout():
    lifs = jn.Network({"a": jn.LIF(n=2), "b": jn.LIF(n=3)})
    assert lifs.default_solver() == jn.StaggeredEuler(voltage_update="exponential")
    gap = jn.Network({"a": jn.LIF(n=2), "b": jn.LIF(n=3)}, [jn.SymmetricGapJunction("a", "b", jn.conn.all_to_all(), 0.1)])
    assert gap.default_solver() == jn.StaggeredEuler(voltage_update="backward_euler")
    with pytest.raises(ValueError, match="independent"):
        jn.simulate(gap, 1.0, solver=jn.StaggeredEuler(voltage_update="exponential"))
    mixed = jn.Network({"cell": soma(), "lif": jn.LIF(n=2)})
    state = mixed.init_state(-65.0)
    assert state.v.shape == (3,) and set(state.gates) == {"cell"} and set(state.events) == {"lif"}
    assert mixed.default_solver() == jn.StaggeredEuler()


def test_stimulus_targets_and_errors():
    net = jn.Network({"a": jn.LIF(n=3), "b": jn.LIF(n=2)})
    np.testing.assert_array_equal(net.place_current("b", 1.0), [0, 0, 0, 1, 1])
    np.testing.assert_array_equal(net.place_current(("a", [0, 2]), 2.0), [2, 0, 2, 0, 0])
    np.testing.assert_array_equal(net.place_current(None, 1.0), [1, 1, 1, 1, 1])
    with pytest.raises(ValueError, match="no population 'c'"):
        net.place_current("c", 1.0)
    with pytest.raises(ValueError, match="by name"):
        net.place_current(3, 1.0)
    with pytest.raises(ValueError, match="needs a jn.Network"):
        jn.simulate(jn.LIF(n=2), 1.0, stimuli=[jn.StepCurrent(1.0, target="a")])
    with pytest.raises(ValueError, match="non-empty dict"):
        jn.Network({})
    with pytest.raises(ValueError, match="jaxneuro model"):
        jn.Network({"a": 3})


def test_trace_access_and_errors():
    net = jn.Network({"a": jn.LIF(n=3), "b": soma()})
    tr = jn.simulate(net, 5.0, record=("v", "i_gap"), save_every=1.0)
    assert tr["a"].v.shape == (6, 3) and tr["b"].v.shape == (6,)
    assert tr["a"].spikes.shape == (3, 100)
    np.testing.assert_array_equal(tr["a"].i_gap, 0.0)
    with pytest.raises(KeyError, match="the trace has"):
        tr["c"]
    with pytest.raises(AttributeError, match=r"trace\[population\]"):
        tr.v
    np.testing.assert_allclose(tr.window(2.0, 4.0)["a"].t, [2.0, 3.0, 4.0])
    assert tr.at(2.5)["b"].v.shape == ()


def test_compartments_addressed_by_flat_index():
    # A population of compartments stands in for the segments of a multicompartment
    # cell: junctions reach single compartments by their flat index into state.v.
    cells = jn.Compartment(area=1000.0, n=4, channels=[jn.channels.Leak(g=1e-4, e=-70)])
    net = jn.Network({"cell": cells, "lif": jn.LIF(n=2, V_th=0.0)},
                     [jn.SymmetricGapJunction(("cell", [3]), ("lif", [1]), jn.conn.one_to_one, 0.01)])
    np.testing.assert_array_equal(net.couplings[0].pre_index, [3])
    np.testing.assert_array_equal(net.couplings[0].post_index, [5])
    tr = jn.simulate(net, 200.0, dt=0.5, save_every=200.0, v0=-70.0, stimuli=[jn.StepCurrent(0.5, 0, np.inf, target=("lif", 1))])
    v_cell, v_lif = np.asarray(tr["cell"].v[-1]) + 70, np.asarray(tr["lif"].v[-1]) + 70
    np.testing.assert_allclose(v_cell[:3], 0.0, atol=1e-12)
    g, gl_cell, gl_lif = 0.01, 1e-3, 0.1
    G = np.array([[gl_cell + g, -g], [-g, gl_lif + g]])
    np.testing.assert_allclose([v_cell[3], v_lif[1]], np.linalg.solve(G, [0.0, 0.5]), rtol=1e-6)


def test_rebuilt_networks_are_the_same_static_configuration():
    # conn is static: rules compare by value, (pre_ids, post_ids) arrays become an
    # explicit rule, so a network built again with the same rules has the same tree
    # structure (jit does not compile again) and arrays do not break the comparison.
    cells = soma(3)
    rules = [lambda: jn.conn.all_to_all(include_self=False), lambda: jn.conn.fixed_prob(0.5, seed=3),
             lambda: jn.conn.fixed_indegree(2, seed=3),
             lambda: jn.conn.explicit(np.array([0, 1]), np.array([1, 2])), lambda: (np.array([0, 1]), np.array([1, 2])),
             lambda: jn.conn.one_to_one]
    for make in rules:
        nets = [jn.Network({"a": cells, "b": soma(3)} if make is rules[-1] else {"a": cells},
                           [jn.SymmetricGapJunction("a", "b" if make is rules[-1] else "a", make(), g)]) for g in (1e-3, 2e-3)]
        assert jax.tree.structure(nets[0]) == jax.tree.structure(nets[1])
    assert jn.conn.fixed_prob(0.5, seed=1) != jn.conn.fixed_prob(0.5, seed=2)
    assert jn.conn.explicit([0], [1]) != jn.conn.explicit([1], [0])
    assert jn.conn.fixed_prob(0.5, seed=None) != jn.conn.fixed_prob(0.5, seed=None)  # each its own draw


def test_cable_locations_in_networks_and_two_index_targets():
    # A junction side at a location on a one-section cable (bare x or (0, x)) is that
    # segment; a stimulus target of two integers on a cable is two segment indices,
    # not a location (section, x).
    cab = jn.Cable(length=300.0, diam=2.0, nseg=3, channels=[jn.channels.Leak(g=1e-4, e=-70.0)])

    def net(side):
        return jn.Network({"s": soma(), "cab": cab}, [jn.SymmetricGapJunction("s", side, jn.conn.one_to_one, 0.002)])

    for side in (("cab", 0.9), ("cab", (0, 0.9)), ("cab", [(0, 0.9)])):
        np.testing.assert_array_equal(net(side).couplings[0].post_index, [1 + 2])
    with pytest.raises(ValueError, match="one-section"):
        cell = jn.Cell([cab, cab], parents=[None, 0])
        jn.Network({"s": soma(), "c": cell}, [jn.SymmetricGapJunction("s", ("c", 0.5), jn.conn.one_to_one, 0.002)])
    i_inj = jn.simulate(cab, 0.05, stimuli=[jn.StepCurrent(0.05, target=[0, 1])], record="i_inj").i_inj[1]
    np.testing.assert_allclose(i_inj, [0.05, 0.05, 0.0])


def test_bad_stimulus_targets_amplitudes_and_initial_voltages_are_named():
    pop = soma(3)
    with pytest.raises(ValueError, match="target expects"):
        jn.StepCurrent(0.1, target=True)
    with pytest.raises(ValueError, match="target expects"):
        jn.StepCurrent(0.1, target=("a", True))
    with pytest.raises(ValueError, match=r"current of shape \(3,\) does not fit target=\(0, 1\)"):
        jn.simulate(pop, 1.0, stimuli=[jn.StepCurrent(jnp.array([0.1, 0.2, 0.3]), target=[0, 1])])
    with pytest.raises(ValueError, match=r"v0 expects a scalar or one value per compartment \(shape \(3,\)\)"):
        jn.simulate(pop, 1.0, v0=np.array([-65.0, -70.0]))
    net = jn.Network({"a": pop, "b": soma(2)})
    with pytest.raises(ValueError, match=r"v0 expects .*\(shape \(5,\)\)"):
        jn.simulate(net, 1.0, v0=np.zeros(3))


def test_stimulus_index_error_names_the_population_and_target():
    net = jn.Network({"a": jn.LIF(n=2), "b": jn.LIF(n=3)}, [])
    with pytest.raises(ValueError, match=r"target=\('a', \(7,\)\).*population 'a'.*out of range for 2"):
        jn.simulate(net, 1.0, stimuli=[jn.StepCurrent(1.0, 0.0, 1.0, target=("a", [7]))])


def test_current_densities_in_a_network_take_each_targeted_populations_area():
    """A density aimed at a cable population is its segments' areas times the density,
    the same as on the cable alone; at a population of compartments, each neuron's
    area; a point neuron built without an area is named when targeted."""
    import saiunit as u

    cable = jn.Cable(length=500, diam=2, nseg=11, channels=[jn.channels.Leak(g=1e-4, e=-65.0)])
    somata = jn.Compartment(area=jnp.array([500.0, 1000.0]), channels=[jn.channels.Leak(g=1e-4, e=-65.0)], n=2)
    net = jn.Network(populations={"pts": jn.LIF(n=3), "cab": cable, "som": somata})
    density = 2 * u.uA / u.cm**2
    stimuli = [jn.StepCurrent(density, 1.0, 5.0, target="cab"), jn.StepCurrent(density, 1.0, 5.0, target="som")]
    trace = jn.simulate(net, 8.0, stimuli=stimuli, record=("v", "i_inj"))
    alone = jn.simulate(cable, 8.0, stimuli=[jn.StepCurrent(density, 1.0, 5.0)], record=("v", "i_inj"))
    np.testing.assert_allclose(trace["cab"].v, alone.v, rtol=0, atol=1e-12)
    np.testing.assert_allclose(trace["cab"].i_inj, alone.i_inj, rtol=0, atol=1e-15)
    # 2 µA/cm² on 500 and 1000 µm²: 2e-3 mA/cm² · area · 1e-8 cm²/µm² · 1e6 nA/mA = 2e-5 · area nA.
    np.testing.assert_allclose(np.asarray(trace["som"].i_inj)[100], [0.01, 0.02], rtol=1e-12)
    np.testing.assert_array_equal(np.asarray(trace["pts"].i_inj), 0.0)
    with pytest.raises(ValueError, match="population 'pts'.*membrane area"):
        jn.simulate(net, 1.0, stimuli=[jn.StepCurrent(density, target="pts")])


def test_connection_indices_rewritten_by_a_tree_map_are_refused():
    # The indices the network fills in are leaves of the model: jax.tree.map(x * 2) over
    # every leaf moved them out of range, and the synapses delivered nothing, silently;
    # a cast to float failed deep in JAX naming no field.
    net = jn.Network({"a": jn.LIF(n=4), "b": jn.LIF(n=4)}, [jn.ExpSynapse("a", "b", jn.conn.one_to_one, 0.05, 5.0)])
    with pytest.raises(ValueError, match=r"couplings\[0\] \('coupling0'\)\.post_index expects indices in \[0, 8\), "
                                         r"got values from 8 to 14: it is set by the Network"):
        jn.simulate(jax.tree.map(lambda x: x * 2, net), 1.0)
    with pytest.raises(ValueError, match=r"\.pre_index expects integer indices, got an array of float"):
        jn.simulate(jax.tree.map(lambda x: x * 1.1, net), 1.0)
    with pytest.raises(ValueError, match=r"\.pre_local expects indices in \[0, 4\)"):
        jn.simulate(eqx.tree_at(lambda n: n.couplings[0].pre_local, net, jnp.array([0, 1, 2, 7], jnp.int32)), 1.0)
    scaled = jax.tree.map(lambda x: x * 2 if eqx.is_inexact_array(x) else x, net)  # parameters only: runs
    jn.simulate(scaled, 1.0)


def test_coupling_sides_take_negative_indices_as_stimulus_targets_do():
    # ("p", [-1]) is the last neuron, as a stimulus target's -1 is (it was refused).
    lif = jn.LIF(n=5, V_th=jnp.inf)
    src = jn.SpikeTrains([[1.0]])
    end = jn.Network({"s": src, "p": lif}, [jn.DeltaSynapse("s", ("p", [-1]), jn.conn.all_to_all(), 2.0)])
    last = jn.Network({"s": src, "p": lif}, [jn.DeltaSynapse("s", ("p", [4]), jn.conn.all_to_all(), 2.0)])
    np.testing.assert_array_equal(np.asarray(end.couplings[0].post_index), np.asarray(last.couplings[0].post_index))
    v = np.asarray(jn.simulate(end, 3.0, dt=0.1, v0=-70.0, record=("v",))["p"].v)[-1]
    assert v[4] > -68.5 and np.all(v[:4] == -70.0)
    with pytest.raises(ValueError, match=r"indices must lie in \[-5, 5\) \(negative ones count from the end"):
        jn.Network({"s": src, "p": lif}, [jn.DeltaSynapse("s", ("p", [-6]), jn.conn.all_to_all(), 2.0)])
