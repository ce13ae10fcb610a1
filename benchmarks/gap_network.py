"""A large LIF network with random gap junctions: wall time and peak memory.

    python benchmarks/gap_network.py [--n 100000] [--p-per-neuron 10] [--t1 1000] [--dt 0.025]

N LIF neurons (C 1 nF, gL 0.1 µS, heterogeneous drive so that some fire), recurrent
symmetric gap junctions drawn with ``jn.conn.fixed_prob(k/N)`` (about k per neuron,
no self-connections), g = 0.01 µS each; simulated for ``t1`` ms with the default solver
(backward Euler, gaps solved implicitly by conjugate gradients), recording the voltage
of 10 neurons every 1 ms. Prints the time to build, the time to run (first call,
including compilation, and a second call), the spike count and the process's peak
resident memory (``resource.getrusage``, max RSS).
"""

from __future__ import annotations

import argparse
import math
import resource
import sys
import time

import jax
import numpy as np


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--p-per-neuron", type=float, default=10.0)
    ap.add_argument("--t1", type=float, default=1000.0)
    ap.add_argument("--dt", type=float, default=0.025)
    ap.add_argument("--g", type=float, default=0.01, help="gap conductance per junction, µS")
    ap.add_argument("--x64", action="store_true", help="float64 (default float32)")
    ap.add_argument("--once", action="store_true", help="one call only (compilation included in its time)")
    args = ap.parse_args(argv)
    if args.x64:
        jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    import jaxneuro as jn

    n = args.n
    t = time.perf_counter()
    rng = np.random.default_rng(0)
    pop = jn.LIF(n=n, spike_capacity=64)
    gap = jn.SymmetricGapJunction("e", "e", jn.conn.fixed_prob(args.p_per_neuron / n, seed=1, include_self=False), args.g)
    net = jn.Network({"e": pop}, [gap])
    drive = jnp.asarray(rng.uniform(1.0, 3.0, n))  # nA per neuron; rheobase 1.5 nA
    stim = jn.StepCurrent(drive, 0.0, np.inf, target="e")
    n_conn = net.couplings[0].n_connections
    t_build = time.perf_counter() - t

    def run():
        tr = jn.simulate(net, args.t1, dt=args.dt, stimuli=[stim], save_every=1.0)
        return jax.block_until_ready(tr["e"].spike_count)

    t = time.perf_counter()
    counts = run()
    t_first = time.perf_counter() - t
    t_second = math.nan
    if not args.once:
        t = time.perf_counter()
        counts = run()
        t_second = time.perf_counter() - t
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rss_mib = rss / 1024 if sys.platform != "darwin" else rss / 2**20
    print(f"neurons            {n}")
    print(f"gap junctions      {n_conn} ({n_conn / n:.1f} per neuron)")
    print(f"simulated          {args.t1} ms at dt {args.dt} ms ({int(round(args.t1 / args.dt))} steps), "
          f"{'float64' if args.x64 else 'float32'}")
    print(f"build              {t_build:.2f} s")
    print(f"run (first call)   {t_first:.2f} s  (includes compilation)")
    print(f"run (second call)  {t_second:.2f} s")
    print(f"spikes             {int(np.sum(counts))} ({float(np.mean(counts)) / (args.t1 / 1000):.1f} Hz mean)")
    print(f"peak memory        {rss_mib:.0f} MiB (max RSS)")


if __name__ == "__main__":
    main()
