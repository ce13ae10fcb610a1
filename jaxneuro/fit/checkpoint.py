"""Saving and restoring a fit in progress.

A checkpoint is a folder with two files:

- ``state-<step>.eqx``: the optimiser's unconstrained parameters and its state, and the
  step they belong to, written by ``eqx.tree_serialise_leaves`` (exact binary arrays);
- ``state.json``: the step, the name of that file, the parameter names, shapes and
  transforms, a description of the optimiser (:func:`describe_optimizer`), the loss
  and parameter history so far and the non-finite events (floats written as their
  shortest exact decimal, so they read back bit for bit).

Each file is written to a temporary name and renamed into place, the state first and
``state.json`` last: replacing ``state.json`` is the one moment a checkpoint changes,
so a run killed at any point leaves the previous or the new pair, both complete. Older
state files are removed after.
"""

from __future__ import annotations

import json
import math
import os
import types
from pathlib import Path

import equinox as eqx
import jax.numpy as jnp
import numpy as np

FORMAT = 3  # 3: the optimiser is described in state.json

# How deep describe_optimizer follows closures: optax's chains nest about six levels.
_MAX_DEPTH = 12
# Arrays in closures up to this size are described by their values, larger by shape.
_MAX_VALUES = 16


def describe_optimizer(obj, depth: int = 0):
    """An optax optimiser as plain JSON data, to tell a checkpoint's optimiser from another.

    Call it on ``optimizer.update``: each function is described by its module and
    qualified name, the values its closure holds (learning rates, decays, flags, small
    arrays; nested functions, tuples and dicts in turn) and its defaults; other objects
    by their type. No object ids or addresses enter, so the same optimiser gives the
    same description in every process.
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
                "defaults": describe_optimizer(obj.__defaults__ or (), depth + 1)}
    if isinstance(obj, type):
        return f"{obj.__module__}.{obj.__qualname__}"
    return type(obj).__qualname__


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
        d = _first_difference(x, y, where if key in (None, "function", "closure", "defaults") else key)
        if d:
            return d
    return None if len(a) == len(b) else (where, f"{len(a)} long", f"{len(b)} long")


def _short(x, n=80) -> str:
    r = repr(x)
    return r if len(r) <= n else r[: n - 3] + "..."


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


def load(path, *, like_u, like_opt_state, meta: dict):
    """Read a checkpoint written by :func:`save`; returns ``(step, u, opt_state,
    loss_history, param_history, events)``. ValueError when the checkpoint belongs to
    a different fit (other parameter names, shapes, transforms, number of starts or
    optimizer: every entry of ``meta`` must equal the checkpoint's)."""
    path = Path(path)
    doc = json.loads((path / "state.json").read_text())
    if doc.get("format") != FORMAT:
        raise ValueError(
            f"checkpoint {path}: format {doc.get('format')!r}, this version reads format {FORMAT}; "
            "use another checkpoint path or resume=False"
        )
    for key, value in meta.items():
        if key == "optimizer" and doc.get(key) != value:
            d = _first_difference(doc.get(key), value)
            detail = "" if d is None else f" (first difference: {d[0]} is {_short(d[1])} there, {_short(d[2])} here)"
            raise ValueError(
                f"checkpoint {path} belongs to a different fit: it was written with another optimizer "
                f"(another optax optimiser or other settings){detail}; resume with the same optimizer, "
                "or use another checkpoint path or resume=False"
            )
        if doc.get(key) != value:
            raise ValueError(
                f"checkpoint {path} belongs to a different fit: its {key} is {doc.get(key)!r}, "
                f"this fit's is {value!r}; use another checkpoint path or resume=False"
            )
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
    loss_history = np.asarray(doc["loss_history"], dtype=doc["loss_dtype"])
    param_history = {k: np.asarray(v, dtype=doc["param_dtypes"][k]) for k, v in doc["param_history"].items()}
    return doc["step"], u, opt_state, loss_history, param_history, doc["nonfinite"]
