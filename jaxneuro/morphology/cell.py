"""A branched cell: cables joined into a tree."""

from __future__ import annotations

import copy
import dataclasses
import functools
from collections.abc import Sequence
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .. import units
from .._static_cache import per_precision_cache
from ..gather import spread, sum_into, take
from ..model import AbstractModel, broadcast_current, cached_per_model
from ..solve.hines import TreeCoupling
from ..state import State
from ..stimuli import IndexPair, Location
from ..stimuli.targets import is_location_list
from . import geometry as cable_geometry
from . import membrane
from .cable import Cable


class _Layout(NamedTuple):
    """Static indexing of a cell's segments and of the tree the axial solve runs on
    (all NumPy).

    The tree's nodes are the segments plus one zero-area node for every section end
    where two or more children attach, as NEURON's end nodes: joining several
    children straight to the parent's end segment would put the parent's half
    segment in parallel once per child. A single child at an end needs no node: its
    half segment and the parent's are simply in series. Node ``k``'s conductance to
    its parent is ``1 / (r_half[own[k]] + r_half[partner[k]])``, where ``r_half`` holds
    the segments' halves towards ``x = 0`` (indices ``0..n-1``) and towards ``x = 1``
    (``n..2n-1``), and index ``2n`` stands for a zero resistance.
    """

    offsets: np.ndarray  # first segment of each section; offsets[-1] = n
    parent: np.ndarray  # parent node of each tree node, -1 for roots (parent < node)
    own: np.ndarray  # half segment of node k towards its parent (2n: none)
    partner: np.ndarray  # half segment in series with it (2n: none)
    segment_nodes: np.ndarray  # tree node of each segment
    ends: dict  # (section, x in {0, 1}) -> child sections joined there (x = 0 resolved)


def _resolve_link(parents: tuple, p: int, x: float) -> tuple[int, float]:
    """Where location ``(p, x)`` is in the circuit: a section's ``x = 0`` end is the
    point where it joins its parent (NEURON: ``child(0)`` is the node ``parent(x)``), so
    ``(p, 0)`` of a section that has a parent is that parent location, up the tree."""
    while x == 0.0 and parents[p] is not None:
        p, x = parents[p]
    return p, x


@per_precision_cache(256)
def _layout(nsegs: tuple[int, ...], parents: tuple) -> _Layout:
    # A child joined at another section's x = 0 is joined where that section joins
    # its own parent, resolved already (parents come first): walking up each time made
    # a chain of x = 0 links quadratic.
    resolved = []
    for link in parents:
        if link is not None and link[1] == 0.0 and parents[link[0]] is not None:
            link = resolved[link[0]]
        resolved.append(link)
    parents = tuple(resolved)
    offsets = np.concatenate([[0], np.cumsum(nsegs)]).astype(int)
    n = int(offsets[-1])
    ends = {}  # (section, x in {0, 1}) -> the child sections attached there
    for s, link in enumerate(parents):
        if link is not None and link[1] in (0.0, 1.0):
            ends.setdefault((link[0], link[1]), []).append(s)
    junction_of = {}  # (section, x) -> tree node, for ends shared by several children
    node_parent, own, partner, segment_nodes = [], [], [], np.zeros(n, dtype=int)

    def add(parent_node, own_r, partner_r):
        node_parent.append(parent_node)
        own.append(own_r)
        partner.append(partner_r)
        return len(node_parent) - 1

    none = 2 * n

    def half(seg, x):  # index of segment seg's half towards x (0 or 1) in r_half
        return seg + n if x == 1.0 else seg

    for s, link in enumerate(parents):
        first = offsets[s]
        for k in range(first, offsets[s + 1]):
            if k > first:
                segment_nodes[k] = add(segment_nodes[k - 1], half(k, 0.0), half(k - 1, 1.0))
            elif link is None:
                segment_nodes[k] = add(-1, none, none)
            else:
                p, x = link
                seg = offsets[p] + _segment_of(x, nsegs[p])
                if (p, x) in junction_of:  # via the shared zero-area end node
                    segment_nodes[k] = add(junction_of[(p, x)], half(k, 0.0), none)
                elif x in (0.0, 1.0):  # the only child there: half segments in series
                    segment_nodes[k] = add(segment_nodes[seg], half(k, 0.0), half(seg, x))
                else:  # inside the section: to the centre of the segment containing x
                    segment_nodes[k] = add(segment_nodes[seg], half(k, 0.0), none)
        # Zero-area nodes on this section's ends, after its segments, before children.
        for x in (0.0, 1.0):
            if len(ends.get((s, x), ())) > 1:
                end_seg = offsets[s] + (0 if x == 0.0 else nsegs[s] - 1)
                junction_of[(s, x)] = add(segment_nodes[end_seg], half(end_seg, x), none)
    return _Layout(offsets, np.asarray(node_parent), np.asarray(own), np.asarray(partner), segment_nodes, ends)


def _replaced(cell, **fields):
    """``cell`` with ``fields`` (unset ones: ``None``) replaced. ``eqx.tree_at`` would
    flatten and rebuild the whole cell, every section and channel (0.23 s a call at
    1000 sections); only the top-level fields change."""
    out = copy.copy(cell)
    for name, value in fields.items():
        object.__setattr__(out, name, value)
    return out


@functools.lru_cache(maxsize=64)
def _positions(names: tuple) -> dict:
    """``{name: index}`` of the section names (unique: ``Cell`` checks); the same
    dictionary for the same names (callers only read it)."""
    return {name: i for i, name in enumerate(names)}


def _section_number(section, n: int, positions: dict | None) -> int:
    """Index of ``section`` (an index or a name; None: the one section of a
    one-section cell) among ``n`` sections; ``positions``: ``{name: index}`` of all
    of them (:func:`_positions`), needed for a name only."""
    if section is None:
        if n != 1:
            raise ValueError(
                f"a bare x (no section) needs a one-section cable; this cell has {n} sections: "
                "give (section, x)"
            )
        return 0
    if isinstance(section, str):
        if section not in positions:
            raise ValueError(f"unknown section {section!r}; this cell has sections {tuple(positions)}")
        return positions[section]
    if isinstance(section, (int, np.integer)) and not isinstance(section, bool):
        if not -n <= section < n:
            raise ValueError(f"section index {section} out of range for {n} sections")
        return int(section) % n
    raise ValueError(f"a section is an index or a name, got {section!r}")


def _end_node(lay: _Layout, n_segments: int, s: int, x: float, end: int):
    """``(segments, halves)`` around NEURON's zero-area node at end ``x`` (0 or 1) of
    section ``s`` (resolved location, ``end`` its end segment): the end segment and the
    first segment of each child joined there, and the half segments joining each to the
    node (indices into the half resistances: those towards ``x = 0``, then ``x = 1``);
    None inside a section."""
    if x not in (0.0, 1.0):
        return None
    firsts = [int(lay.offsets[c]) for c in lay.ends.get((s, x), [])]
    return [end] + firsts, [end + n_segments if x == 1.0 else end] + firsts


def _segment_of(x: float, nseg: int) -> int:
    return min(int(x * nseg), nseg - 1)


class SegmentGeometry(eqx.Module):
    """A cell's geometry as its time loop uses it: ``area`` (µm², one value per segment)
    and ``half_resistance`` (MΩ, the segments' halves towards ``x = 0`` then those
    towards ``x = 1``)."""

    area: jax.Array
    half_resistance: jax.Array


class SegmentMembrane(eqx.Module):
    """A cell's membrane parameters as its time loop uses them: ``cm`` (µF/cm², one
    value per segment) and ``channels``, each channel name once (in order of first
    appearance) with its parameters laid out over the segments that carry it.
    ``temperatures`` (°C): one entry per channel, the temperature its kinetics run at,
    a scalar where all the sections carrying it share one, else one value per segment
    carrying it (laid out as its parameters); None: taken from the sections."""

    cm: jax.Array
    channels: tuple
    temperatures: tuple | None = None


class _SectionsTemperature:
    """``Cell.temperature``: read from the sections (see :meth:`Cell._read_temperature`),
    never stored on the cell. As a class attribute it is None, the default of
    ``Cell``'s constructor argument ``temperature`` (a ``dataclasses.InitVar``)."""

    def __get__(self, cell, cls=None):
        return None if cell is None else cell._read_temperature()


class Cell(AbstractModel):
    """A neuron made of :class:`~jaxneuro.Cable` sections joined into a tree.

    ``sections``: the cables, each with its own geometry, ``Ra``, ``cm``, ``nseg`` and
    channels (and ``name``; unnamed sections are called ``"section[i]"``).
    ``parents``: one entry per section, ``None`` for a root, else the parent as
    ``(section, x)`` (or just ``section``, meaning ``x = 1``), with ``section`` an index
    or a name that comes *earlier* in ``sections``; the child's ``x = 0`` end is joined
    to the parent at ``x``, as NEURON's ``child.connect(parent(x), 0)`` (its
    ``connect(parent(x), 1)`` is the child built reversed). With one section
    ``parents`` may be omitted.

    Temperature (°C): each section's channels run at that section's ``temperature``
    (``cell.sections[i].temperature``), the one place it is kept: editing it (e.g.
    ``eqx.tree_at(lambda c: [s.temperature for s in c.sections], cell, [30.0, 30.0])``),
    differentiating or fitting it takes effect. ``temperature`` given to the
    constructor sets every section's to it (default None: the sections keep their own);
    ``cell.temperature`` reads the sections' common temperature, a ValueError where
    they differ. Sections may differ (each segment's kinetics at its section's
    temperature), which NEURON, with one global ``celsius``, cannot do; give them all
    one temperature to compare with NEURON.

    Segments are numbered section by section (segment ``i`` of a section centred at
    ``x = (i + 0.5)/nseg``): ``trace.v`` has shape ``(T, n_segments)``;
    ``cell.index(section, x)`` is the column of location ``(section, x)``,
    ``cell.segments(section)`` those of a whole section. Stimuli take locations as
    targets, ``StepCurrent(amp, delay, dur, target=("soma", 0.5))``, delivered to the
    segment containing ``x``. Gates of a channel are states over all segments (``0``
    and constant where the channel is not inserted; recorded there as NaN, a state
    those segments do not have). Its currents are recorded as 0 there.

    Axial coupling follows NEURON: neighbouring segment centres are joined by the
    resistance of the two half segments between them. A child joined at an interior
    ``x`` connects its first segment to the centre of the parent's segment containing
    ``x`` through its own half segment. Children joined at ``x = 0`` or ``1`` meet at a
    zero-area node one half segment beyond the parent's end segment, as NEURON's
    section end nodes (with a single child the node is folded into the two half
    segments in series), so the circuit is NEURON's. A section's own ``x = 0`` is the
    point where it joins its parent, as in NEURON: a child joined at ``(child, 0)``
    joins there, and stimuli and recordings at ``(child, 0)`` are at that parent
    location. End nodes carry no membrane and hold no state: a stimulus at an end where
    children join is shared among the segments around it as NEURON's node passes it on
    (at a free end all of it enters the end segment, as in NEURON); the column
    ``index(section, 1)`` (or a root's ``x = 0``) is the end segment's voltage, and
    :meth:`voltage_at` gives NEURON's ``sec(x).v`` there, the end node's voltage half a
    segment further (the same at a free end with nothing injected).

    ``geometry``, ``segment_membrane`` and ``coupling``: leave None.
    :meth:`precomputed` (which ``simulate`` calls) fills them for one run with the
    sections' areas and axial resistances (:class:`SegmentGeometry`), their ``cm``,
    channel parameters and temperatures per segment (:class:`SegmentMembrane`) and the
    axial conductances and capacitances the solver's tree uses (``voltage_coupling()``);
    a cell holding them uses them instead of its sections' ``diam``/``diam3d``, ``Ra``,
    ``cm``, channels and ``temperature``.
    """

    sections: tuple[Cable, ...]
    parents: tuple = eqx.field(default=None, static=True)
    # Not a field: a constructor argument applied to the sections, read back from them.
    temperature: dataclasses.InitVar[object] = _SectionsTemperature()
    geometry: SegmentGeometry | None = eqx.field(default=None, kw_only=True)
    segment_membrane: SegmentMembrane | None = eqx.field(default=None, kw_only=True)
    coupling: TreeCoupling | None = eqx.field(default=None, kw_only=True)

    def __post_init__(self, temperature=None):
        if isinstance(self.sections, Cable):
            self.sections = (self.sections,)
        if not isinstance(self.sections, Sequence) or not self.sections:
            raise ValueError("Cell.sections expects a non-empty sequence of jn.Cable sections")
        self.sections = tuple(self.sections)
        for i, sec in enumerate(self.sections):
            if not isinstance(sec, Cable):
                raise ValueError(f"Cell.sections[{i}] expects a jn.Cable, got {type(sec).__name__}")
        names = self.section_names
        if len(set(names)) != len(names):  # (names.count for every name: quadratic)
            dup = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"Cell.sections: section names must be unique, {dup} repeat")
        self.parents = self._normalise_parents(self.parents)
        if temperature is not None:
            self.sections = self._sections_at(temperature)
            membrane.warn_own_temperatures("Cell", [ch for s in self.sections for ch in s.channels],
                                           self.sections[0].temperature)
        self._check_channels()
        if self.geometry is not None:
            n = self.n_segments
            if not isinstance(self.geometry, SegmentGeometry) or np.shape(self.geometry.area) != (n,) \
                    or np.shape(self.geometry.half_resistance) != (2 * n,):
                raise ValueError(
                    f"Cell.geometry expects None (computed from the sections) or a SegmentGeometry "
                    f"with area of shape ({n},) and half_resistance of shape ({2 * n},), got {self.geometry!r}"
                )
        if self.segment_membrane is not None:
            n, names = self.n_segments, [members[0][1].name for members in self._channel_members()]
            sm = self.segment_membrane
            if not isinstance(sm, SegmentMembrane) or np.shape(sm.cm) != (n,) or not isinstance(sm.channels, tuple) \
                    or [getattr(ch, "name", None) for ch in sm.channels] != names \
                    or not self._fits_temperatures(sm.temperatures):
                raise ValueError(
                    f"Cell.segment_membrane expects None (computed from the sections) or a SegmentMembrane "
                    f"with cm of shape ({n},), the channels {names} and temperatures None or one per "
                    f"channel (a scalar or one value per segment carrying it), got {sm!r}"
                )
        if self.coupling is not None:
            parent = tuple(int(p) for p in self._layout().parent)
            if not isinstance(self.coupling, TreeCoupling) or self.coupling.parent != parent:
                raise ValueError(
                    f"Cell.coupling expects None (computed from the sections) or a TreeCoupling on this "
                    f"cell's tree ({len(parent)} nodes), got {self.coupling!r}"
                )
        super().__post_init__()

    def _sections_at(self, temperature) -> tuple[Cable, ...]:
        """The sections, each with its ``temperature`` set to ``temperature`` (°C, a
        scalar or a kelvin quantity)."""
        if all(sec.temperature is temperature for sec in self.sections):
            return self.sections  # e.g. Cable.as_cell, with the cable's own temperature
        temperature = units.to_base(temperature, "Cell.temperature", units.celsius)
        units.check_value(temperature, "Cell.temperature", None, units.celsius)
        if np.ndim(temperature) != 0:
            raise ValueError(
                f"Cell.temperature expects a scalar (°C), applied to every section, got shape "
                f"{np.shape(temperature)}; for one temperature per section give each Cable its own"
            )
        return tuple(eqx.tree_at(lambda s: s.temperature, sec, temperature) for sec in self.sections)

    def _normalise_parents(self, parents):
        n = len(self.sections)
        if parents is None:
            if n > 1:
                raise ValueError(
                    "Cell.parents is required for several sections: one entry per section, "
                    "None for the root, else (parent section, x)"
                )
            return (None,)
        if not isinstance(parents, Sequence) or len(parents) != n:
            raise ValueError(f"Cell.parents expects one entry per section ({n}), got {parents!r}")
        # Names looked up once: any per-section scan of the sections (a call of a method
        # of self, which equinox binds by flattening the whole cell, included) made
        # building a cell quadratic in its sections (2000 sections: 20 s).
        positions = _positions(self.section_names)
        out = []
        for i, link in enumerate(parents):
            if link is None:
                out.append(None)
                continue
            if isinstance(link, (tuple, list)):
                if len(link) == 3 and isinstance(link[2], (int, float)) and link[2] in (0, 1):
                    # NEURON's child.connect(parent(x), child_end)
                    raise ValueError(
                        f"Cell.parents[{i}] = {link!r}: a child joins its parent by its x = 0 end, so give "
                        "(section, x); NEURON's child.connect(parent(x), 1), joined by the child's x = 1 end, "
                        "is the child built reversed (its per-segment values in reverse order, its locations "
                        "x read as 1 - x)"
                    )
                if len(link) != 2:
                    raise ValueError(
                        f"Cell.parents[{i}] expects None, a section (name or index) or (section, x), "
                        f"got {link!r}"
                    )
                sec, x = link
            else:
                sec, x = link, 1.0
            if isinstance(sec, (int, np.integer)) and not isinstance(sec, bool) and sec < 0:
                # Jaxley and SWC files mark a root with -1; a negative index would
                # otherwise count from the end.
                raise ValueError(
                    f"Cell.parents[{i}]: {sec} is no section; a root's parent is None (Jaxley's and "
                    "SWC's -1), any other section's is an earlier section's index or name"
                )
            try:
                p = _section_number(sec, n, positions)
            except ValueError as e:
                raise ValueError(f"Cell.parents[{i}]: {e}") from None
            if p == i:
                raise ValueError(f"Cell.parents[{i}]: section {sec!r} cannot be its own parent")
            if p > i:
                raise ValueError(
                    f"Cell.parents[{i}]: parent section {sec!r} must come before its child in "
                    "sections (list parents first)"
                )
            out.append((p, _check_x(x, f"Cell.parents[{i}]")))
        return tuple(out)

    def _check_channels(self):
        seen = {}
        for i, sec in enumerate(self.sections):
            for ch in sec.channels:
                if ch.name in seen:
                    j, other = seen[ch.name]
                    if jax.tree.structure(ch) != jax.tree.structure(other):
                        raise ValueError(
                            f"Cell: channel {ch.name!r} of section {self.section_names[i]!r} is a "
                            f"{type(ch).__name__} whose type or settings differ from the one in "
                            f"section {self.section_names[j]!r}; give different channels different names"
                        )
                else:
                    seen[ch.name] = (i, ch)
        # Channels of different sections share the cell's record names.
        section_names = self.section_names
        membrane.check_record_names("Cell", [ch for _, ch in seen.values()],
                                    [f"Cell: section {section_names[i]!r}" for i, _ in seen.values()])

    # --- sections and locations -------------------------------------------------------
    @property
    def section_names(self) -> tuple[str, ...]:
        return tuple(s.name if s.name is not None else f"section[{i}]" for i, s in enumerate(self.sections))

    @property
    def nsegs(self) -> tuple[int, ...]:
        return tuple(s.nseg for s in self.sections)

    @property
    def n_segments(self) -> int:
        return sum(self.nsegs)

    def _layout(self) -> _Layout:
        return _layout(self.nsegs, self.parents)

    def section_index(self, section) -> int:
        """Index of ``section`` (an index or a name; None: the one section of a
        one-section cell, for a bare ``x``) in ``sections``."""
        positions = _positions(self.section_names) if isinstance(section, str) else None
        return _section_number(section, len(self.sections), positions)

    def index(self, section, x) -> int:
        """Segment index (column of ``trace.v``) of location ``(section, x)``: the
        segment containing ``x`` in [0, 1]. A section's ``x = 0`` is where it joins its
        parent (as in NEURON), so ``(child, 0)`` is the parent's location (up the tree);
        a root's ``x = 0`` and every ``x = 1`` give the end segment (NEURON's voltage
        at an end where children join, half a segment further: :meth:`voltage_at`)."""
        return Cell._located(self, section, x)[2]

    # Within these lookups, methods of the cell are called through the class: equinox
    # binds a method of an instance by flattening the whole cell, which made each
    # lookup O(sections) several times over (18 ms at 1000 sections), and recording or
    # stimulating at every section quadratic.
    def _located(self, section, x) -> tuple[int, float, int]:
        """``(s, x, segment)``: location ``(section, x)`` resolved up the tree (see
        :meth:`index`) and the segment containing it."""
        return Cell.locator(self)(section, x)

    def locator(self):
        """A function ``(section, x) -> (s, x, segment)`` as :meth:`_located` gives
        it, with the cell's names and layout looked up once: for many locations
        (``record={name: [...]}`` at every section), each lookup then O(1)."""
        names, nsegs, parents = self.section_names, self.nsegs, self.parents
        offsets = _layout(nsegs, parents).offsets

        def locate(section, x):
            positions = _positions(names) if isinstance(section, str) else None
            s, x = _resolve_link(parents, _section_number(section, len(nsegs), positions), _check_x(x, "location"))
            return s, x, int(offsets[s]) + _segment_of(x, nsegs[s])

        return locate

    locate = index

    def segment_labels(self) -> tuple[str, ...]:
        """``"section(x)"`` for every segment (column of ``trace.v``), ``x`` its centre,
        in column order: ``("soma(0.5)", "dend(0.1667)", ...)``; ``"x=0.125"`` for a
        single unnamed cable."""
        if len(self.sections) == 1:
            return self.sections[0].segment_labels()
        return tuple(f"{name}({x:.4g})" for name, sec in zip(self.section_names, self.sections)
                     for x in sec.centres)

    def segments(self, section) -> np.ndarray:
        """Segment indices of a whole section, from ``x = 0`` to ``x = 1``."""
        s = Cell.section_index(self, section)
        off = _layout(self.nsegs, self.parents).offsets
        return np.arange(off[s], off[s + 1])

    def centres(self, section) -> np.ndarray:
        """Positions ``x`` of a section's segment centres."""
        return self.sections[Cell.section_index(self, section)].centres

    # --- geometry ---------------------------------------------------------------------
    def _cm(self):
        """Specific membrane capacitance per segment, µF/cm²."""
        if self.segment_membrane is not None:
            return self.segment_membrane.cm
        return cable_geometry.per_segment([s.cm for s in self.sections], self.nsegs)

    @property
    def membrane_area(self):
        """Membrane area of each segment, µm² (π·diam·length/nseg for a cylinder; see
        :class:`~jaxneuro.Cable` for sections with 3-D points)."""
        return (self.geometry if self.geometry is not None else self._computed_geometry()).area

    @cached_per_model
    def precomputed(self) -> "Cell":
        """This cell with its :class:`SegmentGeometry`, :class:`SegmentMembrane` (the
        channels' temperatures included: scalars where the sections share a concrete
        temperature, as unedited cells do) and ``voltage_coupling()`` computed once (see
        :meth:`AbstractModel.precomputed`); differentiable like the sections' own
        parameters. Inside a time loop, per-section values would be spread over the
        segments at every step, a gradient would carry one cotangent per section and
        parameter through the loop, and the axial conductances' derivatives would pass
        through their gathers at every step (a 1000-segment HH cell's gradient in its
        sections' ``Ra``: 1.4× slower)."""
        cell = self
        if cell.segment_membrane is None:
            table = SegmentMembrane(cm=cell._cm(), channels=tuple(cell._merged_channels()),
                                    temperatures=tuple(cell._channel_temperatures()))
            cell = _replaced(cell, segment_membrane=table)
        if cell.geometry is None and cell.coupling is None:
            # Geometry, axial conductances and capacitances as one compiled program
            # (three, compiled for every new cell structure, otherwise).
            lay = cell._layout()
            geometry, g, capacitance = _geometry_and_coupling(cell, cell.segment_membrane.cm, lay.own, lay.partner)
            cell = _replaced(cell, geometry=geometry)
            return _replaced(cell, coupling=cell._tree_coupling(g, capacitance))
        if cell.geometry is None:
            cell = _replaced(cell, geometry=cell._computed_geometry())
        if cell.coupling is None:
            cell = _replaced(cell, coupling=cell.voltage_coupling())
        return cell

    def _computed_geometry(self) -> SegmentGeometry:
        """Areas and half resistances from the sections: the cylinders all together,
        those with 3-D points all together (:mod:`jaxneuro.morphology.geometry`'s
        ``joined_cylinders`` and ``joined``), so that the program does not grow with the
        number of sections; one compiled program (op by op, each operation on a new
        shape compiled one of its own)."""
        return _geometry_compiled(self)

    def _geometry(self) -> SegmentGeometry:
        secs = self.sections
        solid = [i for i, s in enumerate(secs) if s.arc3d is None]
        pointed = [i for i, s in enumerate(secs) if s.arc3d is not None]
        parts = []  # (area, left, right) for the cylinders, then the 3-D sections
        if solid:
            parts.append(cable_geometry.joined_cylinders([secs[i] for i in solid]))
        if pointed:
            parts.append(cable_geometry.joined([secs[i] for i in pointed]))
        area, left, right = (jnp.concatenate(q) for q in zip(*parts))
        order = solid + pointed
        if order != list(range(len(secs))):  # back to the cell's segment order
            offsets = self._layout().offsets
            perm = np.argsort(np.concatenate([np.arange(offsets[i], offsets[i + 1]) for i in order]))
            area, left, right = area[perm], left[perm], right[perm]
        return SegmentGeometry(area=area, half_resistance=jnp.concatenate([left, right]))

    @property
    def capacitance(self):
        """Membrane capacitance of each segment, nF."""
        return _capacitance(self._cm(), self.membrane_area)

    def _half_resistance(self):
        """Axial resistances (MΩ) of the segments' halves: those towards ``x = 0``, then
        those towards ``x = 1`` (shape ``(2·n_segments,)``)."""
        return (self.geometry if self.geometry is not None else self._computed_geometry()).half_resistance

    def voltage_coupling(self) -> TreeCoupling:
        """The axial coupling of the segments (:class:`TreeCoupling`): ``coupling``
        where :meth:`precomputed` filled it, else computed from the geometry."""
        if self.coupling is not None:
            return self.coupling
        lay = self._layout()
        return self._tree_coupling(_axial_conductance(self._half_resistance(), lay.own, lay.partner),
                                   self.capacitance)

    def _tree_coupling(self, g, capacitance) -> TreeCoupling:
        """The :class:`TreeCoupling` of this cell's tree with axial conductances ``g``
        (µS) and segment ``capacitance`` (nF)."""
        lay = self._layout()
        identity = np.array_equal(lay.segment_nodes, np.arange(self.n_segments))
        return TreeCoupling(g=g, capacitance=capacitance, parent=tuple(int(p) for p in lay.parent),
                            segment_nodes=None if identity else tuple(int(k) for k in lay.segment_nodes))

    # --- temperature --------------------------------------------------------------------
    def _common_temperature(self, sections=None):
        """The temperature (°C) the sections (indices; default all) share: the first
        one's leaf, where every one is that same leaf or all are concrete and equal;
        else None (they differ, or are tracers that may)."""
        temps = [self.sections[s].temperature for s in (range(len(self.sections)) if sections is None else sections)]
        first = temps[0]
        if all(t is first for t in temps):
            return first
        if all(_is_value(t) for t in temps) and all(np.array_equal(t, first) for t in temps[1:]):
            return first
        return None

    def _read_temperature(self):
        """``cell.temperature``: the sections' common temperature (°C), or a ValueError
        where they differ or may."""
        common = self._common_temperature()
        if common is not None:
            return common
        temps = [s.temperature for s in self.sections]
        if all(_is_value(t) for t in temps):
            shown = {name: float(t) for name, t in zip(self.section_names, temps)}
            raise ValueError(
                f"Cell.temperature: the sections have different temperatures {shown} °C, each "
                "running at its own; read them as cell.sections[i].temperature"
            )
        raise ValueError(
            "Cell.temperature is the sections' common temperature, which is not known here: "
            "under jit, grad or vmap their temperatures are traced and may differ, and eqx.tree_at "
            "or jn.fit's params cannot select it as one leaf. Read, edit or fit each section's, "
            "e.g. eqx.tree_at(lambda c: [s.temperature for s in c.sections], cell, "
            "[30.0] * len(cell.sections))"
        )

    def _channel_temperatures(self) -> list:
        """The temperature (°C) each channel's kinetics run at, in the order of
        :meth:`_channel_groups`: ``segment_membrane.temperatures`` where
        :meth:`precomputed` filled them, else from the sections: a scalar where the
        sections carrying the channel share one (the whole cell's where all do), else
        one value per segment carrying it."""
        if self.segment_membrane is not None and self.segment_membrane.temperatures is not None:
            return list(self.segment_membrane.temperatures)
        common = self._common_temperature()
        out = []
        for members in self._channel_members():
            secs = [s for s, _ in members]
            here = common if common is not None else self._common_temperature(secs)
            if here is None:
                here = cable_geometry.per_segment([self.sections[s].temperature for s in secs],
                                                  [self.sections[s].nseg for s in secs])
            out.append(here)
        return out

    def _fits_temperatures(self, temperatures) -> bool:
        """Whether ``temperatures`` suits ``SegmentMembrane.temperatures``: None, or
        one per channel, each a scalar or one value per segment carrying it."""
        if temperatures is None:
            return True
        if not isinstance(temperatures, tuple):
            return False
        groups = self._channel_groups()
        return len(temperatures) == len(groups) and all(
            np.shape(t) in ((), (self.n_segments if idx is None else len(idx),))
            for t, (_, idx) in zip(temperatures, groups))

    # --- channels -----------------------------------------------------------------------
    def _channel_members(self):
        """``[[(section index, channel), ...], ...]``: the sections carrying each channel
        name, names in order of first appearance."""
        groups = {}
        for s, sec in enumerate(self.sections):
            for ch in sec.channels:
                groups.setdefault(ch.name, []).append((s, ch))
        return list(groups.values())

    def _merged_channels(self):
        """Each channel name once, its parameters over the segments carrying it."""
        out = []
        for members in self._channel_members():
            if len(self.sections) == 1:
                out.append(members[0][1])
                continue
            ns = [self.sections[s].nseg for s, _ in members]
            out.append(jax.tree.map(lambda *leaves: cable_geometry.per_segment(leaves, ns), *[ch for _, ch in members]))
        return out

    def _channel_groups(self):
        """``[(channel, segment indices or None)]``: each channel name once, its
        parameters laid out over the segments that carry it (None: all segments)."""
        off = self._layout().offsets
        members = self._channel_members()
        merged = self.segment_membrane.channels if self.segment_membrane is not None else self._merged_channels()
        out = []
        for group, ch in zip(members, merged):
            secs = [s for s, _ in group]
            if len(secs) == len(self.sections):
                out.append((ch, None))
            else:
                out.append((ch, np.concatenate([np.arange(off[s], off[s + 1]) for s in secs])))
        return out

    @staticmethod
    def _take(x, idx):
        return x if idx is None else take(x, idx)

    @staticmethod
    def _put(x, idx, n):
        if idx is None:
            return jnp.broadcast_to(x, x.shape[:-1] + (n,)) if jnp.ndim(x) else jnp.broadcast_to(x, (n,))
        return spread(x, idx, n)

    def _own_gates(self, ch, gates, idx):
        return {membrane.gate_key(ch, g): self._take(gates[membrane.gate_key(ch, g)], idx) for g in ch.gate_names}

    # --- the model ----------------------------------------------------------------------
    @property
    def shape(self):
        return (self.n_segments,)

    def init_state(self, v0):
        n = self.n_segments
        v = jnp.broadcast_to(jnp.asarray(v0, dtype=jnp.result_type(float)), (n,))
        gates = {}
        for (ch, idx), temperature in zip(self._channel_groups(), self._channel_temperatures()):
            for key, value in membrane.steady_gates(ch, self._take(v, idx), temperature).items():
                gates[key] = self._put(jnp.broadcast_to(value, self._take(v, idx).shape), idx, n)
        return State(v=v, gates=gates, events={})

    def ionic_current(self, state):
        """Total channel current density per segment, mA/cm² (outward positive)."""
        total = jnp.zeros_like(state.v)
        for ch, idx in self._channel_groups():
            gates = membrane.gates_of(ch, self._own_gates(ch, state.gates, idx))
            i = ch.current(self._take(state.v, idx), gates)
            total = total + (i if idx is None else spread(i, idx, total.shape[-1]))
        return total

    def vector_field(self, t, state, i_inj):
        d = self._segments_field(t, state, i_inj)
        return State(v=d.v + self.voltage_coupling().apply(state.v), gates=d.gates)

    def local_vector_field(self, t, state, i_inj):
        """:meth:`vector_field` without the axial currents (``voltage_coupling()``'s
        ``A v``): each segment's membrane and injected currents alone. The default
        solver, which treats the axial coupling implicitly, solves for the new voltage
        from this and never evaluates ``A v`` (about a tenth of a step of a
        1000-segment HH cell)."""
        return self._segments_field(t, state, i_inj)

    def _segments_field(self, t, state, i_inj):
        i_density = i_inj * (membrane.NA_PER_UM2_TO_MA_PER_CM2 / self.membrane_area)
        dv = membrane.dv_dt(i_density, self.ionic_current(state), self._cm())
        dgates = {k: jnp.zeros_like(x) for k, x in state.gates.items()}
        dgates.update(self._per_channel_gates(
            lambda ch, v, own, temperature: membrane.gate_derivatives(ch, v, own, temperature), state.v, state.gates))
        return State(v=dv, gates=dgates)

    def gate_increments(self, v, gates, dt):
        """``{gate: change over dt}`` per segment (``dt`` in ms, ``v`` in mV held
        fixed) for the gates of channels with first-order kinetics, as
        :meth:`Compartment.gate_increments`; zero on segments without the channel."""
        return self._per_channel_gates(
            lambda ch, v, own, temperature: membrane.gate_increments(ch, v, own, dt, temperature), v, gates)

    def gate_groups(self):
        """The gates the default solver advances together
        (:func:`~jaxneuro.morphology.membrane.coupled_gate_groups`), each channel once."""
        return membrane.coupled_gate_groups([ch for ch, _ in self._channel_groups()], self._channel_temperatures())

    def _per_channel_gates(self, fn, v, gates):
        """``{gate: per-segment values}`` from ``fn(channel, v, own gates,
        temperature)`` (a dict keyed by gate name, or None) evaluated on the segments
        carrying each channel, at their temperature (:meth:`_channel_temperatures`),
        zero elsewhere."""
        n = self.n_segments
        out = {}
        for (ch, idx), temperature in zip(self._channel_groups(), self._channel_temperatures()):
            own = self._own_gates(ch, gates, idx)
            for key, value in (fn(ch, self._take(v, idx), own, temperature) or {}).items():
                out[key] = self._put(jnp.broadcast_to(value, own[key].shape), idx, n)
        return out

    def place_current(self, target, i):
        """``i`` (nA) into the segment of location ``target``: ``(section, x)``, a bare
        float ``x`` for a one-section cell, segment indices (a list; a tuple from a
        Network's ``("name", [k, ...])``), or ``None`` (every segment). A bare integer
        or a pair of integers is ambiguous with a location and refused (a bare integer
        only where there are several segments). At a section end where children join,
        ``i`` is shared as NEURON's zero-area node there shares it (see
        :meth:`_nodes_of`)."""
        n = self.n_segments
        if target is None:
            return broadcast_current(i, (n,), target)
        if isinstance(target, float):
            target = Location(None, target)
        elif (isinstance(target, tuple) and len(target) == 2
                and (isinstance(target[0], str) or isinstance(target[1], (float, np.floating)))):
            target = Location(*target)  # a location (section, x)
        if isinstance(target, IndexPair) or (isinstance(target, (int, np.integer)) and n > 1):
            raise ValueError(_ambiguous_target(target))
        if is_location_list(target) or isinstance(target, Location):  # one current per location
            locations = target if is_location_list(target) else (target,)
            i = broadcast_current(i, (len(locations),), target)
            segs, owner, weight = Cell._nodes_of(self, locations)
            return sum_into(i[..., owner] * weight, segs, n)
        if isinstance(target, (int, np.integer)):
            if not -n <= target < n:
                raise ValueError(f"stimulus target={target!r} out of range for {n} segments")
            seg = int(target)
        elif isinstance(target, tuple) and all(isinstance(k, (int, np.integer)) for k in target):
            seg = np.asarray(target, dtype=int)  # segment indices (from a Network's ("name", [k, ...]))
            if seg.size and (seg.min() < -n or seg.max() >= n):
                raise ValueError(f"stimulus target={target!r} out of range for {n} segments")
        else:
            raise ValueError(
                f"stimulus target={target!r}: expected a location (section, x), segment "
                "indices or None"
            )
        seg = np.atleast_1d(np.asarray(seg)) % n
        return sum_into(broadcast_current(i, seg.shape, target), seg, n)

    def _nodes_of(self, locations):
        """Where currents into ``locations`` (a sequence of :class:`Location`) go:
        ``(segments, owner, share)``, each entry a segment receiving share ``share`` of
        location ``owner``'s current. Inside a section, the segment containing ``x``. An
        end where children join is NEURON's zero-area node: holding no charge, it
        passes a current on at once to its neighbours (the section's end segment and
        the children's first segments) in proportion to the conductances of the half
        segments that join them; an end without children passes it all to its end
        segment. All locations at once, so that a stimulus at every section of a large
        cell is one gather and one sum in the step, not one each (a 300-section cell:
        28 s to compile)."""
        locate = Cell.locator(self)
        lay, n = _layout(self.nsegs, self.parents), self.n_segments
        segs, owner, halves, at_node = [], [], [], []
        for k, loc in enumerate(locations):
            try:
                s, x, end = locate(loc.section, loc.x)
            except ValueError as e:
                raise ValueError(f"stimulus target={loc!r}: {e}") from None
            node = _end_node(lay, n, s, x, end)
            if node is None:
                segs.append(end)
                owner.append(k)
                continue
            node_segs, node_halves = node
            at_node += range(len(segs), len(segs) + len(node_segs))
            segs += node_segs
            owner += [k] * len(node_segs)
            halves += node_halves
        segs, owner = np.asarray(segs), np.asarray(owner)
        dtype = jnp.result_type(float)
        if not halves:
            return segs, owner, jnp.ones(len(segs), dtype)
        g = 1.0 / Cell._half_resistance(self)[np.asarray(halves)]
        node_owner = owner[at_node]
        share = g / sum_into(g, node_owner, len(locations))[node_owner]
        # Shares in entry order: 1 inside sections, the node's shares at its entries.
        pick = np.zeros(len(segs), dtype=int)
        pick[at_node] = 1 + np.arange(len(at_node))
        return segs, owner, take(jnp.concatenate([jnp.ones((1,), dtype), share.astype(dtype)]), pick)

    def _node_neighbours(self, section, x):
        """``(segments, conductances)`` around location ``(section, x)``: at a section
        end (NEURON's zero-area node there), the end segment and the first segments of
        the children joined there, with the conductances (µS) of the half segments
        joining them to the node; inside a section, the segment containing ``x`` and
        ``None``."""
        s, x, end = self._located(section, x)
        node = _end_node(self._layout(), self.n_segments, s, x, end)
        if node is None:
            return np.array([end]), None
        segs, halves = node
        return np.array(segs), 1.0 / self._half_resistance()[np.array(halves)]

    def voltage_at(self, v, section, x, i_inj=0.0):
        """NEURON's ``sec(x).v`` (mV) from segment voltages ``v`` (mV, last axis the
        cell's segments, e.g. ``trace.v``). Inside a section: the segment containing
        ``x`` (``v[..., index(section, x)]``). At a section end (``x = 1``, a root's
        ``x = 0``): NEURON's zero-area node there, half a segment beyond the end
        segment's centre. No charge sits on it, so its voltage is the
        conductance-weighted mean of its neighbours' (the end segment and the first
        segments of the children joined there), ``(Σ g·v + i_inj) / Σ g``, with
        ``i_inj`` (nA) a current injected at that node (an ``IClamp`` at ``sec(1)``:
        NEURON's node voltage includes it; at an end where nothing joins and nothing
        is injected, the end segment's voltage). ``i_inj`` may be an array over the
        leading axes of ``v`` (a current per saved time: the step's current, which
        NEURON takes at the step's midpoint). With Crank–Nicolson and a current
        injected at a section end (a free end, or one where children join), NEURON's
        recorded ``sec(x).v`` there alternates from step to step about the
        neighbours' weighted mean, by up to the injected current's drop over the half
        segments (several mV for a thin section); this gives the mean it swings
        about."""
        segs, g = self._node_neighbours(section, x)
        i_inj = units.to_base(i_inj, "i_inj", units.nA)
        v = jnp.asarray(v)
        if v.ndim == 0 or v.shape[-1] != self.n_segments:
            raise ValueError(
                f"voltage_at: v expects segment voltages with last axis {self.n_segments} "
                f"(this cell's segments, e.g. trace.v), got shape {v.shape}"
            )
        if g is None:
            if not (units.is_concrete(i_inj) and np.all(np.asarray(i_inj) == 0)):
                raise ValueError(
                    f"voltage_at: i_inj is only used at a section end (NEURON's zero-area "
                    f"node); ({section!r}, {x}) is inside a segment, whose voltage already "
                    "includes what is injected there"
                )
            return v[..., int(segs[0])]
        i_inj = jnp.asarray(i_inj)
        try:
            fits = jnp.broadcast_shapes(i_inj.shape, v.shape[:-1]) == v.shape[:-1]
        except ValueError:
            fits = False
        if not fits:
            raise ValueError(
                f"voltage_at: i_inj expects the current (nA) injected at that node, a scalar or one "
                f"value per leading index of v (shape {v.shape[:-1]}), got shape {i_inj.shape}"
                + ("; trace.i_inj holds every segment's current: take the injected stimulus's "
                   "current at the saved times instead" if i_inj.ndim and i_inj.shape[-1] == self.n_segments else "")
            )
        return (v[..., segs] @ g + i_inj) / jnp.sum(g)

    def observables(self):
        names = ["v", "i_cap", "i_inj"]
        for ch, _ in self._channel_groups():
            names += membrane.channel_observables((ch,))
        return tuple(names)

    def observe(self, name, t, state, i_inj):
        if name == "v":
            return state.v
        if name == "i_inj":
            return jnp.broadcast_to(i_inj, self.shape)
        if name == "i_cap":
            # cm·dv/dt (mA/cm²): membrane, injected and axial currents together.
            dv = self.vector_field(t, state, i_inj).v
            return self._cm() * dv / membrane.MA_PER_UF_TO_MV_PER_MS
        if name in state.gates:
            # NaN where the gate's channel is not inserted: a state it does not have (0.0
            # there made a mean over the segments silently wrong).
            for ch, idx in self._channel_groups():
                if idx is not None and name in (membrane.gate_key(ch, g) for g in ch.gate_names):
                    present = np.zeros(self.n_segments, dtype=bool)
                    present[idx] = True
                    return jnp.where(present, state.gates[name], jnp.nan)
            return state.gates[name]
        for ch, idx in self._channel_groups():
            own = self._own_gates(ch, state.gates, idx)
            value = membrane.observe_channel(ch, name, self._take(state.v, idx), own)
            if value is not None:
                return self._put(jnp.broadcast_to(value, self._take(state.v, idx).shape), idx, self.n_segments)
        raise ValueError(f"unknown record name {name!r}; this model records {self.observables()}")

    # --- SWC --------------------------------------------------------------------------
    @classmethod
    def from_swc(cls, path, *, Ra=35.4, cm=1.0, channels=(), d_lambda=None, freq=100.0,
                 temperature=membrane.TEMPERATURE_NOT_GIVEN, nseg=None):
        """Read a morphology from an SWC file, ``nseg`` by NEURON's d_lambda rule (default
        0.1) or ``nseg`` per section; see :func:`jaxneuro.morphology.swc.cell_from_swc`."""
        from .swc import cell_from_swc

        return cell_from_swc(path, Ra=Ra, cm=cm, channels=channels, d_lambda=d_lambda, freq=freq,
                             temperature=temperature, nseg=nseg)


def _is_value(x) -> bool:
    """True for a number or an array whose values can be read now (not a tracer, nor a
    placeholder such as ``eqx.tree_at``'s)."""
    return isinstance(x, (jax.Array, np.ndarray, np.generic, int, float)) and units.is_concrete(x)


def _check_x(x, name) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name}: x expects a number in [0, 1], got {x!r}")
    x = float(x)
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"{name}: x must lie in [0, 1], got {x}")
    return x


def _ambiguous_target(target) -> str:
    """Why a bare integer or a pair of integers is refused as a stimulus target on a
    cable or cell: each reads as a location (``x = 1``, ``(section, 1)``) and as
    segment indices."""
    if isinstance(target, IndexPair):
        shown, x = tuple(target), target[1]
        what, location, indices = f"(section {target[0]}, x = {x})", f"({target[0]}, {float(x)})", list(target)
    else:
        shown, x = int(target), int(target)
        what, location, indices = f"x = {x}", f"{float(x)} (or (section, {float(x)}))", [x]
    if x not in (0, 1):  # no location has such an x: only segment indices are meant
        return (f"stimulus target={shown!r} on a cable or cell: for segment indices write a list, "
                f"target={indices} (a location's x lies in [0, 1])")
    return (f"stimulus target={shown!r} is ambiguous on a cable or cell: for the location {what} write x "
            f"as a float, target={location}; for segment indices write a list, target={indices}")


_geometry_compiled = eqx.filter_jit(Cell._geometry)


def _capacitance_of(cm, area):
    """nF of each segment from ``cm`` (µF/cm²) and ``area`` (µm²)."""
    return cm * area * membrane.UF_PER_CM2_UM2_TO_NF


def _axial_conductance_of(half_resistance, own, partner):
    """µS between each node and its parent: ``1 / (r[own] + r[partner])`` of the halves'
    resistances (MΩ; index ``len(r)``: none, zero)."""
    r = jnp.concatenate([half_resistance, jnp.zeros((1,), half_resistance.dtype)])
    return 1.0 / (r[own] + r[partner])


# Each as one compiled program (operation by operation, every new shape compiled several).
_capacitance = jax.jit(_capacitance_of)
_axial_conductance = jax.jit(_axial_conductance_of)


@eqx.filter_jit
def _geometry_and_coupling(cell, cm, own, partner):
    """``(SegmentGeometry, axial conductances µS, capacitances nF)`` of ``cell``, with
    the segments' ``cm`` (µF/cm²), as one compiled program."""
    geometry = cell._geometry()
    return (geometry, _axial_conductance_of(geometry.half_resistance, own, partner),
            _capacitance_of(cm, geometry.area))
