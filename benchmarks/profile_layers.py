"""Where a training step's time goes: each layer's forward and backward pass, per engine.

    python benchmarks/profile_layers.py                  # every fast engine, batch 128
    python benchmarks/profile_layers.py --engine stride_groups --batch 64
    python benchmarks/profile_layers.py --model deep --batch 32

Median milliseconds over repeated steps of a command-line model (the spec's
cnn by default), float32, every layer on the whole batch in this thread, as
inside one of the Net's batch shards (BLAS on one thread): the cost of each
pass, without the shards and worker threads around it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cnn_numpy import ENGINES  # noqa: E402
from cnn_numpy.fast import threads as parallel  # noqa: E402
from cnn_numpy.models import build_model  # noqa: E402


def profile(model: str, engine: str, batch: int, repeats: int) -> dict[str, float]:
    rng = np.random.default_rng(0)
    X = rng.random((batch, 28, 28, 1), dtype=np.float32)
    Y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, batch)]
    net = build_model(model, engine=engine, seed=0)
    for _ in range(3):
        net.train(X, Y, 0.01)
    times = defaultdict(list)

    def timed(name, fn, *args):
        start = time.perf_counter()
        out = fn(*args)
        times[name].append((time.perf_counter() - start) * 1e3)
        return out

    parallel.keep_freed_memory()
    with parallel.single_threaded_blas():
        for _ in range(repeats):
            step(net, X, Y, timed)
    return {name: statistics.median(v) for name, v in times.items()}


def step(net, X, Y, timed) -> None:
    """One training step, layer by layer, each pass timed."""
    A = X
    for i, layer in enumerate(net.layers):
        A = timed(f"{i} {type(layer).__name__} forward", layer.forward_propagate, A)
    _, dZ = net.output_layer.loss(Y)
    d = timed(f"{len(net.layers) - 1} {type(net.layers[-1]).__name__} backward",
              net.output_layer.backpropagate_dZ, dZ)
    for i in range(len(net.layers) - 2, -1, -1):
        layer = net.layers[i]
        d = timed(f"{i} {type(layer).__name__} backward", layer.backpropagate, d)
    timed("optimizer step", net.optimizer.step, net.param_triples(), 0.01)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--engine", choices=sorted(ENGINES), action="append")
    parser.add_argument("--model", choices=["cnn", "deep"], default="cnn")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    engines = args.engine or [e for e in ENGINES if e != "naive"]
    results = {e: profile(args.model, e, args.batch, args.repeats) for e in engines}
    names = list(next(iter(results.values())))
    print(f"{'ms per step, batch ' + str(args.batch):34s}" + "".join(f"{e:>15s}" for e in engines))
    for name in names:
        print(f"{name:34s}" + "".join(f"{results[e][name]:15.2f}" for e in engines))
    print(f"{'total':34s}" + "".join(f"{sum(results[e].values()):15.2f}" for e in engines))


if __name__ == "__main__":
    main()
