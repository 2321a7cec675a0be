"""Continue training a cnn-numpy model in PyTorch on several processes, then come back.

    python examples/continue_in_pytorch.py MODEL.npz --output MORE.npz [--processes 2]
           [--epochs 1] [--learning-rate 0.0005] [--batch-size 64] [--limit N]
           [--dataset mnist-sample] [--data-dir DIR] [--report REPORT.json]

1. Loads MODEL (a cnn-numpy model file or checkpoint) and converts it with
   cnn_numpy.interop.to_torch.
2. Trains it with torch.nn.parallel.DistributedDataParallel: one process per
   CUDA device when there are any (backend nccl), otherwise --processes CPU
   processes (backend gloo).  Each process trains on its own shard of the
   images (DistributedSampler); DDP averages the gradients across processes
   after every batch, so all copies of the model stay the same.
3. Converts the result back with from_torch and saves it as a cnn-numpy model
   file, which `cnn-numpy evaluate MORE.npz` reads.  Checks on the first test
   images that the model that came back computes what the PyTorch model
   computed.

Prints the mean loss of the first and the last batches (over all processes)
and the largest difference between PyTorch's and cnn-numpy's probabilities;
--report writes the same as JSON.  Needs `pip install "cnn-numpy[torch]"`.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import tempfile
from pathlib import Path

import numpy as np

from cnn_numpy import Net
from cnn_numpy.data import load_dataset
from cnn_numpy.extras import require
from cnn_numpy.files import atomic_write, check_writable
from cnn_numpy.interop import from_torch, to_torch

LOSS_WINDOW = 10  # batches averaged for "first" and "last" loss
CHECK_IMAGES = 1000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker(rank: int, world: int, port: int, options, x, y, out_dir: str) -> None:
    """One process of the run: its shard of the data, its copy of the model."""
    torch = require("torch", "torch")
    dist = torch.distributed
    cuda = torch.cuda.is_available()
    torch.set_num_threads(1)  # one core per process: processes, not threads, split the work
    dist.init_process_group("nccl" if cuda else "gloo", init_method=f"tcp://127.0.0.1:{port}",
                            rank=rank, world_size=world)
    device = torch.device(f"cuda:{rank}") if cuda else torch.device("cpu")
    net = Net.load(options.model)
    model = to_torch(net).float().to(device)
    model.train()
    ddp = torch.nn.parallel.DistributedDataParallel(model, device_ids=[rank] if cuda else None)
    images = torch.tensor(x).permute(0, 3, 1, 2)  # (n, h, w, c) -> (n, c, h, w)
    dataset = torch.utils.data.TensorDataset(images, torch.tensor(y))
    sampler = torch.utils.data.distributed.DistributedSampler(dataset, world, rank, seed=0)
    loader = torch.utils.data.DataLoader(dataset, batch_size=options.batch_size,
                                         sampler=sampler)
    optimizer = torch.optim.Adam(ddp.parameters(), lr=options.learning_rate)
    losses = []
    for epoch in range(options.epochs):
        sampler.set_epoch(epoch)
        for xb, yb in loader:
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(ddp(xb.to(device)), yb.to(device))
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    window = min(LOSS_WINDOW, len(losses) // 2)  # main() makes sure there are >= 2 batches
    first_last = torch.tensor([np.mean(losses[:window]), np.mean(losses[-window:])])
    dist.all_reduce(first_last)  # the mean over processes
    if rank == 0:
        model.eval()
        check = images[:CHECK_IMAGES].to(device)
        with torch.no_grad():
            probabilities = torch.softmax(model(check), dim=1).cpu().numpy()
        back = from_torch(model.cpu(), input_shape=x.shape[1:])
        back.save(options.output)
        ours = back.predict(x[:CHECK_IMAGES])
        report = {"processes": world, "backend": "nccl" if cuda else "gloo",
                  "batches_per_process": len(losses),
                  "loss_window": window,
                  "loss_first": float(first_last[0]) / world,
                  "loss_last": float(first_last[1]) / world,
                  "largest_probability_difference": float(np.abs(ours - probabilities).max()),
                  "output": str(options.output)}
        Path(out_dir, "report.json").write_text(json.dumps(report))
    # Leave together: a process that tore its group down while rank 0 was still at work
    # was once aborted by gloo at exit ("terminate called without an active exception").
    dist.barrier()
    dist.destroy_process_group()


def positive(text: str) -> int:
    """argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 1")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", type=Path, help="a cnn-numpy model file or checkpoint")
    parser.add_argument("--output", type=Path, required=True, help="the model file to write")
    parser.add_argument("--processes", type=positive, default=2,
                        help="CPU processes when there is no CUDA device (2)")
    parser.add_argument("--epochs", type=positive, default=1)
    parser.add_argument("--learning-rate", type=float, default=0.0005)
    parser.add_argument("--batch-size", type=positive, default=64)
    parser.add_argument("--limit", type=positive, default=None,
                        help="train on the first N images")
    parser.add_argument("--dataset", default=None, help="as for cnn-numpy train (default: "
                                                        "full MNIST if found, else the sample)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--report", type=Path, default=None, help="also write JSON here")
    options = parser.parse_args(argv)
    try:
        torch = require("torch", "torch")
        net = Net.load(options.model)
        if type(net.output_layer).__name__ != "FCLayer_Softmax":
            raise ValueError(f"{options.model}: this example trains softmax classifiers")
        if not 0 < options.learning_rate < 1:
            raise ValueError(f"--learning-rate {options.learning_rate}: must be in (0, 1)")
        check_writable(options.output, "--output")
        if options.report is not None:
            check_writable(options.report, "--report")
        data = load_dataset(options.dataset, options.data_dir, progress=False)
    except (ImportError, ValueError) as exc:
        print(f"continue_in_pytorch: error: {exc}", file=sys.stderr)
        return 2
    x = data.x_train[: options.limit].astype(np.float32)
    x = x[..., None] if x.ndim == 3 else x
    y = data.y_train[: options.limit]
    cuda = torch.cuda.device_count()
    world = cuda or options.processes
    if len(x) // world < 2 * options.batch_size:
        print(f"continue_in_pytorch: error: {len(x):,} images give each of {world} processes "
              f"fewer than 2 batches of {options.batch_size}; raise --limit or lower "
              "--batch-size or --processes", file=sys.stderr)
        return 2
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory() as out_dir:
        torch.multiprocessing.spawn(worker, args=(world, free_port(), options, x, y, out_dir),
                                    nprocs=world)
        report = json.loads(Path(out_dir, "report.json").read_text())
    window = report["loss_window"]
    print(f"Trained on {len(x):,} images with {world} {report['backend']} processes: loss "
          f"{report['loss_first']:.4f} (first {window} batches) -> "
          f"{report['loss_last']:.4f} (last {window})")
    print(f"Back in cnn-numpy: {options.output}; largest difference from PyTorch's "
          f"probabilities on {CHECK_IMAGES} images: {report['largest_probability_difference']:.1e}")
    if options.report is not None:
        text = json.dumps(report, indent=2) + "\n"
        atomic_write(options.report, lambda f: f.write(text.encode()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
