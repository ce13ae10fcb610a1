"""Reading SWC morphologies into a :class:`~jaxneuro.Cell`, as NEURON's Import3d does."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .. import units
from .cable import Cable

SWC_TYPE_NAMES = {1: "soma", 2: "axon", 3: "dend", 4: "apic"}


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


def read_swc(path) -> list[SWCPoint]:
    """The points of an SWC file: ``id type x y z radius parent`` per line, ``#``
    comments. Raises ValueError for malformed lines, repeated ids or parent ids that
    name no point."""
    points = []
    for lineno, line in enumerate(Path(path).read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 7:
            raise ValueError(f"{path}:{lineno}: an SWC line has 7 fields (id type x y z radius parent), got {len(parts)}")
        try:
            pid, ptype, parent = int(parts[0]), int(parts[1]), int(parts[6])
            x, y, z, r = (float(v) for v in parts[2:6])
        except ValueError as e:
            raise ValueError(f"{path}:{lineno}: cannot read SWC line {line!r}: {e}") from e
        if not r > 0:
            raise ValueError(f"{path}:{lineno}: point {pid} has radius {r}; radii must be > 0 µm")
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


def swc_sections(points: Sequence[SWCPoint]) -> list[Section3D]:
    """Split SWC points into unbranched sections, parents first.

    A section runs from a branch point (or the soma) to the next branch point, type
    change or tip; after a branch point it starts at the branch point (its position and
    diameter, as NEURON's Import3d). Sections are numbered per type depth first. The
    soma given as one point, or as NeuroMorpho's three points (centre and two points
    one radius away), becomes a cylinder of length and diameter ``2r`` (the sphere's
    area), as NEURON builds it; neurites leaving the soma are joined at its centre,
    ``soma(0.5)``. A soma given as an unbranched chain of points is one section through
    them (frusta, like any section); neurites on its first or last point join that end
    (``soma(0)``, ``soma(1)``) and start at that point with their own diameter, those on
    inner points join ``soma(0.5)``, as Import3d does. Other soma outlines (branched)
    are read as sections like any other.
    """
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
        raise ValueError(f"SWC: points {bad} are not connected to the root (a parent cycle?)")

    sections: list[Section3D] = []
    counts: dict[int, int] = {}
    end_section: dict[int, tuple[int, float]] = {}  # point id -> (section, x) it ends

    def name_for(t):
        k = counts.get(t, 0)
        counts[t] = k + 1
        return f"{SWC_TYPE_NAMES.get(t, f'type{t}')}[{k}]"

    soma_points, soma_ends = set(), set()
    if root.type == 1:
        soma_kids = [c for c in children[root.id] if by_id[c].type == 1]
        three_point = (
            len(soma_kids) == 2
            and all(not any(by_id[g].type == 1 for g in children[c]) for c in soma_kids)
        )
        chain = [root.id]  # the soma as an unbranched chain of points from the root
        while True:
            kids = [c for c in children[chain[-1]] if by_id[c].type == 1]
            if len(kids) != 1:
                break
            chain.append(kids[0])
        if not soma_kids or three_point:
            soma_points = {root.id, *soma_kids}
            r = root.radius
            c = np.asarray(root.xyz)
            xyz = np.stack([c - [0, r, 0], c, c + [0, r, 0]])
            sections.append(Section3D(name_for(1), 1, xyz, np.full(3, 2 * r), None, 0.0))
            for i in soma_points:
                end_section[i] = (0, 0.5)
        elif not kids:  # an unbranched outline: one section through its points
            soma_points = set(chain)
            pts = [by_id[i] for i in chain]
            sec = Section3D(name_for(1), 1, np.asarray([p.xyz for p in pts], float),
                            np.asarray([2 * p.radius for p in pts], float), None, 0.0)
            if sec.length <= 0:
                raise ValueError(f"SWC: the soma through points {chain} has zero length")
            sections.append(sec)
            # Neurites on its first or last point join that end (starting there, with
            # their own diameter); those on inner points join its middle, as Import3d.
            for i in chain:
                end_section[i] = (0, 0.0 if i == chain[0] else 1.0 if i == chain[-1] else 0.5)
            soma_ends = {chain[0], chain[-1]}

    def build(start: int, parent_link):
        """The section starting at point ``start``; returns its index."""
        ids = [start]
        while True:
            kids = children[ids[-1]]
            if len(kids) != 1 or by_id[kids[0]].type != by_id[ids[-1]].type:
                break
            ids.append(kids[0])
        pts = [by_id[i] for i in ids]
        xyz = [p.xyz for p in pts]
        diam = [2 * p.radius for p in pts]
        parent_pt = by_id[start].parent
        if parent_pt != -1 and parent_pt not in soma_points:
            # Start at the branch point, with its diameter, as Import3d does.
            xyz.insert(0, by_id[parent_pt].xyz)
            diam.insert(0, 2 * by_id[parent_pt].radius)
        elif parent_pt in soma_ends or (parent_pt != -1 and len(xyz) == 1):
            # From the end of a soma outline, or a one-point neurite on the soma: start
            # at the soma point, with the neurite's own diameter.
            xyz.insert(0, by_id[parent_pt].xyz)
            diam.insert(0, diam[0])
        sec = Section3D(name_for(pts[0].type), pts[0].type, np.asarray(xyz, float), np.asarray(diam, float),
                        *(parent_link if parent_link else (None, 0.0)))
        if sec.length <= 0:
            raise ValueError(f"SWC: the section through points {ids} has zero length")
        sections.append(sec)
        end_section[ids[-1]] = (len(sections) - 1, 1.0)
        return ids[-1]

    if soma_points:
        # The soma's neurites in file order, as Import3d numbers them.
        order = {p.id: k for k, p in enumerate(points)}
        stack = sorted((c for i in soma_points for c in children[i] if c not in soma_points), key=order.get)
    else:
        stack = [root.id]
    stack.reverse()
    while stack:  # depth first, in file order: Import3d's numbering (dend[0], dend[1], ...)
        start = stack.pop()
        parent_pt = by_id[start].parent
        link = end_section[parent_pt] if parent_pt != -1 else None
        last = build(start, link)
        stack += reversed(children[last])
    return sections


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


def _channels_for(channels, swc_type, name):
    if not isinstance(channels, Mapping):
        return channels
    for key in (swc_type, SWC_TYPE_NAMES.get(swc_type)):
        if key is not None and key in channels:
            return channels[key]
    raise ValueError(
        f"channels: no entry for SWC type {swc_type} ({SWC_TYPE_NAMES.get(swc_type, 'custom')}, "
        f"section {name}); give channels for it, keyed by type number or name"
    )


def cell_from_swc(path, *, Ra=35.4, cm=1.0, channels=(), d_lambda=0.1, freq=100.0, temperature=6.3):
    """A :class:`~jaxneuro.Cell` from an SWC file.

    ``Ra`` (Ω·cm) and ``cm`` (µF/cm²) for every section; ``channels``: one sequence
    for every section, or a mapping from SWC type (``1``..``4`` or ``"soma"``,
    ``"axon"``, ``"dend"``, ``"apic"``) to a sequence. Sections as
    :func:`swc_sections` makes them, named as NEURON's Import3d names them
    (``"soma[0]"``, ``"dend[3]"``, ``"axon[0]"``, ``"apic[0]"``); each gets ``nseg`` by
    NEURON's d_lambda rule (``d_lambda`` of the length constant at ``freq`` Hz) and
    keeps its 3-D points (:class:`~jaxneuro.Cable`'s ``arc3d`` and ``diam3d``), so
    membrane areas and axial resistances are integrated over the frusta as NEURON
    does.
    """
    from .cell import Cell

    Ra_f = float(units.to_base(Ra, "Ra", units.ohm_cm))
    cm_f = float(units.to_base(cm, "cm", units.uF_per_cm2))
    d_lambda = float(d_lambda)
    freq = float(units.to_base(freq, "freq", units.Hz))
    for label, value in (("Ra", Ra_f), ("cm", cm_f), ("d_lambda", d_lambda), ("freq", freq)):
        if not value > 0 or not math.isfinite(value):
            raise ValueError(f"cell_from_swc: {label} must be a positive number, got {value}")
    sections = swc_sections(read_swc(path))
    cables, parents = [], []
    for sec in sections:
        cables.append(Cable(
            arc3d=tuple(sec.arc), diam3d=sec.diam, Ra=Ra_f, cm=cm_f,
            nseg=d_lambda_nseg(sec, d_lambda, freq, Ra_f, cm_f),
            channels=_channels_for(channels, sec.type, sec.name), temperature=temperature, name=sec.name,
        ))
        parents.append(None if sec.parent is None else (sec.parent, sec.parent_x))
    return Cell(sections=tuple(cables), parents=tuple(parents))
