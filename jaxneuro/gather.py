"""Placing and summing values along the last axis with static index tables.

The obvious ``zeros.at[idx].add(x)`` is a scatter-add, and XLA's CPU backend will not
compile a time loop containing a scatter into one kernel (see :mod:`jaxneuro.xla_cpu`).
With the indices known when tracing, the same results come from gathers: each target
position reads the sources that land on it from a static table.
"""

from __future__ import annotations

import functools

import jax.numpy as jnp
import numpy as np


def take_padded(x, index):
    """``x[..., index]`` for a static integer array ``index``; entries equal to
    ``x.shape[-1]`` read zero."""
    padded = jnp.concatenate([x, jnp.zeros(x.shape[:-1] + (1,), dtype=x.dtype)], axis=-1)
    return padded[..., np.asarray(index)]


def spread(x, idx, n: int):
    """``x`` (last axis: positions ``idx``, static and distinct) onto ``n`` positions,
    zero elsewhere."""
    source = np.full(n, len(idx))
    source[np.asarray(idx)] = np.arange(len(idx))
    return take_padded(x, source)


@functools.lru_cache(maxsize=256)
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


def sum_into(x, targets, n: int):
    """``Σ x[..., j]`` over the ``j`` with ``targets[j] == s``, for each of ``n``
    positions ``s`` (``zeros(n).at[targets].add(x)`` without a scatter); ``targets``
    static, entries outside ``0..n-1`` dropped."""
    table = _positions(tuple(int(t) for t in np.asarray(targets).reshape(-1)), n)
    if table.shape[1] == 0:
        return jnp.zeros(x.shape[:-1] + (n,), dtype=x.dtype)
    return jnp.sum(take_padded(x, table), axis=-1)
