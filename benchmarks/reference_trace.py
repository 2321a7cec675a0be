"""How much code one training step of the reference path runs: the distinct cnn_numpy
functions that one net.train of the spec's CNN calls (sys.setprofile, worker threads
included), with Net(fast=False), at batch 32 and 128, on each engine; the fast path's
count for comparison.  For im2col and stride groups it lists the functions that
the naive engine's step does not run.  Comprehensions are not counted: Python 3.11
runs each as a function of its own, 3.12 inlines them (PEP 709).

    python benchmarks/reference_trace.py
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cnn_numpy import (  # noqa: E402
    ConvLayer_ReLU,
    FCLayer_ReLU,
    FCLayer_Softmax,
    FlatLayer,
    Net,
    PoolLayer_Max,  # noqa: E402
)

PACKAGE = str(Path(__file__).resolve().parents[1] / "cnn_numpy") + os.sep


def functions_of_one_step(fast: bool, engine: str, batch: int) -> set[str]:
    net = Net([ConvLayer_ReLU(32, 3), PoolLayer_Max(2), FlatLayer(), FCLayer_ReLU(100),
               FCLayer_Softmax(10)], seed=0, engine=engine, fast=fast)
    rng = np.random.default_rng(0)
    X, y = rng.random((batch, 28, 28), dtype=np.float32), rng.integers(0, 10, batch)
    net.train(X, y, 0.01)  # builds the weights: the step traced is an ordinary one
    seen: set[str] = set()

    def profile(frame, event, arg):
        code = frame.f_code
        if event == "call" and code.co_filename.startswith(PACKAGE) \
                and not code.co_name.endswith("comp>") and code.co_name != "<genexpr>":
            seen.add(f"{code.co_filename[len(PACKAGE):]}:{code.co_qualname}")

    threading.setprofile(profile)
    sys.setprofile(profile)
    try:
        net.train(X, y, 0.01)
    finally:
        sys.setprofile(None)
        threading.setprofile(None)
    return seen


def main() -> None:
    naive = set()
    for fast in (False, True):
        for engine in ("naive", "im2col", "stride_groups"):
            counts = {}
            for batch in (32, 128):
                if engine == "naive" and batch == 128 and fast:
                    continue  # the same loops as fast=False: minutes, nothing new
                counts[batch] = functions_of_one_step(fast, engine, batch)
            same = len({frozenset(c) for c in counts.values()}) == 1
            files = {name.split(":")[0] for c in counts.values() for name in c}
            print(f"{'fast' if fast else 'reference'} path, {engine}: "
                  + ", ".join(f"batch {b}: {len(c)} functions" for b, c in counts.items())
                  + f" in {len(files)} files" + ("; the same at both batches" * same))
            if not fast and engine == "naive":
                naive = counts[32]
                print("  " + "\n  ".join(sorted(naive)))
            elif not fast:  # the engine's own functions, in place of the naive loops'
                print("  beyond naive's: " + ", ".join(sorted(counts[32] - naive)))


if __name__ == "__main__":
    main()
