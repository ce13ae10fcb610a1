"""Shared test set-up: float64 on the CPU (NEURON-grade comparisons) and NEURON helpers."""

import subprocess
import sys

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(scope="session")
def neuron_h():
    """NEURON's ``h`` with stdrun loaded; hh's rate tables off, so it uses the exact
    rate functions (with tables on, NEURON interpolates rates over 200 points)."""
    neuron = pytest.importorskip("neuron")
    h = neuron.h
    h.load_file("stdrun.hoc")
    h.usetable_hh = 0
    return h


def run_neuron(h, t1, dt=0.025, v0=-65.0, refs=()):
    """Run NEURON from ``finitialize(v0)`` to ``t1`` and return time and recordings."""
    t = h.Vector().record(h._ref_t)
    vecs = [h.Vector().record(r) for r in refs]
    h.dt = dt
    h.finitialize(v0)
    h.continuerun(t1)
    return np.array(t), [np.array(v) for v in vecs]


def crossings(t, v, threshold=0.0):
    """Upward threshold crossings, linearly interpolated (NumPy reference)."""
    t, v = np.asarray(t), np.asarray(v)
    i = np.where((v[:-1] < threshold) & (v[1:] >= threshold))[0]
    return t[i] + (threshold - v[i]) / (v[i + 1] - v[i]) * (t[i + 1] - t[i])


def run_in_both_precisions(source, tmp_path):
    """Run the script ``source`` (argv: ``float64``/``float32``, an output .npy path,
    which it writes) once in each precision, each in its own process (JAX's precision
    is per process); returns ``{precision: array}``."""
    script = tmp_path / "precision_script.py"
    script.write_text(source)
    out = {}
    for precision in ("float64", "float32"):
        path = tmp_path / f"{precision}.npy"
        subprocess.run([sys.executable, str(script), precision, str(path)], check=True, timeout=300)
        out[precision] = np.load(path)
    return out
