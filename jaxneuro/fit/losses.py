"""Losses for fitting: plain, differentiable functions returning a scalar.

Available as ``jn.losses``. Each takes what a simulation gives (a :class:`Trace`, spike
times padded with ``inf``, a model) and a target, and returns a scalar; a fitting loss
is any function of the model, so these compose with each other and with user code::

    def loss(model):
        trace = jn.simulate(model, 100.0, stimuli=[stim])
        return jn.losses.voltage(trace, target_v) + 0.1 * jn.losses.spike_times(
            jn.spike_times(trace, 0.0, capacity=8), target_spikes)

Padding entries (``inf`` spike times) never enter arithmetic, so gradients stay finite.
For populations (a leading neuron axis on spikes, a column per neuron on ``trace.v``)
each loss is the mean over neurons.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from .. import analysis, units
from ..solve.trace import Trace, within

__all__ = [
    "relative_error", "input_resistance", "spike_times", "van_rossum", "spike_rate",
    "firing_rate", "voltage", "summary_statistics", "summary",
]

# A finite stand-in for missing spikes inside min/max (never reaches the output).
_FAR = 1e30


def relative_error(value, target):
    """Mean of ``((value - target) / target)²``; ``target`` must be non-zero."""
    value, target = jnp.asarray(value), jnp.asarray(target)
    if units.is_concrete(target) and np.any(np.asarray(target) == 0):
        raise ValueError(
            "relative_error: target must be non-zero (the error is relative to it); for a target of 0 "
            "use an absolute error, e.g. jnp.mean((value - target) ** 2)"
        )
    return jnp.mean(((value - target) / target) ** 2)


def input_resistance(source, target, stimulus=None, *, method=None):
    """Squared relative error of the input resistance (MΩ) against ``target`` (MΩ).

    ``source``: a trace with the :class:`~jaxneuro.StepCurrent` ``stimulus`` that made
    it (ΔV/I, see :func:`jaxneuro.input_resistance`), or a model (steady-state slope
    resistance; no simulation). Models of several compartments give one value per
    compartment, each compared with ``target`` (broadcast); to fit one location of a
    cell, index :func:`jaxneuro.input_resistance` there and use
    :func:`relative_error`."""
    target = units.to_base(target, "target", units.Mohm)
    rin = analysis.input_resistance(source, stimulus, method=method)
    return relative_error(rin, target)


def _as_spikes(x, name):
    if isinstance(x, Trace):
        if x.spikes is None:
            raise ValueError(
                f"{name}: this trace has no spike events; pass jn.spike_times(trace, threshold, "
                "capacity=k) instead"
            )
        return x.spikes
    return jnp.asarray(x)


def _pad_to(a, cap):
    extra = cap - a.shape[-1]
    if extra <= 0:
        return a
    pad = jnp.full(a.shape[:-1] + (extra,), jnp.inf, dtype=a.dtype)
    return jnp.concatenate([a, pad], axis=-1)


def _pair(spikes, target, name):
    spikes = _as_spikes(spikes, name)
    target = jnp.asarray(_as_spikes(target, name), dtype=spikes.dtype)
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
    ``count_weight · (count difference)²`` (ms²; the count term has no gradient, it
    only ranks fits with a wrong number of spikes). Mean over neurons.
    """
    a, b = _pair(spikes, target, "spike_times")
    na = jnp.sum(jnp.isfinite(a), axis=-1)
    nb = jnp.sum(jnp.isfinite(b), axis=-1)
    k = jnp.minimum(na, nb)
    common = jnp.arange(a.shape[-1]) < k[..., None]
    d = jnp.where(common, a, 0.0) - jnp.where(common, b, 0.0)
    mse = jnp.sum(d**2, axis=-1) / jnp.maximum(k, 1)
    return jnp.mean(mse + count_weight * (na - nb).astype(a.dtype) ** 2)


def _kernel_sum(a, b, tau):
    va, vb = jnp.isfinite(a), jnp.isfinite(b)
    d = jnp.where(va, a, 0.0)[..., :, None] - jnp.where(vb, b, 0.0)[..., None, :]
    both = va[..., :, None] & vb[..., None, :]
    return jnp.sum(jnp.where(both, jnp.exp(-jnp.abs(d) / tau), 0.0), axis=(-2, -1))


def van_rossum(spikes, target, tau):
    """Squared van Rossum distance (dimensionless; one unmatched spike adds 1/2).

    Each train is filtered with ``exp(-t/tau)`` (``tau`` in ms) and
    ``D² = (1/tau) ∫ (f - g)² dt``, computed in closed form from the spike times:
    ``½ (Σᵢⱼ e^{-|tᵢ-tⱼ|/τ} + Σᵢⱼ e^{-|sᵢ-sⱼ|/τ} - 2 Σᵢⱼ e^{-|tᵢ-sⱼ|/τ})``. Trains may
    differ in count; padding (``inf``) is masked before any arithmetic. Mean over
    neurons.
    """
    tau = units.to_base(tau, "tau", units.ms)
    a, b = _pair(spikes, target, "van_rossum")
    d2 = 0.5 * (_kernel_sum(a, a, tau) + _kernel_sum(b, b, tau) - 2.0 * _kernel_sum(a, b, tau))
    return jnp.mean(d2)


def spike_rate(spikes, start, stop):
    """Firing rate in Hz from the spikes with ``start <= t < stop`` (ms), smooth in
    the spike times: ``(n - 1) / (t_last - t_first)`` (the inverse mean inter-spike
    interval) where ``n >= 2``, else ``n / (stop - start)`` (no gradient). Shape:
    one rate per neuron."""
    s = _as_spikes(spikes, "spike_rate")
    inside = jnp.isfinite(s) & (s >= start) & (s < stop)
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

    ``source``: a Trace with spike events (``start``/``stop`` in ms default to its
    time range), or spike times padded with ``inf`` (then give ``start`` and
    ``stop``). ``method``:

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
    target = units.to_base(target, "target", units.Hz)
    if method not in ("isi", "count"):
        raise ValueError(f"firing_rate: method expects 'isi' or 'count', got {method!r}")
    if isinstance(source, Trace):
        if source.spikes is None:
            raise ValueError(
                "firing_rate: this trace has no spike events; pass jn.spike_times(trace, threshold, "
                "capacity=k) with start and stop"
            )
        if method == "count":
            if start is not None or stop is not None:
                raise ValueError(
                    "firing_rate(method='count') on a Trace uses trace.spike_count over the whole "
                    "run; leave start and stop out (or pass trace.spikes to count in a window)"
                )
            duration = source.t[-1] - source.t[0]
            return relative_error(1000.0 * source.spike_count / duration, target)
        start = source.t[0] if start is None else start
        stop = source.t[-1] if stop is None else stop
    elif start is None or stop is None:
        raise ValueError("firing_rate: give start and stop (ms) with spike times")
    if method == "isi":
        rate = spike_rate(source, start, stop)
    else:
        rate = analysis.firing_rate(_as_spikes(source, "firing_rate"), start, stop)
    return relative_error(rate, target)


def _window_mask(t, windows):
    if windows is None:
        return jnp.ones(t.shape, dtype=bool)
    windows = [windows] if np.ndim(windows) == 1 else windows
    mask = jnp.zeros(t.shape, dtype=bool)
    for w in windows:
        if len(w) != 2 or not float(w[1]) > float(w[0]):
            raise ValueError(f"windows expects (start, stop) pairs in ms with stop > start, got {w!r}")
        mask = mask | within(t, w[0], w[1])
    return mask


def voltage(trace: Trace, target, *, windows=None, variable="v"):
    """Mean squared difference (mV²) between a recorded variable and ``target``.

    ``target``: an array shaped like ``trace.v`` (same time grid), or a Trace (read at
    this trace's times by linear interpolation). ``windows``: ``(start, stop)`` in ms,
    or a list of them; only samples inside count (default: all).
    """
    if not isinstance(trace, Trace):
        raise ValueError(f"voltage expects a Trace, got {type(trace).__name__}")
    v = getattr(trace, variable)
    if isinstance(target, Trace):
        target = getattr(target.at(trace.t), variable)
    target = jnp.asarray(target, dtype=v.dtype)
    if target.shape != v.shape:
        raise ValueError(f"voltage: target shape {target.shape} does not match the trace's {variable} {v.shape}")
    mask = _window_mask(trace.t, windows).reshape((-1,) + (1,) * (v.ndim - 1))
    mask = jnp.broadcast_to(mask, v.shape)
    if units.is_concrete(mask) and not bool(jnp.any(mask)):
        raise ValueError(f"voltage: no samples inside windows={windows!r}")
    d = jnp.where(mask, v - target, 0.0)
    return jnp.sum(d**2) / jnp.sum(mask)


def summary_statistics(trace: Trace, *, window=None, rest_window=None, threshold=None, variable="v",
                       capacity: int | None = None) -> dict:
    """Summary statistics of a recorded voltage, per compartment or neuron:

    ``mean_v``, ``std_v``, ``min_v``, ``max_v`` (mV, over ``window``, default the whole
    trace); ``rest_v``: the mean over ``rest_window`` (default: the first sample);
    ``spike_count``: spikes in ``window`` (the trace's events, or upward crossings of
    ``threshold`` mV, default 0; the first ``capacity`` per neuron, as
    :func:`jaxneuro.spike_times` takes them; a count, so no gradient); ``rate``: :func:`spike_rate` (Hz)
    over ``window``.
    """
    v = getattr(trace, variable)
    t = trace.t
    mask = _window_mask(t, window).reshape((-1,) + (1,) * (v.ndim - 1))
    n = jnp.sum(mask, axis=0)
    mean = jnp.sum(jnp.where(mask, v, 0.0), axis=0) / n
    var = jnp.sum(jnp.where(mask, (v - mean) ** 2, 0.0), axis=0) / n
    if rest_window is None:
        rest = v[0]
    else:
        rmask = _window_mask(t, rest_window).reshape(mask.shape)
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
        "rate": spike_rate(spikes, start, stop),
    }


def summary(trace: Trace, targets: dict, *, scales: dict | None = None, **kwargs):
    """``Σ ((stat - target) / scale)²`` over the statistics named in ``targets`` (see
    :func:`summary_statistics`, which gets ``kwargs``); ``scales`` default 1 in each
    statistic's unit (mV, spikes, Hz). Mean over compartments."""
    stats = summary_statistics(trace, **kwargs)
    unknown = [k for k in targets if k not in stats]
    if unknown:
        raise ValueError(f"summary: unknown statistic(s) {unknown}; available: {sorted(stats)}")
    scales = scales or {}
    total = 0.0
    for name, target in targets.items():
        value = stats[name].astype(jnp.result_type(float))
        total = total + jnp.mean(((value - jnp.asarray(target)) / scales.get(name, 1.0)) ** 2)
    return total
