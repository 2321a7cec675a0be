"""How much of its idle speed training keeps when other programs keep the cores busy.

    python benchmarks/busy_machine.py        # about 2 minutes on 2 cores

The spec's CNN (the command line's `cnn`) trains on random 28 x 28 images at
batch 32 (the command line's default) and 128 (two shards), beside 0, 1 and
2 processes that run a busy loop, each setting in a fresh process, rounds
alternating; the median of 3 rounds of 3 seconds is reported, with the
share of the idle speed kept.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHILD = r"""
import sys, time
sys.path.insert(0, sys.argv[1])
import numpy as np
from cnn_numpy.models import build_model
batch, seconds = int(sys.argv[2]), float(sys.argv[3])
net = build_model("cnn", seed=0)
rng = np.random.default_rng(0)
X, y = rng.random((batch, 28, 28, 1), dtype=np.float32), rng.integers(0, 10, batch)
for _ in range(3):
    net.train(X, y, 0.01)
done, start = 0, time.perf_counter()
while time.perf_counter() - start < seconds:
    net.train(X, y, 0.01)
    done += batch
print(done / (time.perf_counter() - start))
"""


def images_per_second(batch: int, busy: int, seconds: float = 3.0) -> float:
    loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
    try:
        time.sleep(0.3 if busy else 0)
        out = subprocess.run([sys.executable, "-c", CHILD, str(ROOT), str(batch), str(seconds)],
                             capture_output=True, text=True, check=True)
        return float(out.stdout)
    finally:
        for loop in loops:
            loop.kill()
            loop.wait()


def main() -> None:
    settings = [(batch, busy) for batch in (32, 128) for busy in (0, 1, 2)]
    rates: dict[tuple[int, int], list[float]] = {s: [] for s in settings}
    for _ in range(3):
        for setting in settings:
            rates[setting].append(images_per_second(*setting))
    for batch in (32, 128):
        idle = statistics.median(rates[(batch, 0)])
        line = [f"batch {batch}: idle {idle:,.0f} images/s"]
        for busy in (1, 2):
            rate = statistics.median(rates[(batch, busy)])
            line.append(f"beside {busy} busy {rate:,.0f} ({rate / idle:.0%} kept)")
        print("; ".join(line))


if __name__ == "__main__":
    main()
