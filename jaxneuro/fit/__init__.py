"""Fitting model parameters by gradient descent: ``jn.fit(loss, model, params=...)``.

``jn.fit`` is this module, and calling it runs :func:`jaxneuro.fit.loop.fit` (see its
docstring for every option). It also holds the parameter transforms
(:class:`Identity`, :class:`Positive`, :class:`Bounded`), the result types
(:class:`FitResult`, :class:`NonFiniteEvent`) and the losses (``jn.fit.losses``, the
same module as ``jn.losses``).
"""

from .._callable import make_callable
from . import checkpoint, losses
from .loop import DEFAULT_B1, DEFAULT_LEARNING_RATE, FitResult, NonFiniteEvent, fit
from .select import Selection
from .transforms import AbstractTransform, Bounded, Identity, Positive

__all__ = [
    "fit", "FitResult", "NonFiniteEvent", "DEFAULT_LEARNING_RATE", "DEFAULT_B1", "Selection",
    "AbstractTransform", "Identity", "Positive", "Bounded", "losses", "checkpoint",
]


# jn.fit(...) runs fit(); jn.fit.Positive etc. stay attributes of this module.
make_callable(__name__, fit)
