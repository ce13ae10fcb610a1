"""Connection rules: which pre compartment connects to which post compartment.

A rule is called as ``rule(n_pre, n_post, same=False)`` and returns two integer NumPy
arrays ``(pre_ids, post_ids)`` of equal length, one entry per connection, indexing the
``n_pre`` pre-side and ``n_post`` post-side compartments. ``same`` is True when pre and
post are the same compartments (a recurrent coupling), where ``include_self`` decides
whether ``i → i`` connections are made. BrainPy-style callables ``conn(n_pre, n_post)``
and explicit ``(pre_ids, post_ids)`` pairs are accepted wherever a rule is.

Rules run once, when a :class:`~jaxneuro.Network` is built, on the host; the stored
index arrays cost memory proportional to the number of connections, never N². A
network applies a rule through :func:`connect`, which also gives it the global ids of
both sides' compartments, so that ``include_self=False`` knows a compartment's own
connections where the sides overlap without being the same list, and the two sides as
the coupling names them: a random rule's draw in a network depends on its seed *and*
its sides, so projections written with one seed (or the default) between different
populations are independent draws (with one random stream, E→E and I→E of 0.1 would
share their first rows' connections), while two couplings with one rule between the
same sides (AMPA and NMDA synapses, say) get the same connections.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import math

import jax
import numpy as np

from .. import units

__all__ = ["one_to_one", "all_to_all", "fixed_prob", "fixed_indegree", "explicit", "resolve", "connect", "as_rule",
           "AbstractRule"]


class AbstractRule:
    """A connection rule; see the module docstring.

    Rules compare equal when they make the same connections (same class and
    parameters), so a network rebuilt with the same rules is the same static
    configuration to ``jax.jit`` and is not compiled again."""

    def __call__(self, n_pre: int, n_post: int, same: bool = False):
        pre, post = self.build(int(n_pre), int(n_post), bool(same))
        return np.asarray(pre, dtype=np.int64), np.asarray(post, dtype=np.int64)

    def build(self, n_pre, n_post, same):  # pragma: no cover - abstract
        raise NotImplementedError

    def connect(self, pre_glob, post_glob):
        """``(pre_ids, post_ids)``, local indices into the two sides, for sides whose
        compartments have the global ids ``pre_glob`` and ``post_glob`` (NumPy integer
        arrays, as a :class:`~jaxneuro.Network` locates them): the rule called with
        ``same`` True where the two lists are equal; with ``include_self=False``, where
        they overlap without being the same list (subsets, another order), the
        connections of a compartment to itself are then left out (the rule saw local
        numbers, so its ``i → i`` is not a compartment to itself). A rule that must keep
        a count exact (:func:`fixed_indegree`) overrides this."""
        return _connect_locally(self, pre_glob, post_glob)

    def for_sides(self, sides):
        """The rule as it draws between ``sides`` (a hashable description of the two
        sides, as a coupling names them): itself, unless its draw is random (see the
        module docstring)."""
        return self

    def _key(self):
        """What makes two rules of one class equal (hashable), or None to compare
        by identity."""
        return ()

    def __eq__(self, other):
        if self is other:
            return True
        if type(self) is not type(other):
            return NotImplemented
        key = self._key()
        return key is not None and key == other._key()

    def __hash__(self):
        key = self._key()
        return id(self) if key is None else hash((type(self).__name__, key))


class _OneToOne(AbstractRule):
    def build(self, n_pre, n_post, same):
        if n_pre != n_post:
            raise ValueError(
                f"conn=one_to_one needs pre and post of the same size, got {n_pre} and {n_post}"
            )
        i = np.arange(n_pre)
        return i, i

    def __repr__(self):
        return "one_to_one()"


class _AllToAll(AbstractRule):
    def __init__(self, include_self: bool = True):
        self.include_self = units.flag(include_self, "all_to_all: include_self")

    def build(self, n_pre, n_post, same):
        pre = np.repeat(np.arange(n_pre), n_post)
        post = np.tile(np.arange(n_post), n_pre)
        return _drop_self(pre, post, same and not self.include_self)

    def _key(self):
        return (self.include_self,)

    def __repr__(self):
        return f"all_to_all(include_self={self.include_self})"


def _same_sides(pre_glob, post_glob) -> bool:
    """Whether two sides are the same compartments in the same order."""
    return pre_glob.shape == post_glob.shape and bool(np.all(pre_glob == post_glob))


def _drop_overlap(rule, pre, post, pre_glob, post_glob, same):
    """``(pre, post)`` without the connections of a compartment to itself where
    ``rule`` has ``include_self=False`` and the sides overlap without being the same."""
    if getattr(rule, "include_self", True) is False and not same:
        keep = pre_glob[pre] != post_glob[post]
        pre, post = pre[keep], post[keep]
    return pre, post


def _check_seed(seed, rule: str):
    """``seed`` as a rule keeps it: an int, None (a fresh draw) or a NumPy generator."""
    generator = (np.random.Generator, np.random.SeedSequence, np.random.BitGenerator)
    integer = isinstance(seed, (int, np.integer)) and not isinstance(seed, (bool, np.bool_))
    if not (seed is None or isinstance(seed, generator) or (integer and seed >= 0)):
        raise ValueError(f"{rule}: seed expects a non-negative integer, None (a fresh draw) or a "
                         f"NumPy Generator, got {seed!r}")
    return int(seed) if integer else seed


def _seed_key(seed):
    """An integer seed makes the same draw every time; anything else (None, a
    Generator) may not, so such rules are only equal to themselves (None)."""
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        return int(seed)
    return None


def _side_words(sides) -> list[int]:
    """Four 32-bit words from ``sides`` (its text, hashed): the part of a seeded rule's
    random stream that tells one coupling's sides from another's, the same in every
    process (Python's ``hash`` of text is not)."""
    digest = hashlib.sha256(repr(sides).encode()).digest()
    return [int.from_bytes(digest[i:i + 4], "little") for i in range(0, 16, 4)]


class _SeededRule(AbstractRule):
    """A rule drawing from NumPy's ``default_rng(seed)``; in a network, an integer seed
    is combined with the sides (:meth:`for_sides`)."""

    def for_sides(self, sides):
        if _seed_key(self.seed) is None:  # None (fresh) or a Generator (its own stream on)
            return self
        drawn = copy.copy(self)
        drawn.seed = np.random.SeedSequence([self.seed, *_side_words(sides)])
        return drawn


def _drop_self(pre, post, drop: bool):
    """Remove connections of a compartment to itself (recurrent rules without self)."""
    if not drop:
        return pre, post
    keep = pre != post
    return pre[keep], post[keep]


class _FixedProb(_SeededRule):
    def __init__(self, p, seed=0, include_self: bool = True):
        # A fixed number (it shapes the network when it is built): a 0-d array of one too.
        number = (not isinstance(p, (bool, np.bool_)) and np.ndim(p) == 0 and not isinstance(p, jax.core.Tracer)
                  and np.issubdtype(np.asarray(p).dtype, np.number) and not np.iscomplexobj(p))
        if not number:
            raise ValueError(f"fixed_prob: p expects a probability in [0, 1] (a fixed real number: the network's "
                             f"connections are drawn when it is built), got {p!r}")
        if not 0.0 <= float(p) <= 1.0:
            raise ValueError(f"fixed_prob: p expects a probability in [0, 1], got {p!r}")
        self.seed = _check_seed(seed, "fixed_prob")
        self.p = float(p)
        self.include_self = units.flag(include_self, "fixed_prob: include_self")

    def build(self, n_pre, n_post, same):
        total = n_pre * n_post
        rng = np.random.default_rng(self.seed)
        if self.p == 0.0 or total == 0:
            pos = np.zeros(0, dtype=np.int64)
        else:
            # Each of the n_pre·n_post pairs is connected independently with
            # probability p. Drawing the gaps between connected pairs (geometric) costs
            # time and memory in the number of connections, not in n_pre·n_post.
            chunks, start = [], -1
            expected = self.p * total
            while True:
                k = int(expected * 1.02 + 6.0 * math.sqrt(expected) + 64)
                pos = start + np.cumsum(rng.geometric(self.p, size=k), dtype=np.int64)
                chunks.append(pos[pos < total])
                if pos[-1] >= total:
                    break
                start = int(pos[-1])
            pos = np.concatenate(chunks)
        pre, post = pos // n_post, pos % n_post
        return _drop_self(pre, post, same and not self.include_self)

    def _key(self):
        seed = _seed_key(self.seed)
        return None if seed is None else (self.p, seed, self.include_self)

    def __repr__(self):
        return f"fixed_prob(p={self.p}, seed={self.seed}, include_self={self.include_self})"


#: Elements (rows × candidates) of one block of :class:`_FixedIndegree`'s draw: bounds
#: its temporary memory (a few arrays of this many int64) whatever the network's size.
_BLOCK = 1 << 21


class _FixedIndegree(_SeededRule):
    def __init__(self, k, seed=0, include_self: bool = True):
        whole = (not isinstance(k, (bool, np.bool_)) and np.ndim(k) == 0 and not isinstance(k, jax.core.Tracer)
                 and np.issubdtype(np.asarray(k).dtype, np.number) and not np.iscomplexobj(k)
                 and np.isfinite(k) and float(k) == int(k) and k >= 0)
        if not whole:
            raise ValueError(f"fixed_indegree: k expects a non-negative whole number (the connections each post "
                             f"receives, fixed when the network is built; e.g. int(0.1 * n_exc)), got {k!r}")
        self.k = int(k)
        self.seed = _check_seed(seed, "fixed_indegree")
        self.include_self = units.flag(include_self, "fixed_indegree: include_self")

    def build(self, n_pre, n_post, same):
        if same and not self.include_self:  # post j is pre j
            return self._draw(n_pre, n_post, np.arange(n_post)[:, None], "other than the post itself")
        return self._draw(n_pre, n_post, None, "")

    def connect(self, pre_glob, post_glob):
        # The network's side lists: without self, each post leaves out exactly the pre
        # positions that are its own compartment, whether the sides are the same list,
        # subsets sharing some compartments or the same in another order, so that every
        # post keeps exactly k connections (dropping them after the draw would leave
        # k - 1 to some).
        same = _same_sides(pre_glob, post_glob)
        if self.include_self or same:
            return self(pre_glob.size, post_glob.size, same)
        order = np.argsort(pre_glob, kind="stable")
        sorted_pre = pre_glob[order]
        lo = np.searchsorted(sorted_pre, post_glob, side="left")
        count = np.searchsorted(sorted_pre, post_glob, side="right") - lo
        width = int(count.max(initial=0))
        if width == 0:  # no overlap
            return self(pre_glob.size, post_glob.size, False)
        n_pre = pre_glob.size
        cols = np.arange(width)
        excluded = np.where(cols < count[:, None], order[np.minimum(lo[:, None] + cols, n_pre - 1)], n_pre)
        return self._draw(n_pre, post_glob.size, np.sort(excluded, axis=1), "other than the post itself")

    def _draw(self, n_pre, n_post, excluded, what):
        """``k`` distinct pre positions for each of ``n_post`` posts, uniform among those
        not in the post's row of ``excluded`` (ascending, padded with ``n_pre``; None:
        none excluded); post-major, each post's pre ascending."""
        k = self.k
        n_excl = np.zeros(n_post, dtype=np.int64) if excluded is None else np.sum(excluded < n_pre, axis=1)
        available = n_pre - n_excl
        if n_post and k > int(available.min()):
            which = f"pre compartments {what}" if what else "pre compartments"
            raise ValueError(
                f"fixed_indegree: k={k} exceeds the {int(available.min())} {which} ({n_pre} on the pre side) "
                "from which each post draws its k distinct connections"
            )
        if k == 0 or n_post == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        rng = np.random.default_rng(self.seed)
        out = np.empty((n_post, k), dtype=np.int64)
        dense = 2 * k > int(available.min())
        # Dense: the k smallest of a uniform key per candidate (n_pre per row, at most
        # twice the connections). Sparse: draws with replacement, first k distinct kept.
        n_min = int(available.min())
        per_row = n_pre if dense else _draws_for(k, n_min)
        rows = max(1, _BLOCK // per_row)
        for start in range(0, n_post, rows):
            block = slice(start, min(start + rows, n_post))
            ex = None if excluded is None else excluded[block]
            if dense:
                out[block] = _smallest_keys(rng, block.stop - block.start, n_pre, k, ex)
            else:
                out[block] = _first_distinct_draws(rng, available[block], k, ex, per_row)
        return out.reshape(-1), np.repeat(np.arange(n_post, dtype=np.int64), k)

    def _key(self):
        seed = _seed_key(self.seed)
        return None if seed is None else (self.k, seed, self.include_self)

    def __repr__(self):
        return f"fixed_indegree(k={self.k}, seed={self.seed}, include_self={self.include_self})"


def _draws_for(k, n):
    """Draws with replacement from ``n`` values that almost always hold ``k`` distinct
    ones (the expected number of distinct values of ``m`` draws is ``n(1 − (1 −
    1/n)^m)``; a row that falls short draws again, with twice as many)."""
    return int(math.ceil(-n * math.log1p(-k / n))) + int(math.ceil(6.0 * math.sqrt(k))) + 8


def _skip_excluded(u, excluded):
    """Map ``u`` (the u-th available pre of each row) to pre positions, passing over
    each row's ascending ``excluded`` positions."""
    if excluded is None:
        return u
    for c in range(excluded.shape[1]):
        u = u + (u >= excluded[:, c:c + 1])
    return u


def _smallest_keys(rng, n_rows, n_pre, k, excluded):
    keys = rng.random((n_rows, n_pre))
    if excluded is not None:
        rows = np.broadcast_to(np.arange(n_rows)[:, None], excluded.shape)
        real = excluded < n_pre
        keys[rows[real], excluded[real]] = 2.0  # never among the k smallest (k ≤ available)
    chosen = np.argpartition(keys, k - 1, axis=1)[:, :k] if k < n_pre else np.broadcast_to(np.arange(n_pre), (n_rows, n_pre))
    return np.sort(chosen, axis=1)


def _first_distinct_draws(rng, available, k, excluded, m):
    """For each row, the first ``k`` distinct values (ascending) of uniform draws
    from its ``available`` pre positions: a uniform k-subset, as the draws are
    exchangeable."""
    n_rows = available.shape[0]
    out = np.empty((n_rows, k), dtype=np.int64)
    pending = np.arange(n_rows)
    while pending.size:
        avail = available[pending]
        if np.all(avail == avail[0]):
            u = rng.integers(0, int(avail[0]), size=(pending.size, m))
        else:  # rows of two sizes (sides that overlap in part): floor(U·n), uniform to 2^-53
            u = (rng.random((pending.size, m)) * avail[:, None]).astype(np.int64)
        v = _skip_excluded(u, None if excluded is None else excluded[pending])
        # Sorted by value, then by draw: one sort of value·m + draw position.
        key = np.sort(v * m + np.arange(m), axis=1)
        sv = key // m
        pos = key - sv * m
        new = np.ones(sv.shape, dtype=bool)
        new[:, 1:] = sv[:, 1:] != sv[:, :-1]  # each value's first draw
        # The k first-drawn distinct values: first draws at or before the k-th earliest.
        first_pos = np.where(new, pos, m)
        kth = np.partition(first_pos, k - 1, axis=1)[:, k - 1:k]
        ok = kth[:, 0] < m
        keep = (new & (pos <= kth))[ok]
        out[pending[ok]] = sv[ok][keep].reshape(-1, k)
        pending, m = pending[~ok], 2 * m
    return out


class _Explicit(AbstractRule):
    def __init__(self, pre_ids, post_ids):
        pre, post = np.asarray(pre_ids), np.asarray(post_ids)
        for name, ids in (("pre_ids", pre), ("post_ids", post)):
            if ids.ndim != 1 or not (ids.size == 0 or np.issubdtype(ids.dtype, np.integer)):
                raise ValueError(
                    f"explicit connections: {name} expects a 1-D sequence of integer indices, "
                    f"got {ids!r}"
                )
        if pre.shape != post.shape:
            raise ValueError(
                f"explicit connections: pre_ids and post_ids must have the same length, got "
                f"{pre.shape[0]} and {post.shape[0]}"
            )
        self.pre_ids, self.post_ids = pre.astype(np.int64), post.astype(np.int64)
        self._hash = hash((self.pre_ids.tobytes(), self.post_ids.tobytes()))  # once: lists may be long

    def __eq__(self, other):
        if self is other:
            return True
        if type(self) is not type(other):
            return NotImplemented
        return (self._hash == other._hash and np.array_equal(self.pre_ids, other.pre_ids)
                and np.array_equal(self.post_ids, other.post_ids))

    def __hash__(self):
        return self._hash

    def build(self, n_pre, n_post, same):
        for name, ids, n in (("pre_ids", self.pre_ids, n_pre), ("post_ids", self.post_ids, n_post)):
            if ids.size and (ids.min() < 0 or ids.max() >= n):
                raise ValueError(
                    f"explicit connections: {name} must lie in [0, {n}), got values from "
                    f"{ids.min()} to {ids.max()}"
                )
        return self.pre_ids, self.post_ids

    def __repr__(self):
        return f"explicit({self.pre_ids.tolist()}, {self.post_ids.tolist()})"


def one_to_one():
    """Connect pre ``i`` to post ``i`` (pre and post of the same size). On the same
    compartments this connects each to itself: a synapse from a neuron onto itself (an
    autapse); gap junctions refuse it, as no current flows."""
    return _OneToOne()


def all_to_all(include_self: bool = True):
    """Connect every pre to every post; ``include_self=False`` leaves out connections
    of a compartment to itself (where pre and post overlap: the same compartments, or
    subsets sharing some)."""
    return _AllToAll(include_self)


def fixed_prob(p, seed=0, include_self: bool = True):
    """Connect each (pre, post) pair independently with probability ``p``; ``seed``
    fixes the draw (NumPy's ``default_rng``; None: a fresh draw each time). In a
    network the draw depends on the seed and the coupling's two sides as written, so
    projections between different sides are independent with one seed (or the default),
    and couplings with one rule between the same sides (AMPA and NMDA synapses) get the
    same connections; calling the rule, ``fixed_prob(p, seed)(n_pre, n_post)``, draws
    from the seed alone (a network's own: ``net.connections(name)``). ``include_self=False`` leaves out
    connections of a compartment to itself (where pre and post overlap: the same
    compartments, or subsets sharing some); the other pairs keep probability ``p``."""
    return _FixedProb(p, seed, include_self)


def fixed_indegree(k, seed=0, include_self: bool = True):
    """Connect every post to exactly ``k`` distinct pre, drawn uniformly for each post
    (NEST's ``fixed_indegree``; Brunel 2000's ``C_E = 0.1·N_E``); ``seed`` fixes the
    draw (NumPy's ``default_rng``; None: a fresh draw each time), in a
    network together with the coupling's two sides, as for :func:`fixed_prob`.
    ``include_self=False`` leaves a post's own
    compartment out of its candidates where pre and post overlap (the same
    compartments, or subsets sharing some, in a Network), so each post still receives
    exactly ``k``. ``k`` larger than the candidates (``n_pre``, or one fewer without
    self) is a ValueError. Time and memory grow with the ``n_post·k`` connections, not
    with ``n_pre·n_post``; they come post by post, each post's pre ascending."""
    return _FixedIndegree(k, seed, include_self)


def explicit(pre_ids, post_ids):
    """The connections ``pre_ids[k] → post_ids[k]`` exactly as given."""
    return _Explicit(pre_ids, post_ids)


for _f in (one_to_one, all_to_all):
    _f._is_rule_factory = True


def as_rule(conn):
    """``conn`` as a rule where it is one in another form (an uncalled factory such as
    ``jn.conn.one_to_one``, a ``(pre_ids, post_ids)`` pair); a callable is kept as
    given; anything else is a ValueError."""
    if getattr(conn, "_is_rule_factory", False):  # jn.conn.one_to_one given uncalled
        return conn()
    if isinstance(conn, AbstractRule):
        return conn
    if isinstance(conn, tuple) and len(conn) == 2 and not callable(conn[0]):
        if all(isinstance(c, tuple) and len(c) == 2 for c in conn):
            # ((0, 1), (2, 0)) reads as two (pre, post) pairs as well as (pre_ids, post_ids)
            (a, b), (c, d) = conn
            raise ValueError(
                f"conn={conn!r} is ambiguous: the connections {a}→{b} and {c}→{d}, or pre_ids {conn[0]} with "
                f"post_ids {conn[1]} ({a}→{c} and {b}→{d})? Give jn.conn.explicit(pre_ids, post_ids), or the "
                "ids as lists or arrays: ([pre, ...], [post, ...])"
            )
        return _Explicit(*conn)
    if callable(conn):
        return conn
    pairs = ""
    if isinstance(conn, list) and conn and all(isinstance(c, (tuple, list)) and len(c) == 2 for c in conn):
        pairs = " (for a list of (pre, post) pairs: jn.conn.explicit(*zip(*pairs)))"
    raise ValueError(
        "conn expects a connection rule (jn.conn.one_to_one, all_to_all(...), fixed_prob(p, "
        "seed), fixed_indegree(k, seed), explicit(pre_ids, post_ids)), a (pre_ids, post_ids) pair or a callable"
        f"{pairs}; got {conn!r}"
    )


def connect(conn, pre_glob, post_glob, sides=None):
    """``(pre_ids, post_ids)`` (local indices into the sides) for any accepted form of
    ``conn`` between sides whose compartments have the global ids ``pre_glob`` and
    ``post_glob``; see :meth:`AbstractRule.connect`. ``sides``: the two sides as the
    coupling names them (``(pre, post)``), which a seeded rule's draw depends on
    (:meth:`AbstractRule.for_sides`); None draws from the seed alone, as calling the
    rule does."""
    rule = as_rule(conn)
    pre_glob, post_glob = np.asarray(pre_glob), np.asarray(post_glob)
    if isinstance(rule, AbstractRule):
        return (rule if sides is None else rule.for_sides(sides)).connect(pre_glob, post_glob)
    return _connect_locally(rule, pre_glob, post_glob)


def _connect_locally(rule, pre_glob, post_glob):
    """A rule (or BrainPy-style callable) called on the sides' sizes, ``same`` where the
    sides are one list, and self-connections of overlapping sides left out after it
    (:func:`_drop_overlap`)."""
    same = _same_sides(pre_glob, post_glob)
    pre, post = resolve(rule, pre_glob.size, post_glob.size, same)
    return _drop_overlap(rule, pre, post, pre_glob, post_glob, same)


def resolve(conn, n_pre: int, n_post: int, same: bool):
    """``(pre_ids, post_ids)`` NumPy arrays for any accepted form of ``conn``."""
    conn = as_rule(conn)
    if isinstance(conn, AbstractRule):
        return conn(n_pre, n_post, same)
    # A BrainPy-style callable.
    try:
        n_args = len(inspect.signature(conn).parameters)
    except (TypeError, ValueError):
        n_args = 2
    out = conn(n_pre, n_post, same) if n_args >= 3 else conn(n_pre, n_post)
    if not (isinstance(out, tuple) and len(out) == 2):
        raise ValueError(
            f"conn: the callable {conn!r} must return (pre_ids, post_ids), got {type(out).__name__}"
        )
    return _Explicit(*out)(n_pre, n_post, same)
