"""Shared test set-up: float64 on the CPU (NEURON-grade comparisons) and NEURON helpers."""

import os
import subprocess
import sys

# Most of the suite's time is XLA compiling many small programs. Three settings make
# that quicker; they change how fast the compiled code runs, and what it computes only
# to rounding (no fast-math either way; a multiply-add may be fused in one emitter's
# code and not in the other's):
# - XLA's backend optimisation level 0 (LLVM's optimisation passes off): the test files
#   took 15-28 % less CPU time;
# - XLA's CPU elementwise code through its older LLVM emitters instead of its MLIR
#   "fusion emitters": compiling test_cable.py's 559 programs took 18 s instead of 32;
# - the LLVM module compiled as one part, not split for parallel code generation (the
#   suite runs one process per core already): another ~10 %.
# Set before JAX starts, so this process and the scripts the tests start get them; a
# setting already named in XLA_FLAGS is kept, and one this XLA does not know (it aborts
# on unknown flags) is left out after a quick check in a subprocess.
# The notebooks run with LLVM's optimisations, as a user's would (NotebooksWithXlaDefaults:
# the noise notebook's random numbers took 3x as long unoptimised), but the emitter
# settings (5-20 % quicker each); benchmarks and the one XLA bug the suite pins, which
# shows only with the optimisations, run with XLA's defaults (xla_default_env).
_WANTED_TEST_XLA_FLAGS = ("--xla_backend_optimization_level=0", "--xla_cpu_use_fusion_emitters=false",
                          "--xla_cpu_parallel_codegen_split_count=1")


def _known_to_xla(flags):
    """Those of ``flags`` this XLA accepts (checked together in one subprocess; one by
    one only if that fails)."""
    def accepted(group):
        env = dict(os.environ, XLA_FLAGS=" ".join(group), JAX_PLATFORMS="cpu")
        probe = "import jax.numpy as jnp; jnp.zeros(1).block_until_ready()"
        return subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, timeout=120).returncode == 0

    if not flags or accepted(flags):
        return tuple(flags)
    return tuple(f for f in flags if accepted([f]))


_missing = [f for f in _WANTED_TEST_XLA_FLAGS if f.split("=")[0] not in os.environ.get("XLA_FLAGS", "")]
if _missing:
    # Later processes (pytest-xdist's workers, the tests' scripts) inherit the result.
    os.environ["XLA_FLAGS"] = " ".join([os.environ.get("XLA_FLAGS", ""), *_known_to_xla(_missing)]).strip()
TEST_ONLY_XLA_FLAGS = tuple(f for f in _WANTED_TEST_XLA_FLAGS if f in os.environ["XLA_FLAGS"].split())

import jax  # noqa: E402

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


def env_with_xla_flags(*flags, **variables):
    """This process's environment for a subprocess, with ``XLA_FLAGS`` set to ``flags``
    (none of this process's others) and the suite's own settings (above)."""
    return dict(os.environ, XLA_FLAGS=" ".join([*flags, *TEST_ONLY_XLA_FLAGS]), **variables)


def xla_default_env(keep=()):
    """This process's environment without the suite's own XLA settings (above), but
    those in ``keep``: for a subprocess that must compile as a user's process does."""
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if f not in TEST_ONLY_XLA_FLAGS or f in keep]
    return dict(os.environ, XLA_FLAGS=" ".join(flags))


class NotebooksWithXlaDefaults:
    """A plugin (registered below, so that it reaches the notebooks' items, which this
    directory's conftest hooks do not): each notebook's kernel starts with LLVM's
    optimisations, as a user's, keeping only the suite's emitter settings (above)."""

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_call(self, item):
        if item.path.suffix != ".ipynb":
            yield
            return
        saved = os.environ.get("XLA_FLAGS")
        os.environ.update(xla_default_env(keep=[f for f in TEST_ONLY_XLA_FLAGS if "optimization_level" not in f]))
        try:
            yield
        finally:
            if saved is None:
                os.environ.pop("XLA_FLAGS", None)
            else:
                os.environ["XLA_FLAGS"] = saved


def pytest_configure(config):
    if not config.pluginmanager.has_plugin("notebooks-with-xla-defaults"):
        config.pluginmanager.register(NotebooksWithXlaDefaults(), "notebooks-with-xla-defaults")


def compiles_to_a_scatter(f, *args) -> bool:
    """Whether XLA's compiled program for ``f(*args)`` scatters: a scatter op, or a loop
    XLA made of one (its CPU compiler expands scatters into loops under some settings,
    e.g. the suite's own). A one-element scatter that XLA turns into a
    dynamic-update-slice is not one."""
    import re

    text = jax.jit(f).lower(*args).compile().as_text()
    return " scatter(" in text or re.search(r' while\(.*op_name="[^"]*/scatter[-\w]*"', text) is not None


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
