"""jaxneuro's XLA settings: small CPU time loops compiled as single kernels, one CPU
device per core, 512-bit vector code."""

import os
import subprocess
import sys

import pytest

from jaxneuro.xla_cpu import (
    DEVICE_COUNT_FLAG, SMALL_LOOP_BYTES, THRESHOLD_KEY, VECTOR_BITS, VECTOR_WIDTH_FLAG, usable_cores, with_cpu_devices,
    with_small_loop_threshold, with_vector_width,
)

ENTRY = f"{THRESHOLD_KEY}={SMALL_LOOP_BYTES}"


def test_threshold_is_added_to_empty_and_unrelated_flags():
    assert with_small_loop_threshold("") == f"--xla_backend_extra_options={ENTRY}"
    flags = "--xla_force_host_platform_device_count=8"
    assert with_small_loop_threshold(flags) == f"{flags} --xla_backend_extra_options={ENTRY}"


def test_other_backend_extra_options_are_kept():
    flags = "--xla_backend_extra_options=xla_cpu_disable_loop_unrolling=true --xla_dump_to=/tmp/d"
    assert with_small_loop_threshold(flags) == (
        f"--xla_backend_extra_options=xla_cpu_disable_loop_unrolling=true,{ENTRY} --xla_dump_to=/tmp/d"
    )


def test_a_users_own_threshold_wins():
    flags = f"--xla_backend_extra_options={THRESHOLD_KEY}=1024"
    assert with_small_loop_threshold(flags) == flags


def test_bad_nbytes_is_a_clear_error():
    with pytest.raises(ValueError, match="nbytes expects a non-negative int"):
        with_small_loop_threshold("", -1)


_PROBE = """
import os, jax, jax.numpy as jnp
import jaxneuro as jn
print(os.environ.get("XLA_FLAGS", ""))
m = jn.Compartment(length=20.0, diam=20.0, channels=[jn.channels.HH()], n=100)
f = jax.jit(lambda g: jn.simulate(m, 5.0, dt=0.025, save_every=0.25).v)
print("small_call" in f.lower(0.0).compile().as_text())
print(jax.local_device_count())
"""


def _probe(xla_flags):
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    if xla_flags is not None:
        env["XLA_FLAGS"] = xla_flags
    out = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, check=True)
    return out.stdout.split("\n")[:3]


def test_importing_jaxneuro_makes_the_time_loop_one_kernel_and_each_core_a_device():
    flags, hoisted, devices = _probe(None)
    assert ENTRY in flags
    assert hoisted == "True"
    assert int(devices) == usable_cores()
    assert (f"{DEVICE_COUNT_FLAG}={usable_cores()}" in flags) == (usable_cores() > 1)
    assert f"{VECTOR_WIDTH_FLAG}={VECTOR_BITS}" in flags


_VMAPPED_CELL = """
import jax, jax.numpy as jnp
import jaxneuro as jn
secs = [jn.Cable(length=100.0, diam=1.0, nseg=3, channels=[jn.channels.HH()], name=f"s{i}") for i in range(100)]
cell = jn.Cell(secs, parents=[None] + [(f"s{(i - 1) // 2}", 1.0) for i in range(1, 100)])
def run(amp):
    return jn.simulate(cell, 5.0, stimuli=[jn.StepCurrent(amp, 1.0, 1e9, target=("s0", 0.5))]).v[-1, 0]
text = jax.jit(jax.vmap(run)).lower(jnp.linspace(0.1, 0.3, 16)).compile().as_text()
computation = None
for line in text.splitlines():
    if line and not line.startswith(" ") and line.rstrip().endswith("{"):
        computation = line.split()[0]
    if '"known_trip_count":{"n":"200"}' in line:  # the time loop: 200 steps
        print(computation)
"""


def test_a_vmapped_cells_time_loop_is_one_kernel():
    # XLA hoists a small loop into a computation of its own ("<while>_computation",
    # called as one kernel); otherwise the loop sits in the entry computation and runs
    # kernel by kernel. A 300-segment cell vmapped over 16 values missed that: a mean
    # over compartments in the step became a reduction kernel XLA cannot put into such
    # a loop (1.5-1.7x a single run per member, measured; now 1.0-1.2x).
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    out = subprocess.run([sys.executable, "-c", _VMAPPED_CELL], env=env, capture_output=True, text=True, check=True)
    loops = out.stdout.split()
    assert loops and all(name.endswith("_computation") for name in loops), loops


def test_vector_width_is_added_unless_named():
    assert with_vector_width("") == f"{VECTOR_WIDTH_FLAG}=512"
    assert with_vector_width("--xla_dump_to=d", 256) == f"--xla_dump_to=d {VECTOR_WIDTH_FLAG}=256"
    assert with_vector_width(f"{VECTOR_WIDTH_FLAG}=256") == f"{VECTOR_WIDTH_FLAG}=256"
    with pytest.raises(ValueError, match="bits expects 128, 256 or 512"):
        with_vector_width("", 300)
    # A user's own width is kept by the import too.
    flags, _, _ = _probe(f"{VECTOR_WIDTH_FLAG}=256")
    assert flags.count(VECTOR_WIDTH_FLAG) == 1 and f"{VECTOR_WIDTH_FLAG}=256" in flags


def test_device_count_is_added_unless_named_or_one():
    assert with_cpu_devices("", 4) == f"{DEVICE_COUNT_FLAG}=4"
    assert with_cpu_devices("--xla_dump_to=d", 2) == f"--xla_dump_to=d {DEVICE_COUNT_FLAG}=2"
    assert with_cpu_devices(f"{DEVICE_COUNT_FLAG}=1", 8) == f"{DEVICE_COUNT_FLAG}=1"
    assert with_cpu_devices("", 1) == ""
    with pytest.raises(ValueError, match="count expects a positive int"):
        with_cpu_devices("", 0)
    # A user's own count is kept by the import too.
    flags, _, devices = _probe(f"{DEVICE_COUNT_FLAG}=3")
    assert devices == "3" and flags.count(DEVICE_COUNT_FLAG) == 1


def test_the_setting_can_be_turned_back_to_xlas_default():
    flags, hoisted, _ = _probe(f"--xla_backend_extra_options={THRESHOLD_KEY}=1024")
    assert flags.split()[0] == f"--xla_backend_extra_options={THRESHOLD_KEY}=1024"
    assert hoisted == "False"


def test_importing_jaxneuro_after_jax_started_warns():
    script = ("import warnings, jax, jax.numpy as jnp\n"
              "jnp.ones(2).block_until_ready()\n"
              "with warnings.catch_warnings(record=True) as w:\n"
              "    warnings.simplefilter('always')\n"
              "    import jaxneuro\n"
              "print([str(x.message) for x in w])\n")
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True).stdout
    assert "after JAX had started its backends" in out
    quiet = subprocess.run([sys.executable, "-W", "error", "-c", "import jax; import jaxneuro; jax.numpy.ones(2)"],
                           env=env, capture_output=True, text=True)
    assert quiet.returncode == 0, quiet.stderr
