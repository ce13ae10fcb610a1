"""Saving and restoring a fit in progress.

A checkpoint is a folder with two files:

- ``state-<step>.eqx``: the optimiser's unconstrained parameters and its state, and the
  step they belong to, written by ``eqx.tree_serialise_leaves`` (exact binary arrays);
- ``state.json``: the step, the name of that file, the parameter names, shapes and
  transforms, a description of the optimiser (:func:`describe_optimizer`), a
  fingerprint of the starting model and values (:func:`fingerprint`), the loss
  and parameter history so far and the non-finite events (floats written as their
  shortest exact decimal, so they read back bit for bit).

Each file is written to a temporary name and renamed into place, the state first and
``state.json`` last: replacing ``state.json`` is the one moment a checkpoint changes,
so a run killed at any point leaves the previous or the new pair, both complete. Older
state files are removed after.

A fit with ``resume=False`` reads ``state.json`` first (:func:`check_fresh`): a
checkpoint of another fit (compared as a resume compares it), of another format, or
damaged is refused rather than overwritten by its first save.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import types
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

FORMAT = 4  # 3: the optimiser is described in state.json; 4: its init too, and the start

# How deep describe_optimizer follows closures: optax's chains nest about six levels.
_MAX_DEPTH = 12
# Arrays in closures up to this size are described by their values, larger by shape.
_MAX_VALUES = 16


def describe_optimizer(obj, depth: int = 0):
    """An optax optimiser as plain JSON data, to tell a checkpoint's optimiser from another.

    Call it on ``(optimizer.init, optimizer.update)``: the init holds what
    ``optax.inject_hyperparams`` keeps in the state (its learning rate). Each function
    is described by its module and qualified name, the values its closure holds
    (learning rates, decays, flags, small arrays; nested functions, tuples and dicts in
    turn), its defaults and the numbers written in its code (a schedule
    ``lambda c: 0.05 * 0.9 ** c``); other objects by their type. No object ids or
    addresses enter, so the same optimiser gives the same description in every process.
    """
    if depth > _MAX_DEPTH:
        return "..."
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else repr(obj)  # JSON's NaN would not compare equal
    if isinstance(obj, (np.ndarray, np.generic)) or type(obj).__module__.startswith("jax"):
        try:
            arr = np.asarray(obj)
        except Exception:  # not an array after all (a jax object of another kind)
            return type(obj).__qualname__
        if arr.size > _MAX_VALUES or arr.dtype.kind not in "biuf":
            return f"array{arr.shape} {arr.dtype}"
        return describe_optimizer(arr.tolist(), depth)
    if isinstance(obj, (tuple, list)):
        return [describe_optimizer(o, depth + 1) for o in obj]
    if isinstance(obj, dict):
        return {str(k): describe_optimizer(v, depth + 1) for k, v in obj.items()}
    if isinstance(obj, types.MethodType):
        obj = obj.__func__
    if isinstance(obj, types.FunctionType):
        closure = {}
        for name, cell in zip(obj.__code__.co_freevars, obj.__closure__ or ()):
            try:
                closure[name] = describe_optimizer(cell.cell_contents, depth + 1)
            except ValueError:  # an empty cell
                closure[name] = None
        return {"function": f"{obj.__module__}.{obj.__qualname__}", "closure": closure,
                "defaults": describe_optimizer(obj.__defaults__ or (), depth + 1),
                "constants": _code_numbers(obj.__code__)}
    if isinstance(obj, type):
        return f"{obj.__module__}.{obj.__qualname__}"
    return type(obj).__qualname__


def _code_numbers(code) -> list:
    """The numbers written in a function's code (nested functions' too): a lambda
    schedule holds its rates there, not in its closure."""
    out = []
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            out += _code_numbers(c)
        elif isinstance(c, (int, float)) and not isinstance(c, bool):
            out.append(c if math.isfinite(c) else repr(c))
    return out


def fingerprint(tree) -> dict:
    """``{path: digest}`` of each leaf of ``tree`` (a model, or start values): a
    BLAKE2 digest of an array's dtype, shape and bytes, or of another leaf's
    description (a function by its name, closure and constants, as
    :func:`describe_optimizer`); the key ``"<structure>"`` holds the tree's structure,
    with no object addresses. Cheap and deterministic, so a resume can tell whether it
    starts from the model that made the checkpoint."""
    def digest(data: bytes) -> str:
        return hashlib.blake2b(data, digest_size=8).hexdigest()

    leaves, treedef = jax.tree_util.tree_flatten_with_path(tree)
    out = {"<structure>": digest(re.sub(r" at 0x[0-9a-fA-F]+", "", str(treedef)).encode())}
    for path, leaf in leaves:
        if isinstance(leaf, jax.Array) and jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            leaf = jax.random.key_data(leaf)
        if isinstance(leaf, (np.ndarray, np.generic, jax.Array)):
            arr = np.asarray(leaf)
            data = f"{arr.dtype.str}{arr.shape}".encode() + np.ascontiguousarray(arr).tobytes()
        else:
            data = json.dumps(describe_optimizer(leaf), sort_keys=True).encode()
        out[jax.tree_util.keystr(path).lstrip(".") or "<root>"] = digest(data)
    return out


def _first_difference(a, b, where="optimizer"):
    """``(where, a_part, b_part)`` at the first place two descriptions differ, or None;
    ``where`` is the closure variable (``"learning_rate"``) holding that place."""
    if isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys():
        pairs = [(k, a[k], b[k]) for k in a]
    elif isinstance(a, list) and isinstance(b, list):
        pairs = [(None, x, y) for x, y in zip(a, b)]
    else:
        return None if a == b else (where, a, b)
    for key, x, y in pairs:
        d = _first_difference(x, y, where if key in (None, "function", "closure", "defaults", "constants",
                                                     "init", "update") else key)
        if d:
            return d
    return None if len(a) == len(b) else (where, f"{len(a)} long", f"{len(b)} long")


def _short(x, n=80) -> str:
    r = repr(x)
    return r if len(r) <= n else r[: n - 3] + "..."


def check_folder(path) -> None:
    """ValueError (naming ``checkpoint``) when ``path`` cannot be a checkpoint folder: not
    a path, or an existing file (or a path under one). Nothing is created or changed."""
    try:
        path = Path(path)
    except TypeError:
        raise ValueError(f"checkpoint expects a folder path (a str or os.PathLike), got {path!r}") from None
    for p in (path, *path.parents):
        if p.is_dir():
            return
        if p.exists():  # a file (or something else that is not a folder): never touched
            where = f"{str(p)!r} is a file" if p == path else f"its parent {str(p)!r} is a file"
            raise ValueError(
                f"checkpoint expects a folder path (it holds the fit's state files), got {str(path)!r}: "
                f"{where}; give a new or existing folder instead"
            )


def save(path, *, step: int, u, opt_state, meta: dict, loss_history, param_history, events) -> None:
    """Write the fit's state after ``step`` completed steps to the folder ``path``."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    state_file = f"state-{int(step)}.eqx"
    tmp = path / f"{state_file}.tmp"
    eqx.tree_serialise_leaves(tmp, (jnp.asarray(step), u, opt_state))
    os.replace(tmp, path / state_file)
    doc = {
        "format": FORMAT,
        "step": int(step),
        "state_file": state_file,
        **meta,
        "loss_history": np.asarray(loss_history).tolist(),
        "loss_dtype": np.asarray(loss_history).dtype.name if len(loss_history) else "float64",
        "param_history": {k: np.asarray(v).tolist() for k, v in param_history.items()},
        "param_dtypes": {k: np.asarray(v).dtype.name if len(v) else "float64" for k, v in param_history.items()},
        "nonfinite": [e.as_dict() for e in events],
    }
    tmp = path / "state.json.tmp"
    tmp.write_text(json.dumps(doc))
    os.replace(tmp, path / "state.json")  # the checkpoint now is the new pair
    for old in path.glob("state-*.eqx"):
        if old.name != state_file:
            old.unlink(missing_ok=True)


def exists(path) -> bool:
    """Whether the folder ``path`` holds a checkpoint: its ``state.json`` (written last,
    so a run killed before its first checkpoint leaves none). A ``state.json`` that
    cannot be read, or whose state file is missing, is a ValueError: resuming would
    otherwise start afresh and overwrite it."""
    path = Path(path)
    if not (path / "state.json").exists():
        return False
    try:
        doc = json.loads((path / "state.json").read_text())
        state = path / doc["state_file"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(
            f"checkpoint {path}: state.json cannot be read ({type(e).__name__}: {e}); it was damaged "
            "after it was written (jaxneuro replaces it whole). Restore it, delete the folder to start "
            "afresh, or use another checkpoint path"
        ) from None
    if not state.is_file():
        raise ValueError(
            f"checkpoint {path}: state.json names {state.name}, which is missing (removed after it was "
            "written?). Restore it, delete the folder to start afresh, or use another checkpoint path"
        )
    return True


def _difference(doc: dict, meta: dict, keys) -> tuple[str, str] | None:
    """``(key, phrase)`` for the first of ``keys`` where the checkpoint ``doc`` differs
    from this fit's ``meta`` (``phrase`` says how, e.g. "its names is ['gL'], this fit's
    is ['gL', 'EL']"), or None where they agree: the one comparison that tells a
    checkpoint of this fit from another fit's, for :func:`load` and :func:`check_fresh`."""
    for key in keys:
        value = meta.get(key)
        if key in ("model", "start"):
            if value is None or doc.get(key) == value:
                continue
            old = doc.get(key) or {}
            differ = [k for k in sorted(set(old) | set(value)) if old.get(k) != value.get(k)]
            what = ", ".join(differ[:5]) + (f" and {len(differ) - 5} more" if len(differ) > 5 else "")
            return key, ("it was started from another model (its leaves differ at " if key == "model" else
                         "it was started from other start values (init, or the key that sampled them; they "
                         "differ at ") + f"{what})"
        if key == "on_nonfinite" and key not in doc:  # written before it was recorded
            continue
        if doc.get(key) == value:
            continue
        if key == "optimizer":
            d = _first_difference(doc.get(key), value)
            detail = "" if d is None else f" (first difference: {d[0]} is {_short(d[1])} there, {_short(d[2])} here)"
            return key, f"it was written with another optimizer (another optax optimiser or other settings){detail}"
        return key, f"its {key} is {doc.get(key)!r}, this fit's is {value!r}"
    return None


def check_fresh(path, meta: dict) -> int | None:
    """Before a fit with ``resume=False`` writes to the folder ``path``: None when it holds
    no checkpoint, the number of steps it holds when it is a checkpoint of this same fit
    (every entry of ``meta`` equal, as :func:`load` compares them; the caller warns that
    it starts over), else a ValueError naming the checkpoint: another fit's (or one of
    another format, or damaged) would be lost to the first save. Reads only
    ``state.json``; changes nothing."""
    if not exists(path):  # a damaged checkpoint is a ValueError there
        return None
    path = Path(path)
    doc = json.loads((path / "state.json").read_text())
    held = doc.get("step")
    held = f"{held} step(s)" if isinstance(held, int) else "the state"
    keep = (f"resume=False would start afresh and overwrite it, losing them. Give another checkpoint path, or "
            f"delete the folder {str(path)!r} to discard it")
    if doc.get("format") != FORMAT:
        raise ValueError(
            f"checkpoint {path} holds {held} of a fit saved in format {doc.get('format')!r} (another jaxneuro "
            f"version; this one reads format {FORMAT}), which cannot be compared with this fit: {keep}"
        )
    d = _difference(doc, meta, meta.keys())
    here = jnp.dtype(float).name
    if d is not None and d[0] in ("model", "start") and doc.get("loss_dtype", here) != here:
        # In the other precision every leaf's bytes differ: name the cause, not the leaves.
        d = (d[0], f"it was written in another precision (its losses are {doc['loss_dtype']}, this fit's are "
                   f"{here}: jax_enable_x64 is set differently?)")
    if d is not None:
        raise ValueError(
            f"checkpoint {path} holds {held} of a different fit: {d[1]}. {keep}; or, to continue that fit, "
            "call jn.fit with the model, params, transforms, starts and optimizer that made it and resume=True"
        )
    return doc["step"]


def load(path, *, like_u, like_opt_state, meta: dict):
    """Read a checkpoint written by :func:`save`; returns ``(step, u, opt_state,
    loss_history, param_history, events)``. ValueError when the checkpoint belongs to
    a different fit (other parameter names, shapes, transforms, number of starts,
    optimizer or ``on_nonfinite``, starting model or start values: every entry of
    ``meta`` must equal the checkpoint's)."""
    path = Path(path)
    doc = json.loads((path / "state.json").read_text())
    if doc.get("format") != FORMAT:
        raise ValueError(
            f"checkpoint {path}: format {doc.get('format')!r}, this version reads format {FORMAT}; "
            "use another checkpoint path or resume=False"
        )
    # "model" and "start" after the precision check below: in another, every leaf differs.
    d = _difference(doc, meta, [k for k in meta if k not in ("model", "start")])
    if d is not None and d[0] == "optimizer":
        raise ValueError(
            f"checkpoint {path} belongs to a different fit: {d[1]}; resume with the same optimizer, "
            "or use another checkpoint path or resume=False"
        )
    if d is not None:
        raise ValueError(f"checkpoint {path} belongs to a different fit: {d[1]}; use another checkpoint path or "
                         "resume=False")
    try:
        step_arr, u, opt_state = eqx.tree_deserialise_leaves(
            path / doc["state_file"], (jnp.asarray(0), like_u, like_opt_state))
    except Exception as e:
        # The optimiser's description matched above, so what differs is the precision
        # or the file itself.
        if "dtype" in str(e):
            raise ValueError(
                f"checkpoint {path} was written in another precision (its losses are "
                f"{doc.get('loss_dtype')}, this fit's are {jnp.dtype(float).name}: jax_enable_x64 is set "
                f"differently?); resume in the precision it was written in, or use another checkpoint "
                f"path or resume=False ({type(e).__name__}: {e})"
            ) from None
        raise ValueError(
            f"checkpoint {path}: {doc['state_file']} cannot be read as this fit's optimiser state "
            f"(damaged or truncated, or written by another version of the optimiser); restore it, "
            f"delete the folder to start afresh, or use another checkpoint path ({type(e).__name__}: {e})"
        ) from None
    if int(step_arr) != doc["step"]:
        raise ValueError(
            f"checkpoint {path} is inconsistent: {doc['state_file']} holds step {int(step_arr)}, state.json "
            f"step {doc['step']} (the run stopped while writing); delete the folder to start afresh"
        )
    d = _difference(doc, meta, ("model", "start"))
    if d is not None:
        raise ValueError(
            f"checkpoint {path} belongs to a different fit: {d[1]}; resuming would report that fit's history "
            "for this one. Resume with the model, init and key that made it, or start afresh: delete the "
            "folder, use another checkpoint path, or resume=False"
        )
    loss_history = np.asarray(doc["loss_history"], dtype=doc["loss_dtype"])
    param_history = {k: np.asarray(v, dtype=doc["param_dtypes"][k]) for k, v in doc["param_history"].items()}
    return doc["step"], u, opt_state, loss_history, param_history, doc["nonfinite"]
