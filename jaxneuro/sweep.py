"""Parameter sweeps over millions of parameter sets: chunked, sharded, resumable.

::

    from jaxneuro.sweep import product

    def rate(p):                       # one parameter set -> results (a pytree)
        m = jn.Compartment(length=20, diam=20, channels=[jn.channels.HH(gnabar=p["gnabar"])])
        tr = jn.simulate(m, 200.0, stimuli=[jn.StepCurrent(p["amp"], 0, 200)], record=(),
                         summary=jn.SpikeSummary())
        return {"count": tr.spike_count}

    grid = product(gnabar=np.linspace(0.05, 0.2, 1000), amp=np.linspace(0, 0.5, 1000))
    res = jn.sweep(rate, grid, batch_size=65536, out="rates/")   # res["count"]: (10**6,)

``fn`` is vmapped over a chunk of ``batch_size`` parameter sets, the chunk is split
over all local devices (``jax.sharding``, a 1-D mesh over the batch axis; the last chunk
is padded to a multiple of the device count and the padding dropped), and each finished
chunk is written to ``out`` as ``chunk_000012.npz`` (written to a temporary name and
renamed, so a file that exists is complete) next to ``manifest.json`` (the grid's size,
chunking and a fingerprint of its values). Running the same call again after an
interruption (a killed job, a lost node) loads the chunks already on disk and computes
only the missing ones; a different grid or ``batch_size`` in the same folder is refused.

Multi-host: call ``jax.distributed.initialize()`` first in every process (see JAX's
documentation), give every process the same ``fn``, ``grid``, ``batch_size`` and an
``out`` on a shared file system. Process ``i`` of ``P`` computes the chunks ``c`` with
``c % P == i`` on its own local devices; every process waits for the others' files and
returns the full result (or pass ``load=False`` to return nothing and read the folder
later with :func:`load`). Tested with two processes on one machine, four CPU devices
each (tests/test_sweep.py); no computation spans processes, so CPU hosts need no
collectives library.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import saiunit as u

from . import units
from ._callable import make_callable

_MANIFEST = "manifest.json"


def product(**axes) -> dict[str, np.ndarray]:
    """The Cartesian product of 1-D parameter axes as a flat grid: ``{name: (N,)}``
    with ``N`` the product of the axes' lengths (the last axis varies fastest). An axis
    given as a saiunit quantity stays one (``fn`` converts it, as models do)."""
    if not axes:
        raise ValueError("product expects at least one axis, e.g. product(gnabar=[0.1, 0.12])")
    arrays, unit_of = [], {}
    for name, values in axes.items():
        if isinstance(values, u.Quantity):
            unit_of[name] = values.unit
            values = values.mantissa
        a = np.asarray(values)
        if a.ndim != 1 or a.size == 0:
            raise ValueError(f"product: axis {name!r} expects a non-empty 1-D sequence, got shape {a.shape}")
        arrays.append(a)
    mesh = np.meshgrid(*arrays, indexing="ij")
    return {name: (m.reshape(-1) * unit_of[name] if name in unit_of else m.reshape(-1))
            for name, m in zip(axes, mesh)}


_NUMBERS = (int, float, complex, np.number, np.bool_)


def _as_arrays(grid):
    """``grid`` with its leaves as NumPy arrays. A list or tuple of numbers is one
    array (one value per parameter set), not a pytree of scalars; so is a nested one
    (``[[1, 2], [3, 4], [5, 6]]``: three parameter sets of two values each), which must
    then be rectangular."""
    def rows_of_numbers(x):
        return isinstance(x, (list, tuple)) and len(x) > 0 and all(
            isinstance(e, _NUMBERS) or rows_of_numbers(e) for e in x)

    def as_array(path, x):
        if not rows_of_numbers(x):
            return np.asarray(x)
        try:
            return np.asarray(x)
        except ValueError:
            raise ValueError(
                f"sweep: grid{jax.tree_util.keystr(path)} is a nested list of numbers of uneven "
                "lengths; each parameter set expects a value of the same shape"
            ) from None

    return jax.tree_util.tree_map_with_path(as_array, grid, is_leaf=rows_of_numbers)


def _grid_size(grid) -> int:
    leaves = jax.tree_util.tree_flatten_with_path(grid)[0]
    if not leaves:
        raise ValueError("sweep: grid expects a dict (or pytree) of arrays with a leading parameter-set axis")
    lengths = {jax.tree_util.keystr(path) or "grid": (np.shape(x)[0] if np.ndim(x) else None) for path, x in leaves}
    sizes = set(lengths.values())
    if None in sizes or len(sizes) != 1:
        shown = ", ".join(f"{k}: {'a scalar' if v is None else v}" for k, v in lengths.items())
        raise ValueError(
            "sweep: every array of grid expects the same leading length (one entry per "
            f"parameter set), got {shown}"
        )
    n = sizes.pop()
    if n == 0:
        raise ValueError("sweep: grid is empty")
    return int(n)


def _fingerprint(grid, batch_size) -> dict:
    h = hashlib.sha256()
    leaves, treedef = jax.tree.flatten(grid)
    h.update(str(treedef).encode())
    for x in leaves:
        x = np.ascontiguousarray(np.asarray(x))
        h.update(str((x.dtype, x.shape)).encode())
        h.update(x.tobytes())
    n = _grid_size(grid)
    return {"n": n, "batch_size": batch_size, "n_chunks": math.ceil(n / batch_size), "grid_sha256": h.hexdigest(),
            "float": jnp.dtype(jnp.result_type(float)).name}


def _fn_fingerprint(fn, grid) -> str:
    """A hash of what ``fn`` computes on one parameter set: its traced program (with
    the output shapes and dtypes) and the values it closes over (a model's parameters)."""
    closed, out = jax.make_jaxpr(fn, return_shape=True)(jax.tree.map(lambda x: x[0], grid))
    h = hashlib.sha256()
    h.update(str(closed.jaxpr).encode())
    h.update(str(jax.tree.structure(out)).encode())
    for c in closed.consts:
        try:
            h.update(np.ascontiguousarray(np.asarray(c)).tobytes())
        except (TypeError, ValueError):  # e.g. a typed PRNG key
            h.update(str((np.shape(c), getattr(c, "dtype", type(c)))).encode())
    return h.hexdigest()


def _chunk_path(out: Path, c: int) -> Path:
    return out / f"chunk_{c:06d}.npz"


def _write_atomic(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    write(tmp)
    os.replace(tmp, path)


def _save_chunk(path: Path, result) -> None:
    leaves, treedef = jax.tree.flatten(result)

    def write(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, *[np.asarray(x) for x in leaves])

    _write_atomic(path, write)


def _load_chunk(path: Path, treedef):
    with np.load(path) as z:
        leaves = [z[f"arr_{i}"] for i in range(len(z.files))]
    return jax.tree.unflatten(treedef, leaves)


def _check_manifest(out: Path, old: dict, meta: dict, what: str) -> None:
    """A ValueError unless the manifest ``old`` read from ``out`` is that of ``meta``."""
    if "float" in old and old["float"] != meta["float"]:
        raise ValueError(
            f"{what}: {out} holds results computed in {old['float']}, and this process computes in "
            f"{meta['float']} (jax.config.update('jax_enable_x64', {old['float'] == 'float64'}) before "
            "any computation would match them); precisions must not be mixed in one sweep"
        )
    # Manifests of earlier versions have no "float" entry.
    grid_keys = [k for k in meta if k != "fn_sha256" and (k != "float" or "float" in old)]
    if {k: old.get(k) for k in grid_keys} != {k: meta[k] for k in grid_keys}:
        raise ValueError(
            f"{what}: {out} holds a different sweep ({ {k: old.get(k) for k in grid_keys} }, this one "
            f"{ {k: meta[k] for k in grid_keys} }); give another out= or delete the folder"
        )
    if "fn_sha256" in meta and old.get("fn_sha256") != meta["fn_sha256"]:
        raise ValueError(
            f"{what}: {out} holds results of another fn (its traced computation, output or the values "
            "it closes over differ), which must not be mixed with this one's; give another out= or "
            "delete the folder (or, if fn is the same computation written differently, pass "
            "check_fn=False)"
        )


def _prepare_out(out: Path, meta: dict) -> None:
    if out.exists() and not out.is_dir():
        raise ValueError(f"sweep: out expects a folder (new, or one of this sweep's), got the file {out}")
    out.mkdir(parents=True, exist_ok=True)
    manifest = out / _MANIFEST
    if manifest.exists():
        _check_manifest(out, json.loads(manifest.read_text()), meta, "sweep")
    elif jax.process_index() == 0:
        _write_atomic(manifest, lambda tmp: tmp.write_text(json.dumps(meta, indent=1)))


def sweep(fn: Callable, grid, *, batch_size: int = 4096, out=None, progress: bool | None = None,
          load: bool = True, on_chunk: Callable[[int], None] | None = None, check_fn: bool = True):
    """Evaluate ``fn`` on every parameter set of ``grid`` and stack the results.

    ``fn(params) -> pytree of arrays``: one parameter set in (``grid``'s structure
    with the leading axis removed), jax-traceable (it is vmapped and jitted).
    ``grid``: a dict (or pytree) of arrays sharing a leading length ``N``, e.g. from
    :func:`product`; a (nested) list of numbers is one array, its first level the
    parameter sets. ``batch_size``: parameter sets per chunk (one compiled call,
    split over all local devices). ``out``: a folder for the finished chunks and the
    manifest; an interrupted sweep resumes from it. The manifest records the grid and a
    fingerprint of ``fn`` (its traced program and the values it closes over), and
    resuming into a folder of another grid, ``batch_size`` or ``fn`` is refused
    (``check_fn=False`` skips the ``fn`` check, for the same computation written
    differently). ``progress``: a tqdm bar (default:
    only when stderr is a terminal). ``on_chunk(c)``: called after chunk ``c`` is
    computed and saved. Returns ``fn``'s result pytree with a leading axis ``N``
    (NumPy arrays), or None with ``load=False``.
    """
    if not callable(fn):
        raise ValueError(f"sweep: fn expects a function of one parameter set, got {type(fn).__name__}")
    batch_size = units.positive_int(batch_size, "sweep: batch_size")
    load = units.flag(load, "sweep: load")
    if not load and out is None:
        raise ValueError("sweep: load=False keeps the results only in out=, which is not given; "
                         "give out=PATH or leave load=True")
    check_fn = units.flag(check_fn, "sweep: check_fn")
    if progress is not None:
        progress = units.flag(progress, "sweep: progress")
    if on_chunk is not None and not callable(on_chunk):
        raise ValueError(f"sweep: on_chunk expects None or a function of the chunk index, got {on_chunk!r}")
    grid = _as_arrays(grid)
    meta = _fingerprint(grid, batch_size)
    n, n_chunks = meta["n"], meta["n_chunks"]
    out = None if out is None else Path(out)
    if out is not None:
        if check_fn:
            meta["fn_sha256"] = _fn_fingerprint(fn, grid)
        _prepare_out(out, meta)

    devices = jax.local_devices()
    n_dev = len(devices)
    mesh = jax.sharding.Mesh(np.asarray(devices), ("batch",))
    sharded = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("batch"))
    padded = n_dev * math.ceil(min(batch_size, n) / n_dev)
    run = jax.jit(jax.vmap(fn), in_shardings=sharded, out_shardings=sharded)

    def compute(c):
        lo, hi = c * batch_size, min((c + 1) * batch_size, n)
        size = hi - lo
        width = padded if size == min(batch_size, n) else n_dev * math.ceil(size / n_dev)
        idx = np.minimum(np.arange(lo, lo + width), hi - 1)  # pad by repeating the last set
        chunk = jax.tree.map(lambda x: x[idx], grid)
        res = run(jax.device_put(chunk, sharded))
        return jax.tree.map(lambda x: np.asarray(x)[:size], res)

    mine = [c for c in range(n_chunks) if c % jax.process_count() == jax.process_index()]
    todo = [c for c in mine if out is None or not _chunk_path(out, c).exists()]
    if progress is None:
        progress = sys.stderr.isatty()
    bar = None
    if progress:
        try:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(mine), initial=len(mine) - len(todo), unit="chunk", desc="sweep")
        except ImportError:
            bar = None

    results = {}
    for c in todo:
        res = compute(c)
        if out is not None:
            _save_chunk(_chunk_path(out, c), res)
        if load:
            results[c] = res
        if on_chunk is not None:
            on_chunk(c)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    if not load:
        return None
    if out is None:
        parts = [results[c] for c in range(n_chunks)]
    else:
        if jax.process_count() > 1:
            _wait_for_chunks(out, n_chunks)
        treedef = jax.tree.structure(jax.eval_shape(fn, jax.tree.map(lambda x: x[0], grid)))
        parts = [results[c] if c in results else _load_chunk(_chunk_path(out, c), treedef) for c in range(n_chunks)]
    return jax.tree.map(lambda *xs: np.concatenate(xs), *parts)


def _wait_for_chunks(out: Path, n_chunks: int, poll_s: float = 1.0) -> None:
    while not all(_chunk_path(out, c).exists() for c in range(n_chunks)):
        time.sleep(poll_s)


def load(out, fn: Callable, grid, *, check_fn: bool = True):
    """Read a finished sweep from its folder ``out`` (as ``sweep`` returns it);
    ``fn`` and ``grid`` give the result's structure and must be the sweep's (checked
    against its manifest as :func:`sweep` does). A ValueError if chunks are missing."""
    check_fn = units.flag(check_fn, "load: check_fn")
    out = Path(out)
    if not (out / _MANIFEST).is_file():
        raise ValueError(f"load: {out} holds no sweep (no {_MANIFEST}); give the folder a sweep wrote with out=")
    meta = json.loads((out / _MANIFEST).read_text())
    grid = _as_arrays(grid)
    mine = _fingerprint(grid, meta["batch_size"])
    if check_fn:
        mine["fn_sha256"] = _fn_fingerprint(fn, grid)
    _check_manifest(out, meta, mine, "load")
    missing = [c for c in range(meta["n_chunks"]) if not _chunk_path(out, c).exists()]
    if missing:
        raise ValueError(f"load: {len(missing)} of {meta['n_chunks']} chunks missing in {out} (e.g. {missing[:5]})")
    treedef = jax.tree.structure(jax.eval_shape(fn, jax.tree.map(lambda x: x[0], grid)))
    parts = [_load_chunk(_chunk_path(out, c), treedef) for c in range(meta["n_chunks"])]
    return jax.tree.map(lambda *xs: np.concatenate(xs), *parts)


# jn.sweep(...) runs sweep(); jn.sweep.load and jn.sweep.product stay reachable.
make_callable(__name__, sweep)
