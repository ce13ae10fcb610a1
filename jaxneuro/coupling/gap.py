"""Gap junctions: ohmic electrical couplings between compartments (BrainPy's convention)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from .. import units
from .base import AbstractCoupling, per_connection


class AbstractGapJunction(AbstractCoupling):
    """A linear, directional ohmic coupling.

    Subclasses give :meth:`conductances`: ``(g_into_post, g_into_pre)`` per connection
    (µS). The current into ``post`` is ``g_into_post·(V_pre − V_post)`` and into ``pre``
    ``g_into_pre·(V_post − V_pre)`` (nA). Every row of the coupling matrix therefore
    sums to zero, and the current at equal voltages is zero.

    The current is a gather over the connection list and a scatter-add into the
    compartments (on the CPU this beats per-compartment gather tables, whose padding
    to the largest in-degree multiplies the work); memory grows with the number of
    connections.
    """

    symmetric = False

    def finish_bind(self, pre, post, locate):
        if pre.size and np.array_equal(pre, post):
            raise ValueError(
                f"{type(self).__name__} {self.name!r}: every connection of conn={self.conn!r} joins a "
                "compartment to itself, where a gap junction carries no current; connect different "
                "compartments (e.g. all_to_all(include_self=False), fixed_prob or explicit pairs)"
            )
        return self

    def conductances(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def current(self, v):
        """Gap current (nA, inward positive) into every compartment of the flat
        voltage ``v`` (mV). Linear in ``v``: it is also the coupling's matrix–vector
        product."""
        g_post, g_pre = self.conductances()
        diff = v[self.pre_index] - v[self.post_index]
        out = jnp.zeros_like(v)
        out = out.at[self.post_index].add(g_post * diff)
        return out.at[self.pre_index].add(-g_pre * diff)

    def diagonal(self, n, dtype):
        """Minus the diagonal of the conductance matrix (µS): the total gap conductance
        leaving each compartment. Connections of a compartment to itself carry no
        current and count zero."""
        g_post, g_pre = self.conductances()
        real = (self.pre_index != self.post_index).astype(dtype)
        ones = jnp.ones(self.pre_index.shape, dtype=dtype)
        out = jnp.zeros((n,), dtype=dtype)
        out = out.at[self.post_index].add(g_post * real * ones)
        return out.at[self.pre_index].add(g_pre * real * ones)


class SymmetricGapJunction(AbstractGapJunction):
    """Gap junctions of conductance ``g`` (µS, or a saiunit conductance such as
    ``1 * u.nS``) between ``pre`` and ``post`` compartments: the current
    ``g·(V_pre − V_post)`` (nA) enters ``post`` and the same current leaves ``pre``.

    ``pre``, ``post``: population names in a :class:`~jaxneuro.Network`, or
    ``(name, indices)`` for some of its compartments (flat indices into that
    population's ``state.v``), or ``(name, (section, x))`` / ``(name, [(section, x),
    ...])`` for locations on a cell population; the same population on both sides gives
    recurrent junctions. ``conn``: a rule from :mod:`jaxneuro.conn` (``one_to_one``,
    ``all_to_all(...)``, ``fixed_prob(p, seed)``, ``explicit(pre_ids, post_ids)``) or an
    explicit ``(pre_ids, post_ids)`` pair. ``g``: a scalar or one value per connection.
    BrainPy's name ``SymmetryGapJunction`` makes one too, with BrainPy's keywords
    (``weight`` for ``g``, ``pre_state``/``post_state``).
    """

    g: object = units.param(units.uS, default=None, check="nonnegative")
    symmetric = True

    def __post_init__(self):
        self._check_sides()
        if self.g is None:
            raise ValueError("SymmetricGapJunction.g expects a conductance in µS (or a saiunit Quantity)")
        units.convert_fields(self)
        if jnp.ndim(self.g) > 1:
            raise ValueError(f"SymmetricGapJunction.g expects a scalar or one value per connection, got shape {jnp.shape(self.g)}")

    def check_bound(self):
        per_connection(self.g, self.n_connections, "SymmetricGapJunction.g")

    def conductances(self):
        return self.g, self.g


class AsymmetricGapJunction(AbstractGapJunction):
    """Gap junctions whose two directions have their own conductance, as BrainPy's
    ``AsymmetryGapJunction`` (which makes one here, with BrainPy's keywords ``weight``
    for ``g`` and ``pre_state``/``post_state``).

    ``g`` has shape ``(..., 2)``: ``(2,)`` for all connections alike or
    ``(n_connections, 2)``, in µS or as a saiunit conductance. ``g[..., 0]`` (BrainPy's
    pre_weight) is the conductance of the pre→post current, delivered into ``post``:
    ``I_post = g[..., 0]·(V_pre − V_post)``; ``g[..., 1]`` (post_weight) is that of the
    post→pre current, delivered into ``pre``: ``I_pre = g[..., 1]·(V_post − V_pre)``.
    So seed 003's ``weights[:, 0] *= 2  # Double weight in pre->post direction``
    doubles the current into ``post``. With ``g[..., 0] == g[..., 1]`` this is the
    symmetric junction. ``pre``, ``post`` and ``conn`` as for
    :class:`SymmetricGapJunction`.

    Solved implicitly by GMRES (:mod:`jaxneuro.network.implicit`; directly in networks
    of at most 96 compartments): junctions thousands of times stronger than
    the membranes along long chains make that system ill-conditioned, and GMRES needs
    many iterations there (a 100-neuron chain at 10⁵ times the leak: float64 equal to
    dense backward Euler, float32 within 5e-5 mV of its 0.4753 mV deflection).
    """

    g: object = units.param(units.uS, default=None, check="nonnegative")

    def __post_init__(self):
        self._check_sides()
        if self.g is None:
            raise ValueError("AsymmetricGapJunction.g expects conductances of shape (..., 2) in µS")
        units.convert_fields(self)
        if jnp.ndim(self.g) not in (1, 2) or jnp.shape(self.g)[-1] != 2:
            raise ValueError(
                "AsymmetricGapJunction.g expects shape (2,) or (n_connections, 2): "
                f"[pre→post (into post), post→pre (into pre)] in µS, got shape {jnp.shape(self.g)}"
            )

    def check_bound(self):
        per_connection(self.g, self.n_connections, "AsymmetricGapJunction.g", trailing=(2,))

    def conductances(self):
        return self.g[..., 0], self.g[..., 1]


def _brainpy_name(cls, alias: str):
    """``cls`` under BrainPy's name, also taking BrainPy's keywords: ``weight`` (for
    ``g``) and ``pre_state``/``post_state``, which must name the membrane voltage
    (``"V"``: what gap junctions couple here)."""

    def make(*args, weight=None, pre_state="V", post_state="V", **kwargs):
        for name, value in (("pre_state", pre_state), ("post_state", post_state)):
            if not (isinstance(value, str) and value.upper() == "V"):
                raise ValueError(
                    f"{alias}: {name} expects 'V' (jaxneuro's gap junctions couple membrane voltages), got {value!r}"
                )
        if weight is not None:
            if "g" in kwargs or len(args) > 3:
                raise ValueError(f"{alias}: give weight (BrainPy's name) or g, not both")
            kwargs["g"] = weight
        return cls(*args, **kwargs)

    make.__name__ = make.__qualname__ = alias
    make.__doc__ = (f"BrainPy's ``{alias}``: :class:`{cls.__name__}`, which it returns, also taking BrainPy's "
                    "keywords ``weight`` (``g``) and ``pre_state``/``post_state`` (``'V'``).")
    return make


SymmetryGapJunction = _brainpy_name(SymmetricGapJunction, "SymmetryGapJunction")
AsymmetryGapJunction = _brainpy_name(AsymmetricGapJunction, "AsymmetryGapJunction")
