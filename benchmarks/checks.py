"""What the benchmark scripts share besides their workloads: checking an output path
before anything runs, saying which simulators are missing, and failing a run whose
answers disagree.

Every script compares jaxneuro's answer with NEURON's (and Jaxley's, where it runs the
same model) in the same run, so that a fast wrong answer is caught: after its table and
JSON (the measurements are kept either way), a script whose comparisons exceed its
tolerances prints one ``MISMATCH`` line per quantity and exits with status 1. Usage
errors exit with status 2, as argparse's do.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

#: How to add the optional simulators (the ``bench`` extra).
INSTALL_HINT = 'pip install -e ".[bench]" adds'

#: Exit status of a run whose answers disagree beyond tolerance (2 is a usage error).
MISMATCH_EXIT = 1


def check_output_path(ap, path, option: str = "--json") -> None:
    """``ap.error`` (exit status 2) unless ``path`` can be written: before the run, so
    that a bad path does not throw away minutes of measurements at the end."""
    if path is None:
        return
    if os.path.isdir(path):
        ap.error(f"{option} {path}: is a folder; give the path of a file to write")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        ap.error(f"{option} {path}: the folder {folder} does not exist; make it first or choose another path")
    if not os.access(folder, os.W_OK):
        ap.error(f"{option} {path}: the folder {folder} is not writable; choose another path")


def neuron_available() -> bool:
    """Whether NEURON can be imported (the ``bench`` extra)."""
    try:
        import neuron  # noqa: F401
    except ImportError:
        return False
    return True


def missing_note(missing, consequence: str) -> str:
    """One line saying which simulators (e.g. ``["NEURON"]``) are not installed and what
    the run does without them."""
    return (f"# {' and '.join(missing)} not installed: {consequence} "
            f"({INSTALL_HINT} {'them' if len(missing) > 1 else 'it'})")


def _fmt(x) -> str:
    return f"{x:.3g}" if isinstance(x, float) else str(x)


class Checks:
    """Comparisons of one run against their tolerances; :meth:`finish` prints each one
    exceeded and exits with :data:`MISMATCH_EXIT` if any was.

    A difference of ``None`` means "not compared in this run" (e.g. NEURON not
    installed) and is skipped; a NaN difference fails (something produced no number)."""

    def __init__(self):
        self.failures: list[str] = []
        self.checked = 0

    def within(self, workload: str, quantity: str, diff, tol: float, unit: str = "") -> bool:
        """``diff <= tol`` for ``quantity`` (e.g. "max |ΔV| vs NEURON") of ``workload``."""
        if diff is None:
            return True
        self.checked += 1
        diff = float(diff)
        if diff <= tol:  # False for NaN
            return True
        unit = f" {unit}" if unit else ""
        self.failures.append(f"{workload}: {quantity} is {_fmt(diff)}{unit}, over the tolerance of {tol:g}{unit}")
        return False

    def counts_equal(self, workload: str, quantity: str, differing, allowed: int = 0, of=None) -> bool:
        """At most ``allowed`` (of ``of``) neurons whose ``quantity`` (e.g. "spike counts
        vs NEURON") differ."""
        if differing is None:
            return True
        self.checked += 1
        if int(differing) <= allowed:
            return True
        total = f" of {of}" if of is not None else ""
        noun = "neuron" if (int(differing) if of is None else of) == 1 else "neurons"
        self.failures.append(f"{workload}: {quantity} differ in {int(differing)}{total} {noun} "
                             f"(tolerance {allowed})")
        return False

    def true(self, workload: str, quantity: str, ok, expected: str) -> bool:
        """A yes/no comparison, e.g. two forms firing the same spikes."""
        self.checked += 1
        if ok:
            return True
        self.failures.append(f"{workload}: {quantity}: {expected} was expected")
        return False

    def finish(self, stream=None) -> None:
        """Print the outcome; exit with :data:`MISMATCH_EXIT` if any comparison failed."""
        stream = sys.stderr if stream is None else stream
        if not self.failures:
            if self.checked:
                print(f"Comparisons within their tolerances: {self.checked} of {self.checked}.")
            return
        for line in self.failures:
            print(f"MISMATCH {line}", file=stream)
        print(f"{len(self.failures)} of {self.checked} comparisons failed: this run's answers are wrong, "
              "so its times do not count (the measurements are still printed and written).", file=stream)
        raise SystemExit(MISMATCH_EXIT)


def write_and_finish(result: dict, json_path: str | None, checks: "Checks") -> None:
    """The end of a benchmark script: ``result`` written to ``json_path`` (if given),
    then ``checks`` finished (exit status 1 on a wrong answer, after the measurements
    are printed and written)."""
    if json_path:
        with open(json_path, "w") as f:
            json.dump(result, f, indent=1)
    checks.finish()


def print_results(result: dict) -> None:
    """``key: value`` per line, floats to 4 significant digits."""
    for key, value in result.items():
        print(f"{key}: {value:.4g}" if isinstance(value, float) else f"{key}: {value}")


def scalar_rel_diff(x, ref) -> float | None:
    """``|x - ref| / |ref|`` (None when either is missing or ``ref`` is NaN: not
    computed in this run), for :meth:`Checks.within`."""
    if x is None or ref is None or (isinstance(ref, float) and math.isnan(ref)):
        return None
    return abs(x - ref) / abs(ref) if ref else abs(x - ref)


def child_json(cmd: list[str], what: str):
    """The JSON a script's subprocess (``cmd``) prints last. If it fails, its error
    output is passed on and this process exits with a message naming ``what`` ran (a
    bare ``CalledProcessError`` would hide the subprocess's own error)."""
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)  # its error is shown below
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"{os.path.basename(cmd[1])}: the subprocess for {what} failed with exit status "
                         f"{proc.returncode} (its error output is above)")
    return json.loads(proc.stdout.strip().splitlines()[-1])
