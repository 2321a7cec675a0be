"""Accuracy of the command line's default settings, measured end to end.

    python benchmarks/accuracy.py                        # every run below (about 45 min)
    python benchmarks/accuracy.py --only mnist-cnn --only sample
    python benchmarks/accuracy.py --mnist-dir DIR         # default: ../shared/data/mnist

Each run is `cnn-numpy train ...` exactly as a user would type it (a fresh
process, the model's default settings, seed 0 unless named), and reports
the final `Test set:` line, the accuracy and the wall time against its
target:

| run           | command                                                   | target            |
|---------------|-----------------------------------------------------------|-------------------|
| sample        | train cnn --dataset mnist-sample                          | CE <= 0.03, 60 s  |
| mnist-cnn     | train cnn --dataset mnist                                 | >= 98.8%, 120 s   |
| mnist-flat    | train flat --dataset mnist                                | (none)            |
| mnist-deep    | train deep --dataset mnist                                | >= 99.4%, 600 s   |
| fashion-cnn-N | train cnn --dataset fashion-mnist --epochs 5 --seed N     | CE <= 0.09        |
| fashion-deep  | train deep --dataset fashion-mnist                        | >= 92.5%          |

Full MNIST is read from --mnist-dir (the four official files); Fashion-MNIST
from where `cnn-numpy` finds it (Debian's dataset-fashion-mnist package, the
cache or a download).  Runs one at a time: on two cores, two at once would
slow both.  Writes benchmarks/results/accuracy.json, updating only the runs
made.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "accuracy.json"
SHARED_MNIST = ROOT.parent / "shared" / "data" / "mnist"

#: name -> (arguments after `cnn-numpy train`, largest CE, most seconds or None)
RUNS: dict[str, tuple[list[str], float, float | None]] = {
    "sample": (["cnn", "--dataset", "mnist-sample"], 0.03, 60),
    "mnist-cnn": (["cnn", "--dataset", "mnist"], 0.012, 120),
    "mnist-flat": (["flat", "--dataset", "mnist"], 1.0, None),
    "mnist-deep": (["deep", "--dataset", "mnist"], 0.006, 600),
    **{f"fashion-cnn-{seed}": (["cnn", "--dataset", "fashion-mnist", "--epochs", "5",
                                "--seed", str(seed)], 0.09, None) for seed in (0, 1, 2)},
    "fashion-deep": (["deep", "--dataset", "fashion-mnist"], 0.075, None),
}


def run(args: list[str]) -> dict:
    command = [sys.executable, "-m", "cnn_numpy", "train", *args, "--no-progress"]
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        return {"command": " ".join(["cnn-numpy", "train", *args]), "error": proc.stderr.strip()}
    line = re.search(r"^Test set: CCE: ([\d.]+)  CE: ([\d.]+)$", proc.stdout, re.M)
    return {"command": " ".join(["cnn-numpy", "train", *args]), "summary": line.group(0),
            "cce": float(line.group(1)), "ce": float(line.group(2)),
            "accuracy_percent": round(100 * (1 - float(line.group(2))), 2),
            "seconds": round(seconds, 1), "log": proc.stdout.strip().splitlines()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=list(RUNS), action="append",
                        help="make only this run (repeatable)")
    parser.add_argument("--mnist-dir", type=Path, default=SHARED_MNIST,
                        help=f"folder with the four MNIST files (default {SHARED_MNIST})")
    options = parser.parse_args()
    report = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    for name in options.only or list(RUNS):
        args, max_ce, max_seconds = RUNS[name]
        if "mnist" in args:
            args = [*args, "--data-dir", str(options.mnist_dir)]
        result = run(args)
        result.update(target_ce=max_ce, target_seconds=max_seconds)
        report[name] = result
        if "error" in result:
            print(f"{name:14s} not run: {result['error']}", flush=True)
            continue
        verdict = "meets" if result["ce"] <= max_ce and (
            max_seconds is None or result["seconds"] <= max_seconds) else "MISSES"
        target = f"CE <= {max_ce}" + (f" in {max_seconds} s" if max_seconds else "")
        print(f"{name:14s} {result['summary']}  ({result['accuracy_percent']:.2f}%, "
              f"{result['seconds']:.0f} s; {verdict} {target})", flush=True)
        RESULTS.parent.mkdir(exist_ok=True)
        RESULTS.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
