"""The README's library example runs as printed and learns."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_example_runs(tmp_path, monkeypatch, capsys):
    code = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    monkeypatch.chdir(tmp_path)  # it saves model.npz
    namespace: dict = {}
    exec(compile(code, str(README), "exec"), namespace)
    assert namespace["ce"] < 0.1  # one epoch of Adam on 9,000 digits
    assert "Total params: 542,230" in capsys.readouterr().out
    assert (tmp_path / "model.npz").is_file()
