"""The spec's application, kept working from the repository root:

    python mnist.py cnn           # the CNN on the stride-group engine, the spec's technique
    python mnist.py flat          # a dense-only network
    python mnist.py cnn naive     # the CNN on the naive four-loop engine (slow: a subset)

As the spec says, the four official MNIST files (gzipped or not, the original
names) saved beside this script, or in the current folder, are used (after
checking them against the official checksums) before the cache or a download.
It is a thin front to `cnn-numpy train`; run `cnn-numpy train --help` for
everything else (its own default engine is im2col, the fastest).
"""

from __future__ import annotations

import sys
from pathlib import Path

USAGE = "usage: python mnist.py {cnn,flat} [naive] [cnn-numpy train options]"

#: How much the naive engine trains on by default, so that it finishes in minutes.
NAIVE_TRAIN, NAIVE_TEST = 200, 100


def local_mnist() -> Path | None:
    """The folder of this script, or else the current one, if it holds all four MNIST files."""
    from cnn_numpy.data.datasets import FILES, _local_file

    for folder in (Path(__file__).resolve().parent, Path.cwd()):
        if all(_local_file(folder, name) for name in FILES["mnist"]):
            return folder
    return None


def main(argv: list[str]) -> int:
    naive = argv[1:2] == ["naive"]
    options = argv[2:] if naive else argv[1:]  # anything else goes to `cnn-numpy train`
    if not argv or argv[0] not in ("cnn", "flat") or (naive and argv[0] != "cnn") \
            or (options and not options[0].startswith("-")):
        print(USAGE, file=sys.stderr)
        return 2
    from cnn_numpy.cli import main as cli_main

    # Defaults go before the user's options, which win where they repeat one (argparse
    # keeps the last).
    defaults = []
    # --engine (or an abbreviation argparse accepts, --en and longer) chosen by the user: no
    # stride-group default and no sentence about it
    chosen_engine = any(len(name) >= 4 and "--engine".startswith(name)
                        for name in (o.split("=")[0] for o in options))
    if naive:
        print(f"By default `mnist.py cnn naive` trains one epoch on the first {NAIVE_TRAIN} "
              f"images and tests on {NAIVE_TEST} (change with --limit, --test-limit, "
              "--epochs).", flush=True)
        defaults = ["--engine", "naive", "--limit", str(NAIVE_TRAIN), "--test-limit",
                    str(NAIVE_TEST), "--epochs", "1"]
    elif argv[0] == "cnn" and not chosen_engine:
        print("Training on the stride-group engine, the spec's technique (`--engine im2col` "
              "is faster).", flush=True)
        defaults = ["--engine", "stride_groups"]
    folder = local_mnist()
    if folder is not None and not {"--dataset", "--data-dir"} & {o.split("=")[0]
                                                               for o in options}:
        print(f"Using the MNIST files in {folder}.", flush=True)
        defaults += ["--dataset", "mnist", "--data-dir", str(folder)]
    return cli_main(["train", argv[0], *defaults, *options])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
