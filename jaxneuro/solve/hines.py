"""Axial coupling on a tree of compartments and its O(n) Hines solve."""

from __future__ import annotations

import functools
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.ad_checkpoint import checkpoint_name
from jaxtyping import Array

from .._static_cache import per_precision_cache
from ..gather import sum_gathered, sum_into, take, take_padded


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
    eliminated from the leaves to each tree's centre (the middle of its longest path,
    not NEURON's root: the same matrix, half the chain of dependent divisions of an
    unbranched cable) and back substituted, one pass each, O(n) (or path by path,
    ``method="paths"``). No dense matrix is ever formed. Derivatives
    are implicit: with ``M = diag(d) - A``, the tangent solves ``M·ẋ = ṙhs - Ṁ·x`` by
    ``jax.lax.custom_linear_solve``, whose reverse mode solves the transpose system
    ``Mᵀ = S·C⁻¹``, itself one Hines solve; so they are O(n) too, work in forward and
    reverse mode, and need nothing of the forward solve but its solution ``x``, which
    is named :data:`TREE_SOLUTION` for checkpoint policies.
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

    def solve(self, diag, rhs, method: str = "hines"):
        """``x`` with ``(diag(diag) - A) x = rhs``; ``diag`` in 1/ms, ``rhs`` in mV/ms
        (or any unit, ``x`` then has it times ms).

        ``method`` (static): ``"hines"`` eliminates node by node, from the leaves to
        each tree's centre with different branches' nodes taking turns (a CPU overlaps
        their chains), fast to compile; ``"paths"`` cuts the tree into paths of about
        √n nodes and eliminates them side by side (:func:`_partitioned`): the same
        solution to rounding in ~2√n sequential steps instead of 2n, but on a CPU
        slower than ``"hines"`` (a 1000-compartment HH cell and a 1000-segment cable
        1.15× slower) and 0.1-0.3 s longer to compile (benchmarks/RESULTS.md);
        :data:`STEADY` for a ``diag`` without a ``C/dt`` term (steady states)."""
        check_tree_solve(method, "method", steady=True)
        diag, rhs = jnp.broadcast_arrays(jnp.asarray(diag), jnp.asarray(rhs))
        return _tree_solve(method, self, diag, rhs)


#: The name (``jax.ad_checkpoint.checkpoint_name``) of every tree solve's solution:
#: a rematerialisation policy that saves it (the fixed-step loop's per-step
#: checkpoint does) spares the backward pass the forward solve, which is a large part
#: of a cell's step and whose derivative needs only its solution.
TREE_SOLUTION = "jaxneuro.tree_solution"


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def _tree_solve(method, coupling: TreeCoupling, diag, rhs):
    """``(diag(diag) - A)⁻¹ rhs`` by a Hines solve of the symmetric system
    ``(C·diag + Σ g - G) x = C·rhs``."""
    c = coupling.capacitance
    return _symmetric_solve(method, coupling, c * diag, c * rhs)


def _symmetric_solve(method, coupling: TreeCoupling, cd, b):
    """``S⁻¹ b`` with ``S = diag(cd + Σ g) - G`` (compartment values in and out)."""
    return coupling._from_tree(_hines(coupling, coupling._to_tree(cd), coupling._to_tree(b), method))


@functools.partial(_tree_solve.defjvp, symbolic_zeros=True)
def _tree_solve_jvp(method, primals, tangents):
    # M x = rhs with M = diag(diag) - A, so M·ẋ = ṙhs - Ṁ·x. Written out rather than
    # left to custom_linear_solve's own rule so that every use of x goes through its
    # name (that rule keeps an unnamed copy, which a policy cannot save), and the
    # tangent solve is a custom_linear_solve: transposable, with the transpose system
    # Mᵀ = S·C⁻¹ (S the symmetric matrix) one Hines solve too.
    coupling, diag, rhs = primals
    d_coupling, d_diag, d_rhs = tangents
    x = checkpoint_name(_tree_solve(method, coupling, diag, rhs), TREE_SOLUTION)
    parts = [] if _is_zero(d_rhs) else [d_rhs]
    if not _is_zero(d_diag):
        parts.append(-d_diag * x)
    tangent_leaves = jax.tree.leaves(d_coupling, is_leaf=_is_zero)
    moving = [i for i, t in enumerate(tangent_leaves) if not _is_zero(t)]
    if moving:
        # -Ṁ·x = Ȧ·x: the coupling's conductances and capacitances that carry tangents.
        leaves, treedef = jax.tree.flatten(coupling)

        def apply_x(*moved):
            new = list(leaves)
            for i, leaf in zip(moving, moved):
                new[i] = leaf
            return jax.tree.unflatten(treedef, new).apply(x)

        parts.append(jax.jvp(apply_x, tuple(leaves[i] for i in moving), tuple(tangent_leaves[i] for i in moving))[1])
    if not parts:
        return x, jnp.zeros_like(x)
    return x, _linear_solve(method, coupling, diag, sum(parts[1:], parts[0]))


def _is_zero(t) -> bool:
    return isinstance(t, jax.custom_derivatives.SymbolicZero)


def _linear_solve(method, coupling: TreeCoupling, diag, rhs):
    """:func:`_tree_solve` as a ``custom_linear_solve``, linear in ``rhs`` (for
    tangents, which reverse mode transposes)."""
    c = coupling.capacitance

    def matvec(x):
        return diag * x - coupling.apply(x)

    def solve(_, b):
        return _tree_solve(method, coupling, diag, b)

    def transpose_solve(_, b):
        return c * _symmetric_solve(method, coupling, c * diag, b)

    return jax.lax.custom_linear_solve(matvec, rhs, solve, transpose_solve)


TREE_SOLVES = ("hines", "paths")
#: ``TreeCoupling.solve``'s method for systems without a capacitive term, whose
#: diagonal is small against the axial conductances (steady states, input
#: resistances): the Hines order, pivots built from each node's own term
#: (:func:`_eliminate` with ``own=True``), which keeps float32 accurate there.
STEADY = "steady"


def check_tree_solve(method, name: str = "tree_solve", *, steady: bool = False) -> None:
    """ValueError naming ``name`` unless ``method`` is one of :data:`TREE_SOLVES`
    (or :data:`STEADY`, where ``steady``)."""
    allowed = TREE_SOLVES + ((STEADY,) if steady else ())
    if method not in allowed:
        raise ValueError(f"{name} expects one of {allowed}, got {method!r}")


def _hines(coupling: TreeCoupling, cd, b, method: str = "hines"):
    """Solve ``S x = b`` with ``S = diag(cd + Σ g) - G`` on the tree (G: the symmetric
    conductance matrix; internal node numbering), by ``method`` (see
    :meth:`TreeCoupling.solve`)."""
    plan = coupling._plan()
    g = jnp.broadcast_to(coupling._g(), cd.shape)
    if method == STEADY or (method == "hines" and jnp.finfo(cd.dtype).bits < 64):
        # Below float64, time steps too: C/dt need not keep the own terms large
        # against the axial conductances (segments of a fraction of a micrometre: a
        # 20 µm cable in 101 segments was 0.25 mV off float64 after 10 ms).
        return _eliminate(cd, b, g, plan.centre_parent, plan.centre_order, edge=plan.centre_edge, own=True)
    # Diagonal: own term plus every conductance touching the node.
    d = cd + g + coupling._children_sum(g)
    if plan.parent.size == 1:
        return b / d
    part = _partition(coupling.parent, coupling.segment_nodes) if method == "paths" else None
    if part is None:
        return _eliminate(d, b, g, plan.centre_parent, plan.centre_order, edge=plan.centre_edge)
    return _partitioned(part, g, d, b)


def _eliminate(d, b, g, parent, order, *, edge=None, own: bool = False):
    """``x`` with ``(diag(d) - G) x = b`` on a tree by Hines elimination: one pass from
    the leaves to the roots, one back. ``g``: conductances (zero at roots, which are
    their own parents), node ``k``'s to its parent being ``g[edge[k]]`` (``edge``:
    default ``k``); ``order``: every child before its parent; node axis last. O(n);
    a node's elimination waits on its children's divisions, so ``order`` is best
    by height (:func:`_by_height`), which lets different branches' chains overlap.

    ``own`` (static): ``d`` holds each node's own term ``e`` instead, the diagonal
    being ``e + g + Σ_children g``, and the pivots are built from it: eliminating
    child ``c`` leaves its parent ``g_c·e_c/(e_c + g_c)`` of own term, where
    ``d_p - g_c²/d_c`` subtracts nearly equal numbers whenever ``e_c`` is small against
    the axial ``g``. That is the case at steady state (no ``C/dt`` term): a
    1001-segment cable's input resistance came out 436× too large in float32. The
    same operations per node, but one addition more on the dependency chain, which
    made a 1000-compartment cell's run 18-22 % slower on a CPU (benchmarks/RESULTS.md).
    float64 time steps use the full diagonal: ``C/dt`` keeps their own terms large
    enough for float64 (NEURON's solve, to rounding). Below float64 it is not enough
    where the axial conductances are far larger (segments of a fraction of a
    micrometre: a 1001-segment 100 µm cable stayed 0.085 mV off float64, a 101-segment
    20 µm one was 0.25 mV off after 10 ms), so there the ``"hines"`` solve of time steps
    uses the own terms too (tests/test_cable.py: within 1e-3 mV; one-off, a
    1000-compartment cell's float32 run ~20 % slower on a CPU); ``"paths"`` keeps the
    full diagonal."""
    # Each node's conductance to its parent, in the order of elimination (read in
    # turn by the loop, like its indices).
    g = take(g, order if edge is None else edge[order])
    # Move the node axis first so scan walks over nodes.
    d, b, g = (jnp.moveaxis(x, -1, 0) for x in (d, b, g))
    g2 = -g * g  # outside the loop: one multiplication fewer on its dependency chain

    def eliminate(carry, node):
        d, b = carry
        k, pk, g_k, g2_k = node
        # One division per node, here; the back substitution gets its two products
        # (g_k/d_k, b_k/d_k), so its own dependency chain is one multiply-add.
        inv_dk = 1.0 / (d[k] + g_k if own else d[k])
        f = g_k * inv_dk
        d = d.at[pk].add(f * d[k] if own else g2_k * inv_dk)
        b = b.at[pk].add(f * b[k])
        return (d, b), (f, b[k] * inv_dk)

    _, (f, b_scaled) = jax.lax.scan(eliminate, (d, b), (jnp.asarray(order), jnp.asarray(parent[order]), g, g2))

    def substitute(x, node):
        # x_k = (b_k + g_k·x_parent) / d_k, with both products taken in the
        # elimination: one multiply-add per node on this loop's dependency chain.
        k, pk, f_k, b_k = node
        x = x.at[k].set(b_k + f_k * x[pk])
        return x, None

    back = order[::-1]
    x, _ = jax.lax.scan(substitute, jnp.zeros_like(b), (jnp.asarray(back), jnp.asarray(parent[back]), f[::-1], b_scaled[::-1]))
    return jnp.moveaxis(x, 0, -1)


def _partitioned(part: _Partition, g, d, b):
    """``_eliminate``'s solution, computed path by path side by side.

    The tree is cut at *junctions* (roots, branch points, and every ``segment``-th
    node of a long unbranched stretch) into paths of at most ``segment`` nodes, each
    hanging below a junction (its top) and, unless it ends in a leaf, above another
    (its bottom). One sweep from the bottoms to the tops eliminates every path at once
    (a vector over paths: the divisions of different paths overlap, where the node by
    node elimination waits on each), carrying the fill-in towards the bottom junction;
    one sweep back writes each path's values as ``α + β·x_top + γ·x_bottom``. What is
    left is the small tree of junctions (the paths' Schur complements), eliminated as
    usual; the paths' values then follow elementwise. Same arithmetic cost as
    ``_eliminate`` up to a constant, about ``2·segment + 2·junctions`` sequential steps
    instead of ``2·n``."""
    L, P = part.layout.shape
    J = part.junctions.size
    gt = take_padded(g, part.g_index)
    k = L * P
    lay = lambda x: x.reshape(x.shape[:-1] + (L, P))
    g_up, g_down, g_bottom = lay(gt[..., :k]), lay(gt[..., k:2 * k]), lay(gt[..., 2 * k:3 * k])
    g_bot, g_direct = gt[..., 3 * k:3 * k + P], gt[..., 3 * k + P:]
    pad = jnp.asarray(part.pad)
    d_lay = jnp.where(pad, 1.0, take_padded(d, part.layout))  # padding rows: identity, no coupling
    b_lay = take_padded(b, part.layout)
    rows = lambda x: jnp.moveaxis(x, -2, 0)  # row axis first, for scan

    def inward(carry, row):
        # Node j from the eliminated node j+1 below it: pivot, right-hand side, and
        # the fill-in coupling it to the bottom junction.
        inv_below, b_below, f_below = carry
        d_j, b_j, g_below, g_bottom_j = row
        r = g_below * inv_below
        inv = 1.0 / (d_j - r * g_below)
        out = (inv, b_j + r * b_below, g_bottom_j + r * f_below)
        return out, out

    zero = jnp.zeros_like(d_lay[..., 0, :])
    (inv0, b0, _), (inv, bp, fp) = jax.lax.scan(
        inward, (zero, zero, zero), tuple(rows(x) for x in (d_lay, b_lay, g_down, g_bottom)), reverse=True)

    def outward(carry, row):
        # x_j = α_j + β_j·x_top + γ_j·x_bottom, from x_j = (b'_j + g_j·x_{j-1} + f_j·x_bottom)/d'_j.
        # Padding rows (g = 1, inv = 1, b' = f = 0) pass the last node's values on.
        alpha, beta, gamma = carry
        inv_j, b_j, f_j, g_j = row
        out = ((b_j + g_j * alpha) * inv_j, g_j * beta * inv_j, (f_j + g_j * gamma) * inv_j)
        return out, out

    one = jnp.ones_like(zero)
    (alpha_l, beta_l, gamma_l), (alpha, beta, gamma) = jax.lax.scan(
        outward, (zero, one, zero), (inv, bp, fp, rows(jnp.where(pad, 1.0, g_up))))
    # The junctions' system: each path's Schur complement joins its top and bottom.
    g_top = g_up[..., 0, :]
    contributions = jnp.stack([jnp.concatenate([g_top * g_top * inv0, g_bot * gamma_l], axis=-1),
                               jnp.concatenate([g_top * b0 * inv0, g_bot * alpha_l], axis=-1)], axis=-2)
    sums = sum_gathered(contributions, tuple(part.ends), J)
    dbj = jnp.stack([d[..., part.junctions], b[..., part.junctions]], axis=-2)
    w = g_direct + take_padded(g_bot * beta_l, part.via)
    x_j = _eliminate(dbj[..., 0, :] - sums[..., 0, :], dbj[..., 1, :] + sums[..., 1, :], w,
                     part.junction_parent, np.arange(J))
    x_top = x_j[..., part.ends[:P]]
    x_bottom = take_padded(x_j, part.ends[P:])
    x = jnp.moveaxis(alpha + beta * x_top + gamma * x_bottom, 0, -2)
    return take_padded(jnp.concatenate([x.reshape(x.shape[:-2] + (k,)), x_j], axis=-1), part.out_index)


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
    elimination: np.ndarray  # internal nodes, every child before its parent (numbers the paths' junctions)
    neighbour: np.ndarray  # (n_zero, m): the compartments around each zero-area node
    link: np.ndarray  # (n_zero, m): the node whose g joins it to that neighbour
    # The Hines solve's tree: each component hung from its centre (_centred).
    centre_parent: np.ndarray  # parent in it (the centres: themselves)
    centre_edge: np.ndarray  # the node whose g joins a node to that parent (centres: a root's, zero)
    centre_order: np.ndarray  # every node after its children there, by height


@per_precision_cache(256)
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
    # Each zero-area node's children, grouped by one sort (a scan of all nodes per
    # zero-area node was quadratic: 0.3 s for 10⁴ of them in a 10⁵-node tree).
    child = np.nonzero(~is_root & (q >= n_seg))[0]
    child = child[np.argsort(q[child], kind="stable")]  # by parent, each parent's in order
    bounds = np.searchsorted(q[child], np.arange(n_seg, n + 1))
    neighbours = []
    for r, j in enumerate(range(n_seg, n)):  # zero-area nodes: their parent and their children
        nb = [] if is_root[j] else [(int(q[j]), j)]
        nb += [(int(c), int(c)) for c in child[bounds[r]:bounds[r + 1]]]
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
        **_centred(q, is_root),
    )


def _centred(parent: np.ndarray, is_root: np.ndarray) -> dict[str, np.ndarray]:
    """The Hines solve's tree: ``parent``'s (roots their own parents) with each
    component hung from its centre, the middle of its longest path. The matrix is the
    same whichever node is the root (each conductance joins two nodes either way); the
    elimination's longest chain of dependent steps is the root's height, which the
    centre makes smallest: an unbranched cable's two halves are eliminated side by
    side (see :func:`_by_height`). ``centre_edge``: the node whose ``g`` is each node's
    conductance to its new parent (itself where the edge keeps its direction, the
    new parent where it was turned round, and at a centre its component's old root,
    whose ``g`` is zero)."""
    n = parent.size
    neighbours = [[] for _ in range(n)]
    for i in np.nonzero(~is_root)[0]:
        neighbours[i].append(int(parent[i]))
        neighbours[parent[i]].append(int(i))
    came_from = np.full(n, -1, dtype=np.int32)

    def search(start):
        """Breadth-first from ``start``: the nodes in visiting order; ``came_from``
        then holds each one's predecessor (``start``: itself)."""
        came_from[start] = start
        visit = [start]
        for i in visit:
            for j in neighbours[i]:
                if j != came_from[i]:
                    came_from[j] = i
                    visit.append(j)
        return visit

    centre_parent = np.arange(n, dtype=np.int32)
    edge = np.arange(n, dtype=np.int32)
    order = []
    for root in np.nonzero(is_root)[0]:
        far = search(int(root))[-1]
        path = [search(far)[-1]]  # from the far end back to `far`: a longest path
        while path[-1] != far:
            path.append(int(came_from[path[-1]]))
        centre = path[len(path) // 2]
        visit = search(centre)
        rest = np.asarray(visit[1:], dtype=np.int32)
        centre_parent[rest] = came_from[rest]
        edge[rest] = np.where(parent[rest] == came_from[rest], rest, came_from[rest])
        edge[centre] = root
        order.extend(visit[::-1])  # children before parents
    order = np.asarray(order, dtype=np.int32)
    return dict(centre_parent=centre_parent, centre_edge=edge,
                centre_order=_by_height(order, centre_parent, centre_parent == np.arange(n)))


def _by_height(order: np.ndarray, parent: np.ndarray, is_root: np.ndarray) -> np.ndarray:
    """``order`` (every child before its parent) sorted by each node's height, the
    longest way down to a leaf, ties in ``order``'s order: still every child before
    its parent, with nodes of equal height (on different branches, so independent)
    next to each other. Each node's elimination waits on its children's (a division
    and a multiply-add), and its back substitution on its parent's: a branch solved
    node after node runs at the latency of that chain. With the branches' nodes taking
    turns the processor overlaps their chains, so the solve takes about the root's
    height in steps rather than the number of nodes (a 1000-compartment HH cell of 10
    branches ran 1.5× faster on a CPU; benchmarks/RESULTS.md)."""
    height = np.zeros(parent.size, dtype=np.int64)
    for k in order:
        if not is_root[k]:
            height[parent[k]] = max(height[parent[k]], height[k] + 1)
    return order[np.argsort(height[order], kind="stable")].astype(np.int32)


class _Partition(NamedTuple):
    """Static indexing of :func:`_partitioned` (internal node numbering, ``n`` nodes;
    index ``n`` reads zero). Paths have rows ``0..m-1`` from the top down, padded to
    ``L`` rows; junction slots are numbered children before parents."""

    layout: np.ndarray  # (L, P) node at each row of each path
    pad: np.ndarray  # (L, P) padding rows
    g_index: np.ndarray  # nodes whose g the solve reads: up, down, bottom (L·P each), bottom g (P), direct links (J)
    junctions: np.ndarray  # (J,) node of each junction slot
    junction_parent: np.ndarray  # (J,) slot of the junction above (roots: themselves)
    ends: np.ndarray  # (2P,) slot of each path's top, then of its bottom (J: none)
    via: np.ndarray  # (J,) path joining a junction to the one above it (P: none)
    out_index: np.ndarray  # (n,) each node's position in (paths' rows and lanes, junctions)


@per_precision_cache(256)
def _partition(parent: tuple[int, ...], segment_nodes: tuple[int, ...] | None) -> _Partition | None:
    plan = _plan(parent, segment_nodes)
    q, is_root = plan.parent, plan.is_root
    n = q.size
    children = [[] for _ in range(n)]
    for i in np.nonzero(~is_root)[0]:
        children[q[i]].append(int(i))
    n_children = np.array([len(c) for c in children])

    def paths_below(junction):
        out = []  # (top junction, nodes from the top down, bottom junction or -1)
        for top in np.nonzero(junction)[0]:
            for c in children[top]:
                if junction[c]:
                    continue
                path = [c]
                while n_children[path[-1]] == 1 and not junction[children[path[-1]][0]]:
                    path.append(children[path[-1]][0])
                below = children[path[-1]]
                out.append((int(top), path, below[0] if below else -1))
        return out

    junction = is_root | (n_children >= 2)
    # Cut long paths every `segment` nodes: ~√n rows and ~√n junctions balance the two
    # sweeps against the junctions' own node-by-node solve.
    segment = max(8, int(round(np.sqrt(n))))
    for _, path, _ in paths_below(junction):
        junction[np.asarray(path)[segment::segment + 1]] = True
    paths = paths_below(junction)
    if not paths:
        return None
    P, L = len(paths), max(len(path) for _, path, _ in paths)
    slots = [int(k) for k in plan.elimination if junction[k]]
    J = len(slots)
    slot = {k: s for s, k in enumerate(slots)}
    layout = np.full((L, P), n)
    down = np.full((L, P), n)
    bottom = np.full((L, P), n)
    bottom_node = np.full(P, n)
    ends = np.full(2 * P, J)
    via = np.full(J, P)
    junction_parent = np.arange(J)
    direct = np.full(J, n)
    for p, (top, path, below) in enumerate(paths):
        m = len(path)
        layout[:m, p] = path
        down[: m - 1, p] = path[1:]  # the child's g joins rows j and j+1
        ends[p] = slot[top]
        if below >= 0:
            bottom[m - 1, p] = bottom_node[p] = below
            ends[P + p] = slot[below]
            via[slot[below]] = p
            junction_parent[slot[below]] = slot[top]
    for k in slots:
        if not is_root[k] and junction[q[k]]:
            direct[slot[k]] = k
            junction_parent[slot[k]] = slot[q[k]]
    out_index = np.empty(n, dtype=np.int32)
    real = layout < n
    out_index[layout[real]] = np.nonzero(real.ravel())[0]
    out_index[slots] = L * P + np.arange(J)
    return _Partition(
        layout=layout.astype(np.int32),
        pad=~real,
        g_index=np.concatenate([layout.ravel(), down.ravel(), bottom.ravel(), bottom_node, direct]).astype(np.int32),
        junctions=np.asarray(slots, dtype=np.int32),
        junction_parent=junction_parent.astype(np.int32),
        ends=ends.astype(np.int32),
        via=via.astype(np.int32),
        out_index=out_index,
    )
