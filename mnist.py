"""The spec's application, kept working from the repository root:

    python mnist.py cnn           # the CNN (im2col engine)
    python mnist.py flat          # a dense-only network
    python mnist.py cnn naive     # the CNN on the naive four-loop engine (slow: a subset)

It is a thin front to `cnn-numpy train`; run `cnn-numpy train --help` for everything else.
"""

from __future__ import annotations

import sys

USAGE = "usage: python mnist.py {cnn,flat} [naive] [cnn-numpy train options]"

#: How much the naive engine trains on by default, so that it finishes in minutes.
NAIVE_TRAIN, NAIVE_TEST = 200, 100


def main(argv: list[str]) -> int:
    naive = argv[1:2] == ["naive"]
    options = argv[2:] if naive else argv[1:]  # anything else goes to `cnn-numpy train`
    if not argv or argv[0] not in ("cnn", "flat") or (naive and argv[0] != "cnn") \
            or (options and not options[0].startswith("-")):
        print(USAGE, file=sys.stderr)
        return 2
    from cnn_numpy.cli import main as cli_main

    defaults = []
    if naive:
        print(f"By default `mnist.py cnn naive` trains one epoch on the first {NAIVE_TRAIN} "
              f"images and tests on {NAIVE_TEST} (change with --limit, --test-limit, "
              "--epochs).", flush=True)
        # before the user's options, which win where they repeat one (argparse keeps the last)
        defaults = ["--engine", "naive", "--limit", str(NAIVE_TRAIN), "--test-limit",
                    str(NAIVE_TEST), "--epochs", "1"]
    return cli_main(["train", argv[0], *defaults, *options])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
