"""Modules that can be called as their main function (``jn.fit(...)``,
``jn.sweep(...)``) while their other names stay attributes (``jn.fit.Positive``,
``jn.sweep.load``)."""

from __future__ import annotations

import inspect
import sys
import types


def make_callable(module_name: str, fn) -> None:
    """Make the module ``module_name`` call ``fn`` when called; ``inspect.signature``
    and ``help`` then show ``fn``'s signature and docstring."""
    module = sys.modules[module_name]

    class CallableModule(types.ModuleType):
        def __call__(self, *args, **kwargs):
            return fn(*args, **kwargs)

    CallableModule.__name__ = f"CallableModule[{fn.__name__}]"
    module.__class__ = CallableModule
    module.__signature__ = inspect.signature(fn)
    module.__doc__ = f"{module.__doc__}\n{fn.__name__}{module.__signature__}\n\n    {fn.__doc__.strip()}\n"
