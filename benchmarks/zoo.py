"""Speed and memory on networks a learner writes after the spec's, against PyTorch.

    python benchmarks/zoo.py                     # the whole zoo: about 10 minutes on 2 cores
    python benchmarks/zoo.py --quick             # 3 repeats, no memory runs
    python benchmarks/zoo.py --networks vgg-small lenet5
    python benchmarks/zoo.py --layers "ConvLayer_ReLU(8, 3), PoolLayer_Max(2), FlatLayer(), \\
        FCLayer_Softmax(10)" --shape 28 28 1    # your own network (any --layers text)
    python benchmarks/zoo.py --threads 1 --out benchmarks/results/zoo-one-core.json

Each network is cnn-numpy's --layers text and an input shape (ZOO below: add
yours there, or give --layers and --shape).  PyTorch runs the same network,
built by cnn_numpy.interop.to_torch from the same weights.  Measured as
benchmarks/speed.py measures: one process, float32, plain SGD (lr 0.01),
cross-entropy, the two contenders' turns interleaved (A B, A B, ...) and the
median of the repeats, at batch 32, 64 and 128; training is one step on a
batch, prediction the softmax of a batch (PyTorch in eval mode, no grad).
Beside each median ratio, the lowest and highest ratio of a repeat's two turns
side by side: how far one repeat's comparison moves on this machine.
cnn-numpy uses its default threads (one per core), PyTorch its own; --threads N holds
both, and NumPy's BLAS, to N (one: how fast each library is per core, without the cost
of sharing a step between threads).

Peak memory: each contender trains each network at batch 128 in a fresh
subprocess that imports only its own library; the operating system's peak
resident set size of that process (VmHWM in /proc/self/status, which
counts every allocation, NumPy's and PyTorch's alike, unlike tracemalloc)
is reported, and beside it how much it grew during the training steps
(peak minus the resident size after imports, data and model were ready).

Prints one table and the worst ratio; the full zoo writes
benchmarks/results/zoo.json (benchmarks/report.py puts it in the docs).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from turns import calls_per_turn  # noqa: E402  (beside this script)

from cnn_numpy import Net  # noqa: E402
from cnn_numpy.architecture import parse_layers  # noqa: E402
from cnn_numpy.fast import threads as parallel  # noqa: E402

RESULTS = HERE / "results" / "zoo.json"
BATCHES = (32, 64, 128)
#: A repeat is measured again when other processes used more than this share of the
#: machine's CPU time during it, up to TRIES times.
BUSY, TRIES = 0.1, 8
#: Steps each memory subprocess trains (batch 128), after one step that builds the weights.
MEMORY_STEPS = 10

#: name -> (input shape (height, width, channels), --layers text, what it is).
ZOO: dict[str, tuple[tuple[int, int, int], str, str]] = {
    "lenet5": ((32, 32, 1), "ConvLayer(6, 5), TanhLayer(), PoolLayer_Avg(2), ConvLayer(16, 5), "
               "TanhLayer(), PoolLayer_Avg(2), FlatLayer(), FCLayer(120), TanhLayer(), "
               "FCLayer(84), TanhLayer(), FCLayer_Softmax(10)",
               "LeNet-5 as published: tanh, average pooling, 32 x 32 grey"),
    "lenet5-relu": ((28, 28, 1), "ConvLayer_ReLU(6, 5, padding='same'), PoolLayer_Max(2), "
                    "ConvLayer_ReLU(16, 5), PoolLayer_Max(2), FlatLayer(), FCLayer_ReLU(120), "
                    "FCLayer_ReLU(84), FCLayer_Softmax(10)",
                    "LeNet-5 as written today: ReLU, max pooling, 28 x 28 grey"),
    "two-conv": ((28, 28, 1), "ConvLayer_ReLU(32, 5, padding='same'), PoolLayer_Max(2), "
                 "ConvLayer_ReLU(64, 5, padding='same'), PoolLayer_Max(2), FlatLayer(), "
                 "FCLayer_ReLU(512), FCLayer_Softmax(10)",
                 "two 5 x 5 'same' convolutions and a wide dense layer (the classic MNIST "
                 "tutorial)"),
    "vgg-small": ((32, 32, 3), "ConvLayer_ReLU(32, 3, padding='same'), "
                  "ConvLayer_ReLU(32, 3, padding='same'), PoolLayer_Max(2), "
                  "ConvLayer_ReLU(64, 3, padding='same'), ConvLayer_ReLU(64, 3, padding='same'), "
                  "PoolLayer_Max(2), FlatLayer(), FCLayer_ReLU(128), FCLayer_Softmax(10)",
                  "VGG-style: pairs of 'same' 3 x 3 convolutions, 32 x 32 colour"),
    "vgg-wide": ((32, 32, 3), "ConvLayer_ReLU(64, 3, padding='same'), "
                 "ConvLayer_ReLU(64, 3, padding='same'), PoolLayer_Max(2), "
                 "ConvLayer_ReLU(128, 3, padding='same'), "
                 "ConvLayer_ReLU(128, 3, padding='same'), PoolLayer_Max(2), FlatLayer(), "
                 "FCLayer_ReLU(256), FCLayer_Softmax(10)",
                 "the same, twice as wide: 64 and 128 channels (Winograd's convolutions)"),
    "bn-stack": ((32, 32, 3), "ConvLayer(32, 3, padding='same'), BatchNorm(), ReLULayer(), "
                 "ConvLayer(32, 3, padding='same'), BatchNorm(), ReLULayer(), PoolLayer_Max(2), "
                 "ConvLayer(64, 3, padding='same'), BatchNorm(), ReLULayer(), PoolLayer_Max(2), "
                 "FlatLayer(), FCLayer_Softmax(10)",
                 "BatchNorm after every convolution, 32 x 32 colour"),
    "strided-64": ((64, 64, 3), "ConvLayer_ReLU(16, 3, stride=2, padding='same'), "
                   "ConvLayer_ReLU(32, 3, stride=2, padding='same'), "
                   "ConvLayer_ReLU(64, 3, stride=2, padding='same'), PoolLayer_Avg(2), "
                   "FlatLayer(), FCLayer_Softmax(10)",
                   "strided convolutions and average pooling, 64 x 64 colour"),
    "global-avg": ((32, 32, 3), "ConvLayer_ReLU(32, 3, padding='same'), PoolLayer_Max(2), "
                   "ConvLayer_ReLU(64, 3, padding='same'), PoolLayer_Max(2), "
                   "ConvLayer_ReLU(128, 3, padding='same'), PoolLayer_Avg(8), FlatLayer(), "
                   "FCLayer_Softmax(10)",
                   "a global average pool (an average pool as wide as the map) before the "
                   "output"),
    "wide-dense": ((28, 28, 1), "FlatLayer(), FCLayer_ReLU(1024), FCLayer_ReLU(1024), "
                   "FCLayer_Softmax(10)",
                   "dense layers only, 1,024 wide"),
    "odd-sizes": ((29, 29, 3), "ConvLayer_ReLU(16, 4), PoolLayer_Max(3), "
                  "ConvLayer_ReLU(32, 3, padding=1), PoolLayer_Max(3, stride=2), FlatLayer(), "
                  "FCLayer_ReLU(64), FCLayer_Softmax(10)",
                  "sizes where windows do not tile: 29 x 29 colour, a 4 x 4 filter, a 3 x 3 "
                  "pool on 26 x 26, an overlapping pool"),
    "narrow-deep": ((28, 28, 1), "ConvLayer_ReLU(8, 3, padding='same'), "
                    "ConvLayer_ReLU(8, 3, padding='same'), ConvLayer_ReLU(8, 3, padding='same'), "
                    "PoolLayer_Max(2), ConvLayer_ReLU(16, 3, padding='same'), "
                    "ConvLayer_ReLU(16, 3, padding='same'), PoolLayer_Max(2), FlatLayer(), "
                    "FCLayer_Softmax(10)",
                    "a deeper stack of narrow 'same' 3 x 3 convolutions, 8 and 16 channels, "
                    "28 x 28 grey"),
}

torch = None  # PyTorch, once load_torch() has imported it


def load_torch() -> None:
    """Import PyTorch, if it is installed (a cnn-numpy memory run does without it)."""
    global torch
    try:
        import torch as module
    except ImportError:
        return
    torch = module


def hold_threads(count: int) -> None:
    """Both libraries on `count` threads from now on, NumPy's BLAS too (threadpoolctl's
    limit holds until it is lifted, which nothing here does)."""
    from threadpoolctl import threadpool_limits

    parallel.set_threads(count)
    if torch is not None:
        torch.set_num_threads(count)
    threadpool_limits(count, user_api="blas")


def build(text: str, shape: tuple[int, ...], seed: int = 0) -> Net:
    """The network of a --layers text, built for `shape`, float32, plain SGD."""
    net = Net(parse_layers(text), seed=seed)
    net.build(tuple(shape))
    return net


def data(shape: tuple[int, ...], n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random((n, *shape), dtype=np.float32), rng.integers(0, 10, n)


def contenders(text: str, shape: tuple[int, ...], X: np.ndarray, y: np.ndarray) -> dict:
    """{"cnn-numpy": (train_step, predict), "pytorch": (...)} on one batch (X, y)."""
    net = build(text, shape)

    def train():
        net.train(X, y, 0.01)

    def predict():
        return net.predict(X, batch_size=len(X))

    out = {"cnn-numpy": (train, predict)}
    if torch is not None:
        out["pytorch"] = torch_contender(net, X, y)
    return out


def torch_contender(net: Net, X: np.ndarray, y: np.ndarray):
    """(train_step, predict) of the same network in PyTorch, from the same weights."""
    from cnn_numpy.interop.pytorch import to_torch

    model = to_torch(net)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    loss_fn = torch.nn.CrossEntropyLoss()
    xt = torch.from_numpy(X.transpose(0, 3, 1, 2).copy())
    yt = torch.from_numpy(y)

    def step():
        opt.zero_grad()
        loss_fn(model(xt), yt).backward()
        opt.step()

    def predict():
        model.eval()  # Dropout off, BatchNorm's running statistics: like net.predict
        with torch.no_grad():
            out = torch.softmax(model(xt), dim=1)
        model.train()
        return out

    return step, predict


def measure(text: str, shape: tuple[int, ...], batches, repeats: int) -> tuple[dict, dict, int]:
    """({batch: {"train": {contender: images/s}, "predict": {...}}}, {batch: {mode: the
    ratio cnn-numpy / PyTorch of each repeat, its two turns side by side}}, repeats
    measured again) for one network."""
    out, paired, again = {}, {}, 0
    for batch in batches:
        X, y = data(shape, batch)
        fns = contenders(text, shape, X, y)
        out[str(batch)], paired[str(batch)] = {}, {}
        for mode, k in (("train", 0), ("predict", 1)):
            rates, redone = interleaved({name: f[k] for name, f in fns.items()}, repeats, batch)
            out[str(batch)][mode] = {name: statistics.median(r) for name, r in rates.items()}
            if "pytorch" in rates:
                paired[str(batch)][mode] = [ours / theirs for ours, theirs in zip(
                    rates["cnn-numpy"], rates["pytorch"], strict=True)]
            again += redone
    return out, paired, again


def interleaved(fns: dict, repeats: int, images: int, slice_s: float = 0.4) -> tuple[dict, int]:
    """speed.py's measurement (turns of about slice_s seconds, contenders in turn),
    except that a repeat during which other processes used more than BUSY of the
    machine's CPU time is measured again, up to TRIES times (the last try counts either
    way).  Returns ({name: images/s in each repeat}, the repeats measured again).

    On a shared machine another process makes both libraries slower, and PyTorch's
    OpenMP threads, which wait for each other by spinning, far more than cnn-numpy's:
    the ratio of a repeat with company says little about either."""
    calls = calls_per_turn(fns, slice_s)
    rates, again = {name: [] for name in fns}, 0
    for _ in range(repeats):
        for attempt in range(TRIES):
            before, got = busy_ticks(), {}
            for name, fn in fns.items():
                start = time.perf_counter()
                for _ in range(calls[name]):
                    fn()
                got[name] = calls[name] * images / (time.perf_counter() - start)
            share = others_share(before, busy_ticks())
            if share is None or share <= BUSY or attempt == TRIES - 1:
                break
            again += 1
            time.sleep(2)  # let the other process finish, if it is a short one
        for name in fns:
            rates[name].append(got[name])
    return rates, again


def memory_child(contender: str, text: str, shape: tuple[int, ...]) -> None:
    """Train MEMORY_STEPS + 1 steps at batch 128; print the resident size after imports,
    data and model (MiB), then the peak (MiB).  Imports only the contender's library."""
    X, y = data(shape, 128)
    if contender == "pytorch":
        net = build(text, shape)
        step, _ = torch_contender(net, X, y)
        del net
    else:
        net = build(text, shape)

        def step():
            net.train(X, y, 0.01)
    before = _status("VmRSS")
    for _ in range(MEMORY_STEPS + 1):
        step()
    print(before, _status("VmHWM"))


def _status(field: str) -> float:
    """A field of /proc/self/status in MiB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise OSError(f"no {field} in /proc/self/status")


def peak_memory(text: str, shape: tuple[int, ...]) -> dict[str, dict[str, float]]:
    """{contender: {"peak_mib", "growth_mib"}}, each in its own subprocess."""
    out = {}
    for contender in ("cnn-numpy", "pytorch") if torch is not None else ("cnn-numpy",):
        args = [sys.executable, __file__, "--memory-child", contender, "--layers", text,
                "--shape", *map(str, shape)]
        result = subprocess.run(args, capture_output=True, text=True, check=True)
        before, peak = map(float, result.stdout.split()[-2:])
        out[contender] = {"peak_mib": peak, "growth_mib": peak - before}
    return out


def busy_ticks() -> tuple[float, float, float] | None:
    """(the machine's busy CPU seconds, all its CPU seconds, this process's CPU seconds)
    since boot, from Linux's /proc/stat; None elsewhere."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    hz = os.sysconf("SC_CLK_TCK")
    # user nice system idle iowait irq softirq steal
    ticks = [int(f) / hz for f in fields[1:9]]
    mine = os.times()
    return sum(ticks) - ticks[3] - ticks[4], sum(ticks), mine.user + mine.system


def others_share(before, after) -> float | None:
    """The share of the machine's CPU time that other processes used (or the hypervisor
    took) between two busy_ticks() readings: how contended the run was."""
    if before is None or after is None or after[1] == before[1]:
        return None
    busy, total, mine = (a - b for a, b in zip(after, before, strict=True))
    return max(0.0, busy - mine) / total


def worst(results: dict) -> tuple[float, str]:
    """The lowest cnn-numpy / PyTorch ratio of the run, and where."""
    found = (float("inf"), "")
    for name, network in results["networks"].items():
        for batch, figures in network["speed"].items():
            for mode, rates in figures.items():
                if "pytorch" in rates:
                    ratio = rates["cnn-numpy"] / rates["pytorch"]
                    found = min(found, (ratio, f"{name}, {mode}, batch {batch}"))
    return found


def format_table(results: dict) -> str:
    lines = [f"Machine: {results['machine']}", f"Threads: {results['threads']}",
             f"float32, plain SGD, median of {results['repeats']} interleaved repeats", "",
             "| network | input | batch | train img/s | PyTorch | ratio | predict img/s "
             "| PyTorch | ratio |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, network in results["networks"].items():
        shape = "x".join(map(str, network["shape"]))
        for batch, figures in network["speed"].items():
            cells = []
            for mode in ("train", "predict"):
                rates = figures[mode]
                ours, theirs = rates["cnn-numpy"], rates.get("pytorch")
                paired = network.get("paired_ratios", {}).get(batch, {}).get(mode)
                cells += [f"{ours:,.0f}", "-" if theirs is None else f"{theirs:,.0f}",
                          "-" if theirs is None else f"{ours / theirs:.2f}x"
                          + (f" ({min(paired):.2f}-{max(paired):.2f})" if paired else "")]
            lines.append(f"| {name} | {shape} | {batch} | " + " | ".join(cells) + " |")
    ratio, where = worst(results)
    if where:
        lines += ["", f"Worst ratio: {ratio:.2f}x ({where})"]
    memory = {k: v["memory"] for k, v in results["networks"].items() if "memory" in v}
    if memory:
        lines.append("Peak RSS (MiB) training at batch 128, a process each "
                     "(growth during training in brackets):")
        for name, m in memory.items():
            lines.append(f"  {name}: " + ", ".join(
                f"{k} {v['peak_mib']:,.0f} ({v['growth_mib']:,.0f})" for k, v in m.items()))
    if results.get("cpu_time_stolen") is not None:
        lines.append(f"CPU time stolen by the hypervisor: {results['cpu_time_stolen']:.1%}")
    again = sum(n.get("repeats_measured_again", 0) for n in results["networks"].values())
    lines.append(f"Repeats measured again because other processes were busy: {again}")
    if results.get("cpu_used_by_others") is not None:
        lines.append(f"CPU time used by other processes during the run: "
                     f"{results['cpu_used_by_others']:.0%} of the machine's")
    return "\n".join(lines)


def networks(args) -> dict[str, tuple[tuple[int, ...], str, str]]:
    if args.layers:
        if not args.shape:
            raise SystemExit("zoo.py: --layers needs --shape HEIGHT WIDTH CHANNELS")
        return {args.name: (tuple(args.shape), args.layers, "given on the command line")}
    unknown = set(args.networks or ()) - set(ZOO)
    if unknown:
        raise SystemExit(f"zoo.py: no network {', '.join(sorted(unknown))}; the zoo has "
                         f"{', '.join(ZOO)}")
    return {name: ZOO[name] for name in args.networks or ZOO}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 repeats, no memory runs")
    parser.add_argument("--repeats", type=int, help="interleaved repeats (default 5)")
    parser.add_argument("--networks", nargs="+", metavar="NAME", help="only these of ZOO")
    parser.add_argument("--layers", help="measure this --layers text instead of the zoo")
    parser.add_argument("--shape", type=int, nargs=3, metavar=("H", "W", "C"),
                        help="the input shape of --layers")
    parser.add_argument("--name", default="yours", help="the name of --layers in the table")
    parser.add_argument("--batches", type=int, nargs="+", default=list(BATCHES))
    parser.add_argument("--no-memory", action="store_true", help="skip the memory runs")
    parser.add_argument("--threads", type=int, help="both libraries, and BLAS, on this "
                        "many threads (default: each its own); no memory runs")
    parser.add_argument("--out", type=Path, help="write the JSON here (default: "
                        "benchmarks/results/zoo.json for the whole zoo on default "
                        "threads, else nowhere)")
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be 1 or more, got {args.threads}")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.memory_child:
        if args.memory_child == "pytorch":
            load_torch()
        memory_child(args.memory_child, args.layers, tuple(args.shape))
        return
    load_torch()
    from speed import cpu_ticks, machine, stolen_share

    chosen = networks(args)
    repeats = args.repeats or (3 if args.quick else 5)
    if args.threads is not None:
        hold_threads(args.threads)
    torch_threads = f"; PyTorch {torch.get_num_threads()}" if torch is not None else ""
    results: dict = {"machine": machine(), "repeats": repeats,
                     "threads": f"cnn-numpy {parallel.get_threads()}{torch_threads}"
                     + (" (BLAS held to as many)" if args.threads is not None else ""),
                     "networks": {}}
    ticks, busy, start = cpu_ticks(), busy_ticks(), time.perf_counter()
    for name, (shape, text, about) in chosen.items():
        print(f"{name} {shape} ...", file=sys.stderr, flush=True)
        speed, paired, again = measure(text, shape, args.batches, repeats)
        results["networks"][name] = {"shape": list(shape), "layers": text, "about": about,
                                     "speed": speed, "paired_ratios": paired,
                                     "repeats_measured_again": again}
    results["cpu_time_stolen"] = stolen_share(ticks, cpu_ticks())
    results["cpu_used_by_others"] = others_share(busy, busy_ticks())
    results["seconds"] = time.perf_counter() - start
    if not (args.quick or args.no_memory or args.threads is not None):
        for name, (shape, text, _) in chosen.items():
            results["networks"][name]["memory"] = peak_memory(text, shape)
    print(format_table(results))
    whole = chosen == ZOO and not args.quick and args.threads is None  # zoo.json's run
    out = args.out or (RESULTS if whole else None)
    if out is not None:
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps(results, indent=2) + "\n")
        print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
