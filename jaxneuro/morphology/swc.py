"""Reading SWC morphologies into a :class:`~jaxneuro.Cell`, as NEURON's Import3d does."""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .. import units
from .._stack import outside_stacklevel
from . import membrane
from .cable import Cable

SWC_TYPE_NAMES = {1: "soma", 2: "axon", 3: "dend", 4: "apic"}


def section_type_name(swc_type: int) -> str:
    """The section name stem NEURON's Import3d gives an SWC type (its ``type2name``):
    ``soma``, ``axon``, ``dend``, ``apic`` for 1-4, ``dend_<t>`` for other positive
    types, ``minus_<-t>`` for negative ones."""
    if swc_type in SWC_TYPE_NAMES:
        return SWC_TYPE_NAMES[swc_type]
    return f"minus_{-swc_type}" if swc_type < 0 else f"dend_{swc_type}"


class SWCPoint(NamedTuple):
    id: int
    type: int
    xyz: tuple[float, float, float]
    radius: float
    parent: int


class Section3D(NamedTuple):
    """An unbranched piece of an SWC tree: its 3-D points (µm) and diameters (µm)."""

    name: str
    type: int
    xyz: np.ndarray  # (k, 3)
    diam: np.ndarray  # (k,)
    parent: int | None  # index into the section list
    parent_x: float

    @property
    def arc(self) -> np.ndarray:
        """Cumulative path length at each point, µm (NEURON's ``arc3d``)."""
        return np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(self.xyz, axis=0), axis=1))])

    @property
    def length(self) -> float:
        return float(self.arc[-1])


def _whole_number(field: str) -> int:
    """An SWC id, type or parent: an integer, also written as one with a zero fraction
    (``1.0``, ``-1.0``), which NEURON's Import3d reads too."""
    try:
        return int(field)
    except ValueError:
        value = float(field)
        if not value.is_integer():
            raise ValueError(f"{field!r} is not a whole number") from None
        return int(value)


def read_swc(path) -> list[SWCPoint]:
    """The points of an SWC file: ``id type x y z radius parent`` per line, ``#``
    comments, read as UTF-8 (a byte-order mark, which some Windows tools write, is
    skipped). Raises ValueError for malformed lines, repeated ids, parent ids that name
    no point, and radii that are not finite and > 0 (NEURON's Import3d reads a radius
    of 0 as a zero-area point; jaxneuro does not: fix the radius in the file)."""
    points = []
    for lineno, line in enumerate(Path(path).read_text(encoding="utf-8-sig").splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 7:
            raise ValueError(f"{path}:{lineno}: an SWC line has 7 fields (id type x y z radius parent), got {len(parts)}")
        try:
            pid, ptype, parent = (_whole_number(parts[i]) for i in (0, 1, 6))
            x, y, z, r = (float(v) for v in parts[2:6])
        except ValueError as e:
            raise ValueError(f"{path}:{lineno}: cannot read SWC line {line!r}: {e}") from e
        if not all(math.isfinite(c) for c in (x, y, z)):
            raise ValueError(f"{path}:{lineno}: point {pid} has coordinates {(x, y, z)}; they must be finite (µm)")
        if not (r > 0 and math.isfinite(r)):  # inf (also 1e400) would fail later, far from this line
            zero = ("; NEURON's Import3d would accept it as a zero-area point (diameter 0 there, which all but "
                    "cuts the cable: its axial resistance is near infinite), jaxneuro does not: fix the "
                    "point's radius in the file") if r == 0 else ""
            raise ValueError(f"{path}:{lineno}: point {pid} has radius {r}; radii must be finite and > 0 µm{zero}")
        points.append(SWCPoint(pid, ptype, (x, y, z), r, parent))
    if not points:
        raise ValueError(f"{path}: no SWC points")
    ids = [p.id for p in points]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})
        raise ValueError(f"{path}: SWC point ids must be unique; {dup} repeat")
    known = set(ids)
    for p in points:
        if p.parent != -1 and p.parent not in known:
            raise ValueError(f"{path}: point {p.id} has parent id {p.parent}, which names no point")
        if p.parent == p.id:
            raise ValueError(f"{path}: point {p.id} is its own parent")
    roots = [p.id for p in points if p.parent == -1]
    if len(roots) != 1:
        raise ValueError(
            f"{path}: an SWC cell has exactly one root point (parent -1), got {len(roots)} "
            f"({roots[:5]}); split the file into one cell per tree"
        )
    return points


def swc_sections(points: Sequence[SWCPoint], path=None) -> list[Section3D]:
    """Split SWC points into unbranched sections, parents first, as NEURON's Import3d
    (``read_swc.hoc``) does.

    Points are taken in id order (parents first where a file lists a parent after its
    child, which Import3d rejects). A section is a run of consecutive points of one
    type, each the parent of the next; it ends at a branch point, a type change, a
    child listed out of order, or a tip, except that a soma point continues its section
    unless it has several soma children (the root always continues), and a root that
    is no soma point (a neurite's first point, e.g. ``dend[0](0)``) ends its section
    only where its last child (in point order) is of another type. Each later section
    starts with a copy of its parent point (the copy's diameter is the section's own
    first diameter where a neurite leaves the soma) and joins its parent at ``x = 1``,
    or at ``x = 0`` on the root's first point; neurites on a soma section's inner points
    join ``soma(0.5)``. Where a neurite joins a one-point soma, an inner soma point or
    a soma point with several soma children, it is wired to its own first point (no
    copy). A root section of one point (a soma's, or a neurite root's whose last child
    changes type), or NeuroMorpho's three soma points (the centre and two points one
    radius away, equal radii, nothing attached to the outer two), becomes a cylinder of
    length and diameter ``2r`` (the sphere's area) along x, whatever its type (Import3d's
    ``sphere_rep``), its neurites at ``soma(0.5)`` on a soma, else at ``x = 0``. A later
    section of one point, or of two at the same place, is dropped and its children join
    its parent where it joined. Sections are named per type in file order (``soma[0]``,
    ``dend[3]``, ...), each after its first point's type. ``path``: the file the points
    came from, named in errors (default: ``SWC``).
    """
    where = "SWC" if path is None else path  # errors name the file, as read_swc's do
    by_id = {p.id: p for p in points}
    children: dict[int, list[int]] = {p.id: [] for p in points}
    for p in points:
        if p.parent != -1:
            children[p.parent].append(p.id)
    root = next(p for p in points if p.parent == -1)
    # Reachability doubles as a cycle check: a cycle never reaches the root.
    seen, stack = set(), [root.id]
    while stack:
        i = stack.pop()
        seen.add(i)
        stack += children[i]
    if len(seen) != len(points):
        bad = sorted(set(by_id) - seen)[:5]
        raise ValueError(f"{where}: points {bad} are not connected to the root (a parent cycle?)")

    pts = _parents_first(points, root, children, by_id)
    n = len(pts)
    index = {p.id: k for k, p in enumerate(pts)}
    pix = [index[p.parent] if p.parent != -1 else -1 for p in pts]
    typ = [p.type for p in pts]
    xyz = np.asarray([p.xyz for p in pts], float)
    diam = np.asarray([2.0 * p.radius for p in pts])

    # Import3d's mark_branch: children per point, plus 0.01 for a child listed out of
    # order or of another type (either ends the section there).
    nchild = [0.0] * n
    connect2prox = [False] * n
    for i in range(1, n):
        p = pix[i]
        nchild[p] += 1
        if p != i - 1:
            nchild[p] += 0.01
            # A branch on the first point of a neurite wired to the soma joins that
            # neurite's proximal end.
            if p > 1 and typ[p] != 1 and typ[pix[p]] == 1:
                connect2prox[i] = True
                nchild[p] = 1
            # So does one on a root that is no soma point (Import3d's p == 0 case; p == 1
            # is neither): the root continues its section unless its last child is of
            # another type (then the root alone is the root section, a sphere, as in
            # NEURON), and the branch joins the root section at x = 0.
            elif p == 0 and typ[0] != 1:
                connect2prox[i] = True
                nchild[p] = 1
        if typ[p] != typ[i]:
            nchild[p] += 0.01
    nchild_soma = [0] * n
    for i in range(1, n):
        if typ[i] == 1 and typ[pix[i]] == 1:
            nchild_soma[pix[i]] += 1
    soma3 = (
        sum(t == 1 for t in typ) == 3 and n >= 3 and pix[1] == 0 and pix[2] == 0
        and nchild[1] == 0 and nchild[2] == 0 and diam[1] == diam[0] and diam[2] == diam[0]
        and abs((np.linalg.norm(xyz[1] - xyz[0]) + np.linalg.norm(xyz[2] - xyz[0])) / diam[0] - 1) < 0.01
    )
    if soma3:
        pix[2] = 1  # one section of three points, of which the first is kept
    for i in range(n - 1):  # consecutive soma points continue a section ...
        if typ[i] == 1 and typ[i + 1] == 1 and pix[i + 1] == i:
            if i == 0 or nchild_soma[i] <= 1:  # ... unless the soma branches there
                nchild[i] = 1
    ends = [i for i in range(n) if nchild[i] != 1]
    point_section, k = [0] * n, 0
    for i in range(1, n):
        if i > ends[k]:
            k += 1
        point_section[i] = k

    firsts = [0] + [i for i in range(1, n) if point_section[i] != point_section[i - 1]]
    stops = firsts[1:] + [n]
    raw = []  # [type, xyz, diam, parent section, x, point ids]
    for isec, (first, stop) in enumerate(zip(firsts, stops)):
        t = typ[first]
        ids = [p.id for p in pts[first:stop]]
        if isec == 0:
            own = [first] if soma3 else list(range(first, stop))
            if len(own) == 1:  # a sphere, as a cylinder of length and diameter 2r along x, any type
                c, r = xyz[first], diam[first] / 2
                raw.append([t, np.stack([c - [r, 0, 0], c, c + [r, 0, 0]]), np.full(3, diam[first]), None, 0.0, ids])
            else:
                raw.append([t, xyz[own], diam[own], None, 0.0, ids])
            root_points = len(own)
            continue
        ppt = pix[first]
        psec = point_section[ppt]
        ptype = typ[firsts[psec]]
        own_points = stop - first
        x, wired = 1.0, False
        handled = False
        if psec == 0:
            handled = True
            if ptype == 1 and t != 1 and root_points == 1:
                x, wired = 0.5, own_points > 1
            elif ppt == firsts[0]:
                x, wired = 0.0, t != 1 and nchild_soma[ppt] > 1
            else:
                handled = False
        if not handled and ptype == 1:
            if ppt < stops[psec] - 1:  # an inner soma point
                x, wired = 0.5, t != 1 and own_points > 1
            elif own_points > 1 and nchild_soma[ppt] > 1 and t != 1:
                wired = True
        if connect2prox[first]:
            x = 0.0
        chain = [ppt] + list(range(first, stop))
        sec_d = diam[chain]
        if ptype == 1 and t != 1:
            sec_d[0] = sec_d[1]
        sec_xyz = xyz[chain]
        if wired:
            sec_xyz, sec_d = sec_xyz[1:], sec_d[1:]
        raw.append([t, sec_xyz, sec_d, psec, x, ids])

    # Import3d's chk_valid: a section of one point, or of two at the same place, is
    # removed and its children join its parent where it joined.
    dropped = []
    for i in range(len(raw) - 1, 0, -1):
        sec_xyz = raw[i][1]
        if len(sec_xyz) <= 1 or (len(sec_xyz) == 2 and np.array_equal(sec_xyz[0], sec_xyz[1])):
            removed = raw.pop(i)
            dropped.append(removed[5])
            for other in raw[i:]:
                if other[3] == i:
                    other[3], other[4] = removed[3], removed[4]
                elif other[3] is not None and other[3] > i:
                    other[3] -= 1

    if dropped:
        # As NEURON's Import3d does, but a user should know the file says more.
        warnings.warn(
            f"{where}: {len(dropped)} section(s) of zero length dropped (points {'; '.join(map(str, dropped[:5]))}: "
            "one point, or two at the same place), as NEURON's Import3d drops them; their children join "
            "their parents", RuntimeWarning, stacklevel=outside_stacklevel())
    counts: dict[int, int] = {}
    sections: list[Section3D] = []
    for t, sec_xyz, sec_d, parent, x, ids in raw:
        k = counts.get(t, 0)
        counts[t] = k + 1
        sec = Section3D(f"{section_type_name(t)}[{k}]", t, sec_xyz, sec_d, parent, x)
        if sec.length <= 0:
            raise ValueError(f"{where}: the section through points {ids} has zero length")
        sections.append(sec)
    return sections


def _parents_first(points, root, children, by_id) -> list[SWCPoint]:
    """The points in id order if every parent id is below its children's (as Import3d
    requires), else depth first from the root in file order."""
    if all(p.parent < p.id for p in points):
        return sorted(points, key=lambda p: p.id)
    order, stack = [], [root.id]
    while stack:
        i = stack.pop()
        order.append(by_id[i])
        stack += reversed(children[i])
    return order


def lambda_f(sec: Section3D, freq, Ra, cm) -> float:
    """Length constant (µm) at ``freq`` Hz of a section, integrated over its 3-D points
    as NEURON's ``lambda_f`` (stdlib's fixnseg.hoc)."""
    arc, d = sec.arc, sec.diam
    lam = np.sum(np.diff(arc) / np.sqrt(d[:-1] + d[1:]))
    lam *= math.sqrt(2) * 1e-5 * math.sqrt(4 * math.pi * freq * Ra * cm)
    return sec.length / lam


def d_lambda_nseg(sec: Section3D, d_lambda, freq, Ra, cm) -> int:
    """NEURON's d_lambda rule: ``int((L/(d_lambda·λ_f) + 0.9)/2)·2 + 1`` (odd)."""
    return int((sec.length / (d_lambda * lambda_f(sec, freq, Ra, cm)) + 0.9) / 2) * 2 + 1


def _keys_for(channels, swc_type) -> list:
    """The ``channels`` keys naming SWC type ``swc_type``: its number, its name, or
    NEURON's section name stem for it."""
    names = (swc_type, SWC_TYPE_NAMES.get(swc_type), section_type_name(swc_type))
    return [k for k in channels if k is not None and not isinstance(k, bool) and k in names]


def _check_channel_keys(channels, types) -> None:
    """A ValueError for a ``channels`` mapping key that is neither a type number nor a
    section name stem (a misspelt name would otherwise be ignored; a valid type the
    file lacks is fine, so one mapping serves many files), or a type named by two keys."""
    present = ", ".join(f"{t} ({section_type_name(t)})" for t in sorted(types))
    for key in channels:
        is_type = isinstance(key, int) and not isinstance(key, bool)
        if not (is_type or key in SWC_TYPE_NAMES.values() or re.fullmatch(r"(dend|minus)_\d+", str(key))):
            raise ValueError(
                f"channels: key {key!r} is not an SWC type; key by type number (1 soma, 2 axon, 3 dend, "
                f"4 apic, others) or NEURON's section name stem ('soma', 'axon', 'dend', 'apic', "
                f"'dend_<t>', 'minus_<t>'); this file has types {present}"
            )
    for t in types:
        keys = _keys_for(channels, t)
        if len(keys) > 1:
            raise ValueError(f"channels: keys {keys} all name SWC type {t} ({section_type_name(t)}); give one")


def _channels_for(channels, swc_type, name):
    if not isinstance(channels, Mapping):
        return channels
    keys = _keys_for(channels, swc_type)  # at most one: _check_channel_keys
    if keys:
        return channels[keys[0]]
    raise ValueError(
        f"channels: no entry for SWC type {swc_type} ({SWC_TYPE_NAMES.get(swc_type, 'custom')}, "
        f"section {name}); give channels for it, keyed by type number or name"
    )


def _fraction(value, name: str) -> float:
    """``value`` as a float if it is one dimensionless number (a plain number or a
    dimensionless quantity), else a ValueError naming ``name``: d_lambda is a fraction
    of the length constant, not a length."""
    try:
        x = units.to_static(value, name, None)
    except ValueError:
        x = None
    if x is None or np.ndim(x) != 0:
        raise ValueError(f"cell_from_swc: {name} expects one dimensionless number > 0 (a fraction of the length "
                         f"constant, e.g. 0.1), got {value!r}")
    return float(x)


def cell_from_swc(path, *, Ra=35.4, cm=1.0, channels=(), d_lambda=None, freq=100.0,
                  temperature=membrane.TEMPERATURE_NOT_GIVEN, nseg=None):
    """A :class:`~jaxneuro.Cell` from an SWC file.

    ``Ra`` (Ω·cm) and ``cm`` (µF/cm²) for every section; ``channels``: one sequence
    for every section, or a mapping from SWC type (``1``..``4`` or ``"soma"``,
    ``"axon"``, ``"dend"``, ``"apic"``) to a sequence. Sections as
    :func:`swc_sections` makes them, named as NEURON's Import3d names them
    (``"soma[0]"``, ``"dend[3]"``, ``"axon[0]"``, ``"apic[0]"``); each gets ``nseg`` by
    NEURON's d_lambda rule (``d_lambda`` of the length constant at ``freq`` Hz, default
    0.1), or ``nseg`` segments each when ``nseg`` (a positive integer) is given instead
    (as ``for sec in h.allsec(): sec.nseg = n`` in NEURON, or Jaxley's ``ncomp``), and
    keeps its 3-D points (:class:`~jaxneuro.Cable`'s ``arc3d`` and ``diam3d``), so
    membrane areas and axial resistances are integrated over the frusta as NEURON
    does. ``temperature`` (°C; default NEURON's 6.3) is every section's, as
    :class:`~jaxneuro.Cell`'s ``temperature`` sets it: a channel that keeps a
    temperature of its own is warned about once.

    A point whose radius is not finite and > 0 is refused (:func:`read_swc`), a radius
    of 0 too, unlike NEURON's Import3d, which accepts it as a zero-area point (diameter
    0 there, so an almost infinite axial resistance through it that all but cuts the
    cable); such a file (some reconstructions have these points) opens in NEURON but not
    here: fix the point's radius in the file.
    """
    from .cell import Cell

    Ra_f = float(units.to_base(Ra, "Ra", units.ohm_cm))
    cm_f = float(units.to_base(cm, "cm", units.uF_per_cm2))
    if nseg is not None:
        if d_lambda is not None:
            raise ValueError("cell_from_swc: give nseg (segments per section) or d_lambda (NEURON's rule), not both")
        nseg = units.positive_int(nseg, "cell_from_swc: nseg")
    d_lambda = 0.1 if d_lambda is None else _fraction(d_lambda, "d_lambda")
    freq = float(units.to_base(freq, "freq", units.Hz))
    for label, value in (("Ra", Ra_f), ("cm", cm_f), ("d_lambda", d_lambda), ("freq", freq)):
        if not value > 0 or not math.isfinite(value):
            raise ValueError(f"cell_from_swc: {label} must be a positive number, got {value}")
    sections = swc_sections(read_swc(path), path)
    if isinstance(channels, Mapping):
        _check_channel_keys(channels, {sec.type for sec in sections})
    cables, parents = [], []
    for sec in sections:
        cables.append(Cable(
            arc3d=tuple(sec.arc), diam3d=sec.diam, Ra=Ra_f, cm=cm_f,
            nseg=nseg if nseg is not None else d_lambda_nseg(sec, d_lambda, freq, Ra_f, cm_f),
            channels=_channels_for(channels, sec.type, sec.name), name=sec.name,
        ))
        parents.append(None if sec.parent is None else (sec.parent, sec.parent_x))
    # A given temperature goes to the cell, which checks it and warns about channels
    # that keep their own once; given to each section, a warning repeated per section
    # (hundreds in a reconstruction, where warnings show every time).
    given = {"temperature": temperature} if membrane.temperature_given(temperature) else {}
    return Cell(sections=tuple(cables), parents=tuple(parents), **given)
