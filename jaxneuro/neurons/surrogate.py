"""Surrogate gradients for spike counts.

A spike count is piecewise constant in every parameter, so its true gradient is zero
almost everywhere. A neuron built with ``surrogate=...`` keeps the exact count in the
forward pass but, in the backward pass, differentiates each step's spike indicator
``H(v - V_th)`` as if it were the smooth function given here (the straight-through
surrogate of SNN training), so ``jax.grad`` of a loss on ``trace.spike_count`` (or
:func:`jaxneuro.firing_rate` over the whole run) points towards more or fewer spikes.

Each step's surrogate is weighted by ``dt / time_scale``, so the backward pass
differentiates ``∫ s(v(t) - V_th) dt / time_scale`` (an escape-rate reading: up to one
spike per ``time_scale`` ms above threshold) and the gradient converges as ``dt``
shrinks: for seed 002's LIF it moves by less than 3 % from ``dt`` 0.1 to 0.05 ms with
``Sigmoid(1.0)`` (tests/test_surrogate.py; ``FastSigmoid``'s heavier tails converge
more slowly: 3-4 % there), where the unweighted per-step sum of SNN codes that fix
``dt`` doubles. Its size is a convention either way, not the slope of the exact
count: scale-free optimisers such as Adam, ``jn.fit``'s default, do not depend on it.

This holds where the voltage approaches its threshold smoothly, as a LIF's does. AdEx
and Izhikevich neurons spike at ``V_peak``, which their runaway upswing crosses in well
under a step, so whether a step ends within the surrogate's ``width`` depends on where
the step grid falls: their surrogate count gradients do not converge as ``dt`` shrinks
(d count/d amp of an AdEx with ``Sigmoid(1.0)`` over 200 ms: 2.2, 0.93, 0.0, 20, 7.1 at
dt = 0.05, 0.025, 0.02, 0.0125, 0.01 ms).
Fit them through spike times instead.

Spike *times* need no surrogate: they are found inside the step and are
differentiable as they are.
"""

from __future__ import annotations

import abc
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import saiunit

from .. import units


class AbstractSurrogate(eqx.Module):
    """A smooth stand-in ``s(x)`` for the step ``H(x)``, ``x = v - V_th`` in mV.

    ``width`` (mV): how far from threshold the surrogate reaches. ``time_scale`` (ms):
    each solver step's surrogate counts ``dt / time_scale`` (see the module doc), so
    gradients converge as ``dt`` shrinks (they do not grow as ``1/dt``). Either may be
    a saiunit quantity (``2 * u.mV``), converted to that unit.
    """

    width: float = 1.0
    time_scale: float = 1.0

    def __post_init__(self):
        # A quantity (2 * u.mV) in the documented unit, and a NumPy number
        # (np.float32(2.0)), as a Python float: the surrogate is a static field of its
        # neuron, hashed and compared.
        for name, unit in (("width", units.mV), ("time_scale", units.ms)):
            value = getattr(self, name)
            if isinstance(value, saiunit.Quantity) or (
                    isinstance(value, (np.ndarray, np.number)) and np.asarray(value).dtype.kind in "iuf"):
                value = units.to_static(value, f"{type(self).__name__}.{name}", unit)
                setattr(self, name, float(value) if value.ndim == 0 else value)

    def __check_init__(self):
        cls = type(self).__name__
        for name, unit in (("width", "mV"), ("time_scale", "ms")):
            value = getattr(self, name)
            if isinstance(value, bool) or not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{cls}.{name} expects a finite number > 0 ({unit}), got {value!r}")

    @abc.abstractmethod
    def smooth(self, x):
        """The smooth step, from 0 (x → -inf) to 1 (x → +inf)."""

    def straight_through(self, spiked, x, dt):
        """``spiked`` (0/1) in value; in gradient, ``d smooth(x)`` weighted by
        ``dt / time_scale`` (``dt``: this step's length, ms)."""
        # The step's length is a weight, not a path for gradients (w.r.t. t1, say).
        s = self.smooth(x) * (jax.lax.stop_gradient(dt) / self.time_scale)
        return spiked + (s - jax.lax.stop_gradient(s))


class Sigmoid(AbstractSurrogate):
    """Logistic ``1 / (1 + exp(-x / width))``; ``width`` in mV."""

    def smooth(self, x):
        return jax.nn.sigmoid(x / self.width)


class FastSigmoid(AbstractSurrogate):
    """SuperSpike's fast sigmoid ``(1 + x / (width + |x|)) / 2`` (Zenke & Ganguli
    2018): its derivative decays as ``1/x²``, so neurons far from threshold still get
    a gradient. ``width`` in mV."""

    def smooth(self, x):
        return 0.5 * (1.0 + x / (self.width + jnp.abs(x)))


__all__ = ["AbstractSurrogate", "Sigmoid", "FastSigmoid"]
