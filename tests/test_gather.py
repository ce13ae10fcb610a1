"""Scatter-free placement and sums (jaxneuro.gather) equal their scatter forms."""

import jax
import jax.numpy as jnp
import numpy as np

import jaxneuro as jn
from jaxneuro.gather import spread, sum_into, take, take_padded
from conftest import compiles_to_a_scatter


def test_sum_into_equals_scatter_add_with_repeats_and_dropped_targets():
    x = jnp.arange(1.0, 8.0)
    targets = np.array([2, 0, 2, -1, 4, 2, 0])  # -1: goes nowhere (a tree's root)
    got = sum_into(x, targets, 5)
    keep = targets >= 0
    ref = jnp.zeros(5).at[targets[keep]].add(x[keep])
    np.testing.assert_array_equal(got, ref)
    # batch axes in front; and its gradient (a gather back) is the scatter's
    xb = jnp.stack([x, 2 * x])
    np.testing.assert_array_equal(sum_into(xb, targets, 5)[1], 2 * ref)
    g = jax.grad(lambda x: jnp.sum(sum_into(x, targets, 5) * jnp.arange(5.0)))(x)
    np.testing.assert_array_equal(g, np.where(keep, np.maximum(targets, 0), 0))


def test_spread_and_take_padded():
    x = jnp.array([10.0, 20.0, 30.0])
    np.testing.assert_array_equal(spread(x, [4, 0, 2], 6), [20.0, 0, 30.0, 0, 10.0, 0])
    np.testing.assert_array_equal(take_padded(x, [2, 3, 0]), [30.0, 0.0, 10.0])
    assert sum_into(x, [7, 8, 9], 3).shape == (3,) and not np.any(sum_into(x, [7, 8, 9], 3))


def _scatter_free(f, *args):
    return not compiles_to_a_scatter(f, *args)


def test_take_and_sum_into_derivatives_are_gathers_and_equal_the_scatter_forms():
    x = jnp.arange(1.0, 6.0)
    index = np.array([4, 0, 5, 2, 2])  # 5 = x.size: reads zero; 2 twice
    w = jnp.arange(1.0, 6.0) ** 2

    def loss(x):
        return jnp.sum(take(x, index) ** 2 * w)

    def loss_ref(x):
        return jnp.sum(jnp.concatenate([x, jnp.zeros(1)])[index] ** 2 * w)

    np.testing.assert_array_equal(take(x, index), [5.0, 1.0, 0.0, 3.0, 3.0])
    np.testing.assert_array_equal(jax.grad(loss)(x), jax.grad(loss_ref)(x))
    assert _scatter_free(jax.grad(loss), x)
    assert not _scatter_free(jax.grad(loss_ref), x)  # the check can fail

    targets = np.array([2, 0, 2, -1, 4])

    def loss2(x):
        return jnp.sum(sum_into(x, targets, 5) ** 2 * w)

    keep = targets >= 0
    ref = jax.grad(lambda x: jnp.sum(jnp.zeros(5).at[targets[keep]].add(x[keep]) ** 2 * w))(x)
    np.testing.assert_array_equal(jax.grad(loss2)(x), ref)
    assert _scatter_free(jax.grad(loss2), x)


def test_forward_mode_vmap_and_second_order_still_work():
    index = np.array([2, 0, 3, 1])
    x = jnp.array([1.0, 2.0, 3.0])
    # forward mode (the solvers take jvps of the vector field through these)
    _, dx = jax.jvp(lambda x: take(x, index), (x,), (jnp.array([1.0, 10.0, 100.0]),))
    np.testing.assert_array_equal(dx, [100.0, 1.0, 0.0, 10.0])
    np.testing.assert_array_equal(jax.jacfwd(lambda x: spread(x, [2, 0, 1], 4))(x), jax.jacrev(lambda x: spread(x, [2, 0, 1], 4))(x))
    # batch axes from vmap, in front of the indexed axis
    xs = jnp.stack([x, 2 * x])
    np.testing.assert_array_equal(jax.vmap(lambda x: sum_into(x, [1, 1, 0], 2))(xs), [[3.0, 3.0], [6.0, 6.0]])
    np.testing.assert_array_equal(jax.vmap(jax.grad(lambda x: jnp.sum(take(x, index) ** 2)))(xs)[1], [4.0, 8.0, 12.0])
    # second order: d²/dx² of Σ take(x)³
    hess = jax.hessian(lambda x: jnp.sum(take(x, index) ** 3))(x)
    np.testing.assert_allclose(hess, np.diag([6.0, 12.0, 18.0]))
    # integer arrays pass through (not differentiable)
    np.testing.assert_array_equal(take(jnp.array([5, 6, 7]), [2, 3]), [7, 0])


def test_a_cells_gradient_has_no_scatter():
    """The backward pass of a branched cell's time loop is scatter-free, which lets XLA
    compile it into one kernel on a CPU (see jaxneuro/xla_cpu.py)."""
    import jaxneuro as jn

    def loss(g):
        secs = [jn.Cable(length=100.0, diam=1.0, nseg=5, channels=[jn.channels.HH(gnabar=g)], name=f"b{i}") for i in range(3)]
        cell = jn.Cell(secs, parents=[None, 0, 0])
        stim = jn.StepCurrent(0.2, 0.5, 1e9, target=("b0", 0.0))
        return jnp.mean(jn.simulate(cell, 2.0, dt=0.025, stimuli=[stim], save_every=0.25).v)

    assert _scatter_free(jax.grad(loss), 0.12)


def test_cells_run_after_switching_64_bit_mode_either_way():
    # A cell simulated in one mode failed in the other afterwards ("lax.add requires
    # arguments to have the same dtypes, got int64, int32"), also a new cell: JAX keeps
    # its conversion of a NumPy constant by the array's identity, and the cells' index
    # tables were cached across modes.
    def cell():
        soma = jn.Cable(length=20, diam=20, nseg=1, channels=[jn.channels.HH()], name="soma")
        dend = jn.Cable(length=200, diam=2, nseg=5, channels=[jn.channels.Leak()], name="dend")
        side = jn.Cable(length=100, diam=1, nseg=3, channels=[jn.channels.Leak()], name="side")
        return jn.Cell([soma, dend, side], parents=[None, ("soma", 1.0), ("dend", 0.5)])

    def run(tree_solve):
        stim = [jn.StepCurrent(0.2, 1.0, 5.0, target=("soma", 0.5))]
        c = cell()
        return (jn.simulate(c, 5.0, stimuli=stim, solver=jn.StaggeredEuler(tree_solve=tree_solve)).v,
                jn.input_resistance(c))

    mode = bool(jax.config.jax_enable_x64)
    results = {}
    for x64 in (mode, not mode, mode, not mode):
        with jax.enable_x64(x64):
            for tree_solve in ("hines", "paths"):
                v, r_in = run(tree_solve)
                assert v.dtype == (jnp.float64 if x64 else jnp.float32)
                results.setdefault((x64, tree_solve), []).append(np.asarray(v))
    for (x64, _), (a, b) in results.items():
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(results[(False, "hines")][0], results[(True, "hines")][0], rtol=0, atol=1e-3)


def test_eager_calls_skip_the_derivative_hook():
    # Called eagerly (set-up code outside a jit), each call traced the derivative hook's
    # three functions and ran its solve op by op (~10 ms a call); a concrete array is
    # not being differentiated, so it is now the plain forward map. Traced (here under
    # grad), the transpose is still what reverse mode uses.
    from jaxneuro import gather

    traced = []

    def transpose(c):
        traced.append(c.shape)
        return gather.sum_gathered(c, (0, 2, 4), 5)

    def forward(a):
        return gather._pick(a, (0, 2, 4))

    x = jnp.linspace(0.0, 1.0, 5)
    np.testing.assert_array_equal(np.asarray(gather._with_transpose(forward, transpose, x, 3)), [0.0, 0.5, 1.0])
    assert traced == []
    g = jax.grad(lambda a: jnp.sum(gather._with_transpose(forward, transpose, a, 3) * jnp.arange(1.0, 4.0)))(x)
    assert traced and np.array_equal(np.asarray(g), [1.0, 0.0, 2.0, 0.0, 3.0])
    # The public maps, eagerly: the same values as before.
    np.testing.assert_array_equal(np.asarray(take(x, [0, 2, 4, 5])), [0.0, 0.5, 1.0, 0.0])
    np.testing.assert_array_equal(np.asarray(sum_into(x, [0, 0, 1, 2, 2], 3)), [0.25, 0.5, 1.75])
    np.testing.assert_array_equal(np.asarray(spread(x[:2], [3, 1], 4)), [0.0, 0.25, 0.0, 0.0])
