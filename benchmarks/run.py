"""Benchmark jaxneuro against NEURON and Jaxley on the same workloads, in one run.

    python benchmarks/run.py [--quick] [--gpu] [--f32] [--cores N] [--json PATH] [--only NAME ...]

Workloads (benchmarks/workloads.py): hh1, pop1k, tree1k, grad_tree1k; with --gpu also
gpu_pop10k, gpu_pop100k, gpu_pop1m. Each simulator is warmed up (JAX: compiled ahead of
time; the compile time reported is the median of three further compiles of freshly
built models (one with --quick), so that one-off costs of the process are not charged
to whichever simulator runs first) and then
timed (median of 5 runs, 1 with --quick); the headline times of jaxneuro, NEURON and
Jaxley are then timed again in turns, one run of each per round (after an untimed one
of the same simulator), 11 rounds (not with --quick), so that the load of a shared
machine falls on all three alike. NEURON's headline time is with its default rate
tables (``neuron_s``; ``neuron_exact_s`` without). Voltages are compared in the same
run (max |ΔV| on a 0.25 ms grid and spike-time differences, NEURON with exact rates
as the reference), the gradient against a NEURON finite difference, and float32
against float64 for jaxneuro.
Precision: float64 on the CPU, float32 on accelerators (--f32 forces float32).
Jaxley runs in the same process as jaxneuro, so it gets the XLA settings jaxneuro applies
on import (jaxneuro/xla_cpu.py); on a CPU both are also timed in subprocesses with XLA's
default loop limit and vector width ("XLA defaults": Jaxley as it runs on its own).
Jaxley is optional (extra ``bench``); without it its columns read n/a.
Prints a Markdown table and writes JSON ``{"machine": ..., "workloads": {...}}``; then
checks every comparison of jaxneuro's answers against the tolerances below and exits
with status 1, naming each one exceeded, if any is (benchmarks/checks.py). A bad
``--json`` path or option is refused (status 2) before anything runs.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from typing import Callable, NamedTuple

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import checks  # noqa: E402
import workloads as W  # noqa: E402

# Tolerances of the comparisons (check_results); a run beyond any exits with status 1.
# float64: jaxneuro reproduces NEURON (exact rates, and NEURON's tables with
# HH(use_table=True)) and Jaxley to ~1e-8 mV and ~1e-10 ms on every workload
# (results_cpu*.json); a thousand times that still catches a wrong answer, which moves
# voltages by millivolts (a spike a step off: tens of mV).
F64_DV_MV, F64_SPIKE_DT_MS = 1e-5, 1e-6
# float32: rounding accumulates over a run: pop1k 0.55 mV and 2 µs from float64 and
# NEURON on a CPU (results_cpu_f32.json, results_cpu_amd_f32.json), 1.3 mV on a GPU
# (results_gpu_h200.json), Jaxley's float32 2.2 mV from jaxneuro's; a spike time within
# two steps.
F32_DV_MV, F32_SPIKE_DT_MS = 5.0, 0.05
# Gradients, relative. Against NEURON's central finite difference, which has its own
# error: 2e-6 in float64, 2e-4 for jaxneuro's float32 gradient.
F64_GRAD_FD_REL, F32_GRAD_FD_REL = 1e-4, 1e-2
# Between exact gradients (jaxneuro's tree solves and checkpointings, Jaxley, float32 vs
# float64): ≤ 6e-12 in float64, ≤ 4e-5 in float32. Jaxley's own float32 gradient is off
# (0.26 relative, RESULTS.md), so Jaxley is a reference in float64 only.
F64_GRAD_REL, F32_GRAD_REL = 1e-8, 1e-3
# gpu_pop (float32, 10⁴-10⁶ neurons, spike counts and times only): a neuron at the edge
# of firing once more may flip with rounding: the fused kernel and the XLA loop differed
# in 29 of 10⁶ neurons, Jaxley in 280 of 10⁶, first spike times by up to 0.032 ms.
GPU_POP_COUNT_FRACTION, GPU_POP_SPIKE_DT_MS = 1e-3, 0.5


def spike_times(t, v, thr=0.0):
    """Upward crossings of ``thr`` per column, linearly interpolated."""
    out = []
    for j in range(v.shape[1]):
        k = np.nonzero((v[:-1, j] < thr) & (v[1:, j] >= thr))[0]
        out.append(t[k] + (thr - v[k, j]) / (v[k + 1, j] - v[k, j]) * (t[k + 1] - t[k]))
    return out


def compare(a, b):
    """max |ΔV|, max spike-time difference over matched spikes, spike-count mismatches."""
    (ta, va), (tb, vb) = a, b
    n = min(len(ta), len(tb))
    va, vb, t = va[:n], vb[:n], ta[:n]
    sa, sb = spike_times(t, va), spike_times(t, vb)
    dts = [np.max(np.abs(x[: min(len(x), len(y))] - y[: min(len(x), len(y))])) for x, y in zip(sa, sb) if min(len(x), len(y))]
    return {
        "max_dv_mV": float(np.max(np.abs(va - vb))),
        "max_spike_dt_ms": float(max(dts)) if dts else None,
        "spike_count_mismatch": int(sum(len(x) != len(y) for x, y in zip(sa, sb))),
        "spikes": int(sum(len(x) for x in sa)),
    }


def rel_diff(a, ref):
    """Largest absolute difference relative to the largest entry of ``ref``."""
    return float(np.max(np.abs(np.asarray(a) - ref)) / np.max(np.abs(ref)))


def check_results(results: dict, x64: bool) -> checks.Checks:
    """Every comparison of jaxneuro's answers in ``results`` (name -> workload row, as
    :func:`main` builds them) against the tolerances at the top of this file, those of
    the run's precision (``x64``: float64). Comparisons not made (NEURON or Jaxley
    missing) are skipped."""
    dv_tol, dt_tol = (F64_DV_MV, F64_SPIKE_DT_MS) if x64 else (F32_DV_MV, F32_SPIKE_DT_MS)
    fd_tol, grad_tol = (F64_GRAD_FD_REL, F64_GRAD_REL) if x64 else (F32_GRAD_FD_REL, F32_GRAD_REL)
    c = checks.Checks()

    def traces(name, key, what, dv=dv_tol, dt=dt_tol):
        cmp = results[name].get(key)
        if cmp:
            c.within(name, f"max |ΔV| {what}", cmp["max_dv_mV"], dv, "mV")
            c.within(name, f"spike-time difference {what}", cmp["max_spike_dt_ms"], dt, "ms")
            c.counts_equal(name, f"spike counts {what}", cmp["spike_count_mismatch"])

    for name, r in results.items():
        traces(name, "vs_neuron", "vs NEURON")
        traces(name, "vs_jaxley", "vs Jaxley")
        traces(name, "table_vs_neuron_table", "with rate tables vs NEURON's tables")
        traces(name, "f32_vs_f64", "float32 vs float64", F32_DV_MV, F32_SPIKE_DT_MS)
        c.within(name, "max |ΔV| one loop vs split over the cores", r.get("one_loop_vs_split_max_dv_mV"), dv_tol, "mV")
        c.within(name, "max |ΔV| tree_solve=\"paths\" vs the Hines order", r.get("paths_vs_hines_max_dv_mV"), dv_tol, "mV")
        if "grad_branch0" in r:
            g = r["grad_branch0"]
            c.within(name, "d loss/d gnabar[0] relative to NEURON's finite difference",
                     checks.scalar_rel_diff(g["jaxneuro"], g["neuron_fd"]), fd_tol)
            if x64:
                c.within(name, "gradient relative to Jaxley's", r.get("grad_jaxley_vs_jaxneuro_rel_err"), grad_tol)
            c.within(name, "gradient with tree_solve=\"paths\" relative to the Hines order",
                     r.get("paths_vs_hines_rel_diff"), grad_tol)
            c.within(name, "gradient with grad_checkpoints=\"steps\" relative to \"saves\"",
                     r.get("checkpoint_steps_grad_rel_diff"), grad_tol)
            c.within(name, "float32 gradient relative to float64", r.get("f32_vs_f64_grad_rel_err"), F32_GRAD_REL)
        if name.startswith("gpu_pop"):
            allowed = int(GPU_POP_COUNT_FRACTION * r["compartments"])
            for key, what in (("pallas_vs_xla_count_mismatch", "fused kernel vs XLA loop"),
                              ("vs_neuron_spike_count_mismatch", "vs NEURON"),
                              ("vs_jaxley_spike_count_mismatch", "vs Jaxley"),
                              ("f32_vs_f64_spike_count_mismatch", "float32 vs float64")):
                c.counts_equal(name, f"spike counts {what}", r.get(key), allowed, of=r["compartments"])
            c.within(name, "spike-time difference fused kernel vs XLA loop", r.get("pallas_vs_xla_max_spike_dt_ms"),
                     GPU_POP_SPIKE_DT_MS, "ms")
    return c


def add_speedups(r, time_key, prefix, sims):
    """``r[prefix + sim] = r[sim + "_s"] / r[time_key]`` for each simulator timed in ``r``."""
    for sim in sims:
        if r.get(f"{sim}_s"):
            r[f"{prefix}{sim}"] = r[f"{sim}_s"] / r[time_key]


class Timing(NamedTuple):
    """What :func:`timed` measured: median run time (s), compile time (s; None for
    NEURON), the result as NumPy, and the warmed-up call (for :func:`in_turns`)."""

    seconds: float
    compile_s: float | None
    out: object
    call: Callable


#: Rounds of :func:`in_turns` for the simulators' headline times.
TURNS = 11


def in_turns(calls: dict, rounds: int = TURNS) -> dict:
    """Median seconds of each warmed-up call in ``calls`` (name -> call), timed in
    turns: one call of each per round. Timed one simulator after the other, a
    simulator's runs share the machine's load of their moment (other users of a shared
    machine, its clock): a ratio between two simulators then moved by up to ~15 %
    between runs of the runner; in turns, each round's runs see about the same load.

    Each timed call follows an untimed one of the same simulator, as in a warm-up:
    straight after another simulator, a run finds what that one left (a second core
    idle through a one-core run, other data in the caches). On a 2-core AMD EPYC a
    split ``pop1k`` took 0.0131 s run back to back and 0.0173 s after 0.5 s asleep
    (one loop: 0.0212 and 0.0236 s), so in plain turns it was timed ~30 % slower than
    alone, where a one-core simulator lost little."""
    times = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            call()  # the turn's warm-up
            t = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - t)
    return {name: statistics.median(ts) for name, ts in times.items()}


def timed(make_run, repeats) -> Timing:
    """Median run time, compile time, result and call of ``make_run()``'s workload.

    JAX simulators are compiled from a freshly built model each time, and the first
    compile is not reported: it pays each library's one-off costs in the process (its
    first traces, and JAX's own for whichever simulator goes first). The median of the
    next three is (one with ``repeats`` ≤ 1, as ``--quick`` has): a single compile
    varies by up to 1.5× from one to the next on a shared machine."""
    run = make_run()
    compile_s = None
    if run.compile is not None:
        run.compile()
        compiles = []
        for _ in range(3 if repeats > 1 else 1):
            run = make_run()
            compiles.append(run.compile())
        compile_s = statistics.median(compiles)
    t = time.perf_counter()
    result = run.call()  # warm-up
    warm_s = time.perf_counter() - t
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        result = run.call()
        times.append(time.perf_counter() - t)
    return Timing(statistics.median(times) if times else warm_s, compile_s, run.convert(result), run.call)


# XLA's own limit for compiling a loop into one CPU kernel and its own vector width
# (jaxneuro raises both on import; named here, so its import keeps them).
XLA_DEFAULT_LOOP_LIMIT = ("--xla_backend_extra_options=xla_cpu_small_while_loop_byte_threshold=1024 "
                          "--xla_cpu_prefer_vector_width=256")


def subprocess_run(sim, name, x64, repeats, xla_flags=None, backend="auto"):
    """``sim`` ("jaxneuro" or "jaxley") on ``name`` in a subprocess: for the other
    precision (JAX's x64 switch is process-wide and not safe to flip between compiled
    programs) or other XLA flags (read once per process). Returns ``(seconds, output)``."""
    import subprocess
    import tempfile

    env = dict(os.environ)
    if xla_flags is not None:
        env["XLA_FLAGS"] = xla_flags
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "out.npz")
        subprocess.run([sys.executable, os.path.abspath(__file__), "--_only-sim", sim, "--_only-workload", name,
                        "--_x64", str(int(x64)), "--_repeats", str(repeats), "--_out", path, "--backend", backend],
                       check=True, env=env)
        with np.load(path, allow_pickle=True) as z:
            out = tuple(z["out"]) if z["out"].dtype == object else z["out"]
            return float(z["time_s"]), out


def _only(sim, name, x64, repeats, path, backend="auto"):
    import jax

    jax.config.update("jax_enable_x64", x64)
    if sim == "jaxneuro":
        def make(name):
            return W.jaxneuro_run(name, backend=backend)
    else:
        make = W.jaxley_run
    s, _, out, _ = timed(lambda: make(name), repeats)
    arr = np.empty(len(out), dtype=object) if isinstance(out, tuple) else np.asarray(out)
    if isinstance(out, tuple):
        arr[:] = list(out)
    np.savez(path, time_s=s, out=arr)


def machine():
    import jax

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    try:
        import neuron

        nrn = neuron.__version__
    except Exception:
        nrn = None
    try:
        import jaxley

        jxl = jaxley.__version__
    except Exception:
        jxl = None
    return {
        "cpu": cpu, "cores": cores, "platform": platform.platform(), "python": platform.python_version(),
        "jax": jax.__version__, "devices": [str(d) for d in jax.devices()], "backend": jax.default_backend(),
        "neuron": nrn, "jaxley": jxl, "date": datetime.date.today().isoformat(),
    }


def main(argv=None):
    # prog: "jaxneuro bench" when started by that command (default: this file's name).
    ap = argparse.ArgumentParser(prog=os.environ.get("JAXNEURO_BENCH_PROG"), description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one timed run per simulator (1-3 minutes on 2 cores, under five)")
    ap.add_argument("--gpu", action="store_true", help="also the gpu_pop workloads (10k, 100k, 1M neurons)")
    ap.add_argument("--f32", action="store_true", help="jaxneuro and Jaxley in float32 (default: float64 on CPU)")
    ap.add_argument("--json", default=None, help="write results to this JSON file")
    ap.add_argument("--only", nargs="*", default=None, metavar="NAME",
                    help="run only these workloads, in this order (gpu_pop* need --gpu)")
    ap.add_argument("--backend", default="auto", choices=("auto", "xla", "pallas", "sharded"),
                    help="jaxneuro's backend for the gpu_pop workloads (default auto: the fused kernel on a GPU)")
    ap.add_argument("--cores", type=int, default=None,
                    help="pin this run (all three simulators) to N cores; NEURON uses one either way")
    ap.add_argument("--_only-sim", dest="only_sim", help=argparse.SUPPRESS)
    ap.add_argument("--_only-workload", dest="only_workload", help=argparse.SUPPRESS)
    ap.add_argument("--_x64", dest="x64", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--_repeats", dest="repeats", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--_out", dest="out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    names = ["hh1", "pop1k", "tree1k", "grad_tree1k"]
    if args.gpu:
        names += ["gpu_pop10k", "gpu_pop100k", "gpu_pop1m"]
    if not args.only_sim:  # (the runner's own subprocesses are given checked options)
        # Usage errors before anything runs: a bad --json path would otherwise be found
        # only when the results are written, minutes later.
        checks.check_output_path(ap, args.json)
        if args.only is not None:
            if not args.only:  # "--only $EMPTY" in a script must not become a full run
                ap.error(f"--only expects one or more workload names (some of {names})")
            gpu_only = [n for n in args.only if n not in names and n in W.WORKLOADS]
            if gpu_only:
                ap.error(f"--only {' '.join(gpu_only)}: the gpu_pop workloads run only with --gpu")
            unknown = [n for n in args.only if n not in names]
            if unknown:
                ap.error(f"--only: unknown workload(s) {unknown} (expected some of {names})")
            names = list(dict.fromkeys(args.only))  # in the order given
    if args.cores is not None:
        # Before jaxneuro and JAX start: XLA sizes its thread pool, and jaxneuro the
        # number of CPU devices, from the affinity mask; subprocesses (the
        # other-precision runs) inherit it.
        allowed = sorted(os.sched_getaffinity(0))
        if not 1 <= args.cores <= len(allowed):
            ap.error(f"--cores expects 1 to {len(allowed)} (the cores this process may use), got {args.cores}")
        os.sched_setaffinity(0, allowed[: args.cores])
    # Before JAX starts: jaxneuro sets XLA's small-loop limit and one CPU device per
    # core on import (jaxneuro/xla_cpu.py); Jaxley, in the same process, runs with both.
    import jaxneuro  # noqa: F401
    if args.only_sim:
        return _only(args.only_sim, args.only_workload, bool(args.x64), args.repeats, args.out, args.backend)

    import jax

    x64 = not args.f32 and jax.default_backend() == "cpu"
    jax.config.update("jax_enable_x64", x64)
    on_cpu = jax.default_backend() == "cpu"
    # Runs on an accelerator take milliseconds: five of them even with --quick.
    repeats = 1 if args.quick and on_cpu else 5
    have_jaxley = W.jaxley_available()
    have_neuron = checks.neuron_available()
    info = machine()
    info["precision"] = "float64" if x64 else "float32"
    print(f"# {info['cpu']} ({info['cores']} cores), jax {info['jax']} on {info['backend']}, "
          f"NEURON {info['neuron']}, Jaxley {info['jaxley'] or 'n/a'}, {info['precision']}", flush=True)
    missing = [name for name, have in (("NEURON", have_neuron), ("Jaxley", have_jaxley)) if not have]
    if missing:
        print(checks.missing_note(missing, "their columns are n/a"), flush=True)
    results = {}
    for name in names:
        w = W.WORKLOADS[name]
        steps = int(round(w["t1"] / W.DT))
        r = {"steps": steps, "compartments": w["n"], "t1_ms": w["t1"]}
        gpu_pop = name.startswith("gpu_pop")
        big = gpu_pop and w["n"] > 10_000
        print(f"## {name}", flush=True)

        backend = args.backend if gpu_pop else "auto"
        r["jaxneuro_s"], r["jaxneuro_compile_s"], jn_out, jn_call = timed(
            lambda: W.jaxneuro_run(name, backend=backend), repeats)
        turns = {"jaxneuro": jn_call}
        if gpu_pop:
            r["backend"] = backend
            r["compartment_steps_per_s"] = w["n"] * steps / r["jaxneuro_s"]
            xla_s, _, xla_out, _ = timed(lambda: W.jaxneuro_run(name, backend="xla"), 0 if big and on_cpu else repeats)
            r["jaxneuro_xla_s"] = xla_s
            r["pallas_vs_xla_count_mismatch"] = int(np.sum(jn_out[0] != xla_out[0]))
            finite = np.isfinite(jn_out[1]) & np.isfinite(xla_out[1])
            r["pallas_vs_xla_max_spike_dt_ms"] = float(np.max(np.abs(jn_out[1] - xla_out[1])[finite], initial=0.0))

        if name == "pop1k" and on_cpu:
            # What splitting the population over the cores is worth: one XLA loop.
            r["jaxneuro_backend"] = W.jaxneuro_backend(name)
            if r["jaxneuro_backend"] != "xla":
                r["jaxneuro_one_loop_s"], _, one_out, _ = timed(lambda: W.jaxneuro_run(name, backend="xla"), repeats)
                r["one_loop_vs_split_max_dv_mV"] = compare(one_out, jn_out)["max_dv_mV"]
        if not big and have_neuron:
            # NEURON simulates every section there is, so one model lives at a time: the
            # one built last (NEURON's default, rate tables) is the one timed in turns.
            r["neuron_exact_s"], _, nrn_out, _ = timed(lambda: W.neuron_run(name, tables=False), 0 if gpu_pop else repeats)
            r["neuron_s"], _, nrn_table_out, turns["neuron"] = timed(lambda: W.neuron_run(name, tables=True), repeats)
        else:
            r["neuron_s"] = r["neuron_exact_s"] = None
        r["jaxley_s"] = r["jaxley_compile_s"] = None
        if have_jaxley and (not big or not on_cpu):
            try:
                r["jaxley_s"], r["jaxley_compile_s"], jx_out, turns["jaxley"] = timed(lambda: W.jaxley_run(name), repeats)
            except Exception as e:  # e.g. out of memory for Jaxley's full traces at 1M neurons
                if not big:
                    raise
                r["jaxley_error"] = f"{type(e).__name__}: {str(e)[:500]}"
        if repeats > 1 and len(turns) > 1:
            # The headline times again, the simulators in turns (in_turns); each one's
            # median timed on its own stays in the JSON.
            r["timed_alone_s"] = {sim: r[f"{sim}_s"] for sim in turns}
            r.update({f"{sim}_s": s for sim, s in in_turns(turns).items()})
            r["timed_in_turns"] = TURNS

        if name in ("tree1k", "grad_tree1k"):
            # The cell's axial coupling solved path by path (StaggeredEuler(tree_solve="paths")).
            r["jaxneuro_paths_s"], r["jaxneuro_paths_compile_s"], paths_out, _ = timed(
                lambda: W.jaxneuro_run(name, tree_solve="paths"), repeats)
            if name == "grad_tree1k":
                r["paths_vs_hines_rel_diff"] = rel_diff(paths_out, jn_out)
            else:
                r["paths_vs_hines_max_dv_mV"] = compare(paths_out, jn_out)["max_dv_mV"]
            add_speedups(r, "jaxneuro_paths_s", "paths_speedup_vs_", ("neuron", "jaxley"))
        if name == "grad_tree1k":
            fwd = results.get("tree1k", {}).get("jaxneuro_s")
            fwd_paths = results.get("tree1k", {}).get("jaxneuro_paths_s")
            if fwd_paths:
                r["paths_grad_over_forward"] = r["jaxneuro_paths_s"] / fwd_paths
            r["jaxneuro_forward_s"] = fwd
            r["grad_over_forward"] = r["jaxneuro_s"] / fwd if fwd else None
            if r["jaxley_s"] is not None and results.get("tree1k", {}).get("jaxley_s"):
                r["jaxley_grad_over_forward"] = r["jaxley_s"] / results["tree1k"]["jaxley_s"]
            fd = W.neuron_fd_gradient(component=0) if have_neuron else float("nan")
            r["grad_branch0"] = {"jaxneuro": float(jn_out[0]), "neuron_fd": float(fd),
                                 "jaxneuro_fd": float(W.jaxneuro_fd_gradient(component=0)),
                                 "jaxley": float(jx_out[0]) if r["jaxley_s"] is not None else None}
            r["grad_jaxneuro"] = [float(x) for x in jn_out]
            # Trading memory for time: every step's state kept (simulate(grad_checkpoints="steps")).
            r["jaxneuro_checkpoint_steps_s"], _, steps_out, _ = timed(
                lambda: W.jaxneuro_run(name, grad_checkpoints="steps"), repeats)
            r["checkpoint_steps_grad_rel_diff"] = rel_diff(steps_out, jn_out)
            if fwd:
                r["checkpoint_steps_grad_over_forward"] = r["jaxneuro_checkpoint_steps_s"] / fwd
            if r["jaxley_s"] is not None:
                r["grad_jaxley"] = [float(x) for x in jx_out]
                r["grad_jaxley_vs_jaxneuro_rel_err"] = rel_diff(jx_out, jn_out)
        elif gpu_pop:
            if not big and have_neuron:
                r["vs_neuron_spike_count_mismatch"] = int(np.sum(jn_out[0] != nrn_out[0]))
            if r["jaxley_s"] is not None:
                r["vs_jaxley_spike_count_mismatch"] = int(np.sum(jn_out[0] != jx_out[0]))
            r["spikes"] = int(np.sum(jn_out[0]))
        elif have_neuron:
            r["vs_neuron"] = compare(jn_out, nrn_out)
            if r["jaxley_s"] is not None:
                r["jaxley_vs_neuron"] = compare(jx_out, nrn_out)
                r["vs_jaxley"] = compare(jn_out, jx_out)

        # float32 against float64 (jaxneuro), on the same workload.
        if not big:
            other = not x64
            s_other, out_other = subprocess_run("jaxneuro", name, other, repeats, backend=backend)
            r["jaxneuro_f64_s" if other else "jaxneuro_f32_s"] = s_other
            if name == "grad_tree1k":
                r["f32_vs_f64_grad_rel_err"] = rel_diff(out_other, jn_out)
            elif gpu_pop:
                r["f32_vs_f64_spike_count_mismatch"] = int(np.sum(out_other[0] != jn_out[0]))
            else:
                r["f32_vs_f64"] = compare(out_other, jn_out)

        # jaxneuro and Jaxley again with XLA's default loop limit (loops kernel by
        # kernel) and vector width: what jaxneuro's settings are worth, and Jaxley as it
        # runs on its own.
        if not big and on_cpu:
            r["jaxneuro_xla_default_loops_s"], _ = subprocess_run("jaxneuro", name, x64, repeats, XLA_DEFAULT_LOOP_LIMIT)
            if r["jaxley_s"] is not None:
                r["jaxley_xla_default_loops_s"], _ = subprocess_run("jaxley", name, x64, repeats, XLA_DEFAULT_LOOP_LIMIT)
        # NEURON's rate table in jaxneuro (HH(use_table=True)) against NEURON with tables.
        if name in ("hh1", "pop1k") and have_neuron:
            r["jaxneuro_table_s"], _, table_out, _ = timed(lambda: W.jaxneuro_run(name, use_table=True), repeats)
            r["table_vs_neuron_table"] = compare(table_out, nrn_table_out)

        add_speedups(r, "jaxneuro_s", "speedup_vs_", ("neuron", "jaxley", "jaxley_xla_default_loops"))
        results[name] = r
        print(json.dumps(r, default=float), flush=True)

    print()
    print(table(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": info, "workloads": results}, f, indent=1, default=float)
    check_results(results, x64).finish()  # exits with status 1 on a wrong answer
    return results


def _f(x, fmt="{:.3g}"):
    return "n/a" if x is None else fmt.format(x)


def _counts(cmp):
    """Neurons whose spike counts differ, and jaxneuro's spikes: "0 (79)"."""
    return "n/a" if not cmp else f"{cmp['spike_count_mismatch']} ({cmp['spikes']})"


def table(results):
    head = ("| workload | steps | comps | jaxneuro s | compile s | NEURON s | Jaxley s | Jaxley compile s "
            "| × NEURON | × Jaxley | × Jaxley, XLA defaults | max abs ΔV vs NEURON (mV) | spike Δt vs NEURON (ms) | Jaxley ΔV vs NEURON (mV) "
            "| spike counts differing vs NEURON (spikes) | f32 vs f64 ΔV (mV) |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for name, r in results.items():
        vs = r.get("vs_neuron") or {}
        jv = r.get("jaxley_vs_neuron") or {}
        f32 = r.get("f32_vs_f64") or {}
        lines.append(
            f"| {name} | {r['steps']} | {r['compartments']} | {_f(r['jaxneuro_s'])} | {_f(r['jaxneuro_compile_s'])} "
            f"| {_f(r.get('neuron_s'))} | {_f(r.get('jaxley_s'))} | {_f(r.get('jaxley_compile_s'))} "
            f"| {_f(r.get('speedup_vs_neuron'), '{:.2f}')} | {_f(r.get('speedup_vs_jaxley'), '{:.2f}')} "
            f"| {_f(r.get('speedup_vs_jaxley_xla_default_loops'), '{:.2f}')} "
            f"| {_f(vs.get('max_dv_mV'))} | {_f(vs.get('max_spike_dt_ms'))} | {_f(jv.get('max_dv_mV'))} "
            f"| {_counts(vs)} | {_f(f32.get('max_dv_mV'))} |"
        )
    extra = []
    if "grad_tree1k" in results:
        g = results["grad_tree1k"]
        extra.append(
            f"grad_tree1k: gradient/forward = {_f(g.get('grad_over_forward'), '{:.2f}')} (jaxneuro), "
            f"{_f(g.get('jaxley_grad_over_forward'), '{:.2f}')} (Jaxley); d loss/d gnabar[0]: jaxneuro "
            f"{g['grad_branch0']['jaxneuro']:.6g} (its own finite difference {g['grad_branch0']['jaxneuro_fd']:.6g}), NEURON finite difference {g['grad_branch0']['neuron_fd']:.6g}, "
            f"Jaxley {_f(g['grad_branch0']['jaxley'], '{:.6g}')} (all branches: relative difference "
            f"{_f(g.get('grad_jaxley_vs_jaxneuro_rel_err'))}); f32 vs f64 relative error "
            f"{_f(g.get('f32_vs_f64_grad_rel_err'))}; with grad_checkpoints=\"steps\": "
            f"{_f(g.get('jaxneuro_checkpoint_steps_s'))} s = {_f(g.get('checkpoint_steps_grad_over_forward'), '{:.2f}')} x forward"
        )
    for name in ("tree1k", "grad_tree1k"):
        if "jaxneuro_paths_s" in results.get(name, {}):
            r = results[name]
            extra.append(
                f"{name} with tree_solve=\"paths\": {_f(r['jaxneuro_paths_s'])} s (compile {_f(r['jaxneuro_paths_compile_s'])} s), "
                f"x NEURON {_f(r.get('paths_speedup_vs_neuron'), '{:.2f}')}, x Jaxley {_f(r.get('paths_speedup_vs_jaxley'), '{:.2f}')}, "
                + (f"gradient's relative difference to the Hines order {_f(r.get('paths_vs_hines_rel_diff'))}"
                   if name == "grad_tree1k" else f"max |ΔV| to the Hines order {_f(r.get('paths_vs_hines_max_dv_mV'))} mV")
                + (f"; gradient/forward {_f(r.get('paths_grad_over_forward'), '{:.2f}')}" if name == "grad_tree1k" else "")
            )
    for name, r in results.items():
        if "jaxneuro_one_loop_s" in r:
            extra.append(
                f"{name}: jaxneuro split over the cores ({r['jaxneuro_backend']}) {_f(r['jaxneuro_s'])} s, as one "
                f"loop {_f(r['jaxneuro_one_loop_s'])} s (max |ΔV| between them {_f(r.get('one_loop_vs_split_max_dv_mV'))} mV)"
            )
        if "compartment_steps_per_s" in r:
            extra.append(
                f"{name} ({r['backend']}): {r['compartment_steps_per_s']:.3g} compartment-steps/s; XLA loop "
                f"{_f(r.get('jaxneuro_xla_s'))} s (fused/XLA spike counts differing: {r.get('pallas_vs_xla_count_mismatch')}, "
                f"max spike Δt {_f(r.get('pallas_vs_xla_max_spike_dt_ms'))} ms); spike counts differing from "
                f"Jaxley {_f(r.get('vs_jaxley_spike_count_mismatch'), '{}')}, NEURON {_f(r.get('vs_neuron_spike_count_mismatch'), '{}')}, "
                f"float64 {_f(r.get('f32_vs_f64_spike_count_mismatch'), '{}')}"
                + (f"; Jaxley: {r['jaxley_error'][:120]}" if "jaxley_error" in r else "")
            )
    return "\n".join(lines + [""] + extra)


if __name__ == "__main__":
    main()
