"""Channel bookkeeping shared by compartments, cables and cells.

A membrane carries a tuple of channels; channel ``ch``'s gate ``g`` is the state
``f"{g}_{ch.name}"`` (``"m_hh"``), its current is recorded as ``f"i_{ch.name}"`` and
its component currents as ``f"{c}_{ch.name}"`` (``"ina_hh"``). Every function here
works elementwise, so ``v`` may be a scalar, a population or a cable's segments.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import saiunit as u

from .. import channels as builtin_channels
from .. import units
from .._stack import outside_stacklevel
from .._static_cache import remember
from ..channels.base import _KINETICS, AbstractChannel
from ..solve.exponential import exp
from ..solve.staggered import MAX_GROWTH_PER_STEP

# 1 nA / 1 µm² = 100 mA/cm²: converts an injected current to a membrane current density.
NA_PER_UM2_TO_MA_PER_CM2 = 100.0
# (mA/cm²) / (µF/cm²) = 1000 mV/ms.
MA_PER_UF_TO_MV_PER_MS = 1000.0
# µF/cm² · µm² = 1e-5 nF.
UF_PER_CM2_UM2_TO_NF = 1e-5


def check_channels(owner: str, channels) -> tuple[AbstractChannel, ...]:
    """``channels`` as a tuple of channels with unique names whose kinetics and current
    fit their ``gate_names`` (:func:`check_channel`), or a ValueError naming ``owner``
    (e.g. ``"Compartment"``)."""
    if isinstance(channels, AbstractChannel):
        channels = (channels,)
    if not isinstance(channels, Sequence):
        raise ValueError(
            f"{owner}.channels expects a sequence of channels, got {type(channels).__name__}"
        )
    channels = tuple(channels)
    for i, ch in enumerate(channels):
        units.refuse_class(ch, AbstractChannel, f"{owner}.channels[{i}] expects a channel instance", builtin_channels,
                           "jn.channels")
        if not isinstance(ch, AbstractChannel):
            raise ValueError(
                f"{owner}.channels[{i}] expects a jaxneuro channel "
                f"(e.g. jn.channels.Leak), got {type(ch).__name__}"
            )
    names = [ch.name for ch in channels]
    for i, ch in enumerate(channels):
        if not isinstance(ch.name, str) or not ch.name:
            raise ValueError(
                f"{owner}.channels[{i}]: {type(ch).__name__}.name expects a non-empty string "
                f"(static: name: str = eqx.field(default=..., static=True, kw_only=True)), got {ch.name!r}"
            )
        if not ch.name.isidentifier():
            # It keys records and states ("i_" + name, "m_" + name), which must be names.
            raise ValueError(
                f"{owner}.channels[{i}]: {type(ch).__name__}.name expects an identifier (letters, digits "
                f"and underscores, as a NEURON SUFFIX), got {ch.name!r}; its current is recorded as "
                f"'i_<name>' and its gates as '<gate>_<name>'"
            )
        check_channel(f"{owner}.channels[{i}]", ch)
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(
            f"{owner}.channels: channel names must be unique, {dup} appear more "
            "than once; give one of them another name=..."
        )
    check_record_names(owner, channels)
    return channels


#: Record names a membrane (or the stimuli and network around it) gives its own
#: quantities: a channel whose current, component currents or gates were recorded
#: under one of them could not be recorded (``Leak(name="cap")``'s ``"i_cap"`` gave the
#: capacitive current).
RESERVED_RECORD_NAMES = {
    "v": "the membrane voltage", "i_cap": "the capacitive current", "i_inj": "the injected current",
    "i_clamp": "a voltage clamp's current", "i_gap": "a Network's gap-junction current",
    "i_syn": "a Network's synaptic current",
}


def check_record_names(owner: str, channels, labels=None) -> None:
    """A ValueError naming the channel and the clash if a record name of one of
    ``channels`` (``"i_<name>"``, its component currents ``"<c>_<name>"`` and gates
    ``"<g>_<name>"``) is one of :data:`RESERVED_RECORD_NAMES` or another channel's
    (two gates sharing one state name would share one state). ``labels``: where each
    channel is, for the message (default ``f"{owner}.channels[{i}]"``)."""
    taken = dict(RESERVED_RECORD_NAMES)
    for i, ch in enumerate(channels):
        where = labels[i] if labels is not None else f"{owner}.channels[{i}]"
        this = f"{where} ({type(ch).__name__} {ch.name!r})"
        kinds = [(f"i_{ch.name}", "current")]
        kinds += [(f"{c}_{ch.name}", f"component current {c!r}") for c in component_names(ch)]
        kinds += [(gate_key(ch, g), f"gate {g!r}") for g in ch.gate_names]
        for record, kind in kinds:
            if record in taken:
                hint = ("channel names 'cap', 'inj', 'clamp', 'gap' and 'syn' are reserved"
                        if record in RESERVED_RECORD_NAMES else "give one of the channels another name=...")
                raise ValueError(
                    f"{this}: its {kind} would be recorded as {record!r}, the record name of "
                    f"{taken[record]}, which could then not be recorded apart; {hint} "
                    f"(e.g. name={ch.name + '_ch'!r})"
                )
            taken[record] = f"the {kind} of {this}"


# Channel structures (tree structure: class and static fields) already checked.
_CHECKED: dict = {}


#: NEURON's default ``celsius`` (°C), the default temperature of compartments, cables
#: and cells read from SWC.
DEFAULT_TEMPERATURE = 6.3


class _DefaultTemperature(float):
    """:data:`DEFAULT_TEMPERATURE` as the default of a ``temperature`` argument: the
    float 6.3, of its own type so that a constructor can tell it from a temperature
    given explicitly, even one equal to it (``temperature=6.3``, as ported from NEURON).
    It lives only until the field is converted to an array, so models, their repr,
    pytrees and jit see a plain 6.3."""

    def __repr__(self):
        return repr(float(self))

    __str__ = __repr__

    def __reduce__(self):
        return (_DefaultTemperature, (float(self),))


#: The default of ``temperature`` in :class:`~jaxneuro.Compartment`,
#: :class:`~jaxneuro.Cable` and :func:`~jaxneuro.Cell.from_swc`: 6.3 °C, not given.
TEMPERATURE_NOT_GIVEN = _DefaultTemperature(DEFAULT_TEMPERATURE)


def temperature_given(value) -> bool:
    """Whether a ``temperature`` argument was given (rather than left at its default,
    :data:`TEMPERATURE_NOT_GIVEN`); call before the field is converted."""
    return type(value) is not _DefaultTemperature


def warn_own_temperatures(owner: str, channels, temperature) -> None:
    """Warn where ``temperature`` (°C; a compartment's, cable's or cell's, given
    explicitly: call it only then, :func:`temperature_given`) differs from the
    temperature a channel keeps of its own (:meth:`AbstractChannel.own_temperature`),
    or for a channel that follows none (:meth:`AbstractChannel.fixed_speed`):
    the channel runs at its own, so the given one silently did not apply to it
    (BrainPy's ``INa_Ba2002`` at its ``T = 36`` in a compartment at 26 °C fired 9
    spikes for 6). A temperature given equal to :data:`DEFAULT_TEMPERATURE` warns too:
    ``temperature=6.3``, NEURON's ``celsius``, is no more the channel's ``T`` than any
    other; only the default left alone is silent (the channels' own ``T`` is then their
    documented convention)."""
    if not units.is_concrete(temperature):
        return
    given = np.asarray(temperature, dtype=float)
    _warn_implausible_temperature(owner, given)
    # Compared to float32's rounding: 6.3 stored in float32 is not Python's 6.3.
    same = lambda a, b: np.all(np.isclose(a, b, rtol=1e-6, atol=0.0))  # noqa: E731
    said = set()  # a cell's sections often share their channels: each message once
    for ch in channels:
        fixed = ch.fixed_speed()
        own = None if fixed is not None else ch.own_temperature()
        if fixed is not None:
            message = (f"{owner}: temperature={_show(given)} °C does not apply to {type(ch).__name__} (channel "
                       f"{ch.name!r}), whose kinetics run at the speed {fixed} set"
                       f"{'' if ' and ' in fixed else 's'}, whatever the temperature; scale {fixed} to change it")
        elif own is None or not units.is_concrete(own) or same(np.asarray(own, dtype=float), given):
            continue
        else:
            message = (f"{owner}: temperature={_show(given)} °C does not apply to {type(ch).__name__} (channel "
                       f"{ch.name!r}), which runs at its own T={_show(np.asarray(own, dtype=float))} °C (BrainPy's "
                       f"convention); give it {type(ch).__name__}(..., T=...) to run it at {_show(given)} °C")
        if message not in said:
            said.add(message)
            warnings.warn(message, RuntimeWarning, stacklevel=outside_stacklevel())


#: Temperatures (°C) above this are no living tissue's: a plain number this high was
#: most likely meant in kelvin (NEURON's ``celsius`` is °C, Brian's and BrainPy's
#: temperatures are often kelvin), and HH kinetics there stop the cell firing.
MAX_PLAUSIBLE_TEMPERATURE = 100.0


def _warn_implausible_temperature(owner: str, given) -> None:
    """Warn where a temperature (°C, as converted) exceeds
    :data:`MAX_PLAUSIBLE_TEMPERATURE`: ``temperature=279.45`` is read as 279.45 °C,
    not as 6.3 °C in kelvin (a quantity in kelvin is converted, so 279.45 * u.kelvin
    never gets here above 100 °C)."""
    if not np.any(given > MAX_PLAUSIBLE_TEMPERATURE):
        return
    hottest = float(np.max(given))
    warnings.warn(
        f"{owner}: temperature={hottest:g} °C is above {MAX_PLAUSIBLE_TEMPERATURE:g} °C; a plain number is read "
        f"in °C. If kelvin was meant, give a quantity: temperature={hottest:g} * u.kelvin "
        f"(= {hottest - 273.15:.4g} °C, with import saiunit as u), or the value in °C",
        RuntimeWarning, stacklevel=outside_stacklevel())


def _show(x) -> str:
    return f"{float(x):g}" if np.ndim(x) == 0 else f"{np.unique(x)}"


def check_channel(where: str, ch: AbstractChannel) -> None:
    """A ValueError (naming ``where``, the channel's class and the gates or field) if
    the channel's kinetics and current do not fit its ``gate_names``, or a field not
    declared with :func:`jaxneuro.units.param` holds a saiunit quantity. Evaluated on
    shapes only (``jax.eval_shape``), once per channel class and static settings."""
    cls = type(ch).__name__
    for f in dataclasses.fields(ch):
        if "unit" not in f.metadata and any(
            isinstance(x, u.Quantity)
            for x in jax.tree_util.tree_leaves(getattr(ch, f.name, None), is_leaf=lambda x: isinstance(x, u.Quantity))
        ):
            raise ValueError(
                f"{where}: {cls}.{f.name} holds a saiunit quantity, but the field is not declared "
                f"with units.param(unit), so it is never converted; declare it as "
                f"`{f.name}: object = units.param(unit, default=...)` or give a plain number"
            )
    leaves = jax.tree_util.tree_leaves(ch)
    # Output shapes follow the parameters' shapes, which the structure alone does not hold.
    key = (jax.tree_util.tree_structure(ch), tuple(np.shape(x) for x in leaves))
    try:
        if key in _CHECKED:
            return
    except (TypeError, ValueError):  # static fields that do not hash or compare: check every time
        key = None
    names = tuple(ch.gate_names)
    sources = _KINETICS.get(type(ch), {})

    def evaluate(method: str, fn):
        try:
            return eqx.filter_eval_shape(fn, ch)
        except KeyError as e:
            raise ValueError(
                f"{where}: {cls}.{method} reads gate {e.args[0]!r}, which is not one of "
                f"{cls}.gate_names {names}; gate_names (a class variable) must list the gates "
                "its kinetics return"
            ) from e
        except (AttributeError, TypeError, ValueError) as e:
            # A user's kinetics returning the wrong kind or shape (a tuple for a dict,
            # arrays that do not broadcast): name the channel and the method.
            if method == "current":
                raise ValueError(
                    f"{where}: {cls}.current(v, gates) failed at v = 0 mV: {type(e).__name__}: {e}. "
                    "It returns one array, the channel's current density (mA/cm²), shaped as v and "
                    "the channel's parameters"
                ) from e
            src = sources.get(method) or method
            origin = f" (from its {src})" if src != method else ""
            raise ValueError(
                f"{where}: {cls}.{method}{origin} failed at v = 0 mV: {type(e).__name__}: {e}. "
                "Kinetics return a dict {gate: value} (gate_inf_tau: {gate: (inf, tau)}), "
                "and values shaped as v and the channel's parameters"
            ) from e

    def check_keys(method: str, out):
        if out is None:
            return
        if not isinstance(out, dict):
            raise ValueError(f"{where}: {cls}.{method} must return a dict {{gate: ...}}, got {type(out).__name__}")
        if set(out) != set(names):
            src = sources.get(method) or method
            raise ValueError(
                f"{where}: {cls}.gate_names is {names}, but its {src} returns "
                f"gates {tuple(out)}; gate_names (a class variable: gate_names: ClassVar[tuple[str, ...]] "
                "= (...)) must list exactly the gates its kinetics return"
            )

    try:
        params_shape = np.broadcast_shapes(*[np.shape(x) for x in leaves])
    except ValueError:  # check_parameter_shapes reports it, naming the parameters
        params_shape = None

    def check_shapes(method: str, out):
        """Values at a scalar voltage: scalars or shaped as the parameters (a value per
        compartment), nothing larger, else the error surfaces in the solver."""
        if params_shape is None or out is None:
            return
        for path, leaf in jax.tree_util.tree_leaves_with_path(out):
            shape = np.shape(leaf)
            try:
                fits = np.broadcast_shapes(shape, params_shape) == params_shape
            except ValueError:
                fits = False
            if not fits:
                src = sources.get(method)
                origin = f" (from its {src})" if src and src != method else ""
                what = f"out{jax.tree_util.keystr(path)}" if path else "a value"
                raise ValueError(
                    f"{where}: {cls}.{method}{origin} returns {what} of shape {shape} at a scalar "
                    f"voltage; values must be scalars or shaped as the channel's parameters "
                    f"{params_shape} (one per compartment)"
                )

    v = jnp.zeros(())
    temperature = DEFAULT_TEMPERATURE
    gates = {g: jnp.full((), 0.5) for g in names}
    for method, fn in (("steady_state", lambda c: c.steady_state(v, temperature)),
                       ("gate_inf_rate", lambda c: c.gate_inf_rate(v, temperature)),
                       ("derivative", lambda c: c.derivative(v, gates, temperature))):
        out = evaluate(method, fn)
        check_keys(method, out)
        check_shapes(method, out)
    current = evaluate("current", lambda c: c.current(v, gates))
    if not isinstance(current, jax.ShapeDtypeStruct):
        keys = f" with keys {tuple(current)}" if isinstance(current, dict) else ""
        raise ValueError(
            f"{where}: {cls}.current must return one array, the channel's total current density "
            f"(mA/cm², outward positive), got a {type(current).__name__}{keys}; currents by ion are "
            "component_currents() (a dict), whose sum current() returns"
        )
    check_shapes("current", current)
    if key is not None:
        remember(_CHECKED, key, None, 1024)


def check_parameter_shapes(owner: str, channels, own: dict, n: int | None) -> None:
    """A ValueError naming the channel, its class and the parameter if a parameter's
    shape does not fit a membrane of ``n`` compartments (a scalar or shape ``(n,)``),
    or, with ``n`` None, if the parameters' shapes do not broadcast together.
    ``own``: the owner's own parameters, ``{name: value}``."""
    labelled = [(f"{owner}.{k}", np.shape(x)) for k, x in own.items() if x is not None]
    for i, ch in enumerate(channels):
        for path, leaf in jax.tree_util.tree_leaves_with_path(ch):
            labelled.append((
                f"{owner}.channels[{i}] ({type(ch).__name__} {ch.name!r}) parameter "
                f"{jax.tree_util.keystr(path).lstrip('.')}", np.shape(leaf),
            ))
    if n is not None:
        for label, shape in labelled:
            try:
                ok = np.broadcast_shapes(shape, (n,)) == (n,)
            except ValueError:
                ok = False
            if not ok:
                raise ValueError(
                    f"{label} has shape {shape}; with n={n} each parameter is a scalar or one "
                    f"value per compartment, shape ({n},)"
                )
        return
    try:
        np.broadcast_shapes(*[shape for _, shape in labelled])
    except ValueError:
        shaped = ", ".join(f"{label}: {shape}" for label, shape in labelled if shape != ())
        raise ValueError(
            f"{owner}: parameter shapes do not broadcast together ({shaped}); give "
            "n=... and one value per compartment, or scalars"
        ) from None


def gate_key(ch: AbstractChannel, gate: str) -> str:
    """State name of gate ``gate`` of channel ``ch``: ``"m_hh"``."""
    return f"{gate}_{ch.name}"


def gates_of(ch: AbstractChannel, gates: dict) -> dict:
    """The channel's own gates (by short name) out of a membrane's gate dict."""
    return {g: gates[gate_key(ch, g)] for g in ch.gate_names}


def steady_gates(ch: AbstractChannel, v, temperature) -> dict:
    """``{state name: steady state at v}`` for one channel."""
    return {gate_key(ch, g): value for g, value in ch.steady_state(v, temperature).items()}


def gate_derivatives(ch: AbstractChannel, v, gates: dict, temperature) -> dict:
    """``{state name: d gate/dt}`` (1/ms) for one channel."""
    d = ch.derivative(v, gates_of(ch, gates), temperature)
    return {gate_key(ch, g): value for g, value in d.items()}


def gate_increments(ch: AbstractChannel, v, gates: dict, dt, temperature) -> dict | None:
    """``{state name: change over dt}`` for one channel's gates at fixed voltage ``v``
    (mV) over ``dt`` (ms), exact for first-order kinetics (NEURON's ``cnexp``:
    ``(x_inf - x)·(1 - exp(-dt/tau))``), from :meth:`AbstractChannel.gate_inf_rate`;
    None for a channel that gives no steady state and rate."""
    inf_rate = ch.gate_inf_rate(v, temperature)
    if inf_rate is None:
        return None
    own = gates_of(ch, gates)
    # Growth (a negative rate, from nonsensical parameters) is capped per step
    # as the solver caps it, so results stay finite. solve.exponential.exp: cheaper
    # than jnp.exp in float64, where each gate's exponential has this one use.
    return {gate_key(ch, g): (inf - own[g]) * (1.0 - exp(jnp.minimum(-dt * rate, MAX_GROWTH_PER_STEP)))
            for g, (inf, rate) in inf_rate.items()}


def coupled_gate_groups(channels, temperatures) -> tuple:
    """The gates (as leaf paths ``(state name,)``) that the default solver advances
    together: per channel advanced from its :meth:`AbstractChannel.derivative` (no
    ``gate_inf_rate``) with two gates or more, whose rates may depend on each other (a
    kinetic scheme's states, a calcium pool and the gates it drives). ``temperatures``:
    each channel's (a scalar or per segment)."""
    out = []
    for ch, temperature in zip(channels, temperatures):
        if len(ch.gate_names) > 1 and ch.gate_inf_rate(jnp.zeros(()), temperature) is None:
            out.append(tuple((gate_key(ch, g),) for g in ch.gate_names))
    return tuple(out)


def ionic_current(channels, v, gates: dict):
    """Total channel current density, mA/cm² (outward positive)."""
    total = jnp.zeros_like(v)
    for ch in channels:
        total = total + ch.current(v, gates_of(ch, gates))
    return total


def dv_dt(i_density, i_ionic, cm):
    """Membrane ``dv/dt`` (mV/ms) from an injected and an ionic current density
    (mA/cm²) on ``cm`` µF/cm²."""
    # A product with the reciprocal: 1/cm is loop-invariant, so compiled time loops
    # hoist it and each step multiplies instead of dividing (as does the slope's JVP).
    return (i_density - i_ionic) * (MA_PER_UF_TO_MV_PER_MS / cm)


# Component current names by channel structure (class and static fields).
_COMPONENTS: dict = {}


def component_names(ch: AbstractChannel) -> tuple[str, ...]:
    """Names of the channel's component currents (:meth:`AbstractChannel.component_currents`),
    computed once per channel class and static settings."""
    try:
        key = jax.tree_util.tree_structure(ch)
        cached = _COMPONENTS.get(key)
    except (TypeError, ValueError):  # static fields that do not hash or compare
        key, cached = None, None
    if cached is not None:
        return cached
    # Component names do not depend on the voltage; evaluate once at a dummy state.
    dummy = {g: 0.5 for g in ch.gate_names}
    names = tuple(eqx.filter_eval_shape(lambda c: c.component_currents(0.0, dummy), ch))  # (shapes only: nothing compiled)
    if key is not None:
        remember(_COMPONENTS, key, names, 1024)
    return names


def channel_observables(channels) -> tuple[str, ...]:
    """Record names the channels provide: currents, component currents, gates."""
    names = []
    for ch in channels:
        names.append(f"i_{ch.name}")
        names += [f"{c}_{ch.name}" for c in component_names(ch)]
        names += [gate_key(ch, g) for g in ch.gate_names]
    return tuple(names)


def observe_channel(ch: AbstractChannel, name: str, v, gates: dict):
    """Current ``"i_<ch>"`` or component current ``"<c>_<ch>"`` of ``ch`` (mA/cm²),
    or ``None`` if ``name`` is neither."""
    own = gates_of(ch, gates)
    if name == f"i_{ch.name}":
        return ch.current(v, own)
    suffix = f"_{ch.name}"
    if name.endswith(suffix) and name[: -len(suffix)] in component_names(ch):
        return ch.component_currents(v, own)[name[: -len(suffix)]]
    return None
