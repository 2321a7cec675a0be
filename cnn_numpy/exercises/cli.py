"""The command line's part: `cnn-numpy exercises DIR`, `cnn-numpy check DIR [FUNCTION]`,
and --engine's reading of a folder of exercise files."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..engines import ENGINES
from .checker import check_exercises
from .engine import SHIPPED, load_engine
from .files import write_exercises
from .spec import EXERCISES, NAMES, PARTS


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Add the `exercises` and `check` commands to the command line's subparsers."""
    e = sub.add_parser("exercises", help="write the exercise files: the CNN's functions for "
                                         "you to write, then check and train with")
    e.add_argument("folder", metavar="DIR",
                   help="the folder to write them in (created if needed); a file you changed "
                        "is never overwritten")
    e.set_defaults(func=cmd_exercises)

    c = sub.add_parser("check", help="grade your exercise files in order, naming the likely "
                                     "mistake and showing the smallest example that fails")
    c.add_argument("folder", metavar="DIR", help="the folder `cnn-numpy exercises` wrote")
    c.add_argument("function", nargs="?", default=None, metavar="FUNCTION",
                   help="check only this one (default: all, in order): "
                        + ", ".join(NAMES))
    c.add_argument("--all", action="store_true",
                   help="go on after a function that does not pass (default: stop there)")
    c.set_defaults(func=cmd_check)


def engine_option(text: str) -> str:
    """An argparse type for --engine: an engine's name, or a folder of exercise files
    whose functions pass the check (registered as an engine: load_engine)."""
    if text in ENGINES:
        return text
    if Path(text).is_dir():
        try:
            return load_engine(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc).replace("\n", " ")) from None
    raise argparse.ArgumentTypeError(f"invalid choice: {text!r} (choose from "
                                     f"{', '.join(sorted(SHIPPED))}, or give the folder of "
                                     "your exercise files)")


def cmd_exercises(args: argparse.Namespace) -> int:
    folder = args.folder
    done = write_exercises(folder)
    print(f"The exercises are in {folder}:", flush=True)
    width = max(len(part) for part, _ in done)
    for part, what in done:
        print(f"  {part.ljust(width)}  {what}")
    first = EXERCISES[0]
    print(f"Start with {first.name} in {Path(folder) / PARTS[0]}, and after each function run "
          f"`cnn-numpy check {folder}`.\nWhen parts 1 and 2 pass, train the CNN with your code: "
          f"`cnn-numpy train cnn --engine {folder} --dataset mnist-sample --limit 64 "
          "--test-limit 100`.\nStuck? The reference answers are cnn-numpy's naive engine, "
          "cnn_numpy/engines/naive.py.", flush=True)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    command = f"cnn-numpy check {args.folder}" + (f" {args.function}" if args.function else "")
    report = check_exercises(args.folder, args.function, every=args.all, command=command)
    print(report, flush=True)
    if report.passed and args.function is None:
        print(f"Train with them: `cnn-numpy train cnn --engine {args.folder} --dataset "
              "mnist-sample --limit 64 --test-limit 100`", flush=True)
    return 0 if report.passed else 1
