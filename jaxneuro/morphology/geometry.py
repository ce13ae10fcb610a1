"""Segment geometry of a cable: membrane areas, axial half-segment resistances and mean
diameters, from a cylinder or from 3-D points as NEURON computes them.

A section with 3-D points is a chain of frusta whose diameter is linear in path
length between points. NEURON (``nrn_area_ri``) splits each of the ``nseg`` segments
into halves at its centre and integrates over the frusta inside each half: the membrane
area as the frusta's lateral surface, ``π/2·(d₁ + d₂)·√(h² + (d₁ - d₂)²/4)`` for a
piece of length ``h`` with end diameters ``d₁``, ``d₂``, and the axial resistance as
``Ra·∫dx/(π d²/4) = 4·Ra·h/(π·d₁·d₂)``; a segment's diameter is its mean. A diameter
that changes at a repeated point (a zero-length frustum) adds the annulus between the
two diameters to the segment holding it. The pieces come from the 3-D points' path
positions and ``nseg`` alone (static), so the results are differentiable in the
diameters. A section's ``length`` other than its points' path length stretches the
points along the path by ``length/path length`` (NEURON rescales the 3-D points when
``L`` is set), so the results are differentiable in ``length`` too.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .. import units
from .._static_cache import per_precision_cache
from ..gather import take

# Ω·cm · µm / µm² = 1e4 Ω = 1e-2 MΩ: axial resistance of a cylinder piece.
OHM_CM_PER_UM_TO_MOHM = 1e-2


class _Pieces(NamedTuple):
    """The frusta inside each half segment, padded to ``M`` pieces per half (the
    padding has zero length and both ends on the same point). Arrays of shape
    ``(2·nseg, M)``, halves in order (segment 0 left, segment 0 right, ...)."""

    length: np.ndarray  # µm
    real: np.ndarray  # 1.0 for a piece, 0.0 for padding
    lo: np.ndarray  # 3-D point index below each piece end (start, end): interpolation
    frac: np.ndarray  # between point lo and lo + 1, (2, 2·nseg, M)
    steps: np.ndarray  # first of each pair of repeated 3-D points, (J,)
    step_segments: np.ndarray  # (nseg, J): 1 where the segment holds that pair


@per_precision_cache(512)
def _pieces(arc3d: tuple[float, ...], nseg: int) -> _Pieces:
    arc = np.asarray(arc3d, float) - arc3d[0]
    edges = np.linspace(0.0, arc[-1], 2 * nseg + 1)
    rows = []
    for a, b in zip(edges[:-1], edges[1:]):
        inner = np.unique(arc[(arc > a) & (arc < b)])
        knots = np.concatenate([[a], inner, [b]])
        rows.append(knots)
    width = max(len(k) - 1 for k in rows)
    length = np.zeros((2 * nseg, width))
    ends = np.empty((2, 2 * nseg, width))
    for h, knots in enumerate(rows):
        m = len(knots) - 1
        length[h, :m] = np.diff(knots)
        ends[0, h, :m], ends[1, h, :m] = knots[:-1], knots[1:]
        ends[:, h, m:] = knots[-1]  # padding: zero length at the half's end
    # Interpolation: the interval [arc[lo], arc[lo + 1]] of 3-D points that holds each
    # piece, found from its start on the right of a point and from its end on the left,
    # so that a diameter that changes at a repeated point is the one on the piece's side.
    k = len(arc)
    lo = np.stack([np.searchsorted(arc, ends[0], side="right"), np.searchsorted(arc, ends[1], side="left")]) - 1
    lo = np.clip(lo, 0, k - 2)
    span = arc[lo + 1] - arc[lo]
    frac = np.where(span > 0, (ends - arc[lo]) / np.where(span > 0, span, 1.0), 0.0)
    # A repeated point whose diameter changes is a zero-length frustum: the annulus
    # between the two diameters belongs to the segment holding it (on an edge between
    # segments, the one before), as in NEURON.
    steps = np.flatnonzero(np.diff(arc) == 0)
    seg = np.clip(np.searchsorted(edges[::2], arc[steps], side="left") - 1, 0, nseg - 1)
    step_segments = (seg[None, :] == np.arange(nseg)[:, None]).astype(float)
    return _Pieces(length, (length > 0).astype(float), lo, np.clip(frac, 0.0, 1.0), steps, step_segments)


def check_3d(arc3d, diam3d_shape, owner: str) -> tuple[float, ...]:
    """``arc3d`` as a tuple of floats (µm), or a ValueError naming ``owner``'s field."""
    arc = np.asarray(arc3d, dtype=float)
    if arc.ndim != 1 or arc.size < 2:
        raise ValueError(f"{owner}.arc3d expects at least two path positions (µm), got shape {arc.shape}")
    if not np.all(np.isfinite(arc)) or np.any(np.diff(arc) < 0) or not arc[-1] > arc[0]:
        raise ValueError(
            f"{owner}.arc3d expects finite, non-decreasing path positions (µm) spanning a "
            f"positive length, got {arc.tolist() if arc.size <= 8 else arc}"
        )
    if tuple(diam3d_shape) != arc.shape:
        raise ValueError(
            f"{owner}.diam3d expects one diameter per 3-D point (shape {arc.shape}), got shape {tuple(diam3d_shape)}"
        )
    return tuple(float(a) for a in arc)


@per_precision_cache(64)
def _joined_pieces(specs: tuple[tuple[tuple[float, ...], int], ...]) -> _Pieces:
    """The pieces of several sections (``(arc3d, nseg)`` each) as one table: their
    halves in order, point indices into their diameters joined in the same order."""
    parts = [_pieces(arc, nseg) for arc, nseg in specs]
    width = max(p.length.shape[-1] for p in parts)
    offsets = np.cumsum([0] + [len(arc) for arc, _ in specs])[:-1]

    def widen(a, mode):  # pad the last axis to the widest half; padding weighs nothing
        pad = [(0, 0)] * (a.ndim - 1) + [(0, width - a.shape[-1])]
        return np.pad(a, pad, mode=mode) if mode == "edge" else np.pad(a, pad)

    nsegs = [nseg for _, nseg in specs]
    step_segments = np.zeros((sum(nsegs), sum(p.steps.size for p in parts)))
    row = col = 0
    for p, nseg in zip(parts, nsegs):
        step_segments[row:row + nseg, col:col + p.steps.size] = p.step_segments
        row, col = row + nseg, col + p.steps.size
    return _Pieces(
        np.concatenate([widen(p.length, None) for p in parts]),
        np.concatenate([widen(p.real, None) for p in parts]),
        np.concatenate([widen(p.lo, "edge") + off for p, off in zip(parts, offsets)], axis=1),
        np.concatenate([widen(p.frac, "edge") for p in parts], axis=1),
        np.concatenate([p.steps + off for p, off in zip(parts, offsets)]),
        step_segments,
    )


def _ends(p: _Pieces, d):
    """Diameters at the pieces' two ends (µm)."""
    ends = d[p.lo] + p.frac * (d[p.lo + 1] - d[p.lo])
    return ends[0], ends[1]


def stretch(length, arc3d):
    """``length / path length`` of a section's 3-D points (``arc3d``, µm): the factor
    its points' path positions are scaled by; None where ``length`` is the path length
    (a known value: nothing to scale)."""
    path = arc3d[-1] - arc3d[0]
    if units.is_concrete(length) and float(length) == path:
        return None
    return jnp.asarray(length) / path


def _scaled(p: _Pieces, scale):
    """The pieces' lengths (µm), stretched by ``scale`` (None, a scalar, or one factor
    per half segment's row)."""
    if scale is None:
        return p.length
    return p.length * (jnp.reshape(scale, (-1, 1)) if jnp.ndim(scale) else scale)


def _areas(p: _Pieces, d, scale=None):
    d1, d2 = _ends(p, d)
    h = _scaled(p, scale)
    # Padding gets a slant of 1 and weight 0: no square root of zero (whose derivative
    # is infinite) enters a gradient.
    slant = jnp.sqrt(h**2 + (1.0 - p.real) + 0.25 * (d1 - d2) ** 2)
    area = ((math.pi / 2) * p.real * (d1 + d2) * slant).reshape(p.length.shape[0] // 2, -1).sum(axis=1)
    if p.steps.size:
        jump = d[p.steps] ** 2 - d[p.steps + 1] ** 2
        # |jump| as jump·sign(jump): derivative 0 where the diameters agree (the mean of
        # the two one-sided slopes) rather than jnp.abs's one-sided +1.
        area = area + p.step_segments @ ((math.pi / 4) * jump * jnp.sign(jump))
    return area


def _halves(p: _Pieces, d, ra, scale=None):
    d1, d2 = _ends(p, d)
    per_half = (_scaled(p, scale) / (d1 * d2)).sum(axis=1).reshape(-1, 2)
    scale = OHM_CM_PER_UM_TO_MOHM * ra * (4 / math.pi)
    return scale * per_half[:, 0], scale * per_half[:, 1]


def segment_areas(length, diam, nseg, arc3d=None, diam3d=None):
    """Membrane area of each of ``nseg`` segments, µm²: ``π·diam·length/nseg`` for a
    cylinder, the frusta's lateral surface with 3-D points (with the annulus where the
    diameter changes at a repeated point)."""
    if arc3d is None:
        return _cylinder_areas(length, jnp.broadcast_to(diam, (nseg,)), nseg)
    return _areas(_pieces(arc3d, nseg), jnp.asarray(diam3d), stretch(length, arc3d))


def _cylinder_areas(length, diam, nseg):
    """``π·diam·length/nseg`` (µm²); ``diam`` per segment, ``length`` and ``nseg`` the
    section's (scalars or per segment)."""
    return math.pi * diam * (length / nseg)


def _cylinder_halves(length, diam, ra, nseg):
    """Axial resistance (MΩ) of half a cylindrical segment, either half."""
    return OHM_CM_PER_UM_TO_MOHM * ra * (length / (2 * nseg)) / (math.pi / 4 * diam**2)


def half_resistances(length, diam, Ra, nseg, arc3d=None, diam3d=None):
    """Axial resistance (MΩ) of each segment's left and right halves (towards
    ``x = 0`` and ``x = 1``), two arrays of shape ``(nseg,)``; ``Ra`` in Ω·cm, a
    scalar or one value per segment."""
    ra = jnp.broadcast_to(Ra, (nseg,))
    if arc3d is None:
        half = _cylinder_halves(length, jnp.broadcast_to(diam, (nseg,)), ra, nseg)
        return half, half
    return _halves(_pieces(arc3d, nseg), jnp.asarray(diam3d), ra, stretch(length, arc3d))


def per_segment(leaves, nsegs):
    """One value per segment from one value per section (each a scalar or of shape
    ``(nseg,)``), sections in order: shape ``(sum(nsegs),)``."""
    if all(np.ndim(x) == 0 for x in leaves):
        index = np.repeat(np.arange(len(leaves)), nsegs)
        if all(units.is_concrete(x) for x in leaves):
            # Known values: laid out on the host and sent once (jax.device_put: jnp.asarray
            # compiles a program for each new shape). jnp.stack of them was a program of
            # one operand per section, compiled for each new count and run eagerly (a
            # 1000-section cell's precomputation: 1.8 -> 0.3 s).
            return jax.device_put(np.array([np.asarray(x) for x in leaves])[index])
        if len(leaves) > 1:
            # One gather rather than a broadcast and a slice of the concatenation per
            # section (and its transpose, in a gradient): a cell of hundreds of sections
            # stays a small program.
            return take(jnp.stack([jnp.asarray(x) for x in leaves]), index)
    return jnp.concatenate([jnp.broadcast_to(x, (n,)) for x, n in zip(leaves, nsegs)])


def joined(cables):
    """Membrane areas and left and right half resistances of several cables with 3-D
    points, computed together (one set of array operations however many cables, so the
    program does not grow with a morphology's number of sections), each of shape
    ``(total nseg,)``, the cables' segments in order."""
    p = _joined_pieces(tuple((c.arc3d, c.nseg) for c in cables))
    d = jnp.concatenate([jnp.asarray(c.diam3d) for c in cables])
    nsegs = [c.nseg for c in cables]
    ra = per_segment([c.Ra for c in cables], nsegs)
    # Sections at their path length (every one read from a file) scale nothing; else
    # one division for all (not one per section: the program would grow with them).
    scale = None
    if any(stretch(c.length, c.arc3d) is not None for c in cables):
        paths = np.repeat([c.arc3d[-1] - c.arc3d[0] for c in cables], nsegs)
        scale = jnp.repeat(per_segment([c.length for c in cables], nsegs) / paths, 2)
    return (_areas(p, d, scale), *_halves(p, d, ra, scale))


def joined_cylinders(cables):
    """:func:`joined` for cylindrical cables (``length`` and ``diam``): the same
    formulas as :func:`segment_areas` and :func:`half_resistances`, on all the cables'
    segments at once."""
    nsegs = [c.nseg for c in cables]
    nseg = np.repeat(np.asarray(nsegs, dtype=float), nsegs)
    length = per_segment([c.length for c in cables], nsegs)
    diam = per_segment([c.diam for c in cables], nsegs)
    ra = per_segment([c.Ra for c in cables], nsegs)
    half = _cylinder_halves(length, diam, ra, nseg)
    return _cylinder_areas(length, diam, nseg), half, half


def segment_diameters(length, diam, nseg, arc3d=None, diam3d=None):
    """Mean diameter (µm) of each segment (NEURON's ``seg.diam``)."""
    if arc3d is None:
        return jnp.broadcast_to(diam, (nseg,))
    p = _pieces(arc3d, nseg)
    d1, d2 = _ends(p, jnp.asarray(diam3d))
    # (Independent of a stretch: both the pieces and the segment scale with it.)
    return (0.5 * p.length * (d1 + d2)).reshape(nseg, -1).sum(axis=1) / ((arc3d[-1] - arc3d[0]) / nseg)
