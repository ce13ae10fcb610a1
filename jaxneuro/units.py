"""Base units and the one place where saiunit quantities become plain floats.

jaxneuro computes in one coherent system, the one NEURON users think in:

=============  =========  ==========================================
quantity       base unit  density form (per membrane area)
=============  =========  ==========================================
time           ms
voltage        mV
current        nA         mA/cm² (channel currents, NEURON convention)
conductance    µS         S/cm² (channel ``g``)
capacitance    nF         µF/cm² (``cm``)
resistance     MΩ         axial ``Ra`` in Ω·cm
length         µm         area in µm²
temperature    °C
frequency      Hz
=============  =========  ==========================================

nA = µS·mV and nF·mV/ms = nA, so absolute point-neuron equations need no factors.

Every public parameter accepts a plain number, read in the unit its docstring names,
or a ``saiunit.Quantity``, converted once when the module is built. A quantity of the
wrong dimension raises a ``ValueError`` naming the parameter, the expected and the
given dimension.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import saiunit as u

from ._static_cache import keep_while_alive, recall

__all__ = [
    "ms", "mV", "nA", "uS", "nF", "Mohm", "um", "um2", "Hz", "celsius",
    "mA_per_cm2", "S_per_cm2", "uF_per_cm2", "ohm_cm",
    "to_base", "param", "convert_fields", "is_concrete",
]

# Base units, as saiunit units.
ms = u.ms
mV = u.mV
nA = u.nA
uS = u.uS
nF = u.nF
Mohm = u.Mohm
um = u.um
um2 = u.um**2
Hz = u.Hz
mA_per_cm2 = u.mA / u.cm**2
S_per_cm2 = u.siemens / u.cm**2
uF_per_cm2 = u.uF / u.cm**2
ohm_cm = u.ohm * u.cm
#: ms², the unit of a spike-time loss (and of its ``count_weight``).
ms2 = u.ms**2
#: Temperatures are plain numbers in °C (saiunit has no offset units); a Quantity in
#: kelvin is converted by subtracting 273.15.
celsius = "degC"

# Readable names for the dimensions users meet, for error messages.
_DIMENSION_NAMES = {
    u.get_dim(ms): "time",
    u.get_dim(mV): "voltage",
    u.get_dim(nA): "current",
    u.get_dim(uS): "conductance",
    u.get_dim(nF): "capacitance",
    u.get_dim(Mohm): "resistance",
    u.get_dim(um): "length",
    u.get_dim(um2): "area",
    u.get_dim(Hz): "frequency",
    u.get_dim(mA_per_cm2): "current density",
    u.get_dim(S_per_cm2): "conductance density",
    u.get_dim(uF_per_cm2): "specific capacitance",
    u.get_dim(ohm_cm): "resistivity",
    u.get_dim(u.kelvin): "temperature",
    u.get_dim(ms2): "time squared",
    u.get_dim(1.0): "dimensionless",
}

_UNIT_NAMES = {
    id(ms): "ms", id(mV): "mV", id(nA): "nA", id(uS): "µS", id(nF): "nF",
    id(Mohm): "MΩ", id(um): "µm", id(um2): "µm²", id(Hz): "Hz",
    id(mA_per_cm2): "mA/cm²", id(S_per_cm2): "S/cm²", id(uF_per_cm2): "µF/cm²",
    id(ohm_cm): "Ω·cm", id(ms2): "ms²",
}


#: The units above by the names :func:`unit_name` gives them, as models label what they
#: record (``AbstractModel.unit_of``, ``Trace.unit``); ``"1"``: dimensionless.
_UNITS_BY_NAME = {
    "ms": ms, "mV": mV, "nA": nA, "µS": uS, "nF": nF, "MΩ": Mohm, "µm": um, "µm²": um2, "Hz": Hz,
    "mA/cm²": mA_per_cm2, "S/cm²": S_per_cm2, "µF/cm²": uF_per_cm2, "Ω·cm": ohm_cm, "1": None,
}


def unit_named(name: str):
    """The unit written ``name`` by :func:`unit_name` (``"mV"``, ``"mA/cm²"``), as a
    Trace labels a recorded variable; ``None`` for ``"1"`` (dimensionless). A KeyError
    for a name that is none of jaxneuro's units (a user's model may label its records
    as it likes)."""
    return _UNITS_BY_NAME[name]


def _describe_dim(dim) -> str:
    name = _DIMENSION_NAMES.get(dim)
    return f"{name} [{dim}]" if name else f"[{dim}]"


def unit_name(unit) -> str:
    """A short human name for one of the base units above (for messages and docs)."""
    if unit is None:
        return "dimensionless"
    if unit is celsius:
        return "°C"
    return _UNIT_NAMES.get(id(unit), str(unit))


def as_count(value):
    """A NumPy integer, or a concrete integer array of shape ``()`` (``jnp.sum(mask)``),
    as a Python int (a converter for static counts such as ``n`` and capacities);
    anything else as it is, for the field's check to take or refuse."""
    if isinstance(value, np.integer) and not isinstance(value, np.bool_):
        return int(value)
    if (isinstance(value, (np.ndarray, jax.Array)) and not isinstance(value, jax.core.Tracer)
            and value.shape == () and value.dtype.kind in "iu"):
        return int(value)
    return value


def positive_int(value, name: str) -> int:
    """``value`` as an int if it is a positive integer (a bool is not), else a
    ValueError naming ``name``."""
    value = as_count(value)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} expects a positive integer, got {value!r}")
    return int(value)


def flag(value, name: str) -> bool:
    """``value`` if it is ``True`` or ``False`` (NumPy's bools too), else a ValueError
    naming ``name``: a truthy string or number is not taken for ``True``."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} expects True or False, got {value!r}")
    return bool(value)


def refuse_class(value, base: type, expects: str, namespace, prefix: str) -> None:
    """A ValueError if ``value`` is a subclass of ``base`` given where an instance
    belongs: "{expects}, got the class LIF; call it: jn.LIF(...)", the call written
    ``{prefix}.{name}`` where ``namespace`` (a module) exports the class."""
    if isinstance(value, type) and issubclass(value, base):
        call = f"{prefix}.{value.__name__}" if getattr(namespace, value.__name__, None) is value else value.__name__
        raise ValueError(f"{expects}, got the class {value.__name__}; call it: {call}(...)")


def is_concrete(x) -> bool:
    """True when ``x`` holds values we can inspect now (not a tracer under jit/grad)."""
    return not isinstance(x, jax.core.Tracer)


def broadcasts_to(shape, target) -> bool:
    """Whether an array of ``shape`` broadcasts to ``target`` (as ``jnp.broadcast_to``
    takes it: the result is ``target`` itself)."""
    try:
        return np.broadcast_shapes(tuple(shape), tuple(target)) == tuple(target)
    except ValueError:
        return False


#: jaxneuro's base unit of each dimension (the README's table): where a value's unit
#: is not fixed by its parameter (a recorded variable's target), a quantity is read in
#: the base unit of its own dimension.
BASE_UNITS = (mV, nA, uS, nF, ms, Hz, um, um2, Mohm, mA_per_cm2, S_per_cm2, uF_per_cm2, ohm_cm)


def base_unit_of(value, name: str):
    """The base unit (:data:`BASE_UNITS`) of a quantity's dimension, ``None`` for a
    dimensionless one or a plain number; a ValueError naming parameter ``name`` for a
    dimension jaxneuro has no unit for."""
    value = as_quantity(value)
    if not isinstance(value, u.Quantity) or u.get_dim(value) == u.get_dim(1.0):
        return None
    for unit in BASE_UNITS:
        if u.get_dim(value) == u.get_dim(unit):
            return unit
    raise ValueError(
        f"parameter {name!r} expects a quantity of a dimension jaxneuro has a unit for (the README's table); got "
        f"{value}, {_a(_describe_dim(u.get_dim(value)))}"
    )


def refuse_quantities(tree, where: str) -> None:
    """A ValueError naming the place of a saiunit quantity among ``tree``'s leaves (a
    model or stimulus): one put there after the object was made (``eqx.tree_at``) was
    never converted to its parameter's unit, and would fail deep inside a run."""
    is_q = lambda x: isinstance(x, u.Quantity)  # noqa: E731
    if not any(is_q(x) for x in jax.tree_util.tree_leaves(tree, is_leaf=is_q)):
        return  # the usual case, without the paths (4x slower to collect on a large cell)
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree, is_leaf=is_q)[0]:
        if is_q(leaf):
            raise ValueError(
                f"{where}{jax.tree_util.keystr(path)} holds the saiunit quantity {leaf}, set after the object "
                "was made (e.g. by eqx.tree_at), so never converted to the parameter's unit; set a plain "
                "number in that unit (the README's table: nS -> µS, pF -> nF, ...), or build the object "
                "with the quantity"
            )


def check_edited(tree, where: str) -> None:
    """Check the parameters of ``tree`` (a model or stimulus) that were set after it was
    made (``eqx.tree_at``), as its constructor checks them: a ValueError naming the
    field for a value of the wrong kind (a boolean, a complex number, text), NaN, or
    one out of its range (a negative refractory period), and the class's own checks
    again (e.g. LIF's ``V_reset < V_th``). Such a value went unchecked into the run.

    Every concrete value is checked once: an array passed (its identity kept while it
    lives, so a model's arrays are not looked at again in the next run, nor in a model
    edited from it), a value of any other kind each time. Traced values (inside
    ``jit``, ``vmap`` or ``grad``) cannot be looked at and are taken as they are."""
    def edited(x):
        if isinstance(x, jax.core.Tracer):
            return False
        kind = getattr(getattr(x, "dtype", None), "kind", None)
        return (kind != "f" or not isinstance(x, (jax.Array, np.ndarray))
                or not recall(_CHECKED_ARRAYS, id(x), x, False))

    if recall(_CHECKED, id(tree), tree, False):  # objects are immutable: checked once
        return
    if any(edited(x) for x in jax.tree_util.tree_leaves(tree)):
        # Eagerly, also inside a user's jit: there a value converted by jnp would be
        # traced, and its range not checked.
        with jax.ensure_compile_time_eval():
            _check_edited_fields(tree, where, edited)
    # Shapes too, of arrays as well (a length-2 gL on LIF(n=3) would fail deep in the
    # run with JAX's broadcasting error): each model's own check_shapes, the constructor's.
    for path, model in _modules_with_paths(tree, "", enter=_has_shape_check):
        try:
            type(model).check_shapes(model)  # (not model.check_shapes(): an eqx bound method is slow)
        except ValueError as e:
            raise _edited_error(where, path, e) from None
    keep_while_alive(_CHECKED, id(tree), tree, True, _CHECKED_SIZE)
    for x in jax.tree_util.tree_leaves(tree):
        _passed(x)


def _edited_error(where: str, path: str, e: ValueError) -> ValueError:
    return ValueError(f"{where}{path} (edited after it was made, e.g. by eqx.tree_at): {e}")


def _passed(x) -> None:
    """Keep ``x`` (a checked parameter) in :data:`_CHECKED_ARRAYS` if it is a concrete array."""
    if isinstance(x, (jax.Array, np.ndarray)) and not isinstance(x, jax.core.Tracer):
        keep_while_alive(_CHECKED_ARRAYS, id(x), x, True, _CHECKED_ARRAYS_SIZE)


# id(object) -> (weak reference to it, True), for the objects check_edited has passed: a model
# whose own fields hold plain numbers (a user's channel) was walked at every simulate
# call (12 ms a call for 200 sections).
_CHECKED: dict = {}
_CHECKED_SIZE = 64
# id(array) -> (weak reference to it, True), for the parameter arrays constructors and
# check_edited have checked: a model edited by eqx.tree_at shares all its arrays but the new
# one with the model it was made from (a 540-section cell holds ~7000).
_CHECKED_ARRAYS: dict = {}
_CHECKED_ARRAYS_SIZE = 1 << 16


def _check_edited_fields(tree, where: str, edited) -> None:
    """:func:`check_edited`'s walk over the modules of ``tree``."""
    for path, module in _modules_with_paths(tree, ""):
        changed = False
        for f in dataclasses.fields(module):
            if "unit" not in f.metadata:
                continue
            value = getattr(module, f.name, None)
            if value is None or not any(edited(x) for x in jax.tree_util.tree_leaves(value)):
                continue
            label = f"{where}{path}.{f.name}"
            if isinstance(value, (list, tuple)):  # its numbers would stay a list in the run
                raise ValueError(
                    f"parameter {label!r} holds a {type(value).__name__}, set after the object was made (e.g. by "
                    f"eqx.tree_at); set a number or an array in {unit_name(f.metadata['unit'])} "
                    "(jnp.asarray(...)), or build the object with it"
                )
            arr = to_base(value, label, f.metadata["unit"])
            check_value(arr, label, f.metadata["check"], f.metadata["unit"], f.metadata["allow_inf"])
            changed = True
        if changed:
            for cls in type(module).__mro__:
                if "__check_init__" in vars(cls):
                    try:
                        vars(cls)["__check_init__"](module)
                    except ValueError as e:
                        raise _edited_error(where, path, e) from None


def _modules_with_paths(x, path: str, enter=None):
    """``(path, module)`` for every equinox module in ``x`` (fields, lists, tuples and
    dicts followed), ``path`` as Python would write the attribute access; where
    ``enter(module)`` is given and false, that module is neither yielded nor entered."""
    import equinox as eqx

    if isinstance(x, eqx.Module):
        if enter is not None and not enter(x):
            return
        yield path, x
        own = vars(x)  # (not getattr: eqx's attribute access is slow, 1 ms on a 200-section cell)
        for f in dataclasses.fields(x):
            if not f.metadata.get("static", False):
                y = own[f.name] if f.name in own else getattr(x, f.name, None)
                yield from _modules_with_paths(y, f"{path}.{f.name}", enter)
    elif isinstance(x, (list, tuple)):
        for i, y in enumerate(x):
            yield from _modules_with_paths(y, f"{path}[{i}]", enter)
    elif isinstance(x, dict):
        for k, y in x.items():
            yield from _modules_with_paths(y, f"{path}[{k!r}]", enter)


def _has_shape_check(module) -> bool:
    """Whether ``module`` is a jaxneuro model with a ``check_shapes`` (a network's
    populations, a cell's sections; not channels). On the class: an eqx bound method is
    slow."""
    return callable(getattr(type(module), "check_shapes", None))


def numbers_as_arrays(tree):
    """``tree`` (a model or stimulus) with its Python numbers as arrays of the default
    float dtype, as the constructors make every parameter. A number put there afterwards
    (``eqx.tree_at(..., 0.03)``) would otherwise be a compile-time constant of the run's
    ``eqx.filter_jit``, so every new value compiled the run again (0.5-1 s an HH run,
    against ~30 ms); booleans are left alone."""
    # A weakly typed array (jnp.asarray(0.03): a Python number's type) is another
    # signature to jit than the constructor's arrays: one more compile of the run.
    is_number = lambda x: ((isinstance(x, (int, float)) and not isinstance(x, bool))  # noqa: E731
                           or (isinstance(x, jax.Array) and getattr(x, "weak_type", False)
                               and jnp.issubdtype(x.dtype, jnp.floating)))
    if not any(is_number(x) for x in jax.tree_util.tree_leaves(tree)):
        return tree
    dtype = jnp.result_type(float)
    return jax.tree.map(lambda x: jnp.asarray(x, dtype) if is_number(x) else x, tree)


def as_quantity(value: Any) -> Any:
    """A (nested) list or tuple of saiunit quantities of one dimension as one Quantity
    array, in the first one's unit (``[1 * u.uA / u.cm**2, 2 * u.uA / u.cm**2]``, as
    ``np.array([1, 2]) * u.uA / u.cm**2``); anything else, mixed dimensions and ragged
    lists included, unchanged (for the caller's own message)."""
    if not isinstance(value, (list, tuple)) or not value:
        return value
    is_q = lambda x: isinstance(x, u.Quantity)  # noqa: E731
    leaves = jax.tree_util.tree_leaves(value, is_leaf=is_q)
    if not leaves or not all(is_q(x) for x in leaves):
        return value
    unit = leaves[0].unit
    try:
        numbers = jax.tree_util.tree_map(lambda q: np.asarray(q.to_decimal(unit)), value, is_leaf=is_q)
        return np.asarray(numbers, dtype=float) * unit
    except Exception:
        return value


def to_base(value: Any, name: str, unit) -> Any:
    """Return ``value`` as a float array in ``unit``, the base unit of parameter ``name``.

    ``unit`` is a saiunit unit from this module, ``None`` for a dimensionless number,
    or :data:`celsius`. Plain numbers (and arrays) are taken to be in ``unit`` already;
    a list of quantities is one quantity array (:func:`as_quantity`).
    """
    value = as_quantity(value)
    if isinstance(value, (list, tuple)) and any(isinstance(v, u.Quantity) for v in value):
        # A list of quantities (e.g. amps=[0 * u.pA, 2 * u.nA]): each converted.
        return jnp.stack([jnp.asarray(to_base(v, name, unit)) for v in value])
    if isinstance(value, u.Quantity):
        if unit is celsius:
            if u.get_dim(value) != u.get_dim(u.kelvin):
                raise ValueError(
                    f"parameter {name!r} expects a temperature (a number in °C or a "
                    f"Quantity in kelvin); got {value}, {_a(_describe_dim(u.get_dim(value)))}"
                )
            return jnp.asarray(value.to_decimal(u.kelvin) - 273.15, dtype=_float_dtype())
        value = _decimal_in(value, name, unit)
    if isinstance(value, jax.core.Tracer):
        return value
    if isinstance(value, (bool, np.bool_, str, bytes)):  # jnp.asarray would parse "1"
        raise ValueError(f"parameter {name!r} expects a number in {unit_name(unit)}, got {value!r}")
    kind = getattr(getattr(value, "dtype", None), "kind", None)
    if isinstance(value, (list, tuple)):
        try:
            kind = np.asarray(value).dtype.kind
        except Exception:  # e.g. tracers in the list: left to jnp.asarray below
            kind = None
    if kind in ("b", "c"):  # converted to floats, True would be 1 and an imaginary part dropped
        raise ValueError(
            f"parameter {name!r} expects real numbers in {unit_name(unit)}, got an array of "
            f"{'booleans' if kind == 'b' else 'complex numbers'} ({np.asarray(value).dtype})"
        )
    try:
        arr = jnp.asarray(value, dtype=_float_dtype(value))
    except (TypeError, ValueError) as e:
        raise ValueError(
            f"parameter {name!r} expects a number in {unit_name(unit)} or a saiunit "
            f"Quantity, got {value!r}"
        ) from e
    return arr


def _a(noun: str) -> str:
    """``noun`` with its indefinite article: "a current", "an area"."""
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"


def _decimal_in(value, name: str, unit):
    """A saiunit Quantity's numbers in ``unit`` (a ValueError naming ``name`` if its
    dimension is another)."""
    expected = u.get_dim(1.0) if unit is None else u.get_dim(unit)
    given = u.get_dim(value)
    if given != expected:
        raise ValueError(
            f"parameter {name!r} expects {_a(_describe_dim(expected))} quantity "
            f"(a plain number is read in {unit_name(unit)}); got {value}, "
            f"{_a(_describe_dim(given))} quantity"
        )
    return value.to_decimal(unit) if unit is not None else value.to_decimal()


def to_static(value: Any, name: str, unit) -> np.ndarray:
    """``value`` in ``unit`` as a float64 NumPy array, for static configuration (not a
    pytree leaf, so JAX's default precision does not round it). Plain numbers are taken
    to be in ``unit`` already; Quantities are converted, in a list with plain numbers
    too (see :func:`to_base`). A traced value (an argument of a jitted, vmapped or
    differentiated function) is a ValueError naming ``name``: static configuration is
    fixed when compiling."""
    value = as_quantity(value)
    if isinstance(value, (list, tuple)) and _holds_quantity(value):
        # A list mixing plain numbers (in ``unit``) and quantities, as to_base takes
        # ([1.0, 2 * u.ms]): each converted.
        parts = [to_static(v, name, unit) for v in value]
        try:
            return np.asarray(parts, dtype=np.float64)
        except ValueError:  # ragged
            raise ValueError(f"parameter {name!r} expects numbers in {unit_name(unit)}, got {value!r}") from None
    if isinstance(value, u.Quantity):
        value = _decimal_in(value, name, unit)
    if isinstance(value, jax.core.Tracer) or (
            isinstance(value, (list, tuple)) and any(isinstance(x, jax.core.Tracer) for x in value)):
        raise ValueError(
            f"parameter {name!r} expects a fixed number in {unit_name(unit)} (it is fixed when compiling), got a "
            "traced value (an argument of a jitted, vmapped or differentiated function): pass a number, or make "
            "it a static argument (static_argnums/static_argnames)"
        )
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"parameter {name!r} expects numbers in {unit_name(unit)}, got {value!r}") from None


def _holds_quantity(value) -> bool:
    """Whether a (nested) list or tuple holds a saiunit quantity among its leaves."""
    is_q = lambda x: isinstance(x, u.Quantity)  # noqa: E731
    return any(is_q(x) for x in jax.tree_util.tree_leaves(value, is_leaf=is_q))


def _float_dtype(value=None):
    # Keep an explicit float dtype of the input (e.g. float32 on purpose under x64),
    # as far as JAX represents it (NumPy's float64 becomes float32 without x64, quietly:
    # the GPU default); otherwise use JAX's default float.
    dt = getattr(value, "dtype", None)
    if dt is not None and jnp.issubdtype(dt, jnp.floating):
        return jax.dtypes.canonicalize_dtype(dt)
    return jnp.result_type(float)


def param(
    unit,
    *,
    default: Any = dataclasses.MISSING,
    check: str | None = None,
    allow_inf: bool = False,
    optional: bool = False,
    doc: str = "",
):
    """Declare a module field that holds a physical parameter.

    ``unit``: the unit the field holds its value in. A plain number is read in it, a
    saiunit quantity is converted to it, and the module's own code receives the value
    in it: a channel field declared ``param(units.S_per_cm2)`` given ``10 * u.mS /
    u.cm**2`` holds 0.01; declared ``param(u.mS / u.cm**2)`` it holds 10, and the
    formulas must convert it themselves (as a NEURON .mod file does with a ``(mS/cm2)``
    PARAMETER). Declare fields in jaxneuro's base units (``units.S_per_cm2``,
    ``units.mV``, ``units.ms``, ...: the table in the README), so that plain numbers
    mean the same as everywhere else and a channel's ``current`` (mA/cm², ``v`` in mV)
    needs no factors. ``None`` declares a dimensionless number; :data:`celsius` a
    temperature (kelvin quantities are converted). ``check``: ``None``, ``"positive"``
    (> 0) or ``"nonnegative"`` (>= 0); ``allow_inf``: accept +inf (a duration that
    never ends); ``optional``: accept ``None`` (a parameter whose absence means
    something, where the default is a number), as a ``None`` default does. NaN is
    always rejected. Conversion and checks run once, in :func:`convert_fields`, when
    the module is constructed.
    """
    if not (unit is None or unit is celsius or isinstance(unit, u.Unit)):
        # A unit written as text ("S/cm^2") would read plain numbers and then refuse
        # every quantity as not dimensionless: refused where the field is declared.
        raise TypeError(
            f"units.param expects a saiunit unit (e.g. units.S_per_cm2, units.mV or u.mS / u.cm**2), None "
            f"(dimensionless) or units.celsius, got {unit!r}"
        )
    meta = {"unit": unit, "check": check, "allow_inf": allow_inf, "optional": optional, "doc": doc}
    if default is dataclasses.MISSING:
        return dataclasses.field(metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def check_value(value, name: str, check: str | None, unit=None, allow_inf: bool = False):
    """Raise a ValueError if a concrete ``value`` is NaN, infinite (unless
    ``allow_inf``, which admits +inf) or breaks ``check``."""
    if value is None or not is_concrete(value):
        return
    arr = np.asarray(value)
    if arr.size == 0:
        return
    if np.any(np.isnan(arr)):
        raise ValueError(f"parameter {name!r} must not be NaN (in {unit_name(unit)}); got {_short(arr, ~np.isnan(arr))}")
    finite_ok = np.all(np.isfinite(arr) | (allow_inf & (arr == np.inf)))
    if not finite_ok:
        raise ValueError(
            f"parameter {name!r} must be finite (in {unit_name(unit)}); got {_short(arr)}"
        )
    if check == "positive" and not np.all(arr > 0):
        raise ValueError(
            f"parameter {name!r} must be > 0 (in {unit_name(unit)}); got {_short(arr, arr > 0)}"
        )
    if check == "nonnegative" and not np.all(arr >= 0):
        raise ValueError(
            f"parameter {name!r} must be >= 0 (in {unit_name(unit)}); got {_short(arr, arr >= 0)}"
        )
    if unit is celsius and not np.all(arr >= -273.15):
        raise ValueError(f"parameter {name!r} must be at or above absolute zero (-273.15 °C); got {_short(arr, arr >= -273.15)}")


def _short(arr, ok=None) -> str:
    """``arr`` for an error message: its value, or its shape and the first entry that
    breaks the rule (``ok``: the entries that keep it; default the finite ones)."""
    # Written as the shortest decimal of the array's own dtype: float32's -0.01 read
    # -0.009999999776482582 as a Python float.
    number = lambda x: repr(float(str(x))) if np.issubdtype(np.asarray(x).dtype, np.floating) else repr(np.asarray(x).item())  # noqa: E731
    if arr.ndim == 0:
        return number(arr[()])
    ok = np.isfinite(arr) if ok is None else ok
    bad = arr[~ok] if not np.all(ok) else arr
    index = tuple(int(i) for i in np.argwhere(~ok)[0]) if not np.all(ok) else None
    where = f" at index {index if len(index) > 1 else index[0]}" if index is not None else ""
    return f"array of shape {arr.shape} (e.g. {number(bad.ravel()[0])}{where})"


def convert_fields(module) -> None:
    """Convert every :func:`param` field of ``module`` to the unit it is declared in
    (plain numbers are taken to be in it) and check it.

    Called from ``__post_init__`` of jaxneuro modules; fields left as ``None`` (an
    optional parameter not given) are kept as ``None``.
    """
    cls_name = type(module).__name__
    for f in dataclasses.fields(module):
        if "unit" not in f.metadata:
            continue
        value = getattr(module, f.name)
        label = f"{cls_name}.{f.name}"
        if value is None:
            if f.default is not None and not f.metadata.get("optional"):
                # None means "not given" only where it is the default, or declared optional
                raise ValueError(f"parameter {label!r} expects a number (in {unit_name(f.metadata['unit'])}), got None")
            continue
        arr = to_base(value, label, f.metadata["unit"])
        check_value(arr, label, f.metadata["check"], f.metadata["unit"], f.metadata["allow_inf"])
        object.__setattr__(module, f.name, arr)
        _passed(arr)


def q10_factor(q10, temperature, reference) -> Any:
    """``q10 ** ((temperature - reference) / 10)``: the usual temperature scaling."""
    return q10 ** ((temperature - reference) / 10.0)



def is_quantity_of(value, unit) -> bool:
    """True if ``value`` is a saiunit Quantity (or a list of them, :func:`as_quantity`)
    with the dimension of ``unit``."""
    value = as_quantity(value)
    return isinstance(value, u.Quantity) and u.get_dim(value) == u.get_dim(unit)


# µF/cm² · µm² → nF and S/cm² · µm² → µS and mA/cm² · µm² → nA.
DENSITY_TO_ABSOLUTE = {"capacitance": 1e-5, "conductance": 1e-2, "current": 1e-2}


def density_times_area(value, name, density_unit, kind: str, area_um2):
    """Turn a per-area Quantity ``value`` into an absolute float for a membrane of
    ``area_um2`` µm² (capacitance → nF, conductance → µS, current → nA)."""
    return to_base(value, name, density_unit) * area_um2 * DENSITY_TO_ABSOLUTE[kind]
