"""What a gradient through a long simulation costs, against the forward pass.

One HH compartment (20 × 20 µm, NEURON's ``hh``) under a 0.1 nA step, 10⁵ steps of
dt = 0.025 ms (2500 ms). The loss is the mean of ``v`` saved every ``--save-every`` ms
(default 10 ms: 251 samples). ``jn.simulate`` with a constant step is a checkpointed
scan: reverse mode keeps the state at each saved sample and recomputes the steps in
between, so memory grows with the number of saves, not of steps.

Each mode runs in its own subprocess, so its peak resident memory
(``resource.getrusage(...).ru_maxrss``, which includes the runtime and XLA's
compilation) is its own:

- ``baseline``: import jax and jaxneuro and build the model (the floor);
- ``forward``: the loss, jitted;
- ``gradient``: ``jax.grad`` of the loss w.r.t. ``gnabar`` and ``gkbar``, jitted;
- ``gradient-fine``: the same, saving every step (10⁵ samples), for contrast.

Memory is reported twice: the buffers of the compiled XLA program
(``memory_analysis()``: arguments, outputs, temporaries — what the run itself holds)
and the process's peak RSS (dominated by the runtime and the compiler at this size).

Times are of a second call (after compilation), best of ``--repeats``.

    python benchmarks/grad_cost.py [--t1 2500] [--dt 0.025] [--save-every 10]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import checks  # noqa: E402

MODES = ("baseline", "forward", "gradient", "gradient-fine")


def _peak_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux, bytes on macOS.
    scale = 1.0 / 1024 if sys.platform != "darwin" else 1.0 / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def measure(mode: str, *, t1: float = 2500.0, dt: float = 0.025, save_every: float = 10.0,
            repeats: int = 2) -> dict:
    """Run one mode in this process; returns a dict with the mode, seconds (best
    call after compiling), compile_seconds, peak_rss_mb, the loss value and sizes."""
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    import jaxneuro as jn

    if mode not in MODES:
        raise ValueError(f"mode expects one of {MODES}, got {mode!r}")
    stim = jn.StepCurrent(0.1, 0.0, t1)
    every = dt if mode == "gradient-fine" else save_every

    def loss(g):
        cell = jn.Compartment(length=20, diam=20, channels=[jn.channels.HH(gnabar=g[0], gkbar=g[1])])
        trace = jn.simulate(cell, t1, dt=dt, stimuli=[stim], save_every=every)
        return jnp.mean(trace.v)

    g = jnp.array([0.12, 0.036])
    row = {"mode": mode, "steps": int(round(t1 / dt)), "saves": int(round(t1 / every)) + 1}
    if mode == "baseline":
        return {**row, "seconds": 0.0, "compile_seconds": 0.0, "peak_rss_mb": _peak_rss_mb(),
                "xla_mb": 0.0, "value": 0.0}
    fn = jax.jit(loss) if mode == "forward" else jax.jit(jax.grad(loss))
    start = time.perf_counter()
    compiled = fn.lower(g).compile()
    compile_seconds = time.perf_counter() - start
    try:  # the buffers XLA allocates for the compiled program (runtime memory, no compiler)
        mem = compiled.memory_analysis()
        xla_mb = (mem.temp_size_in_bytes + mem.argument_size_in_bytes + mem.output_size_in_bytes) / 2**20
    except Exception:  # memory_analysis is not available on every backend
        xla_mb = float("nan")
    fn = compiled
    out = jax.block_until_ready(fn(g))  # warm-up
    best = float("inf")
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        out = jax.block_until_ready(fn(g))
        best = min(best, time.perf_counter() - start)
    value = float(out) if mode == "forward" else float(jnp.linalg.norm(out))
    return {**row, "seconds": best, "compile_seconds": compile_seconds,
            "peak_rss_mb": _peak_rss_mb(), "xla_mb": xla_mb, "value": value}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--t1", type=float, default=2500.0, help="simulated time, ms")
    p.add_argument("--dt", type=float, default=0.025, help="time step, ms")
    p.add_argument("--save-every", type=float, default=10.0, help="sampling of v for the loss, ms")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--mode", choices=MODES, help="run one mode here and print its JSON row")
    args = p.parse_args(argv)
    for name, value in (("--t1", args.t1), ("--dt", args.dt), ("--save-every", args.save_every)):
        if not value > 0:
            p.error(f"{name} expects a positive time in ms, got {value}")
    if args.repeats < 1:
        p.error(f"--repeats expects a positive number of timed calls, got {args.repeats}")
    opts = dict(t1=args.t1, dt=args.dt, save_every=args.save_every, repeats=args.repeats)
    if args.mode:
        print(json.dumps(measure(args.mode, **opts)))
        return
    rows = []
    for mode in MODES:
        cmd = [sys.executable, __file__, "--mode", mode, "--t1", str(args.t1), "--dt", str(args.dt),
               "--save-every", str(args.save_every), "--repeats", str(args.repeats)]
        rows.append(checks.child_json(cmd, f"--mode {mode}"))
        print(f"  {mode}: done", file=sys.stderr)
    base = rows[0]["peak_rss_mb"]
    fwd = next(r for r in rows if r["mode"] == "forward")
    print(f"HH compartment, {fwd['steps']} steps of {args.dt} ms ({args.t1:g} ms)\n")
    head = (f"{'mode':<14}{'saves':>8}{'time (s)':>10}{'x fwd':>8}{'compile (s)':>13}{'XLA buffers (MB)':>18}"
            f"{'x fwd':>8}{'peak RSS (MB)':>15}{'above base':>12}")
    print(head)
    print("-" * len(head))
    for r in rows:
        extra = r["peak_rss_mb"] - base
        t_ratio = r["seconds"] / fwd["seconds"] if r["mode"] != "baseline" else float("nan")
        x_ratio = r["xla_mb"] / fwd["xla_mb"] if r["mode"] != "baseline" else float("nan")
        print(f"{r['mode']:<14}{r['saves']:>8}{r['seconds']:>10.3f}{t_ratio:>8.2f}{r['compile_seconds']:>13.2f}"
              f"{r['xla_mb']:>18.3f}{x_ratio:>8.2f}{r['peak_rss_mb']:>15.1f}{extra:>12.1f}")
    print("\nXLA buffers: arguments, outputs and temporaries of the compiled program (the run's own "
          "memory);\npeak RSS: the whole process, including the Python runtime and XLA's compiler.")


if __name__ == "__main__":
    main()
