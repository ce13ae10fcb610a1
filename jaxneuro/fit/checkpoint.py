"""Saving and restoring a fit in progress.

A checkpoint is a folder with two files:

- ``state-<step>.eqx``: the optimiser's unconstrained parameters and its state, and the
  step they belong to, written by ``eqx.tree_serialise_leaves`` (exact binary arrays);
- ``state.json``: the step, the name of that file, the parameter names, shapes and
  transforms, the loss and parameter history so far and the non-finite events (floats
  written as their shortest exact decimal, so they read back bit for bit).

Each file is written to a temporary name and renamed into place, the state first and
``state.json`` last: replacing ``state.json`` is the one moment a checkpoint changes,
so a run killed at any point leaves the previous or the new pair, both complete. Older
state files are removed after.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import equinox as eqx
import jax.numpy as jnp
import numpy as np

FORMAT = 2


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


def _state_file(path: Path) -> Path | None:
    try:
        doc = json.loads((path / "state.json").read_text())
    except (OSError, ValueError):
        return None
    return path / doc.get("state_file", "state.eqx")


def exists(path) -> bool:
    path = Path(path)
    state = _state_file(path)
    return state is not None and state.is_file()


def load(path, *, like_u, like_opt_state, meta: dict):
    """Read a checkpoint written by :func:`save`; returns ``(step, u, opt_state,
    loss_history, param_history, events)``. ValueError when the checkpoint belongs to
    a different fit (other parameter names, shapes, transforms or number of starts)."""
    path = Path(path)
    doc = json.loads((path / "state.json").read_text())
    if doc.get("format") != FORMAT:
        raise ValueError(
            f"checkpoint {path}: format {doc.get('format')!r}, this version reads format {FORMAT}; "
            "use another checkpoint path or resume=False"
        )
    for key, value in meta.items():
        if doc.get(key) != value:
            raise ValueError(
                f"checkpoint {path} belongs to a different fit: its {key} is {doc.get(key)!r}, "
                f"this fit's is {value!r}; use another checkpoint path or resume=False"
            )
    try:
        step_arr, u, opt_state = eqx.tree_deserialise_leaves(
            path / doc["state_file"], (jnp.asarray(0), like_u, like_opt_state))
    except Exception as e:  # the saved state has another structure
        raise ValueError(
            f"checkpoint {path}: its optimiser state does not match this fit's optimizer (another "
            f"optimiser or settings?); resume with the same optimizer, or use another checkpoint path "
            f"or resume=False ({type(e).__name__}: {e})"
        ) from None
    if int(step_arr) != doc["step"]:
        raise ValueError(
            f"checkpoint {path} is inconsistent: {doc['state_file']} holds step {int(step_arr)}, state.json "
            f"step {doc['step']} (the run stopped while writing); delete the folder to start afresh"
        )
    loss_history = np.asarray(doc["loss_history"], dtype=doc["loss_dtype"])
    param_history = {k: np.asarray(v, dtype=doc["param_dtypes"][k]) for k, v in doc["param_history"].items()}
    return doc["step"], u, opt_state, loss_history, param_history, doc["nonfinite"]
