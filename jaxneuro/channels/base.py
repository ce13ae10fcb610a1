"""The channel interface: gate states, their steady state and kinetics, a current."""

from __future__ import annotations

import dataclasses
import functools

import math
import types
import weakref
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array

from .. import units
from .._repr import values_repr


class AbstractChannel(eqx.Module):
    """A membrane mechanism inserted into a compartment (NEURON's density mechanism).

    **Parameters** are fields declared with :func:`jaxneuro.units.param`. A field holds
    its value in the unit it is declared in, and that is the unit the channel's formulas
    receive it in: a plain number is read in that unit and a saiunit quantity is
    converted to it (``units.param(units.S_per_cm2)``: ``1 * u.mS / u.cm**2`` is stored
    as 0.001; ``units.param(u.mS / u.cm**2)``: stored as 1.0, and :meth:`current` must
    then scale it by 1e-3 itself, as a .mod file declaring ``gbar (mS/cm2)`` does).
    Declare densities in S/cm² (``units.S_per_cm2``) and potentials in mV
    (``units.mV``), as the built-in channels do, so users' plain numbers mean what
    they mean everywhere else in jaxneuro. A parameter may carry a leading axis (one
    value per neuron of a population, per segment of a cable), and an array parameter
    always means that: the backends that split a population cut such arrays per neuron,
    so a vector of coefficients used as a whole (``jnp.sum(self.coef)``) must be
    separate scalar fields or a static tuple (``eqx.field(static=True)``), else a
    population of as many neurons as coefficients runs differently on each backend. ``name`` (static) keys
    the channel's gates and current in a compartment: gate ``m`` of a channel named
    ``hh`` is the state ``"m_hh"``; its current is recorded as ``"i_hh"``. Declare it
    ``name: str = eqx.field(default="...", static=True, kw_only=True)``, so that
    positional arguments go to the parameters (``Leak(1e-4)`` is ``g``); a class that
    declares none is a TypeError when it is defined, unless its name starts with
    ``Abstract`` (a base class of channels, whose subclasses declare it).

    **Methods** receive the membrane voltage ``v`` in mV, ``temperature`` in °C (the
    compartment's; channels with their own temperature parameter, such as the Bazhenov
    2002 family, use theirs) and ``gates`` as ``{gate: value}`` with the short names of
    ``gate_names``. :meth:`current` returns a density in mA/cm², outward positive
    (e.g. ``g·m³·h·(v - e)`` with ``g`` in S/cm² and mV: S/cm²·mV = mA/cm²). It gets
    no temperature: a current that depends on one (a GHK flux, NEURON's ``ghk()``
    reading ``celsius``) keeps it as a parameter of its own (``T``, °C) and returns it
    from :meth:`own_temperature`, so that a compartment given another warns.

    **Kinetics.** ``gate_names`` (a class variable) lists the gates; every kinetics
    method returns a dict with exactly these keys (checked when a compartment or cable
    is built). A subclass defines one of:

    - :meth:`gate_inf_tau`: ``{gate: (steady state, time constant in ms)}``, first-order
      kinetics ``dx/dt = (inf - x)/tau``, which the default solver advances exactly by
      exponential Euler (NEURON's ``cnexp``); there ``tau = 0`` is an instantaneous
      gate (``x = inf`` at once), which diffrax's solvers cannot integrate (its rate of
      change is infinite: they need ``tau > 0``);
    - ``rates`` and ``rate_factor``, by subclassing :class:`AbstractAlphaBetaChannel`;
    - :meth:`steady_state` and :meth:`derivative`, for kinetics of any other form,
      gates whose rates depend on each other included (a kinetic scheme's states, a
      calcium pool fed by a calcium channel's gate, a calcium-activated gate reading
      the pool: ``gates`` holds all the channel's gates). The default solver steps a
      channel's gates together by one linearised backward Euler step on their rates'
      Jacobian (linearly implicit Euler: NEURON's ``sparse`` for a ``KINETIC`` scheme,
      which is linear, whose states then keep their sum and stay nonnegative; NEURON's
      ``derivimplicit`` iterates Newton's method to the backward Euler step; stable at
      any step, first order in ``dt``) where their rates depend on each other, and each
      gate by exponential Euler on its rate linearised along itself where none does
      (exact for a gate linear in itself, as NEURON's ``cnexp``); diffrax's solvers
      integrate the derivative as it is;
    - optionally a cheaper :meth:`gate_inf_rate` (``{gate: (inf, 1/tau)}``) for the
      default solver, or one returning ``None`` (advance the gates from
      :meth:`derivative`). It is for the default solver only: it must describe the
      same kinetics as the class's other methods and never defines them for the other
      paths.

    **Which definition is used.** The solver and initialisation call
    :meth:`gate_inf_rate` (default solver), :meth:`derivative` (diffrax solvers) and
    :meth:`steady_state` (``finitialize``). Each of them is taken from the *most
    derived class* that defines any method it can follow from (``gate_inf_rate``:
    itself, ``derivative``, ``gate_inf_tau``, ``rates``; ``derivative``: itself,
    ``gate_inf_tau``, ``rates``; ``steady_state``: itself, ``gate_inf_tau``,
    ``rates``): if that class defines the method itself, its definition is used;
    otherwise the method is derived from what that class defines, the first in those
    lists (so ``gate_inf_rate`` is ``None``, the gates advanced from the derivative,
    where that class defines ``derivative``). Definitions inherited from further up
    are not used, as they describe the parent's kinetics. So a subclass that overrides only :meth:`gate_inf_tau` (a time-constant
    floor, ``if (ntau < tmin) {ntau = tmin}``; a per-gate q10) changes every path, and
    so does a subclass of :class:`~jaxneuro.channels.HH` that overrides only
    ``rates``: all are derived from the override. Calling ``super()`` from an override
    gives the parent's kinetics (e.g. ``super().gate_inf_tau(v, temperature)`` then a
    floor on ``tau``). A class that defines several of these methods itself must keep
    them consistent (as :class:`~jaxneuro.channels.HH` does, with its fast
    :meth:`gate_inf_rate`).

    **Called on values** (``channel.rates(v)`` with ``v`` a NumPy array, to plot a
    channel's curves), :meth:`rates`, :meth:`gate_inf_tau`, :meth:`steady_state`,
    :meth:`gate_inf_rate`, :meth:`derivative`, :meth:`current` and
    :meth:`component_currents`, a subclass's own definitions included, run as one
    compiled program (``eqx.filter_jit``, one per channel class, structure and
    argument shapes; numbers passed as arrays, so a new value reuses it) rather than
    operation by operation, each of which compiled a program of its own on a new shape.
    They are traced as the simulation traces them, so the same code works in both;
    ``method.__wrapped__`` is the method as written.
    """

    __repr__ = values_repr  # parameter values, not only their shapes

    name: eqx.AbstractVar[str]
    gate_names: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if not cls.__name__.startswith("Abstract") and not any(
                "name" in vars(klass).get("__annotations__", {}) for klass in cls.__mro__
                if klass.__name__ not in ("AbstractChannel", "AbstractAlphaBetaChannel")):
            # Else the abstract name became a required first positional field: the call
            # failed with dataclasses' "missing 1 required positional argument: 'name'".
            raise TypeError(
                f"{cls.__name__} declares no name: a channel's name keys its gates and current "
                f"(\"i_<name>\"); declare it as name: str = eqx.field(default=\"...\", static=True, "
                "kw_only=True) (or start the class's name with Abstract for a base class of channels)"
            )
        resolve = globals().get("_resolve_kinetics")  # absent while this module loads
        if resolve is not None:
            resolve(cls)
            _compile_on_values(cls)

    def __post_init__(self):
        units.convert_fields(self)

    def __check_init__(self):
        problem = _class_problem(type(self))
        if problem is not None:
            raise ValueError(problem)
        name = getattr(self, "name", None)
        if not isinstance(name, str) or not name:
            # A subclass declaring name positionally first took the first positional
            # argument as its name (Leak(1e-4) kept the default g).
            # The parameters: fields other than name (declared positionally, it is no
            # static field) that are not static, units.param fields first.
            fields = [f for f in dataclasses.fields(self) if f.name != "name" and not f.metadata.get("static")]
            params = [f.name for f in fields if "unit" in f.metadata] + [f.name for f in fields if "unit" not in f.metadata]
            example = f"{type(self).__name__}({params[0]}=...)" if params else f"{type(self).__name__}(...)"
            raise ValueError(
                f"{type(self).__name__}.name expects a non-empty string (the channel's name), got {name!r}; "
                f"give parameters by keyword, e.g. {example}, or declare name with "
                "eqx.field(default=..., static=True, kw_only=True)"
            )

    def own_temperature(self):
        """The temperature (°C) this channel's kinetics run at whatever the
        compartment's, for channels with a temperature parameter of their own (the
        Bazhenov 2002 family's ``T``, as BrainPy has it); ``None`` (the default): the
        compartment's. Compartments, cables and cells warn when given another
        temperature explicitly, which would otherwise not reach the channel."""
        return None

    def fixed_speed(self) -> str | None:
        """The parameter(s) setting this channel's kinetics' speed whatever the
        temperature (``"phi"``), for a channel that follows no temperature (BrainPy's
        ``Ih_HM1992``, or a Bazhenov 2002 channel given ``phi``); ``None`` (the
        default): it follows the compartment's or :meth:`own_temperature`.
        Compartments, cables and cells given a temperature explicitly warn, as it does
        not reach the channel."""
        return None

    def gate_inf_tau(self, v, temperature) -> dict[str, tuple[Array, Array]]:
        """``{gate: (steady state, time constant in ms)}`` at voltage ``v`` (mV)."""
        if not tuple(self.gate_names):
            return {}
        raise NotImplementedError(
            f"{type(self).__name__} defines neither gate_inf_tau, nor rates (an "
            "AbstractAlphaBetaChannel), nor steady_state/derivative"
        )

    def steady_state(self, v, temperature) -> dict[str, Array]:
        """``{gate: value}`` at steady state for a clamped voltage ``v`` (mV)."""
        return _steady_state_from_gate_inf_tau(self, v, temperature)

    def gate_inf_rate(self, v, temperature) -> dict[str, tuple[Array, Array]] | None:
        """``{gate: (steady state, rate 1/tau in 1/ms)}`` at voltage ``v`` (mV), which
        the default solver uses to advance each gate exactly over a step (NEURON's
        ``cnexp``); ``None`` for a channel whose kinetics are not of that form (it
        defines its own :meth:`derivative`), whose gates the solver then advances from
        the derivative. The default takes ``1/tau`` from :meth:`gate_inf_tau`; a
        subclass may give a cheaper formula (one division per gate:
        :class:`jaxneuro.channels.HH`), which must describe the same kinetics as the
        class's other methods (see the class docstring)."""
        return _gate_inf_rate_from_gate_inf_tau(self, v, temperature)

    def derivative(self, v, gates: dict[str, Array], temperature) -> dict[str, Array]:
        """``{gate: d gate / dt}`` (1/ms)."""
        return _derivative_from_gate_inf_tau(self, v, gates, temperature)

    def current(self, v, gates: dict[str, Array]) -> Array:
        """Current density in mA/cm² (outward positive) at ``v`` (mV)."""
        raise NotImplementedError(f"{type(self).__name__} does not define current(v, gates)")

    def component_currents(self, v, gates: dict[str, Array]) -> dict[str, Array]:
        """Named parts of :meth:`current` (e.g. ``ina``, ``ik``), mA/cm²; may be empty."""
        return {}


class AbstractAlphaBetaChannel(AbstractChannel):
    """A channel whose gates follow ``dx/dt = phi·(alpha(v)·(1 - x) - beta(v)·x)``.

    A subclass gives :meth:`rates` (``{gate: (alpha, beta)}`` in 1/ms, ``v`` in mV)
    and :meth:`rate_factor` (the dimensionless temperature factor ``phi``, e.g.
    ``units.q10_factor(q10, temperature, reference)``; ``1.0`` for none). Steady
    states, time constants, the solver's rates and the derivative all follow from them;
    the derivative is written as ``phi·alpha - phi·(alpha + beta)·x``, free of
    divisions, because the default solver evaluates it (and its slope in ``x``) every
    step. A subclass may override :meth:`gate_inf_tau` to change the kinetics (a floor
    on ``tau``, another temperature factor per gate): every path then follows it (see
    :class:`AbstractChannel`).
    """

    def rates(self, v) -> dict[str, tuple[Array, Array]]:
        """``{gate: (alpha, beta)}`` in 1/ms at voltage ``v`` (mV), before ``phi``."""
        raise NotImplementedError(f"{type(self).__name__} does not define rates(v)")

    def rate_factor(self, temperature):
        """Temperature factor ``phi`` multiplying both rates (dimensionless)."""
        raise NotImplementedError(f"{type(self).__name__} does not define rate_factor(temperature)")

    def gate_inf_tau(self, v, temperature):
        return _gate_inf_tau_from_rates(self, v, temperature)

    def steady_state(self, v, temperature):
        return _steady_state_from_rates(self, v, temperature)

    def gate_inf_rate(self, v, temperature):
        return _gate_inf_rate_from_rates(self, v, temperature)

    def derivative(self, v, gates, temperature):
        return _derivative_from_rates(self, v, gates, temperature)


# --- derivations ------------------------------------------------------------------------
# Each entry point (gate_inf_rate, derivative, steady_state, gate_inf_tau) computed from
# one hook. The base classes' methods are the natural ones (AbstractChannel: from
# gate_inf_tau; AbstractAlphaBetaChannel: from rates); _resolve_kinetics installs
# others on a subclass whose most specific hook is another one.

def _gate_inf_rate_from_gate_inf_tau(self, v, temperature):
    return {g: (inf, _rate_of_tau(tau)) for g, (inf, tau) in self.gate_inf_tau(v, temperature).items()}


def _rate_of_tau(tau):
    """``1/tau`` (1/ms), with ``tau = 0`` of either sign an instantaneous gate (rate
    inf): ``0.0 * v`` is -0.0 for negative ``v``, whose reciprocal -inf made a gate
    grow without bound."""
    zero = tau == 0
    return jnp.where(zero, jnp.inf, 1.0 / jnp.where(zero, 1.0, tau))


def _gate_inf_rate_from_rates(self, v, temperature):
    phi = self.rate_factor(temperature)
    out = {}
    for g, (a, b) in self.rates(v).items():
        s = a + b
        # alpha = beta = 0 (no kinetics at this voltage): the gate stays where it is.
        out[g] = (a / jnp.where(s == 0, 1.0, s), phi * s)
    return out


def _gate_inf_rate_from_derivative(self, v, temperature):
    return None


def _derivative_from_gate_inf_tau(self, v, gates, temperature):
    return {g: (inf - gates[g]) / tau for g, (inf, tau) in self.gate_inf_tau(v, temperature).items()}


def _derivative_from_rates(self, v, gates, temperature):
    phi = self.rate_factor(temperature)
    return {g: phi * a - phi * (a + b) * gates[g] for g, (a, b) in self.rates(v).items()}


def _steady_state_from_gate_inf_tau(self, v, temperature):
    return {g: inf for g, (inf, _) in self.gate_inf_tau(v, temperature).items()}


def _steady_state_from_rates(self, v, temperature):
    return {g: a / (a + b) for g, (a, b) in self.rates(v).items()}


def _gate_inf_tau_from_rates(self, v, temperature):
    phi = self.rate_factor(temperature)
    out = {}
    for g, (a, b) in self.rates(v).items():
        s = a + b
        out[g] = (a / s, 1.0 / (phi * s))
    return out


_DERIVATIONS = {
    ("gate_inf_rate", "gate_inf_tau"): _gate_inf_rate_from_gate_inf_tau,
    ("gate_inf_rate", "rates"): _gate_inf_rate_from_rates,
    ("gate_inf_rate", "derivative"): _gate_inf_rate_from_derivative,
    ("derivative", "gate_inf_tau"): _derivative_from_gate_inf_tau,
    ("derivative", "rates"): _derivative_from_rates,
    ("steady_state", "gate_inf_tau"): _steady_state_from_gate_inf_tau,
    ("steady_state", "rates"): _steady_state_from_rates,
    ("gate_inf_tau", "rates"): _gate_inf_tau_from_rates,
}

# The hooks each entry point may be derived from; among hooks defined by the same (most
# derived) class, the first listed wins. gate_inf_rate is no source for the others: it
# is the default solver's faster form of the same kinetics, or None.
_SOURCES = {
    "gate_inf_rate": ("gate_inf_rate", "derivative", "gate_inf_tau", "rates"),
    "derivative": ("derivative", "gate_inf_tau", "rates"),
    "steady_state": ("steady_state", "gate_inf_tau", "rates"),
    "gate_inf_tau": ("gate_inf_tau", "rates"),
}

# What each base-class method is computed from.
_NATURAL = {
    (AbstractChannel, "gate_inf_rate"): "gate_inf_tau",
    (AbstractChannel, "derivative"): "gate_inf_tau",
    (AbstractChannel, "steady_state"): "gate_inf_tau",
    (AbstractChannel, "gate_inf_tau"): None,
    (AbstractAlphaBetaChannel, "gate_inf_rate"): "rates",
    (AbstractAlphaBetaChannel, "derivative"): "rates",
    (AbstractAlphaBetaChannel, "steady_state"): "rates",
    (AbstractAlphaBetaChannel, "gate_inf_tau"): "rates",
}

_BASES = (AbstractChannel, AbstractAlphaBetaChannel)
# class -> {entry point: the hook it is computed from, or None}
_KINETICS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _derived_from(function) -> str | None:
    return getattr(function, "_jaxneuro_derived_from", None)


def _definition_depth(cls, hook: str) -> float:
    """How far up ``cls``'s MRO a channel author's definition of ``hook`` is (0: in
    ``cls`` itself); ``inf`` if only the base classes, or a derivation installed by
    :func:`_resolve_kinetics`, define it."""
    if hook == "rates" and not issubclass(cls, AbstractAlphaBetaChannel):
        return math.inf
    for depth, klass in enumerate(cls.__mro__):
        if hook in klass.__dict__:
            if klass in _BASES or _derived_from(klass.__dict__[hook]) is not None:
                return math.inf
            return depth
    return math.inf


def _source(cls, entry: str) -> str | None:
    """The hook ``entry`` is computed from for channels of class ``cls``."""
    depth, _, hook = min(
        (_definition_depth(cls, h), i, h) for i, h in enumerate(_SOURCES[entry])
    )
    return hook if depth < math.inf else None


def _resolve_kinetics(cls) -> None:
    """Give ``cls`` the entry points its most specific kinetics hook implies, where
    what it inherits is computed from another hook (see :class:`AbstractChannel`)."""
    sources = {entry: _source(cls, entry) for entry in _SOURCES}
    _KINETICS[cls] = sources
    for entry, src in sources.items():
        if src is None:
            continue
        owner = next(k for k in cls.__mro__ if entry in k.__dict__)
        inherited = owner.__dict__[entry]
        if owner in _BASES:
            natural = _NATURAL[owner, entry]
        else:
            natural = _derived_from(inherited) or entry
        if natural == src:
            continue
        base = _DERIVATIONS[entry, src]

        def derived(self, *args, _base=base):
            return _base(self, *args)

        derived.__name__ = derived.__qualname__ = entry
        derived.__doc__ = (
            f"Derived from :meth:`{src}`, the most specific kinetics {cls.__name__} defines "
            "(see :class:`~jaxneuro.channels.AbstractChannel`)."
        )
        derived._jaxneuro_derived_from = src
        setattr(cls, entry, derived)


# What a user calls to look at a channel (gate rates, steady states, time constants,
# currents: the curves of a notebook's plots).
_LOOKED_AT = ("rates", "gate_inf_tau", "steady_state", "gate_inf_rate", "derivative", "current",
              "component_currents")


def _compile_on_values(cls) -> None:
    """Make ``cls``'s own (or installed) :data:`_LOOKED_AT` methods compile as one
    program when called on values (see :func:`_on_values`)."""
    for entry in _LOOKED_AT:
        method = cls.__dict__.get(entry)  # (a plain function: not a property or staticmethod)
        if isinstance(method, types.FunctionType) and not getattr(method, "_jaxneuro_on_values", False):
            setattr(cls, entry, _on_values(method))


def _on_values(method):
    """``method`` (of a channel) compiled as one program per channel structure and
    argument shapes when called on values, as a user plotting ``rates(v)`` does: op by
    op, each jax.numpy operation on a new shape compiled a program of its own (a dozen
    or more per method; ``benchmarks/first_call.py`` times both). Inside a trace (the
    simulation's loop, ``jit``, ``grad``, ``vmap``) it runs as written. Numbers (the
    channel's, ``v``, a temperature) are passed as arrays, so that a new value reuses
    the program."""
    compiled = eqx.filter_jit(method)

    @functools.wraps(method)
    def call(self, *args, **kwargs):
        if any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves((self, args, kwargs))):
            return method(self, *args, **kwargs)
        return compiled(units.numbers_as_arrays(self), *units.numbers_as_arrays(args),
                        **units.numbers_as_arrays(kwargs))

    call._jaxneuro_on_values = True
    return call


def _class_problem(cls) -> str | None:
    """Why channels of class ``cls`` cannot be simulated, or None."""
    sources = _KINETICS.get(cls)
    if sources is None:  # AbstractChannel itself
        return None
    name = cls.__name__
    if "rates" in sources.values():
        if cls.rate_factor is AbstractAlphaBetaChannel.rate_factor:
            return (
                f"{name} (an AbstractAlphaBetaChannel) defines rates() but not "
                "rate_factor(self, temperature), the temperature factor phi that multiplies "
                "both rates: return 1.0 for none, or units.q10_factor(q10, temperature, "
                "reference_temperature)"
            )
    gate_names = getattr(cls, "gate_names", ())
    if isinstance(gate_names, str) or not all(isinstance(g, str) for g in _iter(gate_names)):
        return f"{name}.gate_names expects a tuple of gate names (strings), got {gate_names!r}"
    repeated = sorted({g for g in gate_names if tuple(gate_names).count(g) > 1})
    if repeated:
        return f"{name}.gate_names must name each gate once, {repeated} repeat: {tuple(gate_names)}"
    if tuple(gate_names) and (sources["steady_state"] is None or sources["derivative"] is None):
        hint = (
            "rates(v) and rate_factor(temperature)" if issubclass(cls, AbstractAlphaBetaChannel)
            else "gate_inf_tau(v, temperature) -> {gate: (inf, tau)}, or steady_state and derivative, "
            "or subclass AbstractAlphaBetaChannel and give rates and rate_factor"
        )
        return f"{name} has gates {tuple(gate_names)} but no kinetics for them: define {hint}"
    return None


def _iter(x):
    try:
        return tuple(x)
    except TypeError:
        return (None,)


def exprel_ratio(x, y):
    """``x / (exp(x / y) - 1)``, finite (→ ``y``) and smooth at ``x = 0``.

    NEURON's ``vtrap``. Computed with ``exp`` and a series near ``x = 0`` (see
    :func:`exprel_ratio_of_exp`): ``expm1`` costs XLA's CPU code twice an ``exp``.
    """
    return exprel_ratio_of_exp(x, y, jnp.exp(x * (1.0 / y)))


def exprel_ratio_of_exp(x, y, exp_x_over_y):
    """``x / (exp(x / y) - 1)`` given ``exp(x / y)`` already computed (shared between
    rates to save exponentials), finite and smooth at ``x = 0``.

    Near ``x = 0`` the subtraction ``exp(x/y) - 1`` cancels, so there the series of
    :func:`exprel_series` in ``z = x/y`` is used (:func:`exprel_series_applies`:
    ``|z| < 1e-2`` in float64, ``|z| < 0.3`` in float32); outside it the cancellation
    multiplies the exponential's relative error by at most ~100 in float64 and ~4 in
    float32. The derivative suffers it as ``error/z²``: in float32 a window of 1e-2 left
    HH's rates' derivatives up to 1.4 % off (its rate constants' 15 %) just outside
    it; with 0.3 they are within 2e-5 there (tests/test_channels_hh.py)."""
    # Multiplications by constant reciprocals: divisions cost several times more.
    z = x * (1.0 / y)
    small = exprel_series_applies(z)
    denom = jnp.where(small, 1.0, exp_x_over_y - 1.0)
    return jnp.where(small, y * exprel_series(z), x / denom)


def _narrow(z) -> bool:
    """Whether ``z``'s floating dtype is float32 or narrower (a Python-level choice:
    float64 programs are unchanged by the float32 forms)."""
    return float(jnp.finfo(jnp.result_type(z, float)).eps) > 1e-10


def exprel_series_applies(z):
    """Where :func:`exprel_series` stands for ``z / (exp(z) - 1)``: ``|z| < 1e-2`` in
    float64, ``|z| < 0.3`` in float32 and narrower dtypes (the comparison's constant is
    all that differs: the same operations either way)."""
    return jnp.abs(z) < (0.3 if _narrow(z) else 1e-2)


def exprel_series(z):
    """``z / (exp(z) - 1)`` near ``z = 0``: ``1 - z/2 + z²/12 - z⁴/720`` (the next term,
    ``z⁶/30240``, is below 1e-16 relative where :func:`exprel_series_applies` in
    float64 and below 2.5e-8, under float32's rounding, in float32)."""
    z2 = z * z
    return 1.0 - 0.5 * z + z2 * (1.0 / 12.0) - z2 * z2 * (1.0 / 720.0)


# The base classes were made before _compile_on_values existed (their subclass hook
# skips it while this module loads).
for _base in (AbstractChannel, AbstractAlphaBetaChannel):
    _compile_on_values(_base)
