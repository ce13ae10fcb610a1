"""A large SWC morphology with its 3-D points against the same cell as cylinders, one run.

    python benchmarks/swc_cell.py [--branches 300] [--t1 100] [--json PATH]

A random but reproducible morphology (one-point soma of radius 6 µm, ``--branches``
neurites of 3-14 points each, leaving the soma or earlier points; about 2500 points and
540 sections at the default) is written as an SWC file and read with
``jn.Cell.from_swc`` (HH everywhere, Ra 100 Ω·cm, d_lambda ``nseg``). The same tree is
also built from cylinders with each section's mean segment diameters. Both are timed in
the same process for: the first call of a jitted simulation (tracing and compiling
included), a compiled run of ``--t1`` ms, the gradient of the soma's mean voltage
with respect to every parameter and with respect to three (``gradient3``: the soma's
``gnabar`` and ``gkbar``, the first neurite's ``Ra``), first call and compiled run.
NEURON runs the same file (Import3d, ``usetable_hh = 0``) for the forward time and the
largest voltage difference at the soma; beyond the tolerance below the run exits with
status 1 after its table and JSON (benchmarks/checks.py). Without NEURON, jaxneuro's
rows alone.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import checks  # noqa: E402

# The soma's voltage against NEURON's on the same file (float64): 6e-8 mV at the default
# size (results_cpu_swc.json), 3e-7 mV at 5 branches; a wrong geometry or solve moves mV.
NEURON_DV_MV = 1e-5


# The few parameters of the "gradient3" rows: the soma's gnabar and gkbar, the first
# neurite's Ra.
FEW = lambda c: (c.sections[0].channels[0].gnabar, c.sections[0].channels[0].gkbar, c.sections[1].Ra)


def write_swc(path, branches, seed=1):
    rng = np.random.default_rng(seed)
    pts = [[1, 1, 0.0, 0.0, 0.0, 6.0, -1]]
    for _ in range(branches):
        parent, kind = int(rng.integers(1, len(pts) + 1)), int(rng.choice([3, 4]))
        for _ in range(int(rng.integers(3, 15))):
            p = pts[parent - 1]
            pts.append([len(pts) + 1, kind, p[2] + rng.uniform(-10, 10), p[3] + rng.uniform(-10, 10), p[4],
                        rng.uniform(0.3, 1.5), parent])
            parent = len(pts)
    with open(path, "w") as f:
        f.writelines("%d %d %.3f %.3f %.3f %.3f %d\n" % tuple(p) for p in pts)
    return len(pts)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--branches", type=int, default=300,
                    help="neurites drawn (3-14 points each), each leaving the soma or a point of an earlier one; "
                         "one leaving mid-neurite splits that section, so there are more sections than neurites "
                         "(default 300: about 540 sections)")
    ap.add_argument("--t1", type=float, default=100.0, help="ms simulated (default 100)")
    ap.add_argument("--json", default=None, help="write the results to this JSON file")
    args = ap.parse_args(argv)
    if args.branches < 1:  # the gradient3 rows take the first neurite's Ra
        ap.error(f"--branches expects a positive number of neurites, got {args.branches}")
    if not args.t1 > 0:
        ap.error(f"--t1 expects a positive time in ms, got {args.t1}")
    checks.check_output_path(ap, args.json)

    import jax
    import jaxneuro as jn  # before JAX first uses the CPU

    jax.config.update("jax_enable_x64", True)
    import equinox as eqx
    import jax.numpy as jnp

    path = os.path.join(tempfile.mkdtemp(), "cell.swc")
    n_points = write_swc(path, args.branches)
    cell3d = jn.Cell.from_swc(path, Ra=100.0, channels=[jn.channels.HH()])
    cylinders = jn.Cell(
        [jn.Cable(length=float(s.length), diam=np.asarray(s.segment_diameters), Ra=100.0, nseg=s.nseg,
                  channels=[jn.channels.HH()], name=s.name) for s in cell3d.sections],
        parents=cell3d.parents)
    stim = [jn.StepCurrent(0.5, 1.0, 1e9, target=("soma[0]", 0.5))]
    soma = cell3d.index("soma[0]", 0.5)

    def timed(fn, cell, repeats=3):
        t = time.perf_counter()
        jax.block_until_ready(fn(cell))
        first = time.perf_counter() - t
        runs = []
        for _ in range(repeats):
            t = time.perf_counter()
            jax.block_until_ready(fn(cell))
            runs.append(time.perf_counter() - t)
        return first, float(np.median(runs))

    rows = {}
    for label, cell in (("3d", cell3d), ("cylinders", cylinders)):
        forward = jax.jit(lambda c: jn.simulate(c, args.t1, stimuli=stim, save_every=0.25).v)
        soma_mean = lambda c: jnp.mean(jn.simulate(c, args.t1, stimuli=stim, save_every=0.25).v[:, soma])
        gradient = eqx.filter_jit(eqx.filter_grad(soma_mean))
        # A few parameters, the rest of the cell an argument, as jn.fit(params=...) does.
        few = eqx.filter_jit(jax.grad(lambda x, c: soma_mean(eqx.tree_at(FEW, c, tuple(x)))))
        x_few = jnp.asarray([float(v) for v in FEW(cell)])
        first, run = timed(forward, cell)
        grad_first, grad_run = timed(gradient, cell)
        few_first, few_run = timed(lambda c: few(x_few, c), cell)
        rows[label] = dict(first_call_s=first, run_s=run, gradient_first_call_s=grad_first, gradient_s=grad_run,
                           gradient3_first_call_s=few_first, gradient3_s=few_run, v=np.asarray(forward(cell)))

    result = dict(points=n_points, sections=len(cell3d.sections), segments=cell3d.n_segments, t1_ms=args.t1)
    if not checks.neuron_available():
        print(checks.missing_note(["NEURON"], "no NEURON run or voltage comparison"), flush=True)
    else:
        from neuron import h

        h.load_file("stdrun.hoc")
        h.load_file("import3d.hoc")
        h.usetable_hh = 0
        reader = h.Import3d_SWC_read()
        reader.quiet = 1
        reader.input(path)
        before = {s.name() for s in h.allsec()}
        h.Import3d_GUI(reader, False).instantiate(None)
        secs = {s.name(): s for s in h.allsec() if s.name() not in before}
        for sec in cell3d.sections:
            s = secs[sec.name]
            s.Ra, s.nseg = 100.0, sec.nseg
            s.insert("hh")
        clamp = h.IClamp(secs["soma[0]"](0.5))
        clamp.amp, clamp.delay, clamp.dur = 0.5, 1.0, 1e9
        ref = h.Vector().record(secs["soma[0]"](0.5)._ref_v, 0.25)
        h.dt = 0.025
        t = time.perf_counter()
        h.finitialize(-65.0)
        h.continuerun(args.t1)
        result["neuron_s"] = time.perf_counter() - t
        result["max_dv_vs_neuron_mV"] = float(np.max(np.abs(rows["3d"]["v"][:, soma] - np.asarray(ref)[:len(rows["3d"]["v"])])))
        del clamp, ref  # leave NEURON as found (the tests call this in their process)
        for s in secs.values():
            h.delete_section(sec=s)
    for label in rows:
        rows[label].pop("v")
    result.update({f"{label}_{k}": v for label, r in rows.items() for k, v in r.items()})
    keys = ("first_call_s", "run_s", "gradient_first_call_s", "gradient_s", "gradient3_first_call_s", "gradient3_s")
    for k in keys:
        result[f"3d_over_cylinders_{k}"] = rows["3d"][k] / rows["cylinders"][k]

    print(f"# {n_points} points, {result['sections']} sections, {result['segments']} segments, {args.t1} ms")
    print("| | 3-D points | cylinders | 3-D / cylinders |\n|---|---|---|---|")
    for k in keys:
        print(f"| {k} | {rows['3d'][k]:.3g} | {rows['cylinders'][k]:.3g} | {result['3d_over_cylinders_' + k]:.2f} |")
    if "neuron_s" in result:
        print(f"NEURON forward {result['neuron_s']:.3g} s (x NEURON, 3-D run: {result['neuron_s'] / rows['3d']['run_s']:.2f}); "
              f"max |dV| at the soma vs NEURON {result['max_dv_vs_neuron_mV']:.2g} mV")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    c = checks.Checks()
    c.within(f"SWC cell of {args.branches} neurites", "max |ΔV| at the soma vs NEURON",
             result.get("max_dv_vs_neuron_mV"), NEURON_DV_MV, "mV")
    c.finish()  # exits with status 1 on a wrong answer


if __name__ == "__main__":
    main()
