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


def test_global_average_pool_example_checks_and_a_layer_without_output_shape_is_refused():
    text = README.read_text()
    start = text.index("Global average pooling, with no activation function")
    code = re.search(r"```python\n(.*?)```", text[start:], re.S).group(1)
    namespace: dict = {}
    exec(compile(code, str(README), "exec"), namespace)
    assert namespace["net"].shapes((28, 28, 1)) == [(1,), (10,)]
    pool = namespace["GlobalAveragePool"]

    class Forgetful(namespace["Layer"]):  # forward and backward, but no output_shape
        forward_propagate = pool.forward_propagate
        backpropagate = pool.backpropagate

    net = namespace["Net"]([Forgetful(), namespace["FCLayer_Softmax"](10)])
    np = namespace["np"]
    with pytest.raises(NotImplementedError, match=r"Forgetful must define output_shape\(self, "
                                                  r"input_shape\) -> the shape of one output"):
        net.train(np.zeros((2, 28, 28, 1)), np.arange(2), 0.1)


def test_follow_one_training_step_points_at_each_function():
    """Every `file:line` in the section is the line where the function named in the same
    place of its row starts, inside the class (or module) the name gives."""
    text = README.read_text()
    section = text[text.index("\n## Follow one training step\n"):]
    section = section[: section.index("\n## ", 1)]
    root = README.parent
    rows = [line for line in section.splitlines() if line.startswith("| ") and ".py:" in line]
    assert len(rows) >= 12
    for row in rows:
        _, names, places = row.strip("| ").split(" | ")
        functions = re.findall(r"`([\w.]+)`", names)
        spots = re.findall(r"`([\w/]+\.py):(\d+)`", places)
        assert len(functions) == len(spots), row
        for name, (path, line) in zip(functions, spots, strict=True):
            lines = (root / path).read_text().splitlines()[: int(line)]
            owner, function = name.split(".")
            assert re.match(rf"\s*def {function}\(", lines[-1]), f"{path}:{line}: {lines[-1]!r}"
            classes = [m.group(1) for m in map(re.compile(r"class (\w+)").match, lines) if m]
            assert owner == Path(path).stem or classes[-1] == owner, f"{path}:{line} {name}"
    line = re.search(r"`Net.train` itself \(`cnn_numpy/net.py:(\d+)`\)", section).group(1)
    assert "def train(" in (root / "cnn_numpy/net.py").read_text().splitlines()[int(line) - 1]
