"""jn.sweep: chunked, sharded over 8 (virtual) devices, resumable after a kill, and
shared between two processes joined by ``jax.distributed``.

The host devices need XLA_FLAGS before JAX starts, so the sweeps run in
subprocesses. The swept function is a short HH simulation (spike count and mean
voltage per parameter set)."""

import importlib
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import jax
import numpy as np
import pytest
import saiunit as u

import jaxneuro as jn
from jaxneuro.sweep import product
from conftest import env_with_xla_flags

SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    import jax
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp, numpy as np
    import jaxneuro as jn
    from jaxneuro.sweep import product

    out, sleep, log = sys.argv[1], float(sys.argv[2]), sys.argv[3]
    assert jax.local_device_count() == 8, jax.devices()

    def fn(p):
        m = jn.Compartment(length=20.0, diam=20.0, channels=[jn.channels.HH(gnabar=p["gnabar"])])
        tr = jn.simulate(m, 20.0, dt=0.05, stimuli=[jn.StepCurrent(p["amp"], 1.0, 100.0)], save_every=1.0,
                         summary=jn.SpikeSummary(capacity=4))
        return {"count": tr.spike_count, "v_mean": jnp.mean(tr.v)}

    grid = product(gnabar=np.linspace(0.06, 0.18, 8), amp=np.linspace(0.0, 0.4, 10))

    def on_chunk(c):
        with open(log, "a") as f:
            f.write(f"{c}\\n")
        time.sleep(sleep)

    res = jn.sweep(fn, grid, batch_size=16, out=None if out == "-" else out, on_chunk=on_chunk)
    np.savez(log + ".npz", **res)
    """
)

# The same sweep in each of two processes joined by jax.distributed (4 CPU devices
# each), as the multi-host recipe in jaxneuro/sweep.py; each process also splits an HH
# population over its own devices (backend="sharded") and checks it against one loop.
MULTI_PROCESS_SCRIPT = SCRIPT.replace(
    "out, sleep, log = sys.argv[1], float(sys.argv[2]), sys.argv[3]\n"
    "assert jax.local_device_count() == 8, jax.devices()",
    "out, sleep, log, port, pid = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])\n"
    "jax.distributed.initialize(coordinator_address=f'127.0.0.1:{port}', num_processes=2, process_id=pid)\n"
    "assert (jax.process_count(), jax.local_device_count(), jax.device_count()) == (2, 4, 8), jax.devices()\n"
    "log = f'{log}.{pid}'",
) + textwrap.dedent(
    """
    pop = jn.Compartment(length=20.0, diam=20.0, channels=[jn.channels.HH(gnabar=np.linspace(0.08, 0.16, 64))], n=64)
    run = lambda backend: jn.simulate(pop, 20.0, stimuli=[jn.StepCurrent(0.2, 1.0, 100.0)], save_every=1.0,
                                      backend=backend).v
    with open(log + ".sharded", "w") as f:
        f.write(str(float(jnp.max(jnp.abs(run("sharded") - run("xla"))))))
    """
)


def _run(tmp_path, out, sleep, log, wait=True):
    script = tmp_path / "sweep_script.py"
    script.write_text(SCRIPT)
    env = env_with_xla_flags("--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu")
    p = subprocess.Popen([sys.executable, str(script), str(out), str(sleep), str(log)], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if wait:
        output, _ = p.communicate(timeout=120)
        assert p.returncode == 0, output.decode()[-3000:]
    return p


def test_sweep_resumes_after_kill(tmp_path):
    out = tmp_path / "sweep"
    log1, log2, log_ref = tmp_path / "first.log", tmp_path / "second.log", tmp_path / "ref.log"
    # 80 parameter sets in chunks of 16: 5 chunks. Kill the first run once 2 exist.
    p = _run(tmp_path, out, 2.0, log1, wait=False)
    deadline = time.time() + 90
    while time.time() < deadline and len(list(out.glob("chunk_*.npz"))) < 2:
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    p.wait()
    done = sorted(out.glob("chunk_*.npz"))
    assert 2 <= len(done) < 5, "the first run should have been killed part way"
    before = {f.name: (f.stat().st_mtime_ns, f.stat().st_ino) for f in done}

    _run(tmp_path, out, 0.0, log2)
    recomputed = [int(x) for x in log2.read_text().split()]
    finished_first = {int(n[6:12]) for n in before}
    assert not set(recomputed) & finished_first, (recomputed, finished_first)
    assert sorted(recomputed + sorted(finished_first)) == list(range(5))
    for name, stamp in before.items():  # the old files were left alone
        f = out / name
        assert (f.stat().st_mtime_ns, f.stat().st_ino) == stamp
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["n"] == 80 and manifest["n_chunks"] == 5

    _run(tmp_path, "-", 0.0, log_ref)  # uninterrupted, in memory
    resumed = np.load(str(log2) + ".npz")
    ref = np.load(str(log_ref) + ".npz")
    np.testing.assert_array_equal(resumed["count"], ref["count"])
    np.testing.assert_array_equal(resumed["v_mean"], ref["v_mean"])
    # The sweep computed something: no drive, no spikes; the strongest drive fires.
    counts = ref["count"].reshape(8, 10)
    assert counts[:, 0].max() == 0 and counts[-1, -1] >= 2


# A sweep whose fn simulates a population with backend="auto": with two devices it is
# split ("sharded"), with one it runs one loop ("xla").
POPULATION_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import jax, jax.numpy as jnp, numpy as np
    import jaxneuro as jn

    out, log = sys.argv[1], sys.argv[2]

    def fn(p):
        pop = jn.Compartment(length=20.0, diam=20.0, n=128,
                             channels=[jn.channels.HH(gnabar=jnp.linspace(0.08, 0.16, 128))])
        tr = jn.simulate(pop, 5.0, stimuli=[jn.StepCurrent(p["amp"], 1.0, 100.0)], record=(),
                         summary=jn.SpikeSummary(capacity=4))
        return tr.spike_count

    grid = {"amp": np.linspace(0.0, 0.4, 6)}
    split = "shard_map" in str(jax.make_jaxpr(fn)({"amp": 0.2}))
    done = []
    res = jn.sweep(fn, grid, batch_size=2, out=out, on_chunk=done.append)
    np.save(log + ".npy", res)
    with open(log, "w") as f:
        json.dump({"devices": jax.local_device_count(), "split": split, "computed": done}, f)
    """
)


def test_sweep_resumes_with_another_device_count(tmp_path):
    """A sweep started with two devices resumes with one (another node, another core
    count) into the same folder: its fn's fingerprint was that of the
    traced program, which backend="auto" splits over the devices when there are several,
    so the resume was refused as "another fn"."""
    script = tmp_path / "population_sweep.py"
    script.write_text(POPULATION_SCRIPT)
    out = tmp_path / "s"

    def run(devices, log):
        env = env_with_xla_flags(f"--xla_force_host_platform_device_count={devices}", JAX_PLATFORMS="cpu")
        p = subprocess.run([sys.executable, str(script), str(out), str(log)], env=env, capture_output=True, check=False,
                           text=True, timeout=120)
        assert p.returncode == 0, (p.stdout + p.stderr)[-3000:]
        return json.loads(log.read_text()), np.load(str(log) + ".npy")

    first, res = run(2, tmp_path / "first.log")
    assert first == {"devices": 2, "split": True, "computed": [0, 1, 2]}  # the case at stake: split
    assert res.shape == (6, 128) and res[0].max() == 0 and res[-1].min() >= 1
    stamps = {f.name: f.stat().st_mtime_ns for f in out.glob("chunk_*.npz")}
    (out / "chunk_000001.npz").unlink()
    second, again = run(1, tmp_path / "second.log")
    assert second == {"devices": 1, "split": False, "computed": [1]}  # only the missing chunk
    np.testing.assert_array_equal(again, res)
    assert (out / "chunk_000000.npz").stat().st_mtime_ns == stamps["chunk_000000.npz"]  # left alone


# A sweep whose fn fails a run-time check (eqx.error_if: Trace.at past the run's end)
# for one parameter set, on two devices.
FAILING_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import jax, jax.numpy as jnp, numpy as np
    import jaxneuro as jn

    out, log = sys.argv[1], sys.argv[2]
    assert jax.local_device_count() == 2, jax.devices()

    def fn(p):
        tr = jn.simulate(jn.LIF(), 10.0, stimuli=[jn.StepCurrent(2.0)])
        return tr.at(p["t"]).v

    report = {}
    try:  # chunk 0 (1, 2 ms) finishes, chunk 1 (3 ms and 50 ms: past the run) fails
        jn.sweep(fn, {"t": jnp.array([1.0, 2.0, 3.0, 50.0])}, batch_size=2)
    except Exception as e:
        report["error"] = str(e) + " ".join(getattr(e, "__notes__", []))
        report["partial"] = np.asarray(e.partial_result).tolist()
    try:  # into a folder: the finished chunk is kept there
        jn.sweep(fn, {"t": jnp.array([1.0, 2.0, 3.0, 50.0])}, batch_size=2, out=out)
    except Exception as e:
        report["notes_with_out"] = getattr(e, "__notes__", [])

    def interrupt(c):
        raise KeyboardInterrupt

    try:  # Ctrl-C after the first chunk
        jn.sweep(fn, {"t": jnp.array([1.0, 2.0, 3.0, 4.0])}, batch_size=2, on_chunk=interrupt)
    except KeyboardInterrupt as e:
        report["interrupted"] = np.asarray(e.partial_result).tolist()
    # The process goes on: the same program again, all sets within the run.
    report["after"] = np.asarray(jn.sweep(fn, {"t": jnp.array([1.0, 2.0, 3.0, 4.0])}, batch_size=2)).tolist()
    with open(log, "w") as f:
        json.dump(report, f)
    """
)


def test_sweep_that_fails_keeps_finished_results_and_the_process(tmp_path):
    """A run-time check failing for one parameter set raises a catchable error naming
    the check (as one program split over the devices, the device whose check failed
    never joined the check's all-reduce, and XLA aborted the process after 40 s); the
    chunks finished before are the error's partial_result (without out=) or in the
    folder (with out=, as the error's note says), also on Ctrl-C."""
    script = tmp_path / "failing_sweep.py"
    script.write_text(FAILING_SCRIPT)
    log = tmp_path / "report.json"
    env = env_with_xla_flags("--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu")
    p = subprocess.run([sys.executable, str(script), str(tmp_path / "s"), str(log)], env=env, capture_output=True,
                       check=False, text=True, timeout=300)
    assert p.returncode == 0, (p.stdout + p.stderr)[-3000:]
    report = json.loads(log.read_text())
    assert "Trace.at: t must lie within the recorded range" in report["error"]
    assert "the first 2 of 4 parameter sets" in report["error"]
    after = report["after"]
    assert len(after) == 4 and after[0] < after[1] < after[2] < after[3] < -50.0  # charging towards threshold
    np.testing.assert_array_equal(report["partial"], after[:2])
    np.testing.assert_array_equal(report["interrupted"], after[:2])
    assert any("1 chunk(s) finished in this call are saved in" in n for n in report["notes_with_out"])
    assert (tmp_path / "s" / "chunk_000000.npz").exists() and not (tmp_path / "s" / "chunk_000001.npz").exists()


def _sweep_fn(p):
    """SCRIPT's swept function, in this process."""
    m = jn.Compartment(length=20.0, diam=20.0, channels=[jn.channels.HH(gnabar=p["gnabar"])])
    tr = jn.simulate(m, 20.0, dt=0.05, stimuli=[jn.StepCurrent(p["amp"], 1.0, 100.0)], save_every=1.0,
                     summary=jn.SpikeSummary(capacity=4))
    return {"count": tr.spike_count, "v_mean": np.mean(tr.v)}


def test_sweep_shared_by_two_processes(tmp_path):
    """Two processes joined by jax.distributed run the same sweep into one folder: each
    computes only its own chunks (c % 2 == process index) and both return the whole
    result, equal to the sweep's function evaluated here."""
    with socket.socket() as sock:  # a free port for the coordinator
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    script = tmp_path / "multi_process_sweep.py"
    script.write_text(MULTI_PROCESS_SCRIPT)
    out, log = tmp_path / "sweep", tmp_path / "run.log"
    env = env_with_xla_flags("--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    procs = [subprocess.Popen([sys.executable, str(script), str(out), "0", str(log), str(port), str(pid)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for pid in (0, 1)]
    try:
        outputs = [p.communicate(timeout=180)[0].decode() for p in procs]
    finally:
        for p in procs:
            p.kill()
    for p, output in zip(procs, outputs):
        assert p.returncode == 0, output[-3000:]

    grid = product(gnabar=np.linspace(0.06, 0.18, 8), amp=np.linspace(0.0, 0.4, 10))
    direct = [_sweep_fn({"gnabar": g, "amp": a}) for g, a in zip(grid["gnabar"], grid["amp"])]
    for pid in (0, 1):
        computed = [int(c) for c in (tmp_path / f"run.log.{pid}").read_text().split()]
        assert computed == [c for c in range(5) if c % 2 == pid]
        res = np.load(str(tmp_path / f"run.log.{pid}") + ".npz")
        np.testing.assert_array_equal(res["count"], [d["count"] for d in direct])
        np.testing.assert_allclose(res["v_mean"], [d["v_mean"] for d in direct], rtol=1e-10)
        # The population split over the process's own four devices: one loop's voltages.
        assert float((tmp_path / f"run.log.{pid}.sharded").read_text()) < 1e-9
    assert sorted(f.name for f in out.glob("chunk_*.npz")) == [f"chunk_{c:06d}.npz" for c in range(5)]
    assert np.sum([d["count"] for d in direct]) > 0


def test_sweep_in_process_matches_direct_vmap(tmp_path):
    def fn(p):
        m = jn.Compartment(length=20.0, diam=20.0, channels=[jn.channels.HH(gnabar=p["gnabar"])])
        tr = jn.simulate(m, 5.0, dt=0.05, stimuli=[jn.StepCurrent(p["amp"], 1.0, 100.0)], save_every=1.0)
        return tr.v[-1]

    grid = product(gnabar=np.linspace(0.06, 0.18, 3), amp=np.linspace(0.0, 0.4, 3))
    res = jn.sweep(fn, grid, batch_size=4, out=tmp_path / "s")
    direct = np.stack([fn({"gnabar": g, "amp": a}) for g, a in zip(grid["gnabar"], grid["amp"])])
    np.testing.assert_allclose(res, direct, rtol=1e-12)
    # Same call again: everything loaded from disk, nothing computed.
    calls = []
    again = jn.sweep(fn, grid, batch_size=4, out=tmp_path / "s", on_chunk=calls.append)
    assert calls == [] and np.array_equal(again, res)
    with pytest.raises(ValueError, match="different sweep"):
        jn.sweep(fn, grid, batch_size=2, out=tmp_path / "s")
    with pytest.raises(ValueError, match="same leading length"):
        jn.sweep(fn, {"gnabar": np.ones(3), "amp": np.ones(4)}, batch_size=2)
    with pytest.raises(ValueError, match="batch_size"):
        jn.sweep(fn, grid, batch_size=0)


def test_a_sweep_written_without_fn_check_is_named_so_on_resume(tmp_path):
    # Its manifest has no fingerprint of fn: resuming it with the default check was
    # refused as "results of another fn", which they need not be.
    grid = {"a": np.arange(6.0)}
    out = tmp_path / "s"
    first = jn.sweep(lambda p: p["a"] * 2.0, grid, batch_size=4, out=out, check_fn=False)
    with pytest.raises(ValueError, match=r"written with check_fn=False .*cannot be checked"):
        jn.sweep(lambda p: p["a"] * 2.0, grid, batch_size=4, out=out)
    with pytest.raises(ValueError, match=r"written with check_fn=False"):
        jn.sweep.load(out, lambda p: p["a"] * 2.0, grid)
    np.testing.assert_array_equal(jn.sweep.load(out, lambda p: p["a"] * 2.0, grid, check_fn=False), first)


def test_sweep_refuses_to_mix_results_of_another_fn_or_grid(tmp_path):
    # A folder holds one sweep: resuming it with another fn (other arithmetic, other
    # closed-over values, another output) or loading it with another grid is refused,
    # rather than mixing results; check_fn=False lets the same computation written
    # differently resume.
    grid = {"a": np.arange(10.0)}
    out = tmp_path / "s"
    first = jn.sweep(lambda p: p["a"] * 2.0, grid, batch_size=4, out=out)
    (out / "chunk_000001.npz").unlink()
    scale = np.array(2.0)
    for other in (lambda p: p["a"] * 100.0, lambda p: p["a"] * (scale + 1.0), lambda p: p["a"] > 3.0,
                  lambda p: {"x": p["a"] * 2.0}):
        with pytest.raises(ValueError, match="another fn|another structure"):
            jn.sweep(other, grid, batch_size=4, out=out)
    assert not (out / "chunk_000001.npz").exists()  # nothing was computed or mixed in
    # Chunks are read back by position: another result structure is refused even with
    # check_fn=False (renamed outputs were loaded under each other's names).
    with pytest.raises(ValueError, match=r"another structure .*check_fn=False does not skip this"):
        jn.sweep(lambda p: {"x": p["a"] * 2.0}, grid, batch_size=4, out=out, check_fn=False)
    again = jn.sweep(lambda p: 2.0 * p["a"] + 0.0, grid, batch_size=4, out=out, check_fn=False)
    np.testing.assert_array_equal(again, first)
    # jn.sweep is the module, callable as sweep() (jn.sweep.load used to be an
    # AttributeError: jn.sweep was the function).
    assert importlib.import_module("jaxneuro.sweep") is jn.sweep
    np.testing.assert_array_equal(jn.sweep.load(out, lambda p: p["a"] * 2.0, grid), first)
    with pytest.raises(ValueError, match="different sweep"):
        jn.sweep.load(out, lambda p: p["a"] * 2.0, {"a": np.arange(50.0)})
    # Results of the other precision (a process with or without jax_enable_x64) are
    # named as such, not as "another fn".
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["float"] == "float64"
    (out / "manifest.json").write_text(json.dumps(dict(manifest, float="float32")))
    for call in (lambda: jn.sweep(lambda p: p["a"] * 2.0, grid, batch_size=4, out=out),
                 lambda: jn.sweep.load(out, lambda p: p["a"] * 2.0, grid)):
        with pytest.raises(ValueError, match=r"computed in float32, and this process computes in float64"):
            call()


def test_sweep_refuses_chunk_files_without_a_manifest(tmp_path):
    # Chunk files in a folder without manifest.json (deleted to "reset" the sweep, or
    # chunks copied in) were taken as a new grid's results: a manifest was written
    # beside them and nothing computed.
    fn = lambda p: {"y": p["a"] * 2.0}
    out = tmp_path / "s"
    jn.sweep(fn, {"a": np.arange(6.0)}, batch_size=3, out=out)
    (out / "manifest.json").unlink()
    calls = []
    for grid in ({"a": np.arange(6.0) + 100.0}, {"a": np.arange(6.0)}):  # which one they hold is unknown
        with pytest.raises(ValueError, match=r"holds 2 chunk file\(s\) \(e\.g\. chunk_000000\.npz\) but no "
                                             r"manifest\.json.*delete the chunk files.*another out="):
            jn.sweep(fn, grid, batch_size=3, out=out, on_chunk=calls.append)
    assert calls == [] and not (out / "manifest.json").exists()
    for f in out.glob("chunk_*.npz"):
        f.unlink()
    res = jn.sweep(fn, {"a": np.arange(6.0) + 100.0}, batch_size=3, out=out, on_chunk=calls.append)
    assert calls == [0, 1]
    np.testing.assert_array_equal(res["y"], 2 * np.arange(6.0) + 200.0)


def test_sweep_grids_from_lists_and_quantities_and_named_errors():
    import saiunit as u

    res = jn.sweep(lambda p: p["a"] + p["b"], {"a": [1.0, 2.0, 3.0], "b": (10.0, 20.0, 30.0)}, batch_size=2)
    np.testing.assert_array_equal(res, [11.0, 22.0, 33.0])
    grid = product(I=np.array([100.0, 200.0]) * u.pA, g=[1.0, 2.0])
    currents = jn.sweep(lambda p: u.maybe_decimal(p["I"] / u.nA) * p["g"], grid, batch_size=3)
    np.testing.assert_allclose(currents, [0.1, 0.2, 0.2, 0.4])
    with pytest.raises(ValueError, match=r"\['k'\]: a scalar"):
        jn.sweep(lambda p: p["a"], {"a": np.ones(3), "k": 2.0})
    with pytest.raises(ValueError, match=r"\['a'\]: 3, \['b'\]: 4"):
        jn.sweep(lambda p: p["a"], {"a": np.ones(3), "b": np.ones(4)})


def test_sweep_grid_of_nested_lists_is_one_array_per_parameter():
    # Three parameter sets of two values each, given as rows: the same as the array (it
    # used to be read as two parameters of three sets, i.e. transposed: [9, 12]).
    rows = [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]
    res = jn.sweep(lambda p: p["x"][0] + 10.0 * p["x"][1], {"x": rows}, batch_size=2)
    np.testing.assert_array_equal(res, [21.0, 43.0, 65.0])
    np.testing.assert_array_equal(res, jn.sweep(lambda p: p["x"][0] + 10.0 * p["x"][1], {"x": np.asarray(rows)}))
    with pytest.raises(ValueError, match=r"grid\['x'\] is a nested list of numbers of uneven lengths"):
        jn.sweep(lambda p: p["x"][0], {"x": [[1.0, 2.0], [3.0]]})


def test_sweep_switches_must_be_booleans(tmp_path):
    # A string or a number is not taken for True/False (check_fn="no" used to count as
    # True, check_fn=0 as False), and on_chunk must be callable; nothing is computed.
    grid = {"a": np.arange(4.0)}
    calls = []
    for kwargs, name in (({"check_fn": "no"}, "check_fn"), ({"check_fn": 0}, "check_fn"),
                         ({"load": "yes"}, "load"), ({"progress": 1}, "progress"),
                         ({"on_chunk": 3}, "on_chunk")):
        with pytest.raises(ValueError, match=f"sweep: {name} expects"):
            jn.sweep(lambda p: p["a"] + len(calls), grid, batch_size=2, out=tmp_path / "s", **kwargs)
    assert not (tmp_path / "s").exists()
    res = jn.sweep(lambda p: p["a"] * 2.0, grid, batch_size=2, out=tmp_path / "s", check_fn=np.bool_(False))
    sweep_module = importlib.import_module("jaxneuro.sweep")
    with pytest.raises(ValueError, match="load: check_fn expects True or False"):
        sweep_module.load(tmp_path / "s", lambda p: p["a"] * 2.0, grid, check_fn="off")
    np.testing.assert_array_equal(sweep_module.load(tmp_path / "s", lambda p: p["a"] * 2.0, grid,
                                                    check_fn=False), res)


def test_sweep_manifest_keys_grids_and_paths(tmp_path, monkeypatch):
    """A manifest is created exclusively (two sweeps started into
    one new folder at once were both accepted, and the folder held one grid's manifest
    and the other's results); a typed random key fn closes over is part of its
    fingerprint (only its type was); lists of quantities are a quantity axis; non-numbers
    and empty axes are named; out="" is refused and "~" expanded; waiting for other
    processes' files ends with a TimeoutError naming them."""
    from jaxneuro import sweep as S

    out = tmp_path / "race"
    out.mkdir()
    S._create_manifest(out / "manifest.json", {"n": 1})
    S._create_manifest(out / "manifest.json", {"n": 2})  # the later one does not overwrite
    assert json.loads((out / "manifest.json").read_text()) == {"n": 1}
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json"]  # no temporary files left

    grid = {"a": np.arange(6.0)}

    def noisy(key):
        return lambda p: p["a"] + jax.random.normal(key)

    first = tmp_path / "key"
    jn.sweep(noisy(jax.random.key(0)), grid, batch_size=2, out=first)
    (first / "chunk_000002.npz").unlink()
    with pytest.raises(ValueError, match="another fn"):
        jn.sweep(noisy(jax.random.key(1)), grid, batch_size=2, out=first)
    assert S._fn_fingerprint(noisy(jax.random.key(0)), grid) == S._fn_fingerprint(noisy(jax.random.key(0)), grid)

    amps = jn.sweep(lambda p: p["amp"], {"amp": [0 * u.pA, 10 * u.pA, 20 * u.pA]}, batch_size=2)
    np.testing.assert_allclose(u.get_mantissa(amps.to(u.pA)), [0.0, 10.0, 20.0])
    for bad, what in (({"name": ["a", "b"]}, r"grid\['name'\] expects numbers"),
                      ({"x": [1.0, None]}, r"grid\['x'\] expects numbers"),
                      ({"a": []}, r"grid\['a'\] is empty")):
        with pytest.raises(ValueError, match=what):
            jn.sweep(lambda p: 0.0, bad)
    with pytest.raises(ValueError, match=r"out expects a folder path, got ''"):
        jn.sweep(lambda p: p["a"], grid, out="")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    jn.sweep(lambda p: p["a"], grid, batch_size=3, out="~/tilde")
    assert (tmp_path / "home" / "tilde" / "manifest.json").is_file()

    with pytest.raises(TimeoutError, match=r"waited 0.2 s for 1 file\(s\) .*\['chunk_000007.npz'\].*Run every process again"):
        S._wait_for(lambda: ["chunk_000007.npz"], tmp_path, 0.2, poll_s=0.05)
    with pytest.raises(ValueError, match="timeout expects None or a positive number"):
        jn.sweep(lambda p: p["a"], grid, timeout=0)


def test_sweep_results_read_back_from_disk_keep_dtypes_units_and_are_checked(tmp_path):
    # bfloat16 came back from the chunk files as raw bytes (|V2); a result carrying a
    # unit failed with out= (a NumPy "inhomogeneous shape" error); a damaged chunk gave a
    # bare BadZipFile/EOFError and a short one was accepted (19 rows for 20 sets).
    import ml_dtypes

    grid = {"a": np.arange(6.0)}
    out = tmp_path / "bf16"
    first = jn.sweep(lambda p: (p["a"] * 2.0).astype(jax.numpy.bfloat16), grid, batch_size=4, out=out)
    again = jn.sweep(lambda p: (p["a"] * 2.0).astype(jax.numpy.bfloat16), grid, batch_size=4, out=out)
    assert first.dtype == again.dtype == ml_dtypes.bfloat16
    np.testing.assert_array_equal(again.astype(np.float32), np.arange(6.0) * 2.0)

    volts = jn.sweep(lambda p: {"v": p["a"] * u.mV}, grid, batch_size=4, out=tmp_path / "q")
    np.testing.assert_array_equal(u.get_mantissa(volts["v"].to(u.mV)), np.arange(6.0))
    loaded = jn.sweep.load(tmp_path / "q", lambda p: {"v": p["a"] * u.mV}, grid)
    assert loaded["v"].unit == u.mV

    out = tmp_path / "damaged"
    fn = lambda p: p["a"] + 1.0  # noqa: E731
    jn.sweep(fn, grid, batch_size=4, out=out)
    chunk = out / "chunk_000001.npz"
    chunk.write_bytes(chunk.read_bytes()[:20])
    with pytest.raises(ValueError, match=r"chunk file .*chunk_000001\.npz is damaged .*delete it"):
        jn.sweep(fn, grid, batch_size=4, out=out)
    np.savez(chunk, np.zeros(2, np.int32 if jax.numpy.result_type(float) == np.float32 else np.int64))
    with pytest.raises(ValueError, match=r"chunk_000001\.npz holds arrays of dtypes \['int(32|64)'\], expected \['float"):
        jn.sweep.load(out, fn, grid)  # (same size as the floats: their bits were read as numbers)
    np.savez(chunk, np.zeros(1))  # one row where the last chunk holds two
    with pytest.raises(ValueError, match=r"chunk_000001\.npz holds arrays of shapes \[\(1,\)\], expected \[\(2,\)\]"):
        jn.sweep.load(out, fn, grid)
    chunk.unlink()
    np.testing.assert_array_equal(jn.sweep(fn, grid, batch_size=4, out=out), np.arange(6.0) + 1.0)
    (out / "manifest.json").write_text("[]")
    with pytest.raises(ValueError, match=r"manifest\.json is not a sweep's manifest"):
        jn.sweep(fn, grid, batch_size=4, out=out)


def test_sweep_fingerprints_host_callbacks_and_names_what_differs(tmp_path):
    # Two fns differing only in the function behind jax.pure_callback had one
    # fingerprint, so a resume mixed their results.
    import jax.numpy as jnp

    def through_host(k):
        return lambda p: jax.pure_callback(lambda x: np.asarray(x * k, np.float64),
                                           jax.ShapeDtypeStruct((), jnp.float64), p["a"], vmap_method="sequential")

    grid = {"a": np.arange(8.0)}
    out = tmp_path / "cb"
    jn.sweep(through_host(2.0), grid, batch_size=2, out=out)
    (out / "chunk_000003.npz").unlink()
    with pytest.raises(ValueError, match="another fn"):
        jn.sweep(through_host(3.0), grid, batch_size=2, out=out)
    np.testing.assert_array_equal(jn.sweep(through_host(2.0), grid, batch_size=2, out=out), np.arange(8.0) * 2)
    # The refusal names what differs, not two dicts of hashes.
    with pytest.raises(ValueError, match=r"different sweep: batch_size 2 there, 4 here; n_chunks 4 there, 2 here; give"):
        jn.sweep(through_host(2.0), grid, batch_size=4, out=out)
    with pytest.raises(ValueError, match=r"different sweep: the grid's values \(or dtypes\); give"):
        jn.sweep(through_host(2.0), {"a": np.arange(8.0) + 1}, batch_size=2, out=out)


def test_sweep_inputs_checked_before_computing(tmp_path):
    # A random key returned was refused only after the first chunk was computed;
    # timeout in a time unit was refused as "expects dimensionless"; product refused a
    # list of quantities that sweep takes; bfloat16 grids were "not numbers"; a
    # big-endian array failed inside JAX; an out folder that cannot be created raised a
    # raw OSError.
    grid = {"a": np.arange(4.0)}
    calls = []
    with pytest.raises(ValueError, match=r"sweep: fn returns a random key at result\['k'\]; return jax\.random\.key_data"):
        jn.sweep(lambda p: {"k": jax.random.fold_in(jax.random.key(0), p["a"].astype(int))}, grid,
                 batch_size=2, on_chunk=calls.append)
    assert calls == []
    np.testing.assert_array_equal(jn.sweep(lambda p: p["a"], grid, batch_size=2, timeout=5 * u.second), np.arange(4.0))
    with pytest.raises(ValueError, match=r"sweep: timeout expects .* seconds, got -0\.005"):
        jn.sweep(lambda p: p["a"], grid, timeout=-5 * u.ms)
    axes = product(v=[1 * u.mV, 2 * u.mV], g=[1.0, 2.0])
    np.testing.assert_array_equal(u.get_mantissa(axes["v"].to(u.mV)), [1.0, 1.0, 2.0, 2.0])
    with pytest.raises(ValueError, match=r"product: axis 'a' expects numbers"):
        product(a=["x", "y"])
    np.testing.assert_array_equal(
        jn.sweep(lambda p: p["a"] * 2, {"a": np.arange(3.0).astype(jax.numpy.bfloat16)}).astype(float), [0.0, 2.0, 4.0])
    np.testing.assert_array_equal(jn.sweep(lambda p: p["a"] * 2, {"a": np.arange(3.0).astype(">f8")}), [0.0, 2.0, 4.0])
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ValueError, match=r"sweep: out=.*cannot be created"):
        jn.sweep(lambda p: p["a"], grid, out=blocker / "sub")


def test_sweep_of_several_processes_needs_out(monkeypatch):
    # Each process computes only its chunks (c % P); without out= the others' never
    # reached it and assembling the result raised a bare KeyError after computing.
    monkeypatch.setattr(jax, "process_count", lambda: 2)
    calls = []
    with pytest.raises(ValueError, match=r"sweep: with 2 processes .* out=, which is not given; give every process"):
        jn.sweep(lambda p: p["a"], {"a": np.arange(4.0)}, batch_size=2, on_chunk=calls.append)
    assert calls == []


def test_sweep_refuses_grid_values_jax_would_change_without_64_bit_mode():
    # Without 64-bit mode int64 2**40 + 5 became 5 and 1e300 became inf, silently.
    with jax.enable_x64(False):
        with pytest.raises(ValueError, match=r"grid\['s'\] holds int64 values .*would become np\.int32\(5\)"):
            jn.sweep(lambda p: p["s"], {"s": np.array([2**40 + 5, 7], np.int64)})
        with pytest.raises(ValueError, match=r"grid\['s'\] holds float64 values .*1e\+300.*inf"):
            jn.sweep(lambda p: p["s"], {"s": np.array([1e300, 1.0])})
        small = jn.sweep(lambda p: p["s"] * 2, {"s": np.array([2**20, 7], np.int64)})
        np.testing.assert_array_equal(small, [2**21, 14])


def test_sweep_removes_temporary_files_left_by_killed_processes(tmp_path):
    # A process killed while writing a chunk left its hidden temporary file for good.
    out = tmp_path / "s"
    grid = {"a": np.arange(4.0)}
    jn.sweep(lambda p: p["a"], grid, batch_size=2, out=out)
    old, fresh = out / ".chunk_000001.npz.123.tmp", out / ".chunk_000001.npz.456.tmp"
    old.write_bytes(b"partial")
    fresh.write_bytes(b"being written")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    np.testing.assert_array_equal(jn.sweep(lambda p: p["a"], grid, batch_size=2, out=out), np.arange(4.0))
    assert not old.exists() and fresh.exists()  # a recent one may belong to a running process
