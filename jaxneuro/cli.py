"""The ``jaxneuro`` command."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path


def _parser():
    p = argparse.ArgumentParser(prog="jaxneuro", description="Differentiable neuron simulation in JAX.")
    sub = p.add_subparsers(dest="command", required=True)
    tour = sub.add_parser(
        "tour", help="run every seed scenario and check it against expected values",
        description="Run every scenario of the documents jaxneuro was specified from (passive soma, input "
                    "resistance, LIF/HH/cable, gap junctions, INa_Ba2002), check each number against its "
                    "published, analytic or NEURON value, print the table and save the figures.")
    tour.add_argument("--out", type=Path, default=Path("jaxneuro-tour"), help="folder for the PNG figures (default: ./jaxneuro-tour)")
    tour.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the table as JSON to PATH")
    tour.add_argument("--no-neuron", action="store_true", help="skip comparisons that run NEURON")
    tour.add_argument("--float32", action="store_true", help="compute in float32 (default: float64 on CPU)")
    sub.add_parser(
        "bench", add_help=False,
        help="time jaxneuro, NEURON and Jaxley on the same workloads (benchmarks/run.py of a source "
             "checkout; its options, e.g. --quick --json PATH, are passed on: jaxneuro bench --help)",
    )
    sub.add_parser("version", help="print the version")
    p.add_argument("--version", action="version", version=f"jaxneuro {_version()}")
    p.tour_parser = tour
    return p


def _version() -> str:
    from . import __version__

    return __version__


def benchmark_runner() -> Path:
    """Where ``jaxneuro bench`` looks for the benchmark runner: ``benchmarks/run.py``
    beside the package, as in a source checkout installed with ``pip install -e``."""
    return Path(__file__).resolve().parents[1] / "benchmarks" / "run.py"


def _bench(options: list[str]) -> int:
    """Run the benchmark runner with ``options`` in a process of its own (it starts
    one per simulator and workload itself); its exit status."""
    runner = benchmark_runner()
    if not runner.is_file():
        print(
            f"jaxneuro bench: the benchmarks live in the source repository (benchmarks/run.py), "
            f"not found at {runner}; run it from a checkout installed with pip install -e \".[bench]\"",
            file=sys.stderr,
        )
        return 2
    # Its usage and errors then name the command the user typed, not run.py.
    env = {**os.environ, "JAXNEURO_BENCH_PROG": "jaxneuro bench"}
    return subprocess.call([sys.executable, str(runner), *options], env=env)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"]:
        return _bench(argv[1:])
    parser = _parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # said with the subcommand's usage (parse_args would show jaxneuro's)
        getattr(parser, f"{args.command}_parser", parser).error(f"unrecognized arguments: {' '.join(unknown)}")
    if args.command == "tour":
        tour = parser.tour_parser  # its errors show its own usage
        # Bad paths are reported before the scenarios run, and before any folder is made.
        if args.out.exists() and not args.out.is_dir():
            tour.error(f"--out {args.out}: exists and is not a folder")
        if args.json is not None and args.json.is_dir():
            tour.error(f"--json {args.json}: is a folder; give the path of a file to write")
        json_folder = args.json.parent if args.json is not None else None
        # The tour makes --out (with its parents) before it writes the JSON.
        made = [args.out, *args.out.parents]
        if (json_folder is not None and not json_folder.is_dir()
                and json_folder.resolve() not in [p.resolve() for p in made]):
            tour.error(f"--json {args.json}: the folder {args.json.parent} does not exist")
        try:  # made now, so that a folder that cannot be made is said before the scenarios run
            args.out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            tour.error(f"--out {args.out}: cannot make the folder ({e.strerror})")
    if args.command == "version":
        from . import __version__

        print(__version__)
        return 0
    import jax

    if not args.float32 and jax.default_backend() == "cpu":
        # NEURON-grade accuracy on the CPU; accelerators keep float32 unless asked.
        jax.config.update("jax_enable_x64", True)
    from .tour import run_tour

    print(f"jaxneuro tour on {jax.default_backend()} ({'float64' if jax.config.jax_enable_x64 else 'float32'})")
    rows = run_tour(args.out, args.json, compare_neuron=not args.no_neuron)
    return 0 if all(r.ok for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
