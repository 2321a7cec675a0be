"""The house around the core: one way to prepare a run, one loop with callbacks, held-out
figures named for what they are, versioned checkpoints, the library's diagnostics, and
the page's defaults taken from the command line's."""

from __future__ import annotations

import ast
import dataclasses
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import cnn_numpy
from cnn_numpy import FCLayer_Softmax, FlatLayer, Net, saving
from cnn_numpy.diagnostics import (
    confusion_matrix,
    layer_statistics,
    top_classes,
    trained_weights,
    update_ratios,
    worst_mistakes,
)
from cnn_numpy.models import CUSTOM, MODEL_DEFAULTS, MODEL_LAYERS, build_model, model_name
from cnn_numpy.training import (
    HISTORY_KEYS,
    Callback,
    Checkpoint,
    History,
    load_checkpoint,
    prepare_run,
    read_run,
    run_settings,
    train,
    write_history,
)


def flat_run(sample, **given):
    settings = run_settings("flat", **{"epochs": 1, "limit": 300, "test_limit": 100, **given})
    return prepare_run(build_model("flat", seed=0), settings, sample.x_train, sample.y_train,
                       sample.x_test, sample.y_test)


def test_prepare_run_holds_out_limits_and_records_what_ran(sample):
    run = flat_run(sample)
    assert (len(run.x_train), len(run.x_val), len(run.x_test)) == (270, 30, 100)
    assert run.settings.validation == 0.1 and run.settings.engine is None  # no conv layer
    small = flat_run(sample, limit=10)
    assert (len(small.x_train), len(small.x_val)) == (10, 0)
    assert small.notes == ["10 training images are too few to hold out a validation set: the "
                           "test set is reported every epoch"]
    conv = prepare_run(build_model("cnn"), run_settings("cnn", limit=64), sample.x_train,
                       sample.y_train)
    assert conv.settings.engine == "im2col"  # the engine that runs, not None
    with pytest.raises(ValueError, match="leave a last batch of one image"):
        prepare_run(build_model("deep"), run_settings("deep", limit=65, validation=0.0),
                    sample.x_train, sample.y_train)


def test_the_loop_calls_every_hook_in_order_and_tells_the_outcome(sample):
    calls = []

    class Record(Callback):
        def on_train_begin(self, net):
            calls.append("begin")

        def on_epoch_begin(self, net, epoch):
            calls.append(f"epoch {epoch}")

        def on_batch_end(self, net, batch, cce, ce):
            calls.append("batch")

        def on_epoch_end(self, net, entry):
            calls.append(f"end {entry['epoch']}")

        def on_train_end(self, net):
            calls.append(self.outcome)

    run = flat_run(sample, epochs=2, batch_size=135)  # two batches an epoch
    progress = train(run, [Record()])
    assert calls == ["begin", "epoch 1", "batch", "batch", "end 1", "epoch 2", "batch",
                     "batch", "end 2", "done"]
    rows = progress.history
    assert [set(row) for row in rows] == [set(HISTORY_KEYS)] * 2
    assert not math.isnan(rows[0]["val_ce"]) and math.isnan(rows[0]["test_ce"])
    assert not math.isnan(rows[1]["test_ce"])  # measured once, at the end
    _, cce, ce = run.net.evaluate(run.x_test, run.y_test)
    assert (rows[1]["test_cce"], rows[1]["test_ce"]) == pytest.approx((cce, ce), rel=1e-12)


def test_without_a_validation_set_the_test_set_is_measured_every_epoch(sample):
    rows = train(flat_run(sample, epochs=2, validation=0.0)).history
    assert all(math.isnan(row["val_cce"]) and not math.isnan(row["test_cce"]) for row in rows)


def test_a_learning_rate_changed_by_a_callback_applies_from_the_next_step(sample):
    class Halve(Callback):
        def on_epoch_end(self, net, entry):
            self.run.settings.learning_rate /= 2

    rows = train(flat_run(sample, epochs=2, schedule="constant"), [Halve()]).history
    assert rows[1]["learning_rate"] == rows[0]["learning_rate"] / 2


def test_version_1_checkpoints_name_their_held_out_figures_anew(sample, tmp_path):
    """Version 1 wrote test_cce/test_ce for whatever was held out: with a validation share
    they are read as val_cce/val_ce."""
    run = flat_run(sample)
    path = tmp_path / "ck.npz"
    train(run, [Checkpoint(path)])
    net, settings, progress, fingerprint = load_checkpoint(path)
    old_rows = [{"epoch": 1, "train_cce": 0.5, "train_ce": 0.1, "test_cce": 0.4,
                 "test_ce": 0.09, "images_per_s": 10.0, "learning_rate": 0.001}]
    meta = {"kind": "checkpoint", "settings": dataclasses.asdict(settings),
            "progress": {**dataclasses.asdict(progress), "history": old_rows},
            "data_fingerprint": fingerprint}
    saving.save(net, tmp_path / "old.npz", meta=meta, with_optimizer=True)
    _, _, read, _ = load_checkpoint(tmp_path / "old.npz")
    assert (read.history[0]["val_cce"], read.history[0]["val_ce"]) == (0.4, 0.09)
    assert math.isnan(read.history[0]["test_cce"])
    meta["version"] = 99
    saving.save(net, tmp_path / "new.npz", meta=meta, with_optimizer=True)
    with pytest.raises(ValueError, match="a checkpoint of version 99; this cnn-numpy reads "
                                         "versions 1 and 2"):
        load_checkpoint(tmp_path / "new.npz")


def test_history_files_round_trip_with_their_settings(sample, tmp_path):
    run = flat_run(sample, epochs=2)
    rows = train(run).history
    for name in ("h.csv", "h.json"):
        write_history(tmp_path / name, dataclasses.asdict(run.settings), rows)
        back = read_run(tmp_path / name)
        assert back.settings["learning_rate"] == 0.001 and back.settings["model"] == "flat"
        assert back.settings["validation"] == 0.1 and back.settings["limit"] == 300
        for got, row in zip(back.history, rows, strict=True):
            for key in HISTORY_KEYS:
                assert got[key] == pytest.approx(row[key], nan_ok=True)
    assert "NaN" not in (tmp_path / "h.json").read_text()  # null, as JSON has it


def test_fit_shows_a_progress_bar_only_on_a_terminal():
    code = ("import numpy as np\n"
            "from cnn_numpy import Net, FlatLayer, FCLayer_Softmax\n"
            "x = np.random.default_rng(0).random((64, 8, 8), dtype=np.float32)\n"
            "y = np.arange(64) % 10\n"
            "Net([FlatLayer(), FCLayer_Softmax(10)], seed=0).fit(x, y, epochs=1, progress={})\n")
    for progress, bar in (("None", False), ("True", True), ("False", False)):
        done = subprocess.run([sys.executable, "-c", code.format(progress)],
                              capture_output=True, text=True, check=True)
        assert ("img/s]" in done.stderr or "it/s]" in done.stderr) == bar, done.stderr
        assert ("Epoch 1/1  train CCE" in done.stdout) == (progress != "False")


def test_history_callback_is_what_fit_returns(sample):
    history = History()
    train(flat_run(sample, epochs=2), [history])
    assert len(history) == 2 and history.epoch == [1, 2]
    assert history.history["loss"] == history["train_cce"]


def test_diagnostics_compute_what_they_say(sample):
    net = Net([FlatLayer(), FCLayer_Softmax(10)], seed=0)
    X, y = sample.x_train[:50], sample.y_train[:50]
    net.train(X, y, 0.1)
    before = trained_weights(net)
    net.train(X, y, 0.1)
    (W_before,), layer = before, net.layers[1]
    expected = np.linalg.norm(layer.W - W_before) / np.linalg.norm(layer.W)
    assert update_ratios(net, before) == [None, pytest.approx(expected)]
    stats = layer_statistics(net, X[..., None])
    A = net.predict(X)
    assert stats[1]["mean"] == pytest.approx(float(A.mean()), rel=1e-6)
    assert stats[1]["dead"] is None  # softmax has no dead units
    top = top_classes(net, X[:3], k=2)
    assert [t[0][0] for t in top] == list(A[:3].argmax(axis=1))
    assert top[0][0][1] >= top[0][1][1]


def test_the_confusion_matrix_and_its_mistakes_most_confident_first():
    P = np.array([[0.1, 0.9], [0.4, 0.6], [0.8, 0.2], [0.3, 0.7], [0.35, 0.65]])
    labels = np.array([0, 0, 0, 1, 0])
    counts = confusion_matrix(labels, P.argmax(axis=1), 2)
    assert counts.tolist() == [[1, 3], [0, 1]]
    # true 0 predicted 1: p[0] = 0.1, 0.4, 0.35 -> losses largest first
    assert worst_mistakes(P, labels, 0, 1).tolist() == [0, 4, 1]
    assert worst_mistakes(P, labels, 1, 0).tolist() == []


def test_model_names_and_defaults_have_one_home():
    assert model_name(MODEL_LAYERS["cnn"].replace(", ", " , ")) == "cnn"
    assert model_name("FlatLayer(), FCLayer_Softmax(10)") == CUSTOM
    settings = run_settings(layers="FlatLayer(), FCLayer_Softmax(10)")
    assert settings.model == CUSTOM and settings.schedule == MODEL_DEFAULTS["cnn"]["schedule"]
    with pytest.raises(ValueError, match="unknown model 'resnet'"):
        run_settings("resnet")


def unhinted(source: str) -> list[str]:
    """The public functions of a module's source (module level, or methods of a public
    class) with an argument or return value that has no type hint (__init__ needs none
    for its return)."""
    found = []
    tree = ast.parse(source)
    functions = [(node, "") for node in tree.body]
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            functions += [(member, f"{node.name}.") for member in node.body]
    for node, owner in functions:
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) \
                or (node.name.startswith("_") and node.name != "__init__"):
            continue
        a = node.args
        args = [*a.posonlyargs, *a.args, *a.kwonlyargs, *filter(None, (a.vararg, a.kwarg))]
        missing = [arg.arg for arg in args
                   if arg.annotation is None and arg.arg not in ("self", "cls")]
        if node.returns is None and node.name != "__init__":
            missing.append("return")
        if missing:
            found.append(f"{owner}{node.name} (line {node.lineno}): {', '.join(missing)}")
    return found


def test_public_functions_have_type_hints():
    assert unhinted("def f(x: int, *, y) -> int: ...\nclass A:\n    def g(self, z): ...\n"
                    "    def __init__(self, w: int): ...\n    def _h(self, v): ...") \
        == ["f (line 1): y", "A.g (line 3): z, return"]
    package = Path(cnn_numpy.__file__).parent
    missing = {str(path.relative_to(package)): unhinted(path.read_text())
               for path in sorted(package.rglob("*.py"))
               if not any(part.startswith("_") and part != "__init__.py"
                          for part in path.relative_to(package).parts)}
    assert {path: found for path, found in missing.items() if found} == {}
