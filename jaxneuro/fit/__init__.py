"""Fitting model parameters by gradient descent: ``jn.fit(loss, model, params=...)``.

``jn.fit`` is this module, and calling it runs :func:`jaxneuro.fit.loop.fit` (see its
docstring for every option). It also holds the parameter transforms
(:class:`Identity`, :class:`Positive`, :class:`Bounded`), the result types
(:class:`FitResult`, :class:`NonFiniteEvent`) and the losses (``jn.fit.losses``, the
same module as ``jn.losses``).
"""

import inspect
import sys
import types

from . import checkpoint, losses
from .loop import DEFAULT_B1, DEFAULT_LEARNING_RATE, FitResult, NonFiniteEvent, fit
from .select import Selection
from .transforms import AbstractTransform, Bounded, Identity, Positive

__all__ = [
    "fit", "FitResult", "NonFiniteEvent", "DEFAULT_LEARNING_RATE", "DEFAULT_B1", "Selection",
    "AbstractTransform", "Identity", "Positive", "Bounded", "losses", "checkpoint",
]


class _CallableModule(types.ModuleType):
    """Lets ``jn.fit(...)`` call :func:`fit` while ``jn.fit.Positive`` etc. stay
    attributes of this module."""

    def __call__(self, *args, **kwargs):
        return fit(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
# inspect.signature(jn.fit) and help(jn.fit) show fit's own signature and options.
__signature__ = inspect.signature(fit)
__doc__ = f"{__doc__}\nfit{__signature__}\n\n    {fit.__doc__.strip()}\n"
