"""Where a stimulus goes: ``None`` (every compartment), indices into a population, a
:class:`Location` on a cable or cell, or a population's name in a network."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import numpy as np
import saiunit as u

__all__ = ["Location", "IndexPair", "normalise_target", "population_target", "placements", "location_x", "is_location", "is_location_list"]


@dataclasses.dataclass(frozen=True)
class Location:
    """A place on a cable or cell, as a stimulus target: ``section`` (a name or an
    index; None for the one section of a cable) and ``x`` in [0, 1].

    Targets are static configuration, compared when JAX looks up a compiled program;
    a location is its own type so that it never equals segment indices (``(1, 0.0)``
    and ``(1, 0)`` are equal tuples, and ``1.0 == 1``)."""

    section: str | int | None
    x: float

    def __repr__(self):
        return repr(self.x) if self.section is None else repr((self.section, self.x))


class IndexPair(tuple):
    """A target written as a tuple of two integers: two indices into a population,
    but on a cable or cell ambiguous with a location ``(section, x)`` whose ``x`` was
    written as an integer, so those refuse it. Unequal to the same indices written as a
    list (compiled programs are looked up by target)."""

    def __eq__(self, other):
        return type(other) is IndexPair and tuple.__eq__(self, other)

    def __ne__(self, other):
        return not self == other

    def __hash__(self):
        return hash(("IndexPair", tuple(self)))


def refuse_traced(target, what: str, *, current: bool = True) -> None:
    """A ValueError naming ``what`` if ``target`` (a place: indices, locations) holds a
    traced value: which compartments it names is fixed when the run is compiled.
    ``current``: the place of a current (the message then says how to vary it)."""
    if any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves(target)):
        vary = (", or, to vary where a current goes differentiably, target every compartment with an "
                "amplitude per compartment") if current else ""
        raise ValueError(
            f"{what} must be concrete (it picks compartments when the run is compiled), got a traced value "
            f"{target!r}: make it a static argument of your jax.jit (static_argnums/static_argnames){vary}"
        )


def normalise_target(target):
    """A stimulus ``target`` in the form the models take (see the module's docstring).
    Raises ValueError naming the whole target, also where only a part of it is wrong
    (``("dend", True)``), as ``record=`` names a place."""
    return _normalise(_plain_numbers(target, target), target)


def _plain_numbers(target, whole):
    """``target`` with its 0-d arrays as Python numbers (``("dend", jnp.asarray(0.5))``
    reads as ``("dend", 0.5)``); a quantity is refused: a location's ``x`` is a
    fraction of the section, not a length."""
    if isinstance(target, u.Quantity):
        raise ValueError(
            f"stimulus target {_part(target, whole)}: a location's x is a plain number in [0, 1], the fraction "
            "of the section's length from its 0 end (NEURON's sec(x)), not a quantity; e.g. ('dend', 0.5) for "
            "the middle (a distance d along a section of length L is x = d / L)"
        )
    if type(target) in (tuple, list):
        return type(target)(_plain_numbers(t, whole) for t in target)
    # (A traced value is left as it is, for _normalise to refuse by name.)
    if (isinstance(target, (np.ndarray, np.generic, jax.Array)) and not isinstance(target, jax.core.Tracer)
            and np.ndim(target) == 0):
        dtype = np.asarray(target).dtype
        if np.issubdtype(dtype, np.floating):
            return float(target)
        if np.issubdtype(dtype, np.integer):
            return int(target)
    return target


def _normalise(target, whole):
    """:func:`normalise_target` of ``target``, a part of ``whole`` (or ``whole``
    itself), which errors name."""
    refuse_traced(target, "stimulus target")
    if target is None or isinstance(target, (str, Location)):
        return target
    if isinstance(target, (bool, np.bool_)):  # not the index 1
        raise ValueError(f"stimulus target expects None, indices, a location or a population name, got {whole!r}")
    if isinstance(target, (int, np.integer)):
        return int(target)
    if isinstance(target, (float, np.floating)):
        return Location(None, float(target))  # a location x along a one-section cable
    if (isinstance(target, tuple) and len(target) == 2 and isinstance(target[1], (float, np.floating))
            and isinstance(target[0], (str, int, np.integer)) and not isinstance(target[0], bool)):
        # a location (section, x) on a cable or cell
        return Location(target[0] if isinstance(target[0], str) else int(target[0]), float(target[1]))
    if isinstance(target, tuple) and len(target) == 2 and isinstance(target[0], str):
        return (target[0], _normalise(target[1], whole))
    if isinstance(target, (list, tuple)) and target and all(is_location(t) for t in target):
        # Several locations, one current each (as coupling sides take them).
        return tuple(_normalise(t, whole) for t in target)
    if (isinstance(target, tuple) and len(target) == 2
            and all(isinstance(k, (int, np.integer)) and not isinstance(k, bool) for k in target)):
        return IndexPair(int(k) for k in target)
    if _location_as_list(target) or (isinstance(target, list) and target
                                     and all(_location_as_list(t) or is_location(t) for t in target)):
        raise ValueError(
            f"stimulus target {_part(target, whole)} looks like a location written as a list (a list is read as "
            f"indices); write a location as a tuple (section, x), e.g. ('dend', 0.9), and several as a "
            f"list of such tuples"
        )
    if isinstance(target, (Sequence, np.ndarray)) or hasattr(target, "__array__"):
        try:
            arr = np.asarray(target)
        except ValueError:  # ragged
            arr = np.asarray(0.0)
        if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(
                f"stimulus target expects None, an index, a 1-D sequence of integer indices, a location "
                f"(section, x) as a tuple, e.g. ('dend', 0.9), or a population's name; got {whole!r}"
            )
        if arr.size == 0:  # (an empty list is refused above, as not integers)
            raise ValueError(f"stimulus target {_part(target, whole)} names no compartment; give at least one index")
        return tuple(int(i) for i in arr)
    raise ValueError(
        f"stimulus target expects None, an index, a sequence of indices, a location (section, x) as a "
        f"tuple, e.g. ('dend', 0.9), or a population's name; got {whole!r}"
    )


def _part(target, whole) -> str:
    """``target`` for an error message, with the ``whole`` target it is part of."""
    return repr(target) if target is whole else f"{target!r} in {whole!r}"


def _location_as_list(target) -> bool:
    """True for ``["dend", 0.9]``: a location ``(section, x)`` written as a list."""
    return (isinstance(target, list) and len(target) == 2
            and isinstance(target[0], (str, int, np.integer)) and not isinstance(target[0], (bool, np.bool_))
            and isinstance(target[1], (float, np.floating)))


def population_target(target):
    """``(name, sub_target)`` of a (normalised) Network target: ``"a"`` (the whole
    population, ``sub_target`` None), ``("a", x)`` (``x`` on population a's cable, kept
    as a :class:`Location`) or ``("a", sub)``; None for any other target."""
    if isinstance(target, str):
        return target, None
    if isinstance(target, Location) and isinstance(target.section, str):
        return target.section, Location(None, target.x)
    if isinstance(target, tuple) and len(target) == 2 and isinstance(target[0], str):
        return target[0], target[1]
    return None


def placements(model, target) -> list:
    """``[(where, member, sub_target)]``: the models a (normalised) ``target`` reaches
    and the target within each. A Network's populations by name (``None``: every
    population); any other model is its own single member (``where`` ``""``). Targets
    a Network refuses give ``[]``; its ``place_current`` then says why."""
    populations = getattr(model, "populations", None)
    if populations is None or not hasattr(model, "make_trace"):
        return [("", model, target)]
    if target is None:
        return [(f"population {name!r}: ", pop, None) for name, pop in populations.items()]
    named = population_target(target)
    if named is None or named[0] not in populations:
        return []
    name, sub = named
    return [(f"population {name!r}: ", populations[name], sub)]


def location_x(model, target):
    """The ``x`` of ``target`` if it is a location on ``model``, a cable or cell: a bare
    float, a :class:`Location`, or ``(section, x)`` with ``x`` a number (an integer
    ``x`` included, as a cell reads ``("dend", 1)``); None otherwise."""
    if not hasattr(model, "n_segments"):
        return None
    if isinstance(target, Location):
        return target.x
    if isinstance(target, float):
        return target
    if (isinstance(target, tuple) and not isinstance(target, IndexPair) and len(target) == 2
            and isinstance(target[1], (int, float, np.integer, np.floating)) and not isinstance(target[1], bool)):
        return float(target[1])
    return None


def is_location(target) -> bool:
    """Whether ``target`` reads as one location: a :class:`Location`, a bare float
    ``x`` or ``(section, x)`` with a float ``x``."""
    if isinstance(target, Location) or (isinstance(target, (float, np.floating)) and not isinstance(target, bool)):
        return True
    return (isinstance(target, tuple) and len(target) == 2 and isinstance(target[1], (float, np.floating))
            and isinstance(target[0], (str, int, np.integer)) and not isinstance(target[0], bool))


def is_location_list(target) -> bool:
    """Whether a normalised ``target`` is several locations (a tuple of
    :class:`Location`)."""
    return isinstance(target, tuple) and bool(target) and all(isinstance(t, Location) for t in target)
