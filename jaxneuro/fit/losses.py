"""Losses for fitting: plain, differentiable functions returning a scalar.

Available as ``jn.losses``. Each takes what a simulation gives (a :class:`Trace`, spike
times padded with ``inf``, a model) and a target, and returns a scalar; a fitting loss
is any function of the model, so these compose with each other and with user code::

    def loss(model):  # an HH compartment: spikes are threshold crossings of v
        trace = jn.simulate(model, 100.0, stimuli=[stim])
        return jn.losses.voltage(trace, target_v) + 0.1 * jn.losses.spike_times(
            jn.spike_times(trace, 0.0, capacity=8), target_spikes)

(point neurons keep their own spike times: ``jn.losses.spike_times(trace.spikes, ...)``.)

Padding entries (``inf`` spike times) never enter arithmetic, so gradients stay finite.
For populations (a leading neuron axis on spikes, a column per neuron on ``trace.v``)
each loss is the mean over neurons. Targets and times may be saiunit quantities (a
wrong dimension is a ValueError naming the argument). A target of a summary (a rate,
a resistance, spike times) is one value for all neurons (or compartments) or one per
neuron; :func:`voltage` takes a target shaped like the trace itself. A shape that would enlarge the prediction
is a ValueError, and so is a NaN in a target (in spike-time targets ``inf`` is padding,
NaN an error) — checked where the target holds values, not when it is traced under
``jit``.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import saiunit

from .. import analysis, units
from ..solve.trace import Trace, within

__all__ = [
    "relative_error", "input_resistance", "spike_times", "van_rossum", "spike_rate",
    "firing_rate", "voltage", "summary_statistics", "summary",
]

# A finite stand-in for missing spikes inside min/max (never reaches the output).
_FAR = 1e30


def _plain(value, name, unit):
    """``value`` with its saiunit quantities converted to ``unit`` (a wrong dimension is a
    ValueError naming ``name``); plain numbers are in ``unit`` already and pass unchanged,
    so results for them are exactly what they were."""
    if isinstance(value, saiunit.Quantity):
        x = units.to_base(value, name, unit)
        return float(x) if units.is_concrete(x) and jnp.ndim(x) == 0 else x
    if type(value) in (list, tuple):  # e.g. windows=[(0 * u.ms, 20 * u.ms), ...]
        return type(value)(_plain(v, name, unit) for v in value)
    return value


def _unit_of_variable(trace, variable, value, name):
    """The unit to read ``value`` (a target or scale for the recorded ``variable``) in:
    mV for ``v``; for another, the unit the trace recorded it in (``trace.unit``: mA/cm²
    for a compartment's channel current, nA for ``i_inj``, ``None`` for a gate), so a
    quantity of another dimension is a ValueError naming ``name``. A trace made without
    units leaves it to the quantity's own dimension (its base unit); one recorded in a
    unit jaxneuro does not know (a user's model) takes plain numbers only."""
    if variable == "v":
        return units.mV
    label = trace.unit(variable)
    if label is None:
        return units.base_unit_of(value, name)
    try:
        return units.unit_named(label)
    except KeyError:
        if isinstance(units.as_quantity(value), saiunit.Quantity):
            raise ValueError(f"parameter {name!r}: the trace records {variable!r} in {label}, which jaxneuro has no "
                             f"saiunit unit for; give a plain number in {label}") from None
        return None


def _check_shape(target_shape, shape, fn, name="target", trains=False):
    """ValueError (naming ``fn`` and ``name``) when a target of ``target_shape`` would
    enlarge a prediction of ``shape`` when broadcast: one target for all, or one per
    neuron (compartment), is fine. ``trains``: both end in an axis of spike times, which
    may differ in length."""
    t, p = (target_shape[:-1], shape[:-1]) if trains else (target_shape, shape)
    try:
        ok = np.prod(np.broadcast_shapes(t, p)) == np.prod(p)
    except ValueError:
        ok = False
    if not ok:
        one = "one spike train for all neurons or one per neuron" if trains else \
            "one target for all or one per neuron (or compartment)"
        raise ValueError(f"{fn}: {name} of shape {tuple(target_shape)} does not match the prediction's "
                         f"shape {tuple(shape)}; give {one}")


def _check_values(target, fn, name="target", spikes=False):
    """ValueError (naming ``fn`` and ``name``) when ``target`` holds NaN or infinities
    (``spikes``: ``inf`` pads a train and is fine). Give it the target as passed: under
    jit even ``jnp.asarray`` of a constant is a tracer, whose values cannot be checked."""
    if isinstance(target, saiunit.Quantity):
        target = target.mantissa  # NaN and inf whatever the unit
    if not units.is_concrete(target):
        return
    try:
        arr = np.asarray(target, dtype=float)
    except (TypeError, ValueError):  # not plain numbers (or traced inside): not checked here
        return
    bad = (np.isnan(arr) | (arr == -np.inf)) if spikes else ~np.isfinite(arr)
    if np.any(bad):
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        what = "NaN or -inf (inf pads a spike train and means no spike)" if spikes else "NaN or infinite"
        raise ValueError(f"{fn}: {name} holds {int(np.sum(bad))} value(s) that are {what}, the first at "
                         f"index {first}; remove or replace missing values")


def _relative_error(value, target, fn):
    _check_values(target, fn)
    value, target = jnp.asarray(value), jnp.asarray(target)
    _check_shape(target.shape, value.shape, fn)
    if units.is_concrete(target) and np.any(np.asarray(target) == 0):
        raise ValueError(
            f"{fn}: target must be non-zero (the error is relative to it); for a target of 0 "
            "use an absolute error, e.g. jnp.mean((value - target) ** 2)"
        )
    return jnp.mean(((value - target) / target) ** 2)


def relative_error(value, target):
    """Mean of ``((value - target) / target)²``; ``target`` must be non-zero and finite,
    one for all values or one per value. Either may be a quantity: both are then read
    in jaxneuro's base unit of ``value``'s dimension (of ``target``'s, when ``value`` is
    a plain number, which jaxneuro's analyses return in base units: MΩ, mV, Hz)."""
    if isinstance(value, saiunit.Quantity) or isinstance(target, saiunit.Quantity):
        _check_values(target, "relative_error")  # before to_base: under jit that is a tracer
        unit = units.base_unit_of(value if isinstance(value, saiunit.Quantity) else target, "relative_error: value")
        value = units.to_base(value, "relative_error: value", unit)
        target = units.to_base(target, "relative_error: target", unit)
    return _relative_error(value, target, "relative_error")


def input_resistance(source, target, stimulus=None, *, method=None):
    """Squared relative error of the input resistance (MΩ) against ``target`` (MΩ).

    ``source``: a trace with the :class:`~jaxneuro.StepCurrent` ``stimulus`` that made
    it (ΔV/I, see :func:`jaxneuro.input_resistance`), or a model (steady-state slope
    resistance; no simulation). Models of several compartments give one value per
    compartment, each compared with ``target`` (broadcast); to fit one location of a
    cell, index :func:`jaxneuro.input_resistance` there and use
    :func:`relative_error`."""
    _check_values(target, "input_resistance")  # before to_base: under jit that is a tracer
    target = units.to_base(target, "target", units.Mohm)
    rin = analysis.input_resistance(source, stimulus, method=method)
    return _relative_error(rin, target, "input_resistance")


def _as_spikes(x, name, arg="spikes"):
    return analysis.as_spike_times(x, name, arg)


def _pad_to(a, cap):
    extra = cap - a.shape[-1]
    if extra <= 0:
        return a
    pad = jnp.full(a.shape[:-1] + (extra,), jnp.inf, dtype=a.dtype)
    return jnp.concatenate([a, pad], axis=-1)


def _complete_trains(x, name, arg):
    """``x``'s spike times, refused where ``x`` is a Trace whose buffer overflowed: a
    comparison of trains, or a rate from intervals, would silently read only the first
    spikes (a LIF firing 11 into 5 slots, against its own train: a count penalty of 36
    ms² for 0; tests/test_fit_inputs.py), and under ``jit`` (``jn.fit``) ``simulate``
    cannot warn. At once when eager, when the program runs under ``jit``."""
    times = _as_spikes(x, name, arg)
    if not isinstance(x, Trace):
        return times
    fix = (f"trace.spikes keeps the first {times.shape[-1]} spikes of a neuron that fired more (trace.spike_count "
           "has the true counts); raise the model's spike_capacity (SpikeSummary/SpikeDetector: capacity)")
    over = x.overflowed
    if units.is_concrete(over):
        n = int(np.sum(np.asarray(over)))
        if n:
            raise ValueError(f"{name}: {arg}: the trace's spike buffer overflowed in {n} neuron(s): {fix}")
        return times
    return eqx.error_if(times, jnp.any(over), f"{name}: {arg}: the trace's spike buffer overflowed: {fix}")


def _pair(spikes, target, name):
    spikes = _complete_trains(spikes, name, "spikes")
    _check_values(target.spikes if isinstance(target, Trace) else target, name, spikes=True)
    target = jnp.asarray(_complete_trains(target, name, "target"), dtype=spikes.dtype)
    _check_shape(target.shape, spikes.shape, name, trains=True)
    cap = max(spikes.shape[-1], target.shape[-1])
    spikes, target = _pad_to(spikes, cap), _pad_to(target, cap)
    try:
        shape = jnp.broadcast_shapes(spikes.shape, target.shape)
    except ValueError:
        raise ValueError(
            f"{name}: spike arrays of shapes {spikes.shape} and {target.shape} do not match "
            "(one train per neuron, padded with inf)"
        ) from None
    return jnp.broadcast_to(spikes, shape), jnp.broadcast_to(target, shape)


def spike_times(spikes, target, *, count_weight=1.0):
    """Distance between spike trains of possibly different lengths, in ms².

    ``spikes``, ``target``: spike times in ms padded with ``inf`` (as
    :func:`jaxneuro.spike_times` or ``trace.spikes`` give; a Trace with spike events
    also works), ``(capacity,)`` or ``(n, capacity)``. Per neuron: the mean squared
    difference of the first ``k`` spikes, ``k`` the smaller of the two counts, plus
    ``count_weight · (count difference)²`` (ms², or a quantity of time², e.g.
    ``1 * u.ms**2``; the count term has no gradient, it only ranks fits with a wrong
    number of spikes). Mean over neurons.
    """
    given = count_weight
    if isinstance(units.as_quantity(count_weight), saiunit.Quantity):
        count_weight = units.to_base(count_weight, "spike_times: count_weight", units.ms2)
    if units.is_concrete(count_weight):
        try:
            ok = np.all(np.asarray(count_weight, dtype=float) >= 0)
        except (TypeError, ValueError):
            ok = False
        if isinstance(count_weight, (bool, np.bool_)) or not ok:
            raise ValueError(f"spike_times: count_weight expects a number >= 0 (ms² per spike² of count "
                             f"difference), got {given!r}")
    a, b = _pair(spikes, target, "spike_times")
    na = jnp.sum(jnp.isfinite(a), axis=-1)
    nb = jnp.sum(jnp.isfinite(b), axis=-1)
    k = jnp.minimum(na, nb)
    common = jnp.arange(a.shape[-1]) < k[..., None]
    d = jnp.where(common, a, 0.0) - jnp.where(common, b, 0.0)
    mse = jnp.sum(d**2, axis=-1) / jnp.maximum(k, 1)
    return _nan_where_nan(jnp.mean(mse + count_weight * (na - nb).astype(a.dtype) ** 2), a, b)


def _nan_where_nan(loss, a, b):
    """``loss``, or NaN if a spike time of ``a`` or ``b`` is NaN: under ``jit`` a NaN
    cannot be refused, and it would otherwise read as "no spike" (a finite loss with a
    zero gradient, which a fit cannot tell from a converged one)."""
    return jnp.where(jnp.any(jnp.isnan(a)) | jnp.any(jnp.isnan(b)), jnp.nan, loss)


def _kernel_sum(a, b, tau):
    """``Σᵢⱼ e^{-|aᵢ-bⱼ|/τ}`` per neuron; ``tau``: one for all or one per neuron (its
    axes are the neuron axes, so it gets the two spike axes appended)."""
    va, vb = jnp.isfinite(a), jnp.isfinite(b)
    d = jnp.where(va, a, 0.0)[..., :, None] - jnp.where(vb, b, 0.0)[..., None, :]
    both = va[..., :, None] & vb[..., None, :]
    return jnp.sum(jnp.where(both, jnp.exp(-jnp.abs(d) / tau[..., None, None]), 0.0), axis=(-2, -1))


def _check_per_neuron(x, per_neuron, fn, name, what):
    """ValueError (naming ``fn`` and ``name``) unless ``x`` is one value for all neurons
    or one per neuron (shape ``per_neuron``, the spike array's shape without its spike
    axis): a larger shape would be aligned with the spike axis, or enlarge the result."""
    try:
        ok = np.prod(np.broadcast_shapes(np.shape(x), tuple(per_neuron))) == np.prod(per_neuron)
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"{fn}: {name} expects {what} for all neurons or one per neuron (shape "
                         f"{tuple(per_neuron)}), got shape {tuple(np.shape(x))}; give a scalar or one value per "
                         "spike train")


def van_rossum(spikes, target, tau):
    """Squared van Rossum distance (dimensionless; one unmatched spike adds 1/2).

    Each train is filtered with ``exp(-t/tau)`` (``tau`` in ms) and
    ``D² = (1/tau) ∫ (f - g)² dt``, computed in closed form from the spike times:
    ``½ (Σᵢⱼ e^{-|tᵢ-tⱼ|/τ} + Σᵢⱼ e^{-|sᵢ-sⱼ|/τ} - 2 Σᵢⱼ e^{-|tᵢ-sⱼ|/τ})``. Trains may
    differ in count; padding (``inf``) is masked before any arithmetic. ``tau``: one for
    all neurons or one per neuron (shape ``spikes.shape[:-1]``). Mean over neurons.
    """
    tau = units.to_base(tau, "tau", units.ms)
    if units.is_concrete(tau) and not np.all((np.asarray(tau) > 0) & np.isfinite(np.asarray(tau))):
        raise ValueError(f"van_rossum: tau expects a positive, finite time constant in ms, got {tau}")
    a, b = _pair(spikes, target, "van_rossum")
    tau = jnp.asarray(tau)
    _check_per_neuron(tau, a.shape[:-1], "van_rossum", "tau", "one time constant (ms)")
    d2 = 0.5 * (_kernel_sum(a, a, tau) + _kernel_sum(b, b, tau) - 2.0 * _kernel_sum(a, b, tau))
    return _nan_where_nan(jnp.mean(d2), a, b)


def _check_window(start, stop, fn):
    """ValueError (naming ``fn``) unless ``stop > start`` (ms) everywhere, for times
    that hold values (traced ones cannot be checked: a rate over a reversed window is
    then negative or NaN). Shapes that do not broadcast are left to the shape check."""
    if not (units.is_concrete(start) and units.is_concrete(stop)):
        return
    try:
        ok = bool(np.all(np.asarray(stop, dtype=float) > np.asarray(start, dtype=float)))
    except (TypeError, ValueError):
        return
    if not ok:
        show = lambda x: repr(x) if isinstance(x, (int, float)) else np.array2string(np.asarray(x), precision=6)
        raise ValueError(f"{fn} expects stop > start (ms), got start={show(start)}, stop={show(stop)}; give a "
                         "window [start, stop) that ends after it begins")


def spike_rate(spikes, start, stop):
    """Firing rate in Hz from the spikes with ``start <= t < stop`` (ms; one for all
    neurons or one per neuron, with ``stop > start``), smooth in the spike times:
    ``(n - 1) / (t_last - t_first)`` (the inverse mean inter-spike interval) where
    ``n >= 2``, else ``n / (stop - start)`` (no gradient). Shape: one rate per neuron."""
    return _spike_rate(spikes, start, stop, "spike_rate")


def _spike_rate(spikes, start, stop, fn):
    start, stop = _plain(start, "start", units.ms), _plain(stop, "stop", units.ms)
    _check_window(start, stop, fn)
    s = _complete_trains(spikes, fn, "spikes")
    start, stop = jnp.asarray(start), jnp.asarray(stop)
    for name, x in (("start", start), ("stop", stop)):
        _check_per_neuron(x, s.shape[:-1], fn, name, "one time (ms)")
    return _rate_of_intervals(s, start, stop)


@jax.jit
def _rate_of_intervals(s, start, stop):
    """:func:`spike_rate`'s arithmetic as one compiled program (op by op, each new
    shape compiled a dozen small ones)."""
    # start/stop are per neuron: their axes are the neuron axes, not the spike axis.
    inside = jnp.isfinite(s) & (s >= start[..., None]) & (s < stop[..., None])
    n = jnp.sum(inside, axis=-1)
    first = jnp.min(jnp.where(inside, s, _FAR), axis=-1)
    last = jnp.max(jnp.where(inside, s, -_FAR), axis=-1)
    several = n >= 2
    span = jnp.where(several, last - first, 1.0)
    isi_rate = 1000.0 * (n - 1) / span
    count_rate = 1000.0 * n / (stop - start)
    return jnp.where(several, isi_rate, count_rate)


def firing_rate(source, target, start=None, stop=None, *, method="isi"):
    """Squared relative error of firing rates (Hz) against ``target`` (Hz, one per
    neuron or one for all).

    ``source``: a Trace with spike events (``start``/``stop`` in ms, ``stop > start``,
    one for all neurons or one per neuron, default to its time range), or spike times
    padded with ``inf`` (then give ``start`` and ``stop``). ``method``:

    - ``"isi"`` (default): :func:`spike_rate` in ``[start, stop)``, differentiable
      through the spike times, which a spiking neuron's in-step crossings (and the
      interpolated crossings of :func:`jaxneuro.spike_times`) make differentiable; a
      neuron needs two spikes in the window for a gradient.
    - ``"count"``: spikes per unit time. From a Trace this is ``trace.spike_count``
      over the whole run (``start``/``stop`` must then be left out), which a neuron
      built with ``surrogate=jn.surrogate.Sigmoid(...)`` makes differentiable by its
      surrogate gradient (and which stays exact in value); without a surrogate, or
      from spike times, the gradient is zero.
    """
    _check_values(target, "firing_rate")  # before to_base: under jit that is a tracer
    target = units.to_base(target, "target", units.Hz)
    start, stop = _plain(start, "start", units.ms), _plain(stop, "stop", units.ms)
    if start is not None and stop is not None:
        _check_window(start, stop, "firing_rate")
    if method not in ("isi", "count"):
        raise ValueError(f"firing_rate: method expects 'isi' or 'count', got {method!r}")
    if isinstance(source, Trace):
        if source.spikes is None:
            raise ValueError(
                "firing_rate: this trace has no spike events; pass jn.spike_times(trace, threshold, "
                "capacity=k) with start and stop"
            )
        if method == "count":
            if not source.counts_span:
                raise ValueError(
                    "firing_rate(method='count') on a Trace uses trace.spike_count, which counts this run's "
                    "spikes only in a run's own trace: this one continues an earlier run (init=), whose counts "
                    "carry on from it, or was cut by window() or at(); use method='isi', or count over one "
                    "whole run"
                )
            lo, hi = source.span or (None, None)  # (is_whole_span is False without a span)
            if (start is not None or stop is not None) and not analysis.is_whole_span(
                    source, lo if start is None else start, hi if stop is None else stop):
                raise ValueError(
                    "firing_rate(method='count') on a Trace uses trace.spike_count over the whole "
                    f"run {source.span}; leave start and stop out (or pass trace.spikes to count in a window, "
                    "without the count's surrogate gradient, or use method='isi')"
                )
            # The whole run's count over the whole run: t1 - t0 (a window's span), not
            # its samples' (which need not reach its ends).
            duration = source.span[1] - source.span[0] if source.span is not None else source.t[-1] - source.t[0]
            return _relative_error(1000.0 * source.spike_count / duration, target, "firing_rate")
        start = source.t[0] if start is None else start
        stop = source.t[-1] if stop is None else stop
    elif start is None or stop is None:
        raise ValueError("firing_rate: give start and stop (ms) with spike times")
    if method == "isi":
        rate = _spike_rate(source, start, stop, "firing_rate")
    else:
        rate = analysis.firing_rate(_as_spikes(source, "firing_rate"), start, stop)
    return _relative_error(rate, target, "firing_rate")


def _window_mask(t, windows, name="windows"):
    if windows is None:
        return jnp.ones(t.shape, dtype=bool)
    windows = _plain(windows, name, units.ms)
    windows = [windows] if np.ndim(windows) == 1 else windows
    mask = jnp.zeros(t.shape, dtype=bool)
    for w in windows:
        if len(w) != 2 or not float(w[1]) > float(w[0]):
            raise ValueError(f"{name} expects (start, stop) pairs in ms with stop > start, got {w!r}")
        mask = mask | within(t, w[0], w[1])
    return mask


def _refuse_batch(trace: Trace, fn: str) -> None:
    """:func:`jaxneuro.analysis.refuse_batch` for the loss ``fn``: computed per member."""
    analysis.refuse_batch(trace, fn, "the loss reads one run's time axis",
                          f"compute it per member and reduce, e.g. jnp.mean(jax.vmap(lambda tr: jn.losses.{fn}(tr, "
                          "...))(trace)), or inside the vmapped function, with the simulation")


def voltage(trace: Trace, target, *, windows=None, variable="v"):
    """Mean squared difference (mV²; for another ``variable``, its unit squared) between
    a recorded variable and ``target``.

    ``target``: an array shaped like ``trace.v`` (same time grid; in mV for ``v``, in
    ``trace.unit(variable)`` for another, a quantity converted to it; finite
    everywhere: to leave samples out use ``windows``, not NaN), or a Trace (read at
    this trace's times by linear interpolation). ``windows``: ``(start, stop)`` in ms,
    or a list of them; only samples inside count (default: all).
    """
    if not isinstance(trace, Trace):
        raise ValueError(f"voltage expects a Trace, got {type(trace).__name__}")
    _refuse_batch(trace, "voltage")
    v = getattr(trace, variable)
    if isinstance(target, Trace):
        target = getattr(target.at(trace.t), variable)
    _check_values(target, "voltage")
    target = jnp.asarray(_plain(target, "target", _unit_of_variable(trace, variable, target, "target")), dtype=v.dtype)
    if target.shape != v.shape:
        raise ValueError(f"voltage: target shape {target.shape} does not match the trace's {variable} {v.shape}")
    mask = _window_mask(trace.t, windows).reshape((-1,) + (1,) * (v.ndim - 1))
    mask = jnp.broadcast_to(mask, v.shape)
    if units.is_concrete(mask) and not np.any(np.asarray(mask)):
        raise ValueError(f"voltage: no samples inside windows={windows!r}")
    d = jnp.where(mask, v - target, 0.0)
    return jnp.sum(d**2) / jnp.sum(mask)


def summary_statistics(trace: Trace, *, window=None, rest_window=None, threshold=None, variable="v",
                       capacity: int | None = None) -> dict:
    """Summary statistics of a recorded voltage, per compartment or neuron:

    ``mean_v``, ``std_v``, ``min_v``, ``max_v`` (mV, over ``window``: one ``(start,
    stop)`` pair in ms, default the whole trace; for several windows, compute the
    statistics per window); ``rest_v``: the mean over ``rest_window`` (``(start, stop)``
    or a list of them; default: the first sample);
    ``spike_count``: spikes in ``window`` (the trace's events, or upward crossings of
    ``threshold`` mV, default 0; the first ``capacity`` per neuron, as
    :func:`jaxneuro.spike_times` takes them; a count, so no gradient); ``rate``: :func:`spike_rate` (Hz)
    over ``window``.
    """
    _refuse_batch(trace, "summary_statistics")
    v = getattr(trace, variable)
    t = trace.t
    window = _plain(window, "window", units.ms)
    if window is not None and (np.ndim(window) != 1 or len(window) != 2):
        # A rate over several windows would take the gap between them for an interval.
        raise ValueError(f"summary_statistics: window expects one (start, stop) pair in ms, got {window!r}; for "
                         "several windows compute the statistics per window (voltage takes windows=[...])")
    mask = _window_mask(t, window, "window").reshape((-1,) + (1,) * (v.ndim - 1))
    n = jnp.sum(mask, axis=0)
    mean = jnp.sum(jnp.where(mask, v, 0.0), axis=0) / n
    var = jnp.sum(jnp.where(mask, (v - mean) ** 2, 0.0), axis=0) / n
    if rest_window is None:
        rest = v[0]
    else:
        rmask = _window_mask(t, rest_window, "rest_window").reshape(mask.shape)
        rest = jnp.sum(jnp.where(rmask, v, 0.0), axis=0) / jnp.sum(rmask, axis=0)
    spikes = analysis.spike_times(trace, threshold, capacity=capacity, variable=variable)
    start, stop = (t[0], t[-1] + 1e-9) if window is None else (window[0], window[1])
    inside = jnp.isfinite(spikes) & (spikes >= start) & (spikes < stop)
    return {
        "mean_v": mean,
        "std_v": jnp.sqrt(var + 1e-30),
        "min_v": jnp.min(jnp.where(mask, v, jnp.inf), axis=0),
        "max_v": jnp.max(jnp.where(mask, v, -jnp.inf), axis=0),
        "rest_v": rest,
        "spike_count": jnp.sum(inside, axis=-1),
        "rate": _spike_rate(spikes, start, stop, "summary_statistics"),
    }


def summary(trace: Trace, targets: dict, *, scales: dict | None = None, **kwargs):
    """``Σ ((stat - target) / scale)²`` over the statistics named in ``targets`` (see
    :func:`summary_statistics`, which gets ``kwargs``); ``scales`` default 1 in each
    statistic's unit (mV, spikes, Hz; for a ``variable`` other than ``v``, the unit
    the trace recorded it in, ``trace.unit(variable)``); targets and scales may be
    quantities, converted to it. Mean over compartments."""
    if not targets:
        raise ValueError("summary: targets is empty; give {statistic: target}, e.g. {'rate': 20.0}")
    stats = summary_statistics(trace, **kwargs)
    unknown = [k for k in targets if k not in stats]
    if unknown:
        raise ValueError(f"summary: unknown statistic(s) {unknown}; available: {sorted(stats)}")
    scales = scales or {}
    stray = [k for k in scales if k not in targets]  # a typo would leave its statistic unscaled
    if stray:
        raise ValueError(f"summary: scales names {stray}, not in targets; targets: {list(targets)}")
    total = 0.0
    variable = kwargs.get("variable", "v")
    stat_units = {"spike_count": None, "rate": units.Hz}
    for name, target in targets.items():
        value = stats[name].astype(jnp.result_type(float))
        _check_values(target, "summary", f"targets[{name!r}]")
        # A statistic of the voltage is in mV; of another recorded variable, in the unit
        # the trace recorded it in (mA/cm² for a compartment's channel current, nA for
        # i_inj): a quantity of another dimension would otherwise be read as a number.
        fixed = name in stat_units or variable == "v" or trace.unit(variable) is not None
        unit = stat_units[name] if name in stat_units else _unit_of_variable(trace, variable, target, f"targets[{name!r}]")
        target = jnp.asarray(_plain(target, f"targets[{name!r}]", unit))
        _check_shape(target.shape, value.shape, "summary", f"targets[{name!r}]")
        scale = scales.get(name, 1.0)
        if not fixed and unit is None:  # a trace without units and a plain target: the scale's own dimension
            unit = _unit_of_variable(trace, variable, scale, f"scales[{name!r}]")
        scale = _plain(scale, f"scales[{name!r}]", unit)
        total = total + jnp.mean(((value - target) / scale) ** 2)
    return total
