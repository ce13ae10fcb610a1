"""``jaxneuro tour``: the table, its JSON, and the exit code."""

import json

import pytest

from jaxneuro import cli
from jaxneuro.tour import runner
from jaxneuro.tour.scenarios import Check


def test_tour_runs_every_seed_scenario_and_passes(tmp_path, capsys):
    # The JSON may go into the --out folder the tour itself makes.
    out = tmp_path / "new" / "figs"
    js = out / "tour.json"
    code = cli.main(["tour", "--out", str(out), "--json", str(js)])
    printed = capsys.readouterr().out
    rows = json.loads(js.read_text(), parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert any(r["value"] == "inf" for r in rows)  # the LIF's unending ISIs, as strict JSON allows
    failed = [r for r in rows if not r["ok"]]
    assert code == 0, failed
    assert set(rows[0]) == {"scenario", "quantity", "value", "expected", "ok"}
    scenarios = {r["scenario"] for r in rows}
    assert {"seed000", "seed001", "seed002", "seed003", "seed004"} <= scenarios
    # The table carries the seeds' published numbers.
    by_quantity = {r["quantity"]: r for r in rows}
    assert by_quantity["Rin control (MOhm)"]["expected"] == pytest.approx(50.0)
    assert by_quantity["plateau v (mV) vs tutorial"]["expected"] == pytest.approx(-63.65)
    assert "max |v - NEURON| (mV)" in by_quantity
    assert "FAIL" not in printed and "pass" in printed
    assert {p.name for p in out.glob("*.png")} >= {
        "seed000_input_resistance.png", "seed001_passive_soma.png", "seed002_cable.png",
        "seed003_gap_junctions.png", "seed004_ina_ba2002.png",
    }


def test_tour_exits_nonzero_when_a_value_is_off(tmp_path, monkeypatch):
    def wrong(out):
        return [Check.near("fake", "x", 1.0, 2.0, rtol=0.01)]

    def broken(out):
        raise RuntimeError("boom")

    monkeypatch.setattr(runner, "SCENARIOS", (wrong, broken))
    js = tmp_path / "t.json"
    assert cli.main(["tour", "--out", str(tmp_path), "--json", str(js)]) == 1
    rows = json.loads(js.read_text())
    assert [r["ok"] for r in rows] == [False, False]
    assert "boom" in rows[1]["quantity"]


def test_tour_passes_in_float32(tmp_path):
    """Accelerators default to float32: the tour's checks hold there too (run in a
    subprocess, since float64 is switched on for the rest of the tests)."""
    import subprocess
    import sys

    js = tmp_path / "t32.json"
    code = ("import sys; from jaxneuro import cli; "
            f"sys.exit(cli.main(['tour', '--float32', '--no-neuron', '--out', {str(tmp_path)!r}, '--json', {str(js)!r}]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    rows = json.loads(js.read_text())
    assert proc.returncode == 0, [r for r in rows if not r["ok"]]
    assert "float32" in proc.stdout and len(rows) > 40


def test_bad_paths_are_reported_before_the_tour_runs(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default --out is ./jaxneuro-tour
    afile = tmp_path / "a_file"
    afile.write_text("")
    for argv, message in ((["tour", "--out", str(afile)], "exists and is not a folder"),
                          (["tour", "--out", str(afile / "sub")], "cannot make the folder"),
                          (["tour", "--json", str(tmp_path / "missing" / "x.json")], "does not exist")):
        with pytest.raises(SystemExit) as exit_info:
            cli.main(argv)
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert message in err and err.startswith("usage: jaxneuro tour")  # the tour's usage, not the top level's
    # A refused command line makes no folder (the default --out was made before --json
    # was checked, and stayed behind empty).
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["tour", "--bogus"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.startswith("usage: jaxneuro tour") and "unrecognized arguments: --bogus" in err
    with pytest.raises(SystemExit):
        cli.main(["--version"])
    assert capsys.readouterr().out.startswith("jaxneuro ")
    with pytest.raises(SystemExit):
        cli.main(["tour", "--help"])
    assert "check each number against its published, analytic or NEURON value" in " ".join(capsys.readouterr().out.split())
