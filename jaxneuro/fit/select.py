"""Which leaves of a model are trained: names, default transforms, get and replace."""

from __future__ import annotations

import dataclasses
import reprlib

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

from .transforms import AbstractTransform, Identity, Positive


class _Marker:
    """Stands in for leaf ``index`` while the user's selector runs."""

    def __init__(self, index: int):
        self.index = index


def _name(path) -> str:
    return jax.tree_util.keystr(path).lstrip(".")


def _field_metadata(model, path) -> dict:
    """The ``units.param`` metadata of the dataclass field holding the leaf at ``path``
    (empty when the leaf is not a whole field of a module)."""
    if not path or not isinstance(path[-1], jax.tree_util.GetAttrKey):
        return {}
    obj = model
    for key in path[:-1]:
        if isinstance(key, jax.tree_util.GetAttrKey):
            obj = getattr(obj, key.name)
        elif isinstance(key, jax.tree_util.SequenceKey):
            obj = obj[key.idx]
        elif isinstance(key, jax.tree_util.DictKey):
            obj = obj[key.key]
        else:
            return {}
    if not dataclasses.is_dataclass(obj):
        return {}
    for f in dataclasses.fields(obj):
        if f.name == path[-1].name:
            return dict(f.metadata)
    return {}


def _static_fields_holding(obj, value, prefix="") -> list[str]:
    """Paths of the static fields in ``obj`` (modules, nested in fields, lists and
    dicts) that hold ``value`` (same type, equal): to name what a selector picked."""
    found = []
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for f in dataclasses.fields(obj):
            child = getattr(obj, f.name, None)
            path = f"{prefix}{f.name}"
            if f.metadata.get("static"):
                try:
                    if type(child) is type(value) and bool(child == value):
                        found.append(path)
                except Exception:  # values that do not compare to one bool
                    pass
            else:
                found += _static_fields_holding(child, value, path + ".")
    elif isinstance(obj, (list, tuple)):
        for i, child in enumerate(obj):
            found += _static_fields_holding(child, value, f"{prefix.rstrip('.')}[{i}].")
    elif isinstance(obj, dict):
        for k, child in obj.items():
            found += _static_fields_holding(child, value, f"{prefix.rstrip('.')}[{k!r}].")
    return found


class Selection:
    """The leaves of ``model`` picked by ``where`` (a function of the model returning a
    leaf, a module, or a tuple/list of them, as ``eqx.tree_at`` takes).

    ``names``: each leaf's path in the model (``"gL"``, ``"channels[0].gnabar"``), in
    selection order; ``metadata``: each leaf's ``units.param`` metadata (may be empty).
    """

    def __init__(self, model, where):
        if not callable(where):
            raise ValueError(
                "params expects a function of the model selecting the leaves to fit, e.g. "
                f"params=lambda m: m.gL, got {where!r}"
            )
        flat, self._treedef = jax.tree_util.tree_flatten_with_path(model)
        if not any(eqx.is_array_like(leaf) and not isinstance(leaf, bool) for _, leaf in flat):
            # Else the selector fails on it, and the message would blame the selector.
            raise ValueError(
                "model expects an Equinox module (or another pytree) holding the parameters to fit, "
                f"e.g. jn.LIF(...), got {model!r}"
            )
        self._n_leaves = len(flat)
        marked = jax.tree_util.tree_unflatten(self._treedef, [_Marker(i) for i in range(len(flat))])
        try:
            picked = where(marked)
        except Exception as e:
            raise ValueError(
                f"params: the selector failed on the model ({type(e).__name__}: {e}); it must return "
                "fields of the model that hold parameters, not values computed from them (a property "
                "such as LIF.tau_m = C/gL: select C and gL)"
            ) from e
        picked_tree = picked
        picked = jax.tree_util.tree_leaves(picked, is_leaf=lambda x: isinstance(x, _Marker))
        if not picked:
            raise ValueError(
                f"params selected no parameter of the model (it returned {picked_tree!r}): static fields "
                "(e.g. n, spike_capacity, surrogate) and fields left None hold none"
            )
        for p in picked:
            if not isinstance(p, _Marker):
                fields, shown = _static_fields_holding(model, p), p
                # A static field holding several numbers (a Cable's arc3d), selected
                # alone or in a list or tuple.
                parts = [picked_tree] + (list(picked_tree) if isinstance(picked_tree, (list, tuple)) else [])
                for part in parts if not fields else ():
                    fields, shown = _static_fields_holding(model, part), part
                    if fields:
                        break
                shown = shown if fields else p
                which = f" (the static field {' or '.join(fields)})" if fields else ""
                raise ValueError(
                    f"params selected {reprlib.repr(shown)}{which}, which is not a parameter leaf of the "
                    "model (static fields and computed properties cannot be fitted)"
                )
        self.indices = tuple(p.index for p in picked)
        if len(set(self.indices)) != len(self.indices):
            raise ValueError("params selects the same leaf more than once")
        self.names = tuple(_name(flat[i][0]) for i in self.indices)
        # Per leaf: None when the selector returned it itself, else what it was part of
        # ("the whole model", "the module channels[0]"): to say why it was fitted.
        via = {}
        self._note_modules(picked_tree, flat, via)
        self.via = tuple(via.get(i) for i in self.indices)
        self.metadata = tuple(_field_metadata(model, flat[i][0]) for i in self.indices)
        self.units = tuple(m.get("unit") for m in self.metadata)

    # Equal by what they select (the model's structure and the leaves), not by identity:
    # the selection is a static field of FitResult, whose structure (as JAX compares
    # pytrees) then matches another result of a fit of the same shape.
    def __eq__(self, other):
        if not isinstance(other, Selection):
            return NotImplemented
        if (self.indices, self.names) != (other.indices, other.names):
            return False
        try:
            return bool(self._treedef == other._treedef) or str(self._treedef) == str(other._treedef)
        except (TypeError, ValueError):  # static fields that do not compare to one bool
            return False

    def __hash__(self):
        return hash((self.indices, self.names))

    def _note_modules(self, tree, flat, via) -> None:
        """Record in ``via`` (leaf index -> description) the leaves that ``tree`` (what
        the selector returned) selected as part of a module rather than one by one."""
        if isinstance(tree, _Marker):
            return
        if isinstance(tree, (tuple, list)):
            for t in tree:
                self._note_modules(t, flat, via)
            return
        markers = jax.tree_util.tree_leaves(tree, is_leaf=lambda x: isinstance(x, _Marker))
        indices = [m.index for m in markers if isinstance(m, _Marker)]
        if not indices:
            return
        if len(indices) == self._n_leaves:
            what = "the whole model"
        else:
            paths = [flat[i][0] for i in indices]
            prefix = paths[0][: min(len(p) for p in paths)]
            for p in paths[1:]:
                n = 0
                while n < len(prefix) and prefix[n] == p[n]:
                    n += 1
                prefix = prefix[:n]
            if len(indices) == 1:  # the module's path is its one leaf's, less the field
                prefix = prefix[:-1]
            what = f"the module {_name(prefix)}" if prefix else "a module"
        for i in indices:
            via.setdefault(i, what)

    def explain(self, k: int, error: ValueError) -> ValueError:
        """``error`` about selected parameter ``k``, saying that ``params`` selected it as
        part of a module or the whole model when it did (the user may not know it is fitted)."""
        if self.via[k] is None:
            return error
        others = [n for j, n in enumerate(self.names) if j != k][:2]
        paths = ", ".join("m" + ("" if n.startswith("[") else ".") + n for n in others)
        example = f", e.g. params=lambda m: ({paths}{',' if len(others) == 1 else ''})" if others else ""
        return ValueError(
            f"{error}; {self.names[k]!r} was selected by params, which returned {self.via[k]}: selecting "
            f"a module (or the whole model) selects every parameter in it. Select only the parameters to "
            f"fit{example}"
        )

    def values(self, model) -> tuple:
        leaves = jax.tree_util.tree_leaves(model)
        return tuple(jnp.asarray(leaves[i]) for i in self.indices)

    def replace(self, model, values) -> object:
        """``model`` with the selected leaves set to ``values`` (same order)."""
        leaves, treedef = jax.tree_util.tree_flatten(model)
        # After pickling, a treedef holding Equinox's "missing field" sentinels no longer
        # equals the live one (the sentinel is a new object): compare the printed form then.
        if treedef != self._treedef and str(treedef) != str(self._treedef):
            raise ValueError("the model's structure differs from the one the selection was made on")
        leaves = list(leaves)
        for i, v in zip(self.indices, values):
            leaves[i] = v
        return jax.tree_util.tree_unflatten(treedef, leaves)

    def default_transform(self, k: int) -> AbstractTransform:
        """:class:`Positive` for a parameter declared ``check="positive"`` or
        ``"nonnegative"``, else :class:`Identity`."""
        return Positive() if self.metadata[k].get("check") in ("positive", "nonnegative") else Identity()

    def transforms(self, spec) -> tuple[AbstractTransform, ...]:
        """One transform per selected leaf from ``spec``: ``None`` (defaults), one
        transform for all, a sequence in selection order, or a dict by name."""
        n = len(self.indices)
        if spec is None:
            out = [self.default_transform(k) for k in range(n)]
        elif isinstance(spec, AbstractTransform):
            out = [spec] * n
        elif isinstance(spec, dict):
            unknown = [k for k in spec if k not in self.names]
            if unknown:
                raise ValueError(f"transforms: unknown parameter name(s) {unknown}; the fitted parameters are {list(self.names)}")
            out = [spec.get(name, self.default_transform(k)) for k, name in enumerate(self.names)]
        elif isinstance(spec, optax.GradientTransformation):  # a NamedTuple, not transforms
            raise ValueError(
                "transforms expects jn.fit transforms (Identity, Positive, Bounded), got an optax "
                "optimizer; pass it as optimizer=..."
            )
        elif isinstance(spec, (tuple, list)):
            if len(spec) != n:
                raise ValueError(f"transforms: expected {n} transforms (one per parameter {list(self.names)}), got {len(spec)}")
            out = list(spec)
        else:
            raise ValueError(
                "transforms expects None, a transform, a sequence of transforms or a dict "
                f"{{parameter name: transform}}, got {spec!r}"
            )
        for name, tf in zip(self.names, out):
            if not isinstance(tf, AbstractTransform):
                raise ValueError(f"transforms[{name!r}] expects a jn.fit transform (Identity, Positive, Bounded), got {tf!r}")
        return tuple(tf.with_unit(u, name) if u is not None else tf
                     for tf, u, name in zip(out, self.units, self.names))
