"""Surrogate gradients for spike counts.

A spike count is piecewise constant in every parameter, so its true gradient is zero
almost everywhere. A neuron built with ``surrogate=...`` keeps the exact count in the
forward pass but, in the backward pass, differentiates each step's spike indicator
``H(v - V_th)`` as if it were the smooth function given here (the straight-through
surrogate of SNN training), so ``jax.grad`` of a loss on ``trace.spike_count`` (or
:func:`jaxneuro.firing_rate` over the whole run) points towards more or fewer spikes.

Spike *times* need no surrogate: they are found inside the step and are
differentiable as they are.
"""

from __future__ import annotations

import abc

import equinox as eqx
import jax
import jax.numpy as jnp


class AbstractSurrogate(eqx.Module):
    """A smooth stand-in ``s(x)`` for the step ``H(x)``, ``x = v - V_th`` in mV."""

    width: float = 1.0

    def __check_init__(self):
        if not (isinstance(self.width, (int, float)) and self.width > 0):
            raise ValueError(f"{type(self).__name__}.width expects a width > 0 mV, got {self.width!r}")

    @abc.abstractmethod
    def smooth(self, x):
        """The smooth step, from 0 (x → -inf) to 1 (x → +inf)."""

    def straight_through(self, spiked, x):
        """``spiked`` (0/1) in value, ``d smooth(x)`` in gradient."""
        s = self.smooth(x)
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
