"""The documentation's tables of measured figures, written from benchmarks/results/*.json.

    python benchmarks/report.py          # writes docs/*-table.md
    python benchmarks/report.py --check  # writes nothing; exit 1 if a table is out of date

The benchmarks write the JSON; this script only formats it.  The pages
docs/performance.md and docs/accuracy.md include the tables, and tests/test_docs.py checks
that the committed tables are what this script writes now, so a figure in the
documentation is always the one in the results files.  Rerun it after a benchmark.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DOCS = ROOT / "docs"

GENERATED = ("<!-- Written by benchmarks/report.py from benchmarks/results/{source}: "
             "do not edit; run the script. -->\n\n")

#: The contenders of speed.py as the table names them.
CONTENDERS = {"pytorch": "PyTorch"}


def _number(value: float) -> str:
    return f"{value:,.0f}"


def _ratio(value: float, base: float) -> str:
    return f"{value / base:.2f}x"


def _contender(name: str) -> str:
    return CONTENDERS.get(name, name)


def speed_table(results: dict) -> str:
    """speed.json as Markdown: the machine, a table of images per second against PyTorch,
    a one-line summary, and the other measurements speed.py makes."""
    lines = [
        f"Machine: {results['machine']}.  ",
        f"Threads: {results['threads']}.  ",
        f"Batch {results['batch']}, float32, median of {results['repeats']} interleaved "
        "repeats.",
        "",
        "| network | contender | training (images/s) | vs PyTorch | prediction (images/s) "
        "| vs PyTorch |",
        "|---|---|---:|---:|---:|---:|",
    ]
    summary = []
    for model, figures in results["models"].items():
        train, predict = figures["train_images_per_s"], figures["predict_images_per_s"]
        for contender in train:
            lines.append(f"| {model} | {_contender(contender)} | {_number(train[contender])} "
                         f"| {_ratio(train[contender], train['pytorch'])} "
                         f"| {_number(predict[contender])} "
                         f"| {_ratio(predict[contender], predict['pytorch'])} |")
        if "im2col" in train:
            summary.append(f"{model} {_ratio(train['im2col'], train['pytorch'])} at training "
                           f"and {_ratio(predict['im2col'], predict['pytorch'])} at prediction")
    if summary:
        lines += ["", "In short, cnn-numpy's default engine (im2col) against PyTorch in this run: "
                  + "; ".join(summary) + "."]
    lines += ["", "| also measured | result |", "|---|---|"]
    naive = results.get("naive_vs_stride_groups")
    if naive:
        lines.append(f"| one training step, per image: the naive loops against stride groups "
                     f"| {naive['naive_s_per_image']:.3f} s against "
                     f"{naive['stride_groups_s_per_image'] * 1e6:.0f} µs: "
                     f"{_number(naive['speedup'])}x |")
    memory = results.get("peak_rss_mib_one_epoch_60k")
    if memory:
        each = ", ".join(f"{_contender(k)} {v:,.0f} MiB" for k, v in memory.items())
        lines.append(f"| peak memory (RSS), one epoch of 60,000 images, cnn, batch "
                     f"{results['batch']} | {each} |")
    busy = results.get("cnn_train_beside_a_busy_loop")
    if busy:
        each = "; ".join(f"{_contender(k)} {v['kept']:.0%} ({_number(v['idle'])} -> "
                         f"{_number(v['busy'])} images/s)" for k, v in busy.items())
        lines.append(f"| cnn training beside one busy-loop process: the share of the idle "
                     f"speed kept | {each} |")
    stolen = results.get("cpu_time_stolen")
    if stolen is not None:
        lines.append(f"| CPU time the hypervisor took from this machine during the runs "
                     f"(steal) | {stolen:.1%} |")
    return "\n".join(lines) + "\n"


def _command(run: dict) -> str:
    """The command as a reader would type it: without the folder the data came from on
    the measuring machine."""
    command = re.sub(r"\s--data-dir\s+\S+", "", run["command"])
    return f"`{command.removeprefix('cnn-numpy train ')}`"


def _images(run: dict) -> str:
    """'54,000 + 6,000 / 10,000' (train + validation / test) from the run's first log line."""
    found = re.search(r"\(([\d,]+) train / (?:([\d,]+) validation / )?([\d,]+) test images",
                      run["log"][0] if run.get("log") else "")
    if not found:
        return "-"
    train, validation, test = found.groups()
    return f"{train} + {validation} / {test}" if validation else f"{train} / {test}"


def _target(run: dict) -> tuple[str, str]:
    """The run's target in words, and whether the run met it."""
    ce, seconds = run.get("target_ce"), run.get("target_seconds")
    if ce is None or ce >= 1:
        return "none", "-"
    words = f"CE <= {ce:g}" + (f" in {seconds:g} s" if seconds else "")
    met = run["ce"] <= ce and (not seconds or run["seconds"] <= seconds)
    return words, "yes" if met else "**no**"


def accuracy_table(results: dict) -> str:
    """accuracy.json as a Markdown table, one row per run, and then the bundled sample's
    log as the command line printed it (its own snippet section, "sample-log", which
    the getting-started page shows)."""
    lines = [
        "<!-- --8<-- [start:table] -->",
        "| command (`cnn-numpy train ...`) | images (train + validation / test) "
        "| test set | accuracy | time | target | met |",
        "|---|---|---|---:|---:|---|---|",
    ]
    for run in results.values():
        target, met = _target(run)
        summary = run["summary"].removeprefix("Test set: ")
        lines.append(f"| {_command(run)} | {_images(run)} | `{summary}` "
                     f"| {run['accuracy_percent']:.2f}% | {run['seconds']:.0f} s "
                     f"| {target} | {met} |")
    lines.append("<!-- --8<-- [end:table] -->")
    sample = results.get("sample")
    if sample and sample.get("log"):
        lines += ["", "<!-- --8<-- [start:sample-log] -->", "```console",
                  f"$ {sample['command']}", *sample["log"], "```",
                  "<!-- --8<-- [end:sample-log] -->"]
    return "\n".join(lines) + "\n"


def images_table(results: dict) -> str:
    """images.json as Markdown: loading a folder of 10,000 images, and the cnn on drawn
    shapes from the command line."""
    load, shapes = results["load_10000"], results["shapes"]
    return "\n".join([
        f"Machine: {results['machine']}.",
        "",
        "| measurement | result | target |",
        "|---|---|---|",
        f"| load {load['images']:,} images (32 x 32 colour PNG, to 28 x 28), median of 3 | "
        f"{load['seconds']:.2f} s | under 10 s |",
        f"| memory beyond the arrays returned ({load['arrays_mib']:.1f} MiB) | "
        f"{load['beyond_arrays_mib']:.1f} MiB | a small constant |",
        f"| `{shapes['command']}` on 600 drawn shapes (3 classes, 40 x 40 colour): test "
        f"accuracy | {100 * shapes['test_accuracy']:.1f}% in {shapes['seconds']:.0f} s | "
        ">= 95% in under a minute |",
    ]) + "\n"


def trace_table(results: dict) -> str:
    """trace.json as Markdown: how long trace_step and one explanation take."""
    return "\n".join([
        f"Machine: {results['machine']}.",
        "",
        "| measurement | result |",
        "|---|---|",
        f"| `trace_step` of the spec's cnn at batch 32 | {results['trace_step_ms']:.0f} ms |",
        f"| one explanation (`explain(...).to_dict()`), {results['explanations']} of them | "
        f"p50 {results['p50_ms']} ms, p95 {results['p95_ms']} ms (target: p95 under "
        "200 ms) |",
        f"| the slowest ({results['slowest']}) | {results['slowest_ms']} ms |",
    ]) + "\n"


def inspector_table(results: dict) -> str:
    """inspector.json as Markdown: how fast the page's step inspector answers through
    HTTP, request by request."""
    rows = [("explanation of one number (`GET /api/inspect/explain`)", results["explain"]),
            ("one whole array (`GET /api/inspect/array`)", results["array"]),
            ("the multiply-add panel under the pointer (`POST /api/inspect/pixel`)",
             results["pixel"])]
    lines = [f"Machine: {results['machine']}.", "",
             "| request | requests | p50 | p95 | slowest |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {what} | {r['requests']} | {r['p50_ms']} ms | {r['p95_ms']} ms "
              f"| {r['max_ms']} ms |" for what, r in rows]
    return "\n".join(lines + [
        "", f"Tracing the step first (`POST /api/inspect/step`, the spec's cnn at batch "
        f"{results['batch']}): {results['trace_step_ms']:.0f} ms; the first hover, which "
        f"traces the drawing: {results['pixel_first_ms']:.0f} ms. The slowest explanation "
        f"was of {results['explain']['slowest']}. Target: an explanation in under "
        f"{results['target_p95_ms']} ms at the 95th percentile."]) + "\n"


def zoo_table(results: dict, describe: bool = True) -> str:
    """zoo.json as Markdown: the networks, a table of images per second against PyTorch at
    each batch size, where cnn-numpy is faster and where it is not, peak memory, and how
    busy the machine was.  describe=False leaves out the table of what each network is
    (for a second run of the same zoo)."""
    networks = results["networks"]
    lines = [f"Machine: {results['machine']}.  ",
             f"Threads: {results['threads']}.  ",
             f"float32, plain SGD, median of {results['repeats']} interleaved repeats.", "",
             "| network | batch | training (images/s) | PyTorch | ratio | prediction (images/s) "
             "| PyTorch | ratio |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    ratios, always_slower = [], []  # (ratio, network, mode, batch)
    for name, network in networks.items():
        for batch, figures in network["speed"].items():
            cells = []
            for mode in ("train", "predict"):
                ours, theirs = figures[mode]["cnn-numpy"], figures[mode]["pytorch"]
                # as printed: a ratio shown as 1.00x counts as not slower
                ratios.append((round(ours / theirs, 2), name, mode, int(batch)))
                ratio = _ratio(ours, theirs)
                paired = network.get("paired_ratios", {}).get(batch, {}).get(mode)
                if paired:
                    ratio += f" ({min(paired):.2f}-{max(paired):.2f})"
                    if round(max(paired), 2) < 1:
                        always_slower.append(ratios[-1])
                cells += [_number(ours), _number(theirs),
                          ratio if ratios[-1][0] >= 1 else f"**{ratio}**"]
            lines.append(f"| {name} | {batch} | " + " | ".join(cells) + " |")
    lines += ["", _zoo_summary(ratios)]
    if any("paired_ratios" in network for network in networks.values()):
        lines[-1] += _zoo_spread(always_slower, results["repeats"])
    if describe:
        lines += ["", "| network | input | what it is | layers |", "|---|---|---|---|"]
        for name, network in networks.items():
            shape = " x ".join(map(str, network["shape"]))
            lines.append(f"| {name} | {shape} | {network['about']} | `{network['layers']}` |")
    memory = {name: n["memory"] for name, n in networks.items() if "memory" in n}
    if memory:
        lines += ["", "| network | peak memory, cnn-numpy | peak memory, PyTorch |",
                  "|---|---:|---:|"]
        for name, m in memory.items():
            lines.append(f"| {name} | " + " | ".join(
                f"{m[k]['peak_mib']:,.0f} MiB ({m[k]['growth_mib']:,.0f} MiB in training)"
                for k in ("cnn-numpy", "pytorch")) + " |")
    return "\n".join(lines + ["", _zoo_noise(results)]) + "\n"


def _zoo_summary(ratios: list[tuple[float, str, str, int]]) -> str:
    """Where cnn-numpy was faster than PyTorch in the run and where it was not."""
    slower = sorted(r for r in ratios if r[0] < 1)
    faster = len(ratios) - len(slower)
    words = {"train": "training", "predict": "prediction"}
    text = (f"In this run cnn-numpy was as fast as PyTorch or faster in {faster} of the "
            f"{len(ratios)} figures (ratio 1.00x or more)")
    if not slower:
        return text + "."
    worst = slower[0]
    return (text + f" and slower in {len(slower)} (in bold above): " + "; ".join(
        f"{name} {words[mode]} at batch {batch} ({ratio:.2f}x)"
        for ratio, name, mode, batch in sorted(slower, key=lambda r: (r[1], r[3], r[2])))
        + f".  The worst ratio: {worst[0]:.2f}x ({worst[1]}, {words[worst[2]]}, "
          f"batch {worst[3]}).")


def _zoo_spread(always_slower: list[tuple[float, str, str, int]], repeats: int) -> str:
    """What the ranges beside the ratios are, and which figures were slower in every
    repeat."""
    words = {"train": "training", "predict": "prediction"}
    text = (f"  In brackets, the lowest and highest ratio of the {repeats} repeats, each "
            "from its two turns side by side; cnn-numpy was slower in every repeat in "
            f"{len(always_slower)} of the figures")
    return text + ("." if not always_slower else ": " + "; ".join(
        f"{name} {words[mode]} at batch {batch}"
        for _, name, mode, batch in sorted(always_slower, key=lambda r: (r[1], r[3], r[2])))
        + ".")


def _zoo_noise(results: dict) -> str:
    """How busy the machine was during the run."""
    again = sum(n.get("repeats_measured_again", 0) for n in results["networks"].values())
    others, stolen = results.get("cpu_used_by_others"), results.get("cpu_time_stolen")
    repeats = "1 repeat was" if again == 1 else f"{again} repeats were"
    parts = [f"{repeats} measured again because other processes were busy"]
    if others is not None:
        parts.append(f"other processes used {others:.0%} of the machine's CPU time during the "
                     "run (the repeats that count included)")
    if stolen is not None:
        parts.append(f"the hypervisor took {stolen:.1%}")
    return ("Peak memory: each contender trains each network at batch 128 in a process of "
            "its own that imports only its own library; the operating system's peak "
            "resident set size (VmHWM), and in brackets how much it grew during the "
            "training steps.  " if "memory" in next(iter(results["networks"].values()))
            else "") + "How busy the machine was: " + "; ".join(parts) + "."


def winograd_table(results: dict) -> str:
    """winograd.json as Markdown: each convolution's forward pass, and forward pass with
    weight gradient, by the window matrix and by Winograd's F(2 x 2, r x r) and
    F(4 x 4, 3 x 3), on one core, and each one's error."""
    names = ["im2col", "F(2x2)", "F(4x4)"]
    lines = [f"Machine: {results['machine']}.  ",
             f"One core, float32, median of {results['repeats']} interleaved repeats.", "",
             "| input | filter | filters | in | pass | window matrix | F(2 x 2, r x r) "
             "| F(4 x 4, 3 x 3) | error: window matrix, F(2 x 2), F(4 x 4) | fast path takes |",
             "|---|---|---:|---|---|---:|---:|---:|---:|---|"]
    parts = [("forward", "forward", "forward"),
             ("training", "forward + weight gradient", "weight_gradient")]
    for conv in results["convolutions"]:
        r = conv["filter"]
        takes = {"im2col": "window matrix", "F(2x2)": f"F(2 x 2, {r} x {r})",
                 "F(4x4)": f"F(4 x 4, {r} x {r})"}[conv["in_fast_path"]]
        for part, what, error_of in parts:
            ms, errors = conv["ms"][part], conv["relative_error"][error_of]
            times = [f"{ms['im2col']:.2f} ms"] + [
                f"{ms[name]:.2f} ms ({_ratio(ms['im2col'], ms[name])})" if name in ms
                else "-" for name in names[1:]]
            error = ", ".join(f"{errors[name]:.1e}" for name in names if name in errors)
            lines.append(
                f"| {' x '.join(map(str, conv['input']))} | {r} x {r} | {conv['filters']} "
                f"| {', '.join(conv['in'])} | {what} | {' | '.join(times)} | {error} "
                f"| {takes} |")
    return "\n".join(lines + [
        "", f"Batch {results['convolutions'][0]['batch']}, each contender in the blocks of "
        "images the fast path gives it (a window matrix, or Winograd's transformed tiles, "
        "of about blocks.BLOCK numbers). In brackets: how many times faster than the "
        "window matrix. Error: the largest difference from the exact sum (the window "
        "matrix in float64), as a share of the largest value, of the output (forward) or "
        "of the weight gradient."]) + "\n"


#: Each results file this script knows -> (the table it writes, how).
TABLES: dict[str, tuple[str, Callable[[dict], str]]] = {
    "speed.json": ("performance-table.md", speed_table),
    "accuracy.json": ("accuracy-table.md", accuracy_table),
    "images.json": ("images-table.md", images_table),
    "trace.json": ("trace-table.md", trace_table),
    "zoo.json": ("zoo-table.md", zoo_table),
    "zoo-one-core.json": ("zoo-one-core-table.md", partial(zoo_table, describe=False)),
    "inspector.json": ("inspector-table.md", inspector_table),
    "winograd.json": ("winograd-table.md", winograd_table),
}


def render(results_dir: Path = RESULTS) -> tuple[dict[str, str], list[str]]:
    """({table file name: its text}, [results files no table covers yet])."""
    tables, unknown = {}, []
    for path in sorted(results_dir.glob("*.json")):
        if path.name not in TABLES:
            unknown.append(path.name)
            continue
        name, write = TABLES[path.name]
        tables[name] = GENERATED.format(source=path.name) + write(json.loads(path.read_text()))
    return tables, unknown


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if a committed table is out of date")
    args = parser.parse_args(argv)
    tables, unknown = render()
    for name in unknown:
        print(f"report.py: no table for benchmarks/results/{name} yet", file=sys.stderr)
    stale = []
    for name, text in tables.items():
        path = DOCS / name
        if path.exists() and path.read_text() == text:
            continue
        if args.check:
            stale.append(name)
        else:
            path.write_text(text)
            print(f"wrote docs/{name}")
    if stale:
        print("out of date (run python benchmarks/report.py): "
              + ", ".join(f"docs/{n}" for n in stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
