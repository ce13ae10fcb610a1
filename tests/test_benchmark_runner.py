"""The benchmark runner works end to end on its smallest workload: it times jaxneuro and
NEURON in one run, compares their voltages and writes the JSON RESULTS.md is made from;
so does the batched-cells benchmark on a small batch. (Times are not asserted: speed is
what the benchmarks measure, not the tests.)"""

import json
import os
import subprocess
import sys

import pytest

from conftest import env_with_xla_flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_runner_quick_hh1(tmp_path):
    pytest.importorskip("neuron")
    out = tmp_path / "r.json"
    env = env_with_xla_flags()
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "run.py"), "--quick", "--only", "hh1", "--json", str(out)],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(out.read_text())
    assert {"machine", "workloads"} <= set(data)
    r = data["workloads"]["hh1"]
    assert r["steps"] == 40000 and r["compartments"] == 1
    for key in ("jaxneuro_s", "jaxneuro_compile_s", "neuron_s", "jaxneuro_xla_default_loops_s", "jaxneuro_table_s"):
        assert r[key] > 0, key
    # The same voltages as NEURON (exact rates), spike for spike, and with NEURON's table.
    assert r["vs_neuron"]["max_dv_mV"] < 1e-6
    assert r["vs_neuron"]["spike_count_mismatch"] == 0 and r["vs_neuron"]["spikes"] > 50
    assert r["table_vs_neuron_table"]["max_dv_mV"] < 1e-6
    # float32 against float64: rounding, not a different answer.
    assert 0 < r["f32_vs_f64"]["max_dv_mV"] < 1.0
    assert "| hh1 |" in proc.stdout


def test_cells_benchmark_small_batch(tmp_path):
    """benchmarks/cells.py on two tree1k cells for 11 ms (the step current starts at
    10 ms): both tree solves give the same voltages, which differ between the cells."""
    out = tmp_path / "cells.json"
    env = env_with_xla_flags()
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "cells.py"), "--batch", "2", "--t1", "11",
         "--repeats", "1", "--no-jaxley", "--json", str(out)],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(out.read_text())["batches"]["2"]
    assert r["cells"] == 2 and r["compartments"] == 2000 and r["steps"] == 440
    assert r["hines_s"] > 0 and r["paths_s"] > 0
    assert r["paths_max_dv_vs_hines_mV"] < 1e-9
    v_first, v_last = r["root_v_final_mV"]  # driven above rest, differently per cell
    assert v_first > -60 and v_last > -60 and v_first != v_last
    assert "| 2 |" in proc.stdout


def test_jaxneuro_bench_command_runs_the_runner(capfd):
    """``jaxneuro bench`` passes its options to benchmarks/run.py: its help, its
    errors and exit status."""
    from jaxneuro import cli

    assert cli.main(["bench", "--help"]) == 0
    out = capfd.readouterr().out
    assert "--quick" in out and "--json" in out and "NEURON and Jaxley" in out
    assert out.startswith("usage: jaxneuro bench")  # the command typed, not run.py
    assert cli.main(["bench", "--no-such-option"]) == 2
    assert "jaxneuro bench: error: unrecognized arguments: --no-such-option" in capfd.readouterr().err


def test_jaxneuro_bench_outside_a_checkout_says_where_it_looked(tmp_path, monkeypatch, capfd):
    from jaxneuro import cli

    missing = tmp_path / "benchmarks" / "run.py"
    monkeypatch.setattr(cli, "benchmark_runner", lambda: missing)
    assert cli.main(["bench", "--quick"]) == 2
    err = capfd.readouterr().err
    assert "source repository" in err and str(missing) in err


@pytest.mark.parametrize("populations", [1, 3])
def test_synaptic_network_benchmark_small(tmp_path, populations):
    """benchmarks/syn_network.py on 12 HH neurons: NEURON's NetCon + ExpSyn network and
    jaxneuro's SpikeDetector(timing="neuron") + ExpSynapse(delivery="neuron") fire the
    same spikes at the same times, with the same voltages; also written as three
    populations with nine projections, run grouped and each alone."""
    pytest.importorskip("neuron")
    out = tmp_path / "syn.json"
    env = env_with_xla_flags()
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "syn_network.py"), "--n", "12", "--k", "3",
         "--t1", "30", "--capacity", "8", "--populations", str(populations), "--json", str(out)],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(out.read_text())
    assert r["n"] == 12 and r["steps"] == 1200 and r["capacity"] == 8 and r["populations"] == populations
    assert r["jaxneuro_s"] > 0 and r["neuron_s"] > 0 and r["jaxneuro_compile_s"] > 0
    assert r["spikes"] >= 12 and r["spike_count_mismatch"] == 0
    assert r["max_spike_dt_ms"] < 1e-6 and r["max_dv_mV"] < 1e-5
    assert "x NEURON" in proc.stdout
    if populations == 1:
        assert r["projections"] == 1 and "jaxneuro_alone_s" not in r
    else:
        assert 6 <= r["projections"] <= 9  # pairs of populations with a connection between them
        assert r["jaxneuro_alone_compile_s"] > 0 and r["alone_spike_count_mismatch"] == 0
        assert r["alone_max_dv_mV"] < 1e-9
        assert "each projection alone" in proc.stdout
        # The same neurons and connections as one population, in the same run.
        assert r["one_population_s"] > 0 and r["one_population_compile_s"] > 0
        assert r["one_population_spike_count_mismatch"] == 0 and r["one_population_max_dv_mV"] < 1e-9
        assert "as one population and one synapse" in proc.stdout
        # ... and as one population whose parts are joined by the same projections.
        assert r["parts_s"] > 0 and r["parts_spike_count_mismatch"] == 0 and r["parts_max_dv_mV"] < 1e-9
        assert "parts joined by the same" in proc.stdout


def test_delta_network_benchmark_small(tmp_path):
    """benchmarks/delta_network.py on 100 neurons for 200 ms (its --quick length; 100 ms
    after the transient): Brunel's network in NEURON's IntFire1
    cells and jaxneuro's LIF + DeltaSynapse fire at similar rates, and jaxneuro's
    event-driven and dense deliveries fire the same spikes."""
    pytest.importorskip("neuron")
    out = tmp_path / "delta.json"
    env = env_with_xla_flags()
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "delta_network.py"), "--n", "100", "--t1", "200",
         "--json", str(out)],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(out.read_text())
    assert (r["n_exc"], r["n_inh"], r["c_exc"], r["c_inh"], r["steps"]) == (80, 20, 8, 2, 2000)
    assert r["jaxneuro_s"] > 0 and r["neuron_s"] > 0 and r["jaxneuro_dense_s"] > 0
    assert r["event_driven_same_spikes"] is True
    rate_j, rate_n = r["rate_exc_hz"]["jaxneuro"], r["rate_exc_hz"]["neuron"]
    assert rate_n > 10 and rate_j == pytest.approx(rate_n, rel=0.15)
    assert "x NEURON" in proc.stdout


def test_stimuli_benchmark_small(tmp_path):
    """benchmarks/stimuli.py on 20 HH neurons with 6 stimuli: separate stimuli and one
    stimulus for all give the same voltages, and NEURON's IClamps (where installed) agree."""
    out = tmp_path / "stim.json"
    env = env_with_xla_flags()
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "stimuli.py"), "--n", "20", "--stimuli", "6",
         "--t1", "10", "--json", str(out)],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(out.read_text())
    assert r["n"] == 20 and r["stimuli"] == 6 and r["separate_vs_one_max_dv_mV"] == 0.0
    assert r["one_stimulus_s"] > 0 and r["separate_stimuli_s"] > 0 and r["separate_over_one"] > 0
    if "neuron_s" in r:
        assert r["one_vs_neuron_max_dv_mV"] < 1e-6
    bad = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "stimuli.py"), "--n", "5", "--stimuli", "6"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode != 0 and "--stimuli expects 1 <= stimuli <= n" in bad.stderr


def test_a_neuron_model_built_over_refuses_to_run():
    # NEURON simulates every section there is, so each benchmark model deletes the one
    # before: an older model's call ran the newer model (the runner's turns timed
    # NEURON's exact rates as its table run); now it says so.
    pytest.importorskip("neuron")
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]); import workloads as W\n"
        "exact = W.neuron_run('hh1', tables=False)\n"
        "table = W.neuron_run('hh1', tables=True)\n"
        "t, v = table.call(); assert v.shape == (len(t), 1) and v.max() > 0, v.max()\n"
        "from neuron import h; assert h.usetable_hh == 1\n"
        "try:\n    exact.call()\nexcept RuntimeError as e:\n    print(e)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, os.path.join(ROOT, "benchmarks")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "neuron_run('hh1', tables=False): this NEURON model was deleted by a later neuron_run" in proc.stdout


def test_simulators_are_timed_in_turns(monkeypatch):
    # The headline times: one run of each simulator per round, so that a shared
    # machine's load of the moment falls on all of them; medians per simulator. Each
    # timed run follows an untimed one of the same simulator, so none is timed on what
    # another left behind (cores idle through a one-core run, caches).
    monkeypatch.syspath_prepend(os.path.join(ROOT, "benchmarks"))
    import run

    order, clock = [], [0.0]
    cost = {"a": 3.0, "b": 1.0}

    def call(name):
        order.append(name)
        cold = len(order) == 1 or order[-2] != name  # the first of a simulator's pair
        clock[0] += cost[name] + (10.0 if cold else 0.0) + (50.0 if len(order) == 6 else 0.0)  # one slow moment

    monkeypatch.setattr(run.time, "perf_counter", lambda: clock[0])
    medians = run.in_turns({"a": lambda: call("a"), "b": lambda: call("b")}, rounds=5)
    assert order == ["a", "a", "b", "b"] * 5
    assert medians == {"a": 3.0, "b": 1.0}


def test_poisson_draw_benchmark_small(tmp_path):
    """benchmarks/poisson_draw.py at a small size: both draws timed in one run, their
    ratio reported, and both pass the moments check (mean = variance)."""
    out = tmp_path / "draw.json"
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "poisson_draw.py"), "--n", "50", "--steps", "100",
         "--mean", "2.0", "--json", str(out)],
        capture_output=True, text=True, env=env_with_xla_flags(), timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(out.read_text())
    assert (r["n"], r["steps"], r["mean"], r["precision"]) == (50, 100, 2.0, "float64")
    assert r["speedup"] == pytest.approx(r["jax_random_poisson_us_per_step"] / r["inversion_us_per_step"])
    assert r["inversion_mean_rel_err"] < 5 / (50 * 200) ** 0.5
    assert "Comparisons within their tolerances: 4 of 4." in proc.stdout


def test_first_call_benchmark_small(tmp_path):
    """benchmarks/first_call.py on one workload, one process of each form: the compiled
    analysis compiles fewer programs than the same arithmetic op by op, with the same
    results (its comparisons pass)."""
    out = tmp_path / "first.json"
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "first_call.py"), "--only", "step analysis", "--repeats",
         "1", "--json", str(out)],
        capture_output=True, text=True, env=env_with_xla_flags(), timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(out.read_text())["workloads"]["step analysis"]
    assert r["compiled_programs"] <= 3 < 20 <= r["op_by_op_programs"], r
    assert r["ratio"] == pytest.approx(r["op_by_op_s"] / r["compiled_s"])
    assert r["max_rel_diff"] <= 1e-12
    assert "Comparisons within their tolerances: 3 of 3." in proc.stdout

