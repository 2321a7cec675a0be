"""Speed and memory of the engines against PyTorch on the command line's networks.

    python benchmarks/speed.py            # about 4 minutes on 2 cores
    python benchmarks/speed.py --quick    # fewer repeats, no memory or busy-machine runs

Everything is measured in ONE process, contenders interleaved (A B C, A B C,
...), and the median of the repeats is reported, so a noisy machine moves
all contenders alike and the ratios stay meaningful.  Peak memory is the
exception: each contender trains one epoch of 60,000 images in its own
subprocess, whose peak RSS the operating system reports.

A shared machine: the cnn's training speed is measured again while another
process runs a plain busy loop, and each contender's share of its idle
speed is reported.  On a virtual machine the host may also give its cores
to other machines for a while ("steal" time): the share of CPU time stolen
during the table's runs is printed, so a slow, noisy run says why.

cnn-numpy uses its default thread count (one per core; see
cnn_numpy/fast/threads.py); the "1 thread" rows show the same engine on one.
Prints a table and writes benchmarks/results/speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from turns import calls_per_turn  # noqa: E402  (beside this script)

from cnn_numpy import DEFAULT_ENGINE, ENGINES, Net  # noqa: E402
from cnn_numpy.fast import threads as parallel  # noqa: E402
from cnn_numpy.models import build_model  # noqa: E402

BATCH = 128
RESULTS = Path(__file__).resolve().parent / "results" / "speed.json"

try:
    import torch
except ImportError:
    torch = None


def torch_model(name: str):
    """The same network as build_model(name), written in PyTorch (logits out)."""
    nn = torch.nn
    if name == "cnn":
        layers = [nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                  nn.Linear(5408, 100), nn.ReLU(), nn.Linear(100, 10)]
    elif name == "deep":
        layers = [nn.Conv2d(1, 32, 3), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
                  nn.Conv2d(32, 64, 3), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
                  nn.Flatten(), nn.Dropout(0.1), nn.Linear(1600, 128), nn.BatchNorm1d(128),
                  nn.ReLU(), nn.Dropout(0.3), nn.Linear(128, 10)]
    else:
        layers = [nn.Flatten(), nn.Linear(784, 100), nn.ReLU(), nn.Linear(100, 10)]
    return nn.Sequential(*layers)


def contenders(model: str, X: np.ndarray, y: np.ndarray, engines: list[str],
               one_thread: bool = False) -> dict:
    """name -> (train_step, predict) closures over one batch.  one_thread adds the
    default engine on one worker thread."""
    out = {}
    runs = [(engine, engine, parallel.default_threads()) for engine in engines]
    if one_thread and parallel.default_threads() > 1:
        runs.append((f"{DEFAULT_ENGINE}, 1 thread", DEFAULT_ENGINE, 1))
    for name, engine, threads in runs:
        net: Net = build_model(model, engine=engine, seed=0)

        def train(net=net, threads=threads):
            parallel.set_threads(threads)  # free unless it changes: once per turn
            net.train(X, y, 0.01)

        def predict(net=net, threads=threads):
            parallel.set_threads(threads)
            return net.predict(X, batch_size=len(X))

        out[name] = (train, predict)
    if torch is not None:
        torch.manual_seed(0)
        m = torch_model(model)
        opt = torch.optim.SGD(m.parameters(), lr=0.01)
        loss_fn = torch.nn.CrossEntropyLoss()
        xt, yt = torch.from_numpy(X.transpose(0, 3, 1, 2).copy()), torch.from_numpy(y)

        def step():
            opt.zero_grad()
            loss_fn(m(xt), yt).backward()
            opt.step()

        def predict():
            m.eval()  # Dropout off, BatchNorm's running statistics: like net.predict
            with torch.no_grad():
                out = torch.softmax(m(xt), dim=1)
            m.train()
            return out

        out["pytorch"] = (step, predict)
    return out


def interleaved(fns: dict, repeats: int, images: int, slice_s: float = 0.4) -> dict[str, float]:
    """Median images/s of each function, run in turns of about slice_s seconds each.

    Turns are long enough that one library's idle worker threads (BLAS and
    OpenMP pools spin for a while after each call) have gone quiet early in
    the next contender's turn.
    """
    calls = calls_per_turn(fns, slice_s)
    rates = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(calls[name]):
                fn()
            rates[name].append(calls[name] * images / (time.perf_counter() - start))
    return {name: statistics.median(r) for name, r in rates.items()}


def naive_speedup(X, y, repeats: int) -> dict:
    """Seconds per image of a training step, naive (2 images) vs stride_groups (a batch)."""
    small = X[:2], y[:2]
    naive = build_model("cnn", engine="naive", seed=0)
    naive.train(*small, 0.01)
    sg = build_model("cnn", engine="stride_groups", seed=0)
    sg.train(X, y, 0.01)
    per_image = {"naive": [], "stride_groups": []}
    for _ in range(repeats):
        start = time.perf_counter()
        naive.train(*small, 0.01)
        per_image["naive"].append((time.perf_counter() - start) / 2)
        start = time.perf_counter()
        for _ in range(5):
            sg.train(X, y, 0.01)
        per_image["stride_groups"].append((time.perf_counter() - start) / (5 * len(X)))
    med = {k: statistics.median(v) for k, v in per_image.items()}
    return {"naive_s_per_image": med["naive"], "stride_groups_s_per_image": med["stride_groups"],
            "speedup": med["naive"] / med["stride_groups"]}


def memory_child(contender: str) -> None:
    """Train one epoch of 60,000 images (batch 128) and print the peak RSS in MiB."""
    rng = np.random.default_rng(0)
    X = rng.random((60_000, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, 60_000)
    if contender == "pytorch":
        m = torch_model("cnn")
        opt = torch.optim.SGD(m.parameters(), lr=0.01)
        loss_fn = torch.nn.CrossEntropyLoss()
        xt, yt = torch.from_numpy(X.transpose(0, 3, 1, 2)), torch.from_numpy(y)
        for i in range(0, len(X), BATCH):
            opt.zero_grad()
            loss_fn(m(xt[i : i + BATCH]), yt[i : i + BATCH]).backward()
            opt.step()
    else:
        net = build_model("cnn", engine=contender, seed=0)
        for i in range(0, len(X), BATCH):
            net.train(X[i : i + BATCH], y[i : i + BATCH], 0.01)
    print(peak_rss_mib())


def peak_rss_mib() -> float:
    """This process's peak resident memory.  On Linux from VmHWM: ru_maxrss would also
    count the parent's memory at fork time, carried through exec."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_memory(names: list[str]) -> dict[str, float]:
    out = {}
    for name in names:
        result = subprocess.run([sys.executable, __file__, "--memory-child", name],
                                capture_output=True, text=True, check=True)
        out[name] = float(result.stdout.strip().splitlines()[-1])
    return out


def threads() -> str:
    """The threads each library computes with, and the cnn's shards in training."""
    net = build_model("cnn", seed=0)
    net.build((28, 28, 1))
    shards = len(net._fast_path.shard_slices((BATCH, 28, 28, 1), True))
    torch_threads = f"; PyTorch {torch.get_num_threads()}" if torch is not None else ""
    cut = "one shard" if shards == 1 else f"{shards} shards"
    return (f"cnn-numpy {parallel.default_threads()} threads, the cnn's training batch of "
            f"{BATCH} in {cut} (BLAS: 1 thread in passes with shards or blocks)"
            f"{torch_threads}")


def busy_machine(X, y, repeats: int) -> dict:
    """cnn training images/s idle and beside a busy-loop process, and the share kept.

    Idle is measured before and after the busy phase and averaged, so a
    machine whose speed drifts meanwhile moves both sides alike.
    """
    fns = {k: v[0] for k, v in contenders("cnn", X, y, [DEFAULT_ENGINE]).items()}
    before = interleaved(fns, repeats, BATCH)
    loop = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        busy = interleaved(fns, repeats, BATCH)
    finally:
        loop.kill()
        loop.wait()
    after = interleaved(fns, repeats, BATCH)
    idle = {name: (before[name] + after[name]) / 2 for name in fns}
    return {name: {"idle": idle[name], "busy": busy[name], "kept": busy[name] / idle[name]}
            for name in fns}


def cpu_ticks() -> tuple[int, int] | None:
    """(stolen, total) CPU time of the whole machine since boot, in clock ticks, from
    Linux's /proc/stat; None elsewhere.  Stolen time is time the hypervisor gave
    this virtual machine's cores to others: its share during a run says how
    contended the machine was."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    if fields[:1] != ["cpu"] or len(fields) < 9:
        return None
    # user nice system idle iowait irq softirq steal (guest time is already in user)
    ticks = [int(f) for f in fields[1:9]]
    return ticks[7], sum(ticks)


def stolen_share(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float | None:
    """The share of CPU time stolen between two cpu_ticks() readings."""
    if before is None or after is None or after[1] == before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1])


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = f"NumPy {np.__version__}" + (f", PyTorch {torch.__version__}" if torch else "")
    return f"{os.cpu_count()} cores, {cpu}; Python {platform.python_version()}, {versions}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 repeats, no memory runs")
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_child)
        return
    repeats = 3 if args.quick else 7
    rng = np.random.default_rng(0)
    X = rng.random((BATCH, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, BATCH)
    fast = [e for e in ENGINES if e != "naive"]
    report: dict = {"machine": machine(), "threads": threads(), "batch": BATCH,
                    "repeats": repeats, "models": {}}
    ticks = cpu_ticks()
    for model in ("cnn", "deep", "flat"):
        fns = contenders(model, X, y, fast, one_thread=model == "cnn")
        train = interleaved({k: v[0] for k, v in fns.items()}, repeats, BATCH)
        infer = interleaved({k: v[1] for k, v in fns.items()}, repeats, BATCH)
        report["models"][model] = {"train_images_per_s": train, "predict_images_per_s": infer}
    report["cpu_time_stolen"] = stolen_share(ticks, cpu_ticks())
    report["naive_vs_stride_groups"] = naive_speedup(X, y, max(3, repeats // 2))
    if not args.quick:
        names = fast + (["pytorch"] if torch is not None else [])
        report["peak_rss_mib_one_epoch_60k"] = peak_memory(names)
        report["cnn_train_beside_a_busy_loop"] = busy_machine(X, y, repeats)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(format_table(report))
    print(f"\nwritten to {RESULTS}")


def _ratio(rates: dict[str, float], name: str) -> str:
    return f"{rates[name] / rates['pytorch']:.2f}x" if "pytorch" in rates else "-"


def format_table(report: dict) -> str:
    lines = [f"Machine: {report['machine']}", f"Threads: {report.get('threads', '?')}",
             f"Batch {report['batch']}, float32, median of "
             f"{report['repeats']} interleaved repeats", ""]
    lines.append("| model | contender | train img/s | vs PyTorch | predict img/s | vs PyTorch |")
    lines.append("|---|---|---:|---:|---:|---:|")
    for model, r in report["models"].items():
        tr, pr = r["train_images_per_s"], r["predict_images_per_s"]
        for name in tr:
            lines.append(f"| {model} | {name} | {tr[name]:,.0f} | {_ratio(tr, name)} | "
                         f"{pr[name]:,.0f} | {_ratio(pr, name)} |")
    if report.get("cpu_time_stolen") is not None:
        lines += ["", f"CPU time stolen by the hypervisor during the table's runs: "
                      f"{report['cpu_time_stolen']:.0%} (the host ran other virtual machines "
                      f"on this one's cores: the higher, the slower and noisier every figure)"]
    nv = report["naive_vs_stride_groups"]
    lines += ["", f"naive: {nv['naive_s_per_image']:.3f} s per image per training step; "
                  f"stride_groups: {nv['stride_groups_s_per_image'] * 1e6:.0f} us; "
                  f"speed-up {nv['speedup']:,.0f}x"]
    if "peak_rss_mib_one_epoch_60k" in report:
        mem = report["peak_rss_mib_one_epoch_60k"]
        lines.append("peak RSS, one epoch of 60,000 images (cnn, batch 128): " + ", ".join(
            f"{k} {v:,.0f} MiB" for k, v in mem.items()))
    if "cnn_train_beside_a_busy_loop" in report:
        lines.append("cnn training beside a busy-loop process: " + "; ".join(
            f"{k} {v['idle']:,.0f} -> {v['busy']:,.0f} images/s ({v['kept']:.0%} kept)"
            for k, v in report["cnn_train_beside_a_busy_loop"].items()))
    return "\n".join(lines)


if __name__ == "__main__":
    main()
