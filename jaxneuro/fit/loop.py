"""``jn.fit``: gradient descent on chosen model parameters with any optax optimiser."""

from __future__ import annotations

import dataclasses
import functools
import sys
import warnings
from typing import Any, Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import saiunit

from .. import units
from .._stack import outside_stacklevel
from . import checkpoint as ckpt
from .select import Selection

__all__ = ["fit", "FitResult", "NonFiniteEvent", "DEFAULT_LEARNING_RATE", "DEFAULT_B1"]

#: Adam's learning rate when no optimizer is given. It acts on the transformed values:
#: for :class:`Positive` parameters (``x = exp(u)``) a step of 0.05 is a change of
#: about 5 %, whatever the parameter's magnitude.
DEFAULT_LEARNING_RATE = 0.05
#: Adam's first-moment decay when no optimizer is given: 0.5 rather than optax's 0.9.
#: Fitting losses are deterministic, and with little momentum a fit of a few
#: parameters overshoots its minimum less. It does not settle there: Adam divides the
#: step by the gradient's recent size, so near the minimum its steps stay about the
#: learning rate and the loss can rise again; FitResult.best_model keeps the best.
DEFAULT_B1 = 0.5

_ON_NONFINITE = ("stop", "skip", "raise")


@functools.partial(jax.tree_util.register_dataclass, data_fields=["step", "start", "values"],
                   meta_fields=["what", "names"])
@dataclasses.dataclass(frozen=True)
class NonFiniteEvent:
    """A step whose loss, gradient or update was not finite; its update was not applied.

    ``step``: the step (0-based; ``steps`` itself for the loss after the last update,
    where no update follows); ``start``: the start index (``None`` for a single
    fit); ``what``: ``"loss"``, ``"gradient"`` or ``"update"`` (finite loss and
    gradient, but the optimizer's step led to non-finite parameters, e.g. an overflow
    from a huge learning rate); ``names``: the parameters concerned (for a non-finite
    loss, all of them); ``values``: their values at that step (before the update).
    """

    step: int
    start: int | None
    what: str
    names: tuple[str, ...]
    values: dict

    def __str__(self):
        where = "" if self.start is None else f" (start {self.start})"
        vals = ", ".join(f"{k}={_fmt(v)}" for k, v in self.values.items())
        if self.what == "loss":
            return f"step {self.step}{where}: non-finite loss at {vals}"
        if self.what == "update":
            return (f"step {self.step}{where}: the optimizer's update made {', '.join(self.names)} non-finite "
                    f"(loss and gradient were finite) from {vals}; lower the learning rate")
        return f"step {self.step}{where}: non-finite gradient with respect to {', '.join(self.names)} at {vals}"

    def as_dict(self):
        return {"step": self.step, "start": self.start, "what": self.what, "names": list(self.names),
                "values": {k: np.asarray(v).tolist() for k, v in self.values.items()}}

    @classmethod
    def from_dict(cls, d):
        return cls(d["step"], d["start"], d["what"], tuple(d["names"]),
                   {k: np.asarray(v) for k, v in d["values"].items()})


def _fmt(v):
    v = np.asarray(v)
    return f"{float(v):.6g}" if v.ndim == 0 else np.array2string(v, precision=6)


class FitResult(eqx.Module):
    """The outcome of :func:`fit`.

    ``model``: the model after the last step (for several starts: the final model of
    the start that reached the lowest loss). ``best_model``: the model with the lowest
    loss seen (its loss ``best_loss`` at step ``best_step``, in start ``best_start``).
    ``loss_history``: the loss at the parameters of each step, ``(steps + 1,)`` or
    ``(steps + 1, n_starts)``, the last entry the loss of the final parameters.
    ``param_history``: ``{name: values}`` with the same leading axes. ``params``:
    final values by name. ``nonfinite``: the :class:`NonFiniteEvent` list.
    ``stopped``: True when the fit ended early: ``on_nonfinite="stop"`` ended it (for
    several starts, when every start had stopped; ``start(i).stopped`` tells whether
    start ``i`` did), or it was interrupted (KeyboardInterrupt), and then the result holds
    the steps completed.

    A result is an Equinox module (a pytree): its models, histories, best loss and
    step, events and the starting model are its leaves; ``names`` and ``n_starts`` are
    static. ``eqx.tree_serialise_leaves(path, result)`` saves it, and
    ``eqx.tree_deserialise_leaves(path, like)`` restores it into ``like``, a result of
    a fit of the same shape (same model structure, parameters, ``steps``, ``n_starts``
    and number of non-finite events), e.g. the result of the same ``jn.fit`` call.
    A ``like`` of another shape is a RuntimeError from Equinox. Pickle works too.
    """

    model: Any
    best_model: Any
    loss_history: np.ndarray
    param_history: dict
    best_loss: float
    best_step: int
    best_start: int | None
    names: tuple[str, ...] = eqx.field(static=True)
    n_starts: int | None = eqx.field(static=True)
    nonfinite: list
    stopped: bool
    _base: Any = eqx.field(repr=False, default=None)  # the starting model, for start(i)
    _selection: Any = eqx.field(repr=False, default=None, static=True)
    # Per start: whether on_nonfinite="stop" stopped it (a bool array, (0,) for one start;
    # an array rather than a tuple of indices, so that serialisation restores it).
    _halted: Any = eqx.field(repr=False, default_factory=lambda: np.zeros((0,), bool))

    @property
    def params(self) -> dict:
        """Final parameter values by name (a leading start axis for several starts)."""
        return {k: v[-1] for k, v in self.param_history.items()}

    @property
    def initial_params(self) -> dict:
        return {k: v[0] for k, v in self.param_history.items()}

    @property
    def steps(self) -> int:
        """Optimiser steps taken."""
        return len(self.loss_history) - 1

    def start(self, i: int) -> "FitResult":
        """The result of start ``i`` alone (several starts only)."""
        if self.n_starts is None:
            raise ValueError("start(i) is for fits with n_starts; this fit has one start")
        if not 0 <= i < self.n_starts:
            raise ValueError(f"start expects an index in [0, {self.n_starts}), got {i}")
        losses = self.loss_history[:, i]
        hist = {k: v[:, i] for k, v in self.param_history.items()}
        return _result(self._base, self._selection, losses, hist, None,
                       [e for e in self.nonfinite if e.start == i],
                       bool(self.stopped) or bool(np.asarray(self._halted)[i]))

    def summary(self) -> str:
        """A table of each start: initial and final values, final and best loss."""
        starts = range(self.n_starts) if self.n_starts is not None else [None]
        head = ["start"] + [f"{n} (initial -> final)" for n in self.names] + ["final loss", "best loss"]
        rows = []
        for i in starts:
            r = self if i is None else self.start(i)
            cells = ["-" if i is None else str(i)]
            for n in self.names:
                cells.append(f"{_fmt(r.param_history[n][0])} -> {_fmt(r.param_history[n][-1])}")
            cells += [f"{float(r.loss_history[-1]):.6g}", f"{r.best_loss:.6g}"]
            rows.append(cells)
        widths = [max(len(str(c)) for c in col) for col in zip(head, *rows)]
        line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths))
        return "\n".join([line(head), line(["-" * w for w in widths])] + [line(r) for r in rows])


def _result(base, sel, losses, hist, n_starts, events, stopped, halted=()) -> FitResult:
    names = sel.names
    finite = np.where(np.isfinite(losses), losses, np.inf)
    flat = int(np.argmin(finite))
    if n_starts is None:
        best_step, best_start = flat, None
        best_vals = [hist[n][best_step] for n in names]
        last_vals = [hist[n][-1] for n in names]
    else:
        best_step, best_start = np.unravel_index(flat, losses.shape)
        best_step, best_start = int(best_step), int(best_start)
        best_vals = [hist[n][best_step, best_start] for n in names]
        last_vals = [hist[n][-1, best_start] for n in names]
    as_model = lambda vals: sel.replace(base, [jnp.asarray(v) for v in vals])
    return FitResult(
        model=as_model(last_vals), best_model=as_model(best_vals), loss_history=losses,
        param_history=hist, best_loss=float(losses.reshape(-1)[flat]), best_step=best_step,
        best_start=best_start, names=names, n_starts=n_starts, nonfinite=list(events),
        stopped=bool(stopped), _base=base, _selection=sel,
        _halted=np.asarray([i in halted for i in range(n_starts or 0)], bool).reshape(n_starts or 0),
    )


def fit(
    loss: Callable[[Any], Any],
    model,
    params: Callable,
    *,
    optimizer: optax.GradientTransformation | None = None,
    steps: int = 100,
    transforms=None,
    n_starts: int | None = None,
    init=None,
    key=None,
    on_nonfinite: str = "stop",
    progress: bool | None = None,
    checkpoint=None,
    checkpoint_every: int | None = None,
    resume: bool = False,
    jit: bool = True,
    callback: Callable[[int, Any], Any] | None = None,
) -> FitResult:
    """Fit the parameters of ``model`` selected by ``params`` to minimise ``loss(model)``.

    ``loss``: a function of the model returning a scalar (simulate inside it and use
    :mod:`jaxneuro.losses`, or anything differentiable). ``params``: a function of the
    model returning the leaves to fit, as ``eqx.tree_at`` takes
    (``lambda m: m.gL``, ``lambda m: (m.channels[0].gnabar, m.channels[0].gkbar)``);
    each is named by its path in the model (``"gL"``, ``"channels[0].gnabar"``).

    ``transforms``: how each parameter is kept in its domain (see
    :mod:`jaxneuro.fit.transforms`): ``None`` gives :class:`Positive` (``x = exp(u)``)
    to parameters declared ``check="positive"`` or ``"nonnegative"`` in their
    ``units.param`` metadata (conductances, capacitances, time constants) and
    :class:`Identity` to the rest; or one transform for all, a sequence (one per
    parameter) or a dict ``{name: transform}`` (others keep the default).

    ``optimizer``: any optax optimiser, applied to the transformed values; default
    ``optax.adam(0.05, b1=0.5)`` (for a :class:`Positive` parameter about 5 % per
    step; little momentum, so that it overshoots less). Adam does not settle on a
    minimum: its steps, normalised by the gradient's size, stay near the learning rate
    there, so the loss can rise again after its best; take ``best_model``, or decay the
    rate with an optax schedule. A final loss more than 10 times the best (and above
    rounding level: 1e-6 of the first loss) gives a warning. For ill-conditioned fits of a few
    parameters (several densities of one cell) ``optax.lbfgs()`` converges far faster.
    Adam's steps shrink with the gradient relative to the largest seen, so a start far
    from the minimum (a steep loss there) slows down later; give more steps, a
    larger rate, or ``optax.lbfgs()``.
    Optimisers taking extra arguments (``optax.lbfgs``) get ``value``, ``grad`` and
    ``value_fn``. ``steps``: number of updates.

    ``n_starts``: fit that many starting points at once with ``jax.vmap``. ``init``:
    their values, the structure ``params(model)`` returns with a leading ``n_starts``
    axis on each leaf (or a dict by parameter name), as plain numbers in each
    parameter's base unit or saiunit quantities (``init=[15, 25] * u.nS`` for a ``gL``
    in µS; a wrong dimension is a ValueError); or ``None`` with a ``key`` (an integer seed or a JAX PRNG key) to sample them (uniformly within
    :class:`Bounded` limits, log-uniformly within a factor 3 of the model's value for
    :class:`Positive`, ``±50 %`` for :class:`Identity`).

    ``on_nonfinite``: what to do when a step's loss or gradient is NaN or infinite, or
    its update would make a parameter so (an overflowing step) — which is never
    applied to the parameters: ``"stop"`` (default) ends the fit there
    with a warning (with several starts it stops only that start: its parameters and
    optimiser state stay as they are, it reports nothing more, the other starts go on,
    and the fit ends early only when every start has stopped), ``"skip"`` leaves that
    start's parameters and optimiser state unchanged for the step and goes on (with a
    deterministic loss a skipped start then stays where it is; the other starts go
    on), ``"raise"`` raises a ``FloatingPointError``. Each event names the step, the
    start and the parameters. The loss after the last update is checked too:
    non-finite, it is an event (a warning, or the error with ``"raise"``);
    ``best_model`` is then the best finite.

    ``progress``: a tqdm progress bar (default: only when stderr is a terminal).
    ``checkpoint``: a folder to save the fit's state in every ``checkpoint_every``
    steps and at the end; ``resume=True`` continues from the saved state (when there
    is one), giving the same result bit for bit as an uninterrupted fit; it refuses
    (ValueError) a checkpoint of other parameters, transforms, starts or optimizer.
    With ``resume=False`` (default) the fit starts afresh: a checkpoint of another fit
    in the folder (another model, parameters, transforms, starts or optimizer, as
    ``resume=True`` compares them; or one that cannot be read) is refused with a
    ValueError rather than overwritten; one of this same fit is started over with a
    RuntimeWarning saying how many steps it held (they are replaced at the first save).
    ``resume`` and ``jit`` take True or False only (a string such as ``"False"`` is
    a ValueError, not a truthy value).
    ``jit``: compile the step with ``eqx.filter_jit`` (default True). Each fit
    compiles its step afresh (about a second for an HH cell), so that it sees what its
    loss reads as it is now (a target changed since the last fit, in place or rebound);
    to fit many starts, pass ``init`` with several (one program, ``jax.vmap`` over them).
    ``callback``: called as ``callback(step, loss)`` after each step's update (``loss``:
    the loss at that step's starting parameters, per start), e.g. to log; an exception
    it raises ends the fit (the last checkpoint stays).

    Returns a :class:`FitResult`. Interrupted (Ctrl-C, or a ``KeyboardInterrupt``
    from the loss or callback), the fit returns the result of the steps completed, with
    ``stopped=True`` and a warning. Any other exception (from the loss, the callback,
    ``on_nonfinite="raise"``) is raised with that partial result attached as its
    ``partial_result`` attribute (``None`` if no step completed) and a note saying so.
    """
    if not callable(loss):
        raise ValueError(f"loss expects a function of the model returning a scalar, got {loss!r}")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ValueError(f"steps expects a non-negative integer, got {steps!r}")
    steps = int(steps)
    if on_nonfinite not in _ON_NONFINITE:
        raise ValueError(f"on_nonfinite expects one of {_ON_NONFINITE}, got {on_nonfinite!r}")
    if checkpoint_every is not None and (isinstance(checkpoint_every, bool) or not isinstance(checkpoint_every, int)
                                         or checkpoint_every < 1):
        raise ValueError(f"checkpoint_every expects a positive integer, got {checkpoint_every!r}")
    if checkpoint_every is not None and checkpoint is None:
        raise ValueError("checkpoint_every needs checkpoint=PATH (a folder to save to)")
    # Flags, not truthy values: resume="False" resumed, jit="False" compiled.
    resume = units.flag(resume, "fit: resume")
    jit = units.flag(jit, "fit: jit")
    if resume and checkpoint is None:
        raise ValueError("resume=True needs checkpoint=PATH (the folder to resume from)")
    if checkpoint is not None:
        ckpt.check_folder(checkpoint)
    if optimizer is None:
        optimizer = optax.adam(DEFAULT_LEARNING_RATE, b1=DEFAULT_B1)
    if not isinstance(optimizer, optax.GradientTransformation):
        raise ValueError(f"optimizer expects an optax GradientTransformation, got {optimizer!r}")
    if callback is not None and not callable(callback):
        raise ValueError(f"fit: callback expects None or a function callback(step, loss), got {callback!r}")

    sel = Selection(model, params)
    names = sel.names
    tfs = sel.transforms(transforms)
    x_model = sel.values(model)
    x0 = _initial_values(sel, tfs, x_model, n_starts, init, key)
    n_starts = None if n_starts is None and init is None else len(x0[0])
    u0 = []
    for k, (tf, x, name) in enumerate(zip(tfs, x0, names)):
        try:
            u0.append(tf.inverse(x, name))
        except ValueError as e:  # a start outside the domain: also say why it is fitted at all
            raise sel.explain(k, e) from None
    u0 = tuple(u0)

    def forward(u):
        return tuple(tf.forward(ui) for tf, ui in zip(tfs, u))

    def loss_u(u, model):
        out = loss(sel.replace(model, forward(u)))
        try:
            value = jnp.asarray(out)
        except (TypeError, ValueError):  # JAX's message would not say it is the loss's value
            got = repr(out) if isinstance(out, (str, bytes, type(None))) else f"a {type(out).__name__}"
            raise ValueError(f"loss expects a function returning a scalar (a number or 0-d array), got {got}") from None
        _check_loss_dtype(value)
        return value

    extra = isinstance(optimizer, optax.GradientTransformationExtraArgs)

    def one_step(u, opt_state, model, active):
        # value_and_grad, with the shape checked before the pullback (grad would
        # reject a non-scalar with JAX's own message).
        value, pullback = jax.vjp(lambda v: loss_u(v, model), u)
        if jnp.ndim(value) != 0:
            raise ValueError(f"loss expects a function returning a scalar, got shape {jnp.shape(value)}")
        (grad,) = pullback(jnp.ones_like(value))
        kwargs = {"value": value, "grad": grad, "value_fn": lambda v: loss_u(v, model)} if extra else {}
        updates, new_state = optimizer.update(grad, opt_state, u, **kwargs)
        new_u = optax.apply_updates(u, updates)
        grad_ok = jnp.stack([jnp.all(jnp.isfinite(g)) for g in grad])
        grad_nonzero = jnp.stack([jnp.any(g != 0) for g in grad])
        # A finite gradient can still overflow in the update (or in forward: exp of a
        # large u), so the new values are checked as well, in both spaces.
        update_ok = jnp.stack([jnp.all(jnp.isfinite(nu)) & jnp.all(jnp.isfinite(nx))
                               for nu, nx in zip(new_u, forward(new_u))])
        ok = jnp.isfinite(value) & jnp.all(grad_ok) & jnp.all(update_ok) & active  # a stopped start stays where it is
        keep = lambda new, old: jnp.where(ok, new, old)
        new_u = jax.tree.map(keep, new_u, u)
        new_state = jax.tree.map(keep, new_state, opt_state)
        return new_u, new_state, value, grad_ok, update_ok, grad_nonzero, forward(u)

    if n_starts is not None:
        one_step = jax.vmap(one_step, in_axes=(0, 0, None, 0))
        opt_init = jax.vmap(optimizer.init)
    else:
        opt_init = optimizer.init
    if jit:
        one_step = eqx.filter_jit(one_step)

    u = u0
    opt_state = opt_init(u)
    losses: list = []
    hist: dict = {n: [] for n in names}
    events: list[NonFiniteEvent] = []
    start_step = 0
    meta = {"names": list(names), "shapes": [list(np.shape(x)) for x in x0], "n_starts": n_starts,
            "transforms": [_describe(tf) for tf in tfs],
            "optimizer": ckpt.describe_optimizer({"init": optimizer.init, "update": optimizer.update}),
            # Which starts a resumed fit continues: "stop" halts those with events.
            "on_nonfinite": on_nonfinite}
    if checkpoint is not None:
        # The starting model (unfitted leaves included) and start values: a resume from
        # another start would report that fit's history for this one. The loss function
        # is not compared: its targets sit in closures a name or bytecode cannot tell apart.
        meta["model"] = ckpt.fingerprint(model)
        meta["start"] = ckpt.fingerprint({n: x for n, x in zip(names, x0)})
    if checkpoint is not None and not resume:
        # The first save would replace what the folder holds: another fit's checkpoint
        # is refused (its steps would be lost), this fit's is started over with a word.
        held = ckpt.check_fresh(checkpoint, meta)
        if held is not None:
            warnings.warn(
                f"fit: checkpoint {checkpoint} holds {held} step(s) of this same fit; resume=False starts it "
                "over, and its first save replaces them. Pass resume=True to continue from them instead",
                RuntimeWarning, stacklevel=outside_stacklevel())
    if resume and ckpt.exists(checkpoint):
        start_step, u, opt_state, l_hist, p_hist, ev = ckpt.load(
            checkpoint, like_u=u, like_opt_state=opt_state, meta=meta)
        losses = list(l_hist)
        hist = {n: list(p_hist[n]) for n in names}
        events = [NonFiniteEvent.from_dict(e) for e in ev]
        if start_step > steps:
            raise ValueError(f"checkpoint {checkpoint} is at step {start_step}, beyond steps={steps}")
    # The starts on_nonfinite="stop" has stopped (several starts; a single fit just ends).
    halted = {e.start for e in events} if on_nonfinite == "stop" and n_starts is not None else set()

    def save(step):
        ckpt.save(checkpoint, step=step, u=u, opt_state=opt_state, meta=meta,
                  loss_history=losses, param_history=hist, events=events)

    bar = _progress_bar(progress, steps, start_step)
    stopped = False
    warned: set = set()
    u_start = [np.asarray(leaf) for leaf in jax.tree.leaves(u)]
    moved = np.zeros(len(names), bool)  # per parameter: a non-zero gradient seen (any start)

    def active():
        return jnp.asarray(True if n_starts is None else [i not in halted for i in range(n_starts)])

    try:
        for step in range(start_step, steps):
            new_u, new_state, value, grad_ok, update_ok, nonzero, x = one_step(u, opt_state, model, active())
            moved |= np.any(np.asarray(nonzero).reshape(-1, len(names)), axis=0)
            value = np.asarray(value)
            grad_ok = np.asarray(grad_ok)
            update_ok = np.asarray(update_ok)
            x = [np.asarray(xi) for xi in x]
            losses.append(value)
            for n, xi in zip(names, x):
                hist[n].append(xi)
            new_events = [e for e in _nonfinite_events(step, value, grad_ok, names, x, n_starts, update_ok)
                          if e.start not in halted]
            if new_events:
                events += new_events
                message = "; ".join(str(e) for e in new_events)
                if on_nonfinite == "raise":
                    raise FloatingPointError(message)
                elif on_nonfinite == "stop" and n_starts is None:
                    warnings.warn(f"fit stopped: {message}; that update was not applied", RuntimeWarning, stacklevel=outside_stacklevel())
                    stopped = True
                    break
                elif on_nonfinite == "stop":  # several starts: only these stop
                    halted.update(e.start for e in new_events)
                    stopped = len(halted) == n_starts
                    them = "that start stops" if len(new_events) == 1 else "those starts stop"
                    warnings.warn(
                        f"fit: {message}; that update was not applied and {them} there ("
                        + ("every start has now stopped, so the fit ends)" if stopped else "the other starts go on)"),
                        RuntimeWarning, stacklevel=outside_stacklevel())
                    if stopped:
                        break
                else:  # "skip"
                    fresh = [e for e in new_events if e.start not in warned]
                    if fresh:  # once per start; every event is in result.nonfinite
                        warned.update(e.start for e in fresh)
                        warnings.warn(
                            f"fit: {'; '.join(str(e) for e in fresh)}; that update was skipped (later "
                            "non-finite steps of this start are skipped silently and listed in "
                            "FitResult.nonfinite)", RuntimeWarning, stacklevel=outside_stacklevel())
            u, opt_state = new_u, new_state
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{np.nanmin(value):.4g}")
            if checkpoint is not None and checkpoint_every and (step + 1) % checkpoint_every == 0:
                save(step + 1)
            if callback is not None:
                callback(step, value)
        if not stopped:
            if steps > start_step and all(np.array_equal(a, np.asarray(b))
                                           for a, b in zip(u_start, jax.tree.leaves(u))):
                warnings.warn(
                    f"fit: no parameter changed in {steps - start_step} step(s): the loss's gradient was zero "
                    "throughout (a loss that does not depend on these parameters here, e.g. a spike count "
                    "without a surrogate or a threshold never crossed), or the optimizer took no step",
                    RuntimeWarning, stacklevel=outside_stacklevel())
            elif steps > start_step and not np.all(moved):
                # The others moved, so the optimizer works: these the loss does not see.
                flat = [n for n, m in zip(names, moved) if not m]
                warnings.warn(
                    f"fit: the gradient with respect to {', '.join(repr(n) for n in flat)} was exactly zero at "
                    f"every one of the {steps - start_step} step(s){'' if n_starts is None else ' (in every start)'}, so "
                    f"{'it' if len(flat) == 1 else 'they'} did not move: the loss does not depend on "
                    f"{'it' if len(flat) == 1 else 'them'} here (e.g. V_reset of a neuron that never spikes, a "
                    f"spike count without a surrogate); drop {'it' if len(flat) == 1 else 'them'} from params or change "
                    "the loss",
                    RuntimeWarning, stacklevel=outside_stacklevel())
            if checkpoint is not None:
                save(steps)
            # The final loss from the steps' own program, its update discarded: a fit
            # compiles one program, not a forward one of its own besides
            # (tests/test_fit.py), for one more gradient than needed, a step's share
            # of the fit's time.
            _, _, value, _, _, _, x = one_step(u, opt_state, model, active())
            value, x = np.asarray(value), [np.asarray(xi) for xi in x]
            losses.append(value)
            for n, xi in zip(names, x):
                hist[n].append(xi)
            # The last update led here: its loss is checked like every other step's (the
            # gradient is not: no update follows). Stopped starts report nothing more.
            ones = np.ones(np.shape(value) + (len(names),), bool)
            final = [e for e in _nonfinite_events(steps, value, ones, names, x, n_starts) if e.start not in halted]
            if final:
                events += final
                message = "; ".join(str(e) for e in final)
                if on_nonfinite == "raise":
                    raise FloatingPointError(f"after the last update: {message}")
                fresh = [e for e in final if e.start not in warned]  # skipped starts were warned of
                if fresh:
                    warnings.warn(f"fit: after the last update, {'; '.join(str(e) for e in fresh)}; "
                                  "FitResult.model holds these values, best_model the best finite ones",
                                  RuntimeWarning, stacklevel=outside_stacklevel())
    except KeyboardInterrupt:
        # Ctrl-C (or a callback raising KeyboardInterrupt): keep what was done.
        partial = _partial_result(model, sel, losses, hist, n_starts, events, halted)
        if partial is None:
            raise
        warnings.warn(f"fit interrupted at step {partial.steps}: returning the result of the {partial.steps} "
                      "steps completed (FitResult.stopped is True)", RuntimeWarning, stacklevel=outside_stacklevel())
        return partial
    except Exception as e:
        partial = _partial_result(model, sel, losses, hist, n_starts, events, halted)
        e.partial_result = partial
        e.add_note("jn.fit: no step completed, so this exception's partial_result is None" if partial is None else
                   f"jn.fit: the result of the {partial.steps} steps completed is this exception's partial_result")
        raise
    finally:
        if bar is not None:
            bar.close()
    losses_arr = np.stack(losses) if losses else np.zeros((0,))
    hist_arr = {n: np.stack(v) for n, v in hist.items()}
    result = _result(model, sel, losses_arr, hist_arr, n_starts, events, stopped, halted)
    if not _warn_if_uphill(losses_arr):  # an uphill fit's final loss is above its best too
        _warn_if_final_worse(result)
    _warn_if_outside_declared_range(sel, hist_arr)
    return result


def _warn_if_outside_declared_range(sel, hist) -> None:
    """A RuntimeWarning where a parameter declared positive or non-negative (``gL``,
    ``tau``, ``g_max``) ended below that, as only a transform other than the default
    ``Positive`` allows (``Identity``): the fitted model holds a value its class refuses
    when built (a tester's ``gL`` = -1192.87 came back with no word)."""
    for k, name in enumerate(sel.names):
        check = sel.metadata[k].get("check")
        final = hist.get(name)
        if check not in ("positive", "nonnegative") or final is None or not len(final):
            continue
        low = float(np.min(final[-1]))
        if low < 0 or (check == "positive" and low == 0):
            bound = "> 0" if check == "positive" else ">= 0"
            warnings.warn(
                f"fit: {name!r} ended at {low:g}, outside its declared range ({bound}), which the model's class "
                f"refuses when built: FitResult.model holds it. Its default transform, jn.fit.Positive(), keeps "
                f"it in range; or check best_model", RuntimeWarning, stacklevel=outside_stacklevel())


def _warn_if_final_worse(result) -> None:
    """A RuntimeWarning when the final model's loss is far above the best seen: the
    optimizer left its best point (Adam's steps stay near the learning rate at a
    minimum; an lbfgs line search can jump at rounding-level losses) and ``model``
    is not the fit to keep."""
    losses = result.loss_history.reshape(result.loss_history.shape[0], -1)
    k = 0 if result.best_start is None else result.best_start  # result.model is this start's
    first, final, best = losses[0, k], losses[-1, k], result.best_loss
    # Above rounding level: a loss far below the first one that moves by orders of
    # magnitude is still a fit at its optimum.
    floor = max(1e-6 * abs(first), 1e-12) if np.isfinite(first) else 1e-12
    # "10 times" as a difference, so that it means something for a loss below zero too.
    if len(losses) < 2 or not np.isfinite(final) or not final - best > max(9 * abs(best), floor):
        return
    where = "" if result.best_start is None else f" (start {k})"
    warnings.warn(
        f"fit: the final loss {_fmt(final)}{where} is far above the best seen, {_fmt(best)} at "
        f"step {result.best_step}: the optimizer moved away from its best point (Adam's steps stay near its "
        "learning rate at a minimum; lbfgs can jump off one at rounding-level losses). FitResult.model holds the "
        "final parameters; use result.best_model, or fewer steps or a decaying learning rate",
        RuntimeWarning, stacklevel=outside_stacklevel())


def _warn_if_uphill(losses) -> bool:
    """A RuntimeWarning where every start's loss rose at every step: the optimizer
    climbed (a negative learning rate, e.g. ``optax.adam(-0.05)``, does so without a
    word). Returns whether it warned."""
    if losses.shape[0] < 3:
        return False
    per_start = losses.reshape(losses.shape[0], -1)
    first, last = per_start[0], per_start[-1]
    with np.errstate(invalid="ignore"):
        finite = np.all(np.isfinite(per_start), axis=0)
        # Rising at every step, from a loss that is not already zero to rounding (a fit
        # started at its optimum wanders off it; that is no sign of a wrong optimizer).
        uphill = (finite & np.all(np.diff(per_start, axis=0) >= 0, axis=0) & (last > first)
                  & (first > 1e-9 * np.abs(last)))
    if per_start.shape[1] and np.all(uphill):
        k = int(np.argmin(last))
        warnings.warn(
            f"fit: the loss rose at every step, from {_fmt(first[k])} to {_fmt(last[k])}"
            + (f" (start {k}, and so did every other)" if per_start.shape[1] > 1 else "")
            + ": the optimizer moved uphill (best_model holds the starting parameters); check its learning "
            "rate (a negative one climbs the loss)", RuntimeWarning, stacklevel=outside_stacklevel())
        return True
    return False


def _partial_result(base, sel, losses, hist, n_starts, events, halted):
    """The :class:`FitResult` of the steps recorded before a fit was interrupted (stopped),
    or None when there are none."""
    # An interrupt may land between the appends of a step: keep the steps recorded whole.
    n = min([len(losses)] + [len(v) for v in hist.values()])
    if n == 0:
        return None
    hist_arr = {k: np.stack(v[:n]) for k, v in hist.items()}
    return _result(base, sel, np.stack(losses[:n]), hist_arr, n_starts, [e for e in events if e.step < n],
                   True, halted)


def _initial_values(sel, tfs, x_model, n_starts, init, key):
    names = sel.names
    if n_starts is not None and (isinstance(n_starts, bool) or not isinstance(n_starts, int) or n_starts < 1):
        raise ValueError(f"n_starts expects a positive integer, got {n_starts!r}")
    if key is not None and (init is not None or n_starts is None):
        # It was silently unused: a user changing the seed saw nothing change.
        raise ValueError(
            "key samples the starts of n_starts= without init=; "
            + ("init gives the starts itself: drop key" if init is not None else
               "give n_starts= too (how many starts to sample), or drop key")
        )
    if init is None:
        if n_starts is None:
            return x_model
        if key is None:
            raise ValueError("n_starts without init needs key= (an integer seed or jax.random.key(...)) to sample "
                             "the starting values")
        from ..stimuli.noise import prng_key

        keys = jax.random.split(prng_key(key, "fit: key"), len(tfs))
        return tuple(tf.sample(k, x, (n_starts,) + jnp.shape(x)) for tf, k, x in zip(tfs, keys, x_model))
    if isinstance(init, dict):  # by name; its leaves would come in sorted key order
        if set(init) != set(names):
            raise ValueError(f"init given as a dict expects the keys {list(names)}, got {list(init)}")
        leaves = [_starts_array(init[name], f"init[{name!r}]") for name in names]
    else:
        # A Quantity is one value (flattened, it would lose its unit).
        leaves = jax.tree_util.tree_leaves(init, is_leaf=lambda v: isinstance(v, saiunit.Quantity))
        if len(leaves) != len(names) and isinstance(init, (list, tuple)):
            if len(names) == 1:  # [0.015, 0.025] or [15 * u.nS, 25 * u.nS]: one parameter's starts
                leaves = [_starts_array(init, f"init[{names[0]!r}]")]
            elif len(init) == len(names):  # ([...], [...]): each parameter's starts
                leaves = [_starts_array(v, f"init[{n!r}]") for n, v in zip(names, init)]
    if len(leaves) != len(names):
        raise ValueError(f"init expects one array per fitted parameter {list(names)}, got {len(leaves)}")
    out = []
    for name, x, v, unit in zip(names, x_model, leaves, sel.units):
        if isinstance(v, saiunit.Quantity):  # to the parameter's base unit; plain numbers are in it
            v = units.to_base(v, f"init[{name!r}]", unit)
        v = jnp.asarray(v, dtype=x.dtype)
        if v.ndim != x.ndim + 1 or v.shape[1:] != x.shape:
            raise ValueError(
                f"init[{name!r}] expects shape (n_starts,) + {tuple(x.shape)}, got {tuple(v.shape)}"
            )
        if n_starts is not None and v.shape[0] != n_starts:
            raise ValueError(f"init[{name!r}] has {v.shape[0]} starts, n_starts is {n_starts}")
        if v.shape[0] == 0:
            raise ValueError(f"init[{name!r}] holds no starting values (shape {tuple(v.shape)}); give at least one")
        out.append(v)
    if len({v.shape[0] for v in out}) != 1:
        raise ValueError(f"init: every parameter needs the same number of starts, got {[v.shape[0] for v in out]}")
    return tuple(out)


def _check_loss_dtype(value) -> None:
    """ValueError when the loss's value is not a real floating-point number: JAX would
    drop a complex loss's imaginary part (with only its own warning), and an integer or
    boolean loss has no gradient (the fit would never move)."""
    dtype = jnp.result_type(value)
    if jnp.issubdtype(dtype, jnp.floating):
        return
    if jnp.issubdtype(dtype, jnp.complexfloating):
        raise ValueError(
            f"loss expects a function returning a real scalar, got a complex value ({dtype.name}); the fit "
            "would drop its imaginary part. Return a real number, e.g. jnp.abs(z) ** 2 or jnp.real(z)"
        )
    kind = "a boolean" if jnp.issubdtype(dtype, jnp.bool_) else "an integer"
    raise ValueError(
        f"loss expects a function returning a real floating-point scalar, got {kind} value ({dtype.name}), "
        "which has no gradient: the fit would never move. Compute the loss in floating point (e.g. with "
        "surrogate spike counts)"
    )


def _starts_array(v, label: str):
    """A list or tuple of starting values (numbers, or quantities of one dimension) as
    one array (a Quantity for quantities); anything else unchanged. A ValueError naming
    ``label`` for a ragged list, booleans or what is not a number."""
    if not isinstance(v, (list, tuple)):
        return v
    combined = units.as_quantity(v)  # a list of quantities: one Quantity array
    if isinstance(combined, saiunit.Quantity):
        return combined
    leaves = jax.tree_util.tree_leaves(v, is_leaf=lambda x: isinstance(x, saiunit.Quantity))
    bad = next((x for x in leaves if isinstance(x, (bool, np.bool_, str, bytes, saiunit.Quantity))
                or not isinstance(x, (int, float, np.number, np.ndarray, jax.Array))), None)
    try:
        if bad is not None:
            raise ValueError
        return np.asarray(v, dtype=float)
    except (TypeError, ValueError):
        reason = f"it holds {bad!r}" if bad is not None else "it is ragged (its rows differ in length)"
        raise ValueError(
            f"{label} expects the starting values as numbers in the parameter's base unit (one per start, "
            f"e.g. [0.015, 0.025]), an array, or quantities of one dimension; got {v!r}: {reason}"
        ) from None


def _describe(tf) -> dict:
    """A transform as plain data (its class and parameter values), for checkpoints."""
    out = {"type": type(tf).__name__}
    for f in dataclasses.fields(tf):
        out[f.name] = np.asarray(getattr(tf, f.name)).tolist()
    return out


def _nonfinite_events(step, value, grad_ok, names, x, n_starts, update_ok=None):
    """The events of one step, per start: the first of a non-finite loss, gradient or
    (``update_ok``, per parameter; ``None`` where no update follows) update."""
    starts = [None] if n_starts is None else range(n_starts)
    out = []
    for i in starts:
        val = value if i is None else value[i]
        ok = grad_ok if i is None else grad_ok[i]
        upd = None if update_ok is None else (update_ok if i is None else update_ok[i])
        values = {n: (xi if i is None else xi[i]) for n, xi in zip(names, x)}
        if not np.isfinite(val):
            out.append(NonFiniteEvent(step, i, "loss", names, values))
        elif not np.all(ok):
            bad = tuple(n for n, g in zip(names, ok) if not g)
            out.append(NonFiniteEvent(step, i, "gradient", bad, values))
        elif upd is not None and not np.all(upd):
            bad = tuple(n for n, g in zip(names, upd) if not g)
            out.append(NonFiniteEvent(step, i, "update", bad, values))
    return out


def _progress_bar(progress, steps, initial):
    if progress is None:
        progress = sys.stderr.isatty()
    if not units.flag(progress, "fit: progress"):
        return None
    from tqdm.auto import tqdm

    return tqdm(total=steps, initial=initial, desc="fit", unit="step")
