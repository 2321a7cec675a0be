"""Latency of `cnn-numpy serve` under load: POST /api/predict with every layer's output.

    python benchmarks/web_load.py [--clients 8] [--requests 400] [MODEL]

Starts `cnn-numpy serve` (MODEL, or a cnn trained on the bundled sample) on
a free port of 127.0.0.1, then sends --requests requests from --clients
concurrent clients (threads, each with its own keep-alive connection),
each a different test image, and prints requests/s and the latency
percentiles (p50, p95, max).  Target: p95 under 50 ms at 8 clients on 2
cores.  The clients run on the same machine as the server and take CPU
from it; they only check each answer's status and size, they do not
decode it.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cnn_numpy.data import load_dataset  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def served_model(model: str | None = None) -> Iterator[int]:
    """`cnn-numpy serve` of `model` (default: a cnn trained one epoch on the sample) in a
    process of its own, on a free port of 127.0.0.1; yields the port once it answers."""
    with tempfile.TemporaryDirectory() as folder:
        if model is None:
            model = str(Path(folder) / "cnn.npz")
            subprocess.run([sys.executable, "-m", "cnn_numpy", "train", "cnn", "--dataset",
                            "mnist-sample", "--epochs", "1", "--no-progress", "--save", model],
                           check=True, capture_output=True)
        port = free_port()
        server = subprocess.Popen([sys.executable, "-m", "cnn_numpy", "serve", model,
                                   "--port", str(port)], stdout=subprocess.DEVNULL)
        try:
            deadline = time.time() + 60
            while time.time() < deadline:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.2)
            yield port
        finally:
            server.terminate()
            server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", nargs="?", default=None)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=400)
    options = parser.parse_args()
    data = load_dataset("mnist-sample", progress=False)
    bodies = [json.dumps({"image": image.tolist()}).encode() for image in data.x_test[:200]]
    with served_model(options.model) as port:
        latencies, errors, lock = [], [], threading.Lock()
        per_client = options.requests // options.clients

        def client(k: int) -> None:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            for i in range(per_client):
                body = bodies[(k * per_client + i) % len(bodies)]
                start = time.perf_counter()
                connection.request("POST", "/api/predict", body,
                                   {"Content-Type": "application/json"})
                response = connection.getresponse()
                answer = response.read()
                elapsed = time.perf_counter() - start
                with lock:
                    latencies.append(elapsed)
                    if response.status != 200 or b'"probabilities"' not in answer:
                        errors.append(response.status)
            connection.close()

        threads = [threading.Thread(target=client, args=(k,))
                   for k in range(options.clients)]
        began = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - began
    ms = sorted(1000 * t for t in latencies)
    p95 = statistics.quantiles(ms, n=20)[-1]
    print(f"{len(ms)} requests from {options.clients} clients in {wall:.1f} s "
          f"({len(ms) / wall:.0f} requests/s), {len(errors)} errors")
    print(f"latency: p50 {statistics.median(ms):.1f} ms, p95 {p95:.1f} ms, max {ms[-1]:.1f} ms "
          f"(target p95 < 50 ms)")


if __name__ == "__main__":
    main()
