"""A recurrent network of HH neurons with spike-triggered synapses: jaxneuro against NEURON.

    python benchmarks/syn_network.py [--n 400] [--k 20] [--t1 100] [--capacity 64] [--populations 1]
                                     [--within] [--quick] [--json PATH]

``n`` single-compartment HH neurons (NEURON's ``hh`` at 6.3 °C, L = diam = 20 µm), each
receiving excitatory synapses from ``k`` others drawn at random (no self-connections):
an ``ExpSyn`` (tau 2 ms, e 0 mV) behind a ``NetCon`` on the presynaptic voltage
(threshold 0 mV, delay 1.5 ms, weight 0.002 µS) in NEURON; in jaxneuro the population
wrapped in ``jn.SpikeDetector`` (threshold 0 mV, ``timing="neuron"``: a spike at the end
of the step in which the voltage crossed, as NEURON's ``NetCon`` times it) and one
``jn.ExpSynapse`` with ``delivery="neuron"`` (NEURON's event delivery). A step current from 5 ms drives each
neuron with its own amplitude (0.05-0.25 nA, so some fire on their own and the rest
through the synapses). dt = 0.025 ms, everything from -65 mV, voltages saved every
0.25 ms. Both simulators run in the same process, after a warm-up; the voltages and
spike counts are compared, so a fast wrong answer is caught (NEURON with exact rates,
``usetable_hh = 0``, as jaxneuro computes them).

``--populations P``: the same neurons and connections as ``P`` populations (the
neurons cut into ``P`` consecutive blocks) joined by up to ``P²`` projections, one
``ExpSynapse`` per pair of populations, as a network model with many projections is
written. jaxneuro runs the projections from each population as one
(``Network(group_synapses=True)``, the default) and, in the same run, each alone
(``group_synapses=False``): compile times and run times of both, and NEURON's. NEURON's
model is the same whatever ``P``. In the same run, jaxneuro also runs the same neurons and
connections as one population with one synapse (``one_population_s``): what writing the
network as ``P`` populations costs; and as one population whose ``P`` parts (index
ranges) are joined by the same projections, sides ``("hh", indices)`` (``parts_s``):
how to write such a network (each projection keeps kernel states for its part's
neurons). ``--within``: each neuron's ``k`` partners are drawn
from its own population (NEURON's model too), so the ``P`` populations are joined by ``P``
projections (one per population, reading ``n/P`` presynaptic neurons each) where all pairs
have ``P²`` (each projection keeps a kernel state per presynaptic neuron: ``P·n`` of them):
with the one-population run this separates the cost of populations from that of
projections.

Jaxley is not in this comparison: its synapses are graded (conductance a function of the
presynaptic voltage, ``IonotropicSynapse``), with no spike events or delays, so it has no
model to run that is this one.

Prints the times, their ratio, jaxneuro's compile time, the spike buffer's ``capacity``
(slots per neuron; the synapses' work per step does not grow with it), the spike counts
and times against NEURON's, and the largest voltage difference. ``--interpolated``: the
detector's default timing instead (the interpolated crossing, up to a step earlier than
NEURON's, which a recurrent network amplifies). ``--quick``: 100 neurons, 50 ms.
Without NEURON, jaxneuro's run alone. After the summary and JSON, a run whose answers
differ from NEURON's beyond the tolerances below exits with status 1
(benchmarks/checks.py).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import checks  # noqa: E402
import workloads as W  # noqa: E402

DT, SAVE, V0 = 0.025, 0.25, -65.0

# Tolerances against NEURON (check_result); beyond any, the run exits with status 1.
# float64: the same spikes at the same times to 1e-11 ms, voltages to 5e-8 mV over
# 100 ms of recurrent excitation (results_cpu_syn_network.json, RESULTS.md); the
# margins still catch a spike a step off (0.025 ms, tens of mV).
F64_DV_MV, F64_SPIKE_DT_MS = 1e-5, 1e-6
# float32: the same spike counts, times within one step, voltages within 3.2 mV on
# upswings (RESULTS.md): a crossing may land a step later.
F32_DV_MV, F32_SPIKE_DT_MS = 10.0, 2.5 * DT
# --interpolated: spikes up to a step earlier than NEURON's, which the network amplifies
# (8 of 400 neurons' counts differ, times up to 0.69 ms, so voltages by a spike's
# height): only the counts are checked, loosely.
INTERPOLATED_COUNT_FRACTION = 0.1
TAU, E_SYN, DELAY, WEIGHT, THRESHOLD = 2.0, 0.0, 1.5, 0.002, 0.0
STIM_DELAY = 5.0


def connections(n: int, k: int, seed: int = 0, which=None):
    """``(pre, post)``: ``k`` distinct presynaptic partners per neuron, none itself;
    with ``which`` (each neuron's population, :func:`blocks`), partners from the
    neuron's own population only."""
    rng = np.random.default_rng(seed)
    pre, post = [], []
    for j in range(n):
        pool = np.arange(n) if which is None else np.flatnonzero(which == which[j])
        others = pool[pool != j]
        pre.extend(rng.choice(others, size=k, replace=False))
        post.extend([j] * k)
    return np.asarray(pre), np.asarray(post)


def drive(n: int):
    return np.linspace(0.05, 0.25, n)


def blocks(n: int, populations: int):
    """Each neuron's population (0 to ``populations - 1``, consecutive blocks) and its
    index within it."""
    which = np.concatenate([np.full(len(b), p) for p, b in enumerate(np.array_split(np.arange(n), populations))])
    first = np.searchsorted(which, np.arange(populations))
    return which, np.arange(n) - first[which]


def jaxneuro_run(n, pre, post, t1, capacity, timing="neuron", populations=1, group_synapses=True, parts=False):
    """jaxneuro's network of ``n`` neurons and the connections ``pre -> post`` as
    ``populations`` populations (``parts``: as one population whose ``populations``
    parts are joined by projections from part to part, sides ``("hh", indices)``):
    median run time (s), compile time (s), voltages, each neuron's spike times, and the
    number of projections."""
    import jax
    import jax.numpy as jnp

    import jaxneuro as jn

    which, local = blocks(n, populations)
    names = ["hh"] if populations == 1 or parts else [f"hh{p}" for p in range(populations)]

    def side(p):  # population p, or part p of the one population
        return ("hh", np.flatnonzero(which == p).tolist()) if parts else names[p]

    def build():
        pops, syns = {}, []
        for p, name in enumerate(names):
            size = n if parts else int(np.sum(which == p))
            cells = jn.Compartment(length=20.0, diam=20.0, channels=[jn.channels.HH()], n=size)
            pops[name] = jn.SpikeDetector(cells, threshold=THRESHOLD, capacity=capacity, timing=timing)
        for a in range(populations):
            for b in range(populations):
                mask = (which[pre] == a) & (which[post] == b)
                if mask.any():
                    syns.append(jn.ExpSynapse(side(a), side(b), jn.conn.explicit(local[pre[mask]], local[post[mask]]),
                                              WEIGHT, TAU, E_SYN, DELAY, delivery="neuron",
                                              name="syn" if populations == 1 else f"syn{a}_{b}"))
        return jn.Network(pops, syns, group_synapses=group_synapses)

    amps = drive(n)
    stim = ([jn.StepCurrent(jnp.asarray(amps), STIM_DELAY, np.inf, target="hh")] if parts else
            [jn.StepCurrent(jnp.asarray(amps[which == p]), STIM_DELAY, np.inf, target=name)
             for p, name in enumerate(names)])

    def run(net):
        tr = jn.simulate(net, t1, dt=DT, v0=V0, stimuli=stim, save_every=SAVE)
        return (jnp.concatenate([tr[name].v for name in names], axis=-1),
                jnp.concatenate([tr[name].spikes for name in names], axis=0))

    jitted = jax.jit(run)
    start = time.perf_counter()
    compiled = jitted.lower(build()).compile()
    compile_s = time.perf_counter() - start
    net = build()
    out = jax.block_until_ready(compiled(net))
    times = []
    for _ in range(5):
        start = time.perf_counter()
        out = jax.block_until_ready(compiled(net))
        times.append(time.perf_counter() - start)
    v, spikes = (np.asarray(x) for x in out)
    return float(np.median(times)), compile_s, v, [row[np.isfinite(row)] for row in spikes], len(build().couplings)


def neuron_run(n, pre, post, t1):
    from neuron import h

    h.load_file("stdrun.hoc")
    secs, syns, netcons, stims, recs = [], [], [], [], []
    for j, amp in enumerate(drive(n)):
        sec = h.Section(name=f"cell{j}")
        sec.L = sec.diam = 20.0
        sec.insert("hh")
        syn = h.ExpSyn(sec(0.5))
        syn.tau, syn.e = TAU, E_SYN
        stim = h.IClamp(sec(0.5))
        stim.delay, stim.dur, stim.amp = STIM_DELAY, 1e9, amp
        rec = h.Vector().record(sec(0.5)._ref_v, SAVE)
        secs.append(sec)
        syns.append(syn)
        stims.append(stim)
        recs.append(rec)
    for p, q in zip(pre, post):
        nc = h.NetCon(secs[p](0.5)._ref_v, syns[q], sec=secs[p])
        nc.threshold, nc.delay, nc.weight[0] = THRESHOLD, DELAY, WEIGHT
        netcons.append(nc)
    counters = []
    for sec in secs:
        nc = h.NetCon(sec(0.5)._ref_v, None, sec=sec)
        nc.threshold = THRESHOLD
        counter = h.Vector()
        nc.record(counter)
        counters.append((nc, counter))
    seconds = W.neuron_timed(h, t1, V0, dt=DT)
    v = np.stack([np.asarray(r) for r in recs], axis=-1)
    return seconds, v, [np.asarray(c) for _, c in counters]


def compare_spikes(spikes_j, spikes_n) -> dict:
    """Spike counts and times of jaxneuro (``spikes_j``) against NEURON's, per neuron:
    ``spikes`` (NEURON's total), ``spike_count_mismatch`` (neurons whose counts differ)
    and ``max_spike_dt_ms`` over the neurons with equal counts (None when no spike
    could be paired)."""
    counts_j = np.asarray([len(x) for x in spikes_j])
    counts_n = np.asarray([len(x) for x in spikes_n])
    same = counts_j == counts_n
    dts = [float(np.max(np.abs(a - b))) for a, b, ok in zip(spikes_j, spikes_n, same) if ok and len(a)]
    return {"spikes": int(counts_n.sum()), "spike_count_mismatch": int(np.sum(~same)),
            "max_spike_dt_ms": max(dts) if dts else None}


def check_result(result: dict) -> checks.Checks:
    """The comparisons in ``result`` (as :func:`main` builds it) against the tolerances
    above for its precision and detector timing (with ``--populations``, jaxneuro's
    grouped projections against each alone too); nothing else without NEURON."""
    c = checks.Checks()
    what = f"{result['n']} HH neurons"
    if result.get("alone_max_dv_mV") is not None:  # grouped projections against each alone
        f64 = result["machine"]["precision"] == "float64"
        c.counts_equal(what, "spike counts, projections grouped vs alone", result["alone_spike_count_mismatch"],
                       of=result["n"])
        c.within(what, "max |ΔV|, projections grouped vs alone", result["alone_max_dv_mV"],
                 F64_DV_MV if f64 else F32_DV_MV, "mV")
        c.counts_equal(what, "spike counts, populations vs one population", result["one_population_spike_count_mismatch"],
                       of=result["n"])
        c.within(what, "max |ΔV|, populations vs one population", result["one_population_max_dv_mV"],
                 F64_DV_MV if f64 else F32_DV_MV, "mV")
        c.counts_equal(what, "spike counts, populations vs parts of one", result["parts_spike_count_mismatch"],
                       of=result["n"])
        c.within(what, "max |ΔV|, populations vs parts of one", result["parts_max_dv_mV"],
                 F64_DV_MV if f64 else F32_DV_MV, "mV")
    if result.get("neuron_s") is None:
        return c
    if result["detector_timing"] == "interpolated":
        c.counts_equal(what, "spike counts vs NEURON (interpolated timing)", result["spike_count_mismatch"],
                       int(INTERPOLATED_COUNT_FRACTION * result["n"]), of=result["n"])
        return c
    f64 = result["machine"]["precision"] == "float64"
    c.counts_equal(what, "spike counts vs NEURON", result["spike_count_mismatch"], of=result["n"])
    c.within(what, "spike-time difference vs NEURON", result["max_spike_dt_ms"],
             F64_SPIKE_DT_MS if f64 else F32_SPIKE_DT_MS, "ms")
    c.within(what, "max |ΔV| vs NEURON", result["max_dv_mV"], F64_DV_MV if f64 else F32_DV_MV, "mV")
    return c


def summary(result: dict) -> str:
    """The spike and voltage comparison as one line."""
    if result.get("neuron_s") is None:
        return f"spikes {result['jaxneuro_spikes']} (NEURON not in the run: nothing compared)"
    dt = result["max_spike_dt_ms"]
    times = "no spike times to compare" if dt is None else f"spike times within {dt:.3g} ms of NEURON's"
    return (f"spikes {result['spikes']} (NEURON), {result['jaxneuro_spikes']} (jaxneuro); neurons whose counts "
            f"differ: {result['spike_count_mismatch']}; {times}; max |dV| {result['max_dv_mV']:.3g} mV")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=400, help="neurons")
    ap.add_argument("--k", type=int, default=20, help="synapses onto each neuron")
    ap.add_argument("--t1", type=float, default=100.0, help="ms")
    ap.add_argument("--capacity", type=int, default=64, help="spike buffer slots per neuron")
    ap.add_argument("--populations", type=int, default=1,
                    help="the neurons as this many populations, a projection per pair (jaxneuro also run with "
                         "each projection alone)")
    ap.add_argument("--within", action="store_true",
                    help="each neuron's partners from its own population only (P projections, not P²)")
    ap.add_argument("--quick", action="store_true", help="100 neurons, 50 ms")
    ap.add_argument("--interpolated", action="store_true", help="the detector's interpolated spike times")
    ap.add_argument("--f32", action="store_true", help="jaxneuro in float32 (default float64)")
    ap.add_argument("--json", default=None, help="write the results to this JSON file")
    args = ap.parse_args(argv)
    if args.quick:
        args.n, args.t1 = 100, 50.0
    if not 1 <= args.k < args.n:
        ap.error(f"--k expects 1 <= k < n (synapses onto each neuron from others), got k={args.k}, n={args.n}")
    if not args.t1 > 0:
        ap.error(f"--t1 expects a positive duration in ms, got {args.t1}")
    if args.capacity < 1:
        ap.error(f"--capacity expects a positive number of spike slots per neuron, got {args.capacity}")
    if not 1 <= args.populations <= args.n:
        ap.error(f"--populations expects 1 to n (neurons per population at least 1), got {args.populations}, "
                 f"n={args.n}")
    smallest = args.n // args.populations  # np.array_split's smallest block
    if args.within and not args.k < smallest:
        ap.error(f"--within expects k below the smallest population's size (partners from a neuron's own "
                 f"population), got k={args.k} with {smallest} neurons in the smallest of {args.populations}")
    checks.check_output_path(ap, args.json)
    have_neuron = checks.neuron_available()
    if not have_neuron:
        print(checks.missing_note(["NEURON"], "jaxneuro's run alone, with nothing to compare it to"), flush=True)
    import jax

    jax.config.update("jax_enable_x64", not args.f32)
    import jaxneuro  # noqa: F401  (its XLA settings, before the first computation)

    timing = "interpolated" if args.interpolated else "neuron"
    # NEURON first: timed right after jaxneuro's runs in the same process, its times
    # varied more between runs.
    pre, post = connections(args.n, args.k, which=blocks(args.n, args.populations)[0] if args.within else None)
    if have_neuron:
        nrn_s, v_n, spikes_n = neuron_run(args.n, pre, post, args.t1)
    jn_s, compile_s, v_j, spikes_j, projections = jaxneuro_run(args.n, pre, post, args.t1, args.capacity, timing,
                                                               args.populations)
    alone = {}
    if args.populations > 1:  # the same model with each projection alone, and as one population
        alone_s, alone_compile_s, v_a, spikes_a, _ = jaxneuro_run(args.n, pre, post, args.t1, args.capacity, timing,
                                                                  args.populations, group_synapses=False)
        one_s, one_compile_s, v_1, spikes_1, _ = jaxneuro_run(args.n, pre, post, args.t1, args.capacity, timing, 1)
        parts_s, parts_compile_s, v_p, spikes_p, _ = jaxneuro_run(args.n, pre, post, args.t1, args.capacity, timing,
                                                                  args.populations, parts=True)
        alone = {"jaxneuro_alone_s": alone_s, "jaxneuro_alone_compile_s": alone_compile_s,
                 "alone_max_dv_mV": float(np.max(np.abs(v_a - v_j))),
                 "alone_spike_count_mismatch": compare_spikes(spikes_a, spikes_j)["spike_count_mismatch"],
                 "one_population_s": one_s, "one_population_compile_s": one_compile_s,
                 "one_population_max_dv_mV": float(np.max(np.abs(v_1 - v_j))),
                 "one_population_spike_count_mismatch": compare_spikes(spikes_1, spikes_j)["spike_count_mismatch"],
                 "parts_s": parts_s, "parts_compile_s": parts_compile_s,
                 "parts_max_dv_mV": float(np.max(np.abs(v_p - v_j))),
                 "parts_spike_count_mismatch": compare_spikes(spikes_p, spikes_j)["spike_count_mismatch"]}
    if have_neuron:
        rows = min(len(v_j), len(v_n))
        compared = {**compare_spikes(spikes_j, spikes_n), "max_dv_mV": float(np.max(np.abs(v_j[:rows] - v_n[:rows])))}
    else:
        nrn_s = None
        compared = dict.fromkeys(("spikes", "spike_count_mismatch", "max_spike_dt_ms", "max_dv_mV"))
    from run import machine

    result = {
        "machine": {**machine(), "precision": "float32" if args.f32 else "float64"},
        "n": args.n, "k": args.k, "t1_ms": args.t1, "capacity": args.capacity, "steps": int(round(args.t1 / DT)),
        "populations": args.populations, "projections": projections, "within": args.within,
        "detector_timing": timing,
        "jaxneuro_s": jn_s, "jaxneuro_compile_s": compile_s, "neuron_s": nrn_s,
        "speedup_vs_neuron": nrn_s / jn_s if nrn_s else None,
        **compared, "jaxneuro_spikes": int(sum(len(x) for x in spikes_j)), **alone,
    }
    print(f"{args.n} HH neurons x {args.k} synapses each, {args.t1:g} ms at dt {DT} "
          f"({result['machine']['precision']}, {args.capacity} spike slots per neuron)")
    print(f"jaxneuro {jn_s:.4f} s (compile {compile_s:.2f} s)"
          + (f", NEURON {nrn_s:.4f} s: x NEURON {nrn_s / jn_s:.2f}" if nrn_s else ""))
    if alone:
        print(f"{args.populations} populations, {projections} projections; each projection alone: jaxneuro "
              f"{alone['jaxneuro_alone_s']:.4f} s (compile {alone['jaxneuro_alone_compile_s']:.2f} s): grouped "
              f"x{alone['jaxneuro_alone_s'] / jn_s:.2f} run, x{alone['jaxneuro_alone_compile_s'] / compile_s:.2f} "
              f"compile; max |dV| grouped vs alone {alone['alone_max_dv_mV']:.3g} mV")
        print(f"the same as one population and one synapse: jaxneuro {alone['one_population_s']:.4f} s (compile "
              f"{alone['one_population_compile_s']:.2f} s): {args.populations} populations x"
              f"{jn_s / alone['one_population_s']:.2f} run, x{compile_s / alone['one_population_compile_s']:.2f} "
              f"compile; max |dV| {alone['one_population_max_dv_mV']:.3g} mV")
        print(f"one population, its {args.populations} parts joined by the same {projections} projections: jaxneuro "
              f"{alone['parts_s']:.4f} s (compile {alone['parts_compile_s']:.2f} s): {args.populations} populations "
              f"x{jn_s / alone['parts_s']:.2f} run, x{compile_s / alone['parts_compile_s']:.2f} compile; max |dV| "
              f"{alone['parts_max_dv_mV']:.3g} mV")
    print(summary(result))
    checks.write_and_finish(result, args.json, check_result(result))  # exits with status 1 on a wrong answer
    return result


if __name__ == "__main__":
    main()
