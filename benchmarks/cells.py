"""Batches of branched cells (``jax.vmap``), jaxneuro against Jaxley in the same run.

    python benchmarks/cells.py [--batch 1 10 100] [--t1 20] [--f32] [--json PATH]

The ``tree1k`` cell (benchmarks/workloads.py: 10 branches × 100 HH compartments, the
0.2 nA step at the root from 10 ms) in batches of ``B`` cells whose per-branch gnabar
is the workload's scaled by 0.9-1.1 across the batch, ``t1`` ms at dt = 0.025 ms,
voltages at the root and the tip of branch 9 every 0.25 ms. jaxneuro vmaps
``simulate`` over the cells with each of its tree solves (``"hines"``: node by node;
``"paths"``: about √n paths side by side); Jaxley vmaps ``jx.integrate`` over the same
parameters. Each is compiled first and timed as the median of ``--repeats`` runs (3;
device time on a GPU); the largest voltage difference of each against jaxneuro's Hines order is
printed, so a fast wrong answer shows: beyond the tolerances below the run exits with
status 1 after its table and JSON (benchmarks/checks.py). Meant for GPUs, where the batch fills the
device, but runs anywhere (Jaxley is skipped when it is not installed). The first
compile in the process (jaxneuro's Hines order at the first batch size) also pays
one-off costs.

On two CPU cores (2026-11-28, float64, 20 ms; benchmarks/RESULTS.md): Jaxley / Hines
1.74 (one cell), 3.59 (10), 2.05 (100); the paths solve is faster for one cell but
slower in batches (the batch already gives the Hines order independent divisions to
overlap). Since the Hines solve runs from the leaves to the tree's centre with branches
taking turns (2026-12-01, AMD EPYC): 2.02 (one cell; 1.16 before, same run of the old
code), 5.99 (10), 2.11 (100); paths 0.87×, 1.80× and 1.51× the Hines time. On an H200 (2026-11-30, float32, ``--batch 1 100 1000 --t1 12``) the first
batch, one cell, had printed nothing after 60 s, when the run was stopped: the tree
solve's node-by-node loop is a poor fit for a GPU; no GPU numbers yet.
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

# Tolerances of each simulator's voltages against jaxneuro's Hines order (check_results).
# float64: the paths solve within 1e-14 mV, Jaxley within ~1e-11 mV of it on this cell
# (results_cpu_cells.json, run.py's tree1k); float32: 0.003 mV (paths) and 0.025 mV
# (Jaxley) on tree1k's 100 ms (results_cpu_f32.json). A wrong answer moves mV.
F64_DV_MV, F32_DV_MV = 1e-5, 5.0


def check_results(results: dict, f32: bool) -> checks.Checks:
    """Each batch's voltage differences against the Hines order, within the tolerance
    of the run's precision."""
    c = checks.Checks()
    for batch, r in results.items():
        for name in ("paths", "jaxley"):
            c.within(f"{batch} cells", f"max |ΔV| {name} vs hines", r.get(f"{name}_max_dv_vs_hines_mV"),
                     F32_DV_MV if f32 else F64_DV_MV, "mV")
    return c


def gnabar_batch(batch: int) -> np.ndarray:
    """(batch, 10) per-branch gnabar (S/cm²): the workload's, scaled by 0.9-1.1."""
    return np.linspace(0.9, 1.1, batch)[:, None] * W.branch_gnabar()[None, :]


def jaxneuro_cells(t1: float, tree_solve: str):
    """A function of (batch, 10) gnabar -> (batch, saves, 2) mV."""
    import jax
    import jax.numpy as jnp

    import jaxneuro as jn

    def one(g):
        tr = jn.simulate(W.tree_cell(g), t1, dt=W.DT, stimuli=[W.tree_stimulus()], save_every=W.SAVE,
                         solver=jn.StaggeredEuler(tree_solve=tree_solve))
        return tr.v[:, jnp.array([0, W.N_BRANCH * W.N_COMP - 1])]

    return jax.vmap(one)


def jaxley_cells(t1: float):
    """Jaxley's tree1k cell as a function of (batch, 10) gnabar -> (batch, saves, 2) mV."""
    import jax
    import jaxley as jx

    cell = W.jaxley_tree_cell(t1)
    sub = int(round(W.SAVE / W.DT))
    n_save = int(round(t1 / W.SAVE)) + 1

    def one(g):
        params = [{"HH_gNa": g[b][None]} for b in range(W.N_BRANCH)]
        v = jx.integrate(cell, params=params, delta_t=W.DT, t_max=t1)  # (2, steps + 1)
        return v[:, ::sub][:, :n_save].T

    return jax.vmap(one)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 10, 100])
    ap.add_argument("--t1", type=float, default=20.0, help="ms simulated (default 20)")
    ap.add_argument("--f32", action="store_true", help="float32 (default float64)")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per simulator (median)")
    ap.add_argument("--no-jaxley", action="store_true")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    if any(b < 1 for b in args.batch):
        ap.error(f"--batch expects positive numbers of cells, got {args.batch}")
    if args.repeats < 1:
        ap.error(f"--repeats expects a positive number, got {args.repeats}")
    if not args.t1 > 0:
        ap.error(f"--t1 expects a positive time in ms, got {args.t1}")
    checks.check_output_path(ap, args.json)

    import jaxneuro  # noqa: F401  (before JAX starts: jaxneuro's CPU settings)
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", not args.f32)
    with_jaxley = not args.no_jaxley and W.jaxley_available()
    steps = int(round(args.t1 / W.DT))
    print(f"# {jax.devices()[0]}, jax {jax.__version__}, {'float32' if args.f32 else 'float64'}, "
          f"{args.t1:g} ms ({steps} steps), Jaxley {'in' if with_jaxley else 'not in'} the run", flush=True)
    sims = {"hines": lambda: jaxneuro_cells(args.t1, "hines"), "paths": lambda: jaxneuro_cells(args.t1, "paths")}
    if with_jaxley:
        sims["jaxley"] = lambda: jaxley_cells(args.t1)
    results = {}
    for batch in args.batch:
        g = jnp.asarray(gnabar_batch(batch))
        r, outs = {"cells": batch, "compartments": batch * W.N_BRANCH * W.N_COMP, "steps": steps}, {}
        for name, make in sims.items():
            try:
                r[f"{name}_s"], r[f"{name}_compile_s"], outs[name] = W.compile_and_time(make(), g, args.repeats)
            except Exception as e:  # keep measuring the others
                r[f"{name}_error"] = f"{type(e).__name__}: {str(e)[:500]}"
        for name in outs:
            if name != "hines" and "hines" in outs:
                r[f"{name}_max_dv_vs_hines_mV"] = float(np.max(np.abs(outs[name] - outs["hines"])))
        for name in ("paths", "jaxley"):
            if f"{name}_s" in r and "hines_s" in r:
                r[f"{name}_time_over_hines"] = r[f"{name}_s"] / r["hines_s"]
        if "hines" in outs:
            r["tip_spikes"] = int(np.sum((outs["hines"][:, :-1, 1] < 0) & (outs["hines"][:, 1:, 1] >= 0)))
            r["root_v_final_mV"] = outs["hines"][:, -1, 0].tolist()  # one per cell
        results[batch] = r
        print(json.dumps({k: v for k, v in r.items() if k != "root_v_final_mV"}), flush=True)

    print("\n| cells | compartment-steps | hines s | paths s | Jaxley s | Jaxley / hines | Jaxley / paths "
          "| compile s (hines, paths, Jaxley) | max ΔV paths, Jaxley vs hines (mV) |")
    print("|---|---|---|---|---|---|---|---|---|")
    f = lambda x, fmt="{:.3g}": "n/a" if x is None else fmt.format(x)  # noqa: E731
    for batch, r in results.items():
        hs, ps, js = r.get("hines_s"), r.get("paths_s"), r.get("jaxley_s")
        print(f"| {batch} | {r['compartments'] * steps:.2g} | {f(hs)} | {f(ps)} | {f(js)} "
              f"| {f(js / hs if js and hs else None, '{:.2f}')} | {f(js / ps if js and ps else None, '{:.2f}')} "
              f"| {f(r.get('hines_compile_s'))}, {f(r.get('paths_compile_s'))}, {f(r.get('jaxley_compile_s'))} "
              f"| {f(r.get('paths_max_dv_vs_hines_mV'))}, {f(r.get('jaxley_max_dv_vs_hines_mV'))} |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"device": str(jax.devices()[0]), "jax": jax.__version__,
                       "precision": "float32" if args.f32 else "float64", "t1_ms": args.t1,
                       "batches": results}, fh, indent=1)
    check_results(results, args.f32).finish()  # exits with status 1 on a wrong answer


if __name__ == "__main__":
    main()
