"""Where the fused GPU kernel's time goes: variants of the gpu_pop workload, one run.

    python benchmarks/gpu_kernel.py [--n 1000000] [--json PATH]

HH population (gnabar 0.08-0.16 S/cm², 0.2 nA step from 10 ms, dt = 0.025 ms, 100 ms),
float32, timed as the median of 5 runs after compiling, for:

- ``pallas``: the workload as ``benchmarks/run.py`` times it (spike summary of capacity
  16, kernel blocks of 128 neurons on 2 warps: two neurons per thread);
- ``pallas_nosummary``: no summary, the voltage saved twice (the HH step alone);
- ``pallas_flush4``, ``pallas_flush8``, ``pallas_flush16``: the summary's crossings
  held back in registers and written every 4, 8, 16 steps (``pallas.SPIKE_FLUSH_EVERY``;
  the default, 1, writes them in their step under a ``cond`` on whether any neuron of
  the block crossed: a test across the block in every step). Same spike counts;
  added 2026-11-30 after the no-summary run showed that test at ~18 %, not yet run on
  a GPU;
- ``pallas_warps4``: one neuron per thread; ``pallas_block256_warps4``: 256 neurons,
  two per thread; ``pallas_warps1`` and ``pallas_block256``: four neurons per thread
  (128 on one warp, 256 on two);
- ``pallas_accurate_exp``: the step's ``exp`` as CUDA's accurate ``expf``
  (``pallas.NATIVE_EXP = False``); the default computes each as ``exp2(x·log2 e)``,
  the GPU's native base-2 exponential, without the range reduction of an accurate
  ``exp`` (float32 rounding differs, so a few spike counts do);
- ``pallas_nosummary_accurate_exp``: both of the above;
- ``pallas_block64_warps1``, ``pallas_block32_warps1``: blocks of one warp (two and one
  neurons per thread), whose "any neuron crossed" for the summary's ``cond`` needs no
  barrier between warps; ``pallas_block64_warps2``: 64 neurons, one per thread;
- ``pallas_by_derivative``: the gates advanced from the JVP of the vector field, as
  for channels without ``gate_inf_rate`` (three more divisions per step than HH's
  steady states and rates, one per gate); ``pallas_sqrt_rates``: that with HH's rates
  as they were until 2026-11-29 (``exp(-(v+65)/10)`` and square roots of it for the
  /20 and /80 exponentials) and accurate ``exp``: the kernel of the measurements below;
- ``xla``: the XLA loop (which, returning only spike counts here, drops the spike-time
  buffers altogether: lighter than the kernel's work).

Then the default kernel once more in float64, as the reference for every variant's
spike counts (``spike_count_mismatch_vs_float64``): how exact each is, not only how it
differs from the default's rounding.

Measured on an H200 (jax 0.11.2), one million neurons, before two neurons per thread
became the default: default 0.0388 s (1.03e11 compartment-steps/s); no summary 0.0373;
summary of capacity 1 0.0388; blocks of 64 / 256 neurons, one per thread, 0.0379 /
0.0394; two or four neurons per thread 0.0364-0.0382; the temperature factor as a
constant 0.0382 (the compiler already hoists it); one ``exp`` per rate 0.0409;
``exp2`` 0.0365; XLA 0.0491. Before the spike buffers were updated only in steps
with a crossing: 0.0501 (the same buffers under a ``cond``: 0.0401).

The variants above, after that and after the leaner step (gates held fixed in the
voltage's JVP, HH rates without divisions by constants): default 0.0331 s (1.21e11);
no summary 0.0324; one neuron per thread 0.0356; 256 neurons, two per thread, 0.0346;
``exp2`` 0.0308 (24 spike counts differ); XLA 0.0533.

With the float64 reference (two runs, 10⁶ neurons): default 0.0330 s, 12 counts ≠
float64; ``exp2`` 0.0308-0.0311, 20; ``nosqrt`` 0.0314-0.0318, 6; both 0.0293-0.0296, 27.
Four neurons per thread (third run): 0.0333 on one warp of 128, 0.0333 on two of 256,
against the default's 0.0329; with ``nosqrt``, 0.0315 and 0.0329 (no gain over two).

Fewer divisions (a further run, 2026-11-28): ``pallas_nosqrt_rates1div`` 0.0311 s
against ``nosqrt`` 0.0315 and the default 0.0331 (8 spike counts ≠ float64); the three
gates' exponential-Euler ratios sharing one division, a variant that needed a switch in
the solver and is no longer here (``pallas_gates1div`` and combinations in that run's
JSON): 0.0335 alone, 0.0316 with ``nosqrt``, 0.0311 with both: divisions are not where
the time goes (on the CPU the shared division made HH populations 30 % slower).

Since 2026-11-29 the default step is what ``pallas_nosqrt_rates1div`` measured (the
powers of ``exp(-(v+65)/80)`` without square roots, one division per gate, from
``HH.gate_inf_rate``); the variants above that patched ``HH.rates`` to get there are
replaced by the two that go back. Since 2026-11-30 the kernel's float32 exponentials
are ``exp2(x·log2 e)`` (``pallas.NATIVE_EXP``, what ``pallas_exp2`` measured):
``pallas_accurate_exp`` is the step before that.

Measured on the H200, 2026-11-30 (three runs; benchmarks/RESULTS.md): default 0.0305-0.0307 s
(1.31e11), 29 spike counts ≠ float64; accurate ``exp`` 0.0326 (11); the step before
2026-11-29 0.0339-0.0384; no summary 0.0251-0.0252 (the summary's per-step check is now
~18 % of the time); one-warp blocks 0.0312 (64) and 0.0321 (32); the spike times stored
from the kernel into memory by a masked store per step instead of the buffers under a
``cond`` (a variant since removed) 0.0350 against 0.0309.

Prints compartment-steps per second (target on an H100-class GPU: 1e11 for 1M neurons)
and each variant's spike counts against the default's. The other variants are
experiments (some round differently by design, any may fail and the rest run on); the
default kernel is the product: it must run and its spike counts must match the float64
reference but for at most a fraction ``DEFAULT_COUNT_FRACTION`` of the neurons, else
the run exits with status 1 after its table and JSON (benchmarks/checks.py).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import checks  # noqa: E402
import workloads as W  # noqa: E402

# The default kernel's spike counts against float64: a neuron at the edge of firing
# once more may flip with rounding (12-29 of 10⁶ measured, docstring); as run.py's
# gpu_pop tolerance.
DEFAULT_COUNT_FRACTION = 1e-3


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    if args.n < 1:
        ap.error(f"--n expects a positive number of neurons, got {args.n}")

    import jax
    import jax.numpy as jnp

    import jaxneuro as jn
    from jaxneuro.backends import pallas as P
    from jaxneuro.channels.base import exprel_ratio_of_exp

    jax.config.update("jax_enable_x64", False)
    # The gpu_pop workloads' own definition (benchmarks/workloads.py), at size n.
    n, t1, dt = args.n, W.WORKLOADS["gpu_pop1m"]["t1"], W.DT
    steps = int(round(t1 / dt))
    g = jnp.asarray(W.gnabar_values(n), jnp.float32)
    stim = W.soma_step()

    def rates_with_sqrt(self, v):
        # HH.rates until 2026-11-29: exp(-(v+65)/10) and its square roots.
        u = -(v + 65.0)
        e10 = jnp.exp(u * 0.1)
        e20 = jnp.sqrt(e10)
        e80 = jnp.sqrt(jnp.sqrt(e20))
        return {
            "m": (0.1 * exprel_ratio_of_exp(u + 25.0, 10.0, e10 * math.exp(2.5)),
                  4.0 * jnp.exp(u * (1.0 / 18.0))),
            "h": (0.07 * e20, 1.0 / (e10 * math.exp(3.0) + 1.0)),
            "n": (0.01 * exprel_ratio_of_exp(u + 10.0, 10.0, e10 * math.e), 0.125 * e80),
        }

    def no_inf_rate(self, v, temperature):
        # The solver then advances the gates from the vector field's JVP.
        return None

    @contextlib.contextmanager
    def patched(obj, name, value):
        old = getattr(obj, name)
        setattr(obj, name, value)
        try:
            yield
        finally:
            setattr(obj, name, old)

    def make(backend="pallas", capacity=16, summary=True):
        def fn(g):
            m = W.hh_compartments(g, n)
            if summary:
                tr = jn.simulate(m, t1, dt=dt, stimuli=[stim], record=(), backend=backend,
                                 summary=jn.SpikeSummary(threshold=0.0, capacity=capacity))
                return tr.spike_count
            tr = jn.simulate(m, t1, dt=dt, stimuli=[stim], record=("v",), save_every=t1 / 2, backend=backend)
            return tr.v[-1]
        return jax.jit(fn)

    variants = {
        "pallas": {},
        "pallas_nosummary": dict(summary=False),
        "pallas_flush4": dict(patch=[(P, "SPIKE_FLUSH_EVERY", 4)]),
        "pallas_flush8": dict(patch=[(P, "SPIKE_FLUSH_EVERY", 8)]),
        "pallas_flush16": dict(patch=[(P, "SPIKE_FLUSH_EVERY", 16)]),
        "pallas_warps4": dict(patch=[(P, "DEFAULT_WARPS", 4)]),
        "pallas_block256_warps4": dict(patch=[(P, "DEFAULT_BLOCK", 256), (P, "DEFAULT_WARPS", 4)]),
        "pallas_warps1": dict(patch=[(P, "DEFAULT_WARPS", 1)]),
        "pallas_block256": dict(patch=[(P, "DEFAULT_BLOCK", 256)]),
        "pallas_accurate_exp": dict(patch=[(P, "NATIVE_EXP", False)]),
        "pallas_nosummary_accurate_exp": dict(summary=False, patch=[(P, "NATIVE_EXP", False)]),
        "pallas_block64_warps1": dict(patch=[(P, "DEFAULT_BLOCK", 64), (P, "DEFAULT_WARPS", 1)]),
        "pallas_block32_warps1": dict(patch=[(P, "DEFAULT_BLOCK", 32), (P, "DEFAULT_WARPS", 1)]),
        "pallas_block64_warps2": dict(patch=[(P, "DEFAULT_BLOCK", 64), (P, "DEFAULT_WARPS", 2)]),
        "pallas_by_derivative": dict(patch=[(jn.channels.HH, "gate_inf_rate", no_inf_rate)]),
        "pallas_sqrt_rates": dict(patch=[(jn.channels.HH, "gate_inf_rate", no_inf_rate),
                                         (jn.channels.HH, "rates", rates_with_sqrt), (P, "NATIVE_EXP", False)]),
        "xla": dict(backend="xla"),
    }
    print(f"# {jax.devices()[0]}, jax {jax.__version__}, n = {n}, {steps} steps, float32", flush=True)
    results, ref, outputs = {}, None, {}
    for name, spec in variants.items():
        jax.clear_caches()  # JAX caches traced loop bodies: a patched function must be retraced
        r = {}
        spec = dict(spec)
        patches = spec.pop("patch", [])
        try:
            with contextlib.ExitStack() as stack:
                for obj, attr, value in patches:
                    stack.enter_context(patched(obj, attr, value))
                # Device time: the copy to the host is left out.
                r["run_s"], r["compile_s"], out = W.compile_and_time(make(**spec), g)
            outputs[name] = out
            r["compartment_steps_per_s"] = n * steps / r["run_s"]
            if name == "pallas":
                ref = out
                r["spikes"] = int(out.sum())
            elif ref is not None and out.shape == ref.shape and name != "pallas_nosummary":
                r["spike_count_mismatch_vs_pallas"] = int(np.sum(out != ref))
        except Exception as e:  # keep measuring the other variants
            r["error"] = f"{type(e).__name__}: {str(e)[:2000]}"
        results[name] = r
        print(name, json.dumps(r), flush=True)

    # float64 reference (the same kernel): how far each float32 variant's spike counts
    # are from the exact arithmetic, not just from the default's rounding.
    jax.config.update("jax_enable_x64", True)
    jax.clear_caches()
    ref64 = None
    for backend in ("pallas", "xla"):
        try:
            f = make(backend=backend)
            g64 = jnp.asarray(W.gnabar_values(n), jnp.float64)
            ref64 = np.asarray(jax.block_until_ready(f(g64)))
            print(f"float64 reference: {backend}, {int(ref64.sum())} spikes", flush=True)
            break
        except Exception as e:
            print(f"float64 reference with {backend} failed: {type(e).__name__}: {str(e)[:500]}", flush=True)
    if ref64 is not None:
        for name, out in outputs.items():
            if out.shape == ref64.shape and name != "pallas_nosummary":
                results[name]["spike_count_mismatch_vs_float64"] = int(np.sum(out != ref64))
                results[name]["spike_count_max_diff_vs_float64"] = int(np.max(np.abs(out.astype(int) - ref64.astype(int))))

    print("\n| variant | run s | compile s | compartment-steps/s | spike counts ≠ default | ≠ float64 |")
    print("|---|---|---|---|---|---|")
    for name, r in results.items():
        if "error" in r:
            print(f"| {name} | error: {r['error'][:80]} | | | | |")
            continue
        print(f"| {name} | {r['run_s']:.4g} | {r['compile_s']:.3g} | {r['compartment_steps_per_s']:.3g} "
              f"| {r.get('spike_count_mismatch_vs_pallas', '')} | {r.get('spike_count_mismatch_vs_float64', '')} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": str(jax.devices()[0]), "jax": jax.__version__, "n": n, "steps": steps,
                       "variants": results}, f, indent=1)
    check_default(results.get("pallas", {}), n).finish()


def check_default(r: dict, n: int) -> checks.Checks:
    """The default kernel's row ``r`` (of ``n`` neurons): it ran, and its spike counts
    are the float64 reference's within :data:`DEFAULT_COUNT_FRACTION`."""
    c = checks.Checks()
    c.true("default kernel", "the run", "error" not in r, f"a run without error (got {r.get('error', '')[:200]})")
    c.counts_equal("default kernel", "spike counts vs float64", r.get("spike_count_mismatch_vs_float64"),
                   int(DEFAULT_COUNT_FRACTION * n), of=n)
    return c


if __name__ == "__main__":
    main()
