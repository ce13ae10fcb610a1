"""Matplotlib helpers used by ``Trace.plot``, the tour and the notebooks."""

from __future__ import annotations

import numpy as np

# Units where the name alone says them; a channel's current is a density (mA/cm²) on a
# compartment but absolute (nA) on a point neuron, so other currents get no unit.
_LABELS = {
    "v": "membrane potential (mV)", "i_inj": "injected current (nA)", "i_clamp": "clamp current (nA)",
    "i_gap": "gap-junction current (nA)", "i_syn": "synaptic current (nA)",
}


def _ylabel(name):
    return _LABELS.get(name, name)


def plot_trace(trace, *names, ax=None, label=None, **kwargs):
    """Plot ``names`` (default: all recorded variables) of ``trace`` against time.

    One name: one axes, labelled with the variable's unit where the name says it; a
    population's variable gives one line per neuron. Several names: with ``ax=None``,
    a column of axes sharing the time axis, one per name, each with its own label (a
    voltage and a gating variable are not put on one scale); returns the array of
    axes. Give ``ax`` a sequence of as many axes to draw into your own, or a single
    axes to put every name on it (one legend entry per name). ``"spikes"`` draws the
    trace's spike times as a raster (one row per neuron). A Network's trace is plotted
    population by population: ``trace["a"].plot()``. Returns the matplotlib axes.
    """
    import matplotlib.pyplot as plt

    if trace.parts is not None:
        raise ValueError(
            f"a Network's trace holds one trace per population; plot one: trace[name].plot() "
            f"with a name among {tuple(trace.parts)}"
        )
    if np.ndim(trace.t) > 1:
        raise ValueError(
            f"this trace is a batch (from jax.vmap over simulate: t of shape {np.shape(trace.t)}); plot one "
            "member, jax.tree.map(lambda x: x[i], trace).plot(...)"
        )
    bad = [n for n in names if not isinstance(n, str)]
    if bad:
        raise ValueError(f"trace.plot: names expects recorded variable names (str), e.g. 'v', got {bad[0]!r}; "
                         f"this trace has {trace.names}")
    unknown = [n for n in names if n != "spikes" and n not in trace.names]
    if unknown:
        raise ValueError(f"trace.plot: {unknown[0]!r} is not recorded; this trace has {trace.names}"
                         + (" and 'spikes'" if trace.spikes is not None else ""))
    if ax is not None and not (hasattr(ax, "plot") or (np.ndim(ax) > 0 and all(hasattr(a, "plot") for a in ax))):
        raise ValueError(f"trace.plot: ax expects a matplotlib Axes or a sequence of them, got {ax!r}")
    names = names or trace.names
    if not names:
        raise ValueError(
            "this trace recorded no variables (record=()); "
            + ("plot its spikes with trace.plot('spikes')" if trace.spikes is not None else
               "simulate with record=('v',) to plot")
        )
    if "spikes" in names and len(names) > 1:
        raise ValueError("trace.plot('spikes') draws a raster on its own axes; plot it apart from other names")
    if names == ("spikes",):
        if ax is None:
            _, ax = plt.subplots(figsize=(6, 3.5), layout="constrained")
        return _raster(trace, ax, label, **kwargs)
    if len(names) > 1 and ax is None:
        _, ax = plt.subplots(len(names), 1, sharex=True, squeeze=False,
                             figsize=(6, 1.2 + 1.8 * len(names)), layout="constrained")
        ax = ax[:, 0]
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5), layout="constrained")
    if np.ndim(ax) > 0:  # one axes per name
        if len(ax) != len(names):
            raise ValueError(f"ax: {len(ax)} axes given for {len(names)} names {names}; give one per name")
        for a, name in zip(ax, names):
            _lines(trace, a, (name,), label, **kwargs)
        for a in ax[:-1]:
            if a.get_shared_x_axes().joined(a, ax[-1]):
                a.set_xlabel("")  # one time label under a column sharing its time axis
        return ax
    return _lines(trace, ax, names, label, **kwargs)


#: Cables and cells label their columns ("soma(0.5)") in a legend up to this many.
MAX_LEGEND_COLUMNS = 12


def _lines(trace, ax, names, label, **kwargs):
    t = np.asarray(trace.t)
    legend = False
    for name in names:
        y = np.asarray(getattr(trace, name))
        lab = label if label is not None else (name if len(names) > 1 else None)
        lines = ax.plot(t, y, **kwargs)
        columns = trace.column_labels(name)
        if label is None and columns is not None and y.ndim == 2 and 1 < len(lines) <= MAX_LEGEND_COLUMNS:
            for line, where in zip(lines, columns):  # which segment each line is
                line.set_label(where if len(names) == 1 else f"{name} {where}")
            legend = True
        elif lab is not None:
            lines[0].set_label(lab)  # one entry per name, not per neuron
    ax.set_xlabel("time (ms)")
    ax.set_ylabel("; ".join(dict.fromkeys(_ylabel(name) for name in names)))
    if legend or len(names) > 1 or label is not None:
        ax.legend(fontsize="small")
    return ax


def _raster(trace, ax, label, **kwargs):
    if trace.spikes is None:
        raise ValueError(
            "this trace has no spike times of its own; for threshold crossings, "
            "simulate with summary=jn.SpikeSummary() or use jn.spike_times(trace)"
        )
    spikes = np.asarray(trace.spikes).reshape(-1, np.shape(trace.spikes)[-1])
    rows = np.broadcast_to(np.arange(spikes.shape[0])[:, None], spikes.shape)
    keep = np.isfinite(spikes)
    kwargs.setdefault("marker", "|")
    kwargs.setdefault("linestyle", "none")
    ax.plot(spikes[keep], rows[keep], label=label, **kwargs)
    ax.set_xlabel("time (ms)")
    ax.set_ylabel("neuron")
    ax.set_ylim(-0.5, spikes.shape[0] - 0.5)  # a row for every neuron, silent ones too
    ax.yaxis.get_major_locator().set_params(integer=True)
    if label is not None:
        ax.legend()
    return ax
