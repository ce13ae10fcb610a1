"""A cache for static tables (NumPy index arrays and the like) built from hashable
arguments, kept apart per JAX precision mode."""

from __future__ import annotations

import functools

import jax


def per_precision_cache(maxsize: int):
    """``functools.lru_cache(maxsize)`` whose key also holds whether JAX's 64-bit mode
    is on. JAX keeps its conversion of a NumPy constant by the array's identity, so one
    cached table converted without 64-bit mode came back as int32 with it (and int64
    the other way: "lax.add requires arguments to have the same dtypes" once
    ``jax_enable_x64`` was switched); each mode gets its own arrays."""

    def decorate(fn):
        cached = functools.lru_cache(maxsize=maxsize)(lambda x64, *args: fn(*args))

        @functools.wraps(fn)
        def wrapper(*args):
            return cached(bool(jax.config.jax_enable_x64), *args)

        wrapper.cache_clear = cached.cache_clear
        wrapper.cache_info = cached.cache_info
        return wrapper

    return decorate
