"""Training from the page, measured against `cnn-numpy train` with the same settings.

    python benchmarks/page_training.py              # the bundled sample, about a minute
    python benchmarks/page_training.py --minutes 30 --dataset mnist   # the memory figure

Prints, median of --repeats alternating runs of one epoch of the spec's cnn:
- images/s of the command line's loop (training.train, no views) and of a page run with
  its live views on (the epoch's own figure, as both loops measure it), and their ratio;
- whether the two runs end with the same weights, bit for bit;
- how often the live views changed, seen by a client polling as the page does;
- /api/predict's p50 and p95 while the page trains (one more run, a predict request
  with each poll).
With --minutes M: one page run on --dataset for M minutes, the process's peak memory
(ru_maxrss) and the curves' lengths at the end.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from starlette.testclient import TestClient  # noqa: E402

from cnn_numpy.data import load_dataset  # noqa: E402
from cnn_numpy.models import MODEL_LAYERS, build_model  # noqa: E402
from cnn_numpy.training import (  # noqa: E402
    prepare_run,
    run_settings,
    train,
    weight_arrays,
)
from cnn_numpy.web.server import create_app  # noqa: E402

SETTINGS = {"layers": MODEL_LAYERS["cnn"], "epochs": 1, "batch_size": 32,
            "learning_rate": 0.001, "optimizer": "adam", "schedule": "constant", "seed": 0,
            "validation": 0.1}


def command_line_run(sample):
    """`cnn-numpy train --layers ...` with SETTINGS: prepare_run and the loop, no callbacks."""
    settings = run_settings(layers=SETTINGS["layers"], epochs=1, batch_size=32,
                            learning_rate=0.001, optimizer="adam", seed=0,
                            schedule="constant", validation=0.1, dataset="mnist-sample")
    net = build_model(settings.model, None, 0, "adam", 0.0, layers=settings.layers)
    run = prepare_run(net, settings, sample.x_train, sample.y_train, sample.x_test,
                      sample.y_test)
    progress = train(run)
    return progress.history[-1]["images_per_s"], weight_arrays(net)


def page_run(http, sample, body, watch: bool = False):
    """(images/s, weights, view updates a second, predict latencies) of one page run,
    polled as the page polls (4 times a second); watch: also a predict request each
    time (a digit drawn while it trains)."""
    number = http.post("/api/train/start", json=body).json()["run"]
    versions, latencies, started = set(), [], time.perf_counter()
    while True:
        state = http.get("/api/train/state").json()
        versions.add(state["version"])
        if watch:
            t = time.perf_counter()
            http.post("/api/predict", json={"image": sample.x_test[len(latencies) % 100]
                                            .tolist()})
            latencies.append(time.perf_counter() - t)
        if state["run"]["status"] not in ("starting", "running", "paused"):
            break
        time.sleep(0.25)
    seconds = time.perf_counter() - started
    run = state["run"]
    assert run["status"] == "done", run["message"]
    trainer = http.app.state.trainer
    path = Path("/tmp") / f"page-benchmark-{number}.npz"
    path.write_bytes(trainer.model_file(str(number)))
    from cnn_numpy import Net

    weights = weight_arrays(Net.load(path))
    path.unlink()
    return run["epochs"][-1]["images_per_s"], weights, len(versions) / seconds, latencies


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--minutes", type=float, default=0)
    parser.add_argument("--dataset", default="mnist-sample")
    args = parser.parse_args()
    sample = load_dataset("mnist-sample", progress=False)
    served = build_model("cnn", seed=0, optimizer="adam")
    served.train(sample.x_train[:64], sample.y_train[:64], 0.001)
    with TestClient(create_app(served, sample.x_test, sample.y_test)) as http:
        cli, page, rates, latencies, same = [], [], [], [], []
        for _ in range(args.repeats):
            speed, cli_weights = command_line_run(sample)
            cli.append(speed)
            speed, page_weights, rate, _ = page_run(http, sample, SETTINGS)
            page.append(speed)
            rates.append(rate)
            latencies += page_run(http, sample, SETTINGS, watch=True)[3]
            same.append(all(np.array_equal(a, b)
                            for a, b in zip(cli_weights, page_weights, strict=True)))
        c, p = statistics.median(cli), statistics.median(page)
        print(f"cnn-numpy train: {c:,.0f} images/s; the page with live views: {p:,.0f} "
              f"images/s: {p / c:.2f}x (median of {args.repeats}, alternating)")
        print(f"same weights bit for bit: {same}")
        print(f"live views: {statistics.median(rates):.1f} updates a second")
        q = statistics.quantiles(latencies, n=20)
        print(f"/api/predict while training: p50 {1000 * statistics.median(latencies):.1f} ms, "
              f"p95 {1000 * q[-1]:.1f} ms ({len(latencies)} requests)")
        if args.minutes:
            long_run(http, args)


def long_run(http, args) -> None:
    body = {**SETTINGS, "dataset": args.dataset, "epochs": 1000}
    trainer = http.app.state.trainer
    trainer.datasets.append(args.dataset)
    http.post("/api/train/start", json=body)
    end = time.time() + 60 * args.minutes
    peaks = []
    while time.time() < end:
        time.sleep(min(30, max(end - time.time(), 0)))
        peaks.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        run = http.get("/api/train/state").json()["run"]
        print(f"  {run['images']:,} images, {len(run['train'])} training points, "
              f"{len(run['validation'])} validation points, peak memory {peaks[-1]:.0f} MiB",
              flush=True)
    http.post("/api/train/reset")
    print(f"{args.minutes:g} minutes on {args.dataset}: peak memory {peaks[-1]:.0f} MiB")


if __name__ == "__main__":
    threading.current_thread().name = "benchmark"
    main()
