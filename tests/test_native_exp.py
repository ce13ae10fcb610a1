"""jaxneuro.backends.native_exp: exponentials rewritten as exp2(x·log₂ e), at every
depth of the traced program, with exp's values."""

import re

import jax
import jax.numpy as jnp
import numpy as np

from jaxneuro.backends.native_exp import with_native_exp


def _counts(fn, *args):
    text = str(jax.make_jaxpr(fn)(*args))
    return len(re.findall(r"= exp ", text)), len(re.findall(r"= exp2 ", text))


def _nested(x, y):
    a = jax.jit(lambda z: jnp.exp(z) + jax.nn.softplus(z))(x)  # jit, custom_jvp
    b = jax.lax.cond(x[0] > 0, lambda: jnp.exp(y), lambda: y)
    c = jax.lax.while_loop(lambda c: c[0] < 3, lambda c: (c[0] + 1, jnp.exp(c[1]) * 0.5), (0, y))[1]
    d = jax.lax.fori_loop(0, 3, lambda i, c: jnp.exp(-c), y)  # a scan
    e = jax.lax.scan(lambda c, u: (c + jnp.exp(u), jnp.exp(-u)), 0.0, y, reverse=True)
    return {"a": a, "b": b, "c": c, "d": d, "e": e}


def test_every_exp_is_rewritten():
    x, y = jnp.linspace(-2.0, 2.0, 5), jnp.linspace(0.1, 0.5, 5)
    n_exp, n_exp2 = _counts(_nested, x, y)
    assert n_exp == 7 and n_exp2 == 0
    assert _counts(with_native_exp(_nested), x, y) == (0, 7)


def test_values_are_exps():
    x, y = jnp.linspace(-2.0, 2.0, 5), jnp.linspace(0.1, 0.5, 5)
    want, got = _nested(x, y), jax.jit(with_native_exp(_nested))(x, y)
    assert jax.tree.structure(want) == jax.tree.structure(got)
    for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(got)):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=2e-6)


def test_closed_over_values_and_pytrees():
    """Values the function closes over (the kernel's parameters) and pytree arguments
    and results pass through."""
    scale = jnp.float32(-0.25)

    def f(state, t):
        return {"v": jnp.exp(state["v"] * scale) * t, "n": state["n"] + 1}

    state = {"v": jnp.array([1.0, 2.0, 40.0], jnp.float32), "n": jnp.array(3)}
    got = with_native_exp(f)(state, 2.0)
    np.testing.assert_allclose(np.asarray(got["v"]), 2.0 * np.exp(-0.25 * np.array([1.0, 2.0, 40.0])), rtol=1e-6)
    assert int(got["n"]) == 4 and got["n"].dtype == state["n"].dtype
