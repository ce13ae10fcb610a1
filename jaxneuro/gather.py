"""Placing, picking and summing values along the last axis with static index tables.

The obvious ``zeros.at[idx].add(x)`` is a scatter-add, and XLA's CPU backend will not
compile a time loop containing a scatter into one kernel (see :mod:`jaxneuro.xla_cpu`).
With the indices known when tracing, the same results come from gathers: each target
position reads the sources that land on it from a static table.

Reverse-mode differentiation has the same problem the other way round: JAX transposes
a gather into a scatter-add. :func:`take`, :func:`spread` and :func:`sum_into` are
linear maps whose transposes are each other (picking is the adjoint of summing into),
so their derivatives are written as gathers too and the backward pass of a time loop
can also compile into one kernel. They carry the transposes through
``lax.custom_linear_solve`` (with the identity as its matrix), the one public JAX hook
for a linear map with a given transpose that keeps forward mode and ``vmap`` working.
"""

from __future__ import annotations


import jax
import jax.numpy as jnp
import numpy as np

from ._static_cache import per_precision_cache


def take_padded(x, index):
    """``x[..., index]`` for a static integer array ``index`` (any shape); entries equal
    to ``x.shape[-1]`` read zero. Its reverse-mode derivative is a scatter: inside
    time loops use :func:`take` or :func:`sum_into`."""
    padded = jnp.concatenate([x, jnp.zeros(x.shape[:-1] + (1,), dtype=x.dtype)], axis=-1)
    return padded[..., np.asarray(index)]


@per_precision_cache(256)
def _positions(targets: tuple[int, ...], n: int) -> np.ndarray:
    """``(n, m)``: for each position ``s``, the ``j`` with ``targets[j] == s``, padded
    with ``len(targets)``; targets outside ``0..n-1`` go nowhere."""
    t = np.asarray(targets, dtype=int).reshape(-1)
    inside = (t >= 0) & (t < n)
    counts = np.bincount(t[inside], minlength=n)
    table = np.full((n, int(counts.max(initial=0))), t.size)
    fill = np.zeros(n, dtype=int)
    for j in np.nonzero(inside)[0]:
        table[t[j], fill[t[j]]] = j
        fill[t[j]] += 1
    return table


def _static(index) -> tuple[int, ...]:
    return tuple(int(i) for i in np.asarray(index).reshape(-1))


def _pick(x, index: tuple[int, ...]):
    """``x[..., index]``, entries outside ``0..n-1`` read zero (primal only)."""
    n = x.shape[-1]
    i = np.asarray(index, dtype=int)
    return take_padded(x, np.where((i >= 0) & (i < n), i, n))


def sum_gathered(x, targets: tuple[int, ...], n: int):
    """:func:`sum_into` without its derivative rule (``targets`` a static tuple): JAX
    would transpose the gathers into a scatter-add. For code that is never
    differentiated itself, such as the solve inside a ``custom_linear_solve``."""
    table = _positions(targets, n)
    if table.shape[1] == 0:
        return jnp.zeros(x.shape[:-1] + (n,), dtype=x.dtype)
    return jnp.sum(take_padded(x, table), axis=-1)


def _with_transpose(forward, transpose, x, m: int):
    """``forward(x)`` (last axis ``n`` -> ``m``, linear) whose derivatives are
    ``forward`` of the tangent and ``transpose`` of the cotangent.

    ``custom_linear_solve`` needs square maps, so both sides are padded to a common
    length; with the identity as the matrix, its "solve" is ``forward`` itself."""
    if not jnp.issubdtype(x.dtype, jnp.inexact) or not isinstance(x, jax.core.Tracer):
        # (A concrete array is not being differentiated; called eagerly, the hook
        # traced its three functions and ran its solve op by op at every call.)
        return forward(x)
    n = x.shape[-1]
    size = max(n, m)

    def pad(a):
        return jnp.pad(a, [(0, 0)] * (a.ndim - 1) + [(0, size - a.shape[-1])])

    out = jax.lax.custom_linear_solve(
        lambda u: u,
        pad(x),
        solve=lambda _, b: pad(forward(b[..., :n])),
        transpose_solve=lambda _, c: pad(transpose(c[..., :m])),
    )
    return out[..., :m]


def take(x, index):
    """``x[..., index]`` for a static 1-D integer ``index``; entries outside
    ``0..x.shape[-1]-1`` read zero. Reverse mode sums back by gathers
    (:func:`sum_into`), not a scatter."""
    x = jnp.asarray(x)
    index = _static(index)
    n = x.shape[-1]
    return _with_transpose(lambda a: _pick(a, index), lambda c: sum_gathered(c, index, n), x, len(index))


def spread(x, idx, n: int):
    """``x`` (last axis: positions ``idx``, static and distinct) onto ``n`` positions,
    zero elsewhere."""
    source = np.full(n, len(idx))
    source[np.asarray(idx)] = np.arange(len(idx))
    return take(x, source)


def sum_into(x, targets, n: int):
    """``Σ x[..., j]`` over the ``j`` with ``targets[j] == s``, for each of ``n``
    positions ``s`` (``zeros(n).at[targets].add(x)`` without a scatter); ``targets``
    static, entries outside ``0..n-1`` dropped. Reverse mode picks back by a gather."""
    x = jnp.asarray(x)
    targets = _static(targets)
    return _with_transpose(lambda a: sum_gathered(a, targets, n), lambda c: _pick(c, targets), x, n)
