"""A gap-junction network of HH compartments: jaxneuro against NEURON, same run.

    python benchmarks/gap_neuron.py [--n 400] [--t1 50] [--quick] [--json PATH]

``n`` single-compartment HH neurons (NEURON's ``hh`` at 6.3 °C, exact rates, L = diam =
20 µm, gnabar drawn from 0.08-0.16 S/cm²) on a ring of symmetric gap junctions (0.002
µS) with ``2n`` random asymmetric ones (0.0005-0.004 µS each way); every fifth neuron
driven by 0.25 nA from 2 ms, the rest fire through the junctions. jaxneuro solves the
junctions implicitly with the membrane (its default solver: a dense solve up to 96
compartments with asymmetric junctions, GMRES above; from 33 to 96 neurons it is also
timed with GMRES, what the direct solve is worth there); NEURON's side is its built-in ``LinearMechanism``, the
junctions' conductance matrix added to the current balance and solved with it (NEURON's
general sparse solver, which a LinearMechanism switches on). Timed in the same process:
jaxneuro's first call (compiling) and the median of five later calls, NEURON's median
of three after a warm-up; the voltages are compared every 0.25 ms, and a run whose
voltages differ beyond the tolerance below exits with status 1 after printing its
results (benchmarks/checks.py). ``--quick``: 60 neurons, 20 ms.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import checks  # noqa: E402
import workloads as W  # noqa: E402

DT, SAVE, V0, DELAY, AMP = 0.025, 0.25, -65.0, 2.0, 0.25
G_RING = 0.002  # µS

# Tolerance (float64): 1e-10 to 1e-9 mV measured (tests/test_gap_junctions_neuron.py);
# a junction in the wrong direction moves voltages by mV.
NEURON_DV_MV = 1e-5
# jaxneuro's dense solve against its GMRES, same network: both to the iteration's
# tolerance (~5e-10 mV measured).
SOLVES_DV_MV = 1e-6


def network(n: int, seed: int = 3) -> dict:
    """The network's numbers: ``gnabar`` (S/cm²), ``amp`` (nA per neuron), the ring's
    and the asymmetric junctions' ``pre``/``post`` indices, ``g_asym`` ((m, 2) µS: into
    post, into pre) and ``into`` (n × n µS: ``into[i, j]`` drives current from ``j``
    into ``i``)."""
    rng = np.random.default_rng(seed)
    gnabar = rng.uniform(0.08, 0.16, n)
    amp = np.where(np.arange(n) % 5 == 0, AMP, 0.0)
    ring_pre, ring_post = np.arange(n), (np.arange(n) + 1) % n
    pre, post = rng.integers(0, n, 2 * n), rng.integers(0, n, 2 * n)
    pre, post = pre[pre != post], post[pre != post]
    g_asym = rng.uniform(0.0005, 0.004, (len(pre), 2))
    into = np.zeros((n, n))
    for i, j in zip(ring_pre, ring_post):
        into[i, j] += G_RING
        into[j, i] += G_RING
    for i, j, (g_fwd, g_back) in zip(pre, post, g_asym):
        into[j, i] += g_fwd
        into[i, j] += g_back
    return dict(gnabar=gnabar, amp=amp, ring=(ring_pre, ring_post), pre=pre, post=post, g_asym=g_asym, into=into)


@contextlib.contextmanager
def neuron_gap_network(h, sizes, gnabar, into, stimuli):
    """NEURON one-segment HH sections (L = diam = ``sizes`` µm, ``gnabar`` S/cm²) joined
    by ``into`` (µS; ``into[i, j]`` from ``j`` into ``i``) through a LinearMechanism, with
    ``stimuli`` (cell -> (amp nA, delay ms, dur ms)) as IClamps: the sections, for the
    ``with`` block; deleted after it, the mechanism first (it is not told when they go)."""
    n = len(sizes)
    secs = []
    for i in range(n):
        s = h.Section(name=f"gap_cell{i}")
        s.L = s.diam = sizes[i]
        s.insert("hh")
        s(0.5).hh.gnabar = gnabar[i]
        secs.append(s)
    # Each row is cell i's current balance, in mA/cm² of its own membrane (outward
    # positive): g (µS) · ΔV (mV) = nA, · 1e-6 / area (cm²) -> S/cm² · mV.
    area = np.array([s(0.5).area() * 1e-8 for s in secs])
    laplacian = np.diag(into.sum(axis=1)) - into
    g = h.Matrix(n, n)
    for r, c in zip(*np.nonzero(laplacian)):
        g.setval(int(r), int(c), laplacian[r, c] * 1e-6 / area[r])
    c, y, b = h.Matrix(n, n, 2), h.Vector(n), h.Vector(n)
    sl = h.SectionList()
    for s in secs:
        sl.append(sec=s)
    xvec = h.Vector([0.5] * n)
    mechanism = (h.LinearMechanism(c, g, y, b, sl, xvec), c, g, y, b, sl, xvec)  # (what it reads, kept)
    clamps = []
    for i, (amp, delay, dur) in stimuli.items():
        clamp = h.IClamp(secs[i](0.5))
        clamp.amp, clamp.delay, clamp.dur = amp, delay, dur
        clamps.append(clamp)
    try:
        yield secs
    finally:
        del mechanism, clamps
        for s in secs:
            h.delete_section(sec=s)


def stimuli_of(net: dict) -> dict:
    """``net``'s stimuli as :func:`neuron_gap_network` takes them."""
    return {int(i): (net["amp"][i], DELAY, 1e9) for i in np.nonzero(net["amp"])[0]}


@contextlib.contextmanager
def gmres_solve():
    """jaxneuro's asymmetric gap-junction solves by GMRES down to ``DENSE_MAX``
    compartments (as before ``DENSE_MAX_GMRES``), for what the direct solve of small
    networks is worth; each inside compiled afresh."""
    import jax

    from jaxneuro.network import implicit

    kept = implicit.DENSE_MAX_GMRES
    implicit.DENSE_MAX_GMRES = implicit.DENSE_MAX
    jax.clear_caches()
    try:
        yield
    finally:
        implicit.DENSE_MAX_GMRES = kept
        jax.clear_caches()


def jaxneuro_run(net: dict, t1: float):
    import jaxneuro as jn

    n = len(net["gnabar"])
    pop = jn.Compartment(length=20.0, diam=20.0, channels=[jn.channels.HH(gnabar=net["gnabar"])], n=n)
    model = jn.Network({"e": pop}, [
        jn.SymmetricGapJunction("e", "e", jn.conn.explicit(*net["ring"]), G_RING),
        jn.AsymmetricGapJunction("e", "e", jn.conn.explicit(net["pre"], net["post"]), net["g_asym"])])
    stim = jn.StepCurrent(net["amp"], DELAY, 1e9, target="e")

    def call():
        start = time.perf_counter()
        v = jn.simulate(model, t1, dt=DT, v0=V0, stimuli=[stim], save_every=SAVE)["e"].v
        v.block_until_ready()
        return time.perf_counter() - start, v

    return W.first_and_median(call)


def neuron_run(net: dict, t1: float):
    from neuron import h

    h.load_file("stdrun.hoc")
    n = len(net["gnabar"])
    with neuron_gap_network(h, [20.0] * n, net["gnabar"], net["into"], stimuli_of(net)) as secs:
        recs = [h.Vector().record(s(0.5)._ref_v, SAVE) for s in secs]
        seconds = W.neuron_timed(h, t1, V0, dt=DT)
        return seconds, np.stack([np.asarray(r) for r in recs], axis=-1)


def check_result(out: dict) -> checks.Checks:
    """The voltage comparison in ``out`` (as :func:`main` builds it) against the
    tolerance above; skipped when NEURON did not run."""
    c = checks.Checks()
    what = f"{out['n']} gap-coupled HH neurons"
    c.within(what, "max |ΔV| vs NEURON", out.get("vs_neuron_max_dv_mV"), NEURON_DV_MV, "mV")
    c.within(what, "max |ΔV| dense solve vs GMRES", out.get("dense_vs_gmres_max_dv_mV"), SOLVES_DV_MV, "mV")
    return c


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=400, help="neurons")
    ap.add_argument("--t1", type=float, default=50.0, help="ms")
    ap.add_argument("--quick", action="store_true", help="60 neurons, 20 ms")
    ap.add_argument("--json", default=None, help="write the results to this JSON file")
    args = ap.parse_args(argv)
    if args.quick:
        args.n, args.t1 = 60, 20.0
    if args.n < 2:
        ap.error(f"--n expects at least 2 neurons, got {args.n}")
    if not args.t1 > 0:
        ap.error(f"--t1 expects a positive duration (ms), got {args.t1}")
    checks.check_output_path(ap, args.json)

    import jax

    jax.config.update("jax_enable_x64", True)
    net = network(args.n)
    first, jn_s, v_jn = jaxneuro_run(net, args.t1)
    out = {"n": args.n, "junctions": int(args.n + len(net["pre"])), "t1_ms": args.t1,
           "jaxneuro_s": jn_s, "jaxneuro_first_call_s": first,
           "spiking_neurons": int(np.sum(np.any((v_jn[:-1] < 0) & (v_jn[1:] >= 0), axis=0)))}
    from jaxneuro.network import implicit

    if implicit.DENSE_MAX < args.n <= implicit.DENSE_MAX_GMRES:  # solved directly: against GMRES
        with gmres_solve():
            gmres_first, gmres_s, v_gmres = jaxneuro_run(net, args.t1)
        out.update(jaxneuro_gmres_s=gmres_s, jaxneuro_gmres_first_call_s=gmres_first,
                   dense_speedup_vs_gmres=gmres_s / jn_s,
                   dense_vs_gmres_max_dv_mV=float(np.max(np.abs(v_jn - v_gmres))))
    if not checks.neuron_available():
        print(checks.missing_note(["NEURON"], "jaxneuro alone"))
    else:
        neuron_s, v_neuron = neuron_run(net, args.t1)
        m = min(len(v_jn), len(v_neuron))  # (NEURON may stop a record short of t1)
        out.update(neuron_s=neuron_s, speedup_vs_neuron=neuron_s / jn_s,
                   vs_neuron_max_dv_mV=float(np.max(np.abs(v_jn[:m] - v_neuron[:m]))))
    checks.print_results(out)
    checks.write_and_finish(out, args.json, check_result(out))  # exits with status 1 on a wrong answer
    return out


if __name__ == "__main__":
    main()
