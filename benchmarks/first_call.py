"""A notebook's first calls: analysis and channel curves compiled whole, against op by op.

    python benchmarks/first_call.py [--json PATH] [--repeats 3]

What a user waits for the first time a function meets a new shape: ``spike_times``,
``firing_rate``, ``isi`` and ``spike_count`` of a LIF population's trace, ``fi_curve``
(its time loop included), ``input_resistance`` and ``membrane_time_constant`` of a
trace, ``ou_current``, and a channel's curves (``INa_Ba2002().rates(v)``,
``gate_inf_tau(v, T)``, ``HH().steady_state(v, T)``). Each workload runs in fresh
processes (nothing compiled yet, as in a new notebook), once as jaxneuro runs it (each
function's arithmetic one compiled program) and once with those programs replaced by
the functions they compile (their ``__wrapped__``), so that the same arithmetic runs
operation by operation, each operation compiling a program of its own at a new shape
(how these functions ran before; ``fi_curve``'s time loop and the search for threshold
crossings stay compiled in both). The set-up (the simulation the analysis reads) is
done before the clock starts. Processes of
the two forms alternate, ``--repeats`` of each (medians); the programs each compiled
are counted, and their results must agree (to 1e-12, relative), so a fast wrong answer
is caught. XLA's optimisations are on, as for a user. No NEURON or Jaxley equivalent:
these are jaxneuro's own functions (NEURON has no compile step to wait for).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import checks  # noqa: E402
import numpy as np  # noqa: E402

WORKLOADS = ("spike analysis", "fi_curve", "step analysis", "ou_current", "channel curves")


def _setup(name):
    """(the first calls to time, a function of their result giving arrays to compare)."""
    import jax.numpy as jnp

    import jaxneuro as jn

    if name == "spike analysis":
        tr = jn.simulate(jn.LIF(C=jnp.linspace(0.1, 2.0, 50), n=50, spike_capacity=64), 200.0,
                         stimuli=[jn.StepCurrent(4.0, 1.0, 1e9)])
        return lambda: (jn.spike_times(tr, capacity=32), jn.firing_rate(tr, *tr.span), jn.firing_rate(tr, 20.0, 120.0),
                        jn.isi(tr), jn.spike_count(tr.spikes))
    if name == "fi_curve":
        return lambda: jn.fi_curve(jn.LIF(n=20), np.linspace(0.5, 3.0, 6), dur=200.0)
    if name == "step analysis":
        soma = jn.Compartment(length=20.0, diam=20.0, channels=[jn.channels.Leak(g=1e-4, e=-65.0)], n=20)
        stim = jn.StepCurrent(-0.01, 20.0, 60.0)
        tr = jn.simulate(soma, 100.0, stimuli=[stim])
        return lambda: (jn.input_resistance(tr, stim), jn.membrane_time_constant(tr, stim))
    if name == "ou_current":
        return lambda: jn.ou_current(0.1, 0.05, 5.0, 500.0, shape=(20,)).values
    if name == "channel curves":
        v = np.linspace(-100.0, 40.0, 281)
        return lambda: (jn.channels.INa_Ba2002().rates(v), jn.channels.INa_Ba2002().gate_inf_tau(v, 36.0),
                        jn.channels.HH().steady_state(v, 6.3))
    raise ValueError(name)


#: The compiled cores of the functions timed, by module.
CORES = {
    "jaxneuro.analysis": ("_resized", "_intervals", "_finite_count", "_rate_in_window", "_fi_rates",
                          "_step_resistance", "_time_to_63_percent"),
    "jaxneuro.stimuli.noise": ("_ou_values",),
}


def _uncompiled() -> None:
    """Each compiled core of :data:`CORES`, and each channel method compiled when called
    on values, replaced by the function it compiles: run op by op."""
    import importlib

    from jaxneuro.channels import base

    for module, names in CORES.items():
        mod = importlib.import_module(module)
        for core in names:
            setattr(mod, core, getattr(mod, core).__wrapped__)
    classes, seen = [base.AbstractChannel], set()
    while classes:
        cls = classes.pop()
        if cls in seen:
            continue
        seen.add(cls)
        classes.extend(cls.__subclasses__())
        for attr, method in list(vars(cls).items()):
            if getattr(method, "_jaxneuro_on_values", False):
                setattr(cls, attr, method.__wrapped__)


def child(name: str, op_by_op: bool) -> None:
    """One fresh process: set up ``name``, time its first calls, print JSON."""
    import logging

    import jax

    import jaxneuro  # noqa: F401  (its XLA settings)

    jax.config.update("jax_enable_x64", True)
    if op_by_op:
        _uncompiled()
    call = _setup(name)
    compiled = []

    class Count(logging.Handler):
        def emit(self, record):
            if "Finished XLA compilation" in record.getMessage():
                compiled.append(record.getMessage())

    log = logging.getLogger("jax")
    log.addHandler(Count())
    log.setLevel(logging.DEBUG)
    log.propagate = False
    jax.config.update("jax_log_compiles", True)
    start = time.perf_counter()
    out = jax.block_until_ready(call())
    seconds = time.perf_counter() - start
    values = [np.asarray(x, dtype=float).ravel().tolist() for x in jax.tree.leaves(out)]
    print(json.dumps({"seconds": seconds, "programs": len(compiled), "values": values}))


def _rel_diff(x, y) -> float:
    """Largest ``|x - y| / |y|`` where both are finite (0 where neither has a value)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    both = np.isfinite(x) & np.isfinite(y)
    if not both.any():
        return 0.0
    return float(np.max(np.abs(x[both] - y[both]) / np.maximum(np.abs(y[both]), 1e-300)))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", default=None, help="write the results to this JSON file")
    ap.add_argument("--repeats", type=int, default=3, help="fresh processes of each form per workload")
    ap.add_argument("--only", default=None, choices=WORKLOADS, help="one workload")
    ap.add_argument("--child", nargs=2, metavar=("WORKLOAD", "FORM"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args.child[0], args.child[1] == "op-by-op")
        return
    checks.check_output_path(ap, args.json)
    if args.repeats < 1:
        ap.error(f"--repeats expects a positive number, got {args.repeats}")
    ok = checks.Checks()
    result = {"repeats": args.repeats, "workloads": {}}
    print(f"{'workload':16} {'compiled s':>10} {'programs':>8} {'op by op s':>10} {'programs':>8} {'ratio':>6}")
    for name in (args.only,) if args.only else WORKLOADS:
        runs = {"compiled": [], "op-by-op": []}
        for _ in range(args.repeats):  # in turns: a busy moment slows both alike
            for form in runs:
                runs[form].append(checks.child_json(
                    [sys.executable, os.path.abspath(__file__), "--child", name, form], f"{name} ({form})"))
        r = {}
        for form, outs in runs.items():
            key = form.replace("-", "_")
            r[f"{key}_s"] = statistics.median(o["seconds"] for o in outs)
            r[f"{key}_programs"] = outs[0]["programs"]
        r["ratio"] = r["op_by_op_s"] / r["compiled_s"]
        a, b = runs["compiled"][0]["values"], runs["op-by-op"][0]["values"]
        ok.true(name, "the same number of results", len(a) == len(b), f"{len(b)} arrays")
        same_pattern = all(np.array_equal(np.isfinite(x), np.isfinite(y)) and np.array_equal(np.isnan(x), np.isnan(y))
                           for x, y in zip(a, b))
        ok.true(name, "inf and NaN in the same places", same_pattern, "equal patterns")
        worst = max((_rel_diff(x, y) for x, y in zip(a, b)), default=0.0)
        ok.within(name, "largest relative difference, compiled against op by op", worst, 1e-12)
        r["max_rel_diff"] = worst
        result["workloads"][name] = r
        print(f"{name:16} {r['compiled_s']:10.3f} {r['compiled_programs']:8d} {r['op_by_op_s']:10.3f} "
              f"{r['op_by_op_programs']:8d} {r['ratio']:6.2f}")
    checks.write_and_finish(result, args.json, ok)


if __name__ == "__main__":
    main()
