"""The benchmark scripts fail a run whose answers disagree (after printing and writing
what they measured), refuse bad options and output paths before running anything, and
say so when NEURON is missing. Fast: the comparisons are given made-up numbers; no
benchmark is run at full size."""

import importlib
import json
import math
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def bench(monkeypatch):
    """Imports a script of benchmarks/ by name."""
    monkeypatch.syspath_prepend(os.path.join(ROOT, "benchmarks"))
    return importlib.import_module


def _cmp(dv, dt, mismatch, spikes=79):
    return {"max_dv_mV": dv, "max_spike_dt_ms": dt, "spike_count_mismatch": mismatch, "spikes": spikes}


def test_checks_fail_naming_workload_quantity_difference_and_tolerance(bench, capsys):
    checks = bench("checks")
    c = checks.Checks()
    assert c.within("hh1", "max |ΔV| vs NEURON", 1e-8, 1e-5, "mV")
    assert c.within("hh1", "max |ΔV| vs Jaxley", None, 1e-5, "mV")  # not compared: skipped
    assert c.counts_equal("hh1", "spike counts vs NEURON", 0)
    c.finish()  # all within: returns
    assert "Comparisons within their tolerances: 2 of 2." in capsys.readouterr().out

    assert not c.within("hh1", "max |ΔV| vs NEURON", 91.8, 1e-5, "mV")
    assert not c.within("pop1k", "spike-time difference vs NEURON", math.nan, 1e-6, "ms")  # no number: fails
    assert not c.counts_equal("pop1k", "spike counts vs NEURON", 3, of=1000)
    with pytest.raises(SystemExit) as e:
        c.finish()
    assert e.value.code == 1
    err = capsys.readouterr().err
    assert "MISMATCH hh1: max |ΔV| vs NEURON is 91.8 mV, over the tolerance of 1e-05 mV" in err
    assert "MISMATCH pop1k: spike-time difference vs NEURON is nan ms" in err
    assert "MISMATCH pop1k: spike counts vs NEURON differ in 3 of 1000 neurons (tolerance 0)" in err
    assert "3 of 5 comparisons failed" in err


def test_runner_fails_a_wrong_answer_with_tolerances_by_precision(bench):
    run = bench("run")
    # A NEURON trace 5 mV off with its spikes dropped after 500 ms (79 against 39).
    wrong = {"hh1": {"vs_neuron": _cmp(91.8, 0.041, 1), "f32_vs_f64": _cmp(0.03, 2e-4, 0)}}
    failures = run.check_results(wrong, x64=True).failures
    assert len(failures) == 3
    assert failures[0] == "hh1: max |ΔV| vs NEURON is 91.8 mV, over the tolerance of 1e-05 mV"
    assert failures[2] == "hh1: spike counts vs NEURON differ in 1 neuron (tolerance 0)"
    # Rounding of float32 (0.5 mV on pop1k) passes a float32 run, not a float64 one.
    rounding = {"pop1k": {"vs_neuron": _cmp(0.55, 1e-3, 0, 6640), "f32_vs_f64": _cmp(0.55, 1e-3, 0, 6640)}}
    assert run.check_results(rounding, x64=False).failures == []
    assert [f.split(" is ")[0] for f in run.check_results(rounding, x64=True).failures] == [
        "pop1k: max |ΔV| vs NEURON", "pop1k: spike-time difference vs NEURON"]
    # A gradient off NEURON's finite difference; float32 Jaxley's (off by itself) not held against it.
    grad = {"grad_tree1k": {"grad_branch0": {"jaxneuro": -1.7, "neuron_fd": -1.8092, "jaxneuro_fd": -1.8, "jaxley": 1.2},
                            "grad_jaxley_vs_jaxneuro_rel_err": 0.26}}
    assert [f.split(" is ")[0] for f in run.check_results(grad, x64=False).failures] == [
        "grad_tree1k: d loss/d gnabar[0] relative to NEURON's finite difference"]
    # The table shows spike counts that differ.
    row = {"steps": 40000, "compartments": 1, "jaxneuro_s": 0.003, "jaxneuro_compile_s": 0.2, **wrong["hh1"]}
    assert "| spike counts differing vs NEURON (spikes) |" in run.table({"hh1": row})
    assert "| 1 (79) |" in run.table({"hh1": row})


@pytest.mark.parametrize("argv, message", [
    (["--only"], "--only expects one or more workload names"),
    (["--only", "hh1", "gpu_pop10k"], "--only gpu_pop10k: the gpu_pop workloads run only with --gpu"),
    (["--json", "{tmp}/no_such_folder/r.json", "--only", "hh1"], "the folder {tmp}/no_such_folder does not exist"),
    (["--json", "{tmp}", "--only", "hh1"], "--json {tmp}: is a folder"),
])
def test_runner_refuses_bad_options_before_running(bench, tmp_path, capsys, argv, message):
    run = bench("run")
    with pytest.raises(SystemExit) as e:
        run.main([a.format(tmp=tmp_path) for a in argv])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert message.format(tmp=tmp_path) in err
    assert "## hh1" not in err


def test_jaxneuro_bench_and_tour_refuse_unwritable_json_before_running(tmp_path, capfd):
    from jaxneuro import cli

    assert cli.main(["bench", "--quick", "--only", "hh1", "--json", str(tmp_path / "nodir" / "r.json")]) == 2
    assert "jaxneuro bench: error: --json" in capfd.readouterr().err
    out = tmp_path / "figs"
    with pytest.raises(SystemExit) as e:
        cli.main(["tour", "--out", str(out), "--json", str(tmp_path)])
    assert e.value.code == 2
    assert f"--json {tmp_path}: is a folder" in capfd.readouterr().err
    assert not out.exists()  # refused before anything was made or run


def test_syn_network_reports_and_fails_spike_mismatches(bench):
    syn = bench("syn_network")
    import numpy as np

    # No neuron with equal counts: no spike time compared, so none is reported as 0 ms.
    cmp = syn.compare_spikes([np.array([5.0])] * 2, [np.array([]), np.array([5.0, 9.0])])
    assert cmp == {"spikes": 2, "spike_count_mismatch": 2, "max_spike_dt_ms": None}
    result = {"machine": {"precision": "float64"}, "n": 2, "detector_timing": "neuron", "neuron_s": 0.1,
              "jaxneuro_spikes": 2, **cmp, "max_dv_mV": 100.0}
    line = syn.summary(result)
    assert "no spike times to compare" in line and "within 0 ms" not in line and "differ: 2" in line
    failures = syn.check_result(result).failures
    assert failures == ["2 HH neurons: spike counts vs NEURON differ in 2 of 2 neurons (tolerance 0)",
                        "2 HH neurons: max |ΔV| vs NEURON is 100 mV, over the tolerance of 1e-05 mV"]
    # float32: rounding within a step and a few mV passes.
    ok = {**result, "machine": {"precision": "float32"}, "spike_count_mismatch": 0, "max_spike_dt_ms": 0.025,
          "max_dv_mV": 3.2}
    assert syn.check_result(ok).failures == []
    # Grouped projections against each alone, checked with or without NEURON.
    apart = {**ok, "neuron_s": None, "alone_spike_count_mismatch": 1, "alone_max_dv_mV": 50.0,
             "one_population_spike_count_mismatch": 0, "one_population_max_dv_mV": 0.0,
             "parts_spike_count_mismatch": 0, "parts_max_dv_mV": 0.0}
    assert syn.check_result(apart).failures == [
        "2 HH neurons: spike counts, projections grouped vs alone differ in 1 of 2 neurons (tolerance 0)",
        "2 HH neurons: max |ΔV|, projections grouped vs alone is 50 mV, over the tolerance of 10 mV"]
    # ... and the populations against the same network as one population.
    split = {**apart, "alone_spike_count_mismatch": 0, "alone_max_dv_mV": 0.0,
             "one_population_spike_count_mismatch": 2, "one_population_max_dv_mV": 11.0,
             "parts_spike_count_mismatch": 1, "parts_max_dv_mV": 12.0}
    assert syn.check_result(split).failures == [
        "2 HH neurons: spike counts, populations vs one population differ in 2 of 2 neurons (tolerance 0)",
        "2 HH neurons: max |ΔV|, populations vs one population is 11 mV, over the tolerance of 10 mV",
        "2 HH neurons: spike counts, populations vs parts of one differ in 1 of 2 neurons (tolerance 0)",
        "2 HH neurons: max |ΔV|, populations vs parts of one is 12 mV, over the tolerance of 10 mV"]


def test_syn_network_partners_within_populations(bench):
    """--within: each neuron's k partners from its own population, distinct, never
    itself; without it, from all others."""
    import numpy as np

    syn = bench("syn_network")
    which, _ = syn.blocks(30, 4)  # populations of 8, 8, 7, 7
    pre, post = syn.connections(30, 5, which=which)
    assert np.array_equal(post, np.repeat(np.arange(30), 5)) and not np.any(pre == post)
    assert np.array_equal(which[pre], which[post])
    assert all(len(set(pre[post == j])) == 5 for j in range(30))
    pre_all, post_all = syn.connections(30, 5)
    assert not np.any(pre_all == post_all) and np.any(which[pre_all] != which[post_all])


def test_syn_network_without_neuron_runs_jaxneuro_alone(bench, monkeypatch, tmp_path, capsys):
    syn = bench("syn_network")
    monkeypatch.setitem(sys.modules, "neuron", None)  # "import neuron" raises ImportError
    out = tmp_path / "syn.json"
    result = syn.main(["--n", "3", "--k", "1", "--t1", "5", "--capacity", "4", "--json", str(out)])
    text = capsys.readouterr().out
    assert "# NEURON not installed: jaxneuro's run alone" in text and "pip install" in text
    assert result["neuron_s"] is None and result["jaxneuro_s"] > 0
    assert json.loads(out.read_text())["spike_count_mismatch"] is None


def test_delta_network_checks_and_runs_without_neuron(bench, monkeypatch, capsys):
    delta = bench("delta_network")
    result = {"n": 100, "event_driven_same_spikes": False, "rate_exc_hz": {"jaxneuro": 60.0, "neuron": 40.0},
              "rate_inh_hz": {"jaxneuro": 41.0, "neuron": 40.0}, "cv_isi_exc": {"jaxneuro": math.nan, "neuron": math.nan}}
    assert delta.check_result(result).failures == [
        "Brunel network of 100: event-driven vs dense delivery: the same spikes was expected",
        "Brunel network of 100: excitatory rate relative to NEURON's is 0.5, over the tolerance of 0.2"]
    monkeypatch.setitem(sys.modules, "neuron", None)  # "import neuron" raises ImportError
    import numpy as np

    # jaxneuro's runs stubbed (tests/test_benchmark_runner.py runs them): 40 E + 10 I
    # neurons firing every 25 ms.
    spikes = [np.arange(1.0, 160.0, 25.0)] * 50
    monkeypatch.setattr(delta, "jaxneuro_run", lambda *a, **k: (0.1, 1.0, spikes[:40], spikes[40:]))
    result = delta.main(["--n", "50", "--t1", "160"])
    text = capsys.readouterr().out
    assert "# NEURON not installed: jaxneuro's runs alone" in text and "NEURON n/a Hz" in text
    assert result["neuron_s"] is None and result["rate_exc_hz"]["neuron"] is None
    assert result["event_driven_same_spikes"] is True and result["rate_exc_hz"]["jaxneuro"] > 0


def test_stimuli_cells_and_cores_fail_voltage_differences(bench):
    stimuli, cells = bench("stimuli"), bench("cells")
    out = {"n": 20, "stimuli": 6, "separate_vs_one_max_dv_mV": 0.0, "one_vs_neuron_max_dv_mV": 2.0}
    assert stimuli.check_result(out).failures == [
        "20 HH neurons, 6 stimuli: max |ΔV| one stimulus vs NEURON is 2 mV, over the tolerance of 1e-05 mV"]
    del out["one_vs_neuron_max_dv_mV"]  # without NEURON: not compared
    assert stimuli.check_result(out).failures == []
    batches = {2: {"paths_max_dv_vs_hines_mV": 1e-14, "jaxley_max_dv_vs_hines_mV": 0.02}}
    assert cells.check_results(batches, f32=True).failures == []
    assert cells.check_results(batches, f32=False).failures == [
        "2 cells: max |ΔV| jaxley vs hines is 0.02 mV, over the tolerance of 1e-05 mV"]


def test_the_gpu_kernel_benchmark_fails_a_wrong_or_failed_default_kernel(bench):
    # Its variants are experiments (differences expected, failures tolerated); the
    # default kernel is the product: it exited 0 whatever it computed.
    gpu_kernel = bench("gpu_kernel")
    assert gpu_kernel.check_default({"spike_count_mismatch_vs_float64": 29}, 10**6).failures == []
    assert gpu_kernel.check_default({"spike_count_mismatch_vs_float64": 2000}, 10**6).failures == [
        "default kernel: spike counts vs float64 differ in 2000 of 1000000 neurons (tolerance 1000)"]
    failed = gpu_kernel.check_default({"error": "ValueError: boom"}, 10**6).failures
    assert failed == ["default kernel: the run: a run without error (got ValueError: boom) was expected"]
    with pytest.raises(SystemExit) as stop:
        gpu_kernel.check_default({"error": "ValueError: boom"}, 10**6).finish()
    assert stop.value.code == 1


@pytest.mark.parametrize("script, argv, message", [
    ("grad_cost", ["--dt", "0"], "--dt expects a positive time in ms, got 0.0"),
    ("grad_cost", ["--save-every", "-1"], "--save-every expects a positive time in ms"),
    ("grad_cost", ["--repeats", "0"], "--repeats expects a positive number"),
    ("swc_cell", ["--branches", "0"], "--branches expects a positive number of neurites, got 0"),
    ("swc_cell", ["--t1", "-5"], "--t1 expects a positive time in ms, got -5.0"),
    ("syn_network", ["--capacity", "0"], "--capacity expects a positive number of spike slots"),
    ("syn_network", ["--n", "4", "--k", "2", "--populations", "5"], "--populations expects 1 to n"),
    ("syn_network", ["--n", "12", "--k", "3", "--populations", "4", "--within"],
     "--within expects k below the smallest population's size"),
    ("stimuli", ["--json", "/no/such/folder/s.json"], "the folder /no/such/folder does not exist"),
    ("poisson_draw", ["--steps", "0"], "--n and --steps expect positive numbers"),
    ("poisson_draw", ["--mean", "-1"], "--mean expects a finite count mean >= 0, got -1.0"),
    ("first_call", ["--repeats", "0"], "--repeats expects a positive number, got 0"),
])
def test_scripts_refuse_bad_options(bench, capsys, script, argv, message):
    with pytest.raises(SystemExit) as e:
        bench(script).main(argv)
    assert e.value.code == 2
    assert message in capsys.readouterr().err


def test_a_failing_subprocess_shows_its_own_error(bench, capfd):
    checks = bench("checks")
    cmd = [sys.executable, "-c", "import sys; sys.stderr.write('ZeroDivisionError: float division by zero'); sys.exit(3)"]
    with pytest.raises(SystemExit) as e:
        checks.child_json(cmd, "--mode baseline")
    assert "the subprocess for --mode baseline failed with exit status 3" in str(e.value.code)
    assert "ZeroDivisionError: float division by zero" in capfd.readouterr().err
    assert checks.child_json([sys.executable, "-c", "print('x'); print('{\"a\": 1}')"], "x") == {"a": 1}
