"""Your own images: how fast a folder loads, how much memory it takes, and how well the
spec's cnn learns drawn shapes from the command line with its defaults.

1. 10,000 small colour PNG images (32 x 32, two classes) made in a temporary folder,
   loaded with data.load_images at 28 x 28: seconds, and the process's peak memory
   beyond what it held before, against the size of the arrays it returns (each step in
   a fresh process, so that the peak is this load's own).
2. Three classes of drawn shapes (circle, square, triangle), 200 images each, 40 x 40
   colour, at random sizes, places and colours: `cnn-numpy train cnn --images DIR`,
   its test result and wall time.  Target: >= 95% in under a minute on 2 cores.

    python benchmarks/images.py            # writes benchmarks/results/images.json
"""

from __future__ import annotations

import json
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cnn_numpy.data.shapes import make_shapes  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "images.json"

LOAD = """
import resource, sys, time
from cnn_numpy.data import load_images
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
data = load_images(sys.argv[1], size=(28, 28), log=lambda _: None)
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
arrays = data.x_train.nbytes + data.x_test.nbytes + data.y_train.nbytes + data.y_test.nbytes
print(seconds, (peak - before) * 1024, arrays, len(data.x_train) + len(data.x_test))
"""


def loading(folder: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", LOAD, str(folder)], capture_output=True,
                         text=True, check=True, cwd=ROOT).stdout.split()
    seconds, extra, arrays, images = float(out[0]), int(out[1]), int(out[2]), int(out[3])
    return {"images": images, "seconds": round(seconds, 2), "arrays_mib": arrays / 2**20,
            "peak_growth_mib": extra / 2**20, "beyond_arrays_mib": (extra - arrays) / 2**20}


def training(folder: Path) -> dict:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "cnn_numpy", "train", "cnn", "--images",
                           str(folder), "--no-progress"], capture_output=True, text=True,
                          check=True, cwd=ROOT)
    seconds = time.perf_counter() - start
    ce = float(re.search(r"Test set: CCE: [\d.]+  CE: ([\d.]+)", done.stdout).group(1))
    return {"command": "cnn-numpy train cnn --images DIR", "test_accuracy": 1 - ce,
            "seconds": round(seconds, 1), "output": done.stdout.splitlines()[-3:]}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / "big"
        make_shapes(big, 5000, size=32, kinds=("circle", "square"))
        load = [loading(big) for _ in range(3)]
        shapes = Path(tmp) / "shapes"
        make_shapes(shapes, 200, size=40, seed=1)
        train = training(shapes)
    load_median = sorted(load, key=lambda r: r["seconds"])[1]
    result = {"machine": f"{platform.machine()}, Python {platform.python_version()}",
              "load_10000": load_median, "load_runs": load, "shapes": train}
    print(f"10,000 images: {load_median['seconds']} s (median of 3), arrays "
          f"{load_median['arrays_mib']:.1f} MiB, peak growth "
          f"{load_median['peak_growth_mib']:.1f} MiB (beyond the arrays: "
          f"{load_median['beyond_arrays_mib']:.1f} MiB)")
    print(f"shapes: test accuracy {100 * train['test_accuracy']:.1f}% in {train['seconds']} s")
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
