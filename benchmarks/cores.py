"""HH populations split over the CPU cores against one XLA loop, same run.

    python benchmarks/cores.py [--f32] [--sizes 32 48 64 96 128 1000 ...] [--json PATH]

The ``pop1k`` workload's model and stimulus (benchmarks/workloads.py) at several
population sizes, 100 ms, voltages saved every 0.25 ms, timed as the median of 5 runs
after compiling: ``backend="sharded"`` (each core a JAX device running the loop on its
share; what ``backend="auto"`` picks on a multi-core CPU) against ``backend="xla"`` (one
loop). Prints the ratio and the largest voltage difference between the two (0: the
same arithmetic); beyond the tolerance below the run exits with status 1 after its table
and JSON (benchmarks/checks.py). jaxneuro must be imported before JAX starts, as here.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import checks  # noqa: E402
import workloads as W  # noqa: E402

# Tolerance of the voltage difference between the split and the one loop: float64 1e-14
# mV at most (results_cpu_cores.json); float32 up to 3.5 mV (30 000 neurons: rounding,
# grown through a spike). A neuron's share computed wrongly moves tens of mV.
F64_DV_MV, F32_DV_MV = 1e-9, 10.0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--f32", action="store_true", help="float32 (default float64)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[32, 48, 64, 96, 128, 1000, 10_000, 30_000])
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    if any(n < 1 for n in args.sizes):
        ap.error(f"--sizes expects positive numbers of neurons, got {args.sizes}")
    checks.check_output_path(ap, args.json)

    import jaxneuro as jn  # before JAX starts: one CPU device per core
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", not args.f32)
    t1 = W.WORKLOADS["pop1k"]["t1"]
    print(f"# {len(jax.devices())} {jax.default_backend()} devices, "
          f"{'float32' if args.f32 else 'float64'}, {t1:g} ms", flush=True)
    results = {}
    for n in args.sizes:
        g = jnp.asarray(W.gnabar_values(n))
        r, out = {}, {}
        for backend in ("xla", "sharded"):
            def run(g, backend=backend):
                return jn.simulate(W.hh_compartments(g, n), t1, dt=W.DT, stimuli=[W.soma_step()],
                                   save_every=W.SAVE, backend=backend).v
            try:
                r[f"{backend}_s"], _, out[backend] = W.compile_and_time(run, g)
            except ValueError as e:  # e.g. one device: nothing to split over
                r[f"{backend}_error"] = str(e)
        if len(out) == 2:
            r["one_loop_over_split"] = r["xla_s"] / r["sharded_s"]
            r["max_dv_mV"] = float(np.max(np.abs(out["xla"] - out["sharded"])))
        results[n] = r
        print(n, json.dumps(r), flush=True)
    print("\n| neurons | one loop s | split s | one loop / split | max abs ΔV (mV) |")
    print("|---|---|---|---|---|")
    for n, r in results.items():
        if "one_loop_over_split" in r:
            print(f"| {n} | {r['xla_s']:.4g} | {r['sharded_s']:.4g} | {r['one_loop_over_split']:.2f} | {r['max_dv_mV']:.3g} |")
        else:
            print(f"| {n} | {r.get('xla_s', float('nan')):.4g} | n/a | n/a | {r.get('sharded_error', '')[:60]} |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"devices": len(jax.devices()), "precision": "float32" if args.f32 else "float64",
                       "sizes": results}, fh, indent=1)
    c = checks.Checks()
    for n, r in results.items():
        c.within(f"{n} neurons", "max |ΔV| split vs one loop", r.get("max_dv_mV"), F32_DV_MV if args.f32 else F64_DV_MV, "mV")
    c.finish()  # exits with status 1 on a wrong answer


if __name__ == "__main__":
    main()
