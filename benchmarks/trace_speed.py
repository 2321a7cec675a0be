"""How long one explanation of a training step's number takes (the page's inspector opens
one per click): the spec's cnn at batch 32, every array of every layer, several random
indices each, each explain(...).to_dict() timed.  Target: p95 under 200 ms.

    python benchmarks/trace_speed.py        # writes benchmarks/results/trace.json
"""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cnn_numpy.models import build_model  # noqa: E402
from cnn_numpy.trace import trace_step  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "trace.json"


def main() -> None:
    net = build_model("cnn", seed=0, optimizer="adam")
    rng = np.random.default_rng(0)
    X, y = rng.random((32, 28, 28, 1), dtype=np.float32), rng.integers(0, 10, 32)
    start = time.perf_counter()
    trace = trace_step(net, X, y, 0.001)
    step_ms = (time.perf_counter() - start) * 1000
    times, slowest = [], (0.0, "")
    for lt in trace.layers:
        for name in lt.names():
            for _ in range(5):
                index = tuple(int(rng.integers(d)) for d in lt[name].shape)
                start = time.perf_counter()
                trace.explain(lt.number, name, index).to_dict()
                ms = (time.perf_counter() - start) * 1000
                times.append(ms)
                slowest = max(slowest, (ms, f"layer {lt.number} {name}"))
    result = {"machine": f"{platform.machine()}, Python {platform.python_version()}",
              "trace_step_ms": round(step_ms, 1), "explanations": len(times),
              "p50_ms": round(float(np.percentile(times, 50)), 2),
              "p95_ms": round(float(np.percentile(times, 95)), 2),
              "slowest_ms": round(slowest[0], 1), "slowest": slowest[1]}
    print(f"trace_step: {step_ms:.0f} ms; {len(times)} explanations: p50 "
          f"{result['p50_ms']} ms, p95 {result['p95_ms']} ms (target < 200), slowest "
          f"{result['slowest_ms']} ms ({slowest[1]})")
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
