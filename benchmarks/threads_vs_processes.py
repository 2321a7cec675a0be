"""How close the Net's worker threads come to two separate processes on this machine.

    python benchmarks/threads_vs_processes.py                 # cnn, 3 rounds, about 4 minutes
    python benchmarks/threads_vs_processes.py --model deep --rounds 5
    python benchmarks/threads_vs_processes.py --model lenet5-relu --batch 32  # a zoo network
    python benchmarks/threads_vs_processes.py --calls          # single NumPy calls, 1 minute

Each contender runs in a fresh process, for a few seconds, rounds alternating
(batch N, 128 unless --batch says otherwise):

    threads        2 worker threads, batch N: the Net as it runs (in shards, or
                   its convolutions in blocks, where the fast path cuts it)
    one thread     1 worker, batch N: the same pieces one after the other
    a Net a thread 2 threads of one process, each training a Net of its own
                   on N/2 images, sharing nothing but the process
    half handed over  (prediction only) 1 thread, batch N, its second half
                   handed to a worker process with the same Net through shared
                   memory and back: what a second process could give a prediction,
                   the hand-over included
    1 process      1 thread, batch N/2 (one half's work), nothing beside it
    2 processes    two of those at the same time

A training step on N/2 images in its own process includes its own optimizer
step but no exchange of gradients (and BatchNorm normalizes with its own
half's statistics: the same work, not the same function), so "2
processes" is what two independent workers sharing nothing but the
machine achieve, about the most any way of splitting a batch over two
cores could give.  If the threads
stay well below it, the cost is in this process (Python's lock, waiting
for each other, the serial part of a step); "a Net a thread" takes the waiting
and the serial part away and leaves the lock.  If the processes also slow
down, the two cores share what they compute with (caches, memory, or the
host taking time: the stolen share is printed).

With --calls, the same question for the smallest pieces of a step: one NumPy
call (x * 1.5 into an array of its own) of 64 KB to 4 MB, repeated, on one
thread, on two threads of one process, and in two processes at once; and the
time for a thread to wake another and be woken back (two events, the threads
on different cores).  A thread that finishes a call while the other holds
Python's lock sleeps until it is let go, so the wake-up's cost is paid at
such a meeting; processes never meet.
"""

from __future__ import annotations

import argparse
import math
import statistics
import subprocess
import sys
import time
from contextlib import nullcontext
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SECONDS = 5.0  # each contender's measuring time per round
#: name -> (the batch as a fraction of N, threads, Nets) of each process it starts at once
CONTENDERS = {
    "threads": [(1, 2, 1)],
    "one thread": [(1, 1, 1)],
    "a Net a thread": [(0.5, 2, 2)],
    "half handed over": [(1, 1, 0)],  # Nets 0: handed_over(), prediction only
    "1 process": [(0.5, 1, 1)],
    "2 processes": [(0.5, 1, 1), (0.5, 1, 1)],
}
NAMED = ("cnn", "deep", "flat")


def _network(name: str, batch: int):
    """(net, X, y): a named model on 28 x 28 grey images, or a zoo network on its shape."""
    import numpy as np

    if name in NAMED:
        from cnn_numpy.models import build_model

        rng = np.random.default_rng(0)
        X = rng.random((batch, 28, 28, 1), dtype=np.float32)
        return build_model(name, engine="im2col", seed=0), X, rng.integers(0, 10, batch)
    import zoo

    shape, text, _ = zoo.ZOO[name]
    return (zoo.build(text, shape), *zoo.data(shape, batch))


def child(model: str, what: str, batch: int, threads: int, nets: int) -> None:
    """Print the median milliseconds per training step (or prediction) of one batch on
    each of `nets` Nets, each on a thread of its own when there are several."""
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    from cnn_numpy.fast import threads as parallel

    parallel.set_threads(1 if nets > 1 else threads)
    runs = [_network(model, batch) for _ in range(nets)]

    def steps(count: int, net, X, y) -> None:
        for _ in range(count):
            if what == "train":
                net.train(X, y, 0.01)
            else:
                net.predict(X, batch_size=batch)

    # One worker: BLAS on one thread too (a batch below 128 has no shards and would
    # otherwise let BLAS use every core).  So for a Net a thread.
    with threadpool_limits(1) if threads == 1 or nets > 1 else nullcontext(), \
            ThreadPoolExecutor(nets) as pool:
        def together(count: int) -> None:
            for done in [pool.submit(steps, count, *run) for run in runs]:
                done.result()

        together(10)
        times, end = [], time.perf_counter() + SECONDS
        while time.perf_counter() < end:
            start = time.perf_counter()
            together(5)
            times.append((time.perf_counter() - start) / 5 * 1e3)
    print(statistics.median(times))


def handed_over(model: str, batch: int) -> None:
    """Print the median milliseconds per prediction of a batch whose second half a worker
    process predicts, from shared memory, while this one predicts the first (each on one
    thread).  The worker builds the same Net from the same seed; a library would have to
    share the weights as well."""
    import multiprocessing
    from multiprocessing import shared_memory

    import numpy as np
    from threadpoolctl import threadpool_limits

    from cnn_numpy.fast import threads as parallel

    parallel.set_threads(1)
    net, X, _ = _network(model, batch)
    half = batch // 2
    out_shape = (batch - half, net.predict(X[:1]).shape[1])
    memory = [shared_memory.SharedMemory(create=True, size=size)
              for size in (X[half:].nbytes, 4 * math.prod(out_shape))]
    # (views of the shared blocks, dropped before the blocks are closed)
    views = [np.ndarray(X[half:].shape, np.float32, buffer=memory[0].buf),
             np.ndarray(out_shape, np.float32, buffer=memory[1].buf)]
    spawn = multiprocessing.get_context("spawn")  # (safe beside the pool's threads)
    mine, theirs = spawn.Pipe()
    worker = spawn.Process(target=_predict_handed, args=(
        theirs, model, batch, [m.name for m in memory], views[0].shape, out_shape))
    worker.start()
    mine.recv()  # built

    def predict() -> np.ndarray:
        views[0][...] = X[half:]
        mine.send(True)
        first = net.predict(X[:half], batch_size=half)
        mine.recv()
        return np.concatenate([first, views[1]])

    try:
        with threadpool_limits(1):
            for _ in range(10):
                predict()
            times, end = [], time.perf_counter() + SECONDS
            while time.perf_counter() < end:
                start = time.perf_counter()
                for _ in range(5):
                    predict()
                times.append((time.perf_counter() - start) / 5 * 1e3)
    finally:
        mine.send(False)
        worker.join()
        views.clear()
        for block in memory:
            block.close()
            block.unlink()
    print(statistics.median(times))


def _predict_handed(pipe, model: str, batch: int, names: list[str],
                    given_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> None:
    """handed_over()'s worker: predicts the second half of the batch (given_shape) in
    shared memory, into its output (out_shape) there, each time it is told to, until
    told to stop."""
    from multiprocessing import shared_memory

    import numpy as np
    from threadpoolctl import threadpool_limits

    from cnn_numpy.fast import threads as parallel

    parallel.set_threads(1)
    net = _network(model, batch)[0]
    memory = [shared_memory.SharedMemory(name=name) for name in names]
    given = np.ndarray(given_shape, np.float32, buffer=memory[0].buf)
    got = np.ndarray(out_shape, np.float32, buffer=memory[1].buf)
    net.predict(given[:1])  # the weights built before the first timed call
    pipe.send(True)
    with threadpool_limits(1):
        while pipe.recv():
            got[...] = net.predict(given, batch_size=len(given))
            pipe.send(True)
    del given, got
    for block in memory:
        block.close()


CALL_SIZES = (2**14, 2**16, 2**18, 2**20)  # float32 numbers: 64 KB to 4 MB
CALLS = 200  # calls per thread and measurement


def call_child(size: int) -> None:
    """Print the median microseconds per call over CALLS calls at a time, for a second
    (two such processes, started together, overlap for most of it)."""
    import numpy as np

    x = np.random.default_rng(0).random(size, dtype=np.float32)
    out, times, end = np.empty_like(x), [], time.perf_counter() + 1.0
    while time.perf_counter() < end:
        times.append(_per_call(lambda: _calls(x, out)))
    print(statistics.median(times))


def _calls(x, out) -> None:
    import numpy as np

    for _ in range(CALLS):
        np.multiply(x, 1.5, out=out)


def _per_call(work) -> float:
    start = time.perf_counter()
    work()
    return (time.perf_counter() - start) / CALLS * 1e6


def _two_threads(size: int) -> tuple[float, float]:
    """Microseconds per call (median of 15) on one thread, and on each of two threads."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    rng = np.random.default_rng(0)
    arrays = [(x, np.empty_like(x)) for x in (rng.random(size, dtype=np.float32),
                                               rng.random(size, dtype=np.float32))]
    with ThreadPoolExecutor(2) as pool:
        one, two = [], []
        for _ in range(15):
            one.append(_per_call(lambda: _calls(*arrays[0])))
            two.append(_per_call(lambda: [f.result() for f in
                                          [pool.submit(_calls, *pair) for pair in arrays]]))
    return statistics.median(one), statistics.median(two)


def _round_trip() -> float:
    """Median microseconds for one thread to wake another and be woken back."""
    import os
    import threading

    ping, pong, trips = threading.Event(), threading.Event(), 2000
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []

    def other() -> None:
        if len(cores) > 1:
            os.sched_setaffinity(0, {cores[1]})
        for _ in range(trips):
            ping.wait()
            ping.clear()
            pong.set()

    thread = threading.Thread(target=other)
    thread.start()
    if len(cores) > 1:
        os.sched_setaffinity(0, {cores[0]})
    times = []
    for _ in range(trips):
        start = time.perf_counter()
        ping.set()
        pong.wait()
        pong.clear()
        times.append((time.perf_counter() - start) * 1e6)
    thread.join()
    if len(cores) > 1:
        os.sched_setaffinity(0, cores)
    return statistics.median(times)


def calls(rounds: int) -> None:
    """Print one NumPy call's time on 1 thread, 2 threads and 2 processes, and a round
    trip between threads (the --calls measurement)."""
    print(f"microseconds per call of x * 1.5 (float32), median of {rounds} rounds")
    print(f"  {'size':>8} {'1 thread':>9} {'2 threads':>10} {'2 processes':>12}   "
          "two threads do / two processes do (x the work of one)")
    for size in CALL_SIZES:
        one, two, procs = [], [], []
        for _ in range(rounds):
            alone, both = _two_threads(size)
            one.append(alone)
            two.append(both)
            pair = [subprocess.Popen([sys.executable, __file__, "--call-child", str(size)],
                                     stdout=subprocess.PIPE, text=True) for _ in range(2)]
            procs.append(max(float(p.communicate()[0]) for p in pair))
        one, two, procs = (statistics.median(v) for v in (one, two, procs))
        print(f"  {size * 4 // 1024:>5} KB {one:9.1f} {two:10.1f} {procs:12.1f}   "
              f"{2 * one / two:.2f}x / {2 * one / procs:.2f}x")
    trips = [_round_trip() for _ in range(rounds)]
    print(f"a thread wakes another and is woken back: {statistics.median(trips):.1f} us "
          f"(rounds: {', '.join(f'{t:.1f}' for t in trips)})")


def start(model: str, what: str, batch: int, threads: int, nets: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, __file__, "--child", model, what, str(batch),
                             str(threads), str(nets)], stdout=subprocess.PIPE, text=True)


def finish(*procs: subprocess.Popen) -> float:
    """The slowest of the processes' milliseconds per step."""
    times = []
    for proc in procs:
        out, _ = proc.communicate()
        if proc.returncode:
            sys.exit(f"a contender failed (exit code {proc.returncode})")
        times.append(float(out))
    return max(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="cnn",
                        help=f"{', '.join(NAMED)} or a network of benchmarks/zoo.py")
    parser.add_argument("--batch", type=int, default=128, help="N, even (default 128)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", action="store_true",
                        help="time single NumPy calls and a thread wake-up instead")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    parser.add_argument("--call-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.call_child:
        call_child(args.call_child)
        return
    if args.calls:
        calls(args.rounds)
        return
    if args.child:
        model, what, batch, threads, nets = args.child
        if int(nets):
            child(model, what, int(batch), int(threads), int(nets))
        else:
            handed_over(model, int(batch))
        return
    from zoo import ZOO  # (after the children: it imports the library)

    if args.model not in NAMED and args.model not in ZOO:
        parser.error(f"--model: no network {args.model!r}; choose {', '.join(NAMED)} or "
                     f"one of the zoo's: {', '.join(ZOO)}")
    if args.batch < 2 or args.batch % 2:
        parser.error(f"--batch must be even and 2 or more, got {args.batch}")
    from speed import cpu_ticks, stolen_share  # (imports PyTorch, if installed: not in children)

    ms: dict[tuple[str, str], list[float]] = {}
    ticks = cpu_ticks()
    for _ in range(args.rounds):
        for what in ("train", "predict"):
            for name, runs in CONTENDERS.items():
                if what == "train" and not runs[0][2]:
                    continue  # handed over: prediction only
                procs = [start(args.model, what, round(part * args.batch), threads, nets)
                         for part, threads, nets in runs]
                ms.setdefault((what, name), []).append(finish(*procs))
    stolen = stolen_share(ticks, cpu_ticks())
    print(f"{args.model}, batch {args.batch} (halves of {args.batch // 2}): milliseconds per "
          f"step, median of {args.rounds} rounds (per round: the median of {SECONDS:g} s of "
          "steps)")
    for what in ("train", "predict"):
        med = {name: statistics.median(v) for (w, name), v in ms.items() if w == what}
        print(f"\n{what}")
        for name, value in med.items():
            rounds = ", ".join(f"{v:.2f}" for v in ms[what, name])
            print(f"  {name:28s} {value:7.2f} ms   ({rounds})")
        one = med["one thread"]
        handed = med.get("half handed over")
        print(f"  x the work of one thread: two threads {one / med['threads']:.2f}x, a Net a "
              f"thread {one / med['a Net a thread']:.2f}x"
              + ("" if handed is None else f", half handed over {one / handed:.2f}x")
              + f", two processes {2 * med['1 process'] / med['2 processes']:.2f}x that of one")
    if stolen is not None:
        print(f"\nCPU time stolen by the host during the runs: {stolen:.0%}")


if __name__ == "__main__":
    main()
