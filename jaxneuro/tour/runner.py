"""Run the tour's scenarios, print the table, write figures and JSON."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
import time
from pathlib import Path

from .scenarios import SCENARIOS, Check


def format_table(rows: list[Check]) -> str:
    head = ("scenario", "quantity", "value", "expected", "ok")
    body = [
        (r.scenario, r.quantity, _fmt(r.value), _fmt(r.expected), "pass" if r.ok else "FAIL")
        for r in rows
    ]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths))
    return "\n".join([line(head), line(["-" * w for w in widths])] + [line(b) for b in body])


def _fmt(x):
    if isinstance(x, str):
        return x
    if isinstance(x, int):
        return str(x)
    return f"{x:.6g}"


def _strict(row: dict) -> dict:
    """A row as standard JSON allows: infinities and NaN (an ISI that never ended, a
    failed scenario's value) as the strings "inf", "-inf", "nan"."""
    def fix(x):
        if isinstance(x, float) and not math.isfinite(x):
            return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")
        return x

    return {k: fix(v) for k, v in row.items()}


def run_tour(out: Path, json_path: Path | None = None, *, compare_neuron: bool = True, stream=None) -> list[Check]:
    """Run every scenario, print progress and the table to ``stream``, write PNGs to
    ``out`` and, if given, the rows as JSON to ``json_path``. Returns the rows."""
    import matplotlib

    matplotlib.use("Agg")
    stream = sys.stdout if stream is None else stream
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[Check] = []
    for scenario in SCENARIOS:
        start = time.perf_counter()
        kwargs = {"compare_neuron": compare_neuron} if "compare_neuron" in scenario.__code__.co_varnames else {}
        try:
            new = scenario(out, **kwargs)
        except Exception as e:  # a broken scenario is a failed row, and the tour goes on
            new = [Check(scenario.__name__, f"error: {type(e).__name__}: {e}", float("nan"), "runs", False)]
        rows += new
        print(f"  {scenario.__name__}: {len(new)} checks in {time.perf_counter() - start:.1f} s", file=stream)
    print(file=stream)
    print(format_table(rows), file=stream)
    n_fail = sum(not r.ok for r in rows)
    print(f"\n{len(rows) - n_fail} passed, {n_fail} failed; figures in {out.resolve()}", file=stream)
    if compare_neuron and importlib.util.find_spec("neuron") is None:
        print("NEURON is not installed, so the checks against NEURON itself were left out "
              "(pip install neuron, or the test extra, adds them)", file=stream)
    if json_path is not None:
        Path(json_path).write_text(json.dumps([_strict(r.as_dict()) for r in rows], indent=2, allow_nan=False))
    return rows
