"""Accuracy targets of the command line's default settings, measured end to end.

    python benchmarks/accuracy.py              # bundled sample + Fashion-MNIST (about 3 min)
    python benchmarks/accuracy.py --only sample

Runs `cnn-numpy train` exactly as a user would (a fresh process, default
settings) and reports the final `Test set:` line and the wall time:

- sample:  `cnn-numpy train cnn --dataset mnist-sample`       target CE <= 0.03 in < 60 s
- fashion: `cnn-numpy train cnn --dataset fashion-mnist --epochs 5`   target CE <= 0.095
- mnist:   `cnn-numpy train cnn --dataset mnist`   target CE <= 0.01 (only where the four
           full MNIST files are available; skipped, saying so, otherwise)

Writes benchmarks/results/accuracy.json (updating only the runs made).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "accuracy.json"
RUNS = {
    "sample": (["cnn", "--dataset", "mnist-sample"], 0.03),
    "fashion": (["cnn", "--dataset", "fashion-mnist", "--epochs", "5"], 0.095),
    "mnist": (["cnn", "--dataset", "mnist"], 0.01),
}


def run(args: list[str]) -> dict:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "cnn_numpy", "train", *args, "--no-progress"],
                          capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        return {"error": proc.stderr.strip()}
    line = re.search(r"^Test set: CCE: ([\d.]+)  CE: ([\d.]+)$", proc.stdout, re.M)
    return {"summary": line.group(0), "cce": float(line.group(1)), "ce": float(line.group(2)),
            "seconds": round(seconds, 1), "log": proc.stdout.strip().splitlines()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=list(RUNS), action="append")
    names = parser.parse_args().only or list(RUNS)
    # runs not repeated this time keep their last figures
    report = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    for name in names:
        args, target = RUNS[name]
        result = run(args)
        result["target_ce"] = target
        report[name] = result
        if "error" in result:
            print(f"{name:8s} not run: {result['error']}")
        else:
            verdict = "meets" if result["ce"] <= target else "MISSES"
            print(f"{name:8s} {result['summary']}  ({result['seconds']:.0f} s; {verdict} "
                  f"CE <= {target})")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
