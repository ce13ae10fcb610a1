"""Caches: static tables (NumPy index arrays and the like) built from hashable
arguments, kept apart per JAX precision mode; and bounded dicts of values kept per
live object (models are immutable, so what is worked out from one holds while it lives)."""

from __future__ import annotations

import functools
import weakref

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


def remember(cache: dict, key, value, size: int) -> None:
    """``cache[key] = value``, first dropping the oldest entries so that at most
    ``size`` are kept."""
    while len(cache) >= size:
        cache.pop(next(iter(cache)))
    cache[key] = value


def keep_while_alive(cache: dict, key, obj, value, size: int) -> None:
    """:func:`remember` ``(weak reference to obj, value)`` under ``key`` (which holds
    ``id(obj)``); the entry leaves when ``obj`` is collected. An object that cannot be
    weakly referenced is not kept."""
    try:
        ref = weakref.ref(obj, lambda _, key=key: cache.pop(key, None))
    except TypeError:
        return
    remember(cache, key, (ref, value), size)


def recall(cache: dict, key, obj, default=None):
    """The value :func:`keep_while_alive` kept for ``obj`` under ``key``, or
    ``default`` (also where the key's id now belongs to another object)."""
    hit = cache.get(key)
    return hit[1] if hit is not None and hit[0]() is obj else default
