"""Poisson counts drawn in a time loop: jaxneuro's inversion against jax.random.poisson.

    python benchmarks/poisson_draw.py [--n 250] [--steps 3000] [--mean 1.0] [--f32] [--json PATH]

What ``jn.PoissonInput`` does in every step of a run: ``n`` counts with one mean, from a
key folded with the step, summed over ``steps`` steps of a ``lax.scan``. Both draws are
compiled and timed in the same process, one after the other in turns (medians of 5), and
their time ratio printed; the draws' means and variances are compared with the mean (a
Poisson count's variance equals its mean), so a fast wrong draw is caught. No NEURON or
Jaxley equivalent: this is jaxneuro's own choice of sampler.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import checks  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=250, help="counts per step")
    ap.add_argument("--steps", type=int, default=3000, help="steps of the loop")
    ap.add_argument("--mean", type=float, default=1.0, help="each count's mean")
    ap.add_argument("--f32", action="store_true", help="float32 (default float64)")
    ap.add_argument("--json", default=None, help="write the results to this JSON file")
    args = ap.parse_args(argv)
    checks.check_output_path(ap, args.json)
    if args.n < 1 or args.steps < 1:
        ap.error(f"--n and --steps expect positive numbers, got --n {args.n} --steps {args.steps}")
    if not 0.0 <= args.mean < float("inf"):
        ap.error(f"--mean expects a finite count mean >= 0, got {args.mean}")

    import jax
    import jax.numpy as jnp
    import numpy as np

    import jaxneuro  # noqa: F401  (its XLA settings, as in a run)
    from jaxneuro.coupling.poisson import poisson_counts

    jax.config.update("jax_enable_x64", not args.f32)
    dtype = jnp.dtype(jnp.float32 if args.f32 else jnp.float64)
    n = args.n

    def loop(draw):
        def f(key, mean):
            def body(total, i):
                return total + draw(jax.random.fold_in(key, i), mean), None
            return jax.lax.scan(body, jnp.zeros(n, dtype), jnp.arange(args.steps))[0]
        return f

    draws = {
        "inversion": loop(lambda k, m: poisson_counts(k, m, (n,), dtype)),
        "jax.random.poisson": loop(lambda k, m: jax.random.poisson(k, m, (n,)).astype(dtype)),
    }
    key, mean = jax.random.key(0), jnp.asarray(args.mean, dtype)
    compiled, compile_s = {}, {}
    for name, f in draws.items():
        start = time.perf_counter()
        compiled[name] = jax.jit(f).lower(key, mean).compile()
        compile_s[name] = time.perf_counter() - start
        compiled[name](key, mean).block_until_ready()  # warm-up
    times = {name: [] for name in draws}
    for _ in range(5):  # in turns: a busy moment slows both alike
        for name, c in compiled.items():
            start = time.perf_counter()
            c(key, mean).block_until_ready()
            times[name].append(time.perf_counter() - start)
    result = {"n": n, "steps": args.steps, "mean": args.mean, "precision": str(dtype)}
    ok = checks.Checks()
    total = args.steps * args.mean  # each target's sum over the steps: Poisson, mean = variance = total
    for name in draws:
        x = np.asarray(compiled[name](jax.random.key(1), mean))
        tag = name.replace(".", "_")
        result[f"{tag}_us_per_step"] = float(np.median(times[name])) / args.steps * 1e6
        result[f"{tag}_compile_s"] = compile_s[name]
        result[f"{tag}_mean_rel_err"] = abs(x.mean() - total) / total
        result[f"{tag}_var_rel_err"] = abs(x.var() - total) / total
        # 5 standard errors of the sample mean and (roughly) of the sample variance.
        ok.within(name, "mean of the summed counts, relative to the expected", result[f"{tag}_mean_rel_err"],
                  5 / np.sqrt(n * total))
        ok.within(name, "variance of the summed counts, relative to the mean", result[f"{tag}_var_rel_err"],
                  5 * np.sqrt(2 / n) + 5 / np.sqrt(n * total))
    result["speedup"] = result["jax_random_poisson_us_per_step"] / result["inversion_us_per_step"]
    result["compile_ratio"] = result["jax_random_poisson_compile_s"] / result["inversion_compile_s"]
    checks.print_results(result)
    checks.write_and_finish(result, args.json, ok)


if __name__ == "__main__":
    main()
