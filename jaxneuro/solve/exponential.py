"""``exp`` for the solver's per-step gate updates, cheaper than XLA's in float64.

A simulation step of HH-type channels spends much of its time in exponentials. XLA's
CPU code for a float64 ``exp`` costs several times its float32 one; the polynomial
below (range reduction by ln 2, a degree-11 polynomial fitted for relative error on
``[-ln2/2, ln2/2]``, then a scaling by ``2**n`` built from its bits) is plain
multiply-adds that vectorise fully. Where its result has one consumer, as in the gates'
``1 - exp(-dt·rate)``, HH populations step faster in float64 with it (the gate update is
NEURON's ``cnexp`` to within the polynomial's rounding; measurements in
benchmarks/RESULTS.md, item 13). Where XLA has to copy the polynomial into several fused
kernels (an ``exp`` shared by several rates), it is slower than XLA's ``exp``, so the
rate functions keep ``jnp.exp``. Other dtypes use ``jnp.exp`` unchanged: XLA's float32
``exp`` is already such a polynomial.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

# Coefficients of exp(r) = 1 + r + c2·r² + ... + c11·r¹¹ on |r| <= ln2/2, fitted for
# relative error (below 1 ulp with the rounding of the Horner evaluation).
_COEFFICIENTS = (
    1.0, 1.0, 0.5000000000000012, 0.16666666666666483, 0.04166666666651632,
    0.008333333333451433, 0.0013888888946678828, 0.00019841269597118904,
    2.480149034623507e-05, 2.755750728541229e-06, 2.7631125446226205e-07,
    2.50246452096493e-08,
)
_LOG2E = 1.4426950408889634
# ln 2 in two parts: n·LN2_HI is exact for |n| <= 1024 (LN2_HI has 32 significant bits).
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
# Clamps that keep n in [-1022, 1024], where 2**(n - 1) is a normal float64 or, for
# n = -1022, zero: results below 2.5e-308 (x < -708.05, about the smallest normal
# float64) are 0, and above 710 the result is inf (exp overflows from 709.78).
_X_LOW, _X_HIGH = -708.5, 710.0


@jax.custom_jvp
def exp(x):
    """``e**x`` elementwise; float64 through the polynomial above (within ~1 ulp of
    the correctly rounded value from -708.05 to 709.78, 0 below, inf above, NaN
    for NaN), any other dtype through ``jnp.exp``. Its derivative is itself."""
    x = jnp.asarray(x)
    if x.dtype != jnp.float64:
        return jnp.exp(x)
    xc = jnp.clip(x, _X_LOW, _X_HIGH)
    n = jnp.floor(xc * _LOG2E + 0.5)  # nearest; Pallas' GPU lowering has no round
    r = (xc - n * _LN2_HI) - n * _LN2_LO
    p = jnp.full_like(r, _COEFFICIENTS[-1])
    for c in _COEFFICIENTS[-2::-1]:
        p = p * r + c
    # 2**(n - 1) from its exponent bits (2**1024 itself has none), times 2·p: doubling
    # first keeps the product off subnormals, which XLA's CPU code flushes to zero.
    half_scale = jax.lax.bitcast_convert_type((n.astype(jnp.int64) + 1022) << 52, jnp.float64)
    return (p * 2.0) * half_scale


@exp.defjvp
def _exp_jvp(primals, tangents):
    (x,), (dx,) = primals, tangents
    y = exp(x)
    return y, y * dx
