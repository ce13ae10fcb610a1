"""An unbranched cable: NEURON's section with ``nseg`` segments."""

from __future__ import annotations

import equinox as eqx
import jax
import numpy as np

from .. import units
from ..channels.base import AbstractChannel
from ..model import AbstractModel, cached_per_model
from . import geometry, membrane


class Cable(AbstractModel):
    """An unbranched cable (one NEURON section) of ``nseg`` segments.

    ``length`` and ``diam`` in µm, axial resistivity ``Ra`` in Ω·cm (default 35.4,
    NEURON's), specific capacitance ``cm`` in µF/cm² (default 1), ``nseg`` segments
    (static, ≥ 1; segment ``i`` is centred at ``x = (i + 0.5)/nseg``, as in NEURON),
    ``channels`` inserted everywhere, ``temperature`` in °C (default 6.3). ``diam``,
    ``Ra`` and ``cm`` may be arrays of length ``nseg`` (one value per segment), and each
    channel parameter may carry a leading ``nseg`` axis. ``name`` (static) names the
    section inside a :class:`~jaxneuro.Cell`.

    Each segment is an isopotential cylinder of length ``length/nseg`` (membrane area
    π·diam·length/nseg); neighbouring segment centres are joined by the axial
    resistance of the two half segments, ``Ra·(L/2n)/(π r₁²) + Ra·(L/2n)/(π r₂²)``, as
    in NEURON; both ends are sealed.

    **3-D points** instead of ``diam``: ``arc3d`` (static, the points' path positions
    along the section, µm, non-decreasing; NEURON's ``arc3d``) and ``diam3d`` (their
    diameters, µm; NEURON's ``diam3d``). The section is then a chain of frusta, its
    ``length`` the path length unless given: another ``length`` stretches the points
    along the path by ``length/path length`` (diameters kept), as setting ``L`` of a
    NEURON section with 3-D points does, so ``length`` stays a parameter (fit it, or
    change it with ``eqx.tree_at``). Each segment's membrane area and
    the axial resistances of its two halves are integrated over the frusta as NEURON
    does (:mod:`jaxneuro.morphology.geometry`); ``diam`` stays None and
    :attr:`segment_diameters` gives the segments' mean diameters (NEURON's
    ``seg.diam``). :func:`~jaxneuro.Cell.from_swc` builds its sections this way.

    Simulated alone it is a one-section :class:`~jaxneuro.Cell` (its dynamics are the
    cell's): ``trace.v`` has shape ``(T, nseg)``. Stimuli target a location ``x`` in
    [0, 1] (``StepCurrent(..., target=0.5)`` or ``target=(0, 0.5)``), delivered to the
    segment containing ``x``; ``x = 0`` and ``x = 1`` map to the end segments (NEURON
    puts them on its zero-area end nodes, which hold no state here).
    ``cable.index(x)`` gives the segment index of ``x`` for reading ``trace.v[:, i]``.
    """

    length: object = units.param(units.um, default=None, check="positive")
    diam: object = units.param(units.um, default=None, check="positive")
    Ra: object = units.param(units.ohm_cm, default=35.4, check="positive")
    cm: object = units.param(units.uF_per_cm2, default=1.0, check="positive")
    nseg: int = eqx.field(default=1, static=True)
    channels: tuple[AbstractChannel, ...] = ()
    temperature: object = units.param(units.celsius, default=membrane.TEMPERATURE_NOT_GIVEN)
    diam3d: object = units.param(units.um, default=None, check="positive")
    # (Not printed: a reconstructed section has thousands of points; diam3d shows their count.)
    arc3d: tuple | None = eqx.field(default=None, static=True, kw_only=True, repr=False)
    name: str | None = eqx.field(default=None, static=True, kw_only=True)

    def __post_init__(self):
        if isinstance(self.nseg, bool) or not isinstance(self.nseg, (int, np.integer)) or self.nseg < 1:
            raise ValueError(f"Cable.nseg expects an integer >= 1, got {self.nseg!r}")
        self.nseg = int(self.nseg)
        if self.name is not None and not isinstance(self.name, str):
            raise ValueError(f"Cable.name expects a string, got {self.name!r}")
        self.channels = membrane.check_channels("Cable", self.channels)
        if (self.arc3d is None) != (self.diam3d is None):
            raise ValueError("Cable: 3-D points need both arc3d (path positions, µm) and diam3d (diameters, µm)")
        if self.arc3d is not None:
            if self.diam is not None:
                raise ValueError(
                    "Cable.diam: a cable with 3-D points takes its diameters from diam3d; give diam or diam3d, not both"
                )
            self.diam3d = units.as_quantity(self.diam3d)  # a list of quantities: one array
            self.arc3d = geometry.check_3d(units.to_static(self.arc3d, "arc3d", units.um),
                                           np.shape(getattr(self.diam3d, "mantissa", self.diam3d)), "Cable")
            path_length = self.arc3d[-1] - self.arc3d[0]
            if self.length is None:
                self.length = path_length
        elif self.length is None or self.diam is None:
            raise ValueError(
                "Cable expects length and diam (µm), or 3-D points: arc3d and diam3d (µm); "
                f"got length={self.length!r}, diam={self.diam!r}"
            )
        temperature_given = membrane.temperature_given(self.temperature)
        super().__post_init__()
        self.check_shapes()
        if temperature_given:
            membrane.warn_own_temperatures("Cable", self.channels, self.temperature)

    def check_shapes(self):
        """ValueError naming a parameter whose shape does not fit this cable, as the
        constructor checks: ``length`` and ``temperature`` scalars; ``diam``, ``Ra``,
        ``cm`` and every channel parameter a scalar or one value per segment (shape
        ``(nseg,)``; a ``(1,)`` array would broadcast over the segments silently);
        ``diam3d`` one diameter per 3-D point. :func:`jaxneuro.simulate` calls it for a
        cable edited after it was made (``eqx.tree_at``), alone or as a section of a
        :class:`~jaxneuro.Cell` (see :meth:`AbstractModel.check_shapes`)."""
        for field in ("length", "temperature"):
            if np.ndim(getattr(self, field)) != 0:
                raise ValueError(f"Cable.{field} expects a scalar, got shape {np.shape(getattr(self, field))}")
        for field in ("diam", "Ra", "cm"):
            if getattr(self, field) is None:
                continue
            shape = np.shape(getattr(self, field))
            if shape not in ((), (self.nseg,)):
                raise ValueError(
                    f"Cable.{field} expects a scalar or one value per segment (shape "
                    f"({self.nseg},)), got shape {shape}"
                )
        if self.arc3d is not None and np.shape(self.diam3d) != (len(self.arc3d),):
            # (the constructor's check_3d, which also validates arc3d, static and unchanged since)
            geometry.check_3d(self.arc3d, np.shape(self.diam3d), "Cable")
        for ch in self.channels:
            for leaf in jax.tree_util.tree_leaves(ch):
                if np.shape(leaf) not in ((), (self.nseg,)):
                    # The path only for the message: formatting it for every leaf costs.
                    path = next(p for p, x in jax.tree_util.tree_leaves_with_path(ch) if x is leaf)
                    raise ValueError(
                        f"Cable.channels: parameter {ch.name}{jax.tree_util.keystr(path)} "
                        f"expects a scalar or one value per segment (shape ({self.nseg},)), "
                        f"got shape {np.shape(leaf)}"
                    )

    @property
    def n_segments(self) -> int:
        return self.nseg

    def as_cell(self):
        """This cable as a one-section :class:`~jaxneuro.Cell`."""
        from .cell import Cell

        return Cell(sections=(self,))

    @cached_per_model
    def precomputed(self):
        """This cable as a one-section :class:`~jaxneuro.Cell` with its geometry computed
        once (see :meth:`AbstractModel.precomputed`): the same dynamics."""
        return self.as_cell().precomputed()

    # --- locations ------------------------------------------------------------------
    @property
    def centres(self):
        """Segment centres ``x = (i + 0.5)/nseg``."""
        return (np.arange(self.nseg) + 0.5) / self.nseg

    def segment_labels(self) -> tuple[str, ...]:
        """``"name(x)"`` for every segment (column of ``trace.v``) at its centre, or
        ``"x=0.125"`` for an unnamed cable."""
        if self.name is None:
            return tuple(f"x={x:.4g}" for x in self.centres)
        return tuple(f"{self.name}({x:.4g})" for x in self.centres)

    def index(self, x) -> int:
        """Index of the segment containing ``x`` in [0, 1] (``trace.v[:, index]``)."""
        return self.as_cell().index(0, x)

    def voltage_at(self, v, x, i_inj=0.0):
        """NEURON's ``sec(x).v`` (mV) from segment voltages ``v`` (last axis the
        segments, e.g. ``trace.v``): the segment containing ``x``; at an end (x = 0 or
        1), NEURON's zero-area node there: the end segment's voltage plus the drop of
        ``i_inj`` (nA, a current injected at that end, e.g. an ``IClamp`` at
        ``sec(1)``) over the half segment; with nothing injected, the end segment's
        voltage. As :meth:`Cell.voltage_at`, which has the details."""
        return self.as_cell().voltage_at(v, 0, x, i_inj)

    # --- the model: a one-section cell -----------------------------------------------
    @property
    def shape(self):
        return (self.nseg,)

    @property
    def membrane_area(self):
        """Membrane area of each segment, µm²."""
        return geometry.segment_areas(self.length, self.diam, self.nseg, self.arc3d, self.diam3d)

    @property
    def segment_diameters(self):
        """Diameter of each segment, µm: ``diam``, or the mean over the 3-D points."""
        return geometry.segment_diameters(self.length, self.diam, self.nseg, self.arc3d, self.diam3d)

    def half_resistances(self):
        """Axial resistances (MΩ) of each segment's halves towards ``x = 0`` and
        ``x = 1``: two arrays of shape ``(nseg,)``."""
        return geometry.half_resistances(self.length, self.diam, self.Ra, self.nseg, self.arc3d, self.diam3d)

    def place_current(self, target, i):
        return self.as_cell().place_current(target, i)

    def voltage_coupling(self):
        return self.as_cell().voltage_coupling()

    def init_state(self, v0):
        return self.as_cell().init_state(v0)

    def vector_field(self, t, state, i_inj):
        return self.as_cell().vector_field(t, state, i_inj)

    def local_vector_field(self, t, state, i_inj):
        return self.as_cell().local_vector_field(t, state, i_inj)

    def gate_increments(self, v, gates, dt):
        return self.as_cell().gate_increments(v, gates, dt)

    def gate_groups(self):
        return self.as_cell().gate_groups()

    def observables(self):
        return self.as_cell().observables()

    def observe(self, name, t, state, i_inj):
        return self.as_cell().observe(name, t, state, i_inj)
