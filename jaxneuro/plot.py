"""Matplotlib helpers used by ``Trace.plot``, the tour and the notebooks."""

from __future__ import annotations

import numpy as np

from .model import COMMON_UNITS, DIMENSIONLESS

#: What a record name is, where the name alone does not say it (axis labels).
_DESCRIPTIONS = {
    "v": "membrane potential", "i_inj": "injected current", "i_clamp": "clamp current",
    "i_gap": "gap-junction current", "i_syn": "synaptic current", "i_cap": "capacitive current",
}


def _unit(trace, name):
    """``name``'s unit in ``trace``: the recording model's (``Trace.unit``), else the one
    every model gives the name (traces made without units), else None."""
    unit = trace.unit(name)
    return unit if unit is not None else COMMON_UNITS.get(name)


def _ylabel(trace, names):
    """The y label of an axes showing ``names``: the names grouped by unit, each unit
    once after its names ("membrane potential (mV)", "m_hh, h_hh (dimensionless)",
    "v (mV); m_hh (dimensionless)"); a name of unknown unit stands alone."""
    groups = {}  # unit -> names in it, in order
    for name in names:
        groups.setdefault(_unit(trace, name), []).append(name)
    parts = []
    for unit, members in groups.items():
        what = ", ".join(_DESCRIPTIONS.get(n, n) if len(names) == 1 else n for n in members)
        if unit is None:
            parts.append(what)
        else:
            parts.append(f"{what} ({'dimensionless' if unit == DIMENSIONLESS else unit})")
    return "; ".join(parts)


def plot_trace(trace, *names, ax=None, label=None, **kwargs):
    """Plot ``names`` (default: all recorded variables) of ``trace`` against time.

    One name: one axes, its y label the variable and its unit (``Trace.unit``, the
    recording model's: "membrane potential (mV)", "ina_hh (mA/cm²)", "m_hh
    (dimensionless)"). Several names: with ``ax=None``, a column of axes sharing the
    time axis, one per name, each with its own label (a voltage and a gating variable
    are not put on one scale); returns the array of axes. Give ``ax`` a sequence of as
    many axes to draw into your own, or a single axes to put every name on it (its
    label gives each unit once, after the names in it: "v (mV); m_hh, h_hh
    (dimensionless)"; a legend entry per name).

    A population's or cable's variable gives one line per neuron or segment; up to
    :data:`MAX_LEGEND_COLUMNS` of them each get a legend entry: the segment
    (``"soma(0.5)"``), a synapse's connection (``trace["syn"].plot("g")``: ``"connection
    k"``) or ``"neuron i"``. More lines (without
    ``label`` or a colour of your own): a cell's segments take one colour per section,
    with a legend entry per section (``"dend (21 segments)"``), where it has at most
    ``MAX_LEGEND_COLUMNS`` sections; other columns are drawn along a colormap
    (viridis), the first and last named in the legend. ``label``: a str names the trace
    (to tell two traces apart on one axes): a single line is ``label``, a population's lines
    ``"label[i]"``, a cable's ``"label soma(0.5)"``; past ``MAX_LEGEND_COLUMNS`` lines
    they are drawn in one colour with one entry, ``label``. A sequence of str gives each
    line its own entry (as many as lines). With several names on one axes, each entry
    also says its name ("v neuron 0", "ctrl v").

    A trace at one time (``trace.at(t)`` with a scalar ``t``) is drawn against the
    segment, neuron or connection index, a marker each (not joined: the neurons are
    independent, and a cell's segment order jumps between branches), titled with the
    time (a single compartment: one point at ``t``). ``"spikes"`` draws the trace's
    spike times as a raster (one row per neuron). A Network's trace is plotted population by population:
    ``trace["a"].plot()``. Returns the matplotlib axes.
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
    if np.ndim(trace.t) == 0:
        return _at_one_time(trace, ax, names, label, **kwargs)
    t = np.asarray(trace.t)
    legend = False
    for name in names:
        lines = ax.plot(t, np.asarray(getattr(trace, name)), **kwargs)
        if (len(lines) > MAX_LEGEND_COLUMNS and label is None and len(names) == 1
                and not {"color", "c"} & set(kwargs)):
            legend |= _colour_columns(trace, name, lines)
            continue
        legend |= _label_lines(trace, name, lines, label, several=len(names) > 1)
    ax.set_xlabel("time (ms)")
    ax.set_ylabel(_ylabel(trace, names))
    if legend:
        ax.legend(fontsize="small")
    return ax


def _colour_columns(trace, name, lines):
    """Colour the many ``lines`` of ``name`` so that they can be told apart (the
    colour cycle's 10 colours repeated, and the soma shared one with dendrite
    segments): one colour per section where the columns are labelled ``"sec(x)"``
    and there are at most :data:`MAX_LEGEND_COLUMNS` sections, with an entry each;
    else a colormap along the columns, with entries for the first and last.
    Returns True (entries were given)."""
    import matplotlib

    columns = trace.column_labels(name)
    sections = None
    if columns is not None and all("(" in c and not c.startswith("x=") for c in columns):
        sections = [c.rsplit("(", 1)[0] for c in columns]
        order = list(dict.fromkeys(sections))
        if len(order) > MAX_LEGEND_COLUMNS:
            sections = None
    if sections is not None:
        cmap = matplotlib.colormaps["tab10" if len(order) <= 10 else "tab20"]
        for i, sec in enumerate(order):
            members = [line for line, s in zip(lines, sections) if s == sec]
            for line in members:
                line.set_color(cmap(i))
            count = len(members)
            members[0].set_label(sec if count == 1 else f"{sec} ({count} segments)")
        return True
    cmap = matplotlib.colormaps["viridis"]
    for i, line in enumerate(lines):
        line.set_color(cmap(i / (len(lines) - 1)))
    ends = (columns[0], columns[-1]) if columns is not None else ("neuron 0", f"neuron {len(lines) - 1}")
    lines[0].set_label(ends[0])
    lines[-1].set_label(ends[1])
    return True


def _label_lines(trace, name, lines, label, several):
    """Give ``name``'s ``lines`` their legend entries (see :func:`plot_trace`'s
    ``label``); ``several``: other names share the axes, so entries carry the name.
    Returns whether any line got an entry."""
    if label is not None and not isinstance(label, str):
        labels = list(label)
        if len(labels) != len(lines) or not all(isinstance(x, str) for x in labels):
            raise ValueError(f"label: {label!r} does not name {name!r}'s {len(lines)} line(s); give a str or a "
                             f"sequence of {len(lines)} str, one per line")
        for line, text in zip(lines, labels):
            line.set_label(f"{name} {text}" if several else text)
        return True
    if len(lines) == 1:
        text = name if label is None else (f"{label} {name}" if several else label)
        if several or label is not None:
            lines[0].set_label(text)
            return True
        return False
    if len(lines) > MAX_LEGEND_COLUMNS:
        if label is None and not several:
            return False
        for line in lines[1:]:  # one colour, so that the one entry names them all
            line.set_color(lines[0].get_color())
        lines[0].set_label(name if label is None else (f"{label} {name}" if several else label))
        return True
    columns = trace.column_labels(name)
    for i, line in enumerate(lines):
        if columns is not None:  # which segment (or a synapse's connection) each line is
            text = columns[i] if label is None else f"{label} {columns[i]}"
        else:  # which neuron
            text = f"neuron {i}" if label is None else f"{label}[{i}]"
        line.set_label(f"{name} {text}" if several else text)
    return True


def _at_one_time(trace, ax, names, label, **kwargs):
    """A trace cut at one time (``trace.at(t)``, ``t`` a scalar): each name's values
    against their segment, neuron or connection index, a marker each, not joined by
    lines (neighbouring neurons are independent, and a cell's segments run from one
    branch's tip on to the next branch); a single compartment's value as one point at
    ``t`` on the time axis."""
    if label is not None and not isinstance(label, str):
        raise ValueError(f"label: a trace at one time draws one line per name; give a str, got {label!r}")
    kwargs.setdefault("marker", "o")
    if not {"linestyle", "ls"} & set(kwargs):
        kwargs["linestyle"] = "none"  # markers only (a line style of one's own is kept)
    t = float(trace.t)
    values = [np.asarray(getattr(trace, name)) for name in names]
    if all(y.ndim == 0 for y in values):
        for name, y in zip(names, values):
            ax.plot([t], [y], label=label if label is not None else (name if len(names) > 1 else None), **kwargs)
        ax.set_xlabel("time (ms)")
    else:
        for name, y in zip(names, values):
            text = name if label is None else (f"{label} {name}" if len(names) > 1 else label)
            ax.plot(np.arange(y.size), y.reshape(-1), label=text if len(names) > 1 or label is not None else None,
                    **kwargs)
        columns = {trace.column_labels(name) for name in names}
        columns = columns.pop() if len(columns) == 1 else None  # ticks only where all names agree
        if columns is not None or trace.columns is not None:
            ax.set_xlabel("segment")
            if columns is not None and len(columns) <= MAX_LEGEND_COLUMNS:
                ax.set_xticks(np.arange(len(columns)), columns, rotation=30, ha="right", fontsize="small")
        else:
            ax.set_xlabel("neuron")
            ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_title(f"t = {t:g} ms", fontsize="medium")
    ax.set_ylabel(_ylabel(trace, names))
    if len(names) > 1 or label is not None:
        ax.legend(fontsize="small")
    return ax


def _raster(trace, ax, label, **kwargs):
    if trace.spikes is None:
        raise ValueError(
            "this trace has no spike times of its own; for threshold crossings, "
            "simulate with summary=jn.SpikeSummary() or use jn.spike_times(trace)"
        )
    spikes = trace.spikes
    if trace.span is not None:
        # A continued run's buffers carry the earlier parts' spikes too: draw only this
        # trace's span (ms), as window() keeps them, so that the raster lines up with
        # its own voltage plot. The trace's data stays as it is.
        spikes, _ = trace._spikes_within(*trace.span)
    spikes = np.asarray(spikes).reshape(-1, np.shape(spikes)[-1])
    rows = np.broadcast_to(np.arange(spikes.shape[0])[:, None], spikes.shape)
    keep = np.isfinite(spikes)
    kwargs.setdefault("marker", "|")
    kwargs.setdefault("linestyle", "none")
    ax.plot(spikes[keep], rows[keep], label=label, **kwargs)
    if trace.span is not None:  # the time axis spans the trace, as its voltage plot's does
        ax.update_datalim([(trace.span[0], 0.0), (trace.span[1], 0.0)])
        ax.autoscale_view()
    ax.set_xlabel("time (ms)")
    ax.set_ylabel("neuron")
    ax.set_ylim(-0.5, spikes.shape[0] - 0.5)  # a row for every neuron, silent ones too
    ax.yaxis.get_major_locator().set_params(integer=True)
    if label is not None:
        ax.legend()
    return ax
