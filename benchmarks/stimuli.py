"""One stimulus per neuron against one stimulus for all: jaxneuro's two forms and NEURON.

    python benchmarks/stimuli.py [--n 1000] [--stimuli 400] [--t1 50] [--quick] [--json PATH]

``n`` single-compartment HH neurons (NEURON's ``hh`` at 6.3 °C, L = diam = 20 µm, exact
rates), the first ``stimuli`` of them each driven by a step current of its own amplitude
(0.1 + 0.001·i nA from 1 ms). jaxneuro runs it two ways: ``stimuli`` separate
``StepCurrent`` objects, one per neuron (NEURON's one IClamp per cell, ported as it is),
and one ``StepCurrent`` with an amplitude per targeted neuron (``target=`` their
indices). NEURON runs one IClamp per driven cell. Each is timed in the same process:
jaxneuro's first eager ``simulate`` call (compiling) and the median of later calls;
NEURON's run after a warm-up. The voltages of all three are compared, so a fast wrong
answer is caught: after the results and JSON, a run whose voltages differ beyond the
tolerances below exits with status 1 (benchmarks/checks.py). ``--quick``: 200 neurons,
80 stimuli, 20 ms.
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

DT, SAVE, V0, DELAY = 0.025, 0.25, -65.0, 1.0

# Tolerances (float64, check_result); beyond either, the run exits with status 1.
# The two forms of jaxneuro add the same currents: identical voltages so far (max |ΔV|
# 0), at most rounding if the order of additions changes.
FORMS_DV_MV = 1e-9
# jaxneuro against NEURON's IClamps: 3.6e-10 mV (results_cpu_stimuli.json); a wrong
# answer (a stimulus on the wrong neuron, a spike a step off) moves voltages by mV.
NEURON_DV_MV = 1e-5


def amplitudes(k: int) -> np.ndarray:
    return 0.1 + 0.001 * np.arange(k)


def jaxneuro_run(n, k, t1, separate: bool):
    import jax.numpy as jnp

    import jaxneuro as jn

    model = jn.Compartment(length=20.0, diam=20.0, channels=[jn.channels.HH()], n=n)
    amps = amplitudes(k)
    if separate:
        stimuli = [jn.StepCurrent(float(a), DELAY, 1e9, target=[i]) for i, a in enumerate(amps)]
    else:
        stimuli = [jn.StepCurrent(jnp.asarray(amps), DELAY, 1e9, target=list(range(k)))]

    def call():
        start = time.perf_counter()
        v = jn.simulate(model, t1, dt=DT, v0=V0, stimuli=stimuli, save_every=SAVE).v
        v.block_until_ready()
        return time.perf_counter() - start, v

    return W.first_and_median(call)


def neuron_run(n, k, t1):
    from neuron import h

    h.load_file("stdrun.hoc")
    secs, stims, recs = [], [], []
    amps = amplitudes(k)
    for j in range(n):
        sec = h.Section(name=f"cell{j}")
        sec.L = sec.diam = 20.0
        sec.insert("hh")
        if j < k:
            stim = h.IClamp(sec(0.5))
            stim.delay, stim.dur, stim.amp = DELAY, 1e9, amps[j]
            stims.append(stim)
        recs.append(h.Vector().record(sec(0.5)._ref_v, SAVE))
        secs.append(sec)
    seconds = W.neuron_timed(h, t1, V0, dt=DT)
    return seconds, np.stack([np.asarray(r) for r in recs], axis=-1)


def check_result(out: dict) -> checks.Checks:
    """The voltage comparisons in ``out`` (as :func:`main` builds it) against the
    tolerances above; NEURON's is skipped when it did not run."""
    c = checks.Checks()
    what = f"{out['n']} HH neurons, {out['stimuli']} stimuli"
    c.within(what, "max |ΔV| separate stimuli vs one", out["separate_vs_one_max_dv_mV"], FORMS_DV_MV, "mV")
    c.within(what, "max |ΔV| one stimulus vs NEURON", out.get("one_vs_neuron_max_dv_mV"), NEURON_DV_MV, "mV")
    return c


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000, help="neurons")
    ap.add_argument("--stimuli", type=int, default=400, help="driven neurons, one stimulus each")
    ap.add_argument("--t1", type=float, default=50.0, help="ms")
    ap.add_argument("--quick", action="store_true", help="200 neurons, 80 stimuli, 20 ms")
    ap.add_argument("--json", default=None, help="write the results to this JSON file")
    args = ap.parse_args(argv)
    if args.quick:
        args.n, args.stimuli, args.t1 = 200, 80, 20.0
    if not 1 <= args.stimuli <= args.n:
        ap.error(f"--stimuli expects 1 <= stimuli <= n, got stimuli={args.stimuli}, n={args.n}")
    if not args.t1 > 0:
        ap.error(f"--t1 expects a positive duration (ms), got {args.t1}")
    checks.check_output_path(ap, args.json)

    import jax

    jax.config.update("jax_enable_x64", True)
    n, k, t1 = args.n, args.stimuli, args.t1
    one_first, one_s, v_one = jaxneuro_run(n, k, t1, separate=False)
    many_first, many_s, v_many = jaxneuro_run(n, k, t1, separate=True)
    out = {
        "n": n, "stimuli": k, "t1_ms": t1,
        "one_stimulus_s": one_s, "one_stimulus_first_call_s": one_first,
        "separate_stimuli_s": many_s, "separate_stimuli_first_call_s": many_first,
        "separate_over_one": many_s / one_s,
        "separate_vs_one_max_dv_mV": float(np.max(np.abs(v_many - v_one))),
    }
    if not checks.neuron_available():
        print(checks.missing_note(["NEURON"], "jaxneuro's two forms only"))
    else:
        neuron_s, v_neuron = neuron_run(n, k, t1)
        out.update(neuron_s=neuron_s, neuron_over_one=neuron_s / one_s, neuron_over_separate=neuron_s / many_s,
                   # (over the samples both have: NEURON may stop a record short of t1)
                   one_vs_neuron_max_dv_mV=float(np.max(np.abs(v_one[:len(v_neuron)] - v_neuron[:len(v_one)]))))
    checks.print_results(out)
    checks.write_and_finish(out, args.json, check_result(out))  # exits with status 1 on a wrong answer
    return out


if __name__ == "__main__":
    main()
