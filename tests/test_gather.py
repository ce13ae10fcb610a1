"""Scatter-free placement and sums (jaxneuro.gather) equal their scatter forms."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxneuro.gather import spread, sum_into, take_padded


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
