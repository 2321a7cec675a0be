"""cnn-numpy -> PyTorch / ONNX and back: every layer and the three command-line models
agree across cnn-numpy, PyTorch and ONNX Runtime; round trips give identical weights;
what cannot convert says so; the command line's export and the DDP example work."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from interop_cases import LAYER_NETS, randomize

from cnn_numpy import (
    ActivationLayer,
    FCLayer,
    FCLayer_ReLU,
    FCLayer_Sigmoid,
    FCLayer_Softmax,
    FlatLayer,
    Net,
)
from cnn_numpy.cli import main
from cnn_numpy.data import load_dataset
from cnn_numpy.interop import from_torch, to_onnx, to_torch
from cnn_numpy.models import build_model

torch = pytest.importorskip(
    "torch", reason="PyTorch is not installed; `pip install torch==2.13.0` runs these checks")
ort = pytest.importorskip(
    "onnxruntime", reason='ONNX Runtime is not installed; `pip install ".[onnx]"` runs these')
pytest.importorskip("onnx", reason='onnx is not installed; `pip install ".[onnx]"` runs these')

ROOT = Path(__file__).resolve().parents[1]
TOL = 1e-5  # largest relative difference of the probabilities, float32


def run_example(*args: str, **options) -> subprocess.CompletedProcess:
    """`python examples/continue_in_pytorch.py ARGS` in a fresh interpreter."""
    return subprocess.run([sys.executable, str(ROOT / "examples" / "continue_in_pytorch.py"),
                           *args], capture_output=True, text=True, timeout=300, **options)


def stored(net: Net) -> list[np.ndarray]:
    return [a for layer in net.layers for a in (*layer.params().values(),
                                                *layer.buffers().values())]


def three_way(net: Net, X: np.ndarray, tmp_path: Path) -> tuple[float, float]:
    """Largest relative difference from net.predict(X) of PyTorch's and ONNX Runtime's."""
    ours = net.predict(X)
    X4 = X[..., None] if X.ndim == 3 else X
    with torch.no_grad():
        theirs = to_torch(net, probabilities=True)(torch.tensor(X4.transpose(0, 3, 1, 2)))
    to_onnx(net, tmp_path / "model.onnx")
    session = ort.InferenceSession(str(tmp_path / "model.onnx"))
    onnx_out = session.run(["probabilities"], {"images": X4.astype(np.float32)})[0]
    scale = np.abs(ours).max()
    return (float(np.abs(theirs.numpy() - ours).max() / scale),
            float(np.abs(onnx_out - ours).max() / scale))


def assert_round_trip(net: Net, X: np.ndarray, same_layers: bool = True) -> None:
    """from_torch(to_torch(net)), with no other argument: identical weights, predictions
    and layers (the model carries the input shape and the output layer), except where a
    ReLULayer follows a conv or dense layer: from_torch reads Conv2d + ReLU as
    ConvLayer_ReLU (and Linear + ReLU as FCLayer_ReLU)."""
    for probabilities in (False, True):
        back = from_torch(to_torch(net, probabilities))
        for a, b in zip(stored(back), stored(net), strict=True):
            np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(back.predict(X), net.predict(X))
    if same_layers:
        assert [type(a) for a in back.layers] == [type(b) for b in net.layers]
        assert [a.config() for a in back.layers] == [b.config() for b in net.layers]


@pytest.mark.parametrize("name", list(LAYER_NETS))
def test_every_layer_agrees_across_the_three_runtimes(name, tmp_path):
    X = np.random.default_rng(1).random((16, 9, 8, 2), dtype=np.float32)
    net = Net(LAYER_NETS[name](), seed=0)
    net.build(X.shape[1:])
    randomize(net)
    torch_error, onnx_error = three_way(net, X, tmp_path)
    assert torch_error <= TOL and onnx_error <= TOL
    assert_round_trip(net, X, same_layers=name != "ReLULayer")


@pytest.fixture(scope="module")
def test_images():
    data = load_dataset("mnist-sample", progress=False)  # the official 10,000 test images
    return np.concatenate([data.x_train, data.x_test]), data


@pytest.mark.parametrize("model", ["cnn", "flat", "deep"])
def test_models_agree_on_the_10000_test_images(model, test_images, tmp_path):
    X, data = test_images
    assert X.shape == (10_000, 28, 28)
    net = build_model(model, seed=0, optimizer="adam")
    for i in range(0, 1024, 64):  # trained a little, so the numbers are not the initial ones
        net.train(data.x_train[i : i + 64], data.y_train[i : i + 64], 0.002)
    torch_error, onnx_error = three_way(net, X, tmp_path)
    assert torch_error <= TOL and onnx_error <= TOL
    assert_round_trip(net, X[:100, :, :, None], same_layers=model != "deep")


def test_converted_model_is_trainable_torch(test_images):
    """to_torch gives ordinary modules: gradients flow and a step changes the output."""
    _, data = test_images
    net = build_model("deep", seed=0)
    net.build((28, 28, 1))
    model = to_torch(net)
    model.train()
    x = torch.tensor(data.x_train[:32, None])
    loss = torch.nn.functional.cross_entropy(model(x), torch.tensor(data.y_train[:32]))
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    assert isinstance(model[0], torch.nn.Conv2d) and isinstance(model[1], torch.nn.BatchNorm2d)


class Swish(ActivationLayer):
    def function(self, Z):
        return Z / (1 + np.exp(-Z))


def test_a_users_layer_is_a_value_error_naming_it(tmp_path):
    net = Net([FlatLayer(), FCLayer(4), Swish(), FCLayer_Softmax(3)], seed=0)
    net.build((4, 4))
    with pytest.raises(ValueError, match=r"to_torch: layer 2 \(Swish\) has no PyTorch"):
        to_torch(net)
    with pytest.raises(ValueError, match=r"to_onnx: layer 2 \(Swish\) has no ONNX"):
        to_onnx(net, tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()
    with pytest.raises(ValueError, match="no weights yet"):
        to_torch(Net([FlatLayer(), FCLayer_Softmax(3)]))


nn = torch.nn


@pytest.mark.parametrize("modules, message", [
    ([nn.Conv2d(1, 2, 3, dilation=2), nn.Flatten(), nn.Linear(2 * 24 * 24, 10)],
     r"module 0 \(Conv2d.*\): dilation=\(2, 2\) has no cnn-numpy counterpart"),
    ([nn.Conv2d(2, 2, 3, groups=2), nn.Flatten(), nn.Linear(2 * 26 * 26, 10)],
     "expects 2 input channels"),
    ([nn.Conv2d(1, 2, (3, 5)), nn.Flatten(), nn.Linear(2 * 26 * 24, 10)],
     r"kernel size \(3, 5\) is not square"),
    ([nn.Conv2d(1, 2, 3, bias=False), nn.Flatten(), nn.Linear(2 * 26 * 26, 10)],
     "without bias"),
    ([nn.MaxPool2d(2, padding=1), nn.Flatten(), nn.Linear(225, 10)], "padding and ceil_mode"),
    ([nn.Flatten(), nn.Linear(784, 10), nn.Softmax(dim=1), nn.Linear(10, 10)],
     "a Softmax converts only at the end"),
    ([nn.Flatten(), nn.Linear(784, 10), nn.GELU(), nn.Linear(10, 10)],
     r"module 2 \(GELU\(.*\)\): no cnn-numpy layer does what GELU does"),
    ([nn.Flatten(), nn.Linear(784, 10), nn.ReLU()], "must end with a Linear"),
    ([nn.Linear(784, 10)], r"takes 784 inputs, but gets samples of shape \(28, 28, 1\)"),
    ([nn.Flatten(), nn.BatchNorm1d(784, affine=False), nn.Linear(784, 10)], "only affine"),
])
def test_unsupported_modules_are_refused_with_the_reason(modules, message):
    with pytest.raises(ValueError, match=message):
        from_torch(nn.Sequential(*modules))


def _nan_linear():
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    with torch.no_grad():
        model[1].weight[0, 0] = float("nan")
    return model


@pytest.mark.parametrize("make, kwargs, message", [
    (lambda: nn.Sequential(nn.Flatten(), nn.Linear(100, 10)), {},
     r"module 1 .*: takes 100 inputs, but gets samples of shape \(784,\)"),
    (lambda: nn.Sequential(nn.Conv2d(1, 2, 40), nn.Flatten(), nn.Linear(2, 10)), {},
     r"its window does not fit in samples of shape \(28, 28, 1\)"),
    (lambda: nn.Sequential(nn.Flatten(), nn.Linear(784, 10)), {"input_shape": 784},
     "input_shape must be one sample's shape"),
    (lambda: nn.Sequential(nn.Flatten(), nn.Linear(784, 10)).to(torch.bfloat16), {},
     r"1.weight is a torch.bfloat16 tensor .*model.float\(\).cpu\(\)"),
    (lambda: nn.Sequential(nn.Flatten(), nn.Linear(784, 10)).to("meta"), {},
     "tensor on meta"),
    (_nan_linear, {}, "1.weight contains NaN or infinite values"),
    (lambda: nn.Sequential(nn.Flatten(), nn.Linear(784, 10)), {"output": "tanh"},
     "output must be 'softmax' or 'sigmoid'"),
])
def test_from_torch_mistakes_are_value_errors_saying_what_is_wrong(make, kwargs, message):
    with pytest.raises(ValueError, match=message):
        from_torch(make(), **kwargs)


def test_a_sigmoid_output_survives_the_round_trip_through_logits():
    """to_torch's logits say nothing of the output layer; the model's attribute does."""
    net = Net([FlatLayer(), FCLayer_Sigmoid(10)], seed=0)
    net.build((20, 24, 1))
    back = from_torch(to_torch(net))
    assert type(back.layers[-1]) is FCLayer_Sigmoid and back.input_shape == (20, 24, 1)
    X = np.random.default_rng(0).random((4, 20, 24, 1), dtype=np.float32)
    np.testing.assert_array_equal(back.predict(X), net.predict(X))
    plain = torch.nn.Sequential(*to_torch(net))  # without the attribute: softmax, as documented
    assert type(from_torch(plain, input_shape=(20, 24, 1)).layers[-1]) is FCLayer_Softmax
    assert type(from_torch(plain, (20, 24, 1), output="sigmoid").layers[-1]) is FCLayer_Sigmoid


def test_from_torch_needs_a_sequential():
    with pytest.raises(ValueError, match="expected a non-empty torch.nn.Sequential"):
        from_torch(nn.Linear(3, 3))


def test_from_torch_of_a_hand_written_model():
    """The way back for a model written in PyTorch: conv with 'same' padding, BatchNorm,
    LeakyReLU, average pooling, a final Softmax."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding="same"), nn.BatchNorm2d(4), nn.LeakyReLU(),
                          nn.AvgPool2d(2), nn.Flatten(), nn.Dropout(0.2), nn.Linear(196, 16),
                          nn.ReLU(), nn.Linear(16, 10), nn.Softmax(dim=1)).eval()
    X = np.random.default_rng(0).random((8, 14, 14, 1), dtype=np.float32)
    net = from_torch(model, input_shape=(14, 14, 1))
    assert [type(layer).__name__ for layer in net.layers] == [
        "ConvLayer", "BatchNorm", "LeakyReLULayer", "PoolLayer_Avg", "FlatLayer", "Dropout",
        "FCLayer_ReLU", "FCLayer_Softmax"]
    with torch.no_grad():
        theirs = model(torch.tensor(X.transpose(0, 3, 1, 2))).numpy()
    np.testing.assert_allclose(net.predict(X), theirs, rtol=0, atol=1e-6)


def test_missing_extras_are_import_errors_naming_the_extra():
    code = ("import sys; sys.modules['torch'] = None; sys.modules['onnx'] = None\n"
            "import cnn_numpy.interop as i\n"
            "from cnn_numpy.models import build_model\n"
            "net = build_model('flat'); net.build((28, 28))\n"
            "for call in (lambda: i.to_torch(net), lambda: i.to_onnx(net, 'x.onnx')):\n"
            "    try: call()\n"
            "    except ImportError as e: print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert out == ['torch is not installed; install it with pip install "cnn-numpy[torch]"',
                   'onnx is not installed; install it with pip install "cnn-numpy[onnx]"']
    imported = subprocess.run([sys.executable, "-c", "import sys, cnn_numpy, cnn_numpy.interop;"
                               " print('torch' in sys.modules, 'onnx' in sys.modules)"],
                              capture_output=True, text=True, check=True).stdout
    assert imported.split() == ["False", "False"]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory, test_images):
    _, data = test_images
    path = tmp_path_factory.mktemp("export") / "deep.npz"
    net = build_model("deep", seed=0, optimizer="adam")
    for i in range(0, 1024, 64):
        net.train(data.x_train[i : i + 64], data.y_train[i : i + 64], 0.002)
    net.save(path)
    return path


def test_export_command_writes_files_that_load_without_cnn_numpy(model_file, tmp_path,
                                                                  test_images, capsys):
    X = test_images[0][:50]
    ours = Net.load(model_file).predict(X)
    assert main(["export", str(model_file), "--format", "onnx",
                 "--output", str(tmp_path / "m.onnx")]) == 0
    assert main(["export", str(model_file), "--format", "torch",
                 "--output", str(tmp_path / "m.pt2")]) == 0
    out = capsys.readouterr().out
    assert "Wrote" in out and "input (n, 28, 28, 1) float32" in out and "(n, 1, 28, 28)" in out
    np.save(tmp_path / "x.npy", X[:, None])
    code = ("import sys; sys.modules['cnn_numpy'] = None\n"
            "import numpy as np, torch, onnxruntime\n"
            "x = np.load('x.npy')\n"
            "a = torch.export.load('m.pt2').module()(torch.tensor(x)).detach().numpy()\n"
            "b = onnxruntime.InferenceSession('m.onnx').run(None, "
            "{'images': x.transpose(0, 2, 3, 1)})[0]\n"
            "np.save('a.npy', a); np.save('b.npy', b)\n")
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True)
    for name in ("a.npy", "b.npy"):
        assert np.abs(np.load(tmp_path / name) - ours).max() <= TOL


def test_export_describes_vector_and_float64_inputs(tmp_path, capsys):
    vector = Net([FCLayer_ReLU(8), FCLayer_Softmax(3)], seed=0)
    vector.build((20,))
    vector.save(tmp_path / "vector.npz")
    assert main(["export", str(tmp_path / "vector.npz"), "--format", "onnx",
                 "--output", str(tmp_path / "v.onnx")]) == 0
    assert "input (n, 20) float32, output probabilities (n, 3)" in capsys.readouterr().out
    wide = Net([FlatLayer(), FCLayer_Softmax(3)], seed=0, dtype=np.float64)
    wide.build((4, 4, 2))
    wide.save(tmp_path / "wide.npz")
    assert main(["export", str(tmp_path / "wide.npz"), "--format", "torch",
                 "--output", str(tmp_path / "w.pt2")]) == 0
    assert "input (n, 2, 4, 4) float64" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["--format", "onnx", "--output", "/no/such/folder/m.onnx"], "does not exist"),
    (["--format", "keras", "--output", "m.h5"], "invalid choice: 'keras'"),
    (["--format", "onnx"], "the following arguments are required: --output"),
])
def test_export_mistakes_are_one_line(model_file, args, message):
    result = subprocess.run([sys.executable, "-m", "cnn_numpy", "export", str(model_file), *args],
                            capture_output=True, text=True)
    assert result.returncode == 2 and message in result.stderr
    assert result.stderr.count("\n") == 1


def test_export_refuses_damaged_files_and_missing_extras(tmp_path):
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 not really a zip")
    assert main(["export", str(tmp_path / "bad.npz"), "--format", "onnx",
                 "--output", str(tmp_path / "m.onnx")]) == 2
    net = build_model("flat")
    net.build((28, 28))
    net.save(tmp_path / "flat.npz")
    code = ("import sys; sys.modules['onnx'] = None\n"
            "from cnn_numpy.cli import main\n"
            f"sys.exit(main(['export', {str(tmp_path / 'flat.npz')!r}, '--format', 'onnx', "
            f"'--output', {str(tmp_path / 'm.onnx')!r}]))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr == ('cnn-numpy: error: onnx is not installed; install it with pip '
                             'install "cnn-numpy[onnx]"\n')


def test_ddp_example_trains_on_two_processes_and_comes_back(model_file, tmp_path):
    report = tmp_path / "report.json"
    result = run_example(str(model_file), "--output", str(tmp_path / "more.npz"),
                         "--processes", "2", "--limit", "3000", "--dataset", "mnist-sample",
                         "--report", str(report))
    assert result.returncode == 0, result.stderr
    figures = json.loads(report.read_text())
    assert figures["processes"] == 2 and figures["backend"] == "gloo"
    assert figures["loss_last"] < figures["loss_first"]
    assert figures["largest_probability_difference"] <= TOL
    evaluated = subprocess.run([sys.executable, "-m", "cnn_numpy", "evaluate",
                                str(tmp_path / "more.npz"), "--dataset", "mnist-sample"],
                               capture_output=True, text=True)
    assert evaluated.returncode == 0 and "Test set: CCE:" in evaluated.stdout


@pytest.mark.parametrize("args, message", [
    (["--output", "/no/such/folder/more.npz"], "the folder /no/such/folder does not exist"),
    (["--output", "more.npz", "--limit", "32"],
     "32 images give each of 2 processes fewer than 2 batches of 64"),
])
def test_ddp_example_refuses_mistakes_before_training(model_file, tmp_path, args, message):
    result = run_example(str(model_file), "--dataset", "mnist-sample", *args, cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr
    assert not (tmp_path / "more.npz").exists()


def test_the_pytorch_page_example_runs(model_file, tmp_path, monkeypatch):
    import re

    text = (ROOT / "docs" / "pytorch-onnx.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model.npz").write_bytes(model_file.read_bytes())
    namespace: dict = {}
    exec(compile(code, "docs/pytorch-onnx.md", "exec"), namespace)
    assert isinstance(namespace["model"], torch.nn.Sequential)
    assert ort.InferenceSession("model.onnx").get_inputs()[0].shape == ["batch", 28, 28, 1]
