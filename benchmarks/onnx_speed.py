"""Inference speed: net.predict against ONNX Runtime and PyTorch on the same exported model.

    python benchmarks/onnx_speed.py           # cnn, flat and deep; about a minute

For each command-line model: predict 10,000 images (batch 1,000, float32)
with net.predict (the default engine), with ONNX Runtime on the model
to_onnx wrote, and with the torch.nn.Sequential from to_torch.  One process,
contenders interleaved, median of 5 repeats; every runtime uses the
machine's cores as it does by default.  Prints images/s and the ratios,
and the largest difference between the outputs.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cnn_numpy.interop import to_onnx, to_torch  # noqa: E402
from cnn_numpy.models import build_model  # noqa: E402

REPEATS, IMAGES, BATCH = 5, 10_000, 1_000


def measure(name: str, X: np.ndarray, onnxruntime, torch) -> None:
    """Print one model's three rows."""
    net = build_model(name, seed=0)
    net.build((28, 28, 1))
    with tempfile.TemporaryDirectory() as folder:
        to_onnx(net, Path(folder) / "m.onnx")
        session = onnxruntime.InferenceSession(str(Path(folder) / "m.onnx"))
    model = to_torch(net, probabilities=True)
    x_nchw = torch.tensor(X.transpose(0, 3, 1, 2).copy())

    def onnx_run():
        return np.concatenate([session.run(None, {"images": X[i : i + BATCH]})[0]
                               for i in range(0, IMAGES, BATCH)])

    def torch_run():
        with torch.no_grad():
            return torch.cat([model(x_nchw[i : i + BATCH])
                              for i in range(0, IMAGES, BATCH)]).numpy()

    runs = {"net.predict": lambda: net.predict(X, batch_size=BATCH),
            "onnxruntime": onnx_run, "pytorch": torch_run}
    times: dict[str, list[float]] = {key: [] for key in runs}
    outputs = {}
    for _ in range(REPEATS):
        for key, run in runs.items():
            start = time.perf_counter()
            outputs[key] = run()
            times[key].append(time.perf_counter() - start)
    base = IMAGES / statistics.median(times["net.predict"])
    for key in runs:
        speed = IMAGES / statistics.median(times[key])
        diff = float(np.abs(outputs[key] - outputs["net.predict"]).max())
        print(f"{name:6s} {key:12s} {speed:10,.0f} {speed / base:10.2f}x {diff:9.1e}",
              flush=True)


def main() -> None:
    import onnxruntime
    import torch

    X = np.random.default_rng(0).random((IMAGES, 28, 28, 1), dtype=np.float32)
    print(f"{IMAGES:,} images, batch {BATCH:,}, median of {REPEATS}; torch threads "
          f"{torch.get_num_threads()}")
    print(f"{'model':6s} {'runtime':12s} {'img/s':>10s} {'vs predict':>11s} {'max diff':>9s}")
    for name in ("cnn", "flat", "deep"):
        measure(name, X, onnxruntime, torch)


if __name__ == "__main__":
    main()
