"""Gap junctions: BrainPy's weight convention, circuit solutions, implicit stiff solve,
seed 003, gradients."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import saiunit as u
import scipy.linalg

import jaxneuro as jn


def passive_lif(n=None, C=1.0, gL=0.1, EL=-70.0):
    return jn.LIF(n=n, C=C, gL=gL, EL=EL, V_th=np.inf)


# --- convention -------------------------------------------------------------------------
def test_asymmetric_weights_follow_brainpy_seed_003():
    # BrainPy itself, weights [2, 1] nS, V_pre -60, V_post -70: +20 pA into post,
    # -10 pA into pre (the figure on BrainPy's gap-junction page).
    net = jn.Network({"pre": passive_lif(3), "post": passive_lif(3)},
                     [jn.AsymmetryGapJunction("pre", "post", jn.conn.one_to_one, np.array([2.0, 1.0]) * u.nS)])
    state = net.init_state(jnp.concatenate([jnp.full(3, -60.0), jnp.full(3, -70.0)]))
    i_gap, _ = net.coupling_currents(0.0, state)
    np.testing.assert_allclose(i_gap[3:], 0.020, rtol=1e-12)  # nA into post
    np.testing.assert_allclose(i_gap[:3], -0.010, rtol=1e-12)  # nA into pre


def test_aliases_and_units():
    # BrainPy's names make jaxneuro's junctions, with BrainPy's keywords too (seed 003's
    # call with weight= and pre_state= was a TypeError).
    assert isinstance(jn.SymmetryGapJunction("pre", "post", jn.conn.one_to_one, 0.1), jn.SymmetricGapJunction)
    seed = jn.AsymmetryGapJunction(pre="pre", pre_state="V", post="post", post_state="V", conn=jn.conn.one_to_one,
                                   weight=np.array([2.0, 1.0]) * u.nS)
    assert isinstance(seed, jn.AsymmetricGapJunction)
    np.testing.assert_allclose(seed.g, [0.002, 0.001])
    with pytest.raises(ValueError, match=r"AsymmetryGapJunction: pre_state expects 'V'.* got 'spike'"):
        jn.AsymmetryGapJunction(pre="pre", pre_state="spike", post="post", conn=jn.conn.one_to_one, weight=[1.0, 1.0])
    with pytest.raises(ValueError, match=r"SymmetryGapJunction: give weight .* or g, not both"):
        jn.SymmetryGapJunction(pre="pre", post="post", conn=jn.conn.one_to_one, g=0.1, weight=0.1)
    gap = jn.SymmetricGapJunction("a", "a", jn.conn.all_to_all(), 3 * u.nS)
    assert float(gap.g) == pytest.approx(3e-3)  # µS
    with pytest.raises(ValueError, match="conductance"):
        jn.SymmetricGapJunction("a", "b", jn.conn.one_to_one, 3 * u.mV)
    with pytest.raises(ValueError, match=r"shape \(2,\) or \(n_connections, 2\)"):
        jn.AsymmetricGapJunction("a", "b", jn.conn.one_to_one, 1.0)
    with pytest.raises(ValueError, match="one value per connection"):
        jn.Network({"a": passive_lif(4), "b": passive_lif(4)},
                   [jn.SymmetricGapJunction("a", "b", jn.conn.one_to_one, jnp.ones(3))])
    with pytest.raises(ValueError, match="not a population"):
        jn.Network({"a": passive_lif(4)}, [jn.SymmetricGapJunction("a", "zz", jn.conn.one_to_one, 1.0)])


def test_symmetric_currents_sum_to_zero():
    rng = np.random.default_rng(1)
    n = 200
    gap = jn.SymmetricGapJunction("a", "a", jn.conn.fixed_prob(0.05, seed=3), 1.0)
    m = jn.Network({"a": passive_lif(n)}, [gap]).couplings[0].n_connections
    g = rng.uniform(0.01, 2.0, m)  # one conductance per connection
    net = jn.Network({"a": passive_lif(n), "b": passive_lif(50)},
                     [jn.SymmetricGapJunction("a", "a", jn.conn.fixed_prob(0.05, seed=3), g),
                      jn.SymmetricGapJunction("a", "b", jn.conn.fixed_prob(0.1, seed=4), 0.3)])
    v = jnp.asarray(rng.uniform(-80, 0, n + 50))
    i_gap, _ = net.coupling_currents(0.0, net.init_state(v))
    scale = np.sum(np.abs(np.asarray(i_gap)))
    assert scale > 100.0  # plenty of current flows...
    assert abs(float(jnp.sum(i_gap))) < 1e-12 * scale  # ...and none is created


# --- circuit solutions ------------------------------------------------------------------
def _two_cells(gap, cells):
    return jn.Network({"one": cells[0], "two": cells[1]}, [gap])


def _steady(net, inject, amp=0.5, t1=300.0, dt=0.1):
    stim = jn.StepCurrent(amp, 0.0, np.inf, target=inject)
    tr = jn.simulate(net, t1, dt=dt, stimuli=[stim], save_every=t1)
    return np.array([float(tr["one"].v[-1]), float(tr["two"].v[-1])])


def test_symmetric_pair_matches_circuit_solution():
    # Two passive somata of different size (seed 001's membrane), coupled by g µS.
    soma = lambda d: jn.Compartment(length=100, diam=d, channels=[jn.channels.Leak(g=1e-4, e=-70)])
    cells = (soma(500.0), soma(100.0))
    gl = [1e-4 * np.pi * 100 * d * 1e-2 for d in (500.0, 100.0)]  # µS
    g = 0.02
    net = _two_cells(jn.SymmetricGapJunction("one", "two", jn.conn.one_to_one, g), cells)
    G = np.array([[gl[0] + g, -g], [-g, gl[1] + g]])
    for k, target in enumerate(("one", "two")):
        rhs = np.zeros(2)
        rhs[k] = 0.5
        exact = np.linalg.solve(G, rhs)  # mV deflections
        got = _steady(net, target, dt=0.1, t1=1500.0) + 70.0
        np.testing.assert_allclose(got, exact, rtol=1e-6)
        other = 1 - k
        assert got[other] / got[k] == pytest.approx(g / (gl[other] + g), rel=1e-6)  # coupling coefficient


def test_asymmetric_pair_matches_circuit_solution_both_ways():
    cells = (passive_lif(C=1.0, gL=0.1), passive_lif(C=0.5, gL=0.05))
    g0, g1 = 0.08, 0.02  # pre→post (into "two"), post→pre (into "one")
    net = _two_cells(jn.AsymmetricGapJunction("one", "two", jn.conn.one_to_one, jnp.array([g0, g1])), cells)
    # one: C dV1/dt = -gL1 V1 + g1 (V2 - V1) + I1;  two: ... + g0 (V1 - V2) + I2
    G = np.array([[0.1 + g1, -g1], [-g0, 0.05 + g0]])
    got = {}
    for k, target in enumerate(("one", "two")):
        rhs = np.zeros(2)
        rhs[k] = 0.5
        got[target] = _steady(net, target) + 70.0
        np.testing.assert_allclose(got[target], np.linalg.solve(G, rhs), rtol=1e-8)
    # The stronger direction couples more: CC(one→two) = g0/(gL2+g0) > CC(two→one).
    assert got["one"][1] / got["one"][0] == pytest.approx(g0 / (0.05 + g0), rel=1e-8)
    assert got["two"][0] / got["two"][1] == pytest.approx(g1 / (0.1 + g1), rel=1e-8)


def test_seed_003_runs_and_pre_to_post_is_stronger():
    # Seed 003, line by line. brainpy.LIF(n, V_rest, V_threshold) -> jn.LIF(n=..., EL, V_th);
    # saiunit refuses weights[:, 0] *= 2.0 on a Quantity, so the plain array is doubled
    # before nS is attached (the seed's intent). Neurons start at rest.
    n_neurons = 100
    pre_pop = jn.LIF(n=n_neurons, EL=-70 * u.mV, V_th=-50 * u.mV)
    post_pop = jn.LIF(n=n_neurons, EL=-70 * u.mV, V_th=-50 * u.mV)
    weights = np.ones((n_neurons, 2))
    weights[:, 0] *= 2.0  # Double weight in pre->post direction
    weights = weights * u.nS
    gap_junction = jn.AsymmetryGapJunction(pre="pre", post="post", conn=jn.conn.one_to_one, g=weights)
    net = jn.Network(populations={"pre": pre_pop, "post": post_pop}, couplings=[gap_junction])

    # Depolarise half of pre (subthreshold), then half of post, and read the far side.
    half = np.arange(50)
    stims = [jn.StepCurrent(1.0, 10.0, 300.0, target=("pre", half)),
             jn.StepCurrent(1.0, 10.0, 300.0, target=("post", half + 50))]
    tr = jn.simulate(net, 250.0, stimuli=stims, save_every=1.0)
    pre_v, post_v = np.asarray(tr["pre"].v[-1]), np.asarray(tr["post"].v[-1])
    assert tr["pre"].v.shape == (tr.t.shape[0], n_neurons)
    assert tr["pre"].spikes.shape[0] == n_neurons and np.all(np.isinf(tr["pre"].spikes))
    # Steady state of the 2x2 circuit per pair (gL = 0.1 µS, g0 = 2 nS, g1 = 1 nS).
    gl, g0, g1 = 0.1, 2e-3, 1e-3
    G = np.array([[gl + g1, -g1], [-g0, gl + g0]])
    fwd = np.linalg.solve(G, [1.0, 0.0])  # drive pre
    bwd = np.linalg.solve(G, [0.0, 1.0])  # drive post
    np.testing.assert_allclose(post_v[:50] + 70, fwd[1], rtol=1e-5)
    np.testing.assert_allclose(pre_v[50:] + 70, bwd[0], rtol=1e-5)
    assert (post_v[0] + 70) / (pre_v[0] + 70) == pytest.approx(2 * (pre_v[50] + 70) / (post_v[50] + 70), rel=0.03)


# --- stiffness: implicit coupling -------------------------------------------------------
@pytest.mark.parametrize("kind", ["symmetric", "asymmetric"])
def test_stiff_gap_onto_small_compartment_is_stable_and_accurate(kind):
    # A neuron (C 1 nF, gL 0.1 µS) coupled by g = 100·gL = 10 µS to a tiny compartment
    # (C 0.01 nF): the fast mode's rate (g/C ≈ 1000/ms) is 25 times 1/dt.
    C = np.array([1.0, 0.01])
    gL = np.array([0.1, 0.001])
    g = 10.0
    if kind == "symmetric":
        gap = jn.SymmetricGapJunction("big", "small", jn.conn.one_to_one, g)
        Gmat = np.array([[-g, g], [g, -g]])
    else:
        gap = jn.AsymmetricGapJunction("big", "small", jn.conn.one_to_one, jnp.array([g, 0.5 * g]))
        Gmat = np.array([[-0.5 * g, 0.5 * g], [g, -g]])
    net = jn.Network({"big": passive_lif(C=1.0, gL=0.1), "small": passive_lif(C=0.01, gL=0.001)}, [gap])
    assert net.default_solver() == jn.StaggeredEuler(voltage_update="backward_euler")
    dt, t1 = 0.025, 20.0
    v0 = np.array([-60.0, -80.0])
    tr = jn.simulate(net, t1, dt=dt, v0=jnp.asarray(v0), stimuli=[jn.StepCurrent(0.3, 5.0, 100.0, target="big")])
    v = np.stack([np.asarray(tr["big"].v), np.asarray(tr["small"].v)], axis=-1)
    assert np.all(np.isfinite(v))
    # 1. The matrix-free implicit solve is exactly dense backward Euler (the gap
    #    diagonal neither lost nor counted twice).
    n = int(round(t1 / dt))
    i_inj = lambda k: np.array([0.3, 0.0]) if (k + 0.5) * dt >= 5.0 else np.zeros(2)
    ref = [v0.copy()]
    M = np.diag(C / dt + gL) - Gmat
    x = v0.copy()
    for k in range(n):
        x = np.linalg.solve(M, C / dt * x + gL * -70.0 + i_inj(k))
        ref.append(x)
    np.testing.assert_allclose(v, np.array(ref), atol=1e-7)
    # 2. Accurate against the exact solution (matrix exponential) once the fast mode
    #    has died out (first order in dt: well under 0.1 mV).
    J = (np.diag(-gL) + Gmat) / C[:, None]
    def exact(t):
        drive = lambda i: -np.linalg.solve(J, (gL * -70.0 + i) / C)  # fixed point
        if t < 5.0:
            vi = drive(np.zeros(2))
            return vi + scipy.linalg.expm(J * t) @ (v0 - vi)
        v5 = exact(5.0 - 1e-12)
        vi = drive(np.array([0.3, 0.0]))
        return vi + scipy.linalg.expm(J * (t - 5.0)) @ (v5 - vi)
    ts = np.asarray(tr.t)
    for t in (2.0, 4.0, 8.0, 12.0, 20.0):
        k = int(round(t / dt))
        np.testing.assert_allclose(v[k], exact(ts[k]), atol=0.06)


def backward_euler_chain(n, g_forward, g_back, t1, dt=0.025, amp=1.0):
    """A chain of default passive LIFs (1 nF, 0.1 µS) joined i -> i+1 by junctions of
    ``g_forward`` into the next and ``g_back`` into the previous (µS), ``amp`` nA into
    the first: backward Euler (the network's implicit step of a linear system) by
    dense NumPy solves. Deflections from rest (mV) at ``t1``."""
    G = np.zeros((n, n))
    i = np.arange(n - 1)
    np.add.at(G, (i + 1, i), g_forward)  # I_post = g[0]·(V_pre − V_post)
    np.add.at(G, (i + 1, i + 1), -g_forward)
    np.add.at(G, (i, i + 1), g_back)  # I_pre = g[1]·(V_post − V_pre)
    np.add.at(G, (i, i), -g_back)
    M = np.eye(n) * (1.0 / dt + 0.1) - G
    x, drive = np.zeros(n), np.eye(n)[0] * amp
    for _ in range(int(round(t1 / dt))):
        x = np.linalg.solve(M, x / dt + drive)
    return x


def test_strong_asymmetric_junctions_in_float32_are_solved():
    """JAX's GMRES measured its preconditioned residual against the unpreconditioned
    right-hand side: with rows of size C/dt + g (µS) it stopped at its starting guess in
    float32, and a pair coupled by 1e5 µS moved 0.02 mV where it moves 5 (symmetric
    junctions, solved by CG, were right). Now equal to dense backward Euler."""
    n, g, dt, t1 = 2, 1e5, 0.025, 5.0
    with jax.enable_x64(False):
        gap = jn.AsymmetricGapJunction("p", "p", ([0], [1]), np.array([g, 0.5 * g], np.float32))
        net = jn.Network({"p": passive_lif(n)}, [gap])
        v = np.asarray(jn.simulate(net, t1, dt=dt, v0=-70.0, save_every=t1,
                                   stimuli=[jn.StepCurrent(1.0, 0.0, 1e9, target=("p", [0]))])["p"].v[-1], np.float64)
    x = backward_euler_chain(n, g, 0.5 * g, t1, dt) - 70.0  # post (1) gets g[0] from pre (0), pre gets g[1]
    assert x[0] + 70.0 > 2.0  # a real deflection
    np.testing.assert_allclose(v, x, rtol=0, atol=2e-3 * (x[0] + 70.0))


def test_coupling_jacobian_matches_autodiff():
    rng = np.random.default_rng(0)
    net = jn.Network(
        {"a": passive_lif(6, C=jnp.asarray(rng.uniform(0.5, 2, 6))),
         "b": jn.Compartment(area=jnp.asarray(rng.uniform(100, 1000, 4)), n=4, channels=[jn.channels.Leak(g=1e-4, e=-65)])},
        [jn.AsymmetricGapJunction("a", "b", jn.conn.fixed_prob(0.5, seed=2), jnp.array([0.05, 0.02])),
         jn.SymmetricGapJunction("a", "a", jn.conn.all_to_all(include_self=True), 0.01)],
    )
    state = net.init_state(jnp.asarray(rng.uniform(-80, -50, 10)))
    # Compiled (op by op, the Jacobian and the ten products compiled some 160 programs).
    J = jax.jit(jax.jacfwd(lambda v: net.vector_field(0.0, jn.State(v, state.gates, state.events),
                                                      jnp.zeros(10)).v))(state.v)
    coupling = net.voltage_coupling()
    A = np.asarray(jax.jit(jax.vmap(coupling.matvec))(jnp.eye(10))).T  # column i: A·e_i
    off = ~np.eye(10, dtype=bool)
    np.testing.assert_allclose(A[off], np.asarray(J)[off], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(A.sum(axis=1), 0.0, atol=1e-13 * np.abs(A).max())  # rows of a gap coupling sum to 0
    # solve((diag d) − A) for the diagonal StaggeredEuler hands over: d = 1/h − rowsum(J)
    d = 40.0 - np.asarray(J).sum(axis=1)
    rhs = jnp.asarray(rng.normal(size=10))
    x = coupling.solve(jnp.asarray(d), rhs)
    np.testing.assert_allclose(np.asarray(x), np.linalg.solve(40.0 * np.eye(10) - np.asarray(J), rhs), rtol=1e-8)


def test_spiking_with_gap_coupling_matches_fine_step():
    # Two driven LIFs (default solver: backward Euler with implicit gaps, spikes found
    # on the linearised flow); spike times at dt=0.025 agree with a 10x finer step.
    def run(dt):
        net = jn.Network({"a": jn.LIF(n=1), "b": jn.LIF(n=1)},
                         [jn.SymmetricGapJunction("a", "b", jn.conn.one_to_one, 0.05)])
        stims = [jn.StepCurrent(4.0, 5.0, 100.0, target="a"), jn.StepCurrent(2.5, 5.0, 100.0, target="b")]
        tr = jn.simulate(net, 60.0, dt=dt, stimuli=stims, save_every=1.0)
        return np.asarray(tr["a"].spikes[0]), np.asarray(tr["b"].spikes[0])

    a1, b1 = run(0.025)
    a2, b2 = run(0.0025)
    for coarse, fine in ((a1, a2), (b1, b2)):
        assert np.isfinite(fine).sum() >= 3
        np.testing.assert_array_equal(np.isfinite(coarse), np.isfinite(fine))
        k = np.isfinite(fine)
        np.testing.assert_allclose(coarse[k], fine[k], atol=0.1)


# --- gradients --------------------------------------------------------------------------
def test_fit_gap_conductance_to_coupling_coefficient():
    target_cc = 0.4  # g/(gL + g) with gL = 0.1 µS -> g = 0.0667 µS

    def coupling_coefficient(g):
        # V_th well above the ~-65 mV reached (never fires; V_th=inf works as well).
        cell = jn.LIF(C=1.0, gL=0.1, EL=-70.0, V_th=0.0)
        net = jn.Network({"one": cell, "two": cell}, [jn.SymmetricGapJunction("one", "two", jn.conn.one_to_one, g)])
        tr = jn.simulate(net, 100.0, dt=1.0, save_every=100.0,
                         stimuli=[jn.StepCurrent(0.5, 0.0, np.inf, target="one")])
        return (tr["two"].v[-1] + 70.0) / (tr["one"].v[-1] + 70.0)

    @jax.jit
    def loss_and_grad(log_g):
        return jax.value_and_grad(lambda lg: (coupling_coefficient(jnp.exp(lg)) - target_cc) ** 2)(log_g)

    # The gradient agrees with finite differences.
    l0, g0 = loss_and_grad(jnp.log(0.02))
    h = 1e-5
    fd = (loss_and_grad(jnp.log(0.02) + h)[0] - loss_and_grad(jnp.log(0.02) - h)[0]) / (2 * h)
    assert float(g0) == pytest.approx(float(fd), rel=1e-5)

    opt = optax.adam(0.1)
    log_g = jnp.log(0.02)
    state = opt.init(log_g)
    for _ in range(150):
        loss, grad = loss_and_grad(log_g)
        updates, state = opt.update(grad, state)
        log_g = optax.apply_updates(log_g, updates)
    g_fit = float(jnp.exp(log_g))
    # Backward Euler's steady state is the exact one: cc = g/(gL+g) up to the 100 ms
    # relaxation (time constants ≤ 10 ms).
    assert g_fit == pytest.approx(target_cc * 0.1 / (1 - target_cc), rel=1e-3)
    assert float(loss) < 1e-8


def test_currents_and_diagonal_equal_the_dense_conductance_matrix():
    # Random asymmetric junctions plus a hub compartment, against G built densely.
    rng = np.random.default_rng(5)
    n = 60
    hub = ([0] * (n - 1), list(range(1, n)))
    conn = jn.conn.fixed_prob(0.1, seed=1)
    m = jn.Network({"a": passive_lif(n)}, [jn.SymmetricGapJunction("a", "a", conn, 1.0)]).couplings[0].n_connections
    g_asym = rng.uniform(0, 1, (m, 2))
    net = jn.Network({"a": passive_lif(n)},
                     [jn.AsymmetricGapJunction("a", "a", conn, jnp.asarray(g_asym)),
                      jn.SymmetricGapJunction("a", "a", hub, 0.2)])
    asym, hubc = net.couplings
    G = np.zeros((n, n))  # current into i = sum_j G[i, j] (v_j - v_i)
    for (pre, post, (g0, g1)) in zip(np.asarray(asym.pre_index), np.asarray(asym.post_index), g_asym):
        if pre != post:
            G[post, pre] += g0
            G[pre, post] += g1
    for pre, post in zip(*hub):
        G[post, pre] += 0.2
        G[pre, post] += 0.2
    v = rng.uniform(-80, -40, n)
    expected = G @ v - G.sum(axis=1) * v
    got = np.asarray(asym.current(jnp.asarray(v)) + hubc.current(jnp.asarray(v)))
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    diag = np.asarray(asym.diagonal(n, jnp.float64) + hubc.diagonal(n, jnp.float64))
    np.testing.assert_allclose(diag, G.sum(axis=1), rtol=1e-12)

def test_one_way_junctions_along_a_chain_are_solved():
    # Rectifying junctions (g[..., 1] = 0: current only into post) along a chain of
    # passive compartments: a triangular system, on which BiCGSTAB broke down (NaN
    # everywhere). Against backward Euler on the dense conductance matrix, and a
    # finite gradient.
    n, g0, dt, t1 = 10, 0.001, 0.025, 1.0
    cells = jn.Compartment(area=1000.0, n=n, channels=[jn.channels.Leak(g=1e-4, e=-70.0)])  # C 0.01 nF, gL 1e-3 µS

    def chain(g):
        gap = jn.AsymmetricGapJunction("x", "x", jn.conn.explicit(np.arange(n - 1), np.arange(1, n)), g)
        return jn.Network({"x": cells}, [gap])

    stim = jn.StepCurrent(0.05, target=("x", 0))

    def run(g):  # the run's voltages, and the one its gradient is taken of
        v = jn.simulate(chain(g), t1, dt=dt, v0=-70.0, stimuli=[stim])["x"].v
        return v[-1, 1], v

    # The run and its gradient as one compiled program (5 compiles; eager, 23).
    (_, v), grad = jax.jit(jax.value_and_grad(run, has_aux=True))(jnp.array([g0, 0.0]))
    v = np.asarray(v)
    G = np.diag(np.full(n, 1e-3))  # µS: leak, then the junctions into post
    for i in range(n - 1):
        G[i + 1, i] -= g0
        G[i + 1, i + 1] += g0
    C, x, ref = 0.01, np.zeros(n), [np.zeros(n)]
    inject = np.eye(n)[0] * 0.05
    for _ in range(round(t1 / dt)):  # deflections from -70 mV, exact for this linear system
        x = np.linalg.solve(np.eye(n) * C / dt + G, C / dt * x + inject)
        ref.append(x)
    ref = np.asarray(ref)[:: round(len(ref) / (v.shape[0] - 1))] - 70.0
    np.testing.assert_allclose(v, ref, atol=1e-10)
    assert v[-1, 3] > -70.0 + 1e-6  # the current reaches down the chain
    assert np.all(np.isfinite(grad)) and float(grad[0]) > 0


@pytest.mark.parametrize("kind", ["symmetric", "asymmetric"])
def test_steady_state_and_input_resistance_of_a_gap_network_have_reverse_mode_gradients(kind):
    # steady_state's derivative solves the gap system for a tangent; reverse mode
    # transposes that solve, which failed (NotImplementedError from JAX) while the
    # iteration's starting point was computed outside the solve from its right-hand
    # side. Reverse mode, forward mode and central differences agree. (The chord's
    # derivative runs through two steady_state solves, one with current injected: the
    # steady voltage's own derivative; each function's checks are one compiled program:
    # 7 compiles against 66 op by op.)
    pop = jn.Compartment(area=1000.0, n=3, channels=[jn.channels.HH()])

    def net(g):
        conn = jn.conn.explicit([0, 1], [1, 2])
        if kind == "symmetric":
            gap = jn.SymmetricGapJunction("x", "x", conn, g)
        else:
            gap = jn.AsymmetricGapJunction("x", "x", conn, jnp.stack([g, 0.3 * g]) * jnp.ones((2, 2)))
        return jn.Network({"x": pop}, [gap])

    stim = jn.StepCurrent(-0.01, 0.0, 10.0, target=("x", 0))
    fns = {
        "slope Rin": lambda g: jn.input_resistance(net(g))[1],
        "chord Rin": lambda g: jn.input_resistance(net(g), stim)[0],
    }
    g0, h = 0.002, 1e-7
    for name, f in fns.items():
        @jax.jit
        def checks(g, f=f):
            return (f(g + h) - f(g - h)) / (2 * h), jax.grad(f)(g), jax.jvp(f, (g,), (jnp.ones_like(g),))[1]

        fd, grad, tangent = checks(jnp.asarray(g0))
        assert abs(float(fd)) > 1.0, name  # the conductance matters
        assert float(grad) == pytest.approx(float(fd), rel=1e-5), name
        assert float(tangent) == pytest.approx(float(grad), rel=1e-8), name


def test_gap_junction_without_connections_changes_nothing():
    """No connections, no current: the network keeps its populations' default solver
    (a LIF's exact exponential update) and the LIF's closed-form spike times."""
    stims = [jn.StepCurrent(2.5, 5.0, 100.0, target="a")]
    empty = jn.Network({"a": jn.LIF(n=2)}, [jn.SymmetricGapJunction("a", "a", jn.conn.explicit([], []), 0.05)])
    assert empty.default_solver() == jn.LIF(n=2).default_solver() and empty.voltage_coupling() is None
    spikes = np.asarray(jn.simulate(empty, 45.0, stimuli=stims)["a"].spikes[0, :3])
    # C = 1 nF, gL = 0.1 µS, EL = -70, V_th = -55, V_reset = -75, t_ref = 2 ms, 2.5 nA: V_inf = -45 mV.
    first, isi = 5.0 + 10.0 * np.log(25 / 10), 2.0 + 10.0 * np.log(30 / 10)
    np.testing.assert_allclose(spikes, first + isi * np.arange(3), atol=1e-9)
    # A junction with connections, even of g = 0, is solved implicitly (backward Euler).
    zero = jn.Network({"a": jn.LIF(n=2)}, [jn.SymmetricGapJunction("a", "a", jn.conn.explicit([0], [1]), 0.0)])
    assert zero.default_solver() == jn.StaggeredEuler(voltage_update="backward_euler")


def test_gap_junction_of_each_compartment_to_itself_is_refused():
    """A gap junction joining a compartment to itself carries no current, so a
    coupling made only of such connections is refused, naming it."""
    for conn in (jn.conn.one_to_one, jn.conn.explicit([0, 1], [0, 1])):
        with pytest.raises(ValueError, match=r"SymmetricGapJunction 'coupling0'.*to itself.*no current"):
            jn.Network({"a": passive_lif(2)}, [jn.SymmetricGapJunction("a", "a", conn, 0.1)])


@pytest.mark.parametrize("asymmetric", [False, True])
def test_a_spike_source_in_a_gap_junction_network_changes_nothing(asymmetric):
    """A spike source (no membrane: an infinite capacitance) in a Network with gap
    junctions: its row of the implicit gap solve was inf·0 = NaN, the iterative solver
    stopped at once and returned its starting guess for every compartment (0.96 mV off
    in 20 ms, the gradient w.r.t. the junction's g 0.3 % off). The run and its gradient
    now equal the network's without the source."""
    def comp():
        return jn.Compartment(length=20.0, diam=20.0, channels=[jn.channels.Leak(g=1e-4, e=-70.0)])

    def v_end(g, with_source):
        pops = {"p": comp(), "q": comp()}
        if with_source:
            pops["src"] = jn.SpikeTrains([[3.0]])
        gap = (jn.AsymmetricGapJunction("p", "q", jn.conn.one_to_one(), g=jnp.stack([g, 0.5 * g])) if asymmetric
               else jn.SymmetricGapJunction("p", "q", jn.conn.one_to_one(), g=g))
        tr = jn.simulate(jn.Network(pops, [gap]), 20.0, stimuli=[jn.StepCurrent(0.5, 3.0, 5.0, target="p")])
        return jnp.ravel(tr["q"].v[-1])[0]

    # Each network's run and gradient come from one compiled program (value_and_grad):
    # 2 compiles per case where separate eager runs and gradients took 48.
    value_and_grad = jax.jit(jax.value_and_grad(v_end), static_argnums=1)
    g = 0.0005
    (v_plain, grad_plain), (v_source, grad_source) = value_and_grad(g, False), value_and_grad(g, True)
    assert abs(float(v_plain) + 65.0) > 5.0  # the coupled cell moved
    np.testing.assert_allclose(v_source, v_plain, rtol=0, atol=1e-9)
    np.testing.assert_allclose(grad_source, grad_plain, rtol=1e-7)


@pytest.mark.parametrize("n", [100, 600])
def test_strongly_coupled_chains_equal_a_direct_solve_and_float32_as_documented(n):
    """implicit.py and the README quote this: default LIFs in a chain joined by 1e4 µS
    (10⁵ times the leak), 1 nA into the first for 1 ms. Asymmetric junctions (1e4
    forward, half back; GMRES) deflect the first neuron 0.4753 mV; GMRES restarted
    every 20 iterations stalled there without a word, at 6.8e-4 mV in float64 (700x
    off, and slow), which the docs quoted as the answer. Now equal to a direct solve,
    unrestarted (n = 100) and restarted every 128 vectors (n = 600), and float32 within
    5e-5 mV of it (1e-4 of the deflection; measured 1.8e-5 mV); symmetric ones (CG) deflect it
    0.012766 mV (n = 100), float32 at its resolution of voltages near -70 mV (~1e-5 mV)."""
    conn = jn.conn.explicit(list(range(n - 1)), list(range(1, n)))
    stim = [jn.StepCurrent(1.0, 0.0, 100.0, target=("a", [0]))]

    def deflection(gap, x64):
        with jax.enable_x64(x64), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # float64 literals truncated to float32
            tr = jn.simulate(jn.Network({"a": passive_lif(n)}, [gap]), 1.0, stimuli=stim, save_every=1.0)
            return np.asarray(tr["a"].v, np.float64)[-1] + 70.0

    g = 1e4
    for gap, back, first in ((jn.AsymmetricGapJunction("a", "a", conn, [g, 0.5 * g]), 0.5 * g, 0.4753),
                             (jn.SymmetricGapJunction("a", "a", conn, g), g, {100: 0.012766, 600: 0.010831}[n])):
        exact = backward_euler_chain(n, g, back, 1.0)
        assert exact[0] == pytest.approx(first, rel=1e-3)
        np.testing.assert_allclose(deflection(gap, True), exact, rtol=1e-8, atol=1e-10 * exact[0])
        if n == 100:
            single = deflection(gap, False)
            assert np.max(np.abs(single - exact)) < (1e-4 * exact[0] if back != g else 2e-5)


def test_a_gap_solve_stopped_before_converging_is_an_error_not_wrong_voltages(monkeypatch):
    """GMRES restarted every 20 vectors (before: jaxneuro's default; then every 128,
    which stalled the same way on chains of over 128 compartments at 3e5 times the
    leak) stops at maxiter far from the solution on a strongly coupled chain: the
    voltages were 700x too small without a word. A residual left above 100 x the
    tolerance is now a run-time error naming the solve."""
    from jaxneuro.network import implicit

    monkeypatch.setattr(implicit, "GMRES_FULL_MAX", 0)
    monkeypatch.setattr(implicit, "GMRES_RESTART", 20)
    monkeypatch.setattr(implicit, "DENSE_MAX_GMRES", implicit.DENSE_MAX)  # 60 would be solved directly
    n, g = 60, 1e4
    conn = jn.conn.explicit(list(range(n - 1)), list(range(1, n)))
    # (coupling_tol: a program of its own, not one compiled by an earlier test)
    net = jn.Network({"a": passive_lif(n)}, [jn.AsymmetricGapJunction("a", "a", conn, [g, 0.5 * g])],
                     coupling_tol=2e-10)
    with pytest.raises(Exception, match=r"gap-junction solve: GMRES stopped without converging \(relative "
                                        r"residual above 100 x coupling_tol\): the junctions are too strong"):
        jn.simulate(net, 0.05, stimuli=[jn.StepCurrent(1.0, 0.0, 100.0, target=("a", [0]))])
