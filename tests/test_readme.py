"""The README's library examples run as printed and learn."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_block(heading: str) -> str:
    """The first ```python block after the README heading `heading`."""
    text = README.read_text()
    start = text.index(f"\n## {heading}\n")
    return re.search(r"```python\n(.*?)```", text[start:], re.S).group(1)


def test_readme_python_example_runs(tmp_path, monkeypatch, capsys):
    code = python_block("Using the library")
    monkeypatch.chdir(tmp_path)  # it saves model.npz
    namespace: dict = {}
    exec(compile(code, str(README), "exec"), namespace)
    assert namespace["ce"] < 0.1  # one epoch of Adam on 9,000 digits
    assert "Total params: 542,230" in capsys.readouterr().out
    assert (tmp_path / "model.npz").is_file()


def test_write_your_own_layer_example_checks_and_trains(capsys):
    namespace: dict = {}
    exec(compile(python_block("Write your own layer"), str(README), "exec"), namespace)
    error = float(capsys.readouterr().out.split("test error:")[-1])
    assert error < 0.1  # 2 epochs on 3,000 digits
    swish = namespace["Swish"]

    class WrongSwish(swish):  # the README's sign slip: check_layer must catch it
        def derivative(self, dA):
            return dA * (self.s + self.Z * self.s * (1 + self.s))

    with pytest.raises(AssertionError, match="WrongSwish: the gradient of the input"):
        namespace["check_layer"](WrongSwish(), (2, 5, 5, 3))
