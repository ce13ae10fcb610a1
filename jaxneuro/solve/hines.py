"""Axial coupling on a tree of compartments and its O(n) Hines solve."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from ..gather import spread, sum_into, take


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
    keeps them in the tree, where the elimination stays O(n).
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

    def _to_tree(self, x):
        """Compartment values onto the tree's nodes (zero at zero-area nodes)."""
        if self.segment_nodes is None:
            return x
        # A gather (not a scatter): linear and transposable, as custom_linear_solve needs.
        return spread(x, self.segment_nodes, self.size)

    def _from_tree(self, x):
        if self.segment_nodes is None:
            return x
        return take(x, self.segment_nodes)

    def _indices(self):
        p = np.asarray(self.parent, dtype=np.int32)
        i = np.arange(p.size, dtype=np.int32)
        is_root = p < 0
        # Roots point at themselves with zero conductance: their updates are no-ops.
        return i, np.where(is_root, i, p), is_root

    def _children_sum(self, x):
        """``Σ x[c]`` over each node's children (last axis: nodes), by gathers rather
        than a scatter-add into parents (see jaxneuro/gather.py)."""
        return sum_into(x, self.parent, self.size)

    def _g(self):
        _, _, is_root = self._indices()
        return jnp.where(jnp.asarray(is_root), 0.0, self.g)

    def apply(self, v):
        """``A v`` in mV/ms: the axial current into each compartment over its
        capacitance."""
        _, p, _ = self._indices()
        g = self._g()
        v = self._to_tree(v)
        if self.segment_nodes is not None:
            # Zero-area nodes: v_J = Σ g v_j / Σ g over their neighbours, which are
            # all compartments (the parent's end segment and the children's first).
            zero_area = np.ones(self.size, dtype=bool)
            zero_area[np.asarray(self.segment_nodes)] = False
            num = g * take(v, p) + self._children_sum(g * v)
            den = g + self._children_sum(g)
            v = jnp.where(jnp.asarray(zero_area), num / jnp.where(jnp.asarray(zero_area), den, 1.0), v)
        flux = g * (take(v, p) - v)  # µS·mV = nA from parent into node i
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
    conductance matrix), by elimination towards the roots and back substitution."""
    i, p, _ = coupling._indices()
    g = jnp.broadcast_to(coupling._g(), cd.shape)
    # Diagonal: own term plus every conductance touching the node.
    d = cd + g + coupling._children_sum(g)
    if coupling.size == 1:
        return b / d
    # Move the node axis first so scan walks over nodes.
    d, b, g = (jnp.moveaxis(x, -1, 0) for x in (d, b, g))

    def eliminate(carry, node):
        d, b = carry
        k, pk, gk = node
        # One division per node, kept for the back substitution: there it would sit
        # on the loop's dependency chain, where a multiplication is several times
        # shorter.
        inv_dk = 1.0 / d[k]
        f = gk * inv_dk
        d = d.at[pk].add(-f * gk)
        b = b.at[pk].add(f * b[k])
        return (d, b), inv_dk

    order = (jnp.asarray(i[::-1]), jnp.asarray(p[::-1]), g[::-1])
    (d, b), inv_d = jax.lax.scan(eliminate, (d, b), order)
    inv_d = inv_d[::-1]

    def substitute(x, node):
        k, pk, gk, inv_dk, bk = node
        x = x.at[k].set((bk + gk * x[pk]) * inv_dk)
        return x, None

    x, _ = jax.lax.scan(substitute, jnp.zeros_like(b), (jnp.asarray(i), jnp.asarray(p), g, inv_d, b))
    return jnp.moveaxis(x, 0, -1)
