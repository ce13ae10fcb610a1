"""Exponentials as the GPU's native base-2 instruction, for the fused kernel's step.

``with_native_exp(fn)`` is ``fn`` with every ``exp(x)`` it computes (in the functions
it calls too, under ``jit``, ``cond``, ``while_loop``, ``scan`` and custom derivative
rules; other primitives that carry a program of their own keep their ``exp``)
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

# Primitives that call a jaxpr of their own, evaluated inline (primal values only).
_INLINE = {prims.jit_p: "jaxpr", prims.closed_call_p: "call_jaxpr",
           prims.custom_jvp_call_p: "call_jaxpr", prims.custom_vjp_call_p: "call_jaxpr"}


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
    if p in _INLINE:
        return _eval_closed(params[_INLINE[p]], invals)
    if p is prims.cond_p:
        index, *operands = invals
        branches = [lambda *ops, b=b: _eval_closed(b, ops) for b in params["branches"]]
        return list(lax.switch(index, branches, *operands))
    if p is prims.while_p:
        nc, nb = params["cond_nconsts"], params["body_nconsts"]
        cconsts, bconsts, init = invals[:nc], invals[nc:nc + nb], invals[nc + nb:]
        return list(lax.while_loop(
            lambda c: _eval_closed(params["cond_jaxpr"], [*cconsts, *c])[0],
            lambda c: tuple(_eval_closed(params["body_jaxpr"], [*bconsts, *c])),
            tuple(init)))
    if p is prims.scan_p:
        nc, ncarry = params["num_consts"], params["num_carry"]
        consts, init, xs = invals[:nc], invals[nc:nc + ncarry], invals[nc + ncarry:]

        def body(c, x):
            out = _eval_closed(params["jaxpr"], [*consts, *c, *x])
            return tuple(out[:ncarry]), tuple(out[ncarry:])

        carry, ys = lax.scan(body, tuple(init), tuple(xs), length=params["length"],
                             reverse=params["reverse"], unroll=params["unroll"])
        return [*carry, *ys]
    # Any other primitive runs as it is (one with a jaxpr of its own keeps its exp:
    # slower, not different).
    out = p.bind(*invals, **p.get_bind_params(params))
    return out if p.multiple_results else [out]

