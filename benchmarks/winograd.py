"""Winograd's F(2 x 2, 3 x 3) (cnn_numpy/fast/winograd.py) against the window matrix and
one product (blocks.BlockedConv), on the zoo's 3 x 3 stride-1 convolutions: where is
the algorithm with fewer multiplications faster in NumPy?

    python benchmarks/winograd.py           # about a minute; writes results/winograd.json
    python benchmarks/winograd.py --quick   # 3 repeats, writes nothing

For each convolution, both forward passes run on the same blocks of images
(sized for the cache as the fast path sizes them: blocks.image_blocks), one
block after the other on one core, their turns interleaved, median of the
repeats; the two must agree to float32 rounding.  The fast path takes
Winograd's forward pass from blocks.WINOGRAD_CHANNELS input channels on,
where a training step does not keep the window matrix for its backward pass
(winograd.py says why and what it costs).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from turns import calls_per_turn  # noqa: E402  (beside this script)
from zoo import ZOO, build, data  # noqa: E402

from cnn_numpy.fast import blocks, threads  # noqa: E402
from cnn_numpy.fast.blocks import BlockedConv, image_blocks  # noqa: E402
from cnn_numpy.layers import ConvLayer, ConvLayer_ReLU  # noqa: E402

RESULTS = HERE / "results" / "winograd.json"
BATCH = 64

def convolutions() -> list[dict]:
    """The zoo's 3 x 3 stride-1 'same' convolutions on even sizes, with more than 3 input
    channels (on 1 or 3 channels the tile copy is as large as the window matrix, for a
    product that is small anyway), once each."""
    found = {}
    for name, (shape, text, _) in ZOO.items():
        net, size = build(text, shape), tuple(shape)
        for layer in net.layers:
            if type(layer) in (ConvLayer, ConvLayer_ReLU) and layer.W.shape[0] == 3 \
                    and layer.stride == 1 and layer.pads(*size[:2]) == ((1, 1), (1, 1)) \
                    and size[0] % 2 == 0 and size[1] % 2 == 0 and size[2] > 3:
                key = (*size, layer.W.shape[3])
                found.setdefault(key, {"input": list(size), "filters": layer.W.shape[3],
                                       "in": []})["in"].append(name)
            size = layer.output_shape(size)
    return list(found.values())


def measure(conv: dict, repeats: int) -> dict:
    """Both contenders on a batch of BATCH, block by block on one core."""
    h, w, c = conv["input"]
    nf = conv["filters"]
    rng = np.random.default_rng(0)
    x = data((h, w, c), BATCH)[0]
    W = (rng.standard_normal((3, 3, c, nf)) * np.sqrt(2 / (9 * c))).astype(np.float32)
    b = rng.standard_normal(nf).astype(np.float32)
    geometry = BlockedConv(x.shape, W, 1, ((1, 1), (1, 1)))
    cuts = image_blocks(BATCH, h * w * (9 * c + 1))
    Wb = np.concatenate([W.reshape(-1, nf), b[None, :]])
    Z, Zw = np.empty((BATCH, h, w, nf), np.float32), np.empty((BATCH, h, w, nf), np.float32)
    geometry.winograd = True  # whatever the channels (blocks.WINOGRAD_CHANNELS)
    fns = {"im2col": lambda: [geometry.forward(x[s], Wb, Z[s]) for s in cuts],
           "winograd": lambda: [geometry.forward(x[s], Wb, Zw[s], columns=False)
                                for s in cuts]}
    with threads.single_threaded_blas():
        calls = calls_per_turn(fns, 0.3)
        times: dict[str, list[float]] = {name: [] for name in fns}
        for _ in range(repeats):
            for name, fn in fns.items():
                start = time.perf_counter()
                for _ in range(calls[name]):
                    fn()
                times[name].append((time.perf_counter() - start) / calls[name])
    ms = {name: statistics.median(t) * 1e3 for name, t in times.items()}
    error = float(np.abs(Zw - Z).max() / np.abs(Z).max())
    assert error < 1e-5, f"Winograd disagrees with im2col: relative error {error:.1e}"
    return {**conv, "batch": BATCH, "block_images": cuts[0].stop - cuts[0].start,
            "im2col_ms": ms["im2col"], "winograd_ms": ms["winograd"],
            "relative_error": error, "in_fast_path": c >= blocks.WINOGRAD_CHANNELS}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 repeats, write nothing")
    args = parser.parse_args(argv)
    repeats = 3 if args.quick else 9
    from speed import machine

    threads.keep_freed_memory()  # as a fast pass does: freed blocks stay for the next one
    rows = [measure(conv, repeats) for conv in convolutions()]
    for row in rows:
        print(f"{' x '.join(map(str, row['input']))} -> {row['filters']} ({', '.join(row['in'])}): "
              f"im2col {row['im2col_ms']:.2f} ms, Winograd {row['winograd_ms']:.2f} ms "
              f"({row['im2col_ms'] / row['winograd_ms']:.2f}x), blocks of "
              f"{row['block_images']}, relative error {row['relative_error']:.1e}")
    if not args.quick:
        RESULTS.write_text(json.dumps({"machine": machine(), "repeats": repeats,
                                       "convolutions": rows}, indent=1) + "\n")
        print(f"written to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
