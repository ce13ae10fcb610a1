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
    and back substitution.

    Each node's elimination waits on a division, so a single pass over the nodes is
    bound by division latency. Disjoint subtrees are independent until they reach their
    parents: the plan deals them out to a few lanes, which one loop eliminates side by
    side (each lane in its own copy of the arrays, so that their writes do not
    serialise), before the remaining nodes (``plan.rest``) go one by one; the back
    substitution runs the other way round."""
    plan = coupling._plan()
    g = jnp.broadcast_to(coupling._g(), cd.shape)
    # Diagonal: own term plus every conductance touching the node.
    d = cd + g + coupling._children_sum(g)
    n = plan.parent.size
    if n == 1:
        return b / d
    # Node axis first so scan walks over nodes; one dummy node at the end (d = 1,
    # b = g = 0) fills the lanes' empty slots.
    pad = [(0, 1)] + [(0, 0)] * (cd.ndim - 1)
    d = jnp.pad(jnp.moveaxis(d, -1, 0), pad, constant_values=1.0)
    b, g = (jnp.pad(jnp.moveaxis(x, -1, 0), pad) for x in (b, g))
    parent = np.append(plan.parent, n).astype(np.int32)
    lanes = plan.lanes  # (steps, n_lanes) node indices, n where empty
    n_lanes = lanes.shape[1]

    def eliminate_one(d, b, k, pk):
        # The division is kept for the back substitution: there it would sit on the
        # dependency chain, where a multiplication is several times shorter.
        inv_dk = 1.0 / d[k]
        f = g[k] * inv_dk
        return d.at[pk].add(-f * g[k]), b.at[pk].add(f * b[k]), inv_dk

    def substitute_one(x, k, pk, inv_dk):
        return x.at[k].set((b[k] + g[k] * x[pk]) * inv_dk)

    def owned(lane):
        return jnp.asarray(plan.lane_of == lane).reshape((n + 1,) + (1,) * (cd.ndim - 1))

    if n_lanes:
        def eliminate_lanes(carry, node):
            ds, bs = carry
            ks, pks = node
            out = [eliminate_one(ds[j], bs[j], ks[j], pks[j]) for j in range(n_lanes)]
            return (tuple(o[0] for o in out), tuple(o[1] for o in out)), jnp.stack([o[2] for o in out])

        (ds, bs), inv_lanes = jax.lax.scan(
            eliminate_lanes, ((d,) * n_lanes, (b,) * n_lanes), (jnp.asarray(lanes), jnp.asarray(parent[lanes])))
        # A lane's own nodes come from its copy; the nodes its subtrees hang from
        # collect every lane's increments.
        d_rest = d + sum(dj - d for dj in ds)
        b_rest = b + sum(bj - b for bj in bs)
        for j in range(n_lanes):
            d_rest = jnp.where(owned(j), ds[j], d_rest)
            b_rest = jnp.where(owned(j), bs[j], b_rest)
        d, b = d_rest, b_rest

    def eliminate(carry, node):
        d, b = carry
        d, b, inv_dk = eliminate_one(d, b, *node)
        return (d, b), inv_dk

    rest = plan.rest
    (d, b), inv_rest = jax.lax.scan(eliminate, (d, b), (jnp.asarray(rest), jnp.asarray(parent[rest])))

    def substitute(x, node):
        return substitute_one(x, *node), None

    x, _ = jax.lax.scan(substitute, jnp.zeros_like(b), (jnp.asarray(rest[::-1]), jnp.asarray(parent[rest[::-1]]), inv_rest[::-1]))
    if n_lanes:
        def substitute_lanes(xs, node):
            ks, pks, inv = node
            return tuple(substitute_one(xs[j], ks[j], pks[j], inv[j]) for j in range(n_lanes)), None

        xs, _ = jax.lax.scan(substitute_lanes, (x,) * n_lanes,
                             (jnp.asarray(lanes[::-1]), jnp.asarray(parent[lanes[::-1]]), inv_lanes[::-1]))
        for j in range(n_lanes):
            x = jnp.where(owned(j), xs[j], x)
    return jnp.moveaxis(x[:n], 0, -1)


def _deal_subtrees(parent: np.ndarray, is_root: np.ndarray, elimination: np.ndarray, n_lanes: int):
    """``(lanes, lane_of, rest)``: disjoint subtrees dealt out to ``n_lanes`` lanes
    (each lane's nodes in elimination order, padded with ``n``) and the other nodes in
    elimination order. Subtrees are split greedily, largest first, while that shortens
    the longest lane plus the rest; with too little branching there are no lanes."""
    n = parent.size
    children = [[] for _ in range(n)]
    for k in range(n):
        if not is_root[k]:
            children[parent[k]].append(k)
    size = np.ones(n, dtype=int)
    for k in elimination:  # children first
        if not is_root[k]:
            size[parent[k]] += size[k]

    def load(subtrees):
        lanes = [0] * n_lanes
        for r in sorted(subtrees, key=lambda r: -size[r]):
            lanes[int(np.argmin(lanes))] += size[r]
        return max(lanes)

    def split(r):
        """Nodes moved to the rest and the subtrees below, splitting at the first
        node (down r's chain) with several children; None for an unbranched chain."""
        moved = []
        while len(children[r]) == 1:
            moved.append(r)
            r = children[r][0]
        if not children[r]:
            return None
        return moved + [r], list(children[r])

    subtrees = [int(r) for r in np.nonzero(is_root)[0]]
    n_rest = 0
    cost = load(subtrees) + n_rest
    while True:
        r = max(subtrees, key=lambda r: size[r])
        parts = split(r)
        if parts is None:
            break
        moved, below = parts
        trial = [s for s in subtrees if s != r] + below
        trial_cost = load(trial) + n_rest + len(moved)
        if trial_cost >= cost:
            break
        subtrees, n_rest, cost = trial, n_rest + len(moved), trial_cost
    if cost > 0.8 * n:  # not worth a second loop
        return np.zeros((0, 0), dtype=np.int32), np.full(n + 1, -1), elimination
    lane_of = np.full(n + 1, -1)
    loads = [0] * n_lanes
    for r in sorted(subtrees, key=lambda r: -size[r]):
        j = int(np.argmin(loads))
        loads[j] += size[r]
        stack = [r]
        while stack:
            k = stack.pop()
            lane_of[k] = j
            stack.extend(children[k])
    order = [[int(k) for k in elimination if lane_of[k] == j] for j in range(n_lanes)]
    steps = max(len(o) for o in order)
    lanes = np.full((steps, n_lanes), n, dtype=np.int32)
    for j, o in enumerate(order):
        lanes[: len(o), j] = o
    rest = np.asarray([k for k in elimination if lane_of[k] < 0], dtype=np.int32)
    return lanes, lane_of, rest


# Lanes of independent subtrees eliminated side by side (measured on tree1k, 2-core
# CPU: 2 lanes -2 %, 3 lanes -9 % (float64) / -18 % (float32), 4 lanes -3 %).
_LANES = 3


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
    lanes: np.ndarray  # (steps, n_lanes): disjoint subtrees eliminated side by side
    lane_of: np.ndarray  # each node's lane (n + 1 entries, the last the dummy), -1: rest
    rest: np.ndarray  # the other nodes, in elimination order, after the lanes
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
    elimination = inv[::-1].copy()
    lanes, lane_of, rest = _deal_subtrees(q, is_root, elimination, _LANES)
    return _Plan(
        n_seg=n_seg,
        n_zero=n - n_seg,
        perm=perm,
        parent=q,
        is_root=is_root,
        child_target=np.where(is_root, -1, q).astype(np.int32),
        # The coupling's own numbering has parents first, so its reverse order puts
        # every child before its parent.
        elimination=elimination,
        lanes=lanes,
        lane_of=lane_of,
        rest=rest,
        neighbour=neighbour,
        link=link,
    )
