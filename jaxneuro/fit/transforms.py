"""Per-parameter transforms: the optimiser works on an unconstrained value ``u``; the
model sees ``forward(u)``, which stays in the parameter's domain.

- :class:`Identity` — ``x = u`` (any real value).
- :class:`Positive` — ``x = exp(u)`` (``x > 0``; a step in ``u`` is a relative change
  of ``x``, so one learning rate suits conductances of any magnitude).
- :class:`Bounded` — ``x = lo + (hi - lo)·sigmoid(u)`` (``lo <= x <= hi``).

A start outside a transform's domain is a ``ValueError`` naming the parameter:
nothing is clipped into range.
"""

from __future__ import annotations

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .. import units

__all__ = ["AbstractTransform", "Identity", "Positive", "Bounded"]


class AbstractTransform(eqx.Module):
    """Maps an unconstrained optimiser value ``u`` to a parameter value and back."""

    @abc.abstractmethod
    def forward(self, u):
        """The parameter value for the unconstrained value ``u``."""

    @abc.abstractmethod
    def inverse(self, x, name: str = "parameter"):
        """The unconstrained value of parameter ``x``; ValueError (naming ``name``)
        when a concrete ``x`` lies outside the transform's domain."""

    @abc.abstractmethod
    def sample(self, key, x0, shape):
        """Random starting values of shape ``shape`` within the domain (``x0``: the
        model's value, broadcast against ``shape``)."""

    def contains(self, x):
        """True where ``x`` lies in the domain (closed, for checks)."""
        return jnp.isfinite(x)

    def with_unit(self, unit, name: str) -> "AbstractTransform":
        """This transform with any bounds converted to ``unit`` (the parameter's base
        unit); bounds may be given as saiunit quantities."""
        return self


class Identity(AbstractTransform):
    """``x = u``. Samples ``x0·(1 ± 0.5)`` uniformly (``±1`` where ``x0 = 0``)."""

    def forward(self, u):
        return u

    def inverse(self, x, name="parameter"):
        _check_finite(x, name)
        return jnp.asarray(x)

    def sample(self, key, x0, shape):
        x0 = jnp.broadcast_to(jnp.asarray(x0), shape)
        half = jnp.where(x0 == 0, 1.0, 0.5 * jnp.abs(x0))
        return x0 + half * jax.random.uniform(key, shape, x0.dtype, -1.0, 1.0)


class Positive(AbstractTransform):
    """``x = exp(u)``: keeps ``x > 0``. Samples log-uniformly within a factor
    ``spread`` (default 3) of the model's value, in ``[x0 / spread, x0 * spread]``.

    ``spread``: a finite number > 1 (dimensionless), used only when :func:`jaxneuro.fit`
    samples starts (``n_starts`` with ``key``); anything else is a ValueError when the
    transform is made: 1 would sample every start at the model's value (identical
    starts), a factor in (0, 1) would sample as its inverse does, and 0, a negative or
    a non-finite one gave infinite or NaN starts."""

    spread: float = eqx.field(default=3.0, static=True)

    def __check_init__(self):
        s = self.spread
        number = isinstance(s, (int, float, np.integer, np.floating)) and not isinstance(s, (bool, np.bool_))
        if not (number and np.isfinite(s) and s > 1):
            hint = (" (spread=1 would sample every start at the model's value; to start there, drop n_starts)"
                    if number and s == 1 else "")
            raise ValueError(
                f"Positive.spread expects a finite number > 1 (the factor within which starts are sampled "
                f"log-uniformly around the model's value, e.g. 3), got {s!r}{hint}"
            )

    def forward(self, u):
        return jnp.exp(u)

    def inverse(self, x, name="parameter"):
        _check_finite(x, name)
        if units.is_concrete(x) and not np.all(np.asarray(x) > 0):
            raise ValueError(
                f"parameter {name!r} starts at {_show(x)}, outside Positive's domain (> 0); start "
                f"it above 0 or give it another transform (e.g. transforms={{{name!r}: jn.fit.Identity()}})"
            )
        return jnp.log(x)

    def sample(self, key, x0, shape):
        x0 = jnp.broadcast_to(jnp.asarray(x0), shape)
        r = jax.random.uniform(key, shape, x0.dtype, -1.0, 1.0) * np.log(self.spread)
        return x0 * jnp.exp(r)

    def contains(self, x):
        return jnp.isfinite(x) & (x > 0)


class Bounded(AbstractTransform):
    """``x = lo + (hi - lo)·sigmoid(u)``: keeps ``lo <= x <= hi`` (the ends are reached
    only when ``sigmoid`` saturates in floating point, in float32 from ``|u|`` ≈ 17; a
    fit started on an end starts a rounding step inside it). ``lo``, ``hi`` in the
    parameter's base unit, or saiunit quantities. Samples uniformly in ``[lo, hi]``."""

    lo: object
    hi: object

    def __check_init__(self):
        for name, x in (("lo", self.lo), ("hi", self.hi)):
            # Before with_unit (which is skipped for a dimensionless parameter): a bool or
            # string read as a number (True as 1, "0" as 0), None taken for "no check yet".
            if x is None or isinstance(x, (bool, np.bool_, str, bytes)):
                kind = "None" if x is None else "a bool" if isinstance(x, (bool, np.bool_)) else "a string"
                raise ValueError(f"Bounded expects numbers (or saiunit quantities) lo < hi, got lo={self.lo!r}, "
                                 f"hi={self.hi!r}: Bounded.{name} is {kind}, not a number in the parameter's "
                                 "base unit")
        lo, hi = _comparable(self.lo, self.hi)
        if lo is None or hi is None:  # not comparable before with_unit, which checks again
            return
        try:
            lo, hi = np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)
        except (TypeError, ValueError):
            raise ValueError(f"Bounded expects numbers (or saiunit quantities) lo < hi, got lo={self.lo!r}, "
                             f"hi={self.hi!r}") from None
        if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi)) and np.all(hi > lo)):
            import saiunit as u

            converted = (f" (in one unit: lo={_show(lo)}, hi={_show(hi)})"
                         if any(isinstance(units.as_quantity(x), u.Quantity) for x in (self.lo, self.hi)) else "")
            raise ValueError(f"Bounded expects finite bounds with lo < hi, got lo={self.lo}, hi={self.hi}{converted}")

    def with_unit(self, unit, name):
        return Bounded(units.to_base(self.lo, f"{name} (lower bound)", unit),
                       units.to_base(self.hi, f"{name} (upper bound)", unit))

    def forward(self, u):
        return self.lo + (self.hi - self.lo) * jax.nn.sigmoid(u)

    def inverse(self, x, name="parameter"):
        """``u`` for the value ``x`` in ``[lo, hi]``. A value on a bound (where a
        fit's ``sigmoid`` saturated: its result restarts a fit) starts a rounding
        step inside it, ``u`` finite."""
        _check_finite(x, name)
        if units.is_concrete(x):
            inside = (np.asarray(x) >= np.asarray(self.lo)) & (np.asarray(x) <= np.asarray(self.hi))
            if not np.all(inside):
                raise ValueError(
                    f"parameter {name!r} starts at {_show(x)}, outside the interval "
                    f"[{_show(self.lo)}, {_show(self.hi)}] of its Bounded transform"
                )
        p = (x - self.lo) / (self.hi - self.lo)
        eps = jnp.finfo(jnp.result_type(p, float)).eps
        # Only a value on a bound (in this dtype: p rounded to 0 or 1) is moved, by a
        # rounding step; any p strictly inside has a finite logit, however close to 0.
        p = jnp.where(p <= 0.0, eps, jnp.where(p >= 1.0, 1.0 - eps, p))
        return jnp.log(p) - jnp.log1p(-p)

    def sample(self, key, x0, shape):
        dtype = jnp.result_type(x0, float)
        # Strictly inside, so that inverse() is finite.
        p = jax.random.uniform(key, shape, dtype, 1e-6, 1.0 - 1e-6)
        return self.lo + (self.hi - self.lo) * p

    def contains(self, x):
        return jnp.isfinite(x) & (x >= self.lo) & (x <= self.hi)


def _comparable(lo, hi):
    """Bounded's ``lo`` and ``hi`` as numbers in one unit, to compare them: two
    quantities in ``lo``'s unit (10 nS < 0.03 µS), else a quantity in jaxneuro's base unit
    of its dimension (°C for kelvin), the unit a plain bound is read in; ``None`` for a
    quantity of a dimension with no base unit beside a plain bound (only the
    parameter's unit, in ``with_unit``, tells). Two of different dimensions are a
    ValueError naming them."""
    import saiunit as u

    lo, hi = units.as_quantity(lo), units.as_quantity(hi)
    if isinstance(lo, u.Quantity) and isinstance(hi, u.Quantity):
        if u.get_dim(lo) != u.get_dim(hi):
            raise ValueError(f"Bounded expects lo and hi of one dimension, got lo={lo} "
                             f"({units._describe_dim(u.get_dim(lo))}), hi={hi} ({units._describe_dim(u.get_dim(hi))})")
        return lo.to_decimal(lo.unit), hi.to_decimal(lo.unit)

    def in_base(x, name):
        if not isinstance(x, u.Quantity):
            return x
        if u.get_dim(x) == u.get_dim(u.kelvin):
            return np.asarray(x.to_decimal(u.kelvin), dtype=float) - 273.15
        try:
            unit = units.base_unit_of(x, name)
        except ValueError:
            return None
        return units.to_static(x, name, unit)  # (float64: not rounded to JAX's precision)

    return in_base(lo, "Bounded.lo"), in_base(hi, "Bounded.hi")


def _plain(x):
    import saiunit as u

    return x.mantissa if isinstance(x, u.Quantity) else x


def _check_finite(x, name):
    if units.is_concrete(x) and not np.all(np.isfinite(np.asarray(x))):
        raise ValueError(f"parameter {name!r} must start finite, got {_show(x)}")


def _show(x):
    arr = np.asarray(_plain(x))
    return repr(float(arr)) if arr.ndim == 0 else np.array2string(arr, precision=6)
