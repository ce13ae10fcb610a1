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
chunk is written to ``out`` as ``chunk_000012.npz`` (written to a temporary name, flushed
to disk and renamed, so a file that exists is complete; one damaged later, or of the
wrong length, is named when read, not loaded) next to ``manifest.json`` (the grid's size,
chunking and a fingerprint of its values). Running the same call again after an
interruption (a killed job, a lost node) loads the chunks already on disk and computes
only the missing ones; a different grid or ``batch_size`` in the same folder is refused.

Multi-host: call ``jax.distributed.initialize()`` first in every process (see JAX's
documentation), give every process the same ``fn``, ``grid``, ``batch_size`` and an
``out`` on a shared file system. Process ``i`` of ``P`` computes the chunks ``c`` with
``c % P == i`` on its own local devices; every process waits for the others' files
(``timeout=``: how long) and returns the full result (or pass ``load=False`` to
return nothing and read the folder later with :func:`load`). Tested with two processes on one machine, four CPU devices
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

from . import backends, units
from ._callable import make_callable

_MANIFEST = "manifest.json"


def product(**axes) -> dict[str, np.ndarray]:
    """The Cartesian product of 1-D parameter axes as a flat grid: ``{name: (N,)}``
    with ``N`` the product of the axes' lengths (the last axis varies fastest). An axis
    given as a saiunit quantity stays one: ``fn`` converts it where it builds a model
    from it (``jn.LIF(gL=p["gL"])``, as models convert their parameters); a value set
    into an existing model with ``eqx.tree_at`` must be a plain number in the
    parameter's unit (give such axes as numbers)."""
    if not axes:
        raise ValueError("product expects at least one axis, e.g. product(gnabar=[0.1, 0.12])")
    arrays, unit_of = [], {}
    for name, values in axes.items():
        if _quantity_list(values):
            values = _quantity_array(values, f"product: axis {name!r}")
        if isinstance(values, u.Quantity):
            unit_of[name] = values.unit
            values = values.mantissa
        a = np.asarray(values)
        if a.ndim != 1 or a.size == 0:
            raise ValueError(f"product: axis {name!r} expects a non-empty 1-D sequence, got shape {a.shape}")
        if not _numeric(a.dtype):
            raise ValueError(f"product: axis {name!r} expects numbers, got {values!r}")
        arrays.append(a)
    mesh = np.meshgrid(*arrays, indexing="ij")
    return {name: (m.reshape(-1) * unit_of[name] if name in unit_of else m.reshape(-1))
            for name, m in zip(axes, mesh)}


_NUMBERS = (int, float, complex, np.number, np.bool_)


def _numeric(dtype) -> bool:
    """Numbers or booleans, NumPy's own or JAX's extra floats (bfloat16, float8...)."""
    return dtype.kind in "biufc" or jnp.issubdtype(dtype, jnp.floating)


def _quantity_list(x) -> bool:
    return isinstance(x, (list, tuple)) and len(x) > 0 and all(isinstance(e, u.Quantity) for e in x)


def _quantity_array(x, where: str):
    """A list of saiunit quantities as one quantity array (:func:`units.as_quantity`)."""
    q = units.as_quantity(x)
    if not isinstance(q, u.Quantity):
        raise ValueError(f"{where}: a list of quantities expects one dimension, got {x!r}")
    return q


def _in_default_precision(a, where: str):
    """``a`` unchanged, or a ValueError if JAX (without 64-bit mode) would change its
    values beyond rounding: integers outside 32 bits, finite floats beyond float32's range."""
    if jax.config.jax_enable_x64 or a.dtype.itemsize <= 4 or a.dtype.kind not in "iuf" or a.size == 0:
        return a
    if a.dtype.kind in "iu":
        info = np.iinfo(np.int32 if a.dtype.kind == "i" else np.uint32)
        bad = (a < info.min) | (a > info.max)
    else:
        bad = np.isfinite(a) & (np.abs(a) > np.finfo(np.float32).max)
    if np.any(bad):
        with np.errstate(over="ignore"):
            becomes = a[bad].astype(jax.dtypes.canonicalize_dtype(a.dtype)).flat[0]
        raise ValueError(
            f"{where} holds {a.dtype} values JAX cannot keep without 64-bit mode (e.g. {a[bad].flat[0]!r}, "
            f"which would become {becomes!r}); "
            "call jax.config.update('jax_enable_x64', True) before any computation, or rescale them"
        )
    return a


def _as_arrays(grid):
    """``grid`` with its leaves as NumPy arrays. A list or tuple of numbers is one
    array (one value per parameter set), not a pytree of scalars; so is a nested one
    (``[[1, 2], [3, 4], [5, 6]]``: three parameter sets of two values each), which must
    then be rectangular; a list of saiunit quantities is one quantity array. Anything
    else that is not a number is refused, naming its place in the grid."""
    def rows_of_numbers(x):
        return isinstance(x, (list, tuple)) and len(x) > 0 and all(
            isinstance(e, _NUMBERS) or rows_of_numbers(e) for e in x)

    def not_numbers(x):  # a list holding None, strings or nothing: a leaf, refused below
        return isinstance(x, (list, tuple)) and (len(x) == 0 or any(
            e is None or isinstance(e, (str, bytes)) for e in x))

    def as_array(path, x):
        where = f"sweep: grid{jax.tree_util.keystr(path)}"
        if _quantity_list(x):
            return _quantity_array(x, where)
        if isinstance(x, u.Quantity):
            return x
        if isinstance(x, (list, tuple)) and len(x) == 0:
            raise ValueError(f"{where} is empty; each parameter axis expects at least one value")
        try:
            a = np.asarray(x)
        except ValueError:
            raise ValueError(
                f"{where} is a nested list of numbers of uneven lengths; each parameter set "
                "expects a value of the same shape"
            ) from None
        if not _numeric(a.dtype):
            raise ValueError(f"{where} expects numbers (one value per parameter set), got {x!r}")
        if not a.dtype.isnative:  # big-endian data (from a file): JAX takes native order only
            a = a.astype(a.dtype.newbyteorder("="))
        return _in_default_precision(a, where)

    return jax.tree_util.tree_map_with_path(
        as_array, grid, is_leaf=lambda x: rows_of_numbers(x) or _quantity_list(x) or not_numbers(x))


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
    the output shapes and dtypes) and the values it closes over (a model's parameters).
    Simulations in ``fn`` are traced as ``backend="xla"`` runs them, whatever backend
    they run on (``backends.traced_as_xla``): ``"auto"`` picks by the number of local
    devices, and a sweep resumed on a node with another core count was refused as
    "another fn"."""
    # Traced through a new function: JAX keeps the trace of ``fn`` itself from the shape
    # check (:func:`_result_shape`), made with the backend chosen there, and would reuse
    # it here. (An fn the user wrapped in jax.jit has its own kept trace, reused all the
    # same: its fingerprint still depends on the backend chosen.)
    with backends.traced_as_xla():
        closed, out = jax.make_jaxpr(lambda params: fn(params), return_shape=True)(
            jax.tree.map(lambda x: x[0], grid))
    h = hashlib.sha256()
    h.update(str(closed.jaxpr).encode())
    h.update(str(jax.tree.structure(out)).encode())
    for f in _host_functions(closed.jaxpr):
        h.update(_function_identity(f).encode())
    for c in closed.consts:
        dtype = getattr(c, "dtype", None)
        if dtype is not None and jnp.issubdtype(dtype, jax.dtypes.prng_key):
            c = jax.random.key_data(c)  # a typed key's value, not just its type
        try:
            h.update(np.ascontiguousarray(np.asarray(c)).tobytes())
        except (TypeError, ValueError):
            h.update(str((np.shape(c), getattr(c, "dtype", type(c)))).encode())
    return h.hexdigest()


def _host_functions(jaxpr):
    """The Python functions the program calls back into (``jax.pure_callback``,
    ``io_callback``, ``jax.debug.callback``), nested programs included: the traced
    program's text names only the callback's type, not which function it runs."""
    for eqn in jaxpr.eqns:
        for value in eqn.params.values():
            for v in value if isinstance(value, (tuple, list)) else (value,):
                inner = getattr(v, "jaxpr", v)  # a ClosedJaxpr's program, or a Jaxpr
                if hasattr(inner, "eqns"):
                    yield from _host_functions(inner)
                elif callable(v) and "callback" in eqn.primitive.name:
                    yield v


def _function_identity(f) -> str:
    """A host callback's function as text: its name and, where Python has them, its
    bytecode, constants and the values it closes over (numbers and arrays)."""
    f = getattr(f, "callback_func", f)  # JAX's wrapper around the user's function
    while hasattr(f, "func"):  # functools.partial
        f = f.func
    code = getattr(f, "__code__", None)
    parts = [getattr(f, "__module__", ""), getattr(f, "__qualname__", type(f).__name__)]
    if code is not None:
        parts += [code.co_code.hex(), repr(code.co_consts)]
        for cell in getattr(f, "__closure__", None) or ():
            try:
                value = cell.cell_contents
            except ValueError:  # an empty cell
                continue
            if isinstance(value, (*_NUMBERS, str, bytes, np.ndarray, jax.Array)):
                parts.append(np.asarray(value).tobytes().hex() + str(np.asarray(value).dtype))
    return "|".join(parts)


def _result_shape(fn, grid):
    """``fn``'s result on one parameter set, as shapes and dtypes (traced, not run); a
    ValueError for a result the chunks cannot hold (random keys)."""
    result = jax.eval_shape(fn, jax.tree.map(lambda x: x[0], grid))
    for path, x in jax.tree_util.tree_flatten_with_path(result)[0]:
        if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
            raise ValueError(
                f"sweep: fn returns a random key at result{jax.tree_util.keystr(path)}; return "
                "jax.random.key_data(key) (its numbers) instead"
            )
    return result


def _out_structure(result_shape) -> str:
    """The result's structure and its leaves' shapes and dtypes (a saiunit quantity's
    with its unit): checked on resume even with ``check_fn=False`` (chunks are read back
    by position)."""
    def describe(x):
        if isinstance(x, u.Quantity):
            return (tuple(x.shape), str(x.mantissa.dtype), str(x.unit))
        return (tuple(x.shape), str(x.dtype))

    return str(jax.tree.map(describe, result_shape, is_leaf=lambda x: isinstance(x, u.Quantity)))


def _chunk_path(out: Path, c: int) -> Path:
    return out / f"chunk_{c:06d}.npz"


def _temporary(path: Path) -> Path:
    """A hidden name beside ``path`` for this process to write before renaming."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def _write_atomic(path: Path, write) -> None:
    tmp = _temporary(path)
    write(tmp)
    os.replace(tmp, path)


def _save_chunk(path: Path, result) -> None:
    leaves, treedef = jax.tree.flatten(result)

    def write(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, *[np.asarray(x) for x in leaves])
            # On disk before the rename: a crash of the machine must not leave a
            # complete-looking name on a partial file.
            f.flush()
            os.fsync(f.fileno())

    _write_atomic(path, write)


def _load_chunk(path: Path, result_shape, rows: int, what: str):
    """Chunk file ``path`` as ``fn``'s result pytree for ``rows`` parameter sets, each
    leaf checked against ``result_shape`` (and given its dtype back: NumPy stores JAX's
    extra floats, e.g. bfloat16, as raw bytes); a ValueError naming the file if it is
    damaged or does not fit."""
    expected, treedef = jax.tree.flatten(result_shape)
    try:
        with np.load(path) as z:
            leaves = [z[f"arr_{i}"] for i in range(len(z.files))]
    except Exception as e:  # truncated, empty or not an .npz at all
        raise ValueError(
            f"{what}: chunk file {path} is damaged ({type(e).__name__}: {e}); delete it and run the "
            "sweep again to recompute that chunk"
        ) from None
    shapes = [(rows, *x.shape) for x in expected]
    if [x.shape for x in leaves] != shapes:
        raise ValueError(
            f"{what}: chunk file {path} holds arrays of shapes {[x.shape for x in leaves]}, expected "
            f"{shapes} ({rows} parameter sets); delete it and run the sweep again to recompute that chunk"
        )
    # Raw bytes (NumPy's "V" kind) of the expected size are a dtype NumPy cannot name
    # (bfloat16) and are read as it; any other dtype than the result's is not this
    # sweep's data (reading float32 bits as int32 would give numbers, wrong ones).
    if any(x.dtype != e.dtype and not (x.dtype.kind == "V" and x.dtype.itemsize == e.dtype.itemsize)
           for x, e in zip(leaves, expected)):
        raise ValueError(
            f"{what}: chunk file {path} holds arrays of dtypes {[str(x.dtype) for x in leaves]}, expected "
            f"{[str(e.dtype) for e in expected]}; delete it and run the sweep again to recompute that chunk"
        )
    leaves = [x if x.dtype == e.dtype else x.view(e.dtype) for x, e in zip(leaves, expected)]
    return jax.tree.unflatten(treedef, leaves)


def _chunk_rows(c: int, n: int, batch_size: int) -> int:
    return min((c + 1) * batch_size, n) - c * batch_size


def _check_manifest(out: Path, old: dict, meta: dict, what: str) -> None:
    """A ValueError unless the manifest ``old`` read from ``out`` is that of ``meta``."""
    if "float" in old and old["float"] != meta["float"]:
        raise ValueError(
            f"{what}: {out} holds results computed in {old['float']}, and this process computes in "
            f"{meta['float']} (jax.config.update('jax_enable_x64', {old['float'] == 'float64'}) before "
            "any computation would match them); precisions must not be mixed in one sweep"
        )
    if "out_structure" in old and "out_structure" in meta and old["out_structure"] != meta["out_structure"]:
        raise ValueError(
            f"{what}: {out} holds results of another structure ({old['out_structure']}; fn now returns "
            f"{meta['out_structure']}); chunks are read back by position, so they must not be mixed "
            "(check_fn=False does not skip this); give another out= or delete the folder"
        )
    # Manifests of earlier versions have no "float" or "out_structure" entry.
    grid_keys = [k for k in meta if k not in ("fn_sha256", "out_structure") and (k != "float" or "float" in old)]
    differ = [k for k in grid_keys if old.get(k) != meta[k]]
    if differ:
        said = ["the grid's values (or dtypes)" if k == "grid_sha256" else f"{k} {old.get(k)!r} there, {meta[k]!r} here"
                for k in differ]
        raise ValueError(
            f"{what}: {out} holds a different sweep: {'; '.join(said)}; give another out= or delete the folder"
        )
    if "fn_sha256" in meta and "fn_sha256" not in old:
        raise ValueError(
            f"{what}: {out} holds a sweep written with check_fn=False (or by an earlier version), so "
            "nothing there says which fn computed its results and this one cannot be checked against "
            "them; pass check_fn=False to take them as this fn's, or give another out="
        )
    if "fn_sha256" in meta and old.get("fn_sha256") != meta["fn_sha256"]:
        raise ValueError(
            f"{what}: {out} holds results of another fn (its traced computation, output or the values "
            "it closes over differ), which must not be mixed with this one's; give another out= or "
            "delete the folder (or, if fn is the same computation written differently, pass "
            "check_fn=False)"
        )


def _prepare_out(out: Path, meta: dict, timeout: float | None) -> None:
    if out.exists() and not out.is_dir():
        raise ValueError(f"sweep: out expects a folder (new, or one of this sweep's), got the file {out}")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"sweep: out={out} cannot be created ({e.strerror}); give a folder this process can write") from None
    manifest = out / _MANIFEST
    if not manifest.exists():
        if jax.process_index() == 0:
            _refuse_chunks_without_manifest(out)
            _create_manifest(manifest, meta)
        else:  # process 0 writes it; the others check theirs against it
            _wait_for(lambda: [] if manifest.exists() else [_MANIFEST], out, timeout)
    _check_manifest(out, _read_manifest(manifest), meta, "sweep")
    _remove_stale_temporaries(out)
    probe = out / f".write_test.{os.getpid()}"
    try:  # before any computing: a folder we cannot write would lose the first chunk's work
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise ValueError(f"sweep: out={out} is not writable ({e.strerror}); give a folder this process can write") from None


def _refuse_chunks_without_manifest(out: Path) -> None:
    """A ValueError if ``out``, which has no manifest, holds chunk files: nothing says
    which sweep (grid, ``fn``) they belong to, and a new manifest beside them would make
    them this sweep's results (they are found by name and not recomputed)."""
    chunks = sorted(out.glob("chunk_*.npz"))
    # A manifest written meanwhile (a sweep starting here at the same moment; it writes
    # chunks only after its manifest) makes them that sweep's, checked against this one.
    if chunks and not (out / _MANIFEST).exists():
        raise ValueError(
            f"sweep: {out} holds {len(chunks)} chunk file(s) (e.g. {chunks[0].name}) but no {_MANIFEST}, so "
            "which sweep they belong to is unknown and they would be taken as this sweep's results; delete "
            "the chunk files to start afresh, give another out=, or put back the manifest of the sweep that "
            "wrote them to resume it"
        )


#: Seconds after which a temporary chunk file (one a killed process left before its
#: rename) is removed when a sweep starts in its folder: writing one takes seconds, and
#: another process may be writing one now, so only old ones go.
STALE_TEMPORARY_S = 3600.0


def _remove_stale_temporaries(out: Path) -> None:
    now = time.time()
    for tmp in out.glob(".*.tmp"):
        try:
            if now - tmp.stat().st_mtime > STALE_TEMPORARY_S:
                tmp.unlink()
        except OSError:  # removed by another process meanwhile
            pass


def _create_manifest(manifest: Path, meta: dict) -> None:
    """Write ``meta`` as ``manifest`` unless one exists: created by a link, which fails
    when another process created it first (two sweeps started at once into one folder
    are then checked against each other, not both accepted)."""
    tmp = _temporary(manifest)
    tmp.write_text(json.dumps(meta, indent=1))
    try:
        os.link(tmp, manifest)
    except FileExistsError:
        pass
    except OSError:  # a file system without hard links: an exclusive create instead
        try:
            with open(manifest, "x") as f:
                f.write(tmp.read_text())
        except FileExistsError:
            pass
    finally:
        tmp.unlink(missing_ok=True)


def _read_manifest(manifest: Path, attempts: int = 50) -> dict:
    """The manifest's contents (retrying briefly while another process's exclusive
    create is still writing it, on file systems without links)."""
    for _ in range(attempts - 1):
        try:
            return _manifest_contents(manifest)
        except ValueError:
            time.sleep(0.1)
    return _manifest_contents(manifest)


_MANIFEST_KEYS = ("n", "batch_size", "n_chunks", "grid_sha256")


def _manifest_contents(manifest: Path) -> dict:
    """``manifest``'s entries, or a ValueError if it is not a sweep's manifest."""
    try:
        meta = json.loads(manifest.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        meta = None
    if not isinstance(meta, dict) or not all(k in meta for k in _MANIFEST_KEYS):
        raise ValueError(
            f"{manifest} is not a sweep's manifest (it needs the entries {list(_MANIFEST_KEYS)}); give "
            "another out= or delete the folder"
        )
    return meta


def sweep(fn: Callable, grid, *, batch_size: int = 4096, out=None, progress: bool | None = None,
          load: bool = True, on_chunk: Callable[[int], None] | None = None, check_fn: bool = True,
          timeout: float | None = None):
    """Evaluate ``fn`` on every parameter set of ``grid`` and stack the results.

    ``fn(params) -> pytree of arrays``: one parameter set in (``grid``'s structure
    with the leading axis removed), jax-traceable (it is vmapped and jitted).
    ``grid``: a dict (or pytree) of arrays sharing a leading length ``N``, e.g. from
    :func:`product`; a (nested) list or tuple of numbers is one array, its first level
    the parameter sets (``([1, 2, 3], [4, 5, 6])`` is two sets of three values; for
    two parameters of three sets each, use a dict or NumPy arrays), and a list of
    saiunit quantities one quantity array. ``batch_size``: parameter sets per chunk
    (one compiled call, split over all local devices; each ``sweep`` call traces and
    compiles ``fn`` afresh, ~0.25-0.5 s for a simulation, so that what ``fn`` reads from
    outside, e.g. a model redefined in a notebook, is the current one). ``out``: a folder for the
    finished chunks and the manifest (``~`` expanded); an interrupted sweep resumes
    from it. The manifest records the grid, ``fn``'s result structure and a
    fingerprint of ``fn`` (its traced program, simulations traced as ``backend="xla"``
    runs them so that another device count or backend resumes, and the values it
    closes over, random keys included), and resuming into a folder of another grid,
    ``batch_size``, result structure or ``fn`` is refused (``check_fn=False`` skips the
    ``fn`` check, for the same computation written differently); so is a second sweep
    started into the same new folder at the same moment with another grid, and a folder
    holding chunk files but no manifest. Two identical sweeps run at once
    into one folder are both correct but each computes every chunk it does not find
    finished (there is no locking). ``progress``: a tqdm bar (default: only when
    stderr is a terminal). ``on_chunk(c)``: called after chunk ``c`` is computed and
    saved. ``timeout``: with several processes (multi-host), how long (s) a process
    waits for the manifest and the others' chunks before a TimeoutError naming the
    missing chunks (default: no limit; a message every minute names them); run every
    process again into the same folder to finish, no finished chunk is recomputed.
    Returns ``fn``'s result pytree with a leading axis ``N`` (NumPy arrays), or None
    with ``load=False``.

    Each device evaluates its share of a chunk as a program of its own
    (``jax.shard_map`` of ``jax.vmap(fn)``), so a run-time check in ``fn`` that fails
    for one parameter set (e.g. ``Trace.at`` past the run's end) raises its error
    here; a population simulated inside ``fn`` runs on its device in one loop (with
    ``backend="auto"`` or ``"sharded"``: the devices are taken by the sweep). An error
    raised while computing (Ctrl-C's KeyboardInterrupt too) keeps what was finished:
    with ``out``, the chunks saved (its note says so; the same call resumes); without,
    the results of the parameter sets of the chunks finished are the error's
    ``partial_result`` (rows ``0..m-1`` of the grid; ``None`` if none finished).
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
    if timeout is not None:
        timeout = float(units.to_static(timeout, "sweep: timeout", u.second))
        if not timeout > 0:
            raise ValueError(f"sweep: timeout expects None or a positive number of seconds, got {timeout}")
    if out is None and jax.process_count() > 1:
        # Each process computes only its own chunks; the others' reach it only as files.
        raise ValueError(
            f"sweep: with {jax.process_count()} processes (jax.distributed), each computes only its own chunks "
            "and reads the others' from out=, which is not given; give every process the same out=PATH, a "
            "folder they all can read")
    grid = _as_arrays(grid)
    meta = _fingerprint(grid, batch_size)
    n, n_chunks = meta["n"], meta["n_chunks"]
    out = _out_path(out, "sweep")
    result_shape = _result_shape(fn, grid)
    if out is not None:
        meta["out_structure"] = _out_structure(result_shape)
        if check_fn:
            meta["fn_sha256"] = _fn_fingerprint(fn, grid)
        _prepare_out(out, meta, timeout)

    devices = jax.local_devices()
    n_dev = len(devices)
    mesh = jax.sharding.Mesh(np.asarray(devices), ("batch",))
    split = jax.sharding.PartitionSpec("batch")
    sharded = jax.sharding.NamedSharding(mesh, split)
    padded = n_dev * math.ceil(min(batch_size, n) / n_dev)
    # Each device evaluates its share on its own (shard_map, no collectives): as one
    # sharded program, a run-time check failing on one device (eqx.error_if) left the
    # others waiting at the check's all-reduce, and XLA aborted the process.
    run = jax.jit(jax.shard_map(jax.vmap(fn), mesh=mesh, in_specs=split, out_specs=split, check_vma=False))

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

    results, saved = {}, 0
    try:
        for c in todo:
            res = compute(c)
            if out is not None:
                _save_chunk(_chunk_path(out, c), res)
                saved += 1
            if load:
                results[c] = res
            if on_chunk is not None:
                on_chunk(c)
            if bar is not None:
                bar.update(1)
    except BaseException as e:  # Ctrl-C too: what was computed is not lost
        _keep_finished(e, results, saved, out, n, batch_size)
        raise
    finally:
        if bar is not None:
            bar.close()
    if not load:
        return None
    if out is None:
        parts = [results[c] for c in range(n_chunks)]
    else:
        if jax.process_count() > 1:
            _wait_for(lambda: [_chunk_path(out, c).name for c in range(n_chunks) if not _chunk_path(out, c).exists()],
                      out, timeout)
        parts = [results[c] if c in results else
                 _load_chunk(_chunk_path(out, c), result_shape, _chunk_rows(c, n, batch_size), "sweep")
                 for c in range(n_chunks)]
    return _stack_chunks(parts)


def _stack_chunks(parts):
    """The chunks' results (pytrees of arrays with a leading axis) as one, in order."""
    return jax.tree.map(lambda *xs: np.concatenate(xs), *parts)


def _keep_finished(error: BaseException, results: dict, saved: int, out: Path | None, n: int, batch_size: int) -> None:
    """Hand a sweep's finished chunks to ``error`` (an exception, or Ctrl-C's
    KeyboardInterrupt, raised while computing the others): with ``out``, they are in
    its folder, and the same sweep run again resumes; without, the results of the
    parameter sets of the finished chunks before the first unfinished one (rows
    ``0..m-1`` of the grid, stacked as :func:`sweep` returns them) become
    ``error.partial_result`` (``None`` if none finished)."""
    if out is not None:
        error.add_note(f"jn.sweep: the {saved} chunk(s) finished in this call are saved in {out}; "
                       "run the same sweep again to resume from them")
        return
    done = []
    while len(done) in results:
        done.append(results[len(done)])
    rows = min(len(done) * batch_size, n)
    error.partial_result = _stack_chunks(done) if done else None
    error.add_note(f"jn.sweep: the results of the first {rows} of {n} parameter sets (the chunks finished) are this "
                   "exception's partial_result" if done else
                   "jn.sweep: no chunk finished, so this exception's partial_result is None")


def _out_path(out, what: str) -> Path | None:
    if out is None:
        return None
    if not isinstance(out, (str, os.PathLike)) or not str(out).strip():
        raise ValueError(f"{what}: out expects a folder path, got {out!r}")
    return Path(out).expanduser()


#: Seconds between the messages of a process waiting for the others' files.
WAIT_REPORT_S = 60.0


def _wait_for(missing, out: Path, timeout: float | None, poll_s: float = 1.0) -> None:
    """Wait until ``missing()`` (the names of other processes' files in ``out`` not
    there yet) is empty, saying every :data:`WAIT_REPORT_S` seconds which; a
    TimeoutError after ``timeout`` seconds."""
    start = last = time.monotonic()
    while names := missing():
        now = time.monotonic()
        if timeout is not None and now - start > timeout:
            raise TimeoutError(
                f"sweep: process {jax.process_index()} waited {timeout:g} s for {len(names)} file(s) of the other "
                f"processes in {out} (e.g. {names[:5]}); a process may have died. Run every process again into "
                "the same folder: finished chunks are kept, not recomputed"
            )
        if now - last > WAIT_REPORT_S:
            print(f"sweep: process {jax.process_index()} still waiting for {len(names)} file(s) in {out} "
                  f"(e.g. {names[:5]})", file=sys.stderr, flush=True)
            last = now
        time.sleep(poll_s)


def load(out, fn: Callable, grid, *, check_fn: bool = True):
    """Read a finished sweep from its folder ``out`` (as ``sweep`` returns it);
    ``fn`` and ``grid`` give the result's structure and must be the sweep's (checked
    against its manifest as :func:`sweep` does). A ValueError if chunks are missing."""
    check_fn = units.flag(check_fn, "load: check_fn")
    out = _out_path(out, "load")
    if not (out / _MANIFEST).is_file():
        raise ValueError(f"load: {out} holds no sweep (no {_MANIFEST}); give the folder a sweep wrote with out=")
    meta = _manifest_contents(out / _MANIFEST)
    grid = _as_arrays(grid)
    mine = _fingerprint(grid, meta["batch_size"])
    result_shape = _result_shape(fn, grid)
    mine["out_structure"] = _out_structure(result_shape)
    if check_fn:
        mine["fn_sha256"] = _fn_fingerprint(fn, grid)
    _check_manifest(out, meta, mine, "load")
    missing = [c for c in range(meta["n_chunks"]) if not _chunk_path(out, c).exists()]
    if missing:
        raise ValueError(f"load: {len(missing)} of {meta['n_chunks']} chunks missing in {out} (e.g. {missing[:5]})")
    parts = [_load_chunk(_chunk_path(out, c), result_shape, _chunk_rows(c, mine["n"], meta["batch_size"]), "load")
             for c in range(meta["n_chunks"])]
    return jax.tree.map(lambda *xs: np.concatenate(xs), *parts)


# jn.sweep(...) runs sweep(); jn.sweep.load and jn.sweep.product stay reachable.
make_callable(__name__, sweep)
