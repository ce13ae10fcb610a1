"""The README's code runs and prints what it says."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_examples_run_and_match_the_comments(capsys):
    import matplotlib

    matplotlib.use("Agg")
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert blocks
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    printed = capsys.readouterr().out.split()
    assert float(printed[0]) == pytest.approx(-63.634, abs=1e-3)
    assert float(printed[1]) == pytest.approx(6.3657, rel=1e-4)
    grad = namespace["jax"].grad(namespace["loss"])(1e-4)
    assert float(grad) > 0  # more leak, lower Rin, further from 8 MΩ


def test_readme_setup_commands():
    text = README.read_text()
    commands = re.findall(r"```bash\n(.*?)\n```", text, re.S)
    assert commands == ['pip install -e . && jaxneuro tour', 'pip install -e ".[test]" && pytest']
