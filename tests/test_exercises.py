"""The exercises (issue 32): the files a learner fills in, the checker that grades them and
names their mistakes, and their functions trained as an engine.

The correct answers live only here: LOOPS is the course's way (four loops per pass, adapted
from the naive engine), WINDOWS a faster correct way (a loop over window positions, the
batch and the filters at once).  fill() writes them into the shipped templates in a tmp
folder, one function body at a time, so every test runs the learner's real files.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import inspect
import json
import re
import textwrap
from pathlib import Path

import numpy as np
import pytest

from cnn_numpy import (
    ConvLayer,
    ConvLayer_ReLU,
    FCLayer_ReLU,
    FCLayer_Softmax,
    FlatLayer,
    Net,
    PoolLayer_Avg,
    PoolLayer_Max,
)
from cnn_numpy.cli import main
from cnn_numpy.engines import ENGINES, get_engine
from cnn_numpy.exercises import (
    NAMES,
    check_exercises,
    compare_engines,
    load_engine,
    write_exercises,
)
from cnn_numpy.exercises.files import template_text
from cnn_numpy.exercises.spec import ENGINE_EXERCISES, PARTS
from cnn_numpy.models import build_model
from cnn_numpy.testing import check_layer

ROOT = Path(__file__).resolve().parents[1]

LOOPS = {
    "zero_pad": """
        return np.pad(X, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    """,
    "conv_single_step": """
        return float(np.sum(window * W) + b)
    """,
    "conv_forward": """
        xp = zero_pad(x, pad)
        n, ih, iw, _ = xp.shape
        fw, nf = W.shape[0], W.shape[3]
        oh, ow = (ih - fw) // stride + 1, (iw - fw) // stride + 1
        Z = np.zeros((n, oh, ow, nf), dtype=x.dtype)
        for i in range(n):
            for h in range(oh):
                for w in range(ow):
                    window = xp[i, h * stride:h * stride + fw, w * stride:w * stride + fw, :]
                    for f in range(nf):
                        Z[i, h, w, f] = conv_single_step(window, W[:, :, :, f], b[f])
        return Z, (xp, W, stride, pad)
    """,
    "conv_backward": """
        xp, W, stride, pad = cache
        n, oh, ow, nf = dZ.shape
        fw = W.shape[0]
        dxp = np.zeros(xp.shape, dtype=dZ.dtype)
        dW = np.zeros(W.shape, dtype=dZ.dtype)
        db = np.zeros(nf, dtype=dZ.dtype)
        for i in range(n):
            for h in range(oh):
                for w in range(ow):
                    rows = slice(h * stride, h * stride + fw)
                    cols = slice(w * stride, w * stride + fw)
                    for f in range(nf):
                        g = dZ[i, h, w, f]
                        dxp[i, rows, cols, :] += W[:, :, :, f] * g
                        dW[:, :, :, f] += xp[i, rows, cols, :] * g
                        db[f] += g
        return dxp[:, pad:dxp.shape[1] - pad, pad:dxp.shape[2] - pad, :], dW, db
    """,
    "max_pool_forward": """
        n, ih, iw, c = x.shape
        oh, ow = (ih - fw) // stride + 1, (iw - fw) // stride + 1
        A = np.zeros((n, oh, ow, c), dtype=x.dtype)
        for i in range(n):
            for h in range(oh):
                for w in range(ow):
                    for k in range(c):
                        A[i, h, w, k] = np.max(x[i, h * stride:h * stride + fw,
                                                 w * stride:w * stride + fw, k])
        return A, (x, fw, stride)
    """,
    "create_mask_from_window": """
        mask = np.zeros(window.shape, dtype=bool)
        mask[np.unravel_index(np.argmax(window), window.shape)] = True
        return mask
    """,
    "max_pool_backward": """
        x, fw, stride = cache
        n, oh, ow, c = dout.shape
        dx = np.zeros(x.shape, dtype=dout.dtype)
        for i in range(n):
            for h in range(oh):
                for w in range(ow):
                    rows = slice(h * stride, h * stride + fw)
                    cols = slice(w * stride, w * stride + fw)
                    for k in range(c):
                        mask = create_mask_from_window(x[i, rows, cols, k])
                        dx[i, rows, cols, k] += mask * dout[i, h, w, k]
        return dx
    """,
    "avg_pool_forward": """
        n, ih, iw, c = x.shape
        oh, ow = (ih - fw) // stride + 1, (iw - fw) // stride + 1
        A = np.zeros((n, oh, ow, c), dtype=x.dtype)
        for i in range(n):
            for h in range(oh):
                for w in range(ow):
                    for k in range(c):
                        A[i, h, w, k] = np.mean(x[i, h * stride:h * stride + fw,
                                                  w * stride:w * stride + fw, k])
        return A, (x.shape, fw, stride)
    """,
    "distribute_value": """
        return np.full(shape, dz / (shape[0] * shape[1]))
    """,
    "avg_pool_backward": """
        x_shape, fw, stride = cache
        n, oh, ow, c = dout.shape
        dx = np.zeros(x_shape, dtype=dout.dtype)
        for i in range(n):
            for h in range(oh):
                for w in range(ow):
                    rows = slice(h * stride, h * stride + fw)
                    cols = slice(w * stride, w * stride + fw)
                    for k in range(c):
                        dx[i, rows, cols, k] += distribute_value(dout[i, h, w, k], (fw, fw))
        return dx
    """,
    "dense_forward": """
        return A_prev @ W.T + b, (A_prev, W)
    """,
    "dense_backward": """
        A_prev, W = cache
        return dZ @ W, dZ.T @ A_prev, dZ.sum(axis=0)
    """,
    "softmax_cross_entropy": """
        shifted = Z - Z.max(axis=1, keepdims=True)
        log_A = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        n = Z.shape[0]
        loss = -float(np.sum(Y * log_A)) / n
        return loss, ((np.exp(log_A) - Y) / n).astype(Z.dtype)
    """,
}

WINDOWS = {**LOOPS, **{
    "conv_forward": """
        xp = zero_pad(x, pad)
        n, ih, iw, _ = xp.shape
        fw, nf = W.shape[0], W.shape[3]
        oh, ow = (ih - fw) // stride + 1, (iw - fw) // stride + 1
        Z = np.zeros((n, oh, ow, nf), dtype=x.dtype)
        for h in range(oh):
            for w in range(ow):
                window = xp[:, h * stride:h * stride + fw, w * stride:w * stride + fw, :]
                Z[:, h, w, :] = np.tensordot(window, W, axes=3) + b
        return Z, (xp, W, stride, pad)
    """,
    "conv_backward": """
        xp, W, stride, pad = cache
        n, oh, ow, nf = dZ.shape
        fw = W.shape[0]
        dxp = np.zeros(xp.shape, dtype=dZ.dtype)
        dW = np.zeros(W.shape, dtype=dZ.dtype)
        for h in range(oh):
            for w in range(ow):
                rows = slice(h * stride, h * stride + fw)
                cols = slice(w * stride, w * stride + fw)
                g = dZ[:, h, w, :]
                dxp[:, rows, cols, :] += np.tensordot(g, W, axes=([1], [3]))
                dW += np.tensordot(xp[:, rows, cols, :], g, axes=([0], [0]))
        db = dZ.sum(axis=(0, 1, 2))
        return dxp[:, pad:dxp.shape[1] - pad, pad:dxp.shape[2] - pad, :], dW, db
    """,
    "max_pool_forward": """
        n, ih, iw, c = x.shape
        oh, ow = (ih - fw) // stride + 1, (iw - fw) // stride + 1
        A = np.zeros((n, oh, ow, c), dtype=x.dtype)
        for h in range(oh):
            for w in range(ow):
                A[:, h, w, :] = x[:, h * stride:h * stride + fw,
                                  w * stride:w * stride + fw, :].max(axis=(1, 2))
        return A, (x, fw, stride)
    """,
    "max_pool_backward": """
        x, fw, stride = cache
        n, oh, ow, c = dout.shape
        dx = np.zeros(x.shape, dtype=dout.dtype)
        for h in range(oh):
            for w in range(ow):
                rows = slice(h * stride, h * stride + fw)
                cols = slice(w * stride, w * stride + fw)
                first = x[:, rows, cols, :].reshape(n, fw * fw, c).argmax(axis=1)
                mask = np.arange(fw * fw)[None, :, None] == first[:, None, :]
                dx[:, rows, cols, :] += (mask * dout[:, h, w, None, :]).reshape(n, fw, fw, c)
        return dx
    """,
}}


def body(code: str) -> str:
    """A solution's lines, indented as a function body."""
    return textwrap.indent(textwrap.dedent(code).strip("\n"), "    ")


def fill(folder: Path, solutions: dict[str, str], *, only=None, replace=None) -> Path:
    """Write the exercise files into folder with the given functions' bodies filled in
    (all of them, or those in `only`); replace: (old, new) pairs applied afterwards, each
    in the first file that has old (a planted mistake)."""
    write_exercises(folder)
    unused = list(replace or ())
    for part in PARTS:
        text = template_text(part)
        for name, code in solutions.items():
            if only is None or name in only:
                text = text.replace(f'    raise NotImplementedError("write {name}")', body(code))
        for old, new in list(unused):  # in the first file that has it
            if old in text:
                assert text.count(old) == 1, old
                text = text.replace(old, new)
                unused.remove((old, new))
        (folder / part).write_text(text, encoding="utf-8")
    assert not unused, f"not found in the exercise files: {unused}"
    return folder


@pytest.fixture
def forget_engines():
    """Unregister the engines a test registers (ENGINES is the process's)."""
    before = set(ENGINES)
    yield
    for name in set(ENGINES) - before:
        del ENGINES[name]


MASK_BODY = """mask = np.zeros(window.shape, dtype=bool)
    mask[np.unravel_index(np.argmax(window), window.shape)] = True
    return mask"""
MAX_WINDOWS = """cols = slice(w * stride, w * stride + fw)
                for k in range(c):
                    mask"""

#: The issue's mistakes, each planted in LOOPS on its own: (old, new) replacements, the
#: function that must fail, and words of its first message.
PLANTED = {
    "bias added to every product": (
        [("return float(np.sum(window * W) + b)", "return float(np.sum(window * W + b))")],
        "conv_single_step", "the bias is added to every product of the window instead of "
                            "once per window"),
    "bias added to every product, in conv_forward": (
        [("Z[i, h, w, f] = conv_single_step(window, W[:, :, :, f], b[f])",
          "Z[i, h, w, f] = np.sum(window * W[:, :, :, f] + b[f])")],
        "conv_forward", "instead of once per window"),
    "stride ignored in conv_backward": (
        [("rows = slice(h * stride, h * stride + fw)", "rows = slice(h, h + fw)"),
         ("cols = slice(w * stride, w * stride + fw)", "cols = slice(w, w + fw)")],
        "conv_backward", "the stride is ignored in the backward pass"),
    "stride ignored in max_pool_backward": (
        [("rows = slice(h * stride, h * stride + fw)\n" + " " * 16 + MAX_WINDOWS,
          "rows = slice(h, h + fw)\n" + " " * 16 + MAX_WINDOWS.replace("w * stride", "w"))],
        "max_pool_backward", "the stride is ignored in the backward pass"),
    "mask taken with >": (
        [(MASK_BODY, "return window > np.max(window)")],
        "create_mask_from_window", "the mask is taken with > instead of == against the maximum"),
    "average pooling not divided": (
        [("A[i, h, w, k] = np.mean(", "A[i, h, w, k] = np.sum(")],
        "avg_pool_forward", "average pooling is not divided by the window size"),
    "distribute_value not divided": (
        [("return np.full(shape, dz / (shape[0] * shape[1]))", "return np.full(shape, dz)")],
        "distribute_value", "average pooling is not divided by the window size"),
    "padding left on the input gradient": (
        [("return dxp[:, pad:dxp.shape[1] - pad, pad:dxp.shape[2] - pad, :], dW, db",
          "return dxp, dW, db")],
        "conv_backward", "the padding is left on the input gradient"),
    "conv gradient written, not added": (
        [("dxp[i, rows, cols, :] += W", "dxp[i, rows, cols, :] = W")],
        "conv_backward", "a gradient is written (=) where it should be added (+=)"),
    "max pool gradient written, not added": (
        [("dx[i, rows, cols, k] += mask", "dx[i, rows, cols, k] = mask")],
        "max_pool_backward", "a gradient is written (=) where it should be added (+=)"),
    "gradient added onto the last call's": (
        [("return Z, (xp, W, stride, pad)",
          "return Z, (xp, W, stride, pad, np.zeros(W.shape, dtype=x.dtype))"),
         ("xp, W, stride, pad = cache", "xp, W, stride, pad, dW = cache"),
         ("    dW = np.zeros(W.shape, dtype=dZ.dtype)\n", "")],
        "conv_backward", "a gradient is added where it should be written"),
    "gradient added onto the input": (
        [("dxp = np.zeros(xp.shape, dtype=dZ.dtype)", "dxp = xp.copy()")],
        "conv_backward", "a gradient is added where it should be written"),
    # beyond the list
    "every tied maximum marked": (
        [(MASK_BODY, "return window == np.max(window)")],
        "create_mask_from_window", "every place of a repeated maximum is marked"),
    "softmax without its maximum taken away": (
        [("shifted = Z - Z.max(axis=1, keepdims=True)", "shifted = Z")],
        "softmax_cross_entropy", "softmax overflows"),
    "a float64 output for float32 input": (
        [("Z = np.zeros((n, oh, ow, nf), dtype=x.dtype)", "Z = np.zeros((n, oh, ow, nf))")],
        "conv_forward", "Z has dtype float64, but x is float32"),
}

#: Broken exercise files: (old, new) replacements in LOOPS, and check's first line.
BROKEN = {
    "a syntax error": (
        [("Z = np.zeros((n, oh, ow, nf), dtype=x.dtype)", "Z = np.zeros((n, oh, ow, nf), dtype")],
        "part1_conv.py, line 97, in conv_forward: SyntaxError: '(' was never closed"),
    "a missing function": (
        [("def max_pool_backward(", "def max_pooling_backward(")],
        "max_pool_backward (part2_pool.py): there is no function max_pool_backward (renamed or "
        "deleted?); the checker calls max_pool_backward(dout, cache)"),
    "a wrong signature": (
        [("pad: int = 0) -> tuple[np.ndarray, object]:",
          "pad: int) -> tuple[np.ndarray, object]:")],
        "conv_forward (part1_conv.py, line 68): it is conv_forward(x, W, b, stride, pad), but the "
        "network calls conv_forward(x, W, b, stride): missing a required argument: 'pad'"),
    "an exception in the learner's code": (
        [("for f in range(nf):\n                    Z[i", "for f in range(nf + 1):\n"
          "                    Z[i")],
        "part1_conv.py, line 103, in conv_forward: IndexError: index 1 is out of bounds for "
        "axis 3 with size 1"),
    "an exception raised in NumPy, called by the learner": (
        [("return float(np.sum(window * W) + b)", "return float(np.dot(window, W) + b)")],
        "part1_conv.py, line 65, in conv_single_step: ValueError: shapes (2,2,1) and (2,2,1) "
        "not aligned: 1 (dim 2) != 2 (dim 1)"),
    "an error at the top of a file": (
        [("import numpy as np\n", "import numpy as np\nimport numpy_extras\n")],
        "part1_conv.py, line 25, at the top of the file: ModuleNotFoundError: No module named "
        "'numpy_extras'"),
}


# -- the files ------------------------------------------------------------------------

def test_the_templates_teach_and_hold_no_solution():
    seen = []
    for part in PARTS:
        for node in ast.parse(template_text(part)).body:
            if isinstance(node, ast.FunctionDef):
                seen.append(node.name)
                doc = ast.get_docstring(node)
                assert len(node.body) == 2, f"{node.name} has more than a docstring and a raise"
                raised = node.body[1]
                assert isinstance(raised, ast.Raise) and "NotImplementedError" in ast.unparse(
                    raised), node.name
                assert "Hint" in doc and ("returns" in doc or "->" in doc), node.name
                assert re.search(r"\(n, |\(fw, fw", doc), f"{node.name}: no shapes"
    assert tuple(seen) == NAMES


def test_untouched_files_say_which_function_to_write_first_in_one_screen(tmp_path, capsys):
    folder = tmp_path / "ex"
    assert main(["exercises", str(folder)]) == 0
    written = capsys.readouterr().out
    assert written.count("written") == 3 and "Start with zero_pad" in written
    assert main(["check", str(folder)]) == 1
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == ("Write zero_pad first (part1_conv.py, line 27): it still raises "
                        "NotImplementedError.")
    assert "zero_pad(X, pad): Put `pad` rows and columns of zeros around every image of X." in out
    assert len(lines) <= 10 and max(map(len, lines[:-1])) <= 100  # the last names the folder
    assert lines[-1] == f"Run `cnn-numpy check {folder}` again when it is done."
    assert str(check_exercises(folder, command=f"cnn-numpy check {folder}")) == out.rstrip("\n")


def test_exercises_never_overwrite_a_file_the_learner_changed(tmp_path):
    folder = tmp_path / "ex"
    write_exercises(folder)
    changed = (folder / PARTS[0]).read_text() + "\n# my notes\n"
    (folder / PARTS[0]).write_text(changed)
    old_template = "def zero_pad(X, pad):\n    raise NotImplementedError\n"
    (folder / PARTS[1]).write_text(old_template)  # as if an older template had been written
    manifest = (folder / ".cnn-numpy-exercises.json").read_text()
    files = json.loads(manifest)["files"]
    files[PARTS[1]] = hashlib.sha256(old_template.encode()).hexdigest()
    (folder / ".cnn-numpy-exercises.json").write_text(json.dumps({"files": files}))
    (folder / PARTS[2]).unlink()
    assert write_exercises(folder) == [(PARTS[0], "kept: you changed it"), (PARTS[1], "updated"),
                                       (PARTS[2], "written")]
    assert (folder / PARTS[0]).read_text() == changed
    assert (folder / PARTS[1]).read_text() == template_text(PARTS[1])
    assert write_exercises(folder)[1:] == [(PARTS[1], "unchanged"), (PARTS[2], "unchanged")]
    with pytest.raises(ValueError, match="is a file; give a folder"):
        write_exercises(folder / PARTS[0])


# -- the checks -----------------------------------------------------------------------

@pytest.mark.parametrize("solutions", [LOOPS, WINDOWS], ids=["loops", "windows"])
def test_correct_files_pass_every_check(tmp_path, solutions, capsys):
    folder = fill(tmp_path / "ex", solutions)
    report = check_exercises(folder, every=True)
    assert report.passed, str(report)
    assert [r.name for r in report.results] == list(NAMES)
    assert report.message == "All 13 functions checked pass."
    assert main(["check", str(folder)]) == 0
    assert f"Train with them: `cnn-numpy train cnn --engine {folder}" in capsys.readouterr().out


def test_the_checks_go_in_order_and_stop_at_the_first_function_not_written(tmp_path):
    folder = fill(tmp_path / "ex", LOOPS, only=("zero_pad", "conv_single_step", "conv_forward"))
    report = check_exercises(folder)
    assert [r.status for r in report.results] == ["pass"] * 3 + ["to write"] + \
        ["not checked"] * 9
    assert report.message == ("Write conv_backward next (part1_conv.py, line 107): it still "
                              "raises NotImplementedError.")
    every = check_exercises(folder, every=True)
    assert [r.name for r in every.results if r.status != "pass"] == list(NAMES[3:])
    assert every.results[6].message == (
        "max_pool_backward (part2_pool.py, line 59): it takes the cache of your "
        "max_pool_forward, which is not written yet: write max_pool_forward first")
    one = check_exercises(folder, "conv_forward")
    assert one.passed and str(one) == "conv_forward passes every check."
    with pytest.raises(ValueError, match="no exercise is called 'conv'"):
        check_exercises(folder, "conv")


@pytest.mark.parametrize("mistake", list(PLANTED))
def test_each_planted_mistake_is_named_in_the_first_message(tmp_path, mistake):
    replace, function, words = PLANTED[mistake]
    report = check_exercises(fill(tmp_path / "ex", LOOPS, replace=replace))
    assert report.message.startswith(function + " ("), report.message
    assert words in report.message, report.message
    failed = report.first_problem
    assert failed.name == function and failed.status == "fail"
    before = report.results[:report.results.index(failed)]
    assert all(r.status == "pass" for r in before)


def test_the_smallest_failing_example_shows_input_expected_and_got(tmp_path):
    replace, _, _ = PLANTED["bias added to every product, in conv_forward"]
    text = str(check_exercises(fill(tmp_path / "ex", LOOPS, replace=replace)))
    example = text.split("The smallest example that fails (worked by hand):\n")[1]
    assert example.startswith(textwrap.indent(textwrap.dedent("""\
        x[0, :, :, 0] =
            1 2 3
            4 5 6
            7 8 9
        W[:, :, 0, 0] =
             1  2
             0 -1
        b = [1]
        stride = 1
        pad = 0
        expected Z[0, :, :, 0] =
            1 3
            7 9
        got Z[0, :, :, 0] =
             4  6
            10 12
        """), "  "))


@pytest.mark.parametrize("broken", list(BROKEN))
def test_bad_files_give_one_line_naming_the_file_the_line_and_the_function(tmp_path, broken,
                                                                           capsys,
                                                                           forget_engines):
    replace, line = BROKEN[broken]
    folder = fill(tmp_path / "ex", LOOPS, replace=replace)
    report = check_exercises(folder)
    assert report.message == line
    details = report.first_problem.details
    assert not [d for d in details if "cnn_numpy" in d or "site-packages" in d or
                "numpy/" in d], details
    if "exception" in broken or "top of" in broken:
        assert details[0] == "Traceback (your code only):" and ".py, line " in details[1]
    with pytest.raises(ValueError, match=re.escape(line)):
        load_engine(folder)
    assert main(["train", "cnn", "--engine", str(folder), "--dataset", "mnist-sample"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and line in err
    assert not [name for name in ENGINES if name.startswith("yours:")]


def test_an_engine_that_fails_a_check_is_refused_with_the_checks_message(tmp_path, capsys,
                                                                         forget_engines):
    replace, _, words = PLANTED["stride ignored in conv_backward"]
    folder = fill(tmp_path / "ex", LOOPS, replace=replace)
    with pytest.raises(ValueError, match=f"{folder} is not an engine yet: conv_backward "
                                         rf"\(part1_conv.py, line 107\): wrong dx: {words}"):
        load_engine(folder)
    assert main(["train", "cnn", "--engine", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err and f"cnn-numpy check {folder}" in err
    assert main(["train", "cnn", "--engine", "turbo"]) == 2
    assert "invalid choice: 'turbo'" in capsys.readouterr().err
    # part 3 is not part of the engine: an unwritten dense layer does not stop training
    name = load_engine(fill(tmp_path / "parts12", LOOPS, only=ENGINE_EXERCISES))
    assert name == f"yours:{(tmp_path / 'parts12').resolve()}"


# -- training with them ---------------------------------------------------------------

def cnn_layers():
    return [ConvLayer_ReLU(32, 3), PoolLayer_Max(2), FlatLayer(), FCLayer_ReLU(100),
            FCLayer_Softmax(10)]


def test_the_loops_train_the_spec_cnn_to_the_naive_engines_numbers(tmp_path, sample,
                                                                   forget_engines):
    """The course's four loops as an engine, through the fast path (default fast=True):
    the same numbers as the naive engine, step after step, to float32 rounding."""
    yours = Net(cnn_layers(), engine=load_engine(fill(tmp_path / "ex", LOOPS)), seed=0,
                optimizer="adam")
    naive = Net(cnn_layers(), engine="naive", seed=0, optimizer="adam")
    for start in (0, 2, 4):
        X, y = sample.x_train[start:start + 2], sample.y_train[start:start + 2]
        a, b = yours.train(X, y, 0.001), naive.train(X, y, 0.001)
        assert a.cce == pytest.approx(b.cce, rel=1e-6)
    for mine, theirs in zip(yours.layers, naive.layers, strict=True):
        for key, value in mine.params().items():
            np.testing.assert_allclose(value, theirs.params()[key], rtol=1e-5, atol=1e-7)
    table = yours.summary(print_fn=None)
    assert table.count("its own passes") >= 2  # the conv and the pool: only their passes
    X = sample.x_test[:4]
    np.testing.assert_allclose(yours.predict(X), naive.predict(X), rtol=1e-5, atol=1e-7)


def test_a_learners_engine_is_an_engine_with_every_layer_and_gradient(tmp_path, forget_engines):
    """The registered engine has the interface's six functions, parameters included, and
    check_layer finds its layers' gradients right, padding, strides and average pooling
    included."""
    name = load_engine(fill(tmp_path / "ex", WINDOWS))
    engine = get_engine(name)
    for function in ("conv_forward", "conv_backward", "max_pool_forward", "max_pool_backward",
                     "avg_pool_forward", "avg_pool_backward"):
        assert list(inspect.signature(getattr(engine, function)).parameters) == \
            list(inspect.signature(getattr(ENGINES["naive"], function)).parameters)
    check_layer(ConvLayer(3, 3, stride=2, padding=1, engine=name), (2, 7, 6, 2))
    check_layer(ConvLayer_ReLU(2, 2, padding="same", engine=name), (1, 5, 5, 1))
    check_layer(PoolLayer_Max(3, stride=2, engine=name), (2, 7, 7, 2))
    check_layer(PoolLayer_Avg(2, engine=name), (2, 6, 6, 3))


def test_the_command_line_trains_with_a_learners_engine_to_the_references_accuracy(
        tmp_path, capsys, forget_engines):
    folder = fill(tmp_path / "ex", WINDOWS)
    common = ["--dataset", "mnist-sample", "--limit", "1000", "--test-limit", "500",
              "--epochs", "1", "--validation", "0", "--no-progress"]
    saved = tmp_path / "yours.npz"
    assert main(["train", "cnn", "--engine", str(folder), "--save", str(saved), *common]) == 0
    yours = capsys.readouterr().out
    assert main(["train", "cnn", "--engine", "im2col", *common]) == 0
    reference = capsys.readouterr().out
    ce = [float(text.split("Test set: CCE: ")[1].split("CE: ")[1].split()[0])
          for text in (yours, reference)]
    assert ce[1] < 0.3 and abs(ce[0] - ce[1]) <= 0.01, (yours, reference)
    assert f"engine yours:{folder.resolve()}" in yours
    report = re.findall(r"(naive|stride_groups|im2col) +([\d.]+) s   yours is [\d.]+x "
                        r"(?:faster|slower); largest difference after the step: ([^ ]+) in the "
                        r"gradients", yours)
    assert [r[0] for r in report] == ["naive", "stride_groups", "im2col"]
    assert all(float(r[2]) < 1e-5 for r in report)
    assert "records the default engine (im2col): your code is not saved in it" in yours
    net = Net.load(saved)
    assert net.engine is None and all(getattr(layer, "engine", None) is None
                                       for layer in net.layers)
    # resumed in another process, without --engine: the default runs, and says so
    assert main(["train", "--resume", str(saved), "--epochs", "2", "--no-progress"]) == 0
    resumed = capsys.readouterr().out
    assert "engine im2col" in resumed and "yours:" not in resumed


def test_an_error_in_the_learners_code_while_training_is_one_line(tmp_path, capsys,
                                                                  forget_engines):
    """Code that passes the checks on small cases and fails on 28 x 28 images."""
    folder = fill(tmp_path / "ex", WINDOWS, replace=[(
        "n, ih, iw, c = x.shape\n    oh, ow = (ih - fw) // stride + 1, (iw - fw) // stride + 1\n"
        "    A = np.zeros((n, oh, ow, c), dtype=x.dtype)\n    for h",
        "n, ih, iw, c = x.shape\n    oh, ow = (ih - fw) // stride + 1, (iw - fw) // stride + 1\n"
        "    A = np.zeros((n, oh, ow, c), dtype=x.dtype)\n"
        "    assert ih < 20, 'my pooling only works on small images'\n    for h")])
    assert main(["train", "cnn", "--engine", str(folder), "--dataset", "mnist-sample",
                 "--limit", "8", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert ("part2_pool.py, line 38, in max_pool_forward: AssertionError: my pooling only works "
            "on small images (while the network ran max_pool_forward)") in err


def test_compare_engines_times_a_step_and_leaves_the_net_alone(tmp_path, sample, forget_engines):
    name = load_engine(fill(tmp_path / "ex", WINDOWS))
    net = build_model("cnn", name, seed=0)
    steps = compare_engines(net, sample.x_train[:2], sample.y_train[:2])
    assert [s.engine for s in steps] == [name, "naive", "stride_groups", "im2col"]
    assert all(s.seconds > 0 and s.gradient_difference < 1e-5 for s in steps)
    assert steps[0].gradient_difference == 0 and net.input_shape is None  # not even built


def test_serve_takes_a_folder_of_exercises_as_its_engine(tmp_path, forget_engines):
    from cnn_numpy.cli import make_parser

    folder = fill(tmp_path / "ex", LOOPS, only=ENGINE_EXERCISES)
    args = make_parser().parse_args(["serve", "--engine", str(folder)])
    assert args.engine == f"yours:{folder.resolve()}" and args.engine in ENGINES



# -- the notebook's exercise mode ------------------------------------------------------

def run_notebook(nb, folder: Path):
    nbclient = pytest.importorskip("nbclient", reason="pip install nbformat nbclient ipykernel")
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(folder)}}).execute()
    return [("".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream"),
             [o for o in cell.outputs if o.output_type == "error"])
            for cell in nb.cells if cell.cell_type == "code"]


def test_the_exercise_notebook_is_current_and_says_what_to_write(tmp_path):
    nbformat = pytest.importorskip("nbformat", reason="pip install nbformat nbclient ipykernel")
    pytest.importorskip("nbclient", reason="pip install nbformat nbclient ipykernel")
    path = ROOT / "notebooks" / "exercises.ipynb"
    saved = nbformat.read(path, as_version=4)
    spec = importlib.util.spec_from_file_location("build_tutorial",
                                                  ROOT / "notebooks" / "build_tutorial.py")
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)
    cells = builder.build(builder.exercise_cells()).cells
    assert [c.source for c in saved.cells] == [c.source for c in cells], \
        "notebooks/exercises.ipynb is stale: run python notebooks/build_tutorial.py --exercises"
    fresh = run_notebook(nbformat.read(path, as_version=4), tmp_path)
    old = ["".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
           for cell in saved.cells if cell.cell_type == "code"]
    assert [text for text, _ in fresh] == old
    assert not [errors for _, errors in fresh if errors]
    checks = [text for text in old if text.startswith(("Write ", "conv_backward", "max_pool_b",
                                                       "avg_pool_b", "dense_b"))]
    assert len(checks) == 13 and old[-1].startswith("Not an engine yet: Write zero_pad first")


def test_the_exercise_notebook_filled_in_passes_every_check_and_trains(tmp_path):
    nbformat = pytest.importorskip("nbformat", reason="pip install nbformat nbclient ipykernel")
    nb = nbformat.read(ROOT / "notebooks" / "exercises.ipynb", as_version=4)
    for cell in nb.cells:
        for name, code in LOOPS.items():
            cell.source = cell.source.replace(f'    raise NotImplementedError("write {name}")',
                                              body(code))
    texts = [text for text, _ in run_notebook(nb, tmp_path)]
    assert sum(text == f"{name} passes every check.\n" for text in texts for name in NAMES) == 13
    last = texts[-1]
    assert last.startswith("Your engine (notebook) against the shipped ones")
    assert re.search(r"naive +[\d.]+ s +yours is [\d.]+x \w+; largest difference after the "
                     r"step: 0 in the gradients", last)
    assert "Trained on 32 digits with your engine: test error" in last


def test_the_pages_engine_panel_compares_a_learners_engine(tmp_path, sample, forget_engines):
    """What `serve --engine DIR` shows: the engine panel times the learner's engine beside
    the shipped ones, with its largest difference from the naive loops."""
    pytest.importorskip("starlette", reason="the page needs the web extra")
    from cnn_numpy.web.api import Model

    name = load_engine(fill(tmp_path / "ex", WINDOWS))
    net = build_model("cnn", seed=0)
    net.train(sample.x_train[:32], sample.y_train[:32], 0.001)
    net.engine = name
    answer = Model(net).compare_engines({"image": sample.x_test[0].tolist()})
    rows = {row["engine"]: row for row in answer["engines"]}
    assert set(rows) >= {name, "naive", "stride_groups", "im2col"}
    assert rows[name]["largest_difference"] < 1e-5 and rows[name]["milliseconds"] > 0
    # a learner's loops are timed as few times as the naive loops, not as often as im2col
    assert rows[name]["repeats"] == rows["naive"]["repeats"] < rows["im2col"]["repeats"]
