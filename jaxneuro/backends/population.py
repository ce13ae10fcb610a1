"""Slices of an uncoupled population: what the fused kernel's blocks and the sharded
backend's devices each run.

A population model of ``n`` independent compartments (shape ``(n,)``) is split into
slices of ``size`` neurons. A slice's view of the model (:func:`with_population`) is
the same module with its static population size set to ``size``; its array leaves are
cut by the caller, per neuron or shared (:func:`per_neuron_mask`). Targeted
stimuli become per-neuron weights (:func:`spread_targets`), since each slice numbers
its neurons from 0.
"""

from __future__ import annotations

import copy
import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np


def problem(model, stimuli=()) -> str | None:
    """Why ``model`` and ``stimuli`` cannot be split into independent slices, or None."""
    shape = tuple(model.shape)
    if len(shape) != 1:
        return f"needs a population of shape (n,), got a model of shape {shape}"
    if model.voltage_coupling() is not None:
        return "needs independent compartments (this model couples voltages: cable, cell or gap junctions)"
    if hasattr(model, "make_trace"):
        return "does not run Networks"
    for stim in stimuli:
        if not getattr(stim, "splittable", True):
            why = getattr(stim, "unsplittable_because", None) or (
                "its current reads the voltage, draws random numbers per neuron or holds a waveform per neuron")
            return f"cannot cut a {type(stim).__name__} into slices of the population ({why})"
        if getattr(stim, "target", None) is not None and jax.eval_shape(stim.current, 0.0).shape != ():
            # Targeted stimuli become per-neuron weights (Spread), which needs one
            # waveform for all their targets.
            return (f"spreads a targeted stimulus only when its current is one waveform for "
                    f"all targets ({type(stim).__name__} at {_count(stim.target)} has per-target parameters, e.g. "
                    "amplitudes or delays); give per-neuron parameters with target=None (zero amplitude for the "
                    "others)")
    return None


def _count(target) -> str:
    """A target as a short phrase (a list of thousands of indices printed whole)."""
    if isinstance(target, tuple) and len(target) > 4:
        return f"{len(target)} places ({', '.join(map(repr, target[:3]))}, ...)"
    return f"target={target!r}"


class Spread(eqx.Module):
    """A targeted stimulus as per-neuron weights (how often each neuron is targeted).
    Each slice numbers its neurons from 0, so indices into the whole population would
    land on the wrong neurons; a weight per neuron is sliced like any other per-neuron
    parameter."""

    stimulus: eqx.Module
    weights: jax.Array

    def inject(self, t, model, v):
        del v  # only splittable stimuli are spread: functions of time alone
        return self.stimulus.current_on(t, model) * self.weights


def spread_targets(system):
    """``system`` with its targeted stimuli as :class:`Spread` (same currents). The
    weights are a unit current placed by the model itself, so targets are checked (and
    wrapped) exactly as on the XLA path."""
    stimuli = []
    for stim in system.stimuli:
        if getattr(stim, "target", None) is None:
            stimuli.append(stim)
            continue
        weights = system.model.place_current(stim.target, jnp.ones((), jnp.result_type(float)))
        stimuli.append(Spread(stim, weights))
    return eqx.tree_at(lambda s: s.stimuli, system, tuple(stimuli))


def with_population(tree, n: int, size: int, *, skip_quiet_steps: bool):
    """A copy of ``tree`` (modules and tuples) with every static ``n == n`` field set
    to ``size``: a slice's view of a population model. ``skip_quiet_steps`` is given to
    spike detectors and spiking neurons (True: write spike times only in steps where a
    neuron of the slice crosses, by a select, which pays inside the GPU kernel)."""
    def view(name, value):
        if name == "n" and isinstance(value, int) and value == n:
            return size
        if name == "skip_quiet_steps":
            return skip_quiet_steps
        return value

    return map_static_fields(tree, view)


def map_static_fields(tree, fn):
    """A copy of ``tree`` (modules, tuples and lists, recursively) with each module
    field ``name`` set to ``fn(name, value)``; sub-modules are walked, not passed to
    ``fn``. Array leaves are shared, not copied."""
    if isinstance(tree, eqx.Module):
        new = copy.copy(tree)
        for f in dataclasses.fields(tree):
            value = getattr(tree, f.name, None)
            if isinstance(value, (eqx.Module, tuple, list)):
                object.__setattr__(new, f.name, map_static_fields(value, fn))
            else:
                new_value = fn(f.name, value)
                if new_value is not value:
                    object.__setattr__(new, f.name, new_value)
        return new
    if isinstance(tree, (tuple, list)):
        return type(tree)(map_static_fields(x, fn) for x in tree)
    return tree


def is_per_neuron(x, n: int) -> bool:
    """Whether array ``x`` holds one value (row) per neuron of a population of ``n``."""
    return x.ndim >= 1 and x.shape[0] == n


def _one_waveform(stim) -> bool:
    """Whether ``stim`` injects one current for all neurons (its ``current(t)`` has
    shape ``()``); for :class:`Spread`, the stimulus it spreads."""
    inner = stim.stimulus if isinstance(stim, Spread) else stim
    return jax.eval_shape(inner.current, 0.0).shape == ()


def per_neuron_mask(tree, n: int) -> list[bool]:
    """For each leaf of ``tree`` (a System, or a tuple starting with one, e.g.
    ``(system, y0)``; in ``jax.tree.leaves`` order): whether it holds one value per
    neuron and is cut with the population. By shape (leading axis ``n``), except inside
    a stimulus that injects one waveform for all neurons, whose arrays are shared
    whatever their length (a DataCurrent of ``n`` samples is not per neuron); a
    :class:`Spread`'s weights are per neuron."""
    from jax.tree_util import GetAttrKey

    system = tree[0] if isinstance(tree, tuple) else tree
    shared = {i for i, s in enumerate(system.stimuli) if _one_waveform(s)}

    def mark(path, x):
        if isinstance(tree, tuple):
            if path[0].idx != 0:  # not the system (e.g. the state)
                return is_per_neuron(jnp.asarray(x), n)
            path = path[1:]
        if path[:1] == (GetAttrKey("stimuli"),) and path[1].idx in shared:
            return isinstance(system.stimuli[path[1].idx], Spread) and path[2:3] == (GetAttrKey("weights"),)
        return is_per_neuron(jnp.asarray(x), n)

    return jax.tree.leaves(jax.tree_util.tree_map_with_path(mark, tree))


def pad_neurons(x, n_pad: int):
    """``x`` (leading axis per neuron) padded to ``n_pad`` rows with copies of its last
    row: padding neurons are real, finite neurons whose results are dropped."""
    n = x.shape[0]
    if n_pad == n:
        return x
    # A gather, not a pad: XLA turns the gather of a broadcast value (an initial state)
    # into a broadcast of the padded size, and broadcasts share one compiled kernel,
    # where each padded broadcast was a kernel of its own (several ms of compile each).
    # Traced, the index is computed in the program: a NumPy index would be a constant
    # of n_pad integers in the program's text for every padded leaf.
    if isinstance(x, jax.core.Tracer):
        return x[jnp.minimum(jax.lax.iota(np.int32, n_pad), n - 1)]
    return x[np.minimum(np.arange(n_pad), n - 1)]
