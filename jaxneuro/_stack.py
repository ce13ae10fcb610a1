"""Where a warning points: the user's line, past jaxneuro's own frames."""

from __future__ import annotations

import sys
from pathlib import Path

import equinox as eqx

_INSIDE = (str(Path(__file__).resolve().parent), str(Path(eqx.__file__).resolve().parent))


def outside_stacklevel() -> int:
    """``warnings.warn``'s ``stacklevel`` (for the caller of this function) of the first
    frame outside jaxneuro, equinox and the dataclass ``__init__`` equinox generates:
    the line that built the model or called ``simulate``, however deep the call."""

    def ours(code):
        return code.co_filename.startswith(_INSIDE) or (code.co_filename == "<string>" and code.co_name == "__init__")

    frame, level = sys._getframe(1), 1
    while frame is not None and ours(frame.f_code):
        frame, level = frame.f_back, level + 1
    return level
