"""Exponentials as the GPU's native base-2 instruction, for the fused kernel's step.

``with_native_exp(fn)`` is ``fn`` with every ``exp(x)`` it computes (in the functions
it calls too: under ``jit``, ``cond``, ``while_loop``, ``scan`` and custom derivative
rules, every nested program is rewritten)
replaced by ``exp2(x · log₂ e)``. Pallas lowers ``exp`` to CUDA's accurate ``expf``
(a range reduction around the hardware's ``ex2.approx``: several instructions) and
``exp2`` to ``ex2.approx`` itself. The fused population kernel is bound by the number of
instructions its step issues (benchmarks/RESULTS.md, GPU), and an HH step has five
exponentials: written this way a million HH neurons ran 6-7 % faster on an H200.

Accuracy: ``ex2.approx.f32`` is within 2 ulp, and rounding ``x · log₂ e`` to float32
adds a relative error of about ``|x| · 6e-8`` (``x`` is a rate's argument, a few units
for HH): float32 rounding, not an approximation of the model. The model's own
functions are unchanged; the rewrite happens on the traced program, so every channel
and neuron the kernel runs gets it without knowing.

The rewritten function is for forward evaluation (the kernel's forward pass): custom
derivative rules met inside are evaluated as their primal functions.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import lax
from jax.extend import core
from jax.extend.core import primitives as prims

LOG2_E = 1.0 / math.log(2.0)


def with_native_exp(fn):
    """``fn`` (a function of arrays and pytrees of them) with every exponential as
    ``exp2(x · log₂ e)``; see the module's docstring."""

    def wrapped(*args):
        closed, out_shape = jax.make_jaxpr(fn, return_shape=True)(*args)
        out = _eval(closed.jaxpr, closed.consts, jax.tree.leaves(args))
        return jax.tree.unflatten(jax.tree.structure(out_shape), out)

    return wrapped


def _eval_closed(closed, args):
    return _eval(closed.jaxpr, closed.consts, args)


def _eval(jaxpr, consts, args):
    env = {}

    def read(v):
        return v.val if isinstance(v, core.Literal) else env[v]

    for v, x in zip(jaxpr.constvars, consts):
        env[v] = x
    for v, x in zip(jaxpr.invars, args):
        env[v] = x
    for eqn in jaxpr.eqns:
        outs = _apply(eqn, [read(v) for v in eqn.invars])
        for v, x in zip(eqn.outvars, outs):
            env[v] = x
    return [read(v) for v in jaxpr.outvars]


def _apply(eqn, invals):
    p, params = eqn.primitive, eqn.params
    if p is prims.exp_p:
        x = invals[0]
        return [lax.exp2(x * jnp.asarray(LOG2_E, jnp.result_type(x)))]
    # A primitive that calls programs of its own (jit, cond, while, scan, custom
    # derivative rules...) is bound as it is, with those programs rewritten: the
    # traced program keeps its structure, whatever the primitive's other parameters.
    new = {k: _rewritten(v) for k, v in params.items()}
    out = p.bind(*invals, **p.get_bind_params(new))
    return out if p.multiple_results else [out]


def _rewritten(param):
    if isinstance(param, core.ClosedJaxpr):
        return _rewrite(param)
    if isinstance(param, tuple) and param and all(isinstance(b, core.ClosedJaxpr) for b in param):
        return tuple(_rewrite(b) for b in param)
    return param


def _rewrite(closed):
    avals = [jax.ShapeDtypeStruct(v.aval.shape, v.aval.dtype, weak_type=v.aval.weak_type)
             for v in closed.jaxpr.invars]
    new = jax.make_jaxpr(lambda *args: _eval_closed(closed, args))(*avals)
    if new.consts and not closed.consts:
        # Keep a program that had no constants without them (some primitives expect
        # that): constants are only created for arrays, which exp2 does not add.
        raise AssertionError("with_native_exp: rewriting added constants to a nested program")
    return new
