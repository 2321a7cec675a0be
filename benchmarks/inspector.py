"""How fast the page's step inspector answers, through HTTP, as the page asks.

    python benchmarks/inspector.py [--per-array 5]   # writes benchmarks/results/inspector.json

Starts `cnn-numpy serve` (the spec's cnn, one epoch on the bundled sample) on a free port of
127.0.0.1, traces one step of the spec's cnn at batch 32 (POST /api/inspect/step), then, as
a learner's clicks would, opens explanations of every array of every stage at --per-array
random indices each (GET /api/inspect/explain: the request, the explanation and its
20 largest terms, the JSON), fetches every array once (GET /api/inspect/array), and hovers
the multiply-add panel over the first convolution's maps (POST /api/inspect/pixel; the first
hover traces the drawing, the others reuse it).  Target: an explanation opens in under
200 ms at the 95th percentile.
"""

from __future__ import annotations

import argparse
import http.client
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from web_load import served_model  # noqa: E402  (beside this script)

from cnn_numpy.data import load_dataset  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "inspector.json"


def timed(connection, method: str, path: str, body: dict | None = None) -> tuple[float, dict]:
    """(milliseconds, the answer) of one request on a kept-alive connection."""
    start = time.perf_counter()
    connection.request(method, path, None if body is None else json.dumps(body).encode(),
                       {"Content-Type": "application/json"})
    response = connection.getresponse()
    answer = json.loads(response.read())
    elapsed = (time.perf_counter() - start) * 1000
    if response.status != 200:
        raise RuntimeError(f"{method} {path}: {response.status} {answer}")
    return elapsed, answer


def figures(ms: list[float]) -> dict:
    return {"requests": len(ms), "p50_ms": round(float(np.percentile(ms, 50)), 2),
            "p95_ms": round(float(np.percentile(ms, 95)), 2), "max_ms": round(max(ms), 1)}


def measure(port: int, per_array: int) -> dict:
    rng = np.random.default_rng(0)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    step_ms, step = timed(connection, "POST", "/api/inspect/step",
                          {"source": "train", "seed": 0, "batch_size": 32})
    explain, arrays, slowest = [], [], (0.0, "")
    for stage in step["stages"]:
        for entry in stage["arrays"]:
            shape = ([step["n"]] if entry["batch"] else []) + entry["shape"]
            query = f"layer={entry['layer']}&name={entry['name']}"
            ms, _ = timed(connection, "GET", f"/api/inspect/array?{query}"
                          + ("&sample=0" if entry["batch"] else ""))
            arrays.append(ms)
            for _ in range(per_array):
                index = ",".join(str(int(rng.integers(d))) for d in shape)
                ms, _ = timed(connection, "GET", f"/api/inspect/explain?{query}&index={index}")
                explain.append(ms)
                slowest = max(slowest, (ms, f"layer {entry['layer']} {entry['name']}"))
    image = load_dataset("mnist-sample", progress=False).x_test[0].tolist()
    pixel = [timed(connection, "POST", "/api/inspect/pixel",
                   {"image": image, "layer": 0, "index": [int(r), int(c), int(f)]})[0]
             for r, c, f in zip(rng.integers(26, size=60), rng.integers(26, size=60),
                                rng.integers(32, size=60), strict=True)]
    connection.close()
    return {"machine": f"{platform.machine()}, Python {platform.python_version()}",
            "batch": step["n"], "trace_step_ms": round(step_ms, 1),
            "explain": {**figures(explain), "slowest": slowest[1]},
            "array": figures(arrays), "pixel_first_ms": round(pixel[0], 1),
            "pixel": figures(pixel[1:]), "target_p95_ms": 200}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-array", type=int, default=5)
    options = parser.parse_args()
    with served_model() as port:
        result = measure(port, options.per_array)
    e = result["explain"]
    print(f"trace of one step at batch {result['batch']}: {result['trace_step_ms']:.0f} ms; "
          f"{e['requests']} explanations: p50 {e['p50_ms']} ms, p95 {e['p95_ms']} ms (target "
          f"< 200), max {e['max_ms']} ms ({e['slowest']}); arrays: p95 "
          f"{result['array']['p95_ms']} ms; multiply-add hover: first "
          f"{result['pixel_first_ms']} ms, then p95 {result['pixel']['p95_ms']} ms")
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
