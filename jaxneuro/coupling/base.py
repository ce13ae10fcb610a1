"""What every coupling between compartments shares: its two sides and its connections.

A side (``pre`` or ``post``) names compartments of a :class:`~jaxneuro.Network`:

* ``"a"`` — every compartment of population ``"a"``, in the order of its flattened
  ``state.v`` (one per neuron for point neurons, one per segment for cables and cells);
* ``("a", indices)`` — the listed flat indices into ``"a"``'s ``state.v``, in that
  order (e.g. the somatic and dendritic segments of a multicompartment cell);
* ``("a", (section, x))`` or a list of such locations on a cell, or ``("a", x)`` on a
  one-section cable.

``conn`` then connects these compartments by their position in the side's list (see
:mod:`jaxneuro.conn`). The network resolves both into global flat indices once, when it
is built (:meth:`AbstractCoupling.bind`).
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from . import conn as conn_rules
from .._repr import values_repr


def _is_location(x) -> bool:
    """``(section, x)`` on a cell: a section name or index (None: the one section of a
    cable) and a float position; after a section name, whole numbers too (``("dend", 1)``
    names no indices, as for stimulus targets), while two integers are indices."""
    if not (isinstance(x, tuple) and len(x) == 2) or isinstance(x[0], bool) or isinstance(x[1], (bool, np.bool_)):
        return False
    if isinstance(x[1], (float, np.floating)):
        return x[0] is None or isinstance(x[0], (str, int, np.integer))
    return isinstance(x[0], str) and isinstance(x[1], (int, np.integer))


def _location(x) -> tuple:
    """``(section, x)`` with the section as given (a name or None) or as an int index,
    and ``x`` as a float."""
    return (x[0] if x[0] is None or isinstance(x[0], str) else int(x[0]), float(x[1]))


def normalise_side(side, label):
    """A side as ``(name, items_or_None)``: items a tuple of flat compartment indices
    (ints) or locations ``(section, x)`` on a cell, resolved by the network."""
    if isinstance(side, str):
        return (side, None)
    if isinstance(side, tuple) and len(side) == 2 and isinstance(side[0], str):
        if side[1] is None:
            return side
        if isinstance(side[1], (float, np.floating)):  # a bare x on a one-section cable
            return (side[0], ((None, float(side[1])),))
        if _is_location(side[1]):
            return (side[0], (_location(side[1]),))
        if isinstance(side[1], (list, tuple)) and side[1] and all(_is_location(x) for x in side[1]):
            return (side[0], tuple(_location(x) for x in side[1]))
        idx = np.asarray(side[1])
        if idx.ndim == 0:
            idx = idx[None]
        if idx.ndim != 1 or not (idx.size == 0 or np.issubdtype(idx.dtype, np.integer)):
            raise ValueError(
                f"{label} expects a population name, (name, indices) with a 1-D sequence of "
                f"integer indices, or (name, (section, x)) / (name, [(section, x), ...]) on a "
                f"cell (x a float where the section is given by its index), got {side!r}"
            )
        return (side[0], tuple(int(i) for i in idx))
    raise ValueError(
        f"{label} expects a population name of the network (e.g. 'a'), (name, indices) or "
        f"(name, (section, x)), got {side!r}"
    )


class AbstractCoupling(eqx.Module):
    """A coupling from the compartments ``pre`` to the compartments ``post`` through
    the connections ``conn``. ``pre_index``/``post_index`` (global flat indices into a
    network's voltage, one per connection) are filled in by the network."""

    __repr__ = values_repr  # parameter values, not only their shapes

    pre: Any = eqx.field(static=True)
    post: Any = eqx.field(static=True)
    conn: Any = eqx.field(static=True)
    pre_index: Any = eqx.field(default=None, kw_only=True)
    post_index: Any = eqx.field(default=None, kw_only=True)
    name: str | None = eqx.field(default=None, static=True, kw_only=True)

    def _check_sides(self):
        cls = type(self).__name__
        object.__setattr__(self, "pre", normalise_side(self.pre, f"{cls}.pre"))
        object.__setattr__(self, "post", normalise_side(self.post, f"{cls}.post"))
        # conn is static configuration, compared whenever a program is looked up in
        # JAX's caches: index arrays become an explicit rule, which compares by value.
        object.__setattr__(self, "conn", conn_rules.as_rule(self.conn))

    @property
    def is_bound(self) -> bool:
        return self.pre_index is not None

    @property
    def n_connections(self) -> int:
        if not self.is_bound:
            raise ValueError(f"{type(self).__name__} is not part of a jn.Network yet")
        return int(self.pre_index.shape[0])

    def bind(self, locate):
        """A copy with ``pre_index``/``post_index`` set. ``locate(side, role)`` returns
        the global flat indices (NumPy) of a normalised side, ``role`` "pre" or "post"."""
        pre_glob, post_glob = locate(self.pre, "pre"), locate(self.post, "post")
        # The rule sees both sides' global ids, so that include_self=False leaves out a
        # compartment's connections to itself also where the sides overlap without being
        # the same list (subsets, another order): see conn.connect.
        # A seeded rule draws from its seed and the two sides as written (conn's
        # module docstring): E→E and I→E of one seed are independent draws.
        pre_ids, post_ids = conn_rules.connect(self.conn, pre_glob, post_glob, sides=(self.pre, self.post))
        pre, post = pre_glob[pre_ids], post_glob[post_ids]
        bound = eqx.tree_at(
            lambda c: (c.pre_index, c.post_index),
            self,
            # Converted on the host and put on the device as they are: jnp.asarray
            # compiles a program for each new shape (a conversion, or a copy).
            (jax.device_put(np.asarray(pre, dtype=np.int32)), jax.device_put(np.asarray(post, dtype=np.int32))),
            is_leaf=lambda x: x is None,
        )
        bound.check_bound()
        return bound.finish_bind(pre, post, locate)

    def finish_bind(self, pre, post, locate):
        """Subclasses' further set-up from the NumPy global indices ``pre``/``post``."""
        return self

    def index_bounds(self, n_total: int) -> dict:
        """``{field: n}``: the index arrays the network filled in, each indexing ``n``
        things (here the network's ``n_total`` compartments)."""
        return {"pre_index": n_total, "post_index": n_total}

    def check_indices(self, n_total: int, label: str) -> None:
        """ValueError naming ``label`` and the field where an index array the network
        filled in is no longer integer indices in range: they are leaves of the model,
        so a ``jax.tree.map`` over all its leaves (``x * 2``, a cast to float) rewrites
        them too, and out-of-range indices delivered nothing, silently."""
        for name, n in self.index_bounds(n_total).items():
            idx = getattr(self, name)
            if idx is None or isinstance(idx, jax.core.Tracer):
                continue
            dtype = np.dtype(getattr(idx, "dtype", np.asarray(idx).dtype))
            fix = ("it is set by the Network; transform only the parameters (e.g. jax.tree.map over "
                   "eqx.filter(net, eqx.is_inexact_array)) or build the network again")
            if not np.issubdtype(dtype, np.integer):
                raise ValueError(f"{label}.{name} expects integer indices, got an array of {dtype}: {fix}")
            arr = np.asarray(idx)
            if arr.size and (arr.min() < 0 or arr.max() >= n):
                raise ValueError(
                    f"{label}.{name} expects indices in [0, {n}), got values from {arr.min()} to {arr.max()}: {fix}"
                )

    def check_bound(self):
        """Validate parameter shapes against the number of connections."""


def require(coupling, name: str, expects: str) -> None:
    """ValueError naming ``coupling``'s parameter ``name`` (declared with no default
    value, None) and what it ``expects`` where it was not given."""
    if getattr(coupling, name) is None:
        raise ValueError(f"{type(coupling).__name__}.{name} expects {expects}")


def per_connection(value, n_conn, label, trailing=()):
    """Check that ``value`` is a scalar (or of shape ``trailing``) or has a leading
    axis of length ``n_conn``."""
    shape = tuple(jnp.shape(value))
    if shape == tuple(trailing) or shape == (n_conn,) + tuple(trailing):
        return
    want = f"{tuple(trailing) or '()'} or {(n_conn,) + tuple(trailing)}"
    raise ValueError(f"{label} expects shape {want} (one value per connection, {n_conn} connections), got {shape}")
