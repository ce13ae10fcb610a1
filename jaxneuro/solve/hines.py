"""Axial coupling on a tree of compartments and its O(n) Hines solve."""

from __future__ import annotations

import functools
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from ..gather import sum_into, take


class TreeCoupling(eqx.Module):
    """Ohmic coupling of compartments along a tree (a cable's or a cell's axial
    current), as returned by ``model.voltage_coupling()``.

    ``parent``: static, one entry per node, the parent's index or -1 for a root, with
    ``parent[i] < i`` (every parent before its children). ``g``: conductance (µS)
    between node ``i`` and its parent (ignored for roots). ``capacitance``: each node's
    membrane capacitance (nF). The coupling adds to ``dv_i/dt`` (mV/ms)

        (A v)_i = Σ_j g_ij (v_j - v_i) / C_i,

    summed over the tree neighbours ``j`` of ``i``; ``A``'s rows sum to zero.

    ``segment_nodes`` (static, optional): when the tree has more nodes than there are
    compartments, the tree node of each compartment; the other nodes have zero area
    (NEURON's section end nodes where several children meet). Their voltage follows
    from the current balance ``Σ g (v_j - v_J) = 0``, so they hold no state: ``A`` is
    the coupling among compartments with them eliminated (exactly), and :meth:`solve`
    keeps them in the tree, where the elimination stays O(n). Their neighbours must
    all be compartments. Internally the nodes are renumbered compartments first, so
    that passing values between compartments and nodes is a slice (no gathers).
    :meth:`solve` solves ``(diag(d) - A) x = rhs`` by Hines elimination: multiplying
    row ``i`` by ``C_i`` makes the matrix symmetric, ``S = diag(C·d + Σ g) - G``,
    eliminated from the leaves to the roots and back substituted, one pass each, O(n).
    No dense matrix is ever formed. Gradients come from ``jax.lax.custom_linear_solve``
    (implicit differentiation with the transpose system ``Mᵀ = S·C⁻¹``, itself one
    Hines solve), so they are O(n) too and work in forward and reverse mode.
    """

    g: Array
    capacitance: Array
    parent: tuple[int, ...] = eqx.field(static=True)
    segment_nodes: tuple[int, ...] | None = eqx.field(default=None, static=True)

    def __check_init__(self):
        p = np.asarray(self.parent, dtype=int)
        if p.ndim != 1 or np.any(p >= np.arange(p.size)) or np.any(p < -1):
            raise ValueError(
                "TreeCoupling.parent expects one index per node with -1 <= parent[i] < i "
                f"(parents before children), got {self.parent!r}"
            )

    @property
    def size(self) -> int:
        """Number of tree nodes (compartments plus zero-area nodes)."""
        return len(self.parent)

    def _plan(self) -> _Plan:
        return _plan(self.parent, self.segment_nodes)

    def _to_tree(self, x):
        """Compartment values onto the tree's nodes, in the internal numbering
        (compartments first, then zero-area nodes, which get zero)."""
        n_zero = self._plan().n_zero
        if n_zero == 0:
            return x
        return jnp.concatenate([x, jnp.zeros(x.shape[:-1] + (n_zero,), dtype=x.dtype)], axis=-1)

    def _from_tree(self, x):
        return x[..., : self._plan().n_seg]

    def _children_sum(self, x):
        """``Σ x[c]`` over each node's children (last axis: internal nodes), by gathers
        rather than a scatter-add into parents (see jaxneuro/gather.py)."""
        plan = self._plan()
        return sum_into(x, plan.child_target, plan.parent.size)

    def _g(self):
        """Conductance to the parent per internal node, µS (zero at roots)."""
        plan = self._plan()
        g = take(self.g, plan.perm) if plan.n_zero else self.g
        return jnp.where(jnp.asarray(plan.is_root), 0.0, g)

    def apply(self, v):
        """``A v`` in mV/ms: the axial current into each compartment over its
        capacitance."""
        plan = self._plan()
        g = self._g()
        if plan.n_zero:
            # Zero-area nodes: v_J = Σ g v_j / Σ g over their neighbours, which are
            # all compartments (the parent's end segment and the children's first).
            shape = v.shape[:-1] + plan.neighbour.shape
            g_nb = take(g, plan.link.ravel()).reshape(g.shape[:-1] + plan.link.shape)
            v_nb = take(v, plan.neighbour.ravel()).reshape(shape)
            v_zero = jnp.sum(g_nb * v_nb, axis=-1) / jnp.sum(g_nb, axis=-1)
            v = jnp.concatenate([v, v_zero], axis=-1)
        flux = g * (take(v, plan.parent) - v)  # µS·mV = nA from parent into node i
        net = flux - self._children_sum(flux)
        return self._from_tree(net) / self.capacitance

    def solve(self, diag, rhs):
        """``x`` with ``(diag(diag) - A) x = rhs``; ``diag`` in 1/ms, ``rhs`` in mV/ms
        (or any unit, ``x`` then has it times ms)."""
        diag, rhs = jnp.broadcast_arrays(jnp.asarray(diag), jnp.asarray(rhs))
        c = self.capacitance

        def matvec(x):
            return diag * x - self.apply(x)

        def tree_solve(cd, b):
            return self._from_tree(_hines(self, self._to_tree(cd), self._to_tree(b)))

        def solve(_, b):
            return tree_solve(c * diag, c * b)

        def transpose_solve(_, b):
            return c * tree_solve(c * diag, b)

        return jax.lax.custom_linear_solve(matvec, rhs, solve, transpose_solve)


def _hines(coupling: TreeCoupling, cd, b):
    """Solve ``S x = b`` with ``S = diag(cd + Σ g) - G`` on the tree (G: the symmetric
    conductance matrix; internal node numbering), by elimination towards the roots
    and back substitution."""
    plan = coupling._plan()
    g = jnp.broadcast_to(coupling._g(), cd.shape)
    # Diagonal: own term plus every conductance touching the node.
    d = cd + g + coupling._children_sum(g)
    if plan.parent.size == 1:
        return b / d
    # Move the node axis first so scan walks over nodes.
    d, b, g = (jnp.moveaxis(x, -1, 0) for x in (d, b, g))

    def eliminate(carry, node):
        d, b = carry
        k, pk = node
        # One division per node, kept for the back substitution: there it would sit
        # on the loop's dependency chain, where a multiplication is several times
        # shorter.
        inv_dk = 1.0 / d[k]
        f = g[k] * inv_dk
        d = d.at[pk].add(-f * g[k])
        b = b.at[pk].add(f * b[k])
        return (d, b), inv_dk

    order = (jnp.asarray(plan.elimination), jnp.asarray(plan.parent[plan.elimination]))
    (d, b), inv_d = jax.lax.scan(eliminate, (d, b), order)

    def substitute(x, node):
        k, pk, inv_dk = node
        x = x.at[k].set((b[k] + g[k] * x[pk]) * inv_dk)
        return x, None

    back = plan.elimination[::-1]
    x, _ = jax.lax.scan(substitute, jnp.zeros_like(b), (jnp.asarray(back), jnp.asarray(plan.parent[back]), inv_d[::-1]))
    return jnp.moveaxis(x, 0, -1)


class _Plan(NamedTuple):
    """Static indexing of a :class:`TreeCoupling` in its internal node numbering:
    compartments first (in compartment order), then the zero-area nodes, so that
    moving between compartments and tree nodes is a slice, not a gather."""

    n_seg: int
    n_zero: int
    perm: np.ndarray  # internal node j is the coupling's node perm[j]
    parent: np.ndarray  # internal parent of each internal node (roots: themselves)
    is_root: np.ndarray
    child_target: np.ndarray  # parent, or -1 (goes nowhere) for roots
    elimination: np.ndarray  # internal nodes, every child before its parent
    neighbour: np.ndarray  # (n_zero, m): the compartments around each zero-area node
    link: np.ndarray  # (n_zero, m): the node whose g joins it to that neighbour


@functools.lru_cache(maxsize=256)
def _plan(parent: tuple[int, ...], segment_nodes: tuple[int, ...] | None) -> _Plan:
    p = np.asarray(parent, dtype=np.int32)
    n = p.size
    if segment_nodes is None:
        perm = np.arange(n, dtype=np.int32)
    else:
        seg = np.asarray(segment_nodes, dtype=np.int32)
        perm = np.concatenate([seg, np.setdiff1d(np.arange(n, dtype=np.int32), seg)]).astype(np.int32)
    inv = np.empty(n, dtype=np.int32)
    inv[perm] = np.arange(n, dtype=np.int32)
    is_root = p[perm] < 0
    own = np.arange(n, dtype=np.int32)
    # Roots point at themselves with zero conductance: their updates are no-ops.
    q = np.where(is_root, own, inv[np.maximum(p[perm], 0)]).astype(np.int32)
    n_seg = n if segment_nodes is None else len(segment_nodes)
    neighbours = []
    for j in range(n_seg, n):  # zero-area nodes: their parent and their children
        nb = [] if is_root[j] else [(int(q[j]), j)]
        nb += [(int(c), int(c)) for c in np.nonzero((q == j) & ~is_root)[0]]
        neighbours.append(nb)
    m = max((len(nb) for nb in neighbours), default=0)
    neighbour = np.full((n - n_seg, m), n_seg, dtype=np.int32)  # n_seg: reads zero
    link = np.full((n - n_seg, m), n, dtype=np.int32)  # n: reads zero conductance
    for r, nb in enumerate(neighbours):
        for c, (node, via) in enumerate(nb):
            if node >= n_seg:
                raise ValueError("TreeCoupling: zero-area nodes must neighbour compartments only")
            neighbour[r, c], link[r, c] = node, via
    return _Plan(
        n_seg=n_seg,
        n_zero=n - n_seg,
        perm=perm,
        parent=q,
        is_root=is_root,
        child_target=np.where(is_root, -1, q).astype(np.int32),
        # The coupling's own numbering has parents first, so its reverse order puts
        # every child before its parent.
        elimination=inv[::-1].copy(),
        neighbour=neighbour,
        link=link,
    )
