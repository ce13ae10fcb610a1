"""Point-neuron and HH populations split over the CPU cores, at several block sizes.

    python benchmarks/neuron_blocks.py [--f32] [--blocks 512 2048] [--sizes 3000 10000]
                                       [--rounds 2] [--t1 100] [--json PATH]

A core's share of a split population of more than two blocks runs block after block
(``jaxneuro.backends.sharded.NEURON_BLOCK``). Each block size runs in a process of its
own (the setting is read when a run is compiled), the processes taking turns for
``--rounds`` rounds, so a busy machine slows every setting alike; each process times LIF,
AdEx, Izhikevich and HH-compartment populations (medians of 3 runs after compiling,
``record=()`` with spike counts, HH with its final voltage) under ``backend="auto"``
(split) and ``backend="xla"`` (one loop) in the same run. Prints ns per neuron-step and
each block size's time against the first's. No NEURON or Jaxley equivalent exists for
the point neurons (NEURON's IntFire cells are event driven), so the ratios are between
jaxneuro's own settings and models, measured together.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import checks  # noqa: E402

MODELS = ("LIF", "AdEx", "Izhikevich", "HH")


def _child(block: int, sizes, t1: float, f32: bool) -> dict:
    import jaxneuro as jn  # before JAX starts: one CPU device per core
    import jax
    import numpy as np

    from jaxneuro.backends import sharded

    jax.config.update("jax_enable_x64", not f32)
    sharded.NEURON_BLOCK = block
    drive = {"LIF": 4.0, "AdEx": 1.6, "Izhikevich": 10.0, "HH": 0.1}
    out = {}
    for n in sizes:
        for name in MODELS:
            model = (jn.Compartment(length=20.0, diam=20.0, n=n, channels=[jn.channels.HH()]) if name == "HH"
                     else getattr(jn, name)(n=n))
            stim = [jn.StepCurrent(drive[name], 0.0, t1)]
            for backend in ("auto", "xla"):
                def run():
                    kw = dict(record=("v",), save_every=t1) if name == "HH" else dict(record=())
                    return jax.block_until_ready(jax.tree.leaves(jn.simulate(model, t1, stimuli=stim,
                                                                             backend=backend, **kw)))
                run()
                times = []
                for _ in range(3):
                    start = time.perf_counter()
                    run()
                    times.append(time.perf_counter() - start)
                out[f"{name}/{n}/{backend}"] = float(np.median(times))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--f32", action="store_true", help="float32 (default float64)")
    ap.add_argument("--blocks", type=int, nargs="+", default=[512, 2048])
    ap.add_argument("--sizes", type=int, nargs="+", default=[3000, 10_000])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--t1", type=float, default=100.0, help="simulated time, ms")
    ap.add_argument("--json", default=None)
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child is not None:
        print(json.dumps(_child(args.child, args.sizes, args.t1, args.f32)))
        return None
    for name, values in (("--blocks", args.blocks), ("--sizes", args.sizes), ("--rounds", [args.rounds])):
        if any(v < 1 for v in values):
            ap.error(f"{name} expects positive integers, got {values}")
    if not args.t1 > 0:
        ap.error(f"--t1 expects a positive time in ms, got {args.t1}")
    checks.check_output_path(ap, args.json)

    runs = {b: [] for b in args.blocks}
    for _ in range(args.rounds):
        for block in args.blocks:  # settings take turns
            cmd = [sys.executable, __file__, "--child", str(block), "--t1", str(args.t1), "--sizes",
                   *map(str, args.sizes)] + (["--f32"] if args.f32 else [])
            runs[block].append(checks.child_json(cmd, f"block size {block}"))
    best = {b: {k: min(r[k] for r in rs) for k in rs[0]} for b, rs in runs.items()}
    steps = round(args.t1 / 0.025)
    first = args.blocks[0]
    print(f"{'float32' if args.f32 else 'float64'}, {args.t1:g} ms ({steps} steps), best of {args.rounds} rounds; "
          f"ns per neuron-step, split (auto) and one loop (xla)")
    header = "model      n       " + "  ".join(f"auto@{b:<6}" for b in args.blocks) + "  xla       " + "  ".join(
        f"{b}/{first}" for b in args.blocks[1:])
    print(header)
    for n in args.sizes:
        for name in MODELS:
            ns = lambda s: 1e9 * s / (steps * n)  # noqa: E731
            autos = [best[b][f"{name}/{n}/auto"] for b in args.blocks]
            xla = best[first][f"{name}/{n}/xla"]
            ratios = "  ".join(f"{a / autos[0]:<10.2f}" for a in autos[1:])
            print(f"{name:<10} {n:<7} " + "  ".join(f"{ns(a):<11.2f}" for a in autos) + f"  {ns(xla):<9.2f} {ratios}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"f32": args.f32, "t1_ms": args.t1, "blocks": args.blocks, "sizes": args.sizes,
                       "best_s": {str(b): v for b, v in best.items()}}, f, indent=1)
    return best


if __name__ == "__main__":
    main()
