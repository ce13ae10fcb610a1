"""Matplotlib helpers used by ``Trace.plot``, the tour and the notebooks."""

from __future__ import annotations

import numpy as np

_LABELS = {"v": "membrane potential (mV)", "i_inj": "injected current (nA)"}


def _ylabel(name):
    if name in _LABELS:
        return _LABELS[name]
    if name.startswith("i"):
        return f"{name} (mA/cm²)"
    return name


def plot_trace(trace, *names, ax=None, label=None, **kwargs):
    """Plot ``names`` (default: all recorded variables) of ``trace`` against time.

    With several names each gets its own line; a population's variables give one line
    per neuron. Returns the matplotlib axes.
    """
    import matplotlib.pyplot as plt

    names = names or trace.names
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    t = np.asarray(trace.t)
    for name in names:
        y = np.asarray(getattr(trace, name))
        lab = label if label is not None else (name if len(names) > 1 else None)
        ax.plot(t, y, label=lab, **kwargs)
    ax.set_xlabel("time (ms)")
    ax.set_ylabel(_ylabel(names[0]) if len(names) == 1 else "value")
    if len(names) > 1 or label is not None:
        ax.legend()
    return ax
