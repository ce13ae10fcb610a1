"""An unbranched cable: NEURON's section with ``nseg`` segments."""

from __future__ import annotations

import equinox as eqx
import jax
import numpy as np

from .. import units
from ..channels.base import AbstractChannel
from ..model import AbstractModel
from . import membrane


class Cable(AbstractModel):
    """An unbranched cylindrical cable (one NEURON section) of ``nseg`` segments.

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

    Simulated alone it is a one-section :class:`~jaxneuro.Cell` (its dynamics are the
    cell's): ``trace.v`` has shape ``(T, nseg)``. Stimuli target a location ``x`` in
    [0, 1] (``StepCurrent(..., target=0.5)`` or ``target=(0, 0.5)``), delivered to the
    segment containing ``x``; ``x = 0`` and ``x = 1`` map to the end segments (NEURON
    puts them on its zero-area end nodes, which hold no state here).
    ``cable.index(x)`` gives the segment index of ``x`` for reading ``trace.v[:, i]``.
    """

    length: object = units.param(units.um, check="positive")
    diam: object = units.param(units.um, check="positive")
    Ra: object = units.param(units.ohm_cm, default=35.4, check="positive")
    cm: object = units.param(units.uF_per_cm2, default=1.0, check="positive")
    nseg: int = eqx.field(default=1, static=True)
    channels: tuple[AbstractChannel, ...] = ()
    temperature: object = units.param(units.celsius, default=6.3)
    name: str | None = eqx.field(default=None, static=True, kw_only=True)

    def __post_init__(self):
        if isinstance(self.nseg, bool) or not isinstance(self.nseg, (int, np.integer)) or self.nseg < 1:
            raise ValueError(f"Cable.nseg expects an integer >= 1, got {self.nseg!r}")
        self.nseg = int(self.nseg)
        if self.name is not None and not isinstance(self.name, str):
            raise ValueError(f"Cable.name expects a string, got {self.name!r}")
        self.channels = membrane.check_channels("Cable", self.channels)
        super().__post_init__()
        for field in ("length", "temperature"):
            if np.ndim(getattr(self, field)) != 0:
                raise ValueError(f"Cable.{field} expects a scalar, got shape {np.shape(getattr(self, field))}")
        for field in ("diam", "Ra", "cm"):
            shape = np.shape(getattr(self, field))
            if shape not in ((), (self.nseg,)):
                raise ValueError(
                    f"Cable.{field} expects a scalar or one value per segment (shape "
                    f"({self.nseg},)), got shape {shape}"
                )
        for ch in self.channels:
            for path, leaf in jax.tree_util.tree_leaves_with_path(ch):
                if np.shape(leaf) not in ((), (self.nseg,)):
                    raise ValueError(
                        f"Cable.channels: parameter {ch.name}{jax.tree_util.keystr(path)} "
                        f"expects a scalar or one value per segment (shape ({self.nseg},)), "
                        f"got shape {np.shape(leaf)}"
                    )

    def as_cell(self):
        """This cable as a one-section :class:`~jaxneuro.Cell`."""
        from .cell import Cell

        return Cell(sections=(self,), temperature=self.temperature)

    # --- locations ------------------------------------------------------------------
    @property
    def centres(self):
        """Segment centres ``x = (i + 0.5)/nseg``."""
        return (np.arange(self.nseg) + 0.5) / self.nseg

    def index(self, x) -> int:
        """Index of the segment containing ``x`` in [0, 1] (``trace.v[:, index]``)."""
        return self.as_cell().index(0, x)

    # --- the model: a one-section cell -----------------------------------------------
    @property
    def shape(self):
        return (self.nseg,)

    @property
    def membrane_area(self):
        """Membrane area of each segment, µm²."""
        return self.as_cell().membrane_area

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

    def observables(self):
        return self.as_cell().observables()

    def observe(self, name, t, state, i_inj):
        return self.as_cell().observe(name, t, state, i_inj)
