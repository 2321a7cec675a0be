"""Winograd's F(2 x 2, 3 x 3), F(4 x 4, 3 x 3) and F(2 x 2, 5 x 5)
(cnn_numpy/fast/winograd.py) against the window matrix and one product
(blocks.BlockedConv), on the zoo's 3 x 3 and 5 x 5 stride-1 convolutions: where are the
algorithms with fewer multiplications faster in NumPy, and how far are they from the
exact sum?

    python benchmarks/winograd.py           # about two minutes; writes results/winograd.json
    python benchmarks/winograd.py --quick   # 3 repeats, writes nothing

For each convolution, each contender runs the forward pass alone (as in
prediction) and the forward pass with the weight gradient (as in training,
the window matrix or the transformed tiles kept for it) on the same blocks of
images each contender's blocks in the fast path hold (blocks.image_blocks:
a window matrix, or Winograd's transformed tiles, of about blocks.BLOCK
numbers; for the thread pool the fast path may cut one more, blocks.pool_blocks),
one block after the other on one core, their turns interleaved,
median of the repeats; F(4 x 4, 3 x 3) where the sides divide by 4 (3 x 3 filters
only).  Each float32 result is
compared with the window matrix's in float64.  The fast path takes Winograd's
from blocks.WINOGRAD_CHANNELS input channels on (winograd.py says why and
what it costs).
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

from cnn_numpy.fast import threads, winograd  # noqa: E402
from cnn_numpy.fast.blocks import BlockedConv, image_blocks  # noqa: E402
from cnn_numpy.layers import ConvLayer, ConvLayer_ReLU  # noqa: E402

RESULTS = HERE / "results" / "winograd.json"
BATCH = 64


def _same(fw: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """'same' padding of an fw x fw stride-1 convolution, fw odd."""
    return ((fw // 2, fw // 2),) * 2


def convolutions() -> list[dict]:
    """The zoo's 3 x 3 and 5 x 5 stride-1 'same' convolutions on even sizes, with more
    than 3 input channels (on 1 or 3 channels the tile copy is as large as the window
    matrix, for a product that is small anyway), once each."""
    found = {}
    for name, (shape, text, _) in ZOO.items():
        net, size = build(text, shape), tuple(shape)
        for layer in net.layers:
            fw = layer.W.shape[0] if type(layer) in (ConvLayer, ConvLayer_ReLU) else 0
            if fw in (3, 5) and layer.stride == 1 and layer.pads(*size[:2]) == _same(fw) \
                    and size[0] % 2 == 0 and size[1] % 2 == 0 and size[2] > 3:
                key = (*size, fw, layer.W.shape[3])
                found.setdefault(key, {"input": list(size), "filter": fw,
                                       "filters": layer.W.shape[3], "in": []})["in"].append(name)
            size = layer.output_shape(size)
    return list(found.values())


def measure(conv: dict, repeats: int) -> dict:
    """Each contender on a batch of BATCH, block by block on one core: the forward pass
    alone (prediction), and the forward pass with the weight gradient (training)."""
    h, w, c = conv["input"]
    fw, nf, same = conv["filter"], conv["filters"], _same(conv["filter"])
    rng = np.random.default_rng(0)
    x = data((h, w, c), BATCH)[0]
    W = (rng.standard_normal((fw, fw, c, nf)) * np.sqrt(2 / (fw * fw * c))).astype(np.float32)
    b = rng.standard_normal(nf).astype(np.float32)
    dZ = rng.standard_normal((BATCH, h, w, nf)).astype(np.float32)
    Wb = np.concatenate([W.reshape(-1, nf), b[None, :]])
    exact = BlockedConv(x.shape, W, 1, same)
    exact.winograd = 0  # the window matrix, in float64
    exact_Z = np.empty((BATCH, h, w, nf))
    exact_cols = exact.forward(x.astype(float), Wb.astype(float), exact_Z)
    exact_dW = exact.backward(x.astype(float), dZ.astype(float), W.astype(float), None,
                              exact_cols)
    outputs, fns, block_images = {}, {}, {}
    for name, tile in [("im2col", 0), ("F(2x2)", 2), ("F(4x4)", 4)]:
        if tile and (h % tile or w % tile or tile not in winograd.TILE_SIDES[fw]):
            continue
        geometry = BlockedConv(x.shape, W, 1, same)
        geometry.winograd = tile  # whatever the channels (blocks.WINOGRAD_CHANNELS)
        cuts = image_blocks(BATCH, geometry.held_per_image() if tile
                            else h * w * (fw * fw * c + 1))
        block_images[name] = cuts[0].stop - cuts[0].start
        Z = np.empty((BATCH, h, w, nf), np.float32)
        dWb = np.empty_like(Wb)
        outputs[name] = (Z, dWb)

        def forward(g=geometry, Z=Z, cuts=cuts):
            for s in cuts:
                g.forward(x[s], Wb, Z[s], columns=False)

        def training(g=geometry, Z=Z, dWb=dWb, cuts=cuts):
            dWb[...] = sum(g.backward(x[s], dZ[s], W, None, g.forward(x[s], Wb, Z[s]))
                           for s in cuts)

        fns[name, "forward"], fns[name, "training"] = forward, training
    with threads.single_threaded_blas():
        calls = calls_per_turn(fns, 0.3)
        times: dict = {key: [] for key in fns}
        for _ in range(repeats):
            for key, fn in fns.items():
                start = time.perf_counter()
                for _ in range(calls[key]):
                    fn()
                times[key].append((time.perf_counter() - start) / calls[key])
    errors = {"forward": {}, "weight_gradient": {}}
    for name, (Z, dWb) in outputs.items():
        errors["forward"][name] = float(np.abs(Z - exact_Z).max() / np.abs(exact_Z).max())
        errors["weight_gradient"][name] = float(
            np.abs(dWb - exact_dW).max() / np.abs(exact_dW).max())
    worst = max(max(e.values()) for e in errors.values())
    assert worst < 2e-5, f"a contender is far from the exact sum: {errors}"
    fast = BlockedConv(x.shape, W, 1, same).winograd
    ms: dict = {"forward": {}, "training": {}}
    for (name, part), t in times.items():
        ms[part][name] = statistics.median(t) * 1e3
    return {**conv, "batch": BATCH, "block_images": block_images,
            "ms": ms, "relative_error": errors,
            "in_fast_path": f"F({fast}x{fast})" if fast else "im2col"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 repeats, write nothing")
    args = parser.parse_args(argv)
    repeats = 3 if args.quick else 9
    from speed import machine

    threads.keep_freed_memory()  # as a fast pass does: freed blocks stay for the next one
    rows = [measure(conv, repeats) for conv in convolutions()]
    for row in rows:
        print(f"{' x '.join(map(str, row['input']))} -> {row['filters']} "
              f"({', '.join(row['in'])}), images a block: " + ", ".join(
                  f"{name} {count}" for name, count in row["block_images"].items())
              + f"; fast path: {row['in_fast_path']}")
        for part, ms in row["ms"].items():
            print(f"  {part}: " + ", ".join(
                f"{name} {ms[name]:.2f} ms ({ms['im2col'] / ms[name]:.2f}x)" for name in ms))
        for part, errors in row["relative_error"].items():
            print(f"  error, {part}: " + ", ".join(
                f"{name} {error:.1e}" for name, error in errors.items()))
    if not args.quick:
        RESULTS.write_text(json.dumps({"machine": machine(), "repeats": repeats,
                                       "convolutions": rows}, indent=1) + "\n")
        print(f"written to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
