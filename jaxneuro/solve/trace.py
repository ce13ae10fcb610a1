"""The result of a simulation: times and the recorded variables."""

from __future__ import annotations

import functools
import numbers
import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from .. import units
from .._repr import values_repr


class NoFinalState(eqx.Module):
    """The ``final_state`` of a trace cut from another (``at``, ``window``): it has none
    to continue from (a run's state is at its end, not at a cut), and ``simulate``
    refuses it as ``init`` rather than start from rest as with ``init=None``."""

    def __repr__(self):
        return "NoFinalState() (a cut trace; continue from the whole run's trace.final_state)"


class Trace(eqx.Module):
    """Recorded variables on a time grid.

    ``t``: times in ms, shape ``(T,)``. Each recorded variable is an attribute
    (``trace.v``, ``trace.i_pas``...) of shape ``(T,)`` for one compartment or
    ``(T, n)`` for a population; ``trace.values`` holds them all by name.
    ``trace.unit(name)`` is each one's unit, as the model that recorded it gives it
    (:meth:`~jaxneuro.AbstractModel.unit_of`): mV for ``v``, nA for ``i_inj``, a
    channel current in mA/cm² on a compartment, cable or cell but nA on a point
    neuron, ``"1"`` for a gate; plots label their axes with it.

    Spiking models also give ``spikes``: spike times in ms, shape ``(capacity,)`` for
    one neuron or ``(n, capacity)`` for a population, padded with ``inf``; and
    ``spike_count``: the number of spikes each neuron fired, which exceeds
    ``capacity`` when the buffer overflowed (see :attr:`overflowed`).

    A :class:`~jaxneuro.Network`'s trace holds one Trace per population in ``parts``:
    ``trace["a"]`` is population ``"a"``'s.

    ``trace.column_labels(name)`` (cables and cells): what each column of a recorded
    variable is, ``"section(x)"`` at the segment's centre (``"soma(0.5)"``), in column
    order, for every segment or for the places ``record={name: places}`` chose; plots
    use them as legends (``columns`` holds them as ``((name, labels), ...)``).
    """

    t: Array
    values: dict[str, Array]
    spikes: Array | None = None
    spike_count: Array | None = None
    parts: dict | None = None
    #: The model's whole state at ``t1`` (a :class:`~jaxneuro.State`); the run is
    #: continued with ``simulate(model, t2, init=trace)``, which starts it at ``t1``.
    #: :class:`NoFinalState` for traces cut from others (``at``, ``window``).
    final_state: object = None
    #: ``(t0, t1)`` in ms: the run's start and end (a window's ``start`` and ``stop``),
    #: the span ``spike_count`` counts over, except in a run continued from another
    #: (``init=``), whose spike buffers and counts carry on from it
    #: (``trace.window(*trace.span)`` has this run's spikes alone). None for ``at``'s
    #: traces.
    span: tuple | None = eqx.field(default=None, static=True)
    #: Whether ``spike_count`` counts exactly the spikes of ``span``: True for a run's
    #: own trace, False for a continued run's (``init=``: its counts carry on from the
    #: earlier run) and for traces cut by ``at`` or ``window``. A rate over the whole
    #: span takes the count (its value where a buffer overflowed, its ``surrogate=``
    #: derivative) only where this holds.
    counts_span: bool = eqx.field(default=False, static=True, kw_only=True)
    # (Not printed: one label per segment, thousands for a cell; trace.column_labels(name).)
    columns: tuple | None = eqx.field(default=None, static=True, repr=False)
    #: The recorded names in the order ``record=`` gave them (``values``, a dict, comes
    #: back from ``jit`` sorted); :attr:`names` and plots follow it.
    order: tuple | None = eqx.field(default=None, static=True)
    #: ``((name, unit), ...)``: each recorded variable's unit (see :meth:`unit`).
    units: tuple | None = eqx.field(default=None, static=True)

    # Small arrays (a trace cut by ``at``) print as their numbers, not ``f32[]``.
    __repr__ = values_repr

    def __getitem__(self, name) -> "Trace":
        parts = self.parts or {}
        if not isinstance(name, (str, numbers.Integral)):
            # A slice, tuple, list or array: positions or times, which a Trace is not
            # indexed by (and a slice is unhashable: a raw TypeError from the dict).
            by = (f"this Network's trace by population, among {tuple(parts)}" if parts
                  else "only a Network's trace has parts, by population")
            raise TypeError(
                f"trace[{_index_text(name)}]: a Trace is indexed by name ({by}), not by position; for a time "
                f"range use trace.window(start, stop) (ms); for samples index its arrays, e.g. "
                f"{self._sample_example(name)}"
            )
        if name not in parts:
            if not parts:
                hint = (f"; the recorded {name!r} is trace.{name}" if isinstance(name, str) and name in self.values
                        else "; a batch's member i (from jax.vmap) is jax.tree.map(lambda x: x[i], trace)"
                        if isinstance(name, numbers.Integral) and self.t.ndim > 1
                        else f"; for samples index its arrays, e.g. {self._sample_example(name)}"
                        if isinstance(name, numbers.Integral) else "")
                raise KeyError(f"trace[{name!r}]: only a Network's trace has parts by population name{hint}")
            raise KeyError(f"trace[{name!r}]: no population or recorded coupling {name!r}; the trace has {tuple(parts)}")
        return parts[name]

    def _sample_example(self, index) -> str:
        """``trace.v[index]`` (the first recorded name, else ``t``), as the samples
        ``index`` would be taken: after a batch's axes, from a Network's first part."""
        trace, prefix = self, "trace"
        if self.parts:
            first = next(iter(self.parts))
            trace, prefix = self.parts[first], f"trace[{first!r}]"
        name = trace.names[0] if trace.names else "t"
        batch = max(np.ndim(trace.t) - 1, 0)
        return f"{prefix}.{name}[{':, ' * batch}{_index_text(index)}]"

    def __contains__(self, name) -> bool:
        """Whether ``name`` is a recorded variable (``"v" in trace``) or, in a
        Network's trace, a part (``"exc" in trace``: a population or recorded coupling)."""
        return isinstance(name, str) and (name in self.values or name in (self.parts or {}))

    def __iter__(self):
        # Without this, Python would iterate by trace[0], trace[1]... (a KeyError).
        if self.parts:
            use = (f"its parts are trace.parts, each trace[population] with a population among "
                   f"{tuple(self.parts)}")
        else:
            use = (f"its recorded variables are trace.names, {self.names}: each "
                   "trace.<name> or trace.values[name]; the times are trace.t")
        raise TypeError(f"a Trace is not iterable: {use}")

    def _not_recorded(self, what: str, name) -> ValueError:
        if self.parts and not self.values:
            return ValueError(
                f"{what}: a Network's Trace records nothing of its own; use trace[population].{what}({name!r}) "
                f"with a population among {tuple(self.parts)}"
            )
        return ValueError(f"{what}: {name!r} is not recorded; this trace has {self.names}")

    def column_labels(self, name: str) -> tuple[str, ...] | None:
        """``"section(x)"`` for each column of the recorded ``name`` on a cable or cell
        (None for other models, whose columns are neurons by index)."""
        if name not in self.values:
            raise self._not_recorded("column_labels", name)
        return dict(self.columns or ()).get(name)

    def unit(self, name: str) -> str | None:
        """The unit of the recorded ``name`` (``"mV"``, ``"nA"``, ``"mA/cm²"``; ``"1"``
        for a dimensionless one), as the model that recorded it gives it; None where
        the trace was made without units."""
        if name not in self.values:
            raise self._not_recorded("unit", name)
        return dict(self.units or ()).get(name)

    @property
    def overflowed(self):
        """True (per neuron) where more spikes were fired than the buffer holds."""
        if self.spikes is None:
            return None
        return overflowed_counts(self.spike_count, self.spikes.shape[-1])

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        values = object.__getattribute__(self, "values")
        if name in values:
            return values[name]
        parts = object.__getattribute__(self, "parts")
        if parts:
            raise AttributeError(
                f"a Network's Trace has no {name!r} of its own; use trace[population].{name} "
                f"with a population among {tuple(parts)}"
            )
        raise AttributeError(
            f"Trace has no recorded variable {name!r}; it recorded {tuple(values)}. "
            "Pass record=(...) to simulate() to record more."
        )

    @property
    def names(self) -> tuple[str, ...]:
        if self.order is not None and set(self.order) == set(self.values):
            return tuple(self.order)
        return tuple(self.values)

    def __array__(self, *args, **kwargs):
        raise TypeError(
            f"a Trace holds several arrays ({', '.join(('t',) + self.names)}); convert one, e.g. "
            "np.asarray(trace.v)"
        )

    def at(self, t) -> "Trace":
        """The recorded variables linearly interpolated at time(s) ``t`` (ms, or a
        saiunit time). A time outside the recorded range is a ValueError; under ``jit``,
        where the times are not known before, an error when the program runs (JAX's
        runtime error, carrying the same message: not a ValueError). A batch of traces (from
        ``jax.vmap`` over ``simulate``: ``t`` of shape ``(batch..., T)``) gives each of
        them at ``t``. ``spikes`` and ``spike_count`` are those fired by ``t`` (by the
        latest of several times), as :meth:`window` cuts them: later spikes become
        ``inf``, and the count counts the rest (the whole run's where the buffer
        overflowed before ``t``, as :attr:`overflowed` then says)."""
        if self.t.ndim > 1:  # a batch of traces (jax.vmap over simulate): each at t
            return jax.vmap(lambda trace: trace.at(t))(self)
        t = jnp.asarray(units.to_base(t, "t", units.ms), dtype=self.t.dtype)
        if _is_tracer(t) or _is_tracer(self.t):
            # (Widened to rounding as window's bounds are: a continued float32 run's
            # last sample can lie an ulp short of its t1.)
            lo = self.t[0] - time_slack(self.t[0], self.t.dtype)
            hi = self.t[-1] + time_slack(self.t[-1], self.t.dtype)
            t = eqx.error_if(t, jnp.any((t < lo) | (t > hi) | jnp.isnan(t)),
                             "Trace.at: t must lie within the recorded range")
        else:  # checked on the host: eagerly, each jnp operation compiled a program
            times = np.asarray(self.t)
            first, last = float(times[0]), float(times[-1])
            lo, hi = first - time_slack(first, self.t.dtype), last + time_slack(last, self.t.dtype)
            tn = np.asarray(t)
            if np.any(tn < lo) or np.any(tn > hi) or np.any(np.isnan(tn)):
                raise ValueError(
                    f"Trace.at: t must lie within the recorded range [{first}, {last}] ms, got {tn}"
                )
        parts = None if self.parts is None else {k: p.at(t) for k, p in self.parts.items()}
        values, spikes, count = _values_at(t, self.t, self.values, self.spikes, self.spike_count, self.overflowed)
        return Trace(t=t, values=values, spikes=spikes, spike_count=count, parts=parts, columns=self.columns,
                     order=self.order, units=self.units, final_state=NoFinalState())

    def window(self, start, stop) -> "Trace":
        """The part of the trace with ``start <= t <= stop`` (ms, or saiunit times; to
        rounding, :func:`within`), spike times included: ``spikes`` keeps those in the window (first, padded
        with ``inf``) and ``spike_count`` counts them (a spike exactly at ``stop`` too,
        which :func:`~jaxneuro.firing_rate`, counting ``start <= t < stop``, leaves out); for a neuron whose buffer
        overflowed before the window's end, ``spike_count`` stays the whole run's (its
        spikes past the buffer are unknown), so :attr:`overflowed` still says so (a
        window ending before the buffer's last spike has all of its spikes). A batch of traces (from
        ``jax.vmap`` over ``simulate``) is windowed along its time axis; its traces
        must share one time grid."""
        start = units.to_base(start, "start", units.ms)
        stop = units.to_base(stop, "stop", units.ms)
        if not (units.is_concrete(start) and units.is_concrete(stop) and units.is_concrete(self.t)):
            raise ValueError("Trace.window: start, stop and the trace's times must be concrete (not traced under jit)")
        if not float(stop) >= float(start):
            raise ValueError(f"Trace.window: stop must be >= start (ms), got start={float(start)}, stop={float(stop)}")
        t = np.asarray(self.t)
        check_inside(self, start, stop, "Trace.window")
        batch = t.ndim - 1
        if batch and not np.all(t == t.reshape(-1, t.shape[-1])[0]):
            raise ValueError(
                f"Trace.window: this batch of traces (t of shape {t.shape}) has different time grids; "
                "window each trace on its own (index the batch first)"
            )
        mask = np.asarray(within(t.reshape(-1, t.shape[-1])[0], start, stop))
        # The samples in the window are consecutive (times ascend): one slice along the
        # time axis, which comes after the batch axes of jax.vmap (none for one run).
        kept = np.flatnonzero(mask)
        first = int(kept[0]) if kept.size else 0
        t_cut, values = _time_slice((self.t, self.values), first, int(kept.size), batch)
        parts = None if self.parts is None else {k: p.window(start, stop) for k, p in self.parts.items()}
        spikes, count = self._spikes_within(start, stop)
        return Trace(t=t_cut, values=values,
                     spikes=spikes, spike_count=count, parts=parts, span=(float(start), float(stop)),
                     columns=self.columns, order=self.order, units=self.units, final_state=NoFinalState())

    def _spikes_within(self, start, stop):
        """``(spikes, spike_count)`` of the spikes at ``start <= time <= stop`` (ms):
        the others ``inf``, the kept ones first, and counted (the whole run's count
        where the buffer overflowed before ``stop``: its later spikes are unknown)."""
        if self.spikes is None:
            return self.spikes, self.spike_count
        return _spikes_between(self.spikes, self.spike_count, self.overflowed, start, stop)

    def plot(self, *names, ax=None, **kwargs):
        """Plot recorded variables against time with matplotlib (``"spikes"``: a raster
        of the spike times); returns the axes. See :func:`jaxneuro.plot.plot_trace`."""
        from ..plot import plot_trace

        return plot_trace(self, *names, ax=ax, **kwargs)


#: How far (ms) a sample time may lie outside a window's bounds and still count as in
#: it: save times are ``t0 + k·save_every``, which rounding puts a hair off the decimal
#: times users write (0.1 + 0.025·8 = 0.30000000000000004).
TIME_TOLERANCE = 1e-9


def check_inside(trace, start, stop, where: str) -> None:
    """A ValueError naming ``where`` if the window ``[start, stop]`` (ms, concrete)
    reaches outside what ``trace`` covers: its ``span`` (the run), else its recorded
    times, to rounding (:func:`within`); nothing is known there, and a rate or count
    over it would be diluted."""
    if trace.span is not None:
        lo, hi, what = float(trace.span[0]), float(trace.span[1]), "the simulated span"
    else:
        t = np.asarray(trace.t)
        lo, hi, what = float(np.min(t)), float(np.max(t)), "the recorded times"
    first, last = float(np.min(np.asarray(start))), float(np.max(np.asarray(stop)))
    if not (bool(within(first, lo, hi)) and bool(within(last, lo, hi))):
        raise ValueError(
            f"{where}: the window [{first}, {last}] ms reaches outside {what}, [{lo}, {hi}] ms; "
            "give start and stop within it"
        )


def within(t, start, stop):
    """``start <= t <= stop`` for sample times ``t`` (ms), to rounding: the bounds are
    widened by :data:`TIME_TOLERANCE`, or by four units in the last place of the
    times' precision where that is more (float32 times far from 0). Concrete values
    are compared with NumPy (eagerly, each jnp operation compiled a program)."""
    if any(isinstance(x, jax.core.Tracer) for x in (t, start, stop)):
        t = jnp.asarray(t)
    else:
        t, start, stop = np.asarray(t), np.asarray(start), np.asarray(stop)
    return (t >= start - time_slack(start, t.dtype)) & (t <= stop + time_slack(stop, t.dtype))


def time_slack(bound, dtype):
    """How far (ms) a sample time may lie outside ``bound`` and still count as on it:
    :data:`TIME_TOLERANCE`, or four units in the last place of ``dtype`` at ``bound``
    where that is more (float32 times far from 0). A Python or NumPy number (a run's end, as
    ``simulate`` counts its steps) gives a Python float, also inside a ``jit``."""
    dtype = dtype if jnp.issubdtype(dtype, jnp.floating) else jnp.result_type(float)
    ulps = 4.0 * float(jnp.finfo(dtype).eps)
    if isinstance(bound, (numbers.Real, np.ndarray)) and np.ndim(bound) == 0:
        return max(TIME_TOLERANCE, ulps * abs(float(bound)))
    if isinstance(bound, np.ndarray):
        return np.maximum(TIME_TOLERANCE, ulps * np.abs(bound))
    return jnp.maximum(TIME_TOLERANCE, ulps * jnp.abs(bound))


def _index_text(index) -> str:
    """``index`` as it was written between brackets: ``1:3`` for a slice."""
    if isinstance(index, slice):
        text = ":".join("" if x is None else repr(x) for x in (index.start, index.stop))
        return text + ("" if index.step is None else f":{index.step!r}")
    if isinstance(index, tuple):
        return ", ".join(_index_text(x) for x in index) or "()"
    return "..." if index is Ellipsis else repr(index)


@functools.partial(jax.jit, static_argnames=("length", "axis"))
def _time_slice(tree, first, length: int, axis: int):
    """Every array of ``tree`` cut to ``length`` samples from ``first`` along ``axis``
    (the time axis): one program per shapes and length, whatever the window's start."""
    return jax.tree.map(lambda x: jax.lax.dynamic_slice_in_dim(x, first, length, axis), tree)


# One compiled program each (per shape), not an eager program per operation: at a new
# shape Trace.at compiled 24 programs, window 23 (tests/test_trace_api.py).
@jax.jit
def _spikes_between(spikes, count, overflowed, start, stop):
    """:meth:`Trace._spikes_within` of a trace with spike events."""
    inside = (spikes >= start) & (spikes <= stop)
    kept_spikes = jnp.sort(jnp.where(inside, spikes, jnp.inf), axis=-1)  # kept ones first, in order
    kept = jnp.sum(inside, axis=-1).astype(count.dtype)
    # A full buffer whose last kept spike comes at or after the window's end holds all
    # of the window's spikes (lost ones come after it): only where it ends inside the
    # window are some unknown.
    last = jnp.max(jnp.where(jnp.isfinite(spikes), spikes, -jnp.inf), axis=-1)
    return kept_spikes, jnp.where(overflowed & (last < stop), count, kept)


@jax.jit
def _values_at(t, times, values, spikes, count, overflowed):
    """:meth:`Trace.at`'s values (each linearly interpolated at ``t``), spikes and
    spike count (those fired by the latest of ``t``)."""
    def interp(x):
        if x.ndim == 1:
            return jnp.interp(t, times, x)
        # One interpolation mapped over the columns: the sample index is found once,
        # however many neurons.
        flat = x.reshape(x.shape[0], -1)
        cols = jax.vmap(lambda column: jnp.interp(t, times, column), in_axes=1, out_axes=-1)(flat)
        return cols.reshape(t.shape + x.shape[1:])

    if spikes is not None:
        spikes, count = _spikes_between(spikes, count, overflowed, -jnp.inf, jnp.max(t))
    return {k: interp(v) for k, v in values.items()}, spikes, count


def _is_tracer(x):
    return isinstance(x, jax.core.Tracer)


def spiking_units(model) -> str:
    """What a spike buffer's rows are, for messages: the segments of a cable or cell (a
    detector on it watches every segment), else neurons."""
    return "compartment(s)" if getattr(model, "n_segments", 1) > 1 else "neuron(s)"


def overflowed_counts(count, capacity: int):
    """Where a spike ``count`` (per neuron) exceeds a buffer of ``capacity`` spike
    times: the rule of :attr:`Trace.overflowed`."""
    return count > capacity


def overflowed_of(trace):
    """``trace.overflowed``, compared on the host where the counts are known (each
    operation of jax.numpy on a new shape is a program to compile); None without
    spikes."""
    if trace.spikes is None:
        return None
    if units.is_concrete(trace.spike_count):
        return overflowed_counts(np.asarray(trace.spike_count), trace.spikes.shape[-1])
    return trace.overflowed


def report_overflow(overflowed, message, *, stacklevel: int, at_run_time: bool) -> None:
    """A RuntimeWarning ``message(n)`` if ``n``, the number of neurons whose spike
    buffer overflowed (``overflowed``: a boolean per neuron), is not 0. Known values
    warn at once (``stacklevel`` as ``warnings.warn`` takes it, 1 being the caller of
    this function). Under ``jit``, ``grad`` or ``vmap`` the counts are known only when
    the program runs: with ``at_run_time`` the warning comes then, once per run (a
    vmapped batch: once, with the total), through ``jax.debug.callback``
    (asynchronously: ``jax.effects_barrier()`` waits for it). A program with a
    callback can only be lowered for the platform it runs on (not, say, for CUDA on a
    CPU), so this is kept for where an overflow changes results."""
    if units.is_concrete(overflowed):  # on the host: no program to compile for a count
        counts = np.sum(np.asarray(overflowed))[None]
    else:
        counts = jnp.sum(overflowed)[None]
    report_counts(counts, [message], stacklevel=stacklevel + 1, at_run_time=at_run_time)


def report_counts(counts, messages, *, stacklevel: int, at_run_time: bool) -> None:
    """A RuntimeWarning ``messages[i](n)`` for each count ``n = counts[i]`` that is
    not 0, as :func:`report_overflow` reports one: several counts of a traced run in
    one callback, not a callback each."""

    def warn(ns, level=stacklevel + 2):  # past warn and this function
        for n, message in zip(np.asarray(ns).reshape(-1), messages):
            if int(n):
                warnings.warn(message(int(n)), RuntimeWarning, stacklevel=level)

    if units.is_concrete(counts):
        warn(counts)
        return
    if not at_run_time:
        return

    # A batching rule of our own: debug.callback's would unroll one call per member.
    @jax.custom_batching.custom_vmap
    def report(ns):
        jax.debug.callback(warn, ns)
        return ns

    @report.def_vmap
    def _(axis_size, in_batched, ns):
        return report(jnp.sum(ns, axis=0)), False

    report(counts)
