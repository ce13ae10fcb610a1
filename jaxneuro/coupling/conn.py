"""Connection rules: which pre compartment connects to which post compartment.

A rule is called as ``rule(n_pre, n_post, same=False)`` and returns two integer NumPy
arrays ``(pre_ids, post_ids)`` of equal length, one entry per connection, indexing the
``n_pre`` pre-side and ``n_post`` post-side compartments. ``same`` is True when pre and
post are the same compartments (a recurrent coupling), where ``include_self`` decides
whether ``i → i`` connections are made. BrainPy-style callables ``conn(n_pre, n_post)``
and explicit ``(pre_ids, post_ids)`` pairs are accepted wherever a rule is.

Rules run once, when a :class:`~jaxneuro.Network` is built, on the host; the stored
index arrays cost memory proportional to the number of connections, never N².
"""

from __future__ import annotations

import inspect
import math

import jax
import numpy as np

from .. import units

__all__ = ["one_to_one", "all_to_all", "fixed_prob", "explicit", "resolve", "as_rule", "AbstractRule"]


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


def _drop_self(pre, post, drop: bool):
    """Remove connections of a compartment to itself (recurrent rules without self)."""
    if not drop:
        return pre, post
    keep = pre != post
    return pre[keep], post[keep]


class _FixedProb(AbstractRule):
    def __init__(self, p, seed=0, include_self: bool = True):
        # A fixed number (it shapes the network when it is built): a 0-d array of one too.
        number = (not isinstance(p, (bool, np.bool_)) and np.ndim(p) == 0 and not isinstance(p, jax.core.Tracer)
                  and np.issubdtype(np.asarray(p).dtype, np.number) and not np.iscomplexobj(p))
        if not number:
            raise ValueError(f"fixed_prob: p expects a probability in [0, 1] (a fixed real number: the network's "
                             f"connections are drawn when it is built), got {p!r}")
        if not 0.0 <= float(p) <= 1.0:
            raise ValueError(f"fixed_prob: p expects a probability in [0, 1], got {p!r}")
        generator = (np.random.Generator, np.random.SeedSequence, np.random.BitGenerator)
        integer = isinstance(seed, (int, np.integer)) and not isinstance(seed, (bool, np.bool_))
        if not (seed is None or isinstance(seed, generator) or (integer and seed >= 0)):
            raise ValueError(f"fixed_prob: seed expects a non-negative integer, None (a fresh draw) or a "
                             f"NumPy Generator, got {seed!r}")
        self.p = float(p)
        self.seed = int(seed) if integer else seed
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
        # An integer seed makes the same draw every time; anything else (None, a
        # Generator) may not, so such rules are only equal to themselves.
        if isinstance(self.seed, (int, np.integer)) and not isinstance(self.seed, bool):
            return (self.p, int(self.seed), self.include_self)
        return None

    def __repr__(self):
        return f"fixed_prob(p={self.p}, seed={self.seed}, include_self={self.include_self})"


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
    fixes the draw (NumPy's ``default_rng``). ``include_self=False`` leaves out
    connections of a compartment to itself (where pre and post overlap: the same
    compartments, or subsets sharing some); the other pairs keep probability ``p``."""
    return _FixedProb(p, seed, include_self)


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
        f"seed), explicit(pre_ids, post_ids)), a (pre_ids, post_ids) pair or a callable{pairs}; got {conn!r}"
    )


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
