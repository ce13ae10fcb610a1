"""Delta (voltage-jump) synapses: each presynaptic spike moves the postsynaptic voltage
by a fixed amount at once (Brunel 2000's ``J``, NEST's ``iaf_psc_delta`` and
``static_synapse`` weights in mV, Brian's ``on_pre="v += w"``).

A jump is a charge delivered in an instant, which no step of a current can carry
exactly: a current over the step depends on the step's length, and a pulse narrower
than the step is rounded into it. So the jump is applied to the voltage itself, at the
end of the step in which the spike arrives (NEST's rule: its arrivals lie on the grid,
and a spike in the step ``(t0, t1]`` is added to ``V`` at ``t1``), before the neurons
look for threshold crossings: a jump that lifts the voltage to threshold or above fires
the neuron at ``t1``, and it is then reset (the record shows the reset, as NEST's),
where NEST too spikes at the end of that step. The timing is therefore on the grid: an
arrival at ``t_a`` acts at the first step end at or after it (on average half a step
later; ``dt`` = 0.1 ms, NEST's and Brunel's, adds 0.05 ms to ``delay`` on average), and
the charge is exact: ``weight`` mV in full, whatever the step. An arrival within
rounding of a step's end counts as on it (:func:`grid_tolerance`), so a spike fired by
a jump (on the grid) with a delay of whole steps arrives exactly that many steps later,
as NEST's integer delays: a recurrent network with such delays reproduces a NumPy
implementation of NEST's ``iaf_psc_delta`` update spike for spike in float64
(``tests/test_delta_synapse.py``). A :class:`~jaxneuro.SpikeDetector` times a crossing
made by a jump at the jump, not before it.

A neuron held at reset (refractory) at the step's end loses the jumps that arrive in
that step, as NEST's ``iaf_psc_delta`` does by default (and as in the step where a
refractory period ends, whose voltage starts from the reset then): a clamped voltage
takes no input. Compartments of cables and cells take the jump in the compartment the
synapse targets, the charge ``weight · C`` spreading along the cable from there.

Arrivals are read from the presynaptic spike buffer with the same pointers as the
other synapses (:class:`~jaxneuro.coupling.synapse.AbstractSynapse`), so
``max_arrivals_per_step`` and the overflow and late-arrival warnings hold alike; with
``delay < dt`` an arrival from a spike of the same step acts at the end of the next
step (the spike is found in the step, after the jumps are applied).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .. import units
from .synapse import AbstractSynapse, _require

__all__ = ["DeltaSynapse", "grid_tolerance"]


class DeltaSynapse(AbstractSynapse):
    """Delta (voltage-jump) synapse: each spike arriving at ``t_a`` (its time plus
    ``delay``) raises the postsynaptic voltage by ``weight`` mV at once, at the end of
    the step containing ``t_a`` (see :mod:`jaxneuro.coupling.delta`); a negative
    ``weight`` inhibits. Brunel (2000)'s model is a LIF population with these synapses
    (``weight`` = ``J``, ``−g·J`` inhibitory, ``delay`` = ``D``).

    ``DeltaSynapse(pre, post, conn, weight, delay=0.0)``: ``weight`` mV (or a saiunit
    voltage; finite, any sign), ``delay`` ms (≥ 0), each a scalar or one value per
    connection. ``pre``, ``post``, ``conn`` and ``max_arrivals_per_step`` as for
    :class:`~jaxneuro.ExpSynapse`; ``delivery`` must be ``"exact"`` (NEURON's
    ``NetCon`` timing belongs to its synapse mechanisms, and NEURON has no voltage-jump
    synapse to match). ``weight`` is differentiable (a jump moves the voltage by
    exactly ``weight``); spike times and ``delay`` take no gradient, as for every
    synapse, and a spike fired by a jump lies at a step's end, so its time does not move
    with ``weight`` either.

    It records nothing of its own: its jumps show in the postsynaptic ``v``, and
    ``i_syn`` (a current) leaves them out. Converting: a jump ``J`` mV on a neuron of
    capacitance ``C`` nF is the charge ``J·C`` pC; a current-based synapse with a time
    constant far below the membrane's (:class:`~jaxneuro.ExpCurrentSynapse`, ``weight =
    J·C/tau``) approaches it, within a step.
    """

    _PARAMS = ("weight", "delay")
    _TIME_CONSTANTS = ()
    _AMPLITUDE = "weight"
    _OUTPUT = None
    #: Delta synapses change the voltage at the step's end instead of driving a current.
    jumps_voltage = True

    weight: object = units.param(units.mV, default=None)
    delay: object = units.param(units.ms, default=0.0, check="nonnegative")

    def __post_init__(self):
        _require(self, "weight", "the postsynaptic voltage's jump at each arrival in mV (positive excitatory, "
                                 "negative inhibitory; Brunel 2000's J), or a saiunit Quantity")
        if self.delivery != "exact":
            raise ValueError(
                f"DeltaSynapse.delivery expects 'exact' (the jump acts at the end of the step its spike arrives "
                f"in), got {self.delivery!r}: NEURON's NetCon timing belongs to its synapse mechanisms, and NEURON "
                "has no voltage-jump synapse to match"
            )
        self._check_params()

    def state_names(self):
        return ()

    def _propagate(self, ev, s):
        return {}

    def _kernels(self, s):
        return {}

    @property
    def record_name(self):
        """None: a delta synapse records nothing of its own (its jumps are in ``v``)."""
        return None

    @property
    def record_unit(self):
        return None

    def output(self, t, events, pre_spikes=None):
        raise TypeError(
            "DeltaSynapse has no conductance or current to record: its jumps act on the postsynaptic "
            "voltage at the steps' ends (record 'v')"
        )

    conductance = output

    def current(self, t, v, events, pre_spikes=None):
        """No current (nA): zeros like ``v``. The jumps are applied to the voltage
        (:meth:`voltage_jump`)."""
        return jnp.zeros_like(v)

    def advance(self, t0, t1, events, pre_spikes):
        """The state at ``t1`` from that at ``t0``: the arrivals up to ``t1`` taken
        up, those within rounding after it included (:func:`grid_tolerance`)."""
        return self._with_arrivals(events, pre_spikes, t1 + grid_tolerance(t0, t1), t1, None)

    def voltage_jump(self, t0, t1, before, after, pre_spikes, open_from):
        """The jump (mV) of every compartment of the flat voltage at the step's end
        ``t1``: ``weight`` for each arrival taken up from the state ``before`` to
        ``after`` (:meth:`advance`, from the ``pre`` population's spike buffer
        ``pre_spikes``) that comes later than its compartment's ``open_from`` (ms,
        flat: the end of a neuron's refractory period, -inf where input is never
        blocked), an arrival within rounding of that end counting as on it (lost)."""
        arrival = self._arrival_reader(before, pre_spikes)
        taken = jax.lax.stop_gradient(after["next"] - before["next"])
        blocked_until = open_from[self.post_index] + grid_tolerance(t0, t1)
        # Per connection, the arrivals taken up that come after its post's blocked
        # time: each slot's arrival per row (-inf where not taken), read once per
        # connection, and one scatter of the weighted counts.
        counts = jnp.zeros(self.post_index.shape, dtype=open_from.dtype)
        for i in range(self.max_arrivals_per_step):
            t_arr = jnp.where(i < taken, arrival(i), -jnp.inf)
            if self._per_neuron():
                t_arr = t_arr[self.pre_local]
            counts = counts + (t_arr > blocked_until)
        jumps = self.weight * counts
        return jnp.zeros(open_from.shape, dtype=jumps.dtype).at[self.post_index].add(jumps)


#: Arrivals within this many units of rounding (of the time's float type, relative to
#: the time) after a step's end count as on it.
GRID_TOLERANCE_ULPS = 8


def grid_tolerance(t0, t1):
    """How far (ms) past the step's end ``t1`` an arrival still counts as on it: a few
    units of rounding of ``t1`` (at most a quarter of the step). A spike fired by a
    jump lies on the grid, and so, with a delay that is a whole number of steps, does
    its arrival, but ``t_spike + delay`` and the grid's ``t0 + k·dt`` are rounded
    apart: compared exactly, some of them fell a step late (5-30 % in a tester's runs,
    float64 too; tests/test_delta_synapse.py now asserts none does), and a run continued from another (whose grid is rounded from its own
    ``t0``) delivered them in other steps than the run in one part."""
    dtype = jnp.result_type(t1)
    ulps = GRID_TOLERANCE_ULPS * jnp.finfo(dtype).eps * jnp.maximum(jnp.abs(t1), 1.0)
    return jnp.minimum(ulps, 0.25 * (t1 - t0))
