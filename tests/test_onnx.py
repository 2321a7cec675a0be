"""The ONNX export on its own, without PyTorch: every shipped layer and the three
command-line models compute in ONNX Runtime what net.predict computes, and the files pass
onnx.checker.  (tests/test_interop.py compares all three runtimes where PyTorch is installed.)"""

from __future__ import annotations

import numpy as np
import pytest
from interop_cases import LAYER_NETS, randomize

from cnn_numpy import Net
from cnn_numpy.data import load_dataset
from cnn_numpy.interop import to_onnx
from cnn_numpy.models import build_model

ort = pytest.importorskip(
    "onnxruntime", reason='ONNX Runtime is not installed; `pip install ".[onnx]"` runs these')
onnx = pytest.importorskip(
    "onnx", reason='onnx is not installed; `pip install ".[onnx]"` runs these')

TOL = 1e-5  # largest relative difference of the probabilities, float32


def onnx_error(net: Net, X: np.ndarray, path) -> float:
    """Largest difference of ONNX Runtime's probabilities from net.predict(X), relative to
    the largest probability; the file must pass onnx.checker."""
    to_onnx(net, path)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    X4 = X[..., None] if X.ndim == 3 else X
    theirs = ort.InferenceSession(str(path)).run(["probabilities"],
                                                {"images": X4.astype(np.float32)})[0]
    ours = net.predict(X)
    return float(np.abs(theirs - ours).max() / np.abs(ours).max())


@pytest.mark.parametrize("name", list(LAYER_NETS))
def test_every_layer_runs_the_same_in_onnx_runtime(name, tmp_path):
    X = np.random.default_rng(2).random((16, 9, 8, 2), dtype=np.float32)
    net = Net(LAYER_NETS[name](), seed=0)
    net.build(X.shape[1:])
    randomize(net, seed=1)
    assert onnx_error(net, X, tmp_path / "m.onnx") <= TOL


@pytest.mark.parametrize("model", ["cnn", "flat", "deep"])
def test_command_line_models_run_the_same_in_onnx_runtime(model, tmp_path):
    data = load_dataset("mnist-sample", progress=False)
    net = build_model(model, seed=0, optimizer="adam")
    for i in range(0, 1024, 64):  # trained a little, as a model someone exports would be
        net.train(data.x_train[i : i + 64], data.y_train[i : i + 64], 0.002)
    assert onnx_error(net, data.x_test, tmp_path / "m.onnx") <= TOL
